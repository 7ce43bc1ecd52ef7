// A reference model of the AFTR data plane (bpf/aftr.bpf.c) in plain C++: what aftr_xdp does
// with one frame given the NAT state, written from RFC 6333 / 4787 / 5508 and the program's
// documented behaviour, readable first. No BPF, no libbpf: state is std::maps, packets are
// byte vectors. tests/bpf/differential_test.cc runs it beside the real program.
#ifndef AFTR_TESTS_MODEL_NAT_MODEL_H_
#define AFTR_TESTS_MODEL_NAT_MODEL_H_

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "aftr/abi.h"

namespace aftr::model {

using Bytes = std::vector<uint8_t>;
using Ip6 = std::array<uint8_t, 16>;
using Mac = std::array<uint8_t, 6>;

// XDP verdicts (enum xdp_action values, as BPF_PROG_TEST_RUN returns them).
enum Verdict : int { kDrop = 1, kPass = 2, kTx = 3, kRedirect = 4 };

// In the model every IPv4 address and port is a host-order number.

// What bpf_fib_lookup finds around the AFTR. A destination outside every route fails.
struct Route {
  enum class Kind { kForward, kNoNeighbour };
  Kind kind = Kind::kForward;
  int ifindex = 0;
  Mac gateway_mac{};
  uint32_t mtu = 1500;
};
struct Route4 : Route {
  uint32_t prefix = 0;
  int len = 0;
};
struct Route6 : Route {
  Ip6 prefix{};
  int len = 0;
};
struct Network {
  std::vector<Route4> routes4;
  std::vector<Route6> routes6;
  std::map<int, Mac> interface_macs;  // our MAC on each interface
};

struct Config {
  aftr_dp_config dp{};  // the rodata the program was loaded with
  std::vector<std::pair<Ip6, int>> b4_prefixes;  // aftr_b4_prefixes
  std::vector<uint32_t> pool;                    // aftr_pool_addrs[i].addr
  uint32_t pool_hint = 0;                        // aftr_pool_hint.addr_index
  // Map capacities: a hash map refuses a new key once it holds this many.
  uint32_t max_sessions_out = 0, max_sessions_in = 0, max_subscribers = 0;
  Network net;
};

// ---- State: the maps the program reads and writes ----

struct SessionOutKey {
  Ip6 b4{};
  uint32_t inner_addr = 0;
  uint16_t inner_port = 0;  // ICMP echo: the identifier
  uint8_t proto = 0;
  auto operator<=>(const SessionOutKey&) const = default;
};
struct SessionInKey {
  uint32_t public_addr = 0;
  uint16_t public_port = 0;
  uint8_t proto = 0;
  auto operator<=>(const SessionInKey&) const = default;
};
// A session's cached next hop (fib_cache_ticks != 0). The model treats a cached next hop as
// fresh forever: configure fib_cache_ticks 0 (off) or UINT32_MAX (never expires) only.
struct FibCache {
  bool valid = false;
  int ifindex = 0;
  Mac dmac{};
  uint32_t mtu = 0;
  auto operator<=>(const FibCache&) const = default;
};
struct SessionOut {
  uint32_t public_addr = 0;
  uint16_t public_port = 0;
  uint8_t tcp_flags = 0;  // AFTR_TCP_SEEN_* seen outbound
  uint8_t flags = 0;      // AFTR_SESSION_*
  FibCache fib;           // toward the Internet
  auto operator<=>(const SessionOut&) const = default;
};
struct SessionIn {
  Ip6 b4{};
  uint32_t inner_addr = 0;
  uint16_t inner_port = 0;
  uint8_t softwire_index = 0;
  uint8_t tcp_flags = 0;  // AFTR_TCP_SEEN_* seen inbound | AFTR_SESSION_* flags
  FibCache fib;           // toward the B4
  auto operator<=>(const SessionIn&) const = default;
};
struct Subscriber {
  bool retired = false;
  uint32_t sessions = 0;
  uint32_t public_addr = 0;
  uint32_t addr_index = 0;
  std::vector<uint16_t> blocks;  // slot values: a block index or AFTR_BLOCK_SLOT_*
  auto operator<=>(const Subscriber&) const = default;
};
struct PoolAddress {
  uint32_t addr = 0;
  uint32_t flags = 0;  // AFTR_POOL_ADDR_*
  std::array<uint64_t, AFTR_BLOCK_WORDS> used{};  // bit set: block owned (or past the end)
  auto operator<=>(const PoolAddress&) const = default;
};
struct FilterKey {  // address-dependent filtering: (mapping, remote) pairs seen outbound
  uint32_t public_addr = 0;
  uint32_t remote_addr = 0;
  uint16_t public_port = 0;
  uint8_t proto = 0;
  auto operator<=>(const FilterKey&) const = default;
};

using CounterRow = std::array<uint64_t, AFTR_COUNTER_MAX>;

struct State {
  std::map<SessionOutKey, SessionOut> sessions_out;
  std::map<SessionInKey, SessionIn> sessions_in;
  std::map<Ip6, Subscriber> subscribers;
  std::vector<PoolAddress> pool;
  std::set<FilterKey> filter_peers;
  std::map<int, Mac> if_macs;  // aftr_if_macs entries marked valid
  // aftr_b4_mtu: the IPv6 path MTU toward a B4 learned from Packet Too Big. The model has no
  // clock: an entry never expires (tests run far within AFTR_B4_MTU_TTL_NS).
  std::map<Ip6, uint32_t> b4_mtu;
  std::array<CounterRow, AFTR_DIR_MAX> counters{};
};

// A ring-buffer record without its timestamp (the model has no clock).
struct Event {
  uint8_t type = 0;
  Ip6 b4{};
  uint32_t inner_addr = 0, public_addr = 0;
  uint16_t inner_port = 0, public_port = 0, block_size = 0;
  uint8_t proto = 0;
  auto operator<=>(const Event&) const = default;
};
std::string ToString(const Event& e);

// ---- The program's random choices ----
// The program picks a port with bpf_get_prandom_u32 (a random start, then up to 32
// consecutive candidates) and claims a block at the lowest free bit of a random bitmap word.
// The model does not guess: it is told what the program chose and checks that the choice was
// one the algorithm could make. Anything not told falls back to the first legal choice.
struct Choices {
  // Blocks claimed, in order, as (public address, block index).
  std::deque<std::pair<uint32_t, uint32_t>> claimed_blocks;
  std::optional<uint16_t> session_port;  // the public port of the session made
  uint64_t port_pick_retries = 0;        // candidates found taken, over all picks
};

struct Result {
  int verdict = 0;
  Bytes out;                        // the frame as the program leaves it, whatever the verdict
  std::vector<Event> events;
  std::vector<std::string> illegal_choices;  // choices the program could not have made
  // The frame handed to the fragment slow path (aftr_slow_path ring), and its kind.
  std::optional<Bytes> slow_path_frame;
  uint32_t slow_path_kind = 0;  // enum aftr_slow_kind
};

class Model {
 public:
  explicit Model(Config config);

