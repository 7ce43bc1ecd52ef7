// Releasing a port block by hand, and the sweeper's part in restarts: static mappings never
// expire, sessions outside their subscriber's blocks go, and what a killed daemon left
// half done (a retirement, a release) is finished without freeing anything twice.
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "control/bpf/datapath.h"
#include "control/nat/block_release.h"
#include "control/nat/session_sweeper.h"
#include "control/nat/static_mappings.h"
#include "dp_fixture.h"
#include "dp_util.h"
#include "flows.h"
#include "harness.h"

namespace dptest {
namespace {

using aftr::bpf::Datapath;
using aftr::nat::MappingKey;
using aftr::nat::StaticMapping;
using bpftest::kB4a;
using bpftest::kB4b;

constexpr uint64_t kDay = 86400ull * 1000000000ull;

std::unique_ptr<Datapath> MustCreate(const Config& c) {
  absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(c);
  INFO(dp.status().ToString());
  REQUIRE(dp.ok());
  return std::move(*dp);
}

MappingKey Key(const bpftest::Ip6& b4, uint16_t inner_port, uint8_t proto = IPPROTO_UDP) {
  MappingKey k;
  k.b4 = V6(b4);
  k.inner_addr = aftr::Ipv4Address{0xc000020a};
  k.inner_port = inner_port;
  k.proto = proto;
  return k;
}

StaticMapping MustMap(Datapath& dp, RecordingSink& sink, const MappingKey& k,
                      std::optional<uint16_t> port = std::nullopt) {
  absl::StatusOr<StaticMapping> m = aftr::nat::CreateStaticMapping(dp, &sink, k, port);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *m;
}

aftr_ctl_args SubArgs(uint32_t op, const bpftest::Ip6& b4, uint32_t block) {
  aftr_ctl_args a{};
  a.op = op;
  std::memcpy(a.b4, b4.data(), 16);
  a.block = block;
  return a;
}

// Subscriber kB4a with two blocks: dynamic sessions and a static one in the first, a static
// one in the second.
struct TwoBlocks {
  uint32_t first, second;
  aftr::Ipv4Address addr;
};
TwoBlocks MakeTwoBlocks(Datapath& dp, RecordingSink& sink) {
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  REQUIRE(SendFromB4(kB4a, 40001) == XDP_REDIRECT);
  aftr_subscriber s = *Subscriber(dp, kB4a);
  TwoBlocks t;
  t.first = s.blocks[0];
  t.second = t.first == 15 ? 14 : t.first + 1;
  t.addr = aftr::Ipv4Address{ntohl(s.public_addr)};
  StaticMapping in_first = MustMap(dp, sink, Key(kB4a, 5000));  // a free port of its block
  REQUIRE(BlockOfPort(in_first.public_port) == t.first);
  MustMap(dp, sink, Key(kB4a, 5001), FirstPort(t.second) + 1);
  REQUIRE(Subscriber(dp, kB4a)->n_blocks == 2);
  sink.Take();
  return t;
}

TEST_CASE("release: every session on the block goes with an SD, then the block with a BR, and "
          "the other block is untouched",
          "[release]") {
  auto dp = MustCreate(WithPools(TestConfig(FreshPinPath()), {"198.51.100.1/32"}));
  RecordingSink sink;
  TwoBlocks t = MakeTwoBlocks(*dp, sink);
  REQUIRE(static_cast<uint32_t>(Subscriber(*dp, kB4a)->state_sessions) == 4);

  CHECK(absl::IsInvalidArgument(
      aftr::nat::ReleasePortBlock(*dp, &sink, t.addr, FirstPort(t.first) + 1).status()));
  const uint32_t unowned = t.second == 15 ? 13 : 15;
  CHECK(absl::IsNotFound(
      aftr::nat::ReleasePortBlock(*dp, &sink, t.addr, FirstPort(unowned)).status()));
  CHECK(sink.Codes().empty());

  absl::StatusOr<aftr::nat::ReleasedBlock> r =
      aftr::nat::ReleasePortBlock(*dp, &sink, t.addr, FirstPort(t.first));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->b4 == V6(kB4a));
  CHECK(r->first_port == FirstPort(t.first));
  CHECK(r->block_size == kBlockSize);
  CHECK(r->sessions_deleted == 3);  // two dynamic, one static
  CHECK(sink.Codes() == "SD SD SD BR");
  std::vector<aftr::events::NatEvent> ev = sink.Take();
  for (int i = 0; i < 3; i++) CHECK(BlockOfPort(ev[i].public_port) == t.first);
  CHECK(ev[3].public_port == FirstPort(t.first));

