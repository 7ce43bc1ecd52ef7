// Small readers of the pinned maps for the Datapath tests.
#ifndef AFTR_TESTS_BPF_DATAPATH_DP_UTIL_H_
#define AFTR_TESTS_BPF_DATAPATH_DP_UTIL_H_

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstring>
#include <ctime>
#include <optional>

#include "aftr/abi.h"
#include "control/bpf/datapath.h"
#include "control/common/ip.h"
#include "packet_builder.h"

namespace dptest {

inline aftr::Ipv6Address V6(const bpftest::Ip6& a) {
  aftr::Ipv6Address out;
  std::memcpy(out.bytes.data(), a.data(), 16);
  return out;
}

inline std::optional<aftr_subscriber> Subscriber(const aftr::bpf::Datapath& dp,
                                                 const bpftest::Ip6& b4) {
  aftr_subscriber_key k;
  std::memcpy(k.b4, b4.data(), 16);
  aftr_subscriber v;
  if (bpf_map_lookup_elem(dp.fds().subscribers, &k, &v) != 0) return std::nullopt;
  return v;
}

inline std::optional<aftr_session_out> SessionOut(const aftr::bpf::Datapath& dp,
                                                  const bpftest::Ip6& b4, uint16_t inner_port,
                                                  uint8_t proto = bpftest::kProtoUdp,
                                                  uint32_t inner = bpftest::Ip4Addr("192.0.2.10")) {
  aftr_session_out_key k = {};
  std::memcpy(k.b4, b4.data(), 16);
  k.inner_addr = inner;
  k.inner_port = htons(inner_port);
  k.proto = proto;
  aftr_session_out v;
  if (bpf_map_lookup_elem(dp.fds().sessions_out, &k, &v) != 0) return std::nullopt;
  return v;
}

inline bool SessionInExists(const aftr::bpf::Datapath& dp, uint32_t addr_be, uint16_t port,
                            uint8_t proto = bpftest::kProtoUdp) {
  aftr_session_in_key k = {};
  k.public_addr = addr_be;
  k.public_port = htons(port);
  k.proto = proto;
  aftr_session_in v;
  return bpf_map_lookup_elem(dp.fds().sessions_in, &k, &v) == 0;
}

inline size_t CountEntries(int fd, size_t key_size) {
  std::vector<uint8_t> key(key_size), next(key_size);
  size_t n = 0;
  for (int rc = bpf_map_get_next_key(fd, nullptr, next.data()); rc == 0;
       rc = bpf_map_get_next_key(fd, key.data(), next.data())) {
    ++n;
    key = next;
  }
  return n;
}

inline aftr_pool_addr PoolAddr(const aftr::bpf::Datapath& dp, uint32_t index) {
  aftr_pool_addr v = {};
  bpf_map_lookup_elem(dp.fds().pool_addrs, &index, &v);
  return v;
}

inline bool BitSet(const aftr_pool_addr& pa, uint32_t block) {
  return (pa.used[block / 64] >> (block % 64)) & 1;
}

inline uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// Port geometry of the test configuration (dp_fixture.h).
constexpr uint16_t kPortMin = 1024;
constexpr uint16_t kBlockSize = 64;
inline uint16_t FirstPort(uint32_t block) { return kPortMin + block * kBlockSize; }
inline uint32_t BlockOfPort(uint16_t port) { return (port - kPortMin) / kBlockSize; }

}  // namespace dptest

#endif  // AFTR_TESTS_BPF_DATAPATH_DP_UTIL_H_
