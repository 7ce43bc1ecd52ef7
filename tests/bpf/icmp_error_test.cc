// Internet → B4, ICMP errors (destination unreachable, time exceeded, parameter problem)
// about packets the AFTR translated out: the quoted packet is translated back to what the
// host sent, the error goes to the host through its B4, and nothing about the session
// changes. Expected frames are built from scratch (full checksums, never incremental) and
// compared byte for byte; the quoted checksums are also recomputed here.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

const uint32_t kRouter = Ip4Addr("203.0.113.1");  // a router on the path, never a peer
constexpr uint16_t kPeerPort = 5353;
constexpr uint8_t kUnreach = 3, kTimeExceeded = 11, kParamProblem = 12;
constexpr uint8_t kPortUnreach = 3, kFragNeeded = 4;

// An IPv4 packet on its own (no Ethernet header) from a builder.
Bytes Packet(const PacketBuilder& b) { return Ipv4Packet(b.Build()); }

Bytes Head(Bytes b, size_t n) {
  b.resize(n);
  return b;
}

// Offset of the quoted packet in an encapsulated error (no IPv4 options).
constexpr size_t kTunQuoteOff = kInnerL4Off + 8;

// The quoted packet of the ICMP error in `frame` (from its header to the end of the outer
// packet) with its checksums recomputed from scratch: the IPv4 header always, the TCP, UDP
// or ICMP checksum too when the whole datagram is quoted. "" when right.
std::string QuoteChecksumErrors(const Bytes& frame) {
  std::optional<Frame> f = ParseFrame(frame);
  if (!f || !f->has_ipv4 || f->protocol != kProtoIcmp) return "not an ICMP frame";
  size_t q = f->l4_offset + 8;
  size_t end = f->ipv4_offset + f->tot_len;
  if (end > frame.size() || q + 20 > end) return "no quoted header";
  size_t qhl = (frame[q] & 0x0f) * 4;
  if (q + qhl > end) return "quoted header cut";
  if (ChecksumAdd(&frame[q], qhl) != 0xffff) return "quoted ipv4 header checksum wrong";
  uint16_t qlen = (frame[q + 2] << 8) | frame[q + 3];
  if (q + qlen != end) return "";  // a partial quote: its L4 checksum cannot be summed
  Bytes alone(14 + (end - q), 0);  // an Ethernet header of type IPv4, then the quote
  alone[12] = 0x08;
  std::memcpy(&alone[14], &frame[q], end - q);
  std::string e = ChecksumErrors(alone);
  return e.empty() ? "" : "quoted: " + e;
}

// Sends `frame` from a B4 and returns the IPv4 packet as it left toward the Internet.
Bytes SendOut(Harness& h, const Bytes& frame) {
  RunResult r = h.Run(frame);
  REQUIRE(VerdictName(r.verdict) == "XDP_REDIRECT");
  Bytes sent = Ipv4Packet(r.out);
  REQUIRE(sent.size() >= 28);
  return sent;
}

Mapping MappingOf(const Bytes& sent) {
  uint32_t addr;
  std::memcpy(&addr, &sent[12], 4);
  size_t l4 = (sent[0] & 0x0f) * 4;
  size_t port_off = sent[9] == kProtoIcmp ? l4 + 4 : l4;
  return {addr, uint16_t((sent[port_off] << 8) | sent[port_off + 1])};
}

// Runs an ICMP error that must be dropped for `reason`: exactly rx_packets and it counted,
// the frame left as it came, nothing created and no session touched.
void ExpectDropped(Harness& h, const Bytes& frame, const std::string& reason) {
  CounterValues before = h.Counters();
  auto out = h.SessionsOut();
  auto in = h.SessionsIn();
  size_t subs = h.SubscriberCount();
  h.DrainEvents();
  RunResult r = h.Run(frame);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 " + reason + "=1");
  CHECK(Hex(r.out) == Hex(frame));
  CHECK(h.SubscriberCount() == subs);
  auto out2 = h.SessionsOut();
  auto in2 = h.SessionsIn();
  REQUIRE(out2.size() == out.size());
  REQUIRE(in2.size() == in.size());
  for (size_t i = 0; i < in.size(); i++) {
    CHECK(in2[i].second.last_seen_ns == in[i].second.last_seen_ns);
    CHECK(in2[i].second.tcp_flags == in[i].second.tcp_flags);
  }
  CHECK(h.DrainEvents().empty());
}

