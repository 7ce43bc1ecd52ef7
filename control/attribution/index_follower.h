// Keeps the attribution index level with the logs on its own thread (a first catch-up over
// months of logs takes a while and must not hold up the daemon), and prunes it to the logs'
// retention once an hour.
#ifndef AFTR_CONTROL_ATTRIBUTION_INDEX_FOLLOWER_H_
#define AFTR_CONTROL_ATTRIBUTION_INDEX_FOLLOWER_H_

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "control/attribution/attribution_index.h"

namespace aftr::attribution {

class IndexFollower {
 public:
  IndexFollower(AttributionIndex* index, absl::Duration retention,
                absl::Duration interval = absl::Seconds(1));
  ~IndexFollower();  // stops after the catch-up in progress

 private:
  void Run();

  AttributionIndex* const index_;
  const absl::Duration retention_;
  const absl::Duration interval_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace aftr::attribution

#endif  // AFTR_CONTROL_ATTRIBUTION_INDEX_FOLLOWER_H_
