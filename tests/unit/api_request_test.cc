// The API's request handling that needs no server: resource names, filters, page tokens,
// event watchers, and which config changes a reload may apply.
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "aftr/v1/resources.pb.h"
#include "control/api/event_hub.h"
#include "control/api/filter.h"
#include "control/api/pagination.h"
#include "control/api/resource_names.h"
#include "control/config/config.h"
#include "control/config/live_config.h"

namespace aftr::api {
namespace {

bool Contains(absl::string_view s, absl::string_view part) { return absl::StrContains(s, part); }

TEST_CASE("resource names round-trip and bad names name the field", "[api]") {
  SessionId id;
  id.b4 = *ParseIpv6("2001:db8:a::2");
  id.proto = IPPROTO_TCP;
  id.inner_addr = *ParseIpv4("192.0.2.10");
  id.inner_port = 40000;
  CHECK(SessionName(id) == "subscribers/2001:db8:a::2/sessions/tcp-192.0.2.10-40000");
  absl::StatusOr<SessionId> back = ParseSessionName(SessionName(id), "name");
  REQUIRE(back.ok());
  CHECK(*back == id);
  CHECK(PortBlockName({*ParseIpv4("198.51.100.1"), 1024}) == "portBlocks/198.51.100.1-1024");
  CHECK(ParsePortBlockName("portBlocks/198.51.100.1-1024", "name")->first_port == 1024);
  CHECK(PoolName(*ParseIpv4Prefix("198.51.100.0/24")) == "pools/198.51.100.0-24");
  CHECK(ParsePoolName("pools/198.51.100.0-24", "name")->length == 24);
  CHECK(StaticMappingName({IPPROTO_UDP, *ParseIpv4("198.51.100.1"), 2000}) ==
        "staticMappings/udp-198.51.100.1-2000");
  CHECK(ParseSubscriberName("subscribers/2001:db8:a::2", "name")->ToString() == "2001:db8:a::2");
  // ICMP identifiers may be 0; ports may not.
  CHECK(ParseSessionName("subscribers/2001:db8:a::2/sessions/icmp-192.0.2.10-0", "name").ok());
  CHECK_FALSE(ParseSessionName("subscribers/2001:db8:a::2/sessions/udp-192.0.2.10-0", "name").ok());

  for (const char* bad : {"", "subscribers/", "subscribers/192.0.2.1", "subscribers/2001:db8::1/x",
                          "portBlocks/198.51.100.1", "portBlocks/198.51.100.1-65536",
                          "portBlocks/198.51.100.1-+80", "pools/198.51.100.1-24", "pools/x-y",
                          "staticMappings/sctp-198.51.100.1-1", "sessions/tcp-1.2.3.4-5",
                          "subscribers/2001:db8:a::2/sessions/tcp-192.0.2.10-1-2"}) {
    INFO(bad);
    absl::Status s = ParseSubscriberName(bad, "name").status();
    if (absl::StartsWith(bad, "portBlocks")) s = ParsePortBlockName(bad, "name").status();
    if (absl::StartsWith(bad, "pools")) s = ParsePoolName(bad, "name").status();
    if (absl::StartsWith(bad, "staticMappings")) s = ParseStaticMappingName(bad, "name").status();
    if (absl::StrContains(bad, "sessions")) s = ParseSessionName(bad, "name").status();
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StartsWith(s.message(), "name: "));
  }
  // A huge name is refused without being echoed whole.
  std::string huge = "subscribers/" + std::string(100000, 'a');
  absl::Status s = ParseSubscriberName(huge, "name").status();
  CHECK(s.message().size() < 300);
}

TEST_CASE("filters: AND-joined terms, addresses or prefixes, per-method fields", "[api]") {
  absl::StatusOr<Filter> f = ParseFilter(
      "b4_address = \"2001:db8:a::/48\" AND protocol = udp AND public_port = 1030", kFilterB4 | kFilterProtocol | kFilterPublicPort);
  REQUIRE(f.ok());
  CHECK(f->MatchB4(ParseIpv6("2001:db8:a::2")->bytes.data()));
  CHECK_FALSE(f->MatchB4(ParseIpv6("2001:db8:b::2")->bytes.data()));
  CHECK(f->MatchProto(IPPROTO_UDP));
  CHECK_FALSE(f->MatchProto(IPPROTO_TCP));
  CHECK(f->MatchPublic(0xc6336401, 1030));
  CHECK_FALSE(f->MatchPublic(0xc6336401, 1031));
  // Same selection, different spelling → same canonical form (page tokens stay valid).
  absl::StatusOr<Filter> g = ParseFilter("public_port=1030 AND protocol=UDP AND subscriber=subscribers/2001:db8:a::/48",
                                         kFilterB4 | kFilterProtocol | kFilterPublicPort);
  REQUIRE(g.ok());
  CHECK(g->canonical == f->canonical);
  absl::StatusOr<Filter> single = ParseFilter("b4_address = 2001:db8:a::2", kFilterB4);
  REQUIRE(single.ok());
  CHECK_FALSE(single->MatchB4(ParseIpv6("2001:db8:a::3")->bytes.data()));
  CHECK(ParseFilter("", kFilterB4)->canonical.empty());
  CHECK(ParseFilter("type = port_block_allocated", kFilterEventType)->event_type ==
        aftr::v1::Event::PORT_BLOCK_ALLOCATED);

  struct Bad {
    const char* text;
    const char* says;
  } bad[] = {
      {"inner_port = 80", "not a field this method filters on"},
      {"protocol = sctp", "protocol"},
      {"public_port = 70000", "public_port"},
      {"public_port = -1", "public_port"},
      {"b4_address = 192.0.2.1", "b4_address"},
      {"b4_address = 2001:db8::1/48", "b4_address"},
      {"protocol = tcp protocol = udp", "expected AND"},
      {"protocol = tcp AND protocol = udp", "given twice"},
      {"protocol tcp", "expected \"="},
      {"protocol =", "value is missing"},
      {"protocol = \"tcp", "unterminated"},
      {"type = NOPE", "not an event type"},
      {"= tcp", "field name"},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    absl::StatusOr<Filter> r = ParseFilter(b.text, kFilterB4 | kFilterProtocol | kFilterPublicPort |
                                                       kFilterEventType);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StartsWith(r.status().message(), "filter: "));
    CHECK(Contains(r.status().message(), b.says));
  }
  CHECK_FALSE(ParseFilter(std::string(5000, 'a'), kFilterB4).ok());
}

