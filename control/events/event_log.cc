#include "control/events/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/events/log_line.h"

namespace aftr::events {
namespace fs = std::filesystem;

namespace {

// "events.log" -> {"events", ".log"}
std::pair<std::string, std::string> StemAndExtension(const std::string& path) {
  const fs::path p(path);
  return {p.stem().string(), p.extension().string()};
}

// Cuts a partial last line (a write interrupted by a crash) so the file holds whole lines.
absl::Status RepairTornTail(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
  off_t end = st.st_size;
  if (end == 0) return absl::OkStatus();
  char buf[4096];
  off_t pos = end;
  while (pos > 0) {
    const off_t start = std::max<off_t>(0, pos - static_cast<off_t>(sizeof(buf)));
    const ssize_t n = pread(fd, buf, pos - start, start);
    if (n != pos - start) return ErrnoToStatus(errno, absl::StrCat("reading ", path));
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (buf[i] == '\n') {
        const off_t keep = start + i + 1;
        if (keep == end) return absl::OkStatus();
        LogWarning("%s: cut %d bytes of a line torn by a crash", path, end - keep);
        if (ftruncate(fd, keep) != 0) return ErrnoToStatus(errno, absl::StrCat("truncating ", path));
        return absl::OkStatus();
      }
    }
    pos = start;
  }
  LogWarning("%s: cut %d bytes of a line torn by a crash", path, end);
  if (ftruncate(fd, 0) != 0) return ErrnoToStatus(errno, absl::StrCat("truncating ", path));
  return absl::OkStatus();
}

}  // namespace

bool LoggedUnder(const LogPolicy& policy, EventType type) {
  if (type == EventType::kSessionCreate || type == EventType::kSessionDelete) {
    return policy.per_session;
  }
  return true;
}

std::string EventLog::DailyPath(const std::string& path, absl::CivilDay day) {
  auto [stem, ext] = StemAndExtension(path);
  return (fs::path(path).parent_path() /
          absl::StrFormat("%s-%04d-%02d-%02d%s", stem, day.year(), day.month(), day.day(), ext))
      .string();
}

