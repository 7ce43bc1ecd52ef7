// How finished IPFIX messages reach one collector: UDP (one datagram per message, one
// socket for the daemon's life so the collector sees one transport session) or TCP (a
// spool kept until the collector's TCP acknowledged it, resent after a reconnection).
#ifndef AFTR_CONTROL_IPFIX_TRANSPORT_H_
#define AFTR_CONTROL_IPFIX_TRANSPORT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/common/socket_address.h"
#include "control/ipfix/export_counters.h"
#include "control/ipfix/message_packer.h"

namespace aftr::ipfix {

class Transport {
 public:
  virtual ~Transport() = default;
  // Takes one message. UDP sends it now; TCP spools it and writes what it can.
  virtual void Send(Message message) = 0;
  // Work due now (TCP: connect, write, release what was acknowledged, notice a lost peer).
  virtual void Poll() {}
  // True when messages wait (unwritten or unacknowledged): the caller polls sooner.
  virtual bool Busy() const { return false; }
  // Whether templates go once per connection (the transport asks for them) rather than
  // periodically.
  virtual bool Reliable() const = 0;
  // Ends a TCP connection cleanly (FIN after the last byte).
  virtual void Close() {}
};

class UdpTransport : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<UdpTransport>> Create(const SocketAddress& collector,
                                                              ExportCounters* counters);
  ~UdpTransport() override;
  void Send(Message message) override;
  bool Reliable() const override { return false; }
  uint16_t local_port() const;

 private:
  UdpTransport(int fd, const SocketAddress& collector, ExportCounters* counters)
      : fd_(fd), collector_(collector), counters_(counters) {}
  int fd_;
  SocketAddress collector_;
  ExportCounters* counters_;
};

class TcpTransport : public Transport {
 public:
  struct Options {
    uint64_t spool_bytes = 64ull << 20;
    absl::Duration first_backoff = absl::Milliseconds(250);
    absl::Duration max_backoff = absl::Seconds(30);
  };
  // `templates` makes the template message that starts every connection (its sequence
  // number is rewritten to that of the first message after it).
  TcpTransport(const SocketAddress& collector, const Options& options,
               std::function<Message()> templates, std::function<absl::Time()> clock,
               ExportCounters* counters);
  ~TcpTransport() override;
  void Send(Message message) override;
  void Poll() override;
  bool Busy() const override { return !spool_.empty(); }
  bool Reliable() const override { return true; }
  void Close() override;

  bool connected() const { return fd_ >= 0 && !connecting_; }
  uint64_t spooled_bytes() const { return spool_bytes_; }
  // The collector's TCP acknowledged `n` more bytes (what SIOCOUTQ says, made injectable
  // for tests): releases the messages wholly acknowledged.
  void ReleaseAcknowledgedForTest(uint64_t n) { Release(n); }

 private:
  void StartConnect();
  void OnConnected();
  void Fail(const char* what, int err);
  void WriteSome();
  void Release(uint64_t acknowledged);
  void Drop(const Message& m);

  SocketAddress collector_;
  Options options_;
  std::function<Message()> templates_;
  std::function<absl::Time()> clock_;
  ExportCounters* counters_;

  int fd_ = -1;
  bool connecting_ = false;
  bool ever_connected_ = false;
  absl::Duration backoff_;
  absl::Time next_attempt_ = absl::InfinitePast();
  // Messages not yet acknowledged by the collector, oldest first. The first `written_`
  // bytes of the spool (across messages) were written into the current connection.
  std::deque<Message> spool_;
  uint64_t spool_bytes_ = 0;
  uint64_t written_ = 0;
  size_t write_index_ = 0;   // message holding byte `written_`
  size_t write_offset_ = 0;  // offset of that byte in it
  // Overflow warnings are rate limited; what they count is not.
  absl::Time next_overflow_warning_ = absl::InfinitePast();
  uint64_t dropped_since_warning_ = 0;
};

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_TRANSPORT_H_
