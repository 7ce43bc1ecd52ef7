#include "control/events/limit_event_filter.h"

#include <algorithm>

#include "control/events/log_line.h"

namespace aftr::events {
namespace {

// Pool- or table-wide conditions: whoever hits them, it is one condition. (AX's IPFIX record,
// natEvent 3, carries no subscriber either.)
bool KeyedByTypeOnly(EventType type) {
  return type == EventType::kAddressExhausted || type == EventType::kSessionTableFull ||
         type == EventType::kSubscriberTableFull;
}

}  // namespace

LimitEventFilter::LimitEventFilter(EventSink* next, absl::Duration interval, int b4_prefix_length,
                                   size_t max_keys)
    : next_(next),
      interval_(interval),
      b4_prefix_length_(b4_prefix_length),
      max_keys_(std::max<size_t>(max_keys, 1)) {}

LimitEventFilter::Key LimitEventFilter::KeyOf(const NatEvent& e) const {
  Key key{e.type, Ipv6Address{}};
  // The log writes the B4 as this prefix: B4s it cannot tell apart share one key, so many
  // addresses inside one subscriber prefix do not multiply the lines.
  if (!KeyedByTypeOnly(e.type)) key.b4 = TruncateB4(e.b4, b4_prefix_length_);
  return key;
}

void LimitEventFilter::Drop(Entry& entry) {
  ++entry.dropped;
  suppressed_total_.fetch_add(1, std::memory_order_relaxed);
  suppressed_[static_cast<uint8_t>(entry.key.type)].fetch_add(1, std::memory_order_relaxed);
}

void LimitEventFilter::Release(Entry& entry, std::vector<NatEvent>* out) {
  if (!entry.held) return;
  NatEvent e = std::move(*entry.held);
  entry.held.reset();
  e.suppressed = entry.dropped;
  entry.dropped = 0;
  // Its line is the key's latest: the next one is due an interval after it.
  entry.window_start = e.time;
  out->push_back(std::move(e));
}

void LimitEventFilter::Touch(Order::iterator it) { order_.splice(order_.end(), order_, it); }

absl::Status LimitEventFilter::Publish(const std::vector<NatEvent>& events) {
  if (interval_ <= absl::ZeroDuration() ||
      std::none_of(events.begin(), events.end(),
                   [](const NatEvent& e) { return IsLimitEvent(e.type); })) {
    return next_->Publish(events);
  }
  std::vector<NatEvent> out;
  out.reserve(events.size());
  // Held under the lock while publishing, so what passes reaches the sinks in order.
  absl::MutexLock lock(&mu_);
  for (const NatEvent& e : events) {
    if (!IsLimitEvent(e.type)) {
      out.push_back(e);
      continue;
    }
    const Key key = KeyOf(e);
    auto found = index_.find(key);
    if (found == index_.end()) {
      if (index_.size() >= max_keys_) {
        // Full: the oldest window goes, its held event written first (nothing is lost).
        Entry& oldest = order_.front();
        Release(oldest, &out);
        index_.erase(oldest.key);
        order_.pop_front();
      }
      order_.push_back(Entry{key, e.time, std::nullopt, 0});
      index_[key] = std::prev(order_.end());
      out.push_back(e);
      out.back().suppressed = 0;
      continue;
    }
    Entry& entry = *found->second;
    // A clock stepping back (e.time before the window) ends the window too: better a line
    // too many than a key muted until the clock catches up.
    const bool in_window = e.time >= entry.window_start && e.time - entry.window_start < interval_;
    if (in_window) {
      if (entry.held) Drop(entry);  // the one held before is superseded: left out for good
      entry.held = e;
      continue;
    }
    if (entry.held) {
      Drop(entry);
      entry.held.reset();
    }
    out.push_back(e);
    out.back().suppressed = entry.dropped;
    entry.dropped = 0;
    entry.window_start = e.time;
    Touch(found->second);
  }
  if (out.empty()) return absl::OkStatus();
  return next_->Publish(out);
}

absl::Status LimitEventFilter::FlushBefore(absl::Time now, bool all) {
  std::vector<NatEvent> out;
  absl::MutexLock lock(&mu_);
  Order renewed;
  while (!order_.empty()) {
    Entry& entry = order_.front();
    if (!all && now - entry.window_start < interval_) break;  // the rest began later
    if (entry.held) {
      Release(entry, &out);
      renewed.splice(renewed.end(), order_, order_.begin());
    } else {
      index_.erase(entry.key);  // idle for an interval: forgotten
      order_.pop_front();
    }
  }
  order_.splice(order_.end(), renewed);
  if (out.empty()) return absl::OkStatus();
  return next_->Publish(out);
}

absl::Status LimitEventFilter::Flush(absl::Time now) {
  if (interval_ <= absl::ZeroDuration()) return absl::OkStatus();
  return FlushBefore(now, false);
}

absl::Status LimitEventFilter::FlushAll() {
  if (interval_ <= absl::ZeroDuration()) return absl::OkStatus();
  return FlushBefore(absl::InfiniteFuture(), true);
}

std::vector<std::pair<const char*, uint64_t>> LimitEventFilter::suppressed_by_type() const {
  std::vector<std::pair<const char*, uint64_t>> out;
  for (int value = 0; value < 256; ++value) {
    const EventType t = static_cast<EventType>(value);
    if (!IsLimitEvent(t)) continue;  // the one list of limit types
    out.emplace_back(EventCode(t), suppressed_[static_cast<uint8_t>(t)].load(std::memory_order_relaxed));
  }
  return out;
}

size_t LimitEventFilter::key_count() const {
  absl::MutexLock lock(&mu_);
  return index_.size();
}

}  // namespace aftr::events
