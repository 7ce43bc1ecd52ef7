// Test packets for the XDP program: a fluent builder (Ethernet, IPv6 softwire with optional
// Destination Options, IPv4, TCP/UDP/ICMP echo, all checksums computed from scratch), a
// decoder for output frames, and a checksum verifier for what the program sends back.
#ifndef AFTR_TESTS_BPF_PACKET_BUILDER_H_
#define AFTR_TESTS_BPF_PACKET_BUILDER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpftest {

using Bytes = std::vector<uint8_t>;
using Ip6 = std::array<uint8_t, 16>;
using Mac = std::array<uint8_t, 6>;

// Addresses from text. IPv4 addresses are kept in network byte order everywhere (as the
// __be32 fields of the ABI structs hold them).
Ip6 Ip6Addr(const char* text);
uint32_t Ip4Addr(const char* text);
std::string Ip4String(uint32_t be_addr);
std::string Ip6String(const Ip6& addr);

// Lower-case hex, 16 bytes per line with the offset: byte-exact comparisons print diffable.
std::string Hex(const Bytes& bytes);

// RFC 1071 one's complement sum folded to 16 bits (not inverted), continuing from `sum`.
uint32_t ChecksumAdd(const uint8_t* data, size_t len, uint32_t sum = 0);
uint16_t ChecksumFinish(uint32_t sum);  // fold and invert
// Sum of the IPv4 pseudo header of a TCP/UDP checksum (addresses in network order).
uint32_t Ipv4PseudoSum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoIpip = 4;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIpv6Frag = 44;
constexpr uint8_t kProtoGre = 47;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint8_t kProtoDstOpts = 60;

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;

constexpr uint16_t kIpv4DontFragment = 0x4000;
constexpr uint16_t kIpv4MoreFragments = 0x2000;

// Builds one frame. Layers are optional: without Ipv6() the frame is plain IPv4, without
// Ipv4() the IPv6 header carries RawIpv6Payload(), without either it carries Raw().
// Lengths and checksums are computed in Build(); tests corrupt the result afterwards.
class PacketBuilder {
 public:
  PacketBuilder& Eth(const Mac& dst, const Mac& src);
  PacketBuilder& EtherType(uint16_t type);  // overrides the type implied by the layers
  PacketBuilder& Raw(Bytes l3);             // bytes after the Ethernet header (e.g. ARP)

  PacketBuilder& Ipv6(const Ip6& src, const Ip6& dst);
  PacketBuilder& HopLimit(uint8_t hop_limit);
  // Destination Options header with these options, padded (Pad1/PadN) to 8 bytes.
  PacketBuilder& DstOpts(Bytes options);
  // RFC 2473 Tunnel Encapsulation Limit option (type 4, length 1), as Linux ip6tnl sends.
  PacketBuilder& EncapLimit(uint8_t limit = 4);
  // An IPv6 Fragment header in front of the payload (offset/M flag word as on the wire).
  PacketBuilder& Ipv6Fragment(uint16_t offset_flags, uint32_t id);
  // Upper layer other than IPv4 (ICMPv6, UDP...). For 17 and 58 the checksum is filled in.
  PacketBuilder& RawIpv6Payload(uint8_t next_header, Bytes payload);

  PacketBuilder& Ipv4(uint32_t src, uint32_t dst);
  PacketBuilder& Ttl(uint8_t ttl);
  PacketBuilder& Tos(uint8_t tos);
  PacketBuilder& Id(uint16_t id);
  PacketBuilder& FragOff(uint16_t flags_offset);  // default: DF only
  PacketBuilder& Ipv4Options(Bytes options);      // multiple of 4 bytes

