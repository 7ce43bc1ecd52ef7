// IPv4 reassembly and fragmentation (control/fragments). Packets are built here from RFC 791's
// header layout with a checksum written from RFC 1071, not with the code under test; results
// are compared with the bytes the test started from.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "control/fragments/ipv4_fragmenter.h"
#include "control/fragments/ipv4_reassembler.h"

namespace aftr::fragments {
namespace {

using Bytes = std::vector<uint8_t>;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
const ReassemblyContext kInternet{};
// 2001:db8:100::1 and 2001:db8:100::2, two B4s.
const ReassemblyContext kB4One{0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const ReassemblyContext kB4Two{0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

constexpr uint16_t kDf = 0x4000;
constexpr uint16_t kMf = 0x2000;

uint16_t Get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// RFC 1071 over the header, checksum field included.
uint16_t OnesSum(const Bytes& b, size_t length) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < length; i += 2) sum += Get16(b, i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
size_t HeaderLength(const Bytes& p) { return size_t{p[0] & 0x0fu} * 4; }
bool ChecksumOk(const Bytes& p) { return OnesSum(p, HeaderLength(p)) == 0xffff; }
void FixChecksum(Bytes& p) {
  Put16(p, 10, 0);
  Put16(p, 10, static_cast<uint16_t>(~OnesSum(p, HeaderLength(p))));
}

struct Ip {
  uint32_t source = 0xc0000201;       // 192.0.2.1 (behind a B4)
  uint32_t destination = 0xcb007105;  // 203.0.113.5
  uint8_t protocol = 17;
  uint16_t id = 0x1234;
  uint8_t ttl = 64;
  uint16_t flags_offset = 0;          // flags and offset in 8-byte units, as on the wire
  Bytes options;                      // padded by the caller to whole words
};

Bytes Packet(const Ip& ip, const Bytes& payload) {
  Bytes p(20, 0);
  p[0] = static_cast<uint8_t>(0x40 | (20 + ip.options.size()) / 4);
  p.insert(p.end(), ip.options.begin(), ip.options.end());
  p.insert(p.end(), payload.begin(), payload.end());
  Put16(p, 2, static_cast<uint16_t>(p.size()));
  Put16(p, 4, ip.id);
  Put16(p, 6, ip.flags_offset);
  p[8] = ip.ttl;
  p[9] = ip.protocol;
  for (int i = 0; i < 4; ++i) {
    p[12 + i] = static_cast<uint8_t>(ip.source >> (24 - 8 * i));
    p[16 + i] = static_cast<uint8_t>(ip.destination >> (24 - 8 * i));
  }
  FixChecksum(p);
  return p;
}

Bytes Payload(size_t n, uint8_t seed = 1) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return b;
}

// The fragment of `payload` [from, to) of datagram `ip`, built by hand.
Bytes Fragment(Ip ip, const Bytes& payload, size_t from, size_t to, bool more) {
  ip.flags_offset = static_cast<uint16_t>((ip.flags_offset & kDf) | (more ? kMf : 0) | from / 8);
  return Packet(ip, Bytes(payload.begin() + from, payload.begin() + to));
}

// Hand-made fragments of `payload` at the given cut points (each a multiple of 8).
std::vector<Bytes> Cut(const Ip& ip, const Bytes& payload, std::initializer_list<size_t> cuts) {
  std::vector<size_t> at = {0};
  at.insert(at.end(), cuts.begin(), cuts.end());
  at.push_back(payload.size());
  std::vector<Bytes> out;
  for (size_t i = 0; i + 1 < at.size(); ++i) {
    out.push_back(Fragment(ip, payload, at[i], at[i + 1], i + 2 < at.size()));
  }
  return out;
}

using AddResult = absl::StatusOr<std::optional<Bytes>>;

AddResult Add(Ipv4Reassembler& r, const Bytes& p, absl::Time now = kT0,
              const ReassemblyContext& context = kInternet) {
  return r.Add(context, p, now);
}

bool Pending(const AddResult& result) { return result.ok() && !result->has_value(); }

// Feeds all but the last to `r` (each must be pending) and returns what the last gives.
AddResult FeedAll(Ipv4Reassembler& r, const std::vector<Bytes>& fragments,
                  const ReassemblyContext& context = kInternet) {
  for (size_t i = 0; i + 1 < fragments.size(); ++i) {
    INFO("fragment " << i);
    REQUIRE(Pending(Add(r, fragments[i], kT0, context)));
  }
  return Add(r, fragments.back(), kT0, context);
}

void RequireDatagram(const AddResult& result, const Bytes& expected) {
  REQUIRE(result.ok());
  REQUIRE(result->has_value());
  CHECK(**result == expected);
}

void RequireMalformed(Ipv4Reassembler& r, const Bytes& p) {
  const uint64_t before = r.counters().malformed;
  const AddResult result = Add(r, p);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.counters().malformed == before + 1);
}

// ---- Reassembly ----

TEST_CASE("fragments: a packet that is not a fragment comes back whole at once",
          "[fragments]") {
  Ipv4Reassembler r;
  const Bytes p = Packet({}, Payload(100));
  Bytes with_trailer = p;
  with_trailer.insert(with_trailer.end(), {0xee, 0xee, 0xee});  // Ethernet padding, say
  RequireDatagram(Add(r, with_trailer), p);
  Ip df;
  df.flags_offset = kDf;
  const Bytes q = Packet(df, Payload(10));
  RequireDatagram(Add(r, q), q);
  CHECK(r.pending_datagrams() == 0);
  CHECK(r.counters().fragments == 0);
}

TEST_CASE("fragments: in order, reversed and every order of four fragments", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(100);
  const Bytes whole = Packet(ip, payload);
  const std::vector<Bytes> fragments = Cut(ip, payload, {24, 48, 80});

  Ipv4Reassembler r;
  RequireDatagram(FeedAll(r, fragments), whole);
  CHECK(r.counters().fragments == 4);
  CHECK(r.counters().reassembled == 1);
  CHECK(r.pending_datagrams() == 0);
  CHECK(r.pending_bytes() == 0);

  std::vector<Bytes> reversed(fragments.rbegin(), fragments.rend());
  RequireDatagram(FeedAll(r, reversed), whole);

  std::vector<size_t> order(fragments.size());
  std::iota(order.begin(), order.end(), 0);
  int permutations = 0;
  do {
    std::vector<Bytes> shuffled;
    for (size_t i : order) shuffled.push_back(fragments[i]);
    INFO("permutation " << permutations);
    RequireDatagram(FeedAll(r, shuffled), whole);
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  CHECK(permutations == 24);
  CHECK(r.counters().reassembled == 26);
  CHECK(r.pending_datagrams() == 0);
}

TEST_CASE("fragments: the result has the first fragment's header and options", "[fragments]") {
  Ip ip;
  ip.flags_offset = kDf;  // DF on fragments is odd but kept as the first one had it
  // Record Route (7, not copied), then Security-like option 130 (copied), then End.
  ip.options = {7, 7, 4, 0, 0, 0, 0, 130, 4, 0xab, 0xcd, 0};
  const Bytes payload = Payload(64);
  std::vector<Bytes> fragments = Cut(ip, payload, {32});
  // The later fragment carries only the copied option and another TTL: the first one wins.
  Ip later = ip;
  later.options = {130, 4, 0xab, 0xcd};
  later.ttl = 12;
  fragments[1] = Fragment(later, payload, 32, 64, false);

  Ipv4Reassembler r;
  std::reverse(fragments.begin(), fragments.end());
  const AddResult result = FeedAll(r, fragments);
  RequireDatagram(result, Packet(ip, payload));
  const Bytes& out = **result;
  CHECK(HeaderLength(out) == 32);
  CHECK(Get16(out, 2) == out.size());
  CHECK(Get16(out, 6) == kDf);
  CHECK(out[8] == 64);
  CHECK(ChecksumOk(out));
}

TEST_CASE("fragments: exact duplicates are ignored", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(72);
  const std::vector<Bytes> fragments = Cut(ip, payload, {24, 48});
  Ipv4Reassembler r;
  REQUIRE(Pending(Add(r, fragments[1])));
  REQUIRE(Pending(Add(r, fragments[1])));
  REQUIRE(Pending(Add(r, fragments[0])));
  REQUIRE(Pending(Add(r, fragments[0])));
  REQUIRE(Pending(Add(r, fragments[1])));
  CHECK(r.counters().fragments == 2);
  CHECK(r.pending_bytes() == 48);
  RequireDatagram(Add(r, fragments[2]), Packet(ip, payload));
  CHECK(r.counters().overlapping == 0);
  // A copy arriving after the datagram completed starts a new one.
  REQUIRE(Pending(Add(r, fragments[2])));
  CHECK(r.pending_datagrams() == 1);
}

TEST_CASE("fragments: overlapping fragments with the same bytes are accepted", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(96);
  Ipv4Reassembler r;
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 16, 48, true))));
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 24, true))));   // overlaps the head
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 40, 64, true))));  // overlaps the tail
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 8, 56, true))));   // inside what is held
  CHECK(r.pending_bytes() == 64);
  CHECK(r.counters().fragments == 3);  // the last one added nothing: a duplicate
  RequireDatagram(Add(r, Fragment(ip, payload, 0, 96, false)), Packet(ip, payload));
  CHECK(r.counters().overlapping == 0);
}

