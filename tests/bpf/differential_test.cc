// Differential test: random sequences of frames (valid flows both ways, hairpinned ones from
// B4s to our own public addresses, ICMP errors quoting earlier packets from the Internet and
// from behind B4s, packets too big for the softwire or the Internet side with and without
// DF, expiring TTLs, odd and malformed frames, byte flips) go through the production XDP
// program (BPF_PROG_TEST_RUN) and through the C++ reference model (tests/model); verdicts,
// output bytes, events and counters must agree after every packet, and the maps (sessions,
// subscribers, pool bitmaps, filter peers) at checkpoints. Seeds are printed; set
// AFTR_DIFF_SEED=<seed> (and AFTR_DIFF_PACKETS=<n>) to replay a run.
#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "nat_model.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

namespace model = aftr::model;

// ---- One configuration of the program and maps, and the model that matches it ----

struct DiffConfig {
  std::string name;
  aftr_dp_config cfg;
  MapSizes sizes;
  double expiry_rate = 0.08;  // chance, after each packet, that one session is deleted
};

const Ip6 kSoftwire2 = Ip6Addr("2001:db8:ffff::2");
const Ip6 kNotSoftwire = Ip6Addr("2001:db8:ffff::99");

// Endpoint-independent filtering, no next-hop cache: the harness's defaults.
DiffConfig PlainConfig() { return {"plain", DefaultConfig(), MapSizes{}}; }

// Address-dependent filtering, a next-hop cache that never expires, two softwire addresses,
// a session limit that is reached, another clamp and hop limit.
DiffConfig FilteringConfig() {
  DiffConfig d{"filtering", DefaultConfig(), MapSizes{}};
  d.cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  d.cfg.fib_cache_ticks = UINT32_MAX;  // the model's cache never expires: neither may this
  std::memcpy(d.cfg.softwire_addrs[1], kSoftwire2.data(), 16);
  d.cfg.softwire_addr_count = 2;
  d.cfg.max_sessions_per_sub = 40;
  d.cfg.tcp_mss_clamp = 1400;
  d.cfg.hop_limit = 60;
  d.cfg.softwire_mtu = 1400;  // inbound packets past 1360 bytes meet the tunnel's MTU
  d.sizes.filter_peers = 1 << 18;  // far from full: LRU eviction is not modelled
  return d;
}

// One public address with 32 blocks of 16 ports, 3 blocks per subscriber, small tables: the
// pool, the subscriber table and the session tables all run out. MSS clamping off.
DiffConfig TightConfig() {
  DiffConfig d{"tight", ConfigWithPorts(1024, 1535, 16, 3), MapSizes{}};
  d.cfg.pool_prefix_mask[0] = Ip4Addr("255.255.255.255");
  d.cfg.pool_addr_count = 1;
  d.cfg.tcp_mss_clamp = 0;
  d.cfg.icmp_errors_per_second = 0;  // no ICMP errors generated: every one suppressed
  d.sizes.sessions_out = 300;
  d.sizes.sessions_in = 300;
  d.sizes.subscribers = 20;
  return d;
}

// One public address with only 8 blocks of 16 ports for the generator's six B4s, 3 blocks
// each: the address's blocks run out both for new subscribers (address exhausted) and for
// subscribers that want another block on it (ports exhausted, naming the address).
DiffConfig CrowdedConfig() {
  DiffConfig d{"crowded", ConfigWithPorts(1024, 1151, 16, 3), MapSizes{}};
  d.cfg.pool_prefix_mask[0] = Ip4Addr("255.255.255.255");
  d.cfg.pool_addr_count = 1;
  return d;
}

// Tight ports, with three of the generator's six B4s (2001:db8:100::1:1..3) in a
// deterministic range (2001:db8:100::1:0/126 in /128s, 32 ports each over
// 198.51.100.64/31): their ranges run full while the other three share the pool.
DiffConfig DeterministicConfig() {
  DiffConfig d{"deterministic", ConfigWithPorts(1024, 1535, 16, 3), MapSizes{}};
  AddDeterministicRange(&d.cfg, Ip6Addr("2001:db8:100::1:0"), 126, 128, Ip4Addr("198.51.100.64"),
                        31, 32);
  return d;
}

