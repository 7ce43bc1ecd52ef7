// A whole datagram back through the data plane: aftr_xdp runs on it (a slow-path run: the same
// maps, counters and events as the fast path, no MTU check), and what it sends goes out of
// the interface it chose, fragmented to that interface's MTU; what it passes for the kernel
// to forward (the next hop's neighbour not resolved) goes to the kernel's IP stack.
#ifndef AFTR_CONTROL_SLOWPATH_REINJECTOR_H_
#define AFTR_CONTROL_SLOWPATH_REINJECTOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>

#include "absl/status/statusor.h"
#include "control/bpf/datapath.h"

namespace aftr::slowpath {

struct ReinjectCounters {
  std::atomic<uint64_t> reinjected{0};      // program runs that sent the datagram on
  std::atomic<uint64_t> fragments_sent{0};  // frames sent (a datagram that fits is one)
  std::atomic<uint64_t> send_errors{0};
  std::atomic<uint64_t> not_forwarded{0};   // dropped or passed by the program (its counters say why)
  std::atomic<uint64_t> via_kernel{0};      // of those reinjected, handed to the kernel's IP stack
  std::atomic<uint64_t> too_big{0};         // headers past what a run takes, or DF set and over the MTU
  std::atomic<uint64_t> head_runs{0};       // datagrams longer than a run takes, run as their head
  std::atomic<uint64_t> run_errors{0};      // BPF_PROG_TEST_RUN failed
};

class Reinjector {
 public:
  using RunFn = std::function<absl::StatusOr<bpf::Datapath::SlowRun>(std::span<const uint8_t> frame,
                                                                     int ingress_ifindex)>;
  using SendFn = std::function<absl::Status(int ifindex, std::span<const uint8_t> frame)>;
  // The packet of `frame` to the kernel's IP stack (PacketSender::SendViaKernel).
  using KernelSendFn = std::function<absl::Status(std::span<const uint8_t> frame)>;

  // Without `kernel_send`, what the program passes for the kernel to forward is not forwarded.
  Reinjector(RunFn run, SendFn send, KernelSendFn kernel_send = nullptr)
      : run_(std::move(run)), send_(std::move(send)), kernel_send_(std::move(kernel_send)) {}

  // `frame` (Ethernet first) as if it had arrived on `ingress_ifindex`.
  void Reinject(std::span<const uint8_t> frame, int ingress_ifindex);

  const ReinjectCounters& counters() const { return counters_; }

 private:
  RunFn run_;
  SendFn send_;
  KernelSendFn kernel_send_;
  ReinjectCounters counters_;
};

}  // namespace aftr::slowpath

#endif  // AFTR_CONTROL_SLOWPATH_REINJECTOR_H_
