// Truncated and malformed frames at every layer, fragments, unsupported protocols and
// expired TTLs: each is XDP_DROP with exactly one drop-reason counter moved, and leaves no
// subscriber, session or event behind.
#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

// Runs `frame` (on the interface it would arrive on) and checks that exactly rx_packets and
// `reason` went up by one and that no state was created.
void ExpectDrop(Harness& h, const Bytes& frame, const std::string& reason) {
  CounterValues before = h.Counters();
  size_t subs = h.SubscriberCount(), out = h.SessionsOut().size(), in = h.SessionsIn().size();
  h.DrainEvents();
  RunResult r = h.Run(frame);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 " + reason + "=1");
  CHECK(h.SubscriberCount() == subs);
  CHECK(h.SessionsOut().size() == out);
  CHECK(h.SessionsIn().size() == in);
  CHECK(h.DrainEvents().empty());
}

void SetIpv6PayloadLen(Bytes& f, uint16_t len) {
  f[kIp6Off + 4] = len >> 8;
  f[kIp6Off + 5] = len & 0xff;
}

void SetTotLen(Bytes& f, size_t ip_off, uint16_t len) {
  f[ip_off + 2] = len >> 8;
  f[ip_off + 3] = len & 0xff;
}

Bytes Udp4(const Ip6& b4 = kB4a) { return FromB4(b4).Udp(kInnerPort, kRemotePort).Build(); }

TEST_CASE("malformed: a bare Ethernet header is dropped at the IP layer it announces",
          "[malformed]") {
  Harness h;
  // BPF_PROG_TEST_RUN refuses frames under 14 bytes (even behind XDP metadata), so the
  // program's short-Ethernet check cannot be reached from here; the 14-byte frame can.
  CHECK_THROWS(h.RunOn(Net().b4_ifindex, Bytes(13, 0)));
  CHECK(h.CounterString() == "");
  SECTION("IPv6") {
    ExpectDrop(h, PacketBuilder().EtherType(kEtherTypeIpv6).Build(), "drop_malformed_ipv6");
  }
  SECTION("IPv4") {
    ExpectDrop(h, PacketBuilder().EtherType(kEtherTypeIpv4).Build(), "drop_malformed_ipv4");
  }
}

TEST_CASE("malformed: outer IPv6 header", "[malformed]") {
  Harness h;
  SECTION("shorter than 40 bytes") {
    Bytes f = Udp4();
    f.resize(kIp6Off + 39);
    ExpectDrop(h, f, "drop_malformed_ipv6");
  }
  SECTION("version is not 6") {
    Bytes f = Udp4();
    f[kIp6Off] = 0x40;
    ExpectDrop(h, f, "drop_malformed_ipv6");
  }
  SECTION("payload length beyond the end of the frame") {
    Bytes f = Udp4();
    SetIpv6PayloadLen(f, f.size() - kIp6Off - 40 + 1);
    ExpectDrop(h, f, "drop_malformed_ipv6");
  }
}

