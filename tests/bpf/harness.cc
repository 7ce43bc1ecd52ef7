// Harness implementation: skeleton loading with unpinned maps, map seeding, test runs,
// and the one-per-process network namespace that gives bpf_fib_lookup routes to find.
#include "harness.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sched.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>

#include "aftr_bpf.skel.h"

namespace bpftest {
namespace {

// Interface names private to this test binary (the namespace is private anyway).
constexpr char kB4Dev[] = "aftrbt-b4";
constexpr char kInetDev[] = "aftrbt-inet";
constexpr Mac kB4LocalMac{0x02, 0x00, 0x5e, 0x00, 0xb4, 0x01};
constexpr Mac kB4GatewayMac{0x02, 0x00, 0x5e, 0x00, 0xb4, 0xfe};
constexpr Mac kInetLocalMac{0x02, 0x00, 0x5e, 0x00, 0x0e, 0x01};
constexpr Mac kInetGatewayMac{0x02, 0x00, 0x5e, 0x00, 0x0e, 0xfe};

constexpr size_t kOutCapacity = 4096;  // > any test frame plus the 40 bytes encap adds

#define AFTR_COUNTER_NAME(id, name) name,
constexpr const char* kCounterNames[] = {AFTR_COUNTER_LIST(AFTR_COUNTER_NAME)};
#undef AFTR_COUNTER_NAME

[[noreturn]] void Fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

std::string MacString(const Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
                m[4], m[5]);
  return buf;
}

void Shell(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null").c_str());
  if (rc != 0) throw std::runtime_error("test network setup: `" + cmd + "` failed");
}

void WriteSysctl(const char* path, const char* value) {
  std::ofstream f(path);
  f << value;
  f.close();
  if (!f) throw std::runtime_error(std::string("cannot write ") + path);
}

// Leaves the host's namespace for good before touching any interface: nothing below can
// leak out, and everything disappears with the process.
TestNet SetUpNet() {
  if (unshare(CLONE_NEWNET) != 0) Fail("unshare(CLONE_NEWNET) (need root)", errno);
  // bpf_fib_lookup answers FWD_DISABLED unless the ingress device forwards.
  WriteSysctl("/proc/sys/net/ipv4/ip_forward", "1");
  WriteSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
  WriteSysctl("/proc/sys/net/ipv6/conf/default/forwarding", "1");

  TestNet n;
  n.b4_local_mac = kB4LocalMac;
  n.b4_gateway_mac = kB4GatewayMac;
  n.inet_local_mac = kInetLocalMac;
  n.inet_gateway_mac = kInetGatewayMac;
  const std::string b4 = kB4Dev, inet = kInetDev;
  Shell("ip link add " + b4 + " address " + MacString(kB4LocalMac) + " type veth peer name " +
        inet + " address " + MacString(kInetLocalMac));
  Shell("ip link set lo up");
  Shell("ip link set " + b4 + " up");
  Shell("ip link set " + inet + " up");
  WriteSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");  // now applies to both ends
  Shell("ip -6 route add 2001:db8:100::/40 via fe80::b4 dev " + b4);
  Shell("ip -6 neigh add fe80::b4 lladdr " + MacString(kB4GatewayMac) + " dev " + b4 +
        " nud permanent");
  Shell("ip route add 203.0.113.0/25 via 203.0.113.126 dev " + inet + " onlink");
  Shell("ip neigh add 203.0.113.126 lladdr " + MacString(kInetGatewayMac) + " dev " + inet +
        " nud permanent");
  // A gateway never resolved: lookups through it answer NO_NEIGH.
  Shell("ip route add 203.0.113.128/25 via 203.0.113.254 dev " + inet + " onlink");
  n.b4_ifindex = if_nametoindex(kB4Dev);
  n.inet_ifindex = if_nametoindex(kInetDev);
  if (!n.b4_ifindex || !n.inet_ifindex) Fail("if_nametoindex", errno);
  return n;
}

int QuietLibbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level != LIBBPF_WARN) return 0;
  return std::vfprintf(stderr, fmt, args);
}

