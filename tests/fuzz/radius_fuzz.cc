// libFuzzer target for the RADIUS wire codec (control/subscribers/radius_message): arbitrary
// datagrams through DecodePacket, ParseAccountingRequest and the authenticator checks, with
// the invariants a server relies on: framing only accepts what RFC 2865 section 3 allows,
// decode -> encode -> decode is stable, prefixes come out valid and re-encode to themselves,
// and a packet signed with a secret verifies with it and no other. Built with clang
// -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt); ctest runs it for a
// bounded time from tests/fuzz/corpus/radius_requests.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "control/subscribers/radius_message.h"

namespace {

namespace rs = aftr::subscribers;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// A prefix as the decoder must produce it: length 0..128, no bit set past it.
void CheckPrefix(const aftr::Ipv6Prefix& p) {
  Check(p.length >= 0 && p.length <= 128);
  for (int bit = p.length; bit < 128; ++bit) Check((p.addr.bytes[bit / 8] & (0x80 >> (bit % 8))) == 0);
  const absl::StatusOr<aftr::Ipv6Prefix> again = rs::DecodeIpv6PrefixValue(rs::EncodeIpv6PrefixValue(p));
  Check(again.ok() && *again == p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> d(data, size);
  const absl::StatusOr<rs::Packet> p = rs::DecodePacket(d);
  // Whatever the input, the checks of the signatures never crash.
  (void)rs::VerifyAccountingRequest(d, "s3cret");
  (void)rs::VerifyMessageAuthenticator(d, "s3cret");
  // Any attribute value as a prefix: valid or refused.
  if (size >= 1 && size <= 40) {
    const absl::StatusOr<aftr::Ipv6Prefix> prefix = rs::DecodeIpv6PrefixValue(d);
    if (prefix.ok()) {
      Check(size >= 2 && size <= 18 && d[1] <= 128 && (size - 2) * 8 >= d[1]);
      CheckPrefix(*prefix);
    }
  }
  if (!p.ok()) {
    Check(!p.status().message().empty());
    return 0;
  }

  // Framing: only what section 3 allows.
  Check(size >= rs::kHeaderSize);
  const size_t length = static_cast<size_t>(d[2]) << 8 | d[3];
  Check(length >= rs::kHeaderSize && length <= rs::kMaxPacketSize && length <= size);
  Check(p->code == d[0] && p->identifier == d[1]);
  size_t attribute_octets = 0;
  for (const rs::Attribute& a : p->attributes) {
    Check(a.value.size() <= 253);
    attribute_octets += 2 + a.value.size();
  }
  Check(rs::kHeaderSize + attribute_octets == length);

  // decode -> encode gives the packet's octets (padding dropped), and decodes to the same.
  const std::vector<uint8_t> encoded = rs::EncodePacket(*p);
  Check(encoded.size() == length && std::equal(encoded.begin(), encoded.end(), d.begin()));
  const absl::StatusOr<rs::Packet> again = rs::DecodePacket(encoded);
  Check(again.ok() && *again == *p);

  // The values: everything that parses is in range.
  const absl::StatusOr<rs::AccountingRequest> r = rs::ParseAccountingRequest(*p);
  if (r.ok()) {
    for (const aftr::Ipv6Prefix& x : r->framed_prefixes) CheckPrefix(x);
    for (const aftr::Ipv6Prefix& x : r->delegated_prefixes) CheckPrefix(x);
    size_t prefix_attributes = 0;
    for (const rs::Attribute& a : p->attributes) {
      prefix_attributes += a.type == rs::kFramedIpv6Prefix || a.type == rs::kDelegatedIpv6Prefix;
    }
    Check(prefix_attributes == r->framed_prefixes.size() + r->delegated_prefixes.size());
  }

  // Signed with a secret, the packet verifies with that secret and not with another; its
  // response is a 20-octet Accounting-Response echoing the identifier.
  std::vector<uint8_t> signed_packet = encoded;
  const rs::Authenticator auth = rs::AccountingRequestAuthenticator(signed_packet, "s3cret");
  std::copy(auth.begin(), auth.end(), signed_packet.begin() + 4);
  Check(rs::VerifyAccountingRequest(signed_packet, "s3cret"));
  Check(!rs::VerifyAccountingRequest(signed_packet, "s3cret!"));
  const std::vector<uint8_t> response = rs::AccountingResponse(p->identifier, auth, "s3cret");
  Check(response.size() == rs::kHeaderSize && response[0] == rs::kAccountingResponse &&
        response[1] == p->identifier && response[2] == 0 && response[3] == rs::kHeaderSize);
  return 0;
}
