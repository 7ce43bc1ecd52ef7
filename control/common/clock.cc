#include "control/common/clock.h"

#include <time.h>

#include "absl/time/clock.h"

namespace aftr {

uint64_t MonotonicCoarseNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

absl::Time MonotonicToWall(uint64_t monotonic_ns) {
  int64_t age_ns = static_cast<int64_t>(MonotonicCoarseNs()) - static_cast<int64_t>(monotonic_ns);
  return absl::Now() - absl::Nanoseconds(age_ns);
}

}  // namespace aftr
