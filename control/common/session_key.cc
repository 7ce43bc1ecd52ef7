#include "control/common/session_key.h"

#include <cstring>

namespace aftr {
namespace {
constexpr size_t kSortKeyBytes = 16 + 4 + 2 + 1;

void PutBigEndian(uint64_t v, int bytes, char* out) {
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
}
uint64_t GetBigEndian(const char* in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}
}  // namespace

std::string SessionKey::SortKey() const {
  std::string s(kSortKeyBytes, '\0');
  std::memcpy(&s[0], b4.bytes.data(), 16);
  PutBigEndian(inner_addr.host_order, 4, &s[16]);
  PutBigEndian(inner_port, 2, &s[20]);
  s[22] = static_cast<char>(proto);
  return s;
}

std::optional<SessionKey> SessionKey::FromSortKey(const std::string& s) {
  if (s.size() != kSortKeyBytes) return std::nullopt;
  SessionKey k;
  std::memcpy(k.b4.bytes.data(), &s[0], 16);
  k.inner_addr.host_order = static_cast<uint32_t>(GetBigEndian(&s[16], 4));
  k.inner_port = static_cast<uint16_t>(GetBigEndian(&s[20], 2));
  k.proto = static_cast<uint8_t>(s[22]);
  return k;
}

}  // namespace aftr
