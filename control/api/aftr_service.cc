#include "control/api/aftr_service.h"

#include <netinet/in.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/api/filter.h"
#include "control/api/pagination.h"
#include "control/api/resource_names.h"
#include "control/api/translate.h"
#include "control/bpf/nat_state.h"
#include "control/common/clock.h"
#include "control/config/config.h"
#include "control/config/live_config.h"
#include "control/nat/block_release.h"
#include "control/nat/deterministic.h"
#include "control/nat/static_mappings.h"

namespace aftr::api {
namespace {

using aftr::config::v1::Config;

constexpr size_t kMaxSnapshots = 8;
constexpr absl::Duration kSnapshotIdle = absl::Minutes(10);
constexpr size_t kWatchQueueEvents = 1 << 16;
constexpr size_t kWatchBatch = 512;

bpf::PortGeometry Geometry(const Config& c) {
  return {c.port_blocks().port_min(), c.port_blocks().block_size()};
}

// Sort key of a port block / static mapping: address then port, big-endian bytes.
std::string AddrPortKey(uint32_t addr, uint16_t port, uint8_t proto = 0) {
  std::string k(7, '\0');
  for (int i = 0; i < 4; ++i) k[i] = static_cast<char>(addr >> (24 - 8 * i));
  k[4] = static_cast<char>(port >> 8);
  k[5] = static_cast<char>(port);
  k[6] = static_cast<char>(proto);
  return k;
}

std::string B4Key(const Ipv6Address& b4) {
  return std::string(reinterpret_cast<const char*>(b4.bytes.data()), 16);
}

// The page of `items` (sorted by key) that follows `after`; sets the next token.
template <typename T, typename KeyFn>
std::vector<const T*> Page(const std::vector<T>& sorted, KeyFn key, const std::string& after,
                           int page_size, const std::string& binding, std::string* next_token) {
  auto it = std::upper_bound(sorted.begin(), sorted.end(), after,
                             [&](const std::string& a, const T& item) { return a < key(item); });
  std::vector<const T*> page;
  for (; it != sorted.end() && static_cast<int>(page.size()) < page_size; ++it) page.push_back(&*it);
  if (it != sorted.end() && !page.empty()) {
    *next_token = EncodePageToken({0, key(*page.back())}, binding);
  }
  return page;
}

// Decodes the token if there is one; `after` stays empty for the first page.
absl::Status StartAfter(const std::string& token, const std::string& binding, PageToken* out) {
  if (token.empty()) return absl::OkStatus();
  absl::StatusOr<PageToken> t = DecodePageToken(token, binding);
  if (!t.ok()) return t.status();
  *out = *t;
  return absl::OkStatus();
}

// Subscribers selected by a b4_address / public_address filter.
absl::StatusOr<std::vector<bpf::SubscriberRecord>> SubscribersMatching(const bpf::NatState& state,
                                                                       const Filter& filter) {
  absl::StatusOr<std::vector<bpf::SubscriberRecord>> subs = state.Subscribers();
  if (!subs.ok()) return subs.status();
  std::erase_if(*subs, [&](const bpf::SubscriberRecord& r) {
    return !filter.MatchB4(r.b4.bytes.data()) ||
           (filter.public_addr && !filter.public_addr->Contains(r.public_addr));
  });
  return subs;
}

bool InB4Prefixes(const Config& config, const Ipv6Address& b4) {
  for (const std::string& text : config.b4_prefixes()) {
    absl::StatusOr<Ipv6Prefix> p = ParseIpv6Prefix(text);
    if (p.ok() && PrefixContains(*p, b4.bytes.data())) return true;
  }
  return false;
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// ---- Subscribers ----

grpc::Status AftrServiceImpl::GetSubscriber(grpc::ServerContext*,
                                            const aftr::v1::GetSubscriberRequest* req,
                                            aftr::v1::Subscriber* resp) {
  absl::StatusOr<Ipv6Address> b4 = ParseSubscriberName(req->name(), "name");
  if (!b4.ok()) return ToGrpc(b4.status());
  const Config& config = deps_.config();
  bpf::NatState state(deps_.maps, Geometry(config));
  absl::StatusOr<std::optional<bpf::SubscriberRecord>> sub = state.Subscriber(*b4);
  if (!sub.ok()) return ToGrpc(sub.status());
  if (!sub->has_value()) {
    return ToGrpc(absl::NotFoundError(absl::StrCat(req->name(), " has no port block or session")));
  }
  absl::StatusOr<std::vector<nat::StaticMapping>> mappings = nat::ListStaticMappings(*deps_.datapath);
  if (!mappings.ok()) return ToGrpc(mappings.status());
  uint32_t count = std::count_if(mappings->begin(), mappings->end(),
                                 [&](const nat::StaticMapping& m) { return m.key.b4 == *b4; });
  *resp = SubscriberToProto(**sub, config, count);
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::ListSubscribers(grpc::ServerContext*,
                                              const aftr::v1::ListSubscribersRequest* req,
                                              aftr::v1::ListSubscribersResponse* resp) {
  absl::StatusOr<int> page_size = EffectivePageSize(req->page_size());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  absl::StatusOr<Filter> filter = ParseFilter(req->filter(), kFilterB4 | kFilterPublicAddr);
  if (!filter.ok()) return ToGrpc(filter.status());
  const std::string binding = absl::StrCat("subscribers|", filter->canonical);
  PageToken after;
  if (absl::Status s = StartAfter(req->page_token(), binding, &after); !s.ok()) return ToGrpc(s);

  const Config& config = deps_.config();
  bpf::NatState state(deps_.maps, Geometry(config));
  absl::StatusOr<std::vector<bpf::SubscriberRecord>> kept = SubscribersMatching(state, *filter);
  if (!kept.ok()) return ToGrpc(kept.status());
  auto key = [](const bpf::SubscriberRecord& r) { return B4Key(r.b4); };
  std::sort(kept->begin(), kept->end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  absl::StatusOr<std::vector<nat::StaticMapping>> mappings = nat::ListStaticMappings(*deps_.datapath);
  if (!mappings.ok()) return ToGrpc(mappings.status());
  std::map<std::string, uint32_t> mapping_counts;
  for (const nat::StaticMapping& m : *mappings) mapping_counts[B4Key(m.key.b4)]++;
  for (const bpf::SubscriberRecord* r :
       Page(*kept, key, after.last_key, *page_size, binding, resp->mutable_next_page_token())) {
    *resp->add_subscribers() = SubscriberToProto(*r, config, mapping_counts[key(*r)]);
  }
  return grpc::Status::OK;
}

// ---- Sessions ----

grpc::Status AftrServiceImpl::GetSession(grpc::ServerContext*, const aftr::v1::GetSessionRequest* req,
                                         aftr::v1::Session* resp) {
  absl::StatusOr<SessionId> id = ParseSessionName(req->name(), "name");
  if (!id.ok()) return ToGrpc(id.status());
  const Config& config = deps_.config();
  bpf::NatState state(deps_.maps, Geometry(config));
  absl::StatusOr<std::optional<bpf::SessionRecord>> s = state.Session(*id);
  if (!s.ok()) return ToGrpc(s.status());
  if (!s->has_value()) return ToGrpc(absl::NotFoundError(absl::StrCat(req->name(), " does not exist")));
  *resp = SessionToProto(**s, config);
  return grpc::Status::OK;
}

std::shared_ptr<const AftrServiceImpl::Snapshot> AftrServiceImpl::FindSnapshot(
    uint64_t id, const std::string& binding) {
  absl::MutexLock lock(&snapshots_mu_);
  auto it = snapshots_.find(id);
  if (it == snapshots_.end() || it->second->binding != binding) return nullptr;
  const_cast<Snapshot*>(it->second.get())->last_used = absl::Now();
  return it->second;
}

uint64_t AftrServiceImpl::StoreSnapshot(std::shared_ptr<Snapshot> snapshot) {
  absl::MutexLock lock(&snapshots_mu_);
  const absl::Time now = absl::Now();
  snapshot->last_used = now;
  // Forget idle walks, then the least recently used beyond the cap: a client holding an
  // old token still gets a correct next page, from a fresh read (see ListSessions).
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    it = now - it->second->last_used > kSnapshotIdle ? snapshots_.erase(it) : std::next(it);
  }
  while (snapshots_.size() >= kMaxSnapshots) {
    auto oldest = std::min_element(snapshots_.begin(), snapshots_.end(), [](const auto& a, const auto& b) {
      return a.second->last_used < b.second->last_used;
    });
    snapshots_.erase(oldest);
  }
  uint64_t id = next_snapshot_id_++;
  snapshots_[id] = std::move(snapshot);
  return id;
}

grpc::Status AftrServiceImpl::ListSessions(grpc::ServerContext*,
                                           const aftr::v1::ListSessionsRequest* req,
                                           aftr::v1::ListSessionsResponse* resp) {
  absl::StatusOr<int> page_size = EffectivePageSize(req->page_size());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  absl::StatusOr<Filter> filter =
      ParseFilter(req->filter(), kFilterB4 | kFilterInnerAddr | kFilterInnerPort | kFilterPublicAddr |
                                     kFilterPublicPort | kFilterProtocol | kFilterKind);
  if (!filter.ok()) return ToGrpc(filter.status());
  const std::string binding = absl::StrCat("sessions|", filter->canonical);
  PageToken after;
  if (absl::Status s = StartAfter(req->page_token(), binding, &after); !s.ok()) return ToGrpc(s);
  if (!after.last_key.empty() && !SessionKey::FromSortKey(after.last_key)) {
    return ToGrpc(absl::InvalidArgumentError("page_token: not a token this server issued"));
  }

  const Config& config = deps_.config();
  bpf::NatState state(deps_.maps, Geometry(config));
  auto matches = [&](const bpf::SessionRecord& r) {
    return filter->MatchB4(r.key.b4.bytes.data()) &&
           filter->MatchInner(r.key.inner_addr.host_order, r.key.inner_port) &&
           filter->MatchPublic(r.public_addr.host_order, r.public_port) &&
           filter->MatchProto(r.key.proto) && filter->MatchKind(static_cast<int>(r.kind));
  };

  // A walk reads the table once, keeps the sorted keys of what matched, and serves every
  // page from them, reading each entry afresh: entries deleted meanwhile are skipped, and
  // since a page starts strictly after the last key returned nothing repeats. If the
  // snapshot was evicted, a fresh read continues after the same key.
  std::shared_ptr<const Snapshot> snapshot;
  uint64_t snapshot_id = after.snapshot_id;
  if (snapshot_id != 0) snapshot = FindSnapshot(snapshot_id, binding);
  if (!snapshot) {
    absl::StatusOr<std::vector<bpf::SessionRecord>> all = state.Sessions(matches);
    if (!all.ok()) return ToGrpc(all.status());
    auto fresh = std::make_shared<Snapshot>();
    fresh->binding = binding;
    fresh->sort_keys.reserve(all->size());
    for (const bpf::SessionRecord& r : *all) fresh->sort_keys.push_back(r.key.SortKey());
    all->clear();
    all->shrink_to_fit();
    std::sort(fresh->sort_keys.begin(), fresh->sort_keys.end());
    snapshot = fresh;
    snapshot_id = StoreSnapshot(std::move(fresh));
  }
  const std::vector<std::string>& keys = snapshot->sort_keys;
  auto it = std::upper_bound(keys.begin(), keys.end(), after.last_key);
  std::string last;
  for (; it != keys.end() && resp->sessions_size() < *page_size; ++it) {
    std::optional<SessionKey> key = SessionKey::FromSortKey(*it);
    absl::StatusOr<std::optional<bpf::SessionRecord>> r = state.Session(*key);
    if (!r.ok()) return ToGrpc(r.status());
    last = *it;
    if (!r->has_value() || !matches(**r)) continue;  // gone (or replaced) since the read
    *resp->add_sessions() = SessionToProto(**r, config);
  }
  if (it != keys.end()) resp->set_next_page_token(EncodePageToken({snapshot_id, last}, binding));
  return grpc::Status::OK;
}

// ---- Port blocks ----

grpc::Status AftrServiceImpl::ListPortBlocks(grpc::ServerContext*,
                                             const aftr::v1::ListPortBlocksRequest* req,
                                             aftr::v1::ListPortBlocksResponse* resp) {
  absl::StatusOr<int> page_size = EffectivePageSize(req->page_size());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  absl::StatusOr<Filter> filter = ParseFilter(req->filter(), kFilterB4 | kFilterPublicAddr);
  if (!filter.ok()) return ToGrpc(filter.status());
  const std::string binding = absl::StrCat("portBlocks|", filter->canonical);
  PageToken after;
  if (absl::Status s = StartAfter(req->page_token(), binding, &after); !s.ok()) return ToGrpc(s);

  const Config& config = deps_.config();
  bpf::NatState state(deps_.maps, Geometry(config));
  absl::StatusOr<std::vector<bpf::SubscriberRecord>> subs = SubscribersMatching(state, *filter);
  if (!subs.ok()) return ToGrpc(subs.status());
  std::vector<aftr::v1::PortBlock> blocks;
  for (const bpf::SubscriberRecord& r : *subs) {
    for (uint16_t first : r.block_first_ports) {
      blocks.push_back(PortBlockToProto(r, first, config.port_blocks().block_size()));
    }
  }
  auto key = [](const aftr::v1::PortBlock& b) {
    absl::StatusOr<Ipv4Address> a = ParseIpv4(b.public_address());
    return AddrPortKey(a.ok() ? a->host_order : 0, static_cast<uint16_t>(b.first_port()));
  };
  std::sort(blocks.begin(), blocks.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  for (const aftr::v1::PortBlock* b :
       Page(blocks, key, after.last_key, *page_size, binding, resp->mutable_next_page_token())) {
    *resp->add_port_blocks() = *b;
  }
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::ReleasePortBlock(grpc::ServerContext*,
                                               const aftr::v1::ReleasePortBlockRequest* req,
                                               aftr::v1::PortBlock* resp) {
  absl::StatusOr<PortBlockId> id = ParsePortBlockName(req->name(), "name");
  if (!id.ok()) return ToGrpc(id.status());
  const Config& config = deps_.config();
  absl::StatusOr<nat::ReleasedBlock> released =
      nat::ReleasePortBlock(*deps_.datapath, deps_.events, id->public_addr, id->first_port);
  if (!released.ok()) return ToGrpc(released.status());
  bpf::SubscriberRecord owner;
  owner.b4 = released->b4;
  owner.public_addr = id->public_addr;
  *resp = PortBlockToProto(owner, id->first_port, config.port_blocks().block_size());
  return grpc::Status::OK;
}

// ---- Pools ----

absl::StatusOr<aftr::v1::Pool> AftrServiceImpl::ReadPoolResource(const Ipv4Prefix& prefix) const {
  absl::StatusOr<std::vector<bpf::PoolAddressState>> pool = deps_.datapath->ReadPool();
  if (!pool.ok()) return pool.status();
  aftr::v1::Pool p;
  p.set_name(PoolName(prefix));
  p.set_prefix(prefix.ToString());
  bool found = false, draining = true;
  for (const bpf::PoolAddressState& a : *pool) {
    if (!(a.prefix == prefix)) continue;
    found = true;
    draining = draining && a.draining;
    p.set_address_count(p.address_count() + 1);
    p.set_blocks_total(p.blocks_total() + a.blocks_total);
    p.set_blocks_used(p.blocks_used() + a.blocks_used);
  }
  if (!found) return absl::NotFoundError(absl::StrCat(PoolName(prefix), " is not a pool prefix"));
  p.set_state(draining ? aftr::v1::Pool::DRAINING : aftr::v1::Pool::ACTIVE);
  return p;
}

grpc::Status AftrServiceImpl::GetPool(grpc::ServerContext*, const aftr::v1::GetPoolRequest* req,
                                      aftr::v1::Pool* resp) {
  absl::StatusOr<Ipv4Prefix> prefix = ParsePoolName(req->name(), "name");
  if (!prefix.ok()) return ToGrpc(prefix.status());
  absl::StatusOr<aftr::v1::Pool> pool = ReadPoolResource(*prefix);
  if (!pool.ok()) return ToGrpc(pool.status());
  *resp = *pool;
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::ListPools(grpc::ServerContext*, const aftr::v1::ListPoolsRequest* req,
                                        aftr::v1::ListPoolsResponse* resp) {
  absl::StatusOr<int> page_size = EffectivePageSize(req->page_size());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  const std::string binding = "pools|";
  PageToken after;
  if (absl::Status s = StartAfter(req->page_token(), binding, &after); !s.ok()) return ToGrpc(s);
  absl::StatusOr<std::vector<bpf::PoolAddressState>> pool = deps_.datapath->ReadPool();
  if (!pool.ok()) return ToGrpc(pool.status());
  std::vector<Ipv4Prefix> prefixes;
  for (const bpf::PoolAddressState& a : *pool) {
    if (std::find(prefixes.begin(), prefixes.end(), a.prefix) == prefixes.end()) {
      prefixes.push_back(a.prefix);
    }
  }
  auto key = [](const Ipv4Prefix& p) { return AddrPortKey(p.addr.host_order, p.length); };
  std::sort(prefixes.begin(), prefixes.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  for (const Ipv4Prefix* p :
       Page(prefixes, key, after.last_key, *page_size, binding, resp->mutable_next_page_token())) {
    absl::StatusOr<aftr::v1::Pool> r = ReadPoolResource(*p);
    if (r.ok()) *resp->add_pools() = *r;
  }
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::CreatePool(grpc::ServerContext*, const aftr::v1::CreatePoolRequest* req,
                                         aftr::v1::Pool* resp) {
  absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(req->prefix());
  if (!prefix.ok()) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("prefix: ", prefix.status().message())));
  }
  {
    absl::MutexLock lock(&config_mu_);
    Config next = deps_.config();
    for (const std::string& text : next.pool_prefixes()) {
      absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(text);
      if (p.ok() && *p == *prefix) {
        return ToGrpc(absl::AlreadyExistsError(absl::StrCat(PoolName(*prefix), " is already an active pool")));
      }
    }
    next.add_pool_prefixes(prefix->ToString());
    if (absl::Status s = config::ValidateConfig(next); !s.ok()) {
      return ToGrpc(absl::InvalidArgumentError(absl::StrCat("prefix: ", s.message())));
    }
    absl::StatusOr<std::vector<std::string>> changed = ChangesAllowedLive(next);
    if (!changed.ok()) return ToGrpc(changed.status());
    if (absl::Status s = ApplyConfigLocked(next, *changed); !s.ok()) return ToGrpc(s);
  }
  absl::StatusOr<aftr::v1::Pool> pool = ReadPoolResource(*prefix);
  if (!pool.ok()) return ToGrpc(pool.status());
  *resp = *pool;
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::DrainPool(grpc::ServerContext*, const aftr::v1::DrainPoolRequest* req,
                                        aftr::v1::Pool* resp) {
  absl::StatusOr<Ipv4Prefix> prefix = ParsePoolName(req->name(), "name");
  if (!prefix.ok()) return ToGrpc(prefix.status());
  {
    absl::MutexLock lock(&config_mu_);
    Config next = deps_.config();
    auto* list = next.mutable_pool_prefixes();
    auto it = std::find_if(list->begin(), list->end(), [&](const std::string& text) {
      absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(text);
      return p.ok() && *p == *prefix;
    });
    if (it == list->end()) {
      // Already draining: nothing to do (idempotent); unknown: NotFound from the read below.
      absl::StatusOr<aftr::v1::Pool> pool = ReadPoolResource(*prefix);
      if (!pool.ok()) return ToGrpc(pool.status());
      *resp = *pool;
      return grpc::Status::OK;
    }
    if (list->size() == 1) {
      return ToGrpc(absl::FailedPreconditionError(
          absl::StrCat(req->name(), " is the only active pool; add another before draining it")));
    }
    absl::StatusOr<aftr::v1::Pool> before = ReadPoolResource(*prefix);
    if (!before.ok()) return ToGrpc(before.status());
    list->erase(it);
    absl::StatusOr<std::vector<std::string>> changed = ChangesAllowedLive(next);
    if (!changed.ok()) return ToGrpc(changed.status());
    if (absl::Status s = ApplyConfigLocked(next, *changed); !s.ok()) return ToGrpc(s);
    absl::StatusOr<aftr::v1::Pool> pool = ReadPoolResource(*prefix);
    if (!pool.ok() && pool.status().code() == absl::StatusCode::kNotFound) {
      // No block was left on it: drained at once, and the data plane forgot the prefix.
      before->set_state(aftr::v1::Pool::DRAINING);
      before->set_blocks_used(0);
      pool = *before;
    }
    if (!pool.ok()) return ToGrpc(pool.status());
    *resp = *pool;
    return grpc::Status::OK;
  }
}

// ---- Static mappings ----

grpc::Status AftrServiceImpl::CreateStaticMapping(grpc::ServerContext*,
                                                  const aftr::v1::CreateStaticMappingRequest* req,
                                                  aftr::v1::StaticMapping* resp) {
  if (!req->has_static_mapping()) {
    return ToGrpc(absl::InvalidArgumentError("static_mapping: required"));
  }
  const aftr::v1::StaticMapping& m = req->static_mapping();
  nat::MappingKey key;
  absl::StatusOr<Ipv6Address> b4 = ParseIpv6(m.b4_address());
  if (!b4.ok()) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("static_mapping.b4_address: ", b4.status().message())));
  }
  const Config& config = deps_.config();
  if (!InB4Prefixes(config, *b4)) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat(
        "static_mapping.b4_address: ", b4->ToString(), " is not in any configured b4_prefixes")));
  }
  key.b4 = *b4;
  if (m.protocol() != aftr::v1::TCP && m.protocol() != aftr::v1::UDP) {
    return ToGrpc(absl::InvalidArgumentError("static_mapping.protocol: must be TCP or UDP"));
  }
  key.proto = static_cast<uint8_t>(m.protocol());
  absl::StatusOr<Ipv4Address> inner = ParseIpv4(m.inner_address());
  if (!inner.ok()) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("static_mapping.inner_address: ", inner.status().message())));
  }
  key.inner_addr = *inner;
  absl::StatusOr<uint16_t> inner_port = CheckPort(m.inner_port(), "static_mapping.inner_port", false);
  if (!inner_port.ok()) return ToGrpc(inner_port.status());
  key.inner_port = *inner_port;
  absl::StatusOr<uint16_t> public_port = CheckPort(m.public_port(), "static_mapping.public_port", true);
  if (!public_port.ok()) return ToGrpc(public_port.status());
  if (!m.public_address().empty()) {
    return ToGrpc(absl::InvalidArgumentError(
        "static_mapping.public_address: output only (paired pooling gives the subscriber's address)"));
  }
  std::optional<uint16_t> wanted;
  if (*public_port != 0) wanted = *public_port;
  absl::StatusOr<nat::StaticMapping> made =
      nat::CreateStaticMapping(*deps_.datapath, deps_.events, key, wanted);
  if (!made.ok()) return ToGrpc(made.status());
  (void)deps_.events->Publish(events::SessionEvent(events::EventType::kMappingCreate, made->key, made->public_addr, made->public_port));
  *resp = StaticMappingToProto(*made);
  return grpc::Status::OK;
}

