#include "control/config/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"

namespace aftr::config {
namespace {

using ::aftr::config::v1::Config;

constexpr char kMinimal[] = R"pb(
  interfaces: "eth0"
  softwire_addresses: "2001:db8:ffff::1"
  b4_prefixes: "2001:db8::/32"
  pool_prefixes: "198.51.100.0/28"
  log_file: "/var/log/aftr/events.log"
)pb";

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

Config Minimal() {
  absl::StatusOr<Config> config = ParseConfig(kMinimal);
  REQUIRE(config.ok());
  return *config;
}

// Applies `mutate` to the minimal (defaulted) config and expects ValidateConfig to fail with
// InvalidArgument whose message contains every string in `needles` (the first is the field).
void ExpectInvalid(const std::function<void(Config&)>& mutate,
                   const std::vector<std::string>& needles) {
  Config config = Minimal();
  mutate(config);
  absl::Status status = ValidateConfig(config);
  INFO(status.ToString());
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  for (const std::string& needle : needles) {
    INFO(needle);
    CHECK(Contains(status.message(), needle));
  }
}

void ExpectValid(const std::function<void(Config&)>& mutate) {
  Config config = Minimal();
  mutate(config);
  absl::Status status = ValidateConfig(config);
  INFO(status.ToString());
  CHECK(status.ok());
}

// Same as ExpectInvalid but through ParseConfig on kMinimal + `extra` (so defaults apply).
void ExpectParseInvalid(const std::string& extra, const std::vector<std::string>& needles) {
  absl::StatusOr<Config> config = ParseConfig(absl::StrCat(kMinimal, extra));
  INFO(config.status().ToString());
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
  for (const std::string& needle : needles) {
    INFO(needle);
    CHECK(Contains(config.status().message(), needle));
  }
}

std::string SourceDir() {
  std::string file = __FILE__;
  return file.substr(0, file.rfind('/'));
}

TEST_CASE("minimal config parses and gets every default", "[config]") {
  absl::StatusOr<Config> parsed = ParseConfig(kMinimal);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  const Config& c = *parsed;
  CHECK(c.interfaces_size() == 1);
  CHECK(c.interfaces(0) == "eth0");
  CHECK(c.softwire_addresses(0) == "2001:db8:ffff::1");
  CHECK(c.b4_prefixes(0) == "2001:db8::/32");
  CHECK(c.pool_prefixes(0) == "198.51.100.0/28");
  CHECK(c.log_file() == "/var/log/aftr/events.log");

  CHECK(c.pin_path() == "/sys/fs/bpf/aftr");
  CHECK(c.tcp_mss_clamp() == 1420);
  CHECK(c.sweep_interval_ms() == 1000);
  CHECK(c.hop_limit() == 64);
  CHECK(c.event_ring_bytes() == (1u << 20));
  CHECK(c.port_blocks().port_min() == 1024);
  CHECK(c.port_blocks().port_max() == 65535);
  CHECK(c.port_blocks().block_size() == 512);
  CHECK(c.port_blocks().max_blocks_per_subscriber() == 4);
  CHECK(c.port_blocks().max_sessions_per_subscriber() == 4096);
  CHECK(c.port_blocks().hold_down_seconds() == 120);
  CHECK(c.timeouts().tcp_established() == 7440);
  CHECK(c.timeouts().tcp_transitory() == 240);
  CHECK(c.timeouts().udp() == 300);
  CHECK(c.timeouts().icmp() == 60);
  CHECK(c.tables().max_sessions() == 1048576);
  CHECK(c.tables().max_subscribers() == 65536);
  CHECK(c.filtering() == v1::FILTERING_ENDPOINT_INDEPENDENT);

  CHECK(ConfigWarnings(c).empty());
}

TEST_CASE("explicit values are kept by ApplyDefaults", "[config]") {
  absl::StatusOr<Config> parsed = ParseConfig(absl::StrCat(kMinimal, R"pb(
    pin_path: "/sys/fs/bpf/lab"
    tcp_mss_clamp: -1
    sweep_interval_ms: 50
    hop_limit: 32
    event_ring_bytes: 4096
    port_blocks { port_min: 2000 port_max: 2999 block_size: 100 max_blocks_per_subscriber: 2
                  max_sessions_per_subscriber: 10 hold_down_seconds: 5 }
    timeouts { tcp_established: 30 tcp_transitory: 5 udp: 10 icmp: 3 }
    filtering: FILTERING_ADDRESS_DEPENDENT
    tables { max_sessions: 1000 max_subscribers: 10 }
  )pb"));
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  const Config& c = *parsed;
  CHECK(c.pin_path() == "/sys/fs/bpf/lab");
  CHECK(c.tcp_mss_clamp() == -1);
  CHECK(c.sweep_interval_ms() == 50);
  CHECK(c.hop_limit() == 32);
  CHECK(c.event_ring_bytes() == 4096);
  CHECK(c.port_blocks().port_min() == 2000);
  CHECK(c.port_blocks().port_max() == 2999);
  CHECK(c.port_blocks().block_size() == 100);
  CHECK(c.port_blocks().max_blocks_per_subscriber() == 2);
  CHECK(c.port_blocks().max_sessions_per_subscriber() == 10);
  CHECK(c.port_blocks().hold_down_seconds() == 5);
  CHECK(c.timeouts().tcp_established() == 30);
  CHECK(c.timeouts().tcp_transitory() == 5);
  CHECK(c.timeouts().udp() == 10);
  CHECK(c.timeouts().icmp() == 3);
  CHECK(c.filtering() == v1::FILTERING_ADDRESS_DEPENDENT);
  CHECK(c.tables().max_sessions() == 1000);
  CHECK(c.tables().max_subscribers() == 10);
}

TEST_CASE("ApplyDefaults on an empty config", "[config]") {
  Config c;
  ApplyDefaults(&c);
  CHECK(c.pin_path() == kDefaultPinPath);
  CHECK(c.tcp_mss_clamp() == kDefaultTcpMssClamp);
  CHECK(c.filtering() == v1::FILTERING_ENDPOINT_INDEPENDENT);
  // Required fields stay missing and are reported all at once, each naming its field.
  absl::Status status = ValidateConfig(c);
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  for (const char* field : {"interfaces", "softwire_addresses", "b4_prefixes", "pool_prefixes",
                            "log_file"}) {
    INFO(field);
    CHECK(Contains(status.message(), field));
  }
}

TEST_CASE("fragments: defaults and ranges", "[config]") {
  Config c = Minimal();
  CHECK(c.fragments().timeout_ms() == kDefaultFragmentTimeoutMs);
  CHECK(c.fragments().max_datagrams() == kDefaultFragmentMaxDatagrams);
  CHECK(c.fragments().max_bytes() == kDefaultFragmentMaxBytes);
  absl::StatusOr<Config> set =
      ParseConfig(absl::StrCat(kMinimal, "fragments { timeout_ms: 1000 max_datagrams: 10 max_bytes: 65536 }"));
  REQUIRE(set.ok());
  CHECK(set->fragments().timeout_ms() == 1000);
  CHECK(set->fragments().max_datagrams() == 10);
  CHECK(set->fragments().max_bytes() == 65536);
  ExpectInvalid([](Config& x) { x.mutable_fragments()->set_timeout_ms(99); },
                {"fragments.timeout_ms", "99 is not in 100..60000"});
  ExpectInvalid([](Config& x) { x.mutable_fragments()->set_timeout_ms(60001); }, {"fragments.timeout_ms"});
  ExpectValid([](Config& x) { x.mutable_fragments()->set_timeout_ms(60000); });
  ExpectInvalid([](Config& x) { x.mutable_fragments()->set_max_datagrams((1u << 20) + 1); },
                {"fragments.max_datagrams"});
  ExpectInvalid([](Config& x) { x.mutable_fragments()->set_max_bytes(65535); }, {"fragments.max_bytes"});
  ExpectInvalid([](Config& x) { x.mutable_fragments()->set_max_bytes((1ull << 30) + 1); },
                {"fragments.max_bytes"});
}

TEST_CASE("textproto syntax errors name line:column", "[config]") {
  absl::StatusOr<Config> c = ParseConfig("interfaces: \"eth0\"\nsoftwire_addresses: 5\n");
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Contains(c.status().message(), "2:21"));
  CHECK(Contains(c.status().message(), "softwire_addresses"));

  c = ParseConfig("interfaces: \"eth0\"\n\n  port_blocks { block_size: 512\n");
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Contains(c.status().message(), "4:1"));

