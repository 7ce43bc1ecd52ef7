// A read model of the NAT state for the API: subscribers, their port blocks and sessions,
// read from the (pinned) maps and returned as plain C++ records, so abi.h types stop here.
#ifndef AFTR_CONTROL_BPF_NAT_STATE_H_
#define AFTR_CONTROL_BPF_NAT_STATE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/bpf/datapath.h"
#include "control/common/ip.h"
#include "control/bpf/session_keys.h"
#include "control/common/session_key.h"

namespace aftr::bpf {

// Who ends a session: idleness (dynamic), the operator (static), a PCP lifetime (pcp).
enum class SessionKind { kDynamic, kStatic, kPcp };

struct SessionRecord {
  SessionKey key;
  Ipv4Address public_addr;
  uint16_t public_port = 0;
  SessionKind kind = SessionKind::kDynamic;
  uint8_t out_tcp_flags = 0;  // TCP flags seen from the subscriber (for SessionTimeoutNs)
  uint8_t in_tcp_flags = 0;   // ... and from the Internet
  TcpState tcp_state = TcpState::kNotTcp;
  uint64_t last_seen_ns = 0;  // both directions, CLOCK_MONOTONIC_COARSE
};

struct SubscriberRecord {
  Ipv6Address b4;
  bool retiring = false;
  uint32_t sessions = 0;
  Ipv4Address public_addr;
  std::vector<uint16_t> block_first_ports;  // in slot order
  uint64_t created_ns = 0;  // CLOCK_MONOTONIC_COARSE
};

// Block geometry needed to turn block indexes into ports.
struct PortGeometry {
  uint32_t port_min = 0;
  uint32_t block_size = 0;
};

class NatState {
 public:
  NatState(const MapFds& fds, PortGeometry geometry) : fds_(fds), geometry_(geometry) {}

  absl::StatusOr<std::vector<SubscriberRecord>> Subscribers() const;
  absl::StatusOr<std::optional<SubscriberRecord>> Subscriber(const Ipv6Address& b4) const;

  // Every session for which `keep` is true (all when null), in no particular order.
  absl::StatusOr<std::vector<SessionRecord>> Sessions(
      const std::function<bool(const SessionRecord&)>& keep) const;
  // One session, both directions read; nullopt if it is gone.
  absl::StatusOr<std::optional<SessionRecord>> Session(const SessionKey& key) const;
  uint64_t CountSessions() const;

 private:
  const MapFds fds_;
  const PortGeometry geometry_;
};

}  // namespace aftr::bpf

#endif  // AFTR_CONTROL_BPF_NAT_STATE_H_
