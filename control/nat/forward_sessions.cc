// Sessions aftrd makes itself. See forward_sessions.h.
#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/nat/forward_sessions.h"

#include <bpf/bpf.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "control/bpf/map_batch.h"
#include "control/bpf/session_keys.h"
#include "control/common/clock.h"
#include "control/common/errno_status.h"

namespace aftr::nat {
namespace {

using events::EventType;
using events::NatEvent;

constexpr int kAttempts = 6;    // rounds against concurrent changes by XDP
constexpr int kAddrProbes = 8;    // = NAT44_ADDR_PROBES in bpf/lib/nat44.h

// The port geometry of the running configuration.
struct Geometry {
  uint32_t port_min, block_size, blocks_per_addr, max_blocks, max_sessions;
  explicit Geometry(const aftr::config::v1::Config& c)
      : port_min(c.port_blocks().port_min()),
        block_size(c.port_blocks().block_size()),
        blocks_per_addr((c.port_blocks().port_max() - port_min + 1) / block_size),
        max_blocks(c.port_blocks().max_blocks_per_subscriber()),
        max_sessions(c.port_blocks().max_sessions_per_subscriber()) {}
  uint32_t BlockOf(uint16_t port) const { return (port - port_min) / block_size; }
  uint16_t FirstPort(uint32_t block) const { return port_min + block * block_size; }
  bool InRange(uint16_t port) const { return port >= port_min && BlockOf(port) < blocks_per_addr; }
};

const char* ProtoName(uint8_t proto) { return proto == IPPROTO_TCP ? "tcp" : "udp"; }

std::string Describe(const SessionKey& k) {
  return absl::StrFormat("%s %s %s:%d", ProtoName(k.proto), k.b4.ToString(),
                         k.inner_addr.ToString(), k.inner_port);
}

// The same hash as nat44_b4_hash (bpf/lib/nat44.h): a subscriber made here lands where the
// data plane would have put it.
uint32_t B4Hash(const Ipv6Address& b4) {
  uint32_t w[4];
  std::memcpy(w, b4.bytes.data(), 16);
  uint32_t h = (w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1u;
  return h ^ (h >> 15);
}

bool BitSet(const aftr_pool_addr& pa, uint32_t block) {
  return (pa.used[block / 64] >> (block % 64)) & 1;
}

absl::StatusOr<std::optional<aftr_subscriber>> LookupSubscriber(const bpf::Datapath& dp,
                                                                const Ipv6Address& b4) {
  aftr_subscriber_key k;
  std::memcpy(k.b4, b4.bytes.data(), 16);
  aftr_subscriber v;
  if (bpf_map_lookup_elem(dp.fds().subscribers, &k, &v) == 0) return v;
  if (errno == ENOENT) return std::nullopt;
  return ErrnoToStatus(errno, "reading aftr_subscribers");
}

bool Retired(const aftr_subscriber& s) {
  return (s.state_sessions >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE;
}

absl::Status RetiringError(const Ipv6Address& b4) {
  return absl::UnavailableError(absl::StrCat(
      "the subscriber ", b4.ToString(), " is being retired (its blocks are returning to the "
      "pool); retry after the next sweep"));
}

// Usable blocks of a subscriber, in slot order.
std::vector<uint16_t> Blocks(const aftr_subscriber& s) {
  std::vector<uint16_t> out;
  for (uint32_t i = 0; i < std::min<uint32_t>(s.n_blocks, AFTR_MAX_BLOCKS_PER_SUB); ++i) {
    if (AFTR_BLOCK_SLOT_USABLE(s.blocks[i])) out.push_back(s.blocks[i]);
  }
  return out;
}

// Makes the subscriber of `b4` with a first block: `want_block` if set (on the first
// address in probe order where it is free), else the lowest free block of the first address
// in probe order that has one. Appends BA. Returns the subscriber (ours or a racing XDP's).
absl::StatusOr<aftr_subscriber> CreateSubscriber(bpf::Datapath& dp, const Geometry& g,
                                                 const Ipv6Address& b4,
                                                 std::optional<uint32_t> want_block,
                                                 std::vector<NatEvent>* events) {
  // A B4 in a deterministic range gets its computed range, as its first packet would.
  {
    aftr_ctl_args args = {};
    args.op = AFTR_CTL_DET_SUBSCRIBER_CREATE;
    std::memcpy(args.b4, b4.bytes.data(), 16);
    args.last_seen_ns = MonotonicCoarseNs();
    absl::StatusOr<int> rc = dp.Ctl(args);
    if (!rc.ok()) return rc.status();
    if (*rc == 0) {
      absl::StatusOr<std::optional<aftr_subscriber>> sub = LookupSubscriber(dp, b4);
      if (!sub.ok()) return sub.status();
      if (sub->has_value()) return **sub;
      return absl::UnavailableError("the deterministic subscriber vanished at once; retry");
    }
    if (*rc < 0) return ErrnoToStatus(-*rc, "making a deterministic subscriber");
  }
  const uint32_t count = dp.pool_size();
  if (count == 0) return absl::FailedPreconditionError("the pool has no address");
  std::vector<uint32_t> candidates;
  const uint32_t start = B4Hash(b4) % count;
  for (int i = 0; i < kAddrProbes; ++i) candidates.push_back((start + i) % count);
  uint32_t zero = 0;
  aftr_pool_hint hint = {};
  if (bpf_map_lookup_elem(dp.fds().pool_hint, &zero, &hint) == 0 && hint.addr_index < count) {
    candidates.push_back(hint.addr_index);
  }
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    for (uint32_t index : candidates) {
      aftr_pool_addr pa;
      if (bpf_map_lookup_elem(dp.fds().pool_addrs, &index, &pa) != 0) continue;
      if (pa.addr == 0 || (pa.flags & AFTR_POOL_ADDR_DRAINING)) continue;
      std::optional<uint32_t> block = want_block;
      if (!block) {
        for (uint32_t b = 0; b < g.blocks_per_addr && !block; ++b) {
          if (!BitSet(pa, b)) block = b;
        }
      }
      if (!block || BitSet(pa, *block)) continue;
      aftr_ctl_args args = {};
      args.op = AFTR_CTL_SUBSCRIBER_CREATE;
      std::memcpy(args.b4, b4.bytes.data(), 16);
      args.addr_index = index;
      args.block = *block;
      args.last_seen_ns = MonotonicCoarseNs();
      absl::StatusOr<int> rc = dp.Ctl(args);
      if (!rc.ok()) return rc.status();
      if (*rc == 1) {
        events->push_back(events::BlockEvent(EventType::kBlockClaimed, b4, Ipv4Address{ntohl(pa.addr)}, g.FirstPort(*block),
                                     g.block_size));
      }
      if (*rc == 1 || *rc == -EEXIST) {
        absl::StatusOr<std::optional<aftr_subscriber>> sub = LookupSubscriber(dp, b4);
        if (!sub.ok()) return sub.status();
        if (sub->has_value()) return **sub;
        break;  // gone again (retired at once?): another round
      }
      if (*rc == -EBUSY || *rc == -EADDRNOTAVAIL) continue;  // taken or drained meanwhile
      if (*rc == -E2BIG || *rc == -ENOMEM || *rc == -ENOSPC) {
        return absl::ResourceExhaustedError("the subscriber table is full (tables.max_subscribers)");
      }
      return ErrnoToStatus(-*rc, "creating a subscriber (aftr_ctl SUBSCRIBER_CREATE)");
    }
  }
  if (want_block) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the port block %d-%d is owned by another subscriber on every address a new "
        "subscriber %s could get",
        g.FirstPort(*want_block), g.FirstPort(*want_block) + g.block_size - 1, b4.ToString()));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "no free port block on the addresses a new subscriber ", b4.ToString(), " could get"));
}