namespace {
absl::StatusOr<nat::StaticMapping> FindMapping(const bpf::Datapath& dp, const StaticMappingId& id,
                                               const std::string& name) {
  absl::StatusOr<std::vector<nat::StaticMapping>> all = nat::ListStaticMappings(dp);
  if (!all.ok()) return all.status();
  for (const nat::StaticMapping& m : *all) {
    if (m.key.proto == id.proto && m.public_addr == id.public_addr && m.public_port == id.public_port) {
      return m;
    }
  }
  return absl::NotFoundError(absl::StrCat(name, " does not exist"));
}
}  // namespace

grpc::Status AftrServiceImpl::GetStaticMapping(grpc::ServerContext*,
                                               const aftr::v1::GetStaticMappingRequest* req,
                                               aftr::v1::StaticMapping* resp) {
  absl::StatusOr<StaticMappingId> id = ParseStaticMappingName(req->name(), "name");
  if (!id.ok()) return ToGrpc(id.status());
  absl::StatusOr<nat::StaticMapping> m = FindMapping(*deps_.datapath, *id, req->name());
  if (!m.ok()) return ToGrpc(m.status());
  *resp = StaticMappingToProto(*m);
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::ListStaticMappings(grpc::ServerContext*,
                                                 const aftr::v1::ListStaticMappingsRequest* req,
                                                 aftr::v1::ListStaticMappingsResponse* resp) {
  absl::StatusOr<int> page_size = EffectivePageSize(req->page_size());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  absl::StatusOr<Filter> filter =
      ParseFilter(req->filter(), kFilterB4 | kFilterPublicAddr | kFilterProtocol);
  if (!filter.ok()) return ToGrpc(filter.status());
  const std::string binding = absl::StrCat("staticMappings|", filter->canonical);
  PageToken after;
  if (absl::Status s = StartAfter(req->page_token(), binding, &after); !s.ok()) return ToGrpc(s);
  absl::StatusOr<std::vector<nat::StaticMapping>> all = nat::ListStaticMappings(*deps_.datapath);
  if (!all.ok()) return ToGrpc(all.status());
  std::vector<nat::StaticMapping> kept;
  for (const nat::StaticMapping& m : *all) {
    if (filter->MatchB4(m.key.b4.bytes.data()) && filter->MatchProto(m.key.proto) &&
        (!filter->public_addr || filter->public_addr->Contains(m.public_addr))) {
      kept.push_back(m);
    }
  }
  auto key = [](const nat::StaticMapping& m) {
    return AddrPortKey(m.public_addr.host_order, m.public_port, m.key.proto);
  };
  std::sort(kept.begin(), kept.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  for (const nat::StaticMapping* m :
       Page(kept, key, after.last_key, *page_size, binding, resp->mutable_next_page_token())) {
    *resp->add_static_mappings() = StaticMappingToProto(*m);
  }
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::DeleteStaticMapping(grpc::ServerContext*,
                                                  const aftr::v1::DeleteStaticMappingRequest* req,
                                                  google::protobuf::Empty*) {
  absl::StatusOr<StaticMappingId> id = ParseStaticMappingName(req->name(), "name");
  if (!id.ok()) return ToGrpc(id.status());
  absl::StatusOr<nat::StaticMapping> m = FindMapping(*deps_.datapath, *id, req->name());
  if (!m.ok()) return ToGrpc(m.status());
  if (absl::Status s = nat::DeleteStaticMapping(*deps_.datapath, deps_.events, m->key); !s.ok()) {
    return ToGrpc(s);
  }
  (void)deps_.events->Publish(events::SessionEvent(events::EventType::kMappingDelete, m->key, m->public_addr, m->public_port));
  return grpc::Status::OK;
}

// ---- PCP mappings ----

grpc::Status AftrServiceImpl::ListPcpMappings(grpc::ServerContext*,
                                              const aftr::v1::ListPcpMappingsRequest* req,
                                              aftr::v1::ListPcpMappingsResponse* resp) {
  absl::StatusOr<int> page_size = EffectivePageSize(req->page_size());
  if (!page_size.ok()) return ToGrpc(page_size.status());
  absl::StatusOr<Filter> filter =
      ParseFilter(req->filter(), kFilterB4 | kFilterPublicAddr | kFilterProtocol);
  if (!filter.ok()) return ToGrpc(filter.status());
  const std::string binding = absl::StrCat("pcpMappings|", filter->canonical);
  PageToken after;
  if (absl::Status s = StartAfter(req->page_token(), binding, &after); !s.ok()) return ToGrpc(s);
  if (deps_.pcp == nullptr) return grpc::Status::OK;  // no PCP server: no mappings
  std::vector<pcp::PcpMappingView> kept;
  for (pcp::PcpMappingView& m : deps_.pcp->List()) {
    if (filter->MatchB4(m.key.b4.bytes.data()) && filter->MatchProto(m.key.proto) &&
        (!filter->public_addr || filter->public_addr->Contains(m.public_addr))) {
      kept.push_back(std::move(m));
    }
  }
  // Ordered by public endpoint, then remote peer (PEERs of one port).
  auto key = [](const pcp::PcpMappingView& m) {
    return AddrPortKey(m.public_addr.host_order, m.public_port, m.key.proto) +
           AddrPortKey(m.remote_addr.host_order, m.remote_port, static_cast<uint8_t>(m.opcode));
  };
  std::sort(kept.begin(), kept.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  for (const pcp::PcpMappingView* m :
       Page(kept, key, after.last_key, *page_size, binding, resp->mutable_next_page_token())) {
    *resp->add_pcp_mappings() = PcpMappingToProto(*m);
  }
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::LookupAttribution(grpc::ServerContext*,
                                                const aftr::v1::LookupAttributionRequest* req,
                                                aftr::v1::LookupAttributionResponse* resp) {
  absl::StatusOr<Ipv4Address> addr = ParseIpv4(req->public_address());
  if (!addr.ok()) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("public_address: ", addr.status().message())));
  }
  if (req->port() < 1 || req->port() > 65535) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("port: ", req->port(), " is not in 1..65535")));
  }
  uint8_t proto = 0;
  switch (req->protocol()) {
    case aftr::v1::PROTOCOL_UNSPECIFIED: break;
    case aftr::v1::TCP: proto = IPPROTO_TCP; break;
    case aftr::v1::UDP: proto = IPPROTO_UDP; break;
    case aftr::v1::ICMP: proto = IPPROTO_ICMP; break;
    default:
      return ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("protocol: ", static_cast<int>(req->protocol()), " is not a known protocol")));
  }
  const google::protobuf::Timestamp& ts = req->time();
  if (ts.seconds() < 0 || ts.nanos() < 0 || ts.nanos() > 999999999 || ts.seconds() > 253402300799) {
    return ToGrpc(absl::InvalidArgumentError("time: not a valid timestamp"));
  }
  const absl::Time at = req->has_time() ? absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos())
                                        : absl::Now();
  // A deterministic address answers from the configuration: no block is ever logged for it
  // (its static and PCP mappings are, and the index adds them below).
  std::optional<nat::DeterministicMapping> det;
  if (deps_.config) {
    absl::StatusOr<nat::DeterministicMap> map = nat::DeterministicMap::Create(deps_.config());
    if (map.ok()) det = map->ForPublic(*addr, static_cast<uint16_t>(req->port()));
  }
  if (det) {
    aftr::v1::Attribution* a = resp->add_attributions();
    a->set_kind(aftr::v1::Attribution::DETERMINISTIC);
    a->set_b4_prefix(det->subscriber_prefix.ToString());
    a->set_public_address(det->public_addr.ToString());
    a->set_port_range_start(det->first_port);
    a->set_port_range_end(det->last_port);
    ToTimestamp(started_, a->mutable_start_time());
    if (deps_.identities) {
      absl::StatusOr<std::vector<aftr::v1::SubscriberIdentity>> ids =
          deps_.identities(det->subscriber_prefix, at);
      if (!ids.ok()) return ToGrpc(ids.status());
      for (aftr::v1::SubscriberIdentity& id : *ids) *a->add_identities() = std::move(id);
    }
    if (deps_.attribution == nullptr) return grpc::Status::OK;
  }
  if (deps_.attribution == nullptr) {
    return ToGrpc(absl::UnavailableError(
        "the attribution index is not available (see aftrd's log for why it could not be opened)"));
  }
  // Up to the last line logged, not just to the last periodic catch-up.
  if (absl::Status s = deps_.attribution->CatchUp(); !s.ok()) return ToGrpc(s);
  absl::StatusOr<std::vector<attribution::Holding>> holdings =
      deps_.attribution->Lookup(*addr, static_cast<uint16_t>(req->port()), at, proto);
  if (!holdings.ok()) return ToGrpc(holdings.status());
  for (const attribution::Holding& h : *holdings) {
    aftr::v1::Attribution* a = resp->add_attributions();
    switch (h.kind) {
      case attribution::HoldingKind::kPortBlock: a->set_kind(aftr::v1::Attribution::PORT_BLOCK); break;
      case attribution::HoldingKind::kStaticMapping: a->set_kind(aftr::v1::Attribution::STATIC_MAPPING); break;
      case attribution::HoldingKind::kPcpMapping: a->set_kind(aftr::v1::Attribution::PCP_MAPPING); break;
    }
    a->set_b4_prefix(h.b4.ToString());
    a->set_public_address(h.public_addr.ToString());
    a->set_port_range_start(h.first_port);
    a->set_port_range_end(h.last_port);
    if (h.kind != attribution::HoldingKind::kPortBlock) {
      a->set_protocol(ProtocolToProto(h.proto));
      a->set_inner_address(h.inner_addr.ToString());
      a->set_inner_port(h.inner_port);
    }
    ToTimestamp(h.start, a->mutable_start_time());
    if (h.end != absl::InfiniteFuture()) ToTimestamp(h.end, a->mutable_end_time());
    if (deps_.identities) {
      absl::StatusOr<std::vector<aftr::v1::SubscriberIdentity>> ids = deps_.identities(h.b4, at);
      if (!ids.ok()) return ToGrpc(ids.status());
      for (aftr::v1::SubscriberIdentity& id : *ids) *a->add_identities() = std::move(id);
    }
  }
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::MapDeterministic(grpc::ServerContext*,
                                               const aftr::v1::MapDeterministicRequest* req,
                                               aftr::v1::DeterministicMapping* resp) {
  if (!deps_.config) return ToGrpc(absl::UnavailableError("no configuration"));
  absl::StatusOr<nat::DeterministicMap> map = nat::DeterministicMap::Create(deps_.config());
  if (!map.ok()) return ToGrpc(map.status());
  if (map->empty()) {
    return ToGrpc(absl::FailedPreconditionError("no deterministic ranges are configured"));
  }
  std::optional<nat::DeterministicMapping> m;
  std::string what;
  switch (req->query_case()) {
    case aftr::v1::MapDeterministicRequest::kB4Address: {
      absl::StatusOr<Ipv6Address> b4 = ParseIpv6(req->b4_address());
      if (!b4.ok()) {
        return ToGrpc(absl::InvalidArgumentError(absl::StrCat("b4_address: ", b4.status().message())));
      }
      m = map->ForB4(*b4);
      what = absl::StrCat("B4 ", b4->ToString(), " is in no deterministic range");
      break;
    }
    case aftr::v1::MapDeterministicRequest::kPublicPort: {
      absl::StatusOr<Ipv4Address> addr = ParseIpv4(req->public_port().address());
      if (!addr.ok()) {
        return ToGrpc(absl::InvalidArgumentError(
            absl::StrCat("public_port.address: ", addr.status().message())));
      }
      const uint32_t port = req->public_port().port();
      if (port < 1 || port > 65535) {
        return ToGrpc(absl::InvalidArgumentError(
            absl::StrCat("public_port.port: ", port, " is not in 1..65535")));
      }
      m = map->ForPublic(*addr, static_cast<uint16_t>(port));
      what = map->RangeOfPublic(*addr) < 0
                 ? absl::StrCat(addr->ToString(), " is in no deterministic range's pool_prefix")
                 : absl::StrCat("no deterministic subscriber holds ", addr->ToString(), " port ", port);
      break;
    }
    default:
      return ToGrpc(absl::InvalidArgumentError("set b4_address or public_port"));
  }
  if (!m) return ToGrpc(absl::NotFoundError(what));
  resp->set_subscriber_prefix(m->subscriber_prefix.ToString());
  resp->set_public_address(m->public_addr.ToString());
  resp->set_port_range_start(m->first_port);
  resp->set_port_range_end(m->last_port);
  resp->set_range_b4_prefix(map->ranges()[m->range].b4_prefix.ToString());
  resp->set_subscriber_index(m->subscriber);
  return grpc::Status::OK;
}

