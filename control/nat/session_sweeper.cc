#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/nat/session_sweeper.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/time/clock.h"
#include "control/bpf/map_batch.h"
#include "control/common/log.h"

namespace aftr::nat {
namespace {

using events::EventType;
using events::NatEvent;

constexpr uint64_t kNsPerSec = 1000000000ull;

// An Internet-side entry whose subscriber-side twin is missing (only possible if a create
// was interrupted) is removed once it has been idle this long.
constexpr uint64_t kOrphanAgeNs = 10 * kNsPerSec;

struct InKeyHash {
  size_t operator()(const aftr_session_in_key& k) const {
    return absl::HashOf(k.public_addr, k.public_port, k.proto);
  }
};
struct InKeyEq {
  bool operator()(const aftr_session_in_key& a, const aftr_session_in_key& b) const {
    return a.public_addr == b.public_addr && a.public_port == b.public_port && a.proto == b.proto;
  }
};

aftr_session_in_key InKeyOf(const aftr_session_out_key& k, const aftr_session_out& v) {
  aftr_session_in_key ik = {};
  ik.public_addr = v.public_addr;
  ik.public_port = v.public_port;
  ik.proto = k.proto;
  return ik;
}

bool SameFlow(const aftr_session_out_key& k, const aftr_session_in& in) {
  return std::memcmp(k.b4, in.b4, 16) == 0 && k.inner_addr == in.inner_addr &&
         k.inner_port == in.inner_port;
}

NatEvent SessionEvent(EventType type, const aftr_session_out_key& k, const aftr_session_out& v) {
  NatEvent e;
  e.type = type;
  e.time = absl::Now();
  std::memcpy(e.b4.bytes.data(), k.b4, 16);
  e.proto = k.proto;
  e.inner_addr.host_order = ntohl(k.inner_addr);
  e.inner_port = ntohs(k.inner_port);
  e.public_addr.host_order = ntohl(v.public_addr);
  e.public_port = ntohs(v.public_port);
  return e;
}

}  // namespace

uint64_t SessionTimeoutNs(const aftr::config::v1::Timeouts& t, uint8_t proto,
                          uint8_t out_flags, uint8_t in_flags) {
  uint64_t seconds;
  switch (proto) {
    case IPPROTO_TCP: {
      bool reset = (out_flags | in_flags) & AFTR_TCP_SEEN_RST;
      bool closed = (out_flags & AFTR_TCP_SEEN_FIN) && (in_flags & AFTR_TCP_SEEN_FIN);
      // Established once the SYN went out and the SYN-ACK came back (RFC 5382 section 5).
      bool established = (out_flags & AFTR_TCP_SEEN_SYN) && (in_flags & AFTR_TCP_SEEN_SYN);
      // A session adopted mid-stream (no SYN seen) that carries traffic both ways is
      // treated as established too: it is the conservative, longer timeout.
      if (!(out_flags & AFTR_TCP_SEEN_SYN) && !(in_flags & AFTR_TCP_SEEN_SYN)) established = true;
      seconds = (established && !reset && !closed) ? t.tcp_established() : t.tcp_transitory();
      break;
    }
    case IPPROTO_ICMP:
      seconds = t.icmp();
      break;
    default:
      seconds = t.udp();
  }
  return seconds * kNsPerSec;
}

SessionSweeper::SessionSweeper(const aftr::config::v1::Config& config,
                               const bpf::Datapath* datapath, events::EventSink* sink)
    : config_(config), datapath_(datapath), sink_(sink) {}

absl::StatusOr<SweepResult> SessionSweeper::SweepOnce(uint64_t now_ns) {
  SweepResult result;
  if (absl::Status s = ExpireSessions(now_ns, &result); !s.ok()) return s;
  if (absl::Status s = RetireIdleSubscribers(now_ns, &result); !s.ok()) return s;
  if (absl::Status s = UpdatePoolHint(); !s.ok()) return s;
  ReportLostEvents(&result);
  first_sweep_ = false;
  return result;
}

absl::Status SessionSweeper::ExpireSessions(uint64_t now_ns, SweepResult* result) {
  const bpf::MapFds& fds = datapath_->fds();
  std::vector<aftr_session_in_key> in_keys;
  std::vector<aftr_session_in> in_values;
  std::vector<aftr_session_out_key> out_keys;
  std::vector<aftr_session_out> out_values;
  // Internet side first: an entry created between the two reads then has its twin in the
  // second read, so a fresh session is never mistaken for an orphan.
  if (absl::Status s = bpf::ReadMap(fds.sessions_in, &in_keys, &in_values); !s.ok()) return s;
  if (absl::Status s = bpf::ReadMap(fds.sessions_out, &out_keys, &out_values); !s.ok()) return s;

  absl::flat_hash_map<aftr_session_in_key, size_t, InKeyHash, InKeyEq> in_index;
  in_index.reserve(in_keys.size());
  for (size_t i = 0; i < in_keys.size(); ++i) in_index.emplace(in_keys[i], i);

  absl::flat_hash_map<B4, uint32_t> expired_per_b4;
  absl::flat_hash_set<aftr_session_in_key, InKeyHash, InKeyEq> claimed;
  std::vector<NatEvent> deleted;
  for (size_t i = 0; i < out_keys.size(); ++i) {
    const aftr_session_out_key& k = out_keys[i];
    const aftr_session_out& v = out_values[i];
    aftr_session_in_key ik = InKeyOf(k, v);
    const aftr_session_in* in = nullptr;
    if (auto it = in_index.find(ik); it != in_index.end() && SameFlow(k, in_values[it->second])) {
      in = &in_values[it->second];
      claimed.insert(ik);
    }
    uint64_t last = std::max(v.last_seen_ns, in ? in->last_seen_ns : 0);
    uint64_t timeout =
        SessionTimeoutNs(config_.timeouts(), k.proto, v.tcp_flags, in ? in->tcp_flags : 0);
    if (now_ns < last + timeout) {
      result->sessions++;
      continue;
    }
    if (in) bpf_map_delete_elem(fds.sessions_in, &ik);
    if (bpf_map_delete_elem(fds.sessions_out, &k) != 0) continue;  // already gone
    B4 b4;
    std::memcpy(b4.data(), k.b4, 16);
    expired_per_b4[b4]++;
    deleted.push_back(SessionEvent(EventType::kSessionDelete, k, v));
    result->expired++;
  }
  for (size_t i = 0; i < in_keys.size(); ++i) {
    if (claimed.contains(in_keys[i])) continue;
    if (now_ns > in_values[i].last_seen_ns + kOrphanAgeNs) {
      bpf_map_delete_elem(fds.sessions_in, &in_keys[i]);
      LogWarning("removed an Internet-side entry without a session (port %d)",
                 ntohs(in_keys[i].public_port));
    }
  }
  for (const auto& [b4, count] : expired_per_b4) {
    aftr_ctl_args args = {};
    std::memcpy(args.b4, b4.data(), 16);
    args.op = AFTR_CTL_SESSIONS_SUB;
    args.count = count;
    absl::StatusOr<int> rc = datapath_->Ctl(args);
    if (!rc.ok()) return rc.status();
  }
  return sink_->Publish(deleted);
}

absl::Status SessionSweeper::RetireIdleSubscribers(uint64_t now_ns, SweepResult* result) {
  const bpf::MapFds& fds = datapath_->fds();
  std::vector<aftr_subscriber_key> keys;
  std::vector<aftr_subscriber> subs;
  if (absl::Status s = bpf::ReadMap(fds.subscribers, &keys, &subs); !s.ok()) return s;
  const uint64_t hold_down_ns = config_.port_blocks().hold_down_seconds() * kNsPerSec;
  const auto& pb = config_.port_blocks();

  absl::flat_hash_set<B4> present;
  std::vector<NatEvent> released;
  for (size_t i = 0; i < keys.size(); ++i) {
    B4 b4;
    std::memcpy(b4.data(), keys[i].b4, 16);
    present.insert(b4);
    const aftr_subscriber& sub = subs[i];
    uint64_t state = sub.state_sessions >> AFTR_SUB_STATE_SHIFT;
    uint32_t sessions = static_cast<uint32_t>(sub.state_sessions);
    result->subscribers++;
    if (state == AFTR_SUB_ACTIVE) {
      if (sessions != 0) {
        idle_since_ns_.erase(b4);
        continue;
      }
      auto [it, inserted] = idle_since_ns_.try_emplace(b4, now_ns);
      if (now_ns < it->second + hold_down_ns) continue;
      aftr_ctl_args args = {};
      std::memcpy(args.b4, keys[i].b4, 16);
      args.op = AFTR_CTL_RETIRE;
      absl::StatusOr<int> rc = datapath_->Ctl(args);
      if (!rc.ok()) return rc.status();
      if (*rc != 1) continue;  // a session appeared meanwhile: still active
    }
    // Retired (now, or by a previous process that stopped before finishing): no session
    // can be added any more, so its blocks go back to the pool.
    bpf_map_delete_elem(fds.subscribers, &keys[i]);
    idle_since_ns_.erase(b4);
    result->retired++;
    for (uint32_t slot = 0; slot < std::min<uint32_t>(sub.n_blocks, AFTR_MAX_BLOCKS_PER_SUB);
         ++slot) {
      if (sub.blocks[slot] == AFTR_BLOCK_SLOT_EMPTY) continue;
      aftr_ctl_args args = {};
      args.op = AFTR_CTL_BLOCK_FREE;
      args.addr_index = sub.addr_index;
      args.block = sub.blocks[slot];
      absl::StatusOr<int> rc = datapath_->Ctl(args);
      if (!rc.ok()) return rc.status();
      NatEvent e;
      e.type = EventType::kBlockReleased;
      e.time = absl::Now();
      e.b4 = Ipv6Address{b4};
      e.public_addr.host_order = ntohl(sub.public_addr);
      e.public_port = pb.port_min() + sub.blocks[slot] * pb.block_size();
      e.block_size = pb.block_size();
      released.push_back(e);
      result->blocks_released++;
    }
  }
  // Forget idle timers of subscribers that are gone.
  absl::erase_if(idle_since_ns_, [&](const auto& entry) { return !present.contains(entry.first); });
  return sink_->Publish(released);
}

absl::Status SessionSweeper::UpdatePoolHint() {
  const bpf::MapFds& fds = datapath_->fds();
  aftr_pool_hint hint = {};
  int best_free = -1;
  for (uint32_t i = 0; i < datapath_->pool().size(); ++i) {
    aftr_pool_addr pa;
    if (bpf_map_lookup_elem(fds.pool_addrs, &i, &pa) != 0) continue;
    if (pa.flags & AFTR_POOL_ADDR_DRAINING) continue;
    int free_blocks = 0;
    for (uint64_t word : pa.used) free_blocks += __builtin_popcountll(~word);
    if (free_blocks > best_free) {
      best_free = free_blocks;
      hint.addr_index = i;
    }
  }
  uint32_t zero = 0;
  if (bpf_map_update_elem(fds.pool_hint, &zero, &hint, BPF_ANY) != 0) {
    return ErrnoToStatus(errno, "writing aftr_pool_hint");
  }
  return absl::OkStatus();
}

void SessionSweeper::ReportLostEvents(SweepResult* result) {
  absl::StatusOr<bpf::Counters> counters = bpf::ReadCounters(datapath_->fds().counters);
  if (!counters.ok()) return;
  uint64_t lost = (*counters)[AFTR_C_EVENT_LOST];
  if (first_sweep_) {
    // Losses counted before this process started were reported by the previous one.
    events_lost_seen_ = datapath_->adopted() ? lost : 0;
  }
  if (lost <= events_lost_seen_) return;
  result->events_lost = lost - events_lost_seen_;
  events_lost_seen_ = lost;
  LogWarning("%d data-plane events lost: the event ring buffer was full", result->events_lost);
  NatEvent e;
  e.type = EventType::kEventsLost;
  e.time = absl::Now();
  e.count = result->events_lost;
  (void)sink_->Publish(e);
}

}  // namespace aftr::nat
