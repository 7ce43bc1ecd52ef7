// One collector's export logic. See export_session.h.
#include "control/ipfix/export_session.h"

namespace aftr::ipfix {

ExportSession::ExportSession(const Options& options, std::function<absl::Time()> clock,
                             ExportCounters* counters)
    : options_(options),
      clock_(std::move(clock)),
      counters_(counters),
      packer_(options.observation_domain_id, options.max_message_bytes) {}

Message ExportSession::TemplateMessage() {
  ++messages_built_;
  return packer_.TemplateMessage(NatTemplates(), {ExporterStatsTemplate()}, Seconds(clock_()));
}

void ExportSession::Add(const events::NatEvent& event, const RecordPolicy& policy,
                        const IdentityLookup& identity) {
  if (event.type == events::EventType::kEventsLost) {
    counters_->Add(counters_->events_lost, event.count);
    return;
  }
  record_.clear();
  const uint16_t id = EncodeNatRecord(event, policy, identity, &record_);
  if (id == 0) return;
  const absl::Time now = clock_();
  if (packer_.pending_records() == 0) oldest_pending_ = now;
  packer_.Add(id, record_, true, Seconds(now), &done_);
  ++nat_records_built_;
  if (!done_.empty()) {
    oldest_pending_ = packer_.pending_records() ? now : absl::InfiniteFuture();
    Emit(&done_, now);
  }
}

void ExportSession::AddStatsRecord(absl::Time now) {
  ExporterStats stats;
  stats.observation_domain_id = options_.observation_domain_id;
  stats.messages = messages_built_;
  stats.records = nat_records_built_;
  stats.not_sent = counters_->records_dropped.load(std::memory_order_relaxed) +
                   counters_->events_lost.load(std::memory_order_relaxed);
  record_.clear();
  EncodeStatsRecord(stats, &record_);
  if (packer_.pending_records() == 0) oldest_pending_ = now;
  packer_.Add(kExporterStatsTemplate, record_, false, Seconds(now), &done_);
  next_stats_ = now + options_.template_refresh;
}

void ExportSession::Tick() {
  const absl::Time now = clock_();
  if (now >= next_stats_) AddStatsRecord(now);
  if (packer_.pending_records() > 0 && now - oldest_pending_ >= options_.flush_interval) {
    packer_.Flush(Seconds(now), &done_);
    oldest_pending_ = absl::InfiniteFuture();
  }
  Emit(&done_, now);
  transport_->Poll();
}

void ExportSession::Finish() {
  const absl::Time now = clock_();
  AddStatsRecord(now);
  packer_.Flush(Seconds(now), &done_);
  oldest_pending_ = absl::InfiniteFuture();
  Emit(&done_, now);
  transport_->Poll();
}

void ExportSession::Emit(std::vector<Message>* messages, absl::Time now) {
  for (Message& m : *messages) {
    // UDP: templates first, then again once the refresh interval has passed (RFC 7011
    // section 8.4); TCP sends them once per connection itself.
    if (!transport_->Reliable() && now >= next_templates_) {
      Message t = packer_.TemplateMessage(NatTemplates(), {ExporterStatsTemplate()}, Seconds(now));
      t.sequence = m.sequence;
      RewriteSequence(t.bytes, t.sequence);
      transport_->Send(std::move(t));
      ++messages_built_;
      next_templates_ = now + options_.template_refresh;
    }
    transport_->Send(std::move(m));
    ++messages_built_;
  }
  messages->clear();
}

}  // namespace aftr::ipfix
