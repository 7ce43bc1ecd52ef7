// Shared test vocabulary: the documentation addresses every test uses, frames from a B4 and
// from the Internet, the frames the AFTR is expected to emit, and a one-call "translate this
// flow" for tests that need sessions to exist.
#ifndef AFTR_TESTS_BPF_FLOWS_H_
#define AFTR_TESTS_BPF_FLOWS_H_

#include <arpa/inet.h>
#include <linux/bpf.h>

#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "harness.h"
#include "packet_builder.h"

namespace bpftest {

inline const Ip6 kSoftwire = Ip6Addr("2001:db8:ffff::1");
inline const Ip6 kB4a = Ip6Addr("2001:db8:100::2");
inline const Ip6 kB4b = Ip6Addr("2001:db8:100::3");
inline const Ip6 kUnknownB4 = Ip6Addr("2001:db8:200::2");  // outside 2001:db8:100::/40
inline const uint32_t kInner = Ip4Addr("192.0.2.10");
inline const uint32_t kRemote = Ip4Addr("203.0.113.10");
inline const uint32_t kRemote2 = Ip4Addr("203.0.113.20");
inline const uint32_t kRemoteNoNeigh = Ip4Addr("203.0.113.200");  // gateway unresolved
inline const uint32_t kUnrouted = Ip4Addr("198.51.100.200");      // no route at all
inline const uint32_t kNotPool = Ip4Addr("198.51.100.4");         // just outside the /30
constexpr uint16_t kInnerPort = 40000;
constexpr uint16_t kRemotePort = 7;
constexpr Mac kB4RouterMac{0x02, 0x00, 0x5e, 0x00, 0xb4, 0x77};     // sends us B4 frames
constexpr Mac kInetRouterMac{0x02, 0x00, 0x5e, 0x00, 0x0e, 0x77};   // sends Internet frames

// Offsets in a frame from a B4 without extension headers.
constexpr size_t kIp6Off = 14;
constexpr size_t kInnerIp4Off = 14 + 40;
constexpr size_t kInnerL4Off = 14 + 40 + 20;
// Offsets in a plain IPv4 frame from the Internet.
constexpr size_t kIp4Off = 14;
constexpr size_t kL4Off = 14 + 20;

// A frame from B4 `b4` to the AFTR carrying IPv4 from `inner` to `remote`; add L4 to it.
inline PacketBuilder FromB4(const Ip6& b4, uint32_t inner = kInner, uint32_t remote = kRemote) {
  PacketBuilder b;
  b.Eth(Net().b4_local_mac, kB4RouterMac).Ipv6(b4, kSoftwire).Ipv4(inner, remote);
  return b;
}

// A frame from the Internet to public address `pub`.
inline PacketBuilder FromInternet(uint32_t remote, uint32_t pub) {
  PacketBuilder b;
  b.Eth(Net().inet_local_mac, kInetRouterMac).Ipv4(remote, pub);
  return b;
}

// What the AFTR sends to the Internet: resolved gateway's MAC, TTL one lower.
inline PacketBuilder ToInternet(uint32_t pub, uint32_t remote, uint8_t ttl = 63) {
  PacketBuilder b;
  b.Eth(Net().inet_gateway_mac, Net().inet_local_mac).Ipv4(pub, remote).Ttl(ttl);
  return b;
}

// What the AFTR sends to a B4: IPv6 from the softwire address, hop limit from the config.
inline PacketBuilder ToB4(const Ip6& b4, uint32_t remote, uint32_t inner = kInner,
                          uint8_t ttl = 63) {
  PacketBuilder b;
  b.Eth(Net().b4_gateway_mac, Net().b4_local_mac)
      .Ipv6(kSoftwire, b4)
      .HopLimit(64)
      .Ipv4(remote, inner)
      .Ttl(ttl);
  return b;
}

inline std::string VerdictName(int v) {
  switch (v) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
  }
  return "verdict " + std::to_string(v);
}

// A public mapping (address in network order, port in host order).
struct Mapping {
  uint32_t addr = 0;
  uint16_t port = 0;
  bool operator==(const Mapping& o) const { return addr == o.addr && port == o.port; }
  bool operator<(const Mapping& o) const {
    return addr != o.addr ? addr < o.addr : port < o.port;
  }
};

// Sends one outbound UDP datagram and returns the public address and port it left with.
inline Mapping TranslateUdp(Harness& h, const Ip6& b4, uint16_t inner_port,
                            uint32_t remote = kRemote, uint16_t remote_port = kRemotePort,
                            uint32_t inner = kInner) {
  RunResult r = h.Run(FromB4(b4, inner, remote).Udp(inner_port, remote_port).Payload("x").Build());
  INFO("counters: " << h.CounterString());
  REQUIRE(VerdictName(r.verdict) == VerdictName(XDP_REDIRECT));
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  REQUIRE(f->has_ipv4);
  return {f->src, f->sport};
}

inline aftr_session_out_key OutKey(const Ip6& b4, uint32_t inner, uint16_t port, uint8_t proto) {
  aftr_session_out_key k{};
  std::memcpy(k.b4, b4.data(), 16);
  k.inner_addr = inner;
  k.inner_port = htons(port);
  k.proto = proto;
  return k;
}

inline aftr_session_in_key InKey(const Mapping& m, uint8_t proto) {
  aftr_session_in_key k{};
  k.public_addr = m.addr;
  k.public_port = htons(m.port);
  k.proto = proto;
  return k;
}

inline Ip6 B4Of(const uint8_t (&b4)[16]) {
  Ip6 a;
  std::memcpy(a.data(), b4, 16);
  return a;
}

// The block index a public port lies in, given the configuration.
inline uint32_t BlockOf(const aftr_dp_config& c, uint16_t port) {
  return (port - c.port_min) / c.block_size;
}

inline bool BitSet(const aftr_pool_addr& pa, uint32_t block) {
  return (pa.used[block / 64] >> (block % 64)) & 1;
}

}  // namespace bpftest

#endif  // AFTR_TESTS_BPF_FLOWS_H_
