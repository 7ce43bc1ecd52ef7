// Loading, adopting, reprogramming and attaching the data plane. See datapath.h.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "control/bpf/datapath.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "aftr_bpf.skel.h"
#include "control/bpf/map_batch.h"
#include "control/common/errno_status.h"
#include "control/common/ip.h"
#include "control/common/log.h"
#include "control/nat/deterministic.h"

namespace aftr::bpf {

#define AFTR_COUNTER_NAME(id, name) name,
const char* const kCounterNames[AFTR_COUNTER_MAX] = {AFTR_COUNTER_LIST(AFTR_COUNTER_NAME)};
#undef AFTR_COUNTER_NAME
#define AFTR_DIRECTION_NAME(id, name) name,
const char* const kDirectionNames[kDirections] = {AFTR_DIRECTION_LIST(AFTR_DIRECTION_NAME)};
#undef AFTR_DIRECTION_NAME

bool AddDeterministicRanges(const aftr::config::v1::Config& config, aftr_dp_config* dp);

namespace {

using aftr::config::v1::Config;

constexpr char kProgName[] = "aftr_xdp";  // what `ip link` shows; how we know our program

// Every pinned map: its pin name and where its descriptor goes (SkelMap has the same order).
struct MapSpec {
  const char* name;
  int MapFds::*slot;
};
#define AFTR_MAP(field) {"aftr_" #field, &MapFds::field}
MapSpec kMaps[] = {AFTR_MAP(counters),     AFTR_MAP(b4_prefixes),  AFTR_MAP(pool_addrs),
                   AFTR_MAP(pool_meta),    AFTR_MAP(pool_hint),    AFTR_MAP(subscribers),
                   AFTR_MAP(sessions_out), AFTR_MAP(sessions_in),  AFTR_MAP(filter_peers),
                   AFTR_MAP(events),       AFTR_MAP(pcp_filters),  AFTR_MAP(pcp_mappings),
                   AFTR_MAP(pcp_state),    AFTR_MAP(slow_path)};
#undef AFTR_MAP

bpf_map* SkelMap(aftr_bpf* skel, int fd_slot_index) {
  bpf_map* maps[] = {skel->maps.aftr_counters,     skel->maps.aftr_b4_prefixes,
                     skel->maps.aftr_pool_addrs,   skel->maps.aftr_pool_meta,
                     skel->maps.aftr_pool_hint,    skel->maps.aftr_subscribers,
                     skel->maps.aftr_sessions_out, skel->maps.aftr_sessions_in,
                     skel->maps.aftr_filter_peers, skel->maps.aftr_events,
                     skel->maps.aftr_pcp_filters,  skel->maps.aftr_pcp_mappings,
                     skel->maps.aftr_pcp_state,    skel->maps.aftr_slow_path};
  static_assert(std::size(maps) == std::size(kMaps));
  return maps[fd_slot_index];
}

void CloseFds(MapFds* fds) {
  for (const MapSpec& m : kMaps) {
    int& fd = fds->*m.slot;
    if (fd >= 0) close(fd);
    fd = -1;
  }
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

std::string PinOf(const std::string& pin_path, const char* name) {
  return absl::StrCat(pin_path, "/", name);
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

uint32_t BlocksPerAddr(const Config& c) {
  const auto& pb = c.port_blocks();
  return (pb.port_max() - pb.port_min() + 1) / pb.block_size();
}

// A pool address never used: blocks past blocks_per_addr are marked used forever.
aftr_pool_addr FreshPoolAddr(uint32_t addr_host, uint32_t blocks_per_addr) {
  aftr_pool_addr pa = {};
  pa.addr = htonl(addr_host);
  for (uint32_t b = blocks_per_addr; b < AFTR_MAX_BLOCKS_PER_ADDR; ++b) {
    pa.used[b / 64] |= 1ull << (b % 64);
  }
  return pa;
}

uint32_t BlocksUsed(const aftr_pool_addr& pa, uint32_t blocks_per_addr) {
  uint32_t used = 0;
  for (uint32_t b = 0; b < blocks_per_addr && b < AFTR_MAX_BLOCKS_PER_ADDR; ++b) {
    used += (pa.used[b / 64] >> (b % 64)) & 1;
  }
  return used;
}

Ipv4Prefix ToPrefix(const aftr_pool_prefix& p) { return {Ipv4Address{ntohl(p.addr)}, p.len}; }

aftr_pool_prefix FromPrefix(const Ipv4Prefix& p, uint8_t flags) {
  aftr_pool_prefix out = {};
  out.addr = htonl(p.addr.host_order);
  out.len = static_cast<uint8_t>(p.length);
  out.flags = flags;
  return out;
}

// ---- the pool's layout ----

// The pinned pool as read back: entries (all of the map) and the layout record.
struct PinnedPool {
  std::vector<aftr_pool_addr> entries;
  aftr_pool_meta meta = {};
};

absl::StatusOr<PinnedPool> ReadPinnedPool(int pool_fd, int meta_fd) {
  PinnedPool p;
  std::vector<uint32_t> keys;
  if (absl::Status s = ReadMap(pool_fd, &keys, &p.entries); !s.ok()) return s;
  // Batches of an array come back in index order; make sure, since the index is the point.
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] != i) return absl::InternalError("aftr_pool_addrs read out of order");
  }
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(meta_fd, &zero, &p.meta) != 0) {
    return ErrnoToStatus(errno, "reading aftr_pool_meta");
  }
  return p;
}

// What a configuration does to the pinned pool. Addresses are append-only by index; an
// address is draining exactly when no configured prefix holds it; a prefix that left the
// configuration stays in the layout (and in the data plane's "is this ours?" check) while
// any of its addresses still owns a block, and is forgotten once none does (its entries
// stay, draining and empty, and come back at the same index if the prefix is re-added).
struct PoolLayout {
  std::vector<aftr_pool_prefix> prefixes;  // active (configuration order), then draining
  uint32_t entries = 0;                    // in use after the appends
  std::vector<std::pair<uint32_t, aftr_pool_addr>> appended;
  std::vector<std::pair<uint32_t, uint32_t>> flag_changes;  // index → new flags
  uint32_t draining_addresses = 0;
  std::vector<std::string> forgotten;  // draining prefixes with no block left
  aftr_pool_meta meta = {};
};

