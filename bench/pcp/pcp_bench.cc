// PCP benchmark (bench/run.sh part 4; prints figures, not a test). The target: the
// PCP requests/s the server answers on one core, and the p99 latency, with 100 k mappings
// live; at least 50 k requests/s.
//
// The process leaves for a private network namespace (a veth pair it creates and deletes,
// lo with the PCP listen address and a few hundred B4 addresses) and a private mount
// namespace with its own bpffs, then loads the real data plane (Datapath::Create: the XDP
// program attached to the veth, pinned maps) and a real PcpServer on it. Then:
//  1. fills 100 k MAP mappings (12 500 B4s x 8) through PcpServer::Handle: creates/s;
//  2. on one thread calling Handle directly (the server without its socket): a mix of
//     refreshes of existing mappings (same nonce, 90 %), ANNOUNCEs (8 %) and malformed
//     requests (2 %): requests/s and p50/p99 per request, overall and per kind;
//  3. the listener's periodic expiry scan over the 100 k records (it holds the server's
//     lock while it walks them);
//  4. the real socket path: PcpListener on [2001:db8:ffff::1]:5351 and a client thread
//     sending refreshes from B4 addresses on lo, ping-pong (window 1) and with a window of
//     outstanding requests: replies/s and round-trip p50/p99.
// Addresses are documentation ones only: B4s 2001:db8::/32, hosts 192.0.2.0/24 (named in
// THIRD_PARTY), pool 198.51.100.0/24. Root.
#include <arpa/inet.h>
#include <dirent.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aftr/abi.h"
#include "control/bpf/datapath.h"
#include "control/common/clock.h"
#include "control/common/ip.h"
#include "control/config/config.h"
#include "control/events/event_sink.h"
#include "control/pcp/pcp_message.h"
#include "control/pcp/pcp_server.h"
#include "bench/common/bench_env.h"

ABSL_FLAG(int, b4s, 12500, "B4s holding mappings");
ABSL_FLAG(int, per_b4, 8, "MAP mappings per B4 (distinct internal ports)");
ABSL_FLAG(int, requests, 300000, "requests of the Handle mix (after a warm-up of 20 000)");
ABSL_FLAG(int, socket_b4s, 256, "B4 addresses on lo the socket client sends from");
ABSL_FLAG(int, socket_requests, 200000, "requests over the socket per window size (at most)");
ABSL_FLAG(int, window, 32, "outstanding requests of the windowed socket run");
ABSL_FLAG(double, socket_seconds, 5, "time bound of each socket run");

namespace {

using aftr::Ipv4Address;
using aftr::Ipv6Address;
namespace pcp = aftr::pcp;
using namespace aftr::bench;  // NOLINT: Die, Shell, packet bytes

constexpr double kTarget = 50000;  // requests/s
constexpr char kVeth[] = "aftrpb0";
constexpr char kVethPeer[] = "aftrpb1";
constexpr char kListen[] = "2001:db8:ffff::1";
constexpr uint32_t kLifetime = 3600;
constexpr uint16_t kClientPort = 5350;

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- the private namespaces ----

std::string g_tmp;  // the private temp dir: bpffs mount point, clients file, ip batch file

// B4 number i: 2001:db8:b4:<i>::2.
Ipv6Address B4(int i) {
  Ipv6Address a;
  const uint8_t bytes[16] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0xb4,
                             static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 0, 0, 0, 0, 0, 0, 0, 2};
  std::memcpy(a.bytes.data(), bytes, 16);
  return a;
}

// Leaves the host's network and mount namespaces (everything below vanishes with the
// process too), mounts a bpffs, makes the veth pair the data plane attaches to and puts the
// listen address and `socket_b4s` B4 addresses on lo.
std::string SetUpNamespaces(int socket_b4s) {
  g_tmp = EnterPrivateNamespaces("aftr-pcp-bench");
  const std::string bpffs = g_tmp + "/bpffs";
  Shell(absl::StrCat("ip link add ", kVeth, " type veth peer name ", kVethPeer));
  Shell(absl::StrCat("ip link set ", kVeth, " up"));
  Shell(absl::StrCat("ip link set ", kVethPeer, " up"));
  const std::string batch = g_tmp + "/ip-batch";
  {
    std::ofstream out(batch);
    out << "addr add " << kListen << "/128 dev lo nodad\n";
    for (int i = 0; i < socket_b4s; ++i) out << "addr add " << B4(i).ToString() << "/128 dev lo nodad\n";
  }
  Shell("ip -6 -batch " + batch);
  return bpffs + "/aftr";
}

