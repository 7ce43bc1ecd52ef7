// Self-tests of the packet builder and checksum verifier against frames made by scapy, so
// that the reference every other test compares with is not wrong in the same way as them.
#include "packet_builder.h"

#include <catch2/catch.hpp>

namespace bpftest {
namespace {

Bytes FromHex(const std::string& hex) {
  Bytes b;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) b.push_back(std::stoi(hex.substr(i, 2), nullptr, 16));
  return b;
}

const uint32_t kSrc = Ip4Addr("192.0.2.10");
const uint32_t kDst = Ip4Addr("203.0.113.10");

// Golden frames: scapy 2.5, Ether(02:00:5e:00:00:01 <- 02:00:5e:00:00:02) / IP(id=0x1234,
// flags=DF, ttl=64) / ...
TEST_CASE("builder: UDP frame matches scapy byte for byte", "[builder]") {
  Bytes b = PacketBuilder().Ipv4(kSrc, kDst).Udp(40000, 7).Payload("hello").Build();
  CHECK(Hex(b) == Hex(FromHex("02005e00000102005e0000020800450000211234400040112a83c000020acb0071"
                              "0a9c400007000d21a568656c6c6f")));
  CHECK(ChecksumErrors(b) == "");
}

TEST_CASE("builder: TCP SYN with MSS option matches scapy byte for byte", "[builder]") {
  Bytes b = PacketBuilder().Ipv4(kSrc, kDst).Tcp(40000, 80, kTcpSyn).TcpMss(1460).Build();
  CHECK(Hex(b) == Hex(FromHex("02005e00000102005e00000208004500002c1234400040062a83c000020acb0071"
                              "0a9c400050000003e8000000006002faf0fea70000020405b4")));
  CHECK(ChecksumErrors(b) == "");
  std::optional<Frame> f = ParseFrame(b);
  REQUIRE(f);
  CHECK(f->tcp_mss == 1460);
  CHECK(f->tcp_flags == kTcpSyn);
}

TEST_CASE("builder: ICMP echo matches scapy byte for byte", "[builder]") {
  Bytes b = PacketBuilder().Ipv4(kSrc, kDst).IcmpEcho(0x77, 1).Payload("ping").Build();
  CHECK(Hex(b) == Hex(FromHex("02005e00000102005e0000020800450000201234400040012a94c000020acb0071"
                              "0a080018b70077000170696e67")));
  CHECK(ChecksumErrors(b) == "");
}

TEST_CASE("builder: softwire frame with Tunnel Encapsulation Limit matches scapy", "[builder]") {
  Bytes b = PacketBuilder()
                .Ipv6(Ip6Addr("2001:db8:100::2"), Ip6Addr("2001:db8:ffff::1"))
                .EncapLimit(4)
                .Ipv4(kSrc, kDst)
                .Udp(40000, 7)
                .Payload("hello")
                .Build();
  CHECK(Hex(b) == Hex(FromHex("02005e00000102005e00000286dd6000000000293c4020010db8010000000000"
                              "00000000000220010db8ffff0000000000000000000104000401040101004500"
                              "00211234400040112a83c000020acb00710a9c400007000d21a568656c6c6f")));
  std::optional<Frame> f = ParseFrame(b);
  REQUIRE(f);
  CHECK(f->has_ipv6);
  CHECK(f->ipv4_offset == 14 + 40 + 8);
  CHECK(ChecksumErrors(b) == "");
}

TEST_CASE("verifier: reports a wrong IPv4 header, UDP, TCP and ICMP checksum", "[builder]") {
  Bytes udp = PacketBuilder().Ipv4(kSrc, kDst).Udp(1, 2).Payload("abc").Build();
  Bytes bad = udp;
  bad[14 + 10] ^= 1;
  CHECK(ChecksumErrors(bad).find("ipv4 header") != std::string::npos);
  bad = udp;
  bad[14 + 20 + 6] ^= 1;
  CHECK(ChecksumErrors(bad).find("udp") != std::string::npos);
  // UDP checksum 0 means "none" and is valid; anything else must verify.
  CHECK(ChecksumErrors(PacketBuilder().Ipv4(kSrc, kDst).Udp(1, 2).UdpZeroChecksum().Build()) ==
        "");
  Bytes tcp = PacketBuilder().Ipv4(kSrc, kDst).Tcp(1, 2, kTcpAck).Build();
  tcp[14 + 20 + 2] ^= 0x80;  // port changed, checksum not
  CHECK(ChecksumErrors(tcp).find("tcp") != std::string::npos);
  Bytes icmp = PacketBuilder().Ipv4(kSrc, kDst).IcmpEcho(5, 6).Build();
  icmp[14 + 20 + 4] ^= 1;
  CHECK(ChecksumErrors(icmp).find("icmp") != std::string::npos);
}

}  // namespace
}  // namespace bpftest
