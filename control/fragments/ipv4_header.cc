#include "control/fragments/ipv4_header.h"

#include "absl/status/status.h"

namespace aftr::fragments {
namespace {

uint16_t Read16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}
uint32_t Read32(std::span<const uint8_t> b, size_t at) {
  return uint32_t{Read16(b, at)} << 16 | Read16(b, at + 2);
}

// One's complement sum of the header's 16-bit words, folded; the checksum field counts as
// zero when `skip_checksum`.
uint16_t FoldedSum(std::span<const uint8_t> header, bool skip_checksum) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < header.size(); i += 2) {
    if (skip_checksum && i == 10) continue;
    sum += Read16(header, i);
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

}  // namespace

absl::StatusOr<Ipv4HeaderView> ParseIpv4Header(std::span<const uint8_t> packet) {
  if (packet.size() < kIpv4MinHeader) {
    return absl::InvalidArgumentError("IPv4 packet shorter than 20 bytes");
  }
  if (packet[0] >> 4 != 4) return absl::InvalidArgumentError("not IPv4 (version field)");
  Ipv4HeaderView h;
  h.header_length = size_t{packet[0] & 0x0fu} * 4;
  if (h.header_length < kIpv4MinHeader) {
    return absl::InvalidArgumentError("IPv4 header length under 20 bytes");
  }
  if (h.header_length > packet.size()) {
    return absl::InvalidArgumentError("IPv4 header runs past the packet");
  }
  h.total_length = Read16(packet, 2);
  if (h.total_length < h.header_length) {
    return absl::InvalidArgumentError("IPv4 total length shorter than its header");
  }
  if (h.total_length > packet.size()) {
    return absl::InvalidArgumentError("IPv4 total length runs past the packet");
  }
  if (!Ipv4HeaderChecksumValid(packet.first(h.header_length))) {
    return absl::InvalidArgumentError("bad IPv4 header checksum");
  }
  h.identification = Read16(packet, 4);
  h.flags_and_offset = Read16(packet, 6);
  h.protocol = packet[9];
  h.source = Read32(packet, 12);
  h.destination = Read32(packet, 16);
  return h;
}

uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header) {
  return static_cast<uint16_t>(~FoldedSum(header, /*skip_checksum=*/true));
}

bool Ipv4HeaderChecksumValid(std::span<const uint8_t> header) {
  return FoldedSum(header, /*skip_checksum=*/false) == 0xffff;
}

void SetIpv4HeaderChecksum(std::span<uint8_t> header) {
  header[10] = header[11] = 0;
  const uint16_t checksum = Ipv4HeaderChecksum(header);
  header[10] = static_cast<uint8_t>(checksum >> 8);
  header[11] = static_cast<uint8_t>(checksum);
}

}  // namespace aftr::fragments
