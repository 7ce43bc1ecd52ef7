#include "control/slowpath/packet_sender.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "control/common/errno_status.h"

namespace aftr::slowpath {

absl::StatusOr<std::unique_ptr<PacketSender>> PacketSender::Open() {
  // Protocol 0: this socket sends only and never receives a copy of any traffic.
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "opening the slow path's AF_PACKET socket");
  return std::unique_ptr<PacketSender>(new PacketSender(fd));
}

PacketSender::~PacketSender() { close(fd_); }

absl::Status PacketSender::Send(int ifindex, std::span<const uint8_t> frame) {
  if (frame.size() < ETH_HLEN) return absl::InvalidArgumentError("frame shorter than Ethernet");
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex;
  to.sll_protocol = htons(uint16_t(frame[12] << 8 | frame[13]));
  to.sll_halen = ETH_ALEN;
  std::memcpy(to.sll_addr, frame.data(), ETH_ALEN);
  ssize_t n = sendto(fd_, frame.data(), frame.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to));
  if (n < 0) return ErrnoToStatus(errno, absl::StrCat("sending ", frame.size(), " bytes on ifindex ", ifindex));
  return absl::OkStatus();
}

}  // namespace aftr::slowpath
