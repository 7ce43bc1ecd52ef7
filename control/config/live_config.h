// The running configuration, shared by the daemon's threads, and what a reload may change:
// which fields differ between two configurations and which of those cannot change live.
#ifndef AFTR_CONTROL_CONFIG_LIVE_CONFIG_H_
#define AFTR_CONTROL_CONFIG_LIVE_CONFIG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "aftr/config/v1/config.pb.h"

namespace aftr::config {

// Paths of the fields that differ ("timeouts.udp", "pool_prefixes"), in schema order.
std::vector<std::string> ChangedFields(const aftr::config::v1::Config& before,
                                       const aftr::config::v1::Config& after);

// Those of `changed` that only a restart can apply (table sizes, port-block geometry, pin
// path, ring size, log file, API and metrics listeners).
std::vector<std::string> NonLiveFields(const std::vector<std::string>& changed);

// The configuration aftrd runs with; replaced whole by a reload.
class RunningConfig {
 public:
  explicit RunningConfig(aftr::config::v1::Config config)
      : config_(std::make_shared<const aftr::config::v1::Config>(std::move(config))) {}
  std::shared_ptr<const aftr::config::v1::Config> Get() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return config_;
  }
  void Set(aftr::config::v1::Config config) ABSL_LOCKS_EXCLUDED(mu_) {
    auto next = std::make_shared<const aftr::config::v1::Config>(std::move(config));
    absl::MutexLock lock(&mu_);
    config_ = std::move(next);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const aftr::config::v1::Config> config_ ABSL_GUARDED_BY(mu_);
};

}  // namespace aftr::config

#endif  // AFTR_CONTROL_CONFIG_LIVE_CONFIG_H_
