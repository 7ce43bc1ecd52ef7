// The data plane stamps events with bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC_COARSE);
// logs want wall-clock time.
#ifndef AFTR_CONTROL_COMMON_CLOCK_H_
#define AFTR_CONTROL_COMMON_CLOCK_H_

#include <cstdint>

#include "absl/time/time.h"

namespace aftr {

// Now on the data plane's clock.
uint64_t MonotonicCoarseNs();

// Wall-clock time of a data-plane timestamp (offset taken now; good to a few ms).
absl::Time MonotonicToWall(uint64_t monotonic_ns);

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_CLOCK_H_