TEST_CASE("fragments: a last fragment that adds no bytes still ends the datagram",
          "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(48);
  Ipv4Reassembler r;
  // A zero-length last fragment right after the data.
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 24, true))));
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 24, 48, true))));
  RequireDatagram(Add(r, Fragment(ip, payload, 48, 48, false)), Packet(ip, payload));
  // A last fragment whose bytes are all held already.
  REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 48, true))));
  RequireDatagram(Add(r, Fragment(ip, payload, 40, 48, false)), Packet(ip, payload));
  CHECK(r.counters().reassembled == 2);
}

TEST_CASE("fragments: overlapping fragments with different bytes drop the datagram",
          "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(96);
  Bytes forged = payload;
  forged[30] ^= 0xff;
  const std::vector<Bytes> fragments = Cut(ip, payload, {32, 64});

  for (const bool same_offset : {true, false}) {
    INFO("same offset " << same_offset);
    Ipv4Reassembler r;
    REQUIRE(Pending(Add(r, fragments[0])));
    const Bytes conflicting = same_offset ? Fragment(ip, forged, 0, 32, true)
                                          : Fragment(ip, forged, 24, 40, true);
    REQUIRE(Pending(Add(r, conflicting)));
    CHECK(r.counters().overlapping == 1);
    CHECK(r.pending_datagrams() == 0);
    CHECK(r.pending_bytes() == 0);
    // Later fragments of that key start afresh: the set completes, the dropped one is not used.
    REQUIRE(Pending(Add(r, fragments[2])));
    REQUIRE(Pending(Add(r, fragments[1])));
    RequireDatagram(Add(r, fragments[0]), Packet(ip, payload));
  }
}

