// AIP-158 pagination: page sizes and opaque page tokens. A token carries the sort key of the
// last entry returned (the next page starts strictly after it, so entries that come and go
// meanwhile never make a page repeat or skip a survivor) and is bound to the method and the
// filter it was issued for.
#ifndef AFTR_CONTROL_API_PAGINATION_H_
#define AFTR_CONTROL_API_PAGINATION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace aftr::api {

inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;

// 0 → the default; above the maximum → the maximum; negative → InvalidArgument.
absl::StatusOr<int> EffectivePageSize(int32_t page_size);

struct PageToken {
  uint64_t snapshot_id = 0;  // a server-side snapshot to continue from; 0 = none
  std::string last_key;      // sort key of the last entry returned (at most 64 bytes)
};

// `binding` identifies the request (method and canonical filter).
std::string EncodePageToken(const PageToken& token, absl::string_view binding);
// InvalidArgument naming page_token if it is malformed or was issued for another binding.
absl::StatusOr<PageToken> DecodePageToken(absl::string_view text, absl::string_view binding);

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_PAGINATION_H_