absl::StatusOr<PoolLayout> PlanPool(const Config& config, const PinnedPool& pinned) {
  const uint32_t blocks_per_addr = BlocksPerAddr(config);
  const uint32_t capacity = config.tables().max_pool_addresses();
  PoolLayout plan;
  uint32_t n = 0;
  while (n < pinned.entries.size() && pinned.entries[n].addr != 0) ++n;
  const uint32_t n_pinned = n;
  absl::flat_hash_map<uint32_t, uint32_t> index_of;
  for (uint32_t i = 0; i < n_pinned; ++i) index_of.try_emplace(ntohl(pinned.entries[i].addr), i);

  std::vector<Ipv4Prefix> active;
  for (const std::string& text : config.pool_prefixes()) {
    absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(text);
    if (!p.ok()) return p.status();
    active.push_back(*p);
  }
  auto is_active = [&](uint32_t addr) {
    return std::any_of(active.begin(), active.end(),
                       [&](const Ipv4Prefix& p) { return p.Contains(Ipv4Address{addr}); });
  };

  uint64_t wanted = 0;
  for (const Ipv4Prefix& p : active) {
    for (uint64_t i = 0; i < p.Size(); ++i) {
      uint32_t addr = p.addr.host_order + static_cast<uint32_t>(i);
      if (index_of.contains(addr)) continue;
      ++wanted;
      if (n >= capacity) continue;
      plan.appended.emplace_back(n, FreshPoolAddr(addr, blocks_per_addr));
      index_of.emplace(addr, n++);
    }
  }
  if (n_pinned + wanted > capacity) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "tables.max_pool_addresses: the pool would need %d entries (%d held, draining ones "
        "included, and %d new addresses) but has room for %d; addresses keep their entry for "
        "as long as the pinned state lives",
        n_pinned + wanted, n_pinned, wanted, capacity));
  }

  for (uint32_t i = 0; i < n_pinned; ++i) {
    const aftr_pool_addr& e = pinned.entries[i];
    uint32_t want = is_active(ntohl(e.addr)) ? 0 : AFTR_POOL_ADDR_DRAINING;
    if ((e.flags & AFTR_POOL_ADDR_DRAINING) != want) {
      plan.flag_changes.emplace_back(i, (e.flags & ~AFTR_POOL_ADDR_DRAINING) | want);
    }
    if (want) plan.draining_addresses++;
  }

  for (const Ipv4Prefix& p : active) plan.prefixes.push_back(FromPrefix(p, 0));
  auto covered_by_table = [&](uint32_t addr) {
    return std::any_of(plan.prefixes.begin(), plan.prefixes.end(), [&](const aftr_pool_prefix& p) {
      return ToPrefix(p).Contains(Ipv4Address{addr});
    });
  };
  const uint32_t known = std::min<uint32_t>(pinned.meta.prefix_count, AFTR_MAX_POOL_PREFIXES);
  for (uint32_t k = 0; k < known; ++k) {
    Ipv4Prefix prefix = ToPrefix(pinned.meta.prefixes[k]);
    if (std::find(active.begin(), active.end(), prefix) != active.end()) continue;
    bool owns_blocks = false, has_draining = false;
    for (uint32_t i = 0; i < n_pinned; ++i) {
      uint32_t addr = ntohl(pinned.entries[i].addr);
      if (!prefix.Contains(Ipv4Address{addr}) || is_active(addr)) continue;
      has_draining = true;
      owns_blocks |= BlocksUsed(pinned.entries[i], blocks_per_addr) > 0;
    }
    if (owns_blocks) {
      plan.prefixes.push_back(FromPrefix(prefix, AFTR_POOL_ADDR_DRAINING));
    } else if (has_draining) {
      plan.forgotten.push_back(prefix.ToString());
    }
  }
  // A draining address that owns blocks but no known prefix holds (pins written by a run
  // that died before recording its layout) still needs its replies: a /32 of its own.
  for (uint32_t i = 0; i < n_pinned; ++i) {
    uint32_t addr = ntohl(pinned.entries[i].addr);
    if (is_active(addr) || covered_by_table(addr)) continue;
    if (BlocksUsed(pinned.entries[i], blocks_per_addr) == 0) continue;
    plan.prefixes.push_back(FromPrefix(Ipv4Prefix{Ipv4Address{addr}, 32}, AFTR_POOL_ADDR_DRAINING));
  }
  if (plan.prefixes.size() > AFTR_MAX_POOL_PREFIXES) {
    std::vector<std::string> draining;
    for (const aftr_pool_prefix& p : plan.prefixes) {
      if (p.flags & AFTR_POOL_ADDR_DRAINING) draining.push_back(ToPrefix(p).ToString());
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "pool_prefixes: %d configured prefixes and %d draining ones that still own port blocks "
        "(%s) make %d; the data plane knows at most %d. Re-add a draining prefix, or wait "
        "until its blocks are released and reload again",
        active.size(), draining.size(), absl::StrJoin(draining, ", "), plan.prefixes.size(),
        AFTR_MAX_POOL_PREFIXES));
  }
  plan.entries = n;

  const auto& pb = config.port_blocks();
  plan.meta.abi_version = AFTR_ABI_VERSION;
  plan.meta.port_min = static_cast<uint16_t>(pb.port_min());
  plan.meta.port_max = static_cast<uint16_t>(pb.port_max());
  plan.meta.block_size = static_cast<uint16_t>(pb.block_size());
  plan.meta.prefix_count = static_cast<uint16_t>(plan.prefixes.size());
  std::copy(plan.prefixes.begin(), plan.prefixes.end(), plan.meta.prefixes);
  return plan;
}

// The port geometry the pinned blocks were cut with must be this configuration's: every
// subscriber's block index means ports only through it.
absl::Status CheckGeometry(const Config& config, const aftr_pool_meta& meta) {
  if (meta.abi_version == 0) return absl::OkStatus();  // never written: a first start
  const auto& pb = config.port_blocks();
  std::vector<std::string> diffs;
  if (meta.port_min != pb.port_min()) {
    diffs.push_back(absl::StrCat("port_blocks.port_min (pinned ", meta.port_min, ", configured ",
                                 pb.port_min(), ")"));
  }
  if (meta.port_max != pb.port_max()) {
    diffs.push_back(absl::StrCat("port_blocks.port_max (pinned ", meta.port_max, ", configured ",
                                 pb.port_max(), ")"));
  }
  if (meta.block_size != pb.block_size()) {
    diffs.push_back(absl::StrCat("port_blocks.block_size (pinned ", meta.block_size,
                                 ", configured ", pb.block_size(), ")"));
  }
  if (diffs.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      absl::StrJoin(diffs, ", "), ": the port blocks pinned under ", config.pin_path(),
      " were cut differently and every subscriber's blocks mean ports only through them; "
      "keep the old values, or remove ", config.pin_path(), " to start empty (losing every "
      "session and block)"));
}

