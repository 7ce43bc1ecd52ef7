// The compact event log's line format, and decoding of the data plane's event records.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "control/events/log_line.h"
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
        "10:35:59 SC udp 2001:db8:a::2 192.0.2.10:40000 198.51.100.1:1030");
  NatEvent del = Sample(EventType::kSessionDelete);
  del.proto = IPPROTO_TCP;
  CHECK(FormatLogLine(del, 64) == "10:35:59 SD tcp 2001:db8:a:: 192.0.2.10:40000 198.51.100.1:1030");
}

TEST_CASE("the B4 is written as its prefix of the configured length") {
  const Ipv6Address b4 = *ParseIpv6("2001:db8:1234:5678:9abc:def0:1234:5678");
  CHECK(TruncateB4(b4, 128) == b4);
  CHECK(TruncateB4(b4, 64).ToString() == "2001:db8:1234:5678::");
  CHECK(TruncateB4(b4, 56).ToString() == "2001:db8:1234:5600::");
  CHECK(TruncateB4(b4, 60).ToString() == "2001:db8:1234:5670::");
  CHECK(TruncateB4(b4, 1).ToString() == "::");
  CHECK(TruncateB4(b4, 0).ToString() == "::");
}

TEST_CASE("block lines give the port range and stay within the deck's 62 bytes at /64") {
  NatEvent e = Sample(EventType::kBlockClaimed);
  e.public_port = 1024;
  e.block_size = 512;
  CHECK(FormatLogLine(e, 64) == "10:35:59 BA 2001:db8:a:: 198.51.100.1 1024-1535");
  e.type = EventType::kBlockReleased;
  CHECK(FormatLogLine(e, 128) == "10:35:59 BR 2001:db8:a::2 198.51.100.1 1024-1535");
  // The longest a /64 B4, a public address and a block can be.
  e.b4 = *ParseIpv6("2a02:8071:a184:e3ff:ffff:ffff:ffff:ffff");
  e.public_addr = *ParseIpv4("198.151.100.255");
  e.public_port = 64512;
  e.block_size = 512;
  const std::string longest = FormatLogLine(e, 64);
  CHECK(longest == "10:35:59 BR 2a02:8071:a184:e3ff:: 198.151.100.255 64512-65023");
  CHECK(longest.size() + 1 == 62);  // with its newline
}

TEST_CASE("limit events name who hit the limit with which flow") {
  NatEvent e = Sample(EventType::kPortsExhausted);
  e.proto = IPPROTO_ICMP;
  CHECK(FormatLogLine(e) == "10:35:59 PX icmp 2001:db8:a::2 192.0.2.10:40000");
  e.type = EventType::kSessionLimit;
  CHECK(FormatLogLine(e).substr(9, 3) == "SL ");
  NatEvent lost;
  lost.type = EventType::kEventsLost;
  lost.time = e.time;
  lost.count = 17;
  CHECK(FormatLogLine(lost) == "10:35:59 EL 17");
}

TEST_CASE("an address out of ports names the B4 and the address within 62 bytes at /64") {
  NatEvent e = Sample(EventType::kAddressPortsExhausted);
  CHECK(FormatLogLine(e, 64) == "10:35:59 AP 2001:db8:a:: 198.51.100.1");
  CHECK(FormatLogLine(e) == "10:35:59 AP 2001:db8:a::2 198.51.100.1");
  // The longest a /64 B4 and an address can be.
  e.b4 = *ParseIpv6("2a02:8071:a184:e3ff:ffff:ffff:ffff:ffff");
  e.public_addr = *ParseIpv4("198.151.100.255");
  const std::string longest = FormatLogLine(e, 64);
  CHECK(longest == "10:35:59 AP 2a02:8071:a184:e3ff:: 198.151.100.255");
  CHECK(longest.size() + 1 <= 62);
  NatEvent back;
  REQUIRE(ParseLogLine(absl::CivilDay(2026, 11, 27), longest, &back).ok());
  CHECK(back.type == EventType::kAddressPortsExhausted);
  CHECK(back.b4.ToString() == "2a02:8071:a184:e3ff::");
  CHECK(back.public_addr.ToString() == "198.151.100.255");
  CHECK(back.public_port == 0);
  CHECK(back.block_size == 0);
}

