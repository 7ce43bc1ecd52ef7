// Sessions that aftrd makes itself, on a port it picks or is asked for: the operator's static
// mappings and the PCP server's MAP and PEER mappings. The session pair goes into the pinned
// session maps with its flags (AFTR_SESSION_STATIC, _PCP_MAP, _PCP_PEER, _FILTERED); the data
// plane translates it like any session, and the held flags keep the sweeper off it.
//
// Every step that races with XDP is one aftr_ctl op (subscriber creation with its first
// block, adding a block, creating the session, flagging an existing one, deleting), each
// settled by the same BPF_NOEXIST inserts and CAS the data plane uses; see abi.h.
#ifndef AFTR_CONTROL_NAT_FORWARD_SESSIONS_H_
#define AFTR_CONTROL_NAT_FORWARD_SESSIONS_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "control/bpf/datapath.h"
#include "control/common/ip.h"
#include "control/common/session_key.h"
#include "control/events/event_sink.h"

namespace aftr::nat {

struct ForwardRequest {
  SessionKey key;  // protocol IPPROTO_TCP or IPPROTO_UDP, inner port != 0
  // The public port wanted, if any.
  std::optional<uint16_t> public_port;
  // True: that port or nothing. False: another port of the subscriber's blocks if that one
  // cannot be had.
  bool port_required = true;
  // The wanted port may lie in a free block on the subscriber's address, which it then
  // claims under its quota. (A new subscriber always starts with the block of the wanted
  // port when that block is free.)
  bool claim_block_for_port = true;
  // Session flags to set (AFTR_SESSION_*).
  uint8_t flags = 0;
  // An existing session of the key that carries any of these flags is refused (kConflict).
  uint8_t conflicting_flags = 0;
  // An existing session of the key on another port than the wanted one: true moves it to
  // that port (deleted with SD, made again); false keeps it where it is (its traffic goes
  // on), which is kPortUnavailable if the port is required.
  bool move_existing = false;
  // Which AFTR softwire address replies come from until the B4 sends.
  uint8_t softwire_index = 0;
};

struct ForwardSession {
  Ipv4Address public_addr;
  uint16_t public_port = 0;
  bool made = false;  // a new session (logged SC); false: an existing one got the flags
};

// Why a request failed, for callers that answer in another protocol (PCP result codes).
enum class ForwardFailure {
  kNone,
  kInvalid,          // not TCP/UDP, port 0, B4 outside b4_prefixes
  kConflict,         // the key's session has a conflicting flag
  kPortUnavailable,  // the required port is another session's, or outside what it may own
  kSubscriberLimit,  // the subscriber's session or block quota, or its blocks are full
  kNoResources,      // session or subscriber table full, no free block in the pool
  kUnavailable,      // retiring subscriber, draining address, or state that kept changing
};

// Makes (or flags) the session of `request`. Events of what was done (SC, SD, BA) go to
// `sink` whatever the outcome. On error, `failure` (if given) says why; the status codes are
// InvalidArgument, AlreadyExists (conflict, or the port is another session's),
// FailedPrecondition (the port lies where the subscriber may not have it; draining),
// ResourceExhausted, Unavailable, Aborted.
absl::StatusOr<ForwardSession> MakeForwardSession(bpf::Datapath& datapath, events::EventSink* sink,
                                                  const ForwardRequest& request,
                                                  ForwardFailure* failure = nullptr);

// Deletes the session of `key` if it carries `flag` (and, if given, is on `public_port`),
// with its SD event. NotFound otherwise.
absl::Status DeleteFlaggedSession(bpf::Datapath& datapath, events::EventSink* sink,
                                  const SessionKey& key, uint8_t flag,
                                  std::optional<uint16_t> public_port = std::nullopt);

// Sets (or with `clear`, clears) session flags of `key`'s session. NotFound if it has none.
absl::Status SetSessionFlags(bpf::Datapath& datapath, const SessionKey& key, uint8_t flags,
                             bool clear);

}  // namespace aftr::nat

#endif  // AFTR_CONTROL_NAT_FORWARD_SESSIONS_H_