// ---- loading ----

// Which configuration field sizes each map (for messages about pins that do not fit).
const char* SizingField(const std::string& map) {
  if (map == "aftr_sessions_out" || map == "aftr_sessions_in" || map == "aftr_filter_peers") {
    return "tables.max_sessions";
  }
  if (map == "aftr_subscribers") return "tables.max_subscribers";
  if (map == "aftr_pool_addrs") return "tables.max_pool_addresses";
  if (map == "aftr_events") return "event_ring_bytes";
  if (map == "aftr_pcp_mappings" || map == "aftr_pcp_filters") return "pcp.max_mappings";
  return nullptr;
}

// libbpf reuses a pin only if it matches the map's definition and fails the whole load
// otherwise; check first so that the message names what differs.
absl::Status CheckPins(aftr_bpf* skel, const std::string& pin_path) {
  std::vector<std::string> problems;
  for (size_t i = 0; i < std::size(kMaps); ++i) {
    bpf_map* map = SkelMap(skel, i);
    std::string path = PinOf(pin_path, kMaps[i].name);
    if (!Exists(path)) continue;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening pinned map ", path));
    bpf_map_info info = {};
    uint32_t len = sizeof(info);
    int err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err != 0) return ErrnoToStatus(errno, absl::StrCat("reading pinned map ", path));
    if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
        info.value_size != bpf_map__value_size(map)) {
      problems.push_back(absl::StrFormat(
          "%s was made by an aftrd with another data-plane ABI (key %d / value %d bytes, now "
          "%d / %d; this build has ABI %d)",
          kMaps[i].name, info.key_size, info.value_size, bpf_map__key_size(map),
          bpf_map__value_size(map), AFTR_ABI_VERSION));
    } else if (info.max_entries != bpf_map__max_entries(map)) {
      const char* field = SizingField(kMaps[i].name);
      problems.push_back(absl::StrFormat("%s: pinned %s has %d entries, the configuration %d",
                                         field ? field : "(fixed size)", kMaps[i].name,
                                         info.max_entries, bpf_map__max_entries(map)));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      absl::StrJoin(problems, "; "), ". The maps pinned under ", pin_path,
      " cannot serve this configuration; keep the old values, or remove that directory to "
      "start empty (losing every session and port block)"));
}

// Opens the embedded object on the pins of `config`, with rodata for `config` and `pool`,
// and loads it (creating and pinning any map not pinned yet).
absl::StatusOr<aftr_bpf*> LoadProgram(const Config& config, const PoolLayout& pool) {
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = config.pin_path().c_str());
  aftr_bpf* skel = aftr_bpf__open_opts(&opts);
  if (!skel) return ErrnoToStatus(errno, "opening the embedded BPF object");
  absl::Cleanup destroy = [skel] { aftr_bpf__destroy(skel); };

  aftr_dp_config dp = MakeDpConfig(config);
  std::memset(dp.pool_prefix_addr, 0, sizeof(dp.pool_prefix_addr));
  std::memset(dp.pool_prefix_mask, 0, sizeof(dp.pool_prefix_mask));
  for (size_t i = 0; i < pool.prefixes.size(); ++i) {
    const aftr_pool_prefix& p = pool.prefixes[i];
    uint32_t mask = p.len == 0 ? 0 : ~0u << (32 - p.len);
    dp.pool_prefix_addr[i] = htonl(ntohl(p.addr) & mask);
    dp.pool_prefix_mask[i] = htonl(mask);
  }
  dp.pool_prefix_count = pool.prefixes.size();
  dp.pool_addr_count = pool.entries;
  if (!AddDeterministicRanges(config, &dp)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "deterministic.ranges: the pool's ", pool.prefixes.size(),
        " prefixes (draining ones included) and ", config.deterministic().ranges_size(),
        " deterministic pool prefixes exceed the ", AFTR_MAX_POOL_PREFIXES,
        " public prefixes the data plane holds"));
  }
  skel->rodata->aftr_cfg = dp;

  const auto& tables = config.tables();
  struct {
    bpf_map* map;
    uint32_t entries;
  } sizes[] = {
      {skel->maps.aftr_sessions_out, tables.max_sessions()},
      {skel->maps.aftr_sessions_in, tables.max_sessions()},
      {skel->maps.aftr_filter_peers, tables.max_sessions()},
      {skel->maps.aftr_subscribers, tables.max_subscribers()},
      {skel->maps.aftr_pool_addrs, tables.max_pool_addresses()},
      {skel->maps.aftr_events, config.event_ring_bytes()},
      {skel->maps.aftr_pcp_mappings, config.pcp().max_mappings()},
      {skel->maps.aftr_pcp_filters, config.pcp().max_mappings()},
  };
  for (const auto& s : sizes) {
    if (int err = bpf_map__set_max_entries(s.map, s.entries); err != 0) {
      return ErrnoToStatus(-err, absl::StrCat("sizing map ", bpf_map__name(s.map)));
    }
  }
  if (absl::Status s = CheckPins(skel, config.pin_path()); !s.ok()) return s;
  if (int err = aftr_bpf__load(skel); err != 0) {
    return ErrnoToStatus(-err, "loading the XDP program");
  }
  std::move(destroy).Cancel();
  return skel;
}

absl::StatusOr<uint32_t> MapId(int fd) {
  bpf_map_info info = {};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return ErrnoToStatus(errno, "reading map info");
  return info.id;
}

absl::StatusOr<int> RunCtl(aftr_bpf* skel, const aftr_ctl_args& args) {
  aftr_ctl_args copy = args;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &copy, .ctx_size_in = sizeof(copy));
  int err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.aftr_ctl), &opts);
  if (err != 0) return ErrnoToStatus(errno, "running aftr_ctl");
  return static_cast<int>(opts.retval);
}

// ---- attaching ----

// An XDP program found on an interface.
struct AttachedProg {
  uint32_t id = 0;
  int fd = -1;  // owned
  std::string name;
  std::vector<uint32_t> map_ids;
  bool Uses(uint32_t map_id) const {
    return std::find(map_ids.begin(), map_ids.end(), map_id) != map_ids.end();
  }
};

