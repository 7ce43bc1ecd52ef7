// The PCP (RFC 6887) wire codec against golden bytes written from the RFC's figures
// (sections 7.1-7.3, 11.1, 12.1, 13.1-13.3), not from the code under test, and one test per
// validation rule of section 8.3 / 7.3 / 11-13, each of which fails if the rule were dropped.
#include "control/pcp/pcp_message.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace aftr::pcp {
namespace {

using Bytes = std::vector<uint8_t>;
using Kind = Parsed::Kind;

// 2001:db8::1, the B4 the requests come from.
constexpr Address kSource = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
// 2001:db8::2, someone else.
constexpr Address kOther = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};

Address Mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

// ---- Small builders, written from the RFC's figures (not from pcp_message.cc) ----

void Append(Bytes& out, std::initializer_list<uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
void Append(Bytes& out, const Address& a) { out.insert(out.end(), a.begin(), a.end()); }
void Append16(Bytes& out, uint16_t v) { Append(out, {uint8_t(v >> 8), uint8_t(v)}); }
void Append32(Bytes& out, uint32_t v) {
  Append(out, {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)});
}

// Section 7.1: version, R|opcode, 16 reserved bits, requested lifetime, client address.
Bytes Header(uint8_t opcode, uint32_t lifetime = 3600, const Address& client = kSource,
             uint8_t version = 2) {
  Bytes out;
  Append(out, {version, opcode, 0, 0});
  Append32(out, lifetime);
  Append(out, client);
  return out;
}

constexpr uint8_t kNonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

// Section 11.1: nonce, protocol, 24 reserved bits, internal port, suggested external port,
// suggested external address (36 octets).
void AppendMapBody(Bytes& out, uint8_t protocol = 6, uint16_t internal_port = 8080,
                   uint16_t suggested_port = 80, const Address& suggested = Mapped(192, 0, 2, 1)) {
  out.insert(out.end(), std::begin(kNonce), std::end(kNonce));
  Append(out, {protocol, 0, 0, 0});
  Append16(out, internal_port);
  Append16(out, suggested_port);
  Append(out, suggested);
}

// Section 12.1: the MAP fields, then remote peer port, 16 reserved bits, remote peer address
// (56 octets).
void AppendPeerBody(Bytes& out, uint8_t protocol = 17, uint16_t internal_port = 5000,
                    uint16_t remote_port = 53, const Address& remote = Mapped(192, 0, 2, 53)) {
  AppendMapBody(out, protocol, internal_port, 0, Mapped(0, 0, 0, 0));
  Append16(out, remote_port);
  Append(out, {0, 0});
  Append(out, remote);
}

// Section 7.3: code, reserved, length, data padded to a word.
void AppendOption(Bytes& out, uint8_t code, const Bytes& data, int length = -1) {
  Append(out, {code, 0});
  Append16(out, static_cast<uint16_t>(length < 0 ? data.size() : length));
  out.insert(out.end(), data.begin(), data.end());
  while (out.size() % 4) out.push_back(0);
}
void AppendThirdParty(Bytes& out, const Address& host = Mapped(10, 0, 0, 2)) {
  AppendOption(out, 1, Bytes(host.begin(), host.end()));
}
void AppendPreferFailure(Bytes& out) { AppendOption(out, 2, {}); }
// Section 13.3: reserved, prefix length, remote peer port, remote peer address.
void AppendFilter(Bytes& out, uint8_t prefix, uint16_t port, const Address& addr) {
  Bytes data = {0, prefix, uint8_t(port >> 8), uint8_t(port)};
  data.insert(data.end(), addr.begin(), addr.end());
  AppendOption(out, 3, data);
}

Bytes MapRequest() {
  Bytes r = Header(1);
  AppendMapBody(r);
  AppendThirdParty(r);
  return r;
}
Bytes PeerRequest() {
  Bytes r = Header(2);
  AppendPeerBody(r);
  AppendThirdParty(r);
  return r;
}

Parsed Parse(const Bytes& d, const Address& source = kSource) { return ParseRequest(d, source); }

void CheckError(const Bytes& d, Result expected) {
  Parsed p = Parse(d);
  INFO("size " << d.size() << ", expected " << ResultName(expected) << ", got "
               << ResultName(p.error));
  REQUIRE(p.kind == Kind::kError);
  CHECK(p.error == expected);
}

// ---- Golden bytes ----

