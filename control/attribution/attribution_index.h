// The attribution index: which B4 held which public address and port when, read from the
// compact daily logs into SQLite so that "who had 198.51.100.7:4242 at 10:35:59?" answers
// in milliseconds after months of logs. The logs are the record; the index only follows
// them (it remembers how far it has read) and is rebuilt from them when it is missing.
//
// Times are whole seconds, as in the logs: a holding logged from S to E held the port in
// every second S..E inclusive, so a block released and given to someone else in the same
// second gives both holders for that second, and neither at the seconds only one held it.
#ifndef AFTR_CONTROL_ATTRIBUTION_ATTRIBUTION_INDEX_H_
#define AFTR_CONTROL_ATTRIBUTION_ATTRIBUTION_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "control/common/ip.h"

struct sqlite3;
struct sqlite3_stmt;

namespace aftr::attribution {

enum class HoldingKind : uint8_t { kPortBlock = 0, kStaticMapping = 1, kPcpMapping = 2 };

// One holder of a public port range over an interval.
struct Holding {
  HoldingKind kind = HoldingKind::kPortBlock;
  Ipv6Prefix b4;  // as logged: the address, or its prefix when the log truncates
  Ipv4Address public_addr;
  uint16_t first_port = 0;
  uint16_t last_port = 0;
  uint8_t proto = 0;            // mappings; 0 for a block (every protocol)
  Ipv4Address inner_addr;       // mappings
  uint16_t inner_port = 0;      // mappings
  absl::Time start;
  absl::Time end = absl::InfiniteFuture();  // the last second held; infinite while held
};

struct IndexStats {
  uint64_t lines_indexed = 0;     // since this process opened the index
  uint64_t lines_unreadable = 0;  // lines that are not events (skipped, counted)
  uint64_t holdings = 0;          // rows in the index
  absl::CivilDay read_day;        // how far the logs are read: the day's file...
  uint64_t read_offset = 0;       // ...and the byte in it
};

class AttributionIndex {
 public:
  // Opens (creating if needed) the index at `db_path` for the daily logs of `log_path`
  // (config log_file). Nothing is read until CatchUp.
  static absl::StatusOr<std::unique_ptr<AttributionIndex>> Open(const std::string& db_path,
                                                                const std::string& log_path);
  ~AttributionIndex();

  // Reads every whole line the logs have beyond what was indexed, in one transaction per
  // file. Lines that do not parse are skipped and counted.
  absl::Status CatchUp() ABSL_LOCKS_EXCLUDED(mu_);

  // Every holding of `addr`:`port` during the second of `at` (proto 0 = any protocol; a
  // block covers every protocol), oldest first.
  absl::StatusOr<std::vector<Holding>> Lookup(Ipv4Address addr, uint16_t port, absl::Time at,
                                              uint8_t proto = 0) ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets holdings that ended before `before` (the logs' retention).
  absl::Status Prune(absl::Time before) ABSL_LOCKS_EXCLUDED(mu_);

  IndexStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  AttributionIndex(std::string log_path) : log_path_(std::move(log_path)) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Prepare() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadProgress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Indexes one day's file from `offset`; returns the offset after the last whole line.
  absl::StatusOr<uint64_t> IndexFile(absl::CivilDay day, const std::string& file, uint64_t offset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status IndexLine(absl::CivilDay day, absl::string_view line)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string log_path_;
  mutable absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* insert_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* close_block_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* close_mapping_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* close_all_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* lookup_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* save_progress_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::CivilDay read_day_ ABSL_GUARDED_BY(mu_) = absl::CivilDay(1970, 1, 1);
  uint64_t read_offset_ ABSL_GUARDED_BY(mu_) = 0;
  int b4_prefix_length_ ABSL_GUARDED_BY(mu_) = 128;  // from the files' "# ... started" lines
  uint64_t lines_indexed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lines_unreadable_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t holdings_ ABSL_GUARDED_BY(mu_) = 0;                // rows, as count(*) would say
  uint64_t inserted_in_transaction_ ABSL_GUARDED_BY(mu_) = 0;  // added once it commits
};

}  // namespace aftr::attribution

#endif  // AFTR_CONTROL_ATTRIBUTION_ATTRIBUTION_INDEX_H_
