#include "control/events/log_line.h"

#include <netinet/in.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace aftr::events {
namespace {

std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
  }
  return absl::StrFormat("p%d", proto);
}

bool ParseProto(absl::string_view text, uint8_t* out) {
  if (text == "tcp") *out = IPPROTO_TCP;
  else if (text == "udp") *out = IPPROTO_UDP;
  else if (text == "icmp") *out = IPPROTO_ICMP;
  else {
    uint32_t n = 0;
    if (text.size() < 2 || text[0] != 'p' || !absl::SimpleAtoi(text.substr(1), &n) || n > 255) return false;
    *out = static_cast<uint8_t>(n);
  }
  return true;
}

bool ParsePort(absl::string_view text, uint16_t* out) {
  uint32_t n = 0;
  if (text.empty() || text.size() > 5 || !absl::SimpleAtoi(text, &n) || n > 65535) return false;
  *out = static_cast<uint16_t>(n);
  return true;
}

// "192.0.2.10:40000"
bool ParseEndpoint(absl::string_view text, Ipv4Address* addr, uint16_t* port) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::StatusOr<Ipv4Address> a = ParseIpv4(text.substr(0, colon));
  if (!a.ok()) return false;
  *addr = *a;
  return ParsePort(text.substr(colon + 1), port);
}

// " +N" after a limit line: N more of that limit were suppressed since the previous line.
std::string SuppressedSuffix(uint64_t suppressed) {
  return suppressed == 0 ? std::string() : absl::StrCat(" +", suppressed);
}

// "+N" with N > 0, as SuppressedSuffix writes it (no sign but '+', no leading zero).
bool ParseSuppressed(absl::string_view text, uint64_t* out) {
  if (text.size() < 2 || text.size() > 21 || text[0] != '+' || text[1] == '0') return false;
  for (char c : text.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(text.substr(1), out) && *out > 0;
}

std::string OneLine(const std::string& text) {
  return absl::StrReplaceAll(text, {{"\n", " "}, {"\r", " "}});
}

}  // namespace

Ipv6Address TruncateB4(const Ipv6Address& b4, int prefix_length) {
  Ipv6Address out = b4;
  for (int i = 0; i < 16; ++i) {
    const int keep = prefix_length - i * 8;
    if (keep >= 8) continue;
    out.bytes[i] = keep <= 0 ? 0 : static_cast<uint8_t>(out.bytes[i] & (0xff00 >> keep));
  }
  return out;
}

absl::CivilDay LogDay(absl::Time time) {
  return absl::ToCivilDay(time, absl::UTCTimeZone());
}

std::string FormatLogLine(const NatEvent& e, int b4_prefix_length) {
  const std::string time = absl::FormatTime("%H:%M:%S", e.time, absl::UTCTimeZone());
  const std::string b4 = TruncateB4(e.b4, b4_prefix_length).ToString();
  const char* code = EventCode(e.type);
  switch (e.type) {
    case EventType::kSessionCreate:
    case EventType::kSessionDelete:
    case EventType::kMappingCreate:
    case EventType::kMappingDelete:
      return absl::StrFormat("%s %s %s %s %s:%d %s:%d", time, code, ProtoName(e.proto), b4,
                             e.inner_addr.ToString(), e.inner_port, e.public_addr.ToString(),
                             e.public_port);
    case EventType::kPcpMapCreate:
    case EventType::kPcpMapDelete:
      return absl::StrFormat("%s %s %s %s %s:%d %s:%d %s", time, code, ProtoName(e.proto), b4,
                             e.inner_addr.ToString(), e.inner_port, e.public_addr.ToString(),
                             e.public_port, OneLine(e.detail));
    case EventType::kBlockClaimed:
    case EventType::kBlockReleased:
      return absl::StrFormat("%s %s %s %s %d-%d", time, code, b4, e.public_addr.ToString(),
                             e.public_port, e.public_port + e.block_size - 1);
    case EventType::kAddressPortsExhausted:
      // The address, not the flow that hit it: with the flow the line would outgrow the
      // 62 bytes, and what an operator acts on is which address ran out (natEvent 12).
      return absl::StrFormat("%s %s %s %s%s", time, code, b4, e.public_addr.ToString(),
                             SuppressedSuffix(e.suppressed));
    case EventType::kEventsLost:
      return absl::StrFormat("%s %s %d", time, code, e.count);
    case EventType::kConfigReloaded:
    case EventType::kStateFresh:
      return absl::StrFormat("%s %s %s", time, code, OneLine(e.detail));
    default:  // limits: who hit it, with which flow
      return absl::StrFormat("%s %s %s %s %s:%d%s", time, code, ProtoName(e.proto), b4,
                             e.inner_addr.ToString(), e.inner_port, SuppressedSuffix(e.suppressed));
  }
}

