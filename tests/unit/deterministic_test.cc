// Deterministic NAT's mapping from the configuration alone (control/nat/deterministic), both
// ways and at every edge, and the configuration checks that guard it.
#include "control/nat/deterministic.h"

#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "control/config/config.h"
#include "control/config/live_config.h"

namespace aftr::nat {
namespace {

using ::aftr::config::v1::Config;

// 2001:db8:100::/40 in /48s: 256 subscribers of 2048 ports (4 blocks of 512), 31 per address
// (64512 / 2048, the last 1024 ports of each address unused) over 198.51.100.64/28.
constexpr char kConfig[] = R"pb(
  interfaces: "eth0"
  softwire_addresses: "2001:db8:ffff::1"
  b4_prefixes: "2001:db8::/32"
  pool_prefixes: "198.51.100.0/28"
  log_file: "/var/log/aftr/events.log"
  deterministic {
    ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
             pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 }
    ranges { b4_prefix: "2001:db8:ffff:ff00::/120" subscriber_prefix_length: 128
             pool_prefix: "198.51.100.128/30" ports_per_subscriber: 512 }
    ranges { b4_prefix: "2001:db8:aa:bb00::/56" subscriber_prefix_length: 70
             pool_prefix: "203.0.113.0/24" ports_per_subscriber: 512 }
  }
)pb";

Config Parsed(const std::string& text = kConfig) {
  absl::StatusOr<Config> c = config::ParseConfig(text);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return *c;
}

DeterministicMap Map() {
  absl::StatusOr<DeterministicMap> m = DeterministicMap::Create(Parsed());
  REQUIRE(m.ok());
  return *m;
}

Ipv6Address V6(const char* s) { return *ParseIpv6(s); }
Ipv4Address V4(const char* s) { return *ParseIpv4(s); }

TEST_CASE("deterministic: geometry of each range from the configuration", "[deterministic]") {
  DeterministicMap m = Map();
  REQUIRE(m.ranges().size() == 3);
  CHECK(m.ranges()[0].per_addr == 31);
  CHECK(m.ranges()[0].subscribers == 256);
  CHECK(m.ranges()[1].per_addr == 126);
  CHECK(m.ranges()[1].subscribers == 256);
  CHECK(m.ranges()[2].subscribers == 16384);
  CHECK(m.ranges()[0].ToString() == "2001:db8:100::/40 /48 198.51.100.64/28 2048 1024-65535");
}

TEST_CASE("deterministic: B4 address to address and ports at the subscriber and address edges",
          "[deterministic]") {
  DeterministicMap m = Map();
  struct Case {
    const char* b4;
    uint64_t index;
    const char* prefix;
    const char* addr;
    uint16_t first;
  };
  const Case cases[] = {
      {"2001:db8:100::", 0, "2001:db8:100::/48", "198.51.100.64", 1024},
      {"2001:db8:100:ffff:ffff:ffff:ffff:ffff", 0, "2001:db8:100::/48", "198.51.100.64", 1024},
      {"2001:db8:101::1", 1, "2001:db8:101::/48", "198.51.100.64", 3072},
      {"2001:db8:11e::1", 30, "2001:db8:11e::/48", "198.51.100.64", 1024 + 30 * 2048},
      {"2001:db8:11f::1", 31, "2001:db8:11f::/48", "198.51.100.65", 1024},
      {"2001:db8:1ff:ffff:ffff:ffff:ffff:ffff", 255, "2001:db8:1ff::/48", "198.51.100.72",
       1024 + 7 * 2048},
      // /120 in /128s: the lowest bits of the address.
      {"2001:db8:ffff:ff00::", 0, "2001:db8:ffff:ff00::/128", "198.51.100.128", 1024},
      {"2001:db8:ffff:ff00::7d", 125, "2001:db8:ffff:ff00::7d/128", "198.51.100.128",
       1024 + 125 * 512},
      {"2001:db8:ffff:ff00::7e", 126, "2001:db8:ffff:ff00::7e/128", "198.51.100.129", 1024},
      {"2001:db8:ffff:ff00::ff", 255, "2001:db8:ffff:ff00::ff/128", "198.51.100.130",
       1024 + 3 * 512},
      // /56 in /70s: the subscriber bits straddle the two 64-bit halves.
      {"2001:db8:aa:bb01:fc00::1", 127, "2001:db8:aa:bb01:fc00::/70", "203.0.113.1", 1536},
      {"2001:db8:aa:bbff:ffff::", 16383, "2001:db8:aa:bbff:fc00::/70", "203.0.113.130", 2560},
  };
  for (const Case& c : cases) {
    INFO(c.b4);
    std::optional<DeterministicMapping> got = m.ForB4(V6(c.b4));
    REQUIRE(got);
    CHECK(got->subscriber == c.index);
    CHECK(got->subscriber_prefix.ToString() == c.prefix);
    CHECK(got->public_addr.ToString() == c.addr);
    CHECK(got->first_port == c.first);
    CHECK(got->last_port == got->first_port + m.ranges()[got->range].ports_per_subscriber - 1);
  }
}

