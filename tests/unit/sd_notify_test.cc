#include "control/common/sd_notify.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"

namespace aftr {
namespace {

// A bound Unix datagram socket standing in for systemd's notification socket.
class Listener {
 public:
  // `name` is a path, or "@name" for an abstract socket.
  explicit Listener(const std::string& name) : name_(name) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{2, 0};  // a missing datagram fails the test instead of hanging it
    REQUIRE(setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(name.size() < sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (name[0] == '@') addr.sun_path[0] = '\0';
    const socklen_t len = offsetof(sockaddr_un, sun_path) + name.size();
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  }
  ~Listener() {
    close(fd_);
    if (name_[0] == '/') unlink(name_.c_str());
  }
  std::string Receive() {
    char buf[512];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n < 0 ? "<nothing>" : std::string(buf, n);
  }

 private:
  std::string name_;
  int fd_ = -1;
};

std::string TempSocketPath() {
  return absl::StrCat(P_tmpdir, "/aftr-sd-notify-test-", getpid(), ".sock");
}

TEST_CASE("SdNotifyTo sends one datagram to a socket path", "[sd_notify]") {
  Listener listener(TempSocketPath());
  REQUIRE(SdNotifyTo(TempSocketPath(), "READY=1\nSTATUS=serving").ok());
  CHECK(listener.Receive() == "READY=1\nSTATUS=serving");
  REQUIRE(SdNotifyTo(TempSocketPath(), "RELOADING=1").ok());
  CHECK(listener.Receive() == "RELOADING=1");
}

TEST_CASE("SdNotifyTo reaches an abstract socket named with '@'", "[sd_notify]") {
  const std::string name = absl::StrCat("@aftr-sd-notify-test-", getpid());
  Listener listener(name);
  REQUIRE(SdNotifyTo(name, "STOPPING=1").ok());
  CHECK(listener.Receive() == "STOPPING=1");
}

TEST_CASE("SdNotify reads NOTIFY_SOCKET; unset means not under systemd", "[sd_notify]") {
  Listener listener(TempSocketPath());
  REQUIRE(setenv("NOTIFY_SOCKET", TempSocketPath().c_str(), 1) == 0);
  REQUIRE(SdNotify("READY=1").ok());
  CHECK(listener.Receive() == "READY=1");
  REQUIRE(unsetenv("NOTIFY_SOCKET") == 0);
  CHECK(SdNotify("READY=1").ok());  // nothing sent, nothing to fail
}

TEST_CASE("SdNotifyTo reports bad names and absent listeners", "[sd_notify]") {
  absl::Status relative = SdNotifyTo("run/notify", "READY=1");
  CHECK(relative.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(relative.message()).find("run/notify") != std::string::npos);
  CHECK(SdNotifyTo("@", "READY=1").code() == absl::StatusCode::kInvalidArgument);
  CHECK(SdNotifyTo(std::string(200, '/'), "READY=1").code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(SdNotifyTo(TempSocketPath() + ".absent", "READY=1").ok());
}

}  // namespace
}  // namespace aftr
