#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/nat/session_sweeper.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "control/bpf/map_batch.h"
#include "control/bpf/session_keys.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/nat/block_release.h"

namespace aftr::nat {
namespace {

using events::EventType;
using events::NatEvent;
using bpf::InKeyEq;
using bpf::InKeyHash;
using bpf::InKeyOf;
using bpf::SameFlow;

constexpr uint64_t kNsPerSec = 1000000000ull;

// An Internet-side entry whose subscriber-side twin is missing (only possible if a create
// was interrupted) is removed once it has been idle this long.
constexpr uint64_t kOrphanAgeNs = 10 * kNsPerSec;

}  // namespace

uint64_t SessionTimeoutNs(const aftr::config::v1::Timeouts& t, uint8_t proto,
                          uint8_t out_flags, uint8_t in_flags) {
  uint64_t seconds;
  switch (bpf::TcpStateOf(proto, out_flags, in_flags)) {
    case bpf::TcpState::kEstablished:
      seconds = t.tcp_established();
      break;
    case bpf::TcpState::kTransitory:
    case bpf::TcpState::kClosed:
      seconds = t.tcp_transitory();
      break;
    case bpf::TcpState::kNotTcp:
      seconds = proto == IPPROTO_ICMP ? t.icmp() : t.udp();
      break;
  }
  return seconds * kNsPerSec;
}

SessionSweeper::SessionSweeper(bpf::Datapath* datapath, events::EventSink* sink)
    : datapath_(datapath), sink_(sink) {}

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
  const aftr::config::v1::Config& config = datapath_->config();
  const auto& pb = config.port_blocks();
  std::vector<aftr_session_in_key> in_keys;
  std::vector<aftr_session_in> in_values;
  std::vector<aftr_session_out_key> out_keys;
  std::vector<aftr_session_out> out_values;
  std::vector<aftr_subscriber_key> sub_keys;
  std::vector<aftr_subscriber> sub_values;
  // Internet side first: an entry created between the two reads then has its twin in the
  // second read, so a fresh session is never mistaken for an orphan. Subscribers last: a
  // session is inserted after the block slot it uses was written, so every session read
  // here finds its block in the subscriber read after it (no fresh session looks stray).
  if (absl::Status s = bpf::ReadMap(fds.sessions_in, &in_keys, &in_values); !s.ok()) return s;
  if (absl::Status s = bpf::ReadMap(fds.sessions_out, &out_keys, &out_values); !s.ok()) return s;
  if (absl::Status s = bpf::ReadMap(fds.subscribers, &sub_keys, &sub_values); !s.ok()) return s;

