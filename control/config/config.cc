#include "control/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "control/common/ip.h"
#include "control/common/socket_address.h"
#include "control/nat/deterministic.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace aftr::config {
namespace {

using ::aftr::config::v1::Config;

// Largest config file LoadConfigFile reads; protects against pointing it at a device.
constexpr size_t kMaxConfigFileBytes = 16 << 20;

// Records TextFormat errors as "LINE:COLUMN: message" (1-based), prefixed with `source`,
// followed by the offending line (TextFormat messages often do not name the field).
class TextprotoErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  TextprotoErrorCollector(absl::string_view source, absl::string_view text)
      : source_(source), lines_(absl::StrSplit(text, '\n')) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    std::string error = absl::StrCat(source_, line + 1, ":", column + 1, ": ", message);
    if (line >= 0 && static_cast<size_t>(line) < lines_.size()) {
      absl::string_view text = absl::StripAsciiWhitespace(lines_[line]);
      if (text.size() > kMaxQuotedLine) text = text.substr(0, kMaxQuotedLine);
      if (!text.empty()) absl::StrAppend(&error, " (line: \"", text, "\")");
    }
    errors_.push_back(std::move(error));
  }
  void AddWarning(int /*line*/, google::protobuf::io::ColumnNumber /*column*/,
                  const std::string& /*message*/) override {}

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  static constexpr size_t kMaxQuotedLine = 80;

  std::string source_;
  std::vector<absl::string_view> lines_;  // views into the text being parsed
  std::vector<std::string> errors_;
};

// `prefix` is "" or "PATH:"; it precedes the line:column of syntax errors, and (followed by
// a space) every other error.
absl::StatusOr<Config> ParseConfigFrom(absl::string_view textproto, absl::string_view prefix) {
  Config config;
  TextprotoErrorCollector collector(prefix, textproto);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  // ParseFromString takes a ConstStringParam (std::string in protobuf 3.21).
  if (!parser.ParseFromString(std::string(textproto), &config)) {
    if (collector.errors().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, prefix.empty() ? "" : " ",
                                                     "textproto could not be parsed"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(collector.errors(), "; "));
  }
  ApplyDefaults(&config);
  if (absl::Status status = ValidateConfig(config); !status.ok()) {
    if (prefix.empty()) return status;
    return absl::Status(status.code(), absl::StrCat(prefix, " ", status.message()));
  }
  return config;
}

bool IsAbsolutePath(const std::string& path) { return !path.empty() && path[0] == '/'; }

// Linux dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
absl::Status CheckInterfaceName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("interface name is empty");
  if (name.size() >= 16) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "\"%s\" is %d characters; interface names are at most 15 (IFNAMSIZ 16)", name,
        name.size()));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not an interface name"));
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c == ' ' || (c >= '\t' && c <= '\r')) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" contains a character not allowed in interface names"));
    }
  }
  return absl::OkStatus();
}

class Validator {
 public:
  explicit Validator(const Config& config) : config_(config) {}

  absl::Status Run() {
    CheckInterfaces();
    CheckSoftwireAddresses();
    CheckB4Prefixes();
    CheckPoolPrefixes();
    CheckPortBlocks();
    CheckTimeouts();
    CheckTables();
    CheckMisc();
    CheckApi();
    CheckPcp();
    CheckLogging();
    CheckIpfix();
    CheckRadius();
    CheckFragments();
    CheckDeterministic();
    if (errors_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(errors_, "; "));
  }

 private:
  void Error(absl::string_view field, absl::string_view why) {
    errors_.push_back(absl::StrCat(field, ": ", why));
  }
  static std::string Indexed(absl::string_view field, int i) {
    return absl::StrCat(field, "[", i, "]");
  }

  void CheckInterfaces() {
    if (config_.interfaces_size() == 0) {
      Error("interfaces", "at least one interface is required");
    }
    std::set<std::string> seen;
    for (int i = 0; i < config_.interfaces_size(); ++i) {
      const std::string& name = config_.interfaces(i);
      if (absl::Status s = CheckInterfaceName(name); !s.ok()) {
        Error(Indexed("interfaces", i), s.message());
      } else if (!seen.insert(name).second) {
        Error(Indexed("interfaces", i), absl::StrCat("\"", name, "\" is listed twice"));
      }
    }
  }

