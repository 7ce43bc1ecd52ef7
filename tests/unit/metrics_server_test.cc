// MetricsServer over real HTTP: exact sample lines from a crafted Statistics, a failing
// source exposes only aftr_statistics_up 0, bad listen strings and busy ports are errors.
#include "control/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace aftr::metrics {
namespace {

// GET http://127.0.0.1:<port><path> with a plain socket; returns the whole response
// (status line, headers and body), or "" if the connection failed.
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  return response;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (absl::string_view l : absl::StrSplit(text, '\n')) {
    if (absl::StripSuffix(l, "\r") == line) return true;
  }
  return false;
}

aftr::v1::Statistics CraftedStatistics() {
  aftr::v1::Statistics s;
  aftr::v1::Statistics::Counter* rx = s.add_counters();
  rx->set_name("rx_packets");
  rx->set_from_b4(1000);
  rx->set_from_internet(900);
  rx->set_other(3);
  rx->set_total(1903);
  aftr::v1::Statistics::Counter* drop = s.add_counters();
  drop->set_name("drop_no_session");
  drop->set_drop_reason(true);
  drop->set_from_internet(7);
  drop->set_total(7);
  s.set_sessions(42);
  s.set_static_mappings(2);
  s.set_subscribers(5);
  s.set_port_blocks_used(6);
  s.set_port_blocks_total(1984);
  s.set_pool_addresses(16);
  s.set_pool_addresses_draining(4);
  s.set_session_capacity(65536);
  (*s.mutable_controller_counters())["events_logged"] = 12;
  (*s.mutable_controller_counters())["watch_events_dropped"] = 0;
  return s;
}

TEST_CASE("metrics: a scrape renders every statistic with its exact name and labels",
          "[metrics]") {
  std::atomic<int> calls = 0;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Create("127.0.0.1:0", [&]() -> absl::StatusOr<aftr::v1::Statistics> {
        ++calls;
        return CraftedStatistics();
      });
  REQUIRE(server.ok());
  REQUIRE((*server)->port() > 0);

  std::string body = HttpGet((*server)->port(), "/metrics");
  INFO(body);
  CHECK(absl::StrContains(body.substr(0, body.find('\n')), " 200 "));
  CHECK(calls >= 1);
  for (const char* line : {
           "aftr_statistics_up 1",
           "# TYPE aftr_rx_packets_total counter",
           "aftr_rx_packets_total{direction=\"from_b4\"} 1000",
           "aftr_rx_packets_total{direction=\"from_internet\"} 900",
           "aftr_rx_packets_total{direction=\"other\"} 3",
           "# TYPE aftr_drop_no_session_total counter",
           "aftr_drop_no_session_total{direction=\"from_b4\"} 0",
           "aftr_drop_no_session_total{direction=\"from_internet\"} 7",
           "aftr_drop_no_session_total{direction=\"other\"} 0",
           "# TYPE aftr_sessions gauge",
           "aftr_sessions 42",
           "aftr_static_mappings 2",
           "aftr_subscribers 5",
           "aftr_port_blocks_used 6",
           "aftr_port_blocks_total 1984",
           "aftr_pool_addresses{state=\"active\"} 12",
           "aftr_pool_addresses{state=\"draining\"} 4",
           "aftr_session_capacity 65536",
           "# TYPE aftr_controller_events_logged_total counter",
           "aftr_controller_events_logged_total 12",
           "aftr_controller_watch_events_dropped_total 0",
       }) {
    INFO(line);
    CHECK(HasLine(body, line));
  }
  // The counter's own "total" is not a direction: sum() over direction gives it.
  CHECK_FALSE(absl::StrContains(body, "direction=\"total\""));
  CHECK(HasLine(body, "# HELP aftr_drop_no_session_total Packets dropped by the data plane for "
                      "reason drop_no_session, by the side they arrived from"));
}

TEST_CASE("metrics: a failing source exposes aftr_statistics_up 0 and no stale values",
          "[metrics]") {
  std::atomic<bool> fail = false;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Create("127.0.0.1:0", [&]() -> absl::StatusOr<aftr::v1::Statistics> {
        if (fail) return absl::UnavailableError("datapath gone");
        return CraftedStatistics();
      });
  REQUIRE(server.ok());
  std::string ok_body = HttpGet((*server)->port(), "/metrics");
  REQUIRE(HasLine(ok_body, "aftr_sessions 42"));

  fail = true;
  std::string body = HttpGet((*server)->port(), "/metrics");
  INFO(body);
  CHECK(HasLine(body, "aftr_statistics_up 0"));
  for (absl::string_view l : absl::StrSplit(body, '\n')) {
    if (absl::StartsWith(l, "aftr_") || absl::StartsWith(l, "# TYPE aftr_")) {
      CHECK((absl::StartsWith(l, "aftr_statistics_up") ||
             absl::StartsWith(l, "# TYPE aftr_statistics_up")));
    }
  }

  fail = false;
  CHECK(HasLine(HttpGet((*server)->port(), "/metrics"), "aftr_statistics_up 1"));
}

TEST_CASE("metrics: malformed listen strings are InvalidArgument naming the input",
          "[metrics]") {
  auto source = []() -> absl::StatusOr<aftr::v1::Statistics> { return aftr::v1::Statistics(); };
  for (const char* listen : {"", "9469", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                             "127.0.0.1:-1", "127.0.0.1:http", "localhost:9469", "::1:9469",
                             "[::1:9469", "[nonsense]:9469", "300.1.1.1:80", "127.0.0.1:80 "}) {
    INFO(listen);
    absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Create(listen, source);
    REQUIRE_FALSE(server.ok());
    CHECK(server.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(server.status().message(), absl::StrCat("\"", listen, "\"")));
  }
  CHECK(ParseListen("0.0.0.0:9469").ok());
  // IPv6 parses where civetweb can serve it; Debian 12's cannot, and then says so.
  absl::StatusOr<std::string> v6 = ParseListen("[::1]:9469");
  CHECK((v6.ok() || absl::StrContains(v6.status().message(), "IPv6 is not supported")));
}

TEST_CASE("metrics: a port already in use is an error naming the address", "[metrics]") {
  auto source = []() -> absl::StatusOr<aftr::v1::Statistics> { return aftr::v1::Statistics(); };
  absl::StatusOr<std::unique_ptr<MetricsServer>> first = MetricsServer::Create("127.0.0.1:0", source);
  REQUIRE(first.ok());
  std::string listen = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<MetricsServer>> second = MetricsServer::Create(listen, source);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(second.status().message(), listen));
}

}  // namespace
}  // namespace aftr::metrics
