// Operators' static mappings (port forwards): a session pair flagged AFTR_SESSION_STATIC in
// the pinned session maps. The data plane translates it like any session, lets any peer
// reach it inbound (whatever the filtering), and the sweeper never expires it; it counts as
// a session of its subscriber, so the subscriber and its blocks stay while it exists. Living
// in the pinned maps, it survives restarts and upgrades.
//
// Made by the forward-session engine (forward_sessions.h), which the PCP server shares.
#ifndef AFTR_CONTROL_NAT_STATIC_MAPPINGS_H_
#define AFTR_CONTROL_NAT_STATIC_MAPPINGS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "control/bpf/datapath.h"
#include "control/common/ip.h"
#include "control/common/session_key.h"
#include "control/events/event_sink.h"

namespace aftr::nat {

// The subscriber side of a mapping: who (B4) and which inner host and port; the protocol
// is IPPROTO_TCP or IPPROTO_UDP.
using MappingKey = SessionKey;

struct StaticMapping {
  MappingKey key;
  Ipv4Address public_addr;
  uint16_t public_port = 0;
  friend bool operator==(const StaticMapping&, const StaticMapping&) = default;
};

// Creates the static mapping of `key`.
// - The subscriber is created if needed, claiming its first block as the data plane would
//   (same address probe order: B4 hash, then the pool hint), with a BA event; a new block
//   the mapping needs is claimed under the subscriber's quota, also with BA.
// - `public_port`, if given, must lie in one of the subscriber's blocks, or in a free block
//   on its address that it may still claim under its quota (for a new subscriber: the first
//   address in probe order where that block is free); otherwise FailedPrecondition saying
//   why, and AlreadyExists if another session holds that port. Without it, any free port in
//   the subscriber's blocks (a new block when they are full).
// - AlreadyExists if `key` already has a static mapping; a dynamic session of `key` is
//   converted in place (no event) when it is on `public_port` or none was asked for, and
//   otherwise deleted (SD) and made again on the asked port.
// - A new session is logged SC, like any session, so its SD has a partner.
// InvalidArgument for a protocol other than TCP/UDP or port 0; FailedPrecondition for a B4
// outside b4_prefixes or a draining address; Unavailable while the subscriber is being
// retired (retry after the next sweep); ResourceExhausted at the subscriber's limits.
absl::StatusOr<StaticMapping> CreateStaticMapping(bpf::Datapath& datapath, events::EventSink* sink,
                                                  const MappingKey& key,
                                                  std::optional<uint16_t> public_port);

// Deletes the static mapping of `key` with its SD event. NotFound if `key` has none (a
// dynamic session of `key` is not touched).
absl::Status DeleteStaticMapping(bpf::Datapath& datapath, events::EventSink* sink,
                                 const MappingKey& key);

// Every static mapping, in no particular order.
absl::StatusOr<std::vector<StaticMapping>> ListStaticMappings(const bpf::Datapath& datapath);

}  // namespace aftr::nat

#endif  // AFTR_CONTROL_NAT_STATIC_MAPPINGS_H_
