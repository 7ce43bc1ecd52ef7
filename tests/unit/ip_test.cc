#include "control/common/ip.h"

#include <string>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aftr {
namespace {

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

TEST_CASE("ParseIpv4 round-trips", "[ip]") {
  for (const char* text : {"0.0.0.0", "198.51.100.1", "255.255.255.255", "10.0.0.1"}) {
    absl::StatusOr<Ipv4Address> addr = ParseIpv4(text);
    REQUIRE(addr.ok());
    CHECK(addr->ToString() == text);
  }
  absl::StatusOr<Ipv4Address> addr = ParseIpv4("198.51.100.7");
  REQUIRE(addr.ok());
  CHECK(addr->host_order == 0xC6336407u);
}

TEST_CASE("ParseIpv4 rejects garbage", "[ip]") {
  for (const char* text : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "abc", "1.2.3.4 ", "::1",
                           "1.2.3.4/32"}) {
    absl::StatusOr<Ipv4Address> addr = ParseIpv4(text);
    INFO(text);
    REQUIRE_FALSE(addr.ok());
    CHECK(addr.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Contains(addr.status().message(), absl::StrCat("\"", text, "\"")));
  }
}

TEST_CASE("ParseIpv4Prefix parses and sizes", "[ip]") {
  absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix("198.51.100.0/28");
  REQUIRE(p.ok());
  CHECK(p->addr.host_order == 0xC6336400u);
  CHECK(p->length == 28);
  CHECK(p->Size() == 16);
  CHECK(p->ToString() == "198.51.100.0/28");

  absl::StatusOr<Ipv4Prefix> all = ParseIpv4Prefix("0.0.0.0/0");
  REQUIRE(all.ok());
  CHECK(all->Size() == (uint64_t{1} << 32));

  absl::StatusOr<Ipv4Prefix> host = ParseIpv4Prefix("192.0.2.1/32");
  REQUIRE(host.ok());
  CHECK(host->Size() == 1);
}

TEST_CASE("ParseIpv4Prefix rejects host bits and bad lengths", "[ip]") {
  absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix("198.51.100.1/28");
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Contains(p.status().message(), "\"198.51.100.1/28\""));
  CHECK(Contains(p.status().message(), "host bits"));
  CHECK(Contains(p.status().message(), "198.51.100.0/28"));  // the suggestion

  for (const char* text : {"198.51.100.0", "198.51.100.0/", "198.51.100.0/33", "198.51.100.0/-1",
                           "198.51.100.0/+8", "198.51.100.0/ 8", "198.51.100/24", "x/8",
                           "2001:db8::/32"}) {
    INFO(text);
    absl::StatusOr<Ipv4Prefix> bad = ParseIpv4Prefix(text);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Contains(bad.status().message(), absl::StrCat("\"", text, "\"")));
  }
}

TEST_CASE("Ipv4Prefix overlap", "[ip]") {
  Ipv4Prefix a = *ParseIpv4Prefix("198.51.100.0/24");
  Ipv4Prefix b = *ParseIpv4Prefix("198.51.100.16/28");
  Ipv4Prefix c = *ParseIpv4Prefix("198.51.101.0/24");
  CHECK(a.Overlaps(b));
  CHECK(b.Overlaps(a));
  CHECK_FALSE(a.Overlaps(c));
  CHECK(a.Overlaps(a));
  CHECK(a.Contains(*ParseIpv4("198.51.100.255")));
  CHECK_FALSE(a.Contains(*ParseIpv4("198.51.101.0")));
}

TEST_CASE("ParseIpv6 round-trips", "[ip]") {
  for (const char* text : {"::", "::1", "2001:db8::1", "2001:db8:ffff::1", "fe80::1:2:3:4",
                           "ff02::1", "2001:db8:1:2:3:4:5:6"}) {
    absl::StatusOr<Ipv6Address> addr = ParseIpv6(text);
    INFO(text);
    REQUIRE(addr.ok());
    CHECK(addr->ToString() == text);
  }
  absl::StatusOr<Ipv6Address> addr = ParseIpv6("2001:DB8:0:0::0001");
  REQUIRE(addr.ok());
  CHECK(addr->ToString() == "2001:db8::1");
  CHECK(addr->bytes[0] == 0x20);
  CHECK(addr->bytes[1] == 0x01);
  CHECK(addr->bytes[15] == 0x01);
  CHECK_FALSE(addr->IsMulticast());
  CHECK_FALSE(addr->IsUnspecified());
  CHECK(ParseIpv6("::")->IsUnspecified());
  CHECK(ParseIpv6("ff02::1")->IsMulticast());
}

TEST_CASE("ParseIpv6 rejects garbage", "[ip]") {
  for (const char* text : {"", "2001:db8::zz", "1.2.3.4", "2001:db8:::1", "2001:db8::/32",
                           "1:2:3:4:5:6:7:8:9", " ::1"}) {
    INFO(text);
    absl::StatusOr<Ipv6Address> addr = ParseIpv6(text);
    REQUIRE_FALSE(addr.ok());
    CHECK(addr.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Contains(addr.status().message(), absl::StrCat("\"", text, "\"")));
  }
}

TEST_CASE("ParseIpv6Prefix parses", "[ip]") {
  for (const char* text : {"2001:db8::/32", "::/0", "2001:db8:100::/40", "2001:db8::1/128",
                           "2001:db8:80::/41"}) {
    INFO(text);
    absl::StatusOr<Ipv6Prefix> p = ParseIpv6Prefix(text);
    REQUIRE(p.ok());
    CHECK(p->ToString() == text);
  }
  CHECK(ParseIpv6Prefix("2001:db8:100::/40")->length == 40);
}

TEST_CASE("ParseIpv6Prefix rejects host bits and bad lengths", "[ip]") {
  absl::StatusOr<Ipv6Prefix> p = ParseIpv6Prefix("2001:db8::1/64");
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Contains(p.status().message(), "\"2001:db8::1/64\""));
  CHECK(Contains(p.status().message(), "host bits"));
  CHECK(Contains(p.status().message(), "2001:db8::/64"));

  // A host bit in the middle of a byte (/41 keeps only the top bit of byte 5).
  CHECK_FALSE(ParseIpv6Prefix("2001:db8:40::/41").ok());

  for (const char* text : {"2001:db8::", "2001:db8::/129", "2001:db8::/", "zz::/32",
                           "198.51.100.0/24", "2001:db8::/3a"}) {
    INFO(text);
    absl::StatusOr<Ipv6Prefix> bad = ParseIpv6Prefix(text);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Contains(bad.status().message(), absl::StrCat("\"", text, "\"")));
  }
}

}  // namespace
}  // namespace aftr
