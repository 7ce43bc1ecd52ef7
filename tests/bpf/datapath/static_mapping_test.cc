// Static mappings through the daemon's module on the production object: create (with and
// without a public port, the port rules), convert a dynamic session, list, delete, events,
// and survival across a restart.
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "control/bpf/datapath.h"
#include "control/nat/static_mappings.h"
#include "dp_fixture.h"
#include "dp_util.h"
#include "flows.h"
#include "harness.h"

namespace dptest {
namespace {

using aftr::bpf::Datapath;
using aftr::nat::CreateStaticMapping;
using aftr::nat::DeleteStaticMapping;
using aftr::nat::ListStaticMappings;
using aftr::nat::MappingKey;
using aftr::nat::StaticMapping;
using bpftest::kB4a;
using bpftest::kB4b;
using bpftest::Net;

const bpftest::Ip6 kB4c = bpftest::Ip6Addr("2001:db8:100::4");

std::unique_ptr<Datapath> MustCreate(const Config& c) {
  absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(c);
  INFO(dp.status().ToString());
  REQUIRE(dp.ok());
  return std::move(*dp);
}

MappingKey Key(const bpftest::Ip6& b4, uint16_t inner_port, uint8_t proto = IPPROTO_TCP) {
  MappingKey k;
  k.b4 = V6(b4);
  k.inner_addr = aftr::Ipv4Address{0xc000020a};  // 192.0.2.10
  k.inner_port = inner_port;
  k.proto = proto;
  return k;
}

StaticMapping MustMap(Datapath& dp, RecordingSink& sink, const MappingKey& k,
                      std::optional<uint16_t> port = std::nullopt) {
  absl::StatusOr<StaticMapping> m = CreateStaticMapping(dp, &sink, k, port);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *m;
}

bool InOwnBlocks(const aftr_subscriber& s, uint16_t port) {
  for (uint32_t i = 0; i < s.n_blocks && i < AFTR_MAX_BLOCKS_PER_SUB; i++) {
    if (s.blocks[i] == BlockOfPort(port)) return true;
  }
  return false;
}

TEST_CASE("static mappings: create makes the subscriber and a static session, list shows it, "
          "delete removes it, each with its events",
          "[static]") {
  auto dp = MustCreate(TestConfig(FreshPinPath()));
  RecordingSink sink;
  const MappingKey k = Key(kB4a, 8080);
  StaticMapping m = MustMap(*dp, sink, k);
  CHECK(sink.Codes() == "BA SC");
  std::vector<aftr::events::NatEvent> ev = sink.Take();
  CHECK(ev[0].public_port == FirstPort(BlockOfPort(m.public_port)));
  CHECK(ev[1].public_port == m.public_port);
  CHECK(ev[1].inner_port == 8080);

  std::optional<aftr_subscriber> sub = Subscriber(*dp, kB4a);
  REQUIRE(sub);
  CHECK(static_cast<uint32_t>(sub->state_sessions) == 1);  // counts as a session
  CHECK(sub->public_addr == htonl(m.public_addr.host_order));
  CHECK(InOwnBlocks(*sub, m.public_port));
  std::optional<aftr_session_out> out = SessionOut(*dp, kB4a, 8080, IPPROTO_TCP);
  REQUIRE(out);
  CHECK(out->flags == AFTR_SESSION_STATIC);
  CHECK(ntohs(out->public_port) == m.public_port);

  absl::StatusOr<std::vector<StaticMapping>> all = ListStaticMappings(*dp);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 1);
  CHECK(all->front() == m);

  absl::StatusOr<StaticMapping> again = CreateStaticMapping(*dp, &sink, k, std::nullopt);
  CHECK(absl::IsAlreadyExists(again.status()));
  CHECK(sink.Codes().empty());

