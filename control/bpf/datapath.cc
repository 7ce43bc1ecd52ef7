// Loading, seeding and attaching the data plane. See datapath.h.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "control/bpf/datapath.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aftr_bpf.skel.h"
#include "control/common/errno_status.h"
#include "control/common/ip.h"
#include "control/common/log.h"

namespace aftr::bpf {

#define AFTR_COUNTER_NAME(id, name) name,
const char* const kCounterNames[AFTR_COUNTER_MAX] = {AFTR_COUNTER_LIST(AFTR_COUNTER_NAME)};
#undef AFTR_COUNTER_NAME

namespace {

using aftr::config::v1::Config;

constexpr const char* kMapNames[] = {"aftr_counters",     "aftr_b4_prefixes",  "aftr_pool_addrs",
                                     "aftr_pool_hint",    "aftr_subscribers",  "aftr_sessions_out",
                                     "aftr_sessions_in",  "aftr_filter_peers", "aftr_events"};

int* FdSlot(MapFds& fds, int i) {
  int* slots[] = {&fds.counters,     &fds.b4_prefixes, &fds.pool_addrs,
                  &fds.pool_hint,    &fds.subscribers, &fds.sessions_out,
                  &fds.sessions_in,  &fds.filter_peers, &fds.events};
  return slots[i];
}

// libbpf's messages (verifier logs, pin reuse problems) go to our log.
int LibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char* buf = nullptr;
  int n = vasprintf(&buf, format, args);  // verifier logs run to megabytes
  if (n < 0) return 0;
  std::string line(buf, n);
  free(buf);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  LogLine(level == LIBBPF_WARN ? LogLevel::kWarning : LogLevel::kDebug, "libbpf: " + line);
  return n;
}

bool IsBpffs(const std::string& path) {
  struct statfs st;
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

// Seeds one pool address: blocks past blocks_per_addr are marked used forever.
aftr_pool_addr FreshPoolAddr(uint32_t addr_host, uint32_t blocks_per_addr) {
  aftr_pool_addr pa = {};
  pa.addr = htonl(addr_host);
  for (uint32_t b = blocks_per_addr; b < AFTR_MAX_BLOCKS_PER_ADDR; ++b) {
    pa.used[b / 64] |= 1ull << (b % 64);
  }
  return pa;
}

}  // namespace

absl::StatusOr<Counters> ReadCounters(int counters_fd) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return ErrnoToStatus(-ncpu, "counting possible CPUs");
  std::vector<aftr_counters> per_cpu(ncpu);
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(counters_fd, &zero, per_cpu.data()) != 0) {
    return ErrnoToStatus(errno, "reading aftr_counters");
  }
  Counters sum = {};
  for (const aftr_counters& c : per_cpu) {
    for (int i = 0; i < AFTR_COUNTER_MAX; ++i) sum[i] += c.c[i];
  }
  return sum;
}

std::vector<uint32_t> ExpandPool(const Config& config) {
  std::vector<uint32_t> pool;
  for (const std::string& text : config.pool_prefixes()) {
    absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(text);
    if (!prefix.ok()) continue;  // rejected by ValidateConfig before we get here
    for (uint64_t i = 0; i < prefix->Size(); ++i) {
      pool.push_back(prefix->addr.host_order + static_cast<uint32_t>(i));
    }
  }
  return pool;
}

aftr_dp_config MakeDpConfig(const Config& config) {
  aftr_dp_config dp = {};
  dp.abi_version = AFTR_ABI_VERSION;
  for (int i = 0; i < config.softwire_addresses_size() && i < AFTR_MAX_SOFTWIRE_ADDRS; ++i) {
    absl::StatusOr<Ipv6Address> addr = ParseIpv6(config.softwire_addresses(i));
    if (!addr.ok()) continue;
    std::memcpy(dp.softwire_addrs[i], addr->bytes.data(), 16);
    dp.softwire_addr_count = i + 1;
  }
  for (int i = 0; i < config.pool_prefixes_size() && i < AFTR_MAX_POOL_PREFIXES; ++i) {
    absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(config.pool_prefixes(i));
    if (!prefix.ok()) continue;
    uint32_t mask = prefix->length == 0 ? 0 : ~0u << (32 - prefix->length);
    dp.pool_prefix_addr[i] = htonl(prefix->addr.host_order & mask);
    dp.pool_prefix_mask[i] = htonl(mask);
    dp.pool_prefix_count = i + 1;
  }
  dp.pool_addr_count = ExpandPool(config).size();
  const auto& pb = config.port_blocks();
  dp.port_min = pb.port_min();
  dp.block_size = pb.block_size();
  dp.blocks_per_addr = (pb.port_max() - pb.port_min() + 1) / pb.block_size();
  dp.max_blocks_per_sub = pb.max_blocks_per_subscriber();
  dp.max_sessions_per_sub = pb.max_sessions_per_subscriber();
  dp.filtering = config.filtering() == aftr::config::v1::FILTERING_ADDRESS_DEPENDENT
                     ? AFTR_FILTER_ADDRESS_DEPENDENT
                     : AFTR_FILTER_ENDPOINT_INDEPENDENT;
  dp.tcp_mss_clamp = config.tcp_mss_clamp() > 0 ? config.tcp_mss_clamp() : 0;
  dp.hop_limit = config.hop_limit();
  dp.fib_cache_ticks = config.fib_cache_ms() > 0 ? AFTR_FIB_MS_TO_TICKS(config.fib_cache_ms()) : 0;
  return dp;
}