TEST_CASE("deterministic: addresses outside every range have no mapping", "[deterministic]") {
  DeterministicMap m = Map();
  for (const char* b4 : {"2001:db8:ff:ffff:ffff:ffff:ffff:ffff", "2001:db8:200::", "2001:db8::1",
                         "2001:db8:ffff:fe00::1", "2001:db8:ffff:ff00::100",
                         "2001:db8:aa:bc00::"}) {
    INFO(b4);
    CHECK_FALSE(m.ForB4(V6(b4)));
  }
}

TEST_CASE("deterministic: public address and port to the subscriber prefix at the port and "
          "address edges",
          "[deterministic]") {
  DeterministicMap m = Map();
  auto prefix_of = [&](const char* addr, uint16_t port) -> std::string {
    std::optional<DeterministicMapping> got = m.ForPublic(V4(addr), port);
    return got ? got->subscriber_prefix.ToString() : "none";
  };
  CHECK(prefix_of("198.51.100.64", 1024) == "2001:db8:100::/48");
  CHECK(prefix_of("198.51.100.64", 3071) == "2001:db8:100::/48");
  CHECK(prefix_of("198.51.100.64", 3072) == "2001:db8:101::/48");
  CHECK(prefix_of("198.51.100.64", 64511) == "2001:db8:11e::/48");
  CHECK(prefix_of("198.51.100.64", 64512) == "none");  // the unused tail of each address
  CHECK(prefix_of("198.51.100.64", 65535) == "none");
  CHECK(prefix_of("198.51.100.64", 1023) == "none");
  CHECK(prefix_of("198.51.100.64", 0) == "none");
  CHECK(prefix_of("198.51.100.65", 1024) == "2001:db8:11f::/48");
  CHECK(prefix_of("198.51.100.72", 15360) == "2001:db8:1ff::/48");
  CHECK(prefix_of("198.51.100.72", 17407) == "2001:db8:1ff::/48");
  CHECK(prefix_of("198.51.100.72", 17408) == "none");  // subscriber 256: past the last
  CHECK(prefix_of("198.51.100.79", 1024) == "none");
  CHECK(prefix_of("198.51.100.63", 1024) == "none");
  CHECK(prefix_of("198.51.100.80", 1024) == "none");
  CHECK(prefix_of("198.51.100.1", 1024) == "none");  // the dynamic pool
  CHECK(prefix_of("198.51.100.129", 1024) == "2001:db8:ffff:ff00::7e/128");
  CHECK(m.RangeOfPublic(V4("198.51.100.79")) == 0);
  CHECK(m.RangeOfPublic(V4("198.51.100.1")) == -1);
}

