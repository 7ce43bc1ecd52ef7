// aftrd configuration: textproto parsing, defaults and validation of
// aftr.config.v1.Config (proto/aftr/config/v1/config.proto).
//
// Typical use:
//   absl::StatusOr<aftr::config::v1::Config> cfg = aftr::config::LoadConfigFile(path);
//   if (!cfg.ok()) { /* refuse to start, print cfg.status() */ }
//   for (const std::string& w : aftr::config::ConfigWarnings(*cfg)) { /* log w */ }
#ifndef AFTR_CONTROL_CONFIG_CONFIG_H_
#define AFTR_CONTROL_CONFIG_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "aftr/config/v1/config.pb.h"

namespace aftr::config {

// Defaults applied by ApplyDefaults to fields left at proto3 zero.
inline constexpr char kDefaultPinPath[] = "/sys/fs/bpf/aftr";
inline constexpr uint32_t kDefaultSoftwireMtu = 1500;
inline constexpr uint32_t kMinSoftwireMtu = 1280;  // IPv6's minimum (RFC 8200)
inline constexpr uint32_t kMaxSoftwireMtu = 9216;
// The default MSS clamp is softwire_mtu minus the softwire IPv6 header (40), IPv4 (20) and TCP (20).
inline constexpr int32_t kTcpMssClampOverhead = 80;
inline constexpr int32_t kDefaultTcpMssClamp = kDefaultSoftwireMtu - kTcpMssClampOverhead;  // 1420
inline constexpr uint32_t kDefaultIcmpErrorsPerSecond = 1000;
inline constexpr uint32_t kMaxIcmpErrorsPerSecond = 1000000;
inline constexpr int32_t kTcpMssClampOff = -1;
inline constexpr uint32_t kDefaultSweepIntervalMs = 1000;
inline constexpr uint32_t kDefaultHopLimit = 64;
inline constexpr uint32_t kDefaultEventRingBytes = 1u << 20;
inline constexpr int32_t kDefaultFibCacheMs = 1000;
inline constexpr int32_t kFibCacheOff = -1;
inline constexpr int32_t kMaxFibCacheMs = 60000;
inline constexpr uint32_t kDefaultPortMin = 1024;
inline constexpr uint32_t kDefaultPortMax = 65535;
inline constexpr uint32_t kDefaultBlockSize = 512;
inline constexpr uint32_t kDefaultMaxBlocksPerSubscriber = 4;
inline constexpr uint32_t kDefaultMaxSessionsPerSubscriber = 4096;
inline constexpr uint32_t kDefaultHoldDownSeconds = 120;
inline constexpr uint32_t kDefaultTcpEstablishedTimeout = 7440;  // RFC 5382 REQ-5 minimum
inline constexpr uint32_t kDefaultTcpTransitoryTimeout = 240;    // RFC 5382 REQ-5 minimum
inline constexpr uint32_t kDefaultUdpTimeout = 300;              // RFC 4787 REQ-5 recommends
inline constexpr uint32_t kDefaultIcmpTimeout = 60;              // RFC 5508 REQ-1 minimum
inline constexpr uint32_t kDefaultMaxSessions = 1u << 20;
inline constexpr uint32_t kDefaultMaxSubscribers = 1u << 16;
inline constexpr uint32_t kDefaultMaxPoolAddresses = 4096;
inline constexpr char kDefaultApiSocket[] = "/run/aftrd/aftrd.sock";
inline constexpr char kNoApiSocket[] = "-";
inline constexpr uint32_t kDefaultPcpPort = 5351;
inline constexpr uint32_t kDefaultPcpMinLifetime = 120;    // RFC 6887 section 15
inline constexpr uint32_t kDefaultPcpMaxLifetime = 86400;  // RFC 6887 section 15
inline constexpr uint32_t kDefaultPcpMaxMappingsPerSubscriber = 64;
inline constexpr uint32_t kDefaultPcpRequestsPerSecond = 20;
inline constexpr uint32_t kDefaultPcpRequestBurst = 40;
inline constexpr uint32_t kDefaultPcpMaxMappings = 65536;
inline constexpr char kDefaultPcpClientsFile[] = "/var/lib/aftrd/pcp-clients";
// Where THIRD_PARTY hosts may be: private (RFC 1918), shared (RFC 6598) and the DS-Lite B4
// range (RFC 6333).
inline constexpr const char* kDefaultPcpInternalPrefixes[] = {
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/29"};
inline constexpr uint32_t kDefaultLogRetentionDays = 180;
inline constexpr uint32_t kDefaultLogB4PrefixLength = 64;
inline constexpr uint32_t kDefaultLimitEventIntervalMs = 1000;
inline constexpr char kDefaultAttributionDb[] = "/var/lib/aftrd/attribution.sqlite3";
inline constexpr uint32_t kDefaultIpfixObservationDomainId = 1;
inline constexpr uint32_t kDefaultIpfixTemplateRefreshSeconds = 60;
inline constexpr uint32_t kDefaultIpfixMaxMessageBytes = 1400;
inline constexpr uint64_t kDefaultIpfixSpoolBytes = 64ull << 20;
inline constexpr uint32_t kDefaultIpfixB4PrefixLength = 128;
inline constexpr char kDefaultRadiusListenAddress[] = "::";
inline constexpr uint32_t kDefaultRadiusPort = 1813;
inline constexpr char kDefaultRadiusHistoryDb[] = "/var/lib/aftrd/subscribers.sqlite3";
inline constexpr uint32_t kDefaultRadiusHistoryDays = 180;

// RFC minimums below which ConfigWarnings complains (short timeouts are allowed).
inline constexpr uint32_t kRfcMinTcpEstablishedTimeout = 7440;
inline constexpr uint32_t kRfcMinTcpTransitoryTimeout = 240;
inline constexpr uint32_t kRfcMinUdpTimeout = 120;
inline constexpr uint32_t kRfcMinIcmpTimeout = 60;

// Validation limits.
inline constexpr int kMaxSoftwireAddresses = 4;
inline constexpr int kMaxPoolPrefixes = 8;
inline constexpr uint64_t kMaxPoolAddresses = 65536;
inline constexpr uint32_t kMaxBlocksPerAddress = 1024;
inline constexpr uint32_t kMaxBlocksPerSubscriberLimit = 8;
inline constexpr uint32_t kMaxHoldDownSeconds = 86400;
inline constexpr uint32_t kMaxTimeoutSeconds = 7 * 86400;
inline constexpr uint32_t kMaxSessionsLimit = 1u << 26;
inline constexpr uint32_t kMaxSubscribersLimit = 1u << 24;
inline constexpr int32_t kMinTcpMssClamp = 536;
inline constexpr int32_t kMaxTcpMssClamp = 65495;
inline constexpr uint32_t kMinEventRingBytes = 4096;
inline constexpr uint32_t kMaxEventRingBytes = 1u << 30;
inline constexpr uint32_t kMinSweepIntervalMs = 10;
inline constexpr uint32_t kMaxSweepIntervalMs = 60000;
inline constexpr uint32_t kMaxPcpLifetime = 7 * 86400;
inline constexpr uint32_t kMaxPcpMappingsLimit = 1u << 22;
inline constexpr uint32_t kMaxLogRetentionDays = 3650;
inline constexpr uint32_t kMaxLimitEventIntervalMs = 3600 * 1000;
inline constexpr int kMaxIpfixCollectors = 8;
inline constexpr uint32_t kMinIpfixMaxMessageBytes = 512;    // RFC 7011 section 10.3.3
inline constexpr uint32_t kMaxIpfixMaxMessageBytes = 65487;  // 65535 - IPv6 + UDP headers
inline constexpr uint32_t kMaxIpfixTemplateRefreshSeconds = 3600;
inline constexpr uint64_t kMaxIpfixSpoolBytes = 16ull << 30;
inline constexpr int kMaxRadiusClients = 1024;
inline constexpr uint32_t kDefaultFragmentTimeoutMs = 5000;
inline constexpr uint32_t kMinFragmentTimeoutMs = 100;
inline constexpr uint32_t kMaxFragmentTimeoutMs = 60000;
inline constexpr uint32_t kDefaultFragmentMaxDatagrams = 4096;
inline constexpr uint32_t kMaxFragmentMaxDatagrams = 1u << 20;
inline constexpr uint64_t kDefaultFragmentMaxBytes = 16ull << 20;
inline constexpr uint64_t kMinFragmentMaxBytes = 64ull << 10;
inline constexpr uint64_t kMaxFragmentMaxBytes = 1ull << 30;

// Parses a textproto Config, applies defaults and validates it. Syntax errors and unknown
// fields are InvalidArgument naming "LINE:COLUMN: what is wrong" (1-based); validation
// errors are those of ValidateConfig. Returns the config with every default filled in.
absl::StatusOr<aftr::config::v1::Config> ParseConfig(absl::string_view textproto);

// Reads `path` and runs ParseConfig on its contents. A missing file is NotFound; every error
// message is prefixed with "PATH: " (syntax errors read "PATH:LINE:COLUMN: ...").
absl::StatusOr<aftr::config::v1::Config> LoadConfigFile(const std::string& path);

// Replaces fields left at their proto3 zero value ("unset") with their defaults.
// tcp_mss_clamp -1 (off) is kept, 0 becomes softwire_mtu - 80 (1420 when softwire_mtu is
// out of range, which validation reports); an unset icmp_errors_per_second becomes 1000
// (an explicit 0 is kept); filtering UNSPECIFIED becomes ENDPOINT_INDEPENDENT.
void ApplyDefaults(aftr::config::v1::Config* config);

// Checks a config (after ApplyDefaults). Returns OK or InvalidArgument listing every
// problem, each as "FIELD_PATH: why", joined with "; "
// (e.g. `softwire_addresses[1]: "2001:db8::zz" is not an IPv6 address`).
absl::Status ValidateConfig(const aftr::config::v1::Config& config);

// Human-readable warnings for a valid config (e.g. timeouts below RFC minimums, port-block
// sizes that waste ports). Empty when nothing is questionable.
std::vector<std::string> ConfigWarnings(const aftr::config::v1::Config& config);

}  // namespace aftr::config

#endif  // AFTR_CONTROL_CONFIG_CONFIG_H_