// Pool addresses of a configuration: its prefixes enumerated in order, pool_addr_count in all.
std::vector<uint32_t> PoolAddresses(const aftr_dp_config& cfg) {
  std::vector<uint32_t> pool;
  for (uint32_t p = 0; p < cfg.pool_prefix_count && pool.size() < cfg.pool_addr_count; p++) {
    uint32_t base = ntohl(cfg.pool_prefix_addr[p]);
    uint32_t size = ~ntohl(cfg.pool_prefix_mask[p]) + 1;
    for (uint32_t i = 0; i < size && pool.size() < cfg.pool_addr_count; i++)
      pool.push_back(htonl(base + i));
  }
  return pool;
}

template <typename K, typename V>
std::vector<std::pair<K, V>> Dump(int fd) {
  std::vector<std::pair<K, V>> entries;
  K key{}, next{};
  const K* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    V value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) entries.emplace_back(next, value);
    key = next;
    prev = &key;
  }
  return entries;
}

}  // namespace

const TestNet& Net() {
  static std::once_flag once;
  static TestNet net;
  std::call_once(once, [] { net = SetUpNet(); });
  return net;
}

const char* CounterName(aftr_counter c) {
  return c < AFTR_COUNTER_MAX ? kCounterNames[c] : "?";
}

std::string CounterDiff(const CounterValues& before, const CounterValues& after) {
  std::string s;
  for (int c = 0; c < AFTR_COUNTER_MAX; c++) {
    if (after[c] == before[c]) continue;
    if (!s.empty()) s += ' ';
    s += kCounterNames[c];
    s += '=';
    s += after[c] < before[c] ? "-" + std::to_string(before[c] - after[c])
                              : std::to_string(after[c] - before[c]);
  }
  return s;
}

aftr_dp_config DefaultConfig() { return ConfigWithPorts(1024, 65535, 64, 2); }

aftr_dp_config ConfigWithPorts(uint16_t port_min, uint16_t port_max, uint16_t block_size,
                               uint32_t max_blocks_per_sub) {
  aftr_dp_config c{};
  Ip6 sw = Ip6Addr("2001:db8:ffff::1");
  std::memcpy(c.softwire_addrs[0], sw.data(), 16);
  c.softwire_addr_count = 1;
  c.pool_prefix_addr[0] = Ip4Addr("198.51.100.0");
  c.pool_prefix_mask[0] = Ip4Addr("255.255.255.252");
  c.pool_prefix_count = 1;
  c.pool_addr_count = 4;
  c.port_min = port_min;
  c.block_size = block_size;
  c.blocks_per_addr = (uint32_t{port_max} - port_min + 1) / block_size;
  c.max_blocks_per_sub = max_blocks_per_sub;
  c.max_sessions_per_sub = 1000;
  c.filtering = AFTR_FILTER_ENDPOINT_INDEPENDENT;
  c.tcp_mss_clamp = 1420;
  c.hop_limit = 64;
  c.fib_cache_ticks = 0;  // look up every packet unless a test wants the cache
  c.softwire_mtu = 1500;
  c.icmp_errors_per_second = UINT32_MAX;  // never rate limited unless a test wants it
  c.abi_version = AFTR_ABI_VERSION;
  return c;
}