grpc::Status AftrServiceImpl::DeletePcpMapping(grpc::ServerContext*,
                                               const aftr::v1::DeletePcpMappingRequest* req,
                                               google::protobuf::Empty*) {
  absl::StatusOr<PcpMappingId> id = ParsePcpMappingName(req->name(), "name");
  if (!id.ok()) return ToGrpc(id.status());
  if (deps_.pcp == nullptr) {
    return ToGrpc(absl::FailedPreconditionError("the PCP server is not enabled (pcp.enabled)"));
  }
  for (const pcp::PcpMappingView& m : deps_.pcp->List()) {
    const bool peer = m.opcode == pcp::Opcode::kPeer;
    if (m.key.proto == id->proto && m.public_addr == id->public_addr &&
        m.public_port == id->public_port && peer == id->peer &&
        (!peer || (m.remote_addr == id->remote_addr && m.remote_port == id->remote_port))) {
      return ToGrpc(deps_.pcp->Delete(m.key, m.opcode, m.remote_addr, m.remote_port));
    }
  }
  return ToGrpc(absl::NotFoundError(absl::StrCat(req->name(), " does not exist")));
}

// ---- Statistics ----

absl::StatusOr<aftr::v1::Statistics> AftrServiceImpl::ReadStatistics() const {
  aftr::v1::Statistics st;
  absl::StatusOr<bpf::CounterSnapshot> counters = bpf::ReadCounters(deps_.maps.counters);
  if (!counters.ok()) return counters.status();
  bpf::Counters total = counters->Total();
  for (int i = 0; i < AFTR_COUNTER_MAX; ++i) {
    aftr::v1::Statistics::Counter* c = st.add_counters();
    c->set_name(bpf::kCounterNames[i]);
    c->set_drop_reason(absl::StartsWith(bpf::kCounterNames[i], "drop_"));
    c->set_from_b4(counters->by_direction[bpf::kDirFromB4][i]);
    c->set_from_internet(counters->by_direction[bpf::kDirFromInternet][i]);
    c->set_other(counters->by_direction[bpf::kDirOther][i]);
    c->set_total(total[i]);
  }
  const Config& config = deps_.config();
  bpf::NatState state(deps_.maps, Geometry(config));
  st.set_sessions(state.CountSessions());
  st.set_session_capacity(config.tables().max_sessions());
  absl::StatusOr<std::vector<bpf::SubscriberRecord>> subs = state.Subscribers();
  if (!subs.ok()) return subs.status();
  st.set_subscribers(subs->size());
  absl::StatusOr<std::vector<bpf::PoolAddressState>> pool = deps_.datapath->ReadPool();
  if (!pool.ok()) return pool.status();
  for (const bpf::PoolAddressState& a : *pool) {
    st.set_pool_addresses(st.pool_addresses() + 1);
    if (a.draining) st.set_pool_addresses_draining(st.pool_addresses_draining() + 1);
    st.set_port_blocks_used(st.port_blocks_used() + a.blocks_used);
    st.set_port_blocks_total(st.port_blocks_total() + a.blocks_total);
  }
  absl::StatusOr<std::vector<nat::StaticMapping>> mappings = nat::ListStaticMappings(*deps_.datapath);
  if (mappings.ok()) st.set_static_mappings(mappings->size());
  if (deps_.controller_counters) {
    for (const auto& [name, value] : deps_.controller_counters()) {
      (*st.mutable_controller_counters())[name] = value;
    }
  }
  (*st.mutable_controller_counters())["watch_events_dropped"] = deps_.hub->events_dropped();
  (*st.mutable_controller_counters())["watchers"] = deps_.hub->watcher_count();
  ToTimestamp(absl::Now(), st.mutable_read_time());
  return st;
}

