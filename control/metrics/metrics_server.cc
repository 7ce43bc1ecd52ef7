// MetricsServer: prometheus-cpp's Exposer (civetweb) serving a Collectable that turns the
// API's Statistics into metric families on each scrape.
#include "control/metrics/metrics_server.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "civetweb.h"
#include "control/common/ip.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_type.h"

namespace aftr::metrics {

// Reads the statistics on every Collect() instead of mirroring them into prometheus::Counter
// objects: the data plane's per-CPU counters are the source of truth, and a copy would
// be stale between refreshes and still there after the source failed.
class MetricsCollectable : public prometheus::Collectable {
 public:
  explicit MetricsCollectable(StatisticsSource source) : source_(std::move(source)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    return StatisticsFamilies(source_());
  }

 private:
  StatisticsSource source_;
};

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Metric names allow [a-zA-Z0-9_:]; controller counter names come from code, but a name
// with anything else would make the whole exposition unparseable, so it is mapped to '_'.
std::string SanitizeName(absl::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  }
  return out;
}

ClientMetric CounterSample(uint64_t value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  return m;
}

ClientMetric GaugeSample(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

MetricFamily Gauge(std::string name, std::string help, double value) {
  return MetricFamily{std::move(name), std::move(help), MetricType::Gauge,
                      {GaugeSample(value)}};
}

}  // namespace

std::vector<MetricFamily> StatisticsFamilies(const absl::StatusOr<aftr::v1::Statistics>& stats) {
  std::vector<MetricFamily> families;
  families.push_back(Gauge("aftr_statistics_up",
                           "1 if this scrape read the AFTR's statistics, 0 if reading them failed "
                           "(then no other aftr_ metric is exposed)",
                           stats.ok() ? 1 : 0));
  // No aftr_ families at all on failure: stale or zero values would look like real data.
  if (!stats.ok()) return families;

  for (const aftr::v1::Statistics::Counter& c : stats->counters()) {
    MetricFamily f;
    f.name = absl::StrCat("aftr_", SanitizeName(c.name()), "_total");
    f.help = c.drop_reason()
                 ? absl::StrCat("Packets dropped by the data plane for reason ", c.name(),
                                ", by the side they arrived from")
                 : absl::StrCat("Data-plane counter ", c.name(),
                                ", by the side the packet arrived from");
    f.type = MetricType::Counter;
    f.metric = {CounterSample(c.from_b4(), {{"direction", "from_b4"}}),
                CounterSample(c.from_internet(), {{"direction", "from_internet"}}),
                CounterSample(c.other(), {{"direction", "other"}})};
    families.push_back(std::move(f));
  }

  families.push_back(Gauge("aftr_sessions", "NAT44 sessions in the session table",
                           static_cast<double>(stats->sessions())));
  families.push_back(Gauge("aftr_static_mappings", "Operator static mappings",
                           static_cast<double>(stats->static_mappings())));
  families.push_back(Gauge("aftr_subscribers", "Subscribers (B4s) in the subscriber table",
                           static_cast<double>(stats->subscribers())));
  families.push_back(Gauge("aftr_port_blocks_used", "Port blocks owned by subscribers",
                           static_cast<double>(stats->port_blocks_used())));
  families.push_back(Gauge("aftr_port_blocks_total", "Port blocks of every pool address",
                           static_cast<double>(stats->port_blocks_total())));
  // pool_addresses counts draining ones too; split so the two states add up to the total.
  uint64_t draining = stats->pool_addresses_draining();
  uint64_t active = stats->pool_addresses() >= draining ? stats->pool_addresses() - draining : 0;
  families.push_back(MetricFamily{
      "aftr_pool_addresses",
      "Public pool addresses by state (draining: no new port blocks from them)",
      MetricType::Gauge,
      {GaugeSample(static_cast<double>(active), {{"state", "active"}}),
       GaugeSample(static_cast<double>(draining), {{"state", "draining"}})}});
  families.push_back(Gauge("aftr_session_capacity", "Session table capacity (tables.max_sessions)",
                           static_cast<double>(stats->session_capacity())));

  // A map: sort the names so the exposition is stable from scrape to scrape.
  std::vector<std::pair<std::string, uint64_t>> controller(stats->controller_counters().begin(),
                                                           stats->controller_counters().end());
  std::sort(controller.begin(), controller.end());
  for (const auto& [name, value] : controller) {
    families.push_back(MetricFamily{absl::StrCat("aftr_controller_", SanitizeName(name), "_total"),
                                    absl::StrCat("Controller counter ", name), MetricType::Counter,
                                    {CounterSample(value)}});
  }
  return families;
}

absl::StatusOr<std::string> ParseListen(const std::string& listen) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen, "\": ", why,
                     " (want address:port, e.g. 127.0.0.1:9469 or [::1]:9469)"));
  };
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  absl::string_view host = absl::string_view(listen).substr(0, colon);
  absl::string_view port_text = absl::string_view(listen).substr(colon + 1);
  uint32_t port = 0;
  // SimpleAtoi alone would take " 80" and "+80"; civetweb would not.
  bool digits = !port_text.empty() && port_text.size() <= 5 &&
                std::all_of(port_text.begin(), port_text.end(),
                            [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); });
  if (!digits || !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return bad("bad port");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    if (!ParseIpv6(host.substr(1, host.size() - 2)).ok()) return bad("bad IPv6 address");
    // Debian 12's civetweb is built without USE_IPV6 and then fails every IPv6 bind with
    // "possible problem binding to port"; name the real reason instead.
    constexpr unsigned kCivetwebIpv6 = 8;
    if (!mg_check_feature(kCivetwebIpv6)) {
      return bad("IPv6 is not supported by the installed civetweb (built without IPv6)");
    }
  } else if (!ParseIpv4(host).ok()) {
    return bad("bad IPv4 address");
  }
  // civetweb takes exactly this form ("[::1]:9469" for IPv6).
  return listen;
}

MetricsServer::MetricsServer(std::shared_ptr<MetricsCollectable> collectable,
                             std::unique_ptr<prometheus::Exposer> exposer, int port)
    : collectable_(std::move(collectable)), exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() = default;

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(const std::string& listen,
                                                                     StatisticsSource source) {
  absl::StatusOr<std::string> bind = ParseListen(listen);
  if (!bind.ok()) return bind.status();
  if (!source) return absl::InvalidArgumentError("metrics: no statistics source");
  // prometheus-cpp reports a failed bind by throwing from the constructor (civetweb returns no
  // context); we do not throw, so it stops here.
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(*bind, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", listen, ": ", e.what()));
  }
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", listen));
  }
  auto collectable = std::make_shared<MetricsCollectable>(std::move(source));
  exposer->RegisterCollectable(collectable);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(collectable), std::move(exposer), ports.front()));
}

}  // namespace aftr::metrics
