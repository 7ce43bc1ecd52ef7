// Session idle timeouts from what the data plane saw (RFC 4787 / 5382 / 5508).
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "control/nat/session_sweeper.h"

namespace aftr::nat {
namespace {

constexpr uint64_t kSec = 1000000000ull;

aftr::config::v1::Timeouts Timeouts() {
  aftr::config::v1::Timeouts t;
  t.set_tcp_established(7440);
  t.set_tcp_transitory(240);
  t.set_udp(300);
  t.set_icmp(60);
  return t;
}

TEST_CASE("UDP and ICMP use their own timeouts") {
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_UDP, 0, 0) == 300 * kSec);
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_ICMP, 0, 0) == 60 * kSec);
}

TEST_CASE("TCP is established once the SYN went out and the SYN-ACK came back") {
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_TCP, AFTR_TCP_SEEN_SYN, 0) == 240 * kSec);
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_TCP, AFTR_TCP_SEEN_SYN, AFTR_TCP_SEEN_SYN) ==
        7440 * kSec);
}

TEST_CASE("TCP falls back to the transitory timeout after FIN both ways or any RST") {
  uint8_t both = AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_FIN;
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_TCP, both, both) == 240 * kSec);
  // A half-close keeps the established timeout (RFC 5382: the other side may still send).
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_TCP, both, AFTR_TCP_SEEN_SYN) == 7440 * kSec);
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_TCP, AFTR_TCP_SEEN_SYN,
                         AFTR_TCP_SEEN_SYN | AFTR_TCP_SEEN_RST) == 240 * kSec);
}

TEST_CASE("a TCP session seen without any SYN (adopted mid-stream) is kept as established") {
  CHECK(SessionTimeoutNs(Timeouts(), IPPROTO_TCP, 0, 0) == 7440 * kSec);
}

}  // namespace
}  // namespace aftr::nat
