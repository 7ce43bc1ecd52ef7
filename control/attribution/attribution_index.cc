#include "control/attribution/attribution_index.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/events/event_log.h"
#include "control/events/log_line.h"

namespace aftr::attribution {
namespace {

using events::EventType;
using events::NatEvent;

constexpr char kSchema[] = R"sql(
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  -- A catch-up is one transaction per daily file (a quarter of a million lines for 32 k
  -- subscribers): with SQLite's 2 MB default cache it would spill and re-read pages all the
  -- time. 64 MB of cache and the file mapped keep it to one pass.
  PRAGMA cache_size = -65536;
  PRAGMA mmap_size = 1073741824;
  CREATE TABLE IF NOT EXISTS holdings (
    kind INTEGER NOT NULL,         -- 0 port block, 1 static mapping, 2 PCP mapping
    public_addr INTEGER NOT NULL,  -- IPv4, host order
    first_port INTEGER NOT NULL,
    last_port INTEGER NOT NULL,
    proto INTEGER NOT NULL,        -- 0 for blocks
    b4 BLOB NOT NULL,              -- 16 bytes, as logged
    b4_len INTEGER NOT NULL,
    inner_addr INTEGER NOT NULL,
    inner_port INTEGER NOT NULL,
    start_s INTEGER NOT NULL,      -- Unix seconds
    end_s INTEGER                  -- last second held; NULL while held
  );
  CREATE INDEX IF NOT EXISTS holdings_by_port ON holdings (public_addr, first_port, start_s);
  -- Ending a holding finds it among the open ones, not among months of closed ones.
  CREATE INDEX IF NOT EXISTS holdings_open ON holdings (public_addr, first_port)
    WHERE end_s IS NULL;
  CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    day TEXT NOT NULL,             -- the daily file read last, YYYY-MM-DD
    offset INTEGER NOT NULL,       -- bytes of it indexed
    b4_len INTEGER NOT NULL        -- the prefix length its lines were written with
  );
)sql";

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : "no database"));
}

int64_t UnixSeconds(absl::Time t) { return absl::ToUnixSeconds(t); }

std::string DayText(absl::CivilDay day) {
  return absl::StrFormat("%04d-%02d-%02d", day.year(), day.month(), day.day());
}

}  // namespace

absl::StatusOr<std::unique_ptr<AttributionIndex>> AttributionIndex::Open(
    const std::string& db_path, const std::string& log_path) {
  auto index = std::unique_ptr<AttributionIndex>(new AttributionIndex(log_path));
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(db_path).parent_path(), ec);
  absl::MutexLock lock(&index->mu_);
  if (sqlite3_open_v2(db_path.c_str(), &index->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return SqliteError(index->db_, absl::StrCat("opening attribution index ", db_path));
  }
  sqlite3_busy_timeout(index->db_, 2000);
  if (absl::Status s = index->Exec(kSchema); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
  }
  if (absl::Status s = index->Prepare(); !s.ok()) return s;
  if (absl::Status s = index->LoadProgress(); !s.ok()) return s;
  // Counted once here, then kept by the writes: stats() is on every metrics scrape, and a
  // count(*) over a month of holdings is not free.
  sqlite3_stmt* count = nullptr;
  if (sqlite3_prepare_v2(index->db_, "SELECT count(*) FROM holdings", -1, &count, nullptr) ==
          SQLITE_OK &&
      sqlite3_step(count) == SQLITE_ROW) {
    index->holdings_ = static_cast<uint64_t>(sqlite3_column_int64(count, 0));
  }
  sqlite3_finalize(count);
  return index;
}

AttributionIndex::~AttributionIndex() {
  absl::MutexLock lock(&mu_);
  for (sqlite3_stmt* s : {insert_, close_block_, close_mapping_, close_all_, lookup_, save_progress_}) {
    sqlite3_finalize(s);
  }
  sqlite3_close(db_);
}

