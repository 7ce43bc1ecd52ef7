// Operator input → API resource names (see names.h).
#include "control/cli/names.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "control/common/ip.h"

namespace aftr::cli {
namespace {

absl::Status Bad(absl::string_view what, absl::string_view arg, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(what, " \"", arg, "\": want ", want));
}

// A decimal port; SimpleAtoi alone would also take " 80" and "+80".
bool ParsePort(absl::string_view text, uint32_t min, uint32_t* port) {
  if (text.empty() || text.size() > 5) return false;
  if (!std::all_of(text.begin(), text.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    return false;
  }
  return absl::SimpleAtoi(text, port) && *port >= min && *port <= 65535;
}

}  // namespace

absl::StatusOr<std::string> SubscriberName(absl::string_view arg) {
  constexpr absl::string_view kWant = "a B4 address or subscribers/{b4_address}";
  absl::string_view b4 = arg;
  absl::ConsumePrefix(&b4, "subscribers/");
  if (!ParseIpv6(b4).ok()) return Bad("subscriber", arg, kWant);
  return absl::StrCat("subscribers/", b4);
}

absl::StatusOr<std::string> PortBlockName(absl::string_view arg) {
  constexpr absl::string_view kWant = "ADDRESS:FIRST_PORT, e.g. 198.51.100.1:1024";
  absl::string_view rest = arg;
  absl::ConsumePrefix(&rest, "portBlocks/");
  size_t sep = rest.find_last_of(":-");
  if (sep == absl::string_view::npos) return Bad("port block", arg, kWant);
  absl::string_view address = rest.substr(0, sep);
  uint32_t port = 0;
  if (!ParseIpv4(address).ok() || !ParsePort(rest.substr(sep + 1), 0, &port)) {
    return Bad("port block", arg, kWant);
  }
  return absl::StrCat("portBlocks/", address, "-", port);
}

absl::StatusOr<std::string> PoolName(absl::string_view arg) {
  constexpr absl::string_view kWant = "a prefix (198.51.100.0/28) or pools/198.51.100.0-28";
  absl::string_view rest = arg;
  absl::ConsumePrefix(&rest, "pools/");
  size_t sep = rest.find_last_of("/-");
  if (sep == absl::string_view::npos) return Bad("pool", arg, kWant);
  std::string prefix = absl::StrCat(rest.substr(0, sep), "/", rest.substr(sep + 1));
  absl::StatusOr<Ipv4Prefix> parsed = ParseIpv4Prefix(prefix);
  if (!parsed.ok()) return Bad("pool", arg, kWant);
  return absl::StrCat("pools/", rest.substr(0, sep), "-", parsed->length);
}

absl::StatusOr<std::string> PcpMappingName(absl::string_view arg) {
  absl::string_view rest = arg;
  absl::ConsumePrefix(&rest, "pcpMappings/");
  if (rest.empty() || absl::StrContains(rest, '/')) {
    return Bad("PCP mapping", arg,
               "pcpMappings/{protocol}-{public_address}-{public_port}[-{remote_address}-{remote_port}]");
  }
  return absl::StrCat("pcpMappings/", rest);
}

absl::StatusOr<std::string> StaticMappingName(absl::string_view arg) {
  absl::string_view rest = arg;
  absl::ConsumePrefix(&rest, "staticMappings/");
  if (rest.empty() || absl::StrContains(rest, '/')) {
    return Bad("static mapping", arg, "staticMappings/{protocol}-{public_address}-{public_port}");
  }
  return absl::StrCat("staticMappings/", rest);
}

absl::StatusOr<std::string> SessionName(absl::string_view arg) {
  size_t sessions = arg.find("/sessions/");
  if (!absl::StartsWith(arg, "subscribers/") || sessions == absl::string_view::npos ||
      sessions + 10 == arg.size()) {
    return Bad("session", arg,
               "subscribers/{b4_address}/sessions/{protocol}-{inner_address}-{inner_port}");
  }
  return std::string(arg);
}

absl::StatusOr<Ipv4Endpoint> ParseIpv4Endpoint(absl::string_view arg) {
  size_t colon = arg.rfind(':');
  Ipv4Endpoint e;
  if (colon == absl::string_view::npos || !ParseIpv4(arg.substr(0, colon)).ok() ||
      !ParsePort(arg.substr(colon + 1), 1, &e.port)) {
    return Bad("endpoint", arg, "ADDRESS:PORT, e.g. 192.0.2.10:8080");
  }
  e.address = std::string(arg.substr(0, colon));
  return e;
}

absl::StatusOr<aftr::v1::Protocol> ParseProtocol(absl::string_view arg) {
  std::string lower = absl::AsciiStrToLower(arg);
  if (lower == "tcp") return aftr::v1::TCP;
  if (lower == "udp") return aftr::v1::UDP;
  if (lower == "icmp") return aftr::v1::ICMP;
  return Bad("protocol", arg, "tcp, udp or icmp");
}

std::string ProtocolText(aftr::v1::Protocol protocol) {
  switch (protocol) {
    case aftr::v1::TCP:
      return "tcp";
    case aftr::v1::UDP:
      return "udp";
    case aftr::v1::ICMP:
      return "icmp";
    default:
      return "-";
  }
}

}  // namespace aftr::cli
