// The IPFIX wire format (RFC 7011) and the NAT records (RFC 8158, IANA elements) against
// golden bytes written by hand from the RFCs and the IANA registry, not from the encoder.
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/time.h"
#include "control/common/ip.h"
#include "control/ipfix/ipfix_codec.h"
#include "control/ipfix/message_packer.h"
#include "control/ipfix/nat_records.h"

namespace aftr::ipfix {
namespace {

using Bytes = std::vector<uint8_t>;
using events::EventType;
using events::NatEvent;

// 2026-11-27T09:21:44.138Z = 1795771304138 ms = 0x000001a21c4f88ca.
constexpr int64_t kEventMs = 1795771304138;
#define TIME_BYTES 0x00, 0x00, 0x01, 0xa2, 0x1c, 0x4f, 0x88, 0xca
// 2001:db8:a::2
#define B4A_BYTES 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02

Ipv6Address V6(const char* text) { return *ParseIpv6(text); }
Ipv4Address V4(const char* text) { return *ParseIpv4(text); }

RecordPolicy PerSession() {
  RecordPolicy p;
  p.per_session = true;
  p.b4_prefix_length = 128;
  p.max_entries_per_user = 2048;
  p.max_sessions_per_subscriber = 4096;
  p.max_sessions = 1048576;
  p.max_subscribers = 65536;
  return p;
}

NatEvent Event(EventType type) {
  NatEvent e;
  e.type = type;
  e.time = absl::FromUnixMillis(kEventMs);
  e.b4 = V6("2001:db8:a::2");
  e.proto = 17;
  e.inner_addr = V4("192.0.0.2");
  e.inner_port = 40000;  // 0x9c40
  e.public_addr = V4("198.51.100.1");
  e.public_port = 1030;  // 0x0406
  return e;
}

Bytes Encode(const NatEvent& e, const RecordPolicy& p, uint16_t want_template,
             const IdentityLookup& identity = nullptr) {
  Bytes out;
  REQUIRE(EncodeNatRecord(e, p, identity, &out) == want_template);
  return out;
}

TEST_CASE("ipfix message header is version 10, length, export time, sequence, domain", "[ipfix]") {
  Bytes m(16);
  WriteMessageHeader(m, 0x0040, 0x6a2e1f00, 0x01020304, 7);
  CHECK(m == Bytes{0x00, 0x0a, 0x00, 0x40, 0x6a, 0x2e, 0x1f, 0x00, 0x01, 0x02, 0x03, 0x04,
                   0x00, 0x00, 0x00, 0x07});
  RewriteSequence(m, 0xfffffffe);
  CHECK(Bytes(m.begin() + 8, m.begin() + 12) == Bytes{0xff, 0xff, 0xff, 0xfe});
}

TEST_CASE("ipfix template set holds the seven NAT templates with IANA element ids", "[ipfix]") {
  Bytes out;
  AppendTemplateSet(NatTemplates(), &out);
  const Bytes want = {
      0x00, 0x02, 0x00, 0xb8,  // Template Set, 184 octets
      // 256 session/BIB: 323 230 4 8 7 225 227 27 371(var)
      0x01, 0x00, 0x00, 0x09, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x00, 0x04, 0x00,
      0x01, 0x00, 0x08, 0x00, 0x04, 0x00, 0x07, 0x00, 0x02, 0x00, 0xe1, 0x00, 0x04, 0x00, 0xe3,
      0x00, 0x02, 0x00, 0x1b, 0x00, 0x10, 0x01, 0x73, 0xff, 0xff,
      // 257 port block: 323 230 27 225 361 362 363 364 371(var)
      0x01, 0x01, 0x00, 0x09, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x00, 0x1b, 0x00,
      0x10, 0x00, 0xe1, 0x00, 0x04, 0x01, 0x69, 0x00, 0x02, 0x01, 0x6a, 0x00, 0x02, 0x01, 0x6b,
      0x00, 0x02, 0x01, 0x6c, 0x00, 0x02, 0x01, 0x73, 0xff, 0xff,
      // 258 addresses exhausted: 323 230 283
      0x01, 0x02, 0x00, 0x03, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x01, 0x1b, 0x00,
      0x04,
      // 259 quota per user: 323 230 466 473 27
      0x01, 0x03, 0x00, 0x05, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x01, 0xd2, 0x00,
      0x04, 0x01, 0xd9, 0x00, 0x04, 0x00, 0x1b, 0x00, 0x10,
      // 260 quota sessions: 323 230 466 471
      0x01, 0x04, 0x00, 0x04, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x01, 0xd2, 0x00,
      0x04, 0x01, 0xd7, 0x00, 0x04,
      // 261 quota subscribers: 323 230 466 474
      0x01, 0x05, 0x00, 0x04, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x01, 0xd2, 0x00,
      0x04, 0x01, 0xda, 0x00, 0x04,
      // 263 ports exhausted: 323 230 225 27
      0x01, 0x07, 0x00, 0x04, 0x01, 0x43, 0x00, 0x08, 0x00, 0xe6, 0x00, 0x01, 0x00, 0xe1, 0x00,
      0x04, 0x00, 0x1b, 0x00, 0x10};
  CHECK(out == want);
}

TEST_CASE("ipfix options template set scopes observationDomainId", "[ipfix]") {
  Bytes out;
  const std::vector<Template> options = {ExporterStatsTemplate()};
  AppendOptionsTemplateSet(options, &out);
  const Bytes want = {0x00, 0x03, 0x00, 0x1a,  // Options Template Set, 26 octets
                      0x01, 0x06, 0x00, 0x04, 0x00, 0x01,  // 262, 4 fields, 1 scope
                      0x00, 0x95, 0x00, 0x04,  // observationDomainId
                      0x00, 0x29, 0x00, 0x08,  // exportedMessageTotalCount
                      0x00, 0x2a, 0x00, 0x08,  // exportedFlowRecordTotalCount
                      0x00, 0xa6, 0x00, 0x08}; // notSentFlowTotalCount
  CHECK(out == want);
}

TEST_CASE("ipfix session create record", "[ipfix]") {
  const Bytes want = {TIME_BYTES, 0x04,  // NAT44 session create
                      0x11,              // UDP
                      192, 0, 0, 2, 0x9c, 0x40, 198, 51, 100, 1, 0x04, 0x06, B4A_BYTES,
                      0x00};  // userName unknown: zero length
  CHECK(Encode(Event(EventType::kSessionCreate), PerSession(), kSessionTemplate) == want);
  CHECK(Encode(Event(EventType::kSessionCreate), PerSession(), kSessionTemplate).size() == 39);
}

TEST_CASE("ipfix session delete record carries the user name from the identity callback", "[ipfix]") {
  Ipv6Address asked;
  IdentityLookup who = [&](const Ipv6Address& b4) {
    asked = b4;
    return std::string("alice");
  };
  const Bytes want = {TIME_BYTES, 0x05, 0x11, 192, 0, 0, 2, 0x9c, 0x40, 198, 51, 100, 1, 0x04,
                      0x06, B4A_BYTES, 0x05, 'a', 'l', 'i', 'c', 'e'};
  CHECK(Encode(Event(EventType::kSessionDelete), PerSession(), kSessionTemplate, who) == want);
  CHECK(asked == V6("2001:db8:a::2"));
}

TEST_CASE("ipfix a user name longer than 254 octets is cut to 254", "[ipfix]") {
  IdentityLookup who = [](const Ipv6Address&) { return std::string(300, 'x'); };
  Bytes r = Encode(Event(EventType::kSessionCreate), PerSession(), kSessionTemplate, who);
  REQUIRE(r.size() == 38 + 1 + 254);
  CHECK(r[38] == 254);
}

TEST_CASE("ipfix PCP and static mappings are NAT44 BIB create and delete", "[ipfix]") {
  NatEvent e = Event(EventType::kPcpMapCreate);
  e.proto = 6;
  const Bytes want = {TIME_BYTES, 0x08, 0x06, 192, 0, 0, 2, 0x9c, 0x40, 198, 51, 100, 1, 0x04,
                      0x06, B4A_BYTES, 0x00};
  CHECK(Encode(e, PerSession(), kSessionTemplate) == want);
  CHECK(Encode(Event(EventType::kPcpMapDelete), PerSession(), kSessionTemplate)[8] == 9);
  CHECK(Encode(Event(EventType::kMappingCreate), PerSession(), kSessionTemplate)[8] == 8);
  CHECK(Encode(Event(EventType::kMappingDelete), PerSession(), kSessionTemplate)[8] == 9);
}

TEST_CASE("ipfix port block allocation and de-allocation records", "[ipfix]") {
  NatEvent e = Event(EventType::kBlockClaimed);
  e.public_addr = V4("198.51.100.2");
  e.public_port = 1024;
  e.block_size = 512;
  const Bytes want = {TIME_BYTES, 0x10,  // 16 Port block allocation
                      B4A_BYTES, 198, 51, 100, 2,
                      0x04, 0x00,  // portRangeStart 1024
                      0x05, 0xff,  // portRangeEnd 1535
                      0x00, 0x01,  // portRangeStepSize 1
                      0x02, 0x00,  // portRangeNumPorts 512
                      0x00};       // userName
  CHECK(Encode(e, PerSession(), kPortBlockTemplate) == want);
  e.type = EventType::kBlockReleased;
  Bytes released = Encode(e, PerSession(), kPortBlockTemplate);
  CHECK(released[8] == 17);
  CHECK(released.size() == 38);
}

TEST_CASE("ipfix addresses exhausted record names pool 0", "[ipfix]") {
  const Bytes want = {TIME_BYTES, 0x03, 0x00, 0x00, 0x00, 0x00};
  CHECK(Encode(Event(EventType::kAddressExhausted), PerSession(), kAddressesExhaustedTemplate) == want);
}

TEST_CASE("ipfix ports exhausted record names the public address and the B4", "[ipfix]") {
  NatEvent e = Event(EventType::kAddressPortsExhausted);
  e.public_addr = V4("198.51.100.7");
  e.public_port = 0;
  e.b4 = V6("2001:db8:a:b2c3:1:2:3:4");
  const Bytes want = {TIME_BYTES, 0x0c,     // 12 NAT ports exhausted
                      198, 51, 100, 7,      // postNATSourceIPv4Address
                      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0xb2, 0xc3,
                      0, 0, 0, 0, 0, 0, 0, 0};  // sourceIPv6Address, B4 truncated to /64
  RecordPolicy p = PerSession();
  p.b4_prefix_length = 64;
  CHECK(Encode(e, p, kPortsExhaustedTemplate) == want);
  CHECK(want.size() == 29);
  // Exported in port-block mode too: it is not a session record.
  p.per_session = false;
  CHECK(Encode(e, p, kPortsExhaustedTemplate) == want);
  // The pool-wide exhaustion stays natEvent 3.
  CHECK(Encode(Event(EventType::kAddressExhausted), p, kAddressesExhaustedTemplate)[8] == 3);
}

TEST_CASE("ipfix quota exceeded records carry the limit from the configuration", "[ipfix]") {
  // Ports: all 4 blocks of 512 full -> maximum entries per user 2048.
  CHECK(Encode(Event(EventType::kPortsExhausted), PerSession(), kQuotaPerUserTemplate) ==
        Bytes{TIME_BYTES, 0x0d, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x08, 0x00, B4A_BYTES});
  // Sessions per subscriber: 4096.
  CHECK(Encode(Event(EventType::kSessionLimit), PerSession(), kQuotaPerUserTemplate) ==
        Bytes{TIME_BYTES, 0x0d, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x10, 0x00, B4A_BYTES});
  CHECK(Encode(Event(EventType::kSessionTableFull), PerSession(), kQuotaSessionsTemplate) ==
        Bytes{TIME_BYTES, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00});
  CHECK(Encode(Event(EventType::kSubscriberTableFull), PerSession(), kQuotaSubscribersTemplate) ==
        Bytes{TIME_BYTES, 0x0d, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00});
}

TEST_CASE("ipfix statistics record", "[ipfix]") {
  Bytes out;
  EncodeStatsRecord({1, 3, 0x0102, 5}, &out);
  CHECK(out == Bytes{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
                     0, 0, 0, 0, 0, 0, 0, 5});
}

TEST_CASE("ipfix B4 truncation zeroes the host bits and keeps 16 octets", "[ipfix]") {
  const Ipv6Address b4 = V6("2001:db8:a:b2c3:1:2:3:4");
  CHECK(TruncateB4(b4, 128) == b4);
  CHECK(TruncateB4(b4, 64) == V6("2001:db8:a:b2c3::"));
  CHECK(TruncateB4(b4, 60) == V6("2001:db8:a:b2c0::"));
  CHECK(TruncateB4(b4, 57) == V6("2001:db8:a:b280::"));
  CHECK(TruncateB4(b4, 1) == V6("::"));
  RecordPolicy p = PerSession();
  p.b4_prefix_length = 56;
  NatEvent e = Event(EventType::kSessionCreate);
  e.b4 = b4;
  Bytes r = Encode(e, p, kSessionTemplate);
  REQUIRE(r.size() == 39);
  CHECK(Bytes(r.begin() + 22, r.begin() + 38) ==
        Bytes{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0xb2, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("ipfix port-block mode exports no session records, never lost or reload events", "[ipfix]") {
  RecordPolicy p = PerSession();
  p.per_session = false;
  Bytes out;
  CHECK(EncodeNatRecord(Event(EventType::kSessionCreate), p, nullptr, &out) == 0);
  CHECK(EncodeNatRecord(Event(EventType::kSessionDelete), p, nullptr, &out) == 0);
  CHECK(EncodeNatRecord(Event(EventType::kEventsLost), PerSession(), nullptr, &out) == 0);
  CHECK(EncodeNatRecord(Event(EventType::kConfigReloaded), PerSession(), nullptr, &out) == 0);
  CHECK(out.empty());
  CHECK(EncodeNatRecord(Event(EventType::kBlockClaimed), p, nullptr, &out) == kPortBlockTemplate);
  CHECK(EncodeNatRecord(Event(EventType::kPcpMapCreate), p, nullptr, &out) == kSessionTemplate);
}

// ---- Packing ----

uint16_t U16At(const Bytes& b, size_t i) { return static_cast<uint16_t>(b[i] << 8 | b[i + 1]); }
uint32_t U32At(const Bytes& b, size_t i) {
  return static_cast<uint32_t>(U16At(b, i)) << 16 | U16At(b, i + 2);
}

TEST_CASE("ipfix packer batches one data set per template and numbers data records", "[ipfix]") {
  MessagePacker packer(1, 1400);
  std::vector<Message> done;
  Bytes session = Encode(Event(EventType::kSessionCreate), PerSession(), kSessionTemplate);
  Bytes block = Encode(Event(EventType::kBlockClaimed), PerSession(), kPortBlockTemplate);
  packer.Add(kSessionTemplate, session, true, 100, &done);
  packer.Add(kPortBlockTemplate, block, true, 100, &done);
  packer.Add(kSessionTemplate, session, true, 100, &done);
  CHECK(done.empty());
  packer.Flush(0x11223344, &done);
  REQUIRE(done.size() == 1);
  const Bytes& m = done[0].bytes;
  // header, set 256 with two records, set 257 with one
  REQUIRE(m.size() == 16 + 4 + 2 * 39 + 4 + 38);
  CHECK(U16At(m, 0) == 10);
  CHECK(U16At(m, 2) == m.size());
  CHECK(U32At(m, 4) == 0x11223344);
  CHECK(U32At(m, 8) == 0);
  CHECK(U32At(m, 12) == 1);
  CHECK(U16At(m, 16) == 256);
  CHECK(U16At(m, 18) == 4 + 2 * 39);
  CHECK(U16At(m, 16 + 4 + 78) == 257);
  CHECK(U16At(m, 16 + 4 + 78 + 2) == 4 + 38);
  CHECK(done[0].data_records == 3);
  // The next message counts the 3 records before it.
  packer.Add(kSessionTemplate, session, true, 100, &done);
  packer.Flush(100, &done);
  REQUIRE(done.size() == 2);
  CHECK(U32At(done[1].bytes, 8) == 3);
  CHECK(packer.next_sequence() == 4);
}

TEST_CASE("ipfix packer splits at max_message_bytes", "[ipfix]") {
  MessagePacker packer(1, 512);
  std::vector<Message> done;
  Bytes session = Encode(Event(EventType::kSessionCreate), PerSession(), kSessionTemplate);
  for (int i = 0; i < 30; ++i) packer.Add(kSessionTemplate, session, true, 1, &done);
  packer.Flush(1, &done);
  // (512 - 16 - 4) / 39 = 12 records per message: 12, 12, 6.
  REQUIRE(done.size() == 3);
  CHECK(done[0].bytes.size() == 16 + 4 + 12 * 39);
  CHECK(done[0].data_records == 12);
  CHECK(done[1].data_records == 12);
  CHECK(done[2].data_records == 6);
  CHECK(U32At(done[0].bytes, 8) == 0);
  CHECK(U32At(done[1].bytes, 8) == 12);
  CHECK(U32At(done[2].bytes, 8) == 24);
  for (const Message& m : done) {
    CHECK(m.bytes.size() <= 512);
    CHECK(U16At(m.bytes, 2) == m.bytes.size());
  }
}

TEST_CASE("ipfix sequence numbers wrap modulo 2^32", "[ipfix]") {
  MessagePacker packer(1, 65535);
  packer.SetNextSequenceForTest(0xfffffffe);
  std::vector<Message> done;
  Bytes stats;
  EncodeStatsRecord({1, 0, 0, 0}, &stats);
  for (int i = 0; i < 3; ++i) packer.Add(kExporterStatsTemplate, stats, false, 1, &done);
  packer.Flush(1, &done);
  packer.Add(kExporterStatsTemplate, stats, false, 1, &done);
  packer.Flush(1, &done);
  REQUIRE(done.size() == 2);
  CHECK(done[0].nat_records == 0);
  CHECK(U32At(done[0].bytes, 8) == 0xfffffffe);
  CHECK(U32At(done[1].bytes, 8) == 1);
}

}  // namespace
}  // namespace aftr::ipfix