  void CheckSoftwireAddresses() {
    const int n = config_.softwire_addresses_size();
    if (n == 0) Error("softwire_addresses", "at least one softwire address is required");
    if (n > kMaxSoftwireAddresses) {
      Error("softwire_addresses",
            absl::StrCat(n, " addresses given; at most ", kMaxSoftwireAddresses, " are supported"));
    }
    std::vector<Ipv6Address> seen;
    for (int i = 0; i < n; ++i) {
      const std::string field = Indexed("softwire_addresses", i);
      const std::string& text = config_.softwire_addresses(i);
      absl::StatusOr<Ipv6Address> addr = ParseIpv6(text);
      if (!addr.ok()) {
        Error(field, addr.status().message());
      } else if (addr->IsUnspecified()) {
        Error(field, absl::StrCat("\"", text, "\" is the unspecified address, not unicast"));
      } else if (addr->IsMulticast()) {
        Error(field, absl::StrCat("\"", text, "\" is a multicast address, not unicast"));
      } else if (std::find(seen.begin(), seen.end(), *addr) != seen.end()) {
        Error(field, absl::StrCat("\"", text, "\" is listed twice"));
      } else {
        seen.push_back(*addr);
      }
    }
  }

  void CheckB4Prefixes() {
    if (config_.b4_prefixes_size() == 0) {
      Error("b4_prefixes", "at least one B4 prefix is required");
    }
    for (int i = 0; i < config_.b4_prefixes_size(); ++i) {
      absl::StatusOr<Ipv6Prefix> prefix = ParseIpv6Prefix(config_.b4_prefixes(i));
      if (!prefix.ok()) Error(Indexed("b4_prefixes", i), prefix.status().message());
    }
  }

  void CheckPoolPrefixes() {
    const int n = config_.pool_prefixes_size();
    if (n == 0) Error("pool_prefixes", "at least one pool prefix is required");
    if (n > kMaxPoolPrefixes) {
      Error("pool_prefixes",
            absl::StrCat(n, " prefixes given; at most ", kMaxPoolPrefixes, " are supported"));
    }
    std::vector<std::pair<int, Ipv4Prefix>> valid;  // (index, prefix)
    uint64_t total = 0;
    for (int i = 0; i < n; ++i) {
      const std::string field = Indexed("pool_prefixes", i);
      absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(config_.pool_prefixes(i));
      if (!prefix.ok()) {
        Error(field, prefix.status().message());
        continue;
      }
      bool overlaps = false;
      for (const auto& [j, other] : valid) {
        if (prefix->Overlaps(other)) {
          Error(field, absl::StrCat("\"", config_.pool_prefixes(i), "\" overlaps pool_prefixes[",
                                    j, "] \"", config_.pool_prefixes(j), "\""));
          overlaps = true;
          break;
        }
      }
      if (overlaps) continue;
      valid.emplace_back(i, *prefix);
      total += prefix->Size();
    }
    if (total > kMaxPoolAddresses) {
      Error("pool_prefixes", absl::StrCat("the pool has ", total, " addresses; at most ",
                                          kMaxPoolAddresses, " are supported"));
    }
  }

  void CheckPortBlocks() {
    const v1::PortBlocks& pb = config_.port_blocks();
    const uint32_t port_min = pb.port_min();
    const uint32_t port_max = pb.port_max();
    bool range_ok = true;
    if (port_min < 1 || port_min > 65535) {
      Error("port_blocks.port_min", absl::StrCat(port_min, " is not in 1..65535"));
      range_ok = false;
    }
    if (port_max < 1 || port_max > 65535) {
      Error("port_blocks.port_max", absl::StrCat(port_max, " is not in 1..65535"));
      range_ok = false;
    } else if (range_ok && port_max < port_min) {
      Error("port_blocks.port_max",
            absl::StrCat(port_max, " is below port_blocks.port_min ", port_min));
      range_ok = false;
    }
    const uint32_t block_size = pb.block_size();
    if (block_size < 1) {
      Error("port_blocks.block_size", "must be at least 1");
    } else if (range_ok) {
      const uint32_t range = port_max - port_min + 1;
      const uint32_t blocks = range / block_size;
      if (block_size > range) {
        Error("port_blocks.block_size",
              absl::StrCat(block_size, " is larger than the port range ", port_min, "..", port_max,
                           " (", range, " ports)"));
      } else if (blocks > kMaxBlocksPerAddress) {
        const uint32_t smallest_fit = range / (kMaxBlocksPerAddress + 1) + 1;
        Error("port_blocks.block_size",
              absl::StrCat(block_size, " gives ", blocks, " blocks per address over ports ",
                           port_min, "..", port_max, "; at most ", kMaxBlocksPerAddress,
                           " are supported (block_size ", smallest_fit, " or more would fit)"));
      }
    }
    const uint32_t max_blocks = pb.max_blocks_per_subscriber();
    if (max_blocks < 1 || max_blocks > kMaxBlocksPerSubscriberLimit) {
      Error("port_blocks.max_blocks_per_subscriber",
            absl::StrCat(max_blocks, " is not in 1..", kMaxBlocksPerSubscriberLimit));
    }
    if (pb.max_sessions_per_subscriber() < 1) {
      Error("port_blocks.max_sessions_per_subscriber", "must be at least 1");
    }
    if (pb.hold_down_seconds() > kMaxHoldDownSeconds) {
      Error("port_blocks.hold_down_seconds",
            absl::StrCat(pb.hold_down_seconds(), " is more than ", kMaxHoldDownSeconds,
                         " (1 day)"));
    }
  }

