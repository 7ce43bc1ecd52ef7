// PCP wire format. See pcp_message.h.
#include "control/pcp/pcp_message.h"

#include <algorithm>
#include <cstring>

namespace aftr::pcp {
namespace {

constexpr size_t kOptionHeaderSize = 4;
constexpr size_t kThirdPartyLength = 16;
constexpr size_t kFilterLength = 20;
constexpr uint8_t kFirstOptionalCode = 128;  // 128..255: optional to process (section 7.3)

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
void Put32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}
Address GetAddress(const uint8_t* p) {
  Address a;
  std::memcpy(a.data(), p, a.size());
  return a;
}

Parsed Error(Result r) {
  Parsed p;
  p.kind = Parsed::Kind::kError;
  p.error = r;
  return p;
}

// Writes the response header over the first 24 octets of `out` (section 7.2). The reserved
// 96 bits (12..23) are left as they are: zero in a fresh response, the tail of the client
// address in an echoed error.
void WriteHeader(std::vector<uint8_t>& out, uint8_t opcode, Result result, uint32_t lifetime,
                 uint32_t epoch) {
  out[0] = kVersion;
  out[1] = kResponseBit | (opcode & 0x7f);
  out[2] = 0;
  out[3] = static_cast<uint8_t>(result);
  Put32(&out[4], lifetime);
  Put32(&out[8], epoch);
}

void AppendOption(std::vector<uint8_t>& out, OptionCode code, const uint8_t* data, size_t length) {
  const size_t at = out.size();
  out.resize(at + kOptionHeaderSize + (length + 3) / 4 * 4, 0);
  out[at] = static_cast<uint8_t>(code);
  Put16(&out[at + 2], static_cast<uint16_t>(length));
  if (length) std::memcpy(&out[at + kOptionHeaderSize], data, length);
}

}  // namespace

const char* ResultName(Result r) {
  static const char* const kNames[kResultCount] = {
      "SUCCESS",          "UNSUPP_VERSION",  "NOT_AUTHORIZED", "MALFORMED_REQUEST",
      "UNSUPP_OPCODE",    "UNSUPP_OPTION",   "MALFORMED_OPTION", "NETWORK_FAILURE",
      "NO_RESOURCES",     "UNSUPP_PROTOCOL", "USER_EX_QUOTA",  "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
  const auto i = static_cast<size_t>(r);
  return i < std::size(kNames) ? kNames[i] : "UNKNOWN";
}

uint32_t ErrorLifetime(Result r) {
  switch (r) {
    case Result::kNetworkFailure:
    case Result::kNoResources:
    case Result::kUserExQuota:
    case Result::kCannotProvideExternal:
      return kShortErrorLifetime;
    default:
      return kLongErrorLifetime;
  }
}

bool IsV4Mapped(const Address& a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.data(), kPrefix, sizeof(kPrefix)) == 0;
}

Address V4Mapped(Ipv4Address a) {
  Address out = {};
  out[10] = out[11] = 0xff;
  Put32(&out[12], a.host_order);
  return out;
}

Ipv4Address V4Of(const Address& a) { return Ipv4Address{Get32(&a[12])}; }

bool IsAllZeros(const Address& a) {
  if (IsV4Mapped(a)) return Get32(&a[12]) == 0;
  return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
}

