#include "control/common/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "control/common/errno_status.h"

namespace aftr {

absl::Status SdNotifyTo(absl::string_view socket_path, absl::string_view state) {
  if (socket_path.empty()) return absl::OkStatus();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() < 2 || socket_path.size() >= sizeof(addr.sun_path) ||
      (socket_path[0] != '/' && socket_path[0] != '@')) {
    return absl::InvalidArgumentError(
        absl::StrCat("NOTIFY_SOCKET \"", socket_path, "\" is neither an absolute path nor @abstract"));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  // An abstract address starts with a NUL byte and its length is exact (no terminator).
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());

  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "sd_notify: socket");
  // MSG_DONTWAIT: a listener that stopped reading must never stall the daemon's main loop.
  const ssize_t sent = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                              reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  close(fd);
  if (sent < 0) return ErrnoToStatus(err, absl::StrCat("sd_notify: send to ", socket_path));
  if (static_cast<size_t>(sent) != state.size()) {
    return absl::InternalError(absl::StrCat("sd_notify: short send to ", socket_path));
  }
  return absl::OkStatus();
}

absl::Status SdNotify(absl::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  return SdNotifyTo(path == nullptr ? "" : path, state);
}

}  // namespace aftr
