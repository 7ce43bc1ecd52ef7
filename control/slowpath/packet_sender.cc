#include "control/slowpath/packet_sender.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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
  // IPPROTO_RAW: the header is ours (IP_HDRINCL, IPV6_HDRINCL implied), and no packet is
  // ever delivered to these sockets.
  int raw4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw4 < 0) {
    absl::Status s = ErrnoToStatus(errno, "opening the slow path's raw IPv4 socket");
    close(fd);
    return s;
  }
  int raw6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw6 < 0) {
    absl::Status s = ErrnoToStatus(errno, "opening the slow path's raw IPv6 socket");
    close(fd);
    close(raw4);
    return s;
  }
  return std::unique_ptr<PacketSender>(new PacketSender(fd, raw4, raw6));
}

PacketSender::~PacketSender() {
  close(fd_);
  close(raw4_fd_);
  close(raw6_fd_);
}

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

absl::Status PacketSender::SendViaKernel(std::span<const uint8_t> frame) {
  if (frame.size() < ETH_HLEN) return absl::InvalidArgumentError("frame shorter than Ethernet");
  std::span<const uint8_t> packet = frame.subspan(ETH_HLEN);
  const uint16_t ether_type = uint16_t(frame[12] << 8 | frame[13]);
  ssize_t n;
  if (ether_type == ETHERTYPE_IP && packet.size() >= 20) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, packet.data() + 16, 4);
    n = sendto(raw4_fd_, packet.data(), packet.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to),
               sizeof(to));
  } else if (ether_type == ETHERTYPE_IPV6 && packet.size() >= 40) {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    std::memcpy(&to.sin6_addr, packet.data() + 24, 16);
    n = sendto(raw6_fd_, packet.data(), packet.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to),
               sizeof(to));
  } else {
    return absl::InvalidArgumentError("neither an IPv4 nor an IPv6 packet");
  }
  if (n < 0) return ErrnoToStatus(errno, absl::StrCat("handing ", packet.size(), " bytes to the kernel"));
  return absl::OkStatus();
}

}  // namespace aftr::slowpath
