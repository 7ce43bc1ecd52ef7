// Deterministic NAT (RFC 7422 style) in the data plane: a B4 inside a configured range gets
// the address and ports its prefix computes to, without the pool and without block events;
// its full range drops like a dynamic subscriber's quota; replies reach it; dynamic
// subscribers never see its addresses.
#include <arpa/inet.h>

#include <set>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

const uint32_t kDetPool = Ip4Addr("198.51.100.64");  // /30, beside the harness pool's /30

// 2001:db8:100:a000::/52 in /60s: 256 subscribers of 512 ports (8 blocks of 64) each, 126 per
// address (1008 blocks / 8) over 198.51.100.64/30.
aftr_dp_config DetConfig() {
  aftr_dp_config c = DefaultConfig();
  AddDeterministicRange(&c, Ip6Addr("2001:db8:100:a000::"), 52, 60, kDetPool, 30, 512);
  return c;
}

uint32_t Addr(uint32_t host_order) { return htonl(host_order); }

TEST_CASE("deterministic: a subscriber's first packet gets exactly its computed address and "
          "port range, with no block from the pool and no block event",
          "[deterministic]") {
  Harness h(DetConfig());
  const Ip6 b4 = Ip6Addr("2001:db8:100:a000::1");  // subscriber 0
  std::set<uint16_t> ports;
  for (uint16_t i = 0; i < 40; i++) {
    Mapping m = TranslateUdp(h, b4, 30000 + i);
    CHECK(m.addr == kDetPool);
    CHECK(m.port >= 1024);
    CHECK(m.port <= 1535);
    ports.insert(m.port);
  }
  CHECK(ports.size() == 40);
  std::optional<aftr_subscriber> sub = h.Subscriber(b4);
  REQUIRE(sub);
  CHECK(sub->addr_index == AFTR_ADDR_INDEX_DETERMINISTIC);
  CHECK(sub->public_addr == kDetPool);
  CHECK(sub->n_blocks == 8);
  for (int i = 0; i < 8; i++) CHECK(sub->blocks[i] == i);
  CHECK(h.Counter(AFTR_C_SUBSCRIBER_CREATED) == 1);
  CHECK(h.Counter(AFTR_C_BLOCK_CLAIMED) == 0);
  for (const aftr_event& e : h.DrainEvents()) CHECK(e.type == AFTR_EV_SESSION_CREATE);
  for (uint32_t i = 0; i < h.pool().size(); i++) {
    for (uint32_t b = 0; b < h.config().blocks_per_addr; b++) CHECK_FALSE(BitSet(h.PoolAddr(i), b));
  }
}

TEST_CASE("deterministic: the next subscriber gets the next range, and ranges wrap to the next "
          "address after per_addr subscribers",
          "[deterministic]") {
  Harness h(DetConfig());
  struct Case {
    const char* b4;
    uint32_t addr;  // host order
    uint16_t first;
  };
  const Case cases[] = {
      {"2001:db8:100:a010::1", ntohl(kDetPool), 1536},          // subscriber 1
      {"2001:db8:100:a00f:ffff:ffff:ffff:ffff", ntohl(kDetPool), 1024},  // last address of 0
      {"2001:db8:100:a7d0::9", ntohl(kDetPool), 1024 + 125 * 512},  // 125: last on .64
      {"2001:db8:100:a7e0::9", ntohl(kDetPool) + 1, 1024},         // 126: first on .65
      {"2001:db8:100:aff0::", ntohl(kDetPool) + 2, 1024 + 3 * 512},  // 255, the last
  };
  for (const Case& c : cases) {
    INFO(c.b4);
    Mapping m = TranslateUdp(h, Ip6Addr(c.b4), 30000);
    CHECK(m.addr == Addr(c.addr));
    CHECK(m.port >= c.first);
    CHECK(m.port <= c.first + 511);
  }
  CHECK(h.Counter(AFTR_C_BLOCK_CLAIMED) == 0);
}

