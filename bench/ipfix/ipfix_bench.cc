// IPFIX export benchmark: (1) octets per record of each template, alone and with the
// IPv4/UDP/IPFIX/set headers shared by a full message, beside the operator deck's text
// formats; (2) records/s that ExportSession + UdpTransport (encode, pack, sendto) sustain to
// a collector on 127.0.0.1 with zero loss. Prints figures; not a test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "control/common/ip.h"
#include "control/common/socket_address.h"
#include "control/ipfix/export_session.h"
#include "control/ipfix/nat_records.h"
#include "control/ipfix/transport.h"

namespace {

using aftr::events::EventType;
using aftr::events::NatEvent;
using namespace aftr::ipfix;

constexpr size_t kIpv4UdpBytes = 20 + 8;

NatEvent Sample(EventType type) {
  NatEvent e;
  e.type = type;
  e.time = absl::Now();
  e.b4 = *aftr::ParseIpv6("2001:db8:a::2");
  e.proto = 6;
  e.inner_addr = *aftr::ParseIpv4("192.0.0.2");
  e.inner_port = 40000;
  e.public_addr = *aftr::ParseIpv4("198.51.100.1");
  e.public_port = 1030;
  e.block_size = 512;
  return e;
}

RecordPolicy Policy() {
  RecordPolicy p;
  p.per_session = true;
  p.max_entries_per_user = 2048;
  p.max_sessions_per_subscriber = 4096;
  p.max_sessions = 1 << 20;
  p.max_subscribers = 1 << 16;
  return p;
}

void PrintSizes(size_t max_message_bytes) {
  struct Row {
    const char* name;
    EventType type;
    double deck_text, deck_optimized;  // 0: no deck figure
  };
  const Row rows[] = {
      {"256 session create/delete (4/5), BIB (8/9)", EventType::kSessionCreate, 114, 56},
      {"257 port block alloc/de-alloc (16/17)", EventType::kBlockClaimed, 124, 62},
      {"258 addresses exhausted (3)", EventType::kAddressExhausted, 0, 0},
      {"259 quota per user (13/3)", EventType::kPortsExhausted, 0, 0},
      {"260 quota sessions (13/1)", EventType::kSessionTableFull, 0, 0},
      {"261 quota subscribers (13/4)", EventType::kSubscriberTableFull, 0, 0},
  };
  std::printf("max_message_bytes %zu (IPFIX message; + 28 octets IPv4/UDP on the wire)\n",
              max_message_bytes);
  std::printf("%-46s %7s %9s %9s %14s %14s\n", "template (natEvent)", "record", "per msg",
              "on wire", "vs deck text", "vs deck optim.");
  for (const Row& r : rows) {
    std::vector<uint8_t> rec;
    EncodeNatRecord(Sample(r.type), Policy(), nullptr, &rec);
    const size_t n = (max_message_bytes - kMessageHeaderBytes - kSetHeaderBytes) / rec.size();
    const double wire = static_cast<double>(kIpv4UdpBytes + kMessageHeaderBytes +
                                            kSetHeaderBytes + n * rec.size()) / n;
    char text[32] = "-", opt[32] = "-";
    if (r.deck_text > 0) {
      std::snprintf(text, sizeof(text), "%.0f: %.2fx", r.deck_text, r.deck_text / wire);
      std::snprintf(opt, sizeof(opt), "%.0f: %.2fx", r.deck_optimized, r.deck_optimized / wire);
    }
    std::printf("%-46s %7zu %9zu %9.1f %14s %14s\n", r.name, rec.size(), n, wire, text, opt);
  }
  std::printf("(record sizes with an empty userName; a name adds its length. \"vs deck\": deck "
              "octets / IPFIX octets on the wire, >1 = IPFIX smaller)\n");
}

// Counts NAT session records arriving on `fd` until `stop` and the socket is idle.
void Receive(int fd, std::atomic<bool>* stop, std::atomic<uint64_t>* records) {
  std::vector<uint8_t> buf(65536);
  timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (stop->load()) return;
      continue;
    }
    for (size_t i = kMessageHeaderBytes; i + 4 <= static_cast<size_t>(n);) {
      const uint16_t id = buf[i] << 8 | buf[i + 1];
      const uint16_t len = buf[i + 2] << 8 | buf[i + 3];
      if (len < 4) break;
      if (id == kSessionTemplate) records->fetch_add((len - 4) / 39);
      i += len;
    }
  }
}

