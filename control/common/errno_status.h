// errno → absl::Status with the canonical code, mapped in one place.
#ifndef AFTR_CONTROL_COMMON_ERRNO_STATUS_H_
#define AFTR_CONTROL_COMMON_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace aftr {

// `err` is a positive errno value (libbpf returns negative ones: pass -ret).
absl::Status ErrnoToStatus(int err, absl::string_view what);

}  // namespace aftr

#endif  // AFTR_CONTROL_COMMON_ERRNO_STATUS_H_
