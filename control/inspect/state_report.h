// Human-readable tables of the data plane's state (subscribers and their port blocks,
// sessions, counters), read from the pinned maps. Used by `aftrd --show`.
#ifndef AFTR_CONTROL_INSPECT_STATE_REPORT_H_
#define AFTR_CONTROL_INSPECT_STATE_REPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "aftr/config/v1/config.pb.h"
#include "control/bpf/datapath.h"

namespace aftr::inspect {

absl::StatusOr<std::string> SubscribersTable(const bpf::MapFds& fds,
                                             const aftr::config::v1::Config& config);
absl::StatusOr<std::string> SessionsTable(const bpf::MapFds& fds);
absl::StatusOr<std::string> CountersTable(const bpf::MapFds& fds);

}  // namespace aftr::inspect

#endif  // AFTR_CONTROL_INSPECT_STATE_REPORT_H_
