// Subscribers and their resources: per-B4 sessions, paired pooling, port blocks claimed in
// XDP, the per-subscriber and table limits, and the events each limit raises.
#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

TEST_CASE("subscribers: two B4s with the same inner address and port get separate sessions "
          "and replies reach the right B4",
          "[subscriber]") {
  Harness h;
  Mapping a = TranslateUdp(h, kB4a, kInnerPort);
  Mapping b = TranslateUdp(h, kB4b, kInnerPort);
  CHECK_FALSE(a == b);
  CHECK(h.SubscriberCount() == 2);
  CHECK(h.SessionsOut().size() == 2);
  CHECK(h.SessionsIn().size() == 2);
  CHECK(h.Subscriber(kB4a)->state_sessions == 1);
  CHECK(h.Subscriber(kB4b)->state_sessions == 1);
  std::optional<aftr_session_out> sa = h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp));
  std::optional<aftr_session_out> sb = h.SessionOut(OutKey(kB4b, kInner, kInnerPort, kProtoUdp));
  REQUIRE(sa);
  REQUIRE(sb);
  CHECK(ntohs(sa->public_port) == a.port);
  CHECK(ntohs(sb->public_port) == b.port);

  RunResult ra = h.Run(FromInternet(kRemote, a.addr).Udp(kRemotePort, a.port).Payload("A").Build());
  RunResult rb = h.Run(FromInternet(kRemote, b.addr).Udp(kRemotePort, b.port).Payload("B").Build());
  CHECK(VerdictName(ra.verdict) == "XDP_REDIRECT");
  CHECK(VerdictName(rb.verdict) == "XDP_REDIRECT");
  CHECK(Hex(ra.out) == Hex(ToB4(kB4a, kRemote).Udp(kRemotePort, kInnerPort).Payload("A").Build()));
  CHECK(Hex(rb.out) == Hex(ToB4(kB4b, kRemote).Udp(kRemotePort, kInnerPort).Payload("B").Build()));
}

TEST_CASE("subscribers: paired pooling puts all of a subscriber's sessions on one public "
          "address, across protocols and inner hosts",
          "[subscriber]") {
  Harness h;
  std::set<uint32_t> addrs;
  std::set<Mapping> mappings;
  for (uint16_t i = 0; i < 40; i++) {
    uint32_t inner = htonl(ntohl(kInner) + i % 4);  // several hosts behind one B4
    Mapping m = TranslateUdp(h, kB4a, 30000 + i, kRemote, kRemotePort, inner);
    addrs.insert(m.addr);
    mappings.insert(m);
  }
  RunResult tcp = h.Run(FromB4(kB4a).Tcp(555, 80, kTcpSyn).Build());
  RunResult icmp = h.Run(FromB4(kB4a).IcmpEcho(555, 1).Build());
  addrs.insert(ParseFrame(tcp.out)->src);
  addrs.insert(ParseFrame(icmp.out)->src);
  CHECK(addrs.size() == 1);
  CHECK(*addrs.begin() == h.Subscriber(kB4a)->public_addr);
  CHECK(mappings.size() == 40);  // distinct ports
  for (const auto& [key, value] : h.SessionsOut()) CHECK(value.public_addr == *addrs.begin());
}

TEST_CASE("subscribers: a B4 outside the configured prefixes is dropped and leaves no state",
          "[subscriber]") {
  Harness h;
  Bytes frame = FromB4(kUnknownB4).Udp(kInnerPort, kRemotePort).Build();
  RunResult r = h.Run(frame);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.CounterString() == "rx_packets=1 drop_unknown_b4=1");
  CHECK(Hex(r.out) == Hex(frame));
  CHECK(h.SubscriberCount() == 0);
  CHECK(h.SessionsOut().empty());
  CHECK(h.SessionsIn().empty());
  CHECK(h.DrainEvents().empty());
  for (uint32_t i = 0; i < h.pool().size(); i++) {
    size_t used = 0;
    for (uint32_t b = 0; b < h.config().blocks_per_addr; b++) used += BitSet(h.PoolAddr(i), b);
    CHECK(used == 0);  // no block claimed
  }
}