  void CheckTimeout(absl::string_view name, uint32_t seconds) {
    if (seconds == 0 || seconds > kMaxTimeoutSeconds) {
      Error(absl::StrCat("timeouts.", name),
            absl::StrCat(seconds, " is not in 1..", kMaxTimeoutSeconds, " seconds (7 days)"));
    }
  }

  void CheckTimeouts() {
    const v1::Timeouts& t = config_.timeouts();
    CheckTimeout("tcp_established", t.tcp_established());
    CheckTimeout("tcp_transitory", t.tcp_transitory());
    CheckTimeout("udp", t.udp());
    CheckTimeout("icmp", t.icmp());
  }

  void CheckTables() {
    const v1::Tables& t = config_.tables();
    if (t.max_sessions() < 1 || t.max_sessions() > kMaxSessionsLimit) {
      Error("tables.max_sessions",
            absl::StrCat(t.max_sessions(), " is not in 1..", kMaxSessionsLimit));
    }
    if (t.max_subscribers() < 1 || t.max_subscribers() > kMaxSubscribersLimit) {
      Error("tables.max_subscribers",
            absl::StrCat(t.max_subscribers(), " is not in 1..", kMaxSubscribersLimit));
    }
    if (t.max_pool_addresses() < 1 || t.max_pool_addresses() > kMaxPoolAddresses) {
      Error("tables.max_pool_addresses",
            absl::StrCat(t.max_pool_addresses(), " is not in 1..", kMaxPoolAddresses));
    }
    uint64_t pool_size = 0;
    for (const std::string& text : config_.pool_prefixes()) {
      absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(text);
      if (prefix.ok()) pool_size += prefix->Size();
    }
    if (t.max_pool_addresses() >= 1 && pool_size > t.max_pool_addresses()) {
      Error("tables.max_pool_addresses",
            absl::StrCat(t.max_pool_addresses(), " is less than the ", pool_size,
                         " addresses of pool_prefixes"));
    }
  }

  // "host:port" with a numeric port; host may be a bracketed IPv6 address.
  static bool IsHostPort(const std::string& text) {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
    uint32_t port = 0;
    if (!absl::SimpleAtoi(text.substr(colon + 1), &port)) return false;
    return port >= 1 && port <= 65535;
  }

  void CheckApi() {
    const v1::Api& api = config_.api();
    if (api.unix_socket() != kNoApiSocket && !IsAbsolutePath(api.unix_socket())) {
      Error("api.unix_socket", absl::StrCat("\"", api.unix_socket(),
                                            "\" is neither an absolute path nor \"-\" (none)"));
    }
    const v1::Tls& tls = api.tls();
    if (!api.tcp_listen().empty()) {
      if (!IsHostPort(api.tcp_listen())) {
        Error("api.tcp_listen",
              absl::StrCat("\"", api.tcp_listen(), "\" is not address:port (port 1..65535)"));
      }
      if (tls.cert_file().empty() || tls.key_file().empty()) {
        Error("api.tls", "api.tcp_listen needs tls.cert_file and tls.key_file: the API is "
                         "served on TCP only with TLS");
      }
    } else if (!tls.cert_file().empty() || !tls.key_file().empty() ||
               !tls.client_ca_file().empty()) {
      Error("api.tls", "is set but api.tcp_listen is empty (TLS applies to TCP only)");
    }
    for (const auto& [name, path] : {std::pair<const char*, const std::string&>{"cert_file", tls.cert_file()},
                                     {"key_file", tls.key_file()},
                                     {"client_ca_file", tls.client_ca_file()}}) {
      if (!path.empty() && !IsAbsolutePath(path)) {
        Error(absl::StrCat("api.tls.", name), absl::StrCat("\"", path, "\" is not an absolute path"));
      }
    }
    const std::string& metrics = config_.metrics().listen();
    if (!metrics.empty() && !IsHostPort(metrics)) {
      Error("metrics.listen", absl::StrCat("\"", metrics, "\" is not address:port (port 1..65535)"));
    } else if (!metrics.empty() && metrics[0] == '[') {
      // Debian 12's civetweb (under prometheus-cpp) is built without IPv6.
      Error("metrics.listen", absl::StrCat("\"", metrics,
                                           "\": the metrics endpoint listens on IPv4 only"));
    }
  }

