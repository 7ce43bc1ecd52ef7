// aftr_microbench: nanoseconds per packet of each aftr_xdp path under BPF_PROG_TEST_RUN, with
// a realistic session table, quoted as a ratio to an empty XDP program timed the same way
// (DESIGN.md, "Performance: how it is measured"). Run as root; takes a few seconds.
//
//   aftr_microbench [--sessions N] [--calls N] [--flows N] [--per-b4 N] [--max-entries N]
//                   [--batch N] [--cpu N] [--no-prealloc]
//
// Rows: the empty program; established outbound (decap + NAT + FIB + redirect) and inbound
// (NAT + encap + FIB + redirect), each over --flows sessions cycled through (warm) and over a
// different random session per call (cold); a new session from a known B4; the first packet
// of a new B4; a hairpinned packet (B4 to another subscriber's public end: decap + NAT of
// both ends + encap + FIB); an ICMP error from behind a B4 (port unreachable quoting the
// inbound datagram: embedded header translated, decap + FIB); an IPv4 fragment inside a
// softwire packet and one from the Internet to a pool address, each copied whole into the
// slow-path ring aftr_slow_path and dropped (XDP_DROP, slow_path_queued: what the fast path
// pays per fragment before aftrd reassembles). Then reference programs
// (bench/microbench/probes.bpf.c) that do one piece alone -- bpf_fib_lookup IPv4/IPv6, one
// aftr_sessions_out lookup -- to show where time goes.
//
// How it measures, and why:
//  - Every figure is one BPF_PROG_TEST_RUN call with repeat=1, timed by the kernel
//    (opts.duration). test_run does not restore the frame between repetitions, so a
//    decapsulating program would only decapsulate on the first one; single calls avoid that.
//    The kernel's figure includes its own clock reads around the run: that fixed cost is what
//    the empty program measures, hence the ratio (and the added_ns column). The clock steps
//    by 10 ns on some VMs: mean1090, the mean of the calls between p10 and p90, resolves
//    changes smaller than a step.
//  - The rows are interleaved in batches (--batch calls of one row, then the next), so noise
//    from other work on the machine falls on all of them alike.
//  - The process enters a private network namespace with a veth pair, routes and permanent
//    neighbours, so bpf_fib_lookup succeeds and each run ends in XDP_REDIRECT like live
//    traffic; any other verdict makes the figure meaningless and the exit status 1. The first
//    call of each row has its output frame checked (addresses, ports, MACs).
//  - Maps are unpinned (nothing under bpffs is touched) and filled with --sessions consistent
//    out/in entries, their subscribers and their pool blocks before timing.
//  - New sessions are genuinely new flows (and new B4s); the event ring (64 MiB) is drained
//    after every batch and event_lost is reported.
//  - The slow-path ring (4 MiB, ~30 k of these fragments) is drained after every batch too,
//    so a fragment row measures the queueing, never the ring-full drop; each fragment row
//    must count exactly one slow_path_queued and one ring record of its kind per call.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "aftr/abi.h"
#include "aftr_bpf.skel.h"
#include "aftr_mb_probes.skel.h"
#include "bench/common/bench_env.h"

namespace {

// ---- Addresses (documentation ranges only) and the NAT layout ----
constexpr uint8_t kSoftwire[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0,
                                   0,    0,    0,    0,    0,    0,    0, 1};
constexpr uint8_t kB4Prefix[5] = {0x20, 0x01, 0x0d, 0xb8, 0x01};  // 2001:db8:100::/40
constexpr uint32_t kInnerNet = 0xc0000200;                        // 192.0.2.0/24
constexpr uint32_t kPoolNet = 0xc6336400;                         // 198.51.100.0/24
constexpr uint32_t kPoolAddrs = 256;
constexpr uint32_t kServer = 0xcb00710a;  // 203.0.113.10
constexpr uint16_t kServerPort = 443;
constexpr uint16_t kPortMin = 1024;
constexpr uint16_t kPortMax = 65535;
constexpr uint16_t kBlockSize = 512;
constexpr uint32_t kBlocksPerAddr = (uint32_t{kPortMax} - kPortMin + 1) / kBlockSize;  // 126
constexpr uint16_t kInnerPortBase = 10000;    // installed sessions: 10000 + j
constexpr uint16_t kNewFlowPortBase = 30000;  // new sessions on existing subscribers
constexpr size_t kInnerPacketLen = 46;  // IPv4 20 + UDP 8 + 18 payload: 100-byte DS-Lite frame
constexpr size_t kFrameOut = 256;

constexpr char kB4Dev[] = "mb-b4";
constexpr char kInetDev[] = "mb-inet";
constexpr uint8_t kB4LocalMac[6] = {0x02, 0x00, 0x5e, 0x10, 0xb4, 0x01};
constexpr uint8_t kB4GatewayMac[6] = {0x02, 0x00, 0x5e, 0x10, 0xb4, 0xfe};
constexpr uint8_t kInetLocalMac[6] = {0x02, 0x00, 0x5e, 0x10, 0x0e, 0x01};
constexpr uint8_t kInetGatewayMac[6] = {0x02, 0x00, 0x5e, 0x10, 0x0e, 0xfe};

#define AFTR_COUNTER_NAME(id, name) name,
constexpr const char* kCounterNames[AFTR_COUNTER_MAX] = {AFTR_COUNTER_LIST(AFTR_COUNTER_NAME)};
#undef AFTR_COUNTER_NAME

[[noreturn]] void Die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("aftr_microbench: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::exit(2);
}

struct Options {
  uint64_t sessions = 1000000;
  uint32_t calls = 20000;
  uint32_t flows = 64;
  uint32_t per_b4 = 64;
  uint64_t max_entries = 0;  // 0: sessions * 3 / 2
  uint32_t batch = 200;
  int cpu = -2;  // -2: last CPU, -1: no pinning
  bool no_prealloc = false;
};

uint64_t ParseNumber(const char* flag, const char* s) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0') Die("%s: not a number: '%s'", flag, s);
  return v;
}

