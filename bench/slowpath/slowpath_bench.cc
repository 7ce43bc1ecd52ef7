// aftr_slowpath_bench: what aftrd's fragment slow path costs per reassembled datagram in user
// space, beside what the fast path costs per unfragmented packet (bench/run.sh part 1b).
//
// The process leaves for a private network namespace (two veth pairs, routes and permanent
// neighbours so that bpf_fib_lookup resolves) and a private mount namespace with its own
// bpffs, then loads the real data plane (Datapath::Create: aftr_xdp attached to sp-b4 and
// sp-inet, pinned maps). One flow's session is created by a first unfragmented packet.
// Then, per datagram, what the daemon's slow-path thread does with the two ring records of a
// fragmented datagram (SlowPath::HandleRecord and Reassemble, composed here from the same
// functions and classes, because SlowPath keeps them private behind its thread):
//   ParseSoftwireFrame / ParseIpv4Frame of each record, Ipv4Reassembler::Add of each fragment,
//   BuildSoftwireFrame / BuildIpv4Frame of the whole datagram, Reinjector::Reinject: the
//   data plane's program run on it with BPF_PROG_TEST_RUN (Datapath::RunSlowPath), FitToMtu,
//   and PacketSender::Send out of the egress veth (AF_PACKET; the peer has no program and
//   drops the frame, its destination MAC being the gateway's).
// Not included: the ring wake-up (epoll) and the XDP program's queueing of each fragment
// (that is aftr_microbench's "fragment ..., queued" rows, about 2 per datagram).
// Rows: softwire (B4 -> Internet) and Internet (-> B4) datagrams, small (76 bytes, fragmented
// at MTU 68, leaves whole) and large (2000 bytes, fragmented at the lab's 1460, leaves as two
// fragments again). Each datagram is timed alone (steady_clock); the run and send parts are
// timed inside the Reinjector's callbacks. Baseline: the fast path's kernel-reported ns for
// one unfragmented 100-byte packet of the same flow (BPF_PROG_TEST_RUN, repeat=1, as
// aftr_microbench measures), and the wall-clock time of that syscall.
// Aborts (exit 1) when a datagram was not reassembled, not forwarded or not sent.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "aftr/abi.h"
#include "control/bpf/datapath.h"
#include "control/config/config.h"
#include "control/fragments/ipv4_fragmenter.h"
#include "control/fragments/ipv4_header.h"
#include "control/fragments/ipv4_reassembler.h"
#include "control/slowpath/frames.h"
#include "control/slowpath/packet_sender.h"
#include "control/slowpath/reinjector.h"
#include "bench/common/bench_env.h"

ABSL_FLAG(int, datagrams, 20000, "datagrams timed per row (after a warm-up of 1000)");
ABSL_FLAG(int, baseline_calls, 20000, "fast-path calls timed per direction");

