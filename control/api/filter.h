// List and watch filters: the AIP-160 subset the API accepts — terms `field = value` joined
// by AND, values bare or double-quoted. Each method allows its own fields.
#ifndef AFTR_CONTROL_API_FILTER_H_
#define AFTR_CONTROL_API_FILTER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/common/ip.h"

namespace aftr::api {

// Fields a filter may name; a method passes the set it supports.
enum FilterField : uint32_t {
  kFilterB4 = 1 << 0,          // b4_address, subscriber: an address, prefix or subscriber name
  kFilterInnerAddr = 1 << 1,   // inner_address: address or prefix
  kFilterInnerPort = 1 << 2,   // inner_port
  kFilterPublicAddr = 1 << 3,  // public_address: address or prefix
  kFilterPublicPort = 1 << 4,  // public_port
  kFilterProtocol = 1 << 5,    // protocol: tcp, udp, icmp
  kFilterKind = 1 << 6,        // kind: dynamic, static
  kFilterEventType = 1 << 7,   // type: an aftr.v1.Event.Type name
};

struct Filter {
  std::optional<Ipv6Prefix> b4;
  std::optional<Ipv4Prefix> inner_addr;
  std::optional<uint16_t> inner_port;
  std::optional<Ipv4Prefix> public_addr;
  std::optional<uint16_t> public_port;
  std::optional<uint8_t> proto;
  std::optional<int> kind;  // static_cast<int>(bpf::SessionKind)
  std::optional<int> event_type;  // aftr::v1::Event::Type
  // A normalized form: equal for filters that select the same things (binds page tokens).
  std::string canonical;

  bool MatchB4(const uint8_t b4[16]) const;
  bool MatchInner(uint32_t addr_host, uint16_t port) const;
  bool MatchPublic(uint32_t addr_host, uint16_t port) const;
  bool MatchProto(uint8_t p) const { return !proto || *proto == p; }
  bool MatchKind(int session_kind) const { return !kind || *kind == session_kind; }
};

// Errors are InvalidArgument and start with "filter: ".
absl::StatusOr<Filter> ParseFilter(absl::string_view text, uint32_t allowed_fields);

// Whether `addr` lies in `prefix`.
bool PrefixContains(const Ipv6Prefix& prefix, const uint8_t addr[16]);

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_FILTER_H_
