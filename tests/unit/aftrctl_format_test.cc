// aftrctl's pure parts: operator input → resource names, aligned tables, resource and event
// renderings (exact text), JSON with proto field names.
#include <netinet/in.h>

#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "control/api/translate.h"
#include "control/cli/format.h"
#include "control/cli/names.h"
#include "control/cli/table.h"

namespace aftr::cli {
namespace {

namespace v1 = ::aftr::v1;

google::protobuf::Timestamp At(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

const absl::Time kNow = absl::FromUnixSeconds(1795776758);  // 2026-11-27T10:52:38Z

TEST_CASE("aftrctl names: ADDR:PORT and prefixes to resource names", "[aftrctl]") {
  CHECK(*PortBlockName("198.51.100.1:1024") == "portBlocks/198.51.100.1-1024");
  CHECK(*PortBlockName("198.51.100.1-1024") == "portBlocks/198.51.100.1-1024");
  CHECK(*PortBlockName("portBlocks/198.51.100.1-1024") == "portBlocks/198.51.100.1-1024");
  for (const char* bad : {"198.51.100.1", "198.51.100.1:", "198.51.100.1:65536", "x:1024",
                          "2001:db8::1:1024", "198.51.100.1:+1", "198.51.100.1: 1"}) {
    INFO(bad);
    absl::StatusOr<std::string> name = PortBlockName(bad);
    REQUIRE_FALSE(name.ok());
    CHECK(absl::StrContains(name.status().message(), "ADDRESS:FIRST_PORT"));
  }

  CHECK(*PoolName("198.51.100.0/28") == "pools/198.51.100.0-28");
  CHECK(*PoolName("198.51.100.0-28") == "pools/198.51.100.0-28");
  CHECK(*PoolName("pools/198.51.100.0-28") == "pools/198.51.100.0-28");
  CHECK_FALSE(PoolName("198.51.100.1/28").ok());  // host bits
  CHECK_FALSE(PoolName("198.51.100.0").ok());

  CHECK(*SubscriberName("2001:db8:a::2") == "subscribers/2001:db8:a::2");
  CHECK(*SubscriberName("subscribers/2001:db8:a::2") == "subscribers/2001:db8:a::2");
  CHECK_FALSE(SubscriberName("192.0.2.1").ok());

  CHECK(*StaticMappingName("tcp-198.51.100.1-2000") == "staticMappings/tcp-198.51.100.1-2000");
  CHECK(*StaticMappingName("staticMappings/tcp-198.51.100.1-2000") ==
        "staticMappings/tcp-198.51.100.1-2000");
  CHECK_FALSE(StaticMappingName("subscribers/x").ok());

  CHECK(*SessionName("subscribers/2001:db8:a::2/sessions/tcp-192.0.2.10-40000") ==
        "subscribers/2001:db8:a::2/sessions/tcp-192.0.2.10-40000");
  CHECK_FALSE(SessionName("tcp-192.0.2.10-40000").ok());
  CHECK_FALSE(SessionName("subscribers/2001:db8:a::2/sessions/").ok());

  absl::StatusOr<Ipv4Endpoint> inner = ParseIpv4Endpoint("192.0.2.10:8080");
  REQUIRE(inner.ok());
  CHECK(inner->address == "192.0.2.10");
  CHECK(inner->port == 8080);
  CHECK_FALSE(ParseIpv4Endpoint("192.0.2.10:0").ok());
  CHECK_FALSE(ParseIpv4Endpoint("192.0.2.10").ok());

  CHECK(*ParseProtocol("TCP") == v1::TCP);
  CHECK(*ParseProtocol("udp") == v1::UDP);
  CHECK(*ParseProtocol("icmp") == v1::ICMP);
  CHECK_FALSE(ParseProtocol("sctp").ok());
  CHECK(ProtocolText(v1::UDP) == "udp");
  CHECK(ProtocolText(v1::PROTOCOL_UNSPECIFIED) == "-");
}

TEST_CASE("aftrctl table: aligned columns, numbers right, no trailing blanks", "[aftrctl]") {
  Table t({{"NAME"}, {"COUNT", Table::Align::kRight}, {"NOTE"}});
  t.AddRow({"rx_packets", "1234", "x"});
  t.AddRow({"drop", "7"});  // short row: padded
  CHECK(t.rows() == 2);
  CHECK(t.Render() ==
        "NAME        COUNT  NOTE\n"
        "rx_packets   1234  x\n"
        "drop            7\n");
}

TEST_CASE("aftrctl format: durations and times", "[aftrctl]") {
  CHECK(FormatSeconds(absl::Seconds(0)) == "0s");
  CHECK(FormatSeconds(absl::Milliseconds(59900)) == "59s");
  CHECK(FormatSeconds(absl::Seconds(299)) == "4m59s");
  CHECK(FormatSeconds(absl::Seconds(7440)) == "2h4m0s");
  CHECK(FormatSeconds(absl::Hours(50)) == "2d2h0m");
  CHECK(FormatTime(At(kNow)) == "2026-11-27T10:52:38Z");
  CHECK(FormatTime(google::protobuf::Timestamp()) == "-");
}

TEST_CASE("aftrctl format: sessions table", "[aftrctl]") {
  google::protobuf::RepeatedPtrField<v1::Session> sessions;
  v1::Session* tcp = sessions.Add();
  tcp->set_b4_address("2001:db8:a::2");
  tcp->set_protocol(v1::TCP);
  tcp->set_inner_address("192.0.2.10");
  tcp->set_inner_port(44852);
  tcp->set_public_address("198.51.100.13");
  tcp->set_public_port(1212);
  tcp->set_kind(v1::Session::DYNAMIC);
  tcp->set_tcp_state(v1::Session::ESTABLISHED);
  *tcp->mutable_expire_time() = At(kNow + absl::Seconds(7439));
  v1::Session* udp = sessions.Add();
  udp->set_b4_address("2001:db8:b::2");
  udp->set_protocol(v1::UDP);
  udp->set_inner_address("192.0.2.10");
  udp->set_inner_port(5000);
  udp->set_public_address("198.51.100.2");
  udp->set_public_port(2000);
  udp->set_kind(v1::Session::STATIC);
  v1::Session* gone = sessions.Add();
  gone->set_b4_address("2001:db8:b::2");
  gone->set_protocol(v1::ICMP);
  gone->set_inner_address("192.0.2.10");
  gone->set_inner_port(7);
  gone->set_public_address("198.51.100.2");
  gone->set_public_port(1030);
  gone->set_kind(v1::Session::DYNAMIC);
  *gone->mutable_expire_time() = At(kNow - absl::Seconds(1));

  CHECK(SessionsTable(sessions, kNow) ==
        "PROTO  INNER             PUBLIC              B4             KIND     STATE        EXPIRES\n"
        "tcp    192.0.2.10:44852  198.51.100.13:1212  2001:db8:a::2  dynamic  established  2h3m59s\n"
        "udp    192.0.2.10:5000   198.51.100.2:2000   2001:db8:b::2  static   -              never\n"
        "icmp   192.0.2.10:7      198.51.100.2:1030   2001:db8:b::2  dynamic  -                now\n");
  CHECK(ListFooter(3, "sessions", "") == "3 sessions\n");
  CHECK(ListFooter(100, "sessions", "abc") ==
        "100 sessions\nmore: --page_token abc (or --all)\n");
}

TEST_CASE("aftrctl format: subscribers, blocks, pools, mappings", "[aftrctl]") {
  google::protobuf::RepeatedPtrField<v1::Subscriber> subscribers;
  v1::Subscriber* s = subscribers.Add();
  s->set_name("subscribers/2001:db8:a::2");
  s->set_b4_address("2001:db8:a::2");
  s->set_public_address("198.51.100.13");
  s->set_state(v1::Subscriber::ACTIVE);
  s->set_session_count(3);
  s->set_max_sessions(4096);
  s->set_mapping_count(1);
  s->set_max_port_blocks(4);
  *s->mutable_create_time() = At(kNow - absl::Seconds(65));
  for (uint32_t first : {1024u, 2560u}) {
    v1::PortBlock* b = s->add_port_blocks();
    b->set_name("portBlocks/198.51.100.13-" + std::to_string(first));
    b->set_public_address("198.51.100.13");
    b->set_first_port(first);
    b->set_last_port(first + 511);
    b->set_block_size(512);
    b->set_subscriber(s->name());
    b->set_b4_address(s->b4_address());
  }
  CHECK(SubscribersTable(subscribers, kNow) ==
        "B4             PUBLIC         STATE   SESSIONS  MAPPINGS  BLOCKS  PORTS                 "
        "AGE\n"
        "2001:db8:a::2  198.51.100.13  active    3/4096         1     2/4  1024-1535,2560-3071  "
        "1m5s\n");
  CHECK(PortBlocksTable(s->port_blocks()) ==
        "PUBLIC         PORTS      SIZE  B4\n"
        "198.51.100.13  1024-1535   512  2001:db8:a::2\n"
        "198.51.100.13  2560-3071   512  2001:db8:a::2\n");
  CHECK(SubscriberText(*s, kNow) ==
        "name:            subscribers/2001:db8:a::2\n"
        "b4_address:      2001:db8:a::2\n"
        "public_address:  198.51.100.13\n"
        "state:           active\n"
        "sessions:        3 (max 4096)\n"
        "static mappings: 1\n"
        "port blocks:     2 (max 4)\n"
        "created:         2026-11-27T10:51:33Z (1m5s ago)\n"
        "\n" +
            PortBlocksTable(s->port_blocks()));

  google::protobuf::RepeatedPtrField<v1::Pool> pools;
  v1::Pool* p = pools.Add();
  p->set_name("pools/198.51.100.0-28");
  p->set_prefix("198.51.100.0/28");
  p->set_state(v1::Pool::DRAINING);
  p->set_address_count(16);
  p->set_blocks_used(2);
  p->set_blocks_total(1984);
  CHECK(PoolsTable(pools) ==
        "PREFIX           STATE     ADDRESSES  BLOCKS USED  BLOCKS TOTAL\n"
        "198.51.100.0/28  draining         16            2          1984\n");
  CHECK(PoolText(*p) ==
        "name:      pools/198.51.100.0-28\n"
        "prefix:    198.51.100.0/28\n"
        "state:     draining\n"
        "addresses: 16\n"
        "blocks:    2 used of 1984\n");

  google::protobuf::RepeatedPtrField<v1::StaticMapping> mappings;
  v1::StaticMapping* m = mappings.Add();
  m->set_name("staticMappings/tcp-198.51.100.13-1100");
  m->set_b4_address("2001:db8:a::2");
  m->set_protocol(v1::TCP);
  m->set_inner_address("192.0.2.10");
  m->set_inner_port(8080);
  m->set_public_address("198.51.100.13");
  m->set_public_port(1100);
  CHECK(StaticMappingsTable(mappings) ==
        "PROTO  PUBLIC              INNER            B4             NAME\n"
        "tcp    198.51.100.13:1100  192.0.2.10:8080  2001:db8:a::2  "
        "staticMappings/tcp-198.51.100.13-1100\n");
}

TEST_CASE("aftrctl format: statistics, with and without zero rows", "[aftrctl]") {
  v1::Statistics stats;
  v1::Statistics::Counter* rx = stats.add_counters();
  rx->set_name("rx_packets");
  rx->set_from_b4(10);
  rx->set_from_internet(20);
  rx->set_total(30);
  v1::Statistics::Counter* zero = stats.add_counters();
  zero->set_name("drop_fragment");
  zero->set_drop_reason(true);
  stats.set_sessions(4);
  stats.set_session_capacity(65536);
  stats.set_subscribers(2);
  stats.set_port_blocks_used(2);
  stats.set_port_blocks_total(1984);
  stats.set_pool_addresses(16);
  (*stats.mutable_controller_counters())["events_logged"] = 9;
  (*stats.mutable_controller_counters())["watch_events_dropped"] = 0;
  const std::string gauges =
      "sessions:        4 of 65536\n"
      "static mappings: 0\n"
      "subscribers:     2\n"
      "port blocks:     2 used of 1984\n"
      "pool addresses:  16 (0 draining)\n"
      "read at:         -\n";
  CHECK(StatisticsText(stats, /*nonzero=*/false) ==
        "COUNTER        FROM_B4  FROM_INTERNET  OTHER  TOTAL\n"
        "rx_packets          10             20      0     30\n"
        "drop_fragment        0              0      0      0\n"
        "\n" + gauges +
        "\n"
        "CONTROLLER COUNTER    VALUE\n"
        "events_logged             9\n"
        "watch_events_dropped      0\n");
  CHECK(StatisticsText(stats, /*nonzero=*/true) ==
        "COUNTER     FROM_B4  FROM_INTERNET  OTHER  TOTAL\n"
        "rx_packets       10             20      0     30\n"
        "\n" + gauges +
        "\n"
        "CONTROLLER COUNTER  VALUE\n"
        "events_logged           9\n");
}

TEST_CASE("aftrctl format: events as log-like lines", "[aftrctl]") {
  v1::Event created;
  created.set_type(v1::Event::SESSION_CREATED);
  *created.mutable_time() = At(kNow);
  created.set_b4_address("2001:db8:a::2");
  created.set_protocol(v1::TCP);
  created.set_inner_address("192.0.2.10");
  created.set_inner_port(44852);
  created.set_public_address("198.51.100.13");
  created.set_public_port(1212);
  CHECK(EventLine(created) ==
        "2026-11-27T10:52:38Z SESSION_CREATED tcp 2001:db8:a::2 192.0.2.10:44852 "
        "198.51.100.13:1212");

  v1::Event block;
  block.set_type(v1::Event::PORT_BLOCK_ALLOCATED);
  *block.mutable_time() = At(kNow);
  block.set_b4_address("2001:db8:a::2");
  block.set_public_address("198.51.100.13");
  block.set_public_port(1024);
  block.set_block_size(512);
  CHECK(EventLine(block) ==
        "2026-11-27T10:52:38Z PORT_BLOCK_ALLOCATED 2001:db8:a::2 198.51.100.13 1024-1535");

  v1::Event lost;
  lost.set_type(v1::Event::EVENTS_LOST);
  *lost.mutable_time() = At(kNow);
  lost.set_count(5);
  CHECK(EventLine(lost) == "2026-11-27T10:52:38Z EVENTS_LOST 5");

  v1::Event reload;
  reload.set_type(v1::Event::CONFIG_RELOADED);
  *reload.mutable_time() = At(kNow);
  reload.set_detail("timeouts.udp");
  CHECK(EventLine(reload) == "2026-11-27T10:52:38Z CONFIG_RELOADED timeouts.udp");
}

TEST_CASE("aftrctl format: an address out of ports, from the daemon's event to the line",
          "[aftrctl]") {
  events::NatEvent e;
  e.type = events::EventType::kAddressPortsExhausted;
  e.time = kNow;
  e.b4 = *ParseIpv6("2001:db8:a::2");
  e.proto = IPPROTO_UDP;
  e.inner_addr = *ParseIpv4("192.0.2.10");
  e.inner_port = 40004;
  e.public_addr = *ParseIpv4("198.51.100.7");
  const v1::Event ev = api::EventToProto(e);
  CHECK(ev.type() == v1::Event::ADDRESS_PORTS_EXHAUSTED);
  CHECK(ev.public_address() == "198.51.100.7");
  CHECK(ev.public_port() == 0);
  CHECK(EventLine(ev) ==
        "2026-11-27T10:52:38Z ADDRESS_PORTS_EXHAUSTED udp 2001:db8:a::2 192.0.2.10:40004 "
        "198.51.100.7");
}

TEST_CASE("aftrctl format: JSON keeps proto field names and zero values", "[aftrctl]") {
  v1::Statistics::Counter c;
  c.set_name("rx_packets");
  c.set_from_b4(3);
  std::string one_line = ToJson(c, /*multiline=*/false);
  CHECK(one_line ==
        "{\"name\":\"rx_packets\",\"drop_reason\":false,\"from_b4\":\"3\","
        "\"from_internet\":\"0\",\"other\":\"0\",\"total\":\"0\"}\n");
  std::string multiline = ToJson(c);
  CHECK(absl::StartsWith(multiline, "{\n"));
  CHECK(absl::StrContains(multiline, "\"from_b4\": \"3\""));
}

TEST_CASE("aftrctl format: reload results", "[aftrctl]") {
  v1::ReloadConfigResponse r;
  CHECK(ReloadText(r, false) == "reloaded; nothing changed\n");
  r.add_changed_fields("timeouts.udp");
  r.add_changed_fields("pool_prefixes");
  r.add_warnings("timeouts.udp: 4 s is below the RFC 4787 minimum of 120 s");
  CHECK(ReloadText(r, true) ==
        "valid; would change: timeouts.udp, pool_prefixes\n"
        "warning: timeouts.udp: 4 s is below the RFC 4787 minimum of 120 s\n");
}

}  // namespace
}  // namespace aftr::cli
