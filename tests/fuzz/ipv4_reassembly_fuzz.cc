// libFuzzer target for IPv4 reassembly and fragmentation (control/fragments): a stream of
// packets through one Ipv4Reassembler with small limits; every datagram that comes out is
// checked, fragmented again with FragmentIpv4 and put back together by a fresh reassembler,
// which must give the same bytes.
//
// Input: two configuration bytes, then records of [control][length, 2 bytes big endian][packet].
//   byte 0: max_datagrams 1 + (b & 7); max_bytes {512, 4096, 65536, 1 MiB}[(b >> 3) & 3];
//           max_fragments_per_datagram {2, 8, 64, 4096}[(b >> 5) & 3]
//   byte 1: the MTU the output is fragmented to, 68 + 6 * b
//   control: bits 0-1 the context (four B4s), bits 2-4 how far the clock moves before the
//            packet (0, 1 ms, 100 ms, 1 s, 2 s, 4.9 s, 5 s, 6 s), bit 5 Expire first, bit 6
//            store a right header checksum first (so mutations get past it), bit 7 put the
//            round trip's fragments in reverse order.
// Invariants: the limits hold after every packet; Add's errors are InvalidArgument and counted in
// malformed, nothing else is; a datagram out is a whole IPv4 packet (version 4, tot_len its
// size, MF and offset clear, right checksum); FragmentIpv4 refuses it only for DF or broken
// options, else every fragment fits the MTU with a right checksum, and the round trip gives the
// datagram back (the checksum field aside when it came through unchanged: 0x0000 and 0xffff
// both say zero).
//
// AFTR_REASSEMBLY_FUZZ_TRACE=1 prints what happened to each packet (replaying one input).
// AFTR_REASSEMBLY_FUZZ_SEEDS=<dir> writes the seed corpus (crafted fragment streams) to <dir>
// and exits: how tests/fuzz/corpus/ipv4_reassembly was made.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "control/fragments/ipv4_fragmenter.h"
#include "control/fragments/ipv4_header.h"
#include "control/fragments/ipv4_reassembler.h"