absl::Status AttributionIndex::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status s = absl::InternalError(error != nullptr ? error : "sqlite error");
    sqlite3_free(error);
    return s;
  }
  return absl::OkStatus();
}

absl::Status AttributionIndex::Prepare() {
  struct {
    sqlite3_stmt** stmt;
    const char* sql;
  } statements[] = {
      {&insert_,
       "INSERT INTO holdings (kind, public_addr, first_port, last_port, proto, b4, b4_len, "
       "inner_addr, inner_port, start_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&close_block_,
       "UPDATE holdings SET end_s = ?1 WHERE public_addr = ?2 AND first_port = ?3 AND kind = 0 "
       "AND b4 = ?4 AND end_s IS NULL"},
      {&close_mapping_,
       "UPDATE holdings SET end_s = ?1 WHERE public_addr = ?2 AND first_port = ?3 AND kind = ?4 "
       "AND proto = ?5 AND end_s IS NULL"},
      {&close_all_, "UPDATE holdings SET end_s = ?1 WHERE end_s IS NULL"},
      // Blocks start at most 65535 ports below the port; mappings hold one port.
      {&lookup_,
       "SELECT kind, b4, b4_len, public_addr, first_port, last_port, proto, inner_addr, "
       "inner_port, start_s, end_s FROM holdings WHERE public_addr = ?1 AND first_port <= ?2 "
       "AND last_port >= ?2 AND start_s <= ?3 AND (end_s IS NULL OR end_s >= ?3) "
       "AND (?4 = 0 OR proto = 0 OR proto = ?4) ORDER BY start_s, rowid"},
      {&save_progress_,
       "INSERT OR REPLACE INTO progress (id, day, offset, b4_len) VALUES (1, ?1, ?2, ?3)"},
  };
  for (auto& s : statements) {
    if (sqlite3_prepare_v3(db_, s.sql, -1, SQLITE_PREPARE_PERSISTENT, s.stmt, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "preparing attribution index statements");
    }
  }
  return absl::OkStatus();
}

absl::Status AttributionIndex::LoadProgress() {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT day, offset, b4_len FROM progress WHERE id = 1", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    return SqliteError(db_, "reading attribution index progress");
  }
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    const char* day = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    absl::CivilDay parsed;
    if (day != nullptr && absl::ParseCivilTime(day, &parsed)) read_day_ = parsed;
    read_offset_ = static_cast<uint64_t>(sqlite3_column_int64(stmt, 1));
    b4_prefix_length_ = sqlite3_column_int(stmt, 2);
  }
  sqlite3_finalize(stmt);
  return absl::OkStatus();
}

