#include "control/events/event_sink.h"

#include <algorithm>

namespace aftr::events {

void EventFanout::Add(EventSink* sink) {
  absl::MutexLock lock(&mu_);
  sinks_.push_back(sink);
}

void EventFanout::Remove(EventSink* sink) {
  absl::MutexLock lock(&mu_);
  sinks_.erase(std::remove(sinks_.begin(), sinks_.end(), sink), sinks_.end());
}

absl::Status EventFanout::Publish(const std::vector<NatEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  absl::ReaderMutexLock lock(&mu_);
  absl::Status first;
  for (EventSink* sink : sinks_) {
    absl::Status s = sink->Publish(events);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

}  // namespace aftr::events