TEST_CASE("deterministic: every subscriber of a range maps back from its first and last port",
          "[deterministic]") {
  DeterministicMap m = Map();
  for (int r : {0, 1}) {
    const DeterministicRange& range = m.ranges()[r];
    for (uint64_t i = 0; i < range.subscribers; ++i) {
      // The subscriber's prefix, and an address deep inside it.
      std::optional<DeterministicMapping> a = m.ForPublic(
          Ipv4Address{range.pool_prefix.addr.host_order + uint32_t(i / range.per_addr)},
          uint16_t(range.port_min + (i % range.per_addr) * range.ports_per_subscriber));
      REQUIRE(a);
      CHECK(a->subscriber == i);
      std::optional<DeterministicMapping> b = m.ForB4(a->subscriber_prefix.addr);
      REQUIRE(b);
      CHECK(b->subscriber == i);
      CHECK(b->public_addr == a->public_addr);
      CHECK(b->first_port == a->first_port);
      std::optional<DeterministicMapping> c = m.ForPublic(b->public_addr, b->last_port);
      REQUIRE(c);
      CHECK(c->subscriber == i);
      if (b->last_port < 65535) {
        std::optional<DeterministicMapping> next = m.ForPublic(b->public_addr, b->last_port + 1);
        CHECK((!next || next->subscriber == i + 1));
      }
    }
  }
}

// ---- Configuration checks ----

void ExpectInvalid(const std::string& ranges, const std::vector<std::string>& needles,
                   const std::string& extra = "") {
  std::string text = absl::StrCat(R"pb(
    interfaces: "eth0"
    softwire_addresses: "2001:db8:ffff::1"
    b4_prefixes: "2001:db8::/32"
    pool_prefixes: "198.51.100.0/28"
    log_file: "/var/log/aftr/events.log"
  )pb", extra, " deterministic { ", ranges, " }");
  absl::StatusOr<Config> c = config::ParseConfig(text);
  INFO(c.status().ToString());
  REQUIRE_FALSE(c.ok());
  for (const std::string& needle : needles) {
    INFO(needle);
    CHECK(c.status().message().find(needle) != absl::string_view::npos);
  }
}

TEST_CASE("deterministic config: each problem is named with its field", "[deterministic][config]") {
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db9::/40" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].b4_prefix", "not inside any of b4_prefixes"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 40
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].subscriber_prefix_length", "41..128"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 129
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].subscriber_prefix_length", "not in"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 65
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].subscriber_prefix_length", "2^25", "64 or less"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.8/29" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].pool_prefix", "overlaps pool_prefixes[0]"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2000 })",
                {"deterministic.ranges[0].ports_per_subscriber", "block_size 512"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 4608 })",
                {"deterministic.ranges[0].ports_per_subscriber", "1..8 times"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.64/29" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].pool_prefix", "8 addresses x 31 subscribers",
                 "= 248 subscribers", "has 256: 8 do not fit"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 }
                  ranges { b4_prefix: "2001:db8:180::/41" subscriber_prefix_length: 48
                  pool_prefix: "198.51.100.72/29" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[1].b4_prefix", "overlaps deterministic.ranges[0].b4_prefix",
                 "deterministic.ranges[1].pool_prefix",
                 "overlaps deterministic.ranges[0].pool_prefix"});
  ExpectInvalid(R"(ranges { b4_prefix: "2001:db8:100::/40" subscriber_prefix_length: 48
                  pool_prefix: "" ports_per_subscriber: 2048 })",
                {"deterministic.ranges[0].pool_prefix: is required"});
}

TEST_CASE("deterministic config: ranges are restart-only", "[deterministic][config]") {
  Config before = Parsed();
  Config after = before;
  after.mutable_deterministic()->mutable_ranges(0)->set_ports_per_subscriber(1024);
  std::vector<std::string> fixed = config::NonLiveFields(config::ChangedFields(before, after));
  REQUIRE(fixed.size() == 1);
  CHECK(fixed[0] == "deterministic.ranges");
}

}  // namespace
}  // namespace aftr::nat
