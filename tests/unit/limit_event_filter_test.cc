// The rate limiter of limit and exhaustion events in front of the log and IPFIX.
#include "control/events/limit_event_filter.h"

#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "control/events/log_line.h"

namespace aftr::events {
namespace {

class Recorder : public EventSink {
 public:
  using EventSink::Publish;
  absl::Status Publish(const std::vector<NatEvent>& events) override {
    got.insert(got.end(), events.begin(), events.end());
    return absl::OkStatus();
  }
  std::vector<NatEvent> got;
};

const absl::Time kT0 = absl::FromUnixSeconds(1795775759);

NatEvent Limit(EventType type, const std::string& b4, absl::Duration at, uint16_t inner_port = 40000) {
  NatEvent e;
  e.type = type;
  e.time = kT0 + at;
  e.b4 = *ParseIpv6(b4);
  e.proto = IPPROTO_UDP;
  e.inner_addr = *ParseIpv4("192.0.2.10");
  e.inner_port = inner_port;
  return e;
}

uint64_t Suppressed(const LimitEventFilter& f, const std::string& code) {
  for (const auto& [c, n] : f.suppressed_by_type()) {
    if (code == c) return n;
  }
  FAIL("no counter for " << code);
  return 0;
}

TEST_CASE("limit filter: the first passes, repeats within the interval are suppressed and counted") {
  Recorder out;
  LimitEventFilter f(&out, absl::Seconds(1));
  REQUIRE(f.Publish(Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::ZeroDuration(), 1)).ok());
  REQUIRE(out.got.size() == 1);
  CHECK(out.got[0].inner_port == 1);
  CHECK(out.got[0].suppressed == 0);
  for (int i = 1; i <= 10; ++i) {
    REQUIRE(f.Publish(Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::Milliseconds(90 * i),
                            static_cast<uint16_t>(1 + i)))
                .ok());
  }
  CHECK(out.got.size() == 1);
  // The last of the ten is held (Flush may still write it); nine are gone for good.
  CHECK(f.suppressed_total() == 9);
  CHECK(Suppressed(f, "SL") == 9);
  CHECK(Suppressed(f, "PX") == 0);

  SECTION("the next after the interval passes and carries the count of all ten") {
    REQUIRE(f.Publish(Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::Milliseconds(1000), 99)).ok());
    REQUIRE(out.got.size() == 2);
    CHECK(out.got[1].inner_port == 99);
    CHECK(out.got[1].suppressed == 10);
    CHECK(f.suppressed_total() == 10);
    // A new interval began with it: the next is suppressed again.
    REQUIRE(f.Publish(Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::Milliseconds(1500))).ok());
    CHECK(out.got.size() == 2);
  }
  SECTION("with no successor, Flush writes the held one once its interval ended") {
    REQUIRE(f.Flush(kT0 + absl::Milliseconds(999)).ok());
    CHECK(out.got.size() == 1);  // the interval has not ended
    REQUIRE(f.Flush(kT0 + absl::Milliseconds(1000)).ok());
    REQUIRE(out.got.size() == 2);
    CHECK(out.got[1].inner_port == 11);  // the last one suppressed, itself
    CHECK(out.got[1].time == kT0 + absl::Milliseconds(900));
    CHECK(out.got[1].suppressed == 9);   // the nine before it
    // Lines + their counts account for every event.
    CHECK(out.got.size() + out.got[0].suppressed + out.got[1].suppressed == 11);
    CHECK(FormatLogLine(out.got[1], 64) == "10:35:59 SL udp 2001:db8:a:: 192.0.2.10:11 +9");
    // The line written is the key's latest: an event within an interval of it is suppressed.
    REQUIRE(f.Publish(Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::Milliseconds(1800))).ok());
    CHECK(out.got.size() == 2);
    REQUIRE(f.Publish(Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::Milliseconds(1900))).ok());
    CHECK(out.got.size() == 3);
    CHECK(out.got[2].suppressed == 1);
  }
  SECTION("FlushAll writes what is held whatever the time") {
    REQUIRE(f.FlushAll().ok());
    REQUIRE(out.got.size() == 2);
    CHECK(out.got[1].suppressed == 9);
    REQUIRE(f.FlushAll().ok());
    CHECK(out.got.size() == 2);  // nothing held twice
  }
}

TEST_CASE("limit filter: different B4s are independent, B4s the log cannot tell apart are one") {
  Recorder out;
  LimitEventFilter f(&out, absl::Seconds(1), 64);
  const absl::Duration ms = absl::Milliseconds(1);
  REQUIRE(f.Publish({Limit(EventType::kPortsExhausted, "2001:db8:a::2", 0 * ms),
                     Limit(EventType::kPortsExhausted, "2001:db8:b::2", 1 * ms),
                     Limit(EventType::kPortsExhausted, "2001:db8:a::2", 2 * ms),
                     Limit(EventType::kPortsExhausted, "2001:db8:a::99", 3 * ms),  // same /64 as a::2
                     Limit(EventType::kSessionLimit, "2001:db8:a::2", 4 * ms),     // another limit
                     Limit(EventType::kAddressPortsExhausted, "2001:db8:a::2", 5 * ms)})
              .ok());
  REQUIRE(out.got.size() == 4);
  CHECK(out.got[0].b4.ToString() == "2001:db8:a::2");
  CHECK(out.got[1].b4.ToString() == "2001:db8:b::2");
  CHECK(out.got[2].type == EventType::kSessionLimit);
  CHECK(out.got[3].type == EventType::kAddressPortsExhausted);
  CHECK(f.key_count() == 4);
  CHECK(f.suppressed_total() == 1);  // a::2's second; a::99's is held
}

