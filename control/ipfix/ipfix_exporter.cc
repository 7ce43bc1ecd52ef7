// The IPFIX exporter of one collector. See ipfix_exporter.h.
#include "control/ipfix/ipfix_exporter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/common/log.h"
#include "control/common/socket_address.h"

namespace aftr::ipfix {
namespace {

namespace v1 = aftr::config::v1;

// How often the thread wakes when nothing is queued: timely flushes (100 ms) and TCP
// writes of a spool that waits for the socket.
constexpr absl::Duration kIdleWake = absl::Milliseconds(50);
constexpr absl::Duration kBusyWake = absl::Milliseconds(10);

}  // namespace

RecordPolicy PolicyFromConfig(const v1::Config& config) {
  RecordPolicy p;
  p.per_session = config.logging().mode() == v1::LOG_MODE_PER_SESSION;
  p.b4_prefix_length = static_cast<int>(config.ipfix().b4_prefix_length());
  p.max_entries_per_user =
      config.port_blocks().max_blocks_per_subscriber() * config.port_blocks().block_size();
  p.max_sessions_per_subscriber = config.port_blocks().max_sessions_per_subscriber();
  p.max_sessions = config.tables().max_sessions();
  p.max_subscribers = config.tables().max_subscribers();
  return p;
}

absl::StatusOr<std::unique_ptr<IpfixExporter>> IpfixExporter::Create(
    const v1::Config& config, int index, IdentityLookup identity,
    std::function<RecordPolicy()> policy, size_t queue_events) {
  const v1::Ipfix& ipfix = config.ipfix();
  if (index < 0 || index >= ipfix.collectors_size()) {
    return absl::InvalidArgumentError(absl::StrCat("ipfix.collectors[", index, "]: no such collector"));
  }
  const v1::IpfixCollector& c = ipfix.collectors(index);
  absl::StatusOr<SocketAddress> address = ParseSocketAddress(c.address());
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ipfix.collectors[", index, "].address: ", address.status().message()));
  }
  auto e = std::unique_ptr<IpfixExporter>(new IpfixExporter());
  e->collector_ = address->ToString();
  e->identity_ = std::move(identity);
  e->policy_ = std::move(policy);
  e->queue_limit_ = queue_events;
  ExportSession::Options options;
  options.observation_domain_id = ipfix.observation_domain_id();
  options.max_message_bytes = ipfix.max_message_bytes();
  options.template_refresh = absl::Seconds(ipfix.template_refresh_seconds());
  e->session_ = std::make_unique<ExportSession>(options, absl::Now, &e->counters_);
  if (c.transport() == v1::IPFIX_TRANSPORT_TCP) {
    TcpTransport::Options tcp;
    tcp.spool_bytes = ipfix.spool_bytes();
    ExportSession* session = e->session_.get();
    e->transport_ = std::make_unique<TcpTransport>(
        *address, tcp, [session] { return session->TemplateMessage(); }, absl::Now,
        &e->counters_);
  } else {
    absl::StatusOr<std::unique_ptr<UdpTransport>> udp = UdpTransport::Create(*address, &e->counters_);
    if (!udp.ok()) return udp.status();
    e->transport_ = std::move(*udp);
  }
  e->session_->set_transport(e->transport_.get());
  e->thread_ = std::thread([raw = e.get()] { raw->Run(); });
  LogInfo("ipfix: exporting to %s over %s, observation domain %d", e->collector_,
          c.transport() == v1::IPFIX_TRANSPORT_TCP ? "TCP" : "UDP",
          ipfix.observation_domain_id());
  return e;
}

IpfixExporter::~IpfixExporter() { Stop(absl::ZeroDuration()); }

absl::Status IpfixExporter::Publish(const std::vector<events::NatEvent>& events) {
  const bool per_session = policy_().per_session;
  uint64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    for (const events::NatEvent& e : events) {
      if (e.type != events::EventType::kEventsLost && !IsExported(e.type, per_session)) continue;
      if (stopping_ || queue_.size() >= queue_limit_) {
        if (e.type != events::EventType::kEventsLost) ++dropped;
        else counters_.Add(counters_.events_lost, e.count);
        continue;
      }
      queue_.push_back(e);
    }
  }
  if (dropped > 0) counters_.Add(counters_.records_dropped, dropped);
  return absl::OkStatus();
}

void IpfixExporter::Run() {
  std::vector<events::NatEvent> batch;
  for (;;) {
    bool stopping;
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), transport_->Busy() ? kBusyWake : kIdleWake);
      batch.swap(queue_);
      stopping = stopping_;
      deadline = stop_deadline_;
    }
    if (!batch.empty()) {
      const RecordPolicy policy = policy_();
      for (const events::NatEvent& e : batch) session_->Add(e, policy, identity_);
      batch.clear();
    }
    session_->Tick();
    if (stopping) {
      session_->Finish();
      // TCP: give the collector until the deadline to take the spool.
      while (transport_->Busy() && absl::Now() < deadline) {
        absl::SleepFor(kBusyWake);
        transport_->Poll();
      }
      if (transport_->Busy()) {
        LogWarning("ipfix: stopping with records for %s not acknowledged", collector_);
      }
      transport_->Close();
      return;
    }
  }
}

void IpfixExporter::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + grace;
    }
  }
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, uint64_t> IpfixExporter::Counters() const {
  std::map<std::string, uint64_t> c = counters_.Snapshot();
  absl::MutexLock lock(&mu_);
  c["ipfix_queue_events"] = queue_.size();
  return c;
}

std::map<std::string, uint64_t> SumCounters(
    const std::vector<std::unique_ptr<IpfixExporter>>& exporters) {
  std::map<std::string, uint64_t> sum;
  for (const auto& e : exporters) {
    for (const auto& [name, value] : e->Counters()) sum[name] += value;
  }
  return sum;
}

}  // namespace aftr::ipfix
