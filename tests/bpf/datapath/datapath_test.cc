// Datapath: adoption and atomic replacement across restarts, refusing pins that do not fit,
// live reprogramming, pools that change at run time, and --detach.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "control/bpf/datapath.h"
#include "control/events/event_drain.h"
#include "dp_fixture.h"
#include "dp_util.h"
#include "flows.h"
#include "harness.h"

namespace dptest {
namespace {

using aftr::bpf::Datapath;
using aftr::bpf::PoolAddressState;
using bpftest::kB4a;
using bpftest::kB4b;
using bpftest::Net;

std::unique_ptr<Datapath> MustCreate(const Config& c) {
  absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(c);
  INFO(dp.status().ToString());
  REQUIRE(dp.ok());
  return std::move(*dp);
}

// A minimal XDP program someone else attached: "return XDP_PASS".
int LoadForeignProgram() {
  bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "foreign_xdp", "GPL", insns, 2, nullptr);
  REQUIRE(fd >= 0);
  return fd;
}

std::string Addr(const aftr::Ipv4Address& a) { return a.ToString(); }

TEST_CASE("datapath: XDP stays attached without the daemon and the next Create replaces it "
          "atomically, adopting sessions, blocks, counters and queued events",
          "[datapath][restart]") {
  const Config cfg = TestConfig(FreshPinPath());
  auto dp = MustCreate(cfg);
  CHECK_FALSE(dp->adopted());
  const uint32_t first_id = AttachedProgId(Net().b4_ifindex);
  CHECK(first_id != 0);
  CHECK(AttachedProgName(Net().b4_ifindex) == "aftr_xdp");
  CHECK(AttachedProgId(Net().inet_ifindex) == first_id);
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  const aftr_session_out before = *SessionOut(*dp, kB4a, 40000);

  dp.reset();  // as on SIGTERM
  CHECK(AttachedProgId(Net().b4_ifindex) == first_id);
  CHECK(SendFromB4(kB4a, 40000) == XDP_REDIRECT);  // forwarding with no daemon
  CHECK(SendFromB4(kB4b, 40000) == XDP_REDIRECT);  // and making sessions (events queue up)

  auto dp2 = MustCreate(cfg);
  CHECK(dp2->adopted());
  const uint32_t second_id = AttachedProgId(Net().b4_ifindex);
  CHECK(second_id != first_id);
  CHECK(AttachedProgId(Net().inet_ifindex) == second_id);
  CHECK(AttachedProgName(Net().b4_ifindex) == "aftr_xdp");
  std::optional<aftr_session_out> after = SessionOut(*dp2, kB4a, 40000);
  REQUIRE(after);
  CHECK(after->public_addr == before.public_addr);
  CHECK(after->public_port == before.public_port);
  CHECK(SessionOut(*dp2, kB4b, 40000));
  absl::StatusOr<aftr::bpf::CounterSnapshot> counters = aftr::bpf::ReadCounters(dp2->fds().counters);
  REQUIRE(counters.ok());
  CHECK(counters->by_direction[aftr::bpf::kDirFromB4][AFTR_C_SESSION_CREATED] == 2);
  CHECK(counters->Total()[AFTR_C_OUT_TRANSLATED] == 3);  // (rx also sees the veths' own ND)
  CHECK(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  CHECK(SessionOut(*dp2, kB4a, 40000)->public_port == before.public_port);

  // The ring's consumer position is in the map: the new process reads what nobody read.
  RecordingSink sink;
  {
    auto drain = aftr::events::EventDrain::Create(dp2->fds().events, &sink);
    REQUIRE(drain.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK(sink.Codes() == "BA SC BA SC");
}

// Holds the drain inside Publish until released.
struct HoldingSink : aftr::events::EventSink {
  absl::Notification entered, release;
  std::atomic<int> taken{0};
  using aftr::events::EventSink::Publish;
  absl::Status Publish(const std::vector<aftr::events::NatEvent>& events) override {
    if (!entered.HasBeenNotified()) entered.Notify();
    release.WaitForNotification();
    taken += static_cast<int>(events.size());
    return absl::OkStatus();
  }
};

TEST_CASE("datapath: the drain gives ring space back only once the sink took the records, so a "
          "killed aftrd leaves what it had not logged to the next one",
          "[datapath][events]") {
  const Config cfg = TestConfig(FreshPinPath());
  auto dp = MustCreate(cfg);
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);  // BA and SC
  const int fd = dp->fds().events;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* view = mmap(nullptr, page, PROT_READ, MAP_SHARED, fd, 0);  // the consumer position
  REQUIRE(view != MAP_FAILED);
  auto consumer_pos = [view] { return __atomic_load_n(static_cast<const uint64_t*>(view), __ATOMIC_ACQUIRE); };
  const uint64_t before = consumer_pos();
  HoldingSink sink;
  {
    auto drain = aftr::events::EventDrain::Create(fd, &sink);
    REQUIRE(drain.ok());
    REQUIRE(sink.entered.WaitForNotificationWithTimeout(absl::Seconds(5)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(consumer_pos() == before);  // the sink has the records; the ring still holds them
    sink.release.Notify();
  }
  CHECK(sink.taken == 2);
  CHECK(consumer_pos() > before);
  munmap(view, page);
  dp.reset();
  REQUIRE(aftr::bpf::DetachDataPlane(cfg, true).ok());
}

TEST_CASE("datapath: a foreign XDP program on a configured interface is refused, naming the "
          "interface and the program, and nothing is attached anywhere",
          "[datapath][attach]") {
  const Config cfg = TestConfig(FreshPinPath());
  int foreign = LoadForeignProgram();
  REQUIRE(bpf_xdp_attach(Net().inet_ifindex, foreign, XDP_FLAGS_DRV_MODE, nullptr) == 0);
  absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(cfg);
  CHECK(absl::IsFailedPrecondition(dp.status()));
  CHECK_THAT(std::string(dp.status().message()), Catch::Contains("aftrbt-inet") &&
                                                     Catch::Contains("foreign_xdp") &&
                                                     Catch::Contains("interfaces[1]"));
  CHECK(AttachedProgId(Net().b4_ifindex) == 0);
  CHECK(AttachedProgName(Net().inet_ifindex) == "foreign_xdp");

  // --detach leaves it alone too.
  CHECK(aftr::bpf::DetachDataPlane(cfg, false).ok());
  CHECK(AttachedProgName(Net().inet_ifindex) == "foreign_xdp");
  REQUIRE(bpf_xdp_detach(Net().inet_ifindex, XDP_FLAGS_DRV_MODE, nullptr) == 0);
  close(foreign);
}

TEST_CASE("datapath: pinned state that cannot serve the configuration is refused, naming the "
          "field",
          "[datapath][restart]") {
  const std::string pins = FreshPinPath();
  Config cfg = TestConfig(pins);
  MustCreate(cfg).reset();
  SECTION("a table size") {
    Config other = cfg;
    other.mutable_tables()->set_max_sessions(8192);
    absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(other);
    CHECK(absl::IsFailedPrecondition(dp.status()));
    CHECK_THAT(std::string(dp.status().message()),
               Catch::Contains("tables.max_sessions") && Catch::Contains(pins));
  }
  SECTION("the port geometry") {
    Config other = cfg;
    other.mutable_port_blocks()->set_block_size(128);
    absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(other);
    CHECK(absl::IsFailedPrecondition(dp.status()));
    CHECK_THAT(std::string(dp.status().message()), Catch::Contains("port_blocks.block_size"));
  }
  SECTION("another aftrd holds the pins") {
    auto running = MustCreate(cfg);
    absl::StatusOr<std::unique_ptr<Datapath>> dp = Datapath::Create(cfg);
    CHECK(absl::IsFailedPrecondition(dp.status()));
    CHECK_THAT(std::string(dp.status().message()), Catch::Contains("another aftrd"));
  }
  // The program left attached is still the first one, untouched by the refusals.
  CHECK(AttachedProgName(Net().b4_ifindex) == "aftr_xdp");
  REQUIRE(aftr::bpf::DetachDataPlane(cfg, true).ok());
}

TEST_CASE("datapath: Reprogram refuses fields that cannot change live, naming each, and keeps "
          "running as it was",
          "[datapath][reprogram]") {
  const Config cfg = TestConfig(FreshPinPath());
  auto dp = MustCreate(cfg);
  const uint32_t id = AttachedProgId(Net().b4_ifindex);
  Config next = cfg;
  next.mutable_tables()->set_max_sessions(8192);
  next.mutable_port_blocks()->set_port_max(4095);
  next.set_event_ring_bytes(1 << 16);
  next.set_pin_path("/sys/fs/bpf/elsewhere");
  next.set_hop_limit(32);  // could change, but not with the others
  absl::Status s = dp->Reprogram(next);
  CHECK(absl::IsFailedPrecondition(s));
  CHECK_THAT(std::string(s.message()),
             Catch::Contains("tables.max_sessions") && Catch::Contains("port_blocks.port_max") &&
                 Catch::Contains("event_ring_bytes") && Catch::Contains("pin_path"));
  CHECK_THAT(std::string(s.message()), !Catch::Contains("hop_limit"));
  for (auto [field, set] : std::vector<std::pair<const char*, std::function<void(Config&)>>>{
           {"tables.max_subscribers", [](Config& c) { c.mutable_tables()->set_max_subscribers(512); }},
           {"tables.max_pool_addresses", [](Config& c) { c.mutable_tables()->set_max_pool_addresses(128); }},
           {"port_blocks.port_min", [](Config& c) { c.mutable_port_blocks()->set_port_min(2000); }},
           {"port_blocks.block_size", [](Config& c) { c.mutable_port_blocks()->set_block_size(32); }},
       }) {
    Config one = cfg;
    set(one);
    absl::Status r = dp->Reprogram(one);
    INFO(field);
    CHECK(absl::IsFailedPrecondition(r));
    CHECK_THAT(std::string(r.message()), Catch::Contains(field));
  }
  CHECK(dp->config().hop_limit() == cfg.hop_limit());
  CHECK(AttachedProgId(Net().b4_ifindex) == id);
}

TEST_CASE("datapath: Reprogram replaces the program everywhere, keeps every session, and "
          "follows the interface list",
          "[datapath][reprogram]") {
  const Config cfg = TestConfig(FreshPinPath());
  auto dp = MustCreate(cfg);
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  const aftr_session_out s0 = *SessionOut(*dp, kB4a, 40000);
  const int counters_fd = dp->fds().counters;
  const uint32_t id1 = AttachedProgId(Net().b4_ifindex);

  Config next = cfg;
  next.set_hop_limit(33);
  next.set_fib_cache_ms(500);
  REQUIRE(dp->Reprogram(next).ok());
  const uint32_t id2 = AttachedProgId(Net().b4_ifindex);
  CHECK(id2 != id1);
  CHECK(AttachedProgId(Net().inet_ifindex) == id2);
  CHECK(dp->config().hop_limit() == 33);
  CHECK(dp->fds().counters == counters_fd);
  CHECK(SessionOut(*dp, kB4a, 40000)->public_port == s0.public_port);
  // Replies go back to the B4 through the new program.
  bpftest::Bytes reply = bpftest::FromInternet(bpftest::kRemote, s0.public_addr)
                             .Udp(bpftest::kRemotePort, ntohs(s0.public_port))
                             .Build();
  CHECK(RunAttached(reply, Net().inet_ifindex) == XDP_REDIRECT);

  Config only_b4 = next;
  only_b4.clear_interfaces();
  only_b4.add_interfaces("aftrbt-b4");
  REQUIRE(dp->Reprogram(only_b4).ok());
  CHECK(AttachedProgId(Net().inet_ifindex) == 0);
  CHECK(AttachedProgId(Net().b4_ifindex) != 0);
  REQUIRE(dp->Reprogram(next).ok());
  CHECK(AttachedProgId(Net().inet_ifindex) == AttachedProgId(Net().b4_ifindex));

  Config missing = next;
  missing.add_interfaces("aftrbt-none");
  absl::Status s = dp->Reprogram(missing);
  CHECK(absl::IsNotFound(s));
  CHECK_THAT(std::string(s.message()), Catch::Contains("aftrbt-none"));
  CHECK(dp->config().interfaces_size() == 2);
}

std::vector<std::string> Addrs(const std::vector<PoolAddressState>& pool, bool draining) {
  std::vector<std::string> out;
  for (const PoolAddressState& a : pool) {
    if (a.draining == draining) out.push_back(Addr(a.addr));
  }
  return out;
}

TEST_CASE("datapath: pool prefixes added, drained and re-added at run time keep their "
          "addresses' indexes, and the pinned pool wins on restart",
          "[datapath][pool]") {
  const Config cfg = TestConfig(FreshPinPath());  // 198.51.100.0/30
  auto dp = MustCreate(cfg);
  absl::StatusOr<std::vector<PoolAddressState>> pool = dp->ReadPool();
  REQUIRE(pool.ok());
  REQUIRE(pool->size() == 4);
  CHECK(pool->front().prefix.ToString() == "198.51.100.0/30");
  CHECK(pool->front().blocks_total == 16);
  CHECK(pool->front().blocks_used == 0);
  REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);
  const aftr_subscriber a = *Subscriber(*dp, kB4a);
  const std::string a_addr = aftr::Ipv4Address{ntohl(a.public_addr)}.ToString();

  // Added: appended after the first four.
  REQUIRE(dp->Reprogram(WithPools(cfg, {"198.51.100.0/30", "198.51.100.8/30"})).ok());
  pool = dp->ReadPool();
  REQUIRE(pool->size() == 8);
  CHECK(Addr((*pool)[4].addr) == "198.51.100.8");
  CHECK((*pool)[4].prefix.ToString() == "198.51.100.8/30");
  CHECK(Addrs(*pool, true).empty());
  CHECK(dp->pool_size() == 8);

  // Removed: draining, still listed (its address owns a block), still ours inbound.
  const Config drained = WithPools(cfg, {"198.51.100.8/30"});
  REQUIRE(dp->Reprogram(drained).ok());
  pool = dp->ReadPool();
  REQUIRE(pool->size() == 8);
  CHECK(Addrs(*pool, true) ==
        std::vector<std::string>{"198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.3"});
  for (const PoolAddressState& p : *pool) {
    if (Addr(p.addr) == a_addr) CHECK(p.blocks_used == 1);
  }
  for (uint32_t i = 0; i < 4; i++) CHECK(PoolAddr(*dp, i).flags == AFTR_POOL_ADDR_DRAINING);
  REQUIRE(SendFromB4(kB4b, 40000) == XDP_REDIRECT);  // a new subscriber: on the active prefix
  const aftr_subscriber b = *Subscriber(*dp, kB4b);
  CHECK(b.addr_index >= 4);
  REQUIRE(SendFromB4(kB4a, 40001) == XDP_REDIRECT);  // the old one goes on in its block
  CHECK(Subscriber(*dp, kB4a)->public_addr == a.public_addr);
  const aftr_session_out s = *SessionOut(*dp, kB4a, 40000);
  bpftest::Bytes reply = bpftest::FromInternet(bpftest::kRemote, s.public_addr)
                             .Udp(bpftest::kRemotePort, ntohs(s.public_port))
                             .Build();
  CHECK(RunAttached(reply, Net().inet_ifindex) == XDP_REDIRECT);

  // A restart with the drained configuration: the pinned pool is authoritative.
  dp.reset();
  dp = MustCreate(drained);
  pool = dp->ReadPool();
  REQUIRE(pool->size() == 8);
  CHECK(Addrs(*pool, true).size() == 4);
  CHECK(Subscriber(*dp, kB4a)->addr_index == a.addr_index);
  CHECK(RunAttached(reply, Net().inet_ifindex) == XDP_REDIRECT);

  // Re-added: undrained, same indexes.
  REQUIRE(dp->Reprogram(WithPools(cfg, {"198.51.100.8/30", "198.51.100.0/30"})).ok());
  pool = dp->ReadPool();
  REQUIRE(pool->size() == 8);
  CHECK(Addrs(*pool, true).empty());
  CHECK(Addr((*pool)[0].addr) == "198.51.100.0");
  CHECK(Addr((*pool)[4].addr) == "198.51.100.8");
  for (uint32_t i = 0; i < 8; i++) CHECK(PoolAddr(*dp, i).flags == 0);
  CHECK(dp->pool_size() == 8);
}

TEST_CASE("datapath: a drained prefix without blocks is forgotten and comes back at the same "
          "indexes; limits are named",
          "[datapath][pool]") {
  const Config cfg = TestConfig(FreshPinPath());
  auto dp = MustCreate(WithPools(cfg, {"198.51.100.0/30", "198.51.100.8/30"}));
  REQUIRE(dp->Reprogram(WithPools(cfg, {"198.51.100.8/30"})).ok());
  absl::StatusOr<std::vector<PoolAddressState>> pool = dp->ReadPool();
  REQUIRE(pool.ok());
  CHECK(pool->size() == 4);  // no block anywhere on .0/30: forgotten
  CHECK(Addr(pool->front().addr) == "198.51.100.8");
  CHECK(dp->pool_size() == 8);  // its entries stay, draining
  CHECK(PoolAddr(*dp, 0).flags == AFTR_POOL_ADDR_DRAINING);
  // Inbound to a forgotten address is not ours any more: the kernel gets it.
  bpftest::Bytes to_forgotten = bpftest::FromInternet(bpftest::kRemote, bpftest::Ip4Addr("198.51.100.1"))
                                    .Udp(7, 1030)
                                    .Build();
  CHECK(RunAttached(to_forgotten, Net().inet_ifindex) == XDP_PASS);
  REQUIRE(dp->Reprogram(WithPools(cfg, {"198.51.100.0/30", "198.51.100.8/30"})).ok());
  CHECK(dp->pool_size() == 8);
  CHECK(PoolAddr(*dp, 0).flags == 0);
  CHECK(dp->ReadPool()->size() == 8);

  SECTION("more than 8 prefixes with the draining ones") {
    REQUIRE(SendFromB4(kB4a, 40000) == XDP_REDIRECT);  // a block somewhere in the two /30s
    std::vector<std::string> eight;
    for (int i = 0; i < 8; i++) eight.push_back("198.51.100." + std::to_string(16 + i) + "/32");
    absl::Status s = dp->Reprogram(WithPools(cfg, eight));
    CHECK(absl::IsFailedPrecondition(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("pool_prefixes") && Catch::Contains("draining"));
    CHECK(dp->config().pool_prefixes_size() == 2);
  }
  SECTION("more addresses than tables.max_pool_addresses") {
    absl::Status s = dp->Reprogram(WithPools(cfg, {"198.51.100.64/26"}));
    CHECK(absl::IsResourceExhausted(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("tables.max_pool_addresses"));
  }
}

TEST_CASE("datapath: --detach removes our program only when no aftrd runs, --purge the pins",
          "[datapath][detach]") {
  const Config cfg = TestConfig(FreshPinPath());
  auto dp = MustCreate(cfg);
  absl::Status s = aftr::bpf::DetachDataPlane(cfg, false);
  CHECK(absl::IsFailedPrecondition(s));
  CHECK(AttachedProgId(Net().b4_ifindex) != 0);
  dp.reset();
  REQUIRE(aftr::bpf::DetachDataPlane(cfg, false).ok());
  CHECK(AttachedProgId(Net().b4_ifindex) == 0);
  CHECK(AttachedProgId(Net().inet_ifindex) == 0);
  CHECK(access((cfg.pin_path() + "/aftr_sessions_out").c_str(), F_OK) == 0);
  REQUIRE(aftr::bpf::DetachDataPlane(cfg, true).ok());
  CHECK(access(cfg.pin_path().c_str(), F_OK) != 0);
}

}  // namespace
}  // namespace dptest
