// Drains the data plane's ring buffer on its own thread into an event sink (the log, the API watchers). Records lost
// before they reached the ring (it was full) are counted by the data plane (event_lost);
// records the log could not take are counted here; the sweeper reports both.
#ifndef AFTR_CONTROL_EVENTS_EVENT_DRAIN_H_
#define AFTR_CONTROL_EVENTS_EVENT_DRAIN_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "control/events/event_sink.h"

struct ring_buffer;

namespace aftr::events {

class EventDrain {
 public:
  static absl::StatusOr<std::unique_ptr<EventDrain>> Create(int ringbuf_fd, EventSink* sink);
  ~EventDrain();  // stops the thread after a last drain

  uint64_t events_drained() const { return drained_; }
  uint64_t events_failed() const { return failed_; }  // undecodable or unwritable

 private:
  explicit EventDrain(EventSink* sink) : sink_(sink) {}
  static int OnRecord(void* ctx, void* data, size_t size);
  void Run();

  EventSink* sink_;
  ring_buffer* ring_ = nullptr;
  std::vector<NatEvent> batch_;  // drain thread only
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> drained_{0};
  std::atomic<uint64_t> failed_{0};
  std::thread thread_;
};

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_EVENT_DRAIN_H_
