// The counters of one collector's exporter, shared by its thread, its transport and the
// API/metrics readers (relaxed atomics: each is read on its own).
#ifndef AFTR_CONTROL_IPFIX_EXPORT_COUNTERS_H_
#define AFTR_CONTROL_IPFIX_EXPORT_COUNTERS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

namespace aftr::ipfix {

struct ExportCounters {
  // NAT records delivered: sent (UDP) or acknowledged by the collector's TCP.
  std::atomic<uint64_t> records_exported{0};
  // NAT records that will never be delivered: exporter queue full, spool full, send error.
  std::atomic<uint64_t> records_dropped{0};
  // Events the controller itself reported lost (kEventsLost), counted in notSentFlowTotalCount.
  std::atomic<uint64_t> events_lost{0};
  std::atomic<uint64_t> messages_sent{0};  // messages fully handed to the socket, resends too
  std::atomic<uint64_t> template_messages{0};
  std::atomic<uint64_t> messages_resent{0};  // TCP: unacknowledged messages sent again
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> reconnects{0};   // TCP connections after the first
  std::atomic<uint64_t> connected{0};    // TCP: 1 while connected (gauge)
  std::atomic<uint64_t> spool_bytes{0};  // TCP: bytes kept until acknowledged (gauge)

  void Add(std::atomic<uint64_t>& c, uint64_t n) { c.fetch_add(n, std::memory_order_relaxed); }
  // "ipfix_records_exported" -> value, ...
  std::map<std::string, uint64_t> Snapshot() const;
};

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_EXPORT_COUNTERS_H_
