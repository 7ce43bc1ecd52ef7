// The RADIUS wire codec against golden packets computed outside the code under test (a
// Python hashlib one-off: MD5 per RFC 2866 section 3, HMAC-MD5 per RFC 3579 section 3.2,
// secret "s3cret"), and one test per framing or value rule, each failing if it were dropped.
#include "control/subscribers/radius_message.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace aftr::subscribers {
namespace {

using Bytes = std::vector<uint8_t>;

// Accounting-Request, Identifier 0x2a: Acct-Status-Type Start, User-Name "alice",
// Acct-Session-Id "0001", NAS-Identifier "bras1", Framed-IPv6-Prefix 2001:db8:a::/64 (8 prefix
// octets), Delegated-IPv6-Prefix 2001:db8:b::/56 (7 octets), Event-Timestamp 1700000000.
const Bytes kStart = {
    0x04, 0x2a, 0x00, 0x4b, 0x10, 0x36, 0x57, 0x2d, 0x51, 0xfe, 0xa5, 0x12, 0x74, 0x2d, 0x5d,
    0x60, 0x2b, 0xc4, 0xbc, 0x8b, 0x28, 0x06, 0x00, 0x00, 0x00, 0x01, 0x01, 0x07, 0x61, 0x6c,
    0x69, 0x63, 0x65, 0x2c, 0x06, 0x30, 0x30, 0x30, 0x31, 0x20, 0x07, 0x62, 0x72, 0x61, 0x73,
    0x31, 0x61, 0x0c, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, 0x7b, 0x0b,
    0x00, 0x38, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0b, 0x00, 0x37, 0x06, 0x65, 0x53, 0xf1, 0x00};
// Its Accounting-Response (no attributes).
const Bytes kStartResponse = {0x05, 0x2a, 0x00, 0x14, 0xe0, 0x90, 0xeb, 0x81, 0x0c, 0x4e,
                              0xa3, 0xe6, 0x53, 0xdb, 0xfa, 0xdd, 0x1d, 0x92, 0x31, 0xd4};
// Identifier 7: Interim-Update, Acct-Session-Id "0002", Framed-IPv6-Address 2001:db8:a::2,
// Message-Authenticator (HMAC-MD5 over the packet with authenticator and its value zeroed).
const Bytes kWithMessageAuthenticator = {
    0x04, 0x07, 0x00, 0x44, 0x39, 0x3c, 0x8a, 0xf9, 0x29, 0xa3, 0xcd, 0x77, 0x59, 0x58,
    0x85, 0xa6, 0xa6, 0xb7, 0xff, 0xaa, 0x28, 0x06, 0x00, 0x00, 0x00, 0x03, 0x2c, 0x06,
    0x30, 0x30, 0x30, 0x32, 0xa8, 0x12, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x50, 0x12, 0x2f, 0x7f, 0xfa, 0x58,
    0xa9, 0xe7, 0xeb, 0x05, 0x43, 0x81, 0x30, 0xa0, 0x8d, 0xaa, 0x44, 0x26};

Ipv6Prefix P(const char* text) { return *ParseIpv6Prefix(text); }

// A header (code 4, identifier 1, Length from `attributes`, zero authenticator) + attributes.
Bytes Framed(const Bytes& attributes) {
  Bytes out = {4, 1, 0, 0};
  out.resize(20);
  out.insert(out.end(), attributes.begin(), attributes.end());
  out[2] = static_cast<uint8_t>(out.size() >> 8);
  out[3] = static_cast<uint8_t>(out.size());
  return out;
}

// ParseAccountingRequest on a packet of one attribute.
absl::StatusOr<AccountingRequest> ParseOne(uint8_t type, const Bytes& value) {
  Packet p;
  p.code = kAccountingRequest;
  p.attributes.push_back(Attribute{type, value});
  return ParseAccountingRequest(p);
}

TEST_CASE("RADIUS golden Start decodes every attribute", "[radius]") {
  absl::StatusOr<Packet> p = DecodePacket(kStart);
  REQUIRE(p.ok());
  CHECK(p->code == kAccountingRequest);
  CHECK(p->identifier == 0x2a);
  CHECK(p->authenticator[0] == 0x10);
  CHECK(p->attributes.size() == 7);
  absl::StatusOr<AccountingRequest> r = ParseAccountingRequest(*p);
  REQUIRE(r.ok());
  CHECK(r->status_type == 1u);
  CHECK(r->user_name == "alice");
  CHECK(r->acct_session_id == "0001");
  CHECK(r->nas_identifier == "bras1");
  REQUIRE(r->framed_prefixes.size() == 1);
  CHECK(r->framed_prefixes[0] == P("2001:db8:a::/64"));
  REQUIRE(r->delegated_prefixes.size() == 1);
  CHECK(r->delegated_prefixes[0] == P("2001:db8:b::/56"));
  CHECK(r->event_timestamp == 1700000000u);
  CHECK_FALSE(r->has_message_authenticator);
  CHECK(EncodePacket(*p) == kStart);
}

TEST_CASE("RADIUS request authenticator accepts the right secret only", "[radius]") {
  CHECK(VerifyAccountingRequest(kStart, "s3cret"));
  CHECK_FALSE(VerifyAccountingRequest(kStart, "s3cret2"));
  CHECK_FALSE(VerifyAccountingRequest(kStart, ""));
  Bytes tampered = kStart;
  tampered[30] ^= 1;  // a letter of "alice"
  CHECK_FALSE(VerifyAccountingRequest(tampered, "s3cret"));
  // The authenticator written by the code equals the one in the golden packet.
  Authenticator want;
  std::copy(kStart.begin() + 4, kStart.begin() + 20, want.begin());
  CHECK(AccountingRequestAuthenticator(kStart, "s3cret") == want);
}

TEST_CASE("RADIUS response authenticator matches the golden response", "[radius]") {
  Authenticator request_auth;
  std::copy(kStart.begin() + 4, kStart.begin() + 20, request_auth.begin());
  CHECK(AccountingResponse(0x2a, request_auth, "s3cret") == kStartResponse);
  CHECK(AccountingResponse(0x2a, request_auth, "other") != kStartResponse);
}

TEST_CASE("RADIUS Message-Authenticator is verified with HMAC-MD5", "[radius]") {
  CHECK(VerifyAccountingRequest(kWithMessageAuthenticator, "s3cret"));
  CHECK(VerifyMessageAuthenticator(kWithMessageAuthenticator, "s3cret"));
  CHECK_FALSE(VerifyMessageAuthenticator(kWithMessageAuthenticator, "wrong"));
  Bytes tampered = kWithMessageAuthenticator;
  tampered.back() ^= 0x80;
  CHECK_FALSE(VerifyMessageAuthenticator(tampered, "s3cret"));
  CHECK(VerifyMessageAuthenticator(kStart, "s3cret"));  // none present: nothing to check
  CHECK(HasMessageAuthenticator(kWithMessageAuthenticator));
  CHECK_FALSE(HasMessageAuthenticator(kStart));
  absl::StatusOr<Packet> p = DecodePacket(kWithMessageAuthenticator);
  REQUIRE(p.ok());
  absl::StatusOr<AccountingRequest> r = ParseAccountingRequest(*p);
  REQUIRE(r.ok());
  CHECK(r->has_message_authenticator);
  CHECK(r->status_type == 3u);
  REQUIRE(r->framed_addresses.size() == 1);
  CHECK(r->framed_addresses[0] == *ParseIpv6("2001:db8:a::2"));
}

TEST_CASE("RADIUS attributes NAS-IP NAS-IPv6 NAS-Port-Id Session-Time decode", "[radius]") {
  auto r = ParseOne(kNasIpAddress, {192, 0, 2, 1});
  REQUIRE(r.ok());
  CHECK(r->nas_ip->ToString() == "192.0.2.1");
  Bytes v6(16);
  v6[0] = 0x20, v6[1] = 0x01, v6[2] = 0x0d, v6[3] = 0xb8, v6[15] = 9;
  r = ParseOne(kNasIpv6Address, v6);
  REQUIRE(r.ok());
  CHECK(r->nas_ipv6->ToString() == "2001:db8::9");
  r = ParseOne(kNasPortId, {'e', 't', '0', '/', '1'});
  REQUIRE(r.ok());
  CHECK(r->nas_port_id == "et0/1");
  r = ParseOne(kAcctSessionTime, {0, 0, 1, 0});
  REQUIRE(r.ok());
  CHECK(r->acct_session_time == 256u);
  r = ParseOne(kAcctStatusType, {0, 0, 0, 7});
  REQUIRE(r.ok());
  CHECK(r->status_type == 7u);
  // Unknown attributes are skipped, not refused.
  CHECK(ParseOne(26, {0, 0, 0x0d, 0xe9, 1, 3, 'x'}).ok());
}

TEST_CASE("RADIUS attribute values of the wrong size are refused", "[radius]") {
  auto message = [](absl::StatusOr<AccountingRequest> r) { return std::string(r.status().message()); };
  CHECK(message(ParseOne(kNasIpAddress, {192, 0, 2})) == "NAS-IP-Address is 3 octets, must be 4");
  CHECK_FALSE(ParseOne(kNasIpv6Address, Bytes(15)).ok());
  CHECK_FALSE(ParseOne(kAcctStatusType, {0, 0, 1}).ok());
  CHECK_FALSE(ParseOne(kEventTimestamp, {0, 0, 0, 0, 1}).ok());
  CHECK(message(ParseOne(kFramedIpv6Address, Bytes(8))) == "Framed-IPv6-Address is 8 octets, must be 16");
  CHECK_FALSE(ParseOne(kFramedIpv6Address, Bytes(17)).ok());
  CHECK_FALSE(ParseOne(kMessageAuthenticator, Bytes(15)).ok());
}

TEST_CASE("RADIUS RFC 3162 prefixes edge cases", "[radius]") {
  // ::/0 in no prefix octets; a /128 in 16.
  CHECK(*DecodeIpv6PrefixValue(Bytes{0, 0}) == P("::/0"));
  Bytes full = {0, 128, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(*DecodeIpv6PrefixValue(full) == P("2001:db8::1/128"));
  // A /64 in all 16 octets, host bits set: accepted, host bits cleared.
  Bytes sixteen = {0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(*DecodeIpv6PrefixValue(sixteen) == P("2001:db8:a::/64"));
  // A /57: the last octet keeps its top bit only.
  CHECK(*DecodeIpv6PrefixValue(Bytes{0, 57, 0x20, 0x01, 0x0d, 0xb8, 0, 0x0b, 0, 0xff}) ==
        P("2001:db8:b:80::/57"));
  // The reserved octet is ignored.
  CHECK(DecodeIpv6PrefixValue(Bytes{0xff, 0}).ok());

  auto message = [](const Bytes& v) { return std::string(DecodeIpv6PrefixValue(v).status().message()); };
  CHECK(message(Bytes{0}) == "IPv6 prefix value is 1 octets, at least 2");
  CHECK(message(Bytes{0, 129}) == "IPv6 prefix length 129 is over 128");
  Bytes too_long(19, 0);
  too_long[1] = 64;
  CHECK(message(too_long) == "IPv6 prefix has 17 octets, at most 16");
  CHECK(message(Bytes{0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0}) ==
        "IPv6 prefix /64 carried in 7 octets, too few to hold it");
  // Inside a packet, the attribute says which one was wrong.
  absl::StatusOr<AccountingRequest> r = ParseOne(kDelegatedIpv6Prefix, {0, 200});
  CHECK(std::string(r.status().message()) == "Delegated-IPv6-Prefix: IPv6 prefix length 200 is over 128");

  // The shortest encoding, and back.
  CHECK(EncodeIpv6PrefixValue(P("2001:db8:b::/56")) == Bytes{0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 0x0b, 0});
  CHECK(EncodeIpv6PrefixValue(P("::/0")) == Bytes{0, 0});
  CHECK(*DecodeIpv6PrefixValue(EncodeIpv6PrefixValue(P("2001:db8:b:80::/57"))) == P("2001:db8:b:80::/57"));
}

TEST_CASE("RADIUS framing rejects bad lengths", "[radius]") {
  auto message = [](const Bytes& d) { return std::string(DecodePacket(d).status().message()); };
  CHECK(message(Bytes(19, 0)) == "datagram of 19 octets, shorter than the 20-octet header");
  Bytes header = Framed({});
  header[3] = 19;  // Length below the header
  CHECK(message(header) == "Length field 19 is not in 20..4096");
  header[3] = 21;  // Length past the datagram
  CHECK(message(header) == "Length field 21 is past the end of the 20-octet datagram");
  Bytes big(4097, 0);
  big[0] = 4;
  big[2] = 0x10, big[3] = 0x01;  // 4097
  CHECK(message(big) == "Length field 4097 is not in 20..4096");
  big[3] = 0x00;  // 4096 in a 4097-octet datagram: the last octet is padding
  // (all attributes type 0 length 0: refused for the attribute, not the size)
  CHECK(message(big) == "attribute 0 at octet 20 has length 0 (< 2)");
  CHECK(message(Framed({1, 1})) == "attribute 1 at octet 20 has length 1 (< 2)");
  CHECK(message(Framed({1, 5, 'a', 'b'})) == "attribute 1 at octet 20 (length 5) runs past the packet's end");
  CHECK(message(Framed({1, 3, 'a', 44})) == "attribute header at octet 23 is cut short");
  // Octets past Length are padding: ignored.
  Bytes padded = kStart;
  padded.insert(padded.end(), {0xde, 0xad});
  absl::StatusOr<Packet> p = DecodePacket(padded);
  REQUIRE(p.ok());
  CHECK(EncodePacket(*p) == kStart);
  // An empty attribute value is framing-valid.
  CHECK(DecodePacket(Framed({1, 2})).ok());
}

}  // namespace
}  // namespace aftr::subscribers
