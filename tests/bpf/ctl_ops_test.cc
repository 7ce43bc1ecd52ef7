// The aftr_ctl ops aftrd uses for static mappings, block release, expiry and pool changes,
// each one program run; and what the data plane makes of their results (static sessions
// pass address-dependent filtering, released slots are skipped and reused).
#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

aftr_ctl_args SessionArgs(uint32_t op, const Ip6& b4, uint16_t inner_port,
                          uint8_t proto = kProtoUdp, uint32_t inner = kInner) {
  aftr_ctl_args a{};
  a.op = op;
  std::memcpy(a.b4, b4.data(), 16);
  a.inner_addr = inner;
  a.inner_port = htons(inner_port);
  a.proto = proto;
  return a;
}

// SESSION_CREATE of a static session on (addr, port).
aftr_ctl_args CreateArgs(const Ip6& b4, uint16_t inner_port, uint32_t addr, uint16_t port,
                         uint8_t proto = kProtoUdp) {
  aftr_ctl_args a = SessionArgs(AFTR_CTL_SESSION_CREATE, b4, inner_port, proto);
  a.public_addr = addr;
  a.public_port = htons(port);
  a.flags = AFTR_SESSION_STATIC;
  a.last_seen_ns = NowNs();
  return a;
}

aftr_ctl_args SubArgs(uint32_t op, const Ip6& b4, uint32_t addr_index, uint32_t block) {
  aftr_ctl_args a{};
  a.op = op;
  std::memcpy(a.b4, b4.data(), 16);
  a.addr_index = addr_index;
  a.block = block;
  a.last_seen_ns = NowNs();
  return a;
}

aftr_ctl_args PoolFlags(uint32_t addr_index, uint32_t flags) {
  aftr_ctl_args a{};
  a.op = AFTR_CTL_POOL_FLAGS;
  a.addr_index = addr_index;
  a.count = flags;
  return a;
}

uint32_t Sessions(const Harness& h, const Ip6& b4) {
  return static_cast<uint32_t>(h.Subscriber(b4)->state_sessions);
}

uint16_t PortOfBlock(const aftr_dp_config& c, uint32_t block, uint32_t i = 0) {
  return c.port_min + block * c.block_size + i;
}

TEST_CASE("ctl: SESSION_DELETE removes both entries and one from the count, and refuses "
          "what it was told not to delete",
          "[ctl][session]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  TranslateUdp(h, kB4a, kInnerPort + 1);
  REQUIRE(Sessions(h, kB4a) == 2);

  aftr_ctl_args del = SessionArgs(AFTR_CTL_SESSION_DELETE, kB4a, kInnerPort);
  SECTION("another public port: -ESRCH") {
    del.public_port = htons(m.port + 1);
    CHECK(h.Ctl(del) == -ESRCH);
  }
  SECTION("traffic after the caller's snapshot: -EBUSY") {
    del.last_seen_ns = 1;
    CHECK(h.Ctl(del) == -EBUSY);
  }
  SECTION("a static session with DYNAMIC_ONLY: -EPERM; without: deleted") {
    aftr_ctl_args flag = SessionArgs(AFTR_CTL_SESSION_FLAGS, kB4a, kInnerPort);
    flag.flags = AFTR_SESSION_STATIC;
    REQUIRE(h.Ctl(flag) == 1);
    CHECK(h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp))->flags == AFTR_SESSION_STATIC);
    CHECK(h.SessionIn(InKey(m, kProtoUdp))->tcp_flags == AFTR_SESSION_STATIC);
    del.ctl_flags = AFTR_CTL_F_DYNAMIC_ONLY;
    CHECK(h.Ctl(del) == -EPERM);
    del.ctl_flags = 0;
    CHECK(h.Ctl(del) == 1);
  }
  SECTION("the matching port and an old snapshot: deleted") {
    del.public_addr = m.addr;
    del.public_port = htons(m.port);
    del.last_seen_ns = NowNs() + 1000000000ull;
    CHECK(h.Ctl(del) == 1);
  }
  if (!h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp))) {
    CHECK_FALSE(h.SessionIn(InKey(m, kProtoUdp)));
    CHECK(Sessions(h, kB4a) == 1);
    CHECK(h.SessionsOut().size() == 1);
    CHECK(h.SessionsIn().size() == 1);
    CHECK(h.Ctl(SessionArgs(AFTR_CTL_SESSION_DELETE, kB4a, kInnerPort)) == -ENOENT);
  } else {
    CHECK(Sessions(h, kB4a) == 2);
    CHECK(h.SessionsIn().size() == 2);
  }
}