TEST_CASE("fragments: a missing middle fragment times out", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(72);
  const std::vector<Bytes> fragments = Cut(ip, payload, {24, 48});
  ReassemblyLimits limits;
  limits.timeout = absl::Seconds(5);
  Ipv4Reassembler r(limits);
  REQUIRE(Pending(Add(r, fragments[0], kT0)));
  REQUIRE(Pending(Add(r, fragments[2], kT0 + absl::Seconds(3))));
  r.Expire(kT0 + absl::Seconds(5));  // exactly the timeout: not more than it
  CHECK(r.pending_datagrams() == 1);
  r.Expire(kT0 + absl::Seconds(5) + absl::Milliseconds(1));
  CHECK(r.pending_datagrams() == 0);
  CHECK(r.pending_bytes() == 0);
  CHECK(r.counters().timed_out == 1);
  // The middle arriving late starts a new datagram: nothing completes.
  REQUIRE(Pending(Add(r, fragments[1], kT0 + absl::Seconds(6))));
  CHECK(r.pending_datagrams() == 1);
  CHECK(r.counters().reassembled == 0);
}

TEST_CASE("fragments: Add expires what timed out before using the table", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(72);
  const std::vector<Bytes> fragments = Cut(ip, payload, {24, 48});
  Ipv4Reassembler r;
  REQUIRE(Pending(Add(r, fragments[0], kT0)));
  REQUIRE(Pending(Add(r, fragments[1], kT0 + absl::Seconds(6))));  // the first one expired
  CHECK(r.counters().timed_out == 1);
  CHECK(r.pending_bytes() == 24);
  REQUIRE(Pending(Add(r, fragments[0], kT0 + absl::Seconds(6))));
  RequireDatagram(Add(r, fragments[2], kT0 + absl::Seconds(11)), Packet(ip, payload));

  // The age counts from the first fragment, not the latest.
  const absl::Time t = kT0 + absl::Seconds(20);
  REQUIRE(Pending(Add(r, fragments[0], t)));
  REQUIRE(Pending(Add(r, fragments[1], t + absl::Seconds(4))));
  REQUIRE(Pending(Add(r, fragments[2], t + absl::Seconds(6))));
  CHECK(r.counters().timed_out == 2);
  CHECK(r.counters().reassembled == 1);
  CHECK(r.pending_bytes() == 24);
}