struct RunResult {
  uint64_t sent = 0, received = 0;
  double seconds = 0;
};

// Sends `count` session records at `rate` per second (0: as fast as possible).
RunResult Run(uint64_t count, double rate, size_t max_message_bytes) {
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  const int rcvbuf = 32 << 20;
  setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> received{0};
  std::thread receiver(Receive, rx, &stop, &received);

  ExportCounters counters;
  auto udp = UdpTransport::Create(
      *aftr::ParseSocketAddress("127.0.0.1:" + std::to_string(ntohs(a.sin_port))), &counters);
  ExportSession::Options o;
  o.max_message_bytes = max_message_bytes;
  ExportSession session(o, absl::Now, &counters);
  session.set_transport(udp->get());
  const RecordPolicy policy = Policy();
  NatEvent e = Sample(EventType::kSessionCreate);
  const absl::Time start = absl::Now();
  for (uint64_t i = 0; i < count; ++i) {
    e.public_port = static_cast<uint16_t>(1024 + i % 60000);
    e.time = start;
    session.Add(e, policy, nullptr);
    if (rate > 0 && (i & 255) == 0) {
      const absl::Time due = start + absl::Seconds(i / rate);
      while (absl::Now() < due) {
      }
    }
  }
  session.Finish();
  RunResult r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  r.sent = count;
  absl::SleepFor(absl::Milliseconds(300));
  stop = true;
  receiver.join();
  close(rx);
  r.received = received.load();
  return r;
}

}  // namespace

int main() {
  std::printf("-- octets per record\n");
  PrintSizes(1400);
  std::printf("\n");
  PrintSizes(1472);  // a 1500-octet MTU path
  std::printf("\n-- records/s, ExportSession + UdpTransport -> 127.0.0.1 collector, template 256, "
              "max_message_bytes 1400\n");
  // 35 records of 39 octets per 1400-octet message, + IPv4/UDP, IPFIX and set headers.
  const double kWirePerSessionRecord = (kIpv4UdpBytes + kMessageHeaderBytes + kSetHeaderBytes + 35 * 39) / 35.0;
  const uint64_t count = 2000000;
  RunResult best = Run(count, 0, 1400);
  std::printf("unpaced: %llu records in %.2f s = %.0f records/s, received %llu (loss %.3f%%)\n",
              static_cast<unsigned long long>(best.sent), best.seconds, best.sent / best.seconds,
              static_cast<unsigned long long>(best.received),
              100.0 * (best.sent - best.received) / best.sent);
  double rate = best.sent / best.seconds;
  // Paced runs, 10 % slower each time, until nothing is lost (at most 8 tries).
  for (int i = 0; i < 8 && best.received < best.sent; ++i) {
    rate *= 0.9;
    best = Run(count, rate, 1400);
    std::printf("paced %.0f/s: %.0f records/s achieved, received %llu of %llu\n", rate,
                best.sent / best.seconds, static_cast<unsigned long long>(best.received),
                static_cast<unsigned long long>(best.sent));
  }
  std::printf("sustained without loss: %s%.0f records/s (%.1f Mbit/s of IPFIX on the wire)\n",
              best.received == best.sent ? "" : "NOT REACHED, last ", best.sent / best.seconds,
              best.sent / best.seconds * kWirePerSessionRecord * 8 / 1e6);
  return 0;
}
