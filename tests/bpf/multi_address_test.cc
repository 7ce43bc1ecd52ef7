// Configurations with more than one of a kind: several softwire (AFTR) addresses, several
// pool prefixes, and pools larger than the hashed probe, where the pool hint matters.
#include <arpa/inet.h>

#include <cstring>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

TEST_CASE("multi: replies leave from the softwire address the B4 sent to", "[multi]") {
  aftr_dp_config cfg = DefaultConfig();
  const Ip6 second = Ip6Addr("2001:db8:ffff::2");
  std::memcpy(cfg.softwire_addrs[1], second.data(), 16);
  cfg.softwire_addr_count = 2;
  Harness h(cfg);

  RunResult out = h.Run(PacketBuilder()
                            .Eth(Net().b4_local_mac, kB4RouterMac)
                            .Ipv6(kB4a, second)
                            .Ipv4(kInner, kRemote)
                            .Udp(kInnerPort, kRemotePort)
                            .Build());
  REQUIRE(VerdictName(out.verdict) == "XDP_REDIRECT");
  std::optional<Frame> o = ParseFrame(out.out);
  REQUIRE(o);
  Mapping m{o->src, o->sport};
  std::optional<aftr_session_in> in = h.SessionIn(InKey(m, kProtoUdp));
  REQUIRE(in);
  CHECK(in->softwire_index == 1);

  RunResult back = h.Run(FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Build());
  CHECK(VerdictName(back.verdict) == "XDP_REDIRECT");
  std::optional<Frame> b = ParseFrame(back.out);
  REQUIRE(b);
  CHECK(Ip6String(b->ip6_src) == "2001:db8:ffff::2");
  CHECK(Ip6String(b->ip6_dst) == Ip6String(kB4a));
  CHECK(ChecksumErrors(back.out) == "");

  // An address not configured (::3) is still not ours.
  RunResult other = h.Run(PacketBuilder()
                              .Ipv6(kB4a, Ip6Addr("2001:db8:ffff::3"))
                              .Ipv4(kInner, kRemote)
                              .Udp(kInnerPort, kRemotePort)
                              .Build());
  CHECK(VerdictName(other.verdict) == "XDP_PASS");
}

TEST_CASE("multi: every configured pool prefix is recognised, addresses between them are not",
          "[multi]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.pool_prefix_addr[0] = Ip4Addr("198.51.100.0");
  cfg.pool_prefix_mask[0] = Ip4Addr("255.255.255.254");
  cfg.pool_prefix_addr[1] = Ip4Addr("198.51.100.8");
  cfg.pool_prefix_mask[1] = Ip4Addr("255.255.255.254");
  cfg.pool_prefix_count = 2;
  cfg.pool_addr_count = 4;
  Harness h(cfg);
  REQUIRE(h.pool().size() == 4);
  CHECK(Ip4String(h.pool()[3]) == "198.51.100.9");

  CHECK(VerdictName(h.Run(FromInternet(kRemote, Ip4Addr("198.51.100.9")).Udp(7, 2000).Build())
                        .verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_NO_SESSION) == 1);
  Bytes between = FromInternet(kRemote, Ip4Addr("198.51.100.5")).Udp(7, 2000).Build();
  RunResult r = h.Run(between);
  CHECK(VerdictName(r.verdict) == "XDP_PASS");
  CHECK(Hex(r.out) == Hex(between));
  CHECK(h.Counter(AFTR_C_PASS_NOT_OURS) == 1);
}

// nat44_b4_hash of bpf/lib/nat44.h: where a B4's first-block probe starts.
uint32_t ProbeStart(const Ip6& b4, uint32_t count) {
  uint32_t w[4];
  std::memcpy(w, b4.data(), 16);
  uint32_t h = (w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1u;
  return (h ^ (h >> 15)) % count;
}

TEST_CASE("multi: a new subscriber finds a free address through the pool hint when every "
          "probed address is full",
          "[multi][blocks]") {
  // 16 addresses of a single block each; the probe covers 8 of them.
  aftr_dp_config cfg = ConfigWithPorts(1024, 1027, 4, 1);
  cfg.pool_prefix_mask[0] = Ip4Addr("255.255.255.240");
  cfg.pool_addr_count = 16;
  Harness h(cfg);
  const uint32_t start = ProbeStart(kB4a, 16);
  const uint32_t free_index = (start + 8) % 16;  // just past the probe
  for (uint32_t i = 0; i < 16; i++) {
    if (i == free_index) continue;
    aftr_ctl_args take{};
    take.op = AFTR_CTL_BLOCK_TAKE;
    take.addr_index = i;
    take.block = 0;
    REQUIRE(h.Ctl(take) == 1);
  }

  // The hint names a full address: exhausted, although one address is free.
  aftr_pool_hint hint{};
  hint.addr_index = (free_index + 1) % 16;
  h.SetPoolHint(hint);
  RunResult r = h.Run(FromB4(kB4a).Udp(kInnerPort, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_ADDRESS_EXHAUSTED) == 1);

  // aftrd's sweep points the hint at the free one.
  hint.addr_index = free_index;
  h.SetPoolHint(hint);
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  CHECK(Ip4String(m.addr) == Ip4String(h.pool()[free_index]));
  CHECK(h.Subscriber(kB4a)->addr_index == free_index);
}

}  // namespace
}  // namespace bpftest