TEST_CASE("fragments: a clock stepping back does not make a newer datagram older",
          "[fragments]") {
  const Bytes payload = Payload(48);
  Ip a, b;
  a.id = 1;
  b.id = 2;
  Ipv4Reassembler r;
  REQUIRE(Pending(Add(r, Fragment(a, payload, 0, 24, true), kT0 + absl::Seconds(10))));
  REQUIRE(Pending(Add(r, Fragment(b, payload, 0, 24, true), kT0)));  // the clock went back
  RequireDatagram(Add(r, Fragment(a, payload, 24, 48, false), kT0), Packet(a, payload));
  // b counts as arriving at +10 s, like the one before it, so it lives until +15 s.
  r.Expire(kT0 + absl::Seconds(15));
  CHECK(r.pending_datagrams() == 1);
  r.Expire(kT0 + absl::Seconds(16));
  CHECK(r.pending_datagrams() == 0);
  CHECK(r.counters().timed_out == 1);
}

TEST_CASE("fragments: the oldest datagrams are evicted when the table is full", "[fragments]") {
  ReassemblyLimits limits;
  limits.max_datagrams = 3;
  Ipv4Reassembler r(limits);
  const Bytes payload = Payload(48);
  std::vector<std::vector<Bytes>> sets;
  for (uint16_t id = 1; id <= 4; ++id) {
    Ip ip;
    ip.id = id;
    sets.push_back(Cut(ip, payload, {24}));
    REQUIRE(Pending(Add(r, sets.back()[0], kT0 + absl::Milliseconds(id))));
    CHECK(r.pending_datagrams() == std::min<size_t>(id, 3));
  }
  CHECK(r.counters().evicted == 1);
  // Datagram 1 is gone: its last fragment starts a new one (evicting datagram 2).
  REQUIRE(Pending(Add(r, sets[0][1])));
  CHECK(r.counters().evicted == 2);
  Ip ip4;
  ip4.id = 4;
  RequireDatagram(Add(r, sets[3][1]), Packet(ip4, payload));
  Ip ip3;
  ip3.id = 3;
  RequireDatagram(Add(r, sets[2][1]), Packet(ip3, payload));
  CHECK(r.pending_datagrams() == 1);
}

TEST_CASE("fragments: the oldest datagrams are evicted when the bytes are full", "[fragments]") {
  ReassemblyLimits limits;
  limits.max_bytes = 100;
  Ipv4Reassembler r(limits);
  const Bytes payload = Payload(48);
  std::vector<Ip> ips(3);
  for (uint16_t i = 0; i < 3; ++i) ips[i].id = static_cast<uint16_t>(100 + i);

  REQUIRE(Pending(Add(r, Fragment(ips[0], payload, 0, 40, true))));
  REQUIRE(Pending(Add(r, Fragment(ips[1], payload, 0, 40, true))));
  CHECK(r.pending_bytes() == 80);
  // A third datagram of 40 bytes does not fit beside 80: the oldest goes.
  REQUIRE(Pending(Add(r, Fragment(ips[2], payload, 0, 40, true))));
  CHECK(r.counters().evicted == 1);
  CHECK(r.pending_datagrams() == 2);
  CHECK(r.pending_bytes() == 80);
  // 8 more bytes fit: the two newer ones complete, the oldest's tail starts a new datagram.
  RequireDatagram(Add(r, Fragment(ips[2], payload, 40, 48, false)), Packet(ips[2], payload));
  RequireDatagram(Add(r, Fragment(ips[1], payload, 40, 48, false)), Packet(ips[1], payload));
  REQUIRE(Pending(Add(r, Fragment(ips[0], payload, 40, 48, false))));
  CHECK(r.pending_bytes() == 8);
  CHECK(r.counters().evicted == 1);
}

TEST_CASE("fragments: a datagram growing past the byte limit evicts older ones first",
          "[fragments]") {
  ReassemblyLimits limits;
  limits.max_bytes = 100;
  Ipv4Reassembler r(limits);
  const Bytes payload = Payload(96);
  Ip older, newer;
  older.id = 1;
  newer.id = 2;
  REQUIRE(Pending(Add(r, Fragment(older, payload, 0, 32, true))));
  REQUIRE(Pending(Add(r, Fragment(newer, payload, 0, 32, true))));
  // The newer one needs 64 more bytes: 32 + 32 + 64 > 100, the older one is evicted.
  RequireDatagram(Add(r, Fragment(newer, payload, 32, 96, false)), Packet(newer, payload));
  CHECK(r.counters().evicted == 1);
  CHECK(r.pending_datagrams() == 0);

  // When the growing datagram is itself the oldest, it is the one evicted.
  REQUIRE(Pending(Add(r, Fragment(older, payload, 0, 32, true))));
  REQUIRE(Pending(Add(r, Fragment(newer, payload, 0, 32, true))));
  REQUIRE(Pending(Add(r, Fragment(older, payload, 32, 96, false))));
  CHECK(r.counters().evicted == 2);
  CHECK(r.pending_datagrams() == 1);
  CHECK(r.pending_bytes() == 32);
  RequireDatagram(Add(r, Fragment(newer, payload, 32, 96, false)), Packet(newer, payload));

  // A fragment bigger than the whole byte budget is never held.
  const Bytes big = Payload(200);
  REQUIRE(Pending(Add(r, Fragment(older, big, 0, 104, true))));
  CHECK(r.pending_datagrams() == 0);
  CHECK(r.counters().evicted == 3);
}

