// The per-session next-hop cache (fib_cache_ms): established flows skip bpf_fib_lookup but
// must leave exactly as a looked-up packet would, and only while the entry is fresh.
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "flows.h"
#include "harness.h"
#include "packet_builder.h"

namespace bpftest {
namespace {

aftr_dp_config CachingConfig(uint32_t ms) {
  aftr_dp_config cfg = DefaultConfig();
  cfg.fib_cache_ticks = AFTR_FIB_MS_TO_TICKS(ms);
  return cfg;
}

TEST_CASE("fib cache: later packets of a session reuse its next hop and leave byte for byte "
          "as the looked-up first one",
          "[fib_cache]") {
  Harness h(CachingConfig(1000));
  Bytes out_frame = FromB4(kB4a).Udp(kInnerPort, kRemotePort).Payload("c").Build();
  RunResult first = h.Run(out_frame);
  REQUIRE(VerdictName(first.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 0);
  RunResult second = h.Run(out_frame);
  CHECK(VerdictName(second.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 1);
  CHECK(Hex(second.out) == Hex(first.out));

  std::optional<Frame> o = ParseFrame(first.out);
  REQUIRE(o);
  Bytes in_frame = FromInternet(kRemote, o->src).Udp(kRemotePort, o->sport).Payload("r").Build();
  RunResult in1 = h.Run(in_frame);
  RunResult in2 = h.Run(in_frame);
  CHECK(VerdictName(in1.verdict) == "XDP_REDIRECT");
  CHECK(VerdictName(in2.verdict) == "XDP_REDIRECT");
  CHECK(Hex(in2.out) == Hex(in1.out));
  CHECK(Hex(in2.out) == Hex(ToB4(kB4a, kRemote).Udp(kRemotePort, kInnerPort).Payload("r").Build()));
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 2);
  CHECK(h.Counter(AFTR_C_TX_REDIRECT) == 4);
}

TEST_CASE("fib cache: a cached next hop on the ingress interface still means XDP_TX",
          "[fib_cache]") {
  Harness h(CachingConfig(1000));
  Bytes f = FromB4(kB4a).Udp(kInnerPort, kRemotePort).Build();
  CHECK(VerdictName(h.RunOn(Net().inet_ifindex, f).verdict) == "XDP_TX");
  CHECK(VerdictName(h.RunOn(Net().inet_ifindex, f).verdict) == "XDP_TX");
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 1);
  // The same cached session arriving on the other interface is redirected.
  CHECK(VerdictName(h.RunOn(Net().b4_ifindex, f).verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_TX_SAME_IF) == 2);
}

TEST_CASE("fib cache: an expired entry is looked up again", "[fib_cache]") {
  Harness h(CachingConfig(50));
  Bytes f = FromB4(kB4a).Udp(kInnerPort, kRemotePort).Build();
  h.Run(f);
  h.Run(f);
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  RunResult r = h.Run(f);  // looked up (and cached again)
  CHECK(VerdictName(r.verdict) == "XDP_REDIRECT");
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 1);
  h.Run(f);
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 2);
}

TEST_CASE("fib cache: an unresolved next hop is never cached", "[fib_cache]") {
  Harness h(CachingConfig(1000));
  Bytes f = FromB4(kB4a, kInner, kRemoteNoNeigh).Udp(kInnerPort, kRemotePort).Build();
  for (int i = 0; i < 3; i++) CHECK(VerdictName(h.Run(f).verdict) == "XDP_PASS");
  CHECK(h.Counter(AFTR_C_PASS_NO_NEIGH) == 3);
  CHECK(h.Counter(AFTR_C_FIB_CACHE_HIT) == 0);
}

TEST_CASE("fib cache: a packet without DF over the egress MTU goes to the slow path even when "
          "the next hop is cached",
          "[fib_cache]") {
  Harness h(CachingConfig(1000));
  Mapping m = TranslateUdp(h, kB4a, kInnerPort);  // outbound only: nothing cached inbound yet
  Bytes small = FromInternet(kRemote, m.addr).Udp(kRemotePort, m.port).Build();
  REQUIRE(VerdictName(h.Run(small).verdict) == "XDP_REDIRECT");  // caches the B4 next hop
  // 1461 bytes of IPv4 + 40 of IPv6 exceed the 1500-byte MTU toward the B4.
  // Without DF (with DF it is answered: mtu_test.cc): queued whole to the slow path, before translation.
  Bytes big = FromInternet(kRemote, m.addr).FragOff(0).Udp(kRemotePort, m.port)
                  .Payload(Bytes(1461 - 28, 'a')).Build();
  CounterValues before = h.Counters();
  RunResult r = h.Run(big);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 slow_path_queued=1");

  // Outbound the same: a cached session's oversized packet.
  Bytes big_out = FromB4(kB4a).FragOff(0).Udp(kInnerPort, kRemotePort)
                      .Payload(Bytes(1501 - 28, 'b')).Build();
  before = h.Counters();
  r = h.Run(big_out);
  CHECK(VerdictName(r.verdict) == "XDP_DROP");
  CHECK(CounterDiff(before, h.Counters()) == "rx_packets=1 slow_path_queued=1");
}

}  // namespace
}  // namespace bpftest