Options ParseOptions(int argc, char** argv) {
  static const option kLong[] = {{"sessions", required_argument, nullptr, 's'},
                                 {"calls", required_argument, nullptr, 'c'},
                                 {"flows", required_argument, nullptr, 'f'},
                                 {"per-b4", required_argument, nullptr, 'p'},
                                 {"max-entries", required_argument, nullptr, 'm'},
                                 {"batch", required_argument, nullptr, 'b'},
                                 {"cpu", required_argument, nullptr, 'C'},
                                 {"no-prealloc", no_argument, nullptr, 'n'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  Options o;
  for (int c; (c = getopt_long(argc, argv, "h", kLong, nullptr)) != -1;) {
    switch (c) {
      case 's':
        o.sessions = ParseNumber("--sessions", optarg);
        break;
      case 'c':
        o.calls = ParseNumber("--calls", optarg);
        break;
      case 'f':
        o.flows = ParseNumber("--flows", optarg);
        break;
      case 'p':
        o.per_b4 = ParseNumber("--per-b4", optarg);
        break;
      case 'm':
        o.max_entries = ParseNumber("--max-entries", optarg);
        break;
      case 'b':
        o.batch = ParseNumber("--batch", optarg);
        break;
      case 'C':
        o.cpu = std::atoi(optarg);
        break;
      case 'n':
        o.no_prealloc = true;
        break;
      default:
        std::printf(
            "usage: aftr_microbench [--sessions N (1000000)] [--calls N per path (20000)]\n"
            "       [--flows N established sessions cycled through (64)] [--per-b4 N sessions\n"
            "       per B4 (64)] [--max-entries N session map size (sessions*1.5)]\n"
            "       [--batch N calls per interleaved batch (200)] [--cpu N (-1: no pinning;\n"
            "       default: the last CPU)] [--no-prealloc: session maps with BPF_F_NO_PREALLOC,\n"
            "       an experiment; aftrd preallocates]\n");
        std::exit(c == 'h' ? 0 : 2);
    }
  }
  if (o.sessions == 0 || o.calls == 0 || o.flows == 0 || o.batch == 0) Die("counts must be > 0");
  if (o.per_b4 == 0 || o.per_b4 > 256) Die("--per-b4 must be 1..256 (one 512-port block per B4)");
  if (o.max_entries == 0) o.max_entries = o.sessions * 3 / 2;
  return o;
}

// ---- Network namespace: routes and neighbours for bpf_fib_lookup ----

std::string Mac(const uint8_t m[6]) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

void Shell(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null").c_str()) != 0)
    Die("network setup: `%s` failed", cmd.c_str());
}

void WriteSysctl(const char* path, const char* value) {
  std::ofstream f(path);
  f << value;
  f.close();
  if (!f) Die("cannot write %s", path);
}

struct Net {
  int b4_ifindex;
  int inet_ifindex;
};

// B4 side: mb-b4, 2001:db8:100::/40 via fe80::b4. Internet side: mb-inet (mb-b4's veth
// peer), 203.0.113.0/24 via 203.0.113.254. Both gateways are permanent neighbours.
Net EnterPrivateNet() {
  if (unshare(CLONE_NEWNET) != 0)
    Die("unshare(CLONE_NEWNET): %s (run as root)", std::strerror(errno));
  WriteSysctl("/proc/sys/net/ipv4/ip_forward", "1");  // else bpf_fib_lookup: FWD_DISABLED
  WriteSysctl("/proc/sys/net/ipv6/conf/default/forwarding", "1");
  const std::string b4 = kB4Dev, inet = kInetDev;
  Shell("ip link set lo up");
  Shell("ip link add " + b4 + " address " + Mac(kB4LocalMac) + " type veth peer name " + inet +
        " address " + Mac(kInetLocalMac));
  Shell("ip link set " + b4 + " up");
  Shell("ip link set " + inet + " up");
  WriteSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
  Shell("ip -6 route add 2001:db8:100::/40 via fe80::b4 dev " + b4);
  Shell("ip -6 neigh add fe80::b4 lladdr " + Mac(kB4GatewayMac) + " dev " + b4 + " nud permanent");
  Shell("ip route add 203.0.113.0/24 via 203.0.113.254 dev " + inet + " onlink");
  Shell("ip neigh add 203.0.113.254 lladdr " + Mac(kInetGatewayMac) + " dev " + inet +
        " nud permanent");
  Net n{static_cast<int>(if_nametoindex(kB4Dev)), static_cast<int>(if_nametoindex(kInetDev))};
  if (n.b4_ifindex == 0 || n.inet_ifindex == 0) Die("if_nametoindex: %s", std::strerror(errno));
  return n;
}

// ---- Frames ----

using aftr::bench::Checksum;
using aftr::bench::Get16;
using aftr::bench::Get32;
using aftr::bench::Put16;
using aftr::bench::Put32;

// IPv4 + UDP with correct checksums (addresses and ports in host order).
void WriteInner(uint8_t* ip, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
  std::memset(ip, 0, kInnerPacketLen);
  ip[0] = 0x45;
  Put16(ip + 2, kInnerPacketLen);
  Put16(ip + 4, 0x1234);
  Put16(ip + 6, 0x4000);  // DF
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  Put32(ip + 12, src);
  Put32(ip + 16, dst);
  Put16(ip + 10, Checksum(ip, 20));
  uint8_t* udp = ip + 20;
  const size_t udp_len = kInnerPacketLen - 20;
  Put16(udp, sport);
  Put16(udp + 2, dport);
  Put16(udp + 4, udp_len);
  for (size_t i = 8; i < udp_len; i++) udp[i] = static_cast<uint8_t>(i);
  uint32_t pseudo =
      (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + IPPROTO_UDP + udp_len;
  uint16_t c = Checksum(udp, udp_len, pseudo);
  Put16(udp + 6, c == 0 ? 0xffff : c);
}

using Frame = std::vector<uint8_t>;

void WriteEth(uint8_t* p, const uint8_t dst[6], const uint8_t src[6], uint16_t proto) {
  std::memcpy(p, dst, 6);
  std::memcpy(p + 6, src, 6);
  Put16(p + 12, proto);
}

// B4 → AFTR: Ethernet, IPv6 (B4 → softwire address, next header 4), IPv4/UDP to the server.
Frame OutboundFrame(const std::array<uint8_t, 16>& b4, uint32_t inner_addr, uint16_t inner_port) {
  Frame f(14 + 40 + kInnerPacketLen);
  WriteEth(f.data(), kB4LocalMac, kB4GatewayMac, ETH_P_IPV6);
  uint8_t* ip6 = f.data() + 14;
  Put32(ip6, 0x60000000);
  Put16(ip6 + 4, kInnerPacketLen);
  ip6[6] = IPPROTO_IPIP;
  ip6[7] = 64;
  std::memcpy(ip6 + 8, b4.data(), 16);
  std::memcpy(ip6 + 24, kSoftwire, 16);
  WriteInner(ip6 + 40, inner_addr, inner_port, kServer, kServerPort);
  return f;
}

// B4 → AFTR → B4: like OutboundFrame, to a public address and port (hairpinned).
Frame HairpinFrame(const std::array<uint8_t, 16>& b4, uint32_t inner_addr, uint16_t inner_port,
                   uint32_t public_addr, uint16_t public_port) {
  Frame f = OutboundFrame(b4, inner_addr, inner_port);
  WriteInner(f.data() + 14 + 40, inner_addr, inner_port, public_addr, public_port);
  return f;
}

// B4 → AFTR: the host's ICMP port unreachable (to the server) quoting the whole datagram
// the server sent it (server:443 → inner address and port).
constexpr size_t kIcmpErrorLen = 20 + 8 + kInnerPacketLen;
Frame IcmpErrorFrame(const std::array<uint8_t, 16>& b4, uint32_t inner_addr, uint16_t inner_port) {
  Frame f(14 + 40 + kIcmpErrorLen);
  WriteEth(f.data(), kB4LocalMac, kB4GatewayMac, ETH_P_IPV6);
  uint8_t* ip6 = f.data() + 14;
  Put32(ip6, 0x60000000);
  Put16(ip6 + 4, kIcmpErrorLen);
  ip6[6] = IPPROTO_IPIP;
  ip6[7] = 64;
  std::memcpy(ip6 + 8, b4.data(), 16);
  std::memcpy(ip6 + 24, kSoftwire, 16);
  uint8_t* ip = ip6 + 40;
  ip[0] = 0x45;
  Put16(ip + 2, kIcmpErrorLen);
  ip[8] = 64;
  ip[9] = IPPROTO_ICMP;
  Put32(ip + 12, inner_addr);
  Put32(ip + 16, kServer);
  Put16(ip + 10, Checksum(ip, 20));
  uint8_t* icmp = ip + 20;
  icmp[0] = 3;  // destination unreachable
  icmp[1] = 3;  // port unreachable
  WriteInner(icmp + 8, kServer, kServerPort, inner_addr, inner_port);
  Put16(icmp + 2, Checksum(icmp, 8 + kInnerPacketLen));
  return f;
}

// Internet → AFTR: Ethernet, IPv4/UDP from the server to a public address and port.
Frame InboundFrame(uint32_t public_addr, uint16_t public_port) {
  Frame f(14 + kInnerPacketLen);
  WriteEth(f.data(), kInetLocalMac, kInetGatewayMac, ETH_P_IP);
  WriteInner(f.data() + 14, kServer, kServerPort, public_addr, public_port);
  return f;
}

// The first fragment (MF set, offset 0) of the IPv4 datagram at `ip`: what a B4 or a server
// sends of a datagram larger than its MTU. The program queues it for aftrd's slow path.
void MakeFirstFragment(uint8_t* ip) {
  Put16(ip + 6, 0x2000);  // MF
  Put16(ip + 10, 0);
  Put16(ip + 10, Checksum(ip, 20));
}

Frame SoftwireFragmentFrame(const std::array<uint8_t, 16>& b4, uint32_t inner_addr,
                            uint16_t inner_port) {
  Frame f = OutboundFrame(b4, inner_addr, inner_port);
  MakeFirstFragment(f.data() + 14 + 40);
  return f;
}

Frame InboundFragmentFrame(uint32_t public_addr, uint16_t public_port) {
  Frame f = InboundFrame(public_addr, public_port);
  MakeFirstFragment(f.data() + 14);
  return f;
}

// The same frame with the IPv4 packet at `ip_off` on its last hop (TTL 1): the program
// answers it with an ICMP time exceeded, which it builds itself.
Frame WithExpiringTtl(Frame f, size_t ip_off) {
  uint8_t* ip = f.data() + ip_off;
  ip[8] = 1;
  Put16(ip + 10, 0);
  Put16(ip + 10, Checksum(ip, 20));
  return f;
}

// ---- The installed table ----
// Session i belongs to B4 s = i / per_b4 (2001:db8:1xx:xxxx::1, a /64 per B4), host
// 192.0.2.(2 + j % 8) port 10000 + j (j = i % per_b4). B4 s owns block s / 256 of pool
// address 198.51.100.(s % 256); its sessions use ports spread over the block.

std::array<uint8_t, 16> B4Addr(uint32_t s) {
  std::array<uint8_t, 16> a{};
  std::memcpy(a.data(), kB4Prefix, 5);
  a[5] = (s >> 16) & 0xff;
  a[6] = (s >> 8) & 0xff;
  a[7] = s & 0xff;
  a[15] = 1;
  return a;
}

struct Layout {
  uint32_t per_b4;
  uint64_t sessions;
  uint32_t subs() const { return static_cast<uint32_t>((sessions + per_b4 - 1) / per_b4); }
  static uint32_t AddrIndex(uint32_t s) { return s % kPoolAddrs; }
  static uint32_t Block(uint32_t s) { return s / kPoolAddrs; }
  static uint32_t PublicAddr(uint32_t s) { return kPoolNet + AddrIndex(s); }
  static uint32_t InnerAddr(uint32_t j) { return kInnerNet + 2 + j % 8; }
  static uint16_t InnerPort(uint32_t j) { return kInnerPortBase + j; }
  // 167 is odd, so j * 167 mod 512 is a permutation of the block's ports.
  static uint16_t PublicPort(uint32_t s, uint32_t j) {
    return kPortMin + Block(s) * kBlockSize + (j * 167 + s * 31) % kBlockSize;
  }
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

uint64_t CoarseNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

template <typename K, typename V>
void UpdateBatch(int fd, const char* name, const std::vector<K>& keys,
                 const std::vector<V>& values) {
  constexpr size_t kChunk = 1 << 16;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  for (size_t off = 0; off < keys.size(); off += kChunk) {
    uint32_t count = std::min(kChunk, keys.size() - off);
    uint32_t want = count;
    if (bpf_map_update_batch(fd, &keys[off], &values[off], &count, &opts) != 0 || count != want) {
      Die("bpf_map_update_batch(%s) at %zu: %s (%u of %u written)", name, off, std::strerror(errno),
          count, want);
    }
  }
}

// Fills subscribers, pool blocks and both session maps.
void InstallTable(aftr_bpf* skel, const Layout& l) {
  const uint64_t now = CoarseNowNs();
  const uint32_t subs = l.subs();

  // Pool: bits past blocks_per_addr preset as used (as aftrd seeds them), plus owned blocks.
  std::vector<aftr_pool_addr> pool(kPoolAddrs);
  for (uint32_t a = 0; a < kPoolAddrs; a++) {
    pool[a].addr = htonl(kPoolNet + a);
    for (uint32_t b = kBlocksPerAddr; b < AFTR_MAX_BLOCKS_PER_ADDR; b++)
      pool[a].used[b / 64] |= 1ull << (b % 64);
  }
  std::vector<aftr_subscriber_key> sub_keys(subs);
  std::vector<aftr_subscriber> sub_vals(subs);
  for (uint32_t s = 0; s < subs; s++) {
    uint32_t a = Layout::AddrIndex(s), b = Layout::Block(s);
    pool[a].used[b / 64] |= 1ull << (b % 64);
    auto b4 = B4Addr(s);
    std::memcpy(sub_keys[s].b4, b4.data(), 16);
    uint64_t n = std::min<uint64_t>(l.per_b4, l.sessions - uint64_t{s} * l.per_b4);
    aftr_subscriber& v = sub_vals[s];
    v.state_sessions = (AFTR_SUB_ACTIVE << AFTR_SUB_STATE_SHIFT) | n;
    v.created_ns = now;
    v.public_addr = htonl(Layout::PublicAddr(s));
    v.addr_index = a;
    v.n_blocks = 1;
    for (auto& slot : v.blocks) slot = AFTR_BLOCK_SLOT_EMPTY;
    v.blocks[0] = b;
  }
  for (uint32_t a = 0; a < kPoolAddrs; a++) {
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.aftr_pool_addrs), &a, &pool[a], BPF_ANY) != 0)
      Die("writing aftr_pool_addrs: %s", std::strerror(errno));
  }
  UpdateBatch(bpf_map__fd(skel->maps.aftr_subscribers), "aftr_subscribers", sub_keys, sub_vals);

  aftr_b4_prefix_key pk{};
  pk.prefixlen = 40;
  std::memcpy(pk.addr, kB4Prefix, 5);
  uint32_t one = 1;
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.aftr_b4_prefixes), &pk, &one, BPF_ANY) != 0)
    Die("writing aftr_b4_prefixes: %s", std::strerror(errno));

  std::vector<aftr_session_out_key> ok(l.sessions);
  std::vector<aftr_session_out> ov(l.sessions);
  std::vector<aftr_session_in_key> ik(l.sessions);
  std::vector<aftr_session_in> iv(l.sessions);
  for (uint64_t i = 0; i < l.sessions; i++) {
    uint32_t s = i / l.per_b4, j = i % l.per_b4;
    auto b4 = B4Addr(s);
    uint32_t pub = htonl(Layout::PublicAddr(s));
    uint16_t pport = htons(Layout::PublicPort(s, j));
    std::memcpy(ok[i].b4, b4.data(), 16);
    ok[i].inner_addr = htonl(Layout::InnerAddr(j));
    ok[i].inner_port = htons(Layout::InnerPort(j));
    ok[i].proto = IPPROTO_UDP;
    ov[i].public_addr = pub;
    ov[i].public_port = pport;
    ov[i].last_seen_ns = now;
    ik[i].public_addr = pub;
    ik[i].public_port = pport;
    ik[i].proto = IPPROTO_UDP;
    std::memcpy(iv[i].b4, b4.data(), 16);
    iv[i].inner_addr = ok[i].inner_addr;
    iv[i].inner_port = ok[i].inner_port;
    iv[i].softwire_index = 0;
    iv[i].last_seen_ns = now;
  }
  UpdateBatch(bpf_map__fd(skel->maps.aftr_sessions_out), "aftr_sessions_out", ok, ov);
  UpdateBatch(bpf_map__fd(skel->maps.aftr_sessions_in), "aftr_sessions_in", ik, iv);
}

