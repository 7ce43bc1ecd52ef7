// MTU and the ICMP errors the AFTR makes itself (RFC 6333 sections 5.3 and 6.3, RFC 1191,
// RFC 792, RFC 1812): "fragmentation needed" for oversize packets with DF in both
// directions, the slow path for those without, "time exceeded" for expired TTLs,
// relayed "fragmentation needed" lowered to what the softwire carries, the RFC 1122 rules
// on when not to answer, and the per-CPU rate limit.
#include <sched.h>

#include <catch2/catch.hpp>

#include "flows.h"

namespace bpftest {
namespace {

constexpr uint8_t kUnreach = 3, kFragNeeded = 4, kTimeExceeded = 11;
const uint32_t kAftrWellKnown = Ip4Addr("192.0.0.1");

aftr_dp_config MtuConfig(uint16_t softwire_mtu, uint32_t fib_cache_ms = 0) {
  aftr_dp_config c = DefaultConfig();
  c.softwire_mtu = softwire_mtu;
  if (fib_cache_ms) c.fib_cache_ticks = AFTR_FIB_MS_TO_TICKS(fib_cache_ms);
  return c;
}

// A UDP datagram of exactly `ip_len` bytes of IPv4 from the Internet to `m`.
Bytes InboundOfLength(const Mapping& m, size_t ip_len, bool df = true) {
  PacketBuilder b = FromInternet(kRemote, m.addr);
  if (!df) b.FragOff(0);
  return b.Udp(kRemotePort, m.port).Payload(Bytes(ip_len - 28, 'i')).Build();
}

// The same from the host behind kB4a.
Bytes OutboundOfLength(size_t ip_len, bool df = true) {
  PacketBuilder b = FromB4(kB4a);
  if (!df) b.FragOff(0);
  return b.Udp(kInnerPort, kRemotePort).Payload(Bytes(ip_len - 28, 'o')).Build();
}

// Checks that `out` is an ICMP error of `type`/`code` from `src` to `dst`, TTL 64, with
// valid checksums, that quotes the IPv4 header and the 8 bytes after it of `original` (the
// IPv4 packet as its source sent it) and nothing more; returns the 32 bits after the ICMP
// checksum (the next-hop MTU of a "fragmentation needed" in the low half).
uint32_t ExpectIcmpError(const Bytes& out, uint8_t type, uint8_t code, uint32_t src,
                         uint32_t dst, const Bytes& original) {
  std::optional<Frame> f = ParseFrame(out);
  REQUIRE(f);
  REQUIRE(f->has_ipv4);
  CHECK(f->protocol == kProtoIcmp);
  CHECK(Ip4String(f->src) == Ip4String(src));
  CHECK(Ip4String(f->dst) == Ip4String(dst));
  CHECK(f->ttl == 64);
  CHECK(f->ihl == 5);
  CHECK(f->icmp_type == type);
  CHECK(f->icmp_code == code);
  CHECK(ChecksumErrors(out) == "");
  Bytes ip = Ipv4Packet(out);
  size_t quote_len = (original[0] & 0x0f) * 4 + 8;
  REQUIRE(ip.size() == 20 + 8 + quote_len);
  CHECK(Hex(Bytes(ip.begin() + 28, ip.end())) ==
        Hex(Bytes(original.begin(), original.begin() + quote_len)));
  // Nothing after the error's IPv4 packet either.
  CHECK(out.size() == f->ipv4_offset + ip.size());
  return uint32_t(ip[24]) << 24 | ip[25] << 16 | ip[26] << 8 | ip[27];
}

TEST_CASE("mtu: oversize DF from the Internet gets fragmentation needed naming the tunnel MTU "
          "less 40, from the public address",
          "[mtu]") {
  Harness h(MtuConfig(1400));
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);

  // 1360 + 40 = 1400: fits exactly, translated and sent to the B4.
  CounterValues before = h.Counters();
  RunResult fits = h.Run(InboundOfLength(m, 1360));
  CHECK(VerdictName(fits.verdict) == "XDP_REDIRECT");
  CHECK(fits.out.size() == 14 + 40 + 1360);
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 in_translated=1 tx_redirect=1");

