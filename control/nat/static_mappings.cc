// Static mappings: forward sessions flagged AFTR_SESSION_STATIC. See static_mappings.h.
#include "control/nat/static_mappings.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "absl/strings/str_format.h"
#include "control/bpf/map_batch.h"
#include "control/bpf/session_keys.h"
#include "control/nat/forward_sessions.h"

namespace aftr::nat {

absl::StatusOr<StaticMapping> CreateStaticMapping(bpf::Datapath& dp, events::EventSink* sink,
                                                  const MappingKey& key,
                                                  std::optional<uint16_t> public_port) {
  ForwardRequest req;
  req.key = key;
  req.public_port = public_port;
  req.port_required = true;
  req.claim_block_for_port = true;
  req.flags = AFTR_SESSION_STATIC;
  req.conflicting_flags = AFTR_SESSION_STATIC | AFTR_SESSION_PCP_MAP;
  req.move_existing = true;
  req.softwire_index = 0;  // replies come from the first softwire address until the B4 talks
  absl::StatusOr<ForwardSession> made = MakeForwardSession(dp, sink, req);
  if (!made.ok()) return made.status();
  return StaticMapping{key, made->public_addr, made->public_port};
}

absl::Status DeleteStaticMapping(bpf::Datapath& dp, events::EventSink* sink, const MappingKey& key) {
  absl::Status s = DeleteFlaggedSession(dp, sink, key, AFTR_SESSION_STATIC);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(absl::StrFormat("no static mapping for %s %s %s:%d",
                                               key.proto == IPPROTO_TCP ? "tcp" : "udp",
                                               key.b4.ToString(), key.inner_addr.ToString(),
                                               key.inner_port));
  }
  return s;
}

absl::StatusOr<std::vector<StaticMapping>> ListStaticMappings(const bpf::Datapath& dp) {
  std::vector<aftr_session_out_key> keys;
  std::vector<aftr_session_out> values;
  if (absl::Status s = bpf::ReadMap(dp.fds().sessions_out, &keys, &values); !s.ok()) return s;
  std::vector<StaticMapping> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!(values[i].flags & AFTR_SESSION_STATIC)) continue;
    StaticMapping m;
    m.key = bpf::KeyOf(keys[i]);
    m.public_addr.host_order = ntohl(values[i].public_addr);
    m.public_port = ntohs(values[i].public_port);
    out.push_back(m);
  }
  return out;
}

}  // namespace aftr::nat
