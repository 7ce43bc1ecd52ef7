#include "control/events/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "control/common/errno_status.h"

namespace aftr::events {

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Create(const std::string& path) {
  auto log = std::unique_ptr<EventLog>(new EventLog(path));
  absl::MutexLock lock(&log->mu_);
  if (absl::Status s = log->OpenLocked(); !s.ok()) return s;
  return log;
}

EventLog::~EventLog() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) close(fd_);
}

absl::Status EventLog::OpenLocked() {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening log file ", path_));
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  return absl::OkStatus();
}

absl::Status EventLog::Reopen() {
  absl::MutexLock lock(&mu_);
  return OpenLocked();
}

absl::Status EventLog::Write(const std::vector<NatEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  std::string buf;
  for (const NatEvent& e : events) absl::StrAppend(&buf, FormatLogLine(e), "\n");
  absl::MutexLock lock(&mu_);
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("writing log file ", path_));
    }
    done += n;
  }
  lines_ += events.size();
  return absl::OkStatus();
}

uint64_t EventLog::lines_written() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

}  // namespace aftr::events