grpc::Status AftrServiceImpl::GetStatistics(grpc::ServerContext*,
                                            const aftr::v1::GetStatisticsRequest* req,
                                            aftr::v1::Statistics* resp) {
  if (!req->name().empty() && req->name() != "statistics") {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("name: \"", req->name().substr(0, 80), "\" is not \"statistics\"")));
  }
  absl::StatusOr<aftr::v1::Statistics> st = ReadStatistics();
  if (!st.ok()) return ToGrpc(st.status());
  *resp = std::move(*st);
  return grpc::Status::OK;
}

// ---- Events ----

grpc::Status AftrServiceImpl::WatchEvents(grpc::ServerContext* context,
                                          const aftr::v1::WatchEventsRequest* req,
                                          grpc::ServerWriter<aftr::v1::Event>* writer) {
  absl::StatusOr<Filter> filter = ParseFilter(req->filter(), kFilterB4 | kFilterPublicAddr | kFilterEventType);
  if (!filter.ok()) return ToGrpc(filter.status());
  std::unique_ptr<EventHub::Watcher> watcher = deps_.hub->Watch(*filter, kWatchQueueEvents);
  // Headers go out now, so a client knows the watch is in place before any event.
  writer->SendInitialMetadata();
  std::vector<events::NatEvent> batch;
  while (!context->IsCancelled()) {
    batch.clear();
    uint64_t lost = 0;
    if (!watcher->Next(absl::Now() + absl::Milliseconds(200), kWatchBatch, &batch, &lost)) break;
    if (lost != 0) {
      events::NatEvent e;
      e.type = events::EventType::kEventsLost;
      e.time = absl::Now();
      e.count = lost;
      e.detail = "this watcher fell behind";
      if (!writer->Write(EventToProto(e))) break;
    }
    for (const events::NatEvent& e : batch) {
      if (!writer->Write(EventToProto(e))) return grpc::Status::OK;  // client went away
    }
  }
  return grpc::Status::OK;
}

