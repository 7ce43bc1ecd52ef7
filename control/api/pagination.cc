#include "control/api/pagination.h"

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace aftr::api {
namespace {

constexpr uint8_t kTokenVersion = 1;
constexpr size_t kMaxKeyBytes = 64;
constexpr size_t kHeaderBytes = 1 + 8 + 8 + 1;

// FNV-1a: stable across processes, so a token survives a daemon restart.
uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

absl::Status BadToken(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("page_token: ", why));
}

}  // namespace

absl::StatusOr<int> EffectivePageSize(int32_t page_size) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", page_size, " is negative"));
  }
  if (page_size == 0) return kDefaultPageSize;
  return page_size > kMaxPageSize ? kMaxPageSize : page_size;
}

std::string EncodePageToken(const PageToken& token, absl::string_view binding) {
  std::string raw(kHeaderBytes, '\0');
  raw[0] = static_cast<char>(kTokenVersion);
  uint64_t bind = Fnv1a(binding);
  std::memcpy(&raw[1], &bind, 8);
  std::memcpy(&raw[9], &token.snapshot_id, 8);
  size_t n = token.last_key.size() < kMaxKeyBytes ? token.last_key.size() : kMaxKeyBytes;
  raw[17] = static_cast<char>(n);
  raw.append(token.last_key.data(), n);
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<PageToken> DecodePageToken(absl::string_view text, absl::string_view binding) {
  if (text.size() > 2 * (kHeaderBytes + kMaxKeyBytes)) return BadToken("too long");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(text, &raw) || raw.size() < kHeaderBytes ||
      static_cast<uint8_t>(raw[0]) != kTokenVersion) {
    return BadToken("not a token this server issued");
  }
  size_t n = static_cast<uint8_t>(raw[17]);
  if (n > kMaxKeyBytes || raw.size() != kHeaderBytes + n) return BadToken("not a token this server issued");
  uint64_t bind;
  std::memcpy(&bind, &raw[1], 8);
  if (bind != Fnv1a(binding)) {
    return BadToken("issued for another method or filter; repeat the request's filter unchanged");
  }
  PageToken token;
  std::memcpy(&token.snapshot_id, &raw[9], 8);
  token.last_key = raw.substr(kHeaderBytes, n);
  return token;
}

}  // namespace aftr::api
