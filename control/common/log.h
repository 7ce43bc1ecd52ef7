// The daemon's own diagnostics: one line per message on stderr (journald picks it up).
// Abseil 20220623 has no absl/log, so this is the project's small logger.
#ifndef AFTR_CONTROL_COMMON_LOG_H_
#define AFTR_CONTROL_COMMON_LOG_H_

#include <string>

#include "absl/strings/str_format.h"

namespace aftr {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void SetMinLogLevel(LogLevel level);
void LogLine(LogLevel level, const std::string& message);

template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kWarning, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kError, absl::StrFormat(format, args...));
}

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_LOG_H_