  c = ParseConfig("hop_limit: -3\n");
  REQUIRE_FALSE(c.ok());
  CHECK(Contains(c.status().message(), "1:12"));
  CHECK(Contains(c.status().message(), "hop_limit"));
}

TEST_CASE("unknown fields and enum names are errors", "[config]") {
  absl::StatusOr<Config> c = ParseConfig(absl::StrCat(kMinimal, "\n  no_such_field: 1\n"));
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Contains(c.status().message(), "no_such_field"));
  CHECK(Contains(c.status().message(), "8:16"));

  c = ParseConfig("timeouts { tcp: 5 }");
  REQUIRE_FALSE(c.ok());
  CHECK(Contains(c.status().message(), "1:15"));
  CHECK(Contains(c.status().message(), "\"tcp\""));

  c = ParseConfig("filtering: FILTERING_SYMMETRIC");
  REQUIRE_FALSE(c.ok());
  CHECK(Contains(c.status().message(), "FILTERING_SYMMETRIC"));
}

TEST_CASE("interfaces rules", "[config]") {
  ExpectInvalid([](Config& c) { c.clear_interfaces(); }, {"interfaces", "at least one"});
  ExpectInvalid([](Config& c) { c.add_interfaces(""); }, {"interfaces[1]", "empty"});
  ExpectInvalid([](Config& c) { c.add_interfaces("a-very-long-name"); },  // 16 chars
                {"interfaces[1]", "\"a-very-long-name\"", "15"});
  ExpectValid([](Config& c) { c.add_interfaces("fifteen-chars-x"); });
  ExpectInvalid([](Config& c) { c.add_interfaces("eth0"); }, {"interfaces[1]", "twice"});
  ExpectInvalid([](Config& c) { c.add_interfaces("eth/1"); }, {"interfaces[1]", "\"eth/1\""});
  ExpectInvalid([](Config& c) { c.add_interfaces("eth 1"); }, {"interfaces[1]"});
}

