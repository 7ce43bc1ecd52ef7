// The compact event log's line format, and decoding of the data plane's event records.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "absl/time/time.h"
#include "control/events/nat_event.h"

namespace aftr::events {
namespace {

NatEvent Sample(EventType type) {
  NatEvent e;
  e.type = type;
  e.time = absl::FromUnixSeconds(1795775759);  // 2026-11-27T10:35:59Z
  e.b4 = *ParseIpv6("2001:db8:a::2");
  e.proto = IPPROTO_UDP;
  e.inner_addr = *ParseIpv4("192.0.2.10");
  e.inner_port = 40000;
  e.public_addr = *ParseIpv4("198.51.100.1");
  e.public_port = 1030;
  return e;
}

TEST_CASE("session lines carry B4, inner and public endpoints but never the destination") {
  CHECK(FormatLogLine(Sample(EventType::kSessionCreate)) ==
        "2026-11-27T10:35:59Z SC udp 2001:db8:a::2 192.0.2.10:40000 198.51.100.1:1030");
  NatEvent del = Sample(EventType::kSessionDelete);
  del.proto = IPPROTO_TCP;
  CHECK(FormatLogLine(del) ==
        "2026-11-27T10:35:59Z SD tcp 2001:db8:a::2 192.0.2.10:40000 198.51.100.1:1030");
}

TEST_CASE("block lines give the port range and fit the deck's 62-byte budget") {
  NatEvent e = Sample(EventType::kBlockClaimed);
  e.public_port = 1024;
  e.block_size = 512;
  std::string line = FormatLogLine(e);
  CHECK(line == "2026-11-27T10:35:59Z BA 2001:db8:a::2 198.51.100.1 1024-1535");
  CHECK(line.size() + 1 <= 62);  // with its newline
  e.type = EventType::kBlockReleased;
  CHECK(FormatLogLine(e) == "2026-11-27T10:35:59Z BR 2001:db8:a::2 198.51.100.1 1024-1535");
}

TEST_CASE("limit events name who hit the limit with which flow") {
  NatEvent e = Sample(EventType::kPortsExhausted);
  e.proto = IPPROTO_ICMP;
  CHECK(FormatLogLine(e) == "2026-11-27T10:35:59Z PX icmp 2001:db8:a::2 192.0.2.10:40000");
  e.type = EventType::kSessionLimit;
  CHECK(FormatLogLine(e).substr(21, 3) == "SL ");
  NatEvent lost;
  lost.type = EventType::kEventsLost;
  lost.time = e.time;
  lost.count = 17;
  CHECK(FormatLogLine(lost) == "2026-11-27T10:35:59Z EL 17");
}

TEST_CASE("controller events: static mappings and config reloads, on one line") {
  NatEvent e = Sample(EventType::kMappingCreate);
  e.proto = IPPROTO_TCP;
  e.public_port = 2000;
  CHECK(FormatLogLine(e) ==
        "2026-11-27T10:35:59Z MC tcp 2001:db8:a::2 192.0.2.10:40000 198.51.100.1:2000");
  e.type = EventType::kMappingDelete;
  CHECK(FormatLogLine(e).substr(21, 3) == "MD ");
  NatEvent reload;
  reload.type = EventType::kConfigReloaded;
  reload.time = e.time;
  reload.detail = "pool_prefixes\n2026-11-27T10:35:59Z SC forged";
  CHECK(FormatLogLine(reload) == "2026-11-27T10:35:59Z CR pool_prefixes 2026-11-27T10:35:59Z SC forged");
}

TEST_CASE("ring-buffer records decode field by field, in host byte order") {
  aftr_event r = {};
  r.type = AFTR_EV_SESSION_CREATE;
  r.proto = IPPROTO_TCP;
  std::memcpy(r.b4, ParseIpv6("2001:db8:b::2")->bytes.data(), 16);
  r.inner_addr = htonl(0xc000020a);   // 192.0.2.10
  r.inner_port = htons(40001);
  r.public_addr = htonl(0xc6336405);  // 198.51.100.5
  r.public_port = htons(2048);
  NatEvent e;
  REQUIRE(DecodeEvent(r, &e));
  CHECK(e.type == EventType::kSessionCreate);
  CHECK(e.b4.ToString() == "2001:db8:b::2");
  CHECK(e.inner_addr.ToString() == "192.0.2.10");
  CHECK(e.inner_port == 40001);
  CHECK(e.public_addr.ToString() == "198.51.100.5");
  CHECK(e.public_port == 2048);
}

TEST_CASE("records of unknown type are rejected, not logged as garbage") {
  aftr_event r = {};
  r.type = 0;
  NatEvent e;
  CHECK_FALSE(DecodeEvent(r, &e));
  r.type = 200;
  CHECK_FALSE(DecodeEvent(r, &e));
}

}  // namespace
}  // namespace aftr::events