TEST_CASE("fragments: too many fragments drop the datagram", "[fragments]") {
  ReassemblyLimits limits;
  limits.max_fragments_per_datagram = 3;
  Ipv4Reassembler r(limits);
  const Ip ip;
  const Bytes payload = Payload(40);
  const std::vector<Bytes> fragments = Cut(ip, payload, {8, 16, 24});
  REQUIRE(Pending(Add(r, fragments[0])));
  REQUIRE(Pending(Add(r, fragments[1])));
  REQUIRE(Pending(Add(r, fragments[2])));
  REQUIRE(Pending(Add(r, fragments[3])));
  CHECK(r.counters().too_many_fragments == 1);
  CHECK(r.pending_datagrams() == 0);
  // Three fragments are fine.
  RequireDatagram(FeedAll(r, Cut(ip, payload, {16, 24})), Packet(ip, payload));
}

TEST_CASE("fragments: the context separates two B4s with equal inner packets",
          "[fragments]") {
  const Ip ip;  // same addresses, protocol and identification behind both B4s
  const Bytes payload_one = Payload(64, 1);
  const Bytes payload_two = Payload(64, 99);
  const std::vector<Bytes> one = Cut(ip, payload_one, {32});
  const std::vector<Bytes> two = Cut(ip, payload_two, {32});
  Ipv4Reassembler r;
  REQUIRE(Pending(Add(r, one[0], kT0, kB4One)));
  REQUIRE(Pending(Add(r, two[0], kT0, kB4Two)));
  REQUIRE(Pending(Add(r, one[1], kT0, kInternet)));  // same packet from the Internet: separate
  CHECK(r.pending_datagrams() == 3);
  RequireDatagram(Add(r, two[1], kT0, kB4Two), Packet(ip, payload_two));
  RequireDatagram(Add(r, one[1], kT0, kB4One), Packet(ip, payload_one));
  CHECK(r.counters().overlapping == 0);
  CHECK(r.pending_datagrams() == 1);
}

TEST_CASE("fragments: the other key fields separate datagrams too", "[fragments]") {
  const Bytes payload = Payload(64);
  Ip base;
  Ip other_source = base, other_destination = base, other_protocol = base, other_id = base;
  other_source.source ^= 1;
  other_destination.destination ^= 1;
  other_protocol.protocol = 6;
  other_id.id ^= 1;
  Ipv4Reassembler r;
  for (const Ip& ip : {base, other_source, other_destination, other_protocol, other_id}) {
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 32, true))));
  }
  CHECK(r.pending_datagrams() == 5);
  RequireDatagram(Add(r, Fragment(other_protocol, payload, 32, 64, false)),
                  Packet(other_protocol, payload));
}

TEST_CASE("fragments: malformed headers are refused", "[fragments]") {
  Ipv4Reassembler r;
  const Bytes good = Fragment({}, Payload(64), 0, 32, true);

  RequireMalformed(r, Bytes(good.begin(), good.begin() + 19));  // shorter than a header
  Bytes p = good;
  p[0] = 0x65;  // version 6
  FixChecksum(p);
  RequireMalformed(r, p);
  p = good;
  p[0] = 0x44;  // IHL 4
  RequireMalformed(r, p);
  p = Bytes(good.begin(), good.begin() + 22);
  p[0] = 0x46;  // IHL 6 but 22 bytes
  Put16(p, 2, 22);
  RequireMalformed(r, p);
  p = good;
  Put16(p, 2, 19);  // tot_len shorter than the header
  FixChecksum(p);
  RequireMalformed(r, p);
  p = good;
  Put16(p, 2, static_cast<uint16_t>(good.size() + 1));  // tot_len past the bytes
  FixChecksum(p);
  RequireMalformed(r, p);
  p = good;
  p[11] ^= 1;  // bad checksum
  RequireMalformed(r, p);
  CHECK(r.counters().malformed == 7);
  CHECK(r.counters().fragments == 0);
  CHECK(r.pending_datagrams() == 0);
}