TEST_CASE("controller events: static mappings and config reloads, on one line") {
  NatEvent e = Sample(EventType::kMappingCreate);
  e.proto = IPPROTO_TCP;
  e.public_port = 2000;
  CHECK(FormatLogLine(e) == "10:35:59 MC tcp 2001:db8:a::2 192.0.2.10:40000 198.51.100.1:2000");
  e.type = EventType::kMappingDelete;
  CHECK(FormatLogLine(e).substr(9, 3) == "MD ");
  NatEvent reload;
  reload.type = EventType::kConfigReloaded;
  reload.time = e.time;
  reload.detail = "pool_prefixes\n10:35:59 SC forged";
  CHECK(FormatLogLine(reload) == "10:35:59 CR pool_prefixes 10:35:59 SC forged");
}

TEST_CASE("every line the log writes parses back to the same event") {
  const absl::CivilDay day(2026, 11, 27);
  std::vector<NatEvent> all;
  for (EventType t : {EventType::kSessionCreate, EventType::kSessionDelete, EventType::kMappingCreate,
                      EventType::kMappingDelete, EventType::kPortsExhausted, EventType::kSessionLimit,
                      EventType::kAddressExhausted, EventType::kSessionTableFull,
                      EventType::kSubscriberTableFull}) {
    all.push_back(Sample(t));
  }
  NatEvent block = Sample(EventType::kBlockClaimed);
  block.public_port = 64512;
  block.block_size = 1024;
  all.push_back(block);
  block.type = EventType::kBlockReleased;
  all.push_back(block);
  NatEvent pcp = Sample(EventType::kPcpMapCreate);
  pcp.detail = "lifetime=3600";
  all.push_back(pcp);
  pcp.type = EventType::kPcpMapDelete;
  pcp.detail = "expired";
  all.push_back(pcp);
  all.push_back(Sample(EventType::kAddressPortsExhausted));
  NatEvent other = Sample(EventType::kEventsLost);
  other.count = 99;
  all.push_back(other);
  for (EventType t : {EventType::kConfigReloaded, EventType::kStateFresh}) {
    other = Sample(t);
    other.detail = "no earlier state";
    all.push_back(other);
  }
  for (const NatEvent& e : all) {
    const std::string line = FormatLogLine(e);
    NatEvent back;
    REQUIRE(ParseLogLine(day, line, &back).ok());
    INFO(line);
    CHECK(back.type == e.type);
    CHECK(back.time == e.time);
    CHECK(FormatLogLine(back) == line);
  }
}

TEST_CASE("a limit line ends in +N when N more were suppressed, and parses back with N") {
  const absl::CivilDay day(2026, 11, 27);
  NatEvent e = Sample(EventType::kSessionLimit);
  CHECK(FormatLogLine(e, 64) == "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:40000");  // none: no suffix
  e.suppressed = 1234;
  CHECK(FormatLogLine(e, 64) == "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:40000 +1234");
  for (EventType t : {EventType::kPortsExhausted, EventType::kAddressExhausted,
                      EventType::kSessionLimit, EventType::kSessionTableFull,
                      EventType::kSubscriberTableFull, EventType::kAddressPortsExhausted}) {
    for (uint64_t n : {uint64_t{1}, uint64_t{99}, UINT64_MAX}) {
      e.type = t;
      e.suppressed = n;
      const std::string line = FormatLogLine(e, 64);
      INFO(line);
      CHECK(absl::EndsWith(line, absl::StrCat(" +", n)));
      NatEvent back;
      REQUIRE(ParseLogLine(day, line, &back).ok());
      CHECK(back.type == t);
      CHECK(back.suppressed == n);
      CHECK(back.b4.ToString() == "2001:db8:a::");
      CHECK(FormatLogLine(back, 64) == line);
    }
  }
  e = Sample(EventType::kAddressPortsExhausted);
  e.suppressed = 17;
  CHECK(FormatLogLine(e, 64) == "10:35:59 AP 2001:db8:a:: 198.51.100.1 +17");
  // Block, session and mapping events never carry a count, whatever the field says.
  for (EventType t : {EventType::kBlockClaimed, EventType::kSessionCreate, EventType::kMappingCreate}) {
    NatEvent other = Sample(t);
    other.block_size = 512;
    other.suppressed = 5;
    CHECK_FALSE(absl::StrContains(FormatLogLine(other, 64), "+"));
  }
}

