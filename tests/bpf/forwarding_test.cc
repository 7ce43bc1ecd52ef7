// Forwarding after translation through bpf_fib_lookup in the test namespace: redirect to the
// other interface or XDP_TX on the same one with the neighbour's MAC, the kernel fallback
// for an unresolved neighbour, and drops for no route and for a packet over the MTU.
#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

TEST_CASE("forwarding: translated packets are redirected to the egress interface with the "
          "next hop's MAC",
          "[forwarding]") {
  Harness h;
  RunResult out = h.Run(FromB4(kB4a).Udp(kInnerPort, kRemotePort).Build());
  CHECK(VerdictName(out.verdict) == "XDP_REDIRECT");
  std::optional<Frame> o = ParseFrame(out.out);
  REQUIRE(o);
  CHECK(o->eth_dst == Net().inet_gateway_mac);
  CHECK(o->eth_src == Net().inet_local_mac);

  RunResult in = h.Run(FromInternet(kRemote, o->src).Udp(kRemotePort, o->sport).Build());
  CHECK(VerdictName(in.verdict) == "XDP_REDIRECT");
  std::optional<Frame> i = ParseFrame(in.out);
  REQUIRE(i);
  CHECK(i->eth_dst == Net().b4_gateway_mac);
  CHECK(i->eth_src == Net().b4_local_mac);
  CHECK(h.Counter(AFTR_C_TX_REDIRECT) == 2);
  CHECK(h.Counter(AFTR_C_TX_SAME_IF) == 0);
}

TEST_CASE("forwarding: on a one-armed AFTR the packet goes back out with XDP_TX",
          "[forwarding]") {
  Harness h;
  // The B4's packet arrives on the Internet-side interface, where its route also leads.
  RunResult out = h.RunOn(Net().inet_ifindex, FromB4(kB4a).Udp(kInnerPort, kRemotePort).Build());
  CHECK(VerdictName(out.verdict) == "XDP_TX");
  std::optional<Frame> o = ParseFrame(out.out);
  REQUIRE(o);
  CHECK(o->eth_dst == Net().inet_gateway_mac);
  CHECK(o->ttl == 63);
  // The reply arrives on the B4-side interface, where the B4 route leads.
  RunResult in = h.RunOn(Net().b4_ifindex,
                         FromInternet(kRemote, o->src).Udp(kRemotePort, o->sport).Build());
  CHECK(VerdictName(in.verdict) == "XDP_TX");
  CHECK(ParseFrame(in.out)->eth_dst == Net().b4_gateway_mac);
  CHECK(h.Counter(AFTR_C_TX_SAME_IF) == 2);
  CHECK(h.Counter(AFTR_C_TX_REDIRECT) == 0);
}

TEST_CASE("forwarding: with the next hop unresolved the translated packet goes to the kernel "
          "with its TTL left for the kernel to decrement",
          "[forwarding]") {
  Harness h;
  RunResult r = h.Run(
      FromB4(kB4a, kInner, kRemoteNoNeigh).Udp(kInnerPort, kRemotePort).Payload("nn").Build());
  CHECK(VerdictName(r.verdict) == "XDP_PASS");
  CHECK(h.CounterString() ==
        "rx_packets=1 pass_no_neigh=1 out_translated=1 session_created=1 subscriber_created=1 "
        "block_claimed=1");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  // Decapsulated and translated, the incoming MACs kept, TTL not yet decremented.
  CHECK(Hex(r.out) == Hex(PacketBuilder()
                              .Eth(Net().b4_local_mac, kB4RouterMac)
                              .Ipv4(h.Subscriber(kB4a)->public_addr, kRemoteNoNeigh)
                              .Ttl(64)
                              .Udp(f->sport, kRemotePort)
                              .Payload("nn")
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
}

TEST_CASE("forwarding: without a route the translated packet is dropped as fib failed",
          "[forwarding]") {
  Harness h;
  RunResult r = h.Run(FromB4(kB4a, kInner, kUnrouted).Udp(kInnerPort, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_FIB_FAILED) == 1);
  CHECK(h.Counter(AFTR_C_OUT_TRANSLATED) == 1);
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->ether_type == kEtherTypeIpv4);
  CHECK(f->src == h.Subscriber(kB4a)->public_addr);
  CHECK(ChecksumErrors(r.out) == "");
}

TEST_CASE("forwarding: an encapsulated packet over the B4-side MTU goes to the slow path",
          "[forwarding]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  // 1460 bytes of IPv4 + 40 of IPv6 fit the 1500-byte veth MTU exactly; one more does not.
  RunResult fits = h.Run(
      FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Payload(Bytes(1460 - 28, 'a')).Build());
  CHECK(VerdictName(fits.verdict) == "XDP_REDIRECT");
  CHECK(fits.out.size() == 14 + 40 + 1460);
  CHECK(ChecksumErrors(fits.out) == "");
  CounterValues before = h.Counters();
  // Without DF: queued whole to the slow path (which fragments it), before translation.
  RunResult big = h.Run(FromInternet(kRemote, m.addr).FragOff(0).Udp(kRemotePort, m.port)
                            .Payload(Bytes(1461 - 28, 'a')).Build());
  CHECK(VerdictName(big.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 slow_path_queued=1");
}

TEST_CASE("forwarding: a decapsulated packet over the Internet-side MTU goes to the slow path",
          "[forwarding]") {
  Harness h;
  RunResult fits =
      h.Run(FromB4(kB4a).Udp(kInnerPort, kRemotePort).Payload(Bytes(1500 - 28, 'b')).Build());
  CHECK(VerdictName(fits.verdict) == "XDP_REDIRECT");
  CHECK(fits.out.size() == 14 + 1500);
  RunResult big = h.Run(
      FromB4(kB4a).FragOff(0).Udp(kInnerPort, kRemotePort).Payload(Bytes(1501 - 28, 'b')).Build());
  CHECK(VerdictName(big.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_SLOW_PATH_QUEUED) == 1);
  CHECK(h.Counter(AFTR_C_DROP_TOO_BIG) == 0);
}

}  // namespace
}  // namespace bpftest