Parsed ParseRequest(std::span<const uint8_t> d, const Address& source) {
  // Section 8.3, in its order.
  if (d.size() < 2 || (d[1] & kResponseBit)) return Parsed{};
  if (d[0] != kVersion) return Error(Result::kUnsuppVersion);
  if (d.size() < kHeaderSize) return Parsed{};
  if (d.size() > kMaxMessage || d.size() % 4 != 0) return Error(Result::kMalformedRequest);
  Request r;
  const uint8_t opcode = d[1] & 0x7f;
  if (opcode > static_cast<uint8_t>(Opcode::kPeer)) return Error(Result::kUnsuppOpcode);
  r.opcode = static_cast<Opcode>(opcode);
  const size_t body = r.opcode == Opcode::kMap    ? kMapBodySize
                      : r.opcode == Opcode::kPeer ? kPeerBodySize
                                                  : 0;
  if (d.size() < kHeaderSize + body) return Error(Result::kMalformedRequest);
  r.requested_lifetime = Get32(&d[4]);
  r.client_addr = GetAddress(&d[8]);
  if (r.client_addr != source) return Error(Result::kAddressMismatch);
  if (body) {
    const uint8_t* b = &d[kHeaderSize];
    std::memcpy(r.nonce.data(), b, r.nonce.size());
    r.protocol = b[12];
    r.internal_port = Get16(&b[16]);
    r.suggested_port = Get16(&b[18]);
    r.suggested_addr = GetAddress(&b[20]);
    if (r.opcode == Opcode::kPeer) {
      r.remote_port = Get16(&b[36]);
      r.remote_addr = GetAddress(&b[40]);
    }
  }

  // Options (section 7.3).
  bool malformed_request = false;  // reported only if no option error comes first
  size_t at = kHeaderSize + body;
  while (at < d.size()) {
    if (d.size() - at < kOptionHeaderSize) return Error(Result::kMalformedOption);
    const uint8_t code = d[at];
    const size_t length = Get16(&d[at + 2]);
    const size_t padded = (length + 3) / 4 * 4;
    if (d.size() - at - kOptionHeaderSize < padded) return Error(Result::kMalformedOption);
    const uint8_t* data = &d[at + kOptionHeaderSize];
    at += kOptionHeaderSize + padded;
    switch (static_cast<OptionCode>(code)) {
      case OptionCode::kThirdParty:
        if (r.opcode == Opcode::kAnnounce) malformed_request = true;
        if (length != kThirdPartyLength || r.third_party) return Error(Result::kMalformedOption);
        r.third_party = GetAddress(data);
        continue;
      case OptionCode::kPreferFailure:
        if (r.opcode != Opcode::kMap) malformed_request = true;
        if (length != 0 || r.prefer_failure) return Error(Result::kMalformedOption);
        r.prefer_failure = true;
        continue;
      case OptionCode::kFilter: {
        if (r.opcode != Opcode::kMap) malformed_request = true;
        if (length != kFilterLength) return Error(Result::kMalformedOption);
        Filter f;
        f.prefix_length = data[1];
        f.remote_port = Get16(&data[2]);
        f.remote_addr = GetAddress(&data[4]);
        // Our peers are IPv4 (the internal host is): an IPv4-mapped prefix of 96..128, or
        // prefix 0, which clears the filters whatever the address.
        if (f.prefix_length != 0 &&
            (f.prefix_length > 128 || !IsV4Mapped(f.remote_addr) || f.prefix_length < 96)) {
          return Error(Result::kMalformedOption);
        }
        r.filters.push_back(f);
        continue;
      }
    }
    if (code < kFirstOptionalCode) return Error(Result::kUnsuppOption);
    // Optional to process and unknown: skipped, and not echoed.
  }
  if (malformed_request) return Error(Result::kMalformedRequest);

  // Opcode fields the RFC calls malformed.
  if (r.opcode == Opcode::kMap && r.protocol == 0 && r.internal_port != 0) {
    return Error(Result::kMalformedRequest);  // section 11.1
  }
  if (r.opcode == Opcode::kPeer &&
      (r.protocol == 0 || r.internal_port == 0 || r.remote_port == 0)) {
    return Error(Result::kMalformedRequest);  // section 12.1
  }
  if (r.third_party && *r.third_party == source) {
    return Error(Result::kMalformedRequest);  // section 13.1
  }
  Parsed p;
  p.kind = Parsed::Kind::kRequest;
  p.request = std::move(r);
  return p;
}

std::vector<uint8_t> ErrorResponse(std::span<const uint8_t> d, Result result, uint32_t lifetime,
                                   uint32_t epoch) {
  const size_t n = std::min(d.size(), kMaxMessage);
  std::vector<uint8_t> out(d.begin(), d.begin() + n);
  out.resize(std::max(kHeaderSize, (n + 3) / 4 * 4), 0);  // PCP messages are whole words
  WriteHeader(out, d.size() > 1 ? d[1] : 0, result, lifetime, epoch);
  return out;
}

std::vector<uint8_t> VersionResponse(std::span<const uint8_t> d, uint32_t epoch) {
  std::vector<uint8_t> out(kHeaderSize, 0);
  WriteHeader(out, d.size() > 1 ? d[1] : 0, Result::kUnsuppVersion, kLongErrorLifetime, epoch);
  return out;
}

std::vector<uint8_t> EncodeResponse(const Request& r, const Answer& a) {
  std::vector<uint8_t> out(kHeaderSize, 0);
  WriteHeader(out, static_cast<uint8_t>(r.opcode), a.result, a.lifetime, a.epoch);
  if (r.opcode == Opcode::kAnnounce) return out;
  const size_t body = r.opcode == Opcode::kPeer ? kPeerBodySize : kMapBodySize;
  out.resize(kHeaderSize + body, 0);
  uint8_t* b = &out[kHeaderSize];
  std::memcpy(b, r.nonce.data(), r.nonce.size());
  b[12] = r.protocol;
  Put16(&b[16], r.internal_port);
  Put16(&b[18], a.assigned_port);
  std::memcpy(&b[20], a.assigned_addr.data(), 16);
  if (r.opcode == Opcode::kPeer) {
    Put16(&b[36], r.remote_port);
    std::memcpy(&b[40], r.remote_addr.data(), 16);
  }
  if (r.third_party) AppendOption(out, OptionCode::kThirdParty, r.third_party->data(), 16);
  if (r.prefer_failure) AppendOption(out, OptionCode::kPreferFailure, nullptr, 0);
  for (const Filter& f : a.filters_echoed) {
    uint8_t data[kFilterLength] = {};
    data[1] = f.prefix_length;
    Put16(&data[2], f.remote_port);
    std::memcpy(&data[4], f.remote_addr.data(), 16);
    AppendOption(out, OptionCode::kFilter, data, sizeof(data));
  }
  return out;
}

std::vector<uint8_t> UnsolicitedAnnounce(uint32_t epoch) {
  std::vector<uint8_t> out(kHeaderSize, 0);
  WriteHeader(out, static_cast<uint8_t>(Opcode::kAnnounce), Result::kSuccess, 0, epoch);
  return out;
}

}  // namespace aftr::pcp