std::vector<std::pair<absl::CivilDay, std::string>> EventLog::DailyFiles(const std::string& path) {
  std::vector<std::pair<absl::CivilDay, std::string>> out;
  auto [stem, ext] = StemAndExtension(path);
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(fs::path(path).parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    // stem-YYYY-MM-DD.ext
    if (name.size() != stem.size() + 11 + ext.size() || !absl::StartsWith(name, stem + "-") ||
        !absl::EndsWith(name, ext)) {
      continue;
    }
    absl::CivilDay day;
    if (!absl::ParseCivilTime(name.substr(stem.size() + 1, 10), &day)) continue;
    if (DailyPath(path, day) != entry.path().string()) continue;  // "2026-1-5" and the like
    out.emplace_back(day, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::unique_ptr<EventLog>> EventLog::Create(const std::string& path,
                                                          LogPolicy policy,
                                                          std::function<absl::Time()> now) {
  auto log = std::unique_ptr<EventLog>(new EventLog(path, policy, std::move(now)));
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  // A log written by an aftrd before daily files: keep it under another name.
  if (fs::is_regular_file(fs::symlink_status(path, ec))) {
    const std::string kept = absl::StrCat(path, ".before-daily");
    fs::rename(path, kept, ec);
    if (ec) return absl::InternalError(absl::StrCat("renaming ", path, ": ", ec.message()));
    LogWarning("%s was a plain file; kept as %s", path, kept);
  }
  absl::MutexLock lock(&log->mu_);
  const std::vector<std::pair<absl::CivilDay, std::string>> files = DailyFiles(path);
  log->newest_day_ = files.empty() ? absl::CivilDay(1970, 1, 1) : files.back().first;
  const absl::Time started = log->now_();
  if (absl::Status s = log->OpenDayLocked(LogDay(started)); !s.ok()) return s;
  // Say in the file how its lines are written from here on.
  if (absl::Status s = log->AppendLocked(absl::StrFormat(
          "# %s aftrd started: b4_prefix_length=%d mode=%s\n",
          absl::FormatTime("%H:%M:%S", started, absl::UTCTimeZone()), policy.b4_prefix_length,
          policy.per_session ? "per-session" : "port-block") + log->DeterministicLines(started));
      !s.ok()) {
    return s;
  }
  log->started_ = true;
  return log;
}

EventLog::~EventLog() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) {
    fdatasync(fd_);
    close(fd_);
  }
}

absl::Status EventLog::OpenDayLocked(absl::CivilDay day) {
  const std::string file = DailyPath(path_, day);
  int fd = open(file.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening log file ", file));
  if (absl::Status s = RepairTornTail(fd, file); !s.ok()) {
    close(fd);
    return s;
  }
  if (fd_ >= 0) {
    fdatasync(fd_);
    close(fd_);
  }
  fd_ = fd;
  open_day_ = day;
  // Each file says how its lines are written (and, once running, the deterministic ranges in
  // force: Create writes them after its own line), so it reads alone.
  struct stat st;
  if (fstat(fd_, &st) == 0 && st.st_size == 0) {
    if (absl::Status s = AppendLocked(
            absl::StrFormat("# aftrd log of %04d-%02d-%02d (UTC): b4_prefix_length=%d mode=%s\n",
                            day.year(), day.month(), day.day(), policy_.b4_prefix_length,
                            policy_.per_session ? "per-session" : "port-block") +
            (started_ ? DeterministicLines(absl::FromCivil(day, absl::UTCTimeZone())) : ""));
        !s.ok()) {
      return s;
    }
  }
  if (day >= newest_day_) {
    newest_day_ = day;
    // Point the link at the newest file: a new link renamed over the old one.
    const std::string tmp = absl::StrCat(path_, ".new");
    unlink(tmp.c_str());
    if (symlink(fs::path(file).filename().c_str(), tmp.c_str()) != 0 ||
        rename(tmp.c_str(), path_.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("linking ", path_, " to ", file));
    }
    PruneLocked();
  }
  return absl::OkStatus();
}

std::string EventLog::DeterministicLines(absl::Time at) const {
  std::string out;
  for (const std::string& range : policy_.deterministic_ranges) {
    absl::StrAppend(&out, "# ", absl::FormatTime("%H:%M:%S", at, absl::UTCTimeZone()),
                    " deterministic ", range, "\n");
  }
  return out;
}

void EventLog::PruneLocked() {
  const absl::CivilDay oldest_kept = newest_day_ - (policy_.retention_days - 1);
  for (const auto& [day, file] : DailyFiles(path_)) {
    if (day >= oldest_kept) break;
    if (unlink(file.c_str()) == 0) {
      LogInfo("deleted %s (older than %d days)", file, policy_.retention_days);
    } else {
      LogWarning("cannot delete %s: %s", file, std::strerror(errno));
    }
  }
}

absl::Status EventLog::AppendLocked(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd_, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("writing log file ", DailyPath(path_, open_day_)));
    }
    done += n;
  }
  return absl::OkStatus();
}

absl::Status EventLog::Reopen() {
  absl::MutexLock lock(&mu_);
  return OpenDayLocked(open_day_);
}

absl::Status EventLog::Write(const std::vector<NatEvent>& events) {
  absl::MutexLock lock(&mu_);
  // Consecutive events of one day make one write.
  std::string buf;
  uint64_t lines = 0;
  auto flush = [&]() -> absl::Status {
    if (buf.empty()) return absl::OkStatus();
    if (absl::Status s = AppendLocked(buf); !s.ok()) return s;
    lines_ += lines;
    buf.clear();
    lines = 0;
    return absl::OkStatus();
  };
  for (const NatEvent& e : events) {
    if (!LoggedUnder(policy_, e.type)) continue;
    const absl::CivilDay day = LogDay(e.time);
    if (day != open_day_) {
      if (absl::Status s = flush(); !s.ok()) return s;
      if (absl::Status s = OpenDayLocked(day); !s.ok()) return s;
    }
    absl::StrAppend(&buf, FormatLogLine(e, policy_.b4_prefix_length), "\n");
    ++lines;
  }
  if (absl::Status s = flush(); !s.ok()) return s;
  // On disk within about a second, without a sync per batch.
  const absl::Time now = now_();
  if (now - last_sync_ >= absl::Seconds(1)) {
    fdatasync(fd_);
    last_sync_ = now;
  }
  return absl::OkStatus();
}

uint64_t EventLog::lines_written() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

}  // namespace aftr::events