  void CheckPcp() {
    const v1::Pcp& pcp = config_.pcp();
    for (int i = 0; i < pcp.listen_addresses_size(); ++i) {
      absl::StatusOr<Ipv6Address> addr = ParseIpv6(pcp.listen_addresses(i));
      if (!addr.ok()) {
        Error(Indexed("pcp.listen_addresses", i), addr.status().message());
      } else if (addr->IsUnspecified() || addr->IsMulticast()) {
        Error(Indexed("pcp.listen_addresses", i),
              absl::StrCat("\"", pcp.listen_addresses(i), "\" is not a unicast address"));
      }
    }
    if (pcp.port() < 1 || pcp.port() > 65535) {
      Error("pcp.port", absl::StrCat(pcp.port(), " is not in 1..65535"));
    }
    if (pcp.max_lifetime() > kMaxPcpLifetime) {
      Error("pcp.max_lifetime", absl::StrCat(pcp.max_lifetime(), " is more than ", kMaxPcpLifetime));
    }
    if (pcp.min_lifetime() > pcp.max_lifetime()) {
      Error("pcp.min_lifetime", absl::StrCat(pcp.min_lifetime(), " is more than pcp.max_lifetime (",
                                             pcp.max_lifetime(), ")"));
    }
    if (!v1::NonceCheck_IsValid(pcp.nonce_check())) {
      Error("pcp.nonce_check", absl::StrCat(static_cast<int>(pcp.nonce_check()),
                                            " is not a known nonce check"));
    }
    if (pcp.max_mappings() < 1 || pcp.max_mappings() > kMaxPcpMappingsLimit) {
      Error("pcp.max_mappings", absl::StrCat(pcp.max_mappings(), " is not in 1..", kMaxPcpMappingsLimit));
    }
    for (int i = 0; i < pcp.internal_prefixes_size(); ++i) {
      absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(pcp.internal_prefixes(i));
      if (!prefix.ok()) Error(Indexed("pcp.internal_prefixes", i), prefix.status().message());
    }
    if (pcp.request_burst() < 1) Error("pcp.request_burst", "must be at least 1");
    if (!IsAbsolutePath(pcp.clients_file())) {
      Error("pcp.clients_file", absl::StrCat("\"", pcp.clients_file(), "\" is not an absolute path"));
    }
  }

  // The ranges' own checks live with the mapping (control/nat/deterministic), whose
  // messages already name their fields.
  void CheckDeterministic() {
    absl::StatusOr<nat::DeterministicMap> map = nat::DeterministicMap::Create(config_);
    if (!map.ok()) errors_.push_back(std::string(map.status().message()));
  }

  void CheckLogging() {
    const v1::Logging& logging = config_.logging();
    if (!v1::LogMode_IsValid(logging.mode())) {
      Error("logging.mode", absl::StrCat(static_cast<int>(logging.mode()), " is not a known log mode"));
    }
    if (logging.retention_days() < 1 || logging.retention_days() > kMaxLogRetentionDays) {
      Error("logging.retention_days",
            absl::StrCat(logging.retention_days(), " is not in 1..", kMaxLogRetentionDays));
    }
    if (logging.b4_prefix_length() < 1 || logging.b4_prefix_length() > 128) {
      Error("logging.b4_prefix_length", absl::StrCat(logging.b4_prefix_length(), " is not in 1..128"));
    }
    if (logging.limit_event_interval_ms() > kMaxLimitEventIntervalMs) {
      Error("logging.limit_event_interval_ms",
            absl::StrCat(logging.limit_event_interval_ms(), " is not in 0..", kMaxLimitEventIntervalMs,
                         " (milliseconds; 0 logs every limit event)"));
    }
    if (!IsAbsolutePath(logging.attribution_db())) {
      Error("logging.attribution_db",
            absl::StrCat("\"", logging.attribution_db(), "\" is not an absolute path"));
    }
  }

