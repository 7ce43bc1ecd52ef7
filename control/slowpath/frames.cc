#include "control/slowpath/frames.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "control/fragments/ipv4_fragmenter.h"
#include "control/fragments/ipv4_header.h"

namespace aftr::slowpath {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint8_t kNextHeaderDestOpts = 60;
constexpr uint8_t kNextHeaderIpip = 4;
constexpr size_t kMaxDestOptsHeaders = 2;

uint16_t Get16(std::span<const uint8_t> b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }
void Put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = v >> 8;
  b[off + 1] = v & 0xff;
}

// The IPv4 packet at the start of `bytes`: tot_len bytes, its header checked (ParseIpv4Header:
// shape and checksum).
absl::StatusOr<std::span<const uint8_t>> Ipv4Packet(std::span<const uint8_t> bytes) {
  absl::StatusOr<fragments::Ipv4HeaderView> header = fragments::ParseIpv4Header(bytes);
  if (!header.ok()) return header.status();
  return bytes.first(header->total_length);
}

}  // namespace

absl::StatusOr<SoftwirePacket> ParseSoftwireFrame(std::span<const uint8_t> frame) {
  if (frame.size() < kEthernetLen + kIpv6HeaderLen) {
    return absl::InvalidArgumentError("softwire frame cut short");
  }
  if (Get16(frame, 12) != kEtherTypeIpv6) return absl::InvalidArgumentError("not IPv6");
  std::span<const uint8_t> ip6 = frame.subspan(kEthernetLen);
  if (ip6[0] >> 4 != 6) return absl::InvalidArgumentError("not IPv6");
  size_t payload_len = Get16(ip6, 4);
  if (kIpv6HeaderLen + payload_len > ip6.size()) {
    return absl::InvalidArgumentError("IPv6 payload length past the frame");
  }
  SoftwirePacket p;
  std::copy_n(frame.begin(), kEthernetLen, p.ethernet.begin());
  std::copy_n(ip6.begin() + 8, 16, p.b4.begin());
  std::copy_n(ip6.begin() + 24, 16, p.softwire.begin());
  std::span<const uint8_t> payload = ip6.subspan(kIpv6HeaderLen, payload_len);
  uint8_t next = ip6[6];
  for (size_t i = 0; i < kMaxDestOptsHeaders && next == kNextHeaderDestOpts; ++i) {
    if (payload.size() < 8) return absl::InvalidArgumentError("Destination Options cut short");
    size_t len = (size_t(payload[1]) + 1) * 8;
    if (len > payload.size()) return absl::InvalidArgumentError("Destination Options past the packet");
    next = payload[0];
    payload = payload.subspan(len);
  }
  if (next != kNextHeaderIpip) return absl::InvalidArgumentError("not IPv4 in IPv6");
  absl::StatusOr<std::span<const uint8_t>> ipv4 = Ipv4Packet(payload);
  if (!ipv4.ok()) return ipv4.status();
  p.ipv4 = *ipv4;
  return p;
}

absl::StatusOr<std::span<const uint8_t>> ParseIpv4Frame(std::span<const uint8_t> frame) {
  if (frame.size() < kEthernetLen) return absl::InvalidArgumentError("frame cut short");
  if (Get16(frame, 12) != kEtherTypeIpv4) return absl::InvalidArgumentError("not IPv4");
  return Ipv4Packet(frame.subspan(kEthernetLen));
}

Bytes BuildSoftwireFrame(std::span<const uint8_t, kEthernetLen> ethernet, const Ipv6Bytes& b4,
                         const Ipv6Bytes& softwire, std::span<const uint8_t> ipv4) {
  Bytes f(kEthernetLen + kIpv6HeaderLen + ipv4.size());
  std::copy(ethernet.begin(), ethernet.end(), f.begin());
  Put16(f, 12, kEtherTypeIpv6);
  uint8_t* ip6 = f.data() + kEthernetLen;
  ip6[0] = 0x60;  // version 6, traffic class and flow label 0
  Put16(f, kEthernetLen + 4, static_cast<uint16_t>(ipv4.size()));
  ip6[6] = kNextHeaderIpip;
  ip6[7] = 64;
  std::memcpy(ip6 + 8, b4.data(), 16);
  std::memcpy(ip6 + 24, softwire.data(), 16);
  std::copy(ipv4.begin(), ipv4.end(), f.begin() + kEthernetLen + kIpv6HeaderLen);
  return f;
}

Bytes BuildIpv4Frame(std::span<const uint8_t, kEthernetLen> ethernet, std::span<const uint8_t> ipv4) {
  Bytes f(kEthernetLen + ipv4.size());
  std::copy(ethernet.begin(), ethernet.end(), f.begin());
  Put16(f, 12, kEtherTypeIpv4);
  std::copy(ipv4.begin(), ipv4.end(), f.begin() + kEthernetLen);
  return f;
}

absl::StatusOr<std::vector<Bytes>> FitToMtu(std::span<const uint8_t> frame, size_t mtu) {
  if (frame.size() < kEthernetLen) return absl::InvalidArgumentError("frame cut short");
  uint16_t ether_type = Get16(frame, 12);
  size_t outer = 0;
  if (ether_type == kEtherTypeIpv6) {
    // Our own encapsulation (sw_encap): a bare IPv6 header, next header IPv4.
    if (frame.size() < kEthernetLen + kIpv6HeaderLen || frame[kEthernetLen + 6] != kNextHeaderIpip) {
      return absl::InvalidArgumentError("not IPv4 in IPv6");
    }
    outer = kIpv6HeaderLen;
  } else if (ether_type != kEtherTypeIpv4) {
    return absl::InvalidArgumentError("neither IPv4 nor IPv6");
  }
  if (mtu <= outer) return absl::InvalidArgumentError(absl::StrCat("MTU ", mtu, " too small"));
  absl::StatusOr<std::span<const uint8_t>> ipv4 = Ipv4Packet(frame.subspan(kEthernetLen + outer));
  if (!ipv4.ok()) return ipv4.status();
  if (ipv4->size() + outer <= mtu) return std::vector<Bytes>{Bytes(frame.begin(), frame.end())};
  // DF set and too big: FailedPrecondition from FragmentIpv4.
  absl::StatusOr<std::vector<std::vector<uint8_t>>> pieces = fragments::FragmentIpv4(*ipv4, mtu - outer);
  if (!pieces.ok()) return pieces.status();
  std::vector<Bytes> out;
  out.reserve(pieces->size());
  for (const std::vector<uint8_t>& piece : *pieces) {
    Bytes f(frame.begin(), frame.begin() + kEthernetLen + outer);
    if (outer) Put16(f, kEthernetLen + 4, static_cast<uint16_t>(piece.size()));
    f.insert(f.end(), piece.begin(), piece.end());
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace aftr::slowpath
