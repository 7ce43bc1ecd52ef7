// stderr logger with a level prefix systemd understands (<N> syslog priorities).
#include "control/common/log.h"

#include <unistd.h>

#include <atomic>

namespace aftr {
namespace {
std::atomic<LogLevel> min_level{LogLevel::kInfo};
}  // namespace

void SetMinLogLevel(LogLevel level) { min_level = level; }

void LogLine(LogLevel level, const std::string& message) {
  if (level < min_level) return;
  static constexpr const char* kPrefix[] = {"<7>debug: ", "<6>", "<4>warning: ",
                                            "<3>error: "};
  std::string line = kPrefix[static_cast<int>(level)] + message + "\n";
  // One write(2) per line keeps lines from different threads whole.
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace aftr
