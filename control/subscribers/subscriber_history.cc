// The subscriber identity history. See subscriber_history.h.
#include "control/subscribers/subscriber_history.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace aftr::subscribers {
namespace {

// One row per (binding, prefix); a binding without a prefix (yet) keeps one row with
// prefix_length -1 so that it survives a restart, and no lookup ever matches it.
// Times are Unix microseconds; end_us is NULL while the binding is open.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS bindings (
  binding_id      INTEGER NOT NULL,
  nas             TEXT NOT NULL,
  acct_session_id TEXT NOT NULL,
  user_name       TEXT NOT NULL,
  nas_port_id     TEXT NOT NULL,
  prefix          TEXT NOT NULL,
  prefix_addr     BLOB NOT NULL,
  prefix_length   INTEGER NOT NULL,
  start_us        INTEGER NOT NULL,
  end_us          INTEGER
);
CREATE INDEX IF NOT EXISTS bindings_by_prefix ON bindings (prefix_addr, prefix_length, start_us);
CREATE INDEX IF NOT EXISTS bindings_by_id ON bindings (binding_id);
CREATE INDEX IF NOT EXISTS bindings_by_end ON bindings (end_us) WHERE end_us IS NOT NULL;
)sql";

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("subscriber history: ", what, ": ", sqlite3_errmsg(db)));
}

Ipv6Address Masked(const Ipv6Address& a, int length) {
  Ipv6Address out = a;
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(length - i * 8, 0, 8);
    out.bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return out;
}

Ipv6Address LastOf(const Ipv6Prefix& p) {
  Ipv6Address out = p.addr;
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(p.length - i * 8, 0, 8);
    out.bytes[i] |= static_cast<uint8_t>(0xff >> keep);
  }
  return out;
}

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

std::vector<Ipv6Prefix> Sorted(std::vector<Ipv6Prefix> v) {
  std::sort(v.begin(), v.end(), [](const Ipv6Prefix& a, const Ipv6Prefix& b) {
    return std::tie(a.addr.bytes, a.length) < std::tie(b.addr.bytes, b.length);
  });
  return v;
}

// Resets a statement when it goes out of scope (so that its read transaction ends).
struct StatementReset {
  sqlite3_stmt* stmt;
  ~StatementReset() {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
};

}  // namespace

bool Overlaps(const Ipv6Prefix& a, const Ipv6Prefix& b) {
  const int shorter = std::min(a.length, b.length);
  return Masked(a.addr, shorter) == Masked(b.addr, shorter);
}