// 4 ports per block, 16 blocks per address, 2 blocks per subscriber: 8 sessions fit.
TEST_CASE("subscribers: with both blocks full the next flow is dropped as ports exhausted and "
          "every port handed out lies in the subscriber's blocks",
          "[subscriber][blocks]") {
  Harness h(ConfigWithPorts(1024, 1024 + 4 * 16 - 1, 4, 2));
  REQUIRE(h.config().blocks_per_addr == 16);
  std::vector<Mapping> mappings;
  for (uint16_t i = 0; i < 8; i++) mappings.push_back(TranslateUdp(h, kB4a, 40000 + i));

  std::optional<aftr_subscriber> sub = h.Subscriber(kB4a);
  REQUIRE(sub);
  CHECK(sub->n_blocks == 2);
  CHECK(sub->state_sessions == 8);
  CHECK(sub->blocks[0] != sub->blocks[1]);
  CHECK(sub->blocks[0] < 16);
  CHECK(sub->blocks[1] < 16);
  for (int i = 2; i < AFTR_MAX_BLOCKS_PER_SUB; i++) CHECK(sub->blocks[i] == AFTR_BLOCK_SLOT_EMPTY);
  aftr_pool_addr pa = h.PoolAddr(sub->addr_index);
  CHECK(BitSet(pa, sub->blocks[0]));
  CHECK(BitSet(pa, sub->blocks[1]));

  std::set<uint16_t> ports;
  for (const Mapping& m : mappings) {
    INFO("port " << m.port << " blocks " << sub->blocks[0] << "," << sub->blocks[1]);
    CHECK(m.addr == sub->public_addr);
    uint32_t block = BlockOf(h.config(), m.port);
    CHECK((block == sub->blocks[0] || block == sub->blocks[1]));
    ports.insert(m.port);
  }
  CHECK(ports.size() == 8);

  // Events: block, 4 sessions, second block (same address, first port of the block), 4 more.
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 10);
  CHECK(ev[0].type == AFTR_EV_BLOCK_CLAIMED);
  CHECK(ntohs(ev[0].public_port) == 1024 + 4 * sub->blocks[0]);
  for (int i = 1; i <= 4; i++) CHECK(ev[i].type == AFTR_EV_SESSION_CREATE);
  CHECK(ev[5].type == AFTR_EV_BLOCK_CLAIMED);
  CHECK(ev[5].public_addr == sub->public_addr);
  CHECK(ntohs(ev[5].public_port) == 1024 + 4 * sub->blocks[1]);
  CHECK(ev[5].block_size == 4);
  for (int i = 6; i <= 9; i++) CHECK(ev[i].type == AFTR_EV_SESSION_CREATE);
  CHECK(h.Counter(AFTR_C_BLOCK_CLAIMED) == 2);

  // The ninth flow.
  Bytes ninth = FromB4(kB4a).Udp(40008, kRemotePort).Build();
  RunResult r = h.Run(ninth);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_PORTS_EXHAUSTED) == 1);
  CHECK(h.Counter(AFTR_C_SESSION_CREATED) == 8);
  CHECK(h.Counter(AFTR_C_BLOCK_CLAIMED) == 2);
  ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_PORTS_EXHAUSTED);
  CHECK(Ip6String(B4Of(ev[0].b4)) == Ip6String(kB4a));
  CHECK(ev[0].proto == kProtoUdp);
  CHECK(ev[0].inner_addr == kInner);
  CHECK(ntohs(ev[0].inner_port) == 40008);
  CHECK(h.Subscriber(kB4a)->state_sessions == 8);  // the failed try was given back
  CHECK(h.Subscriber(kB4a)->n_blocks == 2);
  CHECK(h.SessionsOut().size() == 8);
  CHECK(h.SessionsIn().size() == 8);

  // Established flows keep working.
  CHECK(TranslateUdp(h, kB4a, 40003) == mappings[3]);
}