// ---- Configuration ----

grpc::Status AftrServiceImpl::GetConfig(grpc::ServerContext*, const aftr::v1::GetConfigRequest* req,
                                        aftr::config::v1::Config* resp) {
  if (!req->name().empty() && req->name() != "config") {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("name: \"", req->name().substr(0, 80), "\" is not \"config\"")));
  }
  *resp = deps_.config();
  return grpc::Status::OK;
}

absl::StatusOr<std::vector<std::string>> AftrServiceImpl::ChangesAllowedLive(const Config& next) {
  std::vector<std::string> changed = config::ChangedFields(deps_.config(), next);
  std::vector<std::string> fixed = config::NonLiveFields(changed);
  if (!fixed.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot change while running (restart aftrd to apply): ", absl::StrJoin(fixed, ", ")));
  }
  return changed;
}

absl::Status AftrServiceImpl::ApplyConfigLocked(const Config& next,
                                                const std::vector<std::string>& changed) {
  if (changed.empty()) return absl::OkStatus();
  if (absl::Status s = deps_.apply_config(next); !s.ok()) return s;
  events::NatEvent e;
  e.type = events::EventType::kConfigReloaded;
  e.time = absl::Now();
  e.detail = absl::StrJoin(changed, ",");
  (void)deps_.events->Publish(e);
  return absl::OkStatus();
}