TEST_CASE("page sizes and page tokens", "[api]") {
  CHECK(*EffectivePageSize(0) == kDefaultPageSize);
  CHECK(*EffectivePageSize(7) == 7);
  CHECK(*EffectivePageSize(1 << 30) == kMaxPageSize);
  CHECK(EffectivePageSize(-1).status().code() == absl::StatusCode::kInvalidArgument);

  PageToken t{42, std::string("\x00\x01key", 5)};
  std::string text = EncodePageToken(t, "sessions|proto=6");
  absl::StatusOr<PageToken> back = DecodePageToken(text, "sessions|proto=6");
  REQUIRE(back.ok());
  CHECK(back->snapshot_id == 42);
  CHECK(back->last_key == t.last_key);
  // Bound to its filter.
  absl::Status other = DecodePageToken(text, "sessions|proto=17").status();
  CHECK(other.code() == absl::StatusCode::kInvalidArgument);
  CHECK(Contains(other.message(), "page_token"));
  for (const std::string& garbage : {std::string("x"), std::string("!!!!"), text.substr(0, 10),
                                     text + "AAAA", std::string(10000, 'A')}) {
    INFO(garbage.substr(0, 40));
    CHECK(DecodePageToken(garbage, "sessions|proto=6").status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
}

events::NatEvent Ev(events::EventType type, const char* b4) {
  events::NatEvent e;
  e.type = type;
  e.time = absl::Now();
  e.b4 = *ParseIpv6(b4);
  e.public_addr = *ParseIpv4("198.51.100.1");
  return e;
}

TEST_CASE("event watchers: filters, bounded queues, losses reported", "[api]") {
  EventHub hub;
  absl::StatusOr<Filter> only_a = ParseFilter("b4_address = 2001:db8:a::/48 AND type = SESSION_CREATED",
                                              kFilterB4 | kFilterEventType);
  REQUIRE(only_a.ok());
  auto a = hub.Watch(*only_a, 4);
  auto all = hub.Watch(Filter{}, 1000);
  CHECK(hub.watcher_count() == 2);
  std::vector<events::NatEvent> batch;
  for (int i = 0; i < 6; ++i) batch.push_back(Ev(events::EventType::kSessionCreate, "2001:db8:a::2"));
  batch.push_back(Ev(events::EventType::kSessionCreate, "2001:db8:b::2"));
  batch.push_back(Ev(events::EventType::kBlockClaimed, "2001:db8:a::2"));
  REQUIRE(hub.Publish(batch).ok());

  std::vector<events::NatEvent> got;
  uint64_t lost = 0;
  REQUIRE(a->Next(absl::Now() + absl::Seconds(1), 100, &got, &lost));
  CHECK(got.size() == 4);  // its queue holds 4
  CHECK(lost == 2);        // the other two matching events, reported
  got.clear();
  REQUIRE(all->Next(absl::Now() + absl::Seconds(1), 100, &got, &lost));
  CHECK(got.size() == 8);
  CHECK(lost == 0);
  CHECK(hub.events_dropped() == 2);
  // Nothing queued: Next waits until the deadline and returns nothing.
  got.clear();
  absl::Time start = absl::Now();
  REQUIRE(all->Next(absl::Now() + absl::Milliseconds(50), 100, &got, &lost));
  CHECK(got.empty());
  CHECK(absl::Now() - start >= absl::Milliseconds(40));
  a.reset();
  CHECK(hub.watcher_count() == 1);
  CHECK(hub.events_dropped() == 2);  // kept after the watcher left
  hub.Close();
  CHECK_FALSE(all->Next(absl::Now() + absl::Seconds(5), 100, &got, &lost));
}

TEST_CASE("reload: changed fields and those that need a restart", "[api]") {
  constexpr char kBase[] = R"pb(
    interfaces: "eth0" softwire_addresses: "2001:db8:ffff::1" b4_prefixes: "2001:db8::/32"
    pool_prefixes: "198.51.100.0/28" log_file: "/var/log/aftr/events.log")pb";
  config::v1::Config before = *config::ParseConfig(kBase);
  config::v1::Config after = before;
  CHECK(config::ChangedFields(before, after).empty());
  after.mutable_timeouts()->set_udp(600);
  after.add_pool_prefixes("203.0.113.0/28");
  after.mutable_tables()->set_max_sessions(10);
  after.mutable_port_blocks()->set_block_size(256);
  after.mutable_port_blocks()->set_max_blocks_per_subscriber(2);
  std::vector<std::string> changed = config::ChangedFields(before, after);
  CHECK(changed == std::vector<std::string>{"pool_prefixes", "port_blocks.block_size",
                                            "port_blocks.max_blocks_per_subscriber",
                                            "timeouts.udp", "tables.max_sessions"});
  CHECK(config::NonLiveFields(changed) ==
        std::vector<std::string>{"port_blocks.block_size", "tables.max_sessions"});
  // PCP: the listener and the sized maps need a restart, lifetimes and quotas do not.
  config::v1::Config pcp = before;
  pcp.mutable_pcp()->set_enabled(true);
  pcp.mutable_pcp()->set_port(15351);
  pcp.mutable_pcp()->set_max_mappings(1000);
  pcp.mutable_pcp()->set_min_lifetime(60);
  pcp.mutable_pcp()->set_max_mappings_per_subscriber(8);
  CHECK(config::NonLiveFields(config::ChangedFields(before, pcp)) ==
        std::vector<std::string>{"pcp.enabled", "pcp.port", "pcp.max_mappings"});
}

}  // namespace
}  // namespace aftr::api