TEST_CASE("icmp error: port unreachable about a UDP session reaches the host with the "
          "datagram it sent",
          "[icmp_error]") {
  Harness h;
  Bytes sent = SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).Payload("query").Build());
  Mapping m = MappingOf(sent);
  CounterValues before = h.Counters();

  // The peer quotes the whole datagram, as RFC 1812 hosts do.
  RunResult r =
      h.Run(FromInternet(kRemote, m.addr).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(sent).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 in_icmp_error_translated=1 tx_redirect=1");

  // As the host sent it (TTL as it left the AFTR: 63).
  Bytes host_sent = Packet(
      PacketBuilder().Ipv4(kInner, kRemote).Ttl(63).Udp(kInnerPort, kPeerPort).Payload("query"));
  CHECK(Hex(r.out) ==
        Hex(ToB4(kB4a, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(host_sent).Build()));
  std::optional<Frame> f = ParseFrame(r.out);
  REQUIRE(f);
  CHECK(Ip6String(f->ip6_src) == "2001:db8:ffff::1");
  CHECK(Ip6String(f->ip6_dst) == "2001:db8:100::2");
  CHECK(f->ip6_payload_len == f->tot_len);
  CHECK(Ip4String(f->src) == "203.0.113.10");
  CHECK(Ip4String(f->dst) == "192.0.2.10");
  CHECK(f->ttl == 63);
  CHECK(f->icmp_type == kUnreach);
  CHECK(f->icmp_code == kPortUnreach);
  Bytes quote(r.out.begin() + kTunQuoteOff, r.out.end());
  CHECK(Hex(quote) == Hex(host_sent));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(QuoteChecksumErrors(r.out) == "");
}

TEST_CASE("icmp error: fragmentation needed about a TCP session keeps its next-hop MTU",
          "[icmp_error][tcp]") {
  Harness h;
  PacketBuilder syn = FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).TcpSeq(0x01020304, 0);
  Bytes sent = SendOut(h, syn.Build());
  Mapping m = MappingOf(sent);
  Bytes host_sent = Packet(PacketBuilder()
                               .Ipv4(kInner, kRemote)
                               .Ttl(63)
                               .Tcp(kInnerPort, 443, kTcpSyn)
                               .TcpSeq(0x01020304, 0));
  REQUIRE(host_sent.size() == sent.size());

  // 28 bytes: header and ports only (RFC 792), the checksum not quoted; 38: just up to the
  // checksum, which is then fixed; the whole segment.
  for (size_t quoted : {size_t{28}, size_t{38}, sent.size()}) {
    INFO("quoted bytes: " << quoted);
    CounterValues before = h.Counters();
    RunResult r = h.Run(FromInternet(kRouter, m.addr)
                            .Icmp(kUnreach, kFragNeeded, 0, 1400)
                            .Payload(Head(sent, quoted))
                            .Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    CHECK(CounterDiff(before, h.Counters()) ==
          "rx_packets=1 in_icmp_error_translated=1 tx_redirect=1");
    CHECK(Hex(r.out) == Hex(ToB4(kB4a, kRouter)
                                .Icmp(kUnreach, kFragNeeded, 0, 1400)
                                .Payload(Head(host_sent, quoted))
                                .Build()));
    std::optional<Frame> f = ParseFrame(r.out);
    REQUIRE(f);
    CHECK(f->icmp_seq == 1400);  // the next-hop MTU field, untouched
    CHECK(Ip4String(f->dst) == "192.0.2.10");
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(QuoteChecksumErrors(r.out) == "");
  }
}

TEST_CASE("icmp error: time exceeded about an ICMP echo session returns the identifier",
          "[icmp_error][icmp]") {
  Harness h;
  Bytes sent = SendOut(h, FromB4(kB4a).IcmpEcho(0x0777, 3).Payload("ping").Build());
  Mapping m = MappingOf(sent);
  // What a router where the TTL ran out quotes: the header as it arrived there (TTL 1).
  Bytes at_router =
      Packet(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(1).IcmpEcho(m.port, 3).Payload("ping"));
  Bytes host_view =
      Packet(PacketBuilder().Ipv4(kInner, kRemote).Ttl(1).IcmpEcho(0x0777, 3).Payload("ping"));
  CounterValues before = h.Counters();

  RunResult r =
      h.Run(FromInternet(kRouter, m.addr).Icmp(kTimeExceeded, 0, 0, 0).Payload(at_router).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=1 in_icmp_error_translated=1 tx_redirect=1");
  CHECK(Hex(r.out) ==
        Hex(ToB4(kB4a, kRouter).Icmp(kTimeExceeded, 0, 0, 0).Payload(host_view).Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(QuoteChecksumErrors(r.out) == "");
}

TEST_CASE("icmp error: IPv4 options in the error and in the quoted header are stepped over",
          "[icmp_error]") {
  Harness h;
  const Bytes router_alert = {0x94, 0x04, 0x00, 0x00};
  Bytes sent = SendOut(
      h, FromB4(kB4a).Ipv4Options(router_alert).Udp(kInnerPort, kPeerPort).Payload("o").Build());
  REQUIRE((sent[0] & 0x0f) == 6);
  Mapping m = MappingOf(sent);
  RunResult r = h.Run(FromInternet(kRouter, m.addr)
                          .Ipv4Options(router_alert)
                          .Icmp(kUnreach, kPortUnreach, 0, 0)
                          .Payload(sent)
                          .Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  Bytes host_sent = Packet(PacketBuilder()
                               .Ipv4(kInner, kRemote)
                               .Ttl(63)
                               .Ipv4Options(router_alert)
                               .Udp(kInnerPort, kPeerPort)
                               .Payload("o"));
  CHECK(Hex(r.out) == Hex(ToB4(kB4a, kRouter)
                              .Ipv4Options(router_alert)
                              .Icmp(kUnreach, kPortUnreach, 0, 0)
                              .Payload(host_sent)
                              .Build()));
  CHECK(ChecksumErrors(r.out) == "");
  CHECK(QuoteChecksumErrors(r.out) == "");
}

TEST_CASE("icmp error: parameter problem, UDP without checksum, and a UDP checksum of 0xffff",
          "[icmp_error]") {
  Harness h;
  SECTION("parameter problem keeps its pointer; a quoted UDP checksum of 0 stays 0") {
    Bytes sent =
        SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).UdpZeroChecksum().Payload("z").Build());
    REQUIRE(sent[20 + 6] == 0);
    REQUIRE(sent[20 + 7] == 0);
    Mapping m = MappingOf(sent);
    RunResult r = h.Run(
        FromInternet(kRouter, m.addr).Icmp(kParamProblem, 0, 0x0c00, 0).Payload(sent).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    Bytes host_sent = Packet(PacketBuilder()
                                 .Ipv4(kInner, kRemote)
                                 .Ttl(63)
                                 .Udp(kInnerPort, kPeerPort)
                                 .UdpZeroChecksum()
                                 .Payload("z"));
    CHECK(Hex(r.out) ==
          Hex(ToB4(kB4a, kRouter).Icmp(kParamProblem, 0, 0x0c00, 0).Payload(host_sent).Build()));
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(QuoteChecksumErrors(r.out) == "");
  }
  SECTION("a datagram whose checksum the host sent as 0xffff gets it back as 0xffff") {
    // Two payload bytes that make the host's datagram sum to 0xffff: computed checksum 0,
    // transmitted 0xffff (RFC 768). Translating it back must not leave 0 ("no checksum").
    uint8_t hdr[8] = {uint8_t(kInnerPort >> 8),
                      uint8_t(kInnerPort & 0xff),
                      uint8_t(kPeerPort >> 8),
                      uint8_t(kPeerPort & 0xff),
                      0,
                      10,
                      0,
                      0};
    uint32_t sum = ChecksumAdd(hdr, sizeof(hdr), Ipv4PseudoSum(kInner, kRemote, kProtoUdp, 10));
    uint16_t fill = 0xffff - sum;
    Bytes payload = {uint8_t(fill >> 8), uint8_t(fill & 0xff)};
    Bytes host_sent = Packet(
        PacketBuilder().Ipv4(kInner, kRemote).Ttl(63).Udp(kInnerPort, kPeerPort).Payload(payload));
    REQUIRE(host_sent[26] == 0xff);
    REQUIRE(host_sent[27] == 0xff);
    Bytes sent = SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).Payload(payload).Build());
    Mapping m = MappingOf(sent);
    RunResult r = h.Run(
        FromInternet(kRemote, m.addr).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(sent).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
    CHECK(Hex(r.out) ==
          Hex(ToB4(kB4a, kRemote).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(host_sent).Build()));
    CHECK(ChecksumErrors(r.out) == "");
    CHECK(QuoteChecksumErrors(r.out) == "");
  }
}

TEST_CASE("icmp error: an error about a packet without session is dropped and counted",
          "[icmp_error]") {
  Harness h;
  Bytes sent = SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).Payload("q").Build());
  Mapping m = MappingOf(sent);
  auto error_about = [&](const PacketBuilder& quoted) {
    return FromInternet(kRouter, m.addr).Icmp(kUnreach, 1, 0, 0).Payload(Packet(quoted)).Build();
  };
  SECTION("a port nobody has") {
    ExpectDropped(
        h, error_about(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).Udp(m.port + 1, kPeerPort)),
        "drop_icmp_error_no_session");
  }
  SECTION("the mapped port, but TCP") {
    ExpectDropped(
        h,
        error_about(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).Tcp(m.port, kPeerPort, kTcpSyn)),
        "drop_icmp_error_no_session");
  }
  SECTION("the mapped port as an echo identifier") {
    ExpectDropped(h, error_about(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).IcmpEcho(m.port, 1)),
                  "drop_icmp_error_no_session");
  }
  SECTION("an echo reply (we never send one)") {
    ExpectDropped(
        h, error_about(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).IcmpEchoReply(m.port, 1)),
        "drop_icmp_error_no_session");
  }
  SECTION("a protocol without ports") {
    ExpectDropped(
        h,
        error_about(
            PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).Ipv4Payload(kProtoGre, Bytes(8, 0))),
        "drop_icmp_error_no_session");
  }
  SECTION("to a pool address nobody uses") {
    uint32_t other = h.pool()[(h.Subscriber(kB4a)->addr_index + 1) % h.pool().size()];
    ExpectDropped(
        h,
        FromInternet(kRouter, other)
            .Icmp(kUnreach, 1, 0, 0)
            .Payload(Packet(PacketBuilder().Ipv4(other, kRemote).Ttl(63).Udp(m.port, kPeerPort)))
            .Build(),
        "drop_icmp_error_no_session");
  }
  CHECK(h.SessionsOut().size() == 1);
  CHECK(h.SessionsIn().size() == 1);
}

