// The API's event watchers (WatchEvents): an EventSink that copies each event into the
// bounded queue of every watcher whose filter matches. Publishing never blocks: a watcher
// that falls behind loses events, is told how many (EVENTS_LOST), and nobody else waits.
#ifndef AFTR_CONTROL_API_EVENT_HUB_H_
#define AFTR_CONTROL_API_EVENT_HUB_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/api/filter.h"
#include "control/events/event_sink.h"

namespace aftr::api {

class EventHub : public events::EventSink {
 public:
  class Watcher {
   public:
    ~Watcher();  // unregisters
    // Waits until events are queued, `deadline` passes or the hub closes; moves the queued
    // events (at most `max`) to `out`. `lost` gets the number dropped since the last call.
    // Returns false once the hub is closed and the queue is empty.
    bool Next(absl::Time deadline, size_t max, std::vector<events::NatEvent>* out, uint64_t* lost);

   private:
    friend class EventHub;
    Watcher(EventHub* hub, Filter filter, size_t capacity)
        : hub_(hub), filter_(std::move(filter)), capacity_(capacity) {}
    void Offer(const events::NatEvent& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

    EventHub* hub_;
    const Filter filter_;
    const size_t capacity_;
    absl::Mutex mu_;
    std::deque<events::NatEvent> queue_ ABSL_GUARDED_BY(mu_);
    uint64_t lost_ ABSL_GUARDED_BY(mu_) = 0;           // not yet reported to the client
    uint64_t reported_lost_ ABSL_GUARDED_BY(mu_) = 0;  // reported, for the hub's total
    bool closed_ ABSL_GUARDED_BY(mu_) = false;
  };

  EventHub() = default;
  ~EventHub() override;

  // A new watcher with its own queue of `capacity` events.
  std::unique_ptr<Watcher> Watch(Filter filter, size_t capacity);
  // Wakes every watcher and makes Next return false once drained (server shutdown).
  void Close();

  using events::EventSink::Publish;
  absl::Status Publish(const std::vector<events::NatEvent>& events) override;

  uint64_t events_dropped() const;  // summed over watchers, since start
  size_t watcher_count() const;

 private:
  void Remove(Watcher* w);

  mutable absl::Mutex mu_;
  std::vector<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Whether a watch filter (b4_address, public_address, type) selects the event.
bool EventMatches(const Filter& filter, const events::NatEvent& e);

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_EVENT_HUB_H_
