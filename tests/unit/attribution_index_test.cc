// The attribution index over the daily logs: who held a public address and port in a given
// second, at the boundaries of blocks, across files, restarts of the index and state loss.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "control/attribution/attribution_index.h"
#include "control/events/event_log.h"

namespace aftr::attribution {
namespace {
namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/aftr-attribution-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

// 2026-11-27 at HH:MM:SS UTC.
absl::Time At(int h, int m, int s) {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 27, h, m, s), absl::UTCTimeZone());
}

void Append(const std::string& file, const std::string& text) {
  std::ofstream(file, std::ios::app) << text;
}

std::vector<std::string> Holders(AttributionIndex& index, const char* addr, uint16_t port,
                                 absl::Time at, uint8_t proto = 0) {
  REQUIRE(index.CatchUp().ok());
  absl::StatusOr<std::vector<Holding>> found = index.Lookup(*ParseIpv4(addr), port, at, proto);
  REQUIRE(found.ok());
  std::vector<std::string> out;
  for (const Holding& h : *found) out.push_back(h.b4.ToString());
  return out;
}

using V = std::vector<std::string>;

TEST_CASE("a block released at T and claimed by another B4 at T+1 has one holder each second") {
  TempDir dir;
  const std::string log = dir.path + "/events.log";
  const std::string day = dir.path + "/events-2026-11-27.log";
  Append(day,
         "# 10:00:00 aftrd started: b4_prefix_length=64 mode=port-block\n"
         "10:00:00 BA 2001:db8:a:: 198.51.100.1 1024-1535\n"
         "10:30:00 BR 2001:db8:a:: 198.51.100.1 1024-1535\n"
         "10:30:01 BA 2001:db8:b:: 198.51.100.1 1024-1535\n");
  auto index = AttributionIndex::Open(dir.path + "/index.sqlite3", log);
  REQUIRE(index.ok());
  AttributionIndex& ix = **index;
  CHECK(Holders(ix, "198.51.100.1", 1024, At(9, 59, 59)).empty());
  CHECK(Holders(ix, "198.51.100.1", 1024, At(10, 0, 0)) == V{"2001:db8:a::/64"});
  CHECK(Holders(ix, "198.51.100.1", 1535, At(10, 30, 0)) == V{"2001:db8:a::/64"});
  CHECK(Holders(ix, "198.51.100.1", 1300, At(10, 30, 1)) == V{"2001:db8:b::/64"});
  CHECK(Holders(ix, "198.51.100.1", 1300, At(23, 59, 59)) == V{"2001:db8:b::/64"});
  CHECK(Holders(ix, "198.51.100.1", 1536, At(10, 15, 0)).empty());   // next block
  CHECK(Holders(ix, "198.51.100.2", 1300, At(10, 15, 0)).empty());   // other address
  // Sub-second query times fall in their second.
  CHECK(Holders(ix, "198.51.100.1", 1300, At(10, 30, 0) + absl::Milliseconds(999)) ==
        V{"2001:db8:a::/64"});

  auto found = ix.Lookup(*ParseIpv4("198.51.100.1"), 1300, At(10, 15, 0));
  REQUIRE(found.ok());
  REQUIRE(found->size() == 1);
  CHECK((*found)[0].kind == HoldingKind::kPortBlock);
  CHECK((*found)[0].first_port == 1024);
  CHECK((*found)[0].last_port == 1535);
  CHECK((*found)[0].start == At(10, 0, 0));
  CHECK((*found)[0].end == At(10, 30, 0));
}

TEST_CASE("an address out of ports is read but neither opens nor ends a holding") {
  TempDir dir;
  const std::string day = dir.path + "/events-2026-11-27.log";
  Append(day,
         "# 10:00:00 aftrd started: b4_prefix_length=64 mode=port-block\n"
         "10:00:00 BA 2001:db8:a:: 198.51.100.1 1024-1535\n"
         "10:10:00 AP 2001:db8:a:: 198.51.100.1\n"
         "10:10:00 AP 2001:db8:b:: 198.51.100.1\n");
  auto index = AttributionIndex::Open(dir.path + "/index.sqlite3", dir.path + "/events.log");
  REQUIRE(index.ok());
  // The block goes on; B4 b, which got no block, holds nothing on the address.
  CHECK(Holders(**index, "198.51.100.1", 1024, At(10, 20, 0)) == V{"2001:db8:a::/64"});
  CHECK(Holders(**index, "198.51.100.1", 1536, At(10, 20, 0)).empty());
  CHECK((*index)->stats().lines_indexed == 3);
  CHECK((*index)->stats().lines_unreadable == 0);
}

TEST_CASE("a release and a claim in the same second give both holders for that second") {
  TempDir dir;
  const std::string day = dir.path + "/events-2026-11-27.log";
  Append(day,
         "10:00:00 BA 2001:db8:a::2 198.51.100.1 1024-1535\n"
         "10:30:00 BR 2001:db8:a::2 198.51.100.1 1024-1535\n"
         "10:30:00 BA 2001:db8:b::2 198.51.100.1 1024-1535\n");
  auto index = AttributionIndex::Open(dir.path + "/index.sqlite3", dir.path + "/events.log");
  REQUIRE(index.ok());
  // No header: lines are taken as full addresses.
  CHECK(Holders(**index, "198.51.100.1", 1024, At(10, 30, 0)) ==
        V{"2001:db8:a::2/128", "2001:db8:b::2/128"});
}

