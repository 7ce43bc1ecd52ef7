// The PCP server. See pcp_server.h.
#include "control/pcp/pcp_server.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/bpf/map_batch.h"
#include "control/bpf/session_keys.h"
#include "control/common/clock.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/nat/forward_sessions.h"

namespace aftr::pcp {
namespace {

constexpr uint64_t kNsPerSecond = 1000000000ull;
constexpr size_t kMaxRateBuckets = 1 << 16;
constexpr int kAnnounceRounds = 5;          // unsolicited ANNOUNCEs per client after a loss
constexpr uint64_t kAnnounceFirstGapNs = 250000000ull;  // then doubling (section 14.1.3)

Address AddressOf(const Ipv6Address& a) {
  Address out;
  std::memcpy(out.data(), a.bytes.data(), 16);
  return out;
}

uint32_t PrefixMask(int length) { return length == 0 ? 0 : ~0u << (32 - length); }

// The IPv4 filter of a FILTER option (its prefix counted on the 128-bit form).
aftr_pcp_filter DataPlaneFilter(const Filter& f) {
  aftr_pcp_filter out = {};
  const uint32_t mask = PrefixMask(f.prefix_length - 96);
  out.mask = htonl(mask);
  out.addr = htonl(V4Of(f.remote_addr).host_order & mask);
  out.port = htons(f.remote_port);
  return out;
}

Filter FilterOf(const aftr_pcp_filter& f) {
  Filter out;
  const uint32_t mask = ntohl(f.mask);
  int length = 0;
  while (length < 32 && (mask & (0x80000000u >> length))) ++length;
  out.prefix_length = static_cast<uint8_t>(96 + length);
  out.remote_port = ntohs(f.port);
  out.remote_addr = V4Mapped(Ipv4Address{ntohl(f.addr)});
  return out;
}

aftr_pcp_key RecordKey(const SessionKey& key, Opcode opcode, Ipv4Address remote = {},
                       uint16_t remote_port = 0) {
  aftr_pcp_key k = {};
  k.session = bpf::OutKey(key);
  k.peer_addr = htonl(remote.host_order);
  k.peer_port = htons(remote_port);
  k.opcode = static_cast<uint8_t>(opcode);
  return k;
}

uint32_t Remaining(const aftr_pcp_mapping& m, uint64_t now) {
  return m.expires_ns > now ? static_cast<uint32_t>((m.expires_ns - now + kNsPerSecond - 1) / kNsPerSecond) : 0;
}

Answer Fail(Result r, uint32_t lifetime = 0) {
  Answer a;
  a.result = r;
  a.lifetime = lifetime ? lifetime : ErrorLifetime(r);
  return a;
}

}  // namespace

uint32_t ClampLifetime(uint32_t requested, uint32_t min, uint32_t max) {
  return std::clamp(requested, min, max);
}

std::optional<aftr_pcp_filter_set> FilterSet(const std::vector<Filter>& filters) {
  aftr_pcp_filter_set set = {};
  for (const Filter& f : filters) {
    if (f.prefix_length == 0) return std::nullopt;  // "no filter": remove them all (13.3)
    if (set.count < AFTR_PCP_MAX_FILTERS) set.f[set.count++] = DataPlaneFilter(f);
  }
  if (set.count == 0) return std::nullopt;
  return set;
}

bool NonceAllows(const uint8_t (&stored)[12], const Nonce& nonce, bool strict) {
  return !strict || std::memcmp(stored, nonce.data(), nonce.size()) == 0;
}

void RateLimiter::Configure(uint32_t rate, uint32_t burst) {
  rate_ = rate;
  burst_ = burst;
}

bool RateLimiter::Allow(const Ipv6Address& b4, uint64_t now_ns) {
  auto it = buckets_.find(b4.bytes);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxRateBuckets) {
      // Forget the buckets that are full again: they would allow a whole burst anyway.
      absl::erase_if(buckets_, [&](const auto& kv) {
        return kv.second.tokens + (now_ns - kv.second.stamp_ns) / 1e9 * rate_ >= burst_;
      });
      if (buckets_.size() >= kMaxRateBuckets) return false;  // a flood of sources
    }
    it = buckets_.emplace(b4.bytes, Bucket{static_cast<double>(burst_), now_ns}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min<double>(burst_, b.tokens + (now_ns - b.stamp_ns) / 1e9 * rate_);
  b.stamp_ns = now_ns;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

// ---- PcpServer ----

const char* const PcpServer::kCounterNames[kCounterCount] = {
    "pcp_requests",          "pcp_dropped_silently", "pcp_rate_limited",
    "pcp_mappings_created",  "pcp_mappings_deleted", "pcp_mappings_expired",
    "pcp_unsolicited_sent"};

bool PcpServer::KeyLess::operator()(const aftr_pcp_key& a, const aftr_pcp_key& b) const {
  return std::memcmp(&a, &b, sizeof(a)) < 0;
}

PcpServer::PcpServer(bpf::Datapath* datapath, events::EventSink* sink, KnownClients* clients,
                     std::function<uint64_t()> now)
    : datapath_(datapath),
      sink_(sink),
      clients_(clients),
      now_(std::move(now)),
      limiter_(datapath->config().pcp().requests_per_second(),
               datapath->config().pcp().request_burst()) {}

absl::StatusOr<std::unique_ptr<PcpServer>> PcpServer::Create(bpf::Datapath* datapath,
                                                             events::EventSink* sink,
                                                             KnownClients* clients,
                                                             std::function<uint64_t()> now) {
  auto server = std::unique_ptr<PcpServer>(new PcpServer(datapath, sink, clients, std::move(now)));
  absl::MutexLock lock(&server->mu_);
  const bpf::MapFds& fds = datapath->fds();
  uint32_t zero = 0;
  aftr_pcp_state state = {};
  if (bpf_map_lookup_elem(fds.pcp_state, &zero, &state) != 0) {
    return ErrnoToStatus(errno, "reading aftr_pcp_state");
  }
  if (state.epoch_origin_ns == 0) {
    // New mapping state: the epoch starts now, and whoever held mappings before must learn
    // that they are gone (section 8.5).
    state.epoch_origin_ns = server->now_();
    if (bpf_map_update_elem(fds.pcp_state, &zero, &state, BPF_ANY) != 0) {
      return ErrnoToStatus(errno, "writing aftr_pcp_state");
    }
    server->state_lost_ = clients != nullptr && !clients->All().empty();
  }
  server->epoch_origin_ns_ = state.epoch_origin_ns;
  std::vector<aftr_pcp_key> keys;
  std::vector<aftr_pcp_mapping> values;
  if (absl::Status s = bpf::ReadMap(fds.pcp_mappings, &keys, &values); !s.ok()) return s;
  for (size_t i = 0; i < keys.size(); ++i) server->records_.emplace(keys[i], values[i]);
  return server;
}

uint32_t PcpServer::EpochLocked() const {
  const uint64_t now = now_();
  return now > epoch_origin_ns_ ? static_cast<uint32_t>((now - epoch_origin_ns_) / kNsPerSecond) : 0;
}

const PcpServer::Policy& PcpServer::PolicyFor(const aftr::config::v1::Config& cfg) {
  if (policy_.of != &cfg) {  // a reload (configurations live as long as the datapath)
    policy_ = Policy{&cfg, {}, {}};
    for (const std::string& text : cfg.pcp().internal_prefixes()) {
      absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(text);
      if (p.ok()) policy_.internal_ranges.push_back(*p);
    }
    for (const std::string& text : cfg.softwire_addresses()) {
      absl::StatusOr<Ipv6Address> a = ParseIpv6(text);
      policy_.softwires.push_back(a.ok() ? *a : Ipv6Address{});
    }
    limiter_.Configure(cfg.pcp().requests_per_second(), cfg.pcp().request_burst());
  }
  return policy_;
}

bool PcpServer::Policy::Inside(Ipv4Address host) const {
  return std::any_of(internal_ranges.begin(), internal_ranges.end(),
                     [&](const Ipv4Prefix& p) { return p.Contains(host); });
}

uint8_t PcpServer::Policy::SoftwireIndexOf(const Ipv6Address& local) const {
  for (size_t i = 0; i < softwires.size(); ++i) {
    if (softwires[i] == local) return static_cast<uint8_t>(i);
  }
  return 0;
}

uint32_t PcpServer::Epoch() const {
  absl::ReaderMutexLock lock(&mu_);
  return EpochLocked();
}

std::vector<uint8_t> PcpServer::Handle(std::span<const uint8_t> datagram, const Ipv6Address& source,
                                       const Ipv6Address& local) {
  Count(kRequests);
  absl::MutexLock lock(&mu_);
  PolicyFor(datapath_->config());
  if (!limiter_.Allow(source, now_())) {
    Count(kRateLimited);
    Count(kDroppedSilently);
    return {};
  }
  const uint32_t epoch = EpochLocked();
  Parsed parsed = ParseRequest(datagram, AddressOf(source));
  std::vector<uint8_t> reply;
  Result result;
  switch (parsed.kind) {
    case Parsed::Kind::kDrop:
      Count(kDroppedSilently);
      return {};
    case Parsed::Kind::kError:
      result = parsed.error;
      reply = result == Result::kUnsuppVersion
                  ? VersionResponse(datagram, epoch)
                  : ErrorResponse(datagram, result, ErrorLifetime(result), epoch);
      break;
    case Parsed::Kind::kRequest: {
      Answer a = Serve(parsed.request, source, local);
      a.epoch = epoch;
      result = a.result;
      if (a.result == Result::kSuccess) {
        reply = EncodeResponse(parsed.request, a);
      } else {
        reply = ErrorResponse(datagram, a.result, a.lifetime, epoch);
      }
      break;
    }
  }
  results_[static_cast<size_t>(result)].fetch_add(1, std::memory_order_relaxed);
  return reply;
}

Answer PcpServer::Serve(const Request& req, const Ipv6Address& source, const Ipv6Address& local) {
  const auto& cfg = datapath_->config();
  // Only B4s may ask (section 18.1's simple threat model: the access network validates
  // source addresses).
  aftr_b4_prefix_key pk = {};
  pk.prefixlen = 128;
  std::memcpy(pk.addr, source.bytes.data(), 16);
  uint32_t allowed;
  if (bpf_map_lookup_elem(datapath_->fds().b4_prefixes, &pk, &allowed) != 0) {
    return Fail(Result::kNotAuthorized);
  }
  if (req.opcode == Opcode::kAnnounce) return Answer{};  // SUCCESS, lifetime 0

  // Plain mode: the host must be named, IPv4, and inside the configured ranges.
  if (!req.third_party || !IsV4Mapped(*req.third_party)) return Fail(Result::kNotAuthorized);
  const Ipv4Address host = V4Of(*req.third_party);
  if (!PolicyFor(cfg).Inside(host)) return Fail(Result::kNotAuthorized);

  SessionKey key;
  key.b4 = source;
  key.inner_addr = host;
  key.proto = req.protocol;
  key.inner_port = req.internal_port;
  if (req.opcode == Opcode::kMap && req.requested_lifetime == 0 &&
      (req.protocol == 0 || req.internal_port == 0)) {
    return DeleteAll(req, key);
  }
  if (req.protocol == 0 || (req.opcode == Opcode::kMap && req.internal_port == 0)) {
    return Fail(Result::kNotAuthorized);  // "all protocols" / "all ports": not on a shared address
  }
  if (req.protocol != IPPROTO_TCP && req.protocol != IPPROTO_UDP) {
    return Fail(Result::kUnsuppProtocol);
  }
  return req.opcode == Opcode::kMap ? Map(req, key, local)
                                    : Peer(req, key, local);
}

namespace {

Result ResultOf(nat::ForwardFailure why) {
  switch (why) {
    case nat::ForwardFailure::kConflict:
    case nat::ForwardFailure::kInvalid:
      return Result::kNotAuthorized;
    case nat::ForwardFailure::kPortUnavailable:
      return Result::kCannotProvideExternal;
    case nat::ForwardFailure::kSubscriberLimit:
      return Result::kUserExQuota;
    case nat::ForwardFailure::kNoResources:
    case nat::ForwardFailure::kUnavailable:
    case nat::ForwardFailure::kNone:
      break;
  }
  return Result::kNoResources;
}

}  // namespace

absl::Status PcpServer::WriteFilters(const aftr_session_out& session, uint8_t proto,
                                     const std::vector<Filter>& filters) {
  aftr_session_in_key ik = {};
  ik.public_addr = session.public_addr;
  ik.public_port = session.public_port;
  ik.proto = proto;
  std::optional<aftr_pcp_filter_set> set = FilterSet(filters);
  if (!set) {
    if (bpf_map_delete_elem(datapath_->fds().pcp_filters, &ik) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, "deleting from aftr_pcp_filters");
    }
    return absl::OkStatus();
  }
  if (bpf_map_update_elem(datapath_->fds().pcp_filters, &ik, &*set, BPF_ANY) != 0) {
    return ErrnoToStatus(errno, "writing aftr_pcp_filters");
  }
  return absl::OkStatus();
}

bool PcpServer::Store(const aftr_pcp_key& key, const aftr_pcp_mapping& value) {
  if (bpf_map_update_elem(datapath_->fds().pcp_mappings, &key, &value, BPF_ANY) != 0) {
    LogError("PCP: cannot record a mapping (aftr_pcp_mappings: %s)", std::strerror(errno));
    return false;
  }
  records_[key] = value;
  next_expiry_ns_ = std::min<uint64_t>(next_expiry_ns_, value.expires_ns);
  return true;
}

bool PcpServer::AnyPeerHolds(const aftr_session_out_key& session) const {
  aftr_pcp_key lo = {};
  lo.session = session;
  for (auto it = records_.lower_bound(lo);
       it != records_.end() && std::memcmp(&it->first.session, &session, sizeof(session)) == 0; ++it) {
    if (it->first.opcode == static_cast<uint8_t>(Opcode::kPeer)) return true;
  }
  return false;
}

int PcpServer::MapCount(const Ipv6Address& b4) const {
  aftr_pcp_key lo = {};
  std::memcpy(lo.session.b4, b4.bytes.data(), 16);
  int n = 0;
  for (auto it = records_.lower_bound(lo);
       it != records_.end() && std::memcmp(it->first.session.b4, b4.bytes.data(), 16) == 0; ++it) {
    if (it->first.opcode == static_cast<uint8_t>(Opcode::kMap)) ++n;
  }
  return n;
}

Answer PcpServer::Map(const Request& req, const SessionKey& key, const Ipv6Address& local) {
  const auto& cfg = datapath_->config();
  const bool strict = cfg.pcp().nonce_check() != aftr::config::v1::NONCE_CHECK_RELAXED;
  const uint64_t now = now_();
  const aftr_pcp_key rk = RecordKey(key, Opcode::kMap);
  auto it = records_.find(rk);
  aftr_session_out session = {};
  if (it != records_.end() &&
      bpf_map_lookup_elem(datapath_->fds().sessions_out, &rk.session, &session) != 0) {
    Remove(it, "lost");  // its session went away (an operator released the block)
    it = records_.end();
  }
  Answer a;
  a.assigned_port = req.suggested_port;
  a.assigned_addr = req.suggested_addr;

  if (req.requested_lifetime == 0) {  // delete (section 15)
    if (it == records_.end()) return a;  // nothing to delete: SUCCESS, so retries agree
    if (!NonceAllows(it->second.nonce, req.nonce, strict)) {
      return Fail(Result::kNotAuthorized, std::max<uint32_t>(1, Remaining(it->second, now)));
    }
    Remove(it, "deleted");  // the reply keeps the suggested fields (section 15.1)
    Count(kMappingsDeleted);
    return a;
  }
  if (req.filters.size() > AFTR_PCP_MAX_FILTERS &&
      std::none_of(req.filters.begin(), req.filters.end(),
                   [](const Filter& f) { return f.prefix_length == 0; })) {
    return Fail(Result::kExcessiveRemotePeers);
  }
  const uint32_t lifetime =
      ClampLifetime(req.requested_lifetime, cfg.pcp().min_lifetime(), cfg.pcp().max_lifetime());
  const std::optional<aftr_pcp_filter_set> filter_set = FilterSet(req.filters);
  const uint8_t filtered = filter_set ? AFTR_SESSION_FILTERED : 0;

  if (it != records_.end()) {  // refresh (section 11.3): same mapping, new lifetime
    if (!NonceAllows(it->second.nonce, req.nonce, strict)) {
      return Fail(Result::kNotAuthorized, std::max<uint32_t>(1, Remaining(it->second, now)));
    }
    // Filters first closed, then written, then opened: never a moment open to everyone.
    // (Neither before nor after: nothing to write.)
    if (filtered && !(session.flags & AFTR_SESSION_FILTERED)) {
      (void)nat::SetSessionFlags(*datapath_, key, AFTR_SESSION_FILTERED, false);
    }
    if ((filtered || (session.flags & AFTR_SESSION_FILTERED)) &&
        !WriteFilters(session, key.proto, req.filters).ok()) {
      return Fail(Result::kNoResources);
    }
    if (!filtered && (session.flags & AFTR_SESSION_FILTERED)) {
      (void)nat::SetSessionFlags(*datapath_, key, AFTR_SESSION_FILTERED, true);
    }
    aftr_pcp_mapping m = it->second;
    std::memcpy(m.nonce, req.nonce.data(), sizeof(m.nonce));
    m.lifetime = lifetime;
    m.expires_ns = now + lifetime * kNsPerSecond;
    if (!Store(rk, m)) return Fail(Result::kNoResources);
    a.lifetime = lifetime;
    a.assigned_port = ntohs(session.public_port);
    a.assigned_addr = V4Mapped(Ipv4Address{ntohl(session.public_addr)});
    a.filters_echoed = req.filters;  // all installed, or all cleared by prefix 0
    return a;
  }

  // A new mapping.
  if (MapCount(key.b4) >= static_cast<int>(cfg.pcp().max_mappings_per_subscriber())) {
    return Fail(Result::kUserExQuota);
  }
  if (records_.size() >= cfg.pcp().max_mappings()) return Fail(Result::kNoResources);
  // A suggested external address the subscriber does not have: a mere hint, unless the
  // client prefers failure.
  if (req.prefer_failure && !IsAllZeros(req.suggested_addr)) {
    aftr_subscriber_key sk;
    std::memcpy(sk.b4, key.b4.bytes.data(), 16);
    aftr_subscriber sub;
    if (!IsV4Mapped(req.suggested_addr) ||
        bpf_map_lookup_elem(datapath_->fds().subscribers, &sk, &sub) != 0 ||
        ntohl(sub.public_addr) != V4Of(req.suggested_addr).host_order) {
      return Fail(Result::kCannotProvideExternal);
    }
  }
  nat::ForwardRequest fr;
  fr.key = key;
  if (req.suggested_port) fr.public_port = req.suggested_port;
  fr.port_required = req.prefer_failure && req.suggested_port != 0;
  fr.claim_block_for_port = false;  // a port hint never costs the pool a block
  fr.flags = AFTR_SESSION_PCP_MAP | filtered;
  fr.conflicting_flags = AFTR_SESSION_STATIC;
  fr.move_existing = false;  // a host's live session keeps its port: MAP returns it
  fr.softwire_index = PolicyFor(cfg).SoftwireIndexOf(local);
  nat::ForwardFailure why;
  absl::StatusOr<nat::ForwardSession> made = nat::MakeForwardSession(*datapath_, sink_, fr, &why);
  if (!made.ok()) {
    if (why == nat::ForwardFailure::kNoResources || why == nat::ForwardFailure::kUnavailable) {
      LogWarning("PCP: MAP for %s: %s", key.b4.ToString(), made.status().ToString());
    }
    return Fail(ResultOf(why));
  }
  session = {};
  session.public_addr = htonl(made->public_addr.host_order);
  session.public_port = htons(made->public_port);
  if (filtered) {
    if (!WriteFilters(session, key.proto, req.filters).ok()) {
      (void)nat::DeleteFlaggedSession(*datapath_, sink_, key, AFTR_SESSION_PCP_MAP);
      return Fail(Result::kNoResources);
    }
  }
  aftr_pcp_mapping m = {};
  std::memcpy(m.nonce, req.nonce.data(), sizeof(m.nonce));
  m.lifetime = lifetime;
  m.created_ns = now;
  m.expires_ns = now + lifetime * kNsPerSecond;
  if (!Store(rk, m)) {
    if (made->made) (void)nat::DeleteFlaggedSession(*datapath_, sink_, key, AFTR_SESSION_PCP_MAP);
    return Fail(Result::kNoResources);
  }
  if (clients_ && !clients_->Add(key.b4)) {
    LogWarning("PCP: cannot remember client %s in %s", key.b4.ToString(), cfg.pcp().clients_file());
  }
  Count(kMappingsCreated);
  events::NatEvent e = events::SessionEvent(events::EventType::kPcpMapCreate, key, made->public_addr,
                                            made->public_port);
  e.detail = absl::StrCat("lifetime=", lifetime);
  (void)sink_->Publish(e);
  a.lifetime = lifetime;
  a.assigned_port = made->public_port;
  a.assigned_addr = V4Mapped(made->public_addr);
  a.filters_echoed = req.filters;
  return a;
}

Answer PcpServer::Peer(const Request& req, const SessionKey& key, const Ipv6Address& local) {
  const auto& cfg = datapath_->config();
  const bool strict = cfg.pcp().nonce_check() != aftr::config::v1::NONCE_CHECK_RELAXED;
  if (!IsV4Mapped(req.remote_addr)) return Fail(Result::kMalformedRequest);  // not the host's family
  const uint64_t now = now_();
  const Ipv4Address remote = V4Of(req.remote_addr);
  const aftr_pcp_key rk = RecordKey(key, Opcode::kPeer, remote, req.remote_port);
  auto it = records_.find(rk);
  if (it != records_.end() && !NonceAllows(it->second.nonce, req.nonce, strict)) {
    return Fail(Result::kNotAuthorized, std::max<uint32_t>(1, Remaining(it->second, now)));
  }
  // PEER creates or extends, never shortens or deletes (section 12).
  uint32_t lifetime = ClampLifetime(req.requested_lifetime, cfg.pcp().min_lifetime(),
                                    cfg.pcp().max_lifetime());
  if (it != records_.end()) lifetime = std::max(lifetime, Remaining(it->second, now));
  if (it == records_.end() && records_.size() >= cfg.pcp().max_mappings()) {
    return Fail(Result::kNoResources);
  }

  nat::ForwardRequest fr;
  fr.key = key;
  if (req.suggested_port) fr.public_port = req.suggested_port;
  fr.port_required = req.suggested_port != 0;  // PEER fails rather than substitute (12.3)
  fr.claim_block_for_port = false;
  fr.flags = AFTR_SESSION_PCP_PEER;
  fr.move_existing = false;
  fr.softwire_index = PolicyFor(cfg).SoftwireIndexOf(local);
  nat::ForwardFailure why;
  absl::StatusOr<nat::ForwardSession> made = nat::MakeForwardSession(*datapath_, sink_, fr, &why);
  if (!made.ok()) return Fail(ResultOf(why));
  if (!IsAllZeros(req.suggested_addr) &&
      (!IsV4Mapped(req.suggested_addr) || V4Of(req.suggested_addr) != made->public_addr) &&
      made->made && it == records_.end()) {
    // The address asked for is not the subscriber's: undo what this request made.
    (void)nat::DeleteFlaggedSession(*datapath_, sink_, key, AFTR_SESSION_PCP_PEER);
    return Fail(Result::kCannotProvideExternal);
  }
  aftr_pcp_mapping m = it != records_.end() ? it->second : aftr_pcp_mapping{};
  std::memcpy(m.nonce, req.nonce.data(), sizeof(m.nonce));
  m.lifetime = lifetime;
  if (it == records_.end()) m.created_ns = now;
  m.expires_ns = std::max<uint64_t>(m.expires_ns, now + lifetime * kNsPerSecond);
  if (!Store(rk, m)) return Fail(Result::kNoResources);
  if (clients_) (void)clients_->Add(key.b4);
  Answer a;
  a.lifetime = lifetime;
  a.assigned_port = made->public_port;
  a.assigned_addr = V4Mapped(made->public_addr);
  return a;
}

Answer PcpServer::DeleteAll(const Request& req, const SessionKey& host) {
  const bool strict =
      datapath_->config().pcp().nonce_check() != aftr::config::v1::NONCE_CHECK_RELAXED;
  std::vector<aftr_pcp_key> doomed;
  aftr_pcp_key lo = {};
  std::memcpy(lo.session.b4, host.b4.bytes.data(), 16);
  for (auto it = records_.lower_bound(lo);
       it != records_.end() && std::memcmp(it->first.session.b4, host.b4.bytes.data(), 16) == 0; ++it) {
    const aftr_pcp_key& k = it->first;
    if (k.opcode != static_cast<uint8_t>(Opcode::kMap)) continue;
    if (ntohl(k.session.inner_addr) != host.inner_addr.host_order) continue;
    if (host.proto != 0 && k.session.proto != host.proto) continue;
    // Section 15: only the mappings made with this nonce.
    if (!NonceAllows(it->second.nonce, req.nonce, strict)) continue;
    doomed.push_back(k);
  }
  for (const aftr_pcp_key& k : doomed) {
    auto it = records_.find(k);
    if (it == records_.end()) continue;
    Remove(it, "deleted");
    Count(kMappingsDeleted);
  }
  Answer a;
  a.assigned_port = req.suggested_port;
  a.assigned_addr = req.suggested_addr;
  return a;
}

void PcpServer::Remove(Records::iterator it, const char* why) {
  const aftr_pcp_key k = it->first;
  const SessionKey key = bpf::KeyOf(k.session);
  (void)bpf_map_delete_elem(datapath_->fds().pcp_mappings, &k);
  records_.erase(it);
  aftr_session_out session;
  const bool live = bpf_map_lookup_elem(datapath_->fds().sessions_out, &k.session, &session) == 0;
  if (k.opcode == static_cast<uint8_t>(Opcode::kMap)) {
    if (live) {
      const aftr_session_in_key ik = bpf::InKeyOf(k.session, session);
      if (AnyPeerHolds(k.session)) {
        // A PEER still holds the session: it stays, no longer a port forward.
        (void)nat::SetSessionFlags(*datapath_, key, AFTR_SESSION_PCP_MAP | AFTR_SESSION_FILTERED, true);
      } else {
        (void)nat::DeleteFlaggedSession(*datapath_, sink_, key, AFTR_SESSION_PCP_MAP);
      }
      (void)bpf_map_delete_elem(datapath_->fds().pcp_filters, &ik);
      events::NatEvent e = events::SessionEvent(events::EventType::kPcpMapDelete, key,
                                                Ipv4Address{ntohl(session.public_addr)},
                                                ntohs(session.public_port));
      e.detail = why;
      (void)sink_->Publish(e);
    }
    return;
  }
  // PEER: the session goes back to idle expiry once nothing PCP holds it.
  aftr_pcp_key map_key = k;
  map_key.peer_addr = 0;
  map_key.peer_port = 0;
  map_key.opcode = static_cast<uint8_t>(Opcode::kMap);
  if (live && !AnyPeerHolds(k.session) && !records_.contains(map_key)) {
    (void)nat::SetSessionFlags(*datapath_, key, AFTR_SESSION_PCP_PEER, true);
  }
}

int PcpServer::ExpireDue() {
  absl::MutexLock lock(&mu_);
  const uint64_t now = now_();
  if (now < next_expiry_ns_) return 0;
  std::vector<aftr_pcp_key> due;
  uint64_t next = UINT64_MAX;
  for (const auto& [k, m] : records_) {
    if (m.expires_ns <= now) {
      due.push_back(k);
    } else {
      next = std::min<uint64_t>(next, m.expires_ns);
    }
  }
  next_expiry_ns_ = next;
  for (const aftr_pcp_key& k : due) {
    auto it = records_.find(k);
    if (it == records_.end()) continue;
    Remove(it, "expired");
    Count(kMappingsExpired);
  }
  return static_cast<int>(due.size());
}

std::vector<PcpMappingView> PcpServer::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<PcpMappingView> out;
  out.reserve(records_.size());
  for (const auto& [k, m] : records_) {
    PcpMappingView v;
    v.key = bpf::KeyOf(k.session);
    v.opcode = static_cast<Opcode>(k.opcode);
    v.remote_addr = Ipv4Address{ntohl(k.peer_addr)};
    v.remote_port = ntohs(k.peer_port);
    v.lifetime = m.lifetime;
    v.expires_ns = m.expires_ns;
    v.created_ns = m.created_ns;
    aftr_session_out session;
    if (bpf_map_lookup_elem(datapath_->fds().sessions_out, &k.session, &session) == 0) {
      v.public_addr = Ipv4Address{ntohl(session.public_addr)};
      v.public_port = ntohs(session.public_port);
      const aftr_session_in_key ik = bpf::InKeyOf(k.session, session);
      aftr_pcp_filter_set set;
      if (v.opcode == Opcode::kMap && (session.flags & AFTR_SESSION_FILTERED) &&
          bpf_map_lookup_elem(datapath_->fds().pcp_filters, &ik, &set) == 0) {
        for (uint32_t i = 0; i < std::min<uint32_t>(set.count, AFTR_PCP_MAX_FILTERS); ++i) {
          v.filters.push_back(FilterOf(set.f[i]));
        }
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

absl::Status PcpServer::Delete(const SessionKey& key, Opcode opcode, Ipv4Address remote_addr,
                               uint16_t remote_port) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(opcode == Opcode::kMap ? RecordKey(key, opcode)
                                                 : RecordKey(key, opcode, remote_addr, remote_port));
  if (it == records_.end()) return absl::NotFoundError("no such PCP mapping");
  Remove(it, "operator");
  return absl::OkStatus();
}

std::array<uint64_t, PcpServer::kCounterCount> PcpServer::counters() const {
  std::array<uint64_t, kCounterCount> out;
  for (int i = 0; i < kCounterCount; ++i) out[i] = counters_[i].load(std::memory_order_relaxed);
  return out;
}

std::array<uint64_t, kResultCount> PcpServer::results() const {
  std::array<uint64_t, kResultCount> out;
  for (int i = 0; i < kResultCount; ++i) out[i] = results_[i].load(std::memory_order_relaxed);
  return out;
}

// ---- PcpListener ----

absl::StatusOr<std::unique_ptr<PcpListener>> PcpListener::Start(const aftr::config::v1::Pcp& config,
                                                                 PcpServer* server,
                                                                 KnownClients* clients) {
  auto l = std::unique_ptr<PcpListener>(new PcpListener());
  l->server_ = server;
  for (const std::string& text : config.listen_addresses()) {
    absl::StatusOr<Ipv6Address> addr = ParseIpv6(text);
    if (!addr.ok()) return addr.status();
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, "PCP socket");
    l->sockets_.emplace_back(fd, *addr);
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    // The address may be configured after aftrd starts (or live on lo for XDP's sake).
    setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
    sockaddr_in6 sa = {};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(config.port()));
    std::memcpy(&sa.sin6_addr, addr->bytes.data(), 16);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      return ErrnoToStatus(errno, absl::StrFormat("PCP: binding [%s]:%d", text, config.port()));
    }
  }
  l->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->stop_fd_ < 0) return ErrnoToStatus(errno, "PCP eventfd");
  if (server->state_lost() && clients != nullptr) {
    l->announce_to_ = clients->All();
    LogInfo("PCP: no mapping state was pinned: telling %d known clients (unsolicited ANNOUNCE)",
            l->announce_to_.size());
  }
  l->thread_ = std::thread([p = l.get()] { p->Run(); });
  return l;
}

