// UDP and TCP transports. See transport.h.
#include "control/ipfix/transport.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "control/common/errno_status.h"
#include "control/common/log.h"

namespace aftr::ipfix {

// ---- UDP ----

absl::StatusOr<std::unique_ptr<UdpTransport>> UdpTransport::Create(const SocketAddress& collector,
                                                                   ExportCounters* counters) {
  int fd = socket(collector.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "ipfix: UDP socket");
  // Bound once: the source port stays the same for the daemon's life, so the collector keeps
  // one transport session (and its templates) for us.
  sockaddr_storage any = {};
  any.ss_family = collector.family();
  const socklen_t len = collector.family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), len) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoToStatus(err, "ipfix: binding the UDP socket");
  }
  return std::unique_ptr<UdpTransport>(new UdpTransport(fd, collector, counters));
}

UdpTransport::~UdpTransport() { close(fd_); }

uint16_t UdpTransport::local_port() const {
  sockaddr_storage ss = {};
  socklen_t len = sizeof(ss);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

void UdpTransport::Send(Message m) {
  // Not connected: an ICMP port unreachable from a collector that is down must not turn
  // into errors on later sends (UDP export is fire-and-forget; gaps show in the sequence).
  ssize_t n = sendto(fd_, m.bytes.data(), m.bytes.size(), 0, collector_.get(), collector_.length);
  if (n != static_cast<ssize_t>(m.bytes.size())) {
    counters_->Add(counters_->records_dropped, m.nat_records);
    return;
  }
  counters_->Add(counters_->messages_sent, 1);
  counters_->Add(counters_->bytes_sent, m.bytes.size());
  counters_->Add(counters_->records_exported, m.nat_records);
  if (m.templates) counters_->Add(counters_->template_messages, 1);
}

// ---- TCP ----

TcpTransport::TcpTransport(const SocketAddress& collector, const Options& options,
                           std::function<Message()> templates, std::function<absl::Time()> clock,
                           ExportCounters* counters)
    : collector_(collector),
      options_(options),
      templates_(std::move(templates)),
      clock_(std::move(clock)),
      counters_(counters),
      backoff_(options.first_backoff) {}

TcpTransport::~TcpTransport() {
  if (fd_ >= 0) close(fd_);
}

void TcpTransport::Drop(const Message& m) {
  counters_->Add(counters_->records_dropped, m.nat_records);
  dropped_since_warning_ += m.nat_records;
  const absl::Time now = clock_();
  if (now >= next_overflow_warning_) {
    LogWarning("ipfix: spool for %s full (%d bytes): %d records dropped", collector_.ToString(),
               spool_bytes_, dropped_since_warning_);
    dropped_since_warning_ = 0;
    next_overflow_warning_ = now + absl::Seconds(10);
  }
}

void TcpTransport::Send(Message m) {
  // The newest message is the one dropped: those already in the spool may be half written,
  // and the gap it leaves in the sequence numbers tells the collector what was lost.
  if (spool_bytes_ + m.bytes.size() > options_.spool_bytes) {
    Drop(m);
    return;
  }
  spool_bytes_ += m.bytes.size();
  counters_->spool_bytes.store(spool_bytes_, std::memory_order_relaxed);
  spool_.push_back(std::move(m));
  if (connected()) WriteSome();
}

void TcpTransport::StartConnect() {
  fd_ = socket(collector_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    Fail("socket", errno);
    return;
  }
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd_, collector_.get(), collector_.length) == 0) {
    OnConnected();
  } else if (errno == EINPROGRESS) {
    connecting_ = true;
  } else {
    Fail("connect", errno);
  }
}

void TcpTransport::OnConnected() {
  connecting_ = false;
  if (ever_connected_) counters_->Add(counters_->reconnects, 1);
  ever_connected_ = true;
  counters_->connected.store(1, std::memory_order_relaxed);
  backoff_ = options_.first_backoff;
  LogInfo("ipfix: connected to %s, %d messages to (re)send", collector_.ToString(), spool_.size());
  // Templates open every connection; their sequence number is that of the first message
  // after them (the oldest unacknowledged one when resending).
  Message t = templates_();
  if (!spool_.empty()) {
    t.sequence = spool_.front().sequence;
    RewriteSequence(t.bytes, t.sequence);
  }
  spool_bytes_ += t.bytes.size();
  spool_.push_front(std::move(t));
  written_ = 0;
  write_index_ = 0;
  write_offset_ = 0;
  WriteSome();
}

