// "address:port" text <-> a socket address, for the collectors and listeners of the config.
#ifndef AFTR_CONTROL_COMMON_SOCKET_ADDRESS_H_
#define AFTR_CONTROL_COMMON_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace aftr {

// An IPv4 or IPv6 address with a port, ready for bind/connect/sendto.
struct SocketAddress {
  sockaddr_storage storage = {};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  uint16_t port() const;
  std::string ToString() const;  // "192.0.2.1:4739", "[2001:db8::1]:4739"
};

// Parses "192.0.2.1:4739" or "[2001:db8::1]:4739" (a numeric address, port 1..65535).
// Errors are InvalidArgument quoting the input.
absl::StatusOr<SocketAddress> ParseSocketAddress(absl::string_view text);

// An address with a given port: "192.0.2.1" or "2001:db8::1" (no brackets) and `port`.
absl::StatusOr<SocketAddress> MakeSocketAddress(absl::string_view address, uint16_t port);

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_SOCKET_ADDRESS_H_
