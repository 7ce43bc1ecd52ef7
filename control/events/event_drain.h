// Drains the data plane's ring buffer on its own thread into an event sink (the log, the API
// watchers). The ring is read directly (not through libbpf's ring_buffer, which gives each
// record back to the kernel as soon as its callback returns): a batch is handed to the sink
// first and only then released, so a daemon killed at any moment leaves every record it had
// not yet logged in the ring for the next aftrd. Records lost before they reached the ring
// (it was full) are counted by the data plane (event_lost); records the sink could not take
// are counted here; the sweeper reports both.
#ifndef AFTR_CONTROL_EVENTS_EVENT_DRAIN_H_
#define AFTR_CONTROL_EVENTS_EVENT_DRAIN_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "control/events/event_sink.h"

namespace aftr::events {

class EventDrain {
 public:
  static absl::StatusOr<std::unique_ptr<EventDrain>> Create(int ringbuf_fd, EventSink* sink);
  ~EventDrain();  // stops the thread after a last drain

  uint64_t events_drained() const { return drained_; }
  uint64_t events_failed() const { return failed_; }  // undecodable or unwritable

 private:
  explicit EventDrain(EventSink* sink) : sink_(sink) {}
  // Hands every complete record to the sink, in batches, releasing each batch's ring space
  // after the sink took it. Returns the number of records.
  size_t Consume();
  void Run();

  EventSink* sink_;
  int epoll_fd_ = -1;
  size_t page_size_ = 0;
  size_t ring_size_ = 0;                 // data area, a power of two
  uint64_t* consumer_pos_ = nullptr;     // mmap'ed, ours to advance
  const uint64_t* producer_pos_ = nullptr;  // mmap'ed, the kernel's
  const uint8_t* data_ = nullptr;        // mapped twice in a row, so records never wrap
  std::vector<NatEvent> batch_;          // drain thread only
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> drained_{0};
  std::atomic<uint64_t> failed_{0};
  std::thread thread_;
};

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_EVENT_DRAIN_H_