absl::StatusOr<AttachedProg> OpenProg(uint32_t id) {
  AttachedProg p;
  p.id = id;
  p.fd = bpf_prog_get_fd_by_id(id);
  if (p.fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening XDP program id ", id));
  bpf_prog_info info = {};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(p.fd, &info, &len) != 0) {
    close(p.fd);
    return ErrnoToStatus(errno, absl::StrCat("reading XDP program id ", id));
  }
  p.name = info.name;
  p.map_ids.resize(info.nr_map_ids);
  bpf_prog_info again = {};
  again.nr_map_ids = info.nr_map_ids;
  again.map_ids = reinterpret_cast<uint64_t>(p.map_ids.data());
  len = sizeof(again);
  if (bpf_obj_get_info_by_fd(p.fd, &again, &len) != 0) {
    close(p.fd);
    return ErrnoToStatus(errno, absl::StrCat("reading the maps of XDP program id ", id));
  }
  p.map_ids.resize(std::min(again.nr_map_ids, info.nr_map_ids));
  return p;
}

// The native-mode program on `ifindex` (id 0: none); generic-mode ones are reported apart.
struct XdpState {
  uint32_t drv_id = 0;
  uint32_t skb_id = 0;
};

absl::StatusOr<XdpState> QueryXdp(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (int err = bpf_xdp_query(ifindex, 0, &q); err != 0) {
    return ErrnoToStatus(-err, absl::StrCat("querying XDP on ifindex ", ifindex));
  }
  return XdpState{q.drv_prog_id, q.skb_prog_id};
}

// Ours: aftr_xdp working on our pinned maps (`our_map_id` is aftr_counters'; 0 when no pin
// exists, and then any aftr_xdp is taken for ours).
bool IsOurs(const AttachedProg& p, uint32_t our_map_id) {
  return p.name == kProgName && (our_map_id == 0 || p.Uses(our_map_id));
}

std::string IfName(int ifindex) {
  char buf[IF_NAMESIZE] = {};
  return if_indextoname(ifindex, buf) ? std::string(buf) : absl::StrCat("ifindex ", ifindex);
}

// What to do on one configured interface.
struct AttachStep {
  std::string name;
  int ifindex = 0;
  AttachedProg ours;  // fd >= 0: our program is there, to be replaced
};

void CloseSteps(std::vector<AttachStep>* steps) {
  for (AttachStep& s : *steps) {
    if (s.ours.fd >= 0) close(s.ours.fd);
    s.ours.fd = -1;
  }
}

// Looks at every configured interface before anything changes: a foreign program anywhere
// fails the whole attach.
absl::StatusOr<std::vector<AttachStep>> PlanAttach(const Config& config, uint32_t our_map_id) {
  std::vector<AttachStep> steps;
  absl::Cleanup close_all = [&steps] { CloseSteps(&steps); };
  for (int i = 0; i < config.interfaces_size(); ++i) {
    AttachStep step;
    step.name = config.interfaces(i);
    step.ifindex = if_nametoindex(step.name.c_str());
    if (step.ifindex == 0) {
      return absl::NotFoundError(
          absl::StrFormat("interfaces[%d]: no interface named \"%s\"", i, step.name));
    }
    absl::StatusOr<XdpState> st = QueryXdp(step.ifindex);
    if (!st.ok()) return st.status();
    uint32_t foreign_id = st->skb_id;
    if (foreign_id != 0) {
      absl::StatusOr<AttachedProg> p = OpenProg(foreign_id);
      std::string name = p.ok() ? p->name : "?";
      if (p.ok()) close(p->fd);
      return absl::FailedPreconditionError(absl::StrFormat(
          "interfaces[%d]: %s has XDP program \"%s\" (id %d) attached in generic mode; aftrd "
          "attaches natively and does not replace other programs (remove it first)",
          i, step.name, name, foreign_id));
    }
    if (st->drv_id != 0) {
      absl::StatusOr<AttachedProg> p = OpenProg(st->drv_id);
      if (!p.ok()) return p.status();
      if (!IsOurs(*p, our_map_id)) {
        std::string what =
            p->name == kProgName
                ? absl::StrCat("aftr_xdp of another aftrd (its maps are not those pinned under ",
                               config.pin_path(), ")")
                : absl::StrCat("XDP program \"", p->name, "\"");
        close(p->fd);
        return absl::FailedPreconditionError(absl::StrFormat(
            "interfaces[%d]: %s runs %s (id %d); aftrd does not replace programs that are not "
            "its own (remove it first, e.g. `aftrd --config ... --detach` for an aftrd's)",
            i, step.name, what, st->drv_id));
      }
      step.ours = *p;
    }
    steps.push_back(std::move(step));
  }
  std::move(close_all).Cancel();
  return steps;
}

int ReplaceXdp(int ifindex, int new_fd, int old_fd) {
  // XDP_FLAGS_REPLACE: the kernel swaps the program only if `old_fd` is the one attached,
  // in one step (no instant without a program), and fails if someone else changed it.
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd);
  return bpf_xdp_attach(ifindex, new_fd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE, &opts);
}

// Native mode only: generic XDP would hide a driver that cannot do the job.
int AttachXdp(int ifindex, int new_fd) {
  return bpf_xdp_attach(ifindex, new_fd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST,
                        nullptr);
}

// Applies the steps; on a failure puts back what was there (ours, or nothing).
absl::Status ApplyAttach(std::vector<AttachStep>& steps, int prog_fd) {
  for (size_t i = 0; i < steps.size(); ++i) {
    AttachStep& s = steps[i];
    int err = s.ours.fd >= 0 ? ReplaceXdp(s.ifindex, prog_fd, s.ours.fd) : AttachXdp(s.ifindex, prog_fd);
    if (err == 0) {
      LogInfo("XDP %s on %s (ifindex %d, native mode)",
              s.ours.fd >= 0 ? absl::StrCat("replaced (was id ", s.ours.id, ")") : "attached",
              s.name, s.ifindex);
      continue;
    }
    absl::Status status = ErrnoToStatus(
        -err, absl::StrFormat("interfaces[%d]: %s XDP in native mode on %s", i,
                              s.ours.fd >= 0 ? "replacing" : "attaching", s.name));
    for (size_t j = 0; j < i; ++j) {
      AttachStep& d = steps[j];
      int rc = d.ours.fd >= 0 ? ReplaceXdp(d.ifindex, d.ours.fd, prog_fd)
                              : ReplaceXdp(d.ifindex, -1, prog_fd);
      if (rc != 0) LogWarning("undoing XDP on %s: %s", d.name, std::strerror(-rc));
    }
    return status;
  }
  return absl::OkStatus();
}

