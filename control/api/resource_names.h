// Resource names of the API (AIP-122) and their parsers: every name a client sends is
// checked here, and errors name the request field.
#ifndef AFTR_CONTROL_API_RESOURCE_NAMES_H_
#define AFTR_CONTROL_API_RESOURCE_NAMES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/common/ip.h"
#include "control/common/session_key.h"

namespace aftr::api {

// "tcp", "udp", "icmp" for IPPROTO_TCP/UDP/ICMP.
std::string ProtocolText(uint8_t proto);
// The inverse; `field` names the request field in the error.
absl::StatusOr<uint8_t> ParseProtocolText(absl::string_view text, absl::string_view field);

// subscribers/{b4_address}
std::string SubscriberName(const Ipv6Address& b4);
absl::StatusOr<Ipv6Address> ParseSubscriberName(absl::string_view name, absl::string_view field);

// subscribers/{b4_address}/sessions/{protocol}-{inner_address}-{inner_port}
using SessionId = SessionKey;
std::string SessionName(const SessionId& id);
absl::StatusOr<SessionId> ParseSessionName(absl::string_view name, absl::string_view field);

// portBlocks/{public_address}-{first_port}
struct PortBlockId {
  Ipv4Address public_addr;
  uint16_t first_port = 0;
};
std::string PortBlockName(const PortBlockId& id);
absl::StatusOr<PortBlockId> ParsePortBlockName(absl::string_view name, absl::string_view field);

// pools/{network}-{length}
std::string PoolName(const Ipv4Prefix& prefix);
absl::StatusOr<Ipv4Prefix> ParsePoolName(absl::string_view name, absl::string_view field);

// staticMappings/{protocol}-{public_address}-{public_port}
struct StaticMappingId {
  uint8_t proto = 0;
  Ipv4Address public_addr;
  uint16_t public_port = 0;
};
std::string StaticMappingName(const StaticMappingId& id);

// pcpMappings/{protocol}-{public_address}-{public_port}[-{remote_address}-{remote_port}]
// (the remote part for PEER mappings).
struct PcpMappingId {
  uint8_t proto = 0;
  Ipv4Address public_addr;
  uint16_t public_port = 0;
  bool peer = false;
  Ipv4Address remote_addr;
  uint16_t remote_port = 0;
};
std::string PcpMappingName(const PcpMappingId& id);
absl::StatusOr<PcpMappingId> ParsePcpMappingName(absl::string_view name, absl::string_view field);
absl::StatusOr<StaticMappingId> ParseStaticMappingName(absl::string_view name,
                                                       absl::string_view field);

// A port 1..65535 (0 only when `allow_zero`), as the API's uint32 fields carry it.
absl::StatusOr<uint16_t> CheckPort(uint32_t port, absl::string_view field, bool allow_zero);

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_RESOURCE_NAMES_H_