  void CheckIpfix() {
    const v1::Ipfix& ipfix = config_.ipfix();
    if (ipfix.collectors_size() > kMaxIpfixCollectors) {
      Error("ipfix.collectors", absl::StrCat(ipfix.collectors_size(), " collectors, at most ",
                                             kMaxIpfixCollectors));
    }
    for (int i = 0; i < ipfix.collectors_size(); ++i) {
      const v1::IpfixCollector& c = ipfix.collectors(i);
      absl::StatusOr<SocketAddress> addr = ParseSocketAddress(c.address());
      if (!addr.ok()) Error(absl::StrCat(Indexed("ipfix.collectors", i), ".address"), addr.status().message());
      if (!v1::IpfixTransport_IsValid(c.transport())) {
        Error(absl::StrCat(Indexed("ipfix.collectors", i), ".transport"),
              absl::StrCat(static_cast<int>(c.transport()), " is not a known transport"));
      }
    }
    if (ipfix.template_refresh_seconds() < 1 ||
        ipfix.template_refresh_seconds() > kMaxIpfixTemplateRefreshSeconds) {
      Error("ipfix.template_refresh_seconds", absl::StrCat(ipfix.template_refresh_seconds(),
                                                           " is not in 1..", kMaxIpfixTemplateRefreshSeconds));
    }
    if (ipfix.max_message_bytes() < kMinIpfixMaxMessageBytes ||
        ipfix.max_message_bytes() > kMaxIpfixMaxMessageBytes) {
      Error("ipfix.max_message_bytes", absl::StrCat(ipfix.max_message_bytes(), " is not in ",
                                                    kMinIpfixMaxMessageBytes, "..", kMaxIpfixMaxMessageBytes));
    }
    if (ipfix.spool_bytes() < ipfix.max_message_bytes() || ipfix.spool_bytes() > kMaxIpfixSpoolBytes) {
      Error("ipfix.spool_bytes", absl::StrCat(ipfix.spool_bytes(), " is not in ", ipfix.max_message_bytes(),
                                              "..", kMaxIpfixSpoolBytes));
    }
    if (ipfix.b4_prefix_length() < 1 || ipfix.b4_prefix_length() > 128) {
      Error("ipfix.b4_prefix_length", absl::StrCat(ipfix.b4_prefix_length(), " is not in 1..128"));
    }
  }

  void CheckFragments() {
    const v1::Fragments& f = config_.fragments();
    if (f.timeout_ms() < kMinFragmentTimeoutMs || f.timeout_ms() > kMaxFragmentTimeoutMs) {
      Error("fragments.timeout_ms", absl::StrCat(f.timeout_ms(), " is not in ", kMinFragmentTimeoutMs,
                                                 "..", kMaxFragmentTimeoutMs));
    }
    if (f.max_datagrams() < 1 || f.max_datagrams() > kMaxFragmentMaxDatagrams) {
      Error("fragments.max_datagrams",
            absl::StrCat(f.max_datagrams(), " is not in 1..", kMaxFragmentMaxDatagrams));
    }
    if (f.max_bytes() < kMinFragmentMaxBytes || f.max_bytes() > kMaxFragmentMaxBytes) {
      Error("fragments.max_bytes", absl::StrCat(f.max_bytes(), " is not in ", kMinFragmentMaxBytes,
                                                "..", kMaxFragmentMaxBytes));
    }
  }

  void CheckRadius() {
    const v1::Radius& radius = config_.radius();
    for (int i = 0; i < radius.listen_addresses_size(); ++i) {
      absl::StatusOr<SocketAddress> addr = MakeSocketAddress(radius.listen_addresses(i), 1);
      if (!addr.ok()) Error(Indexed("radius.listen_addresses", i), addr.status().message());
    }
    if (radius.port() < 1 || radius.port() > 65535) {
      Error("radius.port", absl::StrCat(radius.port(), " is not in 1..65535"));
    }
    if (radius.clients_size() > kMaxRadiusClients) {
      Error("radius.clients", absl::StrCat(radius.clients_size(), " clients, at most ", kMaxRadiusClients));
    }
    if (radius.enabled() && radius.clients_size() == 0) {
      Error("radius.clients", "radius is enabled but no client (BRAS) is configured");
    }
    for (int i = 0; i < radius.clients_size(); ++i) {
      const v1::RadiusClient& c = radius.clients(i);
      const std::string field = Indexed("radius.clients", i);
      const bool v4 = ParseIpv4Prefix(c.source()).ok() || ParseIpv4(c.source()).ok();
      const bool v6 = ParseIpv6Prefix(c.source()).ok() || ParseIpv6(c.source()).ok();
      if (!v4 && !v6) {
        Error(absl::StrCat(field, ".source"),
              absl::StrCat("\"", c.source().substr(0, 80), "\" is not an IPv4/IPv6 address or prefix"));
      }
      if (c.secret().empty() == c.secret_file().empty()) {
        Error(field, "needs exactly one of secret and secret_file");
      } else if (!c.secret_file().empty() && !IsAbsolutePath(c.secret_file())) {
        Error(absl::StrCat(field, ".secret_file"),
              absl::StrCat("\"", c.secret_file(), "\" is not an absolute path"));
      }
    }
    if (!IsAbsolutePath(radius.history_db())) {
      Error("radius.history_db", absl::StrCat("\"", radius.history_db(), "\" is not an absolute path"));
    }
    if (radius.history_days() < 1 || radius.history_days() > kMaxLogRetentionDays) {
      Error("radius.history_days",
            absl::StrCat(radius.history_days(), " is not in 1..", kMaxLogRetentionDays));
    }
  }

