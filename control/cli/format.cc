// Text and JSON renderings of API resources for aftrctl (see format.h).
#include "control/cli/format.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/cli/names.h"
#include "control/cli/table.h"
#include "google/protobuf/util/json_util.h"

namespace aftr::cli {
namespace {

using aftr::v1::Event;
using aftr::v1::PcpMapping;
using aftr::v1::Pool;
using aftr::v1::PortBlock;
using aftr::v1::Session;
using aftr::v1::StaticMapping;
using aftr::v1::Statistics;
using aftr::v1::Subscriber;
using Align = Table::Align;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool IsSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

std::string Endpoint(const std::string& address, uint32_t port) {
  return address.empty() ? "-" : absl::StrCat(address, ":", port);
}

std::string Lower(const std::string& enum_name) { return absl::AsciiStrToLower(enum_name); }

std::string KindText(Session::Kind k) {
  return k == Session::KIND_UNSPECIFIED ? "-" : Lower(Session::Kind_Name(k));
}

std::string TcpStateText(const Session& s) {
  switch (s.tcp_state()) {
    case Session::TRANSITORY:
      return "transitory";
    case Session::ESTABLISHED:
      return "established";
    case Session::CLOSED:
      return "closed";
    default:
      return "-";
  }
}

// Idle expiry as time left; static mappings never expire, PCP ones when their lifetime ends.
std::string ExpiresText(const Session& s, absl::Time now) {
  if (s.kind() == Session::STATIC) return "never";
  if (s.kind() == Session::PCP) return "pcp";
  if (!s.has_expire_time()) return "-";
  absl::Duration left = ToTime(s.expire_time()) - now;
  return left <= absl::ZeroDuration() ? "now" : FormatSeconds(left);
}

std::string AgeText(const google::protobuf::Timestamp& t, absl::Time now) {
  if (!IsSet(t)) return "-";
  return FormatSeconds(std::max(absl::ZeroDuration(), now - ToTime(t)));
}

std::string BlockPorts(const PortBlock& b) { return absl::StrCat(b.first_port(), "-", b.last_port()); }

std::string SubscriberState(Subscriber::State s) {
  return s == Subscriber::STATE_UNSPECIFIED ? "-" : Lower(Subscriber::State_Name(s));
}

std::string PoolState(Pool::State s) {
  return s == Pool::STATE_UNSPECIFIED ? "-" : Lower(Pool::State_Name(s));
}

// "key: value" lines with the values aligned.
std::string KeyValues(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, k.size());
  std::string out;
  for (const auto& [k, v] : rows) {
    absl::StrAppend(&out, k, ":", std::string(width - k.size() + 1, ' '), v, "\n");
  }
  return out;
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = multiline;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Fails only for messages that cannot be JSON (unresolvable Any): none in this API.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (!IsSet(t)) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", ToTime(t), absl::UTCTimeZone());
}

std::string FormatSeconds(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m", s % 60, "s");
  if (s < 86400) return absl::StrCat(s / 3600, "h", s % 3600 / 60, "m", s % 60, "s");
  return absl::StrCat(s / 86400, "d", s % 86400 / 3600, "h", s % 3600 / 60, "m");
}

std::string SubscribersTable(const Repeated<Subscriber>& subscribers, absl::Time now) {
  Table t({{"B4"},
           {"PUBLIC"},
           {"STATE"},
           {"SESSIONS", Align::kRight},
           {"MAPPINGS", Align::kRight},
           {"BLOCKS", Align::kRight},
           {"PORTS"},
           {"AGE", Align::kRight}});
  for (const Subscriber& s : subscribers) {
    std::vector<std::string> ports;
    for (const PortBlock& b : s.port_blocks()) ports.push_back(BlockPorts(b));
    t.AddRow({s.b4_address(), s.public_address().empty() ? "-" : s.public_address(),
              SubscriberState(s.state()), absl::StrCat(s.session_count(), "/", s.max_sessions()),
              absl::StrCat(s.mapping_count()),
              absl::StrCat(s.port_blocks_size(), "/", s.max_port_blocks()),
              ports.empty() ? "-" : absl::StrJoin(ports, ","), AgeText(s.create_time(), now)});
  }
  return t.Render();
}

std::string SessionsTable(const Repeated<Session>& sessions, absl::Time now) {
  Table t({{"PROTO"}, {"INNER"}, {"PUBLIC"}, {"B4"}, {"KIND"}, {"STATE"}, {"EXPIRES", Align::kRight}});
  for (const Session& s : sessions) {
    t.AddRow({ProtocolText(s.protocol()), Endpoint(s.inner_address(), s.inner_port()),
              Endpoint(s.public_address(), s.public_port()), s.b4_address(), KindText(s.kind()),
              TcpStateText(s), ExpiresText(s, now)});
  }
  return t.Render();
}

std::string PortBlocksTable(const Repeated<PortBlock>& blocks) {
  Table t({{"PUBLIC"}, {"PORTS"}, {"SIZE", Align::kRight}, {"B4"}});
  for (const PortBlock& b : blocks) {
    t.AddRow({b.public_address(), BlockPorts(b), absl::StrCat(b.block_size()),
              b.b4_address().empty() ? "-" : b.b4_address()});
  }
  return t.Render();
}

std::string PoolsTable(const Repeated<Pool>& pools) {
  Table t({{"PREFIX"},
           {"STATE"},
           {"ADDRESSES", Align::kRight},
           {"BLOCKS USED", Align::kRight},
           {"BLOCKS TOTAL", Align::kRight}});
  for (const Pool& p : pools) {
    t.AddRow({p.prefix(), PoolState(p.state()), absl::StrCat(p.address_count()),
              absl::StrCat(p.blocks_used()), absl::StrCat(p.blocks_total())});
  }
  return t.Render();
}

std::string StaticMappingsTable(const Repeated<StaticMapping>& mappings) {
  Table t({{"PROTO"}, {"PUBLIC"}, {"INNER"}, {"B4"}, {"NAME"}});
  for (const StaticMapping& m : mappings) {
    t.AddRow({ProtocolText(m.protocol()), Endpoint(m.public_address(), m.public_port()),
              Endpoint(m.inner_address(), m.inner_port()), m.b4_address(), m.name()});
  }
  return t.Render();
}

std::string PcpMappingsTable(const Repeated<PcpMapping>& mappings, absl::Time now) {
  Table t({{"OP"}, {"PROTO"}, {"PUBLIC"}, {"INNER"}, {"B4"}, {"PEER / FILTERS"}, {"EXPIRES"}, {"NAME"}});
  for (const PcpMapping& m : mappings) {
    std::string peers;
    if (m.opcode() == PcpMapping::PEER) {
      peers = Endpoint(m.remote_address(), m.remote_port());
    } else {
      std::vector<std::string> f;
      for (const PcpMapping::Filter& x : m.filters()) {
        f.push_back(x.remote_port() ? absl::StrCat(x.remote_prefix(), " port ", x.remote_port())
                                    : x.remote_prefix());
      }
      peers = f.empty() ? "any" : absl::StrJoin(f, ", ");
    }
    absl::Duration left = ToTime(m.expire_time()) - now;
    t.AddRow({m.opcode() == PcpMapping::PEER ? "peer" : "map", ProtocolText(m.protocol()),
              Endpoint(m.public_address(), m.public_port()),
              Endpoint(m.inner_address(), m.inner_port()), m.b4_address(), peers,
              left <= absl::ZeroDuration() ? "now" : FormatSeconds(left), m.name()});
  }
  return t.Render();
}

std::string AttributionText(const aftr::v1::LookupAttributionResponse& r) {
  std::string out;
  for (const aftr::v1::Attribution& a : r.attributions()) {
    if (!out.empty()) out += "\n";
    std::vector<std::pair<std::string, std::string>> kv;
    switch (a.kind()) {
      case aftr::v1::Attribution::PORT_BLOCK:
        kv.push_back({"held by", "port block"});
        kv.push_back({"block", absl::StrCat(a.public_address(), " ports ", a.port_range_start(), "-",
                                            a.port_range_end())});
        break;
      case aftr::v1::Attribution::DETERMINISTIC:
        kv.push_back({"held by", "deterministic NAT (from the configuration)"});
        kv.push_back({"range", absl::StrCat(a.public_address(), " ports ", a.port_range_start(), "-",
                                            a.port_range_end())});
        break;
      default:
        kv.push_back({"held by", a.kind() == aftr::v1::Attribution::STATIC_MAPPING ? "static mapping"
                                                                                    : "PCP mapping"});
        kv.push_back({"mapping", absl::StrCat(ProtocolText(a.protocol()), " ",
                                              Endpoint(a.public_address(), a.port_range_start()), " -> ",
                                              Endpoint(a.inner_address(), a.inner_port()))});
        break;
    }
    kv.push_back({"b4", a.b4_prefix()});
    if (a.kind() == aftr::v1::Attribution::DETERMINISTIC) {
      // The running configuration's answer; an earlier one is in the log's comment lines.
      kv.push_back({"configured", absl::StrCat("since ", FormatTime(a.start_time()),
                                               " (before: see the log's \"# deterministic\" lines)")});
      kv.push_back({"until", "still configured"});
    } else {
      kv.push_back({"from", FormatTime(a.start_time())});
      kv.push_back({"until", IsSet(a.end_time()) ? FormatTime(a.end_time()) : "still held"});
    }
    if (a.identities().empty()) kv.push_back({"subscriber", "unknown (no RADIUS binding)"});
    for (const aftr::v1::SubscriberIdentity& id : a.identities()) {
      kv.push_back({"subscriber", id.user_name().empty() ? "(no User-Name)" : id.user_name()});
      if (!id.nas_port_id().empty()) kv.push_back({"  nas-port-id", id.nas_port_id()});
      kv.push_back({"  accounting", absl::StrCat(id.acct_session_id(), " on ", id.nas(), ", ",
                                                 FormatTime(id.start_time()), " .. ",
                                                 IsSet(id.end_time()) ? FormatTime(id.end_time()) : "open")});
      kv.push_back({"  prefixes", absl::StrJoin(id.prefixes(), ", ")});
    }
    out += KeyValues(kv);
  }
  return out;
}

std::string DeterministicText(const aftr::v1::DeterministicMapping& m) {
  return KeyValues({
      {"subscriber", m.subscriber_prefix()},
      {"public", absl::StrCat(m.public_address(), " ports ", m.port_range_start(), "-",
                              m.port_range_end())},
      {"range", absl::StrCat(m.range_b4_prefix(), " subscriber ", m.subscriber_index())},
  });
}

std::string ListFooter(int count, const std::string& noun, const std::string& next_page_token) {
  std::string out = absl::StrCat(count, " ", noun, "\n");
  if (!next_page_token.empty()) {
    absl::StrAppend(&out, "more: --page_token ", next_page_token, " (or --all)\n");
  }
  return out;
}

std::string SubscriberText(const Subscriber& s, absl::Time now) {
  std::string out = KeyValues({
      {"name", s.name()},
      {"b4_address", s.b4_address()},
      {"public_address", s.public_address().empty() ? "-" : s.public_address()},
      {"state", SubscriberState(s.state())},
      {"sessions", absl::StrCat(s.session_count(), " (max ", s.max_sessions(), ")")},
      {"static mappings", absl::StrCat(s.mapping_count())},
      {"port blocks", absl::StrCat(s.port_blocks_size(), " (max ", s.max_port_blocks(), ")")},
      {"created", IsSet(s.create_time())
                      ? absl::StrCat(FormatTime(s.create_time()), " (",
                                     AgeText(s.create_time(), now), " ago)")
                      : "-"},
  });
  if (s.port_blocks_size() > 0) absl::StrAppend(&out, "\n", PortBlocksTable(s.port_blocks()));
  return out;
}

std::string SessionText(const Session& s, absl::Time now) {
  return KeyValues({
      {"name", s.name()},
      {"subscriber", s.subscriber()},
      {"protocol", ProtocolText(s.protocol())},
      {"inner", Endpoint(s.inner_address(), s.inner_port())},
      {"public", Endpoint(s.public_address(), s.public_port())},
      {"kind", KindText(s.kind())},
      {"tcp state", TcpStateText(s)},
      {"last active", IsSet(s.last_active_time())
                          ? absl::StrCat(FormatTime(s.last_active_time()), " (",
                                         AgeText(s.last_active_time(), now), " ago)")
                          : "-"},
      {"expires", s.has_expire_time()
                      ? absl::StrCat(FormatTime(s.expire_time()), " (", ExpiresText(s, now), ")")
                      : ExpiresText(s, now)},
  });
}

std::string PortBlockText(const PortBlock& b) {
  return KeyValues({
      {"name", b.name()},
      {"public", absl::StrCat(b.public_address(), " ports ", BlockPorts(b))},
      {"block size", absl::StrCat(b.block_size())},
      {"subscriber", b.subscriber().empty() ? "-" : b.subscriber()},
  });
}

std::string PoolText(const Pool& p) {
  return KeyValues({
      {"name", p.name()},
      {"prefix", p.prefix()},
      {"state", PoolState(p.state())},
      {"addresses", absl::StrCat(p.address_count())},
      {"blocks", absl::StrCat(p.blocks_used(), " used of ", p.blocks_total())},
  });
}

std::string StaticMappingText(const StaticMapping& m) {
  return KeyValues({
      {"name", m.name()},
      {"b4_address", m.b4_address()},
      {"protocol", ProtocolText(m.protocol())},
      {"public", Endpoint(m.public_address(), m.public_port())},
      {"inner", Endpoint(m.inner_address(), m.inner_port())},
  });
}

std::string StatisticsText(const Statistics& stats, bool nonzero) {
  Table counters({{"COUNTER"},
                  {"FROM_B4", Align::kRight},
                  {"FROM_INTERNET", Align::kRight},
                  {"OTHER", Align::kRight},
                  {"TOTAL", Align::kRight}});
  for (const Statistics::Counter& c : stats.counters()) {
    if (nonzero && c.from_b4() == 0 && c.from_internet() == 0 && c.other() == 0 &&
        c.total() == 0) {
      continue;
    }
    counters.AddRow({c.name(), absl::StrCat(c.from_b4()), absl::StrCat(c.from_internet()),
                     absl::StrCat(c.other()), absl::StrCat(c.total())});
  }
  std::string out = counters.Render();
  absl::StrAppend(
      &out, "\n",
      KeyValues({
          {"sessions", absl::StrCat(stats.sessions(), " of ", stats.session_capacity())},
          {"static mappings", absl::StrCat(stats.static_mappings())},
          {"subscribers", absl::StrCat(stats.subscribers())},
          {"port blocks", absl::StrCat(stats.port_blocks_used(), " used of ",
                                       stats.port_blocks_total())},
          {"pool addresses", absl::StrCat(stats.pool_addresses(), " (",
                                          stats.pool_addresses_draining(), " draining)")},
          {"read at", FormatTime(stats.read_time())},
      }));
  std::vector<std::pair<std::string, uint64_t>> controller(stats.controller_counters().begin(),
                                                           stats.controller_counters().end());
  std::sort(controller.begin(), controller.end());
  Table ctl({{"CONTROLLER COUNTER"}, {"VALUE", Align::kRight}});
  for (const auto& [name, value] : controller) {
    if (nonzero && value == 0) continue;
    ctl.AddRow({name, absl::StrCat(value)});
  }
  if (ctl.rows() > 0) absl::StrAppend(&out, "\n", ctl.Render());
  return out;
}

std::string EventLine(const Event& e) {
  std::vector<std::string> parts = {FormatTime(e.time()), Event::Type_Name(e.type())};
  if (e.protocol() != aftr::v1::PROTOCOL_UNSPECIFIED) parts.push_back(ProtocolText(e.protocol()));
  if (!e.b4_address().empty()) parts.push_back(e.b4_address());
  if (!e.inner_address().empty()) parts.push_back(Endpoint(e.inner_address(), e.inner_port()));
  if (e.block_size() > 0) {
    parts.push_back(e.public_address());
    parts.push_back(absl::StrCat(e.public_port(), "-", e.public_port() + e.block_size() - 1));
  } else if (!e.public_address().empty()) {
    parts.push_back(e.public_port() ? Endpoint(e.public_address(), e.public_port())
                                    : e.public_address());
  }
  if (e.type() == Event::EVENTS_LOST || e.count() > 0) parts.push_back(absl::StrCat(e.count()));
  if (!e.detail().empty()) parts.push_back(e.detail());
  return absl::StrJoin(parts, " ");
}

std::string ReloadText(const aftr::v1::ReloadConfigResponse& r, bool validate_only) {
  std::string out;
  if (r.changed_fields().empty()) {
    out = validate_only ? "valid; nothing would change\n" : "reloaded; nothing changed\n";
  } else {
    out = absl::StrCat(validate_only ? "valid; would change: " : "reloaded; changed: ",
                       absl::StrJoin(r.changed_fields(), ", "), "\n");
  }
  for (const std::string& w : r.warnings()) absl::StrAppend(&out, "warning: ", w, "\n");
  return out;
}

}  // namespace aftr::cli