enum class Added { kAdded, kTaken, kQuota, kDraining, kRetiring, kRetry };

// Gives the subscriber `block` (on its address) under its quota; appends BA when added.
absl::StatusOr<Added> AddBlock(bpf::Datapath& dp, const Geometry& g, const Ipv6Address& b4,
                               const aftr_subscriber& sub, uint32_t block,
                               std::vector<NatEvent>* events) {
  aftr_ctl_args args = {};
  args.op = AFTR_CTL_BLOCK_ADD;
  std::memcpy(args.b4, b4.bytes.data(), 16);
  args.block = block;
  absl::StatusOr<int> rc = dp.Ctl(args);
  if (!rc.ok()) return rc.status();
  if (*rc >= 0) {
    events->push_back(
        events::BlockEvent(EventType::kBlockClaimed, b4, Ipv4Address{ntohl(sub.public_addr)}, g.FirstPort(block), g.block_size));
    return Added::kAdded;
  }
  switch (-*rc) {
    case EBUSY: return Added::kTaken;
    case ENOSPC: return Added::kQuota;
    case EADDRNOTAVAIL: return Added::kDraining;
    case ESTALE: return Added::kRetiring;
    case EAGAIN:
    case ENOENT: return Added::kRetry;
  }
  return ErrnoToStatus(-*rc, "adding a port block (aftr_ctl BLOCK_ADD)");
}

