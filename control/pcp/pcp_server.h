// The PCP server (RFC 6887) in DS-Lite plain mode: a B4 asks over IPv6 for the IPv4 host
// behind it that it names in THIRD_PARTY. A mapping is keyed by (B4, host, protocol,
// internal port), so no B4 can see, refresh or delete another's.
//
// MAP mappings are sessions flagged AFTR_SESSION_PCP_MAP in the pinned session maps (an
// Internet peer reaches the host through them; FILTER sets go to aftr_pcp_filters and the
// data plane enforces them); PEER holds a host's outbound session with AFTR_SESSION_PCP_PEER
// until its lifetime ends. The server's own records (nonce, lifetime, where the client asked)
// and the epoch's origin live in pinned maps beside those sessions: a restarted aftrd
// carries on with the same epoch; when the pinned state is new, the epoch starts at 0 and the
// B4s that held mappings (kept in pcp.clients_file) get unsolicited ANNOUNCEs.
//
// PcpServer holds the logic (one datagram in, one reply out, plus expiry); PcpListener owns
// the sockets and the thread. Both are thread-safe.
#ifndef AFTR_CONTROL_PCP_PCP_SERVER_H_
#define AFTR_CONTROL_PCP_PCP_SERVER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aftr/abi.h"
#include "control/bpf/datapath.h"
#include "control/common/ip.h"
#include "control/common/session_key.h"
#include "control/events/event_sink.h"
#include "control/pcp/known_clients.h"
#include "control/pcp/pcp_message.h"

namespace aftr::pcp {

// Lifetime granted for a requested one (section 15): clamped into [min, max].
uint32_t ClampLifetime(uint32_t requested, uint32_t min, uint32_t max);

// The data plane's form of a FILTER list: nullopt when a prefix-0 filter clears them all.
// (At most AFTR_PCP_MAX_FILTERS filters; the caller checks.)
std::optional<aftr_pcp_filter_set> FilterSet(const std::vector<Filter>& filters);

// Whether a refresh or delete with `nonce` may touch a mapping made with `stored`.
bool NonceAllows(const uint8_t (&stored)[12], const Nonce& nonce, bool strict);

// Per-B4 token buckets (rate per second, burst); the table stays bounded by forgetting
// buckets that have refilled.
class RateLimiter {
 public:
  RateLimiter(uint32_t rate, uint32_t burst) : rate_(rate), burst_(burst) {}
  void Configure(uint32_t rate, uint32_t burst);
  bool Allow(const Ipv6Address& b4, uint64_t now_ns);
  size_t size() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens;
    uint64_t stamp_ns;
  };
  uint32_t rate_, burst_;
  absl::flat_hash_map<std::array<uint8_t, 16>, Bucket> buckets_;  // key: the B4 address
};

// One PCP mapping as the API shows it.
struct PcpMappingView {
  SessionKey key;  // b4, host, protocol, internal port
  Opcode opcode = Opcode::kMap;
  Ipv4Address remote_addr;  // PEER
  uint16_t remote_port = 0;
  Ipv4Address public_addr;
  uint16_t public_port = 0;
  uint32_t lifetime = 0;           // granted by the last request
  uint64_t expires_ns = 0;         // CLOCK_MONOTONIC
  std::vector<Filter> filters;     // MAP with FILTER
  uint64_t created_ns = 0;         // CLOCK_MONOTONIC
};

class PcpServer {
 public:
  // Counter names, index = Counter.
  enum Counter {
    kRequests,         // datagrams received
    kDroppedSilently,  // too short, responses, rate limited
    kRateLimited,
    kMappingsCreated,
    kMappingsDeleted,  // by the client (lifetime 0)
    kMappingsExpired,
    kUnsolicitedSent,
    kCounterCount
  };
  static const char* const kCounterNames[kCounterCount];

  // `now` is CLOCK_MONOTONIC in ns (injected for tests of lifetimes).
  static absl::StatusOr<std::unique_ptr<PcpServer>> Create(bpf::Datapath* datapath,
                                                           events::EventSink* sink,
                                                           KnownClients* clients,
                                                           std::function<uint64_t()> now);

  // One request from `source` received on `local`: the reply (empty: none).
  std::vector<uint8_t> Handle(std::span<const uint8_t> datagram, const Ipv6Address& source,
                              const Ipv6Address& local);

  // Ends the mappings whose lifetime is over (and records whose session went away);
  // returns how many.
  int ExpireDue();

  uint32_t Epoch() const;
  // True when this start found no PCP state pinned while clients had held mappings: they
  // are owed unsolicited ANNOUNCEs.
  bool state_lost() const { return state_lost_; }

