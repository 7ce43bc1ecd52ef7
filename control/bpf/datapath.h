// Loads the XDP data plane (embedded skeleton) on maps pinned under bpffs, seeds them from
// the configuration and puts aftr_xdp on the configured interfaces in native mode. The
// program and the maps outlive the daemon: a new aftrd (or a new build of the program)
// adopts the pins and replaces the attached program atomically, so a restart or an upgrade
// loses no packet, session or port block. `aftrd --detach` is what removes it.
#ifndef AFTR_CONTROL_BPF_DATAPATH_H_
#define AFTR_CONTROL_BPF_DATAPATH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aftr/abi.h"
#include "aftr/config/v1/config.pb.h"
#include "control/common/ip.h"

struct aftr_bpf;  // the generated skeleton

namespace aftr::bpf {

// File descriptors of every pinned map. Owned by whoever made them.
struct MapFds {
  int counters = -1;
  int b4_prefixes = -1;
  int pool_addrs = -1;
  int pool_meta = -1;
  int pool_hint = -1;
  int subscribers = -1;
  int sessions_out = -1;
  int sessions_in = -1;
  int filter_peers = -1;
  int events = -1;
  int pcp_filters = -1;
  int pcp_mappings = -1;
  int pcp_state = -1;
  int slow_path = -1;  // the fragment slow path's ring (control/slowpath)
};

using Counters = std::array<uint64_t, AFTR_COUNTER_MAX>;

// Counter rows, index = enum aftr_direction.
inline constexpr int kDirections = AFTR_DIR_MAX;
inline constexpr int kDirFromB4 = AFTR_DIR_FROM_B4;              // arriving as IPv6 (softwire)
inline constexpr int kDirFromInternet = AFTR_DIR_FROM_INTERNET;  // arriving as IPv4
inline constexpr int kDirOther = AFTR_DIR_OTHER;                 // neither / unparseable

// Names of the counters, index = enum aftr_counter (from AFTR_COUNTER_LIST), and of the
// directions ("from_b4", "from_internet", "other"; from AFTR_DIRECTION_LIST).
extern const char* const kCounterNames[AFTR_COUNTER_MAX];
extern const char* const kDirectionNames[kDirections];

// Every counter once per direction, summed over the CPUs.
struct CounterSnapshot {
  std::array<Counters, kDirections> by_direction = {};
  Counters Total() const;
};

absl::StatusOr<CounterSnapshot> ReadCounters(int counters_fd);

// The public addresses of the configured pool prefixes, in configuration order (host order).
std::vector<uint32_t> ExpandPool(const aftr::config::v1::Config& config);

// What the data plane's rodata holds for this configuration alone (the pool fields as if the
// pool were exactly pool_prefixes; Datapath lays them out from the pinned pool instead).
aftr_dp_config MakeDpConfig(const aftr::config::v1::Config& config);

// Makes sure `pin_path` is a directory on a bpffs, mounting one on its parent if needed
// (`ip netns exec` gives a fresh /sys without bpffs).
absl::Status EnsureBpffs(const std::string& pin_path);

// One public address of the pool as the data plane holds it.
struct PoolAddressState {
  Ipv4Address addr;
  Ipv4Prefix prefix;  // the pool prefix it belongs to
  bool draining = false;  // its prefix left pool_prefixes: no new subscriber or block here
  uint32_t blocks_used = 0;
  uint32_t blocks_total = 0;
};

// Opens the maps pinned by a running (or previous) aftrd, for read-only inspection.
class PinnedMaps {
 public:
  static absl::StatusOr<std::unique_ptr<PinnedMaps>> Open(const std::string& pin_path);
  ~PinnedMaps();
  const MapFds& fds() const { return fds_; }