TEST_CASE("ctl: SESSION_CREATE makes a static session only on a free port of the subscriber's "
          "own blocks, and the data plane translates it both ways",
          "[ctl][session][static]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.max_sessions_per_sub = 3;
  Harness h(cfg);
  Mapping dyn = TranslateUdp(h, kB4a, kInnerPort);
  aftr_subscriber sub = *h.Subscriber(kB4a);
  const uint32_t block = sub.blocks[0];
  // Three ports of its block that the dynamic session does not hold.
  uint16_t port = PortOfBlock(h.config(), block, 7);
  if (dyn.port >= port && dyn.port <= port + 2) port = PortOfBlock(h.config(), block, 20);

  CHECK(h.Ctl(CreateArgs(kB4a, 80, sub.public_addr, PortOfBlock(h.config(), block + 1))) == -ENXIO);
  CHECK(h.Ctl(CreateArgs(kB4a, 80, h.pool()[(sub.addr_index + 1) % 4], port)) == -ENXIO);
  CHECK(h.Ctl(CreateArgs(kB4b, 80, sub.public_addr, port)) == -ENOENT);  // no subscriber
  CHECK(h.Ctl(CreateArgs(kB4a, 80, sub.public_addr, dyn.port)) == -EADDRINUSE);
  CHECK(h.Ctl(CreateArgs(kB4a, kInnerPort, sub.public_addr, port)) == -EEXIST);
  CHECK(Sessions(h, kB4a) == 1);  // the refused tries were given back
  CHECK(h.SessionsIn().size() == 1);

  REQUIRE(h.Ctl(CreateArgs(kB4a, 80, sub.public_addr, port)) == 1);
  CHECK(Sessions(h, kB4a) == 2);
  std::optional<aftr_session_out> out = h.SessionOut(OutKey(kB4a, kInner, 80, kProtoUdp));
  REQUIRE(out);
  CHECK(out->flags == AFTR_SESSION_STATIC);
  CHECK(ntohs(out->public_port) == port);
  Mapping st{sub.public_addr, port};
  CHECK(h.SessionIn(InKey(st, kProtoUdp))->tcp_flags == AFTR_SESSION_STATIC);

  // Inbound first (a port forward), then the inner host's replies leave on the mapping.
  RunResult in = h.Run(FromInternet(kRemote2, st.addr).Udp(5555, port).Payload("hi").Build());
  CHECK(VerdictName(in.verdict) == "XDP_REDIRECT");
  CHECK(Hex(in.out) == Hex(ToB4(kB4a, kRemote2).Udp(5555, 80).Payload("hi").Build()));
  CHECK(TranslateUdp(h, kB4a, 80, kRemote2, 5555) == st);
  CHECK(h.DrainEvents().size() == 2);  // BA and SC of the dynamic session only

  // Limits: the session quota, and a retired subscriber.
  REQUIRE(h.Ctl(CreateArgs(kB4a, 81, sub.public_addr, port + 1)) == 1);
  CHECK(h.Ctl(CreateArgs(kB4a, 82, sub.public_addr, port + 2)) == -EDQUOT);
  aftr_ctl_args sub3 = SessionArgs(AFTR_CTL_SESSIONS_SUB, kB4a, 0);
  sub3.count = 3;
  REQUIRE(h.Ctl(sub3) == 1);
  aftr_ctl_args retire = SessionArgs(AFTR_CTL_RETIRE, kB4a, 0);
  REQUIRE(h.Ctl(retire) == 1);
  CHECK(h.Ctl(CreateArgs(kB4a, 82, sub.public_addr, port + 2)) == -ESTALE);
}