  PacketBuilder& Udp(uint16_t sport, uint16_t dport);
  PacketBuilder& UdpZeroChecksum();  // "no checksum" (RFC 768)
  PacketBuilder& Tcp(uint16_t sport, uint16_t dport, uint8_t flags);
  PacketBuilder& TcpSeq(uint32_t seq, uint32_t ack);
  PacketBuilder& TcpMss(uint16_t mss);      // appends an MSS option
  PacketBuilder& TcpOptions(Bytes options); // appends raw options
  PacketBuilder& Icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq);
  PacketBuilder& IcmpEcho(uint16_t id, uint16_t seq) { return Icmp(8, 0, id, seq); }
  PacketBuilder& IcmpEchoReply(uint16_t id, uint16_t seq) { return Icmp(0, 0, id, seq); }
  PacketBuilder& Ipv4Payload(uint8_t protocol, Bytes l4);  // opaque upper layer (GRE...)
  PacketBuilder& Payload(Bytes payload);
  PacketBuilder& Payload(std::string_view payload);
  // Bytes after the IP packet that no length field covers (Ethernet minimum-size padding).
  PacketBuilder& Trailer(Bytes trailer);

  Bytes Build() const;

 private:
  enum class L4 { kNone, kUdp, kTcp, kIcmp, kRaw };

  Bytes BuildIpv4() const;
  Bytes BuildL4(uint32_t src, uint32_t dst) const;

  Mac eth_dst_{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01};
  Mac eth_src_{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02};
  std::optional<uint16_t> ether_type_;
  Bytes raw_l3_;

  bool has_ipv6_ = false;
  Ip6 ip6_src_{}, ip6_dst_{};
  uint8_t hop_limit_ = 64;
  std::optional<Bytes> dst_opts_;
  std::optional<std::pair<uint16_t, uint32_t>> frag6_;
  std::optional<std::pair<uint8_t, Bytes>> ip6_payload_;

  bool has_ipv4_ = false;
  uint32_t ip4_src_ = 0, ip4_dst_ = 0;
  uint8_t ttl_ = 64, tos_ = 0;
  uint16_t id_ = 0x1234, frag_off_ = kIpv4DontFragment;
  Bytes ip4_options_;

  L4 l4_ = L4::kNone;
  uint8_t raw_protocol_ = 0;
  uint16_t sport_ = 0, dport_ = 0;
  bool udp_zero_checksum_ = false;
  uint8_t tcp_flags_ = 0;
  uint32_t tcp_seq_ = 1000, tcp_ack_ = 0;
  Bytes tcp_options_;
  uint8_t icmp_type_ = 0, icmp_code_ = 0;
  Bytes payload_;
  Bytes trailer_;
};

// An output frame taken apart. Addresses in network order, ports and lengths in host order.
struct Frame {
  Mac eth_dst{}, eth_src{};
  uint16_t ether_type = 0;

  bool has_ipv6 = false;
  uint32_t ip6_first_word = 0;  // version, traffic class, flow label
  uint16_t ip6_payload_len = 0;
  uint8_t ip6_next_header = 0;
  uint8_t ip6_hop_limit = 0;
  Ip6 ip6_src{}, ip6_dst{};

  bool has_ipv4 = false;
  size_t ipv4_offset = 0;
  uint8_t ihl = 0, tos = 0, ttl = 0, protocol = 0;
  uint16_t tot_len = 0, id = 0, frag_off = 0, ip_check = 0;
  uint32_t src = 0, dst = 0;

  size_t l4_offset = 0;
  uint16_t sport = 0, dport = 0;  // TCP/UDP ports; for ICMP echo both hold the identifier
  uint16_t l4_check = 0;
  uint8_t tcp_flags = 0;
  std::optional<uint16_t> tcp_mss;
  uint8_t icmp_type = 0, icmp_code = 0;
  uint16_t icmp_id = 0, icmp_seq = 0;
};

// Decodes Ethernet / [IPv6 [+ Destination Options]] / IPv4 / L4. nullopt if it does not
// parse that far (a non-IP frame still yields the Ethernet fields).
std::optional<Frame> ParseFrame(const Bytes& frame);

// The IPv4 packet in `frame` (tunnelled or not): tot_len bytes from its header, as an ICMP
// error quotes it. Empty if the frame holds no whole IPv4 packet.
Bytes Ipv4Packet(const Bytes& frame);

// Verifies the IPv4 header checksum and the TCP/UDP (with pseudo header) or ICMP checksum
// of the IPv4 packet in `frame` (tunnelled or not). Returns "" when all are right, else
// what is wrong, for the test's failure message.
std::string ChecksumErrors(const Bytes& frame);

}  // namespace bpftest

#endif  // AFTR_TESTS_BPF_PACKET_BUILDER_H_
