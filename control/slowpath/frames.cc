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

namespace {

constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17;

// Where the IPv4 packet of a frame to run or a run's output starts.
absl::StatusOr<size_t> Ipv4Offset(std::span<const uint8_t> frame) {
  if (frame.size() < kEthernetLen) return absl::InvalidArgumentError("frame cut short");
  switch (Get16(frame, 12)) {
    case kEtherTypeIpv4:
      return kEthernetLen;
    case kEtherTypeIpv6: {
      absl::StatusOr<SoftwirePacket> sw = ParseSoftwireFrame(frame);
      if (!sw.ok()) return sw.status();
      return static_cast<size_t>(sw->ipv4.data() - frame.data());
    }
    default:
      return absl::InvalidArgumentError("neither IPv4 nor IPv6");
  }
}

}  // namespace

absl::StatusOr<FrameHead> CutForRun(std::span<const uint8_t> frame, size_t max) {
  absl::StatusOr<size_t> ip = Ipv4Offset(frame);
  if (!ip.ok()) return ip.status();
  absl::StatusOr<fragments::Ipv4HeaderView> h = fragments::ParseIpv4Header(frame.subspan(*ip));
  if (!h.ok()) return h.status();
  if (Get16(frame, *ip + 6) & 0x3fff) return absl::InvalidArgumentError("a fragment cannot be cut");
  const size_t ihl = (frame[*ip] & 0x0f) * 4;
  const size_t end = *ip + h->total_length;  // Ethernet padding, if any, is not the datagram's
  const uint8_t proto = frame[*ip + 9];
  size_t l4_header = 0;
  if (proto == kProtoUdp || proto == kProtoIcmp) {
    l4_header = 8;
  } else if (proto == kProtoTcp && h->total_length >= ihl + 20) {
    l4_header = (frame[*ip + ihl + 12] >> 4) * 4;
  }
  if (*ip + ihl + l4_header > max) return absl::OutOfRangeError("headers longer than a run takes");
  FrameHead cut;
  if (frame.size() <= max) {  // runs as it is
    cut.head.assign(frame.begin(), frame.end());
    cut.head_ipv4_len = h->total_length;
    return cut;
  }
  // The head ends at `max`, or at the datagram's end when only bytes after it (Ethernet
  // padding, IPv6 payload past the IPv4 packet) are too many: those are not sent on.
  const size_t head_end = std::min(end, max);
  const size_t tail = end - head_end;
  cut.head.assign(frame.begin(), frame.begin() + head_end);
  cut.tail = frame.subspan(head_end, tail);
  cut.head_ipv4_len = h->total_length - tail;
  // Only lengths change and the L4 checksums stay as they were (they cover the whole
  // datagram), so the program's incremental updates are right for the whole datagram once
  // the lengths are restored. The IPv4 header checksum covers the header only: made right.
  Put16(cut.head, *ip + 2, static_cast<uint16_t>(cut.head_ipv4_len));
  fragments::SetIpv4HeaderChecksum(std::span<uint8_t>(cut.head).subspan(*ip, ihl));
  if (*ip > kEthernetLen) {  // the IPv6 payload: extension headers and the head's IPv4
    Put16(cut.head, kEthernetLen + 4, static_cast<uint16_t>(head_end - kEthernetLen - kIpv6HeaderLen));
  }
  if (proto == kProtoUdp && tail > 0) {
    uint16_t udp_len = Get16(frame, *ip + ihl + 4);
    if (udp_len < 8 + tail) return absl::InvalidArgumentError("UDP length shorter than the datagram");
    Put16(cut.head, *ip + ihl + 4, static_cast<uint16_t>(udp_len - tail));
  }
  return cut;
}

absl::StatusOr<Bytes> RejoinTail(std::span<const uint8_t> out, size_t head_ipv4_len,
                                 std::span<const uint8_t> tail) {
  Bytes f(out.begin(), out.end());
  if (tail.empty()) return f;
  absl::StatusOr<size_t> ip = Ipv4Offset(out);
  if (!ip.ok()) return ip.status();
  if (out.size() < *ip + 20) return absl::InvalidArgumentError("IPv4 header cut short");
  if (Get16(out, *ip + 2) != head_ipv4_len || out.size() != *ip + head_ipv4_len) return f;
  const size_t ihl = (out[*ip] & 0x0f) * 4;
  const bool udp = out[*ip + 9] == kProtoUdp;
  if (ihl < 20 || out.size() < *ip + ihl + (udp ? 8 : 0)) {
    return absl::InvalidArgumentError("IPv4 or UDP header cut short");
  }
  if (head_ipv4_len + tail.size() > 0xffff) return absl::InvalidArgumentError("datagram over 64 KiB");
  f.insert(f.end(), tail.begin(), tail.end());
  Put16(f, *ip + 2, static_cast<uint16_t>(head_ipv4_len + tail.size()));
  fragments::SetIpv4HeaderChecksum(std::span<uint8_t>(f).subspan(*ip, ihl));
  if (*ip > kEthernetLen) Put16(f, kEthernetLen + 4, static_cast<uint16_t>(Get16(f, kEthernetLen + 4) + tail.size()));
  if (udp) Put16(f, *ip + ihl + 4, static_cast<uint16_t>(Get16(f, *ip + ihl + 4) + tail.size()));
  return f;
}

bool DecrementHopLimit(Bytes& frame) {
  if (frame.size() < kEthernetLen + 1) return false;
  switch (Get16(frame, 12)) {
    case kEtherTypeIpv4: {
      if (frame.size() < kEthernetLen + 20 || (frame[kEthernetLen] >> 4) != 4) return false;
      const size_t ihl = (frame[kEthernetLen] & 0x0f) * 4;
      if (ihl < 20 || frame.size() < kEthernetLen + ihl || frame[kEthernetLen + 8] <= 1) return false;
      --frame[kEthernetLen + 8];
      fragments::SetIpv4HeaderChecksum(std::span<uint8_t>(frame).subspan(kEthernetLen, ihl));
      return true;
    }
    case kEtherTypeIpv6:
      if (frame.size() < kEthernetLen + kIpv6HeaderLen || frame[kEthernetLen + 7] <= 1) return false;
      --frame[kEthernetLen + 7];
      return true;
    default:
      return false;
  }
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