// Removes our program from interfaces outside `keep` (a previous run's, or a reload's
// dropped ones). Only programs on our maps are touched.
void DetachOursElsewhere(const absl::flat_hash_set<int>& keep, uint32_t our_map_id) {
  if (our_map_id == 0) return;
  struct if_nameindex* all = if_nameindex();
  if (!all) return;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
    int ifindex = static_cast<int>(i->if_index);
    if (keep.contains(ifindex)) continue;
    absl::StatusOr<XdpState> st = QueryXdp(ifindex);
    if (!st.ok() || st->drv_id == 0) continue;
    absl::StatusOr<AttachedProg> p = OpenProg(st->drv_id);
    if (!p.ok()) continue;
    if (IsOurs(*p, our_map_id)) {
      int err = ReplaceXdp(ifindex, -1, p->fd);
      if (err == 0) {
        LogInfo("XDP removed from %s (no longer configured)", i->if_name);
      } else {
        LogWarning("removing XDP from %s: %s", i->if_name, std::strerror(-err));
      }
    }
    close(p->fd);
  }
  if_freenameindex(all);
}

// B4 prefixes: exactly the configured ones. New ones go in before stale ones go out, so
// that a prefix in both the old and the new set is never missing for a moment.
absl::Status SeedB4Prefixes(int fd, const Config& config) {
  absl::flat_hash_set<std::string> wanted;
  for (const std::string& text : config.b4_prefixes()) {
    absl::StatusOr<Ipv6Prefix> prefix = ParseIpv6Prefix(text);
    if (!prefix.ok()) return prefix.status();
    aftr_b4_prefix_key k = {};
    k.prefixlen = prefix->length;
    std::memcpy(k.addr, prefix->addr.bytes.data(), 16);
    uint32_t one = 1;
    if (bpf_map_update_elem(fd, &k, &one, BPF_ANY) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("writing B4 prefix ", text));
    }
    wanted.insert(std::string(reinterpret_cast<const char*>(&k), sizeof(k)));
  }
  std::vector<aftr_b4_prefix_key> stale;
  aftr_b4_prefix_key key, next;
  for (int rc = bpf_map_get_next_key(fd, nullptr, &next); rc == 0;
       rc = bpf_map_get_next_key(fd, &key, &next)) {
    if (!wanted.contains(std::string(reinterpret_cast<const char*>(&next), sizeof(next)))) {
      stale.push_back(next);
    }
    key = next;
  }
  for (const aftr_b4_prefix_key& k : stale) bpf_map_delete_elem(fd, &k);
  return absl::OkStatus();
}

// Fields that size, place or lay out the pinned maps.
std::vector<std::string> FixedFieldChanges(const Config& a, const Config& b) {
  std::vector<std::string> out;
  auto check = [&](const char* name, auto x, auto y) {
    if (x != y) out.push_back(absl::StrCat(name, " (", x, " → ", y, ")"));
  };
  check("pin_path", a.pin_path(), b.pin_path());
  check("tables.max_sessions", a.tables().max_sessions(), b.tables().max_sessions());
  check("tables.max_subscribers", a.tables().max_subscribers(), b.tables().max_subscribers());
  check("tables.max_pool_addresses", a.tables().max_pool_addresses(),
        b.tables().max_pool_addresses());
  check("port_blocks.port_min", a.port_blocks().port_min(), b.port_blocks().port_min());
  check("port_blocks.port_max", a.port_blocks().port_max(), b.port_blocks().port_max());
  check("port_blocks.block_size", a.port_blocks().block_size(), b.port_blocks().block_size());
  check("event_ring_bytes", a.event_ring_bytes(), b.event_ring_bytes());
  check("pcp.max_mappings", a.pcp().max_mappings(), b.pcp().max_mappings());
  check("fragments.timeout_ms", a.fragments().timeout_ms(), b.fragments().timeout_ms());
  check("fragments.max_datagrams", a.fragments().max_datagrams(), b.fragments().max_datagrams());
  check("fragments.max_bytes", a.fragments().max_bytes(), b.fragments().max_bytes());
  return out;
}

}  // namespace

Counters CounterSnapshot::Total() const {
  Counters sum = {};
  for (const Counters& row : by_direction) {
    for (int i = 0; i < AFTR_COUNTER_MAX; ++i) sum[i] += row[i];
  }
  return sum;
}

absl::StatusOr<CounterSnapshot> ReadCounters(int counters_fd) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return ErrnoToStatus(-ncpu, "counting possible CPUs");
  std::vector<aftr_counters> per_cpu(ncpu);
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(counters_fd, &zero, per_cpu.data()) != 0) {
    return ErrnoToStatus(errno, "reading aftr_counters");
  }
  CounterSnapshot snap;
  for (const aftr_counters& c : per_cpu) {
    for (int d = 0; d < kDirections; ++d) {
      for (int i = 0; i < AFTR_COUNTER_MAX; ++i) snap.by_direction[d][i] += c.dir[d].c[i];
    }
  }
  return snap;
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

