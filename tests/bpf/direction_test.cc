// Per-direction counters: every counter is kept once for packets arriving as IPv6 (from a
// B4), once for IPv4 (from the Internet) and once for anything else, and each packet counts
// in exactly one row.
#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

// The non-zero counters of one direction, as CounterString spells them.
std::string Row(const Harness& h, aftr_direction d) {
  return CounterDiff(CounterValues{}, h.CountersByDirection()[d]);
}

TEST_CASE("direction: each packet counts in the row of the way it came", "[direction]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);  // from a B4: creates the session
  RunResult in = h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Build());
  REQUIRE(VerdictName(in.verdict) == "XDP_REDIRECT");
  h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port + 1).Build());  // no session
  Bytes arp = {0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0x5e, 0, 0x0e, 0x77, 203, 0, 113, 10,
               0, 0, 0, 0, 0, 0, 198, 51, 100, 1};
  h.Run(PacketBuilder().EtherType(kEtherTypeArp).Raw(arp).Build());
  h.Run(FromB4(kUnknownB4).Udp(kInnerPort, kRemotePort).Build());  // dropped from a B4

  CHECK(Row(h, AFTR_DIR_FROM_B4) ==
        "rx_packets=2 out_translated=1 tx_redirect=1 session_created=1 subscriber_created=1 "
        "block_claimed=1 drop_unknown_b4=1");
  CHECK(Row(h, AFTR_DIR_FROM_INTERNET) ==
        "rx_packets=2 in_translated=1 tx_redirect=1 drop_no_session=1");
  CHECK(Row(h, AFTR_DIR_OTHER) == "rx_packets=1 pass_not_ours=1");
  // The totals are the sum of the rows.
  CHECK(h.CounterString() ==
        "rx_packets=5 pass_not_ours=1 out_translated=1 in_translated=1 tx_redirect=2 "
        "session_created=1 subscriber_created=1 block_claimed=1 drop_unknown_b4=1 "
        "drop_no_session=1");
}

TEST_CASE("direction: the ingress interface does not matter, the EtherType does",
          "[direction]") {
  Harness h;
  // A softwire frame arriving on the Internet-side interface is still "from a B4".
  RunResult r = h.RunOn(Net().inet_ifindex, FromB4(kB4a).Udp(kInnerPort, kRemotePort).Build());
  REQUIRE(VerdictName(r.verdict) == "XDP_TX");  // out of the interface it came in on
  CHECK(h.CountersByDirection()[AFTR_DIR_FROM_B4][AFTR_C_RX_PACKETS] == 1);
  CHECK(h.CountersByDirection()[AFTR_DIR_FROM_INTERNET][AFTR_C_RX_PACKETS] == 0);
  // A bare IPv4 Ethernet header arriving on the B4 side counts as from the Internet.
  h.RunOn(Net().b4_ifindex, PacketBuilder().EtherType(kEtherTypeIpv4).Build());
  CHECK(Row(h, AFTR_DIR_FROM_INTERNET) == "rx_packets=1 drop_malformed_ipv4=1");
}

TEST_CASE("direction: counters kept by the session-making global functions land in from_b4",
          "[direction]") {
  // nat44_add_block and nat44_pick_step count from their own frames (they are global
  // functions / callbacks), not through the entry point's row pointer.
  Harness h(ConfigWithPorts(1024, 1024 + 4 * 16 - 1, 4, 2));
  for (uint16_t i = 0; i < 5; i++) TranslateUdp(h, kB4a, 40000 + i);  // 4 ports a block
  CHECK(h.CountersByDirection()[AFTR_DIR_FROM_B4][AFTR_C_BLOCK_CLAIMED] == 2);
  CHECK(h.CountersByDirection()[AFTR_DIR_FROM_B4][AFTR_C_PORT_PICK_RETRIES] > 0);
  for (aftr_direction d : {AFTR_DIR_FROM_INTERNET, AFTR_DIR_OTHER}) {
    CHECK(h.CountersByDirection()[d][AFTR_C_BLOCK_CLAIMED] == 0);
    CHECK(h.CountersByDirection()[d][AFTR_C_PORT_PICK_RETRIES] == 0);
  }
}

}  // namespace
}  // namespace bpftest