// ---- PCP messages ----


struct Mapping {
  int b4 = 0;
  uint8_t proto = 0;
  uint16_t internal_port = 0;
  Ipv4Address host;
};

// Mapping number m: B4 m / per_b4, host 192.0.2.(1 + b4 % 254), internal port 10000 + the
// rest, UDP and TCP alternately. Its nonce carries m (so a reply tells which it answers).
Mapping MappingOf(int m, int per_b4) {
  Mapping x;
  x.b4 = m / per_b4;
  x.internal_port = static_cast<uint16_t>(10000 + m % per_b4);
  x.proto = (m % per_b4) % 2 ? IPPROTO_TCP : IPPROTO_UDP;
  x.host = Ipv4Address{0xc0000200u + 1 + static_cast<uint32_t>(x.b4 % 254)};
  return x;
}

std::vector<uint8_t> MapRequest(int m, int per_b4) {
  const Mapping x = MappingOf(m, per_b4);
  std::vector<uint8_t> d(pcp::kHeaderSize + pcp::kMapBodySize + 4 + 16, 0);
  d[0] = pcp::kVersion;
  d[1] = static_cast<uint8_t>(pcp::Opcode::kMap);
  Put32(&d[4], kLifetime);
  std::memcpy(&d[8], B4(x.b4).bytes.data(), 16);
  uint8_t* b = &d[pcp::kHeaderSize];
  Put32(b, static_cast<uint32_t>(m));
  std::memcpy(b + 4, "pcpbench", 8);
  b[12] = x.proto;
  Put16(&b[16], x.internal_port);
  b[30] = b[31] = 0xff;  // suggested external address ::ffff:0.0.0.0 (no preference)
  uint8_t* o = b + pcp::kMapBodySize;
  o[0] = static_cast<uint8_t>(pcp::OptionCode::kThirdParty);
  Put16(&o[2], 16);
  const pcp::Address host = pcp::V4Mapped(x.host);
  std::memcpy(&o[4], host.data(), 16);
  return d;
}

std::vector<uint8_t> AnnounceRequest(int b4) {
  std::vector<uint8_t> d(pcp::kHeaderSize, 0);
  d[0] = pcp::kVersion;
  d[1] = static_cast<uint8_t>(pcp::Opcode::kAnnounce);
  std::memcpy(&d[8], B4(b4).bytes.data(), 16);
  return d;
}

// Malformed, alternately: a MAP request two octets too long (not whole words:
// MALFORMED_REQUEST) and an unknown opcode (UNSUPP_OPCODE).
std::vector<uint8_t> MalformedRequest(int m, int per_b4, bool odd) {
  std::vector<uint8_t> d = MapRequest(m, per_b4);
  if (odd) {
    d[1] = 0x05;
  } else {
    d.resize(d.size() + 2, 0);
  }
  return d;
}

pcp::Result ResultOf(const std::vector<uint8_t>& reply) {
  return reply.size() >= pcp::kHeaderSize ? static_cast<pcp::Result>(reply[3]) : pcp::Result::kNetworkFailure;
}

// ---- figures ----

struct Percentiles {
  double p50_us = 0, p99_us = 0, max_us = 0;
};

Percentiles Of(std::vector<uint64_t> ns) {
  Percentiles p;
  if (ns.empty()) return p;
  std::sort(ns.begin(), ns.end());
  p.p50_us = ns[ns.size() / 2] / 1e3;
  p.p99_us = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)] / 1e3;
  p.max_us = ns.back() / 1e3;
  return p;
}

