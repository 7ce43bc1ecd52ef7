// IPv4 reassembly for the AFTR's slow path: fragments from the Internet and from behind B4s
// are put back together here before the NAT sees them (only the first fragment carries ports).
//
// Semantics:
// - A datagram's key is (context, source, destination, protocol, identification). The context
//   is the B4's IPv6 address for fragments that came through a softwire (many subscribers share
//   inner addresses), all zero for the Internet.
// - Fragments may arrive in any order. Exact duplicates (same offset and bytes) are ignored.
//   Overlapping fragments whose bytes differ drop the whole datagram (counted in `overlapping`);
//   later fragments with that key start a new datagram (as RFC 5722 does for IPv6: never guess
//   which copy is right). Overlaps whose bytes agree are accepted.
// - The datagram's length is known from the fragment with MF clear. A second last fragment with
//   a different end, data past the end, a total over 65535 bytes (the first fragment's header
//   with the payload; 20 bytes of header when that is not known yet), a zero-length non-last
//   fragment, a non-last fragment whose payload is not a multiple of 8 bytes: malformed (the
//   packet is refused and the datagram of its key is dropped).
// - Header checksums of incoming packets are verified (bad: malformed). Also malformed: fewer
//   than 20 bytes, version not 4, IHL < 5, tot_len shorter than the header or longer than the
//   bytes given. These leave the table alone: the key of such a packet is not to be trusted.
// - Dropping a datagram for overlapping bytes or too many fragments is not an error: Add
//   returns std::nullopt, as for a fragment that was evicted at once.
// - The whole datagram is the header of the fragment at offset 0 (with its options) with MF and
//   the offset cleared, tot_len set and the checksum recomputed, then the payload. A packet
//   that is not a fragment (MF clear, offset 0) comes back at once, cut to tot_len, unchanged.
// - Bounded: a new datagram that would exceed max_datagrams or max_bytes (payload bytes held)
//   evicts the oldest datagrams (counted in `evicted`) until it fits; so does a datagram that
//   grows past max_bytes (when it is the oldest itself, it is the one evicted, with the
//   fragment). A fragment larger than max_bytes alone is dropped and counted in `evicted`. A
//   fragment that would make one datagram hold more than max_fragments_per_datagram fragments
//   drops it (counted in `too_many_fragments`). A fragment costs O(log p + k) in the p pieces
//   of its datagram and the k it overlaps, O(1) amortised in the table: the oldest datagram is
//   the front of an insertion-ordered list.
// - Expire(now) drops datagrams whose first fragment arrived more than `timeout` before now;
//   Add(…, now) does the same first. `now` should come from a clock that does not step back;
//   if it does, a new datagram counts as arriving no earlier than the one before it (which
//   keeps the age list sorted, so expiry only ever looks at its front).
// - A non-fragment is not counted in `reassembled` (nor in `fragments`).
//
// Not thread-safe: one reassembler per thread, or a lock around it.
#ifndef AFTR_CONTROL_FRAGMENTS_IPV4_REASSEMBLER_H_
#define AFTR_CONTROL_FRAGMENTS_IPV4_REASSEMBLER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace aftr::fragments {

struct ReassemblyLimits {
  size_t max_datagrams = 4096;            // datagrams being reassembled at once
  size_t max_bytes = 16 << 20;            // payload bytes held in all of them
  size_t max_fragments_per_datagram = 64;
  absl::Duration timeout = absl::Seconds(5);
};

struct ReassemblyCounters {
  uint64_t fragments = 0;        // fragments accepted into the table
  uint64_t reassembled = 0;      // whole datagrams returned
  uint64_t timed_out = 0;        // datagrams dropped by Expire
  uint64_t evicted = 0;          // datagrams dropped to make room (table or bytes full)
  uint64_t too_many_fragments = 0;
  uint64_t overlapping = 0;      // datagrams dropped for overlapping fragments with different bytes
  uint64_t malformed = 0;        // packets refused by Add
};

// 16 bytes that separate otherwise equal datagrams: the B4's IPv6 address for fragments that
// came through a softwire (many subscribers share inner addresses), all zero for the Internet.
using ReassemblyContext = std::array<uint8_t, 16>;

class Ipv4Reassembler {
 public:
  explicit Ipv4Reassembler(ReassemblyLimits limits = {});
  // One IPv4 packet (bytes from the IPv4 header to the end of the IPv4 packet; trailing bytes
  // past tot_len are ignored). Returns the whole datagram when this packet completes one;
  // std::nullopt while it is incomplete; an InvalidArgument error for a malformed packet
  // (counted in malformed). A packet that is not a fragment (MF clear and offset 0) is
  // returned whole at once.
  absl::StatusOr<std::optional<std::vector<uint8_t>>> Add(const ReassemblyContext& context,
                                                          std::span<const uint8_t> packet,
                                                          absl::Time now);
  // Drops datagrams whose first fragment arrived more than `timeout` before `now`.
  void Expire(absl::Time now);
  const ReassemblyCounters& counters() const;
  size_t pending_datagrams() const;
  size_t pending_bytes() const;
  const ReassemblyLimits& limits() const { return limits_; }

 private:
  struct Key {
    ReassemblyContext context{};
    uint32_t source = 0;
    uint32_t destination = 0;
    uint16_t identification = 0;
    uint8_t protocol = 0;

    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.context, k.source, k.destination, k.identification,
                        k.protocol);
    }
  };
  struct AgeEntry {
    Key key;
    absl::Time first_arrival;
  };
  // Oldest first (first arrivals never decrease along it): eviction and expiry take the front.
  using AgeList = std::list<AgeEntry>;

  struct Datagram {
    AgeList::iterator age_position;
    // Payload pieces by their offset in bytes. They never overlap: a fragment's bytes that are
    // already held are compared, only the gaps it fills are stored.
    std::map<size_t, std::vector<uint8_t>> pieces;
    size_t bytes_held = 0;
    size_t fragments_held = 0;
    size_t max_end = 0;                   // furthest payload byte seen, exclusive
    std::optional<size_t> total_length;   // payload length, once the last fragment arrived
    std::vector<uint8_t> first_header;    // header of the fragment at offset 0, once seen
  };
  using Table = absl::flat_hash_map<Key, Datagram>;

  // Removes a datagram from the table, the age list and the byte count (no counter).
  void Drop(Table::iterator it);
  // Drops the oldest datagram, counted in `evicted`. The table must not be empty.
  void EvictOldest();
  std::vector<uint8_t> Assemble(const Datagram& datagram) const;

  ReassemblyLimits limits_;
  ReassemblyCounters counters_;
  Table datagrams_;
  AgeList age_;
  size_t pending_bytes_ = 0;
};

}  // namespace aftr::fragments

#endif  // AFTR_CONTROL_FRAGMENTS_IPV4_REASSEMBLER_H_
