// Releasing a port block by hand. See block_release.h for the race analysis.
#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/nat/block_release.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "control/bpf/map_batch.h"
#include "control/bpf/session_keys.h"
#include "control/common/errno_status.h"

namespace aftr::nat {
namespace {

using events::EventType;
using events::NatEvent;

// Serialises block releases in this process (see block_release.h).
ABSL_CONST_INIT absl::Mutex release_mu(absl::kConstInit);

// Deletes every session on ports [first, first + size) of `public_addr` (any protocol, any
// owner) and appends its SD event.
absl::StatusOr<uint32_t> DeleteSessionsInBlock(bpf::Datapath& dp, Ipv4Address public_addr,
                                               uint16_t first, uint16_t size,
                                               std::vector<NatEvent>* events) {
  std::vector<aftr_session_in_key> keys;
  std::vector<aftr_session_in> values;
  if (absl::Status s = bpf::ReadMap(dp.fds().sessions_in, &keys, &values); !s.ok()) return s;
  uint32_t deleted = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const aftr_session_in_key& k = keys[i];
    uint16_t port = ntohs(k.public_port);
    if (ntohl(k.public_addr) != public_addr.host_order || port < first || port - first >= size) {
      continue;
    }
    const SessionKey flow = bpf::KeyOf(values[i], k.proto);
    aftr_ctl_args args = bpf::SessionCtlArgs(AFTR_CTL_SESSION_DELETE, flow);
    args.public_addr = k.public_addr;
    args.public_port = k.public_port;
    absl::StatusOr<int> rc = dp.Ctl(args);
    if (!rc.ok()) return rc.status();
    if (*rc == 1) {
      events->push_back(events::SessionEvent(EventType::kSessionDelete, flow, public_addr, port));
      deleted++;
    } else if (*rc == -ESRCH || *rc == -ENOENT) {
      // An Internet-side entry whose flow is not on this port: half of a session that is
      // not (XDP inserts this side first; once the block is marked and the wait is over
      // none is in flight). Nothing was counted for it.
      bpf_map_delete_elem(dp.fds().sessions_in, &k);
    }
  }
  return deleted;
}

// Step 3: slot and bit, together. 1 done, 0 someone else did it.
absl::StatusOr<bool> ReleaseSlot(bpf::Datapath& dp, const Ipv6Address& b4, uint16_t block) {
  aftr_ctl_args args = {};
  args.op = AFTR_CTL_BLOCK_RELEASE;
  std::memcpy(args.b4, b4.bytes.data(), 16);
  args.block = block;
  absl::StatusOr<int> rc = dp.Ctl(args);
  if (!rc.ok()) return rc.status();
  if (*rc == 1) return true;
  if (*rc == -ENOENT) return false;
  return ErrnoToStatus(-*rc, "releasing a port block (aftr_ctl BLOCK_RELEASE)");
}

}  // namespace

