#include "control/events/event_drain.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/common/errno_status.h"
#include "control/common/log.h"

namespace aftr::events {
namespace {

// At most this many records per sink call (one log write), so a full ring is given back in
// steps rather than after the whole of it was written.
constexpr size_t kMaxBatch = 4096;

// Record header (BPF_RINGBUF_HDR_SZ bytes): length with the BUSY and DISCARD bits, then the
// page offset the kernel uses. Records are 8-byte aligned.
size_t RecordSpan(uint32_t len) {
  uint32_t data = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
  return (static_cast<size_t>(data) + BPF_RINGBUF_HDR_SZ + 7) & ~static_cast<size_t>(7);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventDrain>> EventDrain::Create(int ringbuf_fd, EventSink* sink) {
  auto drain = std::unique_ptr<EventDrain>(new EventDrain(sink));
  bpf_map_info info = {};
  uint32_t info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(ringbuf_fd, &info, &info_len) != 0) {
    return ErrnoToStatus(errno, "reading the event ring buffer's size");
  }
  drain->ring_size_ = info.max_entries;
  drain->page_size_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // The consumer page is writable (our read position); the producer page and the data,
  // mapped twice in a row by the kernel, are read-only (as libbpf maps them).
  void* cons = mmap(nullptr, drain->page_size_, PROT_READ | PROT_WRITE, MAP_SHARED, ringbuf_fd, 0);
  if (cons == MAP_FAILED) return ErrnoToStatus(errno, "mapping the event ring's consumer page");
  drain->consumer_pos_ = static_cast<uint64_t*>(cons);
  void* prod = mmap(nullptr, drain->page_size_ + 2 * drain->ring_size_, PROT_READ, MAP_SHARED,
                    ringbuf_fd, static_cast<off_t>(drain->page_size_));
  if (prod == MAP_FAILED) return ErrnoToStatus(errno, "mapping the event ring's data");
  drain->producer_pos_ = static_cast<const uint64_t*>(prod);
  drain->data_ = static_cast<const uint8_t*>(prod) + drain->page_size_;
  drain->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (drain->epoll_fd_ < 0) return ErrnoToStatus(errno, "creating an epoll instance");
  epoll_event ev = {};
  ev.events = EPOLLIN;
  if (epoll_ctl(drain->epoll_fd_, EPOLL_CTL_ADD, ringbuf_fd, &ev) != 0) {
    return ErrnoToStatus(errno, "watching the event ring");
  }
  drain->thread_ = std::thread([d = drain.get()] { d->Run(); });
  return drain;
}

EventDrain::~EventDrain() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (consumer_pos_) munmap(consumer_pos_, page_size_);
  if (producer_pos_) munmap(const_cast<uint64_t*>(producer_pos_), page_size_ + 2 * ring_size_);
}

size_t EventDrain::Consume() {
  size_t total = 0;
  uint64_t cons = __atomic_load_n(consumer_pos_, __ATOMIC_ACQUIRE);
  for (;;) {
    const uint64_t prod = __atomic_load_n(producer_pos_, __ATOMIC_ACQUIRE);
    uint64_t pos = cons;
    batch_.clear();
    while (pos < prod && batch_.size() < kMaxBatch) {
      const uint8_t* header = data_ + (pos & (ring_size_ - 1));
      uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(header), __ATOMIC_ACQUIRE);
      if (len & BPF_RINGBUF_BUSY_BIT) break;  // reserved, not yet submitted: stop here
      pos += RecordSpan(len);
      if (len & BPF_RINGBUF_DISCARD_BIT) continue;
      uint32_t size = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
      aftr_event record;
      NatEvent event;
      if (size < sizeof(record)) {
        failed_++;
        continue;
      }
      std::memcpy(&record, header + BPF_RINGBUF_HDR_SZ, sizeof(record));
      if (!DecodeEvent(record, &event)) {
        failed_++;
        continue;
      }
      batch_.push_back(event);
    }
    if (pos == cons) return total;
    if (!batch_.empty()) {
      if (absl::Status s = sink_->Publish(batch_); !s.ok()) {
        failed_ += batch_.size();
        LogError("%d events not logged: %s", batch_.size(), s.ToString());
      } else {
        drained_ += batch_.size();
      }
      total += batch_.size();
    }
    // Only now is the space given back: the records are in the log.
    __atomic_store_n(consumer_pos_, pos, __ATOMIC_RELEASE);
    cons = pos;
  }
}

void EventDrain::Run() {
  // Wait with a timeout so stop_ is noticed; one more pass after stop empties the ring.
  for (bool last = false; !last;) {
    last = stop_;
    if (!last) {
      epoll_event ev;
      int n = epoll_wait(epoll_fd_, &ev, 1, 100);
      if (n < 0 && errno != EINTR) LogWarning("event ring: epoll_wait: %s", std::strerror(errno));
    }
    Consume();
  }
}

}  // namespace aftr::events
