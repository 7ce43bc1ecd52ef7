// Deterministic NAT (RFC 7422 style): the mapping between a B4's subscriber prefix and its
// public address and port range, computed from the configuration alone, both ways. Pure (no
// BPF, no I/O): the configuration check, aftrd (which hands the ranges to the data plane,
// bpf/lib/deterministic.h computes the same), the API and aftrctl all use it.
//
// Subscriber i of a range is the i-th subscriber_prefix_length-sized prefix inside b4_prefix.
// With per_addr = (port_max - port_min + 1) / ports_per_subscriber (port_blocks' range), it
// holds public address pool_prefix + i / per_addr, ports
// port_min + (i % per_addr) * ports_per_subscriber .. + ports_per_subscriber - 1.
#ifndef AFTR_CONTROL_NAT_DETERMINISTIC_H_
#define AFTR_CONTROL_NAT_DETERMINISTIC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aftr/config/v1/config.pb.h"
#include "control/common/ip.h"

namespace aftr::nat {

// At most this many ranges (the data plane's rodata holds them: AFTR_MAX_DET_RANGES).
inline constexpr int kMaxDeterministicRanges = 4;
// At most 2^24 subscribers per range.
inline constexpr int kMaxDeterministicSubscriberBits = 24;
// ports_per_subscriber is at most this many port blocks (AFTR_MAX_BLOCKS_PER_SUB).
inline constexpr uint32_t kMaxDeterministicBlocks = 8;

struct DeterministicRange {
  Ipv6Prefix b4_prefix;
  int subscriber_prefix_length = 0;
  Ipv4Prefix pool_prefix;
  uint32_t ports_per_subscriber = 0;
  uint16_t port_min = 0;
  uint16_t port_max = 0;
  uint32_t per_addr = 0;     // subscribers per public address
  uint64_t subscribers = 0;  // 2^(subscriber_prefix_length - b4_prefix.length)

  // "2001:db8:100::/40 /56 198.51.100.64/26 2048 1024-65535": everything the mapping
  // depends on, as the compact log records it at each start.
  std::string ToString() const;
};

struct DeterministicMapping {
  int range = 0;            // index in deterministic.ranges
  uint64_t subscriber = 0;  // index within the range
  Ipv6Prefix subscriber_prefix;
  Ipv4Address public_addr;
  uint16_t first_port = 0;
  uint16_t last_port = 0;
};

class DeterministicMap {
 public:
  // The ranges of config.deterministic (defaults applied). InvalidArgument listing every
  // problem as "deterministic.ranges[i].FIELD: why", joined with "; ".
  static absl::StatusOr<DeterministicMap> Create(const aftr::config::v1::Config& config);

  DeterministicMap() = default;

  const std::vector<DeterministicRange>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty(); }

  // The mapping of the subscriber whose prefix holds `b4`; nullopt outside every range.
  std::optional<DeterministicMapping> ForB4(const Ipv6Address& b4) const;
  // The subscriber holding `port` of `addr`; nullopt if no deterministic subscriber does
  // (outside every pool prefix, a port outside the ranges' ports, or a subscriber index
  // past the range's last).
  std::optional<DeterministicMapping> ForPublic(Ipv4Address addr, uint16_t port) const;
  // The index of the range whose pool_prefix holds `addr`, or -1.
  int RangeOfPublic(Ipv4Address addr) const;

 private:
  DeterministicMapping Make(int range, uint64_t subscriber) const;

  std::vector<DeterministicRange> ranges_;
};

}  // namespace aftr::nat

#endif  // AFTR_CONTROL_NAT_DETERMINISTIC_H_