TEST_CASE("pcp_message: ANNOUNCE: golden request and response", "[pcp][pcp_message]") {
  const Bytes request = {
      0x02, 0x00, 0x00, 0x00,                          // version 2, R=0 opcode 0, reserved
      0x00, 0x00, 0x00, 0x00,                          // requested lifetime 0
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,  // client address 2001:db8::1
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
  };
  Parsed p = Parse(request);
  REQUIRE(p.kind == Kind::kRequest);
  CHECK(p.request.opcode == Opcode::kAnnounce);
  CHECK(p.request.requested_lifetime == 0);
  CHECK(p.request.client_addr == kSource);
  CHECK_FALSE(p.request.third_party);
  CHECK_FALSE(p.request.prefer_failure);
  CHECK(p.request.filters.empty());

  Answer a;
  a.result = Result::kSuccess;
  a.lifetime = 0;
  a.epoch = 0x01020304;
  const Bytes expected = {
      0x02, 0x80, 0x00, 0x00,  // version 2, R=1 opcode 0, reserved, SUCCESS
      0x00, 0x00, 0x00, 0x00,  // lifetime 0
      0x01, 0x02, 0x03, 0x04,  // epoch
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // reserved
  };
  CHECK(EncodeResponse(p.request, a) == expected);
  CHECK(UnsolicitedAnnounce(0x01020304) == expected);
}