std::string Ratio(double per_s) {
  return absl::StrCat(static_cast<int64_t>(per_s + 0.5), " req/s (",
                      absl::StrFormat("%.1f", per_s / kTarget), "x the 50k target)");
}

class CountingSink : public aftr::events::EventSink {
 public:
  using EventSink::Publish;
  absl::Status Publish(const std::vector<aftr::events::NatEvent>& events) override {
    count_ += events.size();
    return absl::OkStatus();
  }
  uint64_t count() const { return count_; }

 private:
  std::atomic<uint64_t> count_{0};
};

void PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof(set), &set);
}

// CPU time (ns) the thread `tid` of this process has had, from its schedstat.
uint64_t ThreadCpuNs(pid_t tid) {
  std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/schedstat"));
  uint64_t ns = 0;
  in >> ns;
  return ns;
}

// The threads of this process other than `except`.
std::vector<pid_t> OtherThreads(pid_t except) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
    if (tid > 0 && tid != except) out.push_back(tid);
  }
  closedir(d);
  return out;
}

// ---- the socket client ----

struct SocketRun {
  uint64_t sent = 0, replies = 0, failed = 0, lost = 0;
  double seconds = 0;
  std::vector<uint64_t> rtt_ns;
};

// Refreshes of the mappings of B4s 0..socket_b4s-1 (from their own addresses), cycling, with
// at most `window` outstanding; what is outstanding is given up (counted unanswered) after
// a second without any reply. Bounded by `total` requests and `seconds`.
SocketRun RunClient(int socket_b4s, int per_b4, int window, uint64_t total, double seconds) {
  SocketRun run;
  const int mappings = socket_b4s * per_b4;
  std::vector<std::vector<uint8_t>> requests(mappings);
  for (int m = 0; m < mappings; ++m) requests[m] = MapRequest(m, per_b4);
  std::vector<uint64_t> sent_at(mappings, 0);  // 0: not outstanding

  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("client socket");
  sockaddr_in6 any = {};
  any.sin6_family = AF_INET6;
  any.sin6_port = htons(kClientPort);
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) Die("client bind");
  sockaddr_in6 server = {};
  server.sin6_family = AF_INET6;
  server.sin6_port = htons(pcp::kServerPort);
  inet_pton(AF_INET6, kListen, &server.sin6_addr);

  auto send_one = [&](int m) {
    // From the mapping's B4 address (IPV6_PKTINFO picks the source).
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
    iovec iov = {requests[m].data(), requests[m].size()};
    msghdr msg = {};
    msg.msg_name = &server;
    msg.msg_namelen = sizeof(server);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo info = {};
    std::memcpy(&info.ipi6_addr, B4(MappingOf(m, per_b4).b4).bytes.data(), 16);
    std::memcpy(CMSG_DATA(c), &info, sizeof(info));
    sent_at[m] = NowNs();
    if (sendmsg(fd, &msg, 0) < 0) Die(std::string("sendmsg: ") + std::strerror(errno));
    ++run.sent;
  };

  run.rtt_ns.reserve(total);
  const uint64_t start = NowNs();
  const uint64_t deadline = start + static_cast<uint64_t>(seconds * 1e9);
  uint64_t last_reply = start;
  int outstanding = 0;
  int next = 0;
  uint8_t buf[pcp::kMaxMessage + 4];
  // Sends until `total` or the deadline, then waits (a second at most) for what is outstanding.
  for (uint64_t now = NowNs(); (run.sent < total && now < deadline) ||
                               (outstanding > 0 && now < deadline + 1000000000ull);
       now = NowNs()) {
    while (outstanding < window && run.sent < total && now < deadline) {
      if (sent_at[next] != 0) {  // still outstanding from the last cycle: give it up
        sent_at[next] = 0;
        ++run.lost;
        --outstanding;
      }
      send_one(next);
      ++outstanding;
      next = (next + 1) % mappings;
    }
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 1000) == 0) {  // nothing for a second: what is outstanding is lost
      for (uint64_t& t : sent_at) {
        if (t) ++run.lost;
        t = 0;
      }
      outstanding = 0;
      continue;
    }
    for (int i = 0; i < 1024; ++i) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0) break;
      const uint64_t at = NowNs();
      if (n < static_cast<ssize_t>(pcp::kHeaderSize + pcp::kMapBodySize)) {
        ++run.failed;
        continue;
      }
      const uint32_t m = Get32(&buf[pcp::kHeaderSize]);
      if (m >= static_cast<uint32_t>(mappings) || sent_at[m] == 0) continue;  // late reply
      run.rtt_ns.push_back(at - sent_at[m]);
      sent_at[m] = 0;
      --outstanding;
      ++run.replies;
      last_reply = at;
      if (buf[3] != static_cast<uint8_t>(pcp::Result::kSuccess)) ++run.failed;
    }
  }
  run.lost += outstanding;
  run.seconds = (last_reply - start) / 1e9;
  close(fd);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  SetBenchName("pcp_bench");
  absl::ParseCommandLine(argc, argv);
  const int b4s = absl::GetFlag(FLAGS_b4s);
  const int per_b4 = absl::GetFlag(FLAGS_per_b4);
  const int n_mappings = b4s * per_b4;
  const int socket_b4s = std::min(absl::GetFlag(FLAGS_socket_b4s), b4s);
  if (b4s < 1 || b4s > 65535 || per_b4 < 1 || per_b4 > 64 || socket_b4s < 1) Die("bad --b4s/--per_b4/--socket_b4s");
  libbpf_set_print([](enum libbpf_print_level level, const char* fmt, va_list args) {
    return level == LIBBPF_WARN ? std::vfprintf(stderr, fmt, args) : 0;
  });

  // Everything runs on CPU 0 (the listener's thread inherits it), the socket client on CPU 1.
  PinToCpu(0);
  const std::string pin_path = SetUpNamespaces(socket_b4s);
  absl::StatusOr<aftr::config::v1::Config> config = aftr::config::ParseConfig(absl::StrCat(
      "interfaces: \"", kVeth, "\" softwire_addresses: \"", kListen, "\" ",
      "b4_prefixes: \"2001:db8::/32\" pool_prefixes: \"198.51.100.0/24\" log_file: \"/dev/null\" ",
      "port_blocks { block_size: 512 max_blocks_per_subscriber: 8 max_sessions_per_subscriber: 256 } ",
      "tables { max_sessions: 262144 max_subscribers: 32768 } api { unix_socket: \"-\" } ",
      "pin_path: \"", pin_path, "\" ",
      "pcp { enabled: true listen_addresses: \"", kListen, "\" internal_prefixes: \"192.0.2.0/24\" ",
      "max_mappings_per_subscriber: 64 max_mappings: 262144 requests_per_second: 1000000000 ",
      "request_burst: 1000000000 clients_file: \"", g_tmp, "/pcp-clients\" }"));
  if (!config.ok()) Die(config.status().ToString());
  absl::StatusOr<std::unique_ptr<aftr::bpf::Datapath>> datapath = aftr::bpf::Datapath::Create(*config);
  if (!datapath.ok()) Die(datapath.status().ToString());
  absl::StatusOr<std::unique_ptr<pcp::KnownClients>> clients =
      pcp::KnownClients::Open(config->pcp().clients_file(), 1 << 20);
  if (!clients.ok()) Die(clients.status().ToString());
  CountingSink sink;
  absl::StatusOr<std::unique_ptr<pcp::PcpServer>> server =
      pcp::PcpServer::Create(datapath->get(), &sink, clients->get(), aftr::MonotonicCoarseNs);
  if (!server.ok()) Die(server.status().ToString());
  pcp::PcpServer& srv = **server;
  Ipv6Address local = *aftr::ParseIpv6(kListen);

  std::printf("setup: real XDP data plane on %s (private netns and bpffs), %d B4s x %d MAP mappings\n",
              kVeth, b4s, per_b4);

  // ---- 1. fill ----
  {
    std::vector<uint64_t> lat;
    lat.reserve(n_mappings);
    const uint64_t t0 = NowNs();
    for (int m = 0; m < n_mappings; ++m) {
      const std::vector<uint8_t> req = MapRequest(m, per_b4);
      const uint64_t s = NowNs();
      const std::vector<uint8_t> reply = srv.Handle(req, B4(MappingOf(m, per_b4).b4), local);
      lat.push_back(NowNs() - s);
      if (ResultOf(reply) != pcp::Result::kSuccess) {
        Die(absl::StrCat("creating mapping ", m, ": ", pcp::ResultName(ResultOf(reply))));
      }
    }
    const double s = (NowNs() - t0) / 1e9;
    const uint64_t created = srv.counters()[pcp::PcpServer::kMappingsCreated];
    if (created != static_cast<uint64_t>(n_mappings)) Die(absl::StrCat("only ", created, " mappings created"));
    const Percentiles p = Of(std::move(lat));
    std::printf("create via Handle: %d mappings in %.2f s: %.0f creates/s, p50 %.1f us, p99 %.1f us "
                "(%lu events)\n",
                n_mappings, s, n_mappings / s, p.p50_us, p.p99_us, sink.count());
  }

  // ---- 2. the mix through Handle, one thread ----
  {
    enum Kind { kRefresh, kAnnounce, kMalformed, kKinds };
    const char* const kKindNames[kKinds] = {"refresh", "ANNOUNCE", "malformed"};
    struct Req {
      std::vector<uint8_t> bytes;
      Ipv6Address source;
      Kind kind;
      pcp::Result expect;
    };
    const int n = std::max(absl::GetFlag(FLAGS_requests), 1000);
    constexpr int kWarmUp = 20000;
    std::vector<Req> reqs;
    reqs.reserve(n + kWarmUp);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    auto next_rand = [&rng] {  // xorshift64
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return rng;
    };
    for (int i = 0; i < n + kWarmUp; ++i) {
      const int m = static_cast<int>(next_rand() % n_mappings);
      const int b4 = MappingOf(m, per_b4).b4;
      const int slot = i % 50;
      if (slot == 0) {
        const bool odd = (i / 50) % 2;
        reqs.push_back({MalformedRequest(m, per_b4, odd), B4(b4), kMalformed,
                        odd ? pcp::Result::kUnsuppOpcode : pcp::Result::kMalformedRequest});
      } else if (slot <= 4) {
        reqs.push_back({AnnounceRequest(b4), B4(b4), kAnnounce, pcp::Result::kSuccess});
      } else {
        reqs.push_back({MapRequest(m, per_b4), B4(b4), kRefresh, pcp::Result::kSuccess});
      }
    }
    for (int i = 0; i < kWarmUp; ++i) (void)srv.Handle(reqs[i].bytes, reqs[i].source, local);
    std::vector<uint64_t> lat[kKinds];
    for (auto& l : lat) l.reserve(n);
    uint64_t wrong = 0;
    pcp::Result first_wrong = pcp::Result::kSuccess;
    const uint64_t t0 = NowNs();
    for (int i = kWarmUp; i < n + kWarmUp; ++i) {
      const Req& r = reqs[i];
      const uint64_t s = NowNs();
      const std::vector<uint8_t> reply = srv.Handle(r.bytes, r.source, local);
      lat[r.kind].push_back(NowNs() - s);
      if (ResultOf(reply) != r.expect && wrong++ == 0) first_wrong = ResultOf(reply);
    }
    const double s = (NowNs() - t0) / 1e9;
    std::vector<uint64_t> all;
    for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    const Percentiles p = Of(std::move(all));
    std::printf("mix via Handle (one thread, %d%% refresh / %d%% ANNOUNCE / %d%% malformed, %d requests, "
                "%d mappings live): %s, p50 %.1f us, p99 %.1f us, max %.0f us\n",
                90, 8, 2, n, n_mappings, Ratio(n / s).c_str(), p.p50_us, p.p99_us, p.max_us);
    for (int k = 0; k < kKinds; ++k) {
      const size_t count = lat[k].size();
      uint64_t sum = 0;
      for (uint64_t v : lat[k]) sum += v;
      const Percentiles q = Of(lat[k]);
      const double per_s = count ? count / (sum / 1e9) : 0;
      std::printf("  %-9s via Handle: %s, p50 %.1f us, p99 %.1f us (%zu requests; rate = 1 / mean time "
                  "in Handle)\n",
                  kKindNames[k],
                  Ratio(per_s).c_str(), q.p50_us, q.p99_us, count);
    }
    if (wrong) {
      std::printf("  WRONG: %lu replies not the expected result (first: %s)\n", wrong, pcp::ResultName(first_wrong));
    }
  }

  // ---- 3. the listener's expiry scan (nothing due) ----
  {
    std::vector<uint64_t> lat;
    int expired = 0;
    for (int i = 0; i < 9; ++i) {
      const uint64_t s = NowNs();
      expired += srv.ExpireDue();
      lat.push_back(NowNs() - s);
    }
    const Percentiles p = Of(std::move(lat));
    std::printf("expiry scan over %d records, nothing due (the listener runs it every 250 ms, under "
                "the server's lock): median %.2f ms, max %.2f ms (%d expired)\n",
                n_mappings, p.p50_us / 1e3, p.max_us / 1e3, expired);
  }

  // ---- 4. over the socket ----
  {
    absl::StatusOr<std::unique_ptr<pcp::PcpListener>> listener =
        pcp::PcpListener::Start(config->pcp(), &srv, clients->get());
    if (!listener.ok()) Die(listener.status().ToString());
    // The listener's thread: the only one besides this one (for its CPU time per request).
    const std::vector<pid_t> others = OtherThreads(static_cast<pid_t>(getpid()));
    if (others.size() != 1) Die(absl::StrCat("expected one listener thread, found ", others.size()));
    const pid_t listener_tid = others.front();
    const auto before = srv.counters();
    const uint64_t total = std::max(absl::GetFlag(FLAGS_socket_requests), 1000);
    const double seconds = absl::GetFlag(FLAGS_socket_seconds);
    for (int window : {1, std::max(absl::GetFlag(FLAGS_window), 1)}) {
      SocketRun run;
      const uint64_t cpu_before = ThreadCpuNs(listener_tid);
      const uint64_t served_before = srv.counters()[pcp::PcpServer::kRequests];
      std::thread client([&] {
        if (std::thread::hardware_concurrency() > 1) PinToCpu(1);
        run = RunClient(socket_b4s, per_b4, window, window == 1 ? total / 4 : total, seconds);
      });
      client.join();
      const double cpu_us = (ThreadCpuNs(listener_tid) - cpu_before) / 1e3;
      const uint64_t served = srv.counters()[pcp::PcpServer::kRequests] - served_before;
      const Percentiles p = Of(run.rtt_ns);
      std::printf("refresh via UDP socket, window %2d (%d B4 sources on lo, listener on CPU 0, client on "
                  "CPU 1): %s, RTT p50 %.1f us, p99 %.1f us (%lu sent, %lu replies, %lu unanswered, %lu "
                  "not SUCCESS, %.2f s)\n",
                  window, socket_b4s, Ratio(run.replies / std::max(run.seconds, 1e-9)).c_str(), p.p50_us,
                  p.p99_us, run.sent, run.replies, run.lost, run.failed, run.seconds);
      if (served) {
        const double per_request_us = cpu_us / served;
        std::printf("  listener thread CPU: %.1f us per request (recvfrom + Handle + sendto + poll): "
                    "a core fully busy would serve %s\n",
                    per_request_us, Ratio(1e6 / per_request_us).c_str());
      }
    }
    const auto counters = srv.counters();
    std::printf("  server counters over the socket runs: %lu requests, %lu dropped silently, %lu rate "
                "limited\n",
                counters[pcp::PcpServer::kRequests] - before[pcp::PcpServer::kRequests],
                counters[pcp::PcpServer::kDroppedSilently] - before[pcp::PcpServer::kDroppedSilently],
                counters[pcp::PcpServer::kRateLimited] - before[pcp::PcpServer::kRateLimited]);
  }
  server->reset();
  datapath->reset();
  return 0;  // the private temp dir goes at exit
}