// The deterministic ranges, computed once here (control/nat/deterministic) and handed to
// the data plane as arithmetic; their pool prefixes follow the pool's in pool_prefix_addr/
// mask so that the Internet side takes packets to them. False if they do not all fit.
bool AddDeterministicRanges(const Config& config, aftr_dp_config* dp) {
  static_assert(nat::kMaxDeterministicRanges == AFTR_MAX_DET_RANGES);
  static_assert(nat::kMaxDeterministicBlocks == AFTR_MAX_BLOCKS_PER_SUB);
  absl::StatusOr<nat::DeterministicMap> map = nat::DeterministicMap::Create(config);
  dp->det_count = 0;
  if (!map.ok()) return false;  // rejected by ValidateConfig before we get here
  for (const nat::DeterministicRange& r : map->ranges()) {
    if (dp->pool_prefix_count >= AFTR_MAX_POOL_PREFIXES || dp->det_count >= AFTR_MAX_DET_RANGES) {
      return false;
    }
    uint32_t mask = r.pool_prefix.length == 0 ? 0 : ~0u << (32 - r.pool_prefix.length);
    dp->pool_prefix_addr[dp->pool_prefix_count] = htonl(r.pool_prefix.addr.host_order);
    dp->pool_prefix_mask[dp->pool_prefix_count] = htonl(mask);
    dp->pool_prefix_count++;
    aftr_det_range& d = dp->det[dp->det_count++];
    d = {};
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; ++i) hi = (hi << 8) | r.b4_prefix.addr.bytes[i];
    for (int i = 8; i < 16; ++i) lo = (lo << 8) | r.b4_prefix.addr.bytes[i];
    const int len = r.b4_prefix.length;
    d.mask_hi = len == 0 ? 0 : len >= 64 ? ~0ull : ~0ull << (64 - len);
    d.mask_lo = len <= 64 ? 0 : ~0ull << (128 - len);
    d.prefix_hi = hi & d.mask_hi;
    d.prefix_lo = lo & d.mask_lo;
    d.pool_base = r.pool_prefix.addr.host_order;
    d.per_addr = r.per_addr;
    d.index_mask = static_cast<uint32_t>(r.subscribers - 1);
    d.shift = static_cast<uint8_t>(128 - r.subscriber_prefix_length);
    d.blocks_per_sub = static_cast<uint8_t>(r.ports_per_subscriber / config.port_blocks().block_size());
  }
  return true;
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
  dp.blocks_per_addr = BlocksPerAddr(config);
  dp.max_blocks_per_sub = pb.max_blocks_per_subscriber();
  dp.max_sessions_per_sub = pb.max_sessions_per_subscriber();
  dp.filtering = config.filtering() == aftr::config::v1::FILTERING_ADDRESS_DEPENDENT
                     ? AFTR_FILTER_ADDRESS_DEPENDENT
                     : AFTR_FILTER_ENDPOINT_INDEPENDENT;
  dp.tcp_mss_clamp = config.tcp_mss_clamp() > 0 ? config.tcp_mss_clamp() : 0;
  dp.hop_limit = config.hop_limit();
  dp.softwire_mtu = static_cast<uint16_t>(config.softwire_mtu());
  dp.icmp_errors_per_second = config.icmp_errors_per_second();
  dp.fib_cache_ticks = config.fib_cache_ms() > 0 ? AFTR_FIB_MS_TO_TICKS(config.fib_cache_ms()) : 0;
  AddDeterministicRanges(config, &dp);
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
  for (const MapSpec& m : kMaps) {
    std::string path = PinOf(pin_path, m.name);
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening pinned map ", path));
    maps->fds_.*m.slot = fd;
  }
  return maps;
}

PinnedMaps::~PinnedMaps() { CloseFds(&fds_); }

// ---- one aftrd per pinned state ----

namespace {

// flock on the pin directory, held for the Datapath's life: two daemons on one pinned
// state would each believe they own the blocks they free. Released by the kernel when the
// process dies, so a SIGKILL never leaves it stale.
absl::StatusOr<int> LockPins(const std::string& pin_path, bool wait) {
  int fd = open(pin_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", pin_path));
  if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another aftrd runs on the maps pinned under ", pin_path, " (it holds their lock)"));
    }
    return ErrnoToStatus(err, absl::StrCat("locking ", pin_path));
  }
  return fd;
}

}  // namespace

absl::Status DetachDataPlane(const Config& config, bool purge) {
  const std::string& pin_path = config.pin_path();
  uint32_t our_map_id = 0;
  int lock_fd = -1;
  absl::Cleanup unlock = [&lock_fd] {
    if (lock_fd >= 0) close(lock_fd);
  };
  if (IsBpffs(pin_path)) {
    absl::StatusOr<int> lock = LockPins(pin_path, false);
    if (!lock.ok()) return lock.status();
    lock_fd = *lock;
    std::string counters = PinOf(pin_path, "aftr_counters");
    if (Exists(counters)) {
      int fd = bpf_obj_get(counters.c_str());
      if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", counters));
      absl::StatusOr<uint32_t> id = MapId(fd);
      close(fd);
      if (!id.ok()) return id.status();
      our_map_id = *id;
    }
  }
  absl::flat_hash_set<int> configured;
  for (int i = 0; i < config.interfaces_size(); ++i) {
    const std::string& name = config.interfaces(i);
    int ifindex = if_nametoindex(name.c_str());
    if (ifindex == 0) {
      LogWarning("interfaces[%d]: no interface named \"%s\" (nothing to detach)", i, name);
      continue;
    }
    configured.insert(ifindex);
    absl::StatusOr<XdpState> st = QueryXdp(ifindex);
    if (!st.ok()) return st.status();
    if (st->drv_id == 0) {
      LogInfo("%s: no XDP program attached", name);
      continue;
    }
    absl::StatusOr<AttachedProg> p = OpenProg(st->drv_id);
    if (!p.ok()) return p.status();
    absl::Cleanup close_prog = [fd = p->fd] { close(fd); };
    if (!IsOurs(*p, our_map_id)) {
      LogWarning("%s: XDP program \"%s\" (id %d) is not ours; left attached", name, p->name,
                 p->id);
      continue;
    }
    if (int err = ReplaceXdp(ifindex, -1, p->fd); err != 0) {
      return ErrnoToStatus(-err, absl::StrCat("detaching XDP from ", name));
    }
    LogInfo("XDP detached from %s", name);
  }
  DetachOursElsewhere(configured, our_map_id);
  if (purge && IsBpffs(pin_path)) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(pin_path, ec)) {
      std::filesystem::remove(entry.path(), ec);
      if (ec) return absl::InternalError(absl::StrCat("removing ", entry.path().string(), ": ", ec.message()));
    }
    close(lock_fd);  // the directory goes next
    lock_fd = -1;
    if (rmdir(pin_path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, absl::StrCat("removing ", pin_path));
    }
    LogInfo("removed the pinned maps under %s", pin_path);
  }
  return absl::OkStatus();
}

// ---- Datapath ----

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::Create(const Config& config) {
  libbpf_set_print(LibbpfPrint);
  auto dp = std::unique_ptr<Datapath>(new Datapath());
  if (absl::Status s = EnsureBpffs(config.pin_path()); !s.ok()) return s;
  absl::StatusOr<int> lock = LockPins(config.pin_path(), false);
  if (!lock.ok()) return lock.status();
  dp->lock_fd_ = *lock;
  // Pins present before load mean a previous aftrd left state (and maybe its program).
  dp->adopted_ = Exists(PinOf(config.pin_path(), "aftr_subscribers"));

  // WaitForDataPlane's map-in-map: any array will do as the inner map.
  dp->barrier_inner_fd_ = bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, 4, 4, 1, nullptr);
  if (dp->barrier_inner_fd_ < 0) return ErrnoToStatus(errno, "creating the RCU barrier map");
  LIBBPF_OPTS(bpf_map_create_opts, outer_opts, .inner_map_fd = static_cast<__u32>(dp->barrier_inner_fd_));
  dp->barrier_outer_fd_ =
      bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, nullptr, 4, 4, 1, &outer_opts);
  if (dp->barrier_outer_fd_ < 0) return ErrnoToStatus(errno, "creating the RCU barrier map");

  absl::MutexLock install(&dp->install_mu_);
  if (absl::Status s = dp->Install(config, nullptr); !s.ok()) return s;
  return dp;
}

