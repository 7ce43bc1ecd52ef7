// aftrctl's argument conversions: what an operator types (an address, ADDR:PORT, a prefix)
// to the API's resource names and fields. Pure; the server still checks every name.
#ifndef AFTR_CONTROL_CLI_NAMES_H_
#define AFTR_CONTROL_CLI_NAMES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "aftr/v1/resources.pb.h"

namespace aftr::cli {

// "2001:db8:a::2" or "subscribers/2001:db8:a::2" → "subscribers/2001:db8:a::2".
absl::StatusOr<std::string> SubscriberName(absl::string_view arg);

// "198.51.100.1:1024", "198.51.100.1-1024" or "portBlocks/198.51.100.1-1024" →
// "portBlocks/198.51.100.1-1024".
absl::StatusOr<std::string> PortBlockName(absl::string_view arg);

// "198.51.100.0/28", "198.51.100.0-28" or "pools/198.51.100.0-28" → "pools/198.51.100.0-28".
absl::StatusOr<std::string> PoolName(absl::string_view arg);

// "tcp-198.51.100.1-2000" or "staticMappings/tcp-198.51.100.1-2000" →
// "staticMappings/tcp-198.51.100.1-2000".
absl::StatusOr<std::string> StaticMappingName(absl::string_view arg);
absl::StatusOr<std::string> PcpMappingName(absl::string_view arg);

// A session's full name, subscribers/{b4}/sessions/{protocol}-{inner}-{port}; only its shape
// is checked here.
absl::StatusOr<std::string> SessionName(absl::string_view arg);

struct Ipv4Endpoint {
  std::string address;  // dotted quad, as the API's string fields carry it
  uint32_t port = 0;
};
// "192.0.2.10:8080" (port 1..65535).
absl::StatusOr<Ipv4Endpoint> ParseIpv4Endpoint(absl::string_view arg);

// "tcp" / "udp" / "icmp" (any case). Static mappings take only tcp and udp: the server says so.
absl::StatusOr<aftr::v1::Protocol> ParseProtocol(absl::string_view arg);
// The inverse, "-" for PROTOCOL_UNSPECIFIED.
std::string ProtocolText(aftr::v1::Protocol protocol);

}  // namespace aftr::cli

#endif  // AFTR_CONTROL_CLI_NAMES_H_