  void CheckMisc() {
    if (config_.log_file().empty()) {
      Error("log_file", "is required");
    } else if (!IsAbsolutePath(config_.log_file())) {
      Error("log_file", absl::StrCat("\"", config_.log_file(), "\" is not an absolute path"));
    }
    if (!IsAbsolutePath(config_.pin_path())) {
      Error("pin_path", absl::StrCat("\"", config_.pin_path(), "\" is not an absolute path"));
    }
    const int32_t mss = config_.tcp_mss_clamp();
    if (mss != kTcpMssClampOff && (mss < kMinTcpMssClamp || mss > kMaxTcpMssClamp)) {
      Error("tcp_mss_clamp", absl::StrCat(mss, " is neither -1 (off) nor in ", kMinTcpMssClamp,
                                          "..", kMaxTcpMssClamp));
    }
    if (config_.softwire_mtu() < kMinSoftwireMtu || config_.softwire_mtu() > kMaxSoftwireMtu) {
      Error("softwire_mtu", absl::StrCat(config_.softwire_mtu(), " is not in ", kMinSoftwireMtu,
                                         "..", kMaxSoftwireMtu));
    }
    if (config_.icmp_errors_per_second() > kMaxIcmpErrorsPerSecond) {
      Error("icmp_errors_per_second", absl::StrCat(config_.icmp_errors_per_second(),
                                                   " is not in 0..", kMaxIcmpErrorsPerSecond));
    }
    if (config_.hop_limit() < 1 || config_.hop_limit() > 255) {
      Error("hop_limit", absl::StrCat(config_.hop_limit(), " is not in 1..255"));
    }
    const uint32_t ring = config_.event_ring_bytes();
    if (ring < kMinEventRingBytes || ring > kMaxEventRingBytes || (ring & (ring - 1)) != 0) {
      Error("event_ring_bytes", absl::StrCat(ring, " is not a power of two in ", kMinEventRingBytes,
                                             "..", kMaxEventRingBytes));
    }
    const int32_t fib_cache = config_.fib_cache_ms();
    if (fib_cache != kFibCacheOff && (fib_cache < 1 || fib_cache > kMaxFibCacheMs)) {
      Error("fib_cache_ms", absl::StrCat(fib_cache, " is neither -1 (off) nor in 1..",
                                         kMaxFibCacheMs));
    }
    const uint32_t sweep = config_.sweep_interval_ms();
    if (sweep < kMinSweepIntervalMs || sweep > kMaxSweepIntervalMs) {
      Error("sweep_interval_ms",
            absl::StrCat(sweep, " is not in ", kMinSweepIntervalMs, "..", kMaxSweepIntervalMs));
    }
    if (!v1::Filtering_IsValid(config_.filtering())) {
      Error("filtering", absl::StrCat(static_cast<int>(config_.filtering()),
                                      " is not a known filtering mode"));
    }
  }

  const Config& config_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<Config> ParseConfig(absl::string_view textproto) {
  return ParseConfigFrom(textproto, "");
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  const std::string prefix = absl::StrCat(path, ":");
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(prefix, " cannot open config file: ", std::strerror(err)));
  }
  std::string contents;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file.get())) > 0) {
    contents.append(buf, n);
    if (contents.size() > kMaxConfigFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, " config file is larger than ",
                                                     kMaxConfigFileBytes, " bytes"));
    }
  }
  if (std::ferror(file.get())) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(prefix, " cannot read config file: ", std::strerror(err)));
  }
  return ParseConfigFrom(contents, prefix);
}