  absl::flat_hash_map<aftr_session_in_key, size_t, InKeyHash, InKeyEq> in_index;
  in_index.reserve(in_keys.size());
  for (size_t i = 0; i < in_keys.size(); ++i) in_index.emplace(in_keys[i], i);
  absl::flat_hash_map<B4, size_t> sub_index;
  sub_index.reserve(sub_keys.size());
  for (size_t i = 0; i < sub_keys.size(); ++i) {
    B4 b4;
    std::memcpy(b4.data(), sub_keys[i].b4, 16);
    sub_index.emplace(b4, i);
  }
  // Whether the session's public port lies in one of its subscriber's blocks (one being
  // released counts: the release deletes its sessions itself).
  auto in_own_block = [&](const aftr_session_out_key& k, const aftr_session_out& v) {
    B4 b4;
    std::memcpy(b4.data(), k.b4, 16);
    auto it = sub_index.find(b4);
    if (it == sub_index.end()) return false;
    const aftr_subscriber& sub = sub_values[it->second];
    uint16_t port = ntohs(v.public_port);
    if (sub.public_addr != v.public_addr || port < pb.port_min()) return false;
    uint32_t block = (port - pb.port_min()) / pb.block_size();
    for (uint32_t slot = 0; slot < std::min<uint32_t>(sub.n_blocks, AFTR_MAX_BLOCKS_PER_SUB); ++slot) {
      uint16_t held = sub.blocks[slot];
      if (held != AFTR_BLOCK_SLOT_EMPTY && held != AFTR_BLOCK_SLOT_FREE &&
          (held & ~AFTR_BLOCK_SLOT_RELEASING) == block) {
        return true;
      }
    }
    return false;
  };

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
    const bool stray = !in_own_block(k, v);
    uint64_t last = std::max(v.last_seen_ns, in ? in->last_seen_ns : 0);
    if (!stray) {
      if (v.flags & AFTR_SESSION_HELD) {
        result->sessions++;  // a static or PCP mapping: its owner ends it
        continue;
      }
      uint64_t timeout = SessionTimeoutNs(config.timeouts(), k.proto, v.tcp_flags,
                                          in ? (in->tcp_flags & AFTR_TCP_SEEN_MASK) : 0);
      if (now_ns < last + timeout) {
        result->sessions++;
        continue;
      }
    }
    // One aftr_ctl run deletes both entries and lowers the count: a daemon killed here
    // leaves either the whole session or none of it. An expiry is refused if traffic
    // came after our snapshot, or if the session became static meanwhile.
    aftr_ctl_args args = bpf::SessionCtlArgs(AFTR_CTL_SESSION_DELETE, bpf::KeyOf(k));
    args.public_addr = v.public_addr;
    args.public_port = v.public_port;
    if (!stray) {
      args.ctl_flags = AFTR_CTL_F_DYNAMIC_ONLY;
      args.last_seen_ns = last;
    }
    absl::StatusOr<int> rc = datapath_->Ctl(args);
    if (!rc.ok()) return rc.status();
    if (*rc == -EBUSY || *rc == -EPERM) {
      result->sessions++;
      continue;
    }
    if (*rc != 1) continue;  // gone or changed meanwhile
    deleted.push_back(events::SessionEvent(EventType::kSessionDelete, bpf::KeyOf(k),
                                           Ipv4Address{ntohl(v.public_addr)}, ntohs(v.public_port)));
    if (stray) {
      result->strays++;
      LogWarning("deleted a session outside its subscriber's port blocks (%s port %d)",
                 Ipv4Address{ntohl(v.public_addr)}.ToString(), ntohs(v.public_port));
    } else {
      result->expired++;
    }
  }
  for (size_t i = 0; i < in_keys.size(); ++i) {
    if (claimed.contains(in_keys[i])) continue;
    if (now_ns > in_values[i].last_seen_ns + kOrphanAgeNs) {
      bpf_map_delete_elem(fds.sessions_in, &in_keys[i]);
      LogWarning("removed an Internet-side entry without a session (port %d)",
                 ntohs(in_keys[i].public_port));
    }
  }
  return sink_->Publish(deleted);
}

