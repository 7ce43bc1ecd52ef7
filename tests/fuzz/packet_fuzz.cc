// libFuzzer target for the XDP program's packet parsing and translation: every input is a few
// frames, run through the production object under BPF_PROG_TEST_RUN (tests/bpf/harness) and
// through the C++ reference model (tests/model); the verdict, the output bytes, the events
// and the counters must agree after every frame. The kernel side gives no coverage, the
// model does: it mirrors the program's branches, so inputs that reach a new branch of the
// model reach the matching one of the program. Needs root (ctest label bpf).
//
// Input: records of [control byte][length, 2 bytes big endian][frame]. Control bit 0 sends
// the frame in on the other interface than its EtherType suggests (one-armed); bit 1 aims an
// IPv4 frame at a session an earlier frame of the same input created (its public address and
// port patched in, checksums adjusted), since the program picks ports at random. After each
// input its sessions are deleted on both sides, as aftrd's sweeper does; the program and the
// model are made afresh every few thousand inputs (subscribers and blocks pile up otherwise).
// A mismatch prints both sides and traps; replay with `packet_fuzz <file>`.
//
// AFTR_PACKET_FUZZ_TRACE=1 prints what happened to each frame (replaying one input).
// AFTR_PACKET_FUZZ_SEEDS=<dir> writes the seed corpus (frames from the packet builder) to
// <dir> and exits: how tests/fuzz/corpus/packets was made.
#include <arpa/inet.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "nat_model.h"
#include "packet_builder.h"

