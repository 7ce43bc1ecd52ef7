// The Prometheus /metrics endpoint: on every scrape it reads the API's Statistics and renders
// them as aftr_* families (names are the API's counter names, so dashboards and aftrctl agree).
#ifndef AFTR_CONTROL_METRICS_METRICS_SERVER_H_
#define AFTR_CONTROL_METRICS_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aftr/v1/resources.pb.h"
#include "prometheus/metric_family.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace aftr::metrics {

// Called on every scrape; returns the same statistics the API's GetStatistics returns.
// Scrapes run on the HTTP server's threads, possibly two at once: the source must be
// thread-safe.
using StatisticsSource = std::function<absl::StatusOr<aftr::v1::Statistics>()>;

// The families one scrape exposes for `stats`: aftr_statistics_up, and when `stats` is ok the
// counters, gauges and controller counters. Pure; MetricsServer calls it per scrape.
std::vector<prometheus::MetricFamily> StatisticsFamilies(
    const absl::StatusOr<aftr::v1::Statistics>& stats);

// "address:port" (IPv4, or [IPv6] in brackets where civetweb has IPv6; port 0..65535) →
// civetweb's listening_ports form. InvalidArgument naming `listen` otherwise.
absl::StatusOr<std::string> ParseListen(const std::string& listen);

class MetricsCollectable;

class MetricsServer {
 public:
  // listen: "address:port" (config metrics.listen); port 0 = any free port (tests).
  // InvalidArgument for a malformed `listen`; Unavailable naming the address when it cannot
  // be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(const std::string& listen,
                                                               StatisticsSource source);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  MetricsServer(std::shared_ptr<MetricsCollectable> collectable,
                std::unique_ptr<prometheus::Exposer> exposer, int port);

  // The exposer only holds a weak_ptr to the collectable; exposer_ is declared last so it
  // stops (and finishes in-flight scrapes) before the collectable goes.
  std::shared_ptr<MetricsCollectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace aftr::metrics

#endif  // AFTR_CONTROL_METRICS_METRICS_SERVER_H_