absl::Status Datapath::Install(const Config& config, const Config* previous) {
  const bool first = previous == nullptr;
  const std::string& pin_path = config.pin_path();

  // 1. The pinned pool (if any), and what this configuration makes of it.
  PinnedPool pinned;
  if (first) {
    std::string pool_pin = PinOf(pin_path, "aftr_pool_addrs");
    std::string meta_pin = PinOf(pin_path, "aftr_pool_meta");
    if (Exists(pool_pin) && Exists(meta_pin)) {
      int pool_fd = bpf_obj_get(pool_pin.c_str());
      int meta_fd = bpf_obj_get(meta_pin.c_str());
      absl::StatusOr<PinnedPool> read =
          pool_fd >= 0 && meta_fd >= 0 ? ReadPinnedPool(pool_fd, meta_fd)
                                       : ErrnoToStatus(errno, absl::StrCat("opening ", pool_pin));
      if (pool_fd >= 0) close(pool_fd);
      if (meta_fd >= 0) close(meta_fd);
      if (!read.ok()) return read.status();
      pinned = std::move(*read);
      if (absl::Status s = CheckGeometry(config, pinned.meta); !s.ok()) return s;
    }
  } else {
    absl::StatusOr<PinnedPool> read = ReadPinnedPool(fds_.pool_addrs, fds_.pool_meta);
    if (!read.ok()) return read.status();
    pinned = std::move(*read);
  }
  absl::StatusOr<PoolLayout> pool = PlanPool(config, pinned);
  if (!pool.ok()) return pool.status();

  // 2. A program for this configuration, on the pinned maps.
  absl::StatusOr<aftr_bpf*> loaded = LoadProgram(config, *pool);
  if (!loaded.ok()) return loaded.status();
  aftr_bpf* skel = *loaded;
  absl::Cleanup destroy_skel = [skel] { aftr_bpf__destroy(skel); };
  if (first) {
    for (const MapSpec& m : kMaps) {
      std::string path = PinOf(pin_path, m.name);
      int fd = bpf_obj_get(path.c_str());
      if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening pinned map ", path));
      fds_.*m.slot = fd;
    }
    absl::StatusOr<uint32_t> id = MapId(fds_.counters);
    if (!id.ok()) return id.status();
    our_map_id_ = *id;
  }
  // The new program must work on the very maps fds() names (a pin removed behind our back
  // would have made libbpf create a fresh map instead).
  for (size_t i = 0; i < std::size(kMaps); ++i) {
    absl::StatusOr<uint32_t> ours = MapId(fds_.*kMaps[i].slot);
    absl::StatusOr<uint32_t> theirs = MapId(bpf_map__fd(SkelMap(skel, i)));
    if (!ours.ok() || !theirs.ok() || *ours != *theirs) {
      return absl::InternalError(absl::StrCat("the map pinned as ", PinOf(pin_path, kMaps[i].name),
                                              " is not the one this aftrd started with"));
    }
  }

  // 3. Every configured interface is ours or free, before anything changes.
  absl::StatusOr<std::vector<AttachStep>> steps = PlanAttach(config, our_map_id_);
  if (!steps.ok()) return steps.status();
  absl::Cleanup close_steps = [&steps] { CloseSteps(&*steps); };

  // 4. The pool and the B4 prefixes. New pool entries lie past what any running program
  // reaches (its pool_addr_count), so plain writes are safe; flags go through aftr_ctl so
  // that a concurrent block claim on the same entry is never overwritten.
  auto apply_state = [this](const Config& cfg, const PoolLayout& layout, aftr_bpf* ctl) -> absl::Status {
    for (const auto& [index, entry] : layout.appended) {
      if (bpf_map_update_elem(fds_.pool_addrs, &index, &entry, BPF_ANY) != 0) {
        return ErrnoToStatus(errno, "writing aftr_pool_addrs");
      }
    }
    uint32_t zero = 0;
    if (bpf_map_update_elem(fds_.pool_meta, &zero, &layout.meta, BPF_ANY) != 0) {
      return ErrnoToStatus(errno, "writing aftr_pool_meta");
    }
    for (const auto& [index, flags] : layout.flag_changes) {
      aftr_ctl_args args = {};
      args.op = AFTR_CTL_POOL_FLAGS;
      args.addr_index = index;
      args.count = flags;
      absl::MutexLock lock(&mu_);  // aftrd's aftr_ctl runs are serialised
      absl::StatusOr<int> rc = RunCtl(ctl, args);
      if (!rc.ok()) return rc.status();
      if (*rc != 1) return ErrnoToStatus(-*rc, "setting a pool address's flags");
    }
    return SeedB4Prefixes(fds_.b4_prefixes, cfg);
  };
  absl::Status applied = apply_state(config, *pool, skel);

  // 5. Attach: replace ours atomically, or attach where nothing runs.
  if (applied.ok()) applied = ApplyAttach(*steps, bpf_program__fd(skel->progs.aftr_xdp));
  if (!applied.ok()) {
    if (previous) {
      // Put back the previous configuration's pool flags and B4 prefixes (addresses it
      // appended stay, draining and empty: harmless, and forgotten on the next layout).
      absl::StatusOr<PinnedPool> now = ReadPinnedPool(fds_.pool_addrs, fds_.pool_meta);
      absl::StatusOr<PoolLayout> back = now.ok() ? PlanPool(*previous, *now) : now.status();
      absl::Status restored = back.ok() ? apply_state(*previous, *back, skel) : back.status();
      if (!restored.ok()) {
        LogError("restoring the previous pool and B4 prefixes: %s", restored.ToString());
      }
    }
    return applied;
  }
  absl::flat_hash_set<int> configured;
  for (const AttachStep& s : *steps) configured.insert(s.ifindex);
  DetachOursElsewhere(configured, our_map_id_);

  // 6. The new program is the current one.
  aftr_bpf* old = nullptr;
  {
    absl::MutexLock lock(&mu_);
    old = skel_;
    skel_ = skel;
    configs_.push_back(std::make_unique<const Config>(config));
    pool_entries_ = pool->entries;
    pool_prefixes_ = pool->prefixes;
  }
  std::move(destroy_skel).Cancel();
  if (old) aftr_bpf__destroy(old);  // its program is attached nowhere now: the kernel frees it

  for (const std::string& p : pool->forgotten) {
    LogInfo("pool prefix %s drained: no block left on it, forgotten", p);
  }
  LogInfo("data plane %s: %d pool addresses (%d draining) in %d prefixes, %d blocks of %d "
          "ports each, %d B4 prefixes",
          first ? (adopted_ ? "adopted from pinned maps" : "loaded with empty tables")
                : "reprogrammed",
          pool->entries, pool->draining_addresses, pool->prefixes.size(), BlocksPerAddr(config),
          config.port_blocks().block_size(), config.b4_prefixes_size());
  return absl::OkStatus();
}

