// libFuzzer target for the address parsers every configuration, API request and log line goes
// through (control/common/ip, control/common/socket_address): IPv4/IPv6 addresses and
// prefixes, "address:port" socket addresses. The first byte picks the parser, the rest is its
// text. Invariants: what parses prints canonically and parses back to the same value, prefixes
// have no host bits, errors quote something. Built with clang -fsanitize=fuzzer,address,
// undefined (tests/fuzz/CMakeLists.txt); ctest runs it for a bounded time.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"
#include "control/common/ip.h"
#include "control/common/socket_address.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

template <typename T, typename Parse>
void RoundTrip(absl::string_view text, Parse parse) {
  const absl::StatusOr<T> v = parse(text);
  if (!v.ok()) {
    Check(!v.status().message().empty());
    return;
  }
  const std::string printed = v->ToString();
  const absl::StatusOr<T> again = parse(printed);
  Check(again.ok() && *again == *v && again->ToString() == printed);
}

void CheckSocketAddress(absl::string_view text) {
  const absl::StatusOr<aftr::SocketAddress> a = aftr::ParseSocketAddress(text);
  if (!a.ok()) {
    Check(!a.status().message().empty());
    return;
  }
  Check(a->family() == AF_INET || a->family() == AF_INET6);
  Check(a->length == (a->family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
  Check(a->port() >= 1);
  const std::string printed = a->ToString();
  const absl::StatusOr<aftr::SocketAddress> again = aftr::ParseSocketAddress(printed);
  Check(again.ok() && again->length == a->length && again->ToString() == printed &&
        std::memcmp(&again->storage, &a->storage, a->length) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 6) {
    case 0: RoundTrip<aftr::Ipv4Address>(text, aftr::ParseIpv4); break;
    case 1: {
      RoundTrip<aftr::Ipv4Prefix>(text, aftr::ParseIpv4Prefix);
      const absl::StatusOr<aftr::Ipv4Prefix> p = aftr::ParseIpv4Prefix(text);
      if (p.ok()) {
        Check(p->length >= 0 && p->length <= 32);
        Check(p->length == 32 || (p->addr.host_order & (0xffffffffu >> p->length)) == 0);
      }
      break;
    }
    case 2: RoundTrip<aftr::Ipv6Address>(text, aftr::ParseIpv6); break;
    case 3: {
      RoundTrip<aftr::Ipv6Prefix>(text, aftr::ParseIpv6Prefix);
      const absl::StatusOr<aftr::Ipv6Prefix> p = aftr::ParseIpv6Prefix(text);
      if (p.ok()) {
        Check(p->length >= 0 && p->length <= 128);
        for (int bit = p->length; bit < 128; ++bit)
          Check((p->addr.bytes[bit / 8] & (0x80 >> (bit % 8))) == 0);
      }
      break;
    }
    case 4: CheckSocketAddress(text); break;
    default: {
      // An address and a port as the config gives them separately.
      const uint16_t port = size >= 3 ? static_cast<uint16_t>(data[1] << 8 | data[2]) : 1;
      const absl::string_view address = size >= 3 ? text.substr(2) : text;
      const absl::StatusOr<aftr::SocketAddress> a = aftr::MakeSocketAddress(address, port);
      if (a.ok()) {
        Check(a->port() == port);
        // What MakeSocketAddress accepts is a numeric address: one of the two parsers agrees.
        Check(aftr::ParseIpv4(address).ok() || aftr::ParseIpv6(address).ok());
      }
      break;
    }
  }
  return 0;
}
