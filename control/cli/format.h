// How aftrctl prints API resources for people: aligned tables for lists, "key: value" blocks
// for single resources, one line per event; and JSON for scripts. Pure functions of the
// messages (and of `now`, for ages and expiry), so tests can pin the output.
#ifndef AFTR_CONTROL_CLI_FORMAT_H_
#define AFTR_CONTROL_CLI_FORMAT_H_

#include <string>

#include "absl/time/time.h"
#include "aftr/v1/aftr_service.pb.h"
#include "aftr/v1/resources.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "google/protobuf/timestamp.pb.h"

namespace aftr::cli {

template <typename T>
using Repeated = google::protobuf::RepeatedPtrField<T>;

// JSON with the proto field names (as in the .proto files and filters) and every field
// present, zeros included, so scripts need no defaults. `multiline` indents for people;
// events use one line each.
std::string ToJson(const google::protobuf::Message& message, bool multiline = true);

// "2026-11-27T10:52:38Z"; "-" for an unset timestamp.
std::string FormatTime(const google::protobuf::Timestamp& t);
// A whole-second duration, "4m59s", "2h4m0s", "0s".
std::string FormatSeconds(absl::Duration d);

std::string SubscribersTable(const Repeated<aftr::v1::Subscriber>& subscribers, absl::Time now);
std::string SessionsTable(const Repeated<aftr::v1::Session>& sessions, absl::Time now);
std::string PortBlocksTable(const Repeated<aftr::v1::PortBlock>& blocks);
std::string PoolsTable(const Repeated<aftr::v1::Pool>& pools);
std::string StaticMappingsTable(const Repeated<aftr::v1::StaticMapping>& mappings);
std::string PcpMappingsTable(const Repeated<aftr::v1::PcpMapping>& mappings, absl::Time now);

// The line under a list: "3 sessions", plus how to get the rest when there is more.
// `aftrctl who`: one block of key: value lines per holder.
std::string AttributionText(const aftr::v1::LookupAttributionResponse& r);
// `aftrctl deterministic`: the subscriber prefix and what it holds.
std::string DeterministicText(const aftr::v1::DeterministicMapping& m);

std::string ListFooter(int count, const std::string& noun, const std::string& next_page_token);

std::string SubscriberText(const aftr::v1::Subscriber& s, absl::Time now);
std::string SessionText(const aftr::v1::Session& s, absl::Time now);
std::string PortBlockText(const aftr::v1::PortBlock& b);
std::string PoolText(const aftr::v1::Pool& p);
std::string StaticMappingText(const aftr::v1::StaticMapping& m);

// Counters per direction (`nonzero`: without all-zero rows), then the gauges and the
// controller's counters.
std::string StatisticsText(const aftr::v1::Statistics& stats, bool nonzero);

// One event, log-like: time, type, then what it concerns.
std::string EventLine(const aftr::v1::Event& e);

std::string ReloadText(const aftr::v1::ReloadConfigResponse& r, bool validate_only);

}  // namespace aftr::cli

#endif  // AFTR_CONTROL_CLI_FORMAT_H_