TEST_CASE("limit filter: table- and pool-wide limits are keyed by type alone") {
  Recorder out;
  LimitEventFilter f(&out, absl::Seconds(1));
  for (EventType t : {EventType::kSessionTableFull, EventType::kSubscriberTableFull,
                      EventType::kAddressExhausted}) {
    for (int i = 0; i < 50; ++i) {
      const std::string b4 = absl::StrCat("2001:db8:", i + 1, "::2");
      REQUIRE(f.Publish(Limit(t, b4, absl::Milliseconds(i))).ok());
    }
  }
  REQUIRE(out.got.size() == 3);
  CHECK(f.key_count() == 3);
  CHECK(Suppressed(f, "TF") == 48);
  CHECK(Suppressed(f, "UF") == 48);
  CHECK(Suppressed(f, "AX") == 48);
  // Per B4 for the subscriber's own limits.
  for (int i = 0; i < 50; ++i) {
    REQUIRE(f.Publish(Limit(EventType::kPortsExhausted, absl::StrCat("2001:db8:", i + 1, "::2"),
                            absl::Milliseconds(i)))
                .ok());
  }
  CHECK(out.got.size() == 53);
}

TEST_CASE("limit filter: the key table stays bounded under many B4s, and loses no event") {
  Recorder out;
  constexpr size_t kMaxKeys = 64;
  LimitEventFilter f(&out, absl::Seconds(10), 128, kMaxKeys);
  // 1000 B4s, each hitting its limit twice within the interval: the table never holds more
  // than 64 keys; an evicted key's held event is written on the way out.
  uint64_t sent = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string b4 = absl::StrCat("2001:db8::", absl::Hex(i + 1));
    REQUIRE(f.Publish({Limit(EventType::kSessionLimit, b4, absl::Milliseconds(i)),
                       Limit(EventType::kSessionLimit, b4, absl::Milliseconds(i))})
                .ok());
    sent += 2;
    REQUIRE(f.key_count() <= kMaxKeys);
  }
  CHECK(f.key_count() == kMaxKeys);
  REQUIRE(f.FlushAll().ok());
  CHECK(out.got.size() + f.suppressed_total() == sent);
  CHECK(out.got.size() == 2000);  // each B4's second event was held, then written when evicted
  // Flush forgets keys idle for an interval.
  REQUIRE(f.Flush(kT0 + absl::Seconds(60)).ok());
  CHECK(f.key_count() == 0);
}

TEST_CASE("limit filter: interval 0 lets every event through") {
  Recorder out;
  LimitEventFilter f(&out, absl::ZeroDuration());
  for (int i = 0; i < 100; ++i) {
    REQUIRE(f.Publish(Limit(EventType::kPortsExhausted, "2001:db8:a::2", absl::ZeroDuration())).ok());
  }
  CHECK(out.got.size() == 100);
  CHECK(f.suppressed_total() == 0);
  CHECK(f.key_count() == 0);
  REQUIRE(f.FlushAll().ok());
  CHECK(out.got.size() == 100);
}

TEST_CASE("limit filter: block, session and controller events are never touched") {
  Recorder out;
  LimitEventFilter f(&out, absl::Hours(1));
  std::vector<NatEvent> batch;
  for (EventType t : {EventType::kBlockClaimed, EventType::kBlockReleased, EventType::kSessionCreate,
                      EventType::kSessionDelete, EventType::kMappingCreate, EventType::kPcpMapCreate,
                      EventType::kEventsLost, EventType::kConfigReloaded}) {
    for (int i = 0; i < 3; ++i) batch.push_back(Limit(t, "2001:db8:a::2", absl::ZeroDuration()));
  }
  // Mixed with a flood of limit events, in order.
  batch.insert(batch.begin() + 4, Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::ZeroDuration()));
  batch.insert(batch.begin() + 5, Limit(EventType::kSessionLimit, "2001:db8:a::2", absl::ZeroDuration()));
  REQUIRE(f.Publish(batch).ok());
  REQUIRE(out.got.size() == batch.size() - 1);
  size_t j = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (i == 5) continue;  // the suppressed (held) one
    INFO(i);
    CHECK(out.got[j].type == batch[i].type);
    ++j;
  }
  CHECK(f.key_count() == 1);
}

TEST_CASE("limit filter: a clock stepping back ends the window instead of muting the key") {
  Recorder out;
  LimitEventFilter f(&out, absl::Seconds(1));
  REQUIRE(f.Publish(Limit(EventType::kPortsExhausted, "2001:db8:a::2", absl::Seconds(10))).ok());
  REQUIRE(f.Publish(Limit(EventType::kPortsExhausted, "2001:db8:a::2", absl::Seconds(2))).ok());
  CHECK(out.got.size() == 2);
}

}  // namespace
}  // namespace aftr::events
