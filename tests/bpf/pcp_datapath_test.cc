// What the data plane does for the PCP server (ABI 7): FILTERED sessions admit inbound only
// from the peers of their aftr_pcp_filters entry, PCP_MAP sessions are port forwards under
// address-dependent filtering, SESSION_FLAGS sets and clears session flags without touching
// the TCP state, and SESSION_DELETE with DYNAMIC_ONLY leaves every held session alone.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

aftr_ctl_args SessionArgs(uint32_t op, const Ip6& b4, uint16_t inner_port,
                          uint8_t proto = kProtoUdp) {
  aftr_ctl_args a{};
  a.op = op;
  std::memcpy(a.b4, b4.data(), 16);
  a.inner_addr = kInner;
  a.inner_port = htons(inner_port);
  a.proto = proto;
  return a;
}

aftr_ctl_args FlagsArgs(const Ip6& b4, uint16_t inner_port, uint8_t proto, uint8_t flags,
                        bool clear = false) {
  aftr_ctl_args a = SessionArgs(AFTR_CTL_SESSION_FLAGS, b4, inner_port, proto);
  a.flags = flags;
  a.ctl_flags = clear ? AFTR_CTL_F_CLEAR : 0;
  return a;
}

uint16_t PortOfBlock(const aftr_dp_config& c, uint32_t block, uint32_t i) {
  return c.port_min + block * c.block_size + i;
}

// What the PCP server does for a MAP: a subscriber made by aftrd (pool address 1, block 10)
// if it has none yet, and a session on port `index` of that block with `flags`. No packet
// has been sent on it, so address-dependent filtering knows no peer of it.
Mapping PcpMap(Harness& h, uint16_t inner_port, uint8_t proto, uint8_t flags, uint16_t index) {
  if (!h.Subscriber(kB4a)) {
    aftr_ctl_args sub{};
    sub.op = AFTR_CTL_SUBSCRIBER_CREATE;
    std::memcpy(sub.b4, kB4a.data(), 16);
    sub.addr_index = 1;
    sub.block = 10;
    sub.last_seen_ns = NowNs();
    REQUIRE(h.Ctl(sub) == 1);
  }
  Mapping m{h.pool()[1], PortOfBlock(h.config(), 10, index)};
  aftr_ctl_args a = SessionArgs(AFTR_CTL_SESSION_CREATE, kB4a, inner_port, proto);
  a.public_addr = m.addr;
  a.public_port = htons(m.port);
  a.flags = flags;
  a.last_seen_ns = NowNs();
  REQUIRE(h.Ctl(a) == 1);
  return m;
}

// One PCP FILTER: `prefix`/`len`, source port `port` (0: any), as aftrd stores it (the
// address already masked, everything in network order).
aftr_pcp_filter Filter(const char* prefix, int len, uint16_t port) {
  aftr_pcp_filter f{};
  f.mask = len ? htonl(~0u << (32 - len)) : 0;
  f.addr = Ip4Addr(prefix) & f.mask;
  f.port = htons(port);
  return f;
}