  REQUIRE(DeleteStaticMapping(*dp, &sink, k).ok());
  CHECK(sink.Codes() == "SD");
  CHECK(sink.Take()[0].public_port == m.public_port);
  CHECK_FALSE(SessionOut(*dp, kB4a, 8080, IPPROTO_TCP));
  CHECK_FALSE(SessionInExists(*dp, htonl(m.public_addr.host_order), m.public_port, IPPROTO_TCP));
  CHECK(static_cast<uint32_t>(Subscriber(*dp, kB4a)->state_sessions) == 0);
  CHECK(ListStaticMappings(*dp)->empty());
  CHECK(absl::IsNotFound(DeleteStaticMapping(*dp, &sink, k)));
}

TEST_CASE("static mappings: a requested public port must be the subscriber's to use",
          "[static][ports]") {
  // One pool address, so that both subscribers share it.
  auto dp = MustCreate(WithPools(TestConfig(FreshPinPath()), {"198.51.100.1/32"}));
  RecordingSink sink;
  StaticMapping a = MustMap(*dp, sink, Key(kB4a, 80));
  const uint32_t own = BlockOfPort(a.public_port);
  sink.Take();

  SECTION("a port of its own block") {
    StaticMapping m = MustMap(*dp, sink, Key(kB4a, 81), FirstPort(own) + 5);
    CHECK(m.public_port == FirstPort(own) + 5);
    CHECK(sink.Codes() == "SC");
  }
  SECTION("a port outside the blocks' range") {
    absl::StatusOr<StaticMapping> m = CreateStaticMapping(*dp, &sink, Key(kB4a, 81), 80);
    CHECK(absl::IsFailedPrecondition(m.status()));
    CHECK_THAT(std::string(m.status().message()), Catch::Contains("outside"));
  }
  SECTION("a port of another subscriber's block") {
    absl::StatusOr<StaticMapping> m =
        CreateStaticMapping(*dp, &sink, Key(kB4b, 81), FirstPort(own) + 9);
    CHECK(absl::IsFailedPrecondition(m.status()));
    CHECK_THAT(std::string(m.status().message()), Catch::Contains("another subscriber"));
    CHECK(sink.Codes().empty());
  }
  SECTION("a free block it may still claim, then none beyond its quota") {
    const uint32_t other = own == 15 ? 14 : own + 1;
    StaticMapping m = MustMap(*dp, sink, Key(kB4a, 81), FirstPort(other) + 1);
    CHECK(m.public_port == FirstPort(other) + 1);
    CHECK(sink.Codes() == "BA SC");
    CHECK(Subscriber(*dp, kB4a)->n_blocks == 2);
    uint32_t third = 0;
    while (third == own || third == other) third++;
    absl::StatusOr<StaticMapping> over =
        CreateStaticMapping(*dp, &sink, Key(kB4a, 82), FirstPort(third));
    CHECK(absl::IsFailedPrecondition(over.status()));
    CHECK_THAT(std::string(over.status().message()),
               Catch::Contains("max_blocks_per_subscriber"));
  }
  SECTION("a port another session holds") {
    absl::StatusOr<StaticMapping> m =
        CreateStaticMapping(*dp, &sink, Key(kB4a, 81), a.public_port);
    CHECK(absl::IsAlreadyExists(m.status()));
  }
  SECTION("a new subscriber asking for a port gets the block holding it") {
    const uint32_t wanted = own == 15 ? 14 : own + 1;
    StaticMapping m = MustMap(*dp, sink, Key(kB4c, 22), FirstPort(wanted) + 3);
    CHECK(m.public_port == FirstPort(wanted) + 3);
    CHECK(sink.Codes() == "BA SC");
    CHECK(Subscriber(*dp, kB4c)->blocks[0] == wanted);
  }
  SECTION("a B4 outside b4_prefixes, or a protocol without ports") {
    absl::StatusOr<StaticMapping> m = CreateStaticMapping(
        *dp, &sink, Key(bpftest::kUnknownB4, 81), std::nullopt);
    CHECK(absl::IsFailedPrecondition(m.status()));
    CHECK(absl::IsInvalidArgument(
        CreateStaticMapping(*dp, &sink, Key(kB4a, 81, IPPROTO_ICMP), std::nullopt).status()));
  }
}

TEST_CASE("static mappings: a dynamic session of the flow becomes static in place, or moves "
          "to the asked port",
          "[static][convert]") {
  auto dp = MustCreate(TestConfig(FreshPinPath()));
  RecordingSink sink;
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  REQUIRE(SendFromB4(kB4a, 40001) == XDP_REDIRECT);
  const aftr_session_out d0 = *SessionOut(*dp, kB4a, 40000);
  const aftr_session_out d1 = *SessionOut(*dp, kB4a, 40001);

  StaticMapping same = MustMap(*dp, sink, Key(kB4a, 40000, IPPROTO_UDP));
  CHECK(same.public_port == ntohs(d0.public_port));
  CHECK(sink.Codes().empty());  // the session was logged when the data plane made it
  CHECK(SessionOut(*dp, kB4a, 40000)->flags == AFTR_SESSION_STATIC);
  CHECK(static_cast<uint32_t>(Subscriber(*dp, kB4a)->state_sessions) == 2);

  // Another port of the same block, held by neither session.
  uint16_t elsewhere = FirstPort(BlockOfPort(ntohs(d0.public_port)));
  while (elsewhere == ntohs(d0.public_port) || elsewhere == ntohs(d1.public_port)) elsewhere++;
  StaticMapping moved = MustMap(*dp, sink, Key(kB4a, 40001, IPPROTO_UDP), elsewhere);
  CHECK(moved.public_port == elsewhere);
  CHECK(sink.Codes() == "SD SC");
  CHECK(static_cast<uint32_t>(Subscriber(*dp, kB4a)->state_sessions) == 2);
  CHECK_FALSE(SessionInExists(*dp, d1.public_addr, ntohs(d1.public_port)));
  // Its traffic uses the mapping.
  REQUIRE(SendFromB4(kB4a, 40001) == XDP_REDIRECT);
  CHECK(ntohs(SessionOut(*dp, kB4a, 40001)->public_port) == elsewhere);
}

TEST_CASE("static mappings: they survive a restart and take inbound connections from anyone "
          "under address-dependent filtering",
          "[static][restart]") {
  const Config cfg = TestConfig(FreshPinPath(), "filtering: FILTERING_ADDRESS_DEPENDENT");
  auto dp = MustCreate(cfg);
  RecordingSink sink;
  StaticMapping m = MustMap(*dp, sink, Key(kB4a, 22));
  dp.reset();
  dp = MustCreate(cfg);
  absl::StatusOr<std::vector<StaticMapping>> all = ListStaticMappings(*dp);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 1);
  CHECK(all->front() == m);
  bpftest::Bytes syn = bpftest::FromInternet(bpftest::kRemote2, htonl(m.public_addr.host_order))
                           .Tcp(50000, m.public_port, bpftest::kTcpSyn)
                           .Build();
  CHECK(RunAttached(syn, Net().inet_ifindex) == XDP_REDIRECT);
}

}  // namespace
}  // namespace dptest
