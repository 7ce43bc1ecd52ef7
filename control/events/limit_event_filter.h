// Rate-limits the data plane's limit and exhaustion events (PX AP AX SL TF UF) before the
// log and IPFIX. The data plane raises one per dropped packet, so a subscriber flooding new
// flows would otherwise decide how much the AFTR writes (RFC 6888 REQ-12 spirit: logging must
// not be a way to attack the AFTR). Nothing is lost: what is left out is counted.
//
// Per key — (type, B4 truncated to the log's prefix length) for PX AP SL; the type alone for
// AX TF UF, which are pool- or table-wide — the first event passes; later ones within
// `interval` of it are suppressed. The first after the interval passes carrying `suppressed`,
// the number left out since the previous one that passed (the log writes " +N"). When no
// event comes after the interval, Flush() writes the last suppressed one itself with the
// count of those before it, so the log accounts for every event by the end of a flood:
// lines + the N of each line = events. Every other event type passes untouched.
//
// Memory is bounded: at most `max_keys` keys; a full table evicts the key whose interval
// began first (its held event is written first), and Flush() forgets keys idle for an
// interval.
#ifndef AFTR_CONTROL_EVENTS_LIMIT_EVENT_FILTER_H_
#define AFTR_CONTROL_EVENTS_LIMIT_EVENT_FILTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/events/event_sink.h"

namespace aftr::events {

class LimitEventFilter : public EventSink {
 public:
  static constexpr size_t kDefaultMaxKeys = 64 * 1024;

  // Publishes what passes to `next`. `interval` zero or less: everything passes.
  LimitEventFilter(EventSink* next, absl::Duration interval, int b4_prefix_length = 128,
                   size_t max_keys = kDefaultMaxKeys);

  using EventSink::Publish;
  absl::Status Publish(const std::vector<NatEvent>& events) override ABSL_LOCKS_EXCLUDED(mu_);

  // Writes the held event of every key whose interval ended by `now` and forgets keys that
  // had nothing to hold. Called periodically (the sweep).
  absl::Status Flush(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes every held event (shutdown).
  absl::Status FlushAll() ABSL_LOCKS_EXCLUDED(mu_);

  // Events left out of the log and IPFIX for good, by type code ("PX", ...), and in all.
  uint64_t suppressed_total() const { return suppressed_total_.load(std::memory_order_relaxed); }
  std::vector<std::pair<const char*, uint64_t>> suppressed_by_type() const;
  size_t key_count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Key {
    EventType type;
    Ipv6Address b4;  // zero for the table-wide types
    bool operator==(const Key& o) const { return type == o.type && b4 == o.b4; }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), static_cast<uint8_t>(k.type), k.b4.bytes);
    }
  };
  struct Entry {
    Key key;
    absl::Time window_start;        // when the last event that passed (or was flushed) came
    std::optional<NatEvent> held;   // the latest suppressed event, written by Flush
    uint64_t dropped = 0;           // suppressed for good since the last line of this key
  };
  using Order = std::list<Entry>;  // oldest window first

  Key KeyOf(const NatEvent& e) const;
  // Suppresses `e` for good (it is no longer held).
  void Drop(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the held event (if any) to `out` with its count and starts a new window.
  void Release(Entry& entry, std::vector<NatEvent>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Touch(Order::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FlushBefore(absl::Time now, bool all) ABSL_LOCKS_EXCLUDED(mu_);

  EventSink* const next_;
  const absl::Duration interval_;
  const int b4_prefix_length_;
  const size_t max_keys_;
  mutable absl::Mutex mu_;
  Order order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Order::iterator> index_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> suppressed_total_{0};
  std::atomic<uint64_t> suppressed_[256] = {};  // by EventType value
};

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_LIMIT_EVENT_FILTER_H_