// The harness has no accessor for aftr_pcp_filters (it is written by aftrd only), so the
// test finds the map among this process's own BPF file descriptors: one Harness at a time
// means exactly one such map. The kernel keeps 15 characters of the name.
class PcpFilters {
 public:
  PcpFilters() {
    std::vector<uint32_t> ids;
    DIR* dir = opendir("/proc/self/fd");
    REQUIRE(dir);
    while (dirent* e = readdir(dir)) {
      char link[64] = {};
      std::string path = std::string("/proc/self/fd/") + e->d_name;
      if (readlink(path.c_str(), link, sizeof(link) - 1) < 0) continue;
      if (std::string(link) != "anon_inode:bpf-map") continue;
      bpf_map_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(std::atoi(e->d_name), &info, &len) != 0) continue;
      if (std::string(info.name) == "aftr_pcp_filter" &&
          info.value_size == sizeof(aftr_pcp_filter_set) &&
          info.key_size == sizeof(aftr_session_in_key)) {
        bool seen = false;
        for (uint32_t id : ids) seen |= id == info.id;
        if (!seen) ids.push_back(info.id);
      }
    }
    closedir(dir);
    REQUIRE(ids.size() == 1);
    fd_ = bpf_map_get_fd_by_id(ids[0]);
    REQUIRE(fd_ >= 0);
  }
  ~PcpFilters() { close(fd_); }
  PcpFilters(const PcpFilters&) = delete;
  PcpFilters& operator=(const PcpFilters&) = delete;

  void Set(const Mapping& m, uint8_t proto, const aftr_pcp_filter_set& set) {
    aftr_session_in_key k = InKey(m, proto);
    REQUIRE(bpf_map_update_elem(fd_, &k, &set, BPF_ANY) == 0);
  }

 private:
  int fd_ = -1;
};

uint64_t InternetDropFiltered(const Harness& h) {
  return h.CountersByDirection()[AFTR_DIR_FROM_INTERNET][AFTR_C_DROP_FILTERED];
}

// A frame from `remote`:`sport` to mapping `m`, TCP SYN or UDP.
Bytes Inbound(const Mapping& m, uint8_t proto, uint32_t remote, uint16_t sport) {
  PacketBuilder b = FromInternet(remote, m.addr);
  if (proto == kProtoTcp) return b.Tcp(sport, m.port, kTcpSyn).Build();
  return b.Udp(sport, m.port).Payload("hi").Build();
}

// What that frame becomes toward the B4, inner port `inner_port`.
Bytes Delivered(uint8_t proto, uint32_t remote, uint16_t sport, uint16_t inner_port) {
  PacketBuilder b = ToB4(kB4a, remote);
  if (proto == kProtoTcp) return b.Tcp(sport, inner_port, kTcpSyn).Build();
  return b.Udp(sport, inner_port).Payload("hi").Build();
}

TEST_CASE("pcp: a FILTERED mapping admits its one /32 FILTER peer from any port and drops "
          "everyone else",
          "[pcp][filtering]") {
  Harness h;  // endpoint-independent: without FILTERED anybody would get in
  PcpFilters filters;
  Mapping m = PcpMap(h, 8080, kProtoUdp, AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED, 3);
  aftr_pcp_filter_set set{};
  set.count = 1;
  set.f[0] = Filter("203.0.113.10", 32, 0);  // kRemote
  filters.Set(m, kProtoUdp, set);

  RunResult ok = h.Run(Inbound(m, kProtoUdp, kRemote, 5555));
  CHECK(VerdictName(ok.verdict) == "XDP_REDIRECT");
  CHECK(Hex(ok.out) == Hex(Delivered(kProtoUdp, kRemote, 5555, 8080)));
  CHECK(ChecksumErrors(ok.out) == "");
  // Port 0 in the filter: any source port of that peer.
  RunResult ok2 = h.Run(Inbound(m, kProtoUdp, kRemote, 61000));
  CHECK(VerdictName(ok2.verdict) == "XDP_REDIRECT");
  CHECK(Hex(ok2.out) == Hex(Delivered(kProtoUdp, kRemote, 61000, 8080)));

  // Another peer, same port: dropped untouched, counted on the Internet side.
  Bytes stranger = Inbound(m, kProtoUdp, kRemote2, 5555);
  RunResult bad = h.Run(stranger);
  CHECK(VerdictName(bad.verdict) == "XDP_DROP");
  CHECK(Hex(bad.out) == Hex(stranger));
  CHECK(InternetDropFiltered(h) == 1);
  CHECK(h.CounterString() == "rx_packets=3 in_translated=2 tx_redirect=2 drop_filtered=1");
  CHECK(h.DrainEvents().empty());
}