TEST_CASE("softwire_addresses rules", "[config]") {
  ExpectInvalid([](Config& c) { c.clear_softwire_addresses(); },
                {"softwire_addresses", "at least one"});
  ExpectInvalid([](Config& c) { c.add_softwire_addresses("2001:db8::zz"); },
                {"softwire_addresses[1]: \"2001:db8::zz\" is not an IPv6 address"});
  ExpectInvalid([](Config& c) { c.add_softwire_addresses("ff02::1"); },
                {"softwire_addresses[1]", "multicast"});
  ExpectInvalid([](Config& c) { c.add_softwire_addresses("::"); },
                {"softwire_addresses[1]", "unspecified"});
  ExpectInvalid([](Config& c) { c.add_softwire_addresses("2001:db8:ffff:0::1"); },
                {"softwire_addresses[1]", "twice"});
  ExpectInvalid([](Config& c) { c.add_softwire_addresses("198.51.100.1"); },
                {"softwire_addresses[1]", "IPv6"});
  ExpectValid([](Config& c) {
    for (int i = 2; i <= 4; ++i) c.add_softwire_addresses(absl::StrCat("2001:db8:ffff::", i));
  });
  ExpectInvalid(
      [](Config& c) {
        for (int i = 2; i <= 5; ++i) c.add_softwire_addresses(absl::StrCat("2001:db8:ffff::", i));
      },
      {"softwire_addresses", "at most 4"});
}

TEST_CASE("b4_prefixes rules", "[config]") {
  ExpectInvalid([](Config& c) { c.clear_b4_prefixes(); }, {"b4_prefixes", "at least one"});
  ExpectInvalid([](Config& c) { c.add_b4_prefixes("2001:db8:100::1/40"); },
                {"b4_prefixes[1]", "host bits"});
  ExpectInvalid([](Config& c) { c.add_b4_prefixes("2001:db8:100::"); },
                {"b4_prefixes[1]", "\"2001:db8:100::\""});
  ExpectInvalid([](Config& c) { c.add_b4_prefixes("2001:db8::/200"); }, {"b4_prefixes[1]"});
  ExpectValid([](Config& c) { c.add_b4_prefixes("2001:db8:100::/40"); });
}

TEST_CASE("pool_prefixes rules", "[config]") {
  ExpectInvalid([](Config& c) { c.clear_pool_prefixes(); }, {"pool_prefixes", "at least one"});
  ExpectInvalid([](Config& c) { c.set_pool_prefixes(0, "198.51.100.1/28"); },
                {"pool_prefixes[0]", "\"198.51.100.1/28\"", "host bits"});
  ExpectInvalid([](Config& c) { c.add_pool_prefixes("bogus"); },
                {"pool_prefixes[1]", "\"bogus\""});
  ExpectInvalid([](Config& c) { c.add_pool_prefixes("198.51.100.8/29"); },
                {"pool_prefixes[1]", "overlaps pool_prefixes[0]"});
  ExpectInvalid([](Config& c) { c.add_pool_prefixes("198.51.0.0/16"); },
                {"pool_prefixes[1]", "overlaps"});
  ExpectValid([](Config& c) {
    for (int i = 1; i < 8; ++i) c.add_pool_prefixes(absl::StrCat("203.0.113.", 16 * i, "/28"));
  });
  ExpectInvalid(
      [](Config& c) {
        for (int i = 1; i < 9; ++i) c.add_pool_prefixes(absl::StrCat("203.0.113.", 16 * i, "/28"));
      },
      {"pool_prefixes", "at most 8"});
  ExpectValid([](Config& c) {
    c.set_pool_prefixes(0, "10.0.0.0/16");
    c.mutable_tables()->set_max_pool_addresses(65536);
  });
  ExpectInvalid([](Config& c) { c.set_pool_prefixes(0, "10.0.0.0/15"); },
                {"pool_prefixes", "131072 addresses", "65536"});
  ExpectInvalid(
      [](Config& c) {
        c.set_pool_prefixes(0, "10.0.0.0/16");
        c.add_pool_prefixes("10.1.0.0/31");
      },
      {"pool_prefixes", "65538 addresses"});
}

