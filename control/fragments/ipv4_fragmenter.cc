#include "control/fragments/ipv4_fragmenter.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aftr::fragments {
namespace {

constexpr uint8_t kOptionEnd = 0;
constexpr uint8_t kOptionNop = 1;
constexpr uint8_t kOptionCopied = 0x80;

// The options of later fragments: those with the copy flag, in order, padded with zeros (End
// of Options) to whole words. Refuses options that run past the header.
absl::StatusOr<std::vector<uint8_t>> CopiedOptions(std::span<const uint8_t> options) {
  std::vector<uint8_t> copied;
  size_t at = 0;
  while (at < options.size()) {
    const uint8_t type = options[at];
    if (type == kOptionEnd) break;
    if (type == kOptionNop) {
      ++at;
      continue;
    }
    if (at + 1 >= options.size()) {
      return absl::InvalidArgumentError("IPv4 option without its length byte");
    }
    const size_t length = options[at + 1];
    if (length < 2 || at + length > options.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("IPv4 option ", type, " with bad length ", length));
    }
    if (type & kOptionCopied) {
      copied.insert(copied.end(), options.begin() + at, options.begin() + at + length);
    }
    at += length;
  }
  copied.resize((copied.size() + 3) / 4 * 4, kOptionEnd);
  return copied;
}

void Write16(std::vector<uint8_t>& b, size_t at, size_t value) {
  b[at] = static_cast<uint8_t>(value >> 8);
  b[at + 1] = static_cast<uint8_t>(value);
}

}  // namespace

absl::StatusOr<std::vector<std::vector<uint8_t>>> FragmentIpv4(std::span<const uint8_t> packet,
                                                               size_t mtu) {
  if (mtu < kIpv4MinMtu) {
    return absl::InvalidArgumentError(absl::StrCat("MTU ", mtu, " is under IPv4's minimum 68"));
  }
  absl::StatusOr<Ipv4HeaderView> header = ParseIpv4Header(packet);
  if (!header.ok()) return header.status();
  const std::span<const uint8_t> whole = packet.first(header->total_length);
  const std::span<const uint8_t> first_header = whole.first(header->header_length);
  absl::StatusOr<std::vector<uint8_t>> copied_options =
      CopiedOptions(first_header.subspan(kIpv4MinHeader));
  if (!copied_options.ok()) return copied_options.status();

  if (whole.size() <= mtu) return std::vector<std::vector<uint8_t>>{{whole.begin(), whole.end()}};
  if (header->dont_fragment()) {
    return absl::FailedPreconditionError(absl::StrCat("IPv4 packet of ", whole.size(),
                                                      " bytes has DF set and exceeds MTU ", mtu));
  }

  // Later fragments' header: the fixed part with the copied options.
  std::vector<uint8_t> later_header(first_header.begin(), first_header.begin() + kIpv4MinHeader);
  later_header.insert(later_header.end(), copied_options->begin(), copied_options->end());
  later_header[0] = static_cast<uint8_t>(0x40 | later_header.size() / 4);

  const std::span<const uint8_t> payload = whole.subspan(header->header_length);
  const size_t base_offset = header->fragment_offset_bytes();
  if (base_offset + payload.size() > kIpv4MaxPayloadEnd) {
    return absl::InvalidArgumentError("IPv4 fragment ends past the largest datagram");
  }
  // Flags other than MF (the reserved bit; DF is clear here) carry over to every fragment.
  const uint16_t kept_flags =
      header->flags_and_offset & ~(kIpv4OffsetMask | kIpv4FlagMoreFragments);

  std::vector<std::vector<uint8_t>> fragments;
  size_t done = 0;
  while (done < payload.size()) {
    const std::span<const uint8_t> this_header =
        done == 0 ? first_header : std::span<const uint8_t>(later_header);
    // The header is at most 60 bytes and mtu at least 68, so every fragment carries >= 8 bytes.
    const size_t room = (mtu - this_header.size()) / 8 * 8;
    const size_t length = std::min(room, payload.size() - done);
    const bool last = done + length == payload.size();

    std::vector<uint8_t> fragment(this_header.begin(), this_header.end());
    fragment.insert(fragment.end(), payload.begin() + done, payload.begin() + done + length);
    Write16(fragment, 2, fragment.size());
    const bool more = !last || header->more_fragments();
    Write16(fragment, 6,
            kept_flags | (more ? kIpv4FlagMoreFragments : 0) | (base_offset + done) / 8);
    SetIpv4HeaderChecksum(std::span<uint8_t>(fragment).first(this_header.size()));
    fragments.push_back(std::move(fragment));
    done += length;
  }
  return fragments;
}

}  // namespace aftr::fragments
