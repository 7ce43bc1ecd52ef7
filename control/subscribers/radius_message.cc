// The RADIUS wire format. See radius_message.h.
#include "control/subscribers/radius_message.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace aftr::subscribers {
namespace {

uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

absl::Status WrongSize(absl::string_view name, size_t got, size_t want) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, " is ", got, " octets, must be ", want));
}

absl::StatusOr<uint32_t> Integer(absl::string_view name, const std::vector<uint8_t>& v) {
  if (v.size() != 4) return WrongSize(name, v.size(), 4);
  return Get32(v.data());
}

std::string Text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t n) {
  uint8_t diff = 0;
  for (size_t i = 0; i < n; ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

}  // namespace

Authenticator Md5(std::span<const uint8_t> data) {
  Authenticator out = {};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_md5(), nullptr);
  return out;
}

absl::StatusOr<Packet> DecodePacket(std::span<const uint8_t> datagram) {
  if (datagram.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("datagram of ", datagram.size(), " octets, shorter than the 20-octet header"));
  }
  const size_t length = static_cast<size_t>(datagram[2]) << 8 | datagram[3];
  if (length < kHeaderSize || length > kMaxPacketSize) {
    return absl::InvalidArgumentError(absl::StrCat("Length field ", length, " is not in 20..4096"));
  }
  if (length > datagram.size()) {
    return absl::InvalidArgumentError(absl::StrCat("Length field ", length, " is past the end of the ",
                                                   datagram.size(), "-octet datagram"));
  }
  Packet p;
  p.code = datagram[0];
  p.identifier = datagram[1];
  std::memcpy(p.authenticator.data(), &datagram[4], kAuthenticatorSize);
  size_t at = kHeaderSize;
  while (at < length) {
    if (length - at < 2) {
      return absl::InvalidArgumentError(absl::StrCat("attribute header at octet ", at, " is cut short"));
    }
    const uint8_t type = datagram[at];
    const size_t attr_length = datagram[at + 1];
    if (attr_length < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute ", type, " at octet ", at, " has length ", attr_length, " (< 2)"));
    }
    if (attr_length > length - at) {
      return absl::InvalidArgumentError(absl::StrCat("attribute ", type, " at octet ", at, " (length ",
                                                     attr_length, ") runs past the packet's end"));
    }
    p.attributes.push_back(Attribute{
        type, std::vector<uint8_t>(datagram.begin() + at + 2, datagram.begin() + at + attr_length)});
    at += attr_length;
  }
  return p;
}

std::vector<uint8_t> EncodePacket(const Packet& packet) {
  std::vector<uint8_t> out(kHeaderSize);
  out[0] = packet.code;
  out[1] = packet.identifier;
  std::memcpy(&out[4], packet.authenticator.data(), kAuthenticatorSize);
  for (const Attribute& a : packet.attributes) {
    out.push_back(a.type);
    out.push_back(static_cast<uint8_t>(a.value.size() + 2));
    out.insert(out.end(), a.value.begin(), a.value.end());
  }
  out[2] = static_cast<uint8_t>(out.size() >> 8);
  out[3] = static_cast<uint8_t>(out.size());
  return out;
}

absl::StatusOr<Ipv6Prefix> DecodeIpv6PrefixValue(std::span<const uint8_t> value) {
  if (value.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("IPv6 prefix value is ", value.size(), " octets, at least 2"));
  }
  const int length = value[1];
  const size_t octets = value.size() - 2;
  if (length > 128) {
    return absl::InvalidArgumentError(absl::StrCat("IPv6 prefix length ", length, " is over 128"));
  }
  if (octets > 16) {
    return absl::InvalidArgumentError(absl::StrCat("IPv6 prefix has ", octets, " octets, at most 16"));
  }
  if (octets * 8 < static_cast<size_t>(length)) {
    return absl::InvalidArgumentError(absl::StrCat("IPv6 prefix /", length, " carried in ", octets,
                                                   " octets, too few to hold it"));
  }
  Ipv6Prefix p;
  p.length = length;
  std::copy(value.begin() + 2, value.end(), p.addr.bytes.begin());
  // Bits past the length are the sender's noise, not part of the prefix.
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(length - i * 8, 0, 8);
    p.addr.bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return p;
}

std::vector<uint8_t> EncodeIpv6PrefixValue(const Ipv6Prefix& prefix) {
  const size_t octets = std::min<size_t>(16, (static_cast<size_t>(prefix.length) + 7) / 8);
  std::vector<uint8_t> out(2 + octets);
  out[1] = static_cast<uint8_t>(prefix.length);
  for (size_t i = 0; i < octets; ++i) out[2 + i] = prefix.addr.bytes[i];
  return out;
}

