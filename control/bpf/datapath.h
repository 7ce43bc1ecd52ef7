// Loads the XDP data plane (embedded skeleton), pins its maps under bpffs so a restart adopts
// every session and port block, seeds the maps from the configuration, and attaches
// aftr_xdp to the configured interfaces in native mode.
#ifndef AFTR_CONTROL_BPF_DATAPATH_H_
#define AFTR_CONTROL_BPF_DATAPATH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aftr/config/v1/config.pb.h"
#include "aftr/abi.h"

struct aftr_bpf;  // the generated skeleton

namespace aftr::bpf {

// File descriptors of every map (and of the aftr_ctl program), from a loaded skeleton or
// from the pins. Owned by whoever made them.
struct MapFds {
  int counters = -1;
  int b4_prefixes = -1;
  int pool_addrs = -1;
  int pool_hint = -1;
  int subscribers = -1;
  int sessions_out = -1;
  int sessions_in = -1;
  int filter_peers = -1;
  int events = -1;
};

using Counters = std::array<uint64_t, AFTR_COUNTER_MAX>;

// Names of the counters, index = enum aftr_counter (from AFTR_COUNTER_LIST).
extern const char* const kCounterNames[AFTR_COUNTER_MAX];

// Sums the per-CPU counters.
absl::StatusOr<Counters> ReadCounters(int counters_fd);

// The public addresses of the configured pool, in pool-index order (host byte order).
std::vector<uint32_t> ExpandPool(const aftr::config::v1::Config& config);

// What the data plane's rodata holds for this configuration.
aftr_dp_config MakeDpConfig(const aftr::config::v1::Config& config);

// Makes sure `pin_path` is a directory on a bpffs, mounting one on its parent if needed
// (`ip netns exec` gives a fresh /sys without bpffs).
absl::Status EnsureBpffs(const std::string& pin_path);

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

class Datapath {
 public:
  // Loads (adopting pinned maps when present), seeds, and attaches. Nothing stays attached
  // when this fails.
  static absl::StatusOr<std::unique_ptr<Datapath>> Create(
      const aftr::config::v1::Config& config);
  ~Datapath();  // detaches; the pinned maps stay for the next start

  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  const MapFds& fds() const { return fds_; }
  // True when sessions and blocks were adopted from pins left by a previous run.
  bool adopted() const { return adopted_; }
  const std::vector<uint32_t>& pool() const { return pool_; }

  // Runs aftr_ctl for an update that races with the data plane; returns its result.
  absl::StatusOr<int> Ctl(const aftr_ctl_args& args) const;

  // Detaches from every interface (only our own program is removed).
  void Detach();

 private:
  Datapath() = default;
  absl::Status Load(const aftr::config::v1::Config& config);
  absl::Status Seed(const aftr::config::v1::Config& config);
  absl::Status Attach(const aftr::config::v1::Config& config);

  struct ::aftr_bpf* skel_ = nullptr;
  MapFds fds_;
  bool adopted_ = false;
  std::vector<uint32_t> pool_;
  std::vector<int> attached_ifindexes_;
};

}  // namespace aftr::bpf

#endif  // AFTR_CONTROL_BPF_DATAPATH_H_
