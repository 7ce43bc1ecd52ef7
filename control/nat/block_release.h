// Releasing a port block by hand (the API's ReleasePortBlock): every session on the block's
// ports is deleted and logged, the block leaves its subscriber and returns to the pool.
//
// The race with the data plane, and how it is settled. XDP makes a session by reading one
// of the subscriber's block slots and then inserting the session on a port of that block;
// nothing stops a CPU between the two. So the release goes in three ordered steps:
//   1. aftr_ctl BLOCK_MARK_RELEASING flags the slot (one CAS): no XDP run that reads the
//      slot afterwards uses the block, and the bit stays owned, so nobody else gets it;
//   2. Datapath::WaitForDataPlane waits for every XDP run that may have read the slot
//      before step 1 (an RCU grace period), then every session on the block's ports is
//      deleted with its SD event (aftr_ctl SESSION_DELETE, which also lowers the owner's
//      session count): after the wait no new one can appear;
//   3. aftr_ctl BLOCK_RELEASE frees the slot and the bit in one run, and BR is logged.
// So the block's next owner (and its BA line) always comes after the last SD of the old
// one. A daemon killed in between leaves the slot marked: the sweeper of the next aftrd
// finishes the release (FinishBlockRelease), so the block is neither lost nor handed out
// twice; as a backstop the sweeper also deletes, with SD, any session whose port lies
// outside its subscriber's blocks.
//
// Within one aftrd, releases are serialised with each other and with the sweeper's
// FinishBlockRelease and ReleaseRetiredBlock (one mutex here): otherwise the sweeper could
// free a block that a ReleasePortBlock is still emptying, a new subscriber could take it,
// and the release would then delete that subscriber's new sessions.
#ifndef AFTR_CONTROL_NAT_BLOCK_RELEASE_H_
#define AFTR_CONTROL_NAT_BLOCK_RELEASE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "control/bpf/datapath.h"
#include "control/common/ip.h"
#include "control/events/event_sink.h"

namespace aftr::nat {

struct ReleasedBlock {
  Ipv6Address b4;  // the subscriber that owned it
  Ipv4Address public_addr;
  uint16_t first_port = 0;
  uint16_t block_size = 0;
  uint32_t sessions_deleted = 0;  // static mappings included
};

// Releases the block of `public_addr` starting at `first_port`. InvalidArgument if
// first_port does not start a block; NotFound if no subscriber owns it. Events (SD per
// session, then BR) go to `sink`.
absl::StatusOr<ReleasedBlock> ReleasePortBlock(bpf::Datapath& datapath, events::EventSink* sink,
                                               Ipv4Address public_addr, uint16_t first_port);

// The sweeper's recovery: if `block` is still marked releasing in subscriber b4's slots
// and no release of this process is running, performs steps 2 and 3 (with SD and BR
// events). True if it released the block.
absl::StatusOr<bool> FinishBlockRelease(bpf::Datapath& datapath, events::EventSink* sink,
                                        const Ipv6Address& b4, Ipv4Address public_addr,
                                        uint16_t block);

// The sweeper's return of a retired subscriber's block (slot and bit in one aftr_ctl run),
// excluded from running during a release. False if the block was no longer in its slots.
absl::StatusOr<bool> ReleaseRetiredBlock(bpf::Datapath& datapath, const Ipv6Address& b4,
                                         uint16_t block);

}  // namespace aftr::nat

#endif  // AFTR_CONTROL_NAT_BLOCK_RELEASE_H_
