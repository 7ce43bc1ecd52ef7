// Frames that are not softwire or pool traffic go to the kernel (XDP_PASS) byte for byte
// unchanged, counted as not ours or as local control traffic for the AFTR itself.
#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

void ExpectPassedUnchanged(Harness& h, const Bytes& frame, const std::string& counters) {
  RunResult r = h.Run(frame);
  CHECK(VerdictName(r.verdict) == "XDP_PASS");
  CHECK(Hex(r.out) == Hex(frame));
  CHECK(h.CounterString() == counters);
  CHECK(h.SubscriberCount() == 0);
  CHECK(h.SessionsOut().empty());
  CHECK(h.DrainEvents().empty());
}

TEST_CASE("passthrough: frames not for the AFTR go to the kernel untouched", "[passthrough]") {
  Harness h;
  SECTION("IPv4-in-IPv6 to another IPv6 address") {
    Bytes f = PacketBuilder()
                  .Ipv6(kB4a, Ip6Addr("2001:db8:ffff::2"))
                  .Ipv4(kInner, kRemote)
                  .Udp(kInnerPort, 7)
                  .Build();
    ExpectPassedUnchanged(h, f, "rx_packets=1 pass_not_ours=1");
  }
  SECTION("ARP") {
    Bytes arp = {0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0x5e, 0, 0x0e, 0x77, 203, 0, 113, 10,
                 0, 0, 0, 0, 0, 0, 198, 51, 100, 1};
    ExpectPassedUnchanged(h, PacketBuilder().EtherType(kEtherTypeArp).Raw(arp).Build(),
                          "rx_packets=1 pass_not_ours=1");
  }
  SECTION("IPv4 to an address outside the pool") {
    ExpectPassedUnchanged(h, FromInternet(kRemote, kNotPool).Udp(7, 1024).Build(),
                          "rx_packets=1 pass_not_ours=1");
  }
  SECTION("a VLAN-tagged frame") {
    Bytes tagged = FromInternet(kRemote, kNotPool).Udp(7, 1024).Build();
    tagged.insert(tagged.begin() + 12, {0x81, 0x00, 0x00, 0x64});
    ExpectPassedUnchanged(h, tagged, "rx_packets=1 pass_not_ours=1");
  }
}

TEST_CASE("passthrough: the AFTR's own IPv6 control traffic to the softwire address goes to "
          "the kernel",
          "[passthrough]") {
  Harness h;
  SECTION("ICMPv6 echo request") {
    Bytes icmp6 = {128, 0, 0, 0, 0, 1, 0, 1, 'h', 'i'};
    Bytes f = PacketBuilder().Ipv6(kB4a, kSoftwire).RawIpv6Payload(kProtoIcmpv6, icmp6).Build();
    ExpectPassedUnchanged(h, f, "rx_packets=1 pass_local_control=1");
  }
  SECTION("PCP request on UDP 5351") {
    Bytes udp(8 + 24, 0);
    udp[0] = 5351 >> 8;
    udp[1] = 5351 & 0xff;
    udp[2] = 5351 >> 8;
    udp[3] = 5351 & 0xff;
    udp[8] = 2;  // PCP version
    Bytes f = PacketBuilder().Ipv6(kB4a, kSoftwire).RawIpv6Payload(kProtoUdp, udp).Build();
    ExpectPassedUnchanged(h, f, "rx_packets=1 pass_local_control=1");
  }
  SECTION("ICMPv6 behind a Destination Options header") {
    Bytes icmp6 = {128, 0, 0, 0, 0, 1, 0, 1};
    Bytes f = PacketBuilder()
                  .Ipv6(kB4a, kSoftwire)
                  .EncapLimit()
                  .RawIpv6Payload(kProtoIcmpv6, icmp6)
                  .Build();
    ExpectPassedUnchanged(h, f, "rx_packets=1 pass_local_control=1");
  }
}

}  // namespace
}  // namespace bpftest