absl::Status AttributionIndex::CatchUp() {
  absl::MutexLock lock(&mu_);
  for (const auto& [day, file] : events::EventLog::DailyFiles(log_path_)) {
    if (day < read_day_) continue;
    const uint64_t from = day == read_day_ ? read_offset_ : 0;
    if (day != read_day_) b4_prefix_length_ = 128;  // until the file's own header says
    absl::StatusOr<uint64_t> to = IndexFile(day, file, from);
    if (!to.ok()) return to.status();
    read_day_ = day;
    read_offset_ = *to;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> AttributionIndex::IndexFile(absl::CivilDay day, const std::string& file,
                                                     uint64_t offset) {
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", file));
  std::string data;
  char buf[1 << 16];
  ssize_t n;
  off_t pos = static_cast<off_t>(offset);
  while ((n = pread(fd, buf, sizeof(buf), pos)) > 0) {
    data.append(buf, static_cast<size_t>(n));
    pos += n;
  }
  const int err = errno;
  close(fd);
  if (n < 0) return ErrnoToStatus(err, absl::StrCat("reading ", file));
  // Only whole lines: the writer may be in the middle of one.
  const size_t whole = data.rfind('\n');
  // (A crash repair only cuts a partial line, never what was indexed, so files do not shrink
  // below `offset`.)
  if (whole == std::string::npos) return offset;
  if (absl::Status s = Exec("BEGIN"); !s.ok()) return s;
  inserted_in_transaction_ = 0;
  size_t start = 0;
  while (start <= whole) {
    const size_t end = data.find('\n', start);
    if (absl::Status s = IndexLine(day, absl::string_view(data).substr(start, end - start)); !s.ok()) {
      Exec("ROLLBACK").IgnoreError();  // the first error is the one to report
      return s;
    }
    start = end + 1;
  }
  const uint64_t next = offset + whole + 1;
  sqlite3_reset(save_progress_);
  const std::string day_text = DayText(day);
  sqlite3_bind_text(save_progress_, 1, day_text.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(save_progress_, 2, static_cast<int64_t>(next));
  sqlite3_bind_int(save_progress_, 3, b4_prefix_length_);
  if (sqlite3_step(save_progress_) != SQLITE_DONE) {
    absl::Status s = SqliteError(db_, "saving attribution index progress");
    Exec("ROLLBACK").IgnoreError();
    return s;
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) return s;
  holdings_ += inserted_in_transaction_;
  return next;
}

absl::Status AttributionIndex::IndexLine(absl::CivilDay day, absl::string_view line) {
  if (line.empty()) return absl::OkStatus();
  if (line[0] == '#') {
    // "# 10:35:59 aftrd started: b4_prefix_length=64 mode=port-block"
    const size_t at = line.find("b4_prefix_length=");
    int length = 0;
    if (at != absl::string_view::npos) {
      absl::string_view rest = line.substr(at + 17);
      rest = rest.substr(0, rest.find(' '));
      if (absl::SimpleAtoi(rest, &length) && length >= 0 && length <= 128) b4_prefix_length_ = length;
    }
    return absl::OkStatus();
  }
  NatEvent e;
  if (!events::ParseLogLine(day, line, &e).ok()) {
    if (lines_unreadable_++ < 10) LogWarning("attribution index: skipped line \"%s\"", line.substr(0, 100));
    return absl::OkStatus();
  }
  ++lines_indexed_;
  const int64_t t = UnixSeconds(e.time);
  auto step = [&](sqlite3_stmt* stmt, const char* what) {
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : SqliteError(db_, what);
  };
  switch (e.type) {
    case EventType::kBlockClaimed:
    case EventType::kMappingCreate:
    case EventType::kPcpMapCreate: {
      const bool block = e.type == EventType::kBlockClaimed;
      const HoldingKind kind = block ? HoldingKind::kPortBlock
                               : e.type == EventType::kMappingCreate ? HoldingKind::kStaticMapping
                                                                     : HoldingKind::kPcpMapping;
      sqlite3_bind_int(insert_, 1, static_cast<int>(kind));
      sqlite3_bind_int64(insert_, 2, e.public_addr.host_order);
      sqlite3_bind_int(insert_, 3, e.public_port);
      sqlite3_bind_int(insert_, 4, block ? e.public_port + e.block_size - 1 : e.public_port);
      sqlite3_bind_int(insert_, 5, block ? 0 : e.proto);
      sqlite3_bind_blob(insert_, 6, e.b4.bytes.data(), 16, SQLITE_TRANSIENT);
      sqlite3_bind_int(insert_, 7, b4_prefix_length_);
      sqlite3_bind_int64(insert_, 8, block ? 0 : e.inner_addr.host_order);
      sqlite3_bind_int(insert_, 9, block ? 0 : e.inner_port);
      sqlite3_bind_int64(insert_, 10, t);
      absl::Status inserted = step(insert_, "indexing a holding");
      if (inserted.ok()) ++inserted_in_transaction_;
      return inserted;
    }
    case EventType::kBlockReleased:
      sqlite3_bind_int64(close_block_, 1, t);
      sqlite3_bind_int64(close_block_, 2, e.public_addr.host_order);
      sqlite3_bind_int(close_block_, 3, e.public_port);
      sqlite3_bind_blob(close_block_, 4, e.b4.bytes.data(), 16, SQLITE_TRANSIENT);
      return step(close_block_, "ending a block");
    case EventType::kMappingDelete:
    case EventType::kPcpMapDelete:
      sqlite3_bind_int64(close_mapping_, 1, t);
      sqlite3_bind_int64(close_mapping_, 2, e.public_addr.host_order);
      sqlite3_bind_int(close_mapping_, 3, e.public_port);
      sqlite3_bind_int(close_mapping_, 4,
                       static_cast<int>(e.type == EventType::kMappingDelete ? HoldingKind::kStaticMapping
                                                                             : HoldingKind::kPcpMapping));
      sqlite3_bind_int(close_mapping_, 5, e.proto);
      return step(close_mapping_, "ending a mapping");
    case EventType::kStateFresh:
      sqlite3_bind_int64(close_all_, 1, t);
      return step(close_all_, "ending every holding");
    default:
      return absl::OkStatus();  // sessions, limits, reloads: blocks already say who
  }
}

absl::StatusOr<std::vector<Holding>> AttributionIndex::Lookup(Ipv4Address addr, uint16_t port,
                                                              absl::Time at, uint8_t proto) {
  absl::MutexLock lock(&mu_);
  std::vector<Holding> out;
  sqlite3_reset(lookup_);
  sqlite3_bind_int64(lookup_, 1, addr.host_order);
  sqlite3_bind_int(lookup_, 2, port);
  sqlite3_bind_int64(lookup_, 3, absl::ToUnixSeconds(at));
  sqlite3_bind_int(lookup_, 4, proto);
  int rc;
  while ((rc = sqlite3_step(lookup_)) == SQLITE_ROW) {
    Holding h;
    h.kind = static_cast<HoldingKind>(sqlite3_column_int(lookup_, 0));
    if (sqlite3_column_bytes(lookup_, 1) == 16) {
      std::memcpy(h.b4.addr.bytes.data(), sqlite3_column_blob(lookup_, 1), 16);
    }
    h.b4.length = sqlite3_column_int(lookup_, 2);
    h.public_addr.host_order = static_cast<uint32_t>(sqlite3_column_int64(lookup_, 3));
    h.first_port = static_cast<uint16_t>(sqlite3_column_int(lookup_, 4));
    h.last_port = static_cast<uint16_t>(sqlite3_column_int(lookup_, 5));
    h.proto = static_cast<uint8_t>(sqlite3_column_int(lookup_, 6));
    h.inner_addr.host_order = static_cast<uint32_t>(sqlite3_column_int64(lookup_, 7));
    h.inner_port = static_cast<uint16_t>(sqlite3_column_int(lookup_, 8));
    h.start = absl::FromUnixSeconds(sqlite3_column_int64(lookup_, 9));
    if (sqlite3_column_type(lookup_, 10) != SQLITE_NULL) {
      h.end = absl::FromUnixSeconds(sqlite3_column_int64(lookup_, 10));
    }
    out.push_back(h);
  }
  sqlite3_reset(lookup_);
  if (rc != SQLITE_DONE) return SqliteError(db_, "looking up the attribution index");
  return out;
}

absl::Status AttributionIndex::Prune(absl::Time before) {
  absl::MutexLock lock(&mu_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "DELETE FROM holdings WHERE end_s IS NOT NULL AND end_s < ?1", -1,
                         &stmt, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "pruning the attribution index");
  }
  sqlite3_bind_int64(stmt, 1, absl::ToUnixSeconds(before));
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db_, "pruning the attribution index");
  const uint64_t pruned = static_cast<uint64_t>(sqlite3_changes(db_));
  holdings_ -= std::min(holdings_, pruned);
  return absl::OkStatus();
}

IndexStats AttributionIndex::stats() const {
  absl::MutexLock lock(&mu_);
  IndexStats s;
  s.lines_indexed = lines_indexed_;
  s.lines_unreadable = lines_unreadable_;
  s.read_day = read_day_;
  s.read_offset = read_offset_;
  s.holdings = holdings_;
  return s;
}

}  // namespace aftr::attribution