std::vector<Ipv6Prefix> PrefixesOf(const std::vector<Ipv6Prefix>& framed,
                                   const std::vector<Ipv6Prefix>& delegated,
                                   const std::vector<Ipv6Address>& addresses) {
  std::vector<Ipv6Prefix> out;
  auto add = [&out](const Ipv6Prefix& p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  for (const Ipv6Prefix& p : framed) add(p);
  for (const Ipv6Prefix& p : delegated) add(p);
  for (const Ipv6Address& a : addresses) add(Ipv6Prefix{a, 128});
  return out;
}

SubscriberHistory::SubscriberHistory(sqlite3* db, absl::Duration keep) : keep_(keep), db_(db) {}

SubscriberHistory::~SubscriberHistory() {
  absl::MutexLock lock(&mu_);
  for (sqlite3_stmt* s : {insert_, close_, find_exact_, find_inside_, rows_of_, prune_}) {
    sqlite3_finalize(s);
  }
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<SubscriberHistory>> SubscriberHistory::Open(const std::string& db_path,
                                                                           absl::Duration keep) {
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(db_path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("radius.history_db: cannot create the directory of ", db_path, ": ", ec.message()));
  }
  sqlite3* db = nullptr;
  // FULLMUTEX is not needed: every use of the connection is under mu_.
  const int rc = sqlite3_open_v2(db_path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  auto history = std::unique_ptr<SubscriberHistory>(new SubscriberHistory(db, keep));
  if (rc != SQLITE_OK) return SqliteError(db, absl::StrCat("opening ", db_path));
  sqlite3_busy_timeout(db, 5000);  // an operator's sqlite3 CLI may hold a lock for a moment
  {
    absl::MutexLock lock(&history->mu_);
    // WAL: readers (the CLI, a backup) never block the writer. synchronous=NORMAL: a commit
    // survives a crash of aftrd; the last commits may be lost on a power failure.
    if (absl::Status s = history->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = history->Exec(kSchema); !s.ok()) return s;
    if (absl::Status s = history->Prepare(); !s.ok()) return s;
  }
  if (absl::Status s = history->LoadOpenSessions(); !s.ok()) return s;
  return history;
}

absl::Status SubscriberHistory::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat("subscriber history: ", err ? err : "?"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status SubscriberHistory::Prepare() {
  struct {
    sqlite3_stmt** stmt;
    const char* sql;
  } const statements[] = {
      {&insert_,
       "INSERT INTO bindings (binding_id, nas, acct_session_id, user_name, nas_port_id, prefix, "
       "prefix_addr, prefix_length, start_us, end_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&close_, "UPDATE bindings SET end_us = ?2 WHERE binding_id = ?1 AND end_us IS NULL"},
      // A binding's prefix that contains the B4: one probe per prefix length.
      {&find_exact_,
       "SELECT binding_id FROM bindings WHERE prefix_addr = ?1 AND prefix_length = ?2 "
       "AND start_us <= ?3 AND (end_us IS NULL OR end_us > ?3)"},
      // A binding's prefix inside the B4 prefix: a range of the same index.
      {&find_inside_,
       "SELECT binding_id FROM bindings WHERE prefix_addr BETWEEN ?1 AND ?2 AND prefix_length > ?3 "
       "AND start_us <= ?4 AND (end_us IS NULL OR end_us > ?4)"},
      {&rows_of_,
       "SELECT nas, acct_session_id, user_name, nas_port_id, prefix_addr, prefix_length, start_us, "
       "end_us FROM bindings WHERE binding_id = ? ORDER BY rowid"},
      {&prune_, "DELETE FROM bindings WHERE end_us IS NOT NULL AND end_us < ?"},
  };
  for (const auto& s : statements) {
    if (sqlite3_prepare_v3(db_, s.sql, -1, SQLITE_PREPARE_PERSISTENT, s.stmt, nullptr) != SQLITE_OK) {
      return SqliteError(db_, absl::StrCat("preparing \"", s.sql, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status SubscriberHistory::LoadOpenSessions() {
  absl::MutexLock lock(&mu_);
  absl::MutexLock open_lock(&open_mu_);
  open_.clear();
  open_by_prefix_.clear();
  open_lengths_ = {};
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "SELECT binding_id, nas, acct_session_id, user_name, nas_port_id, prefix_addr, prefix_length, "
      "start_us FROM bindings WHERE end_us IS NULL ORDER BY binding_id, rowid";
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "reading the open bindings");
  }
  std::map<int64_t, std::pair<SessionKey, OpenSession>> by_id;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const int64_t id = sqlite3_column_int64(stmt, 0);
    auto text = [stmt](int col) {
      const unsigned char* p = sqlite3_column_text(stmt, col);
      return std::string(p ? reinterpret_cast<const char*>(p) : "", sqlite3_column_bytes(stmt, col));
    };
    auto& [key, s] = by_id[id];
    key = {text(1), text(2)};
    s.binding_id = id;
    s.user_name = text(3);
    s.nas_port_id = text(4);
    s.start = absl::FromUnixMicros(sqlite3_column_int64(stmt, 7));
    const int length = sqlite3_column_int(stmt, 6);
    if (length >= 0 && length <= 128 && sqlite3_column_bytes(stmt, 5) == 16) {
      Ipv6Prefix p;
      p.length = length;
      std::memcpy(p.addr.bytes.data(), sqlite3_column_blob(stmt, 5), 16);
      s.prefixes.push_back(p);
    }
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db_, "reading the open bindings");
  for (auto& [id, ks] : by_id) {
    auto& [key, s] = ks;
    // Two open bindings of one session cannot be written; keep the newest if a file has them.
    auto [it, fresh] = open_.insert_or_assign(key, std::move(s));
    IndexOpen(it->first, it->second);
  }
  sqlite3_stmt* max_id = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT MAX(binding_id) FROM bindings", -1, &max_id, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "reading the last binding id");
  }
  if (sqlite3_step(max_id) == SQLITE_ROW) next_binding_id_ = sqlite3_column_int64(max_id, 0) + 1;
  sqlite3_finalize(max_id);
  return absl::OkStatus();
}

void SubscriberHistory::IndexOpen(const SessionKey& key, const OpenSession& s) {
  for (const Ipv6Prefix& p : s.prefixes) {
    open_by_prefix_[{p.addr.bytes, p.length}] = key;
    ++open_lengths_[p.length];
  }
}

void SubscriberHistory::UnindexOpen(const SessionKey& key, const OpenSession& s) {
  for (const Ipv6Prefix& p : s.prefixes) {
    auto it = open_by_prefix_.find({p.addr.bytes, p.length});
    if (it != open_by_prefix_.end() && it->second == key) open_by_prefix_.erase(it);
    --open_lengths_[p.length];
  }
}

absl::Status SubscriberHistory::InsertRows(int64_t binding_id, const SessionKey& key,
                                           const std::string& user_name, const std::string& nas_port_id,
                                           const std::vector<Ipv6Prefix>& prefixes, absl::Time start,
                                           std::optional<absl::Time> end) {
  std::vector<std::optional<Ipv6Prefix>> rows(prefixes.begin(), prefixes.end());
  if (rows.empty()) rows.push_back(std::nullopt);
  for (const std::optional<Ipv6Prefix>& p : rows) {
    StatementReset reset{insert_};
    sqlite3_bind_int64(insert_, 1, binding_id);
    sqlite3_bind_text(insert_, 2, key.first.data(), static_cast<int>(key.first.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 3, key.second.data(), static_cast<int>(key.second.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 4, user_name.data(), static_cast<int>(user_name.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 5, nas_port_id.data(), static_cast<int>(nas_port_id.size()), SQLITE_STATIC);
    const std::string text = p ? p->ToString() : "";
    sqlite3_bind_text(insert_, 6, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    if (p) {
      sqlite3_bind_blob(insert_, 7, p->addr.bytes.data(), 16, SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_zeroblob(insert_, 7, 0);
    }
    sqlite3_bind_int(insert_, 8, p ? p->length : -1);
    sqlite3_bind_int64(insert_, 9, Micros(start));
    if (end) {
      sqlite3_bind_int64(insert_, 10, Micros(*end));
    } else {
      sqlite3_bind_null(insert_, 10);
    }
    if (sqlite3_step(insert_) != SQLITE_DONE) return SqliteError(db_, "inserting a binding");
  }
  return absl::OkStatus();
}

absl::Status SubscriberHistory::OpenBinding(const SessionKey& key, const AccountingEvent& e,
                                            absl::Time start) {
  OpenSession s;
  s.binding_id = next_binding_id_++;
  s.user_name = e.user_name;
  s.nas_port_id = e.nas_port_id;
  s.prefixes = e.prefixes;
  s.start = start;
  if (absl::Status st = InsertRows(s.binding_id, key, s.user_name, s.nas_port_id, s.prefixes, start,
                                   std::nullopt);
      !st.ok()) {
    return st;
  }
  absl::MutexLock open_lock(&open_mu_);
  auto [it, fresh] = open_.insert_or_assign(key, std::move(s));
  IndexOpen(it->first, it->second);
  return absl::OkStatus();
}

absl::Status SubscriberHistory::CloseBinding(std::map<SessionKey, OpenSession>::iterator it,
                                             absl::Time end) {
  // A NAS clock that steps back must not make an interval end before it starts.
  end = std::max(end, it->second.start);
  StatementReset reset{close_};
  sqlite3_bind_int64(close_, 1, it->second.binding_id);
  sqlite3_bind_int64(close_, 2, Micros(end));
  if (sqlite3_step(close_) != SQLITE_DONE) return SqliteError(db_, "closing a binding");
  absl::MutexLock open_lock(&open_mu_);
  UnindexOpen(it->first, it->second);
  open_.erase(it);
  return absl::OkStatus();
}

absl::Status SubscriberHistory::Apply(const AccountingEvent& e) {
  using Kind = AccountingEvent::Kind;
  const absl::Time t = e.time;
  if (e.kind == Kind::kAccountingOnOff) {
    // The NAS (re)started or is going down: none of its sessions is alive any more.
    auto it = open_.lower_bound({e.nas, ""});
    while (it != open_.end() && it->first.first == e.nas) {
      auto next = std::next(it);
      if (absl::Status s = CloseBinding(it, t); !s.ok()) return s;
      it = next;
    }
    return absl::OkStatus();
  }
  const SessionKey key{e.nas, e.acct_session_id};
  auto it = open_.find(key);
  const bool same = it != open_.end() && it->second.user_name == e.user_name &&
                    it->second.nas_port_id == e.nas_port_id &&
                    Sorted(it->second.prefixes) == Sorted(e.prefixes);
  // Where a session first heard of now really began (when the NAS says how long it has run).
  const absl::Time began = e.session_time ? std::min(t, t - *e.session_time) : t;
  switch (e.kind) {
    case Kind::kStart:
      if (same) return absl::OkStatus();  // a repeated Start: the binding stands
      if (it != open_.end()) {
        if (absl::Status s = CloseBinding(it, t); !s.ok()) return s;
      }
      return OpenBinding(key, e, t);
    case Kind::kInterimUpdate:
      if (same) return absl::OkStatus();
      if (it == open_.end()) return OpenBinding(key, e, began);
      // New prefixes (or identity) from now on: the old binding ends where the new begins.
      if (absl::Status s = CloseBinding(it, t); !s.ok()) return s;
      return OpenBinding(key, e, t);
    case Kind::kStop:
      if (it != open_.end()) return CloseBinding(it, t);
      // A session whose Start and Interims were missed: recorded when its length is known.
      if (e.session_time && !e.prefixes.empty()) {
        return InsertRows(next_binding_id_++, key, e.user_name, e.nas_port_id, e.prefixes, began, t);
      }
      return absl::OkStatus();
    case Kind::kAccountingOnOff:
      break;
  }
  return absl::OkStatus();
}

absl::Status SubscriberHistory::Record(const AccountingEvent& event) {
  return RecordAll(std::span<const AccountingEvent>(&event, 1));
}

absl::Status SubscriberHistory::RecordAll(std::span<const AccountingEvent> events) {
  absl::Status result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    for (const AccountingEvent& e : events) {
      result = Apply(e);
      if (!result.ok()) break;
    }
    if (result.ok()) result = Exec("COMMIT");
    if (result.ok()) return result;
    (void)Exec("ROLLBACK");
  }
  // The memory may have moved ahead of the rolled-back file: read it back.
  (void)LoadOpenSessions();
  return result;
}

absl::StatusOr<int64_t> SubscriberHistory::Prune(absl::Time now) {
  absl::MutexLock lock(&mu_);
  StatementReset reset{prune_};
  sqlite3_bind_int64(prune_, 1, Micros(now - keep_));
  if (sqlite3_step(prune_) != SQLITE_DONE) return SqliteError(db_, "pruning");
  return static_cast<int64_t>(sqlite3_changes(db_));
}

absl::Status SubscriberHistory::CollectIds(sqlite3_stmt* stmt, std::vector<int64_t>* ids) const {
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) ids->push_back(sqlite3_column_int64(stmt, 0));
  if (rc != SQLITE_DONE) return SqliteError(db_, "looking up bindings");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<IdentityBinding>> SubscriberHistory::Lookup(const Ipv6Prefix& b4,
                                                                       absl::Time at) const {
  if (b4.length < 0 || b4.length > 128) {
    return absl::InvalidArgumentError(absl::StrCat("prefix length ", b4.length, " is not in 0..128"));
  }
  const Ipv6Address first = Masked(b4.addr, b4.length);
  const int64_t at_us = Micros(at);
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> ids;
  // Bindings whose prefix contains the B4 (or is it).
  for (int length = 0; length <= b4.length; ++length) {
    const Ipv6Address addr = Masked(first, length);
    StatementReset reset{find_exact_};
    sqlite3_bind_blob(find_exact_, 1, addr.bytes.data(), 16, SQLITE_TRANSIENT);
    sqlite3_bind_int(find_exact_, 2, length);
    sqlite3_bind_int64(find_exact_, 3, at_us);
    if (absl::Status s = CollectIds(find_exact_, &ids); !s.ok()) return s;
  }
  // Bindings whose prefix is inside the B4 prefix.
  if (b4.length < 128) {
    const Ipv6Address last = LastOf(Ipv6Prefix{first, b4.length});
    StatementReset reset{find_inside_};
    sqlite3_bind_blob(find_inside_, 1, first.bytes.data(), 16, SQLITE_TRANSIENT);
    sqlite3_bind_blob(find_inside_, 2, last.bytes.data(), 16, SQLITE_TRANSIENT);
    sqlite3_bind_int(find_inside_, 3, b4.length);
    sqlite3_bind_int64(find_inside_, 4, at_us);
    if (absl::Status s = CollectIds(find_inside_, &ids); !s.ok()) return s;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());

  std::vector<IdentityBinding> out;
  for (int64_t id : ids) {
    StatementReset reset{rows_of_};
    sqlite3_bind_int64(rows_of_, 1, id);
    IdentityBinding b;
    int rc;
    bool first_row = true;
    while ((rc = sqlite3_step(rows_of_)) == SQLITE_ROW) {
      auto text = [this](int col) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        const unsigned char* p = sqlite3_column_text(rows_of_, col);
        return std::string(p ? reinterpret_cast<const char*>(p) : "", sqlite3_column_bytes(rows_of_, col));
      };
      if (first_row) {
        b.nas = text(0);
        b.acct_session_id = text(1);
        b.user_name = text(2);
        b.nas_port_id = text(3);
        b.start = absl::FromUnixMicros(sqlite3_column_int64(rows_of_, 6));
        b.end = sqlite3_column_type(rows_of_, 7) == SQLITE_NULL
                    ? absl::InfiniteFuture()
                    : absl::FromUnixMicros(sqlite3_column_int64(rows_of_, 7));
        first_row = false;
      }
      const int length = sqlite3_column_int(rows_of_, 5);
      if (length >= 0 && length <= 128 && sqlite3_column_bytes(rows_of_, 4) == 16) {
        Ipv6Prefix p;
        p.length = length;
        std::memcpy(p.addr.bytes.data(), sqlite3_column_blob(rows_of_, 4), 16);
        b.prefixes.push_back(p);
      }
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "reading a binding");
    if (!first_row) out.push_back(std::move(b));
  }
  std::sort(out.begin(), out.end(),
            [](const IdentityBinding& a, const IdentityBinding& b) { return a.start < b.start; });
  return out;
}

std::string SubscriberHistory::CurrentUserName(const Ipv6Address& b4) const {
  absl::ReaderMutexLock lock(&open_mu_);
  for (int length = 128; length >= 0; --length) {  // the most specific holder
    if (open_lengths_[length] <= 0) continue;
    auto it = open_by_prefix_.find({Masked(b4, length).bytes, length});
    if (it == open_by_prefix_.end()) continue;
    auto s = open_.find(it->second);
    if (s != open_.end()) return s->second.user_name;
  }
  return "";
}

size_t SubscriberHistory::OpenSessionCount() const {
  absl::ReaderMutexLock lock(&open_mu_);
  return open_.size();
}

}  // namespace aftr::subscribers
