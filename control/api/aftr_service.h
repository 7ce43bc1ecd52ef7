// aftr.v1.AftrService: validates each request, translates it, and calls the modules that do
// the work (NAT state reader, static mappings, block release, datapath reprogramming). No
// business logic of its own beyond pagination and filtering.
#ifndef AFTR_CONTROL_API_AFTR_SERVICE_H_
#define AFTR_CONTROL_API_AFTR_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aftr/v1/aftr_service.grpc.pb.h"
#include "control/api/event_hub.h"
#include "control/attribution/attribution_index.h"
#include "control/bpf/datapath.h"
#include "control/events/event_sink.h"
#include "control/pcp/pcp_server.h"

namespace aftr::api {

class AftrServiceImpl final : public aftr::v1::AftrService::Service {
 public:
  struct Deps {
    bpf::MapFds maps;                    // what the NAT state is read from
    bpf::Datapath* datapath = nullptr;   // what changes it (mappings, blocks, pools, reload)
    // The running configuration (the datapath's: a reload replaces it there).
    std::function<const aftr::config::v1::Config&()> config;
    events::EventSink* events = nullptr;  // where controller events go (log and watchers)
    EventHub* hub = nullptr;              // watchers
    // Applies a validated configuration that differs only in live fields: reprograms the
    // data plane, whose configuration the sweeper and `config` then read.
    std::function<absl::Status(const aftr::config::v1::Config&)> apply_config;
    // The controller's own counters (events logged, lost, ...), by name.
    std::function<std::map<std::string, uint64_t>()> controller_counters;
    pcp::PcpServer* pcp = nullptr;  // null when pcp.enabled is false
    // Who held which public port when (null when the index could not be opened).
    attribution::AttributionIndex* attribution = nullptr;
    // The RADIUS identities bound to a B4 prefix at a time (unset without RADIUS).
    std::function<absl::StatusOr<std::vector<aftr::v1::SubscriberIdentity>>(const Ipv6Prefix&,
                                                                           absl::Time)>
        identities;
  };

  explicit AftrServiceImpl(Deps deps) : deps_(std::move(deps)) {}

  // Statistics as GetStatistics returns them (also for /metrics).
  absl::StatusOr<aftr::v1::Statistics> ReadStatistics() const;

  // Validates `next` (a loaded file or a request's config, defaults applied), refuses
  // changes that need a restart (FailedPrecondition naming them) and, unless validate_only,
  // applies it. ReloadConfig and SIGHUP both come here.
  struct ReloadResult {
    aftr::config::v1::Config config;  // running now (or would be)
    std::vector<std::string> changed;
    std::vector<std::string> warnings;
  };
  absl::StatusOr<ReloadResult> Reload(absl::StatusOr<aftr::config::v1::Config> next,
                                      bool validate_only);

