// The IPFIX export logic with an injected clock and a fake transport (template refresh,
// statistics, mode filtering), the TCP spool's overflow accounting, and a TCP collector on
// loopback that closes and comes back: everything arrives, with contiguous sequence numbers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "control/common/ip.h"
#include "control/common/socket_address.h"
#include "control/ipfix/export_session.h"
#include "control/ipfix/transport.h"

namespace aftr::ipfix {
namespace {

using Bytes = std::vector<uint8_t>;
using events::EventType;
using events::NatEvent;

uint16_t U16At(const Bytes& b, size_t i) { return static_cast<uint16_t>(b[i] << 8 | b[i + 1]); }
uint32_t U32At(const Bytes& b, size_t i) {
  return static_cast<uint32_t>(U16At(b, i)) << 16 | U16At(b, i + 2);
}

// The set ids of one message, in order.
std::vector<uint16_t> SetIds(const Bytes& m) {
  std::vector<uint16_t> ids;
  for (size_t i = 16; i + 4 <= m.size(); i += U16At(m, i + 2)) {
    ids.push_back(U16At(m, i));
    if (U16At(m, i + 2) < 4) break;
  }
  return ids;
}

class FakeTransport : public Transport {
 public:
  void Send(Message m) override { sent.push_back(std::move(m)); }
  bool Reliable() const override { return false; }
  std::vector<Message> sent;
};

NatEvent Event(EventType type, uint16_t port = 1030) {
  NatEvent e;
  e.type = type;
  e.time = absl::FromUnixMillis(1795771304138);
  e.b4 = *ParseIpv6("2001:db8:a::2");
  e.proto = 17;
  e.inner_addr = *ParseIpv4("192.0.0.2");
  e.inner_port = 40000;
  e.public_addr = *ParseIpv4("198.51.100.1");
  e.public_port = port;
  e.block_size = 512;
  return e;
}

RecordPolicy Policy(bool per_session) {
  RecordPolicy p;
  p.per_session = per_session;
  return p;
}

TEST_CASE("ipfix UDP templates go first and again after the refresh interval", "[ipfix]") {
  absl::Time now = absl::FromUnixSeconds(1795771304);
  ExportCounters counters;
  ExportSession::Options o;
  o.template_refresh = absl::Seconds(60);
  ExportSession s(o, [&] { return now; }, &counters);
  FakeTransport t;
  s.set_transport(&t);

  s.Add(Event(EventType::kSessionCreate), Policy(true), nullptr);
  s.Tick();  // adds the first statistics record; nothing is 100 ms old yet
  CHECK(t.sent.empty());
  now += absl::Milliseconds(100);
  s.Tick();
  REQUIRE(t.sent.size() == 2);
  CHECK(t.sent[0].templates);
  CHECK(SetIds(t.sent[0].bytes) == std::vector<uint16_t>{2, 3});
  CHECK(U32At(t.sent[0].bytes, 4) == 1795771304);  // export time: now
  CHECK(SetIds(t.sent[1].bytes) == std::vector<uint16_t>{256, 262});
  CHECK(U32At(t.sent[0].bytes, 8) == 0);
  CHECK(U32At(t.sent[1].bytes, 8) == 0);

  // 59 s later: data only.
  now += absl::Seconds(59);
  s.Add(Event(EventType::kSessionCreate), Policy(true), nullptr);
  now += absl::Milliseconds(100);
  s.Tick();
  REQUIRE(t.sent.size() == 3);
  CHECK(!t.sent[2].templates);
  CHECK(U32At(t.sent[2].bytes, 8) == 2);

  // Past 60 s: templates again (numbered like the data message after them), and statistics.
  now += absl::Seconds(1);
  s.Add(Event(EventType::kSessionCreate), Policy(true), nullptr);
  s.Tick();
  now += absl::Milliseconds(100);
  s.Tick();
  REQUIRE(t.sent.size() == 5);
  CHECK(t.sent[3].templates);
  CHECK(U32At(t.sent[3].bytes, 8) == 3);
  CHECK(U32At(t.sent[4].bytes, 8) == 3);
  CHECK(SetIds(t.sent[4].bytes) == std::vector<uint16_t>{256, 262});
  // Statistics record, made at the last Tick: domain 1, 3 messages built before it, 3 NAT
  // records before it, 0 not sent.
  const Bytes& m = t.sent[4].bytes;
  const size_t stats = 16 + 4 + 39 + 4;
  CHECK(U32At(m, stats) == 1);
  CHECK(U32At(m, stats + 8) == 3);
  CHECK(U32At(m, stats + 16) == 3);
  CHECK(U32At(m, stats + 24) == 0);
}

TEST_CASE("ipfix port-block mode sends blocks but no sessions, lost events reach notSent", "[ipfix]") {
  absl::Time now = absl::FromUnixSeconds(1795771304);
  ExportCounters counters;
  ExportSession s({}, [&] { return now; }, &counters);
  FakeTransport t;
  s.set_transport(&t);
  s.Add(Event(EventType::kSessionCreate), Policy(false), nullptr);
  s.Add(Event(EventType::kBlockClaimed), Policy(false), nullptr);
  s.Add(Event(EventType::kSessionDelete), Policy(false), nullptr);
  NatEvent lost = Event(EventType::kEventsLost);
  lost.count = 7;
  s.Add(lost, Policy(false), nullptr);
  s.Finish();
  REQUIRE(t.sent.size() == 2);
  CHECK(SetIds(t.sent[1].bytes) == std::vector<uint16_t>{257, 262});
  CHECK(t.sent[1].nat_records == 1);
  CHECK(counters.events_lost == 7);
  const Bytes& m = t.sent[1].bytes;
  CHECK(U32At(m, 16 + 4 + 38 + 4 + 24) == 7);  // notSentFlowTotalCount (low word)
}

TEST_CASE("ipfix TCP spool overflow drops the newest message and counts its records", "[ipfix]") {
  ExportCounters counters;
  TcpTransport::Options o;
  o.spool_bytes = 1000;
  SocketAddress nowhere = *ParseSocketAddress("127.0.0.1:9");
  TcpTransport t(nowhere, o, [] { return Message{}; }, absl::Now, &counters);
  for (int i = 0; i < 3; ++i) {
    Message m;
    m.bytes.assign(400, 0);
    m.nat_records = 10;
    t.Send(std::move(m));  // never polled: nothing connects, everything stays spooled
  }
  CHECK(counters.records_dropped == 10);
  CHECK(counters.spool_bytes == 800);
  CHECK(t.spooled_bytes() == 800);
  CHECK(counters.records_exported == 0);
}

// ---- A TCP collector on loopback that goes away and comes back ----

int Listen(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(fd, 4) == 0);
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Drives the session until `done` or 5 s.
template <typename F>
bool DriveUntil(ExportSession& s, F done) {
  const absl::Time end = absl::Now() + absl::Seconds(5);
  while (absl::Now() < end) {
    s.Tick();
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// Reads whole messages from a stream socket (non-blocking, what is there now).
void ReadMessages(int fd, Bytes* stream, std::vector<Bytes>* messages, bool* eof) {
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) *eof = true;
    if (n <= 0) break;
    stream->insert(stream->end(), buf, buf + n);
  }
  while (stream->size() >= 16 && stream->size() >= U16At(*stream, 2)) {
    const size_t len = U16At(*stream, 2);
    messages->emplace_back(stream->begin(), stream->begin() + len);
    stream->erase(stream->begin(), stream->begin() + len);
  }
}

TEST_CASE("ipfix TCP collector that goes away and comes back gets every record in sequence", "[ipfix]") {
  int lfd = Listen(0);
  const uint16_t port = PortOf(lfd);
  ExportCounters counters;
  ExportSession::Options so;
  so.flush_interval = absl::ZeroDuration();  // every Tick sends what is pending
  ExportSession s(so, absl::Now, &counters);
  TcpTransport::Options to;
  to.first_backoff = absl::Milliseconds(20);
  to.max_backoff = absl::Milliseconds(100);
  TcpTransport t(*ParseSocketAddress("127.0.0.1:" + std::to_string(port)), to,
                 [&] { return s.TemplateMessage(); }, absl::Now, &counters);
  s.set_transport(&t);

  std::vector<Bytes> messages;  // both connections, in arrival order
  std::vector<size_t> connection_starts;
  Bytes stream;
  bool eof = false;

  // First connection: 5 records.
  REQUIRE(DriveUntil(s, [&] { return t.connected(); }));
  int cfd = accept(lfd, nullptr, nullptr);
  REQUIRE(cfd >= 0);
  connection_starts.push_back(0);
  for (int i = 0; i < 5; ++i) s.Add(Event(EventType::kSessionCreate, 2000 + i), Policy(true), nullptr);
  REQUIRE(DriveUntil(s, [&] {
    ReadMessages(cfd, &stream, &messages, &eof);
    return counters.records_exported == 5;
  }));
  // The collector goes away cleanly (FIN); the exporter closes, the collector reads to EOF.
  shutdown(cfd, SHUT_WR);
  REQUIRE(DriveUntil(s, [&] {
    ReadMessages(cfd, &stream, &messages, &eof);
    return eof;
  }));
  close(cfd);
  close(lfd);
  CHECK(!t.connected());

  // While it is away: 7 records, spooled (connections are refused meanwhile).
  for (int i = 0; i < 7; ++i) s.Add(Event(EventType::kSessionDelete, 3000 + i), Policy(true), nullptr);
  for (int i = 0; i < 20; ++i) {
    s.Tick();
    absl::SleepFor(absl::Milliseconds(5));
  }
  CHECK(counters.spool_bytes > 0);
  CHECK(counters.records_exported == 5);

  // Back on the same port.
  lfd = Listen(port);
  REQUIRE(DriveUntil(s, [&] { return t.connected(); }));
  cfd = accept(lfd, nullptr, nullptr);
  REQUIRE(cfd >= 0);
  stream.clear();
  connection_starts.push_back(messages.size());
  s.Finish();
  REQUIRE(DriveUntil(s, [&] {
    ReadMessages(cfd, &stream, &messages, &eof);
    return counters.records_exported == 12 && !t.Busy();
  }));
  close(cfd);
  close(lfd);

  // Each connection starts with templates; data sequence numbers never skip or repeat.
  REQUIRE(connection_starts.size() == 2);
  CHECK(SetIds(messages[connection_starts[0]]) == std::vector<uint16_t>{2, 3});
  CHECK(SetIds(messages[connection_starts[1]]) == std::vector<uint16_t>{2, 3});
  uint32_t expected = 0;
  int nat = 0;
  for (const Bytes& m : messages) {
    CHECK(U32At(m, 8) == expected);
    for (size_t i = 16; i + 4 <= m.size(); i += U16At(m, i + 2)) {
      const uint16_t id = U16At(m, i);
      const size_t body = U16At(m, i + 2) - 4;
      if (id == 256) {
        nat += static_cast<int>(body / 39);
        expected += static_cast<uint32_t>(body / 39);
      } else if (id == 262) {
        expected += static_cast<uint32_t>(body / 28);
      }
    }
  }
  CHECK(nat == 12);
  CHECK(counters.reconnects == 1);
  CHECK(counters.records_dropped == 0);
}

}  // namespace
}  // namespace aftr::ipfix
