// B4 → Internet: decapsulation, source translation, session creation and reuse,
// endpoint-independent mapping, Destination Options handling, TCP MSS clamping, ICMP echo.
#include <arpa/inet.h>
#include <time.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

TEST_CASE("outbound: a B4's first UDP datagram creates subscriber, block and session and "
          "leaves decapsulated with a pool source inside the subscriber's block",
          "[outbound]") {
  Harness h;
  RunResult r = h.Run(FromB4(kB4a).Udp(kInnerPort, kRemotePort).Payload("hello").Build());

  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(h.CounterString() ==
        "rx_packets=1 out_translated=1 tx_redirect=1 session_created=1 subscriber_created=1 "
        "block_claimed=1");

  // The subscriber: active with one session, one block on one pool address.
  std::optional<aftr_subscriber> sub = h.Subscriber(kB4a);
  REQUIRE(sub);
  CHECK(sub->state_sessions == 1);  // state ACTIVE in the high half, 1 session in the low
  CHECK(sub->created_ns > 0);
  REQUIRE(sub->addr_index < h.pool().size());
  CHECK(Ip4String(sub->public_addr) == Ip4String(h.pool()[sub->addr_index]));
  CHECK(sub->n_blocks == 1);
  const uint32_t block = sub->blocks[0];
  CHECK(block < h.config().blocks_per_addr);
  for (int i = 1; i < AFTR_MAX_BLOCKS_PER_SUB; i++) CHECK(sub->blocks[i] == AFTR_BLOCK_SLOT_EMPTY);
  CHECK(BitSet(h.PoolAddr(sub->addr_index), block));

  // The frame: Ethernet + IPv4 only, source = pool address and a port of the block, TTL-1,
  // gateway MACs; everything else (id, DF, payload) untouched; checksums recomputed by the
  // builder must equal the program's incremental ones.
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->ether_type == kEtherTypeIpv4);
  CHECK_FALSE(f->has_ipv6);
  const uint16_t port = f->sport;
  CHECK(port >= 1024 + block * 64);
  CHECK(port < 1024 + (block + 1) * 64);
  CHECK(f->ttl == 63);
  CHECK(Hex(r.out) ==
        Hex(ToInternet(sub->public_addr, kRemote).Udp(port, kRemotePort).Payload("hello").Build()));
  CHECK(ChecksumErrors(r.out) == "");

  // Events: the block first, then the session.
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].type == AFTR_EV_BLOCK_CLAIMED);
  CHECK(Ip6String(B4Of(ev[0].b4)) == Ip6String(kB4a));
  CHECK(Ip4String(ev[0].public_addr) == Ip4String(sub->public_addr));
  CHECK(ntohs(ev[0].public_port) == 1024 + block * 64);  // first port of the block
  CHECK(ev[0].block_size == 64);
  CHECK(ev[0].ts_ns > 0);
  CHECK(ev[1].type == AFTR_EV_SESSION_CREATE);
  CHECK(Ip6String(B4Of(ev[1].b4)) == Ip6String(kB4a));
  CHECK(ev[1].proto == kProtoUdp);
  CHECK(Ip4String(ev[1].inner_addr) == "192.0.2.10");
  CHECK(ntohs(ev[1].inner_port) == kInnerPort);
  CHECK(Ip4String(ev[1].public_addr) == Ip4String(sub->public_addr));
  CHECK(ntohs(ev[1].public_port) == port);
  CHECK(ev[1].ts_ns > 0);

  // Both session entries, pointing at each other.
  std::optional<aftr_session_out> out = h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp));
  REQUIRE(out);
  CHECK(out->public_addr == sub->public_addr);
  CHECK(ntohs(out->public_port) == port);
  CHECK(out->tcp_flags == 0);
  CHECK(out->last_seen_ns > 0);
  std::optional<aftr_session_in> in = h.SessionIn(InKey({sub->public_addr, port}, kProtoUdp));
  REQUIRE(in);
  CHECK(Ip6String(B4Of(in->b4)) == Ip6String(kB4a));
  CHECK(in->inner_addr == kInner);
  CHECK(ntohs(in->inner_port) == kInnerPort);
  CHECK(in->softwire_index == 0);
  CHECK(h.SessionsOut().size() == 1);
  CHECK(h.SessionsIn().size() == 1);
  CHECK(h.SubscriberCount() == 1);
  CHECK(h.FilterPeerCount() == 0);  // endpoint-independent filtering keeps no peers
}