TEST_CASE("pcp_message: MAP with every option: golden request and response", "[pcp][pcp_message]") {
  const Bytes request = {
      0x02, 0x01, 0x00, 0x00,                          // version 2, MAP, reserved
      0x00, 0x00, 0x0e, 0x10,                          // requested lifetime 3600
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,  // client address 2001:db8::1
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      // MAP: nonce, protocol TCP, reserved, internal port 8080, suggested port 80,
      // suggested address ::ffff:192.0.2.1
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,  //
      0x06, 0x00, 0x00, 0x00,                                                  //
      0x1f, 0x90, 0x00, 0x50,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xc0, 0x00, 0x02, 0x01,                                                  //
      // THIRD_PARTY ::ffff:10.0.0.2
      0x01, 0x00, 0x00, 0x10,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0x0a, 0x00, 0x00, 0x02,                                                  //
      // PREFER_FAILURE
      0x02, 0x00, 0x00, 0x00,  //
      // an unknown optional option (200), 4 octets: skipped, not echoed
      0xc8, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,  //
      // FILTER /120 port 443 ::ffff:198.51.100.7
      0x03, 0x00, 0x00, 0x14,                                                  //
      0x00, 0x78, 0x01, 0xbb,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xc6, 0x33, 0x64, 0x07,                                                  //
  };
  REQUIRE(request.size() == 24 + 36 + 20 + 4 + 8 + 24);
  Parsed p = Parse(request);
  REQUIRE(p.kind == Kind::kRequest);
  const Request& r = p.request;
  CHECK(r.opcode == Opcode::kMap);
  CHECK(r.requested_lifetime == 3600);
  CHECK(r.client_addr == kSource);
  CHECK(r.nonce == Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  CHECK(r.protocol == 6);
  CHECK(r.internal_port == 8080);
  CHECK(r.suggested_port == 80);
  CHECK(r.suggested_addr == Mapped(192, 0, 2, 1));
  CHECK(r.remote_port == 0);
  REQUIRE(r.third_party);
  CHECK(*r.third_party == Mapped(10, 0, 0, 2));
  CHECK(r.prefer_failure);
  REQUIRE(r.filters.size() == 1);
  CHECK(r.filters[0] == Filter{120, 443, Mapped(198, 51, 100, 7)});

  Answer a;
  a.result = Result::kSuccess;
  a.lifetime = 1800;
  a.epoch = 1000;
  a.assigned_port = 40000;
  a.assigned_addr = Mapped(203, 0, 113, 5);
  a.filters_echoed = r.filters;
  const Bytes expected = {
      0x02, 0x81, 0x00, 0x00,  // version 2, R=1 MAP, reserved, SUCCESS
      0x00, 0x00, 0x07, 0x08,  // lifetime 1800
      0x00, 0x00, 0x03, 0xe8,  // epoch 1000
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // reserved
      // MAP: nonce, TCP, reserved, internal port 8080, assigned port 40000,
      // assigned address ::ffff:203.0.113.5
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,  //
      0x06, 0x00, 0x00, 0x00,                                                  //
      0x1f, 0x90, 0x9c, 0x40,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xcb, 0x00, 0x71, 0x05,                                                  //
      // THIRD_PARTY
      0x01, 0x00, 0x00, 0x10,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0x0a, 0x00, 0x00, 0x02,                                                  //
      // PREFER_FAILURE
      0x02, 0x00, 0x00, 0x00,  //
      // FILTER
      0x03, 0x00, 0x00, 0x14,                                                  //
      0x00, 0x78, 0x01, 0xbb,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xc6, 0x33, 0x64, 0x07,                                                  //
  };
  CHECK(EncodeResponse(r, a) == expected);
}

TEST_CASE("pcp_message: MAP echoes several FILTERs in order", "[pcp][pcp_message]") {
  Request r;
  r.opcode = Opcode::kMap;
  r.protocol = 17;
  Answer a;
  a.filters_echoed = {Filter{128, 1, Mapped(1, 2, 3, 4)}, Filter{96, 0, Mapped(0, 0, 0, 0)}};
  const Bytes out = EncodeResponse(r, a);
  REQUIRE(out.size() == 24 + 36 + 24 + 24);
  const Bytes first(out.begin() + 60, out.begin() + 84);
  const Bytes second(out.begin() + 84, out.end());
  CHECK(first == Bytes{0x03, 0, 0, 0x14, 0, 128, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                       1, 2, 3, 4});
  CHECK(second == Bytes{0x03, 0, 0, 0x14, 0, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                        0, 0, 0, 0});
}

TEST_CASE("pcp_message: PEER: golden request and response", "[pcp][pcp_message]") {
  const Bytes request = {
      0x02, 0x02, 0x00, 0x00,                          // version 2, PEER, reserved
      0x00, 0x00, 0x00, 0x78,                          // requested lifetime 120
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,  // client address 2001:db8::1
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      // PEER: nonce, UDP, reserved, internal port 5000, suggested port 0, suggested
      // address ::ffff:0.0.0.0, remote port 53, reserved, remote ::ffff:192.0.2.53
      0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  //
      0x11, 0x00, 0x00, 0x00,                                                  //
      0x13, 0x88, 0x00, 0x00,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0x00, 0x00, 0x00, 0x00,                                                  //
      0x00, 0x35, 0x00, 0x00,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xc0, 0x00, 0x02, 0x35,                                                  //
      // THIRD_PARTY ::ffff:10.0.0.3
      0x01, 0x00, 0x00, 0x10,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0x0a, 0x00, 0x00, 0x03,                                                  //
  };
  REQUIRE(request.size() == 24 + 56 + 20);
  Parsed p = Parse(request);
  REQUIRE(p.kind == Kind::kRequest);
  const Request& r = p.request;
  CHECK(r.opcode == Opcode::kPeer);
  CHECK(r.requested_lifetime == 120);
  CHECK(r.nonce == Nonce{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  CHECK(r.protocol == 17);
  CHECK(r.internal_port == 5000);
  CHECK(r.suggested_port == 0);
  CHECK(r.suggested_addr == Mapped(0, 0, 0, 0));
  CHECK(r.remote_port == 53);
  CHECK(r.remote_addr == Mapped(192, 0, 2, 53));
  REQUIRE(r.third_party);
  CHECK(*r.third_party == Mapped(10, 0, 0, 3));
  CHECK_FALSE(r.prefer_failure);
  CHECK(r.filters.empty());

  Answer a;
  a.result = Result::kSuccess;
  a.lifetime = 120;
  a.epoch = 7;
  a.assigned_port = 5000;
  a.assigned_addr = Mapped(203, 0, 113, 5);
  const Bytes expected = {
      0x02, 0x82, 0x00, 0x00,  // version 2, R=1 PEER, reserved, SUCCESS
      0x00, 0x00, 0x00, 0x78,  // lifetime 120
      0x00, 0x00, 0x00, 0x07,  // epoch 7
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // reserved
      0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  //
      0x11, 0x00, 0x00, 0x00,                                                  //
      0x13, 0x88, 0x13, 0x88,  // internal port, assigned port 5000
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xcb, 0x00, 0x71, 0x05,                                                  //
      0x00, 0x35, 0x00, 0x00,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0xc0, 0x00, 0x02, 0x35,                                                  //
      0x01, 0x00, 0x00, 0x10,                                                  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,  //
      0x0a, 0x00, 0x00, 0x03,                                                  //
  };
  CHECK(EncodeResponse(r, a) == expected);
}

TEST_CASE("pcp_message: responses carry a non-SUCCESS result code from the answer",
          "[pcp][pcp_message]") {
  Parsed p = Parse(MapRequest());
  REQUIRE(p.kind == Kind::kRequest);
  Answer a;
  a.result = Result::kCannotProvideExternal;
  a.lifetime = 30;
  const Bytes out = EncodeResponse(p.request, a);
  REQUIRE(out.size() == 24 + 36 + 20);
  CHECK(out[3] == 11);
  CHECK(out[7] == 30);
}

// ---- Section 8.3, in order ----

TEST_CASE("pcp_message: fewer than 2 octets are dropped", "[pcp][pcp_message]") {
  CHECK(Parse({}).kind == Kind::kDrop);
  CHECK(Parse({0x02}).kind == Kind::kDrop);
  CHECK(Parse({0x01}).kind == Kind::kDrop);  // not even a version answer
}

TEST_CASE("pcp_message: a message with the R bit is dropped", "[pcp][pcp_message]") {
  Bytes d = Header(0x80);  // a well-formed ANNOUNCE but for R
  CHECK(Parse(d).kind == Kind::kDrop);
  d = MapRequest();
  d[1] |= 0x80;
  CHECK(Parse(d).kind == Kind::kDrop);
  // R is looked at before the version.
  CHECK(Parse(Header(0x80, 0, kSource, 1)).kind == Kind::kDrop);
  CHECK(Parse(Bytes{0x03, 0x81}).kind == Kind::kDrop);
}

TEST_CASE("pcp_message: versions other than 2 get UNSUPP_VERSION", "[pcp][pcp_message]") {
  for (uint8_t version : {0, 1, 3, 255}) {
    INFO("version " << int(version));
    CheckError(Header(0, 0, kSource, version), Result::kUnsuppVersion);
    // Before the length checks: 2 octets are enough.
    CheckError(Bytes{version, 0x01}, Result::kUnsuppVersion);
  }
  for (uint8_t version : {1, 3}) {
    Bytes d = Header(1, 3600, kSource, version);
    AppendMapBody(d);
    const Bytes out = VersionResponse(d, 0x0a0b0c0d);
    const Bytes expected = {
        0x02, 0x81, 0x00, 0x01,  // version 2, R=1 opcode echoed, UNSUPP_VERSION
        0x00, 0x00, 0x07, 0x08,  // lifetime 1800 (long)
        0x0a, 0x0b, 0x0c, 0x0d,  // epoch
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    CHECK(out == expected);
  }
  // A 2-octet request still gets a whole header.
  const Bytes out = VersionResponse(Bytes{0x01, 0x00}, 5);
  REQUIRE(out.size() == 24);
  CHECK(out[0] == 2);
  CHECK(out[1] == 0x80);
  CHECK(out[3] == 1);
}

TEST_CASE("pcp_message: version 2 shorter than 24 octets is dropped", "[pcp][pcp_message]") {
  Bytes d = Header(0);
  d.pop_back();
  REQUIRE(d.size() == 23);
  CHECK(Parse(d).kind == Kind::kDrop);
  CHECK(Parse(Bytes{0x02, 0x00}).kind == Kind::kDrop);
  CHECK(Parse(Bytes(20, 0x02)).kind == Kind::kDrop);
  d.push_back(0x01);
  CHECK(Parse(d).kind == Kind::kRequest);  // 24: fine
}

TEST_CASE("pcp_message: a size not a multiple of 4 is MALFORMED_REQUEST, the error padded",
          "[pcp][pcp_message]") {
  Bytes d = Header(0);
  Append(d, {0xaa, 0xbb});
  REQUIRE(d.size() == 26);
  CheckError(d, Result::kMalformedRequest);
  const Bytes out = ErrorResponse(d, Result::kMalformedRequest, 1800, 9);
  REQUIRE(out.size() == 28);
  CHECK(out[0] == 2);
  CHECK(out[1] == 0x80);
  CHECK(out[3] == 3);
  CHECK(out[24] == 0xaa);
  CHECK(out[25] == 0xbb);
  CHECK(out[26] == 0);
  CHECK(out[27] == 0);
  // And before the address check: a 26-octet message from someone else is still malformed.
  CheckError(d, Result::kMalformedRequest);
  CHECK(Parse(d, kOther).error == Result::kMalformedRequest);
}

TEST_CASE("pcp_message: more than 1100 octets is MALFORMED_REQUEST, the error truncated",
          "[pcp][pcp_message]") {
  // ANNOUNCE + an optional option filling the message to exactly 1100: accepted.
  Bytes d = Header(0);
  AppendOption(d, 200, Bytes(1100 - 24 - 4, 0x5a));
  REQUIRE(d.size() == 1100);
  CHECK(Parse(d).kind == Kind::kRequest);
  // 1104: too long.
  d = Header(0);
  AppendOption(d, 200, Bytes(1104 - 24 - 4, 0x5a));
  REQUIRE(d.size() == 1104);
  CheckError(d, Result::kMalformedRequest);
  const Bytes out = ErrorResponse(d, Result::kMalformedRequest, 1800, 0);
  CHECK(out.size() == 1100);
  CHECK(out[3] == 3);
  CHECK(out[1099] == 0x5a);
}

TEST_CASE("pcp_message: unsupported opcodes", "[pcp][pcp_message]") {
  for (uint8_t opcode : {3, 5, 127}) {
    INFO("opcode " << int(opcode));
    Bytes d = Header(opcode);
    AppendPeerBody(d);  // whatever the body
    CheckError(d, Result::kUnsuppOpcode);
    CheckError(Header(opcode), Result::kUnsuppOpcode);
    // Before the address check.
    CHECK(Parse(Header(opcode), kOther).error == Result::kUnsuppOpcode);
    const Bytes out = ErrorResponse(d, Result::kUnsuppOpcode, 1800, 0);
    CHECK(out[1] == (0x80 | opcode));
  }
}

TEST_CASE("pcp_message: an opcode body too short is MALFORMED_REQUEST", "[pcp][pcp_message]") {
  Bytes map = Header(1);
  map.resize(24 + 20, 0);
  CheckError(map, Result::kMalformedRequest);
  CheckError(Header(1), Result::kMalformedRequest);
  Bytes peer = Header(2);
  AppendMapBody(peer);  // 36 octets: a MAP's body, not a PEER's
  REQUIRE(peer.size() == 24 + 36);
  CheckError(peer, Result::kMalformedRequest);
  peer.resize(24 + 52, 0);
  CheckError(peer, Result::kMalformedRequest);
  // Before the address check.
  CHECK(Parse(map, kOther).error == Result::kMalformedRequest);
}

TEST_CASE("pcp_message: a client address other than the source is ADDRESS_MISMATCH",
          "[pcp][pcp_message]") {
  CheckError(Header(0, 0, kOther), Result::kAddressMismatch);
  CHECK(Parse(MapRequest(), kOther).error == Result::kAddressMismatch);
  CHECK(Parse(PeerRequest(), kOther).error == Result::kAddressMismatch);
  // Only the last octet differs; and an IPv4-mapped client behind a NAT44.
  Address near = kSource;
  near[15] ^= 0x80;
  CHECK(Parse(Header(0, 0, near)).error == Result::kAddressMismatch);
  CHECK(Parse(Header(0, 0, Mapped(10, 0, 0, 1)), Mapped(192, 0, 2, 1)).error ==
        Result::kAddressMismatch);
  // Before the options: a mismatch with a bad option is still a mismatch.
  Bytes d = Header(0, 0, kOther);
  AppendOption(d, 42, {});
  CheckError(d, Result::kAddressMismatch);
}

// ---- Options (section 7.3) ----

TEST_CASE("pcp_message: unknown mandatory options are UNSUPP_OPTION", "[pcp][pcp_message]") {
  std::vector<uint8_t> codes = {0, 42, 127};
  for (uint8_t c = 4; c <= 13; ++c) codes.push_back(c);
  for (uint8_t code : codes) {
    INFO("option " << int(code));
    Bytes d = MapRequest();
    AppendOption(d, code, {1, 2, 3, 4});
    CheckError(d, Result::kUnsuppOption);
    d = Header(0);
    AppendOption(d, code, {});
    CheckError(d, Result::kUnsuppOption);
  }
}

TEST_CASE("pcp_message: unknown optional options are skipped", "[pcp][pcp_message]") {
  for (uint8_t code : {128, 200, 255}) {
    INFO("option " << int(code));
    Bytes d = MapRequest();
    AppendOption(d, code, {1, 2, 3, 4, 5});
    AppendPreferFailure(d);
    Parsed p = Parse(d);
    REQUIRE(p.kind == Kind::kRequest);
    CHECK(p.request.prefer_failure);  // the option after it was read
    // Not echoed.
    const Bytes out = EncodeResponse(p.request, Answer{});
    CHECK(out.size() == 24 + 36 + 20 + 4);
    d = Header(0);
    AppendOption(d, code, {});
    CHECK(Parse(d).kind == Kind::kRequest);
  }
}

TEST_CASE("pcp_message: an option running past the end is MALFORMED_OPTION", "[pcp][pcp_message]") {
  Bytes d = MapRequest();
  Append(d, {200, 0, 0, 8, 1, 2, 3, 4});  // says 8, has 4
  CheckError(d, Result::kMalformedOption);
  d = MapRequest();
  Append(d, {200, 0, 0, 5, 1, 2, 3, 4});  // 5 pads to 8, has 4
  CheckError(d, Result::kMalformedOption);
  d = MapRequest();
  Append(d, {200, 0, 0, 1, 1, 0, 0, 0});  // 1 pads to 4: fine
  CHECK(Parse(d).kind == Kind::kRequest);
  d = Header(0);
  Append(d, {200, 0, 0xff, 0xff});  // 65535 with nothing
  CheckError(d, Result::kMalformedOption);
  // THIRD_PARTY with its 16 octets cut short.
  d = Header(1);
  AppendMapBody(d);
  Append(d, {1, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0});
  CheckError(d, Result::kMalformedOption);
}

TEST_CASE("pcp_message: a truncated option header", "[pcp][pcp_message]") {
  // Options start on a word and every message is whole words, so a header cut short can only
  // arrive in a message whose size is not a multiple of 4, which section 8.3 rejects as
  // MALFORMED_REQUEST before the options are read.
  Bytes d = MapRequest();
  Append(d, {200, 0});
  CheckError(d, Result::kMalformedRequest);
  d = MapRequest();
  Append(d, {200});
  CheckError(d, Result::kMalformedRequest);
  // A whole 4-octet header with no data is an option.
  d = MapRequest();
  Append(d, {200, 0, 0, 0});
  CHECK(Parse(d).kind == Kind::kRequest);
}

TEST_CASE("pcp_message: THIRD_PARTY of the wrong length or twice is MALFORMED_OPTION",
          "[pcp][pcp_message]") {
  Bytes d = Header(1);
  AppendMapBody(d);
  AppendOption(d, 1, {10, 0, 0, 2});
  CheckError(d, Result::kMalformedOption);
  d = Header(1);
  AppendMapBody(d);
  AppendOption(d, 1, Bytes(20, 0));
  CheckError(d, Result::kMalformedOption);
  d = MapRequest();
  AppendThirdParty(d);
  CheckError(d, Result::kMalformedOption);
  d = MapRequest();
  AppendThirdParty(d, Mapped(10, 0, 0, 9));  // even a different host
  CheckError(d, Result::kMalformedOption);
  d = PeerRequest();
  AppendThirdParty(d);
  CheckError(d, Result::kMalformedOption);
}

TEST_CASE("pcp_message: PREFER_FAILURE of the wrong length or twice is MALFORMED_OPTION",
          "[pcp][pcp_message]") {
  Bytes d = MapRequest();
  AppendOption(d, 2, {0, 0, 0, 0});
  CheckError(d, Result::kMalformedOption);
  d = MapRequest();
  AppendPreferFailure(d);
  AppendPreferFailure(d);
  CheckError(d, Result::kMalformedOption);
  d = MapRequest();
  AppendPreferFailure(d);
  CHECK(Parse(d).kind == Kind::kRequest);
}

TEST_CASE("pcp_message: FILTER validation", "[pcp][pcp_message]") {
  const Address peer = Mapped(198, 51, 100, 0);
  SECTION("length other than 20") {
    for (size_t length : {0, 4, 16, 24}) {
      INFO("length " << length);
      Bytes d = MapRequest();
      Bytes data(length, 0);
      if (length >= 20) {
        data[1] = 120;
        std::copy(peer.begin(), peer.end(), data.begin() + 4);
      }
      AppendOption(d, 3, data);
      CheckError(d, Result::kMalformedOption);
    }
  }
  SECTION("prefix length over 128") {
    for (uint8_t prefix : {129, 200, 255}) {
      Bytes d = MapRequest();
      AppendFilter(d, prefix, 0, peer);
      CheckError(d, Result::kMalformedOption);
    }
  }
  SECTION("a prefix shorter than the IPv4-mapped prefix") {
    for (uint8_t prefix : {24, 1, 95}) {
      INFO("prefix " << int(prefix));
      Bytes d = MapRequest();
      AppendFilter(d, prefix, 0, peer);
      CheckError(d, Result::kMalformedOption);
    }
  }
  SECTION("a peer that is not IPv4-mapped") {
    for (uint8_t prefix : {64, 96, 128}) {
      INFO("prefix " << int(prefix));
      Bytes d = MapRequest();
      AppendFilter(d, prefix, 0, kOther);
      CheckError(d, Result::kMalformedOption);
    }
  }
  SECTION("accepted: 96, 120, 128, and 0 whatever the address") {
    Bytes d = MapRequest();
    AppendFilter(d, 96, 0, Mapped(0, 0, 0, 0));
    AppendFilter(d, 120, 443, peer);
    AppendFilter(d, 128, 80, Mapped(198, 51, 100, 9));
    AppendFilter(d, 0, 0, kOther);
    Parsed p = Parse(d);
    REQUIRE(p.kind == Kind::kRequest);
    REQUIRE(p.request.filters.size() == 4);
    CHECK(p.request.filters[0] == Filter{96, 0, Mapped(0, 0, 0, 0)});
    CHECK(p.request.filters[1] == Filter{120, 443, peer});
    CHECK(p.request.filters[2] == Filter{128, 80, Mapped(198, 51, 100, 9)});
    CHECK(p.request.filters[3] == Filter{0, 0, kOther});
  }
}

TEST_CASE("pcp_message: options not valid for the opcode are MALFORMED_REQUEST",
          "[pcp][pcp_message]") {
  SECTION("THIRD_PARTY in ANNOUNCE") {
    Bytes d = Header(0);
    AppendThirdParty(d);
    CheckError(d, Result::kMalformedRequest);
  }
  SECTION("PREFER_FAILURE in ANNOUNCE") {
    Bytes d = Header(0);
    AppendPreferFailure(d);
    CheckError(d, Result::kMalformedRequest);
  }
  SECTION("FILTER in ANNOUNCE") {
    Bytes d = Header(0);
    AppendFilter(d, 128, 0, Mapped(198, 51, 100, 1));
    CheckError(d, Result::kMalformedRequest);
  }
  SECTION("PREFER_FAILURE in PEER") {
    Bytes d = PeerRequest();
    AppendPreferFailure(d);
    CheckError(d, Result::kMalformedRequest);
  }
  SECTION("FILTER in PEER") {
    Bytes d = PeerRequest();
    AppendFilter(d, 128, 0, Mapped(198, 51, 100, 1));
    CheckError(d, Result::kMalformedRequest);
  }
  SECTION("THIRD_PARTY is fine in PEER, all three in MAP") {
    CHECK(Parse(PeerRequest()).kind == Kind::kRequest);
    Bytes d = MapRequest();
    AppendPreferFailure(d);
    AppendFilter(d, 128, 0, Mapped(198, 51, 100, 1));
    CHECK(Parse(d).kind == Kind::kRequest);
  }
}

// ---- Opcode fields (sections 11.1, 12.1, 13.1) ----

TEST_CASE("pcp_message: MAP: protocol 0 with an internal port is MALFORMED_REQUEST",
          "[pcp][pcp_message]") {
  Bytes d = Header(1);
  AppendMapBody(d, 0, 80);
  AppendThirdParty(d);
  CheckError(d, Result::kMalformedRequest);
  // Protocol 0, port 0 (every protocol, every port): fine.
  d = Header(1);
  AppendMapBody(d, 0, 0, 0, Mapped(0, 0, 0, 0));
  AppendThirdParty(d);
  CHECK(Parse(d).kind == Kind::kRequest);
  // A protocol with port 0 (every port): fine.
  d = Header(1);
  AppendMapBody(d, 6, 0);
  CHECK(Parse(d).kind == Kind::kRequest);
}

TEST_CASE("pcp_message: PEER: protocol, internal port and remote port must be set",
          "[pcp][pcp_message]") {
  Bytes d = Header(2);
  AppendPeerBody(d, 0, 5000, 53);
  CheckError(d, Result::kMalformedRequest);
  d = Header(2);
  AppendPeerBody(d, 17, 0, 53);
  CheckError(d, Result::kMalformedRequest);
  d = Header(2);
  AppendPeerBody(d, 17, 5000, 0);
  CheckError(d, Result::kMalformedRequest);
  d = Header(2);
  AppendPeerBody(d, 17, 5000, 53);
  CHECK(Parse(d).kind == Kind::kRequest);
}

TEST_CASE("pcp_message: THIRD_PARTY naming the source itself is MALFORMED_REQUEST",
          "[pcp][pcp_message]") {
  Bytes d = Header(1);
  AppendMapBody(d);
  AppendThirdParty(d, kSource);
  CheckError(d, Result::kMalformedRequest);
  d = Header(2);
  AppendPeerBody(d);
  AppendThirdParty(d, kSource);
  CheckError(d, Result::kMalformedRequest);
  d = Header(1);
  AppendMapBody(d);
  AppendThirdParty(d, kOther);
  CHECK(Parse(d).kind == Kind::kRequest);
}

// ---- Error responses ----

TEST_CASE("pcp_message: ErrorResponse of a MAP echoes the request under a response header",
          "[pcp][pcp_message]") {
  Bytes d = Header(1, 3600);
  AppendMapBody(d, 6, 8080, 1234, Mapped(192, 0, 2, 77));
  AppendThirdParty(d);
  const Bytes out = ErrorResponse(d, Result::kNoResources, 30, 99);
  REQUIRE(out.size() == d.size());
  const Bytes header(out.begin(), out.begin() + 12);
  CHECK(header == Bytes{0x02, 0x81, 0x00, 0x08, 0, 0, 0, 30, 0, 0, 0, 99});
  // Reserved: the last 96 bits of the client address 2001:db8::1.
  const Bytes reserved(out.begin() + 12, out.begin() + 24);
  CHECK(reserved == Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01});
  // Nonce, protocol, internal port as asked.
  CHECK(Bytes(out.begin() + 24, out.begin() + 36) == Bytes(std::begin(kNonce), std::end(kNonce)));
  CHECK(out[36] == 6);
  CHECK(out[40] == 0x1f);
  CHECK(out[41] == 0x90);
  // The suggested port and address where a response has the assigned ones.
  CHECK(out[42] == 0x04);
  CHECK(out[43] == 0xd2);
  const Address assigned = [&] {
    Address a;
    std::copy(out.begin() + 44, out.begin() + 60, a.begin());
    return a;
  }();
  CHECK(assigned == Mapped(192, 0, 2, 77));
  // The option echoed.
  CHECK(Bytes(out.begin() + 60, out.end()) == Bytes(d.begin() + 60, d.end()));

  // A client address with something in its last 96 bits.
  Address client = {0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc, 0xdd,
                    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
  const Bytes out2 = ErrorResponse(Header(0, 0, client), Result::kNotAuthorized, 1800, 0);
  REQUIRE(out2.size() == 24);
  CHECK(Bytes(out2.begin() + 12, out2.end()) ==
        Bytes{0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
  CHECK(out2[1] == 0x80);
  CHECK(out2[3] == 2);
}

TEST_CASE("pcp_message: reserved fields are ignored on receipt and zero in responses",
          "[pcp][pcp_message]") {
  // Section 7: reserved fields are sent as zero and ignored on receipt.
  Bytes d = Header(1);
  d[2] = 0xa5;
  d[3] = 0x5a;
  AppendMapBody(d);
  d[24 + 13] = d[24 + 14] = d[24 + 15] = 0xff;  // MAP reserved 24 bits
  AppendThirdParty(d);
  d[60 + 1] = 0x77;  // the option's reserved octet
  Parsed p = Parse(d);
  REQUIRE(p.kind == Kind::kRequest);
  CHECK(p.request.protocol == 6);
  CHECK(p.request.internal_port == 8080);
  REQUIRE(p.request.third_party);
  const Bytes out = EncodeResponse(p.request, Answer{});
  CHECK(out[2] == 0);
  CHECK(out[37] == 0);
  CHECK(out[38] == 0);
  CHECK(out[39] == 0);
  CHECK(out[61] == 0);
  // The echo of an error does not keep the request's reserved octets in the header.
  const Bytes err = ErrorResponse(d, Result::kNotAuthorized, 1800, 0);
  CHECK(err[2] == 0);
  CHECK(err[3] == 2);
  const Bytes ver = VersionResponse(d, 0);
  CHECK(ver[2] == 0);

  Bytes peer = Header(2);
  AppendPeerBody(peer);
  peer[24 + 38] = peer[24 + 39] = 0xee;  // PEER reserved 16 bits after the remote port
  p = Parse(peer);
  REQUIRE(p.kind == Kind::kRequest);
  CHECK(p.request.remote_port == 53);
  const Bytes pout = EncodeResponse(p.request, Answer{});
  CHECK(pout[24 + 38] == 0);
  CHECK(pout[24 + 39] == 0);
}

TEST_CASE("pcp_message: ErrorLifetime: short and long errors (section 7.4)", "[pcp][pcp_message]") {
  for (Result r : {Result::kNetworkFailure, Result::kNoResources, Result::kUserExQuota,
                   Result::kCannotProvideExternal}) {
    INFO(ResultName(r));
    CHECK(ErrorLifetime(r) == 30);
  }
  for (Result r : {Result::kUnsuppVersion, Result::kNotAuthorized, Result::kMalformedRequest,
                   Result::kUnsuppOpcode, Result::kUnsuppOption, Result::kMalformedOption,
                   Result::kUnsuppProtocol, Result::kAddressMismatch,
                   Result::kExcessiveRemotePeers}) {
    INFO(ResultName(r));
    CHECK(ErrorLifetime(r) == 1800);
  }
}

TEST_CASE("pcp_message: addresses: IsAllZeros, IsV4Mapped, V4Mapped, V4Of", "[pcp][pcp_message]") {
  CHECK(IsAllZeros(Address{}));
  CHECK(IsAllZeros(Mapped(0, 0, 0, 0)));
  CHECK_FALSE(IsAllZeros(Mapped(0, 0, 0, 1)));
  CHECK_FALSE(IsAllZeros(kSource));
  Address one = {};
  one[15] = 1;
  CHECK_FALSE(IsAllZeros(one));  // ::1
  Address ffff = {};
  ffff[10] = 0xff;  // ::ff00:0:0, neither
  CHECK_FALSE(IsAllZeros(ffff));

  CHECK(IsV4Mapped(Mapped(192, 0, 2, 1)));
  CHECK_FALSE(IsV4Mapped(kSource));
  CHECK_FALSE(IsV4Mapped(Address{}));
  CHECK(V4Mapped(Ipv4Address{0xc0000201}) == Mapped(192, 0, 2, 1));
  CHECK(V4Of(Mapped(198, 51, 100, 7)).host_order == 0xc6336407u);
}

TEST_CASE("pcp_message: ResultName", "[pcp][pcp_message]") {
  const char* const expected[] = {"SUCCESS",
                                  "UNSUPP_VERSION",
                                  "NOT_AUTHORIZED",
                                  "MALFORMED_REQUEST",
                                  "UNSUPP_OPCODE",
                                  "UNSUPP_OPTION",
                                  "MALFORMED_OPTION",
                                  "NETWORK_FAILURE",
                                  "NO_RESOURCES",
                                  "UNSUPP_PROTOCOL",
                                  "USER_EX_QUOTA",
                                  "CANNOT_PROVIDE_EXTERNAL",
                                  "ADDRESS_MISMATCH",
                                  "EXCESSIVE_REMOTE_PEERS"};
  static_assert(std::size(expected) == kResultCount);
  for (int i = 0; i < kResultCount; ++i) {
    INFO("code " << i);
    CHECK(std::string(ResultName(static_cast<Result>(i))) == expected[i]);
  }
  CHECK(std::string(ResultName(static_cast<Result>(14))) == "UNKNOWN");
  CHECK(std::string(ResultName(static_cast<Result>(255))) == "UNKNOWN");
}

}  // namespace
}  // namespace aftr::pcp
