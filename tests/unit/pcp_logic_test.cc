// The PCP server's pure helpers (control/pcp/pcp_server.h): lifetime clamping, the data
// plane's form of FILTER lists, the nonce rule, the per-B4 rate limiter and the file of
// known clients.
#include <arpa/inet.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "control/pcp/pcp_server.h"

namespace aftr::pcp {
namespace {

namespace fs = std::filesystem;

Address Mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

Ipv6Address V6(const char* text) {
  absl::StatusOr<Ipv6Address> a = ParseIpv6(text);
  REQUIRE(a.ok());
  return *a;
}

// The 4 octets of a __be32 / 2 of a __be16 as they lie in memory (network order).
std::vector<uint8_t> Octets(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}

// A fresh directory under /tmp, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/pcp_logic_test.XXXXXX";
    const char* made = mkdtemp(tmpl);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// ---- ClampLifetime ----

TEST_CASE("pcp_logic: ClampLifetime", "[pcp][pcp_logic]") {
  CHECK(ClampLifetime(0, 120, 86400) == 120);
  CHECK(ClampLifetime(1, 120, 86400) == 120);
  CHECK(ClampLifetime(119, 120, 86400) == 120);
  CHECK(ClampLifetime(120, 120, 86400) == 120);
  CHECK(ClampLifetime(3600, 120, 86400) == 3600);
  CHECK(ClampLifetime(86400, 120, 86400) == 86400);
  CHECK(ClampLifetime(86401, 120, 86400) == 86400);
  CHECK(ClampLifetime(0xFFFFFFFFu, 120, 86400) == 86400);
  CHECK(ClampLifetime(0xFFFFFFFFu, 0, 0xFFFFFFFFu) == 0xFFFFFFFFu);
  CHECK(ClampLifetime(500, 500, 500) == 500);
}

// ---- FilterSet ----

TEST_CASE("pcp_logic: FilterSet: the IPv4 form of a FILTER, in network order", "[pcp][pcp_logic]") {
  std::optional<aftr_pcp_filter_set> set = FilterSet({Filter{120, 443, Mapped(198, 51, 100, 77)}});
  REQUIRE(set);
  REQUIRE(set->count == 1);
  const aftr_pcp_filter& f = set->f[0];
  CHECK(Octets(&f.mask, 4) == std::vector<uint8_t>{255, 255, 255, 0});
  CHECK(Octets(&f.addr, 4) == std::vector<uint8_t>{198, 51, 100, 0});  // masked
  CHECK(Octets(&f.port, 2) == std::vector<uint8_t>{0x01, 0xbb});
  CHECK(f.pad == 0);

  set = FilterSet({Filter{128, 0, Mapped(198, 51, 100, 77)}, Filter{96, 80, Mapped(1, 2, 3, 4)},
                   Filter{97, 0, Mapped(200, 2, 3, 4)}});
  REQUIRE(set);
  REQUIRE(set->count == 3);
  CHECK(Octets(&set->f[0].mask, 4) == std::vector<uint8_t>{255, 255, 255, 255});
  CHECK(Octets(&set->f[0].addr, 4) == std::vector<uint8_t>{198, 51, 100, 77});
  CHECK(set->f[0].port == 0);
  CHECK(Octets(&set->f[1].mask, 4) == std::vector<uint8_t>{0, 0, 0, 0});  // every peer
  CHECK(Octets(&set->f[1].addr, 4) == std::vector<uint8_t>{0, 0, 0, 0});
  CHECK(Octets(&set->f[1].port, 2) == std::vector<uint8_t>{0, 80});
  CHECK(Octets(&set->f[2].mask, 4) == std::vector<uint8_t>{0x80, 0, 0, 0});
  CHECK(Octets(&set->f[2].addr, 4) == std::vector<uint8_t>{0x80, 0, 0, 0});
}

TEST_CASE("pcp_logic: FilterSet: prefix 0 anywhere clears them all", "[pcp][pcp_logic]") {
  const Filter zero{0, 0, Address{}};
  const Filter a{120, 443, Mapped(198, 51, 100, 77)};
  const Filter b{128, 0, Mapped(192, 0, 2, 1)};
  CHECK_FALSE(FilterSet({zero}));
  CHECK_FALSE(FilterSet({zero, a, b}));
  CHECK_FALSE(FilterSet({a, zero, b}));
  CHECK_FALSE(FilterSet({a, b, zero}));
  // Even past the ones the data plane could hold.
  CHECK_FALSE(FilterSet({a, a, a, a, a, b, zero}));
}

TEST_CASE("pcp_logic: FilterSet: at most AFTR_PCP_MAX_FILTERS, the first ones",
          "[pcp][pcp_logic]") {
  std::vector<Filter> filters;
  for (int i = 0; i < AFTR_PCP_MAX_FILTERS + 2; ++i) {
    filters.push_back(Filter{128, static_cast<uint16_t>(1000 + i),
                             Mapped(10, 0, 0, static_cast<uint8_t>(i + 1))});
  }
  std::optional<aftr_pcp_filter_set> set = FilterSet(filters);
  REQUIRE(set);
  REQUIRE(set->count == AFTR_PCP_MAX_FILTERS);
  for (int i = 0; i < AFTR_PCP_MAX_FILTERS; ++i) {
    INFO("filter " << i);
    CHECK(ntohs(set->f[i].port) == 1000 + i);
    CHECK(Octets(&set->f[i].addr, 4) ==
          std::vector<uint8_t>{10, 0, 0, static_cast<uint8_t>(i + 1)});
  }
}

TEST_CASE("pcp_logic: FilterSet: no filters is no set", "[pcp][pcp_logic]") {
  CHECK_FALSE(FilterSet({}));
}

// ---- NonceAllows ----

TEST_CASE("pcp_logic: NonceAllows: strict compares, relaxed does not", "[pcp][pcp_logic]") {
  const uint8_t stored[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const Nonce same = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  Nonce last = same;
  last[11] ^= 1;
  Nonce first = same;
  first[0] ^= 0x80;
  CHECK(NonceAllows(stored, same, true));
  CHECK_FALSE(NonceAllows(stored, last, true));
  CHECK_FALSE(NonceAllows(stored, first, true));
  CHECK_FALSE(NonceAllows(stored, Nonce{}, true));
  CHECK(NonceAllows(stored, same, false));
  CHECK(NonceAllows(stored, last, false));
  CHECK(NonceAllows(stored, Nonce{}, false));
}

// ---- RateLimiter ----

constexpr uint64_t kSecond = 1000000000ull;

TEST_CASE("pcp_logic: RateLimiter: a burst, then refusal, then refill at the rate",
          "[pcp][pcp_logic]") {
  RateLimiter limiter(/*rate=*/10, /*burst=*/5);
  const Ipv6Address b4 = V6("2001:db8::1");
  uint64_t now = 100 * kSecond;
  for (int i = 0; i < 5; ++i) {
    INFO("request " << i);
    CHECK(limiter.Allow(b4, now));
  }
  CHECK_FALSE(limiter.Allow(b4, now));
  CHECK_FALSE(limiter.Allow(b4, now));
  // 50 ms at 10/s: half a token.
  now += kSecond / 20;
  CHECK_FALSE(limiter.Allow(b4, now));
  // 100 ms more: 1.5 tokens, one request.
  now += kSecond / 10;
  CHECK(limiter.Allow(b4, now));
  CHECK_FALSE(limiter.Allow(b4, now));
  // A long pause refills to the burst, not beyond.
  now += 60 * kSecond;
  for (int i = 0; i < 5; ++i) CHECK(limiter.Allow(b4, now));
  CHECK_FALSE(limiter.Allow(b4, now));
}

TEST_CASE("pcp_logic: RateLimiter: one bucket per address", "[pcp][pcp_logic]") {
  RateLimiter limiter(1, 2);
  const Ipv6Address a = V6("2001:db8::1");
  const Ipv6Address b = V6("2001:db8::2");
  const uint64_t now = kSecond;
  CHECK(limiter.Allow(a, now));
  CHECK(limiter.Allow(a, now));
  CHECK_FALSE(limiter.Allow(a, now));
  CHECK(limiter.Allow(b, now));
  CHECK(limiter.Allow(b, now));
  CHECK_FALSE(limiter.Allow(b, now));
  CHECK_FALSE(limiter.Allow(a, now));
  CHECK(limiter.size() == 2);
}

TEST_CASE("pcp_logic: RateLimiter: Configure changes the rate and the burst", "[pcp][pcp_logic]") {
  RateLimiter limiter(1, 1);
  const Ipv6Address b4 = V6("2001:db8::1");
  uint64_t now = kSecond;
  CHECK(limiter.Allow(b4, now));
  CHECK_FALSE(limiter.Allow(b4, now));
  // 20 ms at 1/s would not be enough; at 100/s it is 2 tokens, capped at the burst of 1.
  limiter.Configure(100, 1);
  now += kSecond / 50;
  CHECK(limiter.Allow(b4, now));
  CHECK_FALSE(limiter.Allow(b4, now));
  // A bigger burst for a new address.
  limiter.Configure(100, 8);
  const Ipv6Address other = V6("2001:db8::99");
  for (int i = 0; i < 8; ++i) CHECK(limiter.Allow(other, now));
  CHECK_FALSE(limiter.Allow(other, now));
  // Back to a slow rate: 20 ms is a fiftieth of a token.
  limiter.Configure(1, 8);
  now += kSecond / 50;
  CHECK_FALSE(limiter.Allow(other, now));
}

// ---- KnownClients ----

TEST_CASE("pcp_logic: KnownClients: Open on a missing file creates its directory",
          "[pcp][pcp_logic]") {
  TempDir dir;
  const std::string path = dir.path() + "/state/pcp/clients";
  absl::StatusOr<std::unique_ptr<KnownClients>> kc = KnownClients::Open(path, 100);
  REQUIRE(kc.ok());
  CHECK((*kc)->All().empty());
  CHECK(fs::is_directory(dir.path() + "/state/pcp"));
  CHECK(ReadFile(path).empty());
}

TEST_CASE("pcp_logic: KnownClients: Add appends a line once per address", "[pcp][pcp_logic]") {
  TempDir dir;
  const std::string path = dir.path() + "/clients";
  absl::StatusOr<std::unique_ptr<KnownClients>> kc = KnownClients::Open(path, 100);
  REQUIRE(kc.ok());
  const Ipv6Address a = V6("2001:db8::1");
  const Ipv6Address b = V6("2001:db8:0:1::2");
  CHECK((*kc)->Add(a));
  CHECK(ReadFile(path) == a.ToString() + "\n");
  CHECK((*kc)->Add(a));
  CHECK((*kc)->Add(b));
  CHECK((*kc)->Add(a));
  CHECK(ReadFile(path) == a.ToString() + "\n" + b.ToString() + "\n");
  CHECK((*kc)->All() == std::vector<Ipv6Address>{a, b});
}

TEST_CASE("pcp_logic: KnownClients: reopened, keeps the order, drops duplicates and a torn line",
          "[pcp][pcp_logic]") {
  TempDir dir;
  const std::string path = dir.path() + "/clients";
  const Ipv6Address a = V6("2001:db8::1");
  const Ipv6Address b = V6("2001:db8::2");
  const Ipv6Address c = V6("2001:db8::3");
  {
    absl::StatusOr<std::unique_ptr<KnownClients>> kc = KnownClients::Open(path, 100);
    REQUIRE(kc.ok());
    CHECK((*kc)->Add(c));
    CHECK((*kc)->Add(a));
  }
  // As if another run had appended, then crashed in the middle of a line.
  {
    std::ofstream out(path, std::ios::app);
    out << a.ToString() << "\n" << b.ToString() << "\n" << c.ToString() << "\n" << "2001:db8:";
  }
  absl::StatusOr<std::unique_ptr<KnownClients>> kc = KnownClients::Open(path, 100);
  REQUIRE(kc.ok());
  CHECK((*kc)->All() == std::vector<Ipv6Address>{c, a, b});
  // Rewritten compact.
  CHECK(ReadFile(path) == c.ToString() + "\n" + a.ToString() + "\n" + b.ToString() + "\n");
  CHECK_FALSE(fs::exists(path + ".tmp"));
  // And Add still knows them.
  CHECK((*kc)->Add(b));
  CHECK((*kc)->All().size() == 3);
}

// Every line Add writes ends in "\n"; a last line without one is torn, even if what is left
// happens to parse ("2001:db8::1234" cut to "2001:db8::12" is someone else).
TEST_CASE("pcp_logic: KnownClients: a torn last line that still parses is dropped",
          "[pcp][pcp_logic]") {
  TempDir dir;
  const std::string path = dir.path() + "/clients";
  WriteFile(path, "2001:db8::1\n2001:db8::12");
  absl::StatusOr<std::unique_ptr<KnownClients>> kc = KnownClients::Open(path, 100);
  REQUIRE(kc.ok());
  CHECK((*kc)->All() == std::vector<Ipv6Address>{V6("2001:db8::1")});
}

TEST_CASE("pcp_logic: KnownClients: the limit is honoured", "[pcp][pcp_logic]") {
  TempDir dir;
  const std::string path = dir.path() + "/clients";
  WriteFile(path, "2001:db8::1\n2001:db8::2\n2001:db8::1\n2001:db8::3\n2001:db8::4\n");
  absl::StatusOr<std::unique_ptr<KnownClients>> kc = KnownClients::Open(path, 3);
  REQUIRE(kc.ok());
  const std::vector<Ipv6Address> first3 = {V6("2001:db8::1"), V6("2001:db8::2"),
                                           V6("2001:db8::3")};
  CHECK((*kc)->All() == first3);
  CHECK(ReadFile(path) == "2001:db8::1\n2001:db8::2\n2001:db8::3\n");
  // Full: a new address is not remembered (nor written), a known one is fine.
  CHECK((*kc)->Add(V6("2001:db8::5")));
  CHECK((*kc)->Add(V6("2001:db8::2")));
  CHECK((*kc)->All() == first3);
  CHECK(ReadFile(path) == "2001:db8::1\n2001:db8::2\n2001:db8::3\n");

  // From empty, with a limit of 2.
  TempDir dir2;
  const std::string path2 = dir2.path() + "/clients";
  kc = KnownClients::Open(path2, 2);
  REQUIRE(kc.ok());
  CHECK((*kc)->Add(V6("2001:db8::a")));
  CHECK((*kc)->Add(V6("2001:db8::b")));
  CHECK((*kc)->Add(V6("2001:db8::c")));
  CHECK((*kc)->All() == std::vector<Ipv6Address>{V6("2001:db8::a"), V6("2001:db8::b")});
  CHECK(ReadFile(path2) == "2001:db8::a\n2001:db8::b\n");
}

}  // namespace
}  // namespace aftr::pcp