namespace {

using namespace bpftest;
namespace model = aftr::model;

constexpr size_t kMaxFrames = 8;
constexpr size_t kMaxFrame = 1600;
constexpr int kFreshEvery = 4096;  // inputs between new program + model pairs
constexpr size_t kMaxSubscribers = 200;

const Ip6 kSoftwire = Ip6Addr("2001:db8:ffff::1");
constexpr Mac kB4RouterMac{0x02, 0x00, 0x5e, 0x00, 0xb4, 0x77};
constexpr Mac kInetRouterMac{0x02, 0x00, 0x5e, 0x00, 0x0e, 0x77};

// The model of the harness's namespace and default configuration (as the differential test
// builds it): the B4 route, a resolved and an unresolved gateway toward the Internet.
model::Config ModelConfigFor(const Harness& h, const MapSizes& sizes) {
  model::Config c;
  c.dp = h.config();
  c.b4_prefixes = {{Ip6Addr("2001:db8:100::"), 40}};
  for (uint32_t a : h.pool()) c.pool.push_back(ntohl(a));
  c.max_sessions_out = sizes.sessions_out;
  c.max_sessions_in = sizes.sessions_in;
  c.max_subscribers = sizes.subscribers;
  const TestNet& n = Net();
  model::Route6 b4;
  b4.prefix = Ip6Addr("2001:db8:100::");
  b4.len = 40;
  b4.ifindex = n.b4_ifindex;
  b4.gateway_mac = n.b4_gateway_mac;
  c.net.routes6.push_back(b4);
  model::Route4 inet;
  inet.prefix = ntohl(Ip4Addr("203.0.113.0"));
  inet.len = 25;
  inet.ifindex = n.inet_ifindex;
  inet.gateway_mac = n.inet_gateway_mac;
  c.net.routes4.push_back(inet);
  model::Route4 unresolved = inet;
  unresolved.prefix = ntohl(Ip4Addr("203.0.113.128"));
  unresolved.kind = model::Route::Kind::kNoNeighbour;
  c.net.routes4.push_back(unresolved);
  c.net.interface_macs[n.b4_ifindex] = n.b4_local_mac;
  c.net.interface_macs[n.inet_ifindex] = n.inet_local_mac;
  return c;
}

model::Ip6 ToIp6(const uint8_t (&a)[16]) {
  model::Ip6 r;
  std::memcpy(r.data(), a, 16);
  return r;
}

model::Event ToModel(const aftr_event& e) {
  model::Event m;
  m.type = e.type;
  m.b4 = ToIp6(e.b4);
  m.inner_addr = ntohl(e.inner_addr);
  m.public_addr = ntohl(e.public_addr);
  m.inner_port = ntohs(e.inner_port);
  m.public_port = ntohs(e.public_port);
  m.block_size = e.block_size;
  m.proto = e.proto;
  return m;
}

// What the program chose at random (blocks, the session's port, port-pick retries), for the
// model to check rather than guess.
model::Choices ChoicesFrom(const std::vector<aftr_event>& events, uint64_t retries,
                           const aftr_dp_config& cfg) {
  model::Choices c;
  for (const aftr_event& e : events) {
    if (e.type == AFTR_EV_BLOCK_CLAIMED)
      c.claimed_blocks.emplace_back(ntohl(e.public_addr),
                                    (ntohs(e.public_port) - cfg.port_min) / cfg.block_size);
    if (e.type == AFTR_EV_SESSION_CREATE) c.session_port = ntohs(e.public_port);
  }
  c.port_pick_retries = retries;
  return c;
}

uint16_t Get16(const Bytes& f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }
void Put16(Bytes& f, size_t off, uint16_t v) {
  f[off] = uint8_t(v >> 8);
  f[off + 1] = uint8_t(v);
}

struct PublicEnd {
  uint32_t addr;  // network order
  uint16_t port;  // host order
  uint8_t proto;
};

// Points a plain IPv4 frame at `s`: destination address, protocol and destination port (ICMP
// echo: the identifier). An ICMP error is pointed at it through the packet it quotes (source
// address, protocol and port). Checksums are then computed afresh.
void Aim(Bytes& f, const PublicEnd& s) {
  if (f.size() < 34 || f[12] != 0x08 || f[13] != 0x00) return;
  const size_t ihl = size_t(f[14] & 0x0f) * 4;
  const size_t l4 = 14 + ihl;
  if (ihl < 20 || l4 + 8 > f.size()) return;
  const size_t ip_end = std::max(l4 + 8, std::min(f.size(), size_t(14 + Get16(f, 16))));
  std::memcpy(&f[30], &s.addr, 4);
  const uint8_t proto = f[23];
  const uint8_t type = f[l4];
  if (proto == kProtoIcmp && (type == 3 || type == 11 || type == 12)) {
    const size_t q = l4 + 8;
    if (q + 20 <= ip_end) {
      const size_t qihl = size_t(f[q] & 0x0f) * 4;
      std::memcpy(&f[q + 12], &s.addr, 4);
      f[q + 9] = s.proto;
      const size_t at = q + qihl + (s.proto == kProtoIcmp ? 4 : 0);
      if (qihl >= 20 && at + 2 <= ip_end) Put16(f, at, s.port);
    }
  } else {
    f[23] = s.proto;
    if (s.proto == kProtoIcmp) {
      if (type != 0 && type != 8) f[l4] = 0;  // an echo reply
      Put16(f, l4 + 4, s.port);
    } else {
      Put16(f, l4 + 2, s.port);
    }
  }
  f[24] = f[25] = 0;
  Put16(f, 24, ChecksumFinish(ChecksumAdd(&f[14], ihl)));
  const uint8_t p = f[23];
  const size_t cs = l4 + (p == kProtoTcp ? 16 : p == kProtoUdp ? 6 : 2);
  if (cs + 2 > ip_end || (p == kProtoUdp && Get16(f, cs) == 0)) return;
  f[cs] = f[cs + 1] = 0;
  uint32_t sum = 0;
  if (p == kProtoTcp || p == kProtoUdp) {
    uint32_t src, dst;
    std::memcpy(&src, &f[26], 4);
    std::memcpy(&dst, &f[30], 4);
    sum = Ipv4PseudoSum(src, dst, p, uint16_t(ip_end - l4));
  }
  uint16_t c = ChecksumFinish(ChecksumAdd(&f[l4], ip_end - l4, sum));
  if (p == kProtoUdp && c == 0) c = 0xffff;
  Put16(f, cs, c);
}

struct Pair {
  Pair() : harness(DefaultConfig(), sizes), model(ModelConfigFor(harness, sizes)) {}
  MapSizes sizes;
  Harness harness;
  model::Model model;
  uint64_t retries_seen = 0;
};

std::string VerdictText(int v) {
  switch (v) {
    case XDP_ABORTED: return "ABORTED";
    case XDP_DROP: return "DROP";
    case XDP_PASS: return "PASS";
    case XDP_TX: return "TX";
    case XDP_REDIRECT: return "REDIRECT";
  }
  return std::to_string(v);
}

std::string CountersText(const std::array<CounterValues, AFTR_DIR_MAX>& c) {
  std::string s;
  static const char* dirs[] = {"from_b4", "from_internet", "other"};
  for (int d = 0; d < AFTR_DIR_MAX; d++)
    s += std::string(d < 3 ? dirs[d] : "?") + "{" + CounterDiff({}, c[d]) + "} ";
  return s;
}

[[noreturn]] void Mismatch(const std::string& what, const Bytes& frame, int ingress,
                           const RunResult& x, const model::Result& r,
                           const std::array<CounterValues, AFTR_DIR_MAX>& xc,
                           const std::array<CounterValues, AFTR_DIR_MAX>& mc,
                           const std::vector<model::Event>& xe) {
  std::fprintf(stderr, "packet_fuzz: program and model disagree: %s\ningress ifindex %d, input:%s\n"
                       "xdp %s out:%s\nmodel %s out:%s\nxdp counters:   %s\nmodel counters: %s\n",
               what.c_str(), ingress, Hex(frame).c_str(), VerdictText(x.verdict).c_str(),
               Hex(x.out).c_str(), VerdictText(r.verdict).c_str(), Hex(r.out).c_str(),
               CountersText(xc).c_str(), CountersText(mc).c_str());
  std::fprintf(stderr, "xdp events:");
  for (const model::Event& e : xe) std::fprintf(stderr, " %s", model::ToString(e).c_str());
  std::fprintf(stderr, "\nmodel events:");
  for (const model::Event& e : r.events) std::fprintf(stderr, " %s", model::ToString(e).c_str());
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  __builtin_trap();
}

// ---- The seed corpus ----

void Record(Bytes& input, uint8_t control, const Bytes& frame) {
  input.push_back(control);
  input.push_back(uint8_t(frame.size() >> 8));
  input.push_back(uint8_t(frame.size()));
  input.insert(input.end(), frame.begin(), frame.end());
}

void WriteSeeds(const char* dir) {
  const TestNet& n = Net();
  const Ip6 b4 = Ip6Addr("2001:db8:100::2");
  const uint32_t inner = Ip4Addr("192.0.2.10"), remote = Ip4Addr("203.0.113.10");
  const uint32_t pub = Ip4Addr("198.51.100.1");
  auto from_b4 = [&] {
    PacketBuilder b;
    b.Eth(n.b4_local_mac, kB4RouterMac).Ipv6(b4, kSoftwire).Ipv4(inner, remote);
    return b;
  };
  auto from_inet = [&](uint32_t dst) {
    PacketBuilder b;
    b.Eth(n.inet_local_mac, kInetRouterMac).Ipv4(remote, dst);
    return b;
  };
  std::vector<std::pair<std::string, Bytes>> seeds;
  auto one = [&](const std::string& name, const Bytes& frame, uint8_t control = 0) {
    Bytes in;
    Record(in, control, frame);
    seeds.emplace_back(name, in);
  };
  // Out and back: the second frame is aimed at the session the first made.
  auto flow = [&](const std::string& name, const Bytes& out, const Bytes& back) {
    Bytes in;
    Record(in, 0, out);
    Record(in, 2, back);
    seeds.emplace_back(name, in);
  };
  flow("udp_flow", from_b4().Udp(40000, 53).Payload("query").Build(),
       from_inet(pub).Udp(53, 1).Payload("answer").Build());
  flow("tcp_flow", from_b4().Tcp(40001, 80, kTcpSyn).TcpMss(1460).Build(),
       from_inet(pub).Tcp(80, 1, kTcpSyn | kTcpAck).TcpMss(1460).Build());
  flow("icmp_echo_flow", from_b4().IcmpEcho(7, 1).Payload("ping").Build(),
       from_inet(pub).IcmpEchoReply(1, 1).Payload("ping").Build());
  {
    // An ICMP error quoting the translated packet (as the Internet would send it back).
    Bytes out = from_b4().Udp(40002, 53).Build();
    Bytes quoted = PacketBuilder().Ipv4(pub, remote).Udp(1, 53).Build();
    quoted.erase(quoted.begin(), quoted.begin() + 14);
    Bytes err = from_inet(pub).Icmp(3, 3, 0, 0).Payload(quoted).Build();
    Bytes in;
    Record(in, 0, out);
    Record(in, 2, err);
    seeds.emplace_back("icmp_error_flow", in);
  }
  {
    // An ICMPv6 Packet Too Big from the B4's network about a 1400-byte datagram we sent toward
    // the B4 on the session the first frame made (quoted as far as 1280 bytes allow).
    Bytes out = from_b4().Udp(40003, 53).Build();
    Bytes inner4 = PacketBuilder().Ipv4(remote, inner).Udp(53, 40003).Payload(Bytes(1372, 'r')).Build();
    inner4.erase(inner4.begin(), inner4.begin() + 14);  // the IPv4 packet alone
    Bytes quoted = {0x60, 0, 0, 0, uint8_t(inner4.size() >> 8), uint8_t(inner4.size()), 4, 64};
    quoted.insert(quoted.end(), kSoftwire.begin(), kSoftwire.end());
    quoted.insert(quoted.end(), b4.begin(), b4.end());
    quoted.insert(quoted.end(), inner4.begin(), inner4.end());
    quoted.resize(1232);
    Bytes icmp6 = {2, 0, 0, 0, 0, 0, 0x05, 0x14};  // Packet Too Big, MTU 1300
    icmp6.insert(icmp6.end(), quoted.begin(), quoted.end());
    Bytes ptb = PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac).Ipv6(Ip6Addr("2001:db8:100::fe"), kSoftwire)
                    .RawIpv6Payload(kProtoIcmpv6, icmp6).Build();
    Bytes in;
    Record(in, 0, out);
    Record(in, 0, ptb);
    seeds.emplace_back("icmpv6_packet_too_big_flow", in);
    icmp6[0] = 1;  // unreachable, cut to the minimum quote
    icmp6.resize(8 + 40 + 20 + 8);
    one("icmpv6_unreachable", PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac)
                                  .Ipv6(Ip6Addr("2001:db8:100::fe"), kSoftwire)
                                  .RawIpv6Payload(kProtoIcmpv6, icmp6).Build());
  }
  one("udp_out", from_b4().Udp(40000, 53).Build());
  one("udp_out_zero_checksum", from_b4().Udp(40000, 53).UdpZeroChecksum().Payload("x").Build());
  one("tcp_syn_mss", from_b4().Tcp(40000, 443, kTcpSyn).TcpMss(1460).Build());
  one("tcp_options", from_b4().Tcp(40000, 443, kTcpSyn).TcpOptions({1, 1, 4, 2}).TcpMss(1400).Build());
  one("icmp_echo_out", from_b4().IcmpEcho(9, 1).Build());
  one("icmp_error_from_b4", from_b4().Icmp(3, 3, 0, 0).Payload(Bytes(28, 0x45)).Build());
  one("encap_limit", from_b4().EncapLimit(4).Udp(40000, 53).Build());
  one("dst_opts_long", from_b4().DstOpts(Bytes(64, 0)).Udp(40000, 53).Build());
  one("ipv6_fragment", from_b4().Ipv6Fragment(0x0001, 7).Udp(40000, 53).Build());
  one("ipv4_fragment", from_b4().FragOff(kIpv4MoreFragments).Udp(40000, 53).Build());
  one("ipv4_options", from_b4().Ipv4Options({1, 1, 1, 0}).Udp(40000, 53).Build());
  one("ttl_1", from_b4().Ttl(1).Udp(40000, 53).Build());
  one("gre_inner", from_b4().Ipv4Payload(kProtoGre, Bytes(8, 0)).Build());
  one("remote_no_neigh",
      PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac).Ipv6(b4, kSoftwire)
          .Ipv4(inner, Ip4Addr("203.0.113.200")).Udp(40000, 53).Build());
  one("unknown_b4",
      PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac).Ipv6(Ip6Addr("2001:db8:200::2"), kSoftwire)
          .Ipv4(inner, remote).Udp(40000, 53).Build());
  one("not_softwire",
      PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac).Ipv6(b4, Ip6Addr("2001:db8:ffff::99"))
          .Ipv4(inner, remote).Udp(40000, 53).Build());
  one("pcp_request",
      PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac).Ipv6(b4, kSoftwire)
          .RawIpv6Payload(kProtoUdp, {0x13, 0xe7, 0x14, 0x0f, 0, 0, 0, 0, 2, 1, 0, 0}).Build());
  one("icmpv6_rs",
      PacketBuilder().Eth(n.b4_local_mac, kB4RouterMac).Ipv6(b4, kSoftwire)
          .RawIpv6Payload(kProtoIcmpv6, {133, 0, 0, 0, 0, 0, 0, 0}).Build());
  one("arp", PacketBuilder().Eth(n.inet_local_mac, kInetRouterMac).EtherType(kEtherTypeArp)
                 .Raw(Bytes(28, 1)).Build());
  one("inbound_no_session", from_inet(pub).Udp(53, 40000).Build());
  one("inbound_not_pool", from_inet(Ip4Addr("198.51.100.77")).Udp(53, 40000).Build());
  one("inbound_timestamp", from_inet(pub).Icmp(13, 0, 1, 1).Build());
  one("one_armed_ipv4", from_b4().Udp(40000, 53).Build(), 1);
  for (const auto& [name, bytes] : seeds) {
    const std::string path = std::string(dir) + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
      std::perror(path.c_str());
      std::exit(1);
    }
    std::fclose(f);
  }
  std::printf("packet_fuzz: wrote %zu seeds to %s\n", seeds.size(), dir);
  std::exit(0);
}