TEST_CASE("outbound: later packets of a flow reuse its session and emit no events",
          "[outbound]") {
  Harness h;
  Mapping first = TranslateUdp(h, kB4a, kInnerPort);
  h.DrainEvents();

  RunResult r = h.Run(FromB4(kB4a).Udp(kInnerPort, kRemotePort).Payload("again").Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(Hex(r.out) ==
        Hex(ToInternet(first.addr, kRemote).Udp(first.port, kRemotePort).Payload("again").Build()));
  CHECK(h.DrainEvents().empty());
  CHECK(h.CounterString() ==
        "rx_packets=2 out_translated=2 tx_redirect=2 session_created=1 subscriber_created=1 "
        "block_claimed=1");
  CHECK(h.Subscriber(kB4a)->state_sessions == 1);
  CHECK(h.SessionsOut().size() == 1);
}

TEST_CASE("outbound: endpoint-independent mapping gives one inner address:port the same "
          "public address:port toward every destination",
          "[outbound]") {
  Harness h;
  Mapping a = TranslateUdp(h, kB4a, kInnerPort, kRemote, 7);
  Mapping b = TranslateUdp(h, kB4a, kInnerPort, kRemote2, 53);
  Mapping c = TranslateUdp(h, kB4a, kInnerPort, kRemote, 9999);
  CHECK(a == b);
  CHECK(a == c);
  CHECK(h.Counter(AFTR_C_SESSION_CREATED) == 1);
  CHECK(h.SessionsOut().size() == 1);

  // A different inner port is a different mapping on the same (paired) address.
  Mapping d = TranslateUdp(h, kB4a, kInnerPort + 1);
  CHECK(d.addr == a.addr);
  CHECK(d.port != a.port);
}

TEST_CASE("outbound: the same inner port over UDP, TCP and ICMP are three sessions",
          "[outbound]") {
  Harness h;
  REQUIRE(h.Run(FromB4(kB4a).Udp(kInnerPort, 7).Build()).verdict == XDP_REDIRECT);
  REQUIRE(h.Run(FromB4(kB4a).Tcp(kInnerPort, 7, kTcpSyn).Build()).verdict == XDP_REDIRECT);
  REQUIRE(h.Run(FromB4(kB4a).IcmpEcho(kInnerPort, 1).Build()).verdict == XDP_REDIRECT);
  CHECK(h.SessionsOut().size() == 3);
  CHECK(h.SessionsIn().size() == 3);
  CHECK(h.Subscriber(kB4a)->state_sessions == 3);
}

TEST_CASE("outbound: a Destination Options header with the Tunnel Encapsulation Limit option "
          "is skipped and removed with the IPv6 header",
          "[outbound][dstopts]") {
  Harness h;
  Bytes in = FromB4(kB4a).EncapLimit(4).Udp(kInnerPort, kRemotePort).Payload("lim").Build();
  RunResult r = h.Run(in);
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<aftr_subscriber> sub = h.Subscriber(kB4a);
  REQUIRE(sub);
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(Hex(r.out) ==
        Hex(ToInternet(sub->public_addr, kRemote).Udp(f->sport, kRemotePort).Payload("lim").Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(h.Counter(AFTR_C_OUT_TRANSLATED) == 1);
}

TEST_CASE("outbound: unknown destination options are skipped only when their type says so "
          "(RFC 8200 4.2)",
          "[outbound][dstopts]") {
  Harness h;
  SECTION("type 0x1e (top bits 00: skip) is translated") {
    RunResult r = h.Run(FromB4(kB4a).DstOpts({0x1e, 2, 0xab, 0xcd, 4, 1, 4}).Udp(1, 2).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    CHECK(h.Counter(AFTR_C_OUT_TRANSLATED) == 1);
  }
  for (uint8_t type : {0x5e, 0x9e, 0xde}) {  // top bits 01, 10, 11: discard
    DYNAMIC_SECTION("type 0x" << std::hex << int(type) << " means discard") {
      Bytes in = FromB4(kB4a).DstOpts({type, 2, 0, 0}).Udp(1, 2).Build();
      RunResult r = h.Run(in);
      CHECK(VerdictName(r.verdict) == "XDP_DROP");
      CHECK(h.CounterString() == "rx_packets=1 drop_malformed_ext_hdr=1");
      CHECK(h.SubscriberCount() == 0);
    }
  }
  SECTION("a Tunnel Encapsulation Limit option of the wrong length is malformed") {
    RunResult r = h.Run(FromB4(kB4a).DstOpts({4, 2, 4, 0}).Udp(1, 2).Build());
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(h.CounterString() == "rx_packets=1 drop_malformed_ext_hdr=1");
  }
  SECTION("an option running past the header is malformed") {
    Bytes in = FromB4(kB4a).EncapLimit().Udp(1, 2).Build();
    in[kIp6Off + 40 + 3] = 5;  // Tunnel Encapsulation Limit claims 5 data bytes in an 8-byte header
    RunResult r = h.Run(in);
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(h.CounterString() == "rx_packets=1 drop_malformed_ext_hdr=1");
  }
  SECTION("a header longer than the frame is malformed") {
    Bytes in = FromB4(kB4a).EncapLimit().Udp(1, 2).Build();
    in.resize(kIp6Off + 40 + 8);    // keep only the Destination Options header
    in[kIp6Off + 40 + 1] = 1;       // which now claims 16 bytes
    in[kIp6Off + 4] = 0;
    in[kIp6Off + 5] = 8;
    RunResult r = h.Run(in);
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(h.CounterString() == "rx_packets=1 drop_malformed_ext_hdr=1");
  }
  SECTION("a header longer than 64 bytes is left to the kernel") {
    Bytes pad(70, 0);
    pad[0] = 1;
    pad[1] = 68;  // one PadN of 70 bytes: header of 72
    RunResult r = h.Run(FromB4(kB4a).DstOpts(pad).Udp(1, 2).Build());
    CHECK(VerdictName(r.verdict) == "XDP_PASS");
    CHECK(h.CounterString() == "rx_packets=1 pass_local_control=1");
  }
}

TEST_CASE("outbound: a TCP SYN's MSS above the clamp is lowered to 1420 with a valid checksum",
          "[outbound][tcp]") {
  Harness h;
  RunResult r =
      h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).TcpSeq(77, 0).TcpMss(1460).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->tcp_mss == 1420);
  std::optional<aftr_subscriber> sub = h.Subscriber(kB4a);
  REQUIRE(sub);
  CHECK(Hex(r.out) == Hex(ToInternet(sub->public_addr, kRemote)
                              .Tcp(f->sport, 443, kTcpSyn)
                              .TcpSeq(77, 0)
                              .TcpMss(1420)
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(h.Counter(AFTR_C_MSS_CLAMPED) == 1);
  std::optional<aftr_session_out> s = h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoTcp));
  REQUIRE(s);
  CHECK(s->tcp_flags == AFTR_TCP_SEEN_SYN);
}

TEST_CASE("outbound: MSS clamping finds the option after NOPs and timestamps and leaves "
          "small MSS and non-SYN segments alone",
          "[outbound][tcp]") {
  Harness h;
  SECTION("NOP NOP TS then MSS 1460") {
    Bytes ts = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0};
    RunResult r = h.Run(
        FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).TcpOptions(ts).TcpMss(1460).Build());
    std::optional<Frame> f = ParseFrame(r.out);
    REQUIRE(f);
    CHECK(f->tcp_mss == 1420);
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(h.Counter(AFTR_C_MSS_CLAMPED) == 1);
  }
  SECTION("MSS 1400 is below the clamp") {
    RunResult r = h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).TcpMss(1400).Build());
    std::optional<Frame> f = ParseFrame(r.out);
    REQUIRE(f);
    CHECK(f->tcp_mss == 1400);
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(h.Counter(AFTR_C_MSS_CLAMPED) == 0);
  }
  SECTION("an MSS option on a non-SYN segment is not touched") {
    RunResult r = h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpAck).TcpMss(1460).Build());
    std::optional<Frame> f = ParseFrame(r.out);
    REQUIRE(f);
    CHECK(f->tcp_mss == 1460);
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(h.Counter(AFTR_C_MSS_CLAMPED) == 0);
  }
}

