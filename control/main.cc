// aftrd: the AFTR daemon. Loads and attaches the XDP data plane, drains its events into the
// log, expires sessions and returns idle port blocks, until SIGTERM/SIGINT (SIGHUP reopens
// the log file and reloads the configuration). Under systemd (Type=notify) it reports READY=1
// once XDP is attached and the API serves.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "control/slowpath/slow_path.h"
#include "control/bpf/datapath.h"
#include "control/common/clock.h"
#include "control/common/log.h"
#include "control/common/sd_notify.h"
#include "control/config/config.h"
#include "control/events/event_drain.h"
#include "control/events/event_log.h"
#include "control/nat/deterministic.h"
#include "control/events/event_sink.h"
#include "control/events/limit_event_filter.h"
#include "control/attribution/attribution_index.h"
#include "control/attribution/index_follower.h"
#include "control/api/aftr_service.h"
#include "control/api/translate.h"
#include "control/api/api_server.h"
#include "control/api/event_hub.h"
#include "control/metrics/metrics_server.h"
#include "control/inspect/state_report.h"
#include "control/ipfix/ipfix_exporter.h"
#include "control/nat/session_sweeper.h"
#include "control/pcp/pcp_server.h"
#include "control/subscribers/radius_server.h"
#include "control/subscribers/subscriber_history.h"

ABSL_FLAG(std::string, config, "", "Configuration file (textproto of aftr.config.v1.Config)");
ABSL_FLAG(std::string, check_config, "",
          "Validate this configuration file and exit; touches nothing");
ABSL_FLAG(std::string, show, "",
          "Print the state of a running (or stopped) aftrd from its pinned maps and exit: "
          "any of subscribers,sessions,counters (comma-separated) or all; needs --config");
ABSL_FLAG(bool, detach, false,
          "Remove aftrd's XDP program from the configured interfaces (only where the attached "
          "program is ours) and exit; the pinned maps stay. Needs --config");
ABSL_FLAG(bool, purge, false, "With --detach: also remove the pinned maps (every session and block)");

