// The compact local event log: one line per event (log_line.h), one file per UTC day named
// with its date beside the configured path (events.log -> events-2026-11-27.log), which is
// itself a symbolic link to the newest day's file. Each batch is appended with one write, so
// concurrent writers never interleave lines; a line torn by a crash is cut off when the file
// is opened again (its event is still in the ring buffer, released only after the write).
// Files older than the retention are deleted at start and at each new day.
#ifndef AFTR_CONTROL_EVENTS_EVENT_LOG_H_
#define AFTR_CONTROL_EVENTS_EVENT_LOG_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "control/events/event_sink.h"
#include "control/events/nat_event.h"

namespace aftr::events {

struct LogPolicy {
  bool per_session = false;   // session create/delete lines too (else port blocks and the rest)
  int b4_prefix_length = 64;  // B4 addresses written as this prefix
  int retention_days = 180;   // daily files kept, today's included
  // The active deterministic NAT ranges (DeterministicRange::ToString), written as comment
  // lines at start and at the top of each new day's file: whoever had a deterministic port
  // then follows from them, since no line is written per block.
  std::vector<std::string> deterministic_ranges;
};

// Whether the log keeps this event under `policy` (sessions only when per_session).
bool LoggedUnder(const LogPolicy& policy, EventType type);

class EventLog : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<EventLog>> Create(
      const std::string& path, LogPolicy policy, std::function<absl::Time()> now = absl::Now);
  ~EventLog();

  // Appends the lines of the events the policy keeps, each in the file of its UTC day.
  absl::Status Write(const std::vector<NatEvent>& events);
  absl::Status Write(const NatEvent& event) { return Write(std::vector<NatEvent>{event}); }

  // Reopens the current file (after something moved it; SIGHUP).
  absl::Status Reopen();

  using EventSink::Publish;
  absl::Status Publish(const std::vector<NatEvent>& events) override { return Write(events); }

  uint64_t lines_written() const;

  // The file of one day: "/var/log/aftr/events.log" -> "/var/log/aftr/events-2026-11-27.log".
  static std::string DailyPath(const std::string& path, absl::CivilDay day);
  // The daily files of `path` present on disk, oldest first.
  static std::vector<std::pair<absl::CivilDay, std::string>> DailyFiles(const std::string& path);

 private:
  EventLog(std::string path, LogPolicy policy, std::function<absl::Time()> now)
      : path_(std::move(path)), policy_(policy), now_(std::move(now)) {}
  // Makes `day`'s file the open one (repairing a torn last line); a day newer than any seen
  // moves the link and applies the retention.
  absl::Status OpenDayLocked(absl::CivilDay day) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendLocked(const std::string& text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // "# HH:MM:SS deterministic RANGE" for each of policy_.deterministic_ranges.
  std::string DeterministicLines(absl::Time at) const;
  void PruneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const LogPolicy policy_;
  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  absl::CivilDay open_day_ ABSL_GUARDED_BY(mu_);
  absl::CivilDay newest_day_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sync_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t lines_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // the start comments are written
};

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_EVENT_LOG_H_