TEST_CASE("icmp error: a quote too short or not of ours is dropped as malformed",
          "[icmp_error][malformed]") {
  Harness h;
  Bytes sent = SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).Payload("q").Build());
  Mapping m = MappingOf(sent);
  auto error_quoting = [&](const Bytes& quote) {
    return FromInternet(kRouter, m.addr).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(quote).Build();
  };
  // Control: the whole quote is translated.
  RunResult ok = h.Run(error_quoting(sent));
  REQUIRE(VerdictName(ok.verdict) == "XDP_REDIRECT");

  SECTION("half an IPv4 header") {
    ExpectDropped(h, error_quoting(Head(sent, 12)), "drop_icmp_error_malformed");
  }
  SECTION("the header and 4 bytes of UDP") {
    ExpectDropped(h, error_quoting(Head(sent, 24)), "drop_icmp_error_malformed");
  }
  SECTION("the header and 7 bytes of UDP") {
    ExpectDropped(h, error_quoting(Head(sent, 27)), "drop_icmp_error_malformed");
  }
  SECTION("the quote cut by the outer total length, the rest Ethernet padding") {
    Bytes f = error_quoting(sent);
    uint16_t tot = 20 + 8 + 24;  // 4 bytes of UDP inside the packet
    f[kIp4Off + 2] = tot >> 8;
    f[kIp4Off + 3] = tot & 0xff;
    // The outer header checksum must stay right for the frame to be a plausible one.
    f[kIp4Off + 10] = f[kIp4Off + 11] = 0;
    uint16_t c = ChecksumFinish(ChecksumAdd(&f[kIp4Off], 20));
    f[kIp4Off + 10] = c >> 8;
    f[kIp4Off + 11] = c & 0xff;
    ExpectDropped(h, f, "drop_icmp_error_malformed");
  }
  SECTION("quoted IHL below 5") {
    Bytes q = sent;
    q[0] = 0x44;
    ExpectDropped(h, error_quoting(q), "drop_icmp_error_malformed");
  }
  SECTION("quoted IHL past the quote") {
    Bytes q = Head(sent, 28);
    q[0] = 0x47;  // 28 bytes of header, no room for the ports
    ExpectDropped(h, error_quoting(q), "drop_icmp_error_malformed");
  }
  SECTION("quoted version 6") {
    Bytes q = sent;
    q[0] = 0x65;
    ExpectDropped(h, error_quoting(q), "drop_icmp_error_malformed");
  }
  SECTION("a quoted fragment past the first (no ports in it)") {
    Bytes q =
        Packet(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).FragOff(185).Udp(m.port, kPeerPort));
    ExpectDropped(h, error_quoting(q), "drop_icmp_error_malformed");
  }
  SECTION("the quoted packet is from another address than the error is to") {
    uint32_t other = h.pool()[(h.Subscriber(kB4a)->addr_index + 1) % h.pool().size()];
    Bytes q = Packet(PacketBuilder().Ipv4(other, kRemote).Ttl(63).Udp(m.port, kPeerPort));
    ExpectDropped(h, error_quoting(q), "drop_icmp_error_malformed");
    // And the other way round: our session quoted, sent to another pool address.
    ExpectDropped(
        h, FromInternet(kRouter, other).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(sent).Build(),
        "drop_icmp_error_malformed");
  }
  SECTION("no quote at all") {
    ExpectDropped(h, FromInternet(kRouter, m.addr).Icmp(kTimeExceeded, 0, 0, 0).Build(),
                  "drop_icmp_error_malformed");
  }
}