void AddDeterministicRange(aftr_dp_config* cfg, const Ip6& b4_prefix, int b4_len, int sub_len,
                           uint32_t pool_addr, int pool_len, uint32_t ports_per_sub) {
  uint32_t mask4 = pool_len == 0 ? 0 : ~0u << (32 - pool_len);
  cfg->pool_prefix_addr[cfg->pool_prefix_count] = pool_addr;
  cfg->pool_prefix_mask[cfg->pool_prefix_count] = htonl(mask4);
  cfg->pool_prefix_count++;
  aftr_det_range& d = cfg->det[cfg->det_count++];
  d = {};
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) hi = (hi << 8) | b4_prefix[i];
  for (int i = 8; i < 16; ++i) lo = (lo << 8) | b4_prefix[i];
  d.mask_hi = b4_len == 0 ? 0 : b4_len >= 64 ? ~0ull : ~0ull << (64 - b4_len);
  d.mask_lo = b4_len <= 64 ? 0 : ~0ull << (128 - b4_len);
  d.prefix_hi = hi & d.mask_hi;
  d.prefix_lo = lo & d.mask_lo;
  d.pool_base = ntohl(pool_addr);
  d.blocks_per_sub = uint8_t(ports_per_sub / cfg->block_size);
  d.per_addr = cfg->blocks_per_addr / d.blocks_per_sub;
  d.index_mask = uint32_t((uint64_t{1} << (sub_len - b4_len)) - 1);
  d.shift = uint8_t(128 - sub_len);
}

Harness::Harness(const aftr_dp_config& cfg, const MapSizes& sizes)
    : cfg_(cfg), pool_(PoolAddresses(cfg)) {
  Net();  // the namespace must exist before anything refers to an interface
  libbpf_set_print(QuietLibbpf);

  skel_ = aftr_bpf__open();
  if (!skel_) Fail("aftr_bpf__open", errno);
  skel_->rodata->aftr_cfg = cfg;
  // Unpinned: every Harness gets fresh maps, nothing is left in bpffs.
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) bpf_map__set_pin_path(map, nullptr);
  bpf_map__set_max_entries(skel_->maps.aftr_sessions_out, sizes.sessions_out);
  bpf_map__set_max_entries(skel_->maps.aftr_sessions_in, sizes.sessions_in);
  bpf_map__set_max_entries(skel_->maps.aftr_subscribers, sizes.subscribers);
  bpf_map__set_max_entries(skel_->maps.aftr_filter_peers, sizes.filter_peers);
  bpf_map__set_max_entries(skel_->maps.aftr_pool_addrs,
                           sizes.pool_addrs ? sizes.pool_addrs : (pool_.empty() ? 1 : pool_.size()));
  bpf_map__set_max_entries(skel_->maps.aftr_b4_prefixes, 16);
  bpf_map__set_max_entries(skel_->maps.aftr_events, 1 << 16);
  if (int err = aftr_bpf__load(skel_)) {
    aftr_bpf__destroy(skel_);
    Fail("aftr_bpf__load", -err);
  }

  // Seed as aftrd does: allowed B4 prefixes, pool addresses with the blocks past
  // blocks_per_addr marked used, and the pool hint.
  aftr_b4_prefix_key pk{};
  pk.prefixlen = 40;
  Ip6 b4net = Ip6Addr("2001:db8:100::");
  std::memcpy(pk.addr, b4net.data(), 16);
  uint32_t one = 1;
  if (bpf_map_update_elem(MapFd("aftr_b4_prefixes"), &pk, &one, BPF_ANY))
    Fail("seed aftr_b4_prefixes", errno);
  for (uint32_t i = 0; i < pool_.size(); i++) {
    aftr_pool_addr pa{};
    pa.addr = pool_[i];
    for (uint32_t b = cfg.blocks_per_addr; b < AFTR_MAX_BLOCKS_PER_ADDR; b++)
      pa.used[b / 64] |= 1ull << (b % 64);
    SetPoolAddr(i, pa);
  }
  SetPoolHint(aftr_pool_hint{});

  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.aftr_events), &Harness::OnEvent,
                           &pending_events_, nullptr);
  if (!ring_) Fail("ring_buffer__new", errno);
  slow_ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.aftr_slow_path), &Harness::OnSlowRecord,
                                &pending_slow_, nullptr);
  if (!slow_ring_) Fail("ring_buffer__new aftr_slow_path", errno);
}