 private:
  PinnedMaps() = default;
  MapFds fds_;
};

// `aftrd --detach`: removes aftr_xdp from the configured interfaces (and from any other
// interface where it runs on the maps pinned under pin_path), only where the attached
// program is ours; leaves foreign programs alone. With `purge`, also removes the pinned
// maps, i.e. every session and port block. FailedPrecondition while an aftrd runs on them.
absl::Status DetachDataPlane(const aftr::config::v1::Config& config, bool purge);

// The data plane as one aftrd process sees it.
//
// Threads: the sweeper and API threads may call every const method while another thread
// runs Reprogram. What that needs:
//   - fds() are this object's own descriptors of the pinned maps, opened once in Create.
//     Every skeleton loaded later (Reprogram) reuses the same pinned maps, which Install
//     checks by map id, so the descriptors stay valid and current for the object's life.
//   - config() returns a reference that stays valid for the object's life: each
//     Reprogram keeps the configurations before it (small; reloads are rare), so a reader
//     never sees its Config change or vanish under it.
//   - mu_ guards the current skeleton (whose aftr_ctl Ctl runs), the configurations and
//     the pool layout; Ctl holds it for its run, which also serialises aftrd's aftr_ctl
//     runs (each op's race analysis assumes only XDP runs beside it).
//   - install_mu_ serialises Reprogram; it is never held by readers, so the slow part of
//     a reprogram (loading and verifying a program, about a second) blocks nobody.
class Datapath {
 public:
  // Loads a program on the pinned maps (pins left by a previous aftrd are adopted: its
  // sessions, blocks, counters and undrained events), lays out the pool, seeds the B4
  // prefixes, and on each configured interface replaces our attached aftr_xdp atomically
  // (XDP_FLAGS_REPLACE) or attaches it. A foreign XDP program on a configured interface is
  // FailedPrecondition naming both; a pinned state that cannot serve this configuration
  // (table sizes, port geometry, another ABI) is FailedPrecondition naming the field.
  // Also removes our program from interfaces no longer configured.
  static absl::StatusOr<std::unique_ptr<Datapath>> Create(
      const aftr::config::v1::Config& config);
  // Leaves XDP attached and the maps pinned: packets keep flowing without a daemon.
  ~Datapath();

  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  const MapFds& fds() const { return fds_; }
  // True when the maps were pinned before this process started (state adopted).
  bool adopted() const { return adopted_; }
  // The configuration running now (see the class comment on lifetime).
  const aftr::config::v1::Config& config() const ABSL_LOCKS_EXCLUDED(mu_);

  // Applies a new (validated) configuration without a packet lost: a fresh program with
  // the new rodata on the same pinned maps replaces the running one on every interface
  // (attached to added interfaces, removed from dropped ones), then B4 prefixes and pool
  // follow. Fields that size, place or lay out the pinned maps cannot change:
  // FailedPrecondition naming each (pin_path, tables.max_sessions, tables.max_subscribers,
  // tables.max_pool_addresses, port_blocks.port_min/port_max/block_size,
  // event_ring_bytes). On any error the running configuration stays in force.
  absl::Status Reprogram(const aftr::config::v1::Config& new_config) ABSL_LOCKS_EXCLUDED(install_mu_);

  // Every address of the pool prefixes (configured and draining), in pool-index order.
  absl::StatusOr<std::vector<PoolAddressState>> ReadPool() const ABSL_LOCKS_EXCLUDED(mu_);
  // Entries of aftr_pool_addrs in use (indexes 0..pool_size()-1), draining ones included.
  uint32_t pool_size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Runs aftr_ctl for an update that races with the data plane; returns its result.
  absl::StatusOr<int> Ctl(const aftr_ctl_args& args) const ABSL_LOCKS_EXCLUDED(mu_);

  // The fragment slow path: runs the attached aftr_xdp on `frame` (from its Ethernet header)
  // as if it had arrived on `ingress_ifindex`, marked as a slow-path run (aftr_slow_meta in
  // the XDP metadata), with BPF_PROG_TEST_RUN (not live: nothing is sent). The program
  // translates it on the live maps and reports the egress interface and MTU.
  struct SlowRun {
    int verdict = -1;               // XDP_*
    aftr_slow_meta meta{};          // egress_ifindex and mtu, set when it was sent somewhere
    std::vector<uint8_t> frame;     // the frame as the program left it
  };
  // BPF_PROG_TEST_RUN keeps one page linear (headroom and metadata taken off); a larger frame
  // would reach the program cut short. Longer frames are refused (OutOfRange).
  static constexpr size_t kMaxSlowRunFrame = 3500;
  absl::StatusOr<SlowRun> RunSlowPath(std::span<const uint8_t> frame, int ingress_ifindex) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Returns once every XDP program run that had started before the call has ended (an RCU
  // grace period, obtained by updating a map-in-map: the kernel documents that userspace
  // then knows that all non-sleepable programs see the new value). Used to close the
  // window between a map change and a data-plane reader that read the old value.
  absl::Status WaitForDataPlane() const;

 private:
  Datapath() = default;
  // Load a program for `config` on the pinned maps, lay out the pool, seed the B4
  // prefixes and attach; `previous` is the configuration to restore on failure (null at
  // Create).
  absl::Status Install(const aftr::config::v1::Config& config,
                       const aftr::config::v1::Config* previous)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_);

  MapFds fds_;
  bool adopted_ = false;
  int lock_fd_ = -1;         // flock on the pin directory: one aftrd per pinned state
  int barrier_outer_fd_ = -1;  // WaitForDataPlane's map-in-map and its inner map
  int barrier_inner_fd_ = -1;
  uint32_t our_map_id_ = 0;  // id of aftr_counters: tells our programs from others'

  absl::Mutex install_mu_;
  mutable absl::Mutex mu_;
  ::aftr_bpf* skel_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::unique_ptr<const aftr::config::v1::Config>> configs_ ABSL_GUARDED_BY(mu_);
  uint32_t pool_entries_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<aftr_pool_prefix> pool_prefixes_ ABSL_GUARDED_BY(mu_);  // active, then draining
};

}  // namespace aftr::bpf

#endif  // AFTR_CONTROL_BPF_DATAPATH_H_
