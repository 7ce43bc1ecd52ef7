#include "control/slowpath/slow_path.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/time/clock.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/slowpath/frames.h"

namespace aftr::slowpath {
namespace {

constexpr int kRingTag = 1;
constexpr int kRawTag = 2;
constexpr int kStopTag = 3;
constexpr int kExpireIntervalMs = 1000;
constexpr size_t kMaxRawBatch = 256;  // raw-socket reads per wake-up, so the ring gets its turn
const std::array<uint8_t, kEthernetLen> kNoEthernet{};  // the program writes both MACs

}  // namespace

absl::StatusOr<std::unique_ptr<SlowPath>> SlowPath::Start(const aftr::config::v1::Fragments& config,
                                                          bpf::Datapath* datapath) {
  auto sp = std::unique_ptr<SlowPath>(new SlowPath());
  sp->datapath_ = datapath;
  fragments::ReassemblyLimits limits;
  limits.timeout = absl::Milliseconds(config.timeout_ms());
  limits.max_datagrams = config.max_datagrams();
  limits.max_bytes = config.max_bytes();
  sp->reassembler_ = fragments::Ipv4Reassembler(limits);

  absl::StatusOr<std::unique_ptr<PacketSender>> sender = PacketSender::Open();
  if (!sender.ok()) return sender.status();
  sp->sender_ = std::move(*sender);
  sp->reinjector_ = std::make_unique<Reinjector>(
      [datapath](std::span<const uint8_t> frame, int ifindex) {
        return datapath->RunSlowPath(frame, ifindex);
      },
      [s = sp->sender_.get()](int ifindex, std::span<const uint8_t> frame) {
        return s->Send(ifindex, frame);
      },
      [s = sp->sender_.get()](std::span<const uint8_t> frame) { return s->SendViaKernel(frame); });

  sp->ring_ = ring_buffer__new(datapath->fds().slow_path, &SlowPath::OnRecord, sp.get(), nullptr);
  if (sp->ring_ == nullptr) return ErrnoToStatus(errno, "opening the slow-path ring");

  // What the kernel reassembled from IPv6 fragments to a softwire address (local): IPv4 in
  // IPv6 reaches raw IPPROTO_IPIP sockets (no ip6tnl device claims it).
  sp->raw_fd_ = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_IPIP);
  if (sp->raw_fd_ < 0) return ErrnoToStatus(errno, "opening the softwire raw socket");
  int on = 1;
  if (setsockopt(sp->raw_fd_, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on)) != 0) {
    return ErrnoToStatus(errno, "IPV6_RECVPKTINFO on the softwire raw socket");
  }
  int rcvbuf = 4 << 20;
  (void)setsockopt(sp->raw_fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));

  sp->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (sp->stop_fd_ < 0) return ErrnoToStatus(errno, "eventfd");
  sp->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (sp->epoll_fd_ < 0) return ErrnoToStatus(errno, "creating an epoll instance");
  struct {
    int fd;
    int tag;
  } watched[] = {{ring_buffer__epoll_fd(sp->ring_), kRingTag}, {sp->raw_fd_, kRawTag},
                 {sp->stop_fd_, kStopTag}};
  for (const auto& w : watched) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = w.tag;
    if (epoll_ctl(sp->epoll_fd_, EPOLL_CTL_ADD, w.fd, &ev) != 0) return ErrnoToStatus(errno, "epoll_ctl");
  }
  sp->thread_ = std::thread([p = sp.get()] { p->Loop(); });
  return sp;
}

