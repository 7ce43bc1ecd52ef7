// B4 → B4 through our own public addresses (hairpinning: RFC 4787 REQ-9, RFC 5382 REQ-8,
// RFC 5508 REQ-7): the target sees the sender's public address and port, the packet goes to
// the target's B4 in a new softwire header, TTL one lower, and without an inbound session
// (or past the filter) it is dropped like unmapped inbound traffic. Expected frames are
// built from scratch (full checksums) and compared byte for byte; checksums are also
// recomputed from the output.
#include <arpa/inet.h>
#include <time.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// The sender's mapping for (b4, inner, port, proto), which must exist.
Mapping MappingFor(const Harness& h, const Ip6& b4, uint16_t port, uint8_t proto,
                   uint32_t inner = kInner) {
  std::optional<aftr_session_out> s = h.SessionOut(OutKey(b4, inner, port, proto));
  REQUIRE(s);
  return {s->public_addr, ntohs(s->public_port)};
}

// What the AFTR sends toward B4 `b4`: the target's frame, from `src` (the sender's public
// address), hop limit and TTL as the default configuration and one router hop make them.
PacketBuilder Hairpinned(const Ip6& b4, uint32_t src, uint32_t inner = kInner) {
  return ToB4(b4, src, inner, 63);
}

// Runs `frame` from a B4, expects it sent back out of the B4 side (by a redirect, though in
// and out on the same veth: never XDP_TX for a hairpinned packet) and returns the output frame after checking its checksums from scratch.
Bytes ExpectHairpinned(Harness& h, const Bytes& frame, const std::string& counters) {
  CounterValues before = h.Counters();
  RunResult r = h.Run(frame);
  INFO("counters: " << CounterDiff(before, h.Counters()));
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) == counters);
  CHECK(ChecksumErrors(r.out) == "");
  return r.out;
}

constexpr const char* kHairpinCounters = "rx_packets=1 hairpin_translated=1 tx_redirect=1";

aftr_ctl_args StaticSession(const Ip6& b4, uint16_t inner_port, uint32_t addr, uint16_t port,
                            uint8_t proto) {
  aftr_ctl_args a{};
  a.op = AFTR_CTL_SESSION_CREATE;
  std::memcpy(a.b4, b4.data(), 16);
  a.inner_addr = kInner;
  a.inner_port = htons(inner_port);
  a.proto = proto;
  a.public_addr = addr;
  a.public_port = htons(port);
  a.flags = AFTR_SESSION_STATIC;
  a.last_seen_ns = NowNs();
  return a;
}

aftr_ctl_args SubscriberOn(const Ip6& b4, uint32_t addr_index, uint32_t block) {
  aftr_ctl_args a{};
  a.op = AFTR_CTL_SUBSCRIBER_CREATE;
  std::memcpy(a.b4, b4.data(), 16);
  a.addr_index = addr_index;
  a.block = block;
  a.last_seen_ns = NowNs();
  return a;
}

TEST_CASE("hairpin: UDP to another subscriber's mapping arrives from the sender's public end",
          "[hairpin][udp]") {
  Harness h;
  Mapping target = TranslateUdp(h, kB4b, 5000);       // h2's session, made toward the Internet
  Mapping sender = TranslateUdp(h, kB4a, kInnerPort);  // h1's, used again below (EIM)
  auto sessions_in = h.SessionsIn().size();

  Bytes out = ExpectHairpinned(
      h, FromB4(kB4a, kInner, target.addr).Udp(kInnerPort, target.port).Payload("hello").Build(),
      kHairpinCounters);
  CHECK(Hex(out) ==
        Hex(Hairpinned(kB4b, sender.addr).Udp(sender.port, 5000).Payload("hello").Build()));
  std::optional<Frame> f = ParseFrame(out);
  REQUIRE(f);
  CHECK(Ip6String(f->ip6_src) == "2001:db8:ffff::1");
  CHECK(Ip6String(f->ip6_dst) == Ip6String(kB4b));
  CHECK(f->src == sender.addr);
  CHECK(f->sport == sender.port);
  CHECK(f->ttl == 63);
  CHECK(h.SessionsIn().size() == sessions_in);  // nothing new: both sessions existed

  // And back: h2 answers h1's public end, which h1's session turns into h1's inner end.
  out = ExpectHairpinned(
      h, FromB4(kB4b, kInner, sender.addr).Udp(5000, sender.port).Payload("hi").Build(),
      kHairpinCounters);
  CHECK(Hex(out) == Hex(Hairpinned(kB4a, target.addr).Udp(target.port, kInnerPort).Payload("hi").Build()));
}

