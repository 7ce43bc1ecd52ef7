#include "control/fragments/ipv4_reassembler.h"

#include <algorithm>
#include <iterator>

#include "absl/status/status.h"
#include "control/fragments/ipv4_header.h"

namespace aftr::fragments {
namespace {

// A stretch of the incoming fragment's payload that no held piece covers yet.
struct Gap {
  size_t offset;  // in the datagram's payload
  std::span<const uint8_t> bytes;
};

}  // namespace

Ipv4Reassembler::Ipv4Reassembler(ReassemblyLimits limits) : limits_(limits) {}

absl::StatusOr<std::optional<std::vector<uint8_t>>> Ipv4Reassembler::Add(
    const ReassemblyContext& context, std::span<const uint8_t> packet, absl::Time now) {
  Expire(now);
  const absl::StatusOr<Ipv4HeaderView> header = ParseIpv4Header(packet);
  if (!header.ok()) {
    ++counters_.malformed;
    return header.status();
  }
  const std::span<const uint8_t> whole = packet.first(header->total_length);
  if (!header->is_fragment()) return std::vector<uint8_t>(whole.begin(), whole.end());

  const Key key{context, header->source, header->destination, header->identification,
                header->protocol};
  const size_t offset = header->fragment_offset_bytes();
  const std::span<const uint8_t> payload = whole.subspan(header->header_length);
  const size_t end = offset + payload.size();
  const bool last = !header->more_fragments();

  Table::iterator found = datagrams_.find(key);
  // A fragment that contradicts its datagram's shape condemns the datagram with it.
  auto refuse = [&](const char* why) -> absl::Status {
    ++counters_.malformed;
    if (found != datagrams_.end()) Drop(found);
    return absl::InvalidArgumentError(why);
  };
  if (end > kIpv4MaxPayloadEnd) return refuse("IPv4 fragment ends past the largest datagram");
  if (!last && payload.empty()) return refuse("empty IPv4 fragment with MF set");
  if (!last && payload.size() % 8 != 0) {
    return refuse("IPv4 fragment with MF set and a payload that is not a multiple of 8 bytes");
  }
  size_t first_header_length = offset == 0 ? header->header_length : 0;

  std::vector<Gap> gaps;
  if (found == datagrams_.end()) {
    if (first_header_length + end > kIpv4MaxTotalLength) {
      return refuse("IPv4 datagram longer than 65535 bytes");
    }
    if (!payload.empty()) gaps.push_back({offset, payload});
  } else {
    Datagram& datagram = found->second;
    if (last && datagram.total_length && *datagram.total_length != end) {
      return refuse("two last IPv4 fragments with different ends");
    }
    if (last && datagram.max_end > end) return refuse("IPv4 fragment data past the last one's end");
    if (!last && datagram.total_length && end > *datagram.total_length) {
      return refuse("IPv4 fragment data past the last one's end");
    }
    if (!datagram.first_header.empty()) first_header_length = datagram.first_header.size();
    if (first_header_length + std::max(datagram.max_end, end) > kIpv4MaxTotalLength) {
      return refuse("IPv4 datagram longer than 65535 bytes");
    }
    // Compare with every held piece the fragment overlaps; keep what it adds.
    auto piece = datagram.pieces.upper_bound(offset);
    if (piece != datagram.pieces.begin()) --piece;
    size_t cursor = offset;
    for (; piece != datagram.pieces.end() && piece->first < end; ++piece) {
      const size_t piece_start = piece->first;
      const size_t piece_end = piece_start + piece->second.size();
      if (piece_end <= offset) continue;
      const size_t from = std::max(piece_start, offset);
      const size_t to = std::min(piece_end, end);
      if (!std::equal(payload.begin() + (from - offset), payload.begin() + (to - offset),
                      piece->second.begin() + (from - piece_start))) {
        ++counters_.overlapping;
        Drop(found);
        return std::nullopt;
      }
      if (piece_start > cursor) {
        gaps.push_back({cursor, payload.subspan(cursor - offset, piece_start - cursor)});
      }
      cursor = std::max(cursor, piece_end);
    }
    if (cursor < end) gaps.push_back({cursor, payload.subspan(cursor - offset)});
    if (gaps.empty() && !(last && !datagram.total_length)) return std::nullopt;  // duplicate
    if (datagram.fragments_held + 1 > limits_.max_fragments_per_datagram) {
      ++counters_.too_many_fragments;
      Drop(found);
      return std::nullopt;
    }
  }
  size_t new_bytes = 0;
  for (const Gap& gap : gaps) new_bytes += gap.bytes.size();

  if (found == datagrams_.end()) {
    if (limits_.max_fragments_per_datagram == 0) {
      ++counters_.too_many_fragments;
      return std::nullopt;
    }
    // What could never fit, even in an empty table, is dropped as if evicted at once.
    if (limits_.max_datagrams == 0 || new_bytes > limits_.max_bytes) {
      ++counters_.evicted;
      return std::nullopt;
    }
    while (datagrams_.size() >= limits_.max_datagrams) EvictOldest();
    while (pending_bytes_ + new_bytes > limits_.max_bytes) EvictOldest();
    // Arrivals are kept non-decreasing along the age list, so the front is always the oldest
    // even if the caller's clock steps back.
    const absl::Time first_arrival = age_.empty() ? now : std::max(now, age_.back().first_arrival);
    age_.push_back({key, first_arrival});
    found = datagrams_.try_emplace(key).first;
    found->second.age_position = std::prev(age_.end());
  } else {
    while (pending_bytes_ + new_bytes > limits_.max_bytes) {
      if (age_.front().key == key) {  // this datagram is the oldest: it goes first
        EvictOldest();
        return std::nullopt;
      }
      EvictOldest();
    }
  }

  Datagram& datagram = found->second;
  for (const Gap& gap : gaps) {
    datagram.pieces.emplace(gap.offset, std::vector<uint8_t>(gap.bytes.begin(), gap.bytes.end()));
  }
  datagram.bytes_held += new_bytes;
  pending_bytes_ += new_bytes;
  ++datagram.fragments_held;
  ++counters_.fragments;
  datagram.max_end = std::max(datagram.max_end, end);
  if (last) datagram.total_length = end;
  if (offset == 0 && datagram.first_header.empty()) {
    datagram.first_header.assign(whole.begin(), whole.begin() + header->header_length);
  }

  if (!datagram.total_length || datagram.first_header.empty() ||
      datagram.bytes_held != *datagram.total_length) {
    return std::nullopt;
  }
  std::vector<uint8_t> assembled = Assemble(datagram);
  ++counters_.reassembled;
  Drop(found);
  return assembled;
}

std::vector<uint8_t> Ipv4Reassembler::Assemble(const Datagram& datagram) const {
  std::vector<uint8_t> out(datagram.first_header);
  const size_t header_length = out.size();
  out.reserve(header_length + *datagram.total_length);
  for (const auto& [offset, bytes] : datagram.pieces) out.insert(out.end(), bytes.begin(), bytes.end());
  const size_t total = out.size();
  out[2] = static_cast<uint8_t>(total >> 8);
  out[3] = static_cast<uint8_t>(total);
  // MF and the offset go; DF and the reserved bit stay as the first fragment had them.
  out[6] &= static_cast<uint8_t>((kIpv4FlagReserved | kIpv4FlagDontFragment) >> 8);
  out[7] = 0;
  SetIpv4HeaderChecksum(std::span<uint8_t>(out).first(header_length));
  return out;
}

void Ipv4Reassembler::Expire(absl::Time now) {
  while (!age_.empty() && now - age_.front().first_arrival > limits_.timeout) {
    Drop(datagrams_.find(age_.front().key));
    ++counters_.timed_out;
  }
}

void Ipv4Reassembler::EvictOldest() {
  Drop(datagrams_.find(age_.front().key));
  ++counters_.evicted;
}

void Ipv4Reassembler::Drop(Table::iterator it) {
  pending_bytes_ -= it->second.bytes_held;
  age_.erase(it->second.age_position);
  datagrams_.erase(it);
}

const ReassemblyCounters& Ipv4Reassembler::counters() const { return counters_; }
size_t Ipv4Reassembler::pending_datagrams() const { return datagrams_.size(); }
size_t Ipv4Reassembler::pending_bytes() const { return pending_bytes_; }

}  // namespace aftr::fragments