TEST_CASE("ctl: a static session is reachable from any peer under address-dependent "
          "filtering, a dynamic one only from peers it has sent to",
          "[ctl][static][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  // A subscriber made by aftrd, and a port forward on it: no packet has left yet, so no
  // filter entry exists for it.
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4a, 2, 10)) == 1);
  uint32_t addr = h.pool()[2];
  uint16_t port = PortOfBlock(h.config(), 10, 3);
  REQUIRE(h.Ctl(CreateArgs(kB4a, 8080, addr, port, kProtoTcp)) == 1);
  CHECK(h.FilterPeerCount() == 0);

  RunResult syn = h.Run(FromInternet(kRemote2, addr).Tcp(40001, port, kTcpSyn).Build());
  CHECK(VerdictName(syn.verdict) == "XDP_REDIRECT");
  std::optional<Frame> f = ParseFrame(syn.out);
  REQUIRE(f);
  CHECK(Ip6String(f->ip6_dst) == Ip6String(kB4a));
  CHECK(f->dport == 8080);
  CHECK(ChecksumErrors(syn.out) == "");
  CHECK(h.Counter(AFTR_C_DROP_FILTERED) == 0);

  // A dynamic session of the same subscriber that sent to kRemote only.
  Mapping dyn = TranslateUdp(h, kB4a, kInnerPort, kRemote);
  RunResult stranger = h.Run(FromInternet(kRemote2, dyn.addr).Udp(7, dyn.port).Build());
  CHECK(VerdictName(stranger.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_FILTERED) == 1);

  // Flagging the dynamic session static opens it to everyone.
  aftr_ctl_args flag = SessionArgs(AFTR_CTL_SESSION_FLAGS, kB4a, kInnerPort);
  flag.flags = AFTR_SESSION_STATIC;
  REQUIRE(h.Ctl(flag) == 1);
  RunResult now = h.Run(FromInternet(kRemote2, dyn.addr).Udp(7, dyn.port).Build());
  CHECK(VerdictName(now.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_DROP_FILTERED) == 1);
}

TEST_CASE("ctl: SUBSCRIBER_CREATE takes the block and inserts the subscriber in one run",
          "[ctl][subscriber]") {
  Harness h;
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4b, 1, 5)) == 1);
  std::optional<aftr_subscriber> sub = h.Subscriber(kB4b);
  REQUIRE(sub);
  CHECK(sub->state_sessions == 0);
  CHECK(sub->addr_index == 1);
  CHECK(sub->public_addr == h.pool()[1]);
  CHECK(sub->n_blocks == 1);
  CHECK(sub->blocks[0] == 5);
  for (int i = 1; i < AFTR_MAX_BLOCKS_PER_SUB; i++) CHECK(sub->blocks[i] == AFTR_BLOCK_SLOT_EMPTY);
  CHECK(BitSet(h.PoolAddr(1), 5));

  CHECK(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4b, 1, 6)) == -EEXIST);
  CHECK_FALSE(BitSet(h.PoolAddr(1), 6));  // nothing taken for the refused create
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4a, 1, 5)) == -EBUSY);
  CHECK_FALSE(h.Subscriber(kB4a));
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4a, 4, 5)) == -EINVAL);  // no such index
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4a, 1, h.config().blocks_per_addr)) == -EINVAL);
  REQUIRE(h.Ctl(PoolFlags(3, AFTR_POOL_ADDR_DRAINING)) == 1);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4a, 3, 5)) == -EADDRNOTAVAIL);
  CHECK_FALSE(BitSet(h.PoolAddr(3), 5));

  // The data plane uses what aftrd made.
  Mapping m = TranslateUdp(h, kB4b, kInnerPort);
  CHECK(m.addr == h.pool()[1]);
  CHECK(BlockOf(h.config(), m.port) == 5);
  CHECK(h.Subscriber(kB4b)->state_sessions == 1);
}

TEST_CASE("ctl: POOL_FLAGS changes the flags of one pool address and nothing else", "[ctl][pool]") {
  Harness h;
  TranslateUdp(h, kB4a, kInnerPort);
  uint32_t index = h.Subscriber(kB4a)->addr_index;
  aftr_pool_addr before = h.PoolAddr(index);
  REQUIRE(h.Ctl(PoolFlags(index, AFTR_POOL_ADDR_DRAINING)) == 1);
  aftr_pool_addr after = h.PoolAddr(index);
  CHECK(after.flags == AFTR_POOL_ADDR_DRAINING);
  CHECK(after.addr == before.addr);
  CHECK(std::memcmp(after.used, before.used, sizeof(before.used)) == 0);
  REQUIRE(h.Ctl(PoolFlags(index, 0)) == 1);
  CHECK(h.PoolAddr(index).flags == 0);
  CHECK(h.Ctl(PoolFlags(4, 0)) == -EINVAL);
}

// One address, 16 blocks of 4 ports, 2 blocks per subscriber.
aftr_dp_config SmallBlocks() {
  aftr_dp_config cfg = ConfigWithPorts(1024, 1024 + 4 * 16 - 1, 4, 2);
  cfg.pool_addr_count = 1;
  return cfg;
}