TEST_CASE("fragments: malformed fragments are refused and drop their datagram",
          "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(96);
  Ipv4Reassembler r;
  // Each case: a pending datagram (fragment 0..32), then the bad fragment; the datagram goes.
  auto expect_dropped = [&](const Bytes& bad) {
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 32, true))));
    REQUIRE(r.pending_datagrams() == 1);
    RequireMalformed(r, bad);
    CHECK(r.pending_datagrams() == 0);
    CHECK(r.pending_bytes() == 0);
  };
  SECTION("a zero-length fragment with MF set") {
    expect_dropped(Fragment(ip, payload, 40, 40, true));
  }
  SECTION("a fragment with MF set whose payload is not a multiple of 8") {
    expect_dropped(Fragment(ip, payload, 32, 44, true));
  }
  SECTION("a second last fragment with a different end") {
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 32, true))));
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 64, 96, false))));
    RequireMalformed(r, Fragment(ip, payload, 64, 88, false));
    CHECK(r.pending_datagrams() == 0);
  }
  SECTION("data past the end known from the last fragment") {
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 32, true))));
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 40, 48, false))));
    RequireMalformed(r, Fragment(ip, payload, 48, 64, true));
    CHECK(r.pending_datagrams() == 0);
  }
  SECTION("a last fragment ending before data already held") {
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, 32, true))));
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 64, 80, true))));
    RequireMalformed(r, Fragment(ip, payload, 32, 48, false));
    CHECK(r.pending_datagrams() == 0);
  }
  SECTION("a fragment ending past 65515 bytes of payload") {
    Ip far = ip;
    far.flags_offset = static_cast<uint16_t>(65512 / 8);  // 65512 + 8 > 65535 - 20
    expect_dropped(Packet(far, Payload(8)));
  }
  SECTION("a datagram longer than 65535 bytes with the first fragment's options") {
    Ip with_options = ip;
    with_options.options = Bytes(40, 1);  // 60-byte header, NOPs
    REQUIRE(Pending(Add(r, Fragment(with_options, payload, 0, 32, true))));
    // 65480 + 16 = 65496 payload bytes: fine with 20 header bytes, not with 60.
    Ip far = ip;
    far.flags_offset = static_cast<uint16_t>(65480 / 8);
    RequireMalformed(r, Packet(far, Payload(16)));
    CHECK(r.pending_datagrams() == 0);
    // The same tail first, then the long-headed first fragment.
    REQUIRE(Pending(Add(r, Packet(far, Payload(16)))));
    RequireMalformed(r, Fragment(with_options, payload, 0, 32, true));
    CHECK(r.pending_datagrams() == 0);
  }
  CHECK(r.counters().reassembled == 0);
}

