#include <arpa/inet.h>
#include <netinet/in.h>

#include "control/inspect/state_report.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/bpf/map_batch.h"
#include "control/common/clock.h"
#include "control/common/ip.h"

namespace aftr::inspect {
namespace {

std::string B4String(const uint8_t* b4) {
  Ipv6Address a;
  std::memcpy(a.bytes.data(), b4, 16);
  return a.ToString();
}

std::string V4String(uint32_t be) { return Ipv4Address{ntohl(be)}.ToString(); }

const char* ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
  }
  return "?";
}

}  // namespace

absl::StatusOr<std::string> SubscribersTable(const bpf::MapFds& fds,
                                             const aftr::config::v1::Config& config) {
  std::vector<aftr_subscriber_key> keys;
  std::vector<aftr_subscriber> subs;
  if (absl::Status s = bpf::ReadMap(fds.subscribers, &keys, &subs); !s.ok()) return s;
  const auto& pb = config.port_blocks();
  std::string out = absl::StrFormat("%-28s %-16s %8s  %s\n", "B4", "PUBLIC", "SESSIONS",
                                    "PORT BLOCKS");
  for (size_t i = 0; i < keys.size(); ++i) {
    const aftr_subscriber& s = subs[i];
    std::vector<std::string> blocks;
    for (uint32_t slot = 0; slot < std::min<uint32_t>(s.n_blocks, AFTR_MAX_BLOCKS_PER_SUB); ++slot) {
      uint16_t v = s.blocks[slot];
      if (v == AFTR_BLOCK_SLOT_EMPTY || v == AFTR_BLOCK_SLOT_FREE) continue;
      uint32_t first = pb.port_min() + (v & ~AFTR_BLOCK_SLOT_RELEASING) * pb.block_size();
      blocks.push_back(absl::StrCat(first, "-", first + pb.block_size() - 1,
                                    AFTR_BLOCK_SLOT_USABLE(v) ? "" : " (releasing)"));
    }
    bool retired = (s.state_sessions >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE;
    absl::StrAppendFormat(&out, "%-28s %-16s %8d  %s%s\n", B4String(keys[i].b4),
                          V4String(s.public_addr), static_cast<uint32_t>(s.state_sessions),
                          absl::StrJoin(blocks, ","), retired ? " (retired)" : "");
  }
  absl::StrAppendFormat(&out, "%d subscribers\n", keys.size());
  return out;
}

absl::StatusOr<std::string> SessionsTable(const bpf::MapFds& fds) {
  std::vector<aftr_session_out_key> keys;
  std::vector<aftr_session_out> values;
  if (absl::Status s = bpf::ReadMap(fds.sessions_out, &keys, &values); !s.ok()) return s;
  uint64_t now = MonotonicCoarseNs();
  std::string out = absl::StrFormat("%-5s %-28s %-21s %-21s %6s\n", "PROTO", "B4", "INNER",
                                    "PUBLIC", "IDLE_S");
  // A static or PCP mapping (port forward) or a PCP PEER hold is marked after its idle time.
  for (size_t i = 0; i < keys.size(); ++i) {
    const aftr_session_out_key& k = keys[i];
    const aftr_session_out& v = values[i];
    double idle = now > v.last_seen_ns ? (now - v.last_seen_ns) / 1e9 : 0;
    absl::StrAppendFormat(&out, "%-5s %-28s %-21s %-21s %6.1f%s\n", ProtoName(k.proto),
                          B4String(k.b4),
                          absl::StrCat(V4String(k.inner_addr), ":", ntohs(k.inner_port)),
                          absl::StrCat(V4String(v.public_addr), ":", ntohs(v.public_port)), idle,
                          (v.flags & AFTR_SESSION_STATIC)     ? " static"
                          : (v.flags & AFTR_SESSION_PCP_MAP)  ? " pcp-map"
                          : (v.flags & AFTR_SESSION_PCP_PEER) ? " pcp-peer"
                                                              : "");
  }
  absl::StrAppendFormat(&out, "%d sessions\n", keys.size());
  return out;
}

absl::StatusOr<std::string> CountersTable(const bpf::MapFds& fds) {
  absl::StatusOr<bpf::CounterSnapshot> counters = bpf::ReadCounters(fds.counters);
  if (!counters.ok()) return counters.status();
  bpf::Counters total = counters->Total();
  // Name and total first (scripts read those two columns), then one column per direction.
  std::string out = absl::StrFormat("%-28s %14s", "COUNTER", "TOTAL");
  for (const char* dir : bpf::kDirectionNames) absl::StrAppendFormat(&out, " %14s", dir);
  out += "\n";
  for (int i = 0; i < AFTR_COUNTER_MAX; ++i) {
    if (total[i] == 0) continue;
    absl::StrAppendFormat(&out, "%-28s %14d", bpf::kCounterNames[i], total[i]);
    for (const bpf::Counters& row : counters->by_direction) absl::StrAppendFormat(&out, " %14d", row[i]);
    out += "\n";
  }
  return out;
}

}  // namespace aftr::inspect