absl::Status ParseLogLine(absl::CivilDay day, absl::string_view line, NatEvent* out) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(why, ": \"", line.substr(0, 120), "\""));
  };
  if (line.empty() || line[0] == '#') return bad("not an event line");
  // "HH:MM:SS CODE rest"
  if (line.size() < 11 || line[2] != ':' || line[5] != ':' || line[8] != ' ' ||
      (line.size() > 11 && line[11] != ' ')) {
    return bad("does not start with HH:MM:SS CODE");
  }
  int hms[3];
  for (int i = 0; i < 3; ++i) {
    absl::string_view part = line.substr(i * 3, 2);
    if (part[0] < '0' || part[0] > '9' || part[1] < '0' || part[1] > '9') return bad("bad time");
    hms[i] = (part[0] - '0') * 10 + (part[1] - '0');
  }
  if (hms[0] > 23 || hms[1] > 59 || hms[2] > 60) return bad("bad time");
  NatEvent e;
  if (!EventTypeFromCode(line.substr(9, 2), &e.type)) return bad("unknown event code");
  e.time = absl::FromCivil(absl::CivilSecond(day.year(), day.month(), day.day(), hms[0], hms[1],
                                             hms[2]),
                           absl::UTCTimeZone());
  const absl::string_view rest = line.size() > 12 ? line.substr(12) : absl::string_view();
  switch (e.type) {
    case EventType::kConfigReloaded:
    case EventType::kStateFresh:
      e.detail = std::string(rest);
      *out = e;
      return absl::OkStatus();
    case EventType::kEventsLost:
      if (!absl::SimpleAtoi(rest, &e.count)) return bad("bad count");
      *out = e;
      return absl::OkStatus();
    default:
      break;
  }
  const bool with_detail =
      e.type == EventType::kPcpMapCreate || e.type == EventType::kPcpMapDelete;
  std::vector<absl::string_view> f;
  if (with_detail) {
    f = absl::StrSplit(rest, absl::MaxSplits(' ', 4));
  } else {
    f = absl::StrSplit(rest, ' ');
  }
  auto b4 = [&](absl::string_view text) {
    absl::StatusOr<Ipv6Address> a = ParseIpv6(text);
    if (a.ok()) e.b4 = *a;
    return a.ok();
  };
  switch (e.type) {
    case EventType::kBlockClaimed:
    case EventType::kBlockReleased: {
      if (f.size() != 3 || !b4(f[0])) return bad("expected B4 ADDRESS FIRST-LAST");
      absl::StatusOr<Ipv4Address> pub = ParseIpv4(f[1]);
      std::vector<absl::string_view> range = absl::StrSplit(f[2], '-');
      uint16_t first = 0;
      uint16_t last = 0;
      if (!pub.ok() || range.size() != 2 || !ParsePort(range[0], &first) ||
          !ParsePort(range[1], &last) || last < first) {
        return bad("expected B4 ADDRESS FIRST-LAST");
      }
      // 0-65535 would be 65536 ports, more than block_size holds (it wrapped to 0, and the
      // index stored the block as ending at port -1). No block is written so wide.
      if (last - first + 1 > 0xffff) return bad("port range wider than a block can be");
      e.public_addr = *pub;
      e.public_port = first;
      e.block_size = static_cast<uint16_t>(last - first + 1);
      break;
    }
    case EventType::kAddressPortsExhausted: {
      if ((f.size() != 2 && f.size() != 3) || !b4(f[0])) return bad("expected B4 ADDRESS [+N]");
      absl::StatusOr<Ipv4Address> pub = ParseIpv4(f[1]);
      if (!pub.ok()) return bad("expected B4 ADDRESS [+N]");
      if (f.size() == 3 && !ParseSuppressed(f[2], &e.suppressed)) return bad("bad suppressed count");
      e.public_addr = *pub;
      break;
    }
    case EventType::kSessionCreate:
    case EventType::kSessionDelete:
    case EventType::kMappingCreate:
    case EventType::kMappingDelete:
    case EventType::kPcpMapCreate:
    case EventType::kPcpMapDelete:
      if (f.size() != (with_detail ? 5u : 4u) || !ParseProto(f[0], &e.proto) || !b4(f[1]) ||
          !ParseEndpoint(f[2], &e.inner_addr, &e.inner_port) ||
          !ParseEndpoint(f[3], &e.public_addr, &e.public_port)) {
        return bad("expected PROTO B4 INNER:PORT PUBLIC:PORT");
      }
      if (with_detail) e.detail = std::string(f[4]);
      break;
    default:  // limits
      if ((f.size() != 3 && f.size() != 4) || !ParseProto(f[0], &e.proto) || !b4(f[1]) ||
          !ParseEndpoint(f[2], &e.inner_addr, &e.inner_port)) {
        return bad("expected PROTO B4 INNER:PORT [+N]");
      }
      if (f.size() == 4 && !ParseSuppressed(f[3], &e.suppressed)) return bad("bad suppressed count");
      break;
  }
  *out = e;
  return absl::OkStatus();
}

}  // namespace aftr::events