namespace {

namespace fragments = aftr::fragments;
using Bytes = std::vector<uint8_t>;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

uint16_t Get16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

fragments::ReassemblyContext Context(int index) {
  fragments::ReassemblyContext c{0x20, 0x01, 0x0d, 0xb8, 0x01};  // 2001:db8:100::<index>
  c[15] = static_cast<uint8_t>(index);
  return c;
}

const absl::Duration kSteps[8] = {absl::ZeroDuration(), absl::Milliseconds(1),
                                  absl::Milliseconds(100), absl::Seconds(1), absl::Seconds(2),
                                  absl::Milliseconds(4900), absl::Seconds(5), absl::Seconds(6)};

// Whether the options area parses (RFC 791: End, NOP, or type-length-value inside the area).
bool OptionsParse(std::span<const uint8_t> options) {
  size_t at = 0;
  while (at < options.size()) {
    if (options[at] == 0) return true;
    if (options[at] == 1) {
      ++at;
      continue;
    }
    if (at + 1 >= options.size()) return false;
    const size_t length = options[at + 1];
    if (length < 2 || at + length > options.size()) return false;
    at += length;
  }
  return true;
}

// A datagram out of the reassembler: a whole, valid IPv4 packet.
void CheckWhole(const Bytes& d) {
  Check(d.size() >= 20 && d.size() <= 65535);
  Check(d[0] >> 4 == 4);
  const size_t header_length = size_t{d[0] & 0x0fu} * 4;
  Check(header_length >= 20 && header_length <= d.size());
  Check(Get16(d, 2) == d.size());
  Check((Get16(d, 6) & (fragments::kIpv4FlagMoreFragments | fragments::kIpv4OffsetMask)) == 0);
  Check(fragments::Ipv4HeaderChecksumValid(std::span<const uint8_t>(d).first(header_length)));
}

// Fragments `d` again and reassembles the pieces in a fresh table: the same bytes come back.
void CheckRoundTrip(const Bytes& d, size_t mtu, bool reverse) {
  auto pieces = fragments::FragmentIpv4(d, mtu);
  const size_t header_length = size_t{d[0] & 0x0fu} * 4;
  if (!pieces.ok()) {
    const bool dont_fragment = Get16(d, 6) & fragments::kIpv4FlagDontFragment;
    const bool options_parse = OptionsParse(std::span<const uint8_t>(d).subspan(20, header_length - 20));
    if (pieces.status().code() == absl::StatusCode::kFailedPrecondition) {
      Check(dont_fragment && d.size() > mtu && options_parse);  // refused for DF only
    } else {
      Check(pieces.status().code() == absl::StatusCode::kInvalidArgument && !options_parse);
    }
    return;
  }
  Check(!pieces->empty());
  if (d.size() <= mtu) {
    Check(pieces->size() == 1 && pieces->front() == d);
  } else {
    Check(pieces->size() > 1);
    size_t next_offset = 0;
    for (size_t i = 0; i < pieces->size(); ++i) {
      const Bytes& p = (*pieces)[i];
      Check(p.size() <= mtu);
      auto h = fragments::ParseIpv4Header(p);
      Check(h.ok());
      Check(h->total_length == p.size());
      Check(h->fragment_offset_bytes() == next_offset);
      const bool last = i + 1 == pieces->size();
      Check(h->more_fragments() == !last);
      if (!last) Check(h->payload_length() % 8 == 0 && h->payload_length() > 0);
      next_offset += h->payload_length();
    }
    Check(next_offset == d.size() - header_length);
  }
  if (reverse) std::reverse(pieces->begin(), pieces->end());

  fragments::ReassemblyLimits roomy;
  roomy.max_fragments_per_datagram = 8192;
  fragments::Ipv4Reassembler again(roomy);
  const absl::Time t = absl::UnixEpoch();
  for (size_t i = 0; i < pieces->size(); ++i) {
    auto out = again.Add(Context(0), (*pieces)[i], t);
    Check(out.ok());
    const bool last = i + 1 == pieces->size();
    Check(out->has_value() == last);
    if (!last) continue;
    const Bytes& back = **out;
    Check(back.size() == d.size());
    // All but the checksum field equal, and that field right.
    Check(std::equal(back.begin(), back.begin() + 10, d.begin()));
    Check(std::equal(back.begin() + 12, back.end(), d.begin() + 12));
    CheckWhole(back);
  }
  Check(again.pending_datagrams() == 0 && again.pending_bytes() == 0);
}

void FixChecksum(Bytes& p) {
  if (p.size() < 20) return;
  const size_t header_length = size_t{p[0] & 0x0fu} * 4;
  if (header_length < 20 || header_length > p.size()) return;
  fragments::SetIpv4HeaderChecksum(std::span<uint8_t>(p).first(header_length));
}

// ---- Seeds ----

Bytes Packet(uint16_t id, uint16_t flags, const Bytes& options, size_t payload_size,
             uint8_t seed = 0) {
  Bytes p(20, 0);
  p[0] = static_cast<uint8_t>(0x40 | (20 + options.size()) / 4);
  p.insert(p.end(), options.begin(), options.end());
  for (size_t i = 0; i < payload_size; ++i) p.push_back(static_cast<uint8_t>(seed + i));
  p[2] = static_cast<uint8_t>(p.size() >> 8);
  p[3] = static_cast<uint8_t>(p.size());
  p[4] = static_cast<uint8_t>(id >> 8);
  p[5] = static_cast<uint8_t>(id);
  p[6] = static_cast<uint8_t>(flags >> 8);
  p[7] = static_cast<uint8_t>(flags);
  p[8] = 64;
  p[9] = 17;
  const uint8_t addresses[8] = {192, 0, 2, 1, 203, 0, 113, 5};
  std::copy(std::begin(addresses), std::end(addresses), p.begin() + 12);
  FixChecksum(p);
  return p;
}

std::vector<Bytes> Split(const Bytes& p, size_t mtu) {
  auto pieces = fragments::FragmentIpv4(p, mtu);
  Check(pieces.ok());
  return *pieces;
}

void Record(Bytes& out, uint8_t control, const Bytes& packet) {
  out.push_back(control);
  out.push_back(static_cast<uint8_t>(packet.size() >> 8));
  out.push_back(static_cast<uint8_t>(packet.size()));
  out.insert(out.end(), packet.begin(), packet.end());
}

void WriteSeeds(const std::string& dir) {
  auto write = [&](const char* name, const Bytes& input) {
    const std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    Check(f != nullptr);
    Check(std::fwrite(input.data(), 1, input.size(), f) == input.size());
    std::fclose(f);
  };
  const Bytes kCopiedAndNot = {131, 7, 4, 192, 0, 2, 9, 7, 7, 4, 0, 0, 0, 0, 0, 0};
  const Bytes udp = Packet(1, 0, {}, 200);
  const Bytes with_options = Packet(2, 0, kCopiedAndNot, 300);
  // Default-ish limits (8 datagrams, 64 KiB, 64 fragments), output fragmented to 68 + 6 * 22.
  const Bytes config = {0x57, 22};

  Bytes in_order = config;
  for (const Bytes& f : Split(udp, 100)) Record(in_order, 0, f);
  write("in_order", in_order);

  Bytes reversed = config;
  auto pieces = Split(with_options, 120);
  for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) Record(reversed, 0x81, *it);
  write("reversed_options", reversed);

  Bytes duplicates = config;
  pieces = Split(udp, 100);
  for (const Bytes& f : pieces) {
    Record(duplicates, 1, f);
    Record(duplicates, 1, f);
  }
  write("duplicates", duplicates);

  Bytes overlap = config;
  pieces = Split(udp, 100);
  Bytes forged = pieces[1];
  forged[30] ^= 0xff;
  Record(overlap, 0, pieces[0]);
  Record(overlap, 0, pieces[1]);
  Record(overlap, 0x40, forged);  // checksum fixed: only the payload differs
  for (const Bytes& f : pieces) Record(overlap, 0, f);
  write("overlap", overlap);

