// NAT templates and records. See nat_records.h.
#include "control/ipfix/nat_records.h"

#include "absl/time/time.h"

namespace aftr::ipfix {
namespace {

using events::EventType;
using events::NatEvent;

constexpr FieldSpec kTime{ie::kObservationTimeMilliseconds, 8};
constexpr FieldSpec kEvent{ie::kNatEvent, 1};
constexpr FieldSpec kB4{ie::kSourceIPv6Address, 16};
constexpr FieldSpec kUser{ie::kUserName, kVariableLength};

void WriteB4(ByteWriter& w, const Ipv6Address& b4, int prefix_length) {
  w.Bytes(TruncateB4(b4, prefix_length).bytes);
}

void WriteUser(ByteWriter& w, const IdentityLookup& identity, const Ipv6Address& b4) {
  const std::string name = identity ? identity(b4) : std::string();
  w.ShortVariable(std::span(reinterpret_cast<const uint8_t*>(name.data()), name.size()));
}

void WriteHead(ByteWriter& w, const NatEvent& e, uint8_t code) {
  w.U64(static_cast<uint64_t>(absl::ToUnixMillis(e.time)));
  w.U8(code);
}

}  // namespace

const std::vector<Template>& NatTemplates() {
  static const std::vector<Template>* templates = new std::vector<Template>{
      {kSessionTemplate, 0,
       {kTime, kEvent, {ie::kProtocolIdentifier, 1}, {ie::kSourceIPv4Address, 4},
        {ie::kSourceTransportPort, 2}, {ie::kPostNATSourceIPv4Address, 4},
        {ie::kPostNAPTSourceTransportPort, 2}, kB4, kUser}},
      {kPortBlockTemplate, 0,
       {kTime, kEvent, kB4, {ie::kPostNATSourceIPv4Address, 4}, {ie::kPortRangeStart, 2},
        {ie::kPortRangeEnd, 2}, {ie::kPortRangeStepSize, 2}, {ie::kPortRangeNumPorts, 2},
        kUser}},
      {kAddressesExhaustedTemplate, 0, {kTime, kEvent, {ie::kNatPoolId, 4}}},
      {kQuotaPerUserTemplate, 0,
       {kTime, kEvent, {ie::kNatQuotaExceededEvent, 4}, {ie::kMaxEntriesPerUser, 4}, kB4}},
      {kQuotaSessionsTemplate, 0,
       {kTime, kEvent, {ie::kNatQuotaExceededEvent, 4}, {ie::kMaxSessionEntries, 4}}},
      {kQuotaSubscribersTemplate, 0,
       {kTime, kEvent, {ie::kNatQuotaExceededEvent, 4}, {ie::kMaxSubscribers, 4}}},
      // RFC 8158's ports exhausted record is the address; the B4 says who ran into it.
      {kPortsExhaustedTemplate, 0, {kTime, kEvent, {ie::kPostNATSourceIPv4Address, 4}, kB4}},
  };
  return *templates;
}

const Template& ExporterStatsTemplate() {
  static const Template* t = new Template{
      kExporterStatsTemplate, 1,
      {{ie::kObservationDomainId, 4}, {ie::kExportedMessageTotalCount, 8},
       {ie::kExportedFlowRecordTotalCount, 8}, {ie::kNotSentFlowTotalCount, 8}}};
  return *t;
}

bool IsExported(EventType type, bool per_session) {
  switch (type) {
    case EventType::kSessionCreate:
    case EventType::kSessionDelete:
      return per_session;
    case EventType::kMappingCreate:
    case EventType::kMappingDelete:
    case EventType::kPcpMapCreate:
    case EventType::kPcpMapDelete:
    case EventType::kBlockClaimed:
    case EventType::kBlockReleased:
    case EventType::kAddressExhausted:
    case EventType::kAddressPortsExhausted:
    case EventType::kPortsExhausted:
    case EventType::kSessionLimit:
    case EventType::kSessionTableFull:
    case EventType::kSubscriberTableFull:
      return true;
    case EventType::kEventsLost:
    case EventType::kConfigReloaded:
      return false;
  }
  return false;
}

Ipv6Address TruncateB4(const Ipv6Address& b4, int prefix_length) {
  Ipv6Address out = b4;
  for (int i = 0; i < 16; ++i) {
    const int keep = prefix_length - 8 * i;  // bits of this octet inside the prefix
    if (keep >= 8) continue;
    out.bytes[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
  return out;
}

uint16_t EncodeNatRecord(const NatEvent& e, const RecordPolicy& policy,
                         const IdentityLookup& identity, std::vector<uint8_t>* out) {
  if (!IsExported(e.type, policy.per_session)) return 0;
  ByteWriter w(out);
  switch (e.type) {
    case EventType::kSessionCreate:
    case EventType::kSessionDelete:
    case EventType::kMappingCreate:
    case EventType::kMappingDelete:
    case EventType::kPcpMapCreate:
    case EventType::kPcpMapDelete: {
      uint8_t code = kNat44BibDelete;
      if (e.type == EventType::kSessionCreate) code = kNat44SessionCreate;
      if (e.type == EventType::kSessionDelete) code = kNat44SessionDelete;
      if (e.type == EventType::kMappingCreate || e.type == EventType::kPcpMapCreate) {
        code = kNat44BibCreate;
      }
      WriteHead(w, e, code);
      w.U8(e.proto);
      w.U32(e.inner_addr.host_order);
      w.U16(e.inner_port);
      w.U32(e.public_addr.host_order);
      w.U16(e.public_port);
      WriteB4(w, e.b4, policy.b4_prefix_length);
      WriteUser(w, identity, e.b4);
      return kSessionTemplate;
    }
    case EventType::kBlockClaimed:
    case EventType::kBlockReleased:
      WriteHead(w, e, e.type == EventType::kBlockClaimed ? kNatPortBlockAllocation
                                                          : kNatPortBlockDeallocation);
      WriteB4(w, e.b4, policy.b4_prefix_length);
      w.U32(e.public_addr.host_order);
      w.U16(e.public_port);
      w.U16(static_cast<uint16_t>(e.public_port + (e.block_size ? e.block_size - 1 : 0)));
      w.U16(1);  // contiguous block
      w.U16(e.block_size);
      WriteUser(w, identity, e.b4);
      return kPortBlockTemplate;
    case EventType::kAddressExhausted:
      WriteHead(w, e, kNatAddressesExhausted);
      w.U32(0);  // one pool
      return kAddressesExhaustedTemplate;
    case EventType::kAddressPortsExhausted:
      WriteHead(w, e, kNatPortsExhausted);
      w.U32(e.public_addr.host_order);
      WriteB4(w, e.b4, policy.b4_prefix_length);
      return kPortsExhaustedTemplate;
    case EventType::kPortsExhausted:
    case EventType::kSessionLimit:
      WriteHead(w, e, kNatQuotaExceeded);
      w.U32(kQuotaMaxEntriesPerUser);
      // Ports for a subscriber whose blocks are all full; sessions for the session limit.
      w.U32(e.type == EventType::kPortsExhausted ? policy.max_entries_per_user
                                                 : policy.max_sessions_per_subscriber);
      WriteB4(w, e.b4, policy.b4_prefix_length);
      return kQuotaPerUserTemplate;
    case EventType::kSessionTableFull:
      WriteHead(w, e, kNatQuotaExceeded);
      w.U32(kQuotaMaxSessionEntries);
      w.U32(policy.max_sessions);
      return kQuotaSessionsTemplate;
    case EventType::kSubscriberTableFull:
      WriteHead(w, e, kNatQuotaExceeded);
      w.U32(kQuotaMaxSubscribers);
      w.U32(policy.max_subscribers);
      return kQuotaSubscribersTemplate;
    case EventType::kEventsLost:
    case EventType::kConfigReloaded:
      break;
  }
  return 0;
}

void EncodeStatsRecord(const ExporterStats& stats, std::vector<uint8_t>* out) {
  ByteWriter w(out);
  w.U32(stats.observation_domain_id);
  w.U64(stats.messages);
  w.U64(stats.records);
  w.U64(stats.not_sent);
}

}  // namespace aftr::ipfix