absl::Status Datapath::Reprogram(const Config& new_config) {
  absl::MutexLock install(&install_mu_);
  const Config& running = config();
  std::vector<std::string> fixed = FixedFieldChanges(running, new_config);
  if (!fixed.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot change while aftrd runs: ", absl::StrJoin(fixed, ", "),
        "; these size, place or lay out the pinned maps"));
  }
  return Install(new_config, &running);
}

const Config& Datapath::config() const {
  absl::MutexLock lock(&mu_);
  return *configs_.back();
}

uint32_t Datapath::pool_size() const {
  absl::MutexLock lock(&mu_);
  return pool_entries_;
}

absl::StatusOr<std::vector<PoolAddressState>> Datapath::ReadPool() const {
  uint32_t entries;
  std::vector<aftr_pool_prefix> prefixes;
  const Config* cfg;
  {
    absl::MutexLock lock(&mu_);
    entries = pool_entries_;
    prefixes = pool_prefixes_;
    cfg = configs_.back().get();
  }
  const uint32_t blocks_per_addr = BlocksPerAddr(*cfg);
  std::vector<uint32_t> keys;
  std::vector<aftr_pool_addr> values;
  if (absl::Status s = ReadMap(fds_.pool_addrs, &keys, &values); !s.ok()) return s;
  std::vector<PoolAddressState> out;
  for (uint32_t i = 0; i < entries && i < values.size(); ++i) {
    const aftr_pool_addr& e = values[i];
    Ipv4Address addr{ntohl(e.addr)};
    // Its prefix: a configured one if any holds it, else the draining one.
    const aftr_pool_prefix* owner = nullptr;
    for (const aftr_pool_prefix& p : prefixes) {
      if (!ToPrefix(p).Contains(addr)) continue;
      if (!owner || !(p.flags & AFTR_POOL_ADDR_DRAINING)) owner = &p;
      if (!(p.flags & AFTR_POOL_ADDR_DRAINING)) break;
    }
    if (!owner) continue;  // a forgotten prefix's address: empty, and no longer ours
    PoolAddressState st;
    st.addr = addr;
    st.prefix = ToPrefix(*owner);
    st.draining = e.flags & AFTR_POOL_ADDR_DRAINING;
    st.blocks_used = BlocksUsed(e, blocks_per_addr);
    st.blocks_total = blocks_per_addr;
    out.push_back(st);
  }
  return out;
}

absl::StatusOr<int> Datapath::Ctl(const aftr_ctl_args& args) const {
  absl::MutexLock lock(&mu_);
  return RunCtl(skel_, args);
}

absl::StatusOr<Datapath::SlowRun> Datapath::RunSlowPath(std::span<const uint8_t> frame,
                                                         int ingress_ifindex) const {
  if (frame.size() > kMaxSlowRunFrame) {
    return absl::OutOfRangeError(absl::StrCat("a ", frame.size(), "-byte frame is more than a slow-path run takes (",
                                              kMaxSlowRunFrame, ")"));
  }
  aftr_slow_meta meta{};
  meta.magic = AFTR_SLOW_META_MAGIC;
  std::vector<uint8_t> in(sizeof(meta) + frame.size());
  std::memcpy(in.data(), &meta, sizeof(meta));
  std::memcpy(in.data() + sizeof(meta), frame.data(), frame.size());
  // Room for what the program may push (an IPv6 header, and slack).
  std::vector<uint8_t> out(in.size() + 256);
  xdp_md ctx_in{}, ctx_out{};
  ctx_in.data = sizeof(meta);  // the metadata area: test_run's data_in begins with it
  ctx_in.data_end = in.size();
  ctx_in.ingress_ifindex = ingress_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(in.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx_in,
              .ctx_out = &ctx_out, .ctx_size_in = sizeof(ctx_in), .ctx_size_out = sizeof(ctx_out),
              .repeat = 1);
  int err;
  {
    absl::MutexLock lock(&mu_);
    err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.aftr_xdp), &opts);
  }
  if (err != 0) return ErrnoToStatus(errno, "running aftr_xdp on a slow-path frame");
  // data_out starts with the metadata; ctx_out.data is its length.
  if (ctx_out.data != sizeof(meta) || opts.data_size_out < sizeof(meta) ||
      opts.data_size_out > out.size()) {
    return absl::InternalError(absl::StrCat("slow-path run returned ", opts.data_size_out,
                                            " bytes with ", ctx_out.data, " of metadata"));
  }
  SlowRun run;
  run.verdict = static_cast<int>(opts.retval);
  std::memcpy(&run.meta, out.data(), sizeof(meta));
  run.frame.assign(out.begin() + sizeof(meta), out.begin() + opts.data_size_out);
  return run;
}

absl::Status Datapath::WaitForDataPlane() const {
  uint32_t zero = 0;
  if (bpf_map_update_elem(barrier_outer_fd_, &zero, &barrier_inner_fd_, BPF_ANY) != 0) {
    return ErrnoToStatus(errno, "waiting for running XDP programs (map-in-map update)");
  }
  return absl::OkStatus();
}

Datapath::~Datapath() {
  // XDP stays attached (the netlink attachment holds the program) and the maps stay pinned:
  // the data plane goes on alone until the next aftrd adopts it or `aftrd --detach`.
  {
    absl::MutexLock lock(&mu_);
    if (skel_) aftr_bpf__destroy(skel_);
    skel_ = nullptr;
  }
  CloseFds(&fds_);
  if (barrier_outer_fd_ >= 0) close(barrier_outer_fd_);
  if (barrier_inner_fd_ >= 0) close(barrier_inner_fd_);
  if (lock_fd_ >= 0) close(lock_fd_);
}

}  // namespace aftr::bpf
