// The fragment slow path's frames: taking apart what XDP queued and putting together what the
// program is run on and what goes out. Pure functions over bytes (fuzzed: tests/fuzz).
#ifndef AFTR_CONTROL_SLOWPATH_FRAMES_H_
#define AFTR_CONTROL_SLOWPATH_FRAMES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace aftr::slowpath {

using Bytes = std::vector<uint8_t>;
using Ipv6Bytes = std::array<uint8_t, 16>;

inline constexpr size_t kEthernetLen = 14;
inline constexpr size_t kIpv6HeaderLen = 40;

// A softwire frame taken apart: [Ethernet][IPv6 B4 -> softwire, Destination Options allowed]
// [IPv4]. `ipv4` points into the frame: exactly the IPv4 packet (tot_len bytes).
struct SoftwirePacket {
  std::array<uint8_t, kEthernetLen> ethernet{};
  Ipv6Bytes b4{};
  Ipv6Bytes softwire{};
  std::span<const uint8_t> ipv4;
};
absl::StatusOr<SoftwirePacket> ParseSoftwireFrame(std::span<const uint8_t> frame);

// [Ethernet][IPv4]: the IPv4 packet (tot_len bytes) of a frame from the Internet.
absl::StatusOr<std::span<const uint8_t>> ParseIpv4Frame(std::span<const uint8_t> frame);

// Frames to run the program on. `ethernet` is the received header (the program rewrites both
// MACs; its EtherType is set here).
Bytes BuildSoftwireFrame(std::span<const uint8_t, kEthernetLen> ethernet, const Ipv6Bytes& b4,
                         const Ipv6Bytes& softwire, std::span<const uint8_t> ipv4);
Bytes BuildIpv4Frame(std::span<const uint8_t, kEthernetLen> ethernet, std::span<const uint8_t> ipv4);

// BPF_PROG_TEST_RUN hands XDP one page, so a longer datagram is run as its head: the first
// `max` bytes of the frame, with the IPv4 total length, a UDP header's length and the IPv6
// payload length (softwire frames) shortened to match. The program reads and rewrites only
// headers (IPv4, TCP/UDP/ICMP) and fixes checksums incrementally, so what it makes of the
// head, with the tail put back and those lengths restored (RejoinTail), is what it would
// have made of the whole datagram. Errors: malformed, a fragment, or headers past `max`.
struct FrameHead {
  Bytes head;
  std::span<const uint8_t> tail;  // into the frame given
  size_t head_ipv4_len = 0;       // the head's IPv4 total length
};
absl::StatusOr<FrameHead> CutForRun(std::span<const uint8_t> frame, size_t max);

// `out` (what the program made of a head: [Ethernet][IPv4] or our [Ethernet][IPv6][IPv4])
// with the tail appended, the lengths grown back and the IPv4 header checksum recomputed.
// An output whose IPv4 packet is not the head's length is not the head translated (an ICMP
// error the program made about it): returned as it is.
absl::StatusOr<Bytes> RejoinTail(std::span<const uint8_t> out, size_t head_ipv4_len,
                                 std::span<const uint8_t> tail);

// What the kernel would do to a frame the program passed it to forward: the IPv4 TTL (with
// its header checksum) or the IPv6 hop limit less one. False when it was 1 or 0 (not
// forwarded) or the frame is neither.
bool DecrementHopLimit(Bytes& frame);

// What the program sent, cut to fit `mtu` (the egress link's, for the L3 packet): an IPv4
// frame is fragmented itself; an IPv6 frame toward a B4 has its inner IPv4 packet fragmented
// to mtu - 40, each fragment behind a copy of the Ethernet and IPv6 headers with payload_len
// fixed (so the B4 reassembles IPv4 only, never IPv6). A frame that fits is returned alone.
// Errors: malformed, or too big with DF set (FailedPrecondition).
absl::StatusOr<std::vector<Bytes>> FitToMtu(std::span<const uint8_t> frame, size_t mtu);

}  // namespace aftr::slowpath

#endif  // AFTR_CONTROL_SLOWPATH_FRAMES_H_
