#include "control/api/translate.h"

#include <netinet/in.h>

#include "control/api/resource_names.h"
#include "control/common/clock.h"
#include "control/nat/session_sweeper.h"

namespace aftr::api {

using aftr::v1::Event;

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

Event::Type EventTypeToProto(events::EventType type) {
  using events::EventType;
  switch (type) {
    case EventType::kSessionCreate: return Event::SESSION_CREATED;
    case EventType::kSessionDelete: return Event::SESSION_DELETED;
    case EventType::kBlockClaimed: return Event::PORT_BLOCK_ALLOCATED;
    case EventType::kBlockReleased: return Event::PORT_BLOCK_RELEASED;
    case EventType::kPortsExhausted: return Event::PORTS_EXHAUSTED;
    case EventType::kAddressExhausted: return Event::ADDRESS_EXHAUSTED;
    case EventType::kSessionLimit: return Event::SESSION_LIMIT;
    case EventType::kSessionTableFull: return Event::SESSION_TABLE_FULL;
    case EventType::kSubscriberTableFull: return Event::SUBSCRIBER_TABLE_FULL;
    case EventType::kAddressPortsExhausted: return Event::ADDRESS_PORTS_EXHAUSTED;
    case EventType::kEventsLost: return Event::EVENTS_LOST;
    case EventType::kMappingCreate: return Event::MAPPING_CREATED;
    case EventType::kMappingDelete: return Event::MAPPING_DELETED;
    case EventType::kConfigReloaded: return Event::CONFIG_RELOADED;
    case EventType::kPcpMapCreate: return Event::PCP_MAPPING_CREATED;
    case EventType::kPcpMapDelete: return Event::PCP_MAPPING_DELETED;
    case EventType::kStateFresh: return Event::STATE_FRESH;
  }
  return Event::TYPE_UNSPECIFIED;
}

aftr::v1::Protocol ProtocolToProto(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP: return aftr::v1::TCP;
    case IPPROTO_UDP: return aftr::v1::UDP;
    case IPPROTO_ICMP: return aftr::v1::ICMP;
  }
  return aftr::v1::PROTOCOL_UNSPECIFIED;
}

Event EventToProto(const events::NatEvent& e) {
  Event out;
  out.set_type(EventTypeToProto(e.type));
  ToTimestamp(e.time, out.mutable_time());
  bool has_flow = e.type != events::EventType::kEventsLost &&
                  e.type != events::EventType::kConfigReloaded;
  if (has_flow) {
    out.set_b4_address(e.b4.ToString());
    out.set_protocol(ProtocolToProto(e.proto));
    if (e.inner_addr.host_order != 0) {
      out.set_inner_address(e.inner_addr.ToString());
      out.set_inner_port(e.inner_port);
    }
    if (e.public_addr.host_order != 0) {
      out.set_public_address(e.public_addr.ToString());
      out.set_public_port(e.public_port);
    }
    out.set_block_size(e.block_size);
  }
  out.set_count(e.count);
  out.set_detail(e.detail);
  return out;
}

aftr::v1::PortBlock PortBlockToProto(const bpf::SubscriberRecord& owner, uint16_t first_port,
                                     uint32_t block_size) {
  aftr::v1::PortBlock b;
  b.set_name(PortBlockName({owner.public_addr, first_port}));
  b.set_public_address(owner.public_addr.ToString());
  b.set_first_port(first_port);
  b.set_last_port(first_port + block_size - 1);
  b.set_block_size(block_size);
  b.set_subscriber(SubscriberName(owner.b4));
  b.set_b4_address(owner.b4.ToString());
  return b;
}

aftr::v1::Subscriber SubscriberToProto(const bpf::SubscriberRecord& r,
                                       const aftr::config::v1::Config& config,
                                       uint32_t mapping_count) {
  aftr::v1::Subscriber s;
  s.set_name(SubscriberName(r.b4));
  s.set_b4_address(r.b4.ToString());
  s.set_public_address(r.public_addr.ToString());
  for (uint16_t first : r.block_first_ports) {
    *s.add_port_blocks() = PortBlockToProto(r, first, config.port_blocks().block_size());
  }
  s.set_session_count(r.sessions);
  s.set_mapping_count(mapping_count);
  s.set_max_sessions(config.port_blocks().max_sessions_per_subscriber());
  s.set_max_port_blocks(config.port_blocks().max_blocks_per_subscriber());
  s.set_state(r.retiring ? aftr::v1::Subscriber::RETIRING : aftr::v1::Subscriber::ACTIVE);
  ToTimestamp(MonotonicToWall(r.created_ns), s.mutable_create_time());
  return s;
}