TEST_CASE("pcp: a prefix FILTER with a port admits only that prefix from that source port, "
          "for TCP and UDP",
          "[pcp][filtering]") {
  Harness h;
  PcpFilters filters;
  const uint8_t flags = AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED;
  struct Case {
    uint8_t proto;
    uint16_t inner_port;
    Mapping m;
  };
  std::vector<Case> cases = {{kProtoUdp, 5353, PcpMap(h, 5353, kProtoUdp, flags, 4)},
                             {kProtoTcp, 8080, PcpMap(h, 8080, kProtoTcp, flags, 5)}};
  // The match is the second filter (the loop goes past the first); the third lies beyond
  // `count`, left over from an earlier set, and would admit kRemote2 if it were read.
  aftr_pcp_filter_set set{};
  set.count = 2;
  set.f[0] = Filter("203.0.113.64", 26, 53);
  set.f[1] = Filter("203.0.113.0", 28, 4000);  // kRemote (.10) in it, kRemote2 (.20) not
  set.f[2] = Filter("203.0.113.16", 28, 0);
  for (const Case& c : cases) filters.Set(c.m, c.proto, set);

  uint64_t drops = 0;
  for (const Case& c : cases) {
    INFO("proto " << int(c.proto));
    // Right prefix, right source port, two addresses of the prefix.
    for (uint32_t peer : {kRemote, Ip4Addr("203.0.113.5")}) {
      RunResult ok = h.Run(Inbound(c.m, c.proto, peer, 4000));
      CHECK(VerdictName(ok.verdict) == "XDP_REDIRECT");
      CHECK(Hex(ok.out) == Hex(Delivered(c.proto, peer, 4000, c.inner_port)));
      CHECK(ChecksumErrors(ok.out) == "");
    }
    // Right prefix, another source port (also the first filter's port 53).
    for (uint16_t sport : {4001, 53}) {
      RunResult bad = h.Run(Inbound(c.m, c.proto, kRemote, sport));
      CHECK(VerdictName(bad.verdict) == "XDP_DROP");
      CHECK(InternetDropFiltered(h) == ++drops);
    }
    // Right port, another prefix (the one only the ignored third filter admits).
    RunResult other = h.Run(Inbound(c.m, c.proto, kRemote2, 4000));
    CHECK(VerdictName(other.verdict) == "XDP_DROP");
    CHECK(InternetDropFiltered(h) == ++drops);
  }
  CHECK(h.Counter(AFTR_C_IN_TRANSLATED) == 4);
  CHECK(h.Counter(AFTR_C_DROP_FILTERED) == 6);
  CHECK(h.SessionIn(InKey(cases[1].m, kProtoTcp))->tcp_flags ==
        (flags | AFTR_TCP_SEEN_SYN));  // only admitted SYNs count as seen
}

TEST_CASE("pcp: a FILTERED session without an aftr_pcp_filters entry admits nobody",
          "[pcp][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  PcpFilters filters;  // exists, but has no entry for these sessions

  SECTION("a PCP MAP with FILTERED") {
    Mapping m = PcpMap(h, 8080, kProtoUdp, AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED, 3);
    uint64_t n = 0;
    for (uint32_t peer : {kRemote, kRemote2, Ip4Addr("203.0.113.99")}) {
      RunResult r = h.Run(Inbound(m, kProtoUdp, peer, 4000));
      CHECK(VerdictName(r.verdict) == "XDP_DROP");
      CHECK(InternetDropFiltered(h) == ++n);
    }
    // The drops were for want of an entry: one for kRemote lets kRemote in.
    aftr_pcp_filter_set set{};
    set.count = 1;
    set.f[0] = Filter("203.0.113.10", 32, 0);
    filters.Set(m, kProtoUdp, set);
    RunResult ok = h.Run(Inbound(m, kProtoUdp, kRemote, 4000));
    CHECK(VerdictName(ok.verdict) == "XDP_REDIRECT");
    CHECK(Hex(ok.out) == Hex(Delivered(kProtoUdp, kRemote, 4000, 8080)));
  }
  SECTION("a dynamic session flagged FILTERED: not even the peer it sent to") {
    Mapping m = TranslateUdp(h, kB4a, kInnerPort, kRemote, kRemotePort);
    REQUIRE(h.FilterPeerCount() == 1);
    RunResult before = h.Run(Inbound(m, kProtoUdp, kRemote, kRemotePort));
    REQUIRE(VerdictName(before.verdict) == "XDP_REDIRECT");
    REQUIRE(h.Ctl(FlagsArgs(kB4a, kInnerPort, kProtoUdp, AFTR_SESSION_FILTERED)) == 1);
    RunResult r = h.Run(Inbound(m, kProtoUdp, kRemote, kRemotePort));
    CHECK(VerdictName(r.verdict) == "XDP_DROP");
    CHECK(InternetDropFiltered(h) == 1);
  }
  CHECK(h.Counter(AFTR_C_DROP_NO_SESSION) == 0);
}

