// Where NAT events go: the compact log, the API's watch streams, later the IPFIX exporter.
// Producers (the ring-buffer drain, the sweeper, the API) publish to one EventSink; a
// fan-out hands each batch to every consumer.
#ifndef AFTR_CONTROL_EVENTS_EVENT_SINK_H_
#define AFTR_CONTROL_EVENTS_EVENT_SINK_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "control/events/nat_event.h"

namespace aftr::events {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Takes a batch in order. An error means this sink did not record them (the caller counts
  // them as lost); sinks never block producers for long.
  virtual absl::Status Publish(const std::vector<NatEvent>& events) = 0;
  absl::Status Publish(const NatEvent& event) { return Publish(std::vector<NatEvent>{event}); }
};

// Hands every batch to each added sink, in the order they were added; returns the first
// error after all sinks had their turn.
class EventFanout : public EventSink {
 public:
  void Add(EventSink* sink) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(EventSink* sink) ABSL_LOCKS_EXCLUDED(mu_);
  using EventSink::Publish;
  absl::Status Publish(const std::vector<NatEvent>& events) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::vector<EventSink*> sinks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_EVENT_SINK_H_
