#include "control/fragments/ipv4_reassembler.h"

#include "absl/status/status.h"

namespace aftr::fragments {

Ipv4Reassembler::Ipv4Reassembler(ReassemblyLimits limits) : limits_(limits) {}

absl::StatusOr<std::optional<std::vector<uint8_t>>> Ipv4Reassembler::Add(
    const ReassemblyContext& context, std::span<const uint8_t> packet, absl::Time now) {
  (void)context;
  (void)packet;
  (void)now;
  return absl::UnimplementedError("IPv4 reassembly is not implemented yet");
}

void Ipv4Reassembler::Expire(absl::Time now) { (void)now; }

void Ipv4Reassembler::Drop(absl::flat_hash_map<Key, Datagram>::iterator it) {
  pending_bytes_ -= it->second.bytes_held;
  age_.erase(it->second.age_position);
  datagrams_.erase(it);
}

const ReassemblyCounters& Ipv4Reassembler::counters() const { return counters_; }
size_t Ipv4Reassembler::pending_datagrams() const { return datagrams_.size(); }
size_t Ipv4Reassembler::pending_bytes() const { return pending_bytes_; }

}  // namespace aftr::fragments