absl::Status DrainingError(Ipv4Address addr) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the subscriber's address ", addr.ToString(),
      " is draining (its prefix left pool_prefixes): no new block there"));
}

enum class Made { kDone, kPortTaken, kFlowExists, kRetry };

// One try at the session of `key` on `port`.
absl::StatusOr<Made> MakeSession(bpf::Datapath& dp, const Geometry& g, const ForwardRequest& req,
                                 const aftr_subscriber& sub, uint16_t port) {
  const SessionKey& key = req.key;
  aftr_ctl_args args = bpf::SessionCtlArgs(AFTR_CTL_SESSION_CREATE, key);
  args.public_addr = sub.public_addr;
  args.public_port = htons(port);
  args.flags = req.flags;
  args.softwire_index = req.softwire_index;
  args.last_seen_ns = MonotonicCoarseNs();
  absl::StatusOr<int> rc = dp.Ctl(args);
  if (!rc.ok()) return rc.status();
  switch (*rc) {
    case 1:
      return Made::kDone;
    case -EADDRINUSE:
      return Made::kPortTaken;
    case -EEXIST:
      return Made::kFlowExists;
    case -ENXIO:  // the block left the subscriber meanwhile
    case -EAGAIN:
    case -ENOENT:
      return Made::kRetry;
    case -EDQUOT:
      return absl::ResourceExhaustedError(absl::StrFormat(
          "the subscriber %s already has port_blocks.max_sessions_per_subscriber (%d) sessions",
          key.b4.ToString(), g.max_sessions));
    case -ESTALE:
      return RetiringError(key.b4);
    case -E2BIG:
    case -ENOMEM:
    case -ENOSPC:
      return absl::ResourceExhaustedError("the session table is full (tables.max_sessions)");
  }
  return ErrnoToStatus(-*rc, "creating a session (aftr_ctl SESSION_CREATE)");
}

bool PortFree(const bpf::Datapath& dp, uint32_t addr_be, uint16_t port, uint8_t proto) {
  aftr_session_in_key k = {};
  k.public_addr = addr_be;
  k.public_port = htons(port);
  k.proto = proto;
  aftr_session_in v;
  return bpf_map_lookup_elem(dp.fds().sessions_in, &k, &v) != 0;
}

ForwardFailure Classify(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument: return ForwardFailure::kInvalid;
    case absl::StatusCode::kAlreadyExists: return ForwardFailure::kPortUnavailable;
    case absl::StatusCode::kFailedPrecondition: return ForwardFailure::kPortUnavailable;
    case absl::StatusCode::kResourceExhausted: return ForwardFailure::kSubscriberLimit;
    default: return ForwardFailure::kUnavailable;
  }
}

bool IsTableFull(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted &&
         (absl::StrContains(s.message(), "table is full") ||
          absl::StrContains(s.message(), "no free port block"));
}

}  // namespace

