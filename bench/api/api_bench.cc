// API benchmark (bench/run.sh part 3; prints figures, not a test). In one process, on real
// BPF hash maps of the production layout and a real gRPC server on a Unix socket:
//  1. ListSessions over 1 M sessions walked in pages of 1000: wall time and the process's
//     memory growth, beside the baseline of reading the same map once with the batch API;
//  2. WatchEvents: events/s one client receives with zero loss, found by pacing a producer
//     at rising rates, beside the baseline of the event hub alone (no gRPC).
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "aftr/abi.h"
#include "aftr/v1/aftr_service.grpc.pb.h"
#include "control/api/aftr_service.h"
#include "control/api/api_server.h"
#include "control/api/event_hub.h"
#include "control/bpf/map_batch.h"
#include "control/config/config.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(int, sessions, 1 << 20, "sessions to install");
ABSL_FLAG(int, page_size, 1000, "ListSessions page size");

namespace {

using aftr::v1::AftrService;

long RssKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  }
  return -1;
}

int CreateMap(const char* name, size_t key, size_t value, uint32_t entries) {
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, name, key, value, entries, nullptr);
  if (fd < 0) {
    std::perror("bpf_map_create");
    std::exit(1);
  }
  return fd;
}

// Sessions of 1000 subscribers (B4 2001:db8:a:<n>::2), 1 per inner port.
void Fill(int out_fd, int in_fd, int n) {
  std::vector<aftr_session_out_key> ok(n);
  std::vector<aftr_session_out> ov(n);
  std::vector<aftr_session_in_key> ik(n);
  std::vector<aftr_session_in> iv(n);
  for (int i = 0; i < n; ++i) {
    uint8_t b4[16] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    b4[6] = static_cast<uint8_t>((i / 1000) >> 8);
    b4[7] = static_cast<uint8_t>(i / 1000);
    std::memcpy(ok[i].b4, b4, 16);
    ok[i].inner_addr = htonl(0xc000020a);
    ok[i].inner_port = htons(static_cast<uint16_t>(10000 + i % 1000));
    ok[i].proto = IPPROTO_UDP;
    ov[i].public_addr = htonl(0xc6336400 + (i >> 16) % 256);
    ov[i].public_port = htons(static_cast<uint16_t>(1024 + i % 64512));
    ov[i].last_seen_ns = 1;
    ik[i].public_addr = ov[i].public_addr;
    ik[i].public_port = ov[i].public_port;
    ik[i].proto = IPPROTO_UDP;
    std::memcpy(iv[i].b4, b4, 16);
    iv[i].inner_addr = ok[i].inner_addr;
    iv[i].inner_port = ok[i].inner_port;
  }
  for (int done = 0; done < n;) {
    uint32_t count = std::min(n - done, 65536);
    if (bpf_map_update_batch(out_fd, &ok[done], &ov[done], &count, nullptr) != 0 ||
        bpf_map_update_batch(in_fd, &ik[done], &iv[done], &count, nullptr) != 0) {
      std::perror("bpf_map_update_batch");
      std::exit(1);
    }
    done += count;
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_sessions);
  const std::string socket = absl::StrCat("/tmp/aftr-api-bench-", getpid(), ".sock");
  absl::StatusOr<aftr::config::v1::Config> config = aftr::config::ParseConfig(absl::StrCat(
      "interfaces: \"lo\" softwire_addresses: \"2001:db8:ffff::1\" b4_prefixes: \"2001:db8::/32\" "
      "pool_prefixes: \"198.51.100.0/24\" log_file: \"/dev/null\" api { unix_socket: \"",
      socket, "\" }"));
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 1;
  }
  aftr::bpf::MapFds maps;
  maps.sessions_out = CreateMap("bench_out", sizeof(aftr_session_out_key), sizeof(aftr_session_out), n + 1024);
  maps.sessions_in = CreateMap("bench_in", sizeof(aftr_session_in_key), sizeof(aftr_session_in), n + 1024);
  maps.subscribers = CreateMap("bench_subs", sizeof(aftr_subscriber_key), sizeof(aftr_subscriber), 1024);
  Fill(maps.sessions_out, maps.sessions_in, n);

  aftr::api::EventHub hub;
  aftr::api::AftrServiceImpl::Deps deps;
  deps.maps = maps;
  deps.config = [&config]() -> const aftr::config::v1::Config& { return *config; };
  deps.events = &hub;
  deps.hub = &hub;
  aftr::api::AftrServiceImpl service(std::move(deps));
  auto server = aftr::api::ApiServer::Start(config->api(), &service);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  auto channel = grpc::CreateChannel(absl::StrCat("unix:", socket), grpc::InsecureChannelCredentials());
  auto stub = AftrService::NewStub(channel);

  // ---- 1. ListSessions ----
  absl::Time t0 = absl::Now();
  std::vector<aftr_session_out_key> keys;
  std::vector<aftr_session_out> values;
  if (!aftr::bpf::ReadMap(maps.sessions_out, &keys, &values).ok()) return 1;
  double read_s = absl::ToDoubleSeconds(absl::Now() - t0);
  size_t read_n = keys.size();
  keys = {};
  values = {};

  long rss_before = RssKb("VmRSS:");
  aftr::v1::ListSessionsRequest req;
  req.set_page_size(absl::GetFlag(FLAGS_page_size));
  uint64_t walked = 0, pages = 0;
  t0 = absl::Now();
  absl::Duration slowest;
  for (;;) {
    grpc::ClientContext ctx;
    aftr::v1::ListSessionsResponse resp;
    absl::Time p0 = absl::Now();
    grpc::Status st = stub->ListSessions(&ctx, req, &resp);
    slowest = std::max(slowest, absl::Now() - p0);
    if (!st.ok()) {
      std::fprintf(stderr, "ListSessions: %s\n", st.error_message().c_str());
      return 1;
    }
    walked += resp.sessions_size();
    ++pages;
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  double walk_s = absl::ToDoubleSeconds(absl::Now() - t0);
  long rss_after = RssKb("VmRSS:");
  std::printf("ListSessions: %lu sessions in %lu pages of %d: %.2f s (%.0f sessions/s, slowest page %.0f ms)\n",
              walked, pages, absl::GetFlag(FLAGS_page_size), walk_s, walked / walk_s,
              absl::ToDoubleMilliseconds(slowest));
  std::printf("  baseline: one batch read of the map (%zu entries): %.2f s; ratio %.1fx\n", read_n,
              read_s, walk_s / read_s);
  std::printf("  memory: RSS %ld MiB before the walk, %ld MiB after (+%ld MiB; peak %ld MiB, includes "
              "the 1 M-entry fill buffers)\n",
              rss_before / 1024, rss_after / 1024, (rss_after - rss_before) / 1024,
              RssKb("VmHWM:") / 1024);
  if (walked != static_cast<uint64_t>(n)) {
    std::fprintf(stderr, "walked %lu of %d sessions\n", walked, n);
    return 1;
  }

  // ---- 2. WatchEvents ----
  auto make_event = [](uint64_t i) {
    aftr::events::NatEvent e;
    e.type = aftr::events::EventType::kSessionCreate;
    e.time = absl::Now();
    e.proto = IPPROTO_UDP;
    e.inner_port = static_cast<uint16_t>(i);
    e.public_port = static_cast<uint16_t>(i);
    return e;
  };
  // Baseline: the hub alone, publisher and a draining watcher thread.
  {
    auto w = hub.Watch(aftr::api::Filter{}, 1 << 16);
    constexpr uint64_t kTotal = 2000000;
    std::atomic<uint64_t> got{0};
    std::thread reader([&] {
      std::vector<aftr::events::NatEvent> batch;
      uint64_t lost;
      while (got < kTotal) {
        batch.clear();
        if (!w->Next(absl::Now() + absl::Milliseconds(100), 512, &batch, &lost)) break;
        got += batch.size() + lost;
      }
    });
    absl::Time s0 = absl::Now();
    std::vector<aftr::events::NatEvent> batch(256);
    for (uint64_t i = 0; i < kTotal; i += batch.size()) {
      for (size_t j = 0; j < batch.size(); ++j) batch[j] = make_event(i + j);
      (void)hub.Publish(batch);
    }
    reader.join();
    double s = absl::ToDoubleSeconds(absl::Now() - s0);
    std::printf("WatchEvents baseline (hub only, no gRPC): %.0f events/s offered, %lu dropped\n",
                kTotal / s, hub.events_dropped());
  }
  uint64_t best = 0;
  for (uint64_t rate : {100000ull, 200000ull, 400000ull, 800000ull, 1600000ull}) {
    uint64_t dropped_before = hub.events_dropped();
    grpc::ClientContext ctx;
    aftr::v1::WatchEventsRequest wreq;
    auto stream = stub->WatchEvents(&ctx, wreq);
    stream->WaitForInitialMetadata();
    const uint64_t total = rate * 2;  // two seconds at this rate
    std::atomic<uint64_t> received{0}, lost{0};
    std::thread reader([&] {
      aftr::v1::Event ev;
      while (received + lost < total && stream->Read(&ev)) {
        if (ev.type() == aftr::v1::Event::EVENTS_LOST) {
          lost += ev.count();
        } else {
          ++received;
        }
      }
    });
    absl::Time s0 = absl::Now();
    std::vector<aftr::events::NatEvent> batch(rate / 1000);  // one batch per millisecond
    for (uint64_t i = 0; i < total; i += batch.size()) {
      for (size_t j = 0; j < batch.size(); ++j) batch[j] = make_event(i + j);
      (void)hub.Publish(batch);
      absl::SleepFor(s0 + absl::Milliseconds((i + batch.size()) * 1000 / rate) - absl::Now());
    }
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (received + lost < total && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    ctx.TryCancel();
    reader.join();
    double s = absl::ToDoubleSeconds(absl::Now() - s0);
    uint64_t dropped = hub.events_dropped() - dropped_before;
    std::printf("WatchEvents at %7lu events/s offered: %lu received in %.2f s, %lu lost\n", rate,
                received.load(), s, dropped);
    if (dropped == 0 && received == total) best = rate;
    if (dropped != 0) break;
  }
  std::printf("WatchEvents sustains %lu events/s to one client with zero loss\n", best);
  return 0;
}
