#include "control/fragments/ipv4_fragmenter.h"

#include "absl/status/status.h"

namespace aftr::fragments {

absl::StatusOr<std::vector<std::vector<uint8_t>>> FragmentIpv4(std::span<const uint8_t> packet,
                                                               size_t mtu) {
  (void)packet;
  (void)mtu;
  return absl::UnimplementedError("IPv4 fragmentation is not implemented yet");
}

uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header) {
  (void)header;
  return 0;
}

}  // namespace aftr::fragments
