#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/events/nat_event.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
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
  if (r.type < AFTR_EV_SESSION_CREATE || r.type > AFTR_EV_ADDRESS_PORTS_EXHAUSTED) return false;
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

bool IsLimitEvent(EventType type) {
  switch (type) {
    case EventType::kPortsExhausted:
    case EventType::kAddressPortsExhausted:
    case EventType::kAddressExhausted:
    case EventType::kSessionLimit:
    case EventType::kSessionTableFull:
    case EventType::kSubscriberTableFull:
      return true;
    default:
      return false;
  }
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
    case EventType::kAddressPortsExhausted: return "AP";
    case EventType::kEventsLost: return "EL";
    case EventType::kMappingCreate: return "MC";
    case EventType::kMappingDelete: return "MD";
    case EventType::kConfigReloaded: return "CR";
    case EventType::kPcpMapCreate: return "PC";
    case EventType::kPcpMapDelete: return "PD";
    case EventType::kStateFresh: return "FS";
  }
  return "??";
}

bool EventTypeFromCode(absl::string_view code, EventType* out) {
  static constexpr EventType kAll[] = {
      EventType::kSessionCreate, EventType::kSessionDelete,     EventType::kBlockClaimed,
      EventType::kBlockReleased, EventType::kPortsExhausted,    EventType::kAddressExhausted,
      EventType::kSessionLimit,  EventType::kSessionTableFull,  EventType::kSubscriberTableFull,
      EventType::kEventsLost,    EventType::kMappingCreate,     EventType::kMappingDelete,
      EventType::kConfigReloaded, EventType::kPcpMapCreate,     EventType::kPcpMapDelete,
      EventType::kStateFresh,    EventType::kAddressPortsExhausted};
  for (EventType t : kAll) {
    if (code == EventCode(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

}  // namespace aftr::events
