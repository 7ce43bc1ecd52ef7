// Attribution benchmark (bench/run.sh part 6): a month of port-block logs for 32 k
// subscribers, written by the real EventLog into daily files, indexed by the real
// AttributionIndex, then "who had A:P at T?" asked for random holdings (each answer checked
// against the generator's ground truth) and for random ports. Prints the compact log's bytes
// per line beside the operator deck's 62 / 124 (port block) and 56 / 114 (session), the
// indexing rate, and query latency as a ratio to the 1 s target.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "control/attribution/attribution_index.h"
#include "control/events/event_log.h"
#include "control/events/log_line.h"

ABSL_FLAG(int, subscribers, 32768, "subscribers (B4 /64s)");
ABSL_FLAG(int, days, 30, "days of logs");
ABSL_FLAG(int, blocks_per_day, 4, "blocks each subscriber claims (and releases) per day");
ABSL_FLAG(int, queries, 2000, "attribution queries");
ABSL_FLAG(std::string, dir, "", "scratch directory (default: a new one under /tmp)");

namespace {
namespace fs = std::filesystem;
using aftr::Ipv4Address;
using aftr::Ipv6Address;
using aftr::events::EventType;
using aftr::events::NatEvent;

constexpr int kBlockSize = 512;
constexpr int kBlocksPerAddress = (65535 - 1024 + 1) / kBlockSize;  // 126

struct Held {
  int subscriber;
  uint32_t addr;
  uint16_t first_port;
  int64_t start_s, end_s;  // inclusive seconds
};

Ipv6Address B4Of(int subscriber) {
  Ipv6Address a;  // 2001:db8:<hi>:<lo>::1
  a.bytes[0] = 0x20; a.bytes[1] = 0x01; a.bytes[2] = 0x0d; a.bytes[3] = 0xb8;
  a.bytes[4] = static_cast<uint8_t>(subscriber >> 24);
  a.bytes[5] = static_cast<uint8_t>(subscriber >> 16);
  a.bytes[6] = static_cast<uint8_t>(subscriber >> 8);
  a.bytes[7] = static_cast<uint8_t>(subscriber);
  a.bytes[15] = 1;
  return a;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int subscribers = absl::GetFlag(FLAGS_subscribers);
  const int days = absl::GetFlag(FLAGS_days);
  const int per_day = absl::GetFlag(FLAGS_blocks_per_day);
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    char tmpl[] = "/tmp/aftr-attribution-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  const std::string log_path = dir + "/events.log";
  // Enough addresses that about a third of the blocks are in use at the busiest moment.
  const int addresses = std::max(1, subscribers * 3 / kBlocksPerAddress);
  const uint32_t pool_base = (198u << 24) | (51u << 16) | (100u << 8);  // 198.51.100.0 upward
  std::printf("%d subscribers, %d days, %d blocks/subscriber/day, %d public addresses x %d blocks of %d ports\n",
              subscribers, days, per_day, addresses, kBlocksPerAddress, kBlockSize);

  // ---- generate: claims at random times, each held 10 min .. 6 h, on a random free block ----
  std::mt19937_64 rng(20261127);
  const absl::Time epoch = absl::FromCivil(absl::CivilSecond(2026, 10, 28, 0, 0, 0), absl::UTCTimeZone());
  const int64_t t0 = absl::ToUnixSeconds(epoch);
  const int64_t span = int64_t{days} * 86400;
  struct Claim { int64_t t; int subscriber; int64_t hold; };
  std::vector<Claim> claims;
  claims.reserve(static_cast<size_t>(subscribers) * per_day * days);
  std::uniform_int_distribution<int64_t> when(0, span - 1);
  std::uniform_int_distribution<int64_t> hold(600, 6 * 3600);
  for (int s = 0; s < subscribers; ++s) {
    for (int k = 0; k < per_day * days; ++k) claims.push_back({t0 + when(rng), s, hold(rng)});
  }
  std::sort(claims.begin(), claims.end(), [](const Claim& a, const Claim& b) { return a.t < b.t; });
  std::vector<std::vector<uint16_t>> free_blocks(addresses);
  for (auto& f : free_blocks) {
    for (int b = 0; b < kBlocksPerAddress; ++b) f.push_back(static_cast<uint16_t>(1024 + b * kBlockSize));
  }
  using Release = std::pair<int64_t, size_t>;  // time, index in `held`
  std::priority_queue<Release, std::vector<Release>, std::greater<>> releases;
  std::vector<Held> held;
  held.reserve(claims.size());
  auto log = aftr::events::EventLog::Create(
      log_path, aftr::events::LogPolicy{.per_session = false, .b4_prefix_length = 64, .retention_days = 400},
      [&] { return epoch; });
  if (!log.ok()) { std::fprintf(stderr, "%s\n", log.status().ToString().c_str()); return 1; }
  std::vector<NatEvent> batch;
  auto event = [&](EventType type, const Held& h, int64_t t) {
    NatEvent e;
    e.type = type;
    e.time = absl::FromUnixSeconds(t);
    e.b4 = B4Of(h.subscriber);
    e.public_addr = Ipv4Address{pool_base + h.addr};
    e.public_port = h.first_port;
    e.block_size = kBlockSize;
    batch.push_back(e);
  };
  auto release_until = [&](int64_t t) {
    while (!releases.empty() && releases.top().first <= t) {
      const Held& h = held[releases.top().second];
      free_blocks[h.addr].push_back(h.first_port);
      event(EventType::kBlockReleased, h, h.end_s);
      releases.pop();
    }
  };
  const auto gen_start = std::chrono::steady_clock::now();
  std::uniform_int_distribution<int> any_addr(0, addresses - 1);
  uint64_t refused = 0;
  for (const Claim& c : claims) {
    release_until(c.t);
    int addr = any_addr(rng);
    for (int tries = 0; free_blocks[addr].empty() && tries < addresses; ++tries) addr = (addr + 1) % addresses;
    if (free_blocks[addr].empty()) { ++refused; continue; }
    auto& f = free_blocks[addr];
    std::uniform_int_distribution<size_t> pick(0, f.size() - 1);
    const size_t i = pick(rng);
    Held h{c.subscriber, static_cast<uint32_t>(addr), f[i], c.t, c.t + c.hold};
    f[i] = f.back();
    f.pop_back();
    held.push_back(h);
    releases.push({h.end_s, held.size() - 1});
    event(EventType::kBlockClaimed, h, h.start_s);
    if (batch.size() >= 4096) {
      if (!(*log)->Write(batch).ok()) return 1;
      batch.clear();
    }
  }
  release_until(INT64_MAX);
  if (!(*log)->Write(batch).ok()) return 1;
  log->reset();
  const double gen_s = Seconds(std::chrono::steady_clock::now() - gen_start);

  // ---- the compact log's size ----
  uint64_t bytes = 0, lines = 0, longest = 0;
  for (const auto& [day, file] : aftr::events::EventLog::DailyFiles(log_path)) {
    FILE* f = std::fopen(file.c_str(), "r");
    char buf[256];
    while (f != nullptr && std::fgets(buf, sizeof(buf), f) != nullptr) {
      if (buf[0] == '#') continue;
      const uint64_t n = std::strlen(buf);
      bytes += n;
      ++lines;
      longest = std::max(longest, n);
    }
    if (f != nullptr) std::fclose(f);
  }
  NatEvent session;
  session.type = EventType::kSessionCreate;
  session.time = epoch;
  session.proto = 6;
  session.b4 = B4Of(12345);
  session.inner_addr = Ipv4Address{(192u << 24) | (2u << 8) | 10};
  session.inner_port = 40000;
  session.public_addr = Ipv4Address{pool_base + 200};
  session.public_port = 45678;
  const size_t session_line = aftr::events::FormatLogLine(session, 64).size() + 1;
  std::printf("generated %zu blocks (%llu claims refused: pool full) in %.1f s: %llu lines, %.1f MB\n",
              held.size(), static_cast<unsigned long long>(refused), gen_s,
              static_cast<unsigned long long>(lines), bytes / 1e6);
  std::printf("compact log, port block: %.1f bytes/line on average, %llu at most (deck: 62 optimized -> %.2fx, 124 text -> %.2fx)\n",
              static_cast<double>(bytes) / lines, static_cast<unsigned long long>(longest),
              62.0 / (static_cast<double>(bytes) / lines), 124.0 / (static_cast<double>(bytes) / lines));
  std::printf("compact log, session (per-session mode): %zu bytes/line for a typical TCP session (deck: 56 optimized -> %.2fx, 114 text -> %.2fx)\n",
              session_line, 56.0 / session_line, 114.0 / session_line);
  std::printf("per day: %.1f MB of port-block log for %d subscribers\n", bytes / 1e6 / days, subscribers);

  // ---- index ----
  const std::string db = dir + "/attribution.sqlite3";
  auto index = aftr::attribution::AttributionIndex::Open(db, log_path);
  if (!index.ok()) { std::fprintf(stderr, "%s\n", index.status().ToString().c_str()); return 1; }
  const auto index_start = std::chrono::steady_clock::now();
  if (absl::Status s = (*index)->CatchUp(); !s.ok()) { std::fprintf(stderr, "%s\n", s.ToString().c_str()); return 1; }
  const double index_s = Seconds(std::chrono::steady_clock::now() - index_start);
  std::printf("indexed %llu lines in %.1f s (%.0f lines/s), index %.1f MB\n",
              static_cast<unsigned long long>(lines), index_s, lines / index_s,
              fs::file_size(db) / 1e6);

  // ---- queries: half at a held port at a second inside its holding (answer known), half random ----
  const int queries = absl::GetFlag(FLAGS_queries);
  std::vector<double> latencies;
  int wrong = 0;
  std::uniform_int_distribution<size_t> any_held(0, held.size() - 1);
  std::uniform_int_distribution<int> any_port(1024, 65535);
  for (int q = 0; q < queries; ++q) {
    uint32_t addr;
    uint16_t port;
    int64_t t;
    const Held* truth = nullptr;
    if (q % 2 == 0) {
      truth = &held[any_held(rng)];
      addr = truth->addr;
      port = static_cast<uint16_t>(truth->first_port + std::uniform_int_distribution<int>(0, kBlockSize - 1)(rng));
      // Strictly inside: at the edge seconds a block may have two holders.
      t = std::uniform_int_distribution<int64_t>(truth->start_s + 1, truth->end_s - 1)(rng);
    } else {
      addr = static_cast<uint32_t>(any_addr(rng));
      port = static_cast<uint16_t>(any_port(rng));
      t = t0 + when(rng);
    }
    const auto start = std::chrono::steady_clock::now();
    auto found = (*index)->Lookup(Ipv4Address{pool_base + addr}, port, absl::FromUnixSeconds(t));
    latencies.push_back(Seconds(std::chrono::steady_clock::now() - start));
    if (!found.ok()) return 1;
    if (truth != nullptr) {
      const bool right = found->size() == 1 && (*found)[0].b4.addr == aftr::events::TruncateB4(B4Of(truth->subscriber), 64) &&
                         (*found)[0].first_port == truth->first_port;
      if (!right) ++wrong;
    }
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) { return latencies[static_cast<size_t>(p * (latencies.size() - 1))] * 1e3; };
  std::printf("who: %d queries, p50 %.3f ms, p99 %.3f ms, max %.3f ms -> %.0fx under the 1 s target; %d of %d known answers wrong\n",
              queries, pct(0.5), pct(0.99), latencies.back() * 1e3, 1.0 / latencies.back(), wrong, queries / 2);
  if (absl::GetFlag(FLAGS_dir).empty()) fs::remove_all(dir);
  return wrong == 0 ? 0 : 1;
}
