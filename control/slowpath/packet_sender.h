// Sends whole Ethernet frames out of an interface (AF_PACKET): what the slow path's program
// run translated, after the kernel's XDP hook, so no XDP program sees them again.
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

 private:
  explicit PacketSender(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace aftr::slowpath

#endif  // AFTR_CONTROL_SLOWPATH_PACKET_SENDER_H_