TEST_CASE("pcp: under address-dependent filtering the FILTER set alone decides: a FILTER peer "
          "never contacted gets in, a contacted peer outside the set does not",
          "[pcp][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  PcpFilters filters;
  aftr_pcp_filter_set set{};
  set.count = 1;
  set.f[0] = Filter("203.0.113.20", 32, 0);  // kRemote2

  Mapping m;
  SECTION("a PCP MAP with FILTERED") {
    m = PcpMap(h, 8080, kProtoUdp, AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED, 3);
    filters.Set(m, kProtoUdp, set);
    // The inner host talks to kRemote from the mapping: kRemote becomes a known peer.
    CHECK(TranslateUdp(h, kB4a, 8080, kRemote, kRemotePort) == m);
  }
  SECTION("a dynamic session flagged FILTERED") {
    m = TranslateUdp(h, kB4a, 8080, kRemote, kRemotePort);
    REQUIRE(h.Ctl(FlagsArgs(kB4a, 8080, kProtoUdp, AFTR_SESSION_FILTERED)) == 1);
    filters.Set(m, kProtoUdp, set);
  }
  REQUIRE(h.FilterPeerCount() == 1);

  RunResult in = h.Run(Inbound(m, kProtoUdp, kRemote2, 4000));
  CHECK(VerdictName(in.verdict) == "XDP_REDIRECT");
  CHECK(Hex(in.out) == Hex(Delivered(kProtoUdp, kRemote2, 4000, 8080)));
  RunResult known = h.Run(Inbound(m, kProtoUdp, kRemote, kRemotePort));
  CHECK(VerdictName(known.verdict) == "XDP_DROP");
  CHECK(InternetDropFiltered(h) == 1);
}

TEST_CASE("pcp: under address-dependent filtering a PCP MAP is reachable from a peer it never "
          "sent to, dynamic and PCP PEER sessions are not",
          "[pcp][filtering]") {
  aftr_dp_config cfg = DefaultConfig();
  cfg.filtering = AFTR_FILTER_ADDRESS_DEPENDENT;
  Harness h(cfg);
  Mapping map = PcpMap(h, 8080, kProtoTcp, AFTR_SESSION_PCP_MAP, 3);
  CHECK(h.FilterPeerCount() == 0);

  RunResult syn = h.Run(Inbound(map, kProtoTcp, kRemote2, 40001));
  CHECK(VerdictName(syn.verdict) == "XDP_REDIRECT");
  CHECK(Hex(syn.out) == Hex(Delivered(kProtoTcp, kRemote2, 40001, 8080)));
  CHECK(ChecksumErrors(syn.out) == "");
  CHECK(InternetDropFiltered(h) == 0);

  // Regression guard: a plain dynamic session that sent to kRemote only.
  Mapping dyn = TranslateUdp(h, kB4a, kInnerPort, kRemote, kRemotePort);
  RunResult stranger = h.Run(Inbound(dyn, kProtoUdp, kRemote2, kRemotePort));
  CHECK(VerdictName(stranger.verdict) == "XDP_DROP");
  CHECK(InternetDropFiltered(h) == 1);

  // PCP PEER only holds the session: its inbound filtering stays that of a dynamic one.
  REQUIRE(h.Ctl(FlagsArgs(kB4a, kInnerPort, kProtoUdp, AFTR_SESSION_PCP_PEER)) == 1);
  RunResult peer = h.Run(Inbound(dyn, kProtoUdp, kRemote2, kRemotePort));
  CHECK(VerdictName(peer.verdict) == "XDP_DROP");
  CHECK(InternetDropFiltered(h) == 2);
  RunResult contacted = h.Run(Inbound(dyn, kProtoUdp, kRemote, kRemotePort));
  CHECK(VerdictName(contacted.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_IN_TRANSLATED) == 2);
}