TEST_CASE("hairpin: UDP without checksum stays without, with one is right after both rewrites",
          "[hairpin][udp]") {
  Harness h;
  Mapping target = TranslateUdp(h, kB4b, 5000);
  Mapping sender = TranslateUdp(h, kB4a, kInnerPort);
  Bytes out = ExpectHairpinned(h,
                               FromB4(kB4a, kInner, target.addr)
                                   .Udp(kInnerPort, target.port)
                                   .UdpZeroChecksum()
                                   .Payload("zero")
                                   .Build(),
                               kHairpinCounters);
  CHECK(Hex(out) == Hex(Hairpinned(kB4b, sender.addr)
                            .Udp(sender.port, 5000)
                            .UdpZeroChecksum()
                            .Payload("zero")
                            .Build()));
}

TEST_CASE("hairpin: a new sender session is made on the way, the target's is refreshed",
          "[hairpin][udp]") {
  Harness h;
  Mapping target = TranslateUdp(h, kB4b, 5000);
  aftr_session_in before_in = *h.SessionIn(InKey(target, kProtoUdp));
  h.DrainEvents();
  RunResult r = h.Run(FromB4(kB4a, kInner, target.addr).Udp(kInnerPort, target.port).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(h.CounterString().find("hairpin_translated=1") != std::string::npos);
  Mapping sender = MappingFor(h, kB4a, kInnerPort, kProtoUdp);
  // The sender's subscriber, block and session, as for any first packet.
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].type == AFTR_EV_BLOCK_CLAIMED);
  CHECK(ev[1].type == AFTR_EV_SESSION_CREATE);
  CHECK(Hex(r.out) == Hex(Hairpinned(kB4b, sender.addr).Udp(sender.port, 5000).Build()));
  CHECK(h.SessionIn(InKey(target, kProtoUdp))->last_seen_ns >= before_in.last_seen_ns);
}

