// The IPFIX exporter of one collector: an EventSink whose Publish only queues (bounded;
// what does not fit is counted as dropped) and whose thread encodes, batches and sends
// through UDP or TCP (RFC 7011, RFC 8158 NAT events).
//
//   auto exporter = IpfixExporter::Create(config, 0, identity, policy);
//   fanout.Add(exporter->get());
//   ...
//   fanout.Remove(exporter->get()); (*exporter)->Stop(absl::Seconds(2));
#ifndef AFTR_CONTROL_IPFIX_IPFIX_EXPORTER_H_
#define AFTR_CONTROL_IPFIX_IPFIX_EXPORTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aftr/config/v1/config.pb.h"
#include "control/events/event_sink.h"
#include "control/ipfix/export_counters.h"
#include "control/ipfix/export_session.h"
#include "control/ipfix/nat_records.h"
#include "control/ipfix/transport.h"

namespace aftr::ipfix {

// What record encoding needs from a configuration (mode, B4 prefix length, limits).
RecordPolicy PolicyFromConfig(const aftr::config::v1::Config& config);

class IpfixExporter : public events::EventSink {
 public:
  // Events waiting for the exporter's thread; beyond, Publish drops and counts.
  static constexpr size_t kDefaultQueueEvents = 1 << 16;

  // Exports to `config.ipfix().collectors(index)`. `identity` names a B4's subscriber;
  // `policy` gives the running configuration's encoding needs (called per batch).
  static absl::StatusOr<std::unique_ptr<IpfixExporter>> Create(
      const aftr::config::v1::Config& config, int index, IdentityLookup identity,
      std::function<RecordPolicy()> policy, size_t queue_events = kDefaultQueueEvents);
  ~IpfixExporter() override;  // Stop(0) if not stopped

  using EventSink::Publish;
  // Never blocks on the network. Always OK: what this exporter cannot take is counted in
  // ipfix_records_dropped (the other sinks did record it).
  absl::Status Publish(const std::vector<events::NatEvent>& events) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Sends what is queued and, for TCP, waits up to `grace` for the collector to acknowledge
  // the spool; then ends the thread. Idempotent.
  void Stop(absl::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

  // ipfix_* counters, plus ipfix_queue_events.
  std::map<std::string, uint64_t> Counters() const;
  const std::string& collector() const { return collector_; }

 private:
  IpfixExporter() = default;
  void Run();

  std::string collector_;
  IdentityLookup identity_;
  std::function<RecordPolicy()> policy_;
  size_t queue_limit_ = kDefaultQueueEvents;
  ExportCounters counters_;
  std::unique_ptr<ExportSession> session_;
  std::unique_ptr<Transport> transport_;

  mutable absl::Mutex mu_;
  std::vector<events::NatEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Sums the counters of several exporters (one per collector) under the same names.
std::map<std::string, uint64_t> SumCounters(
    const std::vector<std::unique_ptr<IpfixExporter>>& exporters);

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_IPFIX_EXPORTER_H_
