#include "control/slowpath/reinjector.h"

#include <linux/bpf.h>

#include "control/common/log.h"
#include "control/slowpath/frames.h"

namespace aftr::slowpath {

void Reinjector::Reinject(std::span<const uint8_t> frame, int ingress_ifindex) {
  // Longer than a run takes: the program runs on the head, the tail is put back after.
  FrameHead cut;
  if (frame.size() > bpf::Datapath::kMaxSlowRunFrame) {
    absl::StatusOr<FrameHead> head = CutForRun(frame, bpf::Datapath::kMaxSlowRunFrame);
    if (!head.ok()) {
      counters_.too_big.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    cut = *std::move(head);
    frame = cut.head;
    counters_.head_runs.fetch_add(1, std::memory_order_relaxed);
  }
  absl::StatusOr<bpf::Datapath::SlowRun> run = run_(frame, ingress_ifindex);
  if (!run.ok()) {
    counters_.run_errors.fetch_add(1, std::memory_order_relaxed);
    LogError("slow path: %s", run.status().ToString());
    return;
  }
  const bool via_kernel = run->verdict == XDP_PASS && (run->meta.flags & AFTR_SLOW_META_VIA_KERNEL) &&
                          kernel_send_ != nullptr;
  if (run->verdict != XDP_TX && run->verdict != XDP_REDIRECT && !via_kernel) {
    counters_.not_forwarded.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Bytes whole = std::move(run->frame);
  if (!cut.tail.empty()) {
    absl::StatusOr<Bytes> rejoined = RejoinTail(whole, cut.head_ipv4_len, cut.tail);
    if (!rejoined.ok()) {
      counters_.not_forwarded.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    whole = *std::move(rejoined);
  }
  // The kernel forwards a passed frame as a router: one hop less (the program left it).
  if (via_kernel && !DecrementHopLimit(whole)) {
    counters_.not_forwarded.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // XDP_TX leaves by the interface it came in on; the program reports that one too.
  int egress = run->meta.egress_ifindex != 0 ? static_cast<int>(run->meta.egress_ifindex) : ingress_ifindex;
  absl::StatusOr<std::vector<Bytes>> pieces = FitToMtu(whole, run->meta.mtu);
  if (!pieces.ok()) {
    if (absl::IsFailedPrecondition(pieces.status())) {
      counters_.too_big.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_.not_forwarded.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  counters_.reinjected.fetch_add(1, std::memory_order_relaxed);
  if (via_kernel) counters_.via_kernel.fetch_add(1, std::memory_order_relaxed);
  for (const Bytes& piece : *pieces) {
    if (absl::Status s = via_kernel ? kernel_send_(piece) : send_(egress, piece); !s.ok()) {
      counters_.send_errors.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_.fragments_sent.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

}  // namespace aftr::slowpath
