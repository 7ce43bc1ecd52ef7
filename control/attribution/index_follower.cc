#include "control/attribution/index_follower.h"

#include "absl/time/clock.h"
#include "control/common/log.h"

namespace aftr::attribution {

IndexFollower::IndexFollower(AttributionIndex* index, absl::Duration retention,
                             absl::Duration interval)
    : index_(index), retention_(retention), interval_(interval), thread_([this] { Run(); }) {}

IndexFollower::~IndexFollower() {
  stop_.Notify();
  thread_.join();
}

void IndexFollower::Run() {
  absl::Time next_prune = absl::Now();
  bool failing = false;
  do {
    absl::Status s = index_->CatchUp();
    if (!s.ok() && !failing) LogError("attribution index: %s", s.ToString());
    failing = !s.ok();
    if (absl::Now() >= next_prune) {
      if (absl::Status p = index_->Prune(absl::Now() - retention_); !p.ok()) {
        LogError("attribution index: %s", p.ToString());
      }
      next_prune = absl::Now() + absl::Hours(1);
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace aftr::attribution