TEST_CASE("subscribers: when no pool address has a free block a new B4 is dropped as "
          "address exhausted",
          "[subscriber][blocks]") {
  // One address with two blocks of 4 ports, one block per subscriber.
  aftr_dp_config cfg = ConfigWithPorts(1024, 1031, 4, 1);
  cfg.pool_addr_count = 1;
  Harness h(cfg);
  TranslateUdp(h, kB4a, kInnerPort);
  TranslateUdp(h, kB4b, kInnerPort);
  h.DrainEvents();
  const Ip6 third = Ip6Addr("2001:db8:100::4");
  RunResult r = h.Run(FromB4(third).Udp(kInnerPort, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_ADDRESS_EXHAUSTED) == 1);
  CHECK_FALSE(h.Subscriber(third));
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_ADDRESS_EXHAUSTED);
  CHECK(Ip6String(B4Of(ev[0].b4)) == Ip6String(third));
}

TEST_CASE("subscribers: a subscriber whose address has no free block left gets a ports "
          "exhausted event naming that address",
          "[subscriber][blocks]") {
  // One address with two blocks of 4 ports, two blocks per subscriber allowed: each of two
  // subscribers takes one, so the first has no second block to grow into.
  aftr_dp_config cfg = ConfigWithPorts(1024, 1031, 4, 2);
  cfg.pool_addr_count = 1;
  Harness h(cfg);
  std::vector<Mapping> mappings;
  for (uint16_t i = 0; i < 4; i++) mappings.push_back(TranslateUdp(h, kB4a, 40000 + i));
  TranslateUdp(h, kB4b, kInnerPort);
  REQUIRE(h.Subscriber(kB4a)->n_blocks == 1);
  REQUIRE(h.Subscriber(kB4b)->n_blocks == 1);
  h.DrainEvents();

  RunResult r = h.Run(FromB4(kB4a).Udp(40004, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_ADDRESS_EXHAUSTED) == 1);
  CHECK(h.Counter(AFTR_C_DROP_PORTS_EXHAUSTED) == 0);
  CHECK(h.Subscriber(kB4a)->n_blocks == 1);
  CHECK(h.Subscriber(kB4a)->state_sessions == 4);  // the failed try was given back
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_ADDRESS_PORTS_EXHAUSTED);
  CHECK(Ip6String(B4Of(ev[0].b4)) == Ip6String(kB4a));
  CHECK(Ip4String(ev[0].public_addr) == Ip4String(h.pool()[0]));
  CHECK(ev[0].public_addr == mappings[0].addr);
  CHECK(ev[0].proto == kProtoUdp);
  CHECK(ev[0].inner_addr == kInner);
  CHECK(ntohs(ev[0].inner_port) == 40004);
  CHECK(ev[0].public_port == 0);
  CHECK(ev[0].block_size == 0);

  // Once the other subscriber's block comes free the first one grows into it.
  aftr_ctl_args rel{};
  rel.op = AFTR_CTL_BLOCK_RELEASE;
  std::memcpy(rel.b4, kB4b.data(), 16);
  rel.block = h.Subscriber(kB4b)->blocks[0];
  REQUIRE(h.Ctl(rel) == 1);
  Mapping grown = TranslateUdp(h, kB4a, 40004);
  CHECK(grown.addr == mappings[0].addr);
  CHECK(h.Subscriber(kB4a)->n_blocks == 2);
}

TEST_CASE("subscribers: a new subscriber never lands on a draining pool address",
          "[subscriber][blocks]") {
  Harness h;
  for (uint32_t i = 0; i < 3; i++) {
    aftr_pool_addr pa = h.PoolAddr(i);
    pa.flags = AFTR_POOL_ADDR_DRAINING;
    h.SetPoolAddr(i, pa);
  }
  for (const Ip6& b4 : {kB4a, kB4b, Ip6Addr("2001:db8:100::4"), Ip6Addr("2001:db8:1ff::9")}) {
    Mapping m = TranslateUdp(h, b4, kInnerPort);
    CHECK(Ip4String(m.addr) == Ip4String(h.pool()[3]));
    CHECK(h.Subscriber(b4)->addr_index == 3);
  }
}