namespace {

namespace fragments = aftr::fragments;
namespace slowpath = aftr::slowpath;
using namespace aftr::bench;  // NOLINT: Die, Shell, packet bytes
using Bytes = std::vector<uint8_t>;

// Documentation addresses, as aftr_microbench uses them.
constexpr char kSoftwire[] = "2001:db8:ffff::1";
constexpr char kB4[] = "2001:db8:100::1";
constexpr uint32_t kHost = 0xc000020a;    // 192.0.2.10
constexpr uint32_t kServer = 0xcb00710a;  // 203.0.113.10
constexpr uint16_t kHostPort = 20000;
constexpr uint16_t kServerPort = 9;
constexpr char kB4Dev[] = "sp-b4";
constexpr char kB4Peer[] = "sp-b4p";
constexpr char kInetDev[] = "sp-inet";
constexpr char kInetPeer[] = "sp-inetp";
constexpr char kB4GatewayMac[] = "02:00:5e:10:b4:fe";
constexpr char kInetGatewayMac[] = "02:00:5e:10:0e:fe";
constexpr int kWarmup = 1000;

// Leaves the host's network and mount namespaces (the veths and the bpffs vanish with the
// process), mounts a bpffs and makes sp-b4 (2001:db8:100::/40 via fe80::b4) and sp-inet
// (203.0.113.0/24 via 203.0.113.254), each with a peer that runs nothing. Returns the pin path.
std::string SetUpNamespaces() {
  const std::string bpffs = EnterPrivateNamespaces("aftr-slowpath-bench") + "/bpffs";
  WriteSysctl("/proc/sys/net/ipv4/ip_forward", "1");  // else bpf_fib_lookup: FWD_DISABLED
  WriteSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
  for (auto [dev, peer] : {std::pair{kB4Dev, kB4Peer}, std::pair{kInetDev, kInetPeer}}) {
    Shell(absl::StrCat("ip link add ", dev, " type veth peer name ", peer));
    Shell(absl::StrCat("ip link set ", dev, " up"));
    Shell(absl::StrCat("ip link set ", peer, " up"));
  }
  Shell(absl::StrCat("ip -6 route add 2001:db8:100::/40 via fe80::b4 dev ", kB4Dev));
  Shell(absl::StrCat("ip -6 neigh add fe80::b4 lladdr ", kB4GatewayMac, " dev ", kB4Dev, " nud permanent"));
  Shell(absl::StrCat("ip route add 203.0.113.0/24 via 203.0.113.254 dev ", kInetDev, " onlink"));
  Shell(absl::StrCat("ip neigh add 203.0.113.254 lladdr ", kInetGatewayMac, " dev ", kInetDev, " nud permanent"));
  return bpffs + "/aftr";
}

// ---- packets ----

// IPv4/UDP of `len` bytes in all (addresses and ports in host order), no DF, correct checksums.
Bytes Udp4(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, size_t len, uint16_t id) {
  Bytes ip(len);
  ip[0] = 0x45;
  Put16(&ip[2], len);
  Put16(&ip[4], id);
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  Put32(&ip[12], src);
  Put32(&ip[16], dst);
  Put16(&ip[10], Checksum(ip.data(), 20));
  uint8_t* udp = &ip[20];
  const size_t udp_len = len - 20;
  Put16(udp, sport);
  Put16(udp + 2, dport);
  Put16(udp + 4, udp_len);
  for (size_t i = 8; i < udp_len; i++) udp[i] = static_cast<uint8_t>(i);
  uint32_t pseudo = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + IPPROTO_UDP + udp_len;
  uint16_t c = Checksum(udp, udp_len, pseudo);
  Put16(udp + 6, c == 0 ? 0xffff : c);
  return ip;
}

slowpath::Ipv6Bytes V6(const char* s) {
  slowpath::Ipv6Bytes a{};
  if (inet_pton(AF_INET6, s, a.data()) != 1) Die(absl::StrCat("bad IPv6 address ", s));
  return a;
}

std::array<uint8_t, 14> Ethernet(uint16_t proto) {
  std::array<uint8_t, 14> e{};  // the program writes both MACs
  Put16(&e[12], proto);
  return e;
}

// What XDP queues (struct aftr_slow_record + the frame), one per fragment of the datagram
// `ipv4` cut at `mtu`: inside a softwire packet from the B4, or from the Internet.
std::vector<Bytes> RingRecords(const Bytes& ipv4, size_t mtu, bool softwire, int ifindex) {
  auto pieces = fragments::FragmentIpv4(ipv4, mtu);
  if (!pieces.ok()) Die("FragmentIpv4: " + pieces.status().ToString());
  std::vector<Bytes> records;
  for (const Bytes& piece : *pieces) {
    Bytes frame = softwire ? slowpath::BuildSoftwireFrame(Ethernet(ETH_P_IPV6), V6(kB4), V6(kSoftwire), piece)
                           : slowpath::BuildIpv4Frame(Ethernet(ETH_P_IP), piece);
    aftr_slow_record hdr{};
    hdr.frame_len = frame.size();
    hdr.ifindex = ifindex;
    hdr.kind = softwire ? AFTR_SLOW_SOFTWIRE_FRAGMENT : AFTR_SLOW_INET_FRAGMENT;
    Bytes record(sizeof(hdr) + frame.size());
    std::memcpy(record.data(), &hdr, sizeof(hdr));
    std::memcpy(record.data() + sizeof(hdr), frame.data(), frame.size());
    records.push_back(std::move(record));
  }
  return records;
}

// ---- timing ----

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Stat {
  double p10, median, p90, mean;
};

Stat Percentiles(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return double(v[std::min<size_t>(v.size() - 1, size_t(q * v.size()))]); };
  double sum = 0;
  for (uint64_t x : v) sum += x;
  return {at(0.10), at(0.50), at(0.90), sum / v.size()};
}

