// Sends what the slow path's program run translated: whole Ethernet frames out of an
// interface (AF_PACKET), after the kernel's XDP hook, so no XDP program sees them again; or,
// when the next hop's neighbour is not resolved yet, the IPv4 or IPv6 packet through the
// kernel's IP stack (raw IPPROTO_RAW sockets, header included), which routes it and resolves
// the neighbour, as the kernel does for the fast path's XDP_PASS.
#ifndef AFTR_CONTROL_SLOWPATH_PACKET_SENDER_H_
#define AFTR_CONTROL_SLOWPATH_PACKET_SENDER_H_

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"

namespace aftr::slowpath {

class PacketSender {
 public:
  static absl::StatusOr<std::unique_ptr<PacketSender>> Open();
  ~PacketSender();
  PacketSender(const PacketSender&) = delete;
  PacketSender& operator=(const PacketSender&) = delete;

  // `frame` from its Ethernet header (destination MAC first), out of `ifindex`.
  absl::Status Send(int ifindex, std::span<const uint8_t> frame);
  // The packet after `frame`'s Ethernet header (IPv4 or IPv6 by its EtherType), whole and
  // within the egress MTU, to the kernel's IP stack.
  absl::Status SendViaKernel(std::span<const uint8_t> frame);

 private:
  PacketSender(int fd, int raw4_fd, int raw6_fd) : fd_(fd), raw4_fd_(raw4_fd), raw6_fd_(raw6_fd) {}
  int fd_;
  int raw4_fd_;  // AF_INET, IPPROTO_RAW: send only, header included
  int raw6_fd_;  // AF_INET6, IPPROTO_RAW: send only, header included
};

}  // namespace aftr::slowpath

#endif  // AFTR_CONTROL_SLOWPATH_PACKET_SENDER_H_