  aftr_subscriber s = *Subscriber(*dp, kB4a);
  CHECK(s.blocks[0] == AFTR_BLOCK_SLOT_FREE);
  CHECK(s.blocks[1] == t.second);
  CHECK(static_cast<uint32_t>(s.state_sessions) == 1);
  CHECK_FALSE(BitSet(PoolAddr(*dp, 0), t.first));
  CHECK(BitSet(PoolAddr(*dp, 0), t.second));
  CHECK_FALSE(SessionOut(*dp, kB4a, 40000));
  CHECK_FALSE(SessionOut(*dp, kB4a, 5000));
  CHECK(SessionOut(*dp, kB4a, 5001));
  CHECK(absl::IsNotFound(
      aftr::nat::ReleasePortBlock(*dp, &sink, t.addr, FirstPort(t.first)).status()));

  // The subscriber's next flow gets a block into the freed slot, within its quota of two.
  REQUIRE(SendFromB4(kB4a, 40002) == XDP_REDIRECT);
  CHECK(BlockOfPort(ntohs(SessionOut(*dp, kB4a, 40002)->public_port)) == t.second);
}

TEST_CASE("sweeper: static mappings never expire, dynamic sessions do, sessions outside "
          "their subscriber's blocks are deleted",
          "[sweeper]") {
  auto dp = MustCreate(TestConfig(FreshPinPath()));
  RecordingSink sink;
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  StaticMapping st = MustMap(*dp, sink, Key(kB4a, 5000));
  sink.Take();
  aftr::nat::SessionSweeper sweeper(dp.get(), &sink);

  absl::StatusOr<aftr::nat::SweepResult> r = sweeper.SweepOnce(NowNs() + 30 * kDay);
  REQUIRE(r.ok());
  CHECK(r->expired == 1);
  CHECK(r->sessions == 1);
  CHECK(sink.Codes() == "SD");
  CHECK(SessionOut(*dp, kB4a, 5000));
  CHECK(static_cast<uint32_t>(Subscriber(*dp, kB4a)->state_sessions) == 1);
  sink.Take();
  // The subscriber is never retired while its static mapping lives.
  for (int i = 0; i < 3; i++) REQUIRE(sweeper.SweepOnce(NowNs() + (31 + i) * kDay).ok());
  CHECK(Subscriber(*dp, kB4a));
  CHECK(sink.Codes().empty());

  // A stray: its block taken from under it (as a crash mid-release could leave it).
  aftr_ctl_args release = SubArgs(AFTR_CTL_BLOCK_RELEASE, kB4a, BlockOfPort(st.public_port));
  REQUIRE(dp->Ctl(release).value() == 1);
  r = sweeper.SweepOnce(NowNs());
  REQUIRE(r.ok());
  CHECK(r->strays == 1);
  CHECK(sink.Codes() == "SD");
  CHECK_FALSE(SessionOut(*dp, kB4a, 5000));
  CHECK(static_cast<uint32_t>(Subscriber(*dp, kB4a)->state_sessions) == 0);
}

TEST_CASE("sweeper: a subscriber retired by a killed daemon is finished by the next one, "
          "each block freed once",
          "[sweeper][restart]") {
  const Config cfg = WithPools(TestConfig(FreshPinPath()), {"198.51.100.1/32"});
  auto dp = MustCreate(cfg);
  RecordingSink sink;
  TwoBlocks t = MakeTwoBlocks(*dp, sink);
  for (uint16_t p : {40000, 40001}) {
    REQUIRE(aftr::nat::DeleteStaticMapping(*dp, &sink, Key(kB4a, p)).code() ==
            absl::StatusCode::kNotFound);  // dynamic ones: not for DeleteStaticMapping
  }
  // The old daemon: sessions gone, retired, first block released, then killed.
  for (uint16_t p : {5000, 5001}) REQUIRE(aftr::nat::DeleteStaticMapping(*dp, &sink, Key(kB4a, p)).ok());
  for (uint16_t p : {40000, 40001}) {
    aftr_ctl_args del{};
    del.op = AFTR_CTL_SESSION_DELETE;
    std::memcpy(del.b4, kB4a.data(), 16);
    del.inner_addr = bpftest::kInner;
    del.inner_port = htons(p);
    del.proto = IPPROTO_UDP;
    REQUIRE(dp->Ctl(del).value() == 1);
  }
  REQUIRE(dp->Ctl(SubArgs(AFTR_CTL_RETIRE, kB4a, 0)).value() == 1);
  REQUIRE(dp->Ctl(SubArgs(AFTR_CTL_BLOCK_RELEASE, kB4a, t.first)).value() == 1);
  dp.reset();
  // Meanwhile another subscriber takes the freed block: it must stay theirs.
  REQUIRE(SendFromB4(kB4b, 40000) == XDP_REDIRECT);
  dp = MustCreate(cfg);
  const aftr_subscriber b = *Subscriber(*dp, kB4b);
  sink.Take();

  aftr::nat::SessionSweeper sweeper(dp.get(), &sink);
  absl::StatusOr<aftr::nat::SweepResult> r = sweeper.SweepOnce(NowNs());
  REQUIRE(r.ok());
  CHECK(r->retired == 1);
  CHECK(r->blocks_released == 1);
  CHECK(sink.Codes() == "BR");
  CHECK(sink.Take()[0].public_port == FirstPort(t.second));
  CHECK_FALSE(Subscriber(*dp, kB4a));
  CHECK_FALSE(BitSet(PoolAddr(*dp, 0), t.second));
  CHECK(BitSet(PoolAddr(*dp, 0), b.blocks[0]));  // kB4b's block untouched
  CHECK(Subscriber(*dp, kB4b));
}

TEST_CASE("sweeper: a release cut short after marking the block is finished with its SDs "
          "and BR by the next daemon",
          "[sweeper][restart][release]") {
  const Config cfg = WithPools(TestConfig(FreshPinPath()), {"198.51.100.1/32"});
  auto dp = MustCreate(cfg);
  RecordingSink sink;
  TwoBlocks t = MakeTwoBlocks(*dp, sink);
  REQUIRE(dp->Ctl(SubArgs(AFTR_CTL_BLOCK_MARK_RELEASING, kB4a, t.first)).value() == 1);
  dp.reset();
  dp = MustCreate(cfg);
  aftr::nat::SessionSweeper sweeper(dp.get(), &sink);
  absl::StatusOr<aftr::nat::SweepResult> r = sweeper.SweepOnce(NowNs());
  REQUIRE(r.ok());
  CHECK(sink.Codes() == "SD SD SD BR");
  aftr_subscriber s = *Subscriber(*dp, kB4a);
  CHECK(s.blocks[0] == AFTR_BLOCK_SLOT_FREE);
  CHECK(static_cast<uint32_t>(s.state_sessions) == 1);
  CHECK_FALSE(BitSet(PoolAddr(*dp, 0), t.first));
  CHECK(SessionOut(*dp, kB4a, 5001));
}

}  // namespace
}  // namespace dptest
