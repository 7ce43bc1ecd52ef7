#include "control/nat/deterministic.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace aftr::nat {
namespace {

using U128 = unsigned __int128;

U128 ToU128(const Ipv6Address& a) {
  U128 v = 0;
  for (uint8_t b : a.bytes) v = (v << 8) | b;
  return v;
}

Ipv6Address FromU128(U128 v) {
  Ipv6Address a;
  for (int i = 15; i >= 0; --i) {
    a.bytes[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
  return a;
}

U128 Mask(int length) { return length == 0 ? 0 : ~U128{0} << (128 - length); }

bool Contains(const Ipv6Prefix& outer, const Ipv6Prefix& inner) {
  return inner.length >= outer.length &&
         (ToU128(inner.addr) & Mask(outer.length)) == ToU128(outer.addr);
}

bool Contains(const Ipv6Prefix& p, const Ipv6Address& a) {
  return (ToU128(a) & Mask(p.length)) == ToU128(p.addr);
}

bool Overlaps(const Ipv6Prefix& a, const Ipv6Prefix& b) { return Contains(a, b) || Contains(b, a); }

}  // namespace

std::string DeterministicRange::ToString() const {
  return absl::StrFormat("%s /%d %s %d %d-%d", b4_prefix.ToString(), subscriber_prefix_length,
                         pool_prefix.ToString(), ports_per_subscriber, port_min, port_max);
}

absl::StatusOr<DeterministicMap> DeterministicMap::Create(const aftr::config::v1::Config& config) {
  std::vector<std::string> errors;
  const auto& ranges = config.deterministic().ranges();
  if (ranges.size() > kMaxDeterministicRanges) {
    errors.push_back(absl::StrCat("deterministic.ranges: ", ranges.size(), " given; at most ",
                                  kMaxDeterministicRanges, " are supported"));
  }
  std::vector<Ipv6Prefix> b4_prefixes;
  for (const std::string& text : config.b4_prefixes()) {
    if (absl::StatusOr<Ipv6Prefix> p = ParseIpv6Prefix(text); p.ok()) b4_prefixes.push_back(*p);
  }
  std::vector<std::pair<std::string, Ipv4Prefix>> pools;  // (field, prefix) seen so far
  for (int i = 0; i < config.pool_prefixes_size(); ++i) {
    if (absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(config.pool_prefixes(i)); p.ok()) {
      pools.emplace_back(absl::StrCat("pool_prefixes[", i, "]"), *p);
    }
  }
  const auto& pb = config.port_blocks();
  const bool ports_ok = pb.port_min() >= 1 && pb.port_max() <= 65535 &&
                        pb.port_min() <= pb.port_max() && pb.block_size() >= 1;
  const uint32_t port_range = ports_ok ? pb.port_max() - pb.port_min() + 1 : 0;

  DeterministicMap map;
  for (int i = 0; i < ranges.size(); ++i) {
    const auto& r = ranges[i];
    const std::string field = absl::StrCat("deterministic.ranges[", i, "]");
    auto error = [&](absl::string_view sub, absl::string_view why) {
      errors.push_back(absl::StrCat(field, ".", sub, ": ", why));
    };
    const size_t errors_before = errors.size();
    DeterministicRange out;

    absl::StatusOr<Ipv6Prefix> b4 = ParseIpv6Prefix(r.b4_prefix());
    if (!b4.ok()) {
      error("b4_prefix", r.b4_prefix().empty() ? "is required" : b4.status().message());
    } else {
      out.b4_prefix = *b4;
      bool inside = false;
      for (const Ipv6Prefix& p : b4_prefixes) inside = inside || Contains(p, *b4);
      if (!inside) {
        error("b4_prefix", absl::StrCat("\"", r.b4_prefix(), "\" is not inside any of b4_prefixes"));
      }
      for (int j = 0; j < static_cast<int>(map.ranges_.size()); ++j) {
        if (Overlaps(map.ranges_[j].b4_prefix, *b4)) {
          error("b4_prefix", absl::StrCat("\"", r.b4_prefix(), "\" overlaps deterministic.ranges[",
                                          j, "].b4_prefix \"", map.ranges_[j].b4_prefix.ToString(),
                                          "\""));
        }
      }
      const int sub_len = static_cast<int>(r.subscriber_prefix_length());
      if (sub_len <= b4->length || sub_len > 128) {
        error("subscriber_prefix_length",
              absl::StrCat(sub_len, " is not in ", b4->length + 1, "..128 (longer than b4_prefix's /",
                           b4->length, ")"));
      } else if (sub_len - b4->length > kMaxDeterministicSubscriberBits) {
        error("subscriber_prefix_length",
              absl::StrCat("/", sub_len, " inside /", b4->length, " makes 2^", sub_len - b4->length,
                           " subscribers; at most 2^", kMaxDeterministicSubscriberBits,
                           " are supported (subscriber_prefix_length ",
                           b4->length + kMaxDeterministicSubscriberBits, " or less)"));
      } else {
        out.subscriber_prefix_length = sub_len;
        out.subscribers = uint64_t{1} << (sub_len - b4->length);
      }
    }

    absl::StatusOr<Ipv4Prefix> pool = ParseIpv4Prefix(r.pool_prefix());
    if (!pool.ok()) {
      error("pool_prefix", r.pool_prefix().empty() ? "is required" : pool.status().message());
    } else {
      out.pool_prefix = *pool;
      for (const auto& [other_field, other] : pools) {
        if (pool->Overlaps(other)) {
          error("pool_prefix", absl::StrCat("\"", r.pool_prefix(), "\" overlaps ", other_field,
                                            " \"", other.ToString(), "\""));
        }
      }
      pools.emplace_back(absl::StrCat(field, ".pool_prefix"), *pool);
    }

    const uint32_t pps = r.ports_per_subscriber();
    if (ports_ok) {
      out.port_min = pb.port_min();
      out.port_max = pb.port_max();
      const uint32_t bs = pb.block_size();
      if (pps == 0) {
        error("ports_per_subscriber", "is required");
      } else if (pps % bs != 0 || pps / bs > kMaxDeterministicBlocks) {
        error("ports_per_subscriber",
              absl::StrCat(pps, " is not 1..", kMaxDeterministicBlocks,
                           " times port_blocks.block_size ", bs,
                           " (the data plane holds a deterministic range as that many port blocks)"));
      } else if (pps > port_range) {
        error("ports_per_subscriber", absl::StrCat(pps, " is more than the ", port_range,
                                                   " ports of port_blocks ", pb.port_min(), "..",
                                                   pb.port_max()));
      } else {
        out.ports_per_subscriber = pps;
        out.per_addr = port_range / pps;
      }
    }
    if (errors.size() == errors_before && out.subscribers != 0 && out.per_addr != 0) {
      const uint64_t capacity = out.per_addr * out.pool_prefix.Size();
      if (out.subscribers > capacity) {
        error("pool_prefix",
              absl::StrFormat("%s holds %d addresses x %d subscribers (%d ports each) = %d "
                              "subscribers, but %s /%d has %d: %d do not fit",
                              out.pool_prefix.ToString(), out.pool_prefix.Size(), out.per_addr, pps,
                              capacity, out.b4_prefix.ToString(), out.subscriber_prefix_length,
                              out.subscribers, out.subscribers - capacity));
      }
    }
    if (errors.size() == errors_before) map.ranges_.push_back(out);
  }
  if (config.pool_prefixes_size() + ranges.size() > 8) {
    errors.push_back(absl::StrCat("deterministic.ranges: ", config.pool_prefixes_size(),
                                  " pool_prefixes and ", ranges.size(),
                                  " deterministic pool prefixes; at most 8 public prefixes in all "
                                  "are supported"));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  return map;
}

DeterministicMapping DeterministicMap::Make(int range, uint64_t subscriber) const {
  const DeterministicRange& r = ranges_[range];
  DeterministicMapping m;
  m.range = range;
  m.subscriber = subscriber;
  m.subscriber_prefix.length = r.subscriber_prefix_length;
  m.subscriber_prefix.addr =
      FromU128(ToU128(r.b4_prefix.addr) | (U128{subscriber} << (128 - r.subscriber_prefix_length)));
  m.public_addr.host_order = r.pool_prefix.addr.host_order + static_cast<uint32_t>(subscriber / r.per_addr);
  m.first_port = static_cast<uint16_t>(r.port_min + (subscriber % r.per_addr) * r.ports_per_subscriber);
  m.last_port = static_cast<uint16_t>(m.first_port + r.ports_per_subscriber - 1);
  return m;
}

std::optional<DeterministicMapping> DeterministicMap::ForB4(const Ipv6Address& b4) const {
  for (int i = 0; i < static_cast<int>(ranges_.size()); ++i) {
    const DeterministicRange& r = ranges_[i];
    if (!Contains(r.b4_prefix, b4)) continue;
    const int bits = r.subscriber_prefix_length - r.b4_prefix.length;
    const uint64_t index = static_cast<uint64_t>(ToU128(b4) >> (128 - r.subscriber_prefix_length)) &
                           ((uint64_t{1} << bits) - 1);
    return Make(i, index);
  }
  return std::nullopt;
}

int DeterministicMap::RangeOfPublic(Ipv4Address addr) const {
  for (int i = 0; i < static_cast<int>(ranges_.size()); ++i) {
    if (ranges_[i].pool_prefix.Contains(addr)) return i;
  }
  return -1;
}

std::optional<DeterministicMapping> DeterministicMap::ForPublic(Ipv4Address addr, uint16_t port) const {
  const int i = RangeOfPublic(addr);
  if (i < 0) return std::nullopt;
  const DeterministicRange& r = ranges_[i];
  if (port < r.port_min) return std::nullopt;
  const uint32_t slot = (port - r.port_min) / r.ports_per_subscriber;
  if (slot >= r.per_addr) return std::nullopt;  // the ports past the last whole range
  const uint64_t index =
      uint64_t{addr.host_order - r.pool_prefix.addr.host_order} * r.per_addr + slot;
  if (index >= r.subscribers) return std::nullopt;
  return Make(i, index);
}

}  // namespace aftr::nat