TEST_CASE("the parser refuses what the log would not have written") {
  const absl::CivilDay day(2026, 11, 27);
  NatEvent e;
  for (const char* line : {"", "# aftrd started", "10:35:59", "10:35:59 ZZ x", "25:00:00 EL 1",
                           "10:35 EL 1", "10:35:59 EL x", "10:35:59 BA 2001:db8:a:: 198.51.100.1 1535-1024",
                           "10:35:59 BA 2001:db8:a:: 198.51.100.1 1024-70000",
                           // 65536 ports: block_size wrapped to 0 (found by log_line_fuzz)
                           "10:35:59 BA 2001:db8:a:: 198.51.100.1 0-65535",
                           "10:35:59 BA 2001:db8:a:: 198.51.100.1", "10:35:59 BA x 198.51.100.1 1-2",
                           "10:35:59 SC udp 2001:db8:a:: 192.0.2.10 198.51.100.1:1030",
                           "10:35:59 SC udp 2001:db8:a:: 192.0.2.10:1 198.51.100.1:1030 extra",
                           "10:35:59 SC p300 2001:db8:a:: 192.0.2.10:1 198.51.100.1:1030",
                           "10:35:59 PX icmp 2001:db8:a::",
                           "10:35:59 AP 2001:db8:a::", "10:35:59 AP 2001:db8:a:: 198.51.100",
                           "10:35:59 AP 2001:db8:a:: 198.51.100.1 1024-1535",
                           "10:35:59 AP udp 2001:db8:a:: 198.51.100.1",
                           // suppressed counts: only "+N", N > 0, as the log writes them
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 +0",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 +",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 +07",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 7",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 +-7",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 ++7",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 +18446744073709551616",
                           "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:1 +5 +5",
                           "10:35:59 AP 2001:db8:a:: 198.51.100.1 +x",
                           "10:35:59 BA 2001:db8:a:: 198.51.100.1 1024-1535 +3",
                           "10:35:59 SC udp 2001:db8:a:: 192.0.2.10:1 198.51.100.1:1030 +3"}) {
    INFO(line);
    CHECK_FALSE(ParseLogLine(day, line, &e).ok());
  }
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

TEST_CASE("a ports exhausted record decodes with its public address and no port") {
  aftr_event r = {};
  r.type = AFTR_EV_ADDRESS_PORTS_EXHAUSTED;
  r.proto = IPPROTO_UDP;
  std::memcpy(r.b4, ParseIpv6("2001:db8:a::2")->bytes.data(), 16);
  r.inner_addr = htonl(0xc000020a);   // 192.0.2.10
  r.inner_port = htons(40004);
  r.public_addr = htonl(0xc6336407);  // 198.51.100.7
  NatEvent e;
  REQUIRE(DecodeEvent(r, &e));
  CHECK(e.type == EventType::kAddressPortsExhausted);
  CHECK(e.public_addr.ToString() == "198.51.100.7");
  CHECK(e.public_port == 0);
  CHECK(e.inner_port == 40004);
  CHECK(std::string(EventCode(e.type)) == "AP");
  EventType back;
  REQUIRE(EventTypeFromCode("AP", &back));
  CHECK(back == EventType::kAddressPortsExhausted);
}

TEST_CASE("records of unknown type are rejected, not logged as garbage") {
  aftr_event r = {};
  r.type = 0;
  NatEvent e;
  CHECK_FALSE(DecodeEvent(r, &e));
  r.type = AFTR_EV_ADDRESS_PORTS_EXHAUSTED + 1;
  CHECK_FALSE(DecodeEvent(r, &e));
  r.type = 200;
  CHECK_FALSE(DecodeEvent(r, &e));
}

}  // namespace
}  // namespace aftr::events
