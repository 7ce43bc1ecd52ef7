// Exporter counters. See export_counters.h.
#include "control/ipfix/export_counters.h"

namespace aftr::ipfix {

std::map<std::string, uint64_t> ExportCounters::Snapshot() const {
  auto v = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  return {{"ipfix_records_exported", v(records_exported)},
          {"ipfix_records_dropped", v(records_dropped)},
          {"ipfix_events_lost", v(events_lost)},
          {"ipfix_messages_sent", v(messages_sent)},
          {"ipfix_template_messages", v(template_messages)},
          {"ipfix_messages_resent", v(messages_resent)},
          {"ipfix_bytes_sent", v(bytes_sent)},
          {"ipfix_reconnects", v(reconnects)},
          {"ipfix_connected", v(connected)},
          {"ipfix_spool_bytes", v(spool_bytes)}};
}

}  // namespace aftr::ipfix