TEST_CASE("ctl: a block marked releasing gets no new session, and once released its slot and bit go "
          "together and the data plane reuses the slot",
          "[ctl][blocks][release]") {
  Harness h(SmallBlocks());
  std::vector<Mapping> first;
  for (uint16_t i = 0; i < 4; i++) first.push_back(TranslateUdp(h, kB4a, 40000 + i));
  aftr_subscriber sub = *h.Subscriber(kB4a);
  REQUIRE(sub.n_blocks == 1);
  const uint16_t a = sub.blocks[0];
  h.DrainEvents();

  aftr_ctl_args mark = SubArgs(AFTR_CTL_BLOCK_MARK_RELEASING, kB4a, 0, a);
  REQUIRE(h.Ctl(mark) == 1);
  CHECK(h.Ctl(mark) == 1);  // idempotent
  CHECK(h.Subscriber(kB4a)->blocks[0] == (a | AFTR_BLOCK_SLOT_RELEASING));
  CHECK(BitSet(h.PoolAddr(0), a));  // still owned

  // Its sessions still translate; a new flow does not land in it.
  CHECK(TranslateUdp(h, kB4a, 40001) == first[1]);
  for (uint16_t i = 0; i < 4; i++) {
    // Delete the old block's sessions first, as aftrd does: their ports free up, and the
    // data plane must still not pick them.
    REQUIRE(h.Ctl(SessionArgs(AFTR_CTL_SESSION_DELETE, kB4a, 40000 + i)) == 1);
  }
  Mapping fresh = TranslateUdp(h, kB4a, 41000);
  const uint16_t b = BlockOf(h.config(), fresh.port);
  CHECK(b != a);
  sub = *h.Subscriber(kB4a);
  CHECK(sub.n_blocks == 2);
  CHECK(sub.blocks[1] == b);

  aftr_ctl_args release = SubArgs(AFTR_CTL_BLOCK_RELEASE, kB4a, 0, a);
  REQUIRE(h.Ctl(release) == 1);
  CHECK(h.Ctl(release) == -ENOENT);  // never twice
  sub = *h.Subscriber(kB4a);
  CHECK(sub.blocks[0] == AFTR_BLOCK_SLOT_FREE);
  CHECK_FALSE(BitSet(h.PoolAddr(0), a));
  CHECK(BitSet(h.PoolAddr(0), b));

  // Fill block b; the next flow takes a new block into the freed slot (quota 2: n_blocks
  // is 2 already, so only the freed slot makes room).
  for (uint16_t i = 1; i < 4; i++) TranslateUdp(h, kB4a, 41000 + i);
  h.DrainEvents();
  Mapping more = TranslateUdp(h, kB4a, 42000);
  sub = *h.Subscriber(kB4a);
  CHECK(sub.n_blocks == 2);
  CHECK(AFTR_BLOCK_SLOT_USABLE(sub.blocks[0]));
  CHECK(BlockOf(h.config(), more.port) == sub.blocks[0]);
  std::vector<aftr_event> ev = h.DrainEvents();
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].type == AFTR_EV_BLOCK_CLAIMED);
  CHECK(ntohs(ev[0].public_port) == PortOfBlock(h.config(), sub.blocks[0]));
  // At the quota with no freed slot: ports exhausted, as before.
  for (uint16_t i = 1; i < 4; i++) TranslateUdp(h, kB4a, 42000 + i);
  RunResult r = h.Run(FromB4(kB4a).Udp(43000, kRemotePort).Build());
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(h.Counter(AFTR_C_DROP_PORTS_EXHAUSTED) == 1);
}

TEST_CASE("ctl: BLOCK_ADD gives a chosen block under the quota, reusing a freed slot first",
          "[ctl][blocks]") {
  Harness h(SmallBlocks());
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_SUBSCRIBER_CREATE, kB4a, 0, 3)) == 1);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4a, 0, 3)) == -EBUSY);  // its own already
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4b, 0, 9)) == -ENOENT);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4a, 0, 16)) == -EINVAL);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4a, 0, 9)) == 1);  // slot 1
  CHECK(h.Subscriber(kB4a)->blocks[1] == 9);
  CHECK(BitSet(h.PoolAddr(0), 9));
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4a, 0, 10)) == -ENOSPC);
  CHECK_FALSE(BitSet(h.PoolAddr(0), 10));
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_BLOCK_RELEASE, kB4a, 0, 3)) == 1);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4a, 0, 10)) == 0);  // into freed slot 0
  aftr_subscriber sub = *h.Subscriber(kB4a);
  CHECK(sub.blocks[0] == 10);
  CHECK(sub.n_blocks == 2);
  REQUIRE(h.Ctl(PoolFlags(0, AFTR_POOL_ADDR_DRAINING)) == 1);
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_BLOCK_RELEASE, kB4a, 0, 10)) == 1);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_BLOCK_ADD, kB4a, 0, 11)) == -EADDRNOTAVAIL);
}

}  // namespace
}  // namespace bpftest