  grpc::Status GetSubscriber(grpc::ServerContext*, const aftr::v1::GetSubscriberRequest*,
                             aftr::v1::Subscriber*) override;
  grpc::Status ListSubscribers(grpc::ServerContext*, const aftr::v1::ListSubscribersRequest*,
                               aftr::v1::ListSubscribersResponse*) override;
  grpc::Status GetSession(grpc::ServerContext*, const aftr::v1::GetSessionRequest*,
                          aftr::v1::Session*) override;
  grpc::Status ListSessions(grpc::ServerContext*, const aftr::v1::ListSessionsRequest*,
                            aftr::v1::ListSessionsResponse*) override;
  grpc::Status ListPortBlocks(grpc::ServerContext*, const aftr::v1::ListPortBlocksRequest*,
                              aftr::v1::ListPortBlocksResponse*) override;
  grpc::Status ReleasePortBlock(grpc::ServerContext*, const aftr::v1::ReleasePortBlockRequest*,
                                aftr::v1::PortBlock*) override;
  grpc::Status GetPool(grpc::ServerContext*, const aftr::v1::GetPoolRequest*,
                       aftr::v1::Pool*) override;
  grpc::Status ListPools(grpc::ServerContext*, const aftr::v1::ListPoolsRequest*,
                         aftr::v1::ListPoolsResponse*) override;
  grpc::Status CreatePool(grpc::ServerContext*, const aftr::v1::CreatePoolRequest*,
                          aftr::v1::Pool*) override;
  grpc::Status DrainPool(grpc::ServerContext*, const aftr::v1::DrainPoolRequest*,
                         aftr::v1::Pool*) override;
  grpc::Status CreateStaticMapping(grpc::ServerContext*,
                                   const aftr::v1::CreateStaticMappingRequest*,
                                   aftr::v1::StaticMapping*) override;
  grpc::Status GetStaticMapping(grpc::ServerContext*, const aftr::v1::GetStaticMappingRequest*,
                                aftr::v1::StaticMapping*) override;
  grpc::Status ListStaticMappings(grpc::ServerContext*,
                                  const aftr::v1::ListStaticMappingsRequest*,
                                  aftr::v1::ListStaticMappingsResponse*) override;
  grpc::Status ListPcpMappings(grpc::ServerContext*, const aftr::v1::ListPcpMappingsRequest*,
                               aftr::v1::ListPcpMappingsResponse*) override;
  grpc::Status DeletePcpMapping(grpc::ServerContext*, const aftr::v1::DeletePcpMappingRequest*,
                                google::protobuf::Empty*) override;
  grpc::Status LookupAttribution(grpc::ServerContext*, const aftr::v1::LookupAttributionRequest*,
                                 aftr::v1::LookupAttributionResponse*) override;
  grpc::Status MapDeterministic(grpc::ServerContext*, const aftr::v1::MapDeterministicRequest*,
                                aftr::v1::DeterministicMapping*) override;
  grpc::Status DeleteStaticMapping(grpc::ServerContext*,
                                   const aftr::v1::DeleteStaticMappingRequest*,
                                   google::protobuf::Empty*) override;
  grpc::Status GetStatistics(grpc::ServerContext*, const aftr::v1::GetStatisticsRequest*,
                             aftr::v1::Statistics*) override;
  grpc::Status WatchEvents(grpc::ServerContext*, const aftr::v1::WatchEventsRequest*,
                           grpc::ServerWriter<aftr::v1::Event>*) override;
  grpc::Status GetConfig(grpc::ServerContext*, const aftr::v1::GetConfigRequest*,
                         aftr::config::v1::Config*) override;
  grpc::Status ReloadConfig(grpc::ServerContext*, const aftr::v1::ReloadConfigRequest*,
                            aftr::v1::ReloadConfigResponse*) override;

 private:
  // Sorted session keys of one ListSessions walk, so later pages continue in the same order
  // without re-reading the whole table.
  struct Snapshot {
    std::string binding;
    std::vector<std::string> sort_keys;
    absl::Time last_used;
  };
  std::shared_ptr<const Snapshot> FindSnapshot(uint64_t id, const std::string& binding);
  uint64_t StoreSnapshot(std::shared_ptr<Snapshot> snapshot);

  // The fields `next` changes, or FailedPrecondition naming those only a restart can.
  absl::StatusOr<std::vector<std::string>> ChangesAllowedLive(const aftr::config::v1::Config& next);
  // Applies `next` (validated, allowed live) and logs CONFIG_RELOADED with `changed`.
  absl::Status ApplyConfigLocked(const aftr::config::v1::Config& next,
                                 const std::vector<std::string>& changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(config_mu_);
  absl::StatusOr<aftr::v1::Pool> ReadPoolResource(const Ipv4Prefix& prefix) const;

  const Deps deps_;
  // When the running deterministic ranges took effect (restart-only: this process's start).
  const absl::Time started_ = absl::Now();
  absl::Mutex config_mu_;  // serializes reloads and pool changes

  absl::Mutex snapshots_mu_;
  std::map<uint64_t, std::shared_ptr<const Snapshot>> snapshots_ ABSL_GUARDED_BY(snapshots_mu_);
  uint64_t next_snapshot_id_ ABSL_GUARDED_BY(snapshots_mu_) = 1;
};

// absl::Status → grpc::Status with the same canonical code and message.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_AFTR_SERVICE_H_