TEST_CASE("port_blocks rules", "[config]") {
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_port_min(0); },
                {"port_blocks.port_min"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_port_max(70000); },
                {"port_blocks.port_max", "70000"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_port_min(65536); },
                {"port_blocks.port_min", "65536"});
  ExpectParseInvalid("port_blocks { port_min: 5000 port_max: 4000 }",
                     {"port_blocks.port_max", "4000", "5000"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_block_size(0); },
                {"port_blocks.block_size", "at least 1"});
  ExpectParseInvalid("port_blocks { port_min: 1024 port_max: 2047 block_size: 2000 }",
                     {"port_blocks.block_size", "2000", "larger than the port range"});
  ExpectValid([](Config& c) {
    auto* pb = c.mutable_port_blocks();
    pb->set_port_min(1024);
    pb->set_port_max(2047);
    pb->set_block_size(1024);  // exactly one block
  });
  // 64512 ports / 32 = 2016 blocks > 1024; 63 is the smallest block_size that fits.
  ExpectParseInvalid("port_blocks { block_size: 32 }",
                     {"port_blocks.block_size", "32 gives 2016 blocks", "1024",
                      "block_size 63 or more"});
  ExpectValid([](Config& c) { c.mutable_port_blocks()->set_block_size(63); });
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_block_size(62); },
                {"port_blocks.block_size", "62 gives 1040 blocks"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_max_blocks_per_subscriber(9); },
                {"port_blocks.max_blocks_per_subscriber", "9", "1..8"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_max_blocks_per_subscriber(0); },
                {"port_blocks.max_blocks_per_subscriber"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_max_sessions_per_subscriber(0); },
                {"port_blocks.max_sessions_per_subscriber"});
  ExpectInvalid([](Config& c) { c.mutable_port_blocks()->set_hold_down_seconds(86401); },
                {"port_blocks.hold_down_seconds", "86401"});
  ExpectValid([](Config& c) { c.mutable_port_blocks()->set_hold_down_seconds(86400); });
}

TEST_CASE("timeouts rules", "[config]") {
  ExpectInvalid([](Config& c) { c.mutable_timeouts()->set_tcp_established(0); },
                {"timeouts.tcp_established"});
  ExpectInvalid([](Config& c) { c.mutable_timeouts()->set_tcp_transitory(7 * 86400 + 1); },
                {"timeouts.tcp_transitory", "604801"});
  ExpectInvalid([](Config& c) { c.mutable_timeouts()->set_udp(0); }, {"timeouts.udp"});
  ExpectParseInvalid("timeouts { icmp: 1000000 }", {"timeouts.icmp", "1000000"});
  ExpectValid([](Config& c) { c.mutable_timeouts()->set_tcp_established(7 * 86400); });
}

TEST_CASE("tables rules", "[config]") {
  ExpectInvalid([](Config& c) { c.mutable_tables()->set_max_sessions(0); },
                {"tables.max_sessions"});
  ExpectParseInvalid("tables { max_sessions: 67108865 }", {"tables.max_sessions", "67108865"});
  ExpectValid([](Config& c) { c.mutable_tables()->set_max_sessions(1u << 26); });
  ExpectInvalid([](Config& c) { c.mutable_tables()->set_max_subscribers(0); },
                {"tables.max_subscribers"});
  ExpectParseInvalid("tables { max_subscribers: 16777217 }",
                     {"tables.max_subscribers", "16777217"});
  ExpectValid([](Config& c) { c.mutable_tables()->set_max_subscribers(1u << 24); });
}