void ApplyDefaults(Config* config) {
  if (config->pin_path().empty()) config->set_pin_path(kDefaultPinPath);
  if (config->softwire_mtu() == 0) config->set_softwire_mtu(kDefaultSoftwireMtu);
  if (config->tcp_mss_clamp() == 0) {
    const uint32_t mtu = config->softwire_mtu();
    config->set_tcp_mss_clamp(mtu >= kMinSoftwireMtu && mtu <= kMaxSoftwireMtu
                                  ? int32_t(mtu) - kTcpMssClampOverhead
                                  : kDefaultTcpMssClamp);
  }
  if (!config->has_icmp_errors_per_second()) {
    config->set_icmp_errors_per_second(kDefaultIcmpErrorsPerSecond);
  }
  if (config->sweep_interval_ms() == 0) config->set_sweep_interval_ms(kDefaultSweepIntervalMs);
  if (config->hop_limit() == 0) config->set_hop_limit(kDefaultHopLimit);
  if (config->event_ring_bytes() == 0) config->set_event_ring_bytes(kDefaultEventRingBytes);
  if (config->fib_cache_ms() == 0) config->set_fib_cache_ms(kDefaultFibCacheMs);

  v1::PortBlocks* pb = config->mutable_port_blocks();
  if (pb->port_min() == 0) pb->set_port_min(kDefaultPortMin);
  if (pb->port_max() == 0) pb->set_port_max(kDefaultPortMax);
  if (pb->block_size() == 0) pb->set_block_size(kDefaultBlockSize);
  if (pb->max_blocks_per_subscriber() == 0) {
    pb->set_max_blocks_per_subscriber(kDefaultMaxBlocksPerSubscriber);
  }
  if (pb->max_sessions_per_subscriber() == 0) {
    pb->set_max_sessions_per_subscriber(kDefaultMaxSessionsPerSubscriber);
  }
  if (pb->hold_down_seconds() == 0) pb->set_hold_down_seconds(kDefaultHoldDownSeconds);

  v1::Timeouts* t = config->mutable_timeouts();
  if (t->tcp_established() == 0) t->set_tcp_established(kDefaultTcpEstablishedTimeout);
  if (t->tcp_transitory() == 0) t->set_tcp_transitory(kDefaultTcpTransitoryTimeout);
  if (t->udp() == 0) t->set_udp(kDefaultUdpTimeout);
  if (t->icmp() == 0) t->set_icmp(kDefaultIcmpTimeout);

  v1::Tables* tables = config->mutable_tables();
  if (tables->max_sessions() == 0) tables->set_max_sessions(kDefaultMaxSessions);
  if (tables->max_subscribers() == 0) tables->set_max_subscribers(kDefaultMaxSubscribers);
  if (tables->max_pool_addresses() == 0) {
    // Room for the configured pool and for prefixes added at run time.
    uint64_t pool_size = 0;
    for (const std::string& text : config->pool_prefixes()) {
      absl::StatusOr<Ipv4Prefix> prefix = ParseIpv4Prefix(text);
      if (prefix.ok()) pool_size += prefix->Size();
    }
    tables->set_max_pool_addresses(static_cast<uint32_t>(
        std::min<uint64_t>(kMaxPoolAddresses, std::max<uint64_t>(kDefaultMaxPoolAddresses, pool_size))));
  }
  if (config->api().unix_socket().empty()) config->mutable_api()->set_unix_socket(kDefaultApiSocket);

  v1::Pcp* pcp = config->mutable_pcp();
  if (pcp->listen_addresses_size() == 0) *pcp->mutable_listen_addresses() = config->softwire_addresses();
  if (pcp->port() == 0) pcp->set_port(kDefaultPcpPort);
  if (pcp->min_lifetime() == 0) pcp->set_min_lifetime(kDefaultPcpMinLifetime);
  if (pcp->max_lifetime() == 0) pcp->set_max_lifetime(kDefaultPcpMaxLifetime);
  if (pcp->nonce_check() == v1::NONCE_CHECK_UNSPECIFIED) pcp->set_nonce_check(v1::NONCE_CHECK_STRICT);
  if (pcp->max_mappings_per_subscriber() == 0) {
    pcp->set_max_mappings_per_subscriber(kDefaultPcpMaxMappingsPerSubscriber);
  }
  if (pcp->internal_prefixes_size() == 0) {
    for (const char* p : kDefaultPcpInternalPrefixes) pcp->add_internal_prefixes(p);
  }
  if (pcp->requests_per_second() == 0) pcp->set_requests_per_second(kDefaultPcpRequestsPerSecond);
  if (pcp->request_burst() == 0) pcp->set_request_burst(kDefaultPcpRequestBurst);
  if (pcp->clients_file().empty()) pcp->set_clients_file(kDefaultPcpClientsFile);
  if (pcp->max_mappings() == 0) pcp->set_max_mappings(kDefaultPcpMaxMappings);

  v1::Logging* logging = config->mutable_logging();
  if (logging->mode() == v1::LOG_MODE_UNSPECIFIED) logging->set_mode(v1::LOG_MODE_PORT_BLOCK);
  if (logging->retention_days() == 0) logging->set_retention_days(kDefaultLogRetentionDays);
  if (logging->b4_prefix_length() == 0) logging->set_b4_prefix_length(kDefaultLogB4PrefixLength);
  if (logging->attribution_db().empty()) logging->set_attribution_db(kDefaultAttributionDb);
  // Unset, not 0: 0 is a choice (no limiting).
  if (!logging->has_limit_event_interval_ms()) {
    logging->set_limit_event_interval_ms(kDefaultLimitEventIntervalMs);
  }

  v1::Ipfix* ipfix = config->mutable_ipfix();
  if (ipfix->observation_domain_id() == 0) ipfix->set_observation_domain_id(kDefaultIpfixObservationDomainId);
  if (ipfix->template_refresh_seconds() == 0) {
    ipfix->set_template_refresh_seconds(kDefaultIpfixTemplateRefreshSeconds);
  }
  if (ipfix->max_message_bytes() == 0) ipfix->set_max_message_bytes(kDefaultIpfixMaxMessageBytes);
  if (ipfix->spool_bytes() == 0) ipfix->set_spool_bytes(kDefaultIpfixSpoolBytes);
  if (ipfix->b4_prefix_length() == 0) ipfix->set_b4_prefix_length(kDefaultIpfixB4PrefixLength);
  for (v1::IpfixCollector& c : *ipfix->mutable_collectors()) {
    if (c.transport() == v1::IPFIX_TRANSPORT_UNSPECIFIED) c.set_transport(v1::IPFIX_TRANSPORT_UDP);
  }

  v1::Radius* radius = config->mutable_radius();
  if (radius->listen_addresses_size() == 0) radius->add_listen_addresses(kDefaultRadiusListenAddress);
  if (radius->port() == 0) radius->set_port(kDefaultRadiusPort);
  if (radius->history_db().empty()) radius->set_history_db(kDefaultRadiusHistoryDb);
  if (radius->history_days() == 0) radius->set_history_days(kDefaultRadiusHistoryDays);

  v1::Fragments* fragments = config->mutable_fragments();
  if (fragments->timeout_ms() == 0) fragments->set_timeout_ms(kDefaultFragmentTimeoutMs);
  if (fragments->max_datagrams() == 0) fragments->set_max_datagrams(kDefaultFragmentMaxDatagrams);
  if (fragments->max_bytes() == 0) fragments->set_max_bytes(kDefaultFragmentMaxBytes);

  if (config->filtering() == v1::FILTERING_UNSPECIFIED) {
    config->set_filtering(v1::FILTERING_ENDPOINT_INDEPENDENT);
  }
}