TEST_CASE("malformed: inner IPv4 header from a B4", "[malformed]") {
  Harness h;
  SECTION("shorter than 20 bytes") {
    Bytes f = Udp4();
    f.resize(kInnerIp4Off + 19);
    SetIpv6PayloadLen(f, 19);
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("IHL below 5") {
    Bytes f = Udp4();
    f[kInnerIp4Off] = 0x44;
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("IHL beyond the packet") {
    Bytes f = Udp4();
    f[kInnerIp4Off] = 0x4f;
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("version is not 4") {
    Bytes f = Udp4();
    f[kInnerIp4Off] = 0x65;
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("total length beyond the frame") {
    Bytes f = Udp4();
    SetTotLen(f, kInnerIp4Off, f.size() - kInnerIp4Off + 1);
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("total length shorter than the header") {
    Bytes f = Udp4();
    SetTotLen(f, kInnerIp4Off, 16);
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("total length beyond the IPv6 payload length") {
    Bytes f = Udp4();
    SetIpv6PayloadLen(f, f.size() - kInnerIp4Off - 1);
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
}

TEST_CASE("malformed: truncated transport headers from a B4", "[malformed]") {
  Harness h;
  struct Case {
    const char* name;
    Bytes frame;
    size_t l4_len;  // bytes of the L4 header kept
  };
  for (const Case& c : {Case{"UDP", FromB4(kB4a).Udp(kInnerPort, 7).Build(), 7},
                        Case{"TCP", FromB4(kB4a).Tcp(kInnerPort, 7, kTcpSyn).Build(), 19},
                        Case{"ICMP", FromB4(kB4a).IcmpEcho(kInnerPort, 1).Build(), 7}}) {
    DYNAMIC_SECTION(c.name << " header of " << c.l4_len << " bytes") {
      Bytes f = c.frame;
      f.resize(kInnerL4Off + c.l4_len);
      SetIpv6PayloadLen(f, 20 + c.l4_len);
      SetTotLen(f, kInnerIp4Off, 20 + c.l4_len);
      ExpectDrop(h, f, "drop_malformed_l4");
    }
  }
  SECTION("TCP data offset below 5") {
    Bytes f = FromB4(kB4a).Tcp(kInnerPort, 7, kTcpSyn).Build();
    f[kInnerL4Off + 12] = 0x40;
    ExpectDrop(h, f, "drop_malformed_l4");
  }
  SECTION("TCP data offset beyond the packet") {
    Bytes f = FromB4(kB4a).Tcp(kInnerPort, 7, kTcpSyn).Build();
    f[kInnerL4Off + 12] = 0xf0;
    ExpectDrop(h, f, "drop_malformed_l4");
  }
}

// Dropped here, handed whole to the slow path (fragments_test.cc checks the records).
TEST_CASE("malformed: inner fragments leave XDP for the slow path", "[malformed][fragment]") {
  Harness h;
  SECTION("first fragment (MF)") {
    ExpectDrop(h, FromB4(kB4a).FragOff(kIpv4MoreFragments).Udp(kInnerPort, 7).Build(),
               "slow_path_queued");
  }
  SECTION("later fragment (offset)") {
    ExpectDrop(h, FromB4(kB4a).FragOff(185).Udp(kInnerPort, 7).Build(), "slow_path_queued");
  }
  SECTION("last fragment (offset, DF clear)") {
    ExpectDrop(h, FromB4(kB4a).FragOff(0x1fff).Udp(kInnerPort, 7).Build(), "slow_path_queued");
  }
}

TEST_CASE("malformed: unsupported inner protocols and ICMP types from a B4", "[malformed]") {
  Harness h;
  SECTION("GRE") {
    ExpectDrop(h, FromB4(kB4a).Ipv4Payload(kProtoGre, Bytes(8, 0)).Build(),
               "drop_unsupported_proto");
  }
  SECTION("ICMP destination unreachable quoting nothing (errors are translated by their quote)") {
    ExpectDrop(h, FromB4(kB4a).Icmp(3, 1, 0, 0).Build(), "drop_icmp_error_malformed");
  }
  SECTION("ICMP timestamp") {
    ExpectDrop(h, FromB4(kB4a).Icmp(13, 0, 1, 1).Build(), "drop_unsupported_icmp");
  }
  SECTION("ICMP echo reply (outbound only requests open mappings)") {
    ExpectDrop(h, FromB4(kB4a).IcmpEchoReply(kInnerPort, 1).Build(), "drop_unsupported_icmp");
  }
}

// With no ICMP errors allowed, an expired packet is only dropped (mtu_test.cc has the errors).
aftr_dp_config NoIcmpErrors() {
  aftr_dp_config c = DefaultConfig();
  c.icmp_errors_per_second = 0;
  return c;
}

TEST_CASE("malformed: inner TTL 1 or 0 from a B4 expires before any state is made",
          "[malformed][ttl]") {
  Harness h(NoIcmpErrors());
  ExpectDrop(h, FromB4(kB4a).Ttl(1).Udp(kInnerPort, 7).Build(),
             "icmp_rate_limited=1 drop_ttl_expired");
  ExpectDrop(h, FromB4(kB4a).Ttl(0).Udp(kInnerPort, 7).Build(),
             "icmp_rate_limited=1 drop_ttl_expired");
  CHECK(h.SubscriberCount() == 0);
  // TTL 2 still goes out, with TTL 1.
  RunResult r = h.Run(FromB4(kB4a).Ttl(2).Udp(kInnerPort, 7).Build());
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(ParseFrame(r.out)->ttl == 1);
}

TEST_CASE("malformed: IPv4 from the Internet to the pool", "[malformed]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  SECTION("shorter than 20 bytes") {
    Bytes f = FromInternet(kRemote, m.addr).Udp(7, m.port).Build();
    f.resize(kIp4Off + 19);
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("IHL below 5") {
    Bytes f = FromInternet(kRemote, m.addr).Udp(7, m.port).Build();
    f[kIp4Off] = 0x43;
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("total length beyond the frame") {
    Bytes f = FromInternet(kRemote, m.addr).Udp(7, m.port).Build();
    SetTotLen(f, kIp4Off, f.size() - kIp4Off + 1);
    ExpectDrop(h, f, "drop_malformed_ipv4");
  }
  SECTION("fragment") {
    ExpectDrop(h, FromInternet(kRemote, m.addr).FragOff(kIpv4MoreFragments).Udp(7, m.port).Build(),
               "slow_path_queued");
  }
  SECTION("truncated UDP header") {
    Bytes f = FromInternet(kRemote, m.addr).Udp(7, m.port).Build();
    f.resize(kL4Off + 4);
    SetTotLen(f, kIp4Off, 24);
    ExpectDrop(h, f, "drop_malformed_l4");
  }
  // Short packets arrive padded to the 60-byte Ethernet minimum: the padding is not header.
  SECTION("truncated UDP header in a padded minimum-size frame") {
    Bytes f = FromInternet(kRemote, m.addr).Udp(7, m.port).Build();
    f.resize(kL4Off + 4);
    SetTotLen(f, kIp4Off, 24);
    f.resize(60, 0);
    ExpectDrop(h, f, "drop_malformed_l4");
  }
  SECTION("truncated TCP header in a padded minimum-size frame") {
    RunResult syn = h.Run(FromB4(kB4a).Tcp(kInnerPort, 7, kTcpSyn).Build());
    REQUIRE(syn.verdict == XDP_REDIRECT);
    uint16_t tcp_port = ParseFrame(syn.out)->sport;
    Bytes f = FromInternet(kRemote, m.addr).Tcp(7, tcp_port, kTcpAck).Build();
    f.resize(kL4Off + 12);
    SetTotLen(f, kIp4Off, 32);
    f.resize(60, 0x50);  // padding that happens to read as a sane data offset
    ExpectDrop(h, f, "drop_malformed_l4");
  }
  SECTION("GRE") {
    ExpectDrop(h, FromInternet(kRemote, m.addr).Ipv4Payload(kProtoGre, Bytes(8, 0)).Build(),
               "drop_unsupported_proto");
  }
  SECTION("ICMP echo request (only replies return through a mapping)") {
    ExpectDrop(h, FromInternet(kRemote, m.addr).IcmpEcho(m.port, 1).Build(),
               "drop_unsupported_icmp");
  }
  SECTION("ICMP time exceeded quoting nothing (errors go by the packet they quote)") {
    ExpectDrop(h, FromInternet(kRemote, m.addr).Icmp(11, 0, 0, 0).Build(),
               "drop_icmp_error_malformed");
  }
  SECTION("ICMP redirect (not an error that is translated)") {
    ExpectDrop(h, FromInternet(kRemote, m.addr).Icmp(5, 1, 0, 0).Build(),
               "drop_unsupported_icmp");
  }
}

TEST_CASE("malformed: inbound TTL 1 or 0 expires even with a session, frame untouched",
          "[malformed][ttl]") {
  Harness h(NoIcmpErrors());
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  for (uint8_t ttl : {1, 0}) {
    Bytes f = FromInternet(kRemote, m.addr).Ttl(ttl).Udp(7, m.port).Build();
    ExpectDrop(h, f, "icmp_rate_limited=1 drop_ttl_expired");
    CHECK(Hex(h.Run(f).out) == Hex(f));
  }
}

}  // namespace
}  // namespace bpftest
