// The compact local event log: one line per event, appended with whole-line writes.
#ifndef AFTR_CONTROL_EVENTS_EVENT_LOG_H_
#define AFTR_CONTROL_EVENTS_EVENT_LOG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "control/events/event_sink.h"
#include "control/events/nat_event.h"

namespace aftr::events {

class EventLog : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<EventLog>> Create(const std::string& path);
  ~EventLog();

  // Appends the events' lines in one write, so concurrent writers never interleave lines.
  absl::Status Write(const std::vector<NatEvent>& events);
  absl::Status Write(const NatEvent& event) { return Write(std::vector<NatEvent>{event}); }

  // Reopens the file (after logrotate moved it; SIGHUP).
  absl::Status Reopen();

  using EventSink::Publish;
  absl::Status Publish(const std::vector<NatEvent>& events) override { return Write(events); }

  uint64_t lines_written() const;

 private:
  explicit EventLog(std::string path) : path_(std::move(path)) {}
  absl::Status OpenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  uint64_t lines_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_EVENT_LOG_H_
