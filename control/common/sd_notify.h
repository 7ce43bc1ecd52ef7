// The systemd readiness protocol (sd_notify(3)) without libsystemd: one datagram of
// "KEY=value" lines to the Unix socket named by $NOTIFY_SOCKET. aftrd runs as Type=notify:
// READY=1 once XDP is attached and the API serves, RELOADING=1 / READY=1 around a SIGHUP
// reload, STOPPING=1 at shutdown, STATUS= for `systemctl status`.
#ifndef AFTR_CONTROL_COMMON_SD_NOTIFY_H_
#define AFTR_CONTROL_COMMON_SD_NOTIFY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace aftr {

// Sends `state` (newline-separated assignments, e.g. "READY=1\nSTATUS=running") to
// `socket_path`: a filesystem path, or an abstract socket when it starts with '@'.
// An empty path is "not run by systemd" and returns OK without sending anything.
absl::Status SdNotifyTo(absl::string_view socket_path, absl::string_view state);

// SdNotifyTo($NOTIFY_SOCKET, state). The variable is left in the environment (aftrd
// starts no children), as sd_notify(0, ...) does.
absl::Status SdNotify(absl::string_view state);

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_SD_NOTIFY_H_
