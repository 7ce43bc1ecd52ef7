// The IPv4 header fields that reassembly and fragmentation need, read from wire bytes with
// every length checked, and the header checksum (RFC 1071).
#ifndef AFTR_CONTROL_FRAGMENTS_IPV4_HEADER_H_
#define AFTR_CONTROL_FRAGMENTS_IPV4_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"

namespace aftr::fragments {

inline constexpr size_t kIpv4MinHeader = 20;
inline constexpr size_t kIpv4MaxHeader = 60;
inline constexpr size_t kIpv4MaxTotalLength = 65535;
// The furthest a fragment's payload may reach: a datagram has at least a 20-byte header.
inline constexpr size_t kIpv4MaxPayloadEnd = kIpv4MaxTotalLength - kIpv4MinHeader;
inline constexpr size_t kIpv4MinMtu = 68;  // RFC 791: every link passes 68 octets unfragmented
inline constexpr uint16_t kIpv4FlagReserved = 0x8000;
inline constexpr uint16_t kIpv4FlagDontFragment = 0x4000;
inline constexpr uint16_t kIpv4FlagMoreFragments = 0x2000;
inline constexpr uint16_t kIpv4OffsetMask = 0x1fff;

struct Ipv4HeaderView {
  size_t header_length = 0;    // IHL * 4, options included
  size_t total_length = 0;     // tot_len
  uint16_t identification = 0;
  uint16_t flags_and_offset = 0;
  uint8_t protocol = 0;
  uint32_t source = 0;         // host order
  uint32_t destination = 0;    // host order

  bool dont_fragment() const { return flags_and_offset & kIpv4FlagDontFragment; }
  bool more_fragments() const { return flags_and_offset & kIpv4FlagMoreFragments; }
  size_t fragment_offset_bytes() const { return static_cast<size_t>(flags_and_offset & kIpv4OffsetMask) * 8; }
  size_t payload_length() const { return total_length - header_length; }
  bool is_fragment() const { return more_fragments() || fragment_offset_bytes() != 0; }
};

// Reads the header of `packet` (bytes past tot_len are ignored). InvalidArgument when the bytes
// are shorter than 20, the version is not 4, IHL < 5, the header or tot_len runs past the bytes
// given, tot_len is shorter than the header, or the header checksum is wrong.
absl::StatusOr<Ipv4HeaderView> ParseIpv4Header(std::span<const uint8_t> packet);

// The checksum to store in an IPv4 header: computed with the checksum field taken as zero.
uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header);
// Whether the header's stored checksum is right (sums to all ones with it included).
bool Ipv4HeaderChecksumValid(std::span<const uint8_t> header);
// Recomputes and stores the checksum of the header in place.
void SetIpv4HeaderChecksum(std::span<uint8_t> header);

}  // namespace aftr::fragments

#endif  // AFTR_CONTROL_FRAGMENTS_IPV4_HEADER_H_