TEST_CASE("fragments: memory stays bounded under a flood of incomplete datagrams",
          "[fragments]") {
  ReassemblyLimits limits;
  limits.max_datagrams = 64;
  limits.max_bytes = 20'000;
  Ipv4Reassembler r(limits);
  const Bytes payload = Payload(1480);
  std::mt19937 random(7);
  for (int i = 0; i < 20'000; ++i) {
    Ip ip;
    ip.id = static_cast<uint16_t>(random());
    ip.source = 0xc0000200 | (random() & 0xff);
    const size_t length = 8 * (1 + random() % 180);
    REQUIRE(Pending(Add(r, Fragment(ip, payload, 0, length, true),
                        kT0 + absl::Microseconds(i))));
    REQUIRE(r.pending_datagrams() <= limits.max_datagrams);
    REQUIRE(r.pending_bytes() <= limits.max_bytes);
  }
  CHECK(r.counters().evicted > 19'000);
  r.Expire(kT0 + absl::Seconds(60));
  CHECK(r.pending_datagrams() == 0);
  CHECK(r.pending_bytes() == 0);
}

// ---- Fragmentation ----

struct Header {
  size_t header_length;
  size_t total_length;
  bool more;
  size_t offset;  // bytes
};
Header Read(const Bytes& p) {
  return {HeaderLength(p), Get16(p, 2), (Get16(p, 6) & kMf) != 0, size_t{Get16(p, 6) & 0x1fffu} * 8};
}

TEST_CASE("fragments: a packet that fits is returned unchanged", "[fragments]") {
  const Bytes p = Packet({}, Payload(1480));
  for (const size_t mtu : {size_t{1500}, size_t{9000}}) {
    auto out = FragmentIpv4(p, mtu);
    REQUIRE(out.ok());
    REQUIRE(out->size() == 1);
    CHECK(out->front() == p);
  }
  Bytes padded = p;
  padded.push_back(0);
  auto out = FragmentIpv4(padded, 1500);
  REQUIRE(out.ok());
  CHECK(out->front() == p);  // the byte past tot_len is not part of the packet
  Ip df;
  df.flags_offset = kDf;
  const Bytes small_df = Packet(df, Payload(48));
  out = FragmentIpv4(small_df, 68);  // exactly fits, DF does not matter
  REQUIRE(out.ok());
  CHECK(out->front() == small_df);
}

TEST_CASE("fragments: DF set and too big is refused", "[fragments]") {
  Ip df;
  df.flags_offset = kDf;
  const Bytes p = Packet(df, Payload(1481));
  auto out = FragmentIpv4(p, 1500);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("fragments: MTU edge cases", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(100);
  const Bytes p = Packet(ip, payload);  // 120 bytes

  auto out = FragmentIpv4(p, 67);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(FragmentIpv4(Packet(ip, Payload(4)), 67).ok());  // even if it would fit

  out = FragmentIpv4(p, 68);  // 48 payload bytes per fragment: 48 + 48 + 4
  REQUIRE(out.ok());
  REQUIRE(out->size() == 3);
  CHECK((*out)[0] == Fragment(ip, payload, 0, 48, true));
  CHECK((*out)[1] == Fragment(ip, payload, 48, 96, true));
  CHECK((*out)[2] == Fragment(ip, payload, 96, 100, false));

  out = FragmentIpv4(p, 120);  // exact fit
  REQUIRE(out.ok());
  REQUIRE(out->size() == 1);
  CHECK(out->front() == p);

  out = FragmentIpv4(p, 119);  // one byte over: 96 (a multiple of 8 under 99), then 4
  REQUIRE(out.ok());
  REQUIRE(out->size() == 2);
  CHECK((*out)[0] == Fragment(ip, payload, 0, 96, true));
  CHECK((*out)[1] == Fragment(ip, payload, 96, 100, false));

  // An MTU that is not header + multiple of 8 rounds the payload down.
  out = FragmentIpv4(Packet(ip, Payload(200)), 75);
  REQUIRE(out.ok());
  for (size_t i = 0; i + 1 < out->size(); ++i) CHECK((*out)[i].size() == 68);
}

TEST_CASE("fragments: only options with the copy flag are repeated", "[fragments]") {
  Ip ip;
  ip.id = 0xbeef;
  ip.ttl = 3;
  // NOP, Record Route (7, not copied, 7 bytes), Loose Source Route (131, copied, 7 bytes),
  // Timestamp (68, not copied, 8 bytes), Router Alert-like 148 (copied, 4 bytes), End, pad.
  ip.options = {1,   7, 7, 4, 0, 0, 0, 0, 131, 7, 4, 192, 0, 2, 9,
                68, 8, 5, 0, 0, 0, 0, 0, 148, 4, 0, 0, 0, 0, 0, 0};
  ip.options.resize(32);
  const Bytes payload = Payload(300);
  const Bytes p = Packet(ip, payload);  // 52-byte header
  auto out = FragmentIpv4(p, 200);
  REQUIRE(out.ok());
  REQUIRE(out->size() >= 2);
  // The first keeps all options; the rest carry 131 and 148 only, padded to 12 bytes.
  CHECK(Read(out->front()).header_length == 52);
  CHECK(Bytes(out->front().begin() + 20, out->front().begin() + 52) == ip.options);
  const Bytes copied = {131, 7, 4, 192, 0, 2, 9, 148, 4, 0, 0, 0};
  size_t expected_offset = 0;
  for (size_t i = 0; i < out->size(); ++i) {
    const Bytes& f = (*out)[i];
    INFO("fragment " << i);
    const Header h = Read(f);
    CHECK(h.total_length == f.size());
    CHECK(f.size() <= 200);
    CHECK(ChecksumOk(f));
    CHECK(h.offset == expected_offset);
    CHECK(h.more == (i + 1 < out->size()));
    if (i > 0) {
      CHECK(h.header_length == 32);
      CHECK(Bytes(f.begin() + 20, f.begin() + 32) == copied);
    }
    if (h.more) CHECK((f.size() - h.header_length) % 8 == 0);
    CHECK(Get16(f, 4) == 0xbeef);
    CHECK(f[8] == 3);
    CHECK(Bytes(f.begin() + h.header_length, f.end()) ==
          Bytes(payload.begin() + h.offset, payload.begin() + h.offset + f.size() - h.header_length));
    expected_offset += f.size() - h.header_length;
  }
  CHECK(expected_offset == payload.size());
}

TEST_CASE("fragments: malformed packets are not fragmented", "[fragments]") {
  const Bytes good = Packet({}, Payload(200));
  Bytes p = good;
  p[11] ^= 1;
  CHECK_FALSE(FragmentIpv4(p, 100).ok());
  CHECK_FALSE(FragmentIpv4(Bytes(good.begin(), good.begin() + 100), 68).ok());  // truncated
  Ip bad_option;
  bad_option.options = {7, 9, 4, 0};  // Record Route claiming 9 bytes in a 4-byte area
  CHECK_FALSE(FragmentIpv4(Packet(bad_option, Payload(200)), 100).ok());
  bad_option.options = {1, 1, 1, 7};  // a length byte missing
  CHECK_FALSE(FragmentIpv4(Packet(bad_option, Payload(200)), 100).ok());
  bad_option.options = {1, 7, 1, 0};  // a length under 2
  CHECK_FALSE(FragmentIpv4(Packet(bad_option, Payload(200)), 100).ok());
  Ip ok_option;
  ok_option.options = {0, 7, 1, 0};  // garbage after End of Options is ignored
  CHECK(FragmentIpv4(Packet(ok_option, Payload(200)), 100).ok());
}

TEST_CASE("fragments: a fragment can be fragmented again", "[fragments]") {
  const Ip ip;
  const Bytes payload = Payload(2000);
  const Bytes whole = Packet(ip, payload);
  // Fragments of 1000, 1000 bytes at 1020, then each again at 300.
  auto first_pass = FragmentIpv4(whole, 1020);
  REQUIRE(first_pass.ok());
  REQUIRE(first_pass->size() == 2);
  CHECK(Read((*first_pass)[1]).offset == 1000);

  std::vector<Bytes> all;
  for (size_t i = 0; i < first_pass->size(); ++i) {
    const bool was_more = Read((*first_pass)[i]).more;
    auto second = FragmentIpv4((*first_pass)[i], 300);
    REQUIRE(second.ok());
    REQUIRE(second->size() == 4);  // 280 * 3 + 160
    size_t offset = Read((*first_pass)[i]).offset;
    for (size_t j = 0; j < second->size(); ++j) {
      const Header h = Read((*second)[j]);
      CHECK(h.offset == offset);
      CHECK(h.more == (j + 1 < second->size() || was_more));
      CHECK(ChecksumOk((*second)[j]));
      offset += h.total_length - h.header_length;
      all.push_back((*second)[j]);
    }
  }
  std::mt19937 random(3);
  std::shuffle(all.begin(), all.end(), random);
  Ipv4Reassembler r;
  RequireDatagram(FeedAll(r, all), whole);
}

TEST_CASE("fragments: fragment, shuffle and reassemble gives the original bytes",
          "[fragments]") {
  ReassemblyLimits limits;
  limits.max_fragments_per_datagram = 2048;  // 65515 bytes at MTU 68 is 1365 fragments
  Ipv4Reassembler r(limits);
  std::mt19937 random(2026);
  const std::vector<Bytes> option_sets = {
      {},
      {1, 1, 1, 0},                                   // NOPs: not copied
      {7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0},          // Record Route: not copied
      {137, 7, 4, 198, 51, 100, 7, 0},                // Strict Source Route: copied
      {130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 68, 8, 5, 0, 0, 0, 0, 0},  // copied and not
  };
  int datagrams = 0;
  for (const size_t size : {1u, 7u, 8u, 47u, 48u, 49u, 100u, 555u, 1480u, 1481u, 4000u,
                            9000u, 65515u - 40u}) {
    for (const size_t mtu : {68u, 69u, 76u, 100u, 576u, 1280u, 1500u, 9000u}) {
      for (size_t o = 0; o < option_sets.size(); ++o) {
        if (size > 20000 && (mtu < 576 || o % 2)) continue;  // keep the big ones quick
        Ip ip;
        ip.id = static_cast<uint16_t>(random());
        ip.options = option_sets[o];
        ip.options.resize((ip.options.size() + 3) / 4 * 4);
        const Bytes whole = Packet(ip, Payload(size, static_cast<uint8_t>(random())));
        INFO("size " << size << " mtu " << mtu << " options " << o);
        auto fragments = FragmentIpv4(whole, mtu);
        REQUIRE(fragments.ok());
        for (const Bytes& f : *fragments) {
          REQUIRE(f.size() <= mtu);
          REQUIRE(ChecksumOk(f));
        }
        CHECK((fragments->size() == 1) == (whole.size() <= mtu));
        std::shuffle(fragments->begin(), fragments->end(), random);
        RequireDatagram(FeedAll(r, *fragments), whole);
        ++datagrams;
      }
    }
  }
  CHECK(r.pending_datagrams() == 0);
  CHECK(datagrams > 400);
}

}  // namespace
}  // namespace aftr::fragments
