// Harness: loads the production XDP object (skeleton `aftr_bpf`) with fresh, unpinned, small
// maps, seeds them as aftrd does, and runs aftr_xdp / aftr_ctl with BPF_PROG_TEST_RUN
// inside a private network namespace whose routes and neighbours make bpf_fib_lookup work.
#ifndef AFTR_TESTS_BPF_HARNESS_H_
#define AFTR_TESTS_BPF_HARNESS_H_

#include <linux/bpf.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aftr/abi.h"
#include "packet_builder.h"

struct aftr_bpf;     // the generated skeleton (aftr_bpf.skel.h), only harness.cc sees it
struct ring_buffer;  // libbpf

namespace bpftest {

// The network namespace every test process runs in (created on first use): two veth ends,
// one toward the B4s (route 2001:db8:100::/40) and one toward the Internet (route
// 203.0.113.0/25 with a resolved gateway, 203.0.113.128/25 with an unresolved one).
struct TestNet {
  int b4_ifindex = 0;
  int inet_ifindex = 0;
  Mac b4_local_mac{}, b4_gateway_mac{};      // our end / the B4-side router
  Mac inet_local_mac{}, inet_gateway_mac{};  // our end / the Internet-side router
};
const TestNet& Net();

// The default test configuration: softwire 2001:db8:ffff::1, pool 198.51.100.0/30 (four
// addresses), ports 1024-65535 in blocks of 64 (1008 per address), 2 blocks and 1000
// sessions per subscriber, hop limit 64, MSS clamp 1420, endpoint-independent filtering,
// next-hop cache off (fib_cache_ticks 0: every packet is looked up; fib_cache_test turns it on).
aftr_dp_config DefaultConfig();
// The same with another port range: blocks_per_addr = (port_max - port_min + 1) / block.
aftr_dp_config ConfigWithPorts(uint16_t port_min, uint16_t port_max, uint16_t block_size,
                               uint32_t max_blocks_per_sub);

// Appends a deterministic range to `cfg` as aftrd encodes it (control/bpf/datapath.cc
// AddDeterministicRanges): B4 prefix, subscriber prefix length, public prefix (`pool_addr`
// in network order) and ports per subscriber (a multiple of cfg's block size). Its pool
// prefix joins pool_prefix_addr/mask after the pool's.
void AddDeterministicRange(aftr_dp_config* cfg, const Ip6& b4_prefix, int b4_len, int sub_len,
                           uint32_t pool_addr, int pool_len, uint32_t ports_per_sub);

// Map capacities; small so that tests load fast and can fill them.
struct MapSizes {
  uint32_t sessions_out = 4096;
  uint32_t sessions_in = 4096;
  uint32_t subscribers = 1024;
  uint32_t filter_peers = 4096;
  uint32_t pool_addrs = 0;  // 0: exactly the configured pool
};

using CounterValues = std::array<uint64_t, AFTR_COUNTER_MAX>;

struct RunResult {
  int verdict = -1;  // XDP_* returned by the program
  Bytes out;         // the frame as the program left it (also for XDP_DROP / XDP_PASS)
};

class Harness {
 public:
  explicit Harness(const aftr_dp_config& cfg = DefaultConfig(), const MapSizes& sizes = {});
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Runs aftr_xdp once. Run() picks the ingress interface the way the frame would arrive:
  // IPv6 on the B4 side, anything else on the Internet side. `meta_len` bytes at the start
  // of `frame` are XDP metadata, not packet (lets a test hand over a frame shorter than the
  // 14 bytes BPF_PROG_TEST_RUN insists on).
  RunResult Run(const Bytes& frame);
  RunResult RunOn(int ingress_ifindex, const Bytes& frame, uint32_t meta_len = 0);

  // aftr_ctl through BPF_PROG_TEST_RUN; returns the program's return value.
  int Ctl(const aftr_ctl_args& args) const;

  // Counters summed over CPUs, per direction (index enum aftr_direction) and in all.
  std::array<CounterValues, AFTR_DIR_MAX> CountersByDirection() const;
  CounterValues Counters() const;
  uint64_t Counter(aftr_counter c) const { return Counters()[c]; }
  // Every non-zero counter as "name=value" in AFTR_COUNTER_LIST order, space separated:
  // comparing it asserts that nothing else moved.
  std::string CounterString() const;

  // Events submitted since the last call, in ring order.
  std::vector<aftr_event> DrainEvents();

  // Records queued to the fragment slow path (aftr_slow_path) since the last call.
  struct SlowRecord {
    aftr_slow_record hdr{};
    Bytes frame;
  };
  std::vector<SlowRecord> DrainSlowPath();

  std::optional<aftr_subscriber> Subscriber(const Ip6& b4) const;
  std::optional<aftr_session_out> SessionOut(const aftr_session_out_key& key) const;
  std::optional<aftr_session_in> SessionIn(const aftr_session_in_key& key) const;
  std::vector<std::pair<aftr_session_out_key, aftr_session_out>> SessionsOut() const;
  std::vector<std::pair<aftr_session_in_key, aftr_session_in>> SessionsIn() const;
  size_t SubscriberCount() const;
  size_t FilterPeerCount() const;
  std::vector<aftr_filter_key> FilterPeers() const;
  // aftr_b4_mtu: the tunnel MTU learned toward each B4 (from ICMPv6 Packet Too Big).
  std::vector<std::pair<Ip6, aftr_b4_mtu>> B4Mtus() const;
  void SetB4Mtu(const Ip6& b4, const aftr_b4_mtu& value);
  aftr_pool_addr PoolAddr(uint32_t index) const;
  void SetPoolAddr(uint32_t index, const aftr_pool_addr& value);
  void SetPoolHint(const aftr_pool_hint& hint);

  const aftr_dp_config& config() const { return cfg_; }
  // Public pool addresses as seeded (index = aftr_pool_addrs index).
  const std::vector<uint32_t>& pool() const { return pool_; }

 private:
  static int OnEvent(void* ctx, void* data, size_t size);
  static int OnSlowRecord(void* ctx, void* data, size_t size);
  int MapFd(const char* name) const;

  aftr_dp_config cfg_;
  std::vector<uint32_t> pool_;
  ::aftr_bpf* skel_ = nullptr;
  ::ring_buffer* ring_ = nullptr;
  std::vector<aftr_event> pending_events_;
  ::ring_buffer* slow_ring_ = nullptr;
  std::vector<SlowRecord> pending_slow_;
};

// Name of a counter as AFTR_COUNTER_LIST spells it.
const char* CounterName(aftr_counter c);
// The counters that changed, as "name=delta" in list order, space separated.
std::string CounterDiff(const CounterValues& before, const CounterValues& after);

}  // namespace bpftest

#endif  // AFTR_TESTS_BPF_HARNESS_H_
