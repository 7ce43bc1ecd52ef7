// Fixture for tests of the daemon's own data-plane modules (Datapath, static mappings,
// block release, the sweeper) on the production object: each test process lives in a
// private network namespace (the bpf harness's, with routes for bpf_fib_lookup) and a
// private mount namespace with its own bpffs, so pins and attachments vanish with it.
#ifndef AFTR_TESTS_BPF_DATAPATH_DP_FIXTURE_H_
#define AFTR_TESTS_BPF_DATAPATH_DP_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aftr/config/v1/config.pb.h"
#include "control/bpf/datapath.h"
#include "control/events/event_sink.h"
#include "packet_builder.h"

namespace dptest {

using aftr::config::v1::Config;

// A fresh pin directory (on this process's private bpffs) for one test; also detaches
// whatever XDP program an earlier test left on the veths.
std::string FreshPinPath();

// The test configuration: interfaces = the harness veths, softwire 2001:db8:ffff::1, B4s
// 2001:db8:100::/40, pool 198.51.100.0/30, ports 1024-2047 in blocks of 64 (16 per
// address), 2 blocks and 8 sessions per subscriber, small tables, pins under `pin_path`.
// `extra` is textproto appended (later fields of a repeated list add to it; use
// WithPools to replace the pool).
Config TestConfig(const std::string& pin_path, const std::string& extra = "");
Config WithPools(Config c, const std::vector<std::string>& prefixes);

// Records every event published.
class RecordingSink : public aftr::events::EventSink {
 public:
  using EventSink::Publish;
  absl::Status Publish(const std::vector<aftr::events::NatEvent>& events) override {
    for (const auto& e : events) events_.push_back(e);
    return absl::OkStatus();
  }
  std::vector<aftr::events::NatEvent> Take() { return std::exchange(events_, {}); }
  // Two-letter codes of the events so far, space separated ("BA SC").
  std::string Codes() const;

 private:
  std::vector<aftr::events::NatEvent> events_;
};

// The XDP program attached (native mode) to interface `ifindex`: id 0 when none.
uint32_t AttachedProgId(int ifindex);
std::string AttachedProgName(int ifindex);

// Runs the program attached to the B4-side veth on `frame` (as if it arrived on
// `ingress_ifindex`); returns the XDP verdict.
int RunAttached(const bpftest::Bytes& frame, int ingress_ifindex);

// Sends one UDP datagram from B4 `b4` (inner 192.0.2.10:inner_port) through the attached
// program, creating its session; returns the verdict.
int SendFromB4(const bpftest::Ip6& b4, uint16_t inner_port);

}  // namespace dptest

#endif  // AFTR_TESTS_BPF_DATAPATH_DP_FIXTURE_H_