TEST_CASE("icmp error: outer TTL 1 expires, nothing translated", "[icmp_error][ttl]") {
  Harness h;
  Bytes sent = SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).Build());
  Mapping m = MappingOf(sent);
  ExpectDropped(
      h,
      FromInternet(kRouter, m.addr).Ttl(1).Icmp(kUnreach, kPortUnreach, 0, 0).Payload(sent).Build(),
      "drop_ttl_expired");
}

TEST_CASE("icmp error: an error neither creates a session nor refreshes one",
          "[icmp_error][session]") {
  Harness h;
  // A dynamic TCP session made by aftr_ctl, last seen at 1 ns: any refresh would show.
  aftr_ctl_args sub{};
  sub.op = AFTR_CTL_SUBSCRIBER_CREATE;
  std::memcpy(sub.b4, kB4a.data(), 16);
  sub.addr_index = 0;
  sub.block = 10;
  sub.last_seen_ns = 1;
  REQUIRE(h.Ctl(sub) == 1);
  Mapping m{h.pool()[0], uint16_t(h.config().port_min + 10 * h.config().block_size)};
  aftr_ctl_args a{};
  a.op = AFTR_CTL_SESSION_CREATE;
  std::memcpy(a.b4, kB4a.data(), 16);
  a.inner_addr = kInner;
  a.inner_port = htons(kInnerPort);
  a.proto = kProtoTcp;
  a.public_addr = m.addr;
  a.public_port = htons(m.port);
  a.last_seen_ns = 1;
  REQUIRE(h.Ctl(a) == 1);
  aftr_session_out_key ok = OutKey(kB4a, kInner, kInnerPort, kProtoTcp);
  aftr_session_in_key ik = InKey(m, kProtoTcp);
  REQUIRE(h.SessionIn(ik)->last_seen_ns == 1);
  CounterValues before = h.Counters();

  // Errors quoting a SYN, a FIN and a RST: none of their flags is recorded either.
  for (uint8_t flags : {kTcpSyn, uint8_t(kTcpFin | kTcpAck), kTcpRst}) {
    Bytes quote = Packet(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).Tcp(m.port, 443, flags));
    RunResult r =
        h.Run(FromInternet(kRouter, m.addr).Icmp(kUnreach, 1, 0, 0).Payload(quote).Build());
    CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  }
  // And one about a flow without session.
  Bytes stray = Packet(PacketBuilder().Ipv4(m.addr, kRemote).Ttl(63).Tcp(m.port + 1, 443, kTcpSyn));
  CHECK(
      h.Run(FromInternet(kRouter, m.addr).Icmp(kUnreach, 1, 0, 0).Payload(stray).Build()).verdict ==
      XDP_DROP);

  CHECK(CounterDiff(before, h.Counters()) ==
        "rx_packets=4 in_icmp_error_translated=3 tx_redirect=3 drop_icmp_error_no_session=1");
  CHECK(h.SessionsOut().size() == 1);
  CHECK(h.SessionsIn().size() == 1);
  CHECK(h.SubscriberCount() == 1);
  CHECK(h.SessionIn(ik)->last_seen_ns == 1);
  CHECK(h.SessionIn(ik)->tcp_flags == 0);
  CHECK(h.SessionOut(ok)->last_seen_ns == 1);
  CHECK(h.DrainEvents().empty());

  // Control: the peer's own segment does refresh it.
  RunResult r = h.Run(FromInternet(kRemote, m.addr).Tcp(443, m.port, kTcpAck).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(h.SessionIn(ik)->last_seen_ns > 1);
}