absl::Status EnsureBpffs(const std::string& pin_path) {
  std::filesystem::path pin(pin_path);
  std::filesystem::path parent = pin.parent_path();
  std::error_code ec;
  if (!IsBpffs(parent.string()) && !IsBpffs(pin_path)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) return absl::InternalError(absl::StrCat("creating ", parent.string(), ": ", ec.message()));
    if (mount("bpf", parent.c_str(), "bpf", 0, "mode=0700") != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mounting bpffs on ", parent.string()));
    }
    LogInfo("mounted bpffs on %s", parent.string());
  }
  if (!IsBpffs(pin_path)) {
    if (mkdir(pin_path.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, absl::StrCat("creating ", pin_path));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PinnedMaps>> PinnedMaps::Open(const std::string& pin_path) {
  auto maps = std::unique_ptr<PinnedMaps>(new PinnedMaps());
  for (int i = 0; i < static_cast<int>(std::size(kMapNames)); ++i) {
    std::string path = absl::StrCat(pin_path, "/", kMapNames[i]);
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening pinned map ", path));
    *FdSlot(maps->fds_, i) = fd;
  }
  return maps;
}

PinnedMaps::~PinnedMaps() {
  for (int i = 0; i < static_cast<int>(std::size(kMapNames)); ++i) {
    int fd = *FdSlot(fds_, i);
    if (fd >= 0) close(fd);
  }
}

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::Create(const Config& config) {
  libbpf_set_print(LibbpfPrint);
  auto dp = std::unique_ptr<Datapath>(new Datapath());
  if (absl::Status s = dp->Load(config); !s.ok()) return s;
  if (absl::Status s = dp->Seed(config); !s.ok()) return s;
  if (absl::Status s = dp->Attach(config); !s.ok()) return s;  // destructor detaches
  return dp;
}

absl::Status Datapath::Load(const Config& config) {
  if (absl::Status s = EnsureBpffs(config.pin_path()); !s.ok()) return s;
  // Pins present before load mean a previous aftrd left sessions and blocks to adopt.
  adopted_ = access(absl::StrCat(config.pin_path(), "/aftr_pool_addrs").c_str(), F_OK) == 0;

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = config.pin_path().c_str());
  skel_ = aftr_bpf__open_opts(&opts);
  if (!skel_) return ErrnoToStatus(errno, "opening the embedded BPF object");

  skel_->rodata->aftr_cfg = MakeDpConfig(config);
  pool_ = ExpandPool(config);
  const auto& tables = config.tables();
  struct {
    bpf_map* map;
    uint32_t entries;
  } sizes[] = {
      {skel_->maps.aftr_sessions_out, tables.max_sessions()},
      {skel_->maps.aftr_sessions_in, tables.max_sessions()},
      {skel_->maps.aftr_filter_peers, tables.max_sessions()},
      {skel_->maps.aftr_subscribers, tables.max_subscribers()},
      {skel_->maps.aftr_pool_addrs, static_cast<uint32_t>(pool_.size())},
      {skel_->maps.aftr_events, config.event_ring_bytes()},
  };
  for (const auto& s : sizes) {
    if (int err = bpf_map__set_max_entries(s.map, s.entries); err != 0) {
      return ErrnoToStatus(-err, absl::StrCat("sizing map ", bpf_map__name(s.map)));
    }
  }
  if (int err = aftr_bpf__load(skel_); err != 0) {
    absl::Status s = ErrnoToStatus(-err, "loading the XDP program");
    if (adopted_) {
      return absl::FailedPreconditionError(absl::StrCat(
          s.message(), " (the maps pinned under ", config.pin_path(),
          " do not match this configuration, e.g. a table size or the pool changed; "
          "remove that directory to start with empty state)"));
    }
    return s;
  }
  bpf_map* maps[] = {skel_->maps.aftr_counters,     skel_->maps.aftr_b4_prefixes,
                     skel_->maps.aftr_pool_addrs,   skel_->maps.aftr_pool_hint,
                     skel_->maps.aftr_subscribers,  skel_->maps.aftr_sessions_out,
                     skel_->maps.aftr_sessions_in,  skel_->maps.aftr_filter_peers,
                     skel_->maps.aftr_events};
  for (int i = 0; i < static_cast<int>(std::size(maps)); ++i) *FdSlot(fds_, i) = bpf_map__fd(maps[i]);
  return absl::OkStatus();
}

absl::Status Datapath::Seed(const Config& config) {
  aftr_dp_config dp = MakeDpConfig(config);
  for (uint32_t i = 0; i < pool_.size(); ++i) {
    aftr_pool_addr pa = {};
    if (adopted_) {
      if (bpf_map_lookup_elem(fds_.pool_addrs, &i, &pa) != 0) {
        return ErrnoToStatus(errno, "reading aftr_pool_addrs");
      }
      if (ntohl(pa.addr) == pool_[i]) continue;  // keep its blocks: subscribers own them
      if (pa.addr != 0) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "pool address %d is %s in the pinned state but %s in the configuration; the "
            "pool cannot change under live sessions (remove %s to start empty)",
            i, Ipv4Address{ntohl(pa.addr)}.ToString(), Ipv4Address{pool_[i]}.ToString(),
            config.pin_path()));
      }
    }
    pa = FreshPoolAddr(pool_[i], dp.blocks_per_addr);
    if (bpf_map_update_elem(fds_.pool_addrs, &i, &pa, BPF_ANY) != 0) {
      return ErrnoToStatus(errno, "writing aftr_pool_addrs");
    }
  }

  // B4 prefixes: exactly the configured ones.
  std::vector<aftr_b4_prefix_key> stale;
  aftr_b4_prefix_key key, next;
  for (int rc = bpf_map_get_next_key(fds_.b4_prefixes, nullptr, &next); rc == 0;
       rc = bpf_map_get_next_key(fds_.b4_prefixes, &key, &next)) {
    stale.push_back(next);
    key = next;
  }
  for (const aftr_b4_prefix_key& k : stale) bpf_map_delete_elem(fds_.b4_prefixes, &k);
  for (const std::string& text : config.b4_prefixes()) {
    absl::StatusOr<Ipv6Prefix> prefix = ParseIpv6Prefix(text);
    if (!prefix.ok()) return prefix.status();
    aftr_b4_prefix_key k = {};
    k.prefixlen = prefix->length;
    std::memcpy(k.addr, prefix->addr.bytes.data(), 16);
    uint32_t one = 1;
    if (bpf_map_update_elem(fds_.b4_prefixes, &k, &one, BPF_ANY) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("writing B4 prefix ", text));
    }
  }
  LogInfo("data plane %s: %d pool addresses, %d blocks of %d ports each",
          adopted_ ? "adopted from pinned maps" : "loaded with empty tables", pool_.size(),
          dp.blocks_per_addr, dp.block_size);
  return absl::OkStatus();
}

