// The subscriber identity history: the binding semantics of Start / Interim-Update / Stop /
// Accounting-On, lookups at the exact interval boundaries (end exclusive), prefix overlap
// both ways, a restart, pruning, CurrentUserName, and lookup speed on a month of history.
#include "control/subscribers/subscriber_history.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace aftr::subscribers {
namespace {

using Kind = AccountingEvent::Kind;

Ipv6Prefix P(const char* text) { return *ParseIpv6Prefix(text); }
Ipv6Address A(const char* text) { return *ParseIpv6(text); }

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// A fresh database file per test, removed afterwards.
struct TempDb {
  std::string path;
  TempDb() {
    static int n = 0;
    path = (std::filesystem::temp_directory_path() /
            ("aftr-history-" + std::to_string(getpid()) + "-" + std::to_string(++n) + ".sqlite3"))
               .string();
    Remove();
  }
  ~TempDb() { Remove(); }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

std::unique_ptr<SubscriberHistory> OpenOrDie(const std::string& path, absl::Duration keep = absl::Hours(24 * 180)) {
  absl::StatusOr<std::unique_ptr<SubscriberHistory>> h = SubscriberHistory::Open(path, keep);
  REQUIRE(h.ok());
  return std::move(*h);
}

AccountingEvent Event(Kind kind, const std::string& session, absl::Time t, const std::string& user = "",
                      std::vector<Ipv6Prefix> prefixes = {}, const std::string& nas = "bras1") {
  AccountingEvent e;
  e.kind = kind;
  e.nas = nas;
  e.acct_session_id = session;
  e.user_name = user;
  e.nas_port_id = "port-" + session;
  e.prefixes = std::move(prefixes);
  e.time = t;
  return e;
}

// The user names Lookup finds, in start order.
std::vector<std::string> Users(const SubscriberHistory& h, const char* b4, absl::Time at) {
  absl::StatusOr<std::vector<IdentityBinding>> found = h.Lookup(P(b4), at);
  REQUIRE(found.ok());
  std::vector<std::string> out;
  for (const IdentityBinding& b : *found) out.push_back(b.user_name);
  return out;
}

using Names = std::vector<std::string>;

TEST_CASE("History Start Interim Stop give one binding with exclusive end", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  const std::vector<Ipv6Prefix> prefixes = {P("2001:db8:a::/64"), P("2001:db8:b::/56")};
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice", prefixes)).ok());
  REQUIRE(h->Record(Event(Kind::kInterimUpdate, "s1", kT0 + absl::Minutes(5), "alice", prefixes)).ok());
  REQUIRE(h->Record(Event(Kind::kStop, "s1", kT0 + absl::Hours(1), "alice", prefixes)).ok());

  CHECK(Users(*h, "2001:db8:a::2/128", kT0 - absl::Microseconds(1)).empty());
  CHECK(Users(*h, "2001:db8:a::2/128", kT0) == Names{"alice"});  // start inclusive
  CHECK(Users(*h, "2001:db8:b:ff::1/128", kT0 + absl::Minutes(30)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:a::2/128", kT0 + absl::Hours(1) - absl::Microseconds(1)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:a::2/128", kT0 + absl::Hours(1)).empty());  // end exclusive

  absl::StatusOr<std::vector<IdentityBinding>> found = h->Lookup(P("2001:db8:a::/64"), kT0);
  REQUIRE(found.ok());
  REQUIRE(found->size() == 1);  // an unchanged Interim did not split the binding
  const IdentityBinding& b = (*found)[0];
  CHECK(b.nas == "bras1");
  CHECK(b.acct_session_id == "s1");
  CHECK(b.nas_port_id == "port-s1");
  CHECK(b.prefixes == prefixes);
  CHECK(b.start == kT0);
  CHECK(b.end == kT0 + absl::Hours(1));
}

TEST_CASE("History Interim with new prefixes closes the old binding and opens another", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  const absl::Time t1 = kT0 + absl::Minutes(10);
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice", {P("2001:db8:b::/56")})).ok());
  REQUIRE(h->Record(Event(Kind::kInterimUpdate, "s1", t1, "alice", {P("2001:db8:c::/56")})).ok());

  CHECK(Users(*h, "2001:db8:b::1/128", t1 - absl::Seconds(1)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:b::1/128", t1).empty());
  CHECK(Users(*h, "2001:db8:c::1/128", t1 - absl::Seconds(1)).empty());
  CHECK(Users(*h, "2001:db8:c::1/128", t1) == Names{"alice"});
  absl::StatusOr<std::vector<IdentityBinding>> open = h->Lookup(P("2001:db8:c::/56"), t1);
  REQUIRE(open.ok());
  REQUIRE(open->size() == 1);
  CHECK((*open)[0].start == t1);
  CHECK((*open)[0].end == absl::InfiniteFuture());
  CHECK(h->OpenSessionCount() == 1);
}

TEST_CASE("History Start on an open session id closes the old binding", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  const absl::Time t1 = kT0 + absl::Hours(2);
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice", {P("2001:db8:a::/64")})).ok());
  REQUIRE(h->Record(Event(Kind::kStart, "s1", t1, "bob", {P("2001:db8:a::/64")})).ok());
  CHECK(Users(*h, "2001:db8:a::/64", t1 - absl::Seconds(1)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:a::/64", t1) == Names{"bob"});
  CHECK(h->OpenSessionCount() == 1);
  // A repeated identical Start (a retransmission with a new Acct-Delay-Time) changes nothing.
  REQUIRE(h->Record(Event(Kind::kStart, "s1", t1 + absl::Seconds(3), "bob", {P("2001:db8:a::/64")})).ok());
  absl::StatusOr<std::vector<IdentityBinding>> b = h->Lookup(P("2001:db8:a::/64"), t1 + absl::Hours(1));
  REQUIRE(b.ok());
  REQUIRE(b->size() == 1);
  CHECK((*b)[0].start == t1);
}

TEST_CASE("History Accounting-On closes every open binding of that NAS only", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice", {P("2001:db8:a::/64")}, "bras1")).ok());
  REQUIRE(h->Record(Event(Kind::kStart, "s2", kT0, "bob", {P("2001:db8:b::/64")}, "bras1")).ok());
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "carol", {P("2001:db8:c::/64")}, "bras2")).ok());
  const absl::Time reboot = kT0 + absl::Hours(3);
  AccountingEvent on = Event(Kind::kAccountingOnOff, "", reboot);
  on.nas = "bras1";
  REQUIRE(h->Record(on).ok());
  CHECK(Users(*h, "2001:db8:a::1/128", reboot - absl::Seconds(1)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:a::1/128", reboot).empty());
  CHECK(Users(*h, "2001:db8:b::1/128", reboot).empty());
  CHECK(Users(*h, "2001:db8:c::1/128", reboot + absl::Hours(1)) == Names{"carol"});
  CHECK(h->OpenSessionCount() == 1);
  // A late Stop of a closed session changes nothing.
  REQUIRE(h->Record(Event(Kind::kStop, "s1", reboot + absl::Minutes(1), "alice", {P("2001:db8:a::/64")})).ok());
  CHECK(Users(*h, "2001:db8:a::1/128", reboot).empty());
}

TEST_CASE("History a prefix released at T and given to another identity at T plus 1s", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  const absl::Time t = kT0 + absl::Hours(5);
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice", {P("2001:db8:b::/56")})).ok());
  REQUIRE(h->Record(Event(Kind::kStop, "s1", t, "alice", {P("2001:db8:b::/56")})).ok());
  REQUIRE(h->Record(Event(Kind::kStart, "s2", t + absl::Seconds(1), "bob", {P("2001:db8:b::/56")})).ok());
  const char* b4 = "2001:db8:b:1::2/128";
  CHECK(Users(*h, b4, t - absl::Microseconds(1)) == Names{"alice"});
  CHECK(Users(*h, b4, t).empty());
  CHECK(Users(*h, b4, t + absl::Milliseconds(999)).empty());
  CHECK(Users(*h, b4, t + absl::Seconds(1)) == Names{"bob"});
  CHECK(h->CurrentUserName(A("2001:db8:b:1::2")) == "bob");
}

TEST_CASE("History lookup overlap works both ways", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice",
                          {P("2001:db8:a::/64"), P("2001:db8:b::/56"), P("2001:db8:d::5/128")}))
              .ok());
  REQUIRE(h->Record(Event(Kind::kStart, "s2", kT0, "bob", {P("2001:db8:a:1::/64")})).ok());
  const absl::Time at = kT0 + absl::Minutes(1);
  CHECK(Users(*h, "2001:db8:b:7::/64", at) == Names{"alice"});    // the /56 contains it
  CHECK(Users(*h, "2001:db8:d::5/128", at) == Names{"alice"});    // exactly the /128
  CHECK(Users(*h, "2001:db8:d::6/128", at).empty());
  Names both = Users(*h, "2001:db8:a::/48", at);                   // contains both /64s
  std::sort(both.begin(), both.end());
  CHECK(both == Names{"alice", "bob"});
  CHECK(Users(*h, "2001:db8:a:2::/64", at).empty());
  CHECK(Users(*h, "2001:db8:e::/48", at).empty());
  CHECK(Users(*h, "::/0", at).size() == 2);
  CHECK(h->CurrentUserName(A("2001:db8:a:1::9")) == "bob");
  CHECK(h->CurrentUserName(A("2001:db8:a::9")) == "alice");
  CHECK(h->CurrentUserName(A("2001:db8:f::1")).empty());
}

TEST_CASE("History sessions first heard of late are dated back by Acct-Session-Time", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  AccountingEvent interim = Event(Kind::kInterimUpdate, "s1", kT0, "alice", {P("2001:db8:a::/64")});
  interim.session_time = absl::Seconds(600);
  REQUIRE(h->Record(interim).ok());
  CHECK(Users(*h, "2001:db8:a::1/128", kT0 - absl::Seconds(600)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:a::1/128", kT0 - absl::Seconds(601)).empty());
  AccountingEvent stop = Event(Kind::kStop, "s9", kT0, "zed", {P("2001:db8:9::/64")});
  stop.session_time = absl::Seconds(60);
  REQUIRE(h->Record(stop).ok());
  CHECK(Users(*h, "2001:db8:9::1/128", kT0 - absl::Seconds(30)) == Names{"zed"});
  CHECK(Users(*h, "2001:db8:9::1/128", kT0).empty());
}

TEST_CASE("History survives a restart and carries on with the open sessions", "[history]") {
  TempDb db;
  {
    auto h = OpenOrDie(db.path);
    REQUIRE(h->Record(Event(Kind::kStart, "s1", kT0, "alice", {P("2001:db8:a::/64")})).ok());
    REQUIRE(h->Record(Event(Kind::kStart, "s2", kT0, "bob", {})).ok());  // no prefix yet
    REQUIRE(h->Record(Event(Kind::kStart, "s3", kT0, "carol", {P("2001:db8:c::/64")})).ok());
    REQUIRE(h->Record(Event(Kind::kStop, "s3", kT0 + absl::Hours(1), "carol", {})).ok());
  }
  auto h = OpenOrDie(db.path);
  CHECK(h->OpenSessionCount() == 2);
  CHECK(h->CurrentUserName(A("2001:db8:a::1")) == "alice");
  CHECK(Users(*h, "2001:db8:c::1/128", kT0 + absl::Minutes(5)) == Names{"carol"});
  const absl::Time t = kT0 + absl::Hours(2);
  REQUIRE(h->Record(Event(Kind::kStop, "s1", t, "alice", {P("2001:db8:a::/64")})).ok());
  CHECK(Users(*h, "2001:db8:a::1/128", t - absl::Seconds(1)) == Names{"alice"});
  CHECK(Users(*h, "2001:db8:a::1/128", t).empty());
  // bob's Interim brings his prefix: a binding from then on.
  REQUIRE(h->Record(Event(Kind::kInterimUpdate, "s2", t, "bob", {P("2001:db8:b::/56")})).ok());
  CHECK(Users(*h, "2001:db8:b::1/128", t) == Names{"bob"});
  CHECK(h->OpenSessionCount() == 1);
}

TEST_CASE("History prune removes bindings ended before the retention", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path, absl::Hours(24 * 7));
  const absl::Time now = kT0 + absl::Hours(24 * 30);
  REQUIRE(h->Record(Event(Kind::kStart, "old", kT0, "old", {P("2001:db8:1::/64"), P("2001:db8:2::/56")})).ok());
  REQUIRE(h->Record(Event(Kind::kStop, "old", now - absl::Hours(24 * 8), "old", {})).ok());
  REQUIRE(h->Record(Event(Kind::kStart, "recent", kT0, "recent", {P("2001:db8:3::/64")})).ok());
  REQUIRE(h->Record(Event(Kind::kStop, "recent", now - absl::Hours(24 * 6), "recent", {})).ok());
  REQUIRE(h->Record(Event(Kind::kStart, "open", kT0, "open", {P("2001:db8:4::/64")})).ok());
  absl::StatusOr<int64_t> pruned = h->Prune(now);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);  // the two rows of the old binding
  CHECK(Users(*h, "2001:db8:1::/64", kT0 + absl::Hours(1)).empty());
  CHECK(Users(*h, "2001:db8:3::/64", kT0 + absl::Hours(1)) == Names{"recent"});
  CHECK(Users(*h, "2001:db8:4::/64", now) == Names{"open"});
  CHECK(*h->Prune(now) == 0);
}

TEST_CASE("History is usable from several threads at once", "[history]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  std::atomic<bool> done = false;
  std::atomic<int> failures = 0;
  std::thread reader([&] {
    for (int i = 0; !done && i < 100000; ++i) {
      const std::string name = h->CurrentUserName(A("2001:db8:a::2"));
      if (!name.empty() && name.rfind("user", 0) != 0) ++failures;
      if (i % 16 == 0 && !h->Lookup(P("2001:db8:a::2/128"), kT0 + absl::Seconds(i % 400)).ok()) ++failures;
    }
  });
  for (int i = 0; i < 200; ++i) {
    const absl::Time t = kT0 + absl::Seconds(2 * i);
    const std::string session = "s" + std::to_string(i);
    REQUIRE(h->Record(Event(Kind::kStart, session, t, "user" + std::to_string(i), {P("2001:db8:a::/64")})).ok());
    REQUIRE(h->Record(Event(Kind::kStop, session, t + absl::Seconds(1))).ok());
  }
  done = true;
  reader.join();
  CHECK(failures == 0);
  CHECK(h->OpenSessionCount() == 0);
  CHECK(Users(*h, "2001:db8:a::2/128", kT0 + absl::Seconds(2 * 123)) == Names{"user123"});
  CHECK(Users(*h, "2001:db8:a::2/128", kT0 + absl::Seconds(2 * 123 + 1)).empty());
}

// A month of history of 32 k subscribers: each reconnects every ~5 days with a new session
// (the same /64 and /56), so 6 bindings and 12 rows per subscriber (~400 k rows). Lookups
// must stay well under 100 ms (they are index probes, logarithmic in the rows).
TEST_CASE("History lookup is fast on a month of 32k subscribers", "[history][slow]") {
  TempDb db;
  auto h = OpenOrDie(db.path);
  constexpr int kSubscribers = 32768;
  constexpr int kSessions = 6;
  const absl::Duration period = absl::Hours(24 * 5);
  auto prefix64 = [](int i) {
    Ipv6Prefix p = P("2001:db8::/64");
    p.addr.bytes[5] = static_cast<uint8_t>(i >> 8), p.addr.bytes[7] = static_cast<uint8_t>(i);
    return p;  // 2001:db8:HH:LL::/64 (256 per /48)
  };
  auto prefix56 = [](int i) {
    Ipv6Prefix p = P("2001:db8:8000::/56");
    p.addr.bytes[5] = static_cast<uint8_t>(i >> 8), p.addr.bytes[6] = static_cast<uint8_t>(i);
    return p;
  };
  const auto load_start = std::chrono::steady_clock::now();
  for (int s = 0; s < kSessions; ++s) {
    std::vector<AccountingEvent> batch;
    for (int i = 0; i < kSubscribers; ++i) {
      const absl::Time t = kT0 + period * s + absl::Seconds(i);
      const std::string session = std::to_string(i) + "-" + std::to_string(s);
      if (s > 0) batch.push_back(Event(Kind::kStop, std::to_string(i) + "-" + std::to_string(s - 1), t));
      batch.push_back(Event(Kind::kStart, session, t, "user" + std::to_string(i), {prefix64(i), prefix56(i)}));
    }
    REQUIRE(h->RecordAll(batch).ok());
  }
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  double worst_ms = 0;
  for (int k = 0; k < 50; ++k) {
    const int i = (k * 7919) % kSubscribers;
    const int s = k % kSessions;
    Ipv6Prefix b4 = k % 2 ? prefix64(i) : prefix56(i);
    b4.addr.bytes[15] = 2;
    b4.length = 128;
    const absl::Time at = kT0 + period * s + absl::Seconds(i) + absl::Hours(1);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<IdentityBinding>> found = h->Lookup(b4, at);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    worst_ms = std::max(worst_ms, ms);
    REQUIRE(found.ok());
    REQUIRE(found->size() == 1);
    CHECK((*found)[0].user_name == "user" + std::to_string(i));
    CHECK((*found)[0].acct_session_id == std::to_string(i) + "-" + std::to_string(s));
  }
  // A /48 lookup spanning 256 subscribers' /64s.
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<IdentityBinding>> wide = h->Lookup(P("2001:db8:1::/48"), kT0 + period * 2 + absl::Hours(2));
  const double wide_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(wide.ok());
  CHECK(wide->size() == 256);
  std::printf("history bench: %d rows loaded in %.1f s; worst /128 lookup %.2f ms; /48 lookup %.2f ms\n",
              kSubscribers * kSessions * 2, load_s, worst_ms, wide_ms);
  CHECK(worst_ms < 100);
  CHECK(wide_ms < 100);
}

}  // namespace
}  // namespace aftr::subscribers
