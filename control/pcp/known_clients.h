// The PCP server's file of B4s that ever held a mapping (pcp.clients_file): one IPv6
// address per line, appended as B4s appear, compacted on open. Apart from the server so
// that the file's parser can be fuzzed (tests/fuzz/pcp_clients_fuzz.cc).
#ifndef AFTR_CONTROL_PCP_KNOWN_CLIENTS_H_
#define AFTR_CONTROL_PCP_KNOWN_CLIENTS_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "control/common/ip.h"

namespace aftr::pcp {

// The B4s that ever held a mapping, remembered in a file (one address per line, appended)
// so that they can be told when the mapping state is lost.
class KnownClients {
 public:
  // Reads `path` (missing is empty), keeping at most `limit` addresses, and rewrites it
  // without duplicates.
  static absl::StatusOr<std::unique_ptr<KnownClients>> Open(const std::string& path, size_t limit);
  // Remembers `b4` (appends a line when new). False if the file could not be written.
  bool Add(const Ipv6Address& b4);
  std::vector<Ipv6Address> All() const;

 private:
  std::string path_;
  size_t limit_ = 0;
  mutable absl::Mutex mu_;
  std::vector<Ipv6Address> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> known_ ABSL_GUARDED_BY(mu_);
};

}  // namespace aftr::pcp

#endif  // AFTR_CONTROL_PCP_KNOWN_CLIENTS_H_