TEST_CASE("pcp defaults: off, on the softwire addresses, RFC 6887 lifetimes, strict nonces",
          "[config]") {
  const Config c = Minimal();
  CHECK_FALSE(c.pcp().enabled());
  REQUIRE(c.pcp().listen_addresses_size() == 1);
  CHECK(c.pcp().listen_addresses(0) == "2001:db8:ffff::1");
  CHECK(c.pcp().port() == 5351);
  CHECK(c.pcp().min_lifetime() == 120);
  CHECK(c.pcp().max_lifetime() == 86400);
  CHECK(c.pcp().nonce_check() == aftr::config::v1::NONCE_CHECK_STRICT);
  CHECK(c.pcp().max_mappings_per_subscriber() == 64);
  CHECK(c.pcp().internal_prefixes_size() == 5);
  CHECK(c.pcp().requests_per_second() == 20);
  CHECK(c.pcp().request_burst() == 40);
  CHECK(c.pcp().clients_file() == "/var/lib/aftrd/pcp-clients");
  CHECK(c.pcp().max_mappings() == 65536);
  // Explicit values stay.
  absl::StatusOr<Config> e = ParseConfig(absl::StrCat(
      kMinimal, R"pb(pcp { enabled: true listen_addresses: "2001:db8:ffff::2" port: 15351
                        nonce_check: NONCE_CHECK_RELAXED internal_prefixes: "192.0.2.0/24" })pb"));
  REQUIRE(e.ok());
  CHECK(e->pcp().listen_addresses(0) == "2001:db8:ffff::2");
  CHECK(e->pcp().port() == 15351);
  CHECK(e->pcp().nonce_check() == aftr::config::v1::NONCE_CHECK_RELAXED);
  REQUIRE(e->pcp().internal_prefixes_size() == 1);
}

TEST_CASE("pcp rules", "[config]") {
  ExpectParseInvalid("pcp { listen_addresses: \"2001:db8::zz\" }", {"pcp.listen_addresses[0]"});
  ExpectParseInvalid("pcp { listen_addresses: \"ff02::1\" }",
                     {"pcp.listen_addresses[0]", "not a unicast"});
  ExpectParseInvalid("pcp { port: 70000 }", {"pcp.port", "70000"});
  ExpectParseInvalid("pcp { min_lifetime: 600 max_lifetime: 300 }",
                     {"pcp.min_lifetime", "600", "pcp.max_lifetime (300)"});
  ExpectParseInvalid("pcp { max_lifetime: 604801 }", {"pcp.max_lifetime", "604801"});
  ExpectParseInvalid("pcp { internal_prefixes: \"192.0.2.1/24\" }", {"pcp.internal_prefixes[0]"});
  ExpectParseInvalid("pcp { clients_file: \"pcp-clients\" }", {"pcp.clients_file", "absolute"});
  ExpectParseInvalid("pcp { max_mappings: 4194305 }", {"pcp.max_mappings", "4194305"});
  ExpectInvalid([](Config& c) { c.mutable_pcp()->set_max_mappings(0); }, {"pcp.max_mappings"});
  ExpectInvalid([](Config& c) { c.mutable_pcp()->set_request_burst(0); }, {"pcp.request_burst"});
  ExpectInvalid([](Config& c) { c.mutable_pcp()->set_nonce_check(static_cast<aftr::config::v1::NonceCheck>(7)); },
                {"pcp.nonce_check"});
  ExpectValid([](Config& c) {
    c.mutable_pcp()->set_enabled(true);
    c.mutable_pcp()->set_min_lifetime(2);
  });
}

TEST_CASE("paths rules", "[config]") {
  ExpectInvalid([](Config& c) { c.clear_log_file(); }, {"log_file", "required"});
  ExpectInvalid([](Config& c) { c.set_log_file("events.log"); },
                {"log_file", "\"events.log\"", "absolute"});
  ExpectParseInvalid("pin_path: \"bpf/aftr\"", {"pin_path", "\"bpf/aftr\"", "absolute"});
  ExpectInvalid([](Config& c) { c.clear_pin_path(); }, {"pin_path"});
}

TEST_CASE("scalar rules", "[config]") {
  ExpectParseInvalid("tcp_mss_clamp: 535", {"tcp_mss_clamp", "535"});
  ExpectParseInvalid("tcp_mss_clamp: -2", {"tcp_mss_clamp", "-2"});
  ExpectParseInvalid("tcp_mss_clamp: 65496", {"tcp_mss_clamp", "65496"});
  ExpectValid([](Config& c) { c.set_tcp_mss_clamp(536); });
  ExpectValid([](Config& c) { c.set_tcp_mss_clamp(65495); });
  ExpectValid([](Config& c) { c.set_tcp_mss_clamp(-1); });

  ExpectParseInvalid("hop_limit: 256", {"hop_limit", "256"});
  ExpectInvalid([](Config& c) { c.set_hop_limit(0); }, {"hop_limit"});
  ExpectValid([](Config& c) { c.set_hop_limit(255); });

  ExpectParseInvalid("event_ring_bytes: 6000", {"event_ring_bytes", "6000", "power of two"});
  ExpectParseInvalid("event_ring_bytes: 2048", {"event_ring_bytes", "2048"});
  ExpectParseInvalid("event_ring_bytes: 2147483648", {"event_ring_bytes", "2147483648"});
  ExpectValid([](Config& c) { c.set_event_ring_bytes(1u << 30); });

  ExpectParseInvalid("sweep_interval_ms: 9", {"sweep_interval_ms", "9"});
  ExpectParseInvalid("sweep_interval_ms: 60001", {"sweep_interval_ms", "60001"});
  ExpectValid([](Config& c) { c.set_sweep_interval_ms(10); });
}