std::unique_ptr<Pair> pair;
int inputs_since_fresh = 0;
bool trace = false;  // AFTR_PACKET_FUZZ_TRACE: each frame's verdict, events and counters

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("AFTR_PACKET_FUZZ_SEEDS")) WriteSeeds(dir);
  trace = std::getenv("AFTR_PACKET_FUZZ_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!pair || ++inputs_since_fresh >= kFreshEvery ||
      pair->model.state().subscribers.size() > kMaxSubscribers) {
    pair.reset();  // the old maps go before the new ones are made
    pair = std::make_unique<Pair>();
    inputs_since_fresh = 0;
  }
  Harness& h = pair->harness;
  model::Model& m = pair->model;
  const TestNet& net = Net();
  std::vector<PublicEnd> sessions;
  size_t pos = 0;
  for (size_t i = 0; i < kMaxFrames && pos + 3 <= size; i++) {
    const uint8_t control = data[pos];
    size_t len = size_t(data[pos + 1]) << 8 | data[pos + 2];
    pos += 3;
    len = std::min({len, size - pos, kMaxFrame});
    Bytes frame(data + pos, data + pos + len);
    pos += len;
    if (frame.size() < 14) frame.resize(14);  // BPF_PROG_TEST_RUN wants an Ethernet header
    if ((control & 2) && !sessions.empty()) Aim(frame, sessions[(control >> 2) % sessions.size()]);
    const bool ipv6 = frame[12] == 0x86 && frame[13] == 0xdd;
    int ingress = ipv6 ? net.b4_ifindex : net.inet_ifindex;
    if (control & 1) ingress = ipv6 ? net.inet_ifindex : net.b4_ifindex;

    const RunResult x = h.RunOn(ingress, frame);
    const std::vector<aftr_event> events = h.DrainEvents();
    const std::array<CounterValues, AFTR_DIR_MAX> counters = h.CountersByDirection();
    const uint64_t retries = counters[AFTR_DIR_FROM_B4][AFTR_C_PORT_PICK_RETRIES];
    const model::Result r =
        m.Process(frame, ingress, ChoicesFrom(events, retries - pair->retries_seen, h.config()));
    pair->retries_seen = retries;

    std::vector<model::Event> xe;
    for (const aftr_event& e : events) {
      xe.push_back(ToModel(e));
      if (e.type == AFTR_EV_SESSION_CREATE)
        sessions.push_back({e.public_addr, ntohs(e.public_port), e.proto});
    }
    std::array<CounterValues, AFTR_DIR_MAX> mc;
    for (int d = 0; d < AFTR_DIR_MAX; d++)
      for (int c = 0; c < AFTR_COUNTER_MAX; c++) mc[d][c] = m.state().counters[d][c];
    std::string diff;
    if (x.verdict != r.verdict) diff += "verdict; ";
    if (x.out != r.out) diff += "output bytes; ";
    if (xe != r.events) diff += "events; ";
    if (mc != counters) diff += "counters; ";
    for (const std::string& why : r.illegal_choices) diff += "illegal choice: " + why + "; ";
    if (!diff.empty()) Mismatch(diff, frame, ingress, x, r, counters, mc, xe);
    if (trace)
      std::fprintf(stderr, "packet_fuzz: frame %zu on ifindex %d: %s, %zu events, counters %s\n", i,
                   ingress, VerdictText(x.verdict).c_str(), xe.size(), CountersText(counters).c_str());
  }
  // The sweeper's delete for every session the input left, on both sides.
  std::vector<model::SessionOutKey> keys;
  for (const auto& [key, session] : m.state().sessions_out) keys.push_back(key);
  for (const model::SessionOutKey& key : keys) {
    aftr_ctl_args a{};
    a.op = AFTR_CTL_SESSION_DELETE;
    std::memcpy(a.b4, key.b4.data(), 16);
    a.inner_addr = htonl(key.inner_addr);
    a.inner_port = htons(key.inner_port);
    a.proto = key.proto;
    const int xdp_rc = h.Ctl(a), model_rc = m.DeleteSession(key);
    if (xdp_rc != model_rc) {
      std::fprintf(stderr, "packet_fuzz: session delete returned %d, the model %d\n", xdp_rc,
                   model_rc);
      __builtin_trap();
    }
  }
  // Anything left in the program's session maps is a session the model does not know.
  if (!h.SessionsOut().empty() || !h.SessionsIn().empty()) {
    std::fprintf(stderr, "packet_fuzz: the program kept sessions the model did not make\n");
    __builtin_trap();
  }
  return 0;
}