Harness::~Harness() {
  ring_buffer__free(ring_);
  ring_buffer__free(slow_ring_);
  aftr_bpf__destroy(skel_);
}

int Harness::MapFd(const char* name) const {
  bpf_map* map = bpf_object__find_map_by_name(skel_->obj, name);
  if (!map) throw std::runtime_error(std::string("no map ") + name);
  return bpf_map__fd(map);
}

RunResult Harness::Run(const Bytes& frame) {
  bool ipv6 = frame.size() >= 14 && frame[12] == 0x86 && frame[13] == 0xdd;
  return RunOn(ipv6 ? Net().b4_ifindex : Net().inet_ifindex, frame);
}

RunResult Harness::RunOn(int ingress_ifindex, const Bytes& frame, uint32_t meta_len) {
  RunResult r;
  r.out.resize(kOutCapacity);
  xdp_md ctx{};
  ctx.data = meta_len;
  ctx.data_end = frame.size();
  ctx.ingress_ifindex = ingress_ifindex;
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = frame.size();
  opts.data_out = r.out.data();
  opts.data_size_out = r.out.size();
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.repeat = 1;
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.aftr_xdp), &opts))
    Fail("BPF_PROG_TEST_RUN aftr_xdp", errno);
  r.out.resize(opts.data_size_out);
  r.verdict = static_cast<int>(opts.retval);
  return r;
}

int Harness::Ctl(const aftr_ctl_args& args) const {
  aftr_ctl_args copy = args;
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.ctx_in = &copy;
  opts.ctx_size_in = sizeof(copy);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.aftr_ctl), &opts))
    Fail("BPF_PROG_TEST_RUN aftr_ctl", errno);
  return static_cast<int>(opts.retval);
}

std::array<CounterValues, AFTR_DIR_MAX> Harness::CountersByDirection() const {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) Fail("libbpf_num_possible_cpus", -ncpu);
  std::vector<aftr_counters> per_cpu(ncpu);
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(MapFd("aftr_counters"), &zero, per_cpu.data()))
    Fail("lookup aftr_counters", errno);
  std::array<CounterValues, AFTR_DIR_MAX> sum{};
  for (const aftr_counters& v : per_cpu)
    for (int d = 0; d < AFTR_DIR_MAX; d++)
      for (int c = 0; c < AFTR_COUNTER_MAX; c++) sum[d][c] += v.dir[d].c[c];
  return sum;
}

CounterValues Harness::Counters() const {
  CounterValues total{};
  for (const CounterValues& row : CountersByDirection())
    for (int c = 0; c < AFTR_COUNTER_MAX; c++) total[c] += row[c];
  return total;
}

std::string Harness::CounterString() const { return CounterDiff(CounterValues{}, Counters()); }

int Harness::OnEvent(void* ctx, void* data, size_t size) {
  auto* events = static_cast<std::vector<aftr_event>*>(ctx);
  aftr_event e{};
  std::memcpy(&e, data, size < sizeof(e) ? size : sizeof(e));
  events->push_back(e);
  return 0;
}

std::vector<aftr_event> Harness::DrainEvents() {
  if (ring_buffer__consume(ring_) < 0) Fail("ring_buffer__consume", errno);
  std::vector<aftr_event> events;
  events.swap(pending_events_);
  return events;
}

std::optional<aftr_subscriber> Harness::Subscriber(const Ip6& b4) const {
  aftr_subscriber_key k{};
  std::memcpy(k.b4, b4.data(), 16);
  aftr_subscriber v{};
  if (bpf_map_lookup_elem(MapFd("aftr_subscribers"), &k, &v)) return std::nullopt;
  return v;
}

std::optional<aftr_session_out> Harness::SessionOut(const aftr_session_out_key& key) const {
  aftr_session_out v{};
  if (bpf_map_lookup_elem(MapFd("aftr_sessions_out"), &key, &v)) return std::nullopt;
  return v;
}