absl::Status SessionSweeper::RetireIdleSubscribers(uint64_t now_ns, SweepResult* result) {
  const bpf::MapFds& fds = datapath_->fds();
  const aftr::config::v1::Config& config = datapath_->config();
  std::vector<aftr_subscriber_key> keys;
  std::vector<aftr_subscriber> subs;
  if (absl::Status s = bpf::ReadMap(fds.subscribers, &keys, &subs); !s.ok()) return s;
  const uint64_t hold_down_ns = config.port_blocks().hold_down_seconds() * kNsPerSec;
  const auto& pb = config.port_blocks();

  absl::flat_hash_set<B4> present;
  std::vector<NatEvent> released;
  for (size_t i = 0; i < keys.size(); ++i) {
    B4 b4;
    std::memcpy(b4.data(), keys[i].b4, 16);
    present.insert(b4);
    const aftr_subscriber& sub = subs[i];
    uint64_t state = sub.state_sessions >> AFTR_SUB_STATE_SHIFT;
    uint32_t sessions = static_cast<uint32_t>(sub.state_sessions);
    const uint32_t n_slots = std::min<uint32_t>(sub.n_blocks, AFTR_MAX_BLOCKS_PER_SUB);
    result->subscribers++;
    if (state == AFTR_SUB_ACTIVE) {
      // A block marked releasing by a release that is not running (it died with its
      // daemon, or failed halfway): FinishBlockRelease ends it, and does nothing for one
      // that a ReleasePortBlock of this process is still carrying out.
      for (uint32_t slot = 0; slot < n_slots; ++slot) {
        uint16_t v = sub.blocks[slot];
        if (v == AFTR_BLOCK_SLOT_EMPTY || v == AFTR_BLOCK_SLOT_FREE || AFTR_BLOCK_SLOT_USABLE(v)) continue;
        uint16_t block = v & ~AFTR_BLOCK_SLOT_RELEASING;
        absl::StatusOr<bool> done = FinishBlockRelease(
            *datapath_, sink_, Ipv6Address{b4}, Ipv4Address{ntohl(sub.public_addr)}, block);
        if (!done.ok()) return done.status();
        if (*done) {
          LogWarning("finished the interrupted release of port block %d of %s",
                     pb.port_min() + block * pb.block_size(),
                     Ipv4Address{ntohl(sub.public_addr)}.ToString());
          result->blocks_released++;
        }
      }
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
    // A deterministic subscriber owns no pool block: its range comes back computed with its
    // next packet, and nothing is logged (the configuration says who had it).
    if (sub.addr_index == AFTR_ADDR_INDEX_DETERMINISTIC) {
      bpf_map_delete_elem(fds.subscribers, &keys[i]);
      idle_since_ns_.erase(b4);
      result->retired++;
      continue;
    }
    // Retired (now, or by a previous process that stopped before finishing): no session
    // can be added any more. Each block goes back with its slot in one aftr_ctl run, so a
    // slot already released (FREE) by a previous process is not freed again, and the
    // subscriber entry goes only when none is left.
    bool all_released = true;
    for (uint32_t slot = 0; slot < n_slots; ++slot) {
      uint16_t v = sub.blocks[slot];
      if (v == AFTR_BLOCK_SLOT_EMPTY || v == AFTR_BLOCK_SLOT_FREE) continue;
      uint16_t block = v & ~AFTR_BLOCK_SLOT_RELEASING;
      absl::StatusOr<bool> rc = ReleaseRetiredBlock(*datapath_, Ipv6Address{b4}, block);
      if (!rc.ok()) {
        LogWarning("releasing a retired subscriber's block: %s", rc.status().ToString());
        all_released = false;
        continue;
      }
      if (!*rc) continue;  // released meanwhile (by a ReleasePortBlock)
      NatEvent e;
      e.type = EventType::kBlockReleased;
      e.time = absl::Now();
      e.b4 = Ipv6Address{b4};
      e.public_addr.host_order = ntohl(sub.public_addr);
      e.public_port = pb.port_min() + block * pb.block_size();
      e.block_size = pb.block_size();
      released.push_back(e);
      result->blocks_released++;
    }
    if (!all_released) continue;  // try again next sweep
    bpf_map_delete_elem(fds.subscribers, &keys[i]);
    idle_since_ns_.erase(b4);
    result->retired++;
  }
  // Forget idle timers of subscribers that are gone.
  absl::erase_if(idle_since_ns_, [&](const auto& entry) { return !present.contains(entry.first); });
  return sink_->Publish(released);
}

absl::Status SessionSweeper::UpdatePoolHint() {
  const bpf::MapFds& fds = datapath_->fds();
  aftr_pool_hint hint = {};
  int best_free = -1;
  const uint32_t entries = datapath_->pool_size();
  for (uint32_t i = 0; i < entries; ++i) {
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
  absl::StatusOr<bpf::CounterSnapshot> counters = bpf::ReadCounters(datapath_->fds().counters);
  if (!counters.ok()) return;
  uint64_t lost = counters->Total()[AFTR_C_EVENT_LOST];
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