absl::StatusOr<ForwardSession> MakeForwardSession(bpf::Datapath& dp, events::EventSink* sink,
                                                  const ForwardRequest& req,
                                                  ForwardFailure* failure) {
  const SessionKey& key = req.key;
  const std::optional<uint16_t>& public_port = req.public_port;
  ForwardFailure ignored;
  ForwardFailure& why = failure ? *failure : ignored;
  why = ForwardFailure::kNone;
  std::vector<NatEvent> events;
  // Whatever happens below, what was done is logged; errors get their reason.
  auto finish = [&](absl::StatusOr<ForwardSession> result,
                    std::optional<ForwardFailure> reason = std::nullopt) -> absl::StatusOr<ForwardSession> {
    absl::Status published = sink->Publish(events);
    if (!result.ok()) {
      why = reason ? *reason : IsTableFull(result.status()) ? ForwardFailure::kNoResources
                                                             : Classify(result.status());
      return result;
    }
    if (!published.ok()) {
      why = ForwardFailure::kUnavailable;
      return published;
    }
    return result;
  };

  if (key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP) {
    return finish(absl::InvalidArgumentError(absl::StrCat("protocol ", key.proto, ": only TCP and UDP")));
  }
  if (key.inner_port == 0) return finish(absl::InvalidArgumentError("inner port 0"));
  const Geometry g(dp.config());
  if (public_port && !g.InRange(*public_port) && req.port_required) {
    return finish(absl::FailedPreconditionError(absl::StrFormat(
        "public port %d is outside the ports handed out in blocks (%d-%d)", *public_port,
        g.port_min, g.port_min + g.blocks_per_addr * g.block_size - 1)));
  }
  // A wanted port outside the blocks is no wish at all when another port will do.
  const std::optional<uint16_t> wanted =
      public_port && g.InRange(*public_port) ? public_port : std::nullopt;
  aftr_b4_prefix_key pk = {};
  pk.prefixlen = 128;
  std::memcpy(pk.addr, key.b4.bytes.data(), 16);
  uint32_t allowed;
  if (bpf_map_lookup_elem(dp.fds().b4_prefixes, &pk, &allowed) != 0) {
    return finish(absl::FailedPreconditionError(
                      absl::StrCat("B4 ", key.b4.ToString(), " is not in any configured b4_prefixes")),
                  ForwardFailure::kInvalid);
  }

  const aftr_session_out_key out_key = bpf::OutKey(key);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    // An existing session of this flow: refused, flagged where it is, or moved.
    aftr_session_out existing;
    if (bpf_map_lookup_elem(dp.fds().sessions_out, &out_key, &existing) == 0) {
      ForwardSession here{Ipv4Address{ntohl(existing.public_addr)}, ntohs(existing.public_port), false};
      if (existing.flags & req.conflicting_flags) {
        return finish(absl::AlreadyExistsError(absl::StrFormat(
                          "%s already has a %s mapping: %s:%d", Describe(key),
                          (existing.flags & AFTR_SESSION_STATIC) ? "static" : "PCP",
                          here.public_addr.ToString(), here.public_port)),
                      ForwardFailure::kConflict);
      }
      const bool on_wanted_port = !wanted || *wanted == here.public_port;
      if (on_wanted_port || !req.move_existing) {
        if (!on_wanted_port && req.port_required) {
          return finish(absl::AlreadyExistsError(absl::StrFormat(
              "%s is already mapped to %s:%d by its traffic", Describe(key),
              here.public_addr.ToString(), here.public_port)));
        }
        aftr_ctl_args args = bpf::SessionCtlArgs(AFTR_CTL_SESSION_FLAGS, key);
        args.flags = req.flags;
        absl::StatusOr<int> rc = dp.Ctl(args);
        if (!rc.ok()) return finish(rc.status());
        if (*rc == 1) return finish(here);
        continue;  // expired meanwhile: make it afresh
      }
      aftr_ctl_args del = bpf::SessionCtlArgs(AFTR_CTL_SESSION_DELETE, key);
      del.public_addr = existing.public_addr;
      del.public_port = existing.public_port;
      absl::StatusOr<int> rc = dp.Ctl(del);
      if (!rc.ok()) return finish(rc.status());
      if (*rc == 1) {
        events.push_back(events::SessionEvent(EventType::kSessionDelete, key, here.public_addr, here.public_port));
      }
    }

    // The subscriber, made if needed.
    absl::StatusOr<std::optional<aftr_subscriber>> found = LookupSubscriber(dp, key.b4);
    if (!found.ok()) return finish(found.status());
    aftr_subscriber sub;
    if (found->has_value()) {
      sub = **found;
    } else {
      std::optional<uint32_t> want;
      if (wanted) want = g.BlockOf(*wanted);
      absl::StatusOr<aftr_subscriber> made = CreateSubscriber(dp, g, key.b4, want, &events);
      if (!made.ok() && want && !req.port_required &&
          made.status().code() == absl::StatusCode::kFailedPrecondition) {
        made = CreateSubscriber(dp, g, key.b4, std::nullopt, &events);  // any block will do
      }
      if (!made.ok()) return finish(made.status());
      sub = *made;
    }
    if (Retired(sub)) return finish(RetiringError(key.b4));
    const Ipv4Address addr{ntohl(sub.public_addr)};
    std::vector<uint16_t> blocks = Blocks(sub);

    // The wanted port, if the subscriber has (or may claim) its block and it is free.
    std::optional<uint16_t> port = wanted;
    if (port) {
      uint32_t block = g.BlockOf(*port);
      absl::Status unavailable;
      if (std::find(blocks.begin(), blocks.end(), block) == blocks.end()) {
        const std::string where = absl::StrFormat(
            "public port %d lies in block %d-%d of %s, which", *port, g.FirstPort(block),
            g.FirstPort(block) + g.block_size - 1, addr.ToString());
        if (!req.claim_block_for_port || sub.addr_index == AFTR_ADDR_INDEX_DETERMINISTIC) {
          unavailable = absl::FailedPreconditionError(absl::StrCat(
              where, " is not one of the subscriber's blocks",
              sub.addr_index == AFTR_ADDR_INDEX_DETERMINISTIC ? " (its deterministic range)" : ""));
        } else {
          absl::StatusOr<Added> added = AddBlock(dp, g, key.b4, sub, block, &events);
          if (!added.ok()) return finish(added.status());
          switch (*added) {
            case Added::kAdded: break;
            case Added::kRetry: continue;
            case Added::kRetiring: return finish(RetiringError(key.b4));
            case Added::kDraining:
              unavailable = DrainingError(addr);
              break;
            case Added::kTaken:
              unavailable = absl::FailedPreconditionError(absl::StrCat(
                  where, " another subscriber owns (a subscriber's ports come from its own blocks)"));
              break;
            case Added::kQuota:
              unavailable = absl::FailedPreconditionError(absl::StrFormat(
                  "%s the subscriber does not own and cannot claim: it already holds "
                  "port_blocks.max_blocks_per_subscriber (%d) blocks",
                  where, g.max_blocks));
              break;
          }
          if (unavailable.ok()) {
            absl::StatusOr<std::optional<aftr_subscriber>> again = LookupSubscriber(dp, key.b4);
            if (!again.ok()) return finish(again.status());
            if (!again->has_value()) continue;
            sub = **again;
            blocks = Blocks(sub);
          }
        }
      }
      if (unavailable.ok()) {
        absl::StatusOr<Made> made = MakeSession(dp, g, req, sub, *port);
        if (!made.ok()) return finish(made.status());
        if (*made == Made::kDone) {
          events.push_back(events::SessionEvent(EventType::kSessionCreate, key, addr, *port));
          return finish(ForwardSession{addr, *port, true});
        }
        if (*made == Made::kPortTaken) {
          unavailable = absl::AlreadyExistsError(absl::StrFormat(
              "public %s %s:%d is used by another session", ProtoName(key.proto), addr.ToString(),
              *port));
        } else {
          continue;  // the flow got a session meanwhile, or the block moved: again
        }
      }
      if (req.port_required) {
        return finish(unavailable, ForwardFailure::kPortUnavailable);
      }
    }

    // Any free port of its blocks.
    bool again = false;
    for (uint16_t block : blocks) {
      for (uint32_t i = 0; i < g.block_size && !again; ++i) {
        uint16_t p = g.FirstPort(block) + i;
        if (!PortFree(dp, sub.public_addr, p, key.proto)) continue;
        absl::StatusOr<Made> made = MakeSession(dp, g, req, sub, p);
        if (!made.ok()) return finish(made.status());
        if (*made == Made::kDone) {
          events.push_back(events::SessionEvent(EventType::kSessionCreate, key, addr, p));
          return finish(ForwardSession{addr, p, true});
        }
        if (*made != Made::kPortTaken) again = true;
      }
      if (again) break;
    }
    if (again) continue;
    // Every port taken: one more block, on its address (none for a deterministic range).
    if (sub.addr_index == AFTR_ADDR_INDEX_DETERMINISTIC) {
      return finish(absl::ResourceExhaustedError(absl::StrFormat(
                        "every port of the subscriber's deterministic range on %s is in use",
                        addr.ToString())),
                    ForwardFailure::kNoResources);
    }
    aftr_pool_addr pa;
    if (bpf_map_lookup_elem(dp.fds().pool_addrs, &sub.addr_index, &pa) != 0) {
      return finish(ErrnoToStatus(errno, "reading aftr_pool_addrs"));
    }
    std::optional<uint32_t> free_block;
    for (uint32_t b = 0; b < g.blocks_per_addr && !free_block; ++b) {
      if (!BitSet(pa, b)) free_block = b;
    }
    if (!free_block) {
      return finish(absl::ResourceExhaustedError(absl::StrFormat(
                        "every port of the subscriber's blocks is in use and %s has no free block",
                        addr.ToString())),
                    ForwardFailure::kNoResources);
    }
    absl::StatusOr<Added> added = AddBlock(dp, g, key.b4, sub, *free_block, &events);
    if (!added.ok()) return finish(added.status());
    switch (*added) {
      case Added::kAdded:
      case Added::kTaken:  // claimed by someone meanwhile: look again
      case Added::kRetry:
        continue;
      case Added::kRetiring: return finish(RetiringError(key.b4));
      case Added::kDraining: return finish(DrainingError(addr), ForwardFailure::kUnavailable);
      case Added::kQuota:
        return finish(absl::ResourceExhaustedError(absl::StrFormat(
            "every port of the subscriber's %d blocks is in use and it holds "
            "port_blocks.max_blocks_per_subscriber (%d)",
            blocks.size(), g.max_blocks)));
    }
  }
  return finish(absl::AbortedError(absl::StrCat(
      "the state of ", Describe(key), " kept changing under concurrent traffic; retry")));
}