  Bytes two_b4s = config;
  auto one = Split(Packet(7, 0, {}, 150, 1), 76);
  auto two = Split(Packet(7, 0, {}, 150, 2), 76);
  for (size_t i = 0; i < one.size(); ++i) {
    Record(two_b4s, 1, one[i]);
    Record(two_b4s, 2, two[two.size() - 1 - i]);
  }
  write("two_b4s", two_b4s);

  Bytes timeout = config;
  pieces = Split(udp, 100);
  Record(timeout, 0, pieces[0]);
  Record(timeout, 7 << 2 | 0x20, pieces[2]);  // six seconds later, Expire first
  Record(timeout, 0, pieces[1]);
  write("timeout", timeout);

  Bytes malformed = config;
  Bytes empty_more = Packet(3, fragments::kIpv4FlagMoreFragments | 5, {}, 0);
  Bytes odd_more = Packet(3, fragments::kIpv4FlagMoreFragments, {}, 13);
  Bytes far = Packet(3, 8189, {}, 16);
  Record(malformed, 0, empty_more);
  Record(malformed, 0, odd_more);
  Record(malformed, 0, far);
  write("malformed", malformed);

  Bytes whole = config;
  Record(whole, 0, Packet(4, fragments::kIpv4FlagDontFragment, {}, 1400));
  Record(whole, 0, Packet(5, 0, kCopiedAndNot, 40));
  write("not_fragments", whole);

  Bytes big = {0x7f, 200};  // roomy limits, output fragmented to 1268
  for (const Bytes& f : Split(Packet(6, 0, {}, 9000), 1500)) Record(big, 0, f);
  write("big", big);
}

}  // namespace

static bool trace = false;  // AFTR_REASSEMBLY_FUZZ_TRACE

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  trace = std::getenv("AFTR_REASSEMBLY_FUZZ_TRACE") != nullptr;
  if (const char* dir = std::getenv("AFTR_REASSEMBLY_FUZZ_SEEDS")) {
    WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  fragments::ReassemblyLimits limits;
  limits.max_datagrams = 1 + (data[0] & 7);
  limits.max_bytes = std::array<size_t, 4>{512, 4096, 65536, 1 << 20}[(data[0] >> 3) & 3];
  limits.max_fragments_per_datagram = std::array<size_t, 4>{2, 8, 64, 4096}[(data[0] >> 5) & 3];
  const size_t mtu = 68 + 6 * size_t{data[1]};
  fragments::Ipv4Reassembler reassembler(limits);
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);

  size_t at = 2;
  while (at + 3 <= size) {
    const uint8_t control = data[at];
    const size_t length = std::min<size_t>(Get16({data, size}, at + 1), size - at - 3);
    Bytes packet(data + at + 3, data + at + 3 + length);
    at += 3 + length;
    if (control & 0x40) FixChecksum(packet);
    now += kSteps[(control >> 2) & 7];
    if (control & 0x20) reassembler.Expire(now);

    const auto header = fragments::ParseIpv4Header(packet);
    const bool is_fragment = header.ok() && header->is_fragment();
    const fragments::ReassemblyCounters before = reassembler.counters();
    auto out = reassembler.Add(Context(control & 3), packet, now);
    const fragments::ReassemblyCounters& after = reassembler.counters();
    if (trace) {
      std::fprintf(stderr, "context %d, %zu bytes: %s; pending %zu datagrams, %zu bytes\n",
                   control & 3, packet.size(),
                   !out.ok()              ? std::string(out.status().message()).c_str()
                   : !out->has_value()    ? "pending"
                   : is_fragment          ? "reassembled"
                                          : "not a fragment",
                   reassembler.pending_datagrams(), reassembler.pending_bytes());
    }
    Check(reassembler.pending_datagrams() <= limits.max_datagrams);
    Check(reassembler.pending_bytes() <= limits.max_bytes);
    Check(after.malformed == before.malformed + (out.ok() ? 0 : 1));
    Check(after.fragments >= before.fragments && after.evicted >= before.evicted &&
          after.timed_out >= before.timed_out && after.overlapping >= before.overlapping &&
          after.too_many_fragments >= before.too_many_fragments);
    if (!out.ok()) {
      Check(out.status().code() == absl::StatusCode::kInvalidArgument);
      Check(after.fragments == before.fragments && after.reassembled == before.reassembled);
      continue;
    }
    Check(header.ok());
    Check(after.reassembled == before.reassembled + (out->has_value() && is_fragment ? 1 : 0));
    if (!is_fragment) Check(out->has_value() && after.fragments == before.fragments);
    if (!out->has_value()) continue;
    const Bytes& datagram = **out;
    CheckWhole(datagram);
    if (!is_fragment) {
      // Not a fragment: the packet itself, cut to its tot_len.
      Check(std::equal(datagram.begin(), datagram.end(), packet.begin()));
    }
    CheckRoundTrip(datagram, mtu, control & 0x80);
  }
  return 0;
}
