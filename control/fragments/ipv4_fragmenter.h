// IPv4 fragmentation (RFC 791) for the AFTR's slow path: packets too big for the next link.
#ifndef AFTR_CONTROL_FRAGMENTS_IPV4_FRAGMENTER_H_
#define AFTR_CONTROL_FRAGMENTS_IPV4_FRAGMENTER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "control/fragments/ipv4_header.h"  // Ipv4HeaderChecksum

namespace aftr::fragments {

// Splits an IPv4 packet into fragments whose IPv4 total length is at most `mtu`: payloads of
// all but the last a multiple of 8 bytes, offsets and MF set, only options with the copy flag
// repeated after the first fragment (RFC 791), header checksums computed. A packet that fits is
// returned unchanged as the only element. An already-fragmented packet can be fragmented again
// (offsets relative to its own offset, MF kept on the last piece if it was set). Errors:
// InvalidArgument for a malformed packet or mtu < 68; FailedPrecondition for DF set and the
// packet too big (well formed, but not to be fragmented: the caller counts it apart).
// Malformed: what ParseIpv4Header refuses (a bad header checksum included), or options that run
// past the header (a length under 2 or past its end); bytes past tot_len are ignored, also in
// the unchanged result. Everything but tot_len, flags, offset and checksum (and the options
// dropped from later fragments) is copied into each fragment.
absl::StatusOr<std::vector<std::vector<uint8_t>>> FragmentIpv4(std::span<const uint8_t> packet,
                                                               size_t mtu);

}  // namespace aftr::fragments

#endif  // AFTR_CONTROL_FRAGMENTS_IPV4_FRAGMENTER_H_