uint64_t Memlock(int fd) {
  std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("memlock:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  }
  Die("no memlock in /proc/self/fdinfo/%d", fd);
}

// ---- Counters and events ----

using Counters = std::array<uint64_t, AFTR_COUNTER_MAX>;

Counters ReadCounters(int fd) {
  static const int ncpu = libbpf_num_possible_cpus();
  std::vector<aftr_counters> per_cpu(ncpu);
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, per_cpu.data()) != 0)
    Die("reading aftr_counters: %s", std::strerror(errno));
  Counters sum{};  // every direction: a row sees only one kind of packet anyway
  for (const auto& c : per_cpu)
    for (const auto& row : c.dir)
      for (int i = 0; i < AFTR_COUNTER_MAX; i++) sum[i] += row.c[i];
  return sum;
}

struct EventTally {
  uint64_t by_type[16] = {};
  uint64_t total = 0;
};

// Records of the slow-path ring by kind (enum aftr_slow_kind); malformed ones apart.
struct SlowTally {
  uint64_t by_kind[4] = {};
  uint64_t malformed = 0;
  uint64_t total = 0;
};

int OnSlowRecord(void* ctx, void* data, size_t size) {
  auto* t = static_cast<SlowTally*>(ctx);
  aftr_slow_record hdr;
  t->total++;
  if (size < sizeof(hdr)) {
    t->malformed++;
    return 0;
  }
  std::memcpy(&hdr, data, sizeof(hdr));
  if (hdr.frame_len > size - sizeof(hdr) || hdr.kind >= 4) {
    t->malformed++;
    return 0;
  }
  t->by_kind[hdr.kind]++;
  return 0;
}

