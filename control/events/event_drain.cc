#include "control/events/event_drain.h"

#include <bpf/libbpf.h>

#include <cerrno>

#include "control/common/errno_status.h"
#include "control/common/log.h"

namespace aftr::events {

absl::StatusOr<std::unique_ptr<EventDrain>> EventDrain::Create(int ringbuf_fd, EventSink* sink) {
  auto drain = std::unique_ptr<EventDrain>(new EventDrain(sink));
  drain->ring_ = ring_buffer__new(ringbuf_fd, &EventDrain::OnRecord, drain.get(), nullptr);
  if (!drain->ring_) return ErrnoToStatus(errno, "opening the event ring buffer");
  drain->thread_ = std::thread([d = drain.get()] { d->Run(); });
  return drain;
}

EventDrain::~EventDrain() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (ring_) ring_buffer__free(ring_);
}

int EventDrain::OnRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<EventDrain*>(ctx);
  NatEvent event;
  if (size < sizeof(aftr_event) || !DecodeEvent(*static_cast<const aftr_event*>(data), &event)) {
    self->failed_++;
    return 0;
  }
  self->batch_.push_back(event);
  return 0;
}

void EventDrain::Run() {
  // Poll with a timeout so stop_ is noticed; one more consume after stop empties the ring.
  for (bool last = false; !last;) {
    last = stop_;
    int n = last ? ring_buffer__consume(ring_) : ring_buffer__poll(ring_, 100);
    if (n < 0 && n != -EINTR) LogWarning("event ring buffer: error %d", n);
    if (batch_.empty()) continue;
    if (absl::Status s = sink_->Publish(batch_); !s.ok()) {
      failed_ += batch_.size();
      LogError("%d events not logged: %s", batch_.size(), s.ToString());
    } else {
      drained_ += batch_.size();
    }
    batch_.clear();
  }
}

}  // namespace aftr::events
