#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/events/nat_event.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/strings/str_replace.h"
#include "control/common/clock.h"

namespace aftr::events {

NatEvent SessionEvent(EventType type, const SessionKey& key, Ipv4Address public_addr,
                      uint16_t public_port) {
  NatEvent e;
  e.type = type;
  e.time = absl::Now();
  e.b4 = key.b4;
  e.proto = key.proto;
  e.inner_addr = key.inner_addr;
  e.inner_port = key.inner_port;
  e.public_addr = public_addr;
  e.public_port = public_port;
  return e;
}

NatEvent BlockEvent(EventType type, const Ipv6Address& b4, Ipv4Address public_addr,
                    uint16_t first_port, uint16_t block_size) {
  NatEvent e;
  e.type = type;
  e.time = absl::Now();
  e.b4 = b4;
  e.public_addr = public_addr;
  e.public_port = first_port;
  e.block_size = block_size;
  return e;
}

bool DecodeEvent(const aftr_event& r, NatEvent* out) {
  if (r.type < AFTR_EV_SESSION_CREATE || r.type > AFTR_EV_SUBSCRIBER_TABLE_FULL) return false;
  NatEvent e;
  e.type = static_cast<EventType>(r.type);
  e.time = MonotonicToWall(r.ts_ns);
  std::memcpy(e.b4.bytes.data(), r.b4, 16);
  e.proto = r.proto;
  e.inner_addr.host_order = ntohl(r.inner_addr);
  e.inner_port = ntohs(r.inner_port);
  e.public_addr.host_order = ntohl(r.public_addr);
  e.public_port = ntohs(r.public_port);
  e.block_size = r.block_size;
  *out = e;
  return true;
}

const char* EventCode(EventType type) {
  switch (type) {
    case EventType::kSessionCreate: return "SC";
    case EventType::kSessionDelete: return "SD";
    case EventType::kBlockClaimed: return "BA";
    case EventType::kBlockReleased: return "BR";
    case EventType::kPortsExhausted: return "PX";
    case EventType::kAddressExhausted: return "AX";
    case EventType::kSessionLimit: return "SL";
    case EventType::kSessionTableFull: return "TF";
    case EventType::kSubscriberTableFull: return "UF";
    case EventType::kEventsLost: return "EL";
    case EventType::kMappingCreate: return "MC";
    case EventType::kMappingDelete: return "MD";
    case EventType::kConfigReloaded: return "CR";
    case EventType::kPcpMapCreate: return "PC";
    case EventType::kPcpMapDelete: return "PD";
  }
  return "??";
}

namespace {
std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
  }
  return absl::StrFormat("p%d", proto);
}
}  // namespace

std::string FormatLogLine(const NatEvent& e) {
  std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", e.time, absl::UTCTimeZone());
  const char* code = EventCode(e.type);
  switch (e.type) {
    case EventType::kSessionCreate:
    case EventType::kSessionDelete:
    case EventType::kMappingCreate:
    case EventType::kMappingDelete:
      return absl::StrFormat("%s %s %s %s %s:%d %s:%d", time, code, ProtoName(e.proto),
                             e.b4.ToString(), e.inner_addr.ToString(), e.inner_port,
                             e.public_addr.ToString(), e.public_port);
    case EventType::kPcpMapCreate:
    case EventType::kPcpMapDelete:
      return absl::StrFormat("%s %s %s %s %s:%d %s:%d %s", time, code, ProtoName(e.proto),
                             e.b4.ToString(), e.inner_addr.ToString(), e.inner_port,
                             e.public_addr.ToString(), e.public_port,
                             absl::StrReplaceAll(e.detail, {{"\n", " "}, {"\r", " "}}));
    case EventType::kBlockClaimed:
    case EventType::kBlockReleased:
      return absl::StrFormat("%s %s %s %s %d-%d", time, code, e.b4.ToString(),
                             e.public_addr.ToString(), e.public_port,
                             e.public_port + e.block_size - 1);
    case EventType::kEventsLost:
      return absl::StrFormat("%s %s %d", time, code, e.count);
    case EventType::kConfigReloaded:
      // One line: newlines in the detail would forge log lines.
      return absl::StrFormat("%s %s %s", time, code,
                             absl::StrReplaceAll(e.detail, {{"\n", " "}, {"\r", " "}}));
    default:  // limits: who hit it, with which flow
      return absl::StrFormat("%s %s %s %s %s:%d", time, code, ProtoName(e.proto),
                             e.b4.ToString(), e.inner_addr.ToString(), e.inner_port);
  }
}

}  // namespace aftr::events