  Bytes big = InboundOfLength(m, 1361);
  before = h.Counters();
  RunResult r = h.Run(big);
  // Back out of the Internet side toward the source (redirected, even to the interface it
  // came in on).
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 tx_redirect=1 icmp_frag_needed_sent=1");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->ether_type == kEtherTypeIpv4);
  CHECK(f->eth_dst == Net().inet_gateway_mac);
  CHECK(f->eth_src == Net().inet_local_mac);
  // The quote is the packet untranslated: to the public address and port.
  uint32_t rest = ExpectIcmpError(r.out, kUnreach, kFragNeeded, m.addr, kRemote,
                                  Bytes(big.begin() + kIp4Off, big.end()));
  CHECK(rest == 1360);
}

TEST_CASE("mtu: oversize DF from a B4 gets fragmentation needed from 192.0.0.1 through its "
          "softwire, naming the egress MTU",
          "[mtu]") {
  Harness h;  // the Internet-side veth has MTU 1500
  RunResult fits = h.Run(OutboundOfLength(1500));
  CHECK(VerdictName(fits.verdict) == "XDP_REDIRECT");
  CHECK(fits.out.size() == 14 + 1500);

  for (uint32_t cache_ms : {0u, 1000u}) {
    Harness hc(MtuConfig(1500, cache_ms));
    // The session (and with the cache on, its next hop) made by a packet that fits.
    REQUIRE(VerdictName(hc.Run(OutboundOfLength(100)).verdict) == "XDP_REDIRECT");
    Bytes big = OutboundOfLength(1501);
    CounterValues before = hc.Counters();
    RunResult r = hc.Run(big);
    INFO("fib cache " << cache_ms << " ms");
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    CHECK(CounterDiff(before, hc.Counters()) ==
          "rx_packets=1 tx_redirect=1 icmp_frag_needed_sent=1");
    std::optional<Frame> f = ParseFrame(r.out);
    REQUIRE(f);
    // Back where it came from: the B4's router, in IPv6 from the softwire address to the B4.
    CHECK(f->eth_dst == kB4RouterMac);
    CHECK(f->eth_src == Net().b4_local_mac);
    REQUIRE(f->has_ipv6);
    CHECK(Ip6String(f->ip6_src) == Ip6String(kSoftwire));
    CHECK(Ip6String(f->ip6_dst) == Ip6String(kB4a));
    CHECK(f->ip6_next_header == kProtoIpip);
    CHECK(f->ip6_hop_limit == 64);
    CHECK(f->ip6_payload_len == 20 + 8 + 28);
    // The quote is the inner packet as the host sent it: from its private address.
    uint32_t rest = ExpectIcmpError(r.out, kUnreach, kFragNeeded, kAftrWellKnown, kInner,
                                    Bytes(big.begin() + kInnerIp4Off, big.end()));
    CHECK(rest == 1500);
  }
}

TEST_CASE("mtu: the session's cached route MTU toward the B4 counts when smaller than "
          "softwire_mtu",
          "[mtu]") {
  Harness h(MtuConfig(9000, 1000));  // the B4-side veth has MTU 1500
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  REQUIRE(VerdictName(h.Run(InboundOfLength(m, 100)).verdict) == "XDP_REDIRECT");  // cached
  RunResult fits = h.Run(InboundOfLength(m, 1460));
  CHECK(VerdictName(fits.verdict) == "XDP_REDIRECT");
  Bytes big = InboundOfLength(m, 1461);
  RunResult r = h.Run(big);
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(ExpectIcmpError(r.out, kUnreach, kFragNeeded, m.addr, kRemote,
                        Bytes(big.begin() + kIp4Off, big.end())) == 1460);
}

TEST_CASE("mtu: oversize without DF goes whole to the slow path, untranslated, both ways",
          "[mtu][slow_path]") {
  Harness h(MtuConfig(1400));
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  h.DrainSlowPath();
  CounterValues before = h.Counters();
  Bytes in = InboundOfLength(m, 1361, /*df=*/false);
  RunResult r = h.Run(in);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 slow_path_queued=1");
  std::vector<Harness::SlowRecord> q = h.DrainSlowPath();
  REQUIRE(q.size() == 1);
  CHECK(q[0].hdr.kind == AFTR_SLOW_OVERSIZE);
  CHECK(int(q[0].hdr.ifindex) == Net().inet_ifindex);
  CHECK(Hex(q[0].frame) == Hex(in));

  before = h.Counters();
  Bytes out = OutboundOfLength(1501, /*df=*/false);
  r = h.Run(out);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 slow_path_queued=1");
  q = h.DrainSlowPath();
  REQUIRE(q.size() == 1);
  CHECK(q[0].hdr.kind == AFTR_SLOW_OVERSIZE);
  CHECK(int(q[0].hdr.ifindex) == Net().b4_ifindex);
  CHECK(Hex(q[0].frame) == Hex(out));
}

TEST_CASE("mtu: an expired TTL gets time exceeded, both ways, with no state made", "[mtu][ttl]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);

  Bytes in = FromInternet(kRemote, m.addr).Ttl(1).Udp(kRemotePort, m.port).Payload("late").Build();
  CounterValues before = h.Counters();
  RunResult r = h.Run(in);
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 tx_redirect=1 icmp_time_exceeded_sent=1");
  CHECK(ExpectIcmpError(r.out, kTimeExceeded, 0, m.addr, kRemote,
                        Bytes(in.begin() + kIp4Off, in.end())) == 0);

  size_t sessions = h.SessionsOut().size();
  h.DrainEvents();
  Bytes out = FromB4(kB4a).Ttl(1).Udp(kInnerPort + 1, kRemotePort).Payload("late").Build();
  before = h.Counters();
  r = h.Run(out);
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 tx_redirect=1 icmp_time_exceeded_sent=1");
  CHECK(ExpectIcmpError(r.out, kTimeExceeded, 0, kAftrWellKnown, kInner,
                        Bytes(out.begin() + kInnerIp4Off, out.end())) == 0);
  CHECK(h.SessionsOut().size() == sessions);
  CHECK(h.DrainEvents().empty());

  // TTL 0 the same; an echo request is answered too (only ICMP errors are not).
  r = h.Run(FromB4(kB4a).Ttl(0).IcmpEcho(9, 1).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
}

TEST_CASE("mtu: a relayed fragmentation needed naming more than the softwire carries is "
          "lowered",
          "[mtu]") {
  Harness h(MtuConfig(1400));
  RunResult sent = h.Run(FromB4(kB4a).Udp(kInnerPort, kRemotePort).Payload("query").Build());
  REQUIRE(VerdictName(sent.verdict) == "XDP_REDIRECT");
  Bytes quote = Ipv4Packet(sent.out);
  uint32_t pub = ParseFrame(sent.out)->src;
  const uint32_t kRouter = Ip4Addr("203.0.113.1");
  for (uint16_t reported : {1450, 1360, 1200}) {
    INFO("router reports " << reported);
    CounterValues before = h.Counters();
    RunResult r = h.Run(
        FromInternet(kRouter, pub).Icmp(kUnreach, kFragNeeded, 0, reported).Payload(quote).Build());
    REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
    std::optional<Frame> f = ParseFrame(r.out);
    REQUIRE(f);
    CHECK(f->icmp_seq == std::min<uint16_t>(reported, 1360));
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(CounterDiff(before, h.Counters()) ==
          std::string("rx_packets=1 in_icmp_error_translated=1 tx_redirect=1") +
              (reported > 1360 ? " relayed_mtu_lowered=1" : ""));
  }
}

TEST_CASE("mtu: no error about an ICMP error, a non-first fragment or a bad source",
          "[mtu]") {
  Harness h(MtuConfig(1400));
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  auto expect_silent = [&](const Bytes& frame, const char* reason) {
    CounterValues before = h.Counters();
    RunResult r = h.Run(frame);
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(Hex(r.out) == Hex(frame));
    CHECK(CounterDiff(before, h.Counters()) == std::string("rx_packets=1 ") + reason + "=1");
  };
  // An ICMP error from behind a B4 whose TTL ran out.
  Bytes quoted = Ipv4Packet(InboundOfLength(m, 60));
  expect_silent(FromB4(kB4a, kInner, kRemote).Ttl(1).Icmp(kUnreach, 3, 0, 0).Payload(quoted).Build(),
                "drop_ttl_expired");
  // To a session from sources that must never get an error.
  for (const char* src : {"0.0.0.0", "224.0.0.5", "255.255.255.255", "127.0.0.1"}) {
    INFO("source " << src);
    expect_silent(
        FromInternet(Ip4Addr(src), m.addr).Ttl(1).Udp(kRemotePort, m.port).Build(),
        "drop_ttl_expired");
    expect_silent(PacketBuilder().Eth(Net().inet_local_mac, kInetRouterMac)
                      .Ipv4(Ip4Addr(src), m.addr).Udp(kRemotePort, m.port)
                      .Payload(Bytes(1400, 'x')).Build(),
                  "drop_too_big");
  }
  // An oversize echo request with DF is answered (a query, not an error).
  h.Run(FromB4(kB4a).IcmpEcho(77, 1).Build());
  RunResult r = h.Run(FromB4(kB4a).IcmpEcho(77, 2).Payload(Bytes(1600, 'e')).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
}

TEST_CASE("mtu: generated errors are rate limited per CPU, and 0 sends none", "[mtu][rate]") {
  // One CPU, so one bucket: 3 per second, a burst of 3.
  cpu_set_t one, saved;
  REQUIRE(sched_getaffinity(0, sizeof(saved), &saved) == 0);
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);

  aftr_dp_config cfg = DefaultConfig();
  cfg.icmp_errors_per_second = 3;
  Harness h(cfg);
  Bytes late = FromB4(kB4a).Ttl(1).Udp(kInnerPort, kRemotePort).Build();
  int sent = 0;
  CounterValues before = h.Counters();
  for (int i = 0; i < 6; i++) sent += h.Run(late).verdict == XDP_REDIRECT;
  CHECK(sent == 3);
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=6 tx_redirect=3 icmp_time_exceeded_sent=3 icmp_rate_limited=3 "
        "drop_ttl_expired=3");

  cfg.icmp_errors_per_second = 0;
  Harness none(cfg);
  CHECK(VerdictName(none.Run(late).verdict) == "XDP_DROP");
  CHECK(VerdictName(none.Run(OutboundOfLength(1501)).verdict) == "XDP_DROP");
  CHECK(none.Counter(AFTR_C_ICMP_RATE_LIMITED) == 2);
  CHECK(none.Counter(AFTR_C_DROP_TTL_EXPIRED) == 1);
  CHECK(none.Counter(AFTR_C_DROP_TOO_BIG) == 1);
  CHECK(none.Counter(AFTR_C_ICMP_TIME_EXCEEDED_SENT) + none.Counter(AFTR_C_ICMP_FRAG_NEEDED_SENT) == 0);
  sched_setaffinity(0, sizeof(saved), &saved);
}

}  // namespace
}  // namespace bpftest