  // The API's view and an operator's delete. Delete: NotFound if no such mapping.
  std::vector<PcpMappingView> List() const;
  absl::Status Delete(const SessionKey& key, Opcode opcode, Ipv4Address remote_addr,
                      uint16_t remote_port);

  std::array<uint64_t, kCounterCount> counters() const;
  // The listener's unsolicited ANNOUNCEs, counted with the rest.
  void NoteUnsolicitedSent(uint64_t n) { Count(kUnsolicitedSent, n); }
  std::array<uint64_t, kResultCount> results() const;  // responses sent, by result code

 private:
  PcpServer(bpf::Datapath* datapath, events::EventSink* sink, KnownClients* clients,
            std::function<uint64_t()> now);

  // The records of the pinned aftr_pcp_mappings (the truth across restarts), mirrored here
  // as the index its walks need: ordered by key bytes, so all of a B4's are adjacent.
  // Written only through Store and Remove, which write both.
  struct KeyLess {
    bool operator()(const aftr_pcp_key& a, const aftr_pcp_key& b) const;
  };
  using Records = std::map<aftr_pcp_key, aftr_pcp_mapping, KeyLess>;

  Answer Serve(const Request& req, const Ipv6Address& source, const Ipv6Address& local)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Answer Map(const Request& req, const SessionKey& key, const Ipv6Address& local)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Answer Peer(const Request& req, const SessionKey& key, const Ipv6Address& local)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Answer DeleteAll(const Request& req, const SessionKey& host) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a record and what it holds in the data plane; logs PD with `why` for MAP.
  void Remove(Records::iterator it, const char* why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Store(const aftr_pcp_key& key, const aftr_pcp_mapping& value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteFilters(const aftr_session_out& session, uint8_t proto,
                            const std::vector<Filter>& filters) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AnyPeerHolds(const aftr_session_out_key& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int MapCount(const Ipv6Address& b4) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t EpochLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // What requests need from the running configuration, parsed once per configuration.
  struct Policy {
    const aftr::config::v1::Config* of = nullptr;
    std::vector<Ipv4Prefix> internal_ranges;  // pcp.internal_prefixes
    std::vector<Ipv6Address> softwires;       // softwire_addresses, by index
    bool Inside(Ipv4Address host) const;
    // The softwire address the B4 asked PCP on (its replies come from there), else 0.
    uint8_t SoftwireIndexOf(const Ipv6Address& local) const;
  };
  // Also gives the rate limiter the configuration's rate when it changes.
  const Policy& PolicyFor(const aftr::config::v1::Config& cfg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Count(Counter c, uint64_t n = 1) { counters_[c].fetch_add(n, std::memory_order_relaxed); }

  bpf::Datapath* datapath_;
  events::EventSink* sink_;
  KnownClients* clients_;
  std::function<uint64_t()> now_;
  bool state_lost_ = false;

  mutable absl::Mutex mu_;
  uint64_t epoch_origin_ns_ ABSL_GUARDED_BY(mu_) = 0;
  Records records_ ABSL_GUARDED_BY(mu_);
  // No record expires before this (a lower bound): ExpireDue scans only once it has passed.
  uint64_t next_expiry_ns_ ABSL_GUARDED_BY(mu_) = 0;
  RateLimiter limiter_ ABSL_GUARDED_BY(mu_);
  Policy policy_ ABSL_GUARDED_BY(mu_);

  std::array<std::atomic<uint64_t>, kCounterCount> counters_ = {};
  std::array<std::atomic<uint64_t>, kResultCount> results_ = {};
};

// The sockets (one per listen address, UDP) and the thread that serves them, expires
// mappings on time and sends the unsolicited ANNOUNCEs a state loss calls for.
class PcpListener {
 public:
  static absl::StatusOr<std::unique_ptr<PcpListener>> Start(
      const aftr::config::v1::Pcp& config, PcpServer* server, KnownClients* clients);
  ~PcpListener();  // stops the thread, closes the sockets

 private:
  PcpListener() = default;
  void Run();
  void ServeSocket(int fd, const Ipv6Address& local);
  void SendAnnouncements(uint64_t now_ns);

  PcpServer* server_ = nullptr;
  std::vector<std::pair<int, Ipv6Address>> sockets_;
  int stop_fd_ = -1;  // eventfd
  std::thread thread_;
  // Unsolicited ANNOUNCEs still to send (section 14.1.3: a few, with doubling intervals).
  std::vector<Ipv6Address> announce_to_;
  int announce_round_ = 0;
  uint64_t next_announce_ns_ = 0;
};

}  // namespace aftr::pcp

#endif  // AFTR_CONTROL_PCP_PCP_SERVER_H_
