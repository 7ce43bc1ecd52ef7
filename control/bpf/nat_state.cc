#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/bpf/nat_state.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "control/bpf/map_batch.h"
#include "control/common/errno_status.h"

namespace aftr::bpf {
namespace {

SubscriberRecord ToRecord(const aftr_subscriber_key& k, const aftr_subscriber& v,
                          const PortGeometry& g) {
  SubscriberRecord r;
  std::memcpy(r.b4.bytes.data(), k.b4, 16);
  r.retiring = (v.state_sessions >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE;
  r.sessions = static_cast<uint32_t>(v.state_sessions);
  r.public_addr.host_order = ntohl(v.public_addr);
  r.created_ns = v.created_ns;
  for (uint32_t i = 0; i < std::min<uint32_t>(v.n_blocks, AFTR_MAX_BLOCKS_PER_SUB); ++i) {
    // Empty and freed slots hold no block; one being released is still owned until done.
    if (v.blocks[i] == AFTR_BLOCK_SLOT_EMPTY || v.blocks[i] == AFTR_BLOCK_SLOT_FREE) continue;
    uint32_t block = v.blocks[i] & ~AFTR_BLOCK_SLOT_RELEASING;
    r.block_first_ports.push_back(static_cast<uint16_t>(g.port_min + block * g.block_size));
  }
  return r;
}

SessionRecord FromOut(const aftr_session_out_key& k, const aftr_session_out& v) {
  SessionRecord r;
  r.key = KeyOf(k);
  r.public_addr.host_order = ntohl(v.public_addr);
  r.public_port = ntohs(v.public_port);
  r.kind = (v.flags & AFTR_SESSION_STATIC)                              ? SessionKind::kStatic
           : (v.flags & (AFTR_SESSION_PCP_MAP | AFTR_SESSION_PCP_PEER)) ? SessionKind::kPcp
                                                                      : SessionKind::kDynamic;
  r.out_tcp_flags = v.tcp_flags;
  r.last_seen_ns = v.last_seen_ns;
  return r;
}

// Adds what the Internet-side twin knows, if it is the twin of this flow, and the TCP state.
void MergeIn(const aftr_session_out_key& k, const aftr_session_in* in, SessionRecord* r) {
  if (in && SameFlow(k, *in)) {
    r->in_tcp_flags = in->tcp_flags & AFTR_TCP_SEEN_MASK;
    r->last_seen_ns = std::max<uint64_t>(r->last_seen_ns, in->last_seen_ns);
  }
  r->tcp_state = TcpStateOf(r->key.proto, r->out_tcp_flags, r->in_tcp_flags);
}

}  // namespace

absl::StatusOr<std::vector<SubscriberRecord>> NatState::Subscribers() const {
  std::vector<aftr_subscriber_key> keys;
  std::vector<aftr_subscriber> values;
  if (absl::Status s = ReadMap(fds_.subscribers, &keys, &values); !s.ok()) return s;
  std::vector<SubscriberRecord> out;
  out.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out.push_back(ToRecord(keys[i], values[i], geometry_));
  return out;
}

absl::StatusOr<std::optional<SubscriberRecord>> NatState::Subscriber(const Ipv6Address& b4) const {
  aftr_subscriber_key k = {};
  std::memcpy(k.b4, b4.bytes.data(), 16);
  aftr_subscriber v;
  if (bpf_map_lookup_elem(fds_.subscribers, &k, &v) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return ErrnoToStatus(errno, "reading aftr_subscribers");
  }
  return ToRecord(k, v, geometry_);
}

absl::StatusOr<std::vector<SessionRecord>> NatState::Sessions(
    const std::function<bool(const SessionRecord&)>& keep) const {
  std::vector<aftr_session_in_key> in_keys;
  std::vector<aftr_session_in> in_values;
  std::vector<aftr_session_out_key> out_keys;
  std::vector<aftr_session_out> out_values;
  if (absl::Status s = ReadMap(fds_.sessions_in, &in_keys, &in_values); !s.ok()) return s;
  if (absl::Status s = ReadMap(fds_.sessions_out, &out_keys, &out_values); !s.ok()) return s;
  absl::flat_hash_map<aftr_session_in_key, size_t, InKeyHash, InKeyEq> in_index;
  in_index.reserve(in_keys.size());
  for (size_t i = 0; i < in_keys.size(); ++i) in_index.emplace(in_keys[i], i);
  in_keys.clear();
  std::vector<SessionRecord> out;
  for (size_t i = 0; i < out_keys.size(); ++i) {
    SessionRecord r = FromOut(out_keys[i], out_values[i]);
    auto it = in_index.find(InKeyOf(out_keys[i], out_values[i]));
    MergeIn(out_keys[i], it == in_index.end() ? nullptr : &in_values[it->second], &r);
    if (!keep || keep(r)) out.push_back(r);
  }
  return out;
}

absl::StatusOr<std::optional<SessionRecord>> NatState::Session(const SessionKey& key) const {
  aftr_session_out_key k = OutKey(key);
  aftr_session_out v;
  if (bpf_map_lookup_elem(fds_.sessions_out, &k, &v) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return ErrnoToStatus(errno, "reading aftr_sessions_out");
  }
  SessionRecord r = FromOut(k, v);
  aftr_session_in_key ik = InKeyOf(k, v);
  aftr_session_in in;
  MergeIn(k, bpf_map_lookup_elem(fds_.sessions_in, &ik, &in) == 0 ? &in : nullptr, &r);
  return r;
}

uint64_t NatState::CountSessions() const {
  // No cheap count for a hash map: walk the keys (8 bytes each way, no values copied).
  uint64_t n = 0;
  aftr_session_out_key key, next;
  for (int rc = bpf_map_get_next_key(fds_.sessions_out, nullptr, &next); rc == 0;
       rc = bpf_map_get_next_key(fds_.sessions_out, &key, &next)) {
    ++n;
    key = next;
  }
  return n;
}

}  // namespace aftr::bpf
