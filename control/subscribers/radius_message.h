// The RADIUS wire format (RFC 2865 section 3) for accounting (RFC 2866): packets framed and
// checked, the attributes a BRAS sends to say who holds which IPv6 prefix, and the
// authenticators. Pure functions, no I/O (fuzzed by tests/fuzz/radius_fuzz.cc).
#ifndef AFTR_CONTROL_SUBSCRIBERS_RADIUS_MESSAGE_H_
#define AFTR_CONTROL_SUBSCRIBERS_RADIUS_MESSAGE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/common/ip.h"

namespace aftr::subscribers {

inline constexpr size_t kHeaderSize = 20;     // code, identifier, length, authenticator
inline constexpr size_t kMaxPacketSize = 4096;
inline constexpr size_t kAuthenticatorSize = 16;

enum Code : uint8_t {
  kAccountingRequest = 4,
  kAccountingResponse = 5,
  kStatusServer = 12,  // RFC 5997: a NAS asking whether the server is alive
};

// Attribute types this server reads.
enum AttributeType : uint8_t {
  kUserName = 1,
  kNasIpAddress = 4,
  kNasIdentifier = 32,
  kAcctStatusType = 40,
  kAcctSessionId = 44,
  kAcctSessionTime = 46,
  kEventTimestamp = 55,
  kMessageAuthenticator = 80,
  kNasPortId = 87,
  kNasIpv6Address = 95,
  kFramedIpv6Prefix = 97,         // RFC 3162
  kDelegatedIpv6Prefix = 123,     // RFC 4818
  kFramedIpv6Address = 168,       // RFC 6911
};

// Acct-Status-Type values (RFC 2866 section 5.1) the history acts on.
enum class AcctStatusType : uint32_t {
  kStart = 1,
  kStop = 2,
  kInterimUpdate = 3,
  kAccountingOn = 7,
  kAccountingOff = 8,
};

using Authenticator = std::array<uint8_t, kAuthenticatorSize>;

struct Attribute {
  uint8_t type = 0;
  std::vector<uint8_t> value;  // 0..253 octets
  friend bool operator==(const Attribute&, const Attribute&) = default;
};

// A framed packet: the header and the attributes in wire order.
struct Packet {
  uint8_t code = 0;
  uint8_t identifier = 0;
  Authenticator authenticator = {};
  std::vector<Attribute> attributes;
  friend bool operator==(const Packet&, const Packet&) = default;
};

// Frames a datagram: 20 <= Length <= 4096, Length <= datagram size (octets beyond Length are
// padding and ignored, section 3), every attribute at least 2 octets long and inside Length.
// InvalidArgument saying what is wrong otherwise.
absl::StatusOr<Packet> DecodePacket(std::span<const uint8_t> datagram);

// The packet's octets, Length computed. The caller keeps it within 4096 octets and each
// attribute value within 253.
std::vector<uint8_t> EncodePacket(const Packet& packet);

// RFC 3162 section 2.3 / RFC 4818 (the ipv6prefix type of RFC 8044 section 3.10): a
// reserved octet (ignored), the prefix length 0..128, then 0..16 octets of prefix, at least
// enough to hold the prefix length. Bits past the prefix length are cleared.
absl::StatusOr<Ipv6Prefix> DecodeIpv6PrefixValue(std::span<const uint8_t> value);
// The shortest form: ceil(length / 8) prefix octets.
std::vector<uint8_t> EncodeIpv6PrefixValue(const Ipv6Prefix& prefix);

// What an Accounting-Request says, its attribute values checked.
struct AccountingRequest {
  std::optional<uint32_t> status_type;  // Acct-Status-Type, raw (other values are legal)
  std::string user_name;
  std::string nas_identifier;
  std::optional<Ipv4Address> nas_ip;
  std::optional<Ipv6Address> nas_ipv6;
  std::string acct_session_id;
  std::string nas_port_id;
  std::optional<uint32_t> event_timestamp;    // seconds since 1970 (UTC)
  std::optional<uint32_t> acct_session_time;  // seconds the session has lasted
  std::vector<Ipv6Prefix> framed_prefixes;     // Framed-IPv6-Prefix (any number)
  std::vector<Ipv6Prefix> delegated_prefixes;  // Delegated-IPv6-Prefix
  std::vector<Ipv6Address> framed_addresses;   // Framed-IPv6-Address
  bool has_message_authenticator = false;
};

// Reads the attributes above; single-valued ones keep their first instance, unknown ones
// are skipped. InvalidArgument for a value of the wrong size or form (e.g. a 3-octet
// NAS-IP-Address, a /129 prefix).
absl::StatusOr<AccountingRequest> ParseAccountingRequest(const Packet& packet);

// RFC 2866 section 3: the Request Authenticator of an Accounting-Request is
// MD5(Code + Identifier + Length + 16 zero octets + attributes + secret). `packet` is the
// request's first Length octets.
Authenticator AccountingRequestAuthenticator(std::span<const uint8_t> packet,
                                             absl::string_view secret);
bool VerifyAccountingRequest(std::span<const uint8_t> packet, absl::string_view secret);

// RFC 3579 section 3.2 / RFC 5080 section 2.2: a Message-Authenticator in an
// Accounting-Request is HMAC-MD5(secret, packet with the Request Authenticator and the
// Message-Authenticator value zeroed); in a Status-Server (RFC 5997 section 3) the Request
// Authenticator is random and taken as sent. True when there is none or it matches; false
// when it does not match, is not 16 octets, or appears twice.
bool VerifyMessageAuthenticator(std::span<const uint8_t> packet, absl::string_view secret);
// Whether the packet has a Message-Authenticator attribute (framing already checked).
bool HasMessageAuthenticator(std::span<const uint8_t> packet);

// The Accounting-Response to a request (no attributes): RFC 2866 section 3's Response
// Authenticator MD5(Code + Identifier + Length + Request Authenticator + attributes + secret).
std::vector<uint8_t> AccountingResponse(uint8_t identifier, const Authenticator& request_authenticator,
                                        absl::string_view secret);

// MD5 of `data` (OpenSSL EVP).
Authenticator Md5(std::span<const uint8_t> data);

}  // namespace aftr::subscribers

#endif  // AFTR_CONTROL_SUBSCRIBERS_RADIUS_MESSAGE_H_
