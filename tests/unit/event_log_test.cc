// The compact daily log: one file per UTC day named with its date, a link to the newest,
// retention, whole lines after a crash, and what each logging mode keeps.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "control/events/event_log.h"
#include "control/events/nat_event.h"

namespace aftr::events {
namespace {
namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/aftr-event-log-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

std::string Read(const std::string& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

NatEvent Block(EventType type, absl::Time t) {
  NatEvent e;
  e.type = type;
  e.time = t;
  e.b4 = *ParseIpv6("2001:db8:a::2");
  e.public_addr = *ParseIpv4("198.51.100.1");
  e.public_port = 1024;
  e.block_size = 512;
  return e;
}

NatEvent Session(absl::Time t) {
  NatEvent e = Block(EventType::kSessionCreate, t);
  e.proto = 17;
  e.inner_addr = *ParseIpv4("192.0.2.10");
  e.inner_port = 40000;
  e.public_port = 1030;
  return e;
}

const absl::Time kNov27 = absl::FromUnixSeconds(1795775759);  // 2026-11-27T10:35:59Z

TEST_CASE("each event goes to the file of its UTC day and the link follows the newest") {
  TempDir dir;
  const std::string path = dir.path + "/events.log";
  absl::Time now = kNov27;
  auto log = EventLog::Create(path, LogPolicy{}, [&] { return now; });
  REQUIRE(log.ok());
  const std::string day1 = dir.path + "/events-2026-11-27.log";
  const std::string day2 = dir.path + "/events-2026-11-28.log";
  CHECK(EventLog::DailyPath(path, absl::CivilDay(2026, 11, 27)) == day1);
  CHECK(fs::read_symlink(path) == "events-2026-11-27.log");

  const absl::Time midnight = absl::FromUnixSeconds(1795824000);  // 2026-11-28T00:00:00Z
  REQUIRE((*log)->Write({Block(EventType::kBlockClaimed, midnight - absl::Seconds(1)),
                         Block(EventType::kBlockReleased, midnight)})
              .ok());
  // Each new file starts by saying how its lines are written; each start of aftrd says so too.
  CHECK(Read(day1) ==
        "# aftrd log of 2026-11-27 (UTC): b4_prefix_length=64 mode=port-block\n"
        "# 10:35:59 aftrd started: b4_prefix_length=64 mode=port-block\n"
        "23:59:59 BA 2001:db8:a:: 198.51.100.1 1024-1535\n");
  CHECK(Read(day2) ==
        "# aftrd log of 2026-11-28 (UTC): b4_prefix_length=64 mode=port-block\n"
        "00:00:00 BR 2001:db8:a:: 198.51.100.1 1024-1535\n");
  CHECK(fs::read_symlink(path) == "events-2026-11-28.log");
  CHECK(Read(path) == Read(day2));
  // A late event of the day before still goes to that day's file.
  REQUIRE((*log)->Write(Block(EventType::kBlockClaimed, midnight - absl::Seconds(1))).ok());
  CHECK(Read(day1).size() > Read(day2).size());
  CHECK(fs::read_symlink(path) == "events-2026-11-28.log");
  CHECK((*log)->lines_written() == 3);
  auto files = EventLog::DailyFiles(path);
  REQUIRE(files.size() == 2);
  CHECK(files[0].second == day1);
  CHECK(files[1].first == absl::CivilDay(2026, 11, 28));
}

TEST_CASE("port-block mode leaves sessions out, per-session mode keeps them") {
  TempDir dir;
  const std::string path = dir.path + "/events.log";
  auto now = [] { return kNov27; };
  {
    auto log = EventLog::Create(path, LogPolicy{.per_session = false}, now);
    REQUIRE(log.ok());
    REQUIRE((*log)->Write({Session(kNov27), Block(EventType::kBlockClaimed, kNov27)}).ok());
    CHECK((*log)->lines_written() == 1);
  }
  CHECK(Read(path).find(" SC ") == std::string::npos);
  {
    auto log = EventLog::Create(path, LogPolicy{.per_session = true, .b4_prefix_length = 128}, now);
    REQUIRE(log.ok());
    REQUIRE((*log)->Write({Session(kNov27)}).ok());
    CHECK((*log)->lines_written() == 1);
  }
  CHECK(Read(path).find("\n# 10:35:59 aftrd started: b4_prefix_length=128 mode=per-session\n"
                        "10:35:59 SC udp 2001:db8:a::2 192.0.2.10:40000 198.51.100.1:1030\n") !=
        std::string::npos);
}

TEST_CASE("files older than the retention are deleted, others kept") {
  TempDir dir;
  const std::string path = dir.path + "/events.log";
  for (const char* name : {"events-2026-11-24.log", "events-2026-11-25.log",
                           "events-2026-11-26.log", "events-2026-1-26.log", "other.log"}) {
    std::ofstream(dir.path + "/" + name) << "x\n";
  }
  auto log = EventLog::Create(path, LogPolicy{.retention_days = 2}, [] { return kNov27; });
  REQUIRE(log.ok());
  CHECK_FALSE(fs::exists(dir.path + "/events-2026-11-24.log"));
  CHECK_FALSE(fs::exists(dir.path + "/events-2026-11-25.log"));
  CHECK(fs::exists(dir.path + "/events-2026-11-26.log"));
  CHECK(fs::exists(dir.path + "/events-2026-11-27.log"));
  CHECK(fs::exists(dir.path + "/events-2026-1-26.log"));  // not one of ours
  CHECK(fs::exists(dir.path + "/other.log"));
}

TEST_CASE("a line torn by a crash is cut when the file is opened again") {
  TempDir dir;
  const std::string path = dir.path + "/events.log";
  const std::string day = dir.path + "/events-2026-11-27.log";
  std::ofstream(day) << "10:00:00 BA 2001:db8:a:: 198.51.100.1 1024-1535\n10:00:01 BR 2001:db8";
  auto log = EventLog::Create(path, LogPolicy{}, [] { return kNov27; });
  REQUIRE(log.ok());
  CHECK(Read(day) ==
        "10:00:00 BA 2001:db8:a:: 198.51.100.1 1024-1535\n"
        "# 10:35:59 aftrd started: b4_prefix_length=64 mode=port-block\n");
}

TEST_CASE("a log file from before daily files is kept under another name") {
  TempDir dir;
  const std::string path = dir.path + "/events.log";
  std::ofstream(path) << "2026-11-26T10:35:59Z BA 2001:db8:a::2 198.51.100.1 1024-1535\n";
  auto log = EventLog::Create(path, LogPolicy{}, [] { return kNov27; });
  REQUIRE(log.ok());
  CHECK(fs::is_symlink(path));
  CHECK(Read(path + ".before-daily").find("2026-11-26T10:35:59Z BA") == 0);
}

TEST_CASE("an unwritable log directory is a clear error") {
  auto log = EventLog::Create("/proc/aftr-no-such/events.log", LogPolicy{}, [] { return kNov27; });
  REQUIRE_FALSE(log.ok());
  CHECK(std::string(log.status().message()).find("events-2026-11-27.log") != std::string::npos);
}

}  // namespace
}  // namespace aftr::events

namespace aftr::events {
namespace {

TEST_CASE("the deterministic ranges are written at each start and atop each new day") {
  TempDir dir;
  const std::string path = dir.path + "/events.log";
  LogPolicy policy;
  policy.deterministic_ranges = {"2001:db8:a::/48 /56 198.51.100.64/28 2048 1024-65535"};
  auto log = EventLog::Create(path, policy, [] { return kNov27; });
  REQUIRE(log.ok());
  CHECK(Read(dir.path + "/events-2026-11-27.log") ==
        "# aftrd log of 2026-11-27 (UTC): b4_prefix_length=64 mode=port-block\n"
        "# 10:35:59 aftrd started: b4_prefix_length=64 mode=port-block\n"
        "# 10:35:59 deterministic 2001:db8:a::/48 /56 198.51.100.64/28 2048 1024-65535\n");
  const absl::Time midnight = absl::FromUnixSeconds(1795824000);  // 2026-11-28T00:00:00Z
  REQUIRE((*log)->Write(Block(EventType::kBlockClaimed, midnight)).ok());
  CHECK(Read(dir.path + "/events-2026-11-28.log") ==
        "# aftrd log of 2026-11-28 (UTC): b4_prefix_length=64 mode=port-block\n"
        "# 00:00:00 deterministic 2001:db8:a::/48 /56 198.51.100.64/28 2048 1024-65535\n"
        "00:00:00 BA 2001:db8:a:: 198.51.100.1 1024-1535\n");
}

}  // namespace
}  // namespace aftr::events
