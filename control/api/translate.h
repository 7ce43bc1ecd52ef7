// Proto ↔ domain conversions: the only place aftr.v1 messages meet controller types.
#ifndef AFTR_CONTROL_API_TRANSLATE_H_
#define AFTR_CONTROL_API_TRANSLATE_H_

#include "absl/time/time.h"
#include "aftr/config/v1/config.pb.h"
#include "aftr/v1/resources.pb.h"
#include "control/bpf/nat_state.h"
#include "control/events/nat_event.h"
#include "control/nat/static_mappings.h"
#include "control/pcp/pcp_server.h"
#include "google/protobuf/timestamp.pb.h"

namespace aftr::api {

void ToTimestamp(absl::Time t, google::protobuf::Timestamp* out);

aftr::v1::Event::Type EventTypeToProto(events::EventType type);
aftr::v1::Event EventToProto(const events::NatEvent& e);

aftr::v1::Protocol ProtocolToProto(uint8_t proto);

// Subscriber with its blocks; quotas from the running configuration.
aftr::v1::Subscriber SubscriberToProto(const bpf::SubscriberRecord& r,
                                       const aftr::config::v1::Config& config,
                                       uint32_t mapping_count);
aftr::v1::PortBlock PortBlockToProto(const bpf::SubscriberRecord& owner, uint16_t first_port,
                                     uint32_t block_size);
// The expiry time follows from the configured timeouts.
aftr::v1::Session SessionToProto(const bpf::SessionRecord& r,
                                 const aftr::config::v1::Config& config);

aftr::v1::StaticMapping StaticMappingToProto(const nat::StaticMapping& m);
aftr::v1::PcpMapping PcpMappingToProto(const pcp::PcpMappingView& m);

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_TRANSLATE_H_
