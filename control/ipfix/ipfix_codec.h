// RFC 7011 wire format: the message header, template and options template sets, data sets.
// Pure functions over byte vectors; every integer is written big-endian (network order).
#ifndef AFTR_CONTROL_IPFIX_IPFIX_CODEC_H_
#define AFTR_CONTROL_IPFIX_IPFIX_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace aftr::ipfix {

inline constexpr uint16_t kVersion = 10;
inline constexpr size_t kMessageHeaderBytes = 16;
inline constexpr size_t kSetHeaderBytes = 4;
inline constexpr uint16_t kTemplateSetId = 2;
inline constexpr uint16_t kOptionsTemplateSetId = 3;
inline constexpr uint16_t kMinDataSetId = 256;
// Field length 65535 in a template: the data carries its own length (RFC 7011 section 7).
inline constexpr uint16_t kVariableLength = 65535;
// A variable-length field with a 1-octet length prefix holds at most this many octets
// (255 announces the 3-octet form, which we never write).
inline constexpr size_t kMaxShortVariableLength = 254;

// IANA "IPFIX Information Elements" ids used by the NAT templates (RFC 8158) and the
// exporter's statistics (RFC 7011 section 4.3).
namespace ie {
inline constexpr uint16_t kProtocolIdentifier = 4;
inline constexpr uint16_t kSourceTransportPort = 7;
inline constexpr uint16_t kSourceIPv4Address = 8;
inline constexpr uint16_t kSourceIPv6Address = 27;
inline constexpr uint16_t kExportedMessageTotalCount = 41;
inline constexpr uint16_t kExportedFlowRecordTotalCount = 42;
inline constexpr uint16_t kObservationDomainId = 149;
inline constexpr uint16_t kNotSentFlowTotalCount = 166;
inline constexpr uint16_t kPostNATSourceIPv4Address = 225;
inline constexpr uint16_t kPostNAPTSourceTransportPort = 227;
inline constexpr uint16_t kNatEvent = 230;
inline constexpr uint16_t kNatPoolId = 283;
inline constexpr uint16_t kObservationTimeMilliseconds = 323;
inline constexpr uint16_t kPortRangeStart = 361;
inline constexpr uint16_t kPortRangeEnd = 362;
inline constexpr uint16_t kPortRangeStepSize = 363;
inline constexpr uint16_t kPortRangeNumPorts = 364;
inline constexpr uint16_t kUserName = 371;
inline constexpr uint16_t kNatQuotaExceededEvent = 466;
inline constexpr uint16_t kMaxSessionEntries = 471;
inline constexpr uint16_t kMaxEntriesPerUser = 473;
inline constexpr uint16_t kMaxSubscribers = 474;
}  // namespace ie

struct FieldSpec {
  uint16_t id = 0;      // IANA IE id (no enterprise bit: IANA elements only)
  uint16_t length = 0;  // octets, or kVariableLength
};

// A template (scope_count 0) or an options template (the first scope_count fields are the
// scope).
struct Template {
  uint16_t id = 0;
  uint16_t scope_count = 0;
  std::vector<FieldSpec> fields;

  // Octets of a record when every variable-length field is empty (1 octet each).
  size_t MinRecordBytes() const;
};

// Appends big-endian integers and raw octets.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(v); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  void U64(uint64_t v);
  void Bytes(std::span<const uint8_t> b) { out_->insert(out_->end(), b.begin(), b.end()); }
  // A variable-length field in the 1-octet form; longer input is cut to 254 octets.
  void ShortVariable(std::span<const uint8_t> b);

 private:
  std::vector<uint8_t>* out_;
};

// Writes a 16-octet message header at `out[offset]` (which must exist).
void WriteMessageHeader(std::span<uint8_t> out, uint16_t length, uint32_t export_time_s,
                        uint32_t sequence, uint32_t observation_domain_id);

// Rewrites the sequence number of a finished message (a template message resent first on
// a new TCP connection takes the number of the first message it precedes).
void RewriteSequence(std::span<uint8_t> message, uint32_t sequence);

// Appends one Template Set holding `templates` (scope_count 0 each).
void AppendTemplateSet(std::span<const Template> templates, std::vector<uint8_t>* out);
// Appends one Options Template Set holding `templates`.
void AppendOptionsTemplateSet(std::span<const Template> templates, std::vector<uint8_t>* out);
// Appends a Data Set header for `template_id` covering `records_bytes` octets of records.
void AppendDataSetHeader(uint16_t template_id, size_t records_bytes, std::vector<uint8_t>* out);

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_IPFIX_CODEC_H_
