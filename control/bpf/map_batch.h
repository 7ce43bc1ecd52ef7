// Reads a whole BPF hash or array map into vectors with the batch API (one syscall per few
// thousand entries rather than two per entry); K and V come from abi.h.
#ifndef AFTR_CONTROL_BPF_MAP_BATCH_H_
#define AFTR_CONTROL_BPF_MAP_BATCH_H_

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "control/common/errno_status.h"

namespace aftr::bpf {

template <typename K, typename V>
absl::Status ReadMap(int fd, std::vector<K>* keys, std::vector<V>* values) {
  constexpr uint32_t kChunk = 4096;
  keys->clear();
  values->clear();
  uint64_t in_token = 0, out_token = 0;  // opaque position (a bucket index for hash maps)
  bool first = true;
  for (;;) {
    size_t have = keys->size();
    keys->resize(have + kChunk);
    values->resize(have + kChunk);
    uint32_t count = kChunk;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_token, &out_token,
                                   keys->data() + have, values->data() + have, &count, nullptr);
    int saved = errno;
    keys->resize(have + count);
    values->resize(have + count);
    if (err != 0) {
      if (saved == ENOENT) return absl::OkStatus();  // end of map
      return ErrnoToStatus(saved, "reading a map in batches");
    }
    in_token = out_token;
    first = false;
  }
}

}  // namespace aftr::bpf

#endif  // AFTR_CONTROL_BPF_MAP_BATCH_H_