SlowPath::~SlowPath() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (ring_ != nullptr) ring_buffer__free(ring_);
  for (int fd : {raw_fd_, epoll_fd_, stop_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void SlowPath::Loop() {
  absl::Time next_expire = absl::Now() + absl::Milliseconds(kExpireIntervalMs);
  for (;;) {
    epoll_event events[4];
    int n = epoll_wait(epoll_fd_, events, 4, kExpireIntervalMs);
    if (n < 0 && errno != EINTR) LogWarning("slow path: epoll_wait: %s", std::strerror(errno));
    for (int i = 0; i < n; ++i) {
      switch (events[i].data.u32) {
        case kStopTag:
          return;
        case kRingTag:
          if (ring_buffer__consume(ring_) < 0) LogWarning("slow path: ring: %s", std::strerror(errno));
          break;
        case kRawTag:
          ReadRawSocket();
          break;
      }
    }
    absl::Time now = absl::Now();
    if (now >= next_expire) {
      reassembler_.Expire(now);
      next_expire = now + absl::Milliseconds(kExpireIntervalMs);
    }
    PublishReassemblyCounters();
  }
}

int SlowPath::OnRecord(void* ctx, void* data, size_t size) {
  static_cast<SlowPath*>(ctx)->HandleRecord(static_cast<const uint8_t*>(data), size);
  return 0;
}

void SlowPath::HandleRecord(const uint8_t* data, size_t size) {
  received_.fetch_add(1, std::memory_order_relaxed);
  aftr_slow_record hdr;
  if (size < sizeof(hdr)) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::memcpy(&hdr, data, sizeof(hdr));
  if (hdr.frame_len > size - sizeof(hdr)) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::span<const uint8_t> frame(data + sizeof(hdr), hdr.frame_len);
  int ifindex = static_cast<int>(hdr.ifindex);
  std::span<const uint8_t, kEthernetLen> ethernet = frame.first<kEthernetLen>();
  switch (hdr.kind) {
    case AFTR_SLOW_INET_FRAGMENT: {
      absl::StatusOr<std::span<const uint8_t>> ipv4 = ParseIpv4Frame(frame);
      if (!ipv4.ok()) break;
      Reassemble(fragments::ReassemblyContext{}, *ipv4, ethernet, nullptr, nullptr, ifindex);
      return;
    }
    case AFTR_SLOW_SOFTWIRE_FRAGMENT: {
      absl::StatusOr<SoftwirePacket> sw = ParseSoftwireFrame(frame);
      if (!sw.ok()) break;
      Reassemble(sw->b4, sw->ipv4, ethernet, &sw->b4, &sw->softwire, ifindex);
      return;
    }
    case AFTR_SLOW_OVERSIZE:
      // Whole already: run it, and fragment what comes out.
      reinjector_->Reinject(frame, ifindex);
      return;
  }
  malformed_.fetch_add(1, std::memory_order_relaxed);
}

void SlowPath::Reassemble(const fragments::ReassemblyContext& context, std::span<const uint8_t> ipv4,
                          std::span<const uint8_t, 14> ethernet, const Ipv6Bytes* b4,
                          const Ipv6Bytes* softwire, int ingress_ifindex) {
  auto whole = reassembler_.Add(context, ipv4, absl::Now());
  if (!whole.ok() || !whole->has_value()) return;  // malformed (counted) or incomplete
  const std::vector<uint8_t>& datagram = **whole;
  Bytes frame = b4 != nullptr ? BuildSoftwireFrame(ethernet, *b4, *softwire, datagram)
                              : BuildIpv4Frame(ethernet, datagram);
  reinjector_->Reinject(frame, ingress_ifindex);
}

void SlowPath::ReadRawSocket() {
  std::vector<uint8_t>& buf = raw_buffer_;
  for (size_t i = 0; i < kMaxRawBatch; ++i) {
    sockaddr_in6 from{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(raw_fd_, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) LogWarning("slow path: softwire socket: %s", std::strerror(errno));
      return;
    }
    received_.fetch_add(1, std::memory_order_relaxed);
    from_kernel_.fetch_add(1, std::memory_order_relaxed);
    const in6_pktinfo* info = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        info = reinterpret_cast<const in6_pktinfo*>(CMSG_DATA(c));
      }
    }
    if (info == nullptr || (msg.msg_flags & MSG_TRUNC)) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    Ipv6Bytes b4, softwire;
    std::memcpy(b4.data(), &from.sin6_addr, 16);
    std::memcpy(softwire.data(), &info->ipi6_addr, 16);
    // The payload is the IPv4 packet: it may itself be a fragment, reassembled here.
    Reassemble(b4, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), kNoEthernet, &b4,
               &softwire, static_cast<int>(info->ipi6_ifindex));
  }
}

void SlowPath::PublishReassemblyCounters() {
  absl::MutexLock lock(&counters_mu_);
  reassembly_ = reassembler_.counters();
  pending_datagrams_ = reassembler_.pending_datagrams();
  pending_bytes_ = reassembler_.pending_bytes();
}

std::map<std::string, uint64_t> SlowPath::CounterMap() const {
  const ReinjectCounters& r = reinjector_->counters();
  std::map<std::string, uint64_t> c{
      {"slow_path_received", received_.load()},
      {"slow_path_from_kernel", from_kernel_.load()},
      {"slow_path_malformed", malformed_.load()},
      {"slow_path_reinjected", r.reinjected.load()},
      {"slow_path_fragments_sent", r.fragments_sent.load()},
      {"slow_path_send_errors", r.send_errors.load()},
      {"slow_path_not_forwarded", r.not_forwarded.load()},
      {"slow_path_too_big", r.too_big.load()},
      {"slow_path_head_runs", r.head_runs.load()},
      {"slow_path_via_kernel", r.via_kernel.load()},
      {"slow_path_run_errors", r.run_errors.load()},
  };
  absl::MutexLock lock(&counters_mu_);
  c["fragments_received"] = reassembly_.fragments;
  c["fragments_reassembled"] = reassembly_.reassembled;
  c["fragments_timed_out"] = reassembly_.timed_out;
  c["fragments_evicted"] = reassembly_.evicted;
  c["fragments_too_many"] = reassembly_.too_many_fragments;
  c["fragments_overlapping"] = reassembly_.overlapping;
  c["fragments_malformed"] = reassembly_.malformed;
  c["fragments_pending_datagrams"] = pending_datagrams_;
  c["fragments_pending_bytes"] = pending_bytes_;
  return c;
}

}  // namespace aftr::slowpath
