// B4 → Internet, ICMP errors from behind a B4 about packets the AFTR translated in (the
// mirror of icmp_error_test.cc): the host (or a router of its home network) answers what it
// received with an error, and the peer gets it from the public address with the quoted
// packet as the peer sent it. Expected frames are built from scratch (full checksums) and
// compared byte for byte; the quoted checksums are recomputed too.
#include <arpa/inet.h>
#include <time.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

constexpr uint16_t kPeerPort = 5353;
constexpr uint8_t kUnreach = 3, kTimeExceeded = 11, kParamProblem = 12;
constexpr uint8_t kPortUnreach = 3, kFragNeeded = 4;
const uint32_t kHomeRouter = Ip4Addr("192.0.2.1");

Bytes Packet(const PacketBuilder& b) { return Ipv4Packet(b.Build()); }
Bytes Head(Bytes b, size_t n) {
  b.resize(std::min(b.size(), n));
  return b;
}

// The quoted packet's checksums recomputed: the IPv4 header always, the L4 one when the
// whole datagram is quoted. "" when right.
std::string QuoteChecksumErrors(const Bytes& frame) {
  std::optional<Frame> f = ParseFrame(frame);
  if (!f || !f->has_ipv4 || f->protocol != kProtoIcmp) return "not an ICMP frame";
  size_t q = f->l4_offset + 8;
  size_t end = f->ipv4_offset + f->tot_len;
  if (end > frame.size() || q + 20 > end) return "no quoted header";
  size_t qhl = (frame[q] & 0x0f) * 4;
  if (ChecksumAdd(&frame[q], qhl) != 0xffff) return "quoted ipv4 header checksum wrong";
  uint16_t qlen = (frame[q + 2] << 8) | frame[q + 3];
  if (q + qlen != end) return "";
  Bytes alone(14 + (end - q), 0);
  alone[12] = 0x08;
  std::memcpy(&alone[14], &frame[q], end - q);
  std::string e = ChecksumErrors(alone);
  return e.empty() ? "" : "quoted: " + e;
}

// Delivers `inbound` (from the Internet) to the host and returns the IPv4 packet the host
// received, the one its error will quote.
Bytes Deliver(Harness& h, const Bytes& inbound) {
  RunResult r = h.Run(inbound);
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  Bytes got = Ipv4Packet(r.out);
  REQUIRE(got.size() >= 28);
  return got;
}

// Runs an error that must be dropped for `reason`, touching nothing.
void ExpectDropped(Harness& h, const Bytes& frame, const std::string& reason) {
  CounterValues before = h.Counters();
  auto out = h.SessionsOut();
  auto in = h.SessionsIn();
  h.DrainEvents();
  RunResult r = h.Run(frame);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 " + reason + "=1");
  CHECK(Hex(r.out) == Hex(frame));
  auto out2 = h.SessionsOut();
  REQUIRE(out2.size() == out.size());
  for (size_t i = 0; i < out.size(); i++) {
    CHECK(out2[i].second.last_seen_ns == out[i].second.last_seen_ns);
    CHECK(out2[i].second.tcp_flags == out[i].second.tcp_flags);
  }
  CHECK(h.SessionsIn().size() == in.size());
  CHECK(h.DrainEvents().empty());
}

constexpr const char* kTranslated = "rx_packets=1 out_icmp_error_translated=1 tx_redirect=1";

