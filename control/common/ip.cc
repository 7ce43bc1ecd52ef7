#include "control/common/ip.h"

// <arpa/inet.h> must come before any linux/ header.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace aftr {
namespace {

// Splits "addr/len" and parses len in [0, max_length].
absl::Status SplitPrefix(absl::string_view text, int max_length, std::string* addr,
                         int* length) {
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a prefix (expected ADDRESS/LENGTH)"));
  }
  absl::string_view len_text = text.substr(slash + 1);
  int len = 0;
  // SimpleAtoi accepts a leading '+' and whitespace; insist on plain digits.
  bool digits_only = !len_text.empty() && len_text.size() <= 3;
  for (char c : len_text) digits_only = digits_only && c >= '0' && c <= '9';
  if (!digits_only || !absl::SimpleAtoi(len_text, &len) || len > max_length) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" has an invalid prefix length (0..",
                                                   max_length, " expected)"));
  }
  *addr = std::string(text.substr(0, slash));
  *length = len;
  return absl::OkStatus();
}

uint32_t Ipv4Mask(int length) {
  return length == 0 ? 0 : ~uint32_t{0} << (32 - length);
}

}  // namespace

std::string Ipv4Address::ToString() const {
  in_addr a;
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

uint64_t Ipv4Prefix::Size() const { return uint64_t{1} << (32 - length); }

bool Ipv4Prefix::Contains(Ipv4Address a) const {
  return (a.host_order & Ipv4Mask(length)) == addr.host_order;
}

bool Ipv4Prefix::Overlaps(const Ipv4Prefix& other) const {
  return length <= other.length ? Contains(other.addr) : other.Contains(addr);
}

std::string Ipv4Prefix::ToString() const { return absl::StrCat(addr.ToString(), "/", length); }

bool Ipv6Address::IsUnspecified() const { return bytes == std::array<uint8_t, 16>{}; }

bool Ipv6Address::IsMulticast() const { return bytes[0] == 0xff; }

std::string Ipv6Address::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::string Ipv6Prefix::ToString() const { return absl::StrCat(addr.ToString(), "/", length); }

absl::StatusOr<Ipv4Address> ParseIpv4(absl::string_view text) {
  in_addr a;
  // std::string guarantees NUL termination for inet_pton.
  if (inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IPv4 address"));
  }
  return Ipv4Address{ntohl(a.s_addr)};
}

absl::StatusOr<Ipv4Prefix> ParseIpv4Prefix(absl::string_view text) {
  std::string addr_text;
  int length = 0;
  if (absl::Status s = SplitPrefix(text, 32, &addr_text, &length); !s.ok()) return s;
  absl::StatusOr<Ipv4Address> addr = ParseIpv4(addr_text);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not an IPv4 prefix: \"", addr_text,
                     "\" is not an IPv4 address"));
  }
  if ((addr->host_order & ~Ipv4Mask(length)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" has host bits set (did you mean ",
        Ipv4Address{addr->host_order & Ipv4Mask(length)}.ToString(), "/", length, "?)"));
  }
  return Ipv4Prefix{*addr, length};
}

absl::StatusOr<Ipv6Address> ParseIpv6(absl::string_view text) {
  Ipv6Address a;
  if (inet_pton(AF_INET6, std::string(text).c_str(), a.bytes.data()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IPv6 address"));
  }
  return a;
}

absl::StatusOr<Ipv6Prefix> ParseIpv6Prefix(absl::string_view text) {
  std::string addr_text;
  int length = 0;
  if (absl::Status s = SplitPrefix(text, 128, &addr_text, &length); !s.ok()) return s;
  absl::StatusOr<Ipv6Address> addr = ParseIpv6(addr_text);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not an IPv6 prefix: \"", addr_text,
                     "\" is not an IPv6 address"));
  }
  Ipv6Address network = *addr;
  for (int i = 0; i < 16; ++i) {
    const int bits_in_byte = std::min(8, std::max(0, length - 8 * i));
    const uint8_t mask = bits_in_byte == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits_in_byte));
    network.bytes[i] &= mask;
  }
  if (network != *addr) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" has host bits set (did you mean ",
                                                   network.ToString(), "/", length, "?)"));
  }
  return Ipv6Prefix{*addr, length};
}

}  // namespace aftr
