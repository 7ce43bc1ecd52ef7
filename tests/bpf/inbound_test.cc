// Internet → B4: destination translation back to the inner address and port, IPv6
// encapsulation toward the right B4, filtering modes, and what happens without a session.
#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

TEST_CASE("inbound: a reply to an established UDP mapping is translated back and "
          "encapsulated toward its B4",
          "[inbound]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  h.DrainEvents();

  RunResult r = h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Payload("pong").Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->ether_type == kEtherTypeIpv6);
  CHECK(f->ip6_first_word == 0x60000000u);
  CHECK(f->ip6_next_header == kProtoIpip);
  CHECK(f->ip6_hop_limit == 64);
  CHECK(Ip6String(f->ip6_src) == "2001:db8:ffff::1");
  CHECK(Ip6String(f->ip6_dst) == "2001:db8:100::2");
  CHECK(f->ip6_payload_len == f->tot_len);
  CHECK(f->tot_len == 20 + 8 + 4);
  CHECK(Ip4String(f->dst) == "192.0.2.10");
  CHECK(f->dport == kInnerPort);
  CHECK(f->ttl == 63);
  CHECK(Hex(r.out) ==
        Hex(ToB4(kB4a, kRemote).Udp(kRemotePort, kInnerPort).Payload("pong").Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(h.CounterString() ==
        "rx_packets=2 out_translated=1 in_translated=1 tx_redirect=2 session_created=1 "
        "subscriber_created=1 block_claimed=1");
  CHECK(h.DrainEvents().empty());
}

TEST_CASE("inbound: an ICMP echo reply returns to the B4 with the original identifier",
          "[inbound][icmp]") {
  Harness h;
  RunResult out = h.Run(FromB4(kB4a).IcmpEcho(0x0777, 3).Payload("ping").Build());
  REQUIRE(out.verdict == XDP_REDIRECT);
  std::optional<Frame> o = ParseFrame(out.out);
  REQUIRE(o);
  RunResult r = h.Run(FromInternet(kRemote, o->src).IcmpEchoReply(o->icmp_id, 3).Payload("ping").Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(Hex(r.out) == Hex(ToB4(kB4a, kRemote).IcmpEchoReply(0x0777, 3).Payload("ping").Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(h.Counter(AFTR_C_IN_TRANSLATED) == 1);
}

TEST_CASE("inbound: a TCP SYN-ACK has its MSS clamped and its flags recorded", "[inbound][tcp]") {
  Harness h;
  RunResult syn = h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).TcpMss(1400).Build());
  REQUIRE(syn.verdict == XDP_REDIRECT);
  std::optional<Frame> o = ParseFrame(syn.out);
  REQUIRE(o);
  Mapping m{o->src, o->sport};

  RunResult r = h.Run(FromInternet(kRemote, m.addr)
                          .Tcp(443, m.port, kTcpSyn | kTcpAck)
                          .TcpSeq(5000, 1001)
                          .TcpMss(1460)
                          .Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(Hex(r.out) == Hex(ToB4(kB4a, kRemote)
                              .Tcp(443, kInnerPort, kTcpSyn | kTcpAck)
                              .TcpSeq(5000, 1001)
                              .TcpMss(1420)
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(h.Counter(AFTR_C_MSS_CLAMPED) == 1);
  std::optional<aftr_session_in> in = h.SessionIn(InKey(m, kProtoTcp));
  REQUIRE(in);
  CHECK(in->tcp_flags == AFTR_TCP_SEEN_SYN);

  h.Run(FromInternet(kRemote, m.addr).Tcp(443, m.port, kTcpRst).Build());
  CHECK(h.SessionIn(InKey(m, kProtoTcp))->tcp_flags == (AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_RST));
}

TEST_CASE("inbound: UDP without checksum stays without checksum", "[inbound]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  RunResult r =
      h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).UdpZeroChecksum().Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(Hex(r.out) ==
        Hex(ToB4(kB4a, kRemote).Udp(kRemotePort, kInnerPort).UdpZeroChecksum().Build()));
}

TEST_CASE("inbound: a UDP checksum that translates to zero is sent as 0xffff (RFC 768)",
          "[inbound]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  // Two payload bytes chosen so that the translated datagram's sum is 0xffff: its computed
  // checksum is then 0, which UDP must transmit as 0xffff.
  uint8_t hdr[8] = {0, kRemotePort, uint8_t(kInnerPort >> 8), uint8_t(kInnerPort & 0xff), 0, 10,
                    0, 0};
  uint32_t sum = ChecksumAdd(hdr, sizeof(hdr), Ipv4PseudoSum(kRemote, kInner, kProtoUdp, 10));
  uint16_t fill = 0xffff - sum;
  Bytes payload = {uint8_t(fill >> 8), uint8_t(fill & 0xff)};

  RunResult r = h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Payload(payload).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->l4_check == 0xffff);
  CHECK(Hex(r.out) ==
        Hex(ToB4(kB4a, kRemote).Udp(kRemotePort, kInnerPort).Payload(payload).Build()));
  CHECK(ChecksumErrors(r.out) == "");
}

TEST_CASE("inbound: nothing is created for a pool address and port without session",
          "[inbound]") {
  Harness h;
  SECTION("nobody has mapped anything") {
    RunResult r = h.Run(FromInternet(kRemote, h.pool()[0]).Udp(kRemotePort, 5000).Build());
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(h.CounterString() == "rx_packets=1 drop_no_session=1");
  }
  SECTION("the mapped port, but another protocol") {
    Mapping m = TranslateUdp(h, kB4a, kInnerPort);
    h.DrainEvents();
    RunResult r = h.Run(FromInternet(kRemote, m.addr).Tcp(kRemotePort, m.port, kTcpSyn).Build());
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(h.Counter(AFTR_C_DROP_NO_SESSION) == 1);
    CHECK(h.Counter(AFTR_C_IN_TRANSLATED) == 0);
  }
  SECTION("the mapped port on another pool address") {
    Mapping m = TranslateUdp(h, kB4a, kInnerPort);
    h.DrainEvents();
    uint32_t other = h.pool()[(h.Subscriber(kB4a)->addr_index + 1) % h.pool().size()];
    RunResult r = h.Run(FromInternet(kRemote, other).Udp(kRemotePort, m.port).Build());
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(h.Counter(AFTR_C_DROP_NO_SESSION) == 1);
  }
  CHECK(h.DrainEvents().empty());
  CHECK(h.SessionsIn().size() == h.SessionsOut().size());
  CHECK(h.SessionsOut().size() <= 1);
  CHECK(h.SubscriberCount() <= 1);
}

TEST_CASE("inbound: endpoint-independent filtering lets any remote reach a mapping",
          "[inbound][filtering]") {
  Harness h;  // default: endpoint-independent
  Mapping m = TranslateUdp(h, kB4a, kInnerPort, kRemote);
  RunResult r = h.Run(FromInternet(kRemote2, m.addr).Udp(1234, m.port).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(Hex(r.out) == Hex(ToB4(kB4a, kRemote2).Udp(1234, kInnerPort).Build()));
}

TEST_CASE("inbound: address-dependent filtering admits only remotes the mapping has sent to",
          "[inbound][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  Mapping m = TranslateUdp(h, kB4a, kInnerPort, kRemote, 7);
  CHECK(h.FilterPeerCount() == 1);

  // The contacted address passes, from any of its ports (address-, not port-dependent).
  RunResult ok = h.Run(FromInternet(kRemote, m.addr).Udp(7, m.port).Build());
  CHECK(VerdictName(ok.verdict) == "XDP_REDIRECT");
  RunResult ok2 = h.Run(FromInternet(kRemote, m.addr).Udp(9999, m.port).Build());
  CHECK(VerdictName(ok2.verdict) == "XDP_REDIRECT");

  // Another address is filtered, the packet is left as it was.
  Bytes stranger = FromInternet(kRemote2, m.addr).Udp(7, m.port).Build();
  RunResult bad = h.Run(stranger);
  CHECK(VerdictName(bad.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_FILTERED) == 1);
  CHECK(Hex(bad.out) == Hex(stranger));

  // Once the inner host sends to it, it is admitted too; still the same mapping.
  CHECK(TranslateUdp(h, kB4a, kInnerPort, kRemote2, 7) == m);
  CHECK(h.FilterPeerCount() == 2);
  RunResult now_ok = h.Run(stranger);
  CHECK(VerdictName(now_ok.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_DROP_FILTERED) == 1);
  CHECK(h.Counter(AFTR_C_IN_TRANSLATED) == 3);
}

}  // namespace
}  // namespace bpftest