TEST_CASE("outbound: TCP flags seen outbound accumulate in the session", "[outbound][tcp]") {
  Harness h;
  h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).Build());
  h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpAck).Build());
  aftr_session_out_key k = OutKey(kB4a, kInner, kInnerPort, kProtoTcp);
  CHECK(h.SessionOut(k)->tcp_flags == AFTR_TCP_SEEN_SYN);
  h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpFin | kTcpAck).Build());
  CHECK(h.SessionOut(k)->tcp_flags == (AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_FIN));
  h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpRst).Build());
  CHECK(h.SessionOut(k)->tcp_flags ==
        (AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_FIN | AFTR_TCP_SEEN_RST));
  CHECK(h.Counter(AFTR_C_SESSION_CREATED) == 1);
}

TEST_CASE("outbound: an ICMP echo request is translated by its identifier", "[outbound][icmp]") {
  Harness h;
  RunResult r = h.Run(FromB4(kB4a).IcmpEcho(0x0777, 9).Payload("ping").Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<aftr_subscriber> sub = h.Subscriber(kB4a);
  REQUIRE(sub);
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  const uint16_t id = f->icmp_id;
  CHECK(id >= 1024 + sub->blocks[0] * 64);
  CHECK(id < 1024 + (sub->blocks[0] + 1) * 64);
  CHECK(Hex(r.out) ==
        Hex(ToInternet(sub->public_addr, kRemote).IcmpEcho(id, 9).Payload("ping").Build()));
  CHECK(ChecksumErrors(r.out) == "");
  std::optional<aftr_session_out> s = h.SessionOut(OutKey(kB4a, kInner, 0x0777, kProtoIcmp));
  REQUIRE(s);
  CHECK(ntohs(s->public_port) == id);
}

TEST_CASE("outbound: a UDP datagram without checksum keeps checksum 0", "[outbound]") {
  Harness h;
  RunResult r = h.Run(FromB4(kB4a).Udp(kInnerPort, 7).UdpZeroChecksum().Payload("z").Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->l4_check == 0);
  CHECK(Hex(r.out) == Hex(ToInternet(h.Subscriber(kB4a)->public_addr, kRemote)
                              .Udp(f->sport, 7)
                              .UdpZeroChecksum()
                              .Payload("z")
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
}

TEST_CASE("outbound: an inner IPv4 header with options is translated at the right offsets",
          "[outbound]") {
  Harness h;
  Bytes ra = {0x94, 0x04, 0x00, 0x00};  // Router Alert
  RunResult r = h.Run(FromB4(kB4a).Ipv4Options(ra).Udp(kInnerPort, 7).Payload("opt").Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->ihl == 6);
  CHECK(Hex(r.out) == Hex(ToInternet(h.Subscriber(kB4a)->public_addr, kRemote)
                              .Ipv4Options(ra)
                              .Udp(f->sport, 7)
                              .Payload("opt")
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
}

TEST_CASE("outbound: the outer hop limit is not checked at the tunnel endpoint (RFC 2473)",
          "[outbound]") {
  Harness h;
  RunResult r = h.Run(FromB4(kB4a).HopLimit(1).Udp(kInnerPort, 7).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_OUT_TRANSLATED) == 1);
}

TEST_CASE("outbound and inbound: last_seen is refreshed, but at most every quarter second",
          "[outbound][inbound]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  aftr_session_out_key ok = OutKey(kB4a, kInner, kInnerPort, kProtoUdp);
  aftr_session_in_key ik = InKey(m, kProtoUdp);
  const uint64_t out0 = h.SessionOut(ok)->last_seen_ns;
  const uint64_t in0 = h.SessionIn(ik)->last_seen_ns;
  CHECK(out0 == in0);  // both stamped at creation

  // Straight away: within the granularity, nothing is written.
  TranslateUdp(h, kB4a, kInnerPort);
  h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Build());
  CHECK(h.SessionOut(ok)->last_seen_ns == out0);
  CHECK(h.SessionIn(ik)->last_seen_ns == in0);

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  TranslateUdp(h, kB4a, kInnerPort);
  const uint64_t out1 = h.SessionOut(ok)->last_seen_ns;
  CHECK(out1 >= out0 + 250'000'000ull);
  CHECK(h.SessionIn(ik)->last_seen_ns == in0);  // each direction keeps its own
  h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Build());
  CHECK(h.SessionIn(ik)->last_seen_ns >= in0 + 250'000'000ull);
}

TEST_CASE("the data plane's clock is CLOCK_MONOTONIC_COARSE, at most one tick behind it",
          "[outbound][clock]") {
  // The program reads the coarse clock once per jiffy on each CPU (lib/clock.h); stamped
  // sessions show what it read. Twenty sessions a few ms apart span several ticks.
  auto coarse_now = [] {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
  };
  timespec res;
  REQUIRE(clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0);
  const uint64_t tick = uint64_t(res.tv_sec) * 1'000'000'000ull + uint64_t(res.tv_nsec);
  Harness h;
  for (uint16_t i = 0; i < 20; i++) {
    const uint64_t before = coarse_now();
    TranslateUdp(h, kB4a, uint16_t(kInnerPort + i));
    const uint64_t after = coarse_now();
    const uint64_t stamp = h.SessionOut(OutKey(kB4a, kInner, kInnerPort + i, kProtoUdp))->last_seen_ns;
    CHECK(stamp <= after);
    CHECK(stamp + tick >= before);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
}

}  // namespace
}  // namespace bpftest