TEST_CASE("subscribers: a subscriber on a draining address gets no further block, while its "
          "sessions on it go on both ways",
          "[subscriber][blocks][draining]") {
  aftr_dp_config cfg = ConfigWithPorts(1024, 1024 + 4 * 16 - 1, 4, 2);  // 4 ports a block
  Harness h(cfg);
  std::vector<Mapping> mappings;
  for (uint16_t i = 0; i < 4; i++) mappings.push_back(TranslateUdp(h, kB4a, 40000 + i));
  const uint32_t index = h.Subscriber(kB4a)->addr_index;
  REQUIRE(h.Subscriber(kB4a)->n_blocks == 1);
  aftr_pool_addr pa = h.PoolAddr(index);
  pa.flags = AFTR_POOL_ADDR_DRAINING;
  h.SetPoolAddr(index, pa);
  h.DrainEvents();

  // Its one block is full and it may hold two: on a draining address it gets none.
  RunResult r = h.Run(FromB4(kB4a).Udp(40004, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_ADDRESS_EXHAUSTED) == 1);
  CHECK(h.Counter(AFTR_C_BLOCK_CLAIMED) == 1);
  CHECK(h.Subscriber(kB4a)->n_blocks == 1);
  CHECK(h.Subscriber(kB4a)->state_sessions == 4);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  // Its address gives no more ports: "ports exhausted" for that address.
  CHECK(ev[0].type == AFTR_EV_ADDRESS_PORTS_EXHAUSTED);
  CHECK(ev[0].public_addr == h.Subscriber(kB4a)->public_addr);
  size_t used = 0;
  for (uint32_t b = 0; b < h.config().blocks_per_addr; b++) used += BitSet(h.PoolAddr(index), b);
  CHECK(used == 1);

  // What it has keeps working, out and in.
  CHECK(TranslateUdp(h, kB4a, 40002) == mappings[2]);
  RunResult in = h.Run(FromInternet(kRemote, mappings[2].addr).Udp(kRemotePort, mappings[2].port).Build());
  CHECK(VerdictName(in.verdict) == "XDP_REDIRECT");
  // Undrained, it may grow again.
  pa = h.PoolAddr(index);
  pa.flags = 0;
  h.SetPoolAddr(index, pa);
  Mapping more = TranslateUdp(h, kB4a, 40004);
  CHECK(more.addr == mappings[0].addr);
  CHECK(h.Subscriber(kB4a)->n_blocks == 2);
}

TEST_CASE("subscribers: blocks taken by aftrd are never handed out by XDP",
          "[subscriber][blocks]") {
  aftr_dp_config cfg = ConfigWithPorts(1024, 1024 + 4 * 16 - 1, 4, 2);
  cfg.pool_addr_count = 1;
  Harness h(cfg);
  for (uint32_t b = 0; b < 16; b++) {
    if (b == 11) continue;
    aftr_ctl_args take{};
    take.op = AFTR_CTL_BLOCK_TAKE;
    take.addr_index = 0;
    take.block = b;
    REQUIRE(h.Ctl(take) == 1);
  }
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  CHECK(BlockOf(h.config(), m.port) == 11);
  CHECK(h.Subscriber(kB4a)->blocks[0] == 11);
}