absl::Status DeleteFlaggedSession(bpf::Datapath& dp, events::EventSink* sink, const SessionKey& key,
                                  uint8_t flag, std::optional<uint16_t> public_port) {
  const aftr_session_out_key out_key = bpf::OutKey(key);
  aftr_session_out v;
  if (bpf_map_lookup_elem(dp.fds().sessions_out, &out_key, &v) != 0 || !(v.flags & flag) ||
      (public_port && ntohs(v.public_port) != *public_port)) {
    return absl::NotFoundError(absl::StrCat("no such mapping for ", Describe(key)));
  }
  aftr_ctl_args args = bpf::SessionCtlArgs(AFTR_CTL_SESSION_DELETE, key);
  args.public_addr = v.public_addr;
  args.public_port = v.public_port;
  absl::StatusOr<int> rc = dp.Ctl(args);
  if (!rc.ok()) return rc.status();
  if (*rc != 1) return absl::NotFoundError(absl::StrCat("no such mapping for ", Describe(key)));
  return sink->Publish(events::SessionEvent(EventType::kSessionDelete, key,
                                            Ipv4Address{ntohl(v.public_addr)}, ntohs(v.public_port)));
}

absl::Status SetSessionFlags(bpf::Datapath& dp, const SessionKey& key, uint8_t flags, bool clear) {
  aftr_ctl_args args = bpf::SessionCtlArgs(AFTR_CTL_SESSION_FLAGS, key);
  args.flags = flags;
  if (clear) args.ctl_flags = AFTR_CTL_F_CLEAR;
  absl::StatusOr<int> rc = dp.Ctl(args);
  if (!rc.ok()) return rc.status();
  if (*rc != 1) return absl::NotFoundError(absl::StrCat("no session for ", Describe(key)));
  return absl::OkStatus();
}

}  // namespace aftr::nat
