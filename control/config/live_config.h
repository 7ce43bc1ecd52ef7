// What a reload may change: which fields differ between two configurations and which of
// those cannot change live.
#ifndef AFTR_CONTROL_CONFIG_LIVE_CONFIG_H_
#define AFTR_CONTROL_CONFIG_LIVE_CONFIG_H_

#include <string>
#include <vector>

#include "aftr/config/v1/config.pb.h"

namespace aftr::config {

// Paths of the fields that differ ("timeouts.udp", "pool_prefixes"), in schema order.
std::vector<std::string> ChangedFields(const aftr::config::v1::Config& before,
                                       const aftr::config::v1::Config& after);

// Those of `changed` that only a restart can apply (table sizes, port-block geometry, pin
// path, ring size, log file, API and metrics listeners).
std::vector<std::string> NonLiveFields(const std::vector<std::string>& changed);

}  // namespace aftr::config

#endif  // AFTR_CONTROL_CONFIG_LIVE_CONFIG_H_