PcpListener::~PcpListener() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  for (auto& [fd, addr] : sockets_) close(fd);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void PcpListener::ServeSocket(int fd, const Ipv6Address& local) {
  uint8_t buf[kMaxMessage + 4];  // one more word: a longer datagram is seen as too long
  for (int i = 0; i < 256; ++i) {  // bounded batch, then the others get their turn
    sockaddr_in6 from = {};
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;  // EAGAIN: drained
    Ipv6Address source;
    std::memcpy(source.bytes.data(), &from.sin6_addr, 16);
    const size_t size = std::min<size_t>(static_cast<size_t>(n), sizeof(buf));
    std::vector<uint8_t> reply = server_->Handle(std::span<const uint8_t>(buf, size), source,
                                                 local);
    if (!reply.empty()) {
      (void)sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
}

void PcpListener::SendAnnouncements(uint64_t now_ns) {
  if (announce_to_.empty() || sockets_.empty() || now_ns < next_announce_ns_) return;
  const std::vector<uint8_t> msg = UnsolicitedAnnounce(server_->Epoch());
  for (const Ipv6Address& b4 : announce_to_) {
    sockaddr_in6 to = {};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(kClientPort);
    std::memcpy(&to.sin6_addr, b4.bytes.data(), 16);
    // From the first listen address (the one the B4s are given).
    if (sendto(sockets_.front().first, msg.data(), msg.size(), 0,
               reinterpret_cast<sockaddr*>(&to), sizeof(to)) == static_cast<ssize_t>(msg.size())) {
      server_->NoteUnsolicitedSent(1);
    }
  }
  ++announce_round_;
  if (announce_round_ >= kAnnounceRounds) {
    announce_to_.clear();
    return;
  }
  next_announce_ns_ = now_ns + (kAnnounceFirstGapNs << (announce_round_ - 1));
}

void PcpListener::Run() {
  std::vector<pollfd> fds;
  for (auto& [fd, addr] : sockets_) fds.push_back({fd, POLLIN, 0});
  fds.push_back({stop_fd_, POLLIN, 0});
  uint64_t next_expiry = 0;
  for (;;) {
    const uint64_t now = MonotonicCoarseNs();
    SendAnnouncements(now);
    if (now >= next_expiry) {
      server_->ExpireDue();
      next_expiry = now + 250000000ull;  // mappings end within a quarter second of their time
    }
    int n = poll(fds.data(), fds.size(), 100);
    if (n < 0 && errno != EINTR) {
      LogError("PCP: poll: %s", std::strerror(errno));
      return;
    }
    if (fds.back().revents & POLLIN) return;
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) ServeSocket(sockets_[i].first, sockets_[i].second);
    }
  }
}

}  // namespace aftr::pcp
