// ICMPv6 errors about softwire packets (RFC 2473 section 8, RFC 6333 sections 5.3 and 6.3): a
// router on the IPv6 path toward a B4 answers a packet we encapsulated with Packet Too Big,
// Destination Unreachable, Time Exceeded or Parameter Problem; the Internet host that sent the
// IPv4 packet gets the ICMPv4 error it understands, quoting its packet exactly as it sent it,
// and a Packet Too Big lowers the tunnel MTU toward that B4 (aftr_b4_mtu) for later packets.
#include <time.h>

#include <catch2/catch.hpp>

#include "flows.h"

namespace bpftest {
namespace {

constexpr uint8_t kUnreach = 3, kFragNeeded = 4, kHostUnreach = 1, kAdminProhibited = 13,
                  kTimeExceeded = 11;
constexpr uint8_t kIcmp6Unreach = 1, kIcmp6TooBig = 2, kIcmp6TimeExceeded = 3,
                  kIcmp6ParamProblem = 4, kIcmp6EchoRequest = 128;
const Ip6 kRouter6 = Ip6Addr("2001:db8:100::fe");  // a router on the way to the B4s

aftr_dp_config Config(uint16_t softwire_mtu = 1500) {
  aftr_dp_config c = DefaultConfig();
  c.softwire_mtu = softwire_mtu;
  return c;
}

// A UDP datagram of exactly `ip_len` bytes of IPv4 from kRemote to `m`.
Bytes Inbound(const Mapping& m, size_t ip_len, bool df = true, uint32_t remote = kRemote) {
  PacketBuilder b = FromInternet(remote, m.addr);
  if (!df) b.FragOff(0);
  return b.Udp(kRemotePort, m.port).Payload(Bytes(ip_len - 28, 'i')).Build();
}

// The IPv6 packet (header and all) of a frame we sent toward a B4.
Bytes SoftwirePacket(const RunResult& r) {
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  REQUIRE(r.out.size() > 14 + 40);
  return Bytes(r.out.begin() + 14, r.out.end());
}

// An ICMPv6 error from kRouter6 to `dst` quoting `quoted` (cut to the 1280-byte minimum MTU,
// as RFC 4443 has routers do, or to `quote_len`).
Bytes Icmp6Error(uint8_t type, uint8_t code, uint32_t param, const Bytes& quoted,
                 size_t quote_len = 1232, const Ip6& dst = kSoftwire) {
  Bytes icmp6 = {type,
                 code,
                 0,
                 0,
                 uint8_t(param >> 24),
                 uint8_t(param >> 16),
                 uint8_t(param >> 8),
                 uint8_t(param)};
  icmp6.insert(icmp6.end(), quoted.begin(),
               quoted.begin() + std::min(quoted.size(), quote_len));
  PacketBuilder b;
  b.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(kRouter6, dst).RawIpv6Payload(kProtoIcmpv6, icmp6);
  return b.Build();
}

// Checks that `out` is an ICMPv4 error of `type`/`code` from `src` to `dst`, TTL 64, routed
// toward the Internet, both checksums right, quoting exactly the IPv4 header and the 8 bytes
// after it of `original` (the packet as its source sent it); returns the 32 bits after the
// ICMP checksum.
uint32_t ExpectIcmpError(const RunResult& r, uint8_t type, uint8_t code, uint32_t src,
                         uint32_t dst, const Bytes& original) {
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  REQUIRE(f->has_ipv4);
  CHECK(f->ether_type == kEtherTypeIpv4);
  CHECK(f->eth_dst == Net().inet_gateway_mac);
  CHECK(f->eth_src == Net().inet_local_mac);
  CHECK(f->protocol == kProtoIcmp);
  CHECK(Ip4String(f->src) == Ip4String(src));
  CHECK(Ip4String(f->dst) == Ip4String(dst));
  CHECK(f->ttl == 64);
  CHECK(f->icmp_type == type);
  CHECK(f->icmp_code == code);
  CHECK(ChecksumErrors(r.out) == "");
  Bytes ip = Ipv4Packet(r.out);
  size_t quote_len = (original[0] & 0x0f) * 4 + 8;
  REQUIRE(ip.size() == 20 + 8 + quote_len);
  CHECK(Hex(Bytes(ip.begin() + 28, ip.end())) ==
        Hex(Bytes(original.begin(), original.begin() + quote_len)));
  CHECK(r.out.size() == f->ipv4_offset + ip.size());
  return uint32_t(ip[24]) << 24 | ip[25] << 16 | ip[26] << 8 | ip[27];
}

std::optional<uint32_t> LearnedMtu(const Harness& h, const Ip6& b4) {
  for (const auto& [a, v] : h.B4Mtus())
    if (a == b4) return v.mtu;
  return std::nullopt;
}

// A session and one inbound packet of `ip_len` bytes delivered through it: what routers quote.
struct Delivered {
  Mapping m;
  Bytes original;  // the IPv4 packet as the Internet host sent it
  Bytes ip6;       // the softwire packet we sent toward the B4
};
Delivered Deliver(Harness& h, size_t ip_len, bool df = true, const Ip6& b4 = kB4a,
                  uint16_t inner_port = kInnerPort) {
  Delivered d;
  d.m = TranslateUdp(h, b4, inner_port);
  Bytes in = Inbound(d.m, ip_len, df);
  d.original.assign(in.begin() + kIp4Off, in.end());
  d.ip6 = SoftwirePacket(h.Run(in));
  return d;
}

TEST_CASE("icmp6: a packet too big about a DF packet becomes fragmentation needed for the "
          "Internet host, quoting its packet as it sent it, and the MTU is learned",
          "[icmp6]") {
  Harness h(Config());
  Delivered d = Deliver(h, 1400);
  size_t sessions_out = h.SessionsOut().size(), sessions_in = h.SessionsIn().size();
  std::optional<aftr_session_out> before_out = h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp));
  h.DrainEvents();