TEST_CASE("logging.limit_event_interval_ms: default 1000, 0 kept (no limiting), bounded", "[config]") {
  absl::StatusOr<Config> c = ParseConfig(kMinimal);
  REQUIRE(c.ok());
  CHECK(c->logging().limit_event_interval_ms() == kDefaultLimitEventIntervalMs);
  CHECK(kDefaultLimitEventIntervalMs == 1000);
  // 0 is a choice, not "unset": ApplyDefaults must keep it.
  c = ParseConfig(absl::StrCat(kMinimal, "logging { limit_event_interval_ms: 0 }"));
  REQUIRE(c.ok());
  CHECK(c->logging().has_limit_event_interval_ms());
  CHECK(c->logging().limit_event_interval_ms() == 0);
  c = ParseConfig(absl::StrCat(kMinimal, "logging { limit_event_interval_ms: 3600000 }"));
  REQUIRE(c.ok());
  CHECK(c->logging().limit_event_interval_ms() == 3600000);
  ExpectParseInvalid("logging { limit_event_interval_ms: 3600001 }",
                     {"logging.limit_event_interval_ms", "3600001", "0..3600000"});
}

TEST_CASE("filtering must be a known enum value", "[config]") {
  // Proto3 enums are open: a number parses, validation rejects it.
  ExpectParseInvalid("filtering: 7", {"filtering", "7"});
  ExpectInvalid([](Config& c) { c.set_filtering(static_cast<v1::Filtering>(3)); },
                {"filtering"});
  ExpectValid([](Config& c) { c.set_filtering(v1::FILTERING_ADDRESS_DEPENDENT); });
}

TEST_CASE("all errors are reported together", "[config]") {
  ExpectInvalid(
      [](Config& c) {
        c.set_hop_limit(0);
        c.set_softwire_addresses(0, "nope");
      },
      {"hop_limit", "softwire_addresses[0]", "; "});
}

TEST_CASE("warnings for timeouts below RFC minimums", "[config]") {
  absl::StatusOr<Config> c = ParseConfig(absl::StrCat(
      kMinimal, "timeouts { tcp_established: 30 tcp_transitory: 10 udp: 5 icmp: 2 }"));
  REQUIRE(c.ok());
  std::vector<std::string> warnings = ConfigWarnings(*c);
  INFO(absl::StrJoin(warnings, "\n"));
  REQUIRE(warnings.size() == 4);
  const std::string all = absl::StrJoin(warnings, "\n");
  CHECK(Contains(all, "timeouts.tcp_established: 30"));
  CHECK(Contains(all, "RFC 5382 REQ-5"));
  CHECK(Contains(all, "timeouts.tcp_transitory: 10"));
  CHECK(Contains(all, "timeouts.udp: 5"));
  CHECK(Contains(all, "RFC 4787 REQ-5"));
  CHECK(Contains(all, "timeouts.icmp: 2"));
  CHECK(Contains(all, "RFC 5508 REQ-1"));

  // At the minimums: no warning (udp minimum is 120 even though the default is 300).
  c = ParseConfig(absl::StrCat(kMinimal, "timeouts { udp: 120 }"));
  REQUIRE(c.ok());
  CHECK(ConfigWarnings(*c).empty());
  c = ParseConfig(absl::StrCat(kMinimal, "timeouts { udp: 119 }"));
  REQUIRE(c.ok());
  REQUIRE(ConfigWarnings(*c).size() == 1);
  CHECK(Contains(ConfigWarnings(*c)[0], "timeouts.udp"));
}

TEST_CASE("warnings for port blocks that waste ports", "[config]") {
  absl::StatusOr<Config> c = ParseConfig(absl::StrCat(kMinimal, "port_blocks { block_size: 7000 }"));
  REQUIRE(c.ok());
  std::vector<std::string> warnings = ConfigWarnings(*c);
  REQUIRE(warnings.size() == 1);
  CHECK(Contains(warnings[0], "port_blocks.block_size: 7000 gives 9 blocks"));
  CHECK(Contains(warnings[0], "1512 ports unused"));

  c = ParseConfig(absl::StrCat(
      kMinimal, "port_blocks { port_min: 1024 port_max: 2047 block_size: 512 "
                "max_blocks_per_subscriber: 4 }"));
  REQUIRE(c.ok());
  warnings = ConfigWarnings(*c);
  REQUIRE(warnings.size() == 1);
  CHECK(Contains(warnings[0], "port_blocks.max_blocks_per_subscriber"));
}

