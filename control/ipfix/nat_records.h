// The NAT templates (RFC 8158 events, IANA elements only) and the encoding of one NatEvent
// into a data record of one of them. Pure: no clock, no sockets.
//
// Every NAT record starts with observationTimeMilliseconds (323) and natEvent (230, IANA
// "NAT Event Type" numbering). Destination addresses and ports are never exported.
#ifndef AFTR_CONTROL_IPFIX_NAT_RECORDS_H_
#define AFTR_CONTROL_IPFIX_NAT_RECORDS_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "control/common/ip.h"
#include "control/events/nat_event.h"
#include "control/ipfix/ipfix_codec.h"

namespace aftr::ipfix {

enum TemplateId : uint16_t {
  kSessionTemplate = 256,            // natEvent 4/5 (session), 8/9 (BIB: PCP MAP, static)
  kPortBlockTemplate = 257,          // natEvent 16/17
  kAddressesExhaustedTemplate = 258, // natEvent 3
  kQuotaPerUserTemplate = 259,       // natEvent 13, natQuotaExceededEvent 3
  kQuotaSessionsTemplate = 260,      // natEvent 13, natQuotaExceededEvent 1
  kQuotaSubscribersTemplate = 261,   // natEvent 13, natQuotaExceededEvent 4
  kExporterStatsTemplate = 262,      // options: scope observationDomainId
  kPortsExhaustedTemplate = 263,     // natEvent 12: one public address has no port block left
};

// IANA "NAT Event Type" values (not Juniper's draft numbering).
enum NatEventCode : uint8_t {
  kNatAddressesExhausted = 3,
  kNat44SessionCreate = 4,
  kNat44SessionDelete = 5,
  kNat44BibCreate = 8,
  kNat44BibDelete = 9,
  kNatPortsExhausted = 12,
  kNatQuotaExceeded = 13,
  kNatPortBlockAllocation = 16,
  kNatPortBlockDeallocation = 17,
};

// IANA natQuotaExceededEvent values.
enum QuotaExceededCode : uint32_t {
  kQuotaMaxSessionEntries = 1,
  kQuotaMaxEntriesPerUser = 3,
  kQuotaMaxSubscribers = 4,
};

// The seven NAT templates, in id order (262, between them, is the options template).
const std::vector<Template>& NatTemplates();
// The options template of the exporter's statistics (RFC 7011 section 4.3).
const Template& ExporterStatsTemplate();

// What the encoding needs from the running configuration.
struct RecordPolicy {
  bool per_session = false;         // logging.mode LOG_MODE_PER_SESSION
  int b4_prefix_length = 128;       // ipfix.b4_prefix_length
  uint32_t max_entries_per_user = 0;        // max_blocks_per_subscriber x block_size
  uint32_t max_sessions_per_subscriber = 0;
  uint32_t max_sessions = 0;                // tables.max_sessions
  uint32_t max_subscribers = 0;             // tables.max_subscribers
};

// The subscriber's name for a B4 (from RADIUS accounting); "" when unknown.
using IdentityLookup = std::function<std::string(const Ipv6Address& b4)>;

// Whether an event of `type` becomes a record: sessions only in per-session mode;
// kEventsLost (counted in notSentFlowTotalCount instead) and kConfigReloaded never.
bool IsExported(events::EventType type, bool per_session);

// `b4` with the bits after `prefix_length` zeroed.
Ipv6Address TruncateB4(const Ipv6Address& b4, int prefix_length);

// Appends the data record of `event` to `out` and returns its template id, or 0 (nothing
// appended) when IsExported says no. `identity` is asked only for session and block records.
uint16_t EncodeNatRecord(const events::NatEvent& event, const RecordPolicy& policy,
                         const IdentityLookup& identity, std::vector<uint8_t>* out);

// The exporter's statistics for one collector, at the time the record is made.
struct ExporterStats {
  uint32_t observation_domain_id = 0;
  uint64_t messages = 0;   // exportedMessageTotalCount: messages before this one
  uint64_t records = 0;    // exportedFlowRecordTotalCount: NAT records before this message
  uint64_t not_sent = 0;   // notSentFlowTotalCount: events that could not be exported
};
// Appends one record of kExporterStatsTemplate.
void EncodeStatsRecord(const ExporterStats& stats, std::vector<uint8_t>* out);

}  // namespace aftr::ipfix

#endif  // AFTR_CONTROL_IPFIX_NAT_RECORDS_H_