std::optional<aftr_session_in> Harness::SessionIn(const aftr_session_in_key& key) const {
  aftr_session_in v{};
  if (bpf_map_lookup_elem(MapFd("aftr_sessions_in"), &key, &v)) return std::nullopt;
  return v;
}

std::vector<std::pair<aftr_session_out_key, aftr_session_out>> Harness::SessionsOut() const {
  return Dump<aftr_session_out_key, aftr_session_out>(MapFd("aftr_sessions_out"));
}

std::vector<std::pair<aftr_session_in_key, aftr_session_in>> Harness::SessionsIn() const {
  return Dump<aftr_session_in_key, aftr_session_in>(MapFd("aftr_sessions_in"));
}

size_t Harness::SubscriberCount() const {
  return Dump<aftr_subscriber_key, aftr_subscriber>(MapFd("aftr_subscribers")).size();
}

size_t Harness::FilterPeerCount() const {
  return Dump<aftr_filter_key, uint64_t>(MapFd("aftr_filter_peers")).size();
}

std::vector<aftr_filter_key> Harness::FilterPeers() const {
  std::vector<aftr_filter_key> keys;
  for (const auto& [key, seen] : Dump<aftr_filter_key, uint64_t>(MapFd("aftr_filter_peers")))
    keys.push_back(key);
  return keys;
}

std::vector<std::pair<Ip6, aftr_b4_mtu>> Harness::B4Mtus() const {
  std::vector<std::pair<Ip6, aftr_b4_mtu>> out;
  for (const auto& [key, v] : Dump<aftr_subscriber_key, aftr_b4_mtu>(MapFd("aftr_b4_mtu"))) {
    Ip6 b4;
    std::memcpy(b4.data(), key.b4, 16);
    out.emplace_back(b4, v);
  }
  return out;
}

void Harness::SetB4Mtu(const Ip6& b4, const aftr_b4_mtu& value) {
  aftr_subscriber_key k{};
  std::memcpy(k.b4, b4.data(), 16);
  if (bpf_map_update_elem(MapFd("aftr_b4_mtu"), &k, &value, BPF_ANY)) Fail("update b4 mtu", errno);
}

aftr_pool_addr Harness::PoolAddr(uint32_t index) const {
  aftr_pool_addr v{};
  if (bpf_map_lookup_elem(MapFd("aftr_pool_addrs"), &index, &v)) Fail("lookup pool", errno);
  return v;
}

void Harness::SetPoolAddr(uint32_t index, const aftr_pool_addr& value) {
  if (bpf_map_update_elem(MapFd("aftr_pool_addrs"), &index, &value, BPF_ANY))
    Fail("update aftr_pool_addrs", errno);
}

void Harness::SetPoolHint(const aftr_pool_hint& hint) {
  uint32_t zero = 0;
  if (bpf_map_update_elem(MapFd("aftr_pool_hint"), &zero, &hint, BPF_ANY))
    Fail("update aftr_pool_hint", errno);
}

int Harness::OnSlowRecord(void* ctx, void* data, size_t size) {
  auto* records = static_cast<std::vector<SlowRecord>*>(ctx);
  SlowRecord r;
  if (size >= sizeof(r.hdr)) {
    std::memcpy(&r.hdr, data, sizeof(r.hdr));
    const auto* bytes = static_cast<const uint8_t*>(data) + sizeof(r.hdr);
    r.frame.assign(bytes, bytes + (size - sizeof(r.hdr)));
  }
  records->push_back(std::move(r));
  return 0;
}

std::vector<Harness::SlowRecord> Harness::DrainSlowPath() {
  if (ring_buffer__consume(slow_ring_) < 0) Fail("ring_buffer__consume aftr_slow_path", errno);
  std::vector<SlowRecord> records;
  records.swap(pending_slow_);
  return records;
}

}  // namespace bpftest