absl::Status ValidateConfig(const Config& config) { return Validator(config).Run(); }

std::vector<std::string> ConfigWarnings(const Config& config) {
  std::vector<std::string> warnings;
  const v1::Timeouts& t = config.timeouts();
  auto warn_timeout = [&](absl::string_view name, uint32_t value, uint32_t minimum,
                          absl::string_view rfc) {
    if (value < minimum) {
      warnings.push_back(absl::StrCat("timeouts.", name, ": ", value, " s is below the ", minimum,
                                      " s minimum of ", rfc));
    }
  };
  warn_timeout("tcp_established", t.tcp_established(), kRfcMinTcpEstablishedTimeout,
               "RFC 5382 REQ-5");
  warn_timeout("tcp_transitory", t.tcp_transitory(), kRfcMinTcpTransitoryTimeout,
               "RFC 5382 REQ-5");
  warn_timeout("udp", t.udp(), kRfcMinUdpTimeout, "RFC 4787 REQ-5");
  warn_timeout("icmp", t.icmp(), kRfcMinIcmpTimeout, "RFC 5508 REQ-1");

  const v1::PortBlocks& pb = config.port_blocks();
  if (pb.block_size() >= 1 && pb.port_min() >= 1 && pb.port_min() <= pb.port_max() &&
      pb.port_max() <= 65535) {
    const uint32_t range = pb.port_max() - pb.port_min() + 1;
    const uint32_t blocks = range / pb.block_size();
    const uint32_t unused = range - blocks * pb.block_size();
    if (blocks >= 1 && unused != 0) {
      warnings.push_back(absl::StrCat("port_blocks.block_size: ", pb.block_size(), " gives ",
                                      blocks, " blocks per address over ports ", pb.port_min(),
                                      "..", pb.port_max(), " and leaves ", unused,
                                      " ports unused"));
    }
    if (blocks >= 1 && pb.max_blocks_per_subscriber() > blocks) {
      warnings.push_back(absl::StrCat(
          "port_blocks.max_blocks_per_subscriber: ", pb.max_blocks_per_subscriber(),
          " is more than the ", blocks, " blocks one address has"));
    }
  }
  return warnings;
}

}  // namespace aftr::config
