// The slow path's frame handling (control/slowpath/frames) and the Reinjector's decisions,
// with the program run and the sending replaced by stand-ins.
#include <linux/bpf.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "control/fragments/ipv4_fragmenter.h"
#include "control/fragments/ipv4_reassembler.h"
#include "control/slowpath/frames.h"
#include "control/slowpath/reinjector.h"

namespace aftr::slowpath {
namespace {

uint16_t Get16(const Bytes& b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }

// An IPv4 UDP packet of `payload` bytes (UDP checksum 0: not checked here), flags/offset word `frag`.
Bytes Ipv4Udp(size_t payload, uint16_t frag = 0, uint16_t id = 0x1234) {
  Bytes p(20 + 8 + payload);
  p[0] = 0x45;
  p[2] = p.size() >> 8;
  p[3] = p.size() & 0xff;
  p[4] = id >> 8;
  p[5] = id & 0xff;
  p[6] = frag >> 8;
  p[7] = frag & 0xff;
  p[8] = 64;
  p[9] = 17;
  uint8_t src[4] = {198, 51, 100, 1}, dst[4] = {203, 0, 113, 10};
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  p[24] = (p.size() - 20) >> 8;  // UDP length
  p[25] = (p.size() - 20) & 0xff;
  for (size_t i = 28; i < p.size(); ++i) p[i] = uint8_t(i * 7);
  uint16_t check = fragments::Ipv4HeaderChecksum(std::span<const uint8_t>(p).first(20));
  p[10] = check >> 8;
  p[11] = check & 0xff;
  return p;
}

const std::array<uint8_t, 14> kEth = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0, 0};
const Ipv6Bytes kB4 = {0x20, 0x01, 0x0d, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
const Ipv6Bytes kSoftwire = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

TEST_CASE("slowpath frames: a softwire frame is built and taken apart again", "[slowpath]") {
  Bytes ip = Ipv4Udp(100);
  Bytes f = BuildSoftwireFrame(kEth, kB4, kSoftwire, ip);
  REQUIRE(f.size() == 14 + 40 + ip.size());
  CHECK(Get16(f, 12) == 0x86dd);
  CHECK(Get16(f, 14 + 4) == ip.size());
  CHECK(f[14 + 6] == 4);
  absl::StatusOr<SoftwirePacket> p = ParseSoftwireFrame(f);
  REQUIRE(p.ok());
  CHECK(p->b4 == kB4);
  CHECK(p->softwire == kSoftwire);
  CHECK(Bytes(p->ipv4.begin(), p->ipv4.end()) == ip);
  // Ethernet padding after the packet is not part of it.
  f.resize(f.size() + 6, 0);
  p = ParseSoftwireFrame(f);
  REQUIRE(p.ok());
  CHECK(p->ipv4.size() == ip.size());
  // A Destination Options header (ip6tnl's encapsulation limit) is skipped.
  Bytes with_opts = BuildSoftwireFrame(kEth, kB4, kSoftwire, ip);
  Bytes opts = {4, 0, 4, 1, 4, 1, 1, 0};  // next IPv4, 8 bytes: encap limit 4, PadN
  with_opts.insert(with_opts.begin() + 54, opts.begin(), opts.end());
  with_opts[14 + 6] = 60;
  with_opts[14 + 5] += 8;
  p = ParseSoftwireFrame(with_opts);
  REQUIRE(p.ok());
  CHECK(Bytes(p->ipv4.begin(), p->ipv4.end()) == ip);
}

TEST_CASE("slowpath frames: broken frames are refused, not read past", "[slowpath]") {
  Bytes ip = Ipv4Udp(100);
  Bytes f = BuildSoftwireFrame(kEth, kB4, kSoftwire, ip);
  for (size_t n = 0; n < f.size(); ++n) {
    Bytes cut(f.begin(), f.begin() + n);
    CHECK_FALSE(ParseSoftwireFrame(cut).ok());
  }
  Bytes not_ipip = f;
  not_ipip[14 + 6] = 17;
  CHECK_FALSE(ParseSoftwireFrame(not_ipip).ok());
  Bytes v4 = BuildIpv4Frame(kEth, ip);
  CHECK(ParseIpv4Frame(v4).ok());
  v4[14 + 2] = 0xff;  // tot_len past the frame
  CHECK_FALSE(ParseIpv4Frame(v4).ok());
}

TEST_CASE("slowpath frames: an IPv4 frame over the MTU is fragmented, each fragment whole",
          "[slowpath]") {
  Bytes ip = Ipv4Udp(3000);
  Bytes f = BuildIpv4Frame(kEth, ip);
  absl::StatusOr<std::vector<Bytes>> pieces = FitToMtu(f, 1500);
  REQUIRE(pieces.ok());
  REQUIRE(pieces->size() == 3);
  fragments::Ipv4Reassembler r;
  std::optional<std::vector<uint8_t>> whole;
  for (const Bytes& piece : *pieces) {
    CHECK(piece.size() - 14 <= 1500);
    CHECK(std::equal(kEth.begin(), kEth.begin() + 12, piece.begin()));
    auto added = r.Add({}, std::span<const uint8_t>(piece).subspan(14), absl::Now());
    REQUIRE(added.ok());
    if (added->has_value()) whole = **added;
  }
  REQUIRE(whole);
  // Same datagram (flags and checksum aside).
  CHECK(whole->size() == ip.size());
  CHECK(std::equal(ip.begin() + 20, ip.end(), whole->begin() + 20));
  // It fits: unchanged.
  pieces = FitToMtu(f, 3028);
  REQUIRE(pieces.ok());
  REQUIRE(pieces->size() == 1);
  CHECK((*pieces)[0] == f);
}

TEST_CASE("slowpath frames: toward a B4 the inner IPv4 is fragmented to MTU - 40 behind a copy "
          "of the IPv6 header",
          "[slowpath]") {
  Bytes ip = Ipv4Udp(3000);
  Bytes f = BuildSoftwireFrame(kEth, kB4, kSoftwire, ip);
  absl::StatusOr<std::vector<Bytes>> pieces = FitToMtu(f, 1500);
  REQUIRE(pieces.ok());
  REQUIRE(pieces->size() == 3);
  fragments::Ipv4Reassembler r;
  std::optional<std::vector<uint8_t>> whole;
  for (const Bytes& piece : *pieces) {
    CHECK(piece.size() - 14 <= 1500);
    CHECK(std::equal(f.begin(), f.begin() + 14 + 4, piece.begin()));   // Ethernet, IPv6 first word
    CHECK(std::equal(f.begin() + 20, f.begin() + 54, piece.begin() + 20));  // nh, hop limit, addresses
    CHECK(Get16(piece, 14 + 4) == piece.size() - 54);
    auto added = r.Add({}, std::span<const uint8_t>(piece).subspan(54), absl::Now());
    REQUIRE(added.ok());
    if (added->has_value()) whole = **added;
  }
  REQUIRE(whole);
  CHECK(std::equal(ip.begin() + 20, ip.end(), whole->begin() + 20));
}

TEST_CASE("slowpath frames: DF set and too big is refused as such", "[slowpath]") {
  Bytes f = BuildIpv4Frame(kEth, Ipv4Udp(3000, 0x4000));
  absl::StatusOr<std::vector<Bytes>> pieces = FitToMtu(f, 1500);
  CHECK(absl::IsFailedPrecondition(pieces.status()));
}

TEST_CASE("slowpath frames: a long datagram is cut into a head for a run and joined again",
          "[slowpath]") {
  Bytes ip = Ipv4Udp(6000);
  Bytes f = BuildIpv4Frame(kEth, ip);
  // Short enough: the frame itself, nothing cut.
  absl::StatusOr<FrameHead> whole = CutForRun(f, f.size());
  REQUIRE(whole.ok());
  CHECK(whole->head == f);
  CHECK(whole->tail.empty());

  absl::StatusOr<FrameHead> cut = CutForRun(f, 1000);
  REQUIRE(cut.ok());
  REQUIRE(cut->head.size() == 1000);
  CHECK(cut->tail.size() == f.size() - 1000);
  CHECK(cut->head_ipv4_len == 1000 - 14);
  CHECK(Get16(cut->head, 14 + 2) == 1000 - 14);           // IPv4 total length
  CHECK(Get16(cut->head, 14 + 20 + 4) == 1000 - 14 - 20);  // UDP length
  CHECK(ParseIpv4Frame(cut->head).ok());                   // its header checksum made right
  CHECK(Bytes(cut->head.begin() + 14 + 28, cut->head.end()) == Bytes(f.begin() + 14 + 28, f.begin() + 1000));
  // Joined unchanged: the frame again.
  absl::StatusOr<Bytes> again = RejoinTail(cut->head, cut->head_ipv4_len, cut->tail);
  REQUIRE(again.ok());
  CHECK(*again == f);

  // A softwire frame's head, "decapsulated" as the program would: joined, it is the whole
  // IPv4 packet behind Ethernet, IPv6 payload length shortened in the head.
  Bytes sw = BuildSoftwireFrame(kEth, kB4, kSoftwire, ip);
  cut = CutForRun(sw, 1500);
  REQUIRE(cut.ok());
  CHECK(Get16(cut->head, 14 + 4) == 1500 - 14 - 40);
  absl::StatusOr<SoftwirePacket> head = ParseSoftwireFrame(cut->head);
  REQUIRE(head.ok());
  Bytes decapsulated = BuildIpv4Frame(kEth, head->ipv4);
  again = RejoinTail(decapsulated, cut->head_ipv4_len, cut->tail);
  REQUIRE(again.ok());
  CHECK(*again == f);
  // And the other way: an IPv4 head encapsulated joins into the whole softwire frame.
  cut = CutForRun(f, 1000);
  REQUIRE(cut.ok());
  absl::StatusOr<std::span<const uint8_t>> head4 = ParseIpv4Frame(cut->head);
  REQUIRE(head4.ok());
  again = RejoinTail(BuildSoftwireFrame(kEth, kB4, kSoftwire, *head4), cut->head_ipv4_len, cut->tail);
  REQUIRE(again.ok());
  CHECK(*again == sw);

  // What is not the head translated (an ICMP error made about it) goes as it is.
  Bytes error = BuildIpv4Frame(kEth, Ipv4Udp(20));
  again = RejoinTail(error, cut->head_ipv4_len, cut->tail);
  REQUIRE(again.ok());
  CHECK(*again == error);
}

TEST_CASE("slowpath frames: what cannot be cut into a head is refused", "[slowpath]") {
  // A fragment (its length is not the datagram's).
  CHECK(!CutForRun(BuildIpv4Frame(kEth, Ipv4Udp(6000, 0x2000)), 1000).ok());
  // Headers past the head.
  CHECK(absl::IsOutOfRange(CutForRun(BuildIpv4Frame(kEth, Ipv4Udp(6000)), 40).status()));
  // Not IPv4 or IPv6, or a broken IPv4 header.
  CHECK(!CutForRun(Bytes(6000, 0), 1000).ok());
  Bytes bad = BuildIpv4Frame(kEth, Ipv4Udp(6000));
  bad[14 + 10] ^= 1;
  CHECK(!CutForRun(bad, 1000).ok());
  // A UDP length shorter than what is cut.
  Bytes short_udp = BuildIpv4Frame(kEth, Ipv4Udp(6000));
  short_udp[14 + 24] = 0;
  short_udp[14 + 25] = 8;
  CHECK(!CutForRun(short_udp, 1000).ok());
}

TEST_CASE("slowpath reinjector: sends what the program sent where it said, fragmented, and counts",
          "[slowpath]") {
  std::vector<std::pair<int, Bytes>> sent;
  int verdict = XDP_REDIRECT;
  uint32_t egress = 7, mtu = 1500;
  Bytes output = BuildSoftwireFrame(kEth, kB4, kSoftwire, Ipv4Udp(3000));
  std::vector<int> run_ingress;
  Reinjector r(
      [&](std::span<const uint8_t> frame, int ingress) -> absl::StatusOr<bpf::Datapath::SlowRun> {
        run_ingress.push_back(ingress);
        bpf::Datapath::SlowRun run;
        run.verdict = verdict;
        run.meta.egress_ifindex = egress;
        run.meta.mtu = mtu;
        run.frame = output;
        (void)frame;
        return run;
      },
      [&](int ifindex, std::span<const uint8_t> frame) {
        sent.emplace_back(ifindex, Bytes(frame.begin(), frame.end()));
        return absl::OkStatus();
      });
  Bytes in = BuildIpv4Frame(kEth, Ipv4Udp(3000));
  r.Reinject(in, 3);
  CHECK(run_ingress == std::vector<int>{3});
  REQUIRE(sent.size() == 3);
  for (const auto& [ifindex, frame] : sent) CHECK(ifindex == 7);
  CHECK(r.counters().reinjected == 1);
  CHECK(r.counters().fragments_sent == 3);

  // XDP_TX with no egress reported: back out of the ingress interface.
  sent.clear();
  verdict = XDP_TX;
  egress = 0;
  r.Reinject(in, 3);
  REQUIRE(sent.size() == 3);
  CHECK(sent[0].first == 3);

  // Dropped or passed by the program: nothing sent, counted.
  sent.clear();
  verdict = XDP_DROP;
  r.Reinject(in, 3);
  verdict = XDP_PASS;
  r.Reinject(in, 3);
  CHECK(sent.empty());
  CHECK(r.counters().not_forwarded == 2);

  // Larger than a program run takes and not a datagram that can be cut: never run.
  run_ingress.clear();
  r.Reinject(Bytes(bpf::Datapath::kMaxSlowRunFrame + 1, 0), 3);
  CHECK(run_ingress.empty());
  CHECK(r.counters().too_big == 1);
}

TEST_CASE("slowpath reinjector: what the program passes for the kernel goes to the kernel, one "
          "hop less",
          "[slowpath]") {
  std::vector<Bytes> to_kernel;
  int sent_out = 0;
  uint32_t flags = AFTR_SLOW_META_VIA_KERNEL;
  Bytes output = BuildIpv4Frame(kEth, Ipv4Udp(3000));
  auto run = [&](std::span<const uint8_t>, int) -> absl::StatusOr<bpf::Datapath::SlowRun> {
    bpf::Datapath::SlowRun r;
    r.verdict = XDP_PASS;
    r.meta.egress_ifindex = 7;
    r.meta.mtu = 1500;
    r.meta.flags = flags;
    r.frame = output;
    return r;
  };
  auto send = [&](int, std::span<const uint8_t>) {
    ++sent_out;
    return absl::OkStatus();
  };
  Reinjector r(run, send, [&](std::span<const uint8_t> frame) {
    to_kernel.emplace_back(frame.begin(), frame.end());
    return absl::OkStatus();
  });
  r.Reinject(BuildIpv4Frame(kEth, Ipv4Udp(3000)), 3);
  REQUIRE(to_kernel.size() == 3);  // fragmented to the MTU the program reported
  CHECK(sent_out == 0);
  for (const Bytes& f : to_kernel) {
    CHECK(f[14 + 8] == 63);  // TTL 64 less the kernel's hop
    CHECK(ParseIpv4Frame(f).ok());  // its header checksum made right again
  }
  CHECK(r.counters().via_kernel == 1);
  CHECK(r.counters().reinjected == 1);

  // TTL 1: the kernel would not forward it.
  output[14 + 8] = 1;
  r.Reinject(BuildIpv4Frame(kEth, Ipv4Udp(3000)), 3);
  CHECK(to_kernel.size() == 3);
  CHECK(r.counters().not_forwarded == 1);
  // Passed without the flag (not ours to forward), or no kernel sender: not forwarded.
  output[14 + 8] = 64;
  flags = 0;
  r.Reinject(BuildIpv4Frame(kEth, Ipv4Udp(3000)), 3);
  CHECK(r.counters().not_forwarded == 2);
  flags = AFTR_SLOW_META_VIA_KERNEL;
  Reinjector without(run, send);
  without.Reinject(BuildIpv4Frame(kEth, Ipv4Udp(3000)), 3);
  CHECK(without.counters().not_forwarded == 1);
  CHECK(to_kernel.size() == 3);
}

TEST_CASE("slowpath reinjector: a datagram longer than a run takes is run as its head and sent "
          "whole",
          "[slowpath]") {
  std::vector<std::pair<int, Bytes>> sent;
  size_t run_size = 0;
  Reinjector r(
      [&](std::span<const uint8_t> frame, int) -> absl::StatusOr<bpf::Datapath::SlowRun> {
        run_size = frame.size();
        bpf::Datapath::SlowRun run;  // the program "forwards it unchanged" out of 7, MTU 9000
        run.verdict = XDP_REDIRECT;
        run.meta.egress_ifindex = 7;
        run.meta.mtu = 9000;
        run.frame.assign(frame.begin(), frame.end());
        return run;
      },
      [&](int ifindex, std::span<const uint8_t> frame) {
        sent.emplace_back(ifindex, Bytes(frame.begin(), frame.end()));
        return absl::OkStatus();
      });
  Bytes in = BuildIpv4Frame(kEth, Ipv4Udp(8000));
  REQUIRE(in.size() > bpf::Datapath::kMaxSlowRunFrame);
  r.Reinject(in, 3);
  CHECK(run_size == bpf::Datapath::kMaxSlowRunFrame);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].second == in);
  CHECK(r.counters().head_runs == 1);
  CHECK(r.counters().reinjected == 1);
  CHECK(r.counters().too_big == 0);
}

}  // namespace
}  // namespace aftr::slowpath