  CounterValues before = h.Counters();
  RunResult r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6));
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 tx_redirect=1 icmp6_error_translated=1 icmp6_ptb_learned=1");
  // From the public address the host talks to, to the host; next-hop MTU 1300 - 40.
  CHECK(ExpectIcmpError(r, kUnreach, kFragNeeded, d.m.addr, kRemote, d.original) == 1260);
  CHECK(LearnedMtu(h, kB4a) == 1300);
  // The session neither made, nor changed, nor refreshed; no events.
  CHECK(h.SessionsOut().size() == sessions_out);
  CHECK(h.SessionsIn().size() == sessions_in);
  std::optional<aftr_session_out> after_out = h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp));
  REQUIRE(after_out);
  CHECK(after_out->last_seen_ns == before_out->last_seen_ns);
  CHECK(h.DrainEvents().empty());

  // Quoted at the RFC 792 minimum only (IPv6 header, IPv4 header, 8 bytes): the same.
  before = h.Counters();
  r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6, 40 + 20 + 8));
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 tx_redirect=1 icmp6_error_translated=1");
  CHECK(ExpectIcmpError(r, kUnreach, kFragNeeded, d.m.addr, kRemote, d.original) == 1260);
}

TEST_CASE("icmp6: the learned MTU gives later DF packets fragmentation needed and the slow "
          "path a smaller MTU, for that B4 only",
          "[icmp6][slow_path]") {
  Harness h(Config());
  Delivered d = Deliver(h, 1400);
  Mapping other = TranslateUdp(h, kB4b, kInnerPort);
  REQUIRE(VerdictName(h.Run(Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6)).verdict) == "XDP_REDIRECT");

  // 1260 + 40 = 1300: fits.
  CounterValues before = h.Counters();
  RunResult r = h.Run(Inbound(d.m, 1260));
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 in_translated=1 tx_redirect=1");
  // 1261: fragmentation needed naming 1260, as for the softwire's own MTU.
  Bytes big = Inbound(d.m, 1261);
  before = h.Counters();
  r = h.Run(big);
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 tx_redirect=1 icmp_frag_needed_sent=1");
  CHECK(ExpectIcmpError(r, kUnreach, kFragNeeded, d.m.addr, kRemote,
                        Bytes(big.begin() + kIp4Off, big.end())) == 1260);
  // Without DF: the slow path, whose run is told 1300 for the B4's tunnel.
  h.DrainSlowPath();
  Bytes nodf = Inbound(d.m, 1400, /*df=*/false);
  before = h.Counters();
  r = h.Run(nodf);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 slow_path_queued=1");
  CHECK(h.DrainSlowPath().size() == 1);
  aftr_slow_meta meta{};
  meta.magic = AFTR_SLOW_META_MAGIC;
  Bytes with_meta(sizeof(meta));
  std::memcpy(with_meta.data(), &meta, sizeof(meta));
  with_meta.insert(with_meta.end(), nodf.begin(), nodf.end());
  r = h.RunOn(Net().inet_ifindex, with_meta, sizeof(meta));
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::memcpy(&meta, r.out.data(), sizeof(meta));
  CHECK(meta.egress_ifindex == uint32_t(Net().b4_ifindex));
  CHECK(meta.mtu == 1300);
  // The other B4 still gets 1460-byte packets, and its slow-path runs the softwire's 1500.
  CHECK(VerdictName(h.Run(Inbound(other, 1460)).verdict) == "XDP_REDIRECT");
  Bytes other_nodf = Inbound(other, 1460, /*df=*/false);
  with_meta.resize(sizeof(meta));
  meta.magic = AFTR_SLOW_META_MAGIC;
  meta.mtu = 0;
  std::memcpy(with_meta.data(), &meta, sizeof(meta));
  with_meta.insert(with_meta.end(), other_nodf.begin(), other_nodf.end());
  r = h.RunOn(Net().inet_ifindex, with_meta, sizeof(meta));
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::memcpy(&meta, r.out.data(), sizeof(meta));
  CHECK(meta.mtu == 1500);
}

