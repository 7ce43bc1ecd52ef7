// What identifies a NAT session on the subscriber side, as the controller and the API see it.
#ifndef AFTR_CONTROL_COMMON_SESSION_KEY_H_
#define AFTR_CONTROL_COMMON_SESSION_KEY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "control/common/ip.h"

namespace aftr {

struct SessionKey {
  Ipv6Address b4;
  uint8_t proto = 0;  // IPPROTO_TCP/UDP/ICMP
  Ipv4Address inner_addr;
  uint16_t inner_port = 0;  // ICMP: the echo identifier

  // Bytes that sort sessions by (b4, inner address, inner port, protocol): the API's order.
  std::string SortKey() const;
  static std::optional<SessionKey> FromSortKey(const std::string& bytes);
  friend bool operator==(const SessionKey&, const SessionKey&) = default;
};

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_SESSION_KEY_H_
