// Expires sessions on their RFC timeouts (TCP state-aware), retires subscribers that stayed
// without sessions past the hold-down and returns their port blocks to the pool, keeps the
// pool hint fresh, and reports data-plane event losses. Every removal is logged.
//
// Its memory (idle timers) is lost on a restart; nothing depends on it for correctness:
// every removal is one aftr_ctl op that a killed daemon cannot leave half done, and a
// subscriber RETIRED by a previous process is finished by the next (its remaining blocks
// released slot by slot, each slot and bit together, so none is freed twice). A restart
// only restarts the hold-down of idle subscribers. Static mappings are never expired.
#ifndef AFTR_CONTROL_NAT_SESSION_SWEEPER_H_
#define AFTR_CONTROL_NAT_SESSION_SWEEPER_H_

#include <array>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "aftr/abi.h"
#include "aftr/config/v1/config.pb.h"
#include "control/bpf/datapath.h"
#include "control/events/event_sink.h"

namespace aftr::nat {

// Idle timeout of a session, from what the data plane saw of it (RFC 4787 REQ-5,
// RFC 5382 REQ-5, RFC 5508 REQ-1; TCP state from the flags seen in each direction).
uint64_t SessionTimeoutNs(const aftr::config::v1::Timeouts& timeouts, uint8_t proto,
                          uint8_t out_tcp_flags, uint8_t in_tcp_flags);

struct SweepResult {
  uint64_t sessions = 0;  // live after the sweep
  uint64_t expired = 0;
  uint64_t strays = 0;    // deleted because their port is outside their subscriber's blocks
  uint64_t subscribers = 0;
  uint64_t retired = 0;
  uint64_t blocks_released = 0;
  uint64_t events_lost = 0;  // newly counted by the data plane since the last sweep
};

class SessionSweeper {
 public:
  // Timeouts and hold-down follow datapath->config(), so a Reprogram changes them too.
  SessionSweeper(bpf::Datapath* datapath, events::EventSink* sink);

  // One pass at data-plane time `now_ns` (CLOCK_MONOTONIC_COARSE).
  absl::StatusOr<SweepResult> SweepOnce(uint64_t now_ns);

 private:
  using B4 = std::array<uint8_t, 16>;
  absl::Status ExpireSessions(uint64_t now_ns, SweepResult* result);
  absl::Status RetireIdleSubscribers(uint64_t now_ns, SweepResult* result);
  absl::Status UpdatePoolHint();
  void ReportLostEvents(SweepResult* result);

  bpf::Datapath* datapath_;
  events::EventSink* sink_;
  absl::flat_hash_map<B4, uint64_t> idle_since_ns_;
  uint64_t events_lost_seen_ = 0;
  bool first_sweep_ = true;
};

}  // namespace aftr::nat

#endif  // AFTR_CONTROL_NAT_SESSION_SWEEPER_H_