TEST_CASE("icmp6: unreachable, time exceeded and parameter problem map to what the host "
          "understands",
          "[icmp6]") {
  Harness h(Config());
  Delivered d = Deliver(h, 200);
  struct Case {
    uint8_t type, code;
    const char* counters;
    uint8_t v4_type, v4_code;  // 0/0: dropped
  };
  const Case cases[] = {
      {kIcmp6Unreach, 0, "rx_packets=1 tx_redirect=1 icmp6_error_translated=1", kUnreach, kHostUnreach},
      {kIcmp6Unreach, 1, "rx_packets=1 tx_redirect=1 icmp6_error_translated=1", kUnreach, kAdminProhibited},
      {kIcmp6Unreach, 3, "rx_packets=1 tx_redirect=1 icmp6_error_translated=1", kUnreach, kHostUnreach},
      {kIcmp6Unreach, 4, "rx_packets=1 tx_redirect=1 icmp6_error_translated=1", kUnreach, kHostUnreach},
      {kIcmp6TimeExceeded, 0, "rx_packets=1 tx_redirect=1 icmp6_error_translated=1", kTimeExceeded, 0},
      {kIcmp6ParamProblem, 0, "rx_packets=1 drop_icmp6_param_problem=1", 0, 0},
  };
  for (const Case& c : cases) {
    INFO("ICMPv6 type " << int(c.type) << " code " << int(c.code));
    CounterValues before = h.Counters();
    RunResult r = h.Run(Icmp6Error(c.type, c.code, 0, d.ip6));
    CHECK(CounterDiff(before, h.Counters()) == c.counters);
    if (c.v4_type) {
      CHECK(ExpectIcmpError(r, c.v4_type, c.v4_code, d.m.addr, kRemote, d.original) == 0);
    } else {
      CHECK(VerdictName(r.verdict) == "XDP_DROP");
    }
  }
  CHECK(h.B4Mtus().empty());
}