namespace {

using aftr::config::v1::Config;

constexpr size_t kMaxPcpClients = 1 << 20;  // B4s remembered for unsolicited ANNOUNCEs
// At shutdown, how long a TCP collector gets to acknowledge the exporter's spool.
constexpr absl::Duration kIpfixStopGrace = absl::Seconds(2);

// Tells systemd (Type=notify) where aftrd is; outside systemd $NOTIFY_SOCKET is unset and
// this does nothing. A failure is logged, never fatal: the data plane matters more.
void Notify(absl::string_view state) {
  if (absl::Status s = aftr::SdNotify(state); !s.ok()) aftr::LogWarning("%s", s.ToString());
}

int CheckConfig(const std::string& path) {
  absl::StatusOr<Config> config = aftr::config::LoadConfigFile(path);
  if (!config.ok()) {
    std::fprintf(stderr, "invalid configuration: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  for (const std::string& w : aftr::config::ConfigWarnings(*config)) {
    std::fprintf(stderr, "warning: %s\n", w.c_str());
  }
  std::printf("%s: configuration OK\n", path.c_str());
  return 0;
}

int Show(const Config& config, const std::string& what) {
  absl::StatusOr<std::unique_ptr<aftr::bpf::PinnedMaps>> maps =
      aftr::bpf::PinnedMaps::Open(config.pin_path());
  if (!maps.ok()) {
    std::fprintf(stderr, "%s\n", maps.status().ToString().c_str());
    return 1;
  }
  for (absl::string_view part : absl::StrSplit(what, ',')) {
    absl::StatusOr<std::string> table;
    if (part == "subscribers" || part == "all") {
      table = aftr::inspect::SubscribersTable((*maps)->fds(), config);
      if (table.ok()) std::printf("== subscribers and port blocks ==\n%s", table->c_str());
    }
    if (part == "sessions" || part == "all") {
      table = aftr::inspect::SessionsTable((*maps)->fds());
      if (table.ok()) std::printf("== sessions ==\n%s", table->c_str());
    }
    if (part == "counters" || part == "all") {
      table = aftr::inspect::CountersTable((*maps)->fds());
      if (table.ok()) std::printf("== counters ==\n%s", table->c_str());
    }
    if (part != "subscribers" && part != "sessions" && part != "counters" && part != "all") {
      std::fprintf(stderr, "--show: unknown table \"%s\"\n", std::string(part).c_str());
      return 1;
    }
    if (!table.ok()) {
      std::fprintf(stderr, "%s\n", table.status().ToString().c_str());
      return 1;
    }
  }
  return 0;
}

// --detach [--purge]: XDP stays attached when aftrd stops (a restart or an upgrade loses
// nothing); this is how it is removed.
int Detach(const Config& config, bool purge) {
  if (absl::Status s = aftr::bpf::DetachDataPlane(config, purge); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}

int Run(const Config& config, const std::string& config_path) {
  // Signals are taken synchronously by the main loop; every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  for (const std::string& w : aftr::config::ConfigWarnings(config)) aftr::LogWarning("%s", w);
  aftr::events::LogPolicy log_policy;
  log_policy.per_session = config.logging().mode() == aftr::config::v1::LOG_MODE_PER_SESSION;
  log_policy.b4_prefix_length = static_cast<int>(config.logging().b4_prefix_length());
  log_policy.retention_days = static_cast<int>(config.logging().retention_days());
  if (absl::StatusOr<aftr::nat::DeterministicMap> det = aftr::nat::DeterministicMap::Create(config);
      det.ok()) {
    for (const aftr::nat::DeterministicRange& r : det->ranges()) {
      log_policy.deterministic_ranges.push_back(r.ToString());
    }
  }
  auto log = aftr::events::EventLog::Create(config.log_file(), log_policy);
  if (!log.ok()) {
    aftr::LogError("%s", log.status().ToString());
    return 1;
  }
  auto datapath = aftr::bpf::Datapath::Create(config);
  if (!datapath.ok()) {
    aftr::LogError("%s", datapath.status().ToString());
    return 1;
  }
  // RADIUS accounting from the BRASes: the subscriber identity history (who held which IPv6
  // prefix when), kept in radius.history_db; null when RADIUS is off. Before the
  // exporters, which name the subscriber of each B4 from it.
  std::unique_ptr<aftr::subscribers::SubscriberHistory> history;
  std::unique_ptr<aftr::subscribers::RadiusServer> radius;
  std::unique_ptr<aftr::subscribers::RadiusListener> radius_listener;
  if (config.radius().enabled()) {
    auto opened = aftr::subscribers::SubscriberHistory::Open(
        config.radius().history_db(), absl::Hours(24) * config.radius().history_days());
    if (!opened.ok()) {
      aftr::LogError("%s", opened.status().ToString());
      return 1;
    }
    history = std::move(*opened);
    auto clients = aftr::subscribers::LoadRadiusClients(config.radius());
    if (!clients.ok()) {
      aftr::LogError("%s", clients.status().ToString());
      return 1;
    }
    radius = std::make_unique<aftr::subscribers::RadiusServer>(std::move(*clients), history.get());
    auto listener = aftr::subscribers::RadiusListener::Start(config.radius(), radius.get(), history.get());
    if (!listener.ok()) {
      aftr::LogError("%s", listener.status().ToString());
      return 1;
    }
    radius_listener = std::move(*listener);
    aftr::LogInfo("RADIUS accounting server on port %d of %d addresses, %d clients, history %s "
                  "(%d open sessions)",
                  config.radius().port(), config.radius().listen_addresses_size(),
                  config.radius().clients_size(), config.radius().history_db(),
                  history->OpenSessionCount());
  }
  // Producers publish to `events`. The log and IPFIX (`recorded`) get limit and exhaustion
  // events through `limited`, at most one per limit and B4 per interval (the rest counted), so
  // that a flooding subscriber does not decide how much is written and exported.
  aftr::events::EventFanout recorded;
  recorded.Add(log->get());
  aftr::events::LimitEventFilter limited(
      &recorded, absl::Milliseconds(config.logging().limit_event_interval_ms()),
      log_policy.b4_prefix_length);
  aftr::events::EventFanout events;
  events.Add(&limited);
  // IPFIX: one exporter per collector, in the fan-out before the drain starts so that no
  // event is missed.
  std::vector<std::unique_ptr<aftr::ipfix::IpfixExporter>> exporters;
  for (int i = 0; i < config.ipfix().collectors_size(); ++i) {
    auto exporter = aftr::ipfix::IpfixExporter::Create(
        config, i,
        [h = history.get()](const aftr::Ipv6Address& b4) {
          return h != nullptr ? h->CurrentUserName(b4) : std::string();
        },
        [dp = datapath->get()] { return aftr::ipfix::PolicyFromConfig(dp->config()); });
    if (!exporter.ok()) {
      aftr::LogError("%s", exporter.status().ToString());
      return 1;
    }
    recorded.Add(exporter->get());
    exporters.push_back(std::move(*exporter));
  }
  auto drain = aftr::events::EventDrain::Create((*datapath)->fds().events, &events);
  if (!drain.ok()) {
    aftr::LogError("%s", drain.status().ToString());
    return 1;
  }
  aftr::nat::SessionSweeper sweeper(datapath->get(), &events);
  // Fragments: what XDP queued, and what the kernel reassembled from IPv6 fragments.
  auto slow_path = aftr::slowpath::SlowPath::Start(config.fragments(), datapath->get());
  if (!slow_path.ok()) {
    aftr::LogError("%s", slow_path.status().ToString());
    return 1;
  }
  if (!(*datapath)->adopted()) {
    // Blocks and mappings logged by an earlier aftrd are gone with its maps: say so, so that
    // attribution ends them here.
    aftr::events::NatEvent fresh;
    fresh.type = aftr::events::EventType::kStateFresh;
    fresh.time = absl::Now();
    fresh.detail = "no earlier state";
    if (absl::Status s = events.Publish(fresh); !s.ok()) aftr::LogError("%s", s.ToString());
  }

  // PCP: its records and epoch come from the pinned maps, its clients from clients_file.
  std::unique_ptr<aftr::pcp::KnownClients> pcp_clients;
  std::unique_ptr<aftr::pcp::PcpServer> pcp;
  std::unique_ptr<aftr::pcp::PcpListener> pcp_listener;
  if (config.pcp().enabled()) {
    auto clients = aftr::pcp::KnownClients::Open(config.pcp().clients_file(), kMaxPcpClients);
    if (!clients.ok()) {
      aftr::LogError("%s", clients.status().ToString());
      return 1;
    }
    pcp_clients = std::move(*clients);
    auto server = aftr::pcp::PcpServer::Create(datapath->get(), &events, pcp_clients.get(),
                                               aftr::MonotonicCoarseNs);
    if (!server.ok()) {
      aftr::LogError("%s", server.status().ToString());
      return 1;
    }
    pcp = std::move(*server);
    auto listener = aftr::pcp::PcpListener::Start(config.pcp(), pcp.get(), pcp_clients.get());
    if (!listener.ok()) {
      aftr::LogError("%s", listener.status().ToString());
      return 1;
    }
    pcp_listener = std::move(*listener);
    aftr::LogInfo("PCP server on port %d of %d addresses, epoch %d", config.pcp().port(),
                  config.pcp().listen_addresses_size(), pcp->Epoch());
  }

  // The attribution index follows the logs; without it aftrd still runs (queries say why).
  std::unique_ptr<aftr::attribution::AttributionIndex> attribution;
  std::unique_ptr<aftr::attribution::IndexFollower> attribution_follower;
  {
    auto index = aftr::attribution::AttributionIndex::Open(config.logging().attribution_db(),
                                                           config.log_file());
    if (index.ok()) {
      attribution = std::move(*index);
      attribution_follower = std::make_unique<aftr::attribution::IndexFollower>(
          attribution.get(), absl::Hours(24) * config.logging().retention_days());
    } else {
      aftr::LogError("attribution index unavailable: %s", index.status().ToString());
    }
  }


  // The API: the service over the running modules, then the server; health says SERVING
  // once everything above is in place.
  aftr::api::EventHub hub;
  // WatchEvents gets every event, limit events unfiltered: a watcher is live and bounded (its
  // queue drops and reports what it cannot keep, nobody waits), nothing is stored, and an
  // operator watching one B4 during an attack wants each flow it tried.
  events.Add(&hub);
  aftr::api::AftrServiceImpl::Deps deps;
  deps.maps = (*datapath)->fds();
  deps.datapath = datapath->get();
  deps.config = [dp = datapath->get()]() -> const Config& { return dp->config(); };
  deps.events = &events;
  deps.hub = &hub;
  deps.apply_config = [dp = datapath->get()](const Config& next) { return dp->Reprogram(next); };
  deps.controller_counters = [&] {
    std::map<std::string, uint64_t> c{{"events_drained", (*drain)->events_drained()},
                                      {"events_not_logged", (*drain)->events_failed()},
                                      {"log_lines_written", (*log)->lines_written()},
                                      {"events_suppressed", limited.suppressed_total()}};
    for (const auto& [code, n] : limited.suppressed_by_type()) {
      c[absl::StrCat("events_suppressed_", absl::AsciiStrToLower(code))] = n;
    }
    if (attribution) {
      const aftr::attribution::IndexStats stats = attribution->stats();
      c["attribution_lines_indexed"] = stats.lines_indexed;
      c["attribution_lines_unreadable"] = stats.lines_unreadable;
      c["attribution_holdings"] = stats.holdings;
    }
    if (!exporters.empty()) c.merge(aftr::ipfix::SumCounters(exporters));
    if (pcp) {
      const auto counters = pcp->counters();
      for (int i = 0; i < aftr::pcp::PcpServer::kCounterCount; ++i) {
        c[aftr::pcp::PcpServer::kCounterNames[i]] = counters[i];
      }
      const auto results = pcp->results();
      for (int i = 0; i < aftr::pcp::kResultCount; ++i) {
        c[absl::StrCat("pcp_result_", absl::AsciiStrToLower(
                                          aftr::pcp::ResultName(static_cast<aftr::pcp::Result>(i))))] =
            results[i];
      }
    }
    if (radius) c.merge(radius->CounterMap());
    c.merge((*slow_path)->CounterMap());
    return c;
  };
  deps.pcp = pcp.get();
  deps.attribution = attribution.get();
  if (history) {
    deps.identities = [h = history.get()](const aftr::Ipv6Prefix& b4, absl::Time at)
        -> absl::StatusOr<std::vector<aftr::v1::SubscriberIdentity>> {
      absl::StatusOr<std::vector<aftr::subscribers::IdentityBinding>> found = h->Lookup(b4, at);
      if (!found.ok()) return found.status();
      std::vector<aftr::v1::SubscriberIdentity> out;
      for (const aftr::subscribers::IdentityBinding& b : *found) {
        aftr::v1::SubscriberIdentity& id = out.emplace_back();
        id.set_user_name(b.user_name);
        id.set_nas_port_id(b.nas_port_id);
        id.set_acct_session_id(b.acct_session_id);
        id.set_nas(b.nas);
        for (const aftr::Ipv6Prefix& p : b.prefixes) id.add_prefixes(p.ToString());
        aftr::api::ToTimestamp(b.start, id.mutable_start_time());
        if (b.end != absl::InfiniteFuture()) aftr::api::ToTimestamp(b.end, id.mutable_end_time());
      }
      return out;
    };
  }
  aftr::api::AftrServiceImpl service(std::move(deps));
  auto api = aftr::api::ApiServer::Start(config.api(), &service);
  if (!api.ok()) {
    aftr::LogError("%s", api.status().ToString());
    return 1;
  }
  std::unique_ptr<aftr::metrics::MetricsServer> metrics;
  if (!config.metrics().listen().empty()) {
    auto m = aftr::metrics::MetricsServer::Create(config.metrics().listen(),
                                                  [&service] { return service.ReadStatistics(); });
    if (!m.ok()) {
      aftr::LogError("%s", m.status().ToString());
      return 1;
    }
    metrics = std::move(*m);
  }
  (*api)->SetServing(true);
  aftr::LogInfo("aftrd running: %d interfaces, log %s", config.interfaces_size(), config.log_file());
  // Ready only now: XDP is attached and health says SERVING.
  Notify(absl::StrCat("READY=1\nSTATUS=serving on ", config.interfaces_size(), " interfaces"));

  int exit_code = 0;
  for (;;) {
    const uint32_t sweep_ms = (*datapath)->config().sweep_interval_ms();
    struct timespec interval = {static_cast<time_t>(sweep_ms / 1000),
                                static_cast<long>(sweep_ms % 1000) * 1000000};
    siginfo_t info;
    int sig = sigtimedwait(&signals, &info, &interval);
    if (sig == SIGTERM || sig == SIGINT) {
      aftr::LogInfo("signal %d: stopping", sig);
      break;
    }
    if (sig == SIGHUP) {
      // Reopen the log (logrotate) and reload the configuration file (systemctl reload).
      Notify("RELOADING=1\nSTATUS=reloading");
      if (absl::Status s = (*log)->Reopen(); !s.ok()) aftr::LogError("%s", s.ToString());
      auto reloaded = service.Reload(aftr::config::LoadConfigFile(config_path), false);
      if (!reloaded.ok()) {
        aftr::LogError("reload of %s refused: %s", config_path, reloaded.status().ToString());
      } else {
        aftr::LogInfo("reloaded %s: %d fields changed", config_path, reloaded->changed.size());
      }
      Notify(reloaded.ok() ? "READY=1\nSTATUS=serving (configuration reloaded)"
                           : "READY=1\nSTATUS=serving (last reload refused, see the log)");
      continue;
    }
    absl::StatusOr<aftr::nat::SweepResult> swept = sweeper.SweepOnce(aftr::MonotonicCoarseNs());
    if (!swept.ok()) {
      aftr::LogError("sweep failed: %s", swept.status().ToString());
      exit_code = 1;
      break;
    }
    // Limit events held back whose interval ended with no successor: written now.
    if (absl::Status s = limited.Flush(absl::Now()); !s.ok()) aftr::LogError("%s", s.ToString());
  }
  Notify("STOPPING=1\nSTATUS=stopping; XDP stays attached");
  (*api)->SetServing(false);
  pcp_listener.reset();  // no more requests; PCP state stays pinned with its sessions
  radius_listener.reset();  // no more accounting; every acknowledged record is committed
  hub.Close();       // ends the watch streams
  api->reset();      // waits for calls in progress
  metrics.reset();
  drain->reset();     // last drain of the ring buffer into the log
  // The limit events still held back, with their counts, before the log and IPFIX close.
  if (absl::Status s = limited.FlushAll(); !s.ok()) aftr::LogError("%s", s.ToString());
  attribution_follower.reset();  // the index catches up with the rest when next started
  // IPFIX last: what the drain just published is sent (TCP: acknowledged) within a bound.
  for (auto& exporter : exporters) {
    recorded.Remove(exporter.get());
    exporter->Stop(kIpfixStopGrace);
  }
  // XDP stays attached and the maps pinned: packets keep flowing, and the next aftrd adopts
  // sessions, blocks, counters and the events queued meanwhile (`aftrd --detach` removes it).
  datapath->reset();
  aftr::LogInfo("aftrd stopped; %d log lines written; XDP left attached", (*log)->lines_written());
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("DS-Lite AFTR daemon (XDP data plane).\n"
                               "  aftrd --config FILE          run\n"
                               "  aftrd --check_config FILE    validate and exit\n"
                               "  aftrd --config FILE --show all   print state and exit\n"
                               "  aftrd --config FILE --detach [--purge]   remove XDP (and pins)");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_check_config).empty()) return CheckConfig(absl::GetFlag(FLAGS_check_config));
  std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    std::fprintf(stderr, "aftrd: --config FILE is required (see --help)\n");
    return 2;
  }
  absl::StatusOr<Config> config = aftr::config::LoadConfigFile(path);
  if (!config.ok()) {
    std::fprintf(stderr, "invalid configuration: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (!absl::GetFlag(FLAGS_show).empty()) return Show(*config, absl::GetFlag(FLAGS_show));
  if (absl::GetFlag(FLAGS_purge) && !absl::GetFlag(FLAGS_detach)) {
    std::fprintf(stderr, "aftrd: --purge only goes with --detach\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_detach)) return Detach(*config, absl::GetFlag(FLAGS_purge));
  return Run(*config, path);
}