model::Config ModelConfigFor(const Harness& h, const MapSizes& sizes) {
  model::Config c;
  c.dp = h.config();
  c.b4_prefixes = {{Ip6Addr("2001:db8:100::"), 40}};  // as the harness seeds aftr_b4_prefixes
  for (uint32_t a : h.pool()) c.pool.push_back(ntohl(a));
  c.pool_hint = 0;
  c.max_sessions_out = sizes.sessions_out;
  c.max_sessions_in = sizes.sessions_in;
  c.max_subscribers = sizes.subscribers;
  // The harness's namespace (harness.cc SetUpNet): the B4 route, a resolved and an
  // unresolved gateway toward the Internet, both veth MTUs 1500, nothing else routed.
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

// ---- What the program did, in the model's terms ----

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

model::FibCache ToModel(const aftr_fib_cache& c) {
  model::FibCache m;
  m.valid = c.stamp != 0;
  if (m.valid) {
    m.ifindex = int(c.ifindex);
    std::memcpy(m.dmac.data(), c.dmac, 6);
    m.mtu = c.mtu;
  }
  return m;
}

// The choices the model must check: blocks claimed and the session's port (from the events),
// the port-pick retries (from the counter).
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

model::State XdpState(const Harness& h) {
  model::State s;
  for (const auto& [k, v] : h.SessionsOut()) {
    model::SessionOutKey mk{ToIp6(k.b4), ntohl(k.inner_addr), ntohs(k.inner_port), k.proto};
    s.sessions_out[mk] = {ntohl(v.public_addr), ntohs(v.public_port), v.tcp_flags, v.flags,
                          ToModel(v.fib)};
  }
  for (const auto& [k, v] : h.SessionsIn()) {
    model::SessionInKey mk{ntohl(k.public_addr), ntohs(k.public_port), k.proto};
    s.sessions_in[mk] = {ToIp6(v.b4), ntohl(v.inner_addr), ntohs(v.inner_port),
                         v.softwire_index, v.tcp_flags, ToModel(v.fib)};
  }
  return s;
}

template <typename K, typename V>
std::string MapDiff(const char* what, const std::map<K, V>& xdp, const std::map<K, V>& mod) {
  if (xdp == mod) return "";
  std::ostringstream s;
  s << what << ": xdp has " << xdp.size() << " entries, model " << mod.size() << "; ";
  int shown = 0;
  for (const auto& [k, v] : xdp) {
    auto it = mod.find(k);
    if (it == mod.end() || !(it->second == v)) {
      s << (it == mod.end() ? "only in xdp" : "differs") << " (entry " << shown << "); ";
      if (++shown == 3) break;
    }
  }
  for (const auto& [k, v] : mod)
    if (!xdp.count(k) && shown++ < 6) s << "only in model; ";
  return s.str();
}

// Everything the maps hold that the model predicts (last-seen times and creation times are
// clock readings, left out).
std::string CompareState(const Harness& h, const model::Model& m) {
  std::string diff;
  model::State x = XdpState(h);
  const model::State& s = m.state();
  diff += MapDiff("sessions_out", x.sessions_out, s.sessions_out);
  diff += MapDiff("sessions_in", x.sessions_in, s.sessions_in);
  if (h.SubscriberCount() != s.subscribers.size())
    diff += "subscriber count xdp " + std::to_string(h.SubscriberCount()) + " model " +
            std::to_string(s.subscribers.size()) + "; ";
  for (const auto& [b4, sub] : s.subscribers) {
    Ip6 a;
    std::memcpy(a.data(), b4.data(), 16);
    std::optional<aftr_subscriber> xs = h.Subscriber(a);
    if (!xs) {
      diff += "subscriber " + Ip6String(a) + " missing in xdp; ";
      continue;
    }
    model::Subscriber ms;
    ms.retired = (xs->state_sessions >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE;
    ms.sessions = uint32_t(xs->state_sessions);
    ms.public_addr = ntohl(xs->public_addr);
    ms.addr_index = xs->addr_index;
    for (uint32_t i = 0; i < xs->n_blocks && i < AFTR_MAX_BLOCKS_PER_SUB; i++)
      ms.blocks.push_back(xs->blocks[i]);
    if (!(ms == sub)) diff += "subscriber " + Ip6String(a) + " differs; ";
  }
  for (uint32_t i = 0; i < s.pool.size(); i++) {
    aftr_pool_addr pa = h.PoolAddr(i);
    if (ntohl(pa.addr) != s.pool[i].addr || pa.flags != s.pool[i].flags ||
        std::memcmp(pa.used, s.pool[i].used.data(), sizeof(pa.used)) != 0)
      diff += "pool address " + std::to_string(i) + " bitmap differs; ";
  }
  std::set<model::FilterKey> peers;
  for (const aftr_filter_key& k : h.FilterPeers())
    peers.insert({ntohl(k.public_addr), ntohl(k.remote_addr), ntohs(k.public_port), k.proto});
  std::map<model::Ip6, uint32_t> mtus;
  for (const auto& [b4, v] : h.B4Mtus()) {
    model::Ip6 a;
    std::memcpy(a.data(), b4.data(), 16);
    mtus[a] = v.mtu;
  }
  diff += MapDiff("b4_mtu", mtus, s.b4_mtu);
  if (peers != s.filter_peers)
    diff += "filter peers: xdp " + std::to_string(peers.size()) + " model " +
            std::to_string(s.filter_peers.size()) + "; ";
  return diff;
}

// ---- The generator ----

class Generator {
 public:
  struct Packet {
    Bytes frame;
    int ingress = 0;
    std::string kind;
  };

  Generator(uint64_t seed, const aftr_dp_config& cfg, const std::vector<uint32_t>& pool)
      : rng_(seed), cfg_(cfg), pool_(pool) {
    // Deterministic addresses take inbound packets too.
    for (uint32_t r = 0; r < cfg.det_count; r++)
      for (uint32_t i = 0; i < 2; i++) pool_.push_back(htonl(cfg.det[r].pool_base + i));
    for (int i = 1; i <= 6; i++) {
      Ip6 b4 = Ip6Addr("2001:db8:100::1:0");
      b4[15] = uint8_t(i);
      b4s_.push_back(b4);
    }
    for (const char* h : {"192.0.2.10", "192.0.2.11", "192.0.2.12"}) hosts_.push_back(Ip4Addr(h));
    for (uint32_t i = 0; i < cfg.softwire_addr_count; i++) {
      Ip6 a;
      std::memcpy(a.data(), cfg.softwire_addrs[i], 16);
      softwires_.push_back(a);
    }
  }

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  Packet Next() {
    Packet p;
    int what = Uniform(0, 99);
    if (what < 36) {
      p.kind = "outbound";
      p.frame = Outbound().Build();
    } else if (what < 62) {
      p.kind = "inbound to a session";
      p.frame = InboundToSession().Build();
    } else if (what < 69) {
      p.kind = "icmp error";
      p.frame = IcmpError();
    } else if (what < 77) {
      p.kind = "hairpin";
      p.frame = Hairpin().Build();
    } else if (what < 81) {
      p.kind = "icmp error from a b4";
      p.frame = IcmpErrorFromB4();
    } else if (what < 85) {
      p.kind = "icmpv6 error about a softwire packet";
      p.frame = Icmp6Error();
    } else if (what < 88) {
      p.kind = "inbound without session";
      p.frame = InboundStray().Build();
    } else {
      p.kind = "odd";
      p.frame = Odd();
    }
    if (Chance(0.12)) Mutate(p);
    bool ipv6 = p.frame.size() >= 14 && p.frame[12] == 0x86 && p.frame[13] == 0xdd;
    p.ingress = ipv6 ? Net().b4_ifindex : Net().inet_ifindex;
    if (Chance(0.08)) {  // one-armed: arrives where its next hop is (XDP_TX)
      p.ingress = ipv6 ? Net().inet_ifindex : Net().b4_ifindex;
      p.kind += " on the other interface";
    }
    return p;
  }

  // Remembers what later packets can answer: new sessions' public ends, packets sent out.
  void Learn(const RunResult& r, const std::vector<aftr_event>& events) {
    for (const aftr_event& e : events)
      if (e.type == AFTR_EV_SESSION_CREATE) {
        Ip6 b4;
        std::memcpy(b4.data(), e.b4, 16);
        sessions_.push_back(
            {e.public_addr, ntohs(e.public_port), e.proto, e.inner_addr, ntohs(e.inner_port), b4});
      }
    if (sessions_.size() > 4096) sessions_.erase(sessions_.begin(), sessions_.begin() + 1024);
    if ((r.verdict == XDP_REDIRECT || r.verdict == XDP_TX) && r.out.size() > 14 &&
        r.out[12] == 0x08 && r.out[13] == 0x00) {
      Bytes ip = Ipv4Packet(r.out);
      if (!ip.empty()) {
        sent_.push_back(ip);
        if (sent_.size() > 64) sent_.pop_front();
      }
    }
    // Packets delivered to a host behind a B4 (from the Internet or hairpinned): what the
    // host's errors quote.
    std::optional<Frame> f;
    if ((r.verdict == XDP_REDIRECT || r.verdict == XDP_TX) && r.out.size() > 14 &&
        r.out[12] == 0x86 && r.out[13] == 0xdd && (f = ParseFrame(r.out)) && f->has_ipv4) {
      Bytes ip = Ipv4Packet(r.out);
      if (!ip.empty()) {
        delivered_.push_back({f->ip6_dst, f->ip6_src, ip,
                              Bytes(r.out.begin() + 14, r.out.begin() + 14 + 40 + ip.size())});
        if (delivered_.size() > 64) delivered_.pop_front();
      }
    }
  }

 private:
  struct PublicEnd {
    uint32_t addr;  // network order
    uint16_t port;
    uint8_t proto;
    uint32_t inner_addr;  // network order
    uint16_t inner_port;
    Ip6 b4;
  };
  struct Delivered {
    Ip6 b4, softwire;
    Bytes ip;  // the IPv4 packet the host received
    Bytes ip6;  // the softwire packet it came in: what an ICMPv6 error about it quotes
  };

  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Uniform(0, int(v.size()) - 1)]; }
  Bytes RandomBytes(int n) {
    Bytes b(n);
    for (auto& x : b) x = uint8_t(Uniform(0, 255));
    return b;
  }

  uint32_t Remote() {
    if (Chance(0.02)) return kRemoteNoNeigh;  // 203.0.113.200: gateway unresolved
    if (Chance(0.01)) return kUnrouted;
    if (Chance(0.005)) return Ip4Addr("127.0.0.1");
    static const std::vector<uint32_t> remotes = {Ip4Addr("203.0.113.10"), Ip4Addr("203.0.113.20"),
                                                  Ip4Addr("203.0.113.30"), Ip4Addr("203.0.113.99")};
    return Pick(remotes);
  }
  uint16_t RemotePort() {
    static const std::vector<uint16_t> ports = {53, 80, 443, 7, 5000};
    return Pick(ports);
  }
  uint8_t TcpFlags() {
    static const std::vector<uint8_t> flags = {kTcpSyn, kTcpSyn | kTcpAck, kTcpAck, kTcpPsh | kTcpAck,
                                               kTcpFin | kTcpAck, kTcpRst, kTcpRst | kTcpAck};
    return Pick(flags);
  }
  void Tcp(PacketBuilder& b, uint16_t sport, uint16_t dport) {
    uint8_t flags = TcpFlags();
    b.Tcp(sport, dport, flags).TcpSeq(uint32_t(rng_()), uint32_t(rng_()));
    if (Chance(0.15)) b.TcpOptions({1, 1, 4, 2});  // NOP NOP SACK-permitted
    if ((flags & kTcpSyn) && Chance(0.8)) {
      static const std::vector<uint16_t> mss = {536, 1380, 1400, 1420, 1460, 8960};
      b.TcpMss(Pick(mss));
    }
    if (Chance(0.05)) b.TcpOptions(RandomBytes(Uniform(1, 12)));
  }
  void Body(PacketBuilder& b) {
    if (Chance(0.03))
      b.Ttl(uint8_t(Uniform(0, 2)));
    if (Chance(0.03)) b.Ipv4Options(Chance(0.5) ? Bytes{1, 1, 1, 0} : Bytes{0x94, 4, 0, 0});
    if (Chance(0.03)) b.Tos(uint8_t(Uniform(0, 255)));
    // Around the MTUs (1400 and 1500 softwires, the 1500-byte Internet side), with DF (the
    // builder's default: "fragmentation needed") or without (to the slow path).
    if (Chance(0.06)) b.FragOff(0);
    b.Payload(Chance(0.08) ? RandomBytes(Uniform(1300, 1490)) : RandomBytes(Uniform(0, 48)));
    if (Chance(0.03)) b.Trailer(RandomBytes(Uniform(1, 20)));
  }

  PacketBuilder Outbound() {
    PacketBuilder b;
    const Ip6 b4 = Chance(0.03) ? kUnknownB4 : Pick(b4s_);
    const Ip6 sw = Chance(0.03) ? kNotSoftwire : Pick(softwires_);
    b.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(b4, sw).Ipv4(Pick(hosts_), Remote());
    if (Chance(0.1)) b.EncapLimit(uint8_t(Uniform(0, 8)));
    int proto = Uniform(0, 9);
    uint16_t port = uint16_t(40000 + Uniform(0, 47));
    if (proto < 4) {
      b.Udp(port, RemotePort());
      if (Chance(0.05)) b.UdpZeroChecksum();
    } else if (proto < 8) {
      Tcp(b, port, RemotePort());
    } else {
      b.IcmpEcho(uint16_t(Uniform(1, 16)), uint16_t(Uniform(0, 65535)));
    }
    Body(b);
    return b;
  }

  PacketBuilder InboundToSession() {
    if (sessions_.empty()) return InboundStray();
    const PublicEnd& s = Pick(sessions_);
    PacketBuilder b;
    b.Eth(Net().inet_local_mac, kInetRouterMac).Ipv4(Remote(), s.addr);
    if (s.proto == IPPROTO_UDP && Chance(0.03)) {
      // A datagram whose checksum, once translated, sums to zero: it must leave as 0xffff
      // (RFC 768), a case random payloads reach once in 65536.
      uint32_t remote = Remote();
      uint16_t rport = RemotePort();
      Bytes payload = RandomBytes(2 * Uniform(1, 8));
      payload[payload.size() - 2] = payload[payload.size() - 1] = 0;
      uint16_t len = uint16_t(8 + payload.size());
      Bytes udp = {uint8_t(rport >> 8), uint8_t(rport), uint8_t(s.inner_port >> 8),
                   uint8_t(s.inner_port), uint8_t(len >> 8), uint8_t(len), 0, 0};
      udp.insert(udp.end(), payload.begin(), payload.end());
      uint32_t sum = ChecksumAdd(udp.data(), udp.size(),
                                 Ipv4PseudoSum(remote, s.inner_addr, kProtoUdp, len));
      uint16_t fill = uint16_t(~sum);  // makes the translated sum 0xffff: checksum 0
      payload[payload.size() - 2] = fill >> 8;
      payload[payload.size() - 1] = fill & 0xff;
      PacketBuilder b;
      b.Eth(Net().inet_local_mac, kInetRouterMac).Ipv4(remote, s.addr).Udp(rport, s.port)
          .Payload(payload);
      return b;
    }
    if (s.proto == IPPROTO_UDP) {
      b.Udp(RemotePort(), s.port);
      if (Chance(0.05)) b.UdpZeroChecksum();
    } else if (s.proto == IPPROTO_TCP) {
      Tcp(b, RemotePort(), s.port);
    } else {
      b.IcmpEchoReply(s.port, uint16_t(Uniform(0, 65535)));
    }
    Body(b);
    return b;
  }

  PacketBuilder InboundStray() {
    PacketBuilder b;
    uint32_t dst = Chance(0.2) ? Ip4Addr("198.51.100.77") : Pick(pool_);
    b.Eth(Net().inet_local_mac, kInetRouterMac).Ipv4(Remote(), dst);
    switch (Uniform(0, 5)) {
      case 0: b.Udp(RemotePort(), uint16_t(Uniform(1024, 65535))); break;
      case 1: Tcp(b, RemotePort(), uint16_t(Uniform(1024, 65535))); break;
      case 2: b.IcmpEchoReply(uint16_t(Uniform(0, 65535)), 1); break;
      case 3: b.IcmpEcho(uint16_t(Uniform(0, 65535)), 1); break;      // echo from outside
      case 4: b.Icmp(13, 0, 1, 1); break;                              // timestamp
      default: b.Ipv4Payload(kProtoGre, RandomBytes(8)); break;
    }
    if (Chance(0.1)) b.FragOff(Chance(0.5) ? kIpv4MoreFragments : 0x0010);
    Body(b);
    return b;
  }

  // An ICMP error from the Internet about a packet we sent out, quoting some of it.
  Bytes IcmpError() {
    if (sent_.empty()) return InboundStray().Build();
    Bytes quoted = Pick(std::vector<Bytes>(sent_.begin(), sent_.end()));
    size_t ihl = (quoted[0] & 0x0f) * 4;
    switch (Uniform(0, 4)) {
      case 0: quoted.resize(std::min(quoted.size(), ihl + 8)); break;   // RFC 792 minimum
      case 1: quoted.resize(std::min(quoted.size(), ihl + 18)); break;  // up to TCP checksum
      case 2: quoted.resize(Uniform(1, int(quoted.size()))); break;
      default: if (quoted.size() > 548) quoted.resize(548); break;      // RFC 1812 at most
    }
    if (Chance(0.05) && quoted.size() > 16) quoted[12 + Uniform(0, 3)] ^= 0x40;  // not ours
    if (Chance(0.03) && quoted.size() > 8) quoted[6] |= 0x01;                    // a fragment
    uint32_t pub, peer;
    std::memcpy(&pub, &quoted[12], 4);
    std::memcpy(&peer, &quoted[16], 4);
    static const std::vector<uint8_t> types = {3, 11, 12};
    PacketBuilder b;
    b.Eth(Net().inet_local_mac, kInetRouterMac)
        .Ipv4(Chance(0.5) ? peer : Ip4Addr("203.0.113.1"), pub)
        .Icmp(Pick(types), uint8_t(Uniform(0, 4)), 0, uint16_t(Uniform(0, 1600)))
        .Payload(quoted);
    if (Chance(0.03)) b.Ttl(uint8_t(Uniform(0, 2)));
    return b.Build();
  }

  // From a B4 to one of our public addresses: to a known session's public end (another
  // subscriber's, or the sender's own), an echo or echo reply from a session's owner to its
  // own address (its id maps back to itself), or to a port nobody holds.
  PacketBuilder Hairpin() {
    PacketBuilder b;
    const Ip6 sw = Pick(softwires_);
    if (sessions_.empty() || Chance(0.1)) {
      b.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(Pick(b4s_), sw).Ipv4(Pick(hosts_), Pick(pool_));
      if (Chance(0.5))
        b.Udp(uint16_t(40000 + Uniform(0, 47)), uint16_t(Uniform(1024, 65535)));
      else
        Tcp(b, uint16_t(40000 + Uniform(0, 47)), uint16_t(Uniform(1024, 65535)));
      Body(b);
      return b;
    }
    const PublicEnd& s = Pick(sessions_);
    if (s.proto == IPPROTO_ICMP) {  // the owner pings (or answers) its own public address
      b.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(s.b4, sw).Ipv4(s.inner_addr, s.addr);
      b.Icmp(Chance(0.5) ? 8 : 0, 0, s.inner_port, uint16_t(Uniform(0, 65535)));
      Body(b);
      return b;
    }
    // Senders: the session's own host (to itself) or anyone, from a few ports.
    const Ip6 b4 = Chance(0.3) ? s.b4 : Pick(b4s_);
    const uint32_t host = Chance(0.3) ? s.inner_addr : Pick(hosts_);
    const uint16_t sport = uint16_t(40000 + Uniform(0, 47));
    b.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(b4, sw).Ipv4(host, s.addr);
    if (Chance(0.1)) b.EncapLimit(uint8_t(Uniform(1, 8)));
    if (s.proto == IPPROTO_UDP) {
      b.Udp(sport, s.port);
      if (Chance(0.05)) b.UdpZeroChecksum();
    } else {
      Tcp(b, sport, s.port);
    }
    Body(b);
    return b;
  }

  // An ICMP error from behind a B4 about a packet delivered to it, quoting some of it, from
  // the host or a router of its home network, now and then to the wrong peer.
  Bytes IcmpErrorFromB4() {
    if (delivered_.empty()) return Hairpin().Build();
    const Delivered d = delivered_[Uniform(0, int(delivered_.size()) - 1)];
    Bytes quoted = d.ip;
    size_t ihl = (quoted[0] & 0x0f) * 4;
    switch (Uniform(0, 4)) {
      case 0: quoted.resize(std::min(quoted.size(), ihl + 8)); break;
      case 1: quoted.resize(std::min(quoted.size(), ihl + 18)); break;
      case 2: quoted.resize(Uniform(1, int(quoted.size()))); break;
      default: if (quoted.size() > 548) quoted.resize(548); break;
    }
    if (Chance(0.05) && quoted.size() > 20) quoted[16 + Uniform(0, 3)] ^= 0x01;  // another host
    if (Chance(0.03) && quoted.size() > 8) quoted[6] |= 0x01;                    // a fragment
    uint32_t peer, host;
    std::memcpy(&peer, &quoted[12], 4);
    std::memcpy(&host, &quoted[16], 4);
    if (Chance(0.05)) peer = Remote();
    static const std::vector<uint8_t> types = {3, 11, 12};
    PacketBuilder b;
    b.Eth(Net().b4_local_mac, kB4RouterMac)
        .Ipv6(Chance(0.05) ? Pick(b4s_) : d.b4, d.softwire)
        .Ipv4(Chance(0.8) ? host : Ip4Addr("192.0.2.1"), peer)
        .Icmp(Pick(types), uint8_t(Uniform(0, 4)), 0, uint16_t(Uniform(0, 1600)))
        .Payload(quoted);
    if (Chance(0.03)) b.Ttl(uint8_t(Uniform(0, 2)));
    return b.Build();
  }

  // An ICMPv6 error from a router toward a B4 (or the B4) about a softwire packet we sent:
  // Packet Too Big with MTUs around the softwire's, unreachable, time exceeded, parameter
  // problem, or an informational type; the quote cut anywhere, now and then not ours (another
  // source, another next header), inconsistent (payload length) or naming another host.
  Bytes Icmp6Error() {
    if (delivered_.empty()) return InboundToSession().Build();
    Delivered d = delivered_[Uniform(0, int(delivered_.size()) - 1)];
    // Mostly about a packet big enough for a Packet Too Big to be believable.
    for (int tries = 0; tries < 8 && d.ip6.size() <= 1280 && Chance(0.8); tries++)
      d = delivered_[Uniform(0, int(delivered_.size()) - 1)];
    Bytes quoted = d.ip6;
    switch (Uniform(0, 5)) {
      case 0: quoted.resize(std::min<size_t>(quoted.size(), 40 + (quoted[40] & 0x0f) * 4 + 8)); break;
      case 1: quoted.resize(Uniform(1, int(quoted.size()))); break;
      default: if (quoted.size() > 1232) quoted.resize(1232); break;
    }
    if (Chance(0.04) && quoted.size() > 6) quoted[6] = uint8_t(Pick(std::vector<int>{41, 44, 6}));
    if (Chance(0.04) && quoted.size() > 24) quoted[8 + Uniform(0, 15)] ^= 0x01;   // source
    if (Chance(0.03) && quoted.size() > 40) quoted[24 + Uniform(0, 15)] ^= 0x01;  // another B4
    if (Chance(0.03) && quoted.size() > 5) quoted[5] ^= uint8_t(Uniform(1, 255));  // payload len
    if (Chance(0.04) && quoted.size() > 60) quoted[40 + 16 + Uniform(0, 3)] ^= 0x01;  // inner dst
    if (Chance(0.03) && quoted.size() > 60) quoted[40 + 6] |= 0x01;  // a later fragment
    if (Chance(0.03) && quoted.size() > 64) quoted[40 + 20 + Uniform(0, 3)] ^= 0x04;  // ports
    static const std::vector<uint8_t> types = {1, 2, 2, 2, 3, 4, 128, 129};
    uint8_t type = Pick(types);
    static const std::vector<uint32_t> mtus = {0, 1000, 1280, 1300, 1350, 1360, 1400, 1420,
                                                1450, 1480, 1500, 9000, 0x10000 + 1300};
    uint32_t mtu = type == 2 ? Pick(mtus) : uint32_t(Uniform(0, 3)) * 7;
    Bytes icmp6 = {type, uint8_t(Uniform(0, 6)), 0, 0, uint8_t(mtu >> 24), uint8_t(mtu >> 16),
                   uint8_t(mtu >> 8), uint8_t(mtu)};
    icmp6.insert(icmp6.end(), quoted.begin(), quoted.end());
    static const Ip6 kRouter = Ip6Addr("2001:db8:100::fe");
    PacketBuilder b;
    b.Eth(Net().b4_local_mac, kB4RouterMac)
        .Ipv6(Chance(0.7) ? kRouter : d.b4, Chance(0.03) ? kNotSoftwire : d.softwire)
        .RawIpv6Payload(kProtoIcmpv6, icmp6);
    Bytes frame = b.Build();
    if (Chance(0.03) && frame.size() > 14 + 40 + 8) frame.resize(Uniform(14 + 40, int(frame.size()) - 1));
    return frame;
  }

  // Frames the program passes, drops early, or meets rarely.
  Bytes Odd() {
    PacketBuilder b;
    b.Eth(Net().b4_local_mac, kB4RouterMac);
    const Ip6 b4 = Pick(b4s_);
    const Ip6 sw = Pick(softwires_);
    switch (Uniform(0, 13)) {
      case 0: return b.EtherType(kEtherTypeArp).Raw(RandomBytes(28)).Build();
      case 1: return b.EtherType(uint16_t(Uniform(0, 65535))).Raw(RandomBytes(Uniform(0, 60))).Build();
      case 2: return b.Ipv6(b4, sw).RawIpv6Payload(kProtoIcmpv6, {133, 0, 0, 0, 0, 0, 0, 0}).Build();
      case 3: return b.Ipv6(b4, sw).RawIpv6Payload(kProtoUdp, {0x13, 0xe7, 0x14, 0x0f, 0, 0, 0, 0, 2, 1, 0, 0}).Build();
      case 4: return Outbound().Ipv6Fragment(uint16_t(Uniform(0, 1) ? 0x0001 : 0x0008), 7).Build();
      case 5: return b.Ipv6(b4, sw).Ipv6Fragment(1, 9).RawIpv6Payload(kProtoUdp, RandomBytes(12)).Build();
      case 6: {  // Destination Options with random options, maybe ones that mean discard
        Bytes opts;
        int n = Uniform(1, 3);
        for (int i = 0; i < n; i++) {
          static const std::vector<uint8_t> types = {0, 1, 4, 5, 0x3e, 0x85, 0xc2, 0x4d};
          uint8_t t = Pick(types);
          opts.push_back(t);
          if (t == 0) continue;
          uint8_t len = uint8_t(t == 4 && Chance(0.8) ? 1 : Uniform(0, 6));
          opts.push_back(len);
          Bytes v = RandomBytes(len);
          opts.insert(opts.end(), v.begin(), v.end());
        }
        return Outbound().DstOpts(opts).Build();
      }
      case 7: return Outbound().DstOpts(Bytes(Uniform(60, 120), 0)).Build();  // long: passed
      case 8: return Outbound().FragOff(Chance(0.5) ? kIpv4MoreFragments : 0x00b9).Build();
      case 9: {
        PacketBuilder o = Outbound();
        o.Ipv4Payload(kProtoGre, RandomBytes(12));
        return o.Build();
      }
      case 10: {  // an ICMP error from behind a B4 quoting random bytes
        PacketBuilder o;
        o.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(b4, sw).Ipv4(Pick(hosts_), Remote())
            .Icmp(3, 3, 0, 0).Payload(RandomBytes(28));
        return o.Build();
      }
      case 11: return b.Ipv6(b4, kNotSoftwire).Ipv4(Pick(hosts_), Remote()).Udp(1, 2).Build();
      case 12: return PacketBuilder().Eth(Net().inet_local_mac, kInetRouterMac)
                   .Ipv4(Remote(), Ip4Addr("198.51.100.250")).Udp(1, 2).Build();
      default: return Outbound().Ttl(uint8_t(Uniform(0, 1))).Build();
    }
  }

  // Damage: truncation, a length field, a checksum, random bytes.
  void Mutate(Packet& p) {
    Bytes& f = p.frame;
    std::optional<Frame> parsed = ParseFrame(f);
    switch (Uniform(0, 4)) {
      case 0:
        if (f.size() > 14) f.resize(Uniform(14, int(f.size()) - 1));
        p.kind += ", truncated";
        return;
      case 1:
        if (parsed && parsed->has_ipv6 && Chance(0.5)) {
          uint16_t v = uint16_t(parsed->ip6_payload_len + Uniform(-30, 30));
          f[18] = v >> 8, f[19] = v & 0xff;
          p.kind += ", ipv6 payload length";
        } else if (parsed && parsed->has_ipv4) {
          uint16_t v = uint16_t(parsed->tot_len + Uniform(-30, 30));
          f[parsed->ipv4_offset + 2] = v >> 8, f[parsed->ipv4_offset + 3] = v & 0xff;
          p.kind += ", ipv4 total length";
        }
        return;
      case 2:
        if (parsed && parsed->has_ipv4 && parsed->l4_offset + 18 <= f.size()) {
          size_t off = parsed->protocol == kProtoTcp ? 16 : parsed->protocol == kProtoUdp ? 6 : 2;
          f[parsed->l4_offset + off + Uniform(0, 1)] ^= uint8_t(Uniform(1, 255));
          p.kind += ", bad L4 checksum";
        } else if (parsed && parsed->has_ipv4) {
          f[parsed->ipv4_offset + 10] ^= 0x5a;
          p.kind += ", bad IPv4 checksum";
        }
        return;
      default: {
        int n = Uniform(1, 3);
        for (int i = 0; i < n && f.size() > 12; i++)
          f[Uniform(12, int(f.size()) - 1)] ^= uint8_t(Uniform(1, 255));
        p.kind += ", bytes flipped";
        return;
      }
    }
  }

  std::mt19937_64 rng_;
  aftr_dp_config cfg_;
  std::vector<uint32_t> pool_;
  std::vector<Ip6> b4s_, softwires_;
  std::vector<uint32_t> hosts_;
  std::vector<PublicEnd> sessions_;
  std::deque<Bytes> sent_;  // IPv4 packets translated toward the Internet
  std::deque<Delivered> delivered_;  // IPv4 packets sent toward B4s
};