TEST_CASE("deterministic: a full range drops the next flow as ports exhausted, with the event",
          "[deterministic]") {
  // 32 blocks of 16 ports, one block per subscriber.
  aftr_dp_config c = ConfigWithPorts(1024, 1535, 16, 2);
  AddDeterministicRange(&c, Ip6Addr("2001:db8:100:a000::"), 52, 60, kDetPool, 30, 16);
  Harness h(c);
  const Ip6 b4 = Ip6Addr("2001:db8:100:a020::1");  // subscriber 2: ports 1056..1071
  std::set<uint16_t> ports;
  for (uint16_t i = 0; i < 16; i++) {
    Mapping m = TranslateUdp(h, b4, 30000 + i);
    CHECK(m.addr == kDetPool);
    ports.insert(m.port);
  }
  CHECK(ports.size() == 16);
  CHECK(*ports.begin() == 1056);
  CHECK(*ports.rbegin() == 1071);
  h.DrainEvents();
  RunResult r = h.Run(FromB4(b4).Udp(31000, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_PORTS_EXHAUSTED) == 1);
  CHECK(h.Counter(AFTR_C_DROP_ADDRESS_EXHAUSTED) == 0);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_PORTS_EXHAUSTED);
  CHECK(B4Of(ev[0].b4) == b4);
  CHECK(h.Subscriber(b4)->n_blocks == 1);
  CHECK(h.Subscriber(b4)->state_sessions == 16);  // the dropped flow's count given back
}

TEST_CASE("deterministic: dynamic subscribers keep the pool and never get a deterministic "
          "address",
          "[deterministic]") {
  Harness h(DetConfig());
  TranslateUdp(h, Ip6Addr("2001:db8:100:a000::1"), 30000);
  for (uint8_t i = 1; i <= 20; i++) {
    Ip6 b4 = Ip6Addr("2001:db8:100::");
    b4[15] = i;
    Mapping m = TranslateUdp(h, b4, 30000);
    CHECK((ntohl(m.addr) & ~3u) == ntohl(Ip4Addr("198.51.100.0")));
    CHECK(h.Subscriber(b4)->addr_index < h.pool().size());
  }
  CHECK(h.Counter(AFTR_C_BLOCK_CLAIMED) == 20);
  CHECK(h.Counter(AFTR_C_SUBSCRIBER_CREATED) == 21);
}

TEST_CASE("deterministic: replies to a deterministic address reach the right B4, unknown ports "
          "on it are ours to drop",
          "[deterministic]") {
  Harness h(DetConfig());
  const Ip6 b0 = Ip6Addr("2001:db8:100:a000::1");
  const Ip6 b1 = Ip6Addr("2001:db8:100:a010::1");
  Mapping m0 = TranslateUdp(h, b0, kInnerPort);
  Mapping m1 = TranslateUdp(h, b1, kInnerPort);
  RunResult r0 = h.Run(FromInternet(kRemote, m0.addr).Udp(kRemotePort, m0.port).Payload("0").Build());
  RunResult r1 = h.Run(FromInternet(kRemote, m1.addr).Udp(kRemotePort, m1.port).Payload("1").Build());
  CHECK(VerdictName(r0.verdict) == "XDP_REDIRECT");
  CHECK(Hex(r0.out) == Hex(ToB4(b0, kRemote).Udp(kRemotePort, kInnerPort).Payload("0").Build()));
  CHECK(Hex(r1.out) == Hex(ToB4(b1, kRemote).Udp(kRemotePort, kInnerPort).Payload("1").Build()));
  RunResult stray = h.Run(FromInternet(kRemote, Addr(ntohl(kDetPool) + 3)).Udp(kRemotePort, 5000).Build());
  CHECK(VerdictName(stray.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_NO_SESSION) == 1);
}

TEST_CASE("deterministic: aftr_ctl makes a deterministic subscriber before its first packet",
          "[deterministic]") {
  Harness h(DetConfig());
  aftr_ctl_args a{};
  a.op = AFTR_CTL_DET_SUBSCRIBER_CREATE;
  Ip6 b4 = Ip6Addr("2001:db8:100:a7e0::5");
  std::memcpy(a.b4, b4.data(), 16);
  a.last_seen_ns = 1;
  CHECK(h.Ctl(a) == 0);
  CHECK(h.Ctl(a) == 0);  // already there
  std::optional<aftr_subscriber> sub = h.Subscriber(b4);
  REQUIRE(sub);
  CHECK(sub->public_addr == Addr(ntohl(kDetPool) + 1));
  CHECK(sub->addr_index == AFTR_ADDR_INDEX_DETERMINISTIC);
  CHECK(sub->blocks[0] == 0);
  Ip6 dynamic = Ip6Addr("2001:db8:100::7");
  std::memcpy(a.b4, dynamic.data(), 16);
  CHECK(h.Ctl(a) == 1);
  CHECK_FALSE(h.Subscriber(dynamic));
  Mapping m = TranslateUdp(h, b4, 30000);
  CHECK(m.addr == sub->public_addr);
  CHECK(m.port < 1024 + 512);
}

}  // namespace
}  // namespace bpftest