TEST_CASE("hairpin: TCP SYN to another subscriber, MSS clamped once, flags seen inbound",
          "[hairpin][tcp]") {
  Harness h;
  // h2's server port is a static mapping (a port forward) of public port `port`.
  REQUIRE(h.Ctl(SubscriberOn(kB4b, 1, 7)) == 1);
  uint16_t port = h.config().port_min + 7 * h.config().block_size + 3;
  REQUIRE(h.Ctl(StaticSession(kB4b, 8080, h.pool()[1], port, kProtoTcp)) == 1);
  Mapping target{h.pool()[1], port};

  PacketBuilder syn = FromB4(kB4a, kInner, target.addr);
  syn.Tcp(kInnerPort, port, kTcpSyn).TcpSeq(0x01020304, 0).TcpMss(1460);
  CounterValues before = h.Counters();
  RunResult r = h.Run(syn.Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  Mapping sender = MappingFor(h, kB4a, kInnerPort, kProtoTcp);
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 hairpin_translated=1 tx_redirect=1 session_created=1 subscriber_created=1 "
        "block_claimed=1 mss_clamped=1");
  CHECK(Hex(r.out) == Hex(Hairpinned(kB4b, sender.addr)
                              .Tcp(sender.port, 8080, kTcpSyn)
                              .TcpSeq(0x01020304, 0)
                              .TcpMss(1420)
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK((h.SessionIn(InKey(target, kProtoTcp))->tcp_flags & AFTR_TCP_SEEN_SYN) != 0);

  // The SYN-ACK back to h1's public end.
  PacketBuilder synack = FromB4(kB4b, kInner, sender.addr);
  synack.Tcp(8080, sender.port, kTcpSyn | kTcpAck).TcpSeq(0x0a0b0c0d, 0x01020305).TcpMss(1460);
  Bytes out = ExpectHairpinned(h, synack.Build(), "rx_packets=1 hairpin_translated=1 tx_redirect=1 mss_clamped=1");
  CHECK(Hex(out) == Hex(Hairpinned(kB4a, target.addr)
                            .Tcp(port, kInnerPort, kTcpSyn | kTcpAck)
                            .TcpSeq(0x0a0b0c0d, 0x01020305)
                            .TcpMss(1420)
                            .Build()));
}

TEST_CASE("hairpin: a host reaches its own mapping from another of its ports", "[hairpin][self]") {
  Harness h;
  Mapping server = TranslateUdp(h, kB4a, 5000);
  Mapping client = TranslateUdp(h, kB4a, kInnerPort);
  CHECK(server.addr == client.addr);  // paired pooling
  Bytes out = ExpectHairpinned(
      h, FromB4(kB4a, kInner, server.addr).Udp(kInnerPort, server.port).Payload("me").Build(),
      kHairpinCounters);
  CHECK(Hex(out) == Hex(Hairpinned(kB4a, client.addr).Udp(client.port, 5000).Payload("me").Build()));

  // TCP the same way, to a port forward of the host's own.
  uint32_t block = BlockOf(h.config(), server.port);
  uint16_t fwd = h.config().port_min + block * h.config().block_size;
  while (fwd == server.port || fwd == client.port) fwd++;  // a port of the block left free
  REQUIRE(h.Ctl(StaticSession(kB4a, 22, server.addr, fwd, kProtoTcp)) == 1);
  RunResult r = h.Run(FromB4(kB4a, kInner, server.addr).Tcp(kInnerPort, fwd, kTcpAck).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  Mapping tcp_client = MappingFor(h, kB4a, kInnerPort, kProtoTcp);
  CHECK(Hex(r.out) ==
        Hex(Hairpinned(kB4a, server.addr).Tcp(tcp_client.port, 22, kTcpAck).Build()));
  CHECK(ChecksumErrors(r.out) == "");
}

TEST_CASE("hairpin: ping to one's own public address comes back as request, then reply",
          "[hairpin][icmp][self]") {
  Harness h;
  Mapping me = TranslateUdp(h, kB4a, kInnerPort);  // learns the subscriber's address
  CounterValues before = h.Counters();
  RunResult req = h.Run(FromB4(kB4a, kInner, me.addr).IcmpEcho(7, 1).Payload("ping").Build());
  CHECK(VerdictName(req.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 hairpin_translated=1 tx_redirect=1 session_created=1");
  // The echo id maps to the session the echo itself made: the host gets its echo back.
  CHECK(Hex(req.out) == Hex(Hairpinned(kB4a, me.addr).IcmpEcho(7, 1).Payload("ping").Build()));
  CHECK(ChecksumErrors(req.out) == "");

  // The host's kernel answers its public address: by the same session, back to itself.
  Bytes out = ExpectHairpinned(
      h, FromB4(kB4a, kInner, me.addr).IcmpEchoReply(7, 1).Payload("ping").Build(),
      kHairpinCounters);
  CHECK(Hex(out) == Hex(Hairpinned(kB4a, me.addr).IcmpEchoReply(7, 1).Payload("ping").Build()));
}

TEST_CASE("hairpin: ping to another subscriber's address reaches the session owning the id",
          "[hairpin][icmp]") {
  Harness h;
  // h1 pings the Internet first: its echo id 7 leaves as (A1, p).
  RunResult first = h.Run(FromB4(kB4a).IcmpEcho(7, 1).Build());
  REQUIRE(VerdictName(first.verdict) == "XDP_REDIRECT");
  Mapping sender = MappingFor(h, kB4a, 7, kProtoIcmp);
  // h2 owns id p on another address by a static ICMP mapping of its id 9.
  uint32_t other = sender.addr == h.pool()[0] ? 1 : 0;
  REQUIRE(h.Ctl(SubscriberOn(kB4b, other, BlockOf(h.config(), sender.port))) == 1);
  REQUIRE(h.Ctl(StaticSession(kB4b, 9, h.pool()[other], sender.port, kProtoIcmp)) == 1);

  Bytes out = ExpectHairpinned(
      h, FromB4(kB4a, kInner, h.pool()[other]).IcmpEcho(7, 2).Payload("abc").Build(),
      kHairpinCounters);
  CHECK(Hex(out) == Hex(Hairpinned(kB4b, sender.addr).IcmpEcho(9, 2).Payload("abc").Build()));
  // h2's reply goes back by its mapping to h1's id.
  out = ExpectHairpinned(
      h, FromB4(kB4b, kInner, sender.addr).IcmpEchoReply(9, 2).Payload("abc").Build(),
      kHairpinCounters);
  CHECK(Hex(out) ==
        Hex(Hairpinned(kB4a, h.pool()[other]).IcmpEchoReply(7, 2).Payload("abc").Build()));
}

TEST_CASE("hairpin: no inbound session drops as unmapped inbound traffic, nothing for the target",
          "[hairpin][drop]") {
  Harness h;
  Mapping sender = TranslateUdp(h, kB4a, kInnerPort);
  auto in = h.SessionsIn();
  size_t subs = h.SubscriberCount();
  uint32_t stray = h.pool()[2];
  for (const Bytes& frame :
       {FromB4(kB4a, kInner, stray).Udp(kInnerPort, 33333).Build(),
        FromB4(kB4a, kInner, sender.addr).Udp(kInnerPort, sender.port + 1).Build(),
        FromB4(kB4a, kInner, Ip4Addr("198.51.100.3")).Tcp(kInnerPort, 80, kTcpAck).Build()}) {
    CounterValues before = h.Counters();
    h.DrainEvents();
    RunResult r = h.Run(frame);
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    std::string diff = CounterDiff(before, h.Counters());
    // The TCP frame's sender session is new; the target gets nothing.
    CHECK((diff == "rx_packets=1 drop_no_session=1" ||
           diff == "rx_packets=1 session_created=1 drop_no_session=1"));
  }
  CHECK(h.SubscriberCount() == subs);
  CHECK(h.SessionsIn().size() == in.size() + 1);  // the TCP sender session only
  CHECK(h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoTcp)));

  // An echo reply toward a pool address never makes a session.
  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4a, kInner, sender.addr).IcmpEchoReply(99, 1).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 drop_no_session=1");
  CHECK_FALSE(h.SessionOut(OutKey(kB4a, kInner, 99, kProtoIcmp)));
  // Toward the Internet it stays unsupported, as before.
  before = h.Counters();
  r = h.Run(FromB4(kB4a).IcmpEchoReply(99, 1).Build());
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 drop_unsupported_icmp=1");
}

TEST_CASE("hairpin: address-dependent filtering takes the sender's public address as the peer",
          "[hairpin][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  Mapping h2 = TranslateUdp(h, kB4b, 5000);        // h2 has talked to kRemote only
  Mapping h1 = TranslateUdp(h, kB4a, kInnerPort);  // h1 likewise

  // h1 → h2's mapping: h2 never sent to h1's public address.
  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4a, kInner, h2.addr).Udp(kInnerPort, h2.port).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 drop_filtered=1");
  // ...but h1's mapping has now sent to h2's address, so h2 gets through to h1,
  ExpectHairpinned(h, FromB4(kB4b, kInner, h1.addr).Udp(5000, h1.port).Build(), kHairpinCounters);
  // and having sent to h1's address, h2's mapping now lets h1 in.
  Bytes out = ExpectHairpinned(
      h, FromB4(kB4a, kInner, h2.addr).Udp(kInnerPort, h2.port).Payload("now").Build(),
      kHairpinCounters);
  CHECK(Hex(out) == Hex(Hairpinned(kB4b, h1.addr).Udp(h1.port, 5000).Payload("now").Build()));
}

TEST_CASE("hairpin: a port forward is reachable from a subscriber under address-dependent "
          "filtering, a PCP FILTER set only from its peers",
          "[hairpin][filtering][pcp]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  REQUIRE(h.Ctl(SubscriberOn(kB4b, 1, 7)) == 1);
  uint16_t port = h.config().port_min + 7 * h.config().block_size;
  REQUIRE(h.Ctl(StaticSession(kB4b, 8080, h.pool()[1], port, kProtoUdp)) == 1);
  ExpectHairpinned(h, FromB4(kB4a, kInner, h.pool()[1]).Udp(kInnerPort, port).Build(),
                   "rx_packets=1 hairpin_translated=1 tx_redirect=1 session_created=1 "
                   "subscriber_created=1 block_claimed=1");

  // FILTERED with no filter set: nobody, a subscriber neither.
  aftr_ctl_args flags{};
  flags.op = AFTR_CTL_SESSION_FLAGS;
  std::memcpy(flags.b4, kB4b.data(), 16);
  flags.inner_addr = kInner;
  flags.inner_port = htons(8080);
  flags.proto = kProtoUdp;
  flags.flags = AFTR_SESSION_FILTERED;
  REQUIRE(h.Ctl(flags) == 1);
  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4a, kInner, h.pool()[1]).Udp(kInnerPort, port).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 drop_filtered=1");
}

TEST_CASE("hairpin: the TTL is checked and decremented once", "[hairpin][ttl]") {
  Harness h;
  Mapping target = TranslateUdp(h, kB4b, 5000);
  Mapping sender = TranslateUdp(h, kB4a, kInnerPort);
  Bytes out = ExpectHairpinned(
      h, FromB4(kB4a, kInner, target.addr).Ttl(2).Udp(kInnerPort, target.port).Build(),
      kHairpinCounters);
  CHECK(Hex(out) == Hex(ToB4(kB4b, sender.addr, kInner, 1).Udp(sender.port, 5000).Build()));
  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4a, kInner, target.addr).Ttl(1).Udp(kInnerPort, target.port).Build());
  // Expired: "time exceeded" back to the sender from 192.0.0.1, through its softwire.
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 tx_redirect=1 icmp_time_exceeded_sent=1");
}

}  // namespace
}  // namespace bpftest