TEST_CASE("LoadConfigFile on a missing path is NotFound naming the path", "[config]") {
  const std::string path = "/nonexistent/aftr/config.textproto";
  absl::StatusOr<Config> c = LoadConfigFile(path);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == absl::StatusCode::kNotFound);
  CHECK(Contains(c.status().message(), path));
}

TEST_CASE("LoadConfigFile prefixes errors with the path", "[config]") {
  char tmpl[] = "/tmp/aftr_config_test_XXXXXX";
  const int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  const std::string path = tmpl;
  {
    std::ofstream out(path);
    out << kMinimal << "\nhop_limit: 300\n";
  }
  absl::StatusOr<Config> c = LoadConfigFile(path);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StartsWith(c.status().message(), path + ": "));
  CHECK(Contains(c.status().message(), "hop_limit: 300"));
  {
    std::ofstream out(path);
    out << "interfaces: \"eth0\"\nbogus: 1\n";
  }
  c = LoadConfigFile(path);
  REQUIRE_FALSE(c.ok());
  CHECK(absl::StartsWith(c.status().message(), path + ":2:6: "));
  CHECK(Contains(c.status().message(), "bogus"));
  {
    std::ofstream out(path);
    out << kMinimal;
  }
  c = LoadConfigFile(path);
  INFO(c.status().ToString());
  CHECK(c.ok());
  std::remove(path.c_str());

  // A directory opens but cannot be read.
  c = LoadConfigFile("/tmp");
  REQUIRE_FALSE(c.ok());
  CHECK(Contains(c.status().message(), "/tmp:"));
}

TEST_CASE("the example config loads", "[config]") {
  const std::string path = SourceDir() + "/../../control/config/example.textproto";
  absl::StatusOr<Config> c = LoadConfigFile(path);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  CHECK(c->interfaces_size() == 3);
  CHECK(c->interfaces(0) == "veth-b4a");
  CHECK(c->interfaces(1) == "veth-b4b");
  CHECK(c->interfaces(2) == "veth-inet");
  REQUIRE(c->softwire_addresses_size() == 1);
  CHECK(c->softwire_addresses(0) == "2001:db8:ffff::1");
  REQUIRE(c->b4_prefixes_size() == 1);
  CHECK(c->b4_prefixes(0) == "2001:db8::/32");
  REQUIRE(c->pool_prefixes_size() == 1);
  CHECK(c->pool_prefixes(0) == "198.51.100.0/28");
  CHECK(c->port_blocks().block_size() == 512);
  CHECK(c->log_file() == "/var/log/aftr/events.log");
  CHECK(c->pin_path() == "/sys/fs/bpf/aftr");
  CHECK(ConfigWarnings(*c).empty());
}

TEST_CASE("tables.max_pool_addresses must hold the pool", "[config]") {
  ExpectInvalid([](Config& c) { c.mutable_tables()->set_max_pool_addresses(0); },
                {"tables.max_pool_addresses", "not in 1..65536"});
  ExpectInvalid([](Config& c) { c.mutable_tables()->set_max_pool_addresses(8); },
                {"tables.max_pool_addresses", "less than the 16 addresses"});
  // The default grows with a pool larger than 4096 addresses.
  absl::StatusOr<Config> big = ParseConfig(absl::StrCat(kMinimal, "pool_prefixes: \"10.0.0.0/19\"\n"));
  REQUIRE(big.ok());
  CHECK(big->tables().max_pool_addresses() == 8192 + 16);
}