void TcpTransport::Fail(const char* what, int err) {
  if (ever_connected_ && !connecting_ && fd_ >= 0) {
    LogWarning("ipfix: connection to %s lost (%s%s%s); %d bytes kept to resend",
               collector_.ToString(), what, err ? ": " : "", err ? std::strerror(err) : "",
               spool_bytes_);
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  connecting_ = false;
  counters_->connected.store(0, std::memory_order_relaxed);
  next_attempt_ = clock_() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  // Everything unacknowledged goes again on the next connection, after fresh templates;
  // the old connection's template message is not data and is not kept.
  size_t unacknowledged = 0;  // data messages written (wholly or partly), to be resent
  size_t index = 0;
  for (auto it = spool_.begin(); it != spool_.end(); ++index) {
    const bool was_written = index < write_index_ || (index == write_index_ && write_offset_ > 0);
    if (it->templates) {
      spool_bytes_ -= it->bytes.size();
      it = spool_.erase(it);
      continue;
    }
    if (was_written) ++unacknowledged;
    ++it;
  }
  counters_->Add(counters_->messages_resent, unacknowledged);
  written_ = 0;
  write_index_ = 0;
  write_offset_ = 0;
  counters_->spool_bytes.store(spool_bytes_, std::memory_order_relaxed);
}

void TcpTransport::WriteSome() {
  while (write_index_ < spool_.size()) {
    const Message& m = spool_[write_index_];
    ssize_t n = send(fd_, m.bytes.data() + write_offset_, m.bytes.size() - write_offset_,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      Fail("send", errno);
      return;
    }
    written_ += n;
    write_offset_ += n;
    counters_->Add(counters_->bytes_sent, n);
    if (write_offset_ == m.bytes.size()) {
      counters_->Add(counters_->messages_sent, 1);
      if (m.templates) counters_->Add(counters_->template_messages, 1);
      ++write_index_;
      write_offset_ = 0;
    }
  }
}

void TcpTransport::Release(uint64_t acknowledged) {
  while (!spool_.empty() && spool_.front().bytes.size() <= acknowledged && write_index_ > 0) {
    const Message& m = spool_.front();
    acknowledged -= m.bytes.size();
    written_ -= m.bytes.size();
    spool_bytes_ -= m.bytes.size();
    counters_->Add(counters_->records_exported, m.nat_records);
    spool_.pop_front();
    --write_index_;
  }
  counters_->spool_bytes.store(spool_bytes_, std::memory_order_relaxed);
}

void TcpTransport::Poll() {
  if (fd_ < 0) {
    if (clock_() >= next_attempt_) StartConnect();
    if (fd_ < 0) return;
  }
  if (connecting_) {
    pollfd p = {fd_, POLLOUT, 0};
    if (poll(&p, 1, 0) <= 0) return;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      Fail("connect", err);
      return;
    }
    OnConnected();
    if (fd_ < 0) return;
  }
  // A collector never sends: readable means it closed (0) or reset the connection.
  char buf[512];
  ssize_t r = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    // Bytes the peer's TCP acknowledged before it closed were received; release them first.
    int outq = 0;
    if (ioctl(fd_, SIOCOUTQ, &outq) == 0 && static_cast<uint64_t>(outq) <= written_) {
      Release(written_ - outq);
    }
    Fail(r == 0 ? "closed by the collector" : "recv", r == 0 ? 0 : errno);
    return;
  }
  WriteSome();
  if (fd_ < 0) return;
  // SIOCOUTQ: bytes in the send queue not yet acknowledged by the peer.
  int outq = 0;
  if (ioctl(fd_, SIOCOUTQ, &outq) == 0 && static_cast<uint64_t>(outq) <= written_) {
    Release(written_ - outq);
  }
}

void TcpTransport::Close() {
  if (fd_ < 0) return;
  shutdown(fd_, SHUT_WR);
  close(fd_);
  fd_ = -1;
  counters_->connected.store(0, std::memory_order_relaxed);
}

}  // namespace aftr::ipfix