TEST_CASE("pcp: SESSION_FLAGS sets PCP_MAP|FILTERED in both entries and CLEAR removes FILTERED "
          "only, keeping PCP_MAP and the TCP state",
          "[pcp][ctl]") {
  Harness h;
  // A TCP session with SYN seen both ways.
  RunResult out = h.Run(FromB4(kB4a).Tcp(kInnerPort, 443, kTcpSyn).Build());
  REQUIRE(VerdictName(out.verdict) == "XDP_REDIRECT");
  std::optional<Frame> o = ParseFrame(out.out);
  REQUIRE(o);
  Mapping m{o->src, o->sport};
  RunResult synack = h.Run(FromInternet(kRemote, m.addr).Tcp(443, m.port, kTcpSyn | kTcpAck).Build());
  REQUIRE(VerdictName(synack.verdict) == "XDP_REDIRECT");
  const aftr_session_out_key ok = OutKey(kB4a, kInner, kInnerPort, kProtoTcp);
  REQUIRE(h.SessionIn(InKey(m, kProtoTcp))->tcp_flags == AFTR_TCP_SEEN_SYN);
  REQUIRE(h.SessionOut(ok)->tcp_flags == AFTR_TCP_SEEN_SYN);
  const uint64_t sessions = h.Subscriber(kB4a)->state_sessions;

  REQUIRE(h.Ctl(FlagsArgs(kB4a, kInnerPort, kProtoTcp,
                          AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED)) == 1);
  CHECK(h.SessionOut(ok)->flags == (AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED));
  CHECK(h.SessionIn(InKey(m, kProtoTcp))->tcp_flags ==
        (AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED | AFTR_TCP_SEEN_SYN));
  // FILTERED with no filter entry: the peer it talks to is shut out now.
  RunResult shut = h.Run(FromInternet(kRemote, m.addr).Tcp(443, m.port, kTcpAck).Build());
  CHECK(VerdictName(shut.verdict) == "XDP_DROP");
  CHECK(InternetDropFiltered(h) == 1);

  REQUIRE(h.Ctl(FlagsArgs(kB4a, kInnerPort, kProtoTcp, AFTR_SESSION_FILTERED, true)) == 1);
  std::optional<aftr_session_out> so = h.SessionOut(ok);
  REQUIRE(so);
  CHECK(so->flags == AFTR_SESSION_PCP_MAP);
  CHECK(so->tcp_flags == AFTR_TCP_SEEN_SYN);
  CHECK(so->public_addr == m.addr);
  CHECK(ntohs(so->public_port) == m.port);
  std::optional<aftr_session_in> si = h.SessionIn(InKey(m, kProtoTcp));
  REQUIRE(si);
  CHECK(si->tcp_flags == (AFTR_SESSION_PCP_MAP | AFTR_TCP_SEEN_SYN));
  CHECK(Ip6String(B4Of(si->b4)) == Ip6String(kB4a));
  CHECK(ntohs(si->inner_port) == kInnerPort);
  CHECK(h.Subscriber(kB4a)->state_sessions == sessions);

  // Open again; a FIN adds to the seen bits.
  RunResult open = h.Run(FromInternet(kRemote2, m.addr).Tcp(443, m.port, kTcpFin | kTcpAck).Build());
  CHECK(VerdictName(open.verdict) == "XDP_REDIRECT");
  CHECK(h.SessionIn(InKey(m, kProtoTcp))->tcp_flags ==
        (AFTR_SESSION_PCP_MAP | AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_FIN));

  // Clearing every bit clears every session flag, and still not the seen bits: they are
  // the data plane's.
  REQUIRE(h.Ctl(FlagsArgs(kB4a, kInnerPort, kProtoTcp, 0xff, true)) == 1);
  CHECK(h.SessionOut(ok)->flags == 0);
  CHECK(h.SessionOut(ok)->tcp_flags == AFTR_TCP_SEEN_SYN);
  CHECK(h.SessionIn(InKey(m, kProtoTcp))->tcp_flags == (AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_FIN));
  CHECK(InternetDropFiltered(h) == 1);
}

