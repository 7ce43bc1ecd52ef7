// The subscriber identity history: which identity (User-Name, NAS-Port-Id, accounting
// session) held which IPv6 prefixes when, as the BRAS's RADIUS accounting says. It answers
// the second half of "who used public address A, port P at time T": the AFTR's logs give
// the B4 address, this gives who held it.
//
// A binding is an interval [start, end) over which one accounting session held a set of
// prefixes. Start opens one; Interim-Update refreshes it, or, when the prefixes changed,
// closes it and opens another at that time; Stop closes it; Accounting-On/Off closes every
// open binding of that NAS; a Start for a session already open closes the old binding.
// Times are the NAS's Event-Timestamp when it sent one.
//
// Storage: one SQLite file (WAL, so the sqlite3 CLI can read it while aftrd writes), one
// row per (binding, prefix) in table `bindings`, indexed by (prefix_addr, prefix_length,
// start_us). Closed bindings are pruned `keep` after their end. The open sessions are also
// held in memory (rebuilt from the file at Open) for the cheap CurrentUserName. Thread-safe.
#ifndef AFTR_CONTROL_SUBSCRIBERS_SUBSCRIBER_HISTORY_H_
#define AFTR_CONTROL_SUBSCRIBERS_SUBSCRIBER_HISTORY_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/common/ip.h"

struct sqlite3;
struct sqlite3_stmt;

namespace aftr::subscribers {

struct IdentityBinding {
  std::string user_name;  // may be empty
  std::string nas_port_id;
  std::string acct_session_id;
  std::string nas;  // NAS-Identifier, else NAS-IP(v6)-Address text, else the BRAS source address
  std::vector<Ipv6Prefix> prefixes;  // Framed-IPv6-Prefix, Delegated-IPv6-Prefix, Framed-IPv6-Address (/128)
  absl::Time start;
  absl::Time end;  // absl::InfiniteFuture() while the session is open
};

// One accounting record as the history uses it (decoupled from the RADIUS wire format).
struct AccountingEvent {
  enum class Kind { kStart, kInterimUpdate, kStop, kAccountingOnOff };
  Kind kind = Kind::kStart;
  std::string nas;
  std::string acct_session_id;  // not needed for kAccountingOnOff
  std::string user_name;
  std::string nas_port_id;
  std::vector<Ipv6Prefix> prefixes;
  absl::Time time;  // Event-Timestamp, else the receive time
  // Acct-Session-Time: dates a session first heard of by an Interim or Stop (aftrd was down
  // at its Start) back to its real start.
  std::optional<absl::Duration> session_time;
};

class SubscriberHistory {
 public:
  static absl::StatusOr<std::unique_ptr<SubscriberHistory>> Open(const std::string& db_path,
                                                                 absl::Duration keep);
  ~SubscriberHistory();

  // Bindings one of whose prefixes overlaps `b4` (either contains the other) with
  // start <= at < end.
  absl::StatusOr<std::vector<IdentityBinding>> Lookup(const Ipv6Prefix& b4, absl::Time at) const;
  // The user name bound now to this B4 address ("" if none). Cheap (memory), for IPFIX userName.
  std::string CurrentUserName(const Ipv6Address& b4) const;

  // Applies one record, durably (committed) when this returns OK.
  absl::Status Record(const AccountingEvent& event);
  // Several in one transaction (bulk loads, tests, benchmarks).
  absl::Status RecordAll(std::span<const AccountingEvent> events);
  // Deletes the bindings that ended before now - keep; returns how many rows went.
  absl::StatusOr<int64_t> Prune(absl::Time now);

  // Bindings open now (memory).
  size_t OpenSessionCount() const;

 private:
  using SessionKey = std::pair<std::string, std::string>;  // (nas, acct_session_id)
  struct OpenSession {
    int64_t binding_id = 0;
    std::string user_name;
    std::string nas_port_id;
    std::vector<Ipv6Prefix> prefixes;
    absl::Time start;
  };
  using PrefixKey = std::pair<std::array<uint8_t, 16>, int>;

  SubscriberHistory(sqlite3* db, absl::Duration keep);
  absl::Status Prepare();
  absl::Status LoadOpenSessions();
  absl::Status Apply(const AccountingEvent& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status OpenBinding(const SessionKey& key, const AccountingEvent& e, absl::Time start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CloseBinding(std::map<SessionKey, OpenSession>::iterator it, absl::Time end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertRows(int64_t binding_id, const SessionKey& key, const std::string& user_name,
                          const std::string& nas_port_id, const std::vector<Ipv6Prefix>& prefixes,
                          absl::Time start, std::optional<absl::Time> end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void IndexOpen(const SessionKey& key, const OpenSession& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_, open_mu_);
  void UnindexOpen(const SessionKey& key, const OpenSession& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_, open_mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Binding ids matching a lookup, from one prepared statement's rows.
  absl::Status CollectIds(sqlite3_stmt* stmt, std::vector<int64_t>* ids) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration keep_;
  mutable absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Prepared statements (finalized in the destructor).
  sqlite3_stmt* insert_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* close_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* find_exact_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* find_inside_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* rows_of_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* prune_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t next_binding_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Which prefix lengths occur in the file, so a lookup probes only those.
  std::array<bool, 129> lengths_seen_ ABSL_GUARDED_BY(mu_) = {};

  // The open sessions: written with both mu_ and open_mu_ held, read with either, so that
  // CurrentUserName (on the NAT logging path) never waits for a SQLite commit.
  mutable absl::Mutex open_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<SessionKey, OpenSession> open_;
  // Open sessions by prefix (the newest holder wins), and how many per prefix length.
  std::map<PrefixKey, SessionKey> open_by_prefix_;
  std::array<int, 129> open_lengths_ = {};
};

// The prefixes of a record: Framed-IPv6-Prefix, Delegated-IPv6-Prefix, Framed-IPv6-Address
// as a /128, without duplicates, in that order.
std::vector<Ipv6Prefix> PrefixesOf(const std::vector<Ipv6Prefix>& framed,
                                   const std::vector<Ipv6Prefix>& delegated,
                                   const std::vector<Ipv6Address>& addresses);

// Whether one of the two prefixes contains the other.
bool Overlaps(const Ipv6Prefix& a, const Ipv6Prefix& b);

}  // namespace aftr::subscribers

#endif  // AFTR_CONTROL_SUBSCRIBERS_SUBSCRIBER_HISTORY_H_