TEST_CASE("the index follows the logs as they grow, whole lines only, across days") {
  TempDir dir;
  const std::string log = dir.path + "/events.log";
  const std::string day1 = dir.path + "/events-2026-11-27.log";
  const std::string day2 = dir.path + "/events-2026-11-28.log";
  const std::string db = dir.path + "/index.sqlite3";
  Append(day1, "23:00:00 BA 2001:db8:a::2 198.51.100.1 1024-1535\n23:10:00 BR 2001:db8:a::2 198.5");
  {
    auto index = AttributionIndex::Open(db, log);
    REQUIRE(index.ok());
    CHECK(Holders(**index, "198.51.100.1", 1024, At(23, 30, 0)) == V{"2001:db8:a::2/128"});
    Append(day1, "1.100.1 1024-1535\n");  // the writer finished the line
    CHECK(Holders(**index, "198.51.100.1", 1024, At(23, 30, 0)).empty());
    CHECK(Holders(**index, "198.51.100.1", 1024, At(23, 10, 0)) == V{"2001:db8:a::2/128"});
    CHECK((*index)->stats().lines_indexed == 2);
    CHECK((*index)->stats().holdings == 1);
  }
  Append(day2, "# 00:00:05 aftrd started: b4_prefix_length=56 mode=port-block\n"
               "00:00:10 BA 2001:db8:c:: 198.51.100.1 1024-1535\n");
  // A reopened index goes on from where it was: nothing twice.
  auto index = AttributionIndex::Open(db, log);
  REQUIRE(index.ok());
  CHECK(Holders(**index, "198.51.100.1", 1024, At(23, 5, 0)) == V{"2001:db8:a::2/128"});
  CHECK(Holders(**index, "198.51.100.1", 1024, At(23, 59, 59) + absl::Seconds(11)) ==
        V{"2001:db8:c::/56"});
  CHECK((*index)->stats().holdings == 2);
  CHECK((*index)->stats().lines_indexed == 1);
  CHECK((*index)->stats().read_day == absl::CivilDay(2026, 11, 28));
}

TEST_CASE("mappings hold one port of one protocol, and a fresh data plane ends every holding") {
  TempDir dir;
  const std::string day = dir.path + "/events-2026-11-27.log";
  Append(day,
         "10:00:00 MC tcp 2001:db8:a::2 192.0.2.10:80 198.51.100.1:2000\n"
         "10:00:00 PC udp 2001:db8:b::2 192.0.2.10:5000 198.51.100.1:2000 lifetime=3600\n"
         "10:00:00 BA 2001:db8:b::2 198.51.100.1 1536-2047\n"
         "10:10:00 PD udp 2001:db8:b::2 192.0.2.10:5000 198.51.100.1:2000 expired\n"
         "10:20:00 FS no earlier state\n"
         "10:20:01 SC udp 2001:db8:b::2 192.0.2.10:5000 198.51.100.1:1999\n"
         "10:20:02 this line is not an event\n");
  auto index = AttributionIndex::Open(dir.path + "/index.sqlite3", dir.path + "/events.log");
  REQUIRE(index.ok());
  CHECK(Holders(**index, "198.51.100.1", 2000, At(10, 5, 0), 6) == V{"2001:db8:a::2/128", "2001:db8:b::2/128"});
  CHECK(Holders(**index, "198.51.100.1", 2000, At(10, 5, 0), 17) == V{"2001:db8:b::2/128", "2001:db8:b::2/128"});
  CHECK(Holders(**index, "198.51.100.1", 2000, At(10, 15, 0), 17) == V{"2001:db8:b::2/128"});
  CHECK(Holders(**index, "198.51.100.1", 2000, At(10, 20, 0)).size() == 2);  // MC and BA, ended here
  CHECK(Holders(**index, "198.51.100.1", 2000, At(10, 20, 1)).empty());
  auto found = (*index)->Lookup(*ParseIpv4("198.51.100.1"), 2000, At(10, 5, 0), 6);
  REQUIRE(found.ok());
  CHECK((*found)[0].kind == HoldingKind::kStaticMapping);
  CHECK((*found)[0].inner_addr.ToString() == "192.0.2.10");
  CHECK((*found)[0].inner_port == 80);
  CHECK((*index)->stats().lines_unreadable == 1);
}

TEST_CASE("pruning forgets holdings that ended before the retention, never open ones") {
  TempDir dir;
  const std::string day = dir.path + "/events-2026-11-27.log";
  Append(day,
         "10:00:00 BA 2001:db8:a::2 198.51.100.1 1024-1535\n"
         "10:30:00 BR 2001:db8:a::2 198.51.100.1 1024-1535\n"
         "10:00:00 BA 2001:db8:b::2 198.51.100.1 1536-2047\n");
  auto index = AttributionIndex::Open(dir.path + "/index.sqlite3", dir.path + "/events.log");
  REQUIRE(index.ok());
  REQUIRE((*index)->CatchUp().ok());
  CHECK((*index)->stats().holdings == 2);
  REQUIRE((*index)->Prune(At(10, 30, 1)).ok());
  CHECK((*index)->stats().holdings == 1);
  CHECK(Holders(**index, "198.51.100.1", 1536, At(12, 0, 0)) == V{"2001:db8:b::2/128"});
}

TEST_CASE("an index file that is not a database is a clear error") {
  TempDir dir;
  std::ofstream(dir.path + "/index.sqlite3") << "not a database, just text that is long enough to matter";
  auto index = AttributionIndex::Open(dir.path + "/index.sqlite3", dir.path + "/events.log");
  REQUIRE_FALSE(index.ok());
  CHECK(std::string(index.status().message()).find("index.sqlite3") != std::string::npos);
}

}  // namespace
}  // namespace aftr::attribution
