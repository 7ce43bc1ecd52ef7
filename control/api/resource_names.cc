#include "control/api/resource_names.h"

#include <netinet/in.h>

#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace aftr::api {
namespace {

// Names are short; anything longer is garbage and is not quoted back in full.
constexpr size_t kMaxNameLength = 256;

absl::Status BadName(absl::string_view field, absl::string_view name, absl::string_view pattern) {
  std::string shown(name.substr(0, 80));
  if (name.size() > 80) shown += "...";
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", shown, "\" is not a resource name of the form ", pattern));
}

absl::StatusOr<uint16_t> ParsePortText(absl::string_view text, bool allow_zero) {
  uint32_t port = 0;
  // SimpleAtoi accepts a sign and whitespace; a name has digits only.
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(text, &port) || port > 65535 || (port == 0 && !allow_zero)) {
    return absl::InvalidArgumentError("bad port");
  }
  return static_cast<uint16_t>(port);
}

// Splits "{a}-{b}-{c}" on '-' into exactly `n` parts.
bool SplitId(absl::string_view id, size_t n, std::vector<absl::string_view>* parts) {
  *parts = absl::StrSplit(id, '-');
  return parts->size() == n;
}

}  // namespace

std::string ProtocolText(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
  }
  return absl::StrCat(proto);
}

absl::StatusOr<uint8_t> ParseProtocolText(absl::string_view text, absl::string_view field) {
  if (absl::EqualsIgnoreCase(text, "tcp")) return IPPROTO_TCP;
  if (absl::EqualsIgnoreCase(text, "udp")) return IPPROTO_UDP;
  if (absl::EqualsIgnoreCase(text, "icmp")) return IPPROTO_ICMP;
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", text.substr(0, 40), "\" is not a protocol (tcp, udp or icmp)"));
}

std::string SubscriberName(const Ipv6Address& b4) { return absl::StrCat("subscribers/", b4.ToString()); }