// ---- The run ----

std::string VerdictText(int v) { return VerdictName(v); }

std::string CountersText(const std::array<CounterValues, AFTR_DIR_MAX>& c) {
  std::string s;
  static const char* dirs[] = {"from_b4", "from_internet", "other"};
  for (int d = 0; d < AFTR_DIR_MAX; d++) s += std::string(dirs[d]) + "{" + CounterDiff({}, c[d]) + "} ";
  return s;
}

struct RunStats {
  uint64_t packets = 0;
  std::map<int, uint64_t> verdicts;
  std::map<int, uint64_t> events;  // by aftr_event_type
  std::array<uint64_t, AFTR_COUNTER_MAX> totals{};
};

// Runs `packets` frames from `seed` through both; returns "" or the first disagreement with
// everything needed to replay it. `check_every`: map comparison interval in packets.
std::string RunDifferential(const DiffConfig& dc, uint64_t seed, uint64_t packets,
                            uint64_t check_every, RunStats& stats) {
  Harness h(dc.cfg, dc.sizes);
  model::Model m(ModelConfigFor(h, dc.sizes));
  Generator gen(seed, h.config(), h.pool());
  std::array<CounterValues, AFTR_DIR_MAX> prev{};
  for (uint64_t i = 0; i < packets; i++) {
    Generator::Packet pkt = gen.Next();
    RunResult x = h.RunOn(pkt.ingress, pkt.frame);
    std::vector<aftr_event> events = h.DrainEvents();
    std::vector<Harness::SlowRecord> slow = h.DrainSlowPath();
    std::array<CounterValues, AFTR_DIR_MAX> counters = h.CountersByDirection();
    uint64_t retries = counters[AFTR_DIR_FROM_B4][AFTR_C_PORT_PICK_RETRIES] -
                       prev[AFTR_DIR_FROM_B4][AFTR_C_PORT_PICK_RETRIES];
    model::Result r = m.Process(pkt.frame, pkt.ingress, ChoicesFrom(events, retries, dc.cfg));

    std::string diff;
    if (x.verdict != r.verdict)
      diff += "verdict: xdp " + VerdictText(x.verdict) + " model " + VerdictText(r.verdict) + "\n";
    // A dropped frame's bytes go nowhere, and the program may drop one it has half rewritten
    // (a cached next hop's MACs are written only after the decapsulation): not compared.
    if (x.verdict != XDP_DROP && x.out != r.out) diff += "output bytes differ\n";
    std::vector<model::Event> xe;
    for (const aftr_event& e : events) xe.push_back(ToModel(e));
    if (xe != r.events) diff += "events differ\n";
    if (r.slow_path_frame) {
      if (slow.size() != 1 || slow[0].frame != *r.slow_path_frame ||
          slow[0].hdr.kind != r.slow_path_kind || slow[0].hdr.frame_len != slow[0].frame.size() ||
          int(slow[0].hdr.ifindex) != pkt.ingress)
        diff += "slow-path record differs\n";
    } else if (!slow.empty()) {
      diff += "xdp queued a slow-path record, the model none\n";
    }
    std::array<CounterValues, AFTR_DIR_MAX> mc;
    for (int d = 0; d < AFTR_DIR_MAX; d++)
      for (int c = 0; c < AFTR_COUNTER_MAX; c++) mc[d][c] = m.state().counters[d][c];
    if (mc != counters) diff += "counters differ\n";
    for (const std::string& why : r.illegal_choices) diff += "illegal choice: " + why + "\n";
    if (diff.empty() && (i % check_every == check_every - 1 || i + 1 == packets)) {
      std::string sd = CompareState(h, m);
      if (!sd.empty()) diff += "state after the packet: " + sd + "\n";
    }
    if (!diff.empty()) {
      std::ostringstream s;
      s << "config " << dc.name << ", seed " << seed << " (AFTR_DIFF_SEED), packet #" << i
        << " (" << pkt.kind << "), ingress ifindex " << pkt.ingress << "\n"
        << diff << "input:" << Hex(pkt.frame) << "\nxdp " << VerdictText(x.verdict)
        << " out:" << Hex(x.out) << "\nmodel " << VerdictText(r.verdict) << " out:" << Hex(r.out)
        << "\nxdp counters:   " << CountersText(counters) << "\nmodel counters: "
        << CountersText(mc) << "\nxdp events:";
      for (const model::Event& e : xe) s << " " << model::ToString(e);
      s << "\nmodel events:";
      for (const model::Event& e : r.events) s << " " << model::ToString(e);
      return s.str();
    }
    gen.Learn(x, events);
    prev = counters;
    // Now and then a session expires, as aftrd's sweeper deletes it, so that new sessions
    // keep being made (and ports reused) however long the run.
    if (!m.state().sessions_out.empty() && gen.Chance(dc.expiry_rate)) {
      auto it = m.state().sessions_out.begin();
      std::advance(it, gen.Uniform(0, int(m.state().sessions_out.size()) - 1));
      model::SessionOutKey key = it->first;
      aftr_ctl_args a{};
      a.op = AFTR_CTL_SESSION_DELETE;
      std::memcpy(a.b4, key.b4.data(), 16);
      a.inner_addr = htonl(key.inner_addr);
      a.inner_port = htons(key.inner_port);
      a.proto = key.proto;
      int xdp_rc = h.Ctl(a), model_rc = m.DeleteSession(key);
      if (xdp_rc != model_rc)
        return "config " + dc.name + ", seed " + std::to_string(seed) + ", after packet #" +
               std::to_string(i) + ": session delete returned " + std::to_string(xdp_rc) +
               ", the model " + std::to_string(model_rc);
    }
    if (m.state().filter_peers.size() + 4096 > dc.sizes.filter_peers)
      return "config " + dc.name + ": aftr_filter_peers nearly full, where LRU eviction (not "
             "modelled) would begin: a limit of this test, not a failure of the program";
    stats.packets++;
    stats.verdicts[x.verdict]++;
    for (const aftr_event& e : events) stats.events[e.type]++;
  }
  for (const auto& row : prev)
    for (int c = 0; c < AFTR_COUNTER_MAX; c++) stats.totals[c] += row[c];
  return "";
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

void Summarise(const RunStats& st, double seconds) {
  std::printf("differential: %llu packets in %.1f s (%.0f packets/s):",
              (unsigned long long)st.packets, seconds, st.packets / seconds);
  for (const auto& [v, n] : st.verdicts)
    std::printf(" %s=%llu", VerdictName(v).c_str(), (unsigned long long)n);
  std::printf("\n  counters: %s\n", CounterDiff({}, st.totals).c_str());
}

TEST_CASE("differential: a fixed seed with the maps compared after every packet",
          "[differential]") {
  RunStats st;
  auto t0 = std::chrono::steady_clock::now();
  for (const DiffConfig& dc : {PlainConfig(), FilteringConfig(), TightConfig(),
                                    CrowdedConfig(), DeterministicConfig()}) {
    std::string failure = RunDifferential(dc, 20261127, 2500, 1, st);
    INFO(failure);
    REQUIRE(failure.empty());
  }
  // The data plane picks ports at random, so the fixed seed reaches the pool's exhaustion in
  // most runs, not all (about 1 in 15 missed ADDRESS_EXHAUSTED): until all three limits were
  // reached, a few more rounds from the next seeds.
  auto reached = [&] {
    return st.events[AFTR_EV_ADDRESS_EXHAUSTED] > 0 &&
           st.events[AFTR_EV_ADDRESS_PORTS_EXHAUSTED] > 0 && st.events[AFTR_EV_PORTS_EXHAUSTED] > 0;
  };
  for (uint64_t extra = 1; extra <= 3 && !reached(); extra++) {
    for (const DiffConfig& dc : {TightConfig(), CrowdedConfig()}) {
      std::string failure = RunDifferential(dc, 20261127 + extra, 2500, 1, st);
      INFO(failure);
      REQUIRE(failure.empty());
    }
  }
  // The limits whose events the model must get right were reached, not only passed by.
  CHECK(st.events[AFTR_EV_ADDRESS_EXHAUSTED] > 0);
  CHECK(st.events[AFTR_EV_ADDRESS_PORTS_EXHAUSTED] > 0);
  CHECK(st.events[AFTR_EV_PORTS_EXHAUSTED] > 0);
  Summarise(st, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// One million packets in CI (AFTR_DIFF_PACKETS overrides), split over the configurations,
// maps compared every 5000 packets and at the end.
TEST_CASE("differential: random packets against the model", "[differential]") {
  uint64_t seed = EnvOr("AFTR_DIFF_SEED", uint64_t(std::chrono::system_clock::now()
                                                       .time_since_epoch().count()));
  uint64_t total = EnvOr("AFTR_DIFF_PACKETS", 1000000);
  std::printf("differential: AFTR_DIFF_SEED=%llu AFTR_DIFF_PACKETS=%llu\n",
              (unsigned long long)seed, (unsigned long long)total);
  std::fflush(stdout);
  std::vector<DiffConfig> configs = {PlainConfig(), FilteringConfig(), TightConfig(),
                                    CrowdedConfig(), DeterministicConfig()};
  RunStats st;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t c = 0; c < configs.size(); c++) {
    uint64_t n = total / configs.size() + (c < total % configs.size() ? 1 : 0);
    std::string failure = RunDifferential(configs[c], seed + c, n, 5000, st);
    INFO("replay: AFTR_DIFF_SEED=" << seed << " AFTR_DIFF_PACKETS=" << total);
    INFO(failure);
    REQUIRE(failure.empty());
  }
  Summarise(st, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace
}  // namespace bpftest
