// Conversions between the controller's SessionKey and the session maps' abi.h keys, and the
// hashing the controller uses to pair each session's two entries. One place for what the
// sweeper, the state reader, static mappings and block release all need.
#ifndef AFTR_CONTROL_BPF_SESSION_KEYS_H_
#define AFTR_CONTROL_BPF_SESSION_KEYS_H_

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/hash/hash.h"
#include "aftr/abi.h"
#include "control/common/session_key.h"

namespace aftr::bpf {

inline aftr_session_out_key OutKey(const SessionKey& k) {
  aftr_session_out_key out = {};
  std::memcpy(out.b4, k.b4.bytes.data(), 16);
  out.inner_addr = htonl(k.inner_addr.host_order);
  out.inner_port = htons(k.inner_port);
  out.proto = k.proto;
  return out;
}

inline SessionKey KeyOf(const aftr_session_out_key& k) {
  SessionKey out;
  std::memcpy(out.b4.bytes.data(), k.b4, 16);
  out.proto = k.proto;
  out.inner_addr.host_order = ntohl(k.inner_addr);
  out.inner_port = ntohs(k.inner_port);
  return out;
}

// The flow an Internet-side entry leads back to.
inline SessionKey KeyOf(const aftr_session_in& in, uint8_t proto) {
  SessionKey out;
  std::memcpy(out.b4.bytes.data(), in.b4, 16);
  out.proto = proto;
  out.inner_addr.host_order = ntohl(in.inner_addr);
  out.inner_port = ntohs(in.inner_port);
  return out;
}

// aftr_ctl arguments naming the session of `k` for `op` (AFTR_CTL_SESSION_*).
inline aftr_ctl_args SessionCtlArgs(uint32_t op, const SessionKey& k) {
  aftr_ctl_args a = {};
  a.op = op;
  std::memcpy(a.b4, k.b4.bytes.data(), 16);
  a.inner_addr = htonl(k.inner_addr.host_order);
  a.inner_port = htons(k.inner_port);
  a.proto = k.proto;
  return a;
}

// The Internet-side key of a session.
inline aftr_session_in_key InKeyOf(const aftr_session_out_key& k, const aftr_session_out& v) {
  aftr_session_in_key in = {};
  in.public_addr = v.public_addr;
  in.public_port = v.public_port;
  in.proto = k.proto;
  return in;
}

// Whether an Internet-side entry is the twin of this subscriber-side key (the public
// endpoint may have been reused by another flow in between two reads).
inline bool SameFlow(const aftr_session_out_key& k, const aftr_session_in& in) {
  return std::memcmp(k.b4, in.b4, 16) == 0 && k.inner_addr == in.inner_addr &&
         k.inner_port == in.inner_port;
}

// A TCP session's state (RFC 5382 / 7857) from the flags the data plane saw each way.
enum class TcpState { kNotTcp, kTransitory, kEstablished, kClosed };
inline TcpState TcpStateOf(uint8_t proto, uint8_t out_flags, uint8_t in_flags) {
  if (proto != IPPROTO_TCP) return TcpState::kNotTcp;
  out_flags &= AFTR_TCP_SEEN_MASK;
  in_flags &= AFTR_TCP_SEEN_MASK;
  const uint8_t both = out_flags | in_flags;
  if ((both & AFTR_TCP_SEEN_RST) || ((out_flags & AFTR_TCP_SEEN_FIN) && (in_flags & AFTR_TCP_SEEN_FIN))) {
    return TcpState::kClosed;
  }
  // Established once the SYN went out and the SYN-ACK came back (RFC 5382 section 5). A
  // session adopted mid-stream (no SYN seen at all) counts as established too: the
  // conservative, longer timeout.
  const bool syn_both = (out_flags & AFTR_TCP_SEEN_SYN) && (in_flags & AFTR_TCP_SEEN_SYN);
  return (syn_both || !(both & AFTR_TCP_SEEN_SYN)) ? TcpState::kEstablished : TcpState::kTransitory;
}

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

}  // namespace aftr::bpf

#endif  // AFTR_CONTROL_BPF_SESSION_KEYS_H_