  // Runs one frame arriving on `ingress_ifindex`, updating the state.
  Result Process(const Bytes& frame, int ingress_ifindex, Choices choices = {});

  // What aftrd's sweeper does through aftr_ctl (AFTR_CTL_SESSION_DELETE, without the
  // "seen since the snapshot" check, which needs a clock): both entries of the session go,
  // and one from its subscriber's count. Returns 1, or -ENOENT if there is no such session.
  int DeleteSession(const SessionOutKey& key);

  const State& state() const { return state_; }
  const Config& config() const { return config_; }

 private:
  struct Packet;
  int FromB4(Packet& p);
  int FromInternet(Packet& p);
  int SlowPathQueue(Packet& p, uint32_t kind);
  int IcmpErrorFromInternet(Packet& p, bool hairpinned = false);
  int Hairpin(Packet& p, size_t outer);
  int IcmpErrorFromB4(Packet& p, size_t outer);
  int Icmp6ErrorFromB4(Packet& p);
  int EncapToB4(Packet& p, SessionIn& s, bool redirect_back = false);
  int SessionCreate(Packet& p, const SessionOutKey& key, uint8_t softwire_index,
                    uint8_t tcp_flags);
  int SubscriberCreate(Packet& p, const SessionOutKey& key);
  int DeterministicCreate(Packet& p, const SessionOutKey& key);
  std::optional<uint32_t> ClaimBlock(Packet& p, uint32_t addr_index);
  int PickPort(Packet& p, const SessionOutKey& key, uint8_t softwire_index, uint32_t first_slot);
  int AddBlock(Packet& p, const SessionOutKey& key);
  int SendOut(Packet& p, FibCache& cache, bool ipv6, bool redirect_back = false);
  int InMtuCheck(Packet& p, const SessionIn& s);
  int OutMtuCheck(Packet& p, const SessionOut& s, size_t outer);
  // `code` -1: the type's usual one (fragmentation needed, or 0). `translated`: an error
  // translated from ICMPv6 (other counters and drop reason).
  int IcmpErrorGen(Packet& p, size_t outer, uint8_t type, uint16_t mtu, int code = -1,
                   bool translated = false);
  const Route* Lookup4(uint32_t dst) const;
  void ClampMss(Packet& p, size_t tcp_offset);
  // `public_addr` (host order, 0: none): the address a limit is about.
  void EmitSimple(Packet& p, uint8_t type, const SessionOutKey& key, uint32_t public_addr = 0);
  int SoftwireIndex(const Ip6& addr) const;
  bool PoolContains(uint32_t addr) const;
  bool B4Allowed(const Ip6& b4) const;

  Config config_;
  State state_;
};

}  // namespace aftr::model

#endif  // AFTR_TESTS_MODEL_NAT_MODEL_H_
