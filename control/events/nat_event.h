// NAT events as the controller sees them (decoded from the data plane's ring-buffer records
// or made by the controller itself), and their compact log line.
#ifndef AFTR_CONTROL_EVENTS_NAT_EVENT_H_
#define AFTR_CONTROL_EVENTS_NAT_EVENT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "aftr/abi.h"
#include "control/common/ip.h"
#include "control/common/session_key.h"

namespace aftr::events {

enum class EventType : uint8_t {
  kSessionCreate = AFTR_EV_SESSION_CREATE,
  kSessionDelete = AFTR_EV_SESSION_DELETE,
  kBlockClaimed = AFTR_EV_BLOCK_CLAIMED,
  kBlockReleased = AFTR_EV_BLOCK_RELEASED,
  kPortsExhausted = AFTR_EV_PORTS_EXHAUSTED,
  kAddressExhausted = AFTR_EV_ADDRESS_EXHAUSTED,
  kSessionLimit = AFTR_EV_SESSION_LIMIT,
  kSessionTableFull = AFTR_EV_SESSION_TABLE_FULL,
  kSubscriberTableFull = AFTR_EV_SUBSCRIBER_TABLE_FULL,
  // A subscriber's own public address (`public_addr`) has no block left for it.
  kAddressPortsExhausted = AFTR_EV_ADDRESS_PORTS_EXHAUSTED,
  kEventsLost = 100,  // controller only: `count` events could not be recorded
  kMappingCreate = 101,   // controller only: an operator's static mapping
  kMappingDelete = 102,
  kConfigReloaded = 103,  // controller only: `detail` says what changed
  kPcpMapCreate = 104,    // controller only: a PCP MAP mapping; `detail` "lifetime=<s>"
  kPcpMapDelete = 105,    // `detail`: why it ended (deleted, expired, operator)
  kStateFresh = 106,      // controller only: the data plane started with no earlier state, so
                          // every block and mapping logged before has ended by `time`
};

struct NatEvent {
  EventType type = EventType::kSessionCreate;
  absl::Time time;
  Ipv6Address b4;
  uint8_t proto = 0;  // IPPROTO_TCP/UDP/ICMP
  Ipv4Address inner_addr;
  uint16_t inner_port = 0;
  Ipv4Address public_addr;
  uint16_t public_port = 0;  // block events: first port of the block
  uint16_t block_size = 0;   // block events
  uint64_t count = 0;        // kEventsLost
  // Limit events (PX AP AX SL TF UF): how many more of this limit and B4 (or of this limit,
  // for the table-wide ones) were suppressed since the previous one written
  // (LimitEventFilter); 0 when none were.
  uint64_t suppressed = 0;
  std::string detail;        // kConfigReloaded
};

// An event about one session (create, delete, static mapping) stamped now.
NatEvent SessionEvent(EventType type, const SessionKey& key, Ipv4Address public_addr,
                      uint16_t public_port);
// An event about one port block (claimed, released) stamped now.
NatEvent BlockEvent(EventType type, const Ipv6Address& b4, Ipv4Address public_addr,
                    uint16_t first_port, uint16_t block_size);

// Decodes a ring-buffer record; `time` from its monotonic stamp. False if the type is unknown.
bool DecodeEvent(const aftr_event& record, NatEvent* out);

// Whether `type` is a limit or exhaustion event (PX AP AX SL TF UF): one per dropped packet,
// so the daemon rate-limits them before the log and IPFIX.
bool IsLimitEvent(EventType type);

// The two-letter code of each event type in the log ("SC", "BA", ...).
const char* EventCode(EventType type);
// The event type of a code; false if unknown.
bool EventTypeFromCode(absl::string_view code, EventType* out);


}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_NAT_EVENT_H_