absl::StatusOr<AccountingRequest> ParseAccountingRequest(const Packet& packet) {
  AccountingRequest r;
  bool seen_nas_ip = false, seen_nas_ipv6 = false, seen_user = false, seen_nas_id = false,
       seen_session = false, seen_port = false;
  for (const Attribute& a : packet.attributes) {
    const std::vector<uint8_t>& v = a.value;
    switch (a.type) {
      case kUserName:
        if (!seen_user) r.user_name = Text(v);
        seen_user = true;
        break;
      case kNasIdentifier:
        if (!seen_nas_id) r.nas_identifier = Text(v);
        seen_nas_id = true;
        break;
      case kAcctSessionId:
        if (!seen_session) r.acct_session_id = Text(v);
        seen_session = true;
        break;
      case kNasPortId:
        if (!seen_port) r.nas_port_id = Text(v);
        seen_port = true;
        break;
      case kNasIpAddress: {
        if (v.size() != 4) return WrongSize("NAS-IP-Address", v.size(), 4);
        if (!seen_nas_ip) r.nas_ip = Ipv4Address{Get32(v.data())};
        seen_nas_ip = true;
        break;
      }
      case kNasIpv6Address: {
        if (v.size() != 16) return WrongSize("NAS-IPv6-Address", v.size(), 16);
        if (!seen_nas_ipv6) {
          Ipv6Address addr;
          std::copy(v.begin(), v.end(), addr.bytes.begin());
          r.nas_ipv6 = addr;
        }
        seen_nas_ipv6 = true;
        break;
      }
      case kAcctStatusType: {
        absl::StatusOr<uint32_t> n = Integer("Acct-Status-Type", v);
        if (!n.ok()) return n.status();
        if (!r.status_type) r.status_type = *n;
        break;
      }
      case kEventTimestamp: {
        absl::StatusOr<uint32_t> n = Integer("Event-Timestamp", v);
        if (!n.ok()) return n.status();
        if (!r.event_timestamp) r.event_timestamp = *n;
        break;
      }
      case kAcctSessionTime: {
        absl::StatusOr<uint32_t> n = Integer("Acct-Session-Time", v);
        if (!n.ok()) return n.status();
        if (!r.acct_session_time) r.acct_session_time = *n;
        break;
      }
      case kFramedIpv6Prefix:
      case kDelegatedIpv6Prefix: {
        absl::StatusOr<Ipv6Prefix> p = DecodeIpv6PrefixValue(v);
        if (!p.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(a.type == kFramedIpv6Prefix ? "Framed-IPv6-Prefix: " : "Delegated-IPv6-Prefix: ",
                           p.status().message()));
        }
        (a.type == kFramedIpv6Prefix ? r.framed_prefixes : r.delegated_prefixes).push_back(*p);
        break;
      }
      case kFramedIpv6Address: {
        if (v.size() != 16) return WrongSize("Framed-IPv6-Address", v.size(), 16);
        Ipv6Address addr;
        std::copy(v.begin(), v.end(), addr.bytes.begin());
        r.framed_addresses.push_back(addr);
        break;
      }
      case kMessageAuthenticator:
        if (v.size() != kAuthenticatorSize) return WrongSize("Message-Authenticator", v.size(), 16);
        r.has_message_authenticator = true;
        break;
      default:
        break;  // everything else a BRAS sends (counters, Class, VSAs) is not ours to read
    }
  }
  return r;
}

Authenticator AccountingRequestAuthenticator(std::span<const uint8_t> packet,
                                             absl::string_view secret) {
  std::vector<uint8_t> buf(packet.begin(), packet.end());
  if (buf.size() >= kHeaderSize) std::fill(buf.begin() + 4, buf.begin() + kHeaderSize, 0);
  buf.insert(buf.end(), secret.begin(), secret.end());
  return Md5(buf);
}

bool VerifyAccountingRequest(std::span<const uint8_t> packet, absl::string_view secret) {
  if (packet.size() < kHeaderSize) return false;
  const Authenticator want = AccountingRequestAuthenticator(packet, secret);
  return ConstantTimeEqual(want.data(), &packet[4], kAuthenticatorSize);
}

bool VerifyMessageAuthenticator(std::span<const uint8_t> packet, absl::string_view secret) {
  if (packet.size() < kHeaderSize) return false;
  std::vector<uint8_t> buf(packet.begin(), packet.end());
  if (buf[0] == kAccountingRequest) std::fill(buf.begin() + 4, buf.begin() + kHeaderSize, 0);
  std::optional<size_t> value_at;
  for (size_t at = kHeaderSize; at + 2 <= buf.size() && buf[at + 1] >= 2;) {
    const size_t len = buf[at + 1];
    if (at + len > buf.size()) return false;
    if (buf[at] == kMessageAuthenticator) {
      if (len != 2 + kAuthenticatorSize || value_at) return false;  // one, of 16 octets
      value_at = at + 2;
      std::fill(buf.begin() + at + 2, buf.begin() + at + len, 0);
    }
    at += len;
  }
  if (!value_at) return true;
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_md5(), secret.data(), static_cast<int>(secret.size()), buf.data(), buf.size(), mac,
       &mac_len);
  return mac_len == kAuthenticatorSize && ConstantTimeEqual(mac, &packet[*value_at], kAuthenticatorSize);
}

bool HasMessageAuthenticator(std::span<const uint8_t> packet) {
  for (size_t at = kHeaderSize; at + 2 <= packet.size() && packet[at + 1] >= 2; at += packet[at + 1]) {
    if (packet[at] == kMessageAuthenticator) return true;
  }
  return false;
}

std::vector<uint8_t> AccountingResponse(uint8_t identifier, const Authenticator& request_authenticator,
                                        absl::string_view secret) {
  Packet p;
  p.code = kAccountingResponse;
  p.identifier = identifier;
  p.authenticator = request_authenticator;
  std::vector<uint8_t> out = EncodePacket(p);
  std::vector<uint8_t> signed_part = out;
  signed_part.insert(signed_part.end(), secret.begin(), secret.end());
  const Authenticator auth = Md5(signed_part);
  std::copy(auth.begin(), auth.end(), out.begin() + 4);
  return out;
}

}  // namespace aftr::subscribers
