// libFuzzer target for the PCP (RFC 6887) wire codec: arbitrary datagrams through
// ParseRequest, and every outcome's response through ErrorResponse / VersionResponse /
// EncodeResponse, with the invariants a PCP server's answers must keep. Input: the first 16
// octets are the source address (so a request can name it and get past ADDRESS_MISMATCH),
// the rest the datagram; shorter inputs are a datagram from ::. Built with clang
// -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt); ctest runs it for a
// bounded time from tests/fuzz/corpus/pcp_requests.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "control/pcp/pcp_message.h"

namespace {

using aftr::pcp::Address;
using aftr::pcp::Answer;
using aftr::pcp::Opcode;
using aftr::pcp::Parsed;
using aftr::pcp::Request;
using aftr::pcp::Result;
namespace pcp = aftr::pcp;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

size_t RoundUp4(size_t n) { return (n + 3) / 4 * 4; }

// What every response must be: whole words, at most 1100 octets, at least a header,
// version 2, R set, the opcode echoed, the result as given.
void CheckResponse(const std::vector<uint8_t>& out, uint8_t opcode, Result result) {
  Check(out.size() % 4 == 0);
  Check(out.size() <= pcp::kMaxMessage);
  Check(out.size() >= pcp::kHeaderSize);
  Check(out[0] == pcp::kVersion);
  Check((out[1] & pcp::kResponseBit) != 0);
  Check((out[1] & 0x7f) == (opcode & 0x7f));
  Check(out[2] == 0);
  Check(out[3] == static_cast<uint8_t>(result));
}

uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

bool SameRequest(const Request& a, const Request& b) {
  return a.opcode == b.opcode && a.requested_lifetime == b.requested_lifetime &&
         a.client_addr == b.client_addr && a.nonce == b.nonce && a.protocol == b.protocol &&
         a.internal_port == b.internal_port && a.suggested_port == b.suggested_port &&
         a.suggested_addr == b.suggested_addr && a.remote_port == b.remote_port &&
         a.remote_addr == b.remote_addr && a.third_party == b.third_party &&
         a.prefer_failure == b.prefer_failure && a.filters == b.filters;
}

void CheckRequest(std::span<const uint8_t> d, const Address& source, const Request& r) {
  // Only what section 8.3 lets through.
  Check(d.size() >= pcp::kHeaderSize && d.size() <= pcp::kMaxMessage && d.size() % 4 == 0);
  Check(d[0] == pcp::kVersion && (d[1] & pcp::kResponseBit) == 0);
  Check(static_cast<uint8_t>(r.opcode) == d[1]);
  Check(r.opcode == Opcode::kAnnounce || r.opcode == Opcode::kMap || r.opcode == Opcode::kPeer);
  Check(r.client_addr == source);
  Check(r.requested_lifetime == Get32(&d[4]));
  if (r.opcode == Opcode::kAnnounce) {
    Check(!r.third_party && !r.prefer_failure && r.filters.empty());
  }
  if (r.opcode == Opcode::kPeer) {
    Check(d.size() >= pcp::kHeaderSize + pcp::kPeerBodySize);
    Check(!r.prefer_failure && r.filters.empty());
    Check(r.protocol != 0 && r.internal_port != 0 && r.remote_port != 0);
  }
  if (r.opcode == Opcode::kMap) {
    Check(d.size() >= pcp::kHeaderSize + pcp::kMapBodySize);
    Check(r.protocol != 0 || r.internal_port == 0);
  }
  if (r.third_party) Check(*r.third_party != source);
  for (const pcp::Filter& f : r.filters) {
    Check(f.prefix_length == 0 ||
          (f.prefix_length >= 96 && f.prefix_length <= 128 && pcp::IsV4Mapped(f.remote_addr)));
  }

  // A SUCCESS response echoing what was honoured: bounded by the request (every echoed
  // option was in it) and by 1100 octets.
  Answer a;
  a.result = Result::kSuccess;
  a.lifetime = r.requested_lifetime;
  a.epoch = 12345;
  a.assigned_port = r.suggested_port;
  a.assigned_addr = r.suggested_addr;
  a.filters_echoed = r.filters;
  const std::vector<uint8_t> out = pcp::EncodeResponse(r, a);
  CheckResponse(out, d[1], Result::kSuccess);
  const size_t body = r.opcode == Opcode::kMap    ? pcp::kMapBodySize
                      : r.opcode == Opcode::kPeer ? pcp::kPeerBodySize
                                                  : 0;
  const size_t options =
      (r.third_party ? 20 : 0) + (r.prefer_failure ? 4 : 0) + 24 * a.filters_echoed.size();
  Check(out.size() == pcp::kHeaderSize + body + options);
  Check(out.size() <= d.size());
  Check(Get32(&out[4]) == a.lifetime && Get32(&out[8]) == a.epoch);
  for (size_t i = 12; i < pcp::kHeaderSize; ++i) Check(out[i] == 0);
  // The opcode fields and options as asked (assigned = suggested here).
  if (body) {
    Check(std::memcmp(&out[pcp::kHeaderSize], &d[pcp::kHeaderSize], 13) == 0);  // nonce, proto
    Check(std::memcmp(&out[pcp::kHeaderSize + 16], &d[pcp::kHeaderSize + 16], 20) == 0);
    if (r.opcode == Opcode::kPeer) {
      Check(std::memcmp(&out[pcp::kHeaderSize + 36], &d[pcp::kHeaderSize + 36], 2) == 0);
      Check(std::memcmp(&out[pcp::kHeaderSize + 40], &d[pcp::kHeaderSize + 40], 16) == 0);
    }
  }
  // The options: THIRD_PARTY, PREFER_FAILURE, then the FILTERs (section 7.3 layout).
  {
    size_t at = pcp::kHeaderSize + body;
    uint8_t last = 0;
    while (at < out.size()) {
      Check(out.size() - at >= 4);
      const uint8_t code = out[at];
      const size_t length = static_cast<size_t>(out[at + 2]) << 8 | out[at + 3];
      Check(out[at + 1] == 0);
      Check(code == 1 || code == 2 || code == 3);
      Check(code > last || code == 3);
      Check(length == (code == 1 ? 16u : code == 2 ? 0u : 20u));
      if (code == 3) Check(out[at + 4] == 0);  // the FILTER's reserved octet
      last = code;
      at += 4 + length;
    }
    Check(at == out.size());
  }
  // Under the request's header (R cleared), the response parses back to the same request.
  std::vector<uint8_t> back = out;
  std::copy(d.begin(), d.begin() + pcp::kHeaderSize, back.begin());
  const Parsed again = pcp::ParseRequest(back, source);
  Check(again.kind == Parsed::Kind::kRequest);
  Check(SameRequest(again.request, r));

  // The same request answered with only some of its filters echoed (a server may honour
  // fewer): still bounded, the options in their places. ANNOUNCE has no fields or options.
  Answer b = a;
  b.result = Result::kNoResources;
  b.filters_echoed.resize(d.size() / 4 % (r.filters.size() + 1));
  const std::vector<uint8_t> out2 = pcp::EncodeResponse(r, b);
  CheckResponse(out2, d[1], Result::kNoResources);
  Check(out2.size() <= out.size());
  Check(out2.size() == (r.opcode == Opcode::kAnnounce
                            ? pcp::kHeaderSize
                            : pcp::kHeaderSize + body + (r.third_party ? 20 : 0) +
                                  (r.prefer_failure ? 4 : 0) + 24 * b.filters_echoed.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Address source = {};
  std::span<const uint8_t> d(data, size);
  if (size >= source.size()) {
    std::memcpy(source.data(), data, source.size());
    d = d.subspan(source.size());
  }
  const uint8_t opcode = d.size() > 1 ? d[1] : 0;
  const Parsed p = pcp::ParseRequest(d, source);

  // Whatever the outcome, the error and version answers are well formed for any input.
  for (Result r : {Result::kMalformedRequest, Result::kNoResources}) {
    const std::vector<uint8_t> err = pcp::ErrorResponse(d, r, pcp::ErrorLifetime(r), 77);
    CheckResponse(err, opcode, r);
    Check(err.size() == std::max(pcp::kHeaderSize, RoundUp4(std::min(d.size(), pcp::kMaxMessage))));
    Check(Get32(&err[4]) == pcp::ErrorLifetime(r) && Get32(&err[8]) == 77);
    // The rest is the request echoed (the client address's last 96 bits in the reserved
    // field), then zero padding.
    for (size_t i = 12; i < err.size(); ++i) Check(err[i] == (i < d.size() ? d[i] : 0));
  }
  const std::vector<uint8_t> ver = pcp::VersionResponse(d, 77);
  CheckResponse(ver, opcode, Result::kUnsuppVersion);
  Check(ver.size() == pcp::kHeaderSize);
  Check(Get32(&ver[4]) == pcp::kLongErrorLifetime);
  CheckResponse(pcp::UnsolicitedAnnounce(77), 0, Result::kSuccess);

  switch (p.kind) {
    case Parsed::Kind::kDrop:
      // Only too short, a response, or a version-2 header cut short.
      Check(d.size() < 2 || (d[1] & pcp::kResponseBit) ||
            (d[0] == pcp::kVersion && d.size() < pcp::kHeaderSize));
      break;
    case Parsed::Kind::kError:
      // Section 8.3's size rule, for a version-2 request with a whole header.
      if (d[0] == pcp::kVersion && (d.size() > pcp::kMaxMessage || d.size() % 4 != 0)) {
        Check(p.error == Result::kMalformedRequest);
      }
      Check(p.error != Result::kSuccess);
      Check(d.size() >= 2 && (d[1] & pcp::kResponseBit) == 0);
      Check((p.error == Result::kUnsuppVersion) == (d[0] != pcp::kVersion));
      if (p.error != Result::kUnsuppVersion) Check(d.size() >= pcp::kHeaderSize);
      // Only the codes a parser can find.
      Check(p.error == Result::kUnsuppVersion || p.error == Result::kMalformedRequest ||
            p.error == Result::kUnsuppOpcode || p.error == Result::kUnsuppOption ||
            p.error == Result::kMalformedOption || p.error == Result::kAddressMismatch);
      if (p.error == Result::kUnsuppOpcode) Check((d[1] & 0x7f) > 2);
      break;
    case Parsed::Kind::kRequest:
      CheckRequest(d, source, p.request);
      break;
  }
  return 0;
}