TEST_CASE("icmp6: errors quoting an echo reply or TCP restore the identifier or port",
          "[icmp6]") {
  Harness h(Config());
  // An echo from the host behind kB4a, its reply delivered.
  RunResult out = h.Run(FromB4(kB4a).IcmpEcho(4242, 1).Build());
  REQUIRE(VerdictName(out.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(out.out);
  REQUIRE(f);
  Bytes reply = FromInternet(kRemote, f->src).IcmpEchoReply(f->icmp_id, 1).Payload("pong").Build();
  Bytes ip6 = SoftwirePacket(h.Run(reply));
  RunResult r = h.Run(Icmp6Error(kIcmp6TimeExceeded, 0, 0, ip6));
  CHECK(ExpectIcmpError(r, kTimeExceeded, 0, f->src, kRemote,
                        Bytes(reply.begin() + kIp4Off, reply.end())) == 0);

  // TCP: the destination port back to the public one (its checksum is past the quote).
  out = h.Run(FromB4(kB4a).Tcp(kInnerPort + 3, 80, kTcpSyn).Build());
  REQUIRE(VerdictName(out.verdict) == "XDP_REDIRECT");
  f = ParseFrame(out.out);
  REQUIRE(f);
  Bytes synack = FromInternet(kRemote, f->src).Tcp(80, f->sport, kTcpSyn | kTcpAck).Build();
  ip6 = SoftwirePacket(h.Run(synack));
  r = h.Run(Icmp6Error(kIcmp6Unreach, 0, 0, ip6));
  CHECK(ExpectIcmpError(r, kUnreach, kHostUnreach, f->src, kRemote,
                        Bytes(synack.begin() + kIp4Off, synack.end())) == 0);
}

TEST_CASE("icmp6: what is not an error about our softwire packets goes on as before",
          "[icmp6]") {
  Harness h(Config());
  Delivered d = Deliver(h, 1400);
  auto expect = [&](const Bytes& frame, const std::string& counters, int verdict,
                    const char* what) {
    INFO(what);
    CounterValues before = h.Counters();
    RunResult r = h.Run(frame);
    CHECK(VerdictName(r.verdict) == VerdictName(verdict));
    CHECK(CounterDiff(before, h.Counters()) == counters);
    if (verdict == XDP_PASS) CHECK(Hex(r.out) == Hex(frame));
  };
  const std::string pass = "rx_packets=1 pass_local_control=1";
  expect(Icmp6Error(kIcmp6EchoRequest, 0, 0, Bytes(56, 'p')), pass, XDP_PASS, "echo request");
  // Quoting the kernel's own packet from the softwire address (UDP, not IPv4 inside).
  Bytes own = d.ip6;
  own[6] = kProtoUdp;
  expect(Icmp6Error(kIcmp6TooBig, 0, 1300, own), pass, XDP_PASS, "about the kernel's packet");
  // Quoting a packet from another address.
  Bytes other_src = d.ip6;
  other_src[8 + 15] ^= 1;
  expect(Icmp6Error(kIcmp6TooBig, 0, 1300, other_src), pass, XDP_PASS, "from another address");
  // Cut within the ICMPv6 header or the quoted IPv6 header: not recognisably ours.
  Bytes cut = Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6, 30);
  expect(cut, pass, XDP_PASS, "quote shorter than an IPv6 header");
  // To an address that is not ours.
  expect(Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6, 1232, Ip6Addr("2001:db8:ffff::99")),
         "rx_packets=1 pass_not_ours=1", XDP_PASS, "to another address");

  // Ours, but cut before the IPv4 header and 8 bytes of UDP.
  for (size_t len : {40 + 10, 40 + 20, 40 + 27}) {
    INFO("quote of " << len << " bytes");
    expect(Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6, len), "rx_packets=1 drop_icmp6_error_malformed=1",
           XDP_DROP, "cut");
  }
  // The error's payload length past the frame (the frame cut short).
  Bytes short_frame = Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6);
  short_frame.resize(short_frame.size() - 100);
  expect(short_frame, "rx_packets=1 drop_icmp6_error_malformed=1", XDP_DROP, "frame cut");
  // A Packet Too Big naming an MTU the packet fitted.
  expect(Icmp6Error(kIcmp6TooBig, 0, 1440, d.ip6), "rx_packets=1 drop_icmp6_error_malformed=1",
         XDP_DROP, "MTU not smaller than the packet");
  // No such session: another inner port.
  Bytes no_session = d.ip6;
  no_session[40 + 20 + 3] ^= 1;
  expect(Icmp6Error(kIcmp6Unreach, 0, 0, no_session), "rx_packets=1 drop_icmp6_error_no_session=1",
         XDP_DROP, "no session");
  CHECK(h.B4Mtus().empty());
  CHECK(h.SessionsOut().size() == 1);
}