absl::StatusOr<Ipv6Address> ParseSubscriberName(absl::string_view name, absl::string_view field) {
  constexpr absl::string_view kPattern = "subscribers/{b4_address}";
  if (name.size() > kMaxNameLength || !absl::ConsumePrefix(&name, "subscribers/")) {
    return BadName(field, name, kPattern);
  }
  if (name.find('/') != absl::string_view::npos) return BadName(field, name, kPattern);
  absl::StatusOr<Ipv6Address> b4 = ParseIpv6(name);
  if (!b4.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", b4.status().message()));
  return b4;
}

std::string SessionName(const SessionId& id) {
  return absl::StrCat(SubscriberName(id.b4), "/sessions/", ProtocolText(id.proto), "-",
                      id.inner_addr.ToString(), "-", id.inner_port);
}

absl::StatusOr<SessionId> ParseSessionName(absl::string_view name, absl::string_view field) {
  constexpr absl::string_view kPattern =
      "subscribers/{b4_address}/sessions/{protocol}-{inner_address}-{inner_port}";
  if (name.size() > kMaxNameLength) return BadName(field, name, kPattern);
  size_t sep = name.find("/sessions/");
  if (sep == absl::string_view::npos) return BadName(field, name, kPattern);
  absl::StatusOr<Ipv6Address> b4 = ParseSubscriberName(name.substr(0, sep), field);
  if (!b4.ok()) return b4.status();
  std::vector<absl::string_view> parts;
  if (!SplitId(name.substr(sep + 10), 3, &parts)) return BadName(field, name, kPattern);
  SessionId id;
  id.b4 = *b4;
  absl::StatusOr<uint8_t> proto = ParseProtocolText(parts[0], field);
  absl::StatusOr<Ipv4Address> inner = ParseIpv4(parts[1]);
  // ICMP echo identifiers may be 0; ports may not.
  absl::StatusOr<uint16_t> port =
      ParsePortText(parts[2], proto.ok() && *proto == IPPROTO_ICMP);
  if (!proto.ok() || !inner.ok() || !port.ok()) return BadName(field, name, kPattern);
  id.proto = *proto;
  id.inner_addr = *inner;
  id.inner_port = *port;
  return id;
}

std::string PortBlockName(const PortBlockId& id) {
  return absl::StrCat("portBlocks/", id.public_addr.ToString(), "-", id.first_port);
}

absl::StatusOr<PortBlockId> ParsePortBlockName(absl::string_view name, absl::string_view field) {
  constexpr absl::string_view kPattern = "portBlocks/{public_address}-{first_port}";
  absl::string_view rest = name;
  std::vector<absl::string_view> parts;
  if (name.size() > kMaxNameLength || !absl::ConsumePrefix(&rest, "portBlocks/") ||
      !SplitId(rest, 2, &parts)) {
    return BadName(field, name, kPattern);
  }
  absl::StatusOr<Ipv4Address> addr = ParseIpv4(parts[0]);
  absl::StatusOr<uint16_t> port = ParsePortText(parts[1], false);
  if (!addr.ok() || !port.ok()) return BadName(field, name, kPattern);
  return PortBlockId{*addr, *port};
}

std::string PoolName(const Ipv4Prefix& prefix) {
  return absl::StrCat("pools/", prefix.addr.ToString(), "-", prefix.length);
}

absl::StatusOr<Ipv4Prefix> ParsePoolName(absl::string_view name, absl::string_view field) {
  constexpr absl::string_view kPattern = "pools/{network}-{length}";
  absl::string_view rest = name;
  std::vector<absl::string_view> parts;
  if (name.size() > kMaxNameLength || !absl::ConsumePrefix(&rest, "pools/") ||
      !SplitId(rest, 2, &parts)) {
    return BadName(field, name, kPattern);
  }
  absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(absl::StrCat(parts[0], "/", parts[1]));
  if (!prefix.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", prefix.status().message()));
  }
  return prefix;
}

namespace {

// {protocol}-{public_address}-{public_port}: the first three parts of a mapping's id.
std::optional<StaticMappingId> ParsePublicEndpoint(const std::vector<absl::string_view>& parts,
                                                   absl::string_view field) {
  absl::StatusOr<uint8_t> proto = ParseProtocolText(parts[0], field);
  absl::StatusOr<Ipv4Address> addr = ParseIpv4(parts[1]);
  absl::StatusOr<uint16_t> port = ParsePortText(parts[2], false);
  if (!proto.ok() || !addr.ok() || !port.ok()) return std::nullopt;
  return StaticMappingId{*proto, *addr, *port};
}

}  // namespace

std::string StaticMappingName(const StaticMappingId& id) {
  return absl::StrCat("staticMappings/", ProtocolText(id.proto), "-", id.public_addr.ToString(),
                      "-", id.public_port);
}

absl::StatusOr<StaticMappingId> ParseStaticMappingName(absl::string_view name,
                                                       absl::string_view field) {
  constexpr absl::string_view kPattern = "staticMappings/{protocol}-{public_address}-{public_port}";
  absl::string_view rest = name;
  std::vector<absl::string_view> parts;
  if (name.size() > kMaxNameLength || !absl::ConsumePrefix(&rest, "staticMappings/") ||
      !SplitId(rest, 3, &parts)) {
    return BadName(field, name, kPattern);
  }
  std::optional<StaticMappingId> id = ParsePublicEndpoint(parts, field);
  if (!id) return BadName(field, name, kPattern);
  return *id;
}

std::string PcpMappingName(const PcpMappingId& id) {
  std::string name = absl::StrCat("pcpMappings/", ProtocolText(id.proto), "-",
                                  id.public_addr.ToString(), "-", id.public_port);
  if (id.peer) absl::StrAppend(&name, "-", id.remote_addr.ToString(), "-", id.remote_port);
  return name;
}

absl::StatusOr<PcpMappingId> ParsePcpMappingName(absl::string_view name, absl::string_view field) {
  constexpr absl::string_view kPattern =
      "pcpMappings/{protocol}-{public_address}-{public_port}[-{remote_address}-{remote_port}]";
  absl::string_view rest = name;
  std::vector<absl::string_view> parts;
  if (name.size() > kMaxNameLength || !absl::ConsumePrefix(&rest, "pcpMappings/") ||
      !(SplitId(rest, 3, &parts) || SplitId(rest, 5, &parts))) {
    return BadName(field, name, kPattern);
  }
  std::optional<StaticMappingId> endpoint = ParsePublicEndpoint(parts, field);
  if (!endpoint) return BadName(field, name, kPattern);
  PcpMappingId id;
  id.proto = endpoint->proto;
  id.public_addr = endpoint->public_addr;
  id.public_port = endpoint->public_port;
  if (parts.size() == 5) {
    absl::StatusOr<Ipv4Address> remote = ParseIpv4(parts[3]);
    absl::StatusOr<uint16_t> remote_port = ParsePortText(parts[4], false);
    if (!remote.ok() || !remote_port.ok()) return BadName(field, name, kPattern);
    id.peer = true;
    id.remote_addr = *remote;
    id.remote_port = *remote_port;
  }
  return id;
}

absl::StatusOr<uint16_t> CheckPort(uint32_t port, absl::string_view field, bool allow_zero) {
  if (port > 65535 || (port == 0 && !allow_zero)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", port, " is not a port (", allow_zero ? "0" : "1", "..65535)"));
  }
  return static_cast<uint16_t>(port);
}

}  // namespace aftr::api