struct TestRun {
  uint32_t retval, duration;
  Bytes out;
};

TestRun RunOnce(int prog_fd, const Bytes& frame, int ifindex) {
  Bytes out(frame.size() + 256);
  xdp_md md{};
  md.data_end = frame.size();
  md.ingress_ifindex = ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &md,
              .ctx_size_in = sizeof(md), .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) Die(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
  out.resize(opts.data_size_out);
  return {opts.retval, opts.duration, std::move(out)};
}

}  // namespace

int main(int argc, char** argv) {
  SetBenchName("aftr_slowpath_bench");
  absl::ParseCommandLine(argc, argv);
  const int datagrams = absl::GetFlag(FLAGS_datagrams);
  const int baseline_calls = absl::GetFlag(FLAGS_baseline_calls);
  if (datagrams <= 0 || baseline_calls <= 0) Die("counts must be > 0");
  // One CPU for everything (the send's softirq work on the veth included), as aftrd's one
  // slow-path thread.
  const int cpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)) - 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) Die("pinning to a CPU");

  const std::string pin_path = SetUpNamespaces();
  absl::StatusOr<aftr::config::v1::Config> config = aftr::config::ParseConfig(absl::StrCat(
      "interfaces: \"", kB4Dev, "\" interfaces: \"", kInetDev, "\" softwire_addresses: \"", kSoftwire, "\" ",
      "b4_prefixes: \"2001:db8:100::/40\" pool_prefixes: \"198.51.100.0/24\" log_file: \"/dev/null\" ",
      "port_blocks { block_size: 512 } api { unix_socket: \"-\" } pin_path: \"", pin_path, "\""));
  if (!config.ok()) Die(config.status().ToString());
  absl::StatusOr<std::unique_ptr<aftr::bpf::Datapath>> datapath = aftr::bpf::Datapath::Create(*config);
  if (!datapath.ok()) Die(datapath.status().ToString());
  aftr::bpf::Datapath* dp = datapath->get();
  const int b4_ifindex = static_cast<int>(if_nametoindex(kB4Dev));
  const int inet_ifindex = static_cast<int>(if_nametoindex(kInetDev));
  // The program Datapath attached (the one RunSlowPath runs): the fast-path baseline's.
  uint32_t prog_id = 0;
  if (bpf_xdp_query_id(b4_ifindex, XDP_FLAGS_DRV_MODE, &prog_id) != 0 || prog_id == 0)
    Die("no XDP program on sp-b4");
  const int prog_fd = bpf_prog_get_fd_by_id(prog_id);
  if (prog_fd < 0) Die("bpf_prog_get_fd_by_id");

  // The flow's session: its first packet (a 100-byte DS-Lite frame) creates it.
  const Bytes out_frame =
      slowpath::BuildSoftwireFrame(Ethernet(ETH_P_IPV6), V6(kB4), V6(kSoftwire), Udp4(kHost, kHostPort, kServer, kServerPort, 46, 1));
  TestRun first = RunOnce(prog_fd, out_frame, b4_ifindex);
  if (first.retval != XDP_REDIRECT || first.out.size() < 14 + 28 || Get16(&first.out[12]) != ETH_P_IP)
    Die(absl::StrCat("the flow's first packet was not translated (verdict ", first.retval, ")"));
  const uint32_t public_addr = Get32(&first.out[14 + 12]);
  const uint16_t public_port = Get16(&first.out[14 + 20]);
  const Bytes in_frame = slowpath::BuildIpv4Frame(Ethernet(ETH_P_IP), Udp4(kServer, kServerPort, public_addr, public_port, 46, 1));

  // ---- baseline: the fast path, one unfragmented packet of the flow ----
  struct Baseline {
    const char* name;
    const Bytes* frame;
    int ifindex;
    std::vector<uint64_t> kernel_ns, syscall_ns;
  } baselines[] = {{"out (B4 -> Internet)", &out_frame, b4_ifindex, {}, {}},
                   {"in (Internet -> B4)", &in_frame, inet_ifindex, {}, {}}};
  for (Baseline& b : baselines) {
    for (int k = 0; k < kWarmup + baseline_calls; ++k) {
      const uint64_t t0 = NowNs();
      TestRun r = RunOnce(prog_fd, *b.frame, b.ifindex);
      const uint64_t t1 = NowNs();
      if (r.retval != XDP_REDIRECT) Die(absl::StrCat("fast path ", b.name, ": verdict ", r.retval));
      if (k < kWarmup) continue;
      b.kernel_ns.push_back(r.duration);
      b.syscall_ns.push_back(t1 - t0);
    }
  }

  // ---- the slow path, per datagram ----
  absl::StatusOr<std::unique_ptr<slowpath::PacketSender>> sender = slowpath::PacketSender::Open();
  if (!sender.ok()) Die(sender.status().ToString());
  uint64_t run_ns = 0, send_ns = 0;  // time inside the Reinjector's callbacks, this datagram
  // The first frame sent of each row is checked: translated, toward the right side.
  int check_direction = 0;  // 1: toward the Internet, 2: toward the B4, 0: checked
  std::string wrong_frame;
  slowpath::Reinjector reinjector(
      [&](std::span<const uint8_t> frame, int ifindex) {
        const uint64_t t0 = NowNs();
        auto r = dp->RunSlowPath(frame, ifindex);
        run_ns += NowNs() - t0;
        return r;
      },
      [&](int ifindex, std::span<const uint8_t> frame) {
        if (check_direction == 1 &&
            (ifindex != inet_ifindex || frame.size() < 14 + 20 || Get16(&frame[12]) != ETH_P_IP ||
             Get32(&frame[14 + 12]) != public_addr || Get32(&frame[14 + 16]) != kServer))
          wrong_frame = "not IPv4 from the public address to the server, out of sp-inet";
        if (check_direction == 2 &&
            (ifindex != b4_ifindex || frame.size() < 14 + 40 + 20 || Get16(&frame[12]) != ETH_P_IPV6 ||
             std::memcmp(&frame[14 + 24], V6(kB4).data(), 16) != 0 || Get32(&frame[14 + 40 + 16]) != kHost))
          wrong_frame = "not IPv6 to the B4 carrying IPv4 to the host, out of sp-b4";
        check_direction = 0;
        const uint64_t t0 = NowNs();
        absl::Status s = (*sender)->Send(ifindex, frame);
        send_ns += NowNs() - t0;
        return s;
      });

  struct Row {
    std::string name;
    bool softwire;
    size_t datagram_len, mtu;
    std::vector<uint64_t> total_ns, run_ns, send_ns;
    size_t fragments_in = 0, frames_out = 0;
  };
  std::vector<Row> rows = {
      {"softwire, 76 B in 2 fragments", true, 76, 68, {}, {}, {}},
      {"Internet, 76 B in 2 fragments", false, 76, 68, {}, {}, {}},
      {"softwire, 2000 B in 2 fragments", true, 2000, 1460, {}, {}, {}},
      {"Internet, 2000 B in 2 fragments", false, 2000, 1460, {}, {}, {}},
  };
  fragments::Ipv4Reassembler reassembler;  // aftrd's default limits
  uint64_t expected_reinjected = 0, expected_frames = 0;
  for (Row& row : rows) {
    // The records of every datagram, built before timing; the IP ID tells datagrams apart.
    std::vector<std::vector<Bytes>> records;
    for (int k = 0; k < kWarmup + datagrams; ++k) {
      const uint16_t id = static_cast<uint16_t>(k);
      Bytes ipv4 = row.softwire ? Udp4(kHost, kHostPort, kServer, kServerPort, row.datagram_len, id)
                                : Udp4(kServer, kServerPort, public_addr, public_port, row.datagram_len, id);
      records.push_back(RingRecords(ipv4, row.mtu, row.softwire, row.softwire ? b4_ifindex : inet_ifindex));
    }
    row.fragments_in = records[0].size();
    const uint64_t sent_before = reinjector.counters().fragments_sent.load();
    check_direction = row.softwire ? 1 : 2;
    for (int k = 0; k < kWarmup + datagrams; ++k) {
      run_ns = send_ns = 0;
      const uint64_t t0 = NowNs();
      // SlowPath::HandleRecord and Reassemble, record by record.
      for (const Bytes& rec : records[k]) {
        aftr_slow_record hdr;
        std::memcpy(&hdr, rec.data(), sizeof(hdr));
        std::span<const uint8_t> frame(rec.data() + sizeof(hdr), hdr.frame_len);
        std::span<const uint8_t, 14> ethernet = frame.first<14>();
        fragments::ReassemblyContext context{};
        std::span<const uint8_t> ipv4;
        std::optional<slowpath::SoftwirePacket> sw;
        if (hdr.kind == AFTR_SLOW_SOFTWIRE_FRAGMENT) {
          auto parsed = slowpath::ParseSoftwireFrame(frame);
          if (!parsed.ok()) Die("ParseSoftwireFrame: " + parsed.status().ToString());
          sw = *parsed;
          context = sw->b4;
          ipv4 = sw->ipv4;
        } else {
          auto parsed = slowpath::ParseIpv4Frame(frame);
          if (!parsed.ok()) Die("ParseIpv4Frame: " + parsed.status().ToString());
          ipv4 = *parsed;
        }
        auto whole = reassembler.Add(context, ipv4, absl::Now());
        if (!whole.ok()) Die("Ipv4Reassembler::Add: " + whole.status().ToString());
        if (!whole->has_value()) continue;
        Bytes built = sw ? slowpath::BuildSoftwireFrame(ethernet, sw->b4, sw->softwire, **whole)
                         : slowpath::BuildIpv4Frame(ethernet, **whole);
        reinjector.Reinject(built, static_cast<int>(hdr.ifindex));
      }
      const uint64_t t1 = NowNs();
      if (!wrong_frame.empty()) Die(row.name + ": wrong frame sent: " + wrong_frame);
      if (k < kWarmup) continue;
      row.total_ns.push_back(t1 - t0);
      row.run_ns.push_back(run_ns);
      row.send_ns.push_back(send_ns);
    }
    row.frames_out = (reinjector.counters().fragments_sent.load() - sent_before) / (kWarmup + datagrams);
    expected_reinjected += kWarmup + datagrams;
    // Small datagrams leave whole; 2000 bytes exceed the veths' 1500 (and 1500 - 40): two.
    expected_frames += uint64_t(kWarmup + datagrams) * (row.datagram_len > 1460 ? 2 : 1);
  }

  // ---- checks: every datagram reassembled, forwarded by the program and sent ----
  const slowpath::ReinjectCounters& rc = reinjector.counters();
  const fragments::ReassemblyCounters& fc = reassembler.counters();
  bool bad = rc.reinjected.load() != expected_reinjected || fc.reassembled != expected_reinjected ||
             rc.fragments_sent.load() != expected_frames || rc.not_forwarded.load() != 0 ||
             rc.too_big.load() != 0 || rc.run_errors.load() != 0 || rc.send_errors.load() != 0 ||
             reassembler.pending_datagrams() != 0;

  // ---- report ----
  std::printf(
      "aftr_slowpath_bench: aftrd's fragment slow path per reassembled datagram, in user space "
      "on one CPU (%d): record parse + Ipv4Reassembler + frame build + Reinjector (aftr_xdp "
      "run by BPF_PROG_TEST_RUN through Datapath::RunSlowPath, FitToMtu, AF_PACKET send on a "
      "veth); ring wake-up and the XDP queueing of the fragments not included\n",
      cpu);
  std::printf("table: one UDP session (its first packet created it), real data plane (Datapath::Create, private netns and bpffs)\n\n");
  std::printf("%-34s %9s %9s %9s %9s %10s\n", "fast path, 100-byte packet", "calls", "kernel_ns", "p10", "p90",
              "syscall_ns");
  for (const Baseline& b : baselines) {
    const Stat k = Percentiles(b.kernel_ns), s = Percentiles(b.syscall_ns);
    std::printf("%-34s %9zu %9.0f %9.0f %9.0f %10.0f\n", (std::string("established ") + b.name).c_str(),
                b.kernel_ns.size(), k.median, k.p10, k.p90, s.median);
  }
  std::printf("\n%-34s %9s %9s %9s %9s %9s %9s %10s %7s %9s\n", "slow path (no ring wake-up)", "datagrams",
              "median_us", "p10_us", "p90_us", "run_us", "send_us", "frames i/o", "x fast", "x syscall");
  for (const Row& row : rows) {
    const Stat t = Percentiles(row.total_ns), r = Percentiles(row.run_ns), s = Percentiles(row.send_ns);
    const Baseline& b = baselines[row.softwire ? 0 : 1];
    const double fast = Percentiles(b.kernel_ns).median, syscall = Percentiles(b.syscall_ns).median;
    std::printf("%-34s %9zu %9.2f %9.2f %9.2f %9.2f %9.2f %6zu/%-3zu %6.0fx %8.1fx\n", row.name.c_str(),
                row.total_ns.size(), t.median / 1e3, t.p10 / 1e3, t.p90 / 1e3, r.median / 1e3, s.median / 1e3,
                row.fragments_in, row.frames_out, t.median / fast, t.median / syscall);
  }
  std::printf(
      "\nx fast: median slow-path datagram / median fast-path kernel_ns of one unfragmented packet "
      "of the same flow and direction (kernel_ns: BPF_PROG_TEST_RUN's own duration, as "
      "aftr_microbench); x syscall: the same over that call timed from user space (syscall_ns). "
      "run_us, send_us: medians of the parts of a datagram inside Datapath::RunSlowPath and "
      "PacketSender::Send; frames i/o: fragments in, frames sent.\n");
  std::printf(
      "counters: reassembled %llu, reinjected %llu, frames sent %llu, not forwarded %llu, too big "
      "%llu, run errors %llu, send errors %llu, pending %zu\n",
      (unsigned long long)fc.reassembled, (unsigned long long)rc.reinjected.load(),
      (unsigned long long)rc.fragments_sent.load(), (unsigned long long)rc.not_forwarded.load(),
      (unsigned long long)rc.too_big.load(), (unsigned long long)rc.run_errors.load(),
      (unsigned long long)rc.send_errors.load(), reassembler.pending_datagrams());
  if (bad) {
    std::printf("FAILED: not every datagram was reassembled, forwarded and sent (expected %llu datagrams, %llu frames)\n",
                (unsigned long long)expected_reinjected, (unsigned long long)expected_frames);
  }
  close(prog_fd);
  datapath->reset();
  return bad ? 1 : 0;
}