TEST_CASE("subscribers: the session limit per subscriber drops the next new flow with an "
          "event while established flows go on",
          "[subscriber][limits]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.max_sessions_per_sub = 3;
  Harness h(cfg);
  Mapping first = TranslateUdp(h, kB4a, 40000);
  TranslateUdp(h, kB4a, 40001);
  TranslateUdp(h, kB4a, 40002);
  h.DrainEvents();

  RunResult r = h.Run(FromB4(kB4a).Udp(40003, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_SESSION_LIMIT) == 1);
  CHECK(h.Counter(AFTR_C_SESSION_CREATED) == 3);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_SESSION_LIMIT);
  CHECK(Ip6String(B4Of(ev[0].b4)) == Ip6String(kB4a));
  CHECK(ntohs(ev[0].inner_port) == 40003);
  CHECK(ev[0].proto == kProtoUdp);
  CHECK(h.Subscriber(kB4a)->state_sessions == 3);
  CHECK(h.SessionsIn().size() == 3);

  CHECK(TranslateUdp(h, kB4a, 40000) == first);
  // Another subscriber has its own budget.
  TranslateUdp(h, kB4b, 40003);
}

TEST_CASE("subscribers: a full subscriber-side session table drops the flow with an event and "
          "rolls back its Internet-side entry",
          "[subscriber][limits]") {
  MapSizes sizes;
  sizes.sessions_out = 4;
  sizes.sessions_in = 8;  // room left, so the Internet-side insert succeeds first
  Harness h(DefaultConfig(), sizes);
  for (uint16_t i = 0; i < 4; i++) TranslateUdp(h, kB4a, 40000 + i);
  h.DrainEvents();

  Bytes fifth = FromB4(kB4a).Udp(40004, kRemotePort).Build();
  RunResult r = h.Run(fifth);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_SESSION_TABLE_FULL) == 1);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_SESSION_TABLE_FULL);
  CHECK(ntohs(ev[0].inner_port) == 40004);
  // No orphan: every Internet-side entry has its subscriber-side twin.
  CHECK(h.SessionsIn().size() == 4);
  for (const auto& [ik, iv] : h.SessionsIn()) {
    std::optional<aftr_session_out> o =
        h.SessionOut(OutKey(B4Of(iv.b4), iv.inner_addr, ntohs(iv.inner_port), ik.proto));
    REQUIRE(o);
    CHECK(o->public_addr == ik.public_addr);
    CHECK(o->public_port == ik.public_port);
  }
  CHECK(h.Subscriber(kB4a)->state_sessions == 4);
}

TEST_CASE("subscribers: a full Internet-side session table drops the flow with an event",
          "[subscriber][limits]") {
  MapSizes sizes;
  sizes.sessions_out = 4;
  sizes.sessions_in = 4;
  Harness h(DefaultConfig(), sizes);
  for (uint16_t i = 0; i < 4; i++) TranslateUdp(h, kB4a, 40000 + i);
  h.DrainEvents();
  RunResult r = h.Run(FromB4(kB4a).Udp(40004, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_SESSION_TABLE_FULL) == 1);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_SESSION_TABLE_FULL);
  CHECK(h.Subscriber(kB4a)->state_sessions == 4);
  CHECK(h.SessionsIn().size() == 4);
}

TEST_CASE("subscribers: a full subscriber table drops a new B4 with an event and gives its "
          "block back",
          "[subscriber][limits]") {
  MapSizes sizes;
  sizes.subscribers = 1;
  Harness h(DefaultConfig(), sizes);
  TranslateUdp(h, kB4a, kInnerPort);
  h.DrainEvents();
  RunResult r = h.Run(FromB4(kB4b).Udp(kInnerPort, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_SUBSCRIBER_TABLE_FULL) == 1);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].type == AFTR_EV_SUBSCRIBER_TABLE_FULL);
  CHECK(Ip6String(B4Of(ev[0].b4)) == Ip6String(kB4b));
  // Only kB4a's block is still marked used.
  size_t used = 0;
  for (uint32_t i = 0; i < h.pool().size(); i++)
    for (uint32_t b = 0; b < h.config().blocks_per_addr; b++) used += BitSet(h.PoolAddr(i), b);
  CHECK(used == 1);
}

}  // namespace
}  // namespace bpftest
