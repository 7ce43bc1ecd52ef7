// PCP (RFC 6887) wire format: request parsing in the RFC's validation order (section 8.3)
// and response encoding. Pure: no sockets, no state; what a request may do is the server's
// business (control/pcp/pcp_server.h).
#ifndef AFTR_CONTROL_PCP_PCP_MESSAGE_H_
#define AFTR_CONTROL_PCP_PCP_MESSAGE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control/common/ip.h"

namespace aftr::pcp {

inline constexpr uint8_t kVersion = 2;
inline constexpr size_t kMaxMessage = 1100;  // section 7
inline constexpr size_t kHeaderSize = 24;
inline constexpr size_t kMapBodySize = 36;
inline constexpr size_t kPeerBodySize = 56;
inline constexpr uint16_t kServerPort = 5351;
inline constexpr uint16_t kClientPort = 5350;  // where unsolicited responses go (section 8.1)
inline constexpr uint8_t kResponseBit = 0x80;

// Error lifetimes (section 7.4): "short" errors may clear soon, "long" ones will not.
inline constexpr uint32_t kShortErrorLifetime = 30;
inline constexpr uint32_t kLongErrorLifetime = 1800;

enum class Opcode : uint8_t { kAnnounce = 0, kMap = 1, kPeer = 2 };

enum class Result : uint8_t {
  kSuccess = 0,
  kUnsuppVersion = 1,
  kNotAuthorized = 2,
  kMalformedRequest = 3,
  kUnsuppOpcode = 4,
  kUnsuppOption = 5,
  kMalformedOption = 6,
  kNetworkFailure = 7,
  kNoResources = 8,
  kUnsuppProtocol = 9,
  kUserExQuota = 10,
  kCannotProvideExternal = 11,
  kAddressMismatch = 12,
  kExcessiveRemotePeers = 13,
};
inline constexpr int kResultCount = 14;
const char* ResultName(Result r);
// Short (30 s) or long (1800 s) error lifetime of an error result.
uint32_t ErrorLifetime(Result r);

enum class OptionCode : uint8_t { kThirdParty = 1, kPreferFailure = 2, kFilter = 3 };

using Address = std::array<uint8_t, 16>;  // every PCP address field: IPv6 or IPv4-mapped
using Nonce = std::array<uint8_t, 12>;

bool IsV4Mapped(const Address& a);
Address V4Mapped(Ipv4Address a);
Ipv4Address V4Of(const Address& a);  // the IPv4 address of an IPv4-mapped one
// "No preference" in a suggested external address: :: or ::ffff:0.0.0.0 (section 11.1).
bool IsAllZeros(const Address& a);

// One FILTER option (section 13.3): prefix length counted on the 128-bit form.
struct Filter {
  uint8_t prefix_length = 0;
  uint16_t remote_port = 0;  // 0: every port
  Address remote_addr = {};
  friend bool operator==(const Filter&, const Filter&) = default;
};

// A request that passed every check of the wire format.
struct Request {
  Opcode opcode = Opcode::kAnnounce;
  uint32_t requested_lifetime = 0;
  Address client_addr = {};
  // MAP and PEER.
  Nonce nonce = {};
  uint8_t protocol = 0;
  uint16_t internal_port = 0;
  uint16_t suggested_port = 0;
  Address suggested_addr = {};
  // PEER.
  uint16_t remote_port = 0;
  Address remote_addr = {};
  // Options.
  std::optional<Address> third_party;
  bool prefer_failure = false;
  std::vector<Filter> filters;
};

// What to do with a datagram.
struct Parsed {
  enum class Kind {
    kDrop,     // silently: too short, or a response (R bit)
    kError,    // answer with `error` (ErrorResponse or, for UNSUPP_VERSION, VersionResponse)
    kRequest,  // `request` is well formed
  };
  Kind kind = Kind::kDrop;
  Result error = Result::kSuccess;
  Request request;
};

// Parses and validates `datagram` received from `source`, in the order of RFC 6887
// section 8.3: length, R bit, version, size, opcode, size for the opcode, client address,
// then the options (section 7.3) and the opcode fields the RFC makes malformed (section 11
// and 12: protocol 0 with a port, PEER zero fields, THIRD_PARTY equal to the source).
// Unknown optional options (code >= 128) are skipped; a known option not valid for the
// opcode is MALFORMED_REQUEST.
Parsed ParseRequest(std::span<const uint8_t> datagram, const Address& source);

// The error response to `datagram` (section 8.3 / 7.2): the request echoed, truncated to
// 1100 octets and zero-padded to a multiple of 4, with the response header written over it; so
// the last 96 bits of the client address stay in the reserved field and MAP/PEER fields
// (nonce, suggested port and address as "assigned") are copied.
std::vector<uint8_t> ErrorResponse(std::span<const uint8_t> datagram, Result result,
                                   uint32_t lifetime, uint32_t epoch);

// UNSUPP_VERSION: a bare header saying version 2 (section 9).
std::vector<uint8_t> VersionResponse(std::span<const uint8_t> datagram, uint32_t epoch);

// A SUCCESS (or other result) response for a well-formed request: the opcode's fields with
// the assigned external port and address, then the options it honoured (THIRD_PARTY,
// PREFER_FAILURE, and `filters_echoed`).
struct Answer {
  Result result = Result::kSuccess;
  uint32_t lifetime = 0;
  uint32_t epoch = 0;
  uint16_t assigned_port = 0;
  Address assigned_addr = {};
  std::vector<Filter> filters_echoed;
};
std::vector<uint8_t> EncodeResponse(const Request& request, const Answer& answer);

// An unsolicited ANNOUNCE response (section 14.1.3): SUCCESS, lifetime 0.
std::vector<uint8_t> UnsolicitedAnnounce(uint32_t epoch);

}  // namespace aftr::pcp

#endif  // AFTR_CONTROL_PCP_PCP_MESSAGE_H_
