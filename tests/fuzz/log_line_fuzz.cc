// libFuzzer target for the compact log's line parser (control/events/log_line), which the
// attribution index runs over the daily log files: any line either parses or is refused with
// a message quoting it, and what parses formats (FormatLogLine) to a line that parses back to
// the same event, so the index and the log never disagree about who held a port. Built with
// clang -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt); ctest runs it for a
// bounded time from tests/fuzz/corpus/log_lines (a line of every event type).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "control/events/log_line.h"

namespace {

namespace ev = aftr::events;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Same(const ev::NatEvent& a, const ev::NatEvent& b) {
  return a.type == b.type && a.time == b.time && a.b4 == b.b4 && a.proto == b.proto &&
         a.inner_addr == b.inner_addr && a.inner_port == b.inner_port &&
         a.public_addr == b.public_addr && a.public_port == b.public_port &&
         a.block_size == b.block_size && a.count == b.count && a.detail == b.detail;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view line(reinterpret_cast<const char*>(data), size);
  const absl::CivilDay day(2026, 3, 14);
  ev::NatEvent e;
  const absl::Status s = ev::ParseLogLine(day, line, &e);
  if (!s.ok()) {
    Check(s.code() == absl::StatusCode::kInvalidArgument && !s.message().empty());
    return 0;
  }
  // The log holds lines: a newline inside one is not what the reader hands the parser.
  if (line.find_first_of("\r\n") != absl::string_view::npos) return 0;
  // A leap second (":60") is the next minute's first; the rest belongs to `day`.
  if (ev::LogDay(e.time) != day) return 0;
  const std::string formatted = ev::FormatLogLine(e);
  ev::NatEvent again;
  const absl::Status s2 = ev::ParseLogLine(day, formatted, &again);
  Check(s2.ok());
  Check(Same(e, again));
  // And formatting is a fixed point from there.
  Check(ev::FormatLogLine(again) == formatted);
  return 0;
}
