// The compact log's line format: one event per line, in files of one UTC day each (the date
// is in the file name, so a line carries only the time of day). Format, then parse back
// (the attribution index reads the logs).
//
//   10:35:59 SC udp 2001:db8:a:: 192.0.2.10:40000 198.51.100.1:1030   session create/delete
//   10:35:59 BA 2001:db8:a:: 198.51.100.1 1024-1535                    block claimed/released
//   10:35:59 MC tcp 2001:db8:a:: 192.0.2.10:80 198.51.100.1:2000       static mapping
//   10:35:59 PC tcp 2001:db8:a:: 192.0.2.10:8080 198.51.100.1:1031 lifetime=3600   PCP MAP
//   10:35:59 PX icmp 2001:db8:a:: 192.0.2.10:40000                     a limit hit (PX AX SL TF UF)
//   10:35:59 AP 2001:db8:a:: 198.51.100.1                              the subscriber's address has
//                                                                       no block left for it
//   10:35:59 SL udp 2001:db8:a:: 192.0.2.10:40000 +1234                 a limit hit, and 1234 more of
//                                                                       it suppressed since its last line
//   10:35:59 EL 17                                                     events lost
//   10:35:59 CR pool_prefixes,timeouts.udp                             configuration reloaded
//   10:35:59 FS no earlier state                                       data plane started empty
//
// The B4 is written as its first `b4_prefix_length` bits (the rest zeroed): with 64, a
// port-block line is at most 62 bytes with its newline, and so is every other line but a
// session's or mapping's (no free text) and a limit line's trailing " +N" (LimitEventFilter).
// The destination of a session is never logged (privacy; attribution does not need it).
// Lines starting with '#' are comments.
#ifndef AFTR_CONTROL_EVENTS_LOG_LINE_H_
#define AFTR_CONTROL_EVENTS_LOG_LINE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "control/events/nat_event.h"

namespace aftr::events {

// The B4 address with all but its first `prefix_length` bits zeroed.
Ipv6Address TruncateB4(const Ipv6Address& b4, int prefix_length);

// One line, without the newline. Newlines in free text are replaced (they would forge lines).
std::string FormatLogLine(const NatEvent& event, int b4_prefix_length = 128);

// The UTC day a line of `event` belongs in.
absl::CivilDay LogDay(absl::Time time);

// Parses one line (no newline) of the file of UTC `day`. InvalidArgument naming what is
// wrong for anything FormatLogLine would not have written (comments included).
absl::Status ParseLogLine(absl::CivilDay day, absl::string_view line, NatEvent* out);

}  // namespace aftr::events

#endif  // AFTR_CONTROL_EVENTS_LOG_LINE_H_
