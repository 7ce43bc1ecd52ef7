#include "control/api/event_hub.h"

#include <algorithm>

#include "control/api/translate.h"

namespace aftr::api {

bool EventMatches(const Filter& f, const events::NatEvent& e) {
  if (f.event_type && *f.event_type != static_cast<int>(EventTypeToProto(e.type))) return false;
  if (f.b4 && !f.MatchB4(e.b4.bytes.data())) return false;
  if (f.public_addr && !f.public_addr->Contains(e.public_addr)) return false;
  return true;
}

EventHub::~EventHub() { Close(); }

std::unique_ptr<EventHub::Watcher> EventHub::Watch(Filter filter, size_t capacity) {
  auto w = std::unique_ptr<Watcher>(new Watcher(this, std::move(filter), capacity));
  absl::MutexLock lock(&mu_);
  if (closed_) {
    absl::MutexLock wl(&w->mu_);
    w->closed_ = true;
  }
  watchers_.push_back(w.get());
  return w;
}

void EventHub::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (Watcher* w : watchers_) {
    absl::MutexLock wl(&w->mu_);
    w->closed_ = true;
  }
}

void EventHub::Remove(Watcher* w) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), w), watchers_.end());
  absl::MutexLock wl(&w->mu_);
  dropped_ += w->lost_ + w->reported_lost_;
}

absl::Status EventHub::Publish(const std::vector<events::NatEvent>& events) {
  absl::ReaderMutexLock lock(&mu_);
  for (Watcher* w : watchers_) {
    absl::MutexLock wl(&w->mu_);
    for (const events::NatEvent& e : events) {
      if (EventMatches(w->filter_, e)) w->Offer(e);
    }
  }
  return absl::OkStatus();  // a slow watcher is its own loss, not the producer's
}

uint64_t EventHub::events_dropped() const {
  absl::ReaderMutexLock lock(&mu_);
  uint64_t total = dropped_;
  for (Watcher* w : watchers_) {
    absl::MutexLock wl(&w->mu_);
    total += w->lost_ + w->reported_lost_;
  }
  return total;
}

size_t EventHub::watcher_count() const {
  absl::ReaderMutexLock lock(&mu_);
  return watchers_.size();
}

EventHub::Watcher::~Watcher() { hub_->Remove(this); }

void EventHub::Watcher::Offer(const events::NatEvent& e) {
  if (queue_.size() >= capacity_) {
    ++lost_;
    return;
  }
  queue_.push_back(e);
}

bool EventHub::Watcher::Next(absl::Time deadline, size_t max, std::vector<events::NatEvent>* out,
                             uint64_t* lost) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || lost_ != 0 || closed_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  *lost = lost_;
  reported_lost_ += lost_;
  lost_ = 0;
  size_t n = std::min(max, queue_.size());
  out->insert(out->end(), queue_.begin(), queue_.begin() + n);
  queue_.erase(queue_.begin(), queue_.begin() + n);
  return !(closed_ && queue_.empty() && n == 0 && *lost == 0);
}

}  // namespace aftr::api
