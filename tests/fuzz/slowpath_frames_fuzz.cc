// The fragment slow path's frame handling (control/slowpath/frames): frames from the ring or
// built from a raw socket's payload, taken apart and cut to an MTU, or cut into a head for a
// run and joined again. The first two bytes pick the MTU (and the head's length); the rest is
// the frame. Nothing may read past the input, every span returned lies inside it, every piece
// FitToMtu returns fits the MTU with the frame's own L2/L3 prefix, a head is no longer than
// asked, and a head joined to its tail unchanged gives back the frame's IPv4 packet.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "control/slowpath/frames.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t mtu = size_t(data[0] << 8 | data[1]);
  std::span<const uint8_t> frame(data + 2, size - 2);
  auto inside = [&](std::span<const uint8_t> s) {
    if (!s.empty() && (s.data() < frame.data() || s.data() + s.size() > frame.data() + frame.size())) abort();
  };
  if (auto sw = aftr::slowpath::ParseSoftwireFrame(frame); sw.ok()) {
    inside(sw->ipv4);
    aftr::slowpath::Bytes rebuilt = aftr::slowpath::BuildSoftwireFrame(
        std::span<const uint8_t, 14>(sw->ethernet), sw->b4, sw->softwire, sw->ipv4);
    auto again = aftr::slowpath::ParseSoftwireFrame(rebuilt);
    if (!again.ok() || again->b4 != sw->b4 || again->ipv4.size() != sw->ipv4.size()) abort();
  }
  if (auto v4 = aftr::slowpath::ParseIpv4Frame(frame); v4.ok()) inside(*v4);
  if (auto pieces = aftr::slowpath::FitToMtu(frame, mtu); pieces.ok()) {
    for (const aftr::slowpath::Bytes& p : *pieces) {
      if (p.size() < 14) abort();
      if (pieces->size() > 1 && p.size() - 14 > mtu) abort();
      for (size_t i = 0; i < 14; ++i)
        if (p[i] != frame[i]) abort();
    }
  }
  if (auto cut = aftr::slowpath::CutForRun(frame, mtu); cut.ok()) {
    inside(cut->tail);
    if (cut->head.size() > mtu) abort();
    auto whole = aftr::slowpath::RejoinTail(cut->head, cut->head_ipv4_len, cut->tail);
    if (!whole.ok()) abort();
    // It parses, and its IPv4 packet is the frame's, byte for byte but the header checksum,
    // which is recomputed (a valid one has two forms when the rest sums to 0xffff).
    std::span<const uint8_t> before, after;
    if (auto sw = aftr::slowpath::ParseSoftwireFrame(frame); sw.ok()) {
      before = sw->ipv4;
      auto sw2 = aftr::slowpath::ParseSoftwireFrame(*whole);
      if (!sw2.ok()) abort();
      after = sw2->ipv4;
    } else {
      auto v4 = aftr::slowpath::ParseIpv4Frame(frame), v4b = aftr::slowpath::ParseIpv4Frame(*whole);
      if (!v4.ok() || !v4b.ok()) abort();
      before = *v4, after = *v4b;
    }
    if (before.size() != after.size()) abort();
    for (size_t i = 0; i < before.size(); ++i)
      if (before[i] != after[i] && i != 10 && i != 11) abort();
  }
  return 0;
}