TEST_CASE("icmp6: learned MTUs are clamped to 1280, never raised, forgotten after 10 "
          "minutes; a PTB without DF only teaches",
          "[icmp6]") {
  Harness h(Config());
  Delivered d = Deliver(h, 1400);
  // Below the IPv6 minimum: 1280 (RFC 8201), so the host hears 1240.
  CounterValues before = h.Counters();
  RunResult r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1000, d.ip6));
  CHECK(ExpectIcmpError(r, kUnreach, kFragNeeded, d.m.addr, kRemote, d.original) == 1240);
  CHECK(LearnedMtu(h, kB4a) == 1280);
  // A larger one later does not raise it (RFC 8201 section 4).
  before = h.Counters();
  r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1400, d.ip6));
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 tx_redirect=1 icmp6_error_translated=1");
  CHECK(LearnedMtu(h, kB4a) == 1280);
  CHECK(VerdictName(h.Run(Inbound(d.m, 1241)).verdict) == "XDP_REDIRECT");  // frag needed
  CHECK(h.Counters()[AFTR_C_ICMP_FRAG_NEEDED_SENT] == 1);

  // Learned 11 minutes ago: forgotten, 1460 bytes pass again, and a new report is learned
  // even though it is larger than the old one.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  uint64_t now = uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
  h.SetB4Mtu(kB4a, aftr_b4_mtu{now - 660ull * 1000000000ull, 1280, 0});
  before = h.Counters();
  CHECK(VerdictName(h.Run(Inbound(d.m, 1460)).verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 in_translated=1 tx_redirect=1");

  // Without DF: learned, the host not told.
  Delivered nodf = Deliver(h, 1400, /*df=*/false, kB4b);
  before = h.Counters();
  r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1350, nodf.ip6));
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 icmp6_ptb_learned=1 drop_icmp6_ptb_no_df=1");
  CHECK(LearnedMtu(h, kB4b) == 1350);
  r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1350, d.ip6));
  CHECK(LearnedMtu(h, kB4a) == 1350);
}

TEST_CASE("icmp6: generated errors are rate limited, the MTU learned all the same", "[icmp6]") {
  aftr_dp_config c = Config();
  c.icmp_errors_per_second = 0;
  Harness h(c);
  Delivered d = Deliver(h, 1400);
  CounterValues before = h.Counters();
  RunResult r = h.Run(Icmp6Error(kIcmp6TooBig, 0, 1300, d.ip6));
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 icmp_rate_limited=1 icmp6_ptb_learned=1 drop_icmp6_error_not_sent=1");
  CHECK(LearnedMtu(h, kB4a) == 1300);
}

TEST_CASE("icmp6: with address-dependent filtering the quoted source must be a peer of the "
          "session",
          "[icmp6]") {
  aftr_dp_config c = Config();
  c.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(c);
  Delivered d = Deliver(h, 200);
  // The same packet as if from kRemote2, which the host never sent to (a forger's reflection).
  Bytes forged = d.ip6;
  uint32_t remote2 = kRemote2;
  std::memcpy(&forged[40 + 12], &remote2, 4);
  CounterValues before = h.Counters();
  RunResult r = h.Run(Icmp6Error(kIcmp6Unreach, 0, 0, forged));
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 drop_filtered=1");
  r = h.Run(Icmp6Error(kIcmp6Unreach, 0, 0, d.ip6));
  CHECK(ExpectIcmpError(r, kUnreach, kHostUnreach, d.m.addr, kRemote, d.original) == 0);
}

}  // namespace
}  // namespace bpftest