// Address-dependent filtering admits a peer the mapping has sent to. An error comes from a
// router (or the peer): it is filtered by the peer the quoted packet went to, never by its
// own source.
TEST_CASE("icmp error: with address-dependent filtering, the quoted peer decides, not the "
          "error's source",
          "[icmp_error][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  Bytes sent = SendOut(h, FromB4(kB4a).Udp(kInnerPort, kPeerPort).Payload("q").Build());
  Mapping m = MappingOf(sent);
  REQUIRE(h.FilterPeerCount() == 1);

  // From a router the mapping never sent to: translated.
  RunResult r = h.Run(FromInternet(kRouter, m.addr).Icmp(kUnreach, 1, 0, 0).Payload(sent).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_IN_ICMP_ERROR_TRANSLATED) == 1);
  CHECK(h.FilterPeerCount() == 1);  // and the router is not admitted for later packets
  CHECK(h.Run(FromInternet(kRouter, m.addr).Udp(kPeerPort, m.port).Build()).verdict == XDP_DROP);

  // About a packet to a peer the mapping never sent to: filtered.
  Bytes to_stranger =
      Packet(PacketBuilder().Ipv4(m.addr, kRemote2).Ttl(63).Udp(m.port, kPeerPort).Payload("q"));
  ExpectDropped(h,
                FromInternet(kRouter, m.addr).Icmp(kUnreach, 1, 0, 0).Payload(to_stranger).Build(),
                "drop_filtered");
}

}  // namespace
}  // namespace bpftest