absl::Status Datapath::Attach(const Config& config) {
  int prog_fd = bpf_program__fd(skel_->progs.aftr_xdp);
  for (int i = 0; i < config.interfaces_size(); ++i) {
    const std::string& name = config.interfaces(i);
    int ifindex = if_nametoindex(name.c_str());
    if (ifindex == 0) {
      return absl::NotFoundError(absl::StrFormat("interfaces[%d]: no interface named \"%s\"", i, name));
    }
    // Native mode only: generic XDP would hide a driver that cannot do the job.
    int err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
    if (err != 0) {
      return ErrnoToStatus(-err, absl::StrFormat("interfaces[%d]: attaching XDP in native mode to %s",
                                                 i, name));
    }
    attached_ifindexes_.push_back(ifindex);
    LogInfo("XDP attached to %s (ifindex %d, native mode)", name, ifindex);
  }
  return absl::OkStatus();
}

void Datapath::Detach() {
  if (!skel_) return;
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = bpf_program__fd(skel_->progs.aftr_xdp));
  for (int ifindex : attached_ifindexes_) {
    // XDP_FLAGS_REPLACE with old_prog_fd: remove only our program, never someone else's.
    int err = bpf_xdp_attach(ifindex, -1, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &opts);
    if (err != 0) LogWarning("detaching XDP from ifindex %d: %s", ifindex, std::strerror(-err));
  }
  attached_ifindexes_.clear();
}

Datapath::~Datapath() {
  Detach();
  if (skel_) aftr_bpf__destroy(skel_);  // maps stay pinned for the next start
}

absl::StatusOr<int> Datapath::Ctl(const aftr_ctl_args& args) const {
  aftr_ctl_args copy = args;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &copy, .ctx_size_in = sizeof(copy));
  int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.aftr_ctl), &opts);
  if (err != 0) return ErrnoToStatus(errno, "running aftr_ctl");
  return static_cast<int>(opts.retval);
}

}  // namespace aftr::bpf
