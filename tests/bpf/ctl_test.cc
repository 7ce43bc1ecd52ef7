// aftr_ctl, the syscall program aftrd runs for the updates that race with XDP: session
// count decrements, retiring a subscriber, and taking / freeing port blocks.
#include <cerrno>
#include <cstring>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

aftr_ctl_args SubArgs(uint32_t op, const Ip6& b4, uint32_t count = 0) {
  aftr_ctl_args a{};
  a.op = op;
  std::memcpy(a.b4, b4.data(), 16);
  a.count = count;
  return a;
}

aftr_ctl_args BlockArgs(uint32_t op, uint32_t addr_index, uint32_t block) {
  aftr_ctl_args a{};
  a.op = op;
  a.addr_index = addr_index;
  a.block = block;
  return a;
}

constexpr uint64_t kRetired = AFTR_SUB_RETIRED << AFTR_SUB_STATE_SHIFT;

TEST_CASE("ctl: SESSIONS_SUB lowers the session count and never below zero", "[ctl]") {
  Harness h;
  for (uint16_t p = 0; p < 3; p++) TranslateUdp(h, kB4a, 40000 + p);
  REQUIRE(h.Subscriber(kB4a)->state_sessions == 3);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SESSIONS_SUB, kB4a, 2)) == 1);
  CHECK(h.Subscriber(kB4a)->state_sessions == 1);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SESSIONS_SUB, kB4a, 5)) == 1);
  CHECK(h.Subscriber(kB4a)->state_sessions == 0);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_SESSIONS_SUB, kB4b, 1)) == -ENOENT);
}

TEST_CASE("ctl: RETIRE succeeds only without sessions, and a retired subscriber gets no new "
          "sessions",
          "[ctl]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_RETIRE, kB4a)) == 0);  // one session left
  CHECK(h.Subscriber(kB4a)->state_sessions == 1);

  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_SESSIONS_SUB, kB4a, 1)) == 1);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_RETIRE, kB4a)) == 1);
  CHECK(h.Subscriber(kB4a)->state_sessions == kRetired);
  CHECK(h.Ctl(SubArgs(AFTR_CTL_RETIRE, kB4a)) == 0);  // already retired
  CHECK(h.Ctl(SubArgs(AFTR_CTL_RETIRE, kB4b)) == -ENOENT);

  h.DrainEvents();
  Bytes fresh = FromB4(kB4a).Udp(kInnerPort + 1, kRemotePort).Build();
  CounterValues before = h.Counters();
  RunResult r = h.Run(fresh);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 drop_subscriber_retiring=1");
  CHECK(h.Subscriber(kB4a)->state_sessions == kRetired);
  CHECK(h.SessionsOut().size() == 1);
  CHECK(h.SessionsIn().size() == 1);
  CHECK(h.DrainEvents().empty());
  (void)m;
}

TEST_CASE("ctl: BLOCK_TAKE and BLOCK_FREE toggle one bit of a pool address's bitmap", "[ctl]") {
  Harness h;
  CHECK_FALSE(BitSet(h.PoolAddr(2), 100));
  CHECK(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_TAKE, 2, 100)) == 1);
  aftr_pool_addr pa = h.PoolAddr(2);
  CHECK(BitSet(pa, 100));
  CHECK(pa.used[1] == 1ull << 36);  // nothing else in that word
  CHECK(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_TAKE, 2, 100)) == 0);  // already taken
  CHECK(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_FREE, 2, 100)) == 1);
  CHECK_FALSE(BitSet(h.PoolAddr(2), 100));
  CHECK(h.PoolAddr(2).used[1] == 0);
  CHECK(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_TAKE, 2, 100)) == 1);  // free again
  // Other addresses untouched.
  for (uint32_t i : {0u, 1u, 3u}) CHECK(h.PoolAddr(i).used[1] == 0);
}

TEST_CASE("ctl: invalid requests are refused", "[ctl]") {
  Harness h;
  CHECK(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_TAKE, 4, 0)) == -EINVAL);  // pool has 4 addresses
  CHECK(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_FREE, 0, AFTR_MAX_BLOCKS_PER_ADDR)) == -EINVAL);
  CHECK(h.Ctl(SubArgs(99, kB4a)) == -EINVAL);
}

TEST_CASE("ctl: a block freed by aftrd can be claimed again by XDP", "[ctl]") {
  aftr_dp_config cfg = ConfigWithPorts(1024, 1031, 4, 1);  // 2 blocks per address
  cfg.pool_addr_count = 1;
  Harness h(cfg);
  Mapping a = TranslateUdp(h, kB4a, kInnerPort);
  TranslateUdp(h, kB4b, kInnerPort);
  uint32_t block_a = BlockOf(h.config(), a.port);
  // aftrd expires kB4a's session, retires the subscriber and frees its block. (It would
  // also delete the session entries; the stale one left here only costs the new owner
  // that one port.)
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_SESSIONS_SUB, kB4a, 1)) == 1);
  REQUIRE(h.Ctl(SubArgs(AFTR_CTL_RETIRE, kB4a)) == 1);
  REQUIRE(h.Ctl(BlockArgs(AFTR_CTL_BLOCK_FREE, 0, block_a)) == 1);
  const Ip6 third = Ip6Addr("2001:db8:100::4");
  Mapping c = TranslateUdp(h, third, kInnerPort);
  CHECK(BlockOf(h.config(), c.port) == block_a);
}

}  // namespace
}  // namespace bpftest
