// IPv4/IPv6 address and prefix value types with text parsers and formatters.
#ifndef AFTR_CONTROL_COMMON_IP_H_
#define AFTR_CONTROL_COMMON_IP_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace aftr {

// An IPv4 address, stored in host byte order.
struct Ipv4Address {
  uint32_t host_order = 0;

  std::string ToString() const;
  friend bool operator==(const Ipv4Address&, const Ipv4Address&) = default;
};

// An IPv4 prefix; host bits of `addr` are always zero when produced by ParseIpv4Prefix.
struct Ipv4Prefix {
  Ipv4Address addr;
  int length = 0;

  // Number of addresses covered: 2^(32 - length).
  uint64_t Size() const;
  // Whether `a` lies inside this prefix.
  bool Contains(Ipv4Address a) const;
  // Whether the two prefixes share at least one address.
  bool Overlaps(const Ipv4Prefix& other) const;
  std::string ToString() const;  // "198.51.100.0/28"
  friend bool operator==(const Ipv4Prefix&, const Ipv4Prefix&) = default;
};

// An IPv6 address in network byte order.
struct Ipv6Address {
  std::array<uint8_t, 16> bytes = {};

  bool IsUnspecified() const;  // ::
  bool IsMulticast() const;    // ff00::/8
  std::string ToString() const;
  friend bool operator==(const Ipv6Address&, const Ipv6Address&) = default;
};

// An IPv6 prefix; host bits of `addr` are always zero when produced by ParseIpv6Prefix.
struct Ipv6Prefix {
  Ipv6Address addr;
  int length = 0;

  std::string ToString() const;  // "2001:db8::/32"
  friend bool operator==(const Ipv6Prefix&, const Ipv6Prefix&) = default;
};

// Parsers. All errors are InvalidArgument with a message quoting the input.
// Prefix parsers reject prefixes with host bits set ("198.51.100.1/28").
absl::StatusOr<Ipv4Address> ParseIpv4(absl::string_view text);
absl::StatusOr<Ipv4Prefix> ParseIpv4Prefix(absl::string_view text);
absl::StatusOr<Ipv6Address> ParseIpv6(absl::string_view text);
absl::StatusOr<Ipv6Prefix> ParseIpv6Prefix(absl::string_view text);

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_IP_H_
