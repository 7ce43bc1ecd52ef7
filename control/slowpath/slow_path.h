// The fragment slow path (RFC 6333 section 6.3), aftrd's side. One thread:
//  - takes the frames XDP queued in the aftr_slow_path ring (IPv4 fragments from the Internet
//    and inside softwire packets; whole packets too big for their egress MTU),
//  - reads the softwire payloads the kernel reassembled from IPv6 fragments (a raw
//    IPPROTO_IPIP socket: the softwire addresses are local addresses of the AFTR),
//  - reassembles IPv4 (one table; the context is the B4 for softwire fragments, zero for the
//    Internet) and hands each whole datagram to the Reinjector, which runs the data plane's
//    own program on it and sends the result, fragmented to the egress MTU;
//  - expires incomplete datagrams every second.
#ifndef AFTR_CONTROL_SLOWPATH_SLOW_PATH_H_
#define AFTR_CONTROL_SLOWPATH_SLOW_PATH_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aftr/config/v1/config.pb.h"
#include "control/bpf/datapath.h"
#include "control/fragments/ipv4_reassembler.h"
#include "control/slowpath/frames.h"
#include "control/slowpath/packet_sender.h"
#include "control/slowpath/reinjector.h"

struct ring_buffer;  // libbpf

namespace aftr::slowpath {

class SlowPath {
 public:
  // Starts the thread on `datapath`'s slow-path ring and a raw socket for the softwire.
  static absl::StatusOr<std::unique_ptr<SlowPath>> Start(const aftr::config::v1::Fragments& config,
                                                         bpf::Datapath* datapath);
  ~SlowPath();  // stops the thread
  SlowPath(const SlowPath&) = delete;
  SlowPath& operator=(const SlowPath&) = delete;

  // slow_path_* and fragments_* counters, for the statistics and /metrics.
  std::map<std::string, uint64_t> CounterMap() const;

 private:
  SlowPath() = default;
  void Loop();
  static int OnRecord(void* ctx, void* data, size_t size);
  void HandleRecord(const uint8_t* data, size_t size);
  void ReadRawSocket();
  void Reassemble(const fragments::ReassemblyContext& context, std::span<const uint8_t> ipv4,
                  std::span<const uint8_t, 14> ethernet, const Ipv6Bytes* b4,
                  const Ipv6Bytes* softwire, int ingress_ifindex);
  void PublishReassemblyCounters();

  bpf::Datapath* datapath_ = nullptr;
  std::unique_ptr<PacketSender> sender_;
  std::unique_ptr<Reinjector> reinjector_;
  fragments::Ipv4Reassembler reassembler_;
  ::ring_buffer* ring_ = nullptr;
  int raw_fd_ = -1;
  std::vector<uint8_t> raw_buffer_ = std::vector<uint8_t>(65536);  // one IPv6 payload at most
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the thread to stop
  std::thread thread_;

  std::atomic<uint64_t> received_{0};         // ring records and raw-socket packets
  std::atomic<uint64_t> from_kernel_{0};      // of which payloads the kernel reassembled
  std::atomic<uint64_t> malformed_{0};        // records or payloads that did not parse
  mutable absl::Mutex counters_mu_;
  fragments::ReassemblyCounters reassembly_ ABSL_GUARDED_BY(counters_mu_);
  size_t pending_datagrams_ ABSL_GUARDED_BY(counters_mu_) = 0;
  size_t pending_bytes_ ABSL_GUARDED_BY(counters_mu_) = 0;
};

}  // namespace aftr::slowpath

#endif  // AFTR_CONTROL_SLOWPATH_SLOW_PATH_H_
