// One collector's export logic, single-threaded and clock-injected (the exporter's thread
// drives it): events -> records -> messages, timely flushes, UDP template refresh, the
// periodic statistics record, all handed to a Transport.
#ifndef AFTR_CONTROL_IPFIX_EXPORT_SESSION_H_
#define AFTR_CONTROL_IPFIX_EXPORT_SESSION_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/time/time.h"
#include "control/events/nat_event.h"
#include "control/ipfix/export_counters.h"
#include "control/ipfix/message_packer.h"
#include "control/ipfix/nat_records.h"
#include "control/ipfix/transport.h"

namespace aftr::ipfix {

class ExportSession {
 public:
  struct Options {
    uint32_t observation_domain_id = 1;
    size_t max_message_bytes = 1400;
    // UDP: templates at least this often; both transports: the statistics record too.
    absl::Duration template_refresh = absl::Seconds(60);
    // A record waits at most this long in a message being built.
    absl::Duration flush_interval = absl::Milliseconds(100);
  };

  ExportSession(const Options& options, std::function<absl::Time()> clock,
                ExportCounters* counters);
  // Set before the first Add/Tick; not owned.
  void set_transport(Transport* transport) { transport_ = transport; }

  // Encodes one event (kEventsLost only counts) and packs it; full messages go out now.
  void Add(const events::NatEvent& event, const RecordPolicy& policy,
           const IdentityLookup& identity);
  // Timers: statistics record, flush of records older than flush_interval, templates.
  void Tick();
  // A last statistics record, then every pending record, sent.
  void Finish();

  // The templates and options template, numbered for what comes next (counted as a
  // message built: TCP asks for it at each connection).
  Message TemplateMessage();
  uint64_t messages_built() const { return messages_built_; }

 private:
  void AddStatsRecord(absl::Time now);
  void Emit(std::vector<Message>* messages, absl::Time now);
  uint32_t Seconds(absl::Time t) const { return static_cast<uint32_t>(absl::ToUnixSeconds(t)); }

  Options options_;
  std::function<absl::Time()> clock_;
  ExportCounters* counters_;
  Transport* transport_ = nullptr;
  MessagePacker packer_;
  std::vector<uint8_t> record_;  // reused buffer
  std::vector<Message> done_;    // reused buffer
  absl::Time oldest_pending_ = absl::InfiniteFuture();
  absl::Time next_templates_ = absl::InfinitePast();
  absl::Time next_stats_ = absl::InfinitePast();
  uint64_t messages_built_ = 0;     // handed to the transport, template messages included
  uint64_t nat_records_built_ = 0;  // packed into messages
};

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_EXPORT_SESSION_H_