int OnEvent(void* ctx, void* data, size_t size) {
  auto* t = static_cast<EventTally*>(ctx);
  if (size >= sizeof(aftr_event)) {
    const auto* e = static_cast<const aftr_event*>(data);
    t->by_type[e->type & 15]++;
  }
  t->total++;
  return 0;
}

// ---- Rows: one timed path each ----

bool Fail(std::string* why, const char* what) {
  *why = what;
  return false;
}

struct Call {
  Frame frame;
  int ifindex;
};

constexpr uint32_t Verdict(int v) { return 1u << v; }

struct RowSpec {
  std::string name;
  int prog_fd;
  uint32_t expect;  // mask of acceptable verdicts: any other makes the figure meaningless
  uint32_t calls;
  uint32_t warmup;
  std::function<Call(uint32_t k)> make;  // k: 0..warmup+calls-1, each once
  // Checks the output frame of the first call (nullptr: no check).
  std::function<bool(const uint8_t* out, uint32_t len, std::string* why)> check;
  bool component;  // printed in the attribution table, not the main one
  // A fragment row: every call must queue one record of this kind (enum aftr_slow_kind)
  // into aftr_slow_path; 0: no call may queue anything.
  uint32_t slow_kind = 0;
};

struct Row : RowSpec {
  explicit Row(RowSpec spec) : RowSpec(std::move(spec)) {}
  uint32_t next = 0;
  std::vector<uint32_t> ns;
  uint64_t verdicts[8] = {};
  Counters counters{};
  uint64_t events = 0;
  uint64_t slow_records = 0;           // slow-path ring records drained after its batches
  uint64_t slow_records_of_kind = 0;   // of which of its slow_kind
  bool checked = false;
};

const char* VerdictName(int v) {
  static const char* kNames[] = {"ABORTED", "DROP", "PASS", "TX", "REDIRECT"};
  return v >= 0 && v < 5 ? kNames[v] : "?";
}

struct TestRun {
  uint32_t retval;
  uint32_t duration;
  uint32_t out_len;
};

TestRun RunOnce(int prog_fd, const Call& c, uint8_t* out, uint32_t out_size, uint32_t repeat = 1) {
  xdp_md md{};
  md.data_end = c.frame.size();
  md.ingress_ifindex = c.ifindex;  // bpf_fib_lookup starts from the ingress device
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = c.frame.data(), .data_out = out,
              .data_size_in = static_cast<uint32_t>(c.frame.size()), .data_size_out = out_size,
              .ctx_in = &md, .ctx_size_in = sizeof(md), .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    Die("BPF_PROG_TEST_RUN: %s", std::strerror(errno));
  return {opts.retval, opts.duration, opts.data_size_out};
}

// Up to n more calls of the row, then drains the event ring; counters and events are
// attributed to the row (read outside the timed calls).
void RunBatch(Row& r, uint32_t n, int counters_fd, ring_buffer* rb, const EventTally& tally,
              const SlowTally& slow) {
  uint8_t out[kFrameOut];
  const Counters before = ReadCounters(counters_fd);
  const uint64_t events_before = tally.total;
  const uint64_t slow_before = slow.total, slow_kind_before = slow.by_kind[r.slow_kind & 3];
  const uint32_t total = r.warmup + r.calls;
  for (uint32_t i = 0; i < n && r.next < total; i++) {
    const uint32_t k = r.next++;
    const Call c = r.make(k);
    const TestRun t = RunOnce(r.prog_fd, c, out, sizeof(out));
    if (!r.checked && r.check) {
      std::string why;
      if (!r.check(out, t.out_len, &why))
        Die("%s: wrong output frame on the first call: %s (verdict %s)", r.name.c_str(),
            why.c_str(), VerdictName(t.retval));
      r.checked = true;
    }
    if (k < r.warmup) continue;
    r.ns.push_back(t.duration);
    r.verdicts[std::min<uint32_t>(t.retval, 7)]++;
  }
  ring_buffer__consume(rb);
  const Counters after = ReadCounters(counters_fd);
  for (int i = 0; i < AFTR_COUNTER_MAX; i++) r.counters[i] += after[i] - before[i];
  r.events += tally.total - events_before;
  r.slow_records += slow.total - slow_before;
  r.slow_records_of_kind += slow.by_kind[r.slow_kind & 3] - slow_kind_before;
}

struct Stat {
  uint32_t p10, median, p90;
  double mean_10_90;  // mean of the calls from p10 to p90: finer than the clock's steps
};

Stat Percentiles(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  auto index = [&](double q) { return std::min<size_t>(v.size() - 1, size_t(q * v.size())); };
  const size_t lo = index(0.10), hi = index(0.90);
  double sum = 0;
  for (size_t i = lo; i <= hi; i++) sum += v[i];
  return {v[lo], v[index(0.50)], v[hi], sum / double(hi - lo + 1)};
}

int QuietLibbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
  return level == LIBBPF_WARN ? std::vfprintf(stderr, fmt, args) : 0;
}

std::string KernelRelease() {
  std::string r;
  std::getline(std::ifstream("/proc/sys/kernel/osrelease"), r);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  const Layout layout{o.per_b4, o.sessions};
  const uint32_t subs = layout.subs();
  const uint32_t blocks_total = kPoolAddrs * kBlocksPerAddr;
  if (subs > blocks_total)
    Die("%u B4s need %u port blocks, the pool has %u: raise --per-b4", subs, subs, blocks_total);
  const uint32_t warmup = std::min<uint32_t>(1000, o.calls / 10);
  // New sessions land on existing B4s, at most this many per B4 (stays inside its block).
  const uint32_t new_per_b4 = (o.calls + warmup + subs - 1) / subs;
  if (o.per_b4 + new_per_b4 > kBlockSize * 3 / 4)
    Die("%u new sessions per B4 on top of %u would crowd its 512-port block: raise --sessions or "
        "lower --calls",
        new_per_b4, o.per_b4);
  // First packets of new B4s each claim a block: use at most half of the free blocks.
  const uint32_t free_blocks = blocks_total - subs;
  const uint32_t new_b4_warmup = std::min<uint32_t>(100, free_blocks / 20);
  const uint32_t new_b4_calls = std::min<uint32_t>(o.calls, free_blocks / 2 - new_b4_warmup);
  const uint64_t max_entries =
      std::max<uint64_t>(o.max_entries, o.sessions + 2 * (o.calls + warmup) + 1024);
  const uint32_t max_subs = std::max<uint32_t>(65536, subs + new_b4_calls + new_b4_warmup + 1024);
  constexpr uint32_t kRingBytes = 64u << 20;  // ~1.4 M events: never full, and drained anyway

  const int ncpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const int cpu = o.cpu == -2 ? ncpu - 1 : o.cpu;
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
      Die("pinning to CPU %d: %s", cpu, std::strerror(errno));
  }

  const Net net = EnterPrivateNet();
  libbpf_set_print(QuietLibbpf);

  // ---- Load the data plane (unpinned maps, sized for the run) and the reference programs ----
  aftr_bpf* skel = aftr_bpf__open();
  if (!skel) Die("aftr_bpf__open: %s", std::strerror(errno));
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) bpf_map__set_pin_path(map, nullptr);
  aftr_dp_config& cfg = skel->rodata->aftr_cfg;
  cfg = {};
  std::memcpy(cfg.softwire_addrs[0], kSoftwire, 16);
  cfg.softwire_addr_count = 1;
  cfg.pool_prefix_addr[0] = htonl(kPoolNet);
  cfg.pool_prefix_mask[0] = htonl(0xffffff00);
  cfg.pool_prefix_count = 1;
  cfg.pool_addr_count = kPoolAddrs;
  cfg.port_min = kPortMin;
  cfg.block_size = kBlockSize;
  cfg.blocks_per_addr = kBlocksPerAddr;
  cfg.max_blocks_per_sub = 4;
  cfg.max_sessions_per_sub = 2048;
  cfg.filtering = AFTR_FILTER_ENDPOINT_INDEPENDENT;
  cfg.tcp_mss_clamp = 1420;
  cfg.hop_limit = 64;
  cfg.softwire_mtu = 1500;
  cfg.icmp_errors_per_second = 1000000000;  // the rows that make errors must never run dry
  cfg.fib_cache_ticks = AFTR_FIB_MS_TO_TICKS(1000);  // aftrd's default: a session reuses its next hop for 1 s
  cfg.abi_version = AFTR_ABI_VERSION;
  struct {
    bpf_map* map;
    uint64_t entries;
  } sizes[] = {
      {skel->maps.aftr_sessions_out, max_entries}, {skel->maps.aftr_sessions_in, max_entries},
      {skel->maps.aftr_subscribers, max_subs},     {skel->maps.aftr_pool_addrs, kPoolAddrs},
      {skel->maps.aftr_filter_peers, 1024},  // unused with endpoint-independent filtering
      {skel->maps.aftr_events, kRingBytes},
  };
  for (const auto& s : sizes) {
    if (s.entries > UINT32_MAX || bpf_map__set_max_entries(s.map, s.entries) != 0)
      Die("sizing %s to %llu", bpf_map__name(s.map), (unsigned long long)s.entries);
  }
  if (o.no_prealloc) {
    for (bpf_map* m : {skel->maps.aftr_sessions_out, skel->maps.aftr_sessions_in})
      bpf_map__set_map_flags(m, bpf_map__map_flags(m) | BPF_F_NO_PREALLOC);
  }
  auto t0 = std::chrono::steady_clock::now();
  if (int err = aftr_bpf__load(skel)) Die("aftr_bpf__load: %s", std::strerror(-err));
  const double load_s = Seconds(t0);
  const int out_fd = bpf_map__fd(skel->maps.aftr_sessions_out);
  const int in_fd = bpf_map__fd(skel->maps.aftr_sessions_in);

  aftr_mb_probes* probes = aftr_mb_probes__open();
  if (!probes) Die("aftr_mb_probes__open: %s", std::strerror(errno));
  if (int err = bpf_map__reuse_fd(probes->maps.mb_sessions_out, out_fd))
    Die("pointing mb_sessions_out at aftr_sessions_out: %s", std::strerror(-err));
  if (int err = aftr_mb_probes__load(probes)) Die("aftr_mb_probes__load: %s", std::strerror(-err));

  t0 = std::chrono::steady_clock::now();
  InstallTable(skel, layout);
  const double fill_s = Seconds(t0);
  const uint64_t memlock_out = Memlock(out_fd), memlock_in = Memlock(in_fd);

  EventTally tally;
  ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel->maps.aftr_events), OnEvent, &tally, nullptr);
  if (!rb) Die("ring_buffer__new: %s", std::strerror(errno));
  // The fragment slow path's ring, drained with the events after every batch (aftrd's
  // slow-path thread would take the records; here they are only counted).
  SlowTally slow_tally;
  if (int err = ring_buffer__add(rb, bpf_map__fd(skel->maps.aftr_slow_path), OnSlowRecord, &slow_tally))
    Die("ring_buffer__add(aftr_slow_path): %s", std::strerror(-err));
  const int counters_fd = bpf_map__fd(skel->maps.aftr_counters);
  const int aftr_fd = bpf_program__fd(skel->progs.aftr_xdp);

  // ---- What each row sends ----
  struct Flow {
    uint32_t s, j;
  };
  std::mt19937_64 rng(20261127);
  auto random_flows = [&](size_t n) {
    std::vector<Flow> v(n);
    for (Flow& f : v) {
      uint64_t i = rng() % o.sessions;
      f = {static_cast<uint32_t>(i / o.per_b4), static_cast<uint32_t>(i % o.per_b4)};
    }
    return v;
  };
  auto out_call = [&](const Flow& f) {
    return Call{OutboundFrame(B4Addr(f.s), Layout::InnerAddr(f.j), Layout::InnerPort(f.j)),
                net.b4_ifindex};
  };
  auto in_call = [&](const Flow& f) {
    return Call{InboundFrame(Layout::PublicAddr(f.s), Layout::PublicPort(f.s, f.j)),
                net.inet_ifindex};
  };
  // "64 flows": a few sessions cycled through, warm in the caches. "cold": every call a
  // different random session of the table, as traffic spread over all of them would be.
  const std::vector<Flow> warm = random_flows(o.flows);
  std::vector<Call> warm_out, warm_in;
  for (const Flow& f : warm) {
    warm_out.push_back(out_call(f));
    warm_in.push_back(in_call(f));
  }
  const std::vector<Flow> cold_out = random_flows(o.calls + warmup);
  const std::vector<Flow> cold_in = random_flows(o.calls + warmup);
  const std::vector<Flow> cold_lookup = random_flows(o.calls + warmup);

  // Output checks on the first call: translated, out of the right side, gateway MAC.
  auto check_out = [](const uint8_t* out, uint32_t len, uint32_t want_addr, int want_port,
                      std::string* why) {
    if (len != 14 + kInnerPacketLen || Get16(out + 12) != ETH_P_IP)
      return Fail(why, "not a decapsulated IPv4 frame");
    if (std::memcmp(out, kInetGatewayMac, 6) != 0)
      return Fail(why, "destination MAC is not the gateway's");
    const uint32_t src = Get32(out + 14 + 12);
    if (want_addr ? src != want_addr : (src & 0xffffff00) != kPoolNet)
      return Fail(why, "IPv4 source");
    if (want_port >= 0 && Get16(out + 14 + 20) != want_port) return Fail(why, "UDP source port");
    if (Checksum(out + 14, 20) != 0) return Fail(why, "IPv4 header checksum");
    return true;
  };
  auto check_in = [](const uint8_t* out, uint32_t len, const Flow& f, std::string* why) {
    if (len != 14 + 40 + kInnerPacketLen || Get16(out + 12) != ETH_P_IPV6)
      return Fail(why, "not an encapsulated IPv6 frame");
    if (std::memcmp(out, kB4GatewayMac, 6) != 0)
      return Fail(why, "destination MAC is not the gateway's");
    if (std::memcmp(out + 14 + 8, kSoftwire, 16) != 0) return Fail(why, "IPv6 source");
    if (std::memcmp(out + 14 + 24, B4Addr(f.s).data(), 16) != 0)
      return Fail(why, "IPv6 destination");
    const uint8_t* ip = out + 14 + 40;
    if (Get32(ip + 16) != Layout::InnerAddr(f.j) || Get16(ip + 22) != Layout::InnerPort(f.j))
      return Fail(why, "inner destination");
    return true;
  };
  const uint32_t kForwarded = Verdict(XDP_REDIRECT) | Verdict(XDP_TX);

  std::vector<Row> rows;
  rows.emplace_back(RowSpec{
      "empty XDP program", bpf_program__fd(probes->progs.mb_empty), Verdict(XDP_PASS), o.calls,
      warmup, [&](uint32_t k) { return warm_out[k % warm_out.size()]; }, nullptr, false});
  rows.emplace_back(RowSpec{"established out, " + std::to_string(o.flows) + " flows", aftr_fd,
                            kForwarded, o.calls, warmup,
                            [&](uint32_t k) { return warm_out[k % warm_out.size()]; },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              return check_out(out, len, Layout::PublicAddr(warm[0].s),
                                               Layout::PublicPort(warm[0].s, warm[0].j), why);
                            },
                            false});
  rows.emplace_back(RowSpec{"established out, cold", aftr_fd, kForwarded, o.calls, warmup,
                            [&](uint32_t k) { return out_call(cold_out[k]); },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              const Flow& f = cold_out[0];
                              return check_out(out, len, Layout::PublicAddr(f.s),
                                               Layout::PublicPort(f.s, f.j), why);
                            },
                            false});
  rows.emplace_back(RowSpec{"established in, " + std::to_string(o.flows) + " flows", aftr_fd,
                            kForwarded, o.calls, warmup,
                            [&](uint32_t k) { return warm_in[k % warm_in.size()]; },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              return check_in(out, len, warm[0], why);
                            },
                            false});
  rows.emplace_back(RowSpec{"established in, cold", aftr_fd, kForwarded, o.calls, warmup,
                            [&](uint32_t k) { return in_call(cold_in[k]); },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              return check_in(out, len, cold_in[0], why);
                            },
                            false});
  // New flows from existing B4s: B4 k % subs, from a port no installed session uses.
  rows.emplace_back(RowSpec{"new session (known B4)", aftr_fd, kForwarded, o.calls, warmup,
                            [&](uint32_t k) {
                              return Call{OutboundFrame(B4Addr(k % subs), kInnerNet + 100,
                                                        kNewFlowPortBase + k / subs),
                                          net.b4_ifindex};
                            },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              return check_out(out, len, Layout::PublicAddr(0), -1, why);
                            },
                            false});
  // First packets of B4s never seen: prefix check, block claim, subscriber, then session.
  if (new_b4_calls > 0) {
    rows.emplace_back(
        RowSpec{"new session + new B4", aftr_fd, kForwarded, new_b4_calls, new_b4_warmup,
                [&](uint32_t k) {
                  return Call{OutboundFrame(B4Addr(subs + k), kInnerNet + 100, kNewFlowPortBase),
                              net.b4_ifindex};
                },
                [&](const uint8_t* out, uint32_t len, std::string* why) {
                  return check_out(out, len, 0, -1, why);
                },
                false});
  }
  // B4 of warm flow k sends to the public end of warm flow k + 1 (another subscriber).
  auto hairpin_call = [&](uint32_t k) {
    const Flow& a = warm[k % warm.size()];
    const Flow& b = warm[(k + 1) % warm.size()];
    return Call{HairpinFrame(B4Addr(a.s), Layout::InnerAddr(a.j), Layout::InnerPort(a.j),
                             Layout::PublicAddr(b.s), Layout::PublicPort(b.s, b.j)),
                net.b4_ifindex};
  };
  rows.emplace_back(RowSpec{"hairpin, " + std::to_string(o.flows) + " flows", aftr_fd, kForwarded,
                            o.calls, warmup, hairpin_call,
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              const Flow& a = warm[0];
                              const Flow& b = warm[1 % warm.size()];
                              if (!check_in(out, len, b, why)) return false;
                              const uint8_t* ip = out + 14 + 40;
                              if (Get32(ip + 12) != Layout::PublicAddr(a.s) ||
                                  Get16(ip + 20) != Layout::PublicPort(a.s, a.j))
                                return Fail(why, "source is not the sender's public end");
                              return true;
                            },
                            false});
  rows.emplace_back(RowSpec{"icmp error from B4, " + std::to_string(o.flows) + " flows", aftr_fd,
                            kForwarded, o.calls, warmup,
                            [&](uint32_t k) {
                              const Flow& f = warm[k % warm.size()];
                              return Call{IcmpErrorFrame(B4Addr(f.s), Layout::InnerAddr(f.j),
                                                         Layout::InnerPort(f.j)),
                                          net.b4_ifindex};
                            },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              const Flow& f = warm[0];
                              if (len != 14 + kIcmpErrorLen || Get16(out + 12) != ETH_P_IP)
                                return Fail(why, "not a decapsulated IPv4 frame");
                              const uint8_t* ip = out + 14;
                              if (Get32(ip + 12) != Layout::PublicAddr(f.s))
                                return Fail(why, "outer source");
                              const uint8_t* q = ip + 28;
                              if (Get32(q + 16) != Layout::PublicAddr(f.s) ||
                                  Get16(q + 22) != Layout::PublicPort(f.s, f.j))
                                return Fail(why, "quoted destination");
                              if (Checksum(ip + 20, 8 + kInnerPacketLen) != 0)
                                return Fail(why, "ICMP checksum");
                              return true;
                            },
                            false});
  // ICMP errors the program makes itself (time exceeded; "fragmentation needed" is built by
  // the same code): to the host behind the B4 through its softwire, and to the server,
  // routed by a FIB lookup. Each also passes the per-CPU token bucket.
  rows.emplace_back(RowSpec{"ttl expired, icmp to B4", aftr_fd, kForwarded, o.calls, warmup,
                            [&](uint32_t k) {
                              const Flow& f = warm[k % warm.size()];
                              return Call{WithExpiringTtl(OutboundFrame(B4Addr(f.s), Layout::InnerAddr(f.j),
                                                                        Layout::InnerPort(f.j)),
                                                          14 + 40),
                                          net.b4_ifindex};
                            },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              const Flow& f = warm[0];
                              if (len < 14 + 40 + 28 + 28 || Get16(out + 12) != ETH_P_IPV6)
                                return Fail(why, "not an IPv6 frame");
                              const uint8_t* ip = out + 14 + 40;
                              if (ip[9] != IPPROTO_ICMP || ip[20] != 11)
                                return Fail(why, "not an ICMP time exceeded");
                              if (Get32(ip + 16) != Layout::InnerAddr(f.j))
                                return Fail(why, "not to the inner host");
                              if (Checksum(ip + 20, Get16(ip + 2) - 20) != 0)
                                return Fail(why, "ICMP checksum");
                              return true;
                            },
                            false});
  rows.emplace_back(RowSpec{"ttl expired, icmp to Internet", aftr_fd, kForwarded, o.calls,
                            warmup,
                            [&](uint32_t k) {
                              const Flow& f = warm[k % warm.size()];
                              return Call{WithExpiringTtl(InboundFrame(Layout::PublicAddr(f.s),
                                                                       Layout::PublicPort(f.s, f.j)),
                                                          14),
                                          net.inet_ifindex};
                            },
                            [&](const uint8_t* out, uint32_t len, std::string* why) {
                              const Flow& f = warm[0];
                              if (len < 14 + 28 + 28 || Get16(out + 12) != ETH_P_IP)
                                return Fail(why, "not an IPv4 frame");
                              const uint8_t* ip = out + 14;
                              if (ip[9] != IPPROTO_ICMP || ip[20] != 11)
                                return Fail(why, "not an ICMP time exceeded");
                              if (Get32(ip + 12) != Layout::PublicAddr(f.s) || Get32(ip + 16) != kServer)
                                return Fail(why, "not from the public address to the server");
                              if (Checksum(ip + 20, Get16(ip + 2) - 20) != 0)
                                return Fail(why, "ICMP checksum");
                              return true;
                            },
                            false});
  // The first fragment of a warm flow's datagram, inside its softwire packet (B4 side) and
  // from the server to its public end (Internet side): copied into aftr_slow_path, dropped.
  rows.emplace_back(RowSpec{"fragment from B4, queued", aftr_fd, Verdict(XDP_DROP), o.calls,
                            warmup,
                            [&](uint32_t k) {
                              const Flow& f = warm[k % warm.size()];
                              return Call{SoftwireFragmentFrame(B4Addr(f.s), Layout::InnerAddr(f.j),
                                                                Layout::InnerPort(f.j)),
                                          net.b4_ifindex};
                            },
                            nullptr, false});
  rows.back().slow_kind = AFTR_SLOW_SOFTWIRE_FRAGMENT;
  rows.emplace_back(RowSpec{"fragment from Internet, queued", aftr_fd, Verdict(XDP_DROP), o.calls,
                            warmup,
                            [&](uint32_t k) {
                              const Flow& f = warm[k % warm.size()];
                              return Call{InboundFragmentFrame(Layout::PublicAddr(f.s),
                                                               Layout::PublicPort(f.s, f.j)),
                                          net.inet_ifindex};
                            },
                            nullptr, false});
  rows.back().slow_kind = AFTR_SLOW_INET_FRAGMENT;
  rows.emplace_back(RowSpec{
      "bpf_fib_lookup IPv4 only", bpf_program__fd(probes->progs.mb_fib4), Verdict(XDP_PASS),
      o.calls, warmup, [&](uint32_t k) { return warm_out[k % warm_out.size()]; }, nullptr, true});
  rows.emplace_back(
      RowSpec{"bpf_fib_lookup IPv4, DIRECT", bpf_program__fd(probes->progs.mb_fib4_direct),
              Verdict(XDP_PASS), o.calls, warmup,
              [&](uint32_t k) { return warm_out[k % warm_out.size()]; }, nullptr, true});
  rows.emplace_back(RowSpec{
      "bpf_fib_lookup IPv6 only", bpf_program__fd(probes->progs.mb_fib6), Verdict(XDP_PASS),
      o.calls, warmup, [&](uint32_t k) { return warm_in[k % warm_in.size()]; }, nullptr, true});
  rows.emplace_back(
      RowSpec{"bpf_fib_lookup IPv6, DIRECT", bpf_program__fd(probes->progs.mb_fib6_direct),
              Verdict(XDP_PASS), o.calls, warmup,
              [&](uint32_t k) { return warm_in[k % warm_in.size()]; }, nullptr, true});
  rows.emplace_back(
      RowSpec{"sessions_out lookup, " + std::to_string(o.flows) + " flows",
              bpf_program__fd(probes->progs.mb_lookup_out), Verdict(XDP_PASS), o.calls, warmup,
              [&](uint32_t k) { return warm_out[k % warm_out.size()]; }, nullptr, true});
  rows.emplace_back(RowSpec{
      "sessions_out lookup, cold", bpf_program__fd(probes->progs.mb_lookup_out), Verdict(XDP_PASS),
      o.calls, warmup, [&](uint32_t k) { return out_call(cold_lookup[k]); }, nullptr, true});

  // ---- Run, interleaved ----
  t0 = std::chrono::steady_clock::now();
  for (bool more = true; more;) {
    more = false;
    for (Row& r : rows) {
      if (r.next >= r.warmup + r.calls) continue;
      RunBatch(r, o.batch, counters_fd, rb, tally, slow_tally);
      more = true;
    }
  }
  const double run_s = Seconds(t0);
  // For reference only: the empty program's cost per run inside one long call (repeat),
  // i.e. without the per-call clock reads that every single-call figure above includes.
  std::vector<uint32_t> repeated;
  {
    uint8_t out[kFrameOut];
    for (int i = 0; i < 21; i++)
      repeated.push_back(
          RunOnce(bpf_program__fd(probes->progs.mb_empty), warm_out[0], out, sizeof(out), 1000)
              .duration);
  }

  // ---- Report ----
  std::printf(
      "aftr_microbench: BPF_PROG_TEST_RUN, one call per packet (repeat=1), kernel-reported "
      "duration; rows interleaved in batches of %u calls; CPU %s; kernel %s\n",
      o.batch, cpu >= 0 ? std::to_string(cpu).c_str() : "unpinned", KernelRelease().c_str());
  std::printf(
      "table: %llu UDP sessions (%u B4s x %u) in aftr_sessions_out and aftr_sessions_in "
      "(max_entries %llu each%s), %u subscribers, pool 198.51.100.0/24, %u blocks of %u "
      "ports per address\n",
      (unsigned long long)o.sessions, subs, o.per_b4, (unsigned long long)max_entries,
      o.no_prealloc ? ", BPF_F_NO_PREALLOC" : ", preallocated", subs, kBlocksPerAddr, kBlockSize);
  std::printf(
      "setup: load %.2f s, fill %.2f s (bpf_map_update_batch), measurement %.2f s; frames: "
      "100-byte DS-Lite (out), 60-byte IPv4 (in)\n",
      load_s, fill_s, run_s);
  std::printf(
      "out = decap + NAT + FIB + redirect; in = NAT + encap + FIB + redirect; \"%u flows\": "
      "those sessions cycled through (warm in the caches); \"cold\": every call a different "
      "random session; fragment, queued = an IPv4 first fragment of a warm flow copied into "
      "the slow-path ring and dropped (aftrd reassembles: aftr_slowpath_bench)\n\n",
      o.flows);

  bool bad = false;
  const double empty_median = Percentiles(rows[0].ns).median;
  auto print_rows = [&](bool component) {
    std::printf("%-30s %6s %9s %6s %6s %8s %14s %8s  %s\n",
                component ? "component (reference programs)" : "path", "calls", "median_ns", "p10",
                "p90", "mean1090", "ratio_to_empty", "added_ns", "verdicts");
    for (Row& r : rows) {
      if (r.component != component) continue;
      const Stat st = Percentiles(r.ns);
      std::string verdicts;
      for (int v = 0; v < 8; v++) {
        if (!r.verdicts[v]) continue;
        verdicts += std::string(verdicts.empty() ? "" : " ") + VerdictName(v) + "=" +
                    std::to_string(r.verdicts[v]);
        if (!(r.expect & Verdict(v))) {
          verdicts += "(!)";
          bad = true;
        }
      }
      std::printf("%-30s %6zu %9u %6u %6u %8.1f %13.2fx %8.0f  %s\n", r.name.c_str(),
                  r.ns.size(), st.median, st.p10, st.p90, st.mean_10_90, st.median / empty_median,
                  st.median - empty_median, verdicts.c_str());
    }
  };
  print_rows(false);
  std::printf("\n");
  print_rows(true);
  std::printf(
      "(empty program inside one call of repeat=1000: %u ns/run -- the per-run cost without the "
      "clock reads around each single call)\n",
      Percentiles(repeated).median);

  const size_t kv = sizeof(aftr_session_out_key) + sizeof(aftr_session_out) +
                    sizeof(aftr_session_in_key) + sizeof(aftr_session_in);
  const double memlock_per_session = double(memlock_out + memlock_in) / o.sessions;
  std::printf(
      "\nbytes per session (key+value): %zu (out %zu+%zu, in %zu+%zu)   kernel memlock per "
      "session: "
      "%.1f\n  (memlock after filling: aftr_sessions_out %llu + aftr_sessions_in %llu bytes, over "
      "%llu sessions; %.1f per max_entries slot)\n",
      kv, sizeof(aftr_session_out_key), sizeof(aftr_session_out), sizeof(aftr_session_in_key),
      sizeof(aftr_session_in), memlock_per_session, (unsigned long long)memlock_out,
      (unsigned long long)memlock_in, (unsigned long long)o.sessions,
      double(memlock_out + memlock_in) / max_entries);

  std::printf("\ndata-plane counters per row (measured and warm-up calls):\n");
  uint64_t lost = 0, created = 0;
  for (const Row& r : rows) {
    if (r.prog_fd != aftr_fd) continue;
    std::string s;
    for (int c = 0; c < AFTR_COUNTER_MAX; c++) {
      if (!r.counters[c]) continue;
      s += std::string(s.empty() ? "" : " ") + kCounterNames[c] + "=" +
           std::to_string(r.counters[c]);
      if (c >= AFTR_C_DROP_MALFORMED_ETH) bad = true;
    }
    lost += r.counters[AFTR_C_EVENT_LOST];
    created += r.counters[AFTR_C_SESSION_CREATED];
    std::printf("  %-28s %s; ring events drained: %llu", r.name.c_str(), s.c_str(),
                (unsigned long long)r.events);
    // A fragment row measures the queueing only if every call queued exactly one record of
    // its kind (not the ring-full drop, not another path); other rows queue nothing.
    const uint64_t runs = uint64_t{r.warmup} + r.calls;
    if (r.slow_kind != 0) {
      std::printf("; slow-path records drained: %llu", (unsigned long long)r.slow_records);
      if (r.counters[AFTR_C_SLOW_PATH_QUEUED] != runs || r.slow_records != runs ||
          r.slow_records_of_kind != runs) {
        std::printf(" (!) expected %llu queued records of kind %u, got %llu of it",
                    (unsigned long long)runs, r.slow_kind,
                    (unsigned long long)r.slow_records_of_kind);
        bad = true;
      }
    } else if (r.slow_records != 0 || r.counters[AFTR_C_SLOW_PATH_QUEUED] != 0) {
      std::printf(" (!) queued %llu slow-path records", (unsigned long long)r.slow_records);
      bad = true;
    }
    std::printf("\n");
  }
  if (slow_tally.malformed != 0) {
    std::printf("slow-path ring: %llu malformed records (!)\n",
                (unsigned long long)slow_tally.malformed);
    bad = true;
  }
  std::printf(
      "events drained by type: session_create %llu, block_claimed %llu, other %llu; event_lost "
      "%llu%s\n",
      (unsigned long long)tally.by_type[AFTR_EV_SESSION_CREATE],
      (unsigned long long)tally.by_type[AFTR_EV_BLOCK_CLAIMED],
      (unsigned long long)(tally.total - tally.by_type[AFTR_EV_SESSION_CREATE] -
                           tally.by_type[AFTR_EV_BLOCK_CLAIMED]),
      (unsigned long long)lost, lost ? "  WARNING: ring reservations failed during the run" : "");
  std::printf("sessions at the end: %llu\n", (unsigned long long)(o.sessions + created));

  std::printf("\ntargets:\n");
  for (const Row& r : rows) {
    if (r.name.rfind("established", 0) != 0) continue;
    const double ratio = Percentiles(r.ns).median / empty_median;
    std::printf("  %-28s <= 3.0x empty: %-6s (%.2fx)\n", r.name.c_str(),
                ratio <= 3.0 ? "MET" : "MISSED", ratio);
  }
  std::printf("  %-28s <= 128 bytes:   %-6s (key+value %zu)\n", "bytes per session",
              kv <= 128 ? "MET" : "MISSED", kv);
  std::printf(
      "  %-28s <= 128 bytes:   %-6s (%.1f memlock per session at this fill, %.1f per slot of a "
      "full table)\n",
      "kernel memory per session", memlock_per_session <= 128 ? "MET" : "MISSED",
      memlock_per_session, double(memlock_out + memlock_in) / max_entries);
  if (bad)
    std::printf(
        "FAILED: a call ended with a verdict marked (!), the data plane counted a drop, or a "
        "fragment row did not queue exactly one slow-path record per call: the figures do not "
        "measure the intended paths\n");

  ring_buffer__free(rb);
  aftr_mb_probes__destroy(probes);
  aftr_bpf__destroy(skel);
  return bad ? 1 : 0;
}