absl::StatusOr<AftrServiceImpl::ReloadResult> AftrServiceImpl::Reload(absl::StatusOr<Config> next,
                                                                      bool validate_only) {
  if (!next.ok()) return next.status();
  absl::MutexLock lock(&config_mu_);
  absl::StatusOr<std::vector<std::string>> changed = ChangesAllowedLive(*next);
  if (!changed.ok()) return changed.status();
  ReloadResult result;
  result.changed = *changed;
  result.warnings = config::ConfigWarnings(*next);
  if (!validate_only) {
    if (absl::Status s = ApplyConfigLocked(*next, result.changed); !s.ok()) return s;
  }
  result.config = validate_only ? *next : deps_.config();
  return result;
}

grpc::Status AftrServiceImpl::ReloadConfig(grpc::ServerContext*,
                                           const aftr::v1::ReloadConfigRequest* req,
                                           aftr::v1::ReloadConfigResponse* resp) {
  absl::StatusOr<Config> next;
  switch (req->source_case()) {
    case aftr::v1::ReloadConfigRequest::kPath:
      if (req->path().empty()) return ToGrpc(absl::InvalidArgumentError("path: empty"));
      next = config::LoadConfigFile(req->path());
      if (!next.ok() && next.status().code() == absl::StatusCode::kInvalidArgument) {
        next = absl::InvalidArgumentError(absl::StrCat("path: ", next.status().message()));
      }
      break;
    case aftr::v1::ReloadConfigRequest::kConfig: {
      Config c = req->config();
      config::ApplyDefaults(&c);
      if (absl::Status s = config::ValidateConfig(c); !s.ok()) {
        next = absl::InvalidArgumentError(absl::StrCat("config: ", s.message()));
      } else {
        next = std::move(c);
      }
      break;
    }
    default:
      return ToGrpc(absl::InvalidArgumentError("source: set path or config"));
  }
  absl::StatusOr<ReloadResult> result = Reload(std::move(next), req->validate_only());
  if (!result.ok()) return ToGrpc(result.status());
  *resp->mutable_config() = std::move(result->config);
  for (const std::string& f : result->changed) resp->add_changed_fields(f);
  for (const std::string& w : result->warnings) resp->add_warnings(w);
  return grpc::Status::OK;
}

}  // namespace aftr::api