TEST_CASE("pcp: SESSION_DELETE with DYNAMIC_ONLY refuses PCP PEER and PCP MAP sessions, "
          "without it they are deleted",
          "[pcp][ctl]") {
  Harness h;
  Mapping m;
  uint16_t inner_port = 0;
  uint8_t proto = kProtoUdp;
  SECTION("PCP PEER: a dynamic session the PCP server holds") {
    inner_port = kInnerPort;
    m = TranslateUdp(h, kB4a, inner_port);
    REQUIRE(h.Ctl(FlagsArgs(kB4a, inner_port, proto, AFTR_SESSION_PCP_PEER)) == 1);
  }
  SECTION("PCP MAP, made by SESSION_CREATE (the seen bit in `flags` is not stored)") {
    inner_port = 8080;
    proto = kProtoTcp;
    m = PcpMap(h, inner_port, proto,
               AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED | AFTR_TCP_SEEN_SYN, 3);
    CHECK(h.SessionOut(OutKey(kB4a, kInner, inner_port, proto))->flags ==
          (AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED));
    CHECK(h.SessionIn(InKey(m, proto))->tcp_flags ==
          (AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED));
  }
  REQUIRE(h.Subscriber(kB4a)->state_sessions == 1);

  aftr_ctl_args del = SessionArgs(AFTR_CTL_SESSION_DELETE, kB4a, inner_port, proto);
  del.ctl_flags = AFTR_CTL_F_DYNAMIC_ONLY;
  CHECK(h.Ctl(del) == -EPERM);
  CHECK(h.SessionOut(OutKey(kB4a, kInner, inner_port, proto)));
  CHECK(h.SessionIn(InKey(m, proto)));
  CHECK(h.Subscriber(kB4a)->state_sessions == 1);

  del.ctl_flags = 0;
  CHECK(h.Ctl(del) == 1);
  CHECK_FALSE(h.SessionOut(OutKey(kB4a, kInner, inner_port, proto)));
  CHECK_FALSE(h.SessionIn(InKey(m, proto)));
  CHECK(h.Subscriber(kB4a)->state_sessions == 0);
  CHECK(h.Ctl(del) == -ENOENT);
}

TEST_CASE("pcp: FILTERED alone does not hold a session: DYNAMIC_ONLY deletes it", "[pcp][ctl]") {
  Harness h;
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);
  REQUIRE(h.Ctl(FlagsArgs(kB4a, kInnerPort, kProtoUdp, AFTR_SESSION_FILTERED)) == 1);
  aftr_ctl_args del = SessionArgs(AFTR_CTL_SESSION_DELETE, kB4a, kInnerPort);
  del.ctl_flags = AFTR_CTL_F_DYNAMIC_ONLY;
  CHECK(h.Ctl(del) == 1);
  CHECK_FALSE(h.SessionIn(InKey(m, kProtoUdp)));
}

}  // namespace
}  // namespace bpftest