TEST_CASE("api and metrics rules", "[config]") {
  absl::StatusOr<Config> defaults = ParseConfig(kMinimal);
  REQUIRE(defaults.ok());
  CHECK(defaults->api().unix_socket() == "/run/aftrd/aftrd.sock");
  CHECK(defaults->metrics().listen().empty());
  ExpectValid([](Config& c) { c.mutable_api()->set_unix_socket("-"); });
  ExpectInvalid([](Config& c) { c.mutable_api()->set_unix_socket("aftrd.sock"); },
                {"api.unix_socket", "absolute path"});
  ExpectInvalid([](Config& c) { c.mutable_api()->set_tcp_listen("[::1]:9470"); },
                {"api.tls", "needs tls.cert_file"});
  ExpectInvalid(
      [](Config& c) {
        c.mutable_api()->set_tcp_listen("127.0.0.1:99999");
        c.mutable_api()->mutable_tls()->set_cert_file("/etc/aftr/cert.pem");
        c.mutable_api()->mutable_tls()->set_key_file("/etc/aftr/key.pem");
      },
      {"api.tcp_listen", "not address:port"});
  ExpectValid([](Config& c) {
    c.mutable_api()->set_tcp_listen("[::1]:9470");
    c.mutable_api()->mutable_tls()->set_cert_file("/etc/aftr/cert.pem");
    c.mutable_api()->mutable_tls()->set_key_file("/etc/aftr/key.pem");
    c.mutable_api()->mutable_tls()->set_client_ca_file("/etc/aftr/ca.pem");
  });
  ExpectInvalid([](Config& c) { c.mutable_api()->mutable_tls()->set_cert_file("/etc/c.pem"); },
                {"api.tls", "tcp_listen is empty"});
  ExpectInvalid(
      [](Config& c) {
        c.mutable_api()->set_tcp_listen("127.0.0.1:9470");
        c.mutable_api()->mutable_tls()->set_cert_file("cert.pem");
        c.mutable_api()->mutable_tls()->set_key_file("/k.pem");
      },
      {"api.tls.cert_file", "absolute"});
  ExpectInvalid([](Config& c) { c.mutable_metrics()->set_listen("localhost"); },
                {"metrics.listen", "not address:port"});
  ExpectValid([](Config& c) { c.mutable_metrics()->set_listen("127.0.0.1:9469"); });
  ExpectInvalid([](Config& c) { c.mutable_metrics()->set_listen("[::1]:9469"); },
                {"metrics.listen", "IPv4 only"});
}

}  // namespace
}  // namespace aftr::config

TEST_CASE("fib_cache_ms defaults to 1000, accepts -1 (off), rejects other negatives") {
  const std::string base =
      "interfaces: \"eth0\" softwire_addresses: \"2001:db8:ffff::1\" "
      "b4_prefixes: \"2001:db8::/32\" pool_prefixes: \"198.51.100.0/28\" "
      "log_file: \"/var/log/aftr/events.log\" ";
  absl::StatusOr<aftr::config::v1::Config> c = aftr::config::ParseConfig(base);
  REQUIRE(c.ok());
  CHECK(c->fib_cache_ms() == 1000);
  c = aftr::config::ParseConfig(base + "fib_cache_ms: -1");
  REQUIRE(c.ok());
  CHECK(c->fib_cache_ms() == -1);
  c = aftr::config::ParseConfig(base + "fib_cache_ms: -5");
  REQUIRE_FALSE(c.ok());
  CHECK(absl::StrContains(c.status().message(), "fib_cache_ms"));
}

TEST_CASE("softwire_mtu defaults to 1500, bounds the MSS clamp default, and is range checked",
          "[config]") {
  const std::string base = aftr::config::kMinimal;
  absl::StatusOr<aftr::config::v1::Config> c = aftr::config::ParseConfig(base);
  REQUIRE(c.ok());
  CHECK(c->softwire_mtu() == 1500);
  CHECK(c->tcp_mss_clamp() == 1420);
  c = aftr::config::ParseConfig(base + "softwire_mtu: 1400");
  REQUIRE(c.ok());
  CHECK(c->tcp_mss_clamp() == 1320);  // follows the MTU when not set
  c = aftr::config::ParseConfig(base + "softwire_mtu: 9216 tcp_mss_clamp: -1");
  REQUIRE(c.ok());
  CHECK(c->tcp_mss_clamp() == -1);  // off stays off
  c = aftr::config::ParseConfig(base + "softwire_mtu: 1400 tcp_mss_clamp: 1000");
  REQUIRE(c.ok());
  CHECK(c->tcp_mss_clamp() == 1000);
  for (const char* bad : {"1279", "9217", "70000"}) {
    c = aftr::config::ParseConfig(base + "softwire_mtu: " + bad);
    REQUIRE_FALSE(c.ok());
    CHECK(absl::StrContains(c.status().message(), std::string("softwire_mtu: ") + bad +
                                                      " is not in 1280..9216"));
  }
}

TEST_CASE("icmp_errors_per_second defaults to 1000 when unset, keeps an explicit 0, caps at "
          "1000000",
          "[config]") {
  const std::string base = aftr::config::kMinimal;
  absl::StatusOr<aftr::config::v1::Config> c = aftr::config::ParseConfig(base);
  REQUIRE(c.ok());
  CHECK(c->icmp_errors_per_second() == 1000);
  c = aftr::config::ParseConfig(base + "icmp_errors_per_second: 0");
  REQUIRE(c.ok());
  CHECK(c->has_icmp_errors_per_second());
  CHECK(c->icmp_errors_per_second() == 0);
  c = aftr::config::ParseConfig(base + "icmp_errors_per_second: 1000000");
  REQUIRE(c.ok());
  c = aftr::config::ParseConfig(base + "icmp_errors_per_second: 1000001");
  REQUIRE_FALSE(c.ok());
  CHECK(absl::StrContains(c.status().message(), "icmp_errors_per_second"));
}