namespace {

// The fields every translated flow shows (sessions, static and PCP mappings).
template <typename Proto>
void SetTranslation(Proto* p, const SessionKey& key, Ipv4Address public_addr, uint16_t public_port) {
  p->set_b4_address(key.b4.ToString());
  p->set_protocol(ProtocolToProto(key.proto));
  p->set_inner_address(key.inner_addr.ToString());
  p->set_inner_port(key.inner_port);
  p->set_public_address(public_addr.ToString());
  p->set_public_port(public_port);
}

}  // namespace

aftr::v1::Session SessionToProto(const bpf::SessionRecord& r,
                                 const aftr::config::v1::Config& config) {
  aftr::v1::Session s;
  s.set_name(SessionName(r.key));
  s.set_subscriber(SubscriberName(r.key.b4));
  SetTranslation(&s, r.key, r.public_addr, r.public_port);
  switch (r.kind) {
    case bpf::SessionKind::kDynamic: s.set_kind(aftr::v1::Session::DYNAMIC); break;
    case bpf::SessionKind::kStatic: s.set_kind(aftr::v1::Session::STATIC); break;
    case bpf::SessionKind::kPcp: s.set_kind(aftr::v1::Session::PCP); break;
  }
  switch (r.tcp_state) {
    case bpf::TcpState::kNotTcp: break;
    case bpf::TcpState::kTransitory: s.set_tcp_state(aftr::v1::Session::TRANSITORY); break;
    case bpf::TcpState::kEstablished: s.set_tcp_state(aftr::v1::Session::ESTABLISHED); break;
    case bpf::TcpState::kClosed: s.set_tcp_state(aftr::v1::Session::CLOSED); break;
  }
  ToTimestamp(MonotonicToWall(r.last_seen_ns), s.mutable_last_active_time());
  if (r.kind == bpf::SessionKind::kDynamic) {  // the others end when their owner says
    uint64_t timeout =
        nat::SessionTimeoutNs(config.timeouts(), r.key.proto, r.out_tcp_flags, r.in_tcp_flags);
    ToTimestamp(MonotonicToWall(r.last_seen_ns + timeout), s.mutable_expire_time());
  }
  return s;
}

aftr::v1::StaticMapping StaticMappingToProto(const nat::StaticMapping& m) {
  aftr::v1::StaticMapping p;
  p.set_name(StaticMappingName({m.key.proto, m.public_addr, m.public_port}));
  SetTranslation(&p, m.key, m.public_addr, m.public_port);
  return p;
}

aftr::v1::PcpMapping PcpMappingToProto(const pcp::PcpMappingView& m) {
  aftr::v1::PcpMapping p;
  const bool peer = m.opcode == pcp::Opcode::kPeer;
  p.set_name(PcpMappingName(
      {m.key.proto, m.public_addr, m.public_port, peer, m.remote_addr, m.remote_port}));
  p.set_opcode(peer ? aftr::v1::PcpMapping::PEER : aftr::v1::PcpMapping::MAP);
  SetTranslation(&p, m.key, m.public_addr, m.public_port);
  if (peer) {
    p.set_remote_address(m.remote_addr.ToString());
    p.set_remote_port(m.remote_port);
  }
  p.set_lifetime_seconds(m.lifetime);
  ToTimestamp(MonotonicToWall(m.expires_ns), p.mutable_expire_time());
  ToTimestamp(MonotonicToWall(m.created_ns), p.mutable_create_time());
  for (const pcp::Filter& f : m.filters) {
    aftr::v1::PcpMapping::Filter* out = p.add_filters();
    Ipv4Prefix prefix{pcp::V4Of(f.remote_addr), f.prefix_length - 96};
    out->set_remote_prefix(prefix.ToString());
    out->set_remote_port(f.remote_port);
  }
  return p;
}

}  // namespace aftr::api