TEST_CASE("icmp error out: port unreachable about a UDP datagram reaches the peer as it sent it",
          "[icmp_error_out][udp]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  PacketBuilder peer_sent = FromInternet(kRemote, m.addr);
  peer_sent.Udp(kPeerPort, m.port).Payload("datagram");
  Bytes got = Deliver(h, peer_sent.Build());
  auto out_before = *h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp));
  h.DrainEvents();

  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4a, kInner, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(got).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) == kTranslated);
  // The quote as the peer sent it, except the TTL we took one from on the way in.
  Bytes quote = Packet(PacketBuilder().Ipv4(kRemote, m.addr).Ttl(63).Udp(kPeerPort, m.port).Payload("datagram"));
  CHECK(Hex(r.out) ==
        Hex(ToInternet(m.addr, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(quote).Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(QuoteChecksumErrors(r.out) == "");
  // Errors never refresh a session.
  auto out_after = *h.SessionOut(OutKey(kB4a, kInner, kInnerPort, kProtoUdp));
  CHECK(out_after.last_seen_ns == out_before.last_seen_ns);
  CHECK(h.DrainEvents().empty());
}

TEST_CASE("icmp error out: a UDP datagram sent without checksum is quoted without",
          "[icmp_error_out][udp]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  Bytes got = Deliver(h, FromInternet(kRemote, m.addr).Udp(kPeerPort, m.port).UdpZeroChecksum().Payload("z").Build());
  RunResult r = h.Run(FromB4(kB4a, kInner, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(got).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  Bytes quote = Packet(PacketBuilder().Ipv4(kRemote, m.addr).Ttl(63).Udp(kPeerPort, m.port).UdpZeroChecksum().Payload("z"));
  CHECK(Hex(r.out) ==
        Hex(ToInternet(m.addr, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(quote).Build()));
}

TEST_CASE("icmp error out: time exceeded about TCP, quoted in full and only to the ports",
          "[icmp_error_out][tcp]") {
  Harness h;
  RunResult syn = h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).Build());
  REQUIRE(VerdictName(syn.verdict) == "XDP_REDIRECT");
  std::optional<Frame> sf = ParseFrame(syn.out);
  Mapping m{sf->src, sf->sport};
  PacketBuilder synack = FromInternet(kRemote, m.addr);
  synack.Tcp(443, m.port, kTcpSyn | kTcpAck).TcpSeq(77, 1).TcpMss(1400);
  Bytes got = Deliver(h, synack.Build());
  Bytes quote = Packet(
      PacketBuilder().Ipv4(kRemote, m.addr).Ttl(63).Tcp(443, m.port, kTcpSyn | kTcpAck).TcpSeq(77, 1).TcpMss(1400));

  SECTION("the whole segment: the TCP checksum is fixed too") {
    RunResult r = h.Run(FromB4(kB4a, kInner, kRemote).Icmp(kTimeExceeded, 0, 0, 0).Payload(got).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    CHECK(Hex(r.out) == Hex(ToInternet(m.addr, kRemote).Icmp(kTimeExceeded, 0, 0, 0).Payload(quote).Build()));
    CHECK(QuoteChecksumErrors(r.out) == "");
  }
  SECTION("RFC 792's header and 8 bytes: ports and sequence only") {
    RunResult r = h.Run(
        FromB4(kB4a, kInner, kRemote).Icmp(kTimeExceeded, 0, 0, 0).Payload(Head(got, 28)).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    CHECK(Hex(r.out) ==
          Hex(ToInternet(m.addr, kRemote).Icmp(kTimeExceeded, 0, 0, 0).Payload(Head(quote, 28)).Build()));
    CHECK(ChecksumErrors(r.out) == "");
  }
  SECTION("cut inside the checksum field: left alone") {
    RunResult r = h.Run(
        FromB4(kB4a, kInner, kRemote).Icmp(kTimeExceeded, 0, 0, 0).Payload(Head(got, 37)).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    Bytes expect = Head(quote, 37);
    expect[36] = got[36];  // the first checksum byte as the host quoted it
    CHECK(Hex(r.out) == Hex(ToInternet(m.addr, kRemote).Icmp(kTimeExceeded, 0, 0, 0).Payload(expect).Build()));
  }
}

TEST_CASE("icmp error out: fragmentation needed about an echo reply keeps the MTU the host "
          "reported",
          "[icmp_error_out][icmp]") {
  Harness h;
  RunResult ping = h.Run(FromB4(kB4a).IcmpEcho(7, 1).Build());
  REQUIRE(VerdictName(ping.verdict) == "XDP_REDIRECT");
  std::optional<Frame> pf = ParseFrame(ping.out);
  Mapping m{pf->src, pf->icmp_id};
  Bytes got = Deliver(h, FromInternet(kRemote, m.addr).IcmpEchoReply(m.port, 1).Payload(Bytes(64, 0xab)).Build());
  RunResult r = h.Run(FromB4(kB4a, kInner, kRemote).Icmp(kUnreach, kFragNeeded, 0, 1280).Payload(got).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  Bytes quote = Packet(PacketBuilder().Ipv4(kRemote, m.addr).Ttl(63).IcmpEchoReply(m.port, 1).Payload(Bytes(64, 0xab)));
  CHECK(Hex(r.out) ==
        Hex(ToInternet(m.addr, kRemote).Icmp(kUnreach, kFragNeeded, 0, 1280).Payload(quote).Build()));
  CHECK(QuoteChecksumErrors(r.out) == "");
}

TEST_CASE("icmp error out: from a router of the home network, the source is the public address too",
          "[icmp_error_out]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  Bytes got = Deliver(h, FromInternet(kRemote, m.addr).Udp(kPeerPort, m.port).Build());
  RunResult r = h.Run(FromB4(kB4a, kHomeRouter, kRemote).Ttl(255).Icmp(kParamProblem, 0, 0x0800, 0).Payload(got).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  Bytes quote = Packet(PacketBuilder().Ipv4(kRemote, m.addr).Ttl(63).Udp(kPeerPort, m.port));
  CHECK(Hex(r.out) ==
        Hex(ToInternet(m.addr, kRemote, 254).Icmp(kParamProblem, 0, 0x0800, 0).Payload(quote).Build()));
}

TEST_CASE("icmp error out: toward a peer whose gateway is unresolved the kernel gets it translated",
          "[icmp_error_out]") {
  // XDP_PASS from icmp_error_out must reach the entry point as XDP_PASS (the differential
  // test caught it being taken for the hairpinned-error signal once).
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);  // endpoint-independent: any peer may answer
  Bytes got = Deliver(h, FromInternet(kRemoteNoNeigh, m.addr).Udp(kPeerPort, m.port).Build());
  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4a, kInner, kRemoteNoNeigh).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(got).Build());
  CHECK(VerdictName(r.verdict) == "XDP_PASS");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 pass_no_neigh=1 out_icmp_error_translated=1");
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(f->src == m.addr);
  CHECK(f->ttl == 64);  // the kernel forwards it, and decrements
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(QuoteChecksumErrors(r.out) == "");
}

TEST_CASE("icmp error out: malformed quotes, unknown sessions and expired TTLs are dropped, "
          "nothing touched",
          "[icmp_error_out][drop]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  Bytes got = Deliver(h, FromInternet(kRemote, m.addr).Udp(kPeerPort, m.port).Payload("data").Build());
  auto error = [&](const Bytes& quote, uint32_t to = kRemote) {
    return FromB4(kB4a, kInner, to).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(quote).Build();
  };
  ExpectDropped(h, error(Head(got, 19)), "drop_icmp_error_malformed");  // no whole header
  ExpectDropped(h, error(Head(got, 27)), "drop_icmp_error_malformed");  // no ports
  Bytes v6 = got;
  v6[0] = 0x65;
  ExpectDropped(h, error(v6), "drop_icmp_error_malformed");
  Bytes later_fragment = got;
  later_fragment[7] = 0x10;
  ExpectDropped(h, error(later_fragment), "drop_icmp_error_malformed");
  ExpectDropped(h, error(got, kRemote2), "drop_icmp_error_malformed");  // not to the quote's source
  // The IPv4 total length says the quote stops before its ports, whatever the frame holds.
  Bytes short_len = error(got);
  size_t tl = kInnerIp4Off + 2;
  uint16_t len = uint16_t(20 + 8 + 27);
  short_len[tl] = len >> 8, short_len[tl + 1] = len & 0xff;
  uint16_t pl = uint16_t(len);
  short_len[kIp6Off + 4] = pl >> 8, short_len[kIp6Off + 5] = pl & 0xff;
  ExpectDropped(h, short_len, "drop_icmp_error_malformed");

  Bytes other_port = got;
  other_port[22] ^= 0x01;  // the quoted destination port: no session has it
  ExpectDropped(h, error(other_port), "drop_icmp_error_no_session");
  Bytes other_host = got;
  other_host[19] ^= 0x01;  // another inner address
  ExpectDropped(h, error(other_host), "drop_icmp_error_no_session");
  ExpectDropped(h, FromB4(kB4b, kInner, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(got).Build(),
                "drop_icmp_error_no_session");  // another B4 names no session of its own
  Bytes gre = got;
  gre[9] = kProtoGre;
  ExpectDropped(h, error(gre), "drop_icmp_error_no_session");
  Bytes echo_req = Packet(PacketBuilder().Ipv4(kRemote, kInner).Icmp(13, 0, 1, 1));  // timestamp
  ExpectDropped(h, error(echo_req), "drop_icmp_error_no_session");
  ExpectDropped(h, FromB4(kB4a, kInner, kRemote).Ttl(1).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(got).Build(),
                "drop_ttl_expired");
}

TEST_CASE("icmp error out: an error about a hairpinned packet goes to the other subscriber",
          "[icmp_error_out][hairpin]") {
  Harness h;
  Mapping h2 = TranslateUdp(h, kB4b, 5000);
  Mapping h1 = TranslateUdp(h, kB4a, kInnerPort);
  RunResult hp = h.Run(FromB4(kB4a, kInner, h2.addr).Udp(kInnerPort, h2.port).Payload("x").Build());
  REQUIRE(VerdictName(hp.verdict) == "XDP_REDIRECT");
  Bytes got = Ipv4Packet(hp.out);  // h2 got it from h1's public end

  CounterValues before = h.Counters();
  RunResult r = h.Run(FromB4(kB4b, kInner, h1.addr).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(got).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");  // hairpinned: never XDP_TX
  // Translated out for h2, then in for h1: counted once, by the inbound half.
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 in_icmp_error_translated=1 tx_redirect=1");
  // h1 sees the error from h2's public address, quoting what h1 sent (TTL as it reached h2).
  Bytes quote = Packet(PacketBuilder().Ipv4(kInner, h2.addr).Ttl(63).Udp(kInnerPort, h2.port).Payload("x"));
  CHECK(Hex(r.out) ==
        Hex(ToB4(kB4a, h2.addr, kInner, 63).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(quote).Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(QuoteChecksumErrors(r.out) == "");
}

}  // namespace
}  // namespace bpftest