absl::StatusOr<ReleasedBlock> ReleasePortBlock(bpf::Datapath& dp, events::EventSink* sink,
                                               Ipv4Address public_addr, uint16_t first_port) {
  absl::MutexLock lock(&release_mu);
  const auto& pb = dp.config().port_blocks();
  const uint32_t blocks_per_addr = (pb.port_max() - pb.port_min() + 1) / pb.block_size();
  if (first_port < pb.port_min() || (first_port - pb.port_min()) % pb.block_size() != 0 ||
      (first_port - pb.port_min()) / pb.block_size() >= blocks_per_addr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "port %d does not start a port block (blocks of %d ports from %d to %d)", first_port,
        pb.block_size(), pb.port_min(), pb.port_max()));
  }
  const uint16_t block = (first_port - pb.port_min()) / pb.block_size();
  const uint16_t size = pb.block_size();
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrFormat("no subscriber owns the port block %s %d-%d",
                                               public_addr.ToString(), first_port,
                                               first_port + size - 1));
  };

  // The owner: the subscriber on that address with the block in a slot.
  std::vector<aftr_subscriber_key> keys;
  std::vector<aftr_subscriber> subs;
  if (absl::Status s = bpf::ReadMap(dp.fds().subscribers, &keys, &subs); !s.ok()) return s;
  const aftr_subscriber_key* owner = nullptr;
  for (size_t i = 0; i < keys.size() && !owner; ++i) {
    if (ntohl(subs[i].public_addr) != public_addr.host_order) continue;
    if (subs[i].addr_index == AFTR_ADDR_INDEX_DETERMINISTIC) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s is a deterministic NAT address: its port ranges follow from the configuration "
          "and are not released",
          public_addr.ToString()));
    }
    for (uint32_t slot = 0; slot < std::min<uint32_t>(subs[i].n_blocks, AFTR_MAX_BLOCKS_PER_SUB);
         ++slot) {
      if ((subs[i].blocks[slot] & ~AFTR_BLOCK_SLOT_RELEASING) == block &&
          subs[i].blocks[slot] != AFTR_BLOCK_SLOT_EMPTY && subs[i].blocks[slot] != AFTR_BLOCK_SLOT_FREE) {
        owner = &keys[i];
        break;
      }
    }
  }
  if (!owner) return not_found();
  ReleasedBlock out;
  std::memcpy(out.b4.bytes.data(), owner->b4, 16);
  out.public_addr = public_addr;
  out.first_port = first_port;
  out.block_size = size;

  // 1. No new session on the block from now on.
  aftr_ctl_args mark = {};
  mark.op = AFTR_CTL_BLOCK_MARK_RELEASING;
  std::memcpy(mark.b4, owner->b4, 16);
  mark.block = block;
  absl::StatusOr<int> rc = dp.Ctl(mark);
  if (!rc.ok()) return rc.status();
  if (*rc == -ENOENT) return not_found();  // released or retired meanwhile
  if (*rc != 1) return ErrnoToStatus(-*rc, "marking a port block for release");

  // 2. ... nor one from an XDP run that read the slot before.
  if (absl::Status s = dp.WaitForDataPlane(); !s.ok()) return s;
  std::vector<NatEvent> events;
  absl::StatusOr<uint32_t> deleted = DeleteSessionsInBlock(dp, public_addr, first_port, size, &events);
  if (!deleted.ok()) {
    (void)sink->Publish(events);  // what was deleted was deleted
    return deleted.status();
  }
  out.sessions_deleted = *deleted;

  // 3. Back to the pool.
  absl::StatusOr<bool> released = ReleaseSlot(dp, out.b4, block);
  if (!released.ok()) {
    (void)sink->Publish(events);
    return released.status();
  }
  if (*released) events.push_back(events::BlockEvent(EventType::kBlockReleased, out.b4, public_addr, first_port, size));
  if (absl::Status s = sink->Publish(events); !s.ok()) return s;
  return out;
}

absl::StatusOr<bool> FinishBlockRelease(bpf::Datapath& dp, events::EventSink* sink,
                                        const Ipv6Address& b4, Ipv4Address public_addr,
                                        uint16_t block) {
  absl::MutexLock lock(&release_mu);
  // Still marked, now that no release of ours runs? Then its release died unfinished.
  aftr_subscriber_key k;
  std::memcpy(k.b4, b4.bytes.data(), 16);
  aftr_subscriber sub;
  if (bpf_map_lookup_elem(dp.fds().subscribers, &k, &sub) != 0) return false;
  const uint16_t marked = block | AFTR_BLOCK_SLOT_RELEASING;
  const uint32_t n = std::min<uint32_t>(sub.n_blocks, AFTR_MAX_BLOCKS_PER_SUB);
  if (std::find(sub.blocks, sub.blocks + n, marked) == sub.blocks + n) return false;

  const auto& pb = dp.config().port_blocks();
  const uint16_t first = pb.port_min() + block * pb.block_size();
  if (absl::Status s = dp.WaitForDataPlane(); !s.ok()) return s;
  std::vector<NatEvent> events;
  absl::StatusOr<uint32_t> deleted =
      DeleteSessionsInBlock(dp, public_addr, first, pb.block_size(), &events);
  if (!deleted.ok()) {
    (void)sink->Publish(events);
    return deleted.status();
  }
  absl::StatusOr<bool> released = ReleaseSlot(dp, b4, block);
  if (!released.ok()) {
    (void)sink->Publish(events);
    return released.status();
  }
  if (*released) events.push_back(events::BlockEvent(EventType::kBlockReleased, b4, public_addr, first, pb.block_size()));
  if (absl::Status s = sink->Publish(events); !s.ok()) return s;
  return *released;
}

absl::StatusOr<bool> ReleaseRetiredBlock(bpf::Datapath& dp, const Ipv6Address& b4,
                                         uint16_t block) {
  absl::MutexLock lock(&release_mu);
  return ReleaseSlot(dp, b4, block);
}

}  // namespace aftr::nat
