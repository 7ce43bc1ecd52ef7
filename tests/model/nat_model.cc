// The reference model's behaviour, in the order a frame meets it: Ethernet, the softwire
// (IPv6 toward the AFTR, Destination Options, IPv4 inside) or the Internet side (IPv4 to a
// pool address), the NAT lookup or the creation of a session with its subscriber and port
// blocks, the rewrite with incrementally updated checksums, then the next hop.
#include "nat_model.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace aftr::model {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr size_t kEthLen = 14;
constexpr size_t kIpv6Len = 40;
constexpr uint8_t kProtoIcmp = 1, kProtoIpip = 4, kProtoTcp = 6, kProtoUdp = 17;
constexpr uint8_t kProtoFragment = 44, kProtoIcmpv6 = 58, kProtoDstOpts = 60;
constexpr uint8_t kIcmpEchoReply = 0, kIcmpUnreachable = 3, kIcmpEcho = 8,
                  kIcmpTimeExceeded = 11, kIcmpParameterProblem = 12;
constexpr uint8_t kCodeFragNeeded = 4;
constexpr uint16_t kIpv4Df = 0x4000;
constexpr uint32_t kAftrWellKnownIpv4 = 0xc0000001;  // 192.0.0.1 (RFC 6333 section 5.7)
constexpr size_t kIcmpErrorHeaders = 28;              // IPv4 and ICMP headers of an error
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04;
// Destination Options (RFC 8200 section 4.2, RFC 2473 section 5.1).
constexpr uint8_t kOptPad1 = 0, kOptPadN = 1, kOptTunnelEncapLimit = 4;
constexpr size_t kMaxDstOptsLen = 64;  // longer ones are not softwire traffic
constexpr int kPortTries = 32;         // consecutive candidates per port pick
constexpr int kAddressProbes = 8;      // pool addresses probed for a new subscriber
constexpr int kMssOptionWalk = 12;     // TCP options looked at for the MSS

uint16_t Get16(const Bytes& b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }
uint32_t Get32(const Bytes& b, size_t off) { return uint32_t(Get16(b, off)) << 16 | Get16(b, off + 2); }
void Set16(Bytes& b, size_t off, uint16_t v) {
  b[off] = v >> 8;
  b[off + 1] = v & 0xff;
}
void Set32(Bytes& b, size_t off, uint32_t v) {
  Set16(b, off, v >> 16);
  Set16(b, off + 2, v & 0xffff);
}
Ip6 GetIp6(const Bytes& b, size_t off) {
  Ip6 a;
  std::memcpy(a.data(), &b[off], 16);
  return a;
}

// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m') in one's complement arithmetic, for a 16-bit
// word m that became m'. One's complement addition is associative, so a field of several
// words is updated word by word in any order.
uint16_t ChecksumUpdate(uint16_t check, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = uint16_t(~check) + uint16_t(~old_word) + uint32_t(new_word);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}
uint16_t ChecksumUpdate32(uint16_t check, uint32_t old_value, uint32_t new_value) {
  check = ChecksumUpdate(check, old_value >> 16, new_value >> 16);
  return ChecksumUpdate(check, old_value & 0xffff, new_value & 0xffff);
}

bool PrefixMatch(const Ip6& addr, const Ip6& prefix, int len) {
  for (int bit = 0; bit < len; bit++) {
    int byte = bit / 8, mask = 0x80 >> (bit % 8);
    if ((addr[byte] & mask) != (prefix[byte] & mask)) return false;
  }
  return true;
}

// IPv4 header fields at `ip`.
struct Ipv4Header {
  size_t ip;
  uint32_t ihl() const { return (buf[ip] & 0x0f) * 4; }
  uint16_t tot_len() const { return Get16(buf, ip + 2); }
  uint16_t frag_off() const { return Get16(buf, ip + 6); }
  uint8_t ttl() const { return buf[ip + 8]; }
  uint8_t protocol() const { return buf[ip + 9]; }
  uint32_t saddr() const { return Get32(buf, ip + 12); }
  uint32_t daddr() const { return Get32(buf, ip + 16); }
  const Bytes& buf;
};

// A header that can be translated: version 4, IHL >= 5, header and total length within
// the frame, total length >= header length.
bool Ipv4Fits(const Bytes& f, size_t ip) {
  if (ip + 20 > f.size()) return false;
  Ipv4Header h{ip, f};
  if (f[ip] >> 4 != 4 || h.ihl() < 20 || ip + h.ihl() > f.size()) return false;
  return h.tot_len() >= h.ihl() && ip + h.tot_len() <= f.size();
}

// TTL - 1; the checksum word it shares with the protocol changes.
void DecrementTtl(Bytes& f, size_t ip) {
  uint16_t old_word = Get16(f, ip + 8);
  f[ip + 8]--;
  Set16(f, ip + 10, ChecksumUpdate(Get16(f, ip + 10), old_word, Get16(f, ip + 8)));
}

// Where the program finds the translatable port of a packet (RFC 4787: TCP/UDP ports; RFC
// 5508: the ICMP echo identifier) and the checksum that covers it.
struct L4View {
  size_t port_off = 0;               // source port outbound, destination port inbound
  std::optional<size_t> check_off;   // none: UDP sent without checksum
  std::optional<size_t> tcp_off;
  bool pseudo = false;               // checksum covers the IPv4 addresses
  bool icmp_error = false;           // ICMP error: translated by what it quotes
  bool existing_only = false;        // echo reply from a B4: by a session, never a new one
  uint8_t seen = 0;                  // AFTR_TCP_SEEN_*
};

int Drop(aftr_counter reason) { return -int(reason); }

// `to_pool`: the destination is one of our public addresses (a hairpinned packet).
int ParseL4(const Bytes& f, size_t ip, bool outbound, bool to_pool, L4View& v) {
  Ipv4Header h{ip, f};
  size_t l4 = ip + h.ihl();
  uint32_t l4_len = h.tot_len() - h.ihl();  // lengths, not the frame: padding is no header
  switch (h.protocol()) {
    case kProtoTcp: {
      uint32_t doff = f.size() >= l4 + 20 ? (f[l4 + 12] >> 4) : 0;
      if (l4_len < 20 || doff < 5 || doff * 4 > l4_len) return Drop(AFTR_C_DROP_MALFORMED_L4);
      v.port_off = outbound ? l4 : l4 + 2;
      v.check_off = l4 + 16;
      v.tcp_off = l4;
      v.pseudo = true;
      uint8_t flags = f[l4 + 13];
      v.seen = (flags & kTcpSyn ? AFTR_TCP_SEEN_SYN : 0) | (flags & kTcpFin ? AFTR_TCP_SEEN_FIN : 0) |
               (flags & kTcpRst ? AFTR_TCP_SEEN_RST : 0);
      return 0;
    }
    case kProtoUdp:
      if (l4_len < 8) return Drop(AFTR_C_DROP_MALFORMED_L4);
      v.port_off = outbound ? l4 : l4 + 2;
      if (Get16(f, l4 + 6) != 0) v.check_off = l4 + 6;
      v.pseudo = true;
      return 0;
    case kProtoIcmp: {
      if (l4_len < 8) return Drop(AFTR_C_DROP_MALFORMED_L4);
      uint8_t type = f[l4];
      if (type != (outbound ? kIcmpEcho : kIcmpEchoReply)) {
        // Errors are translated by what they quote, both ways.
        if (type == kIcmpUnreachable || type == kIcmpTimeExceeded ||
            type == kIcmpParameterProblem) {
          v.icmp_error = true;
          return 0;
        }
        // A host answering an echo hairpinned to it: back to a pool address, by a session.
        if (!outbound || type != kIcmpEchoReply || !to_pool)
          return Drop(AFTR_C_DROP_UNSUPPORTED_ICMP);
        v.existing_only = true;
      }
      v.port_off = l4 + 4;
      v.check_off = l4 + 2;
      return 0;
    }
  }
  return Drop(AFTR_C_DROP_UNSUPPORTED_PROTO);
}

// Rewrites the address at `addr_off` and the port of `v`, fixing the IPv4 header checksum
// and the L4 one; a UDP checksum that comes out 0 is sent as 0xffff (RFC 768).
void Rewrite(Bytes& f, size_t ip, size_t addr_off, uint32_t new_addr, const L4View& v,
             uint16_t new_port) {
  uint32_t old_addr = Get32(f, addr_off);
  uint16_t old_port = Get16(f, v.port_off);
  Set32(f, addr_off, new_addr);
  Set16(f, ip + 10, ChecksumUpdate32(Get16(f, ip + 10), old_addr, new_addr));
  if (v.check_off) {
    uint16_t c = Get16(f, *v.check_off);
    if (v.pseudo) c = ChecksumUpdate32(c, old_addr, new_addr);
    c = ChecksumUpdate(c, old_port, new_port);
    if (c == 0 && f[ip + 9] == kProtoUdp) c = 0xffff;
    Set16(f, *v.check_off, c);
  }
  Set16(f, v.port_off, new_port);
}

uint32_t ReadLe32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }

// The hash that spreads new subscribers over the pool (nat44_b4_hash; aftrd's static
// mappings use the same): the address as four 32-bit words as a little-endian CPU loads them.
uint32_t B4Hash(const Ip6& b4) {
  uint32_t h = (ReadLe32(&b4[0]) ^ ReadLe32(&b4[4]) ^ ReadLe32(&b4[8]) ^ ReadLe32(&b4[12])) *
               0x9e3779b1u;
  return h ^ (h >> 15);
}

}  // namespace

std::string ToString(const Event& e) {
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "event{type=%u b4=..%02x%02x proto=%u inner=%08x:%u public=%08x:%u block=%u}",
                e.type, e.b4[14], e.b4[15], e.proto, e.inner_addr, e.inner_port, e.public_addr,
                e.public_port, e.block_size);
  return buf;
}

struct Model::Packet {
  Bytes buf;
  int ingress = 0;
  CounterRow* ctr = nullptr;  // the row of the direction the frame came from
  Choices choices;
  uint64_t retries_used = 0;
  Result result;
  void Count(aftr_counter c, uint64_t n = 1) { (*ctr)[c] += n; }
};

Model::Model(Config config) : config_(std::move(config)) {
  // As the harness and aftrd seed aftr_pool_addrs: blocks past blocks_per_addr never free.
  for (uint32_t addr : config_.pool) {
    PoolAddress pa;
    pa.addr = addr;
    for (uint32_t b = config_.dp.blocks_per_addr; b < AFTR_MAX_BLOCKS_PER_ADDR; b++)
      pa.used[b / 64] |= 1ull << (b % 64);
    state_.pool.push_back(pa);
  }
}

int Model::SoftwireIndex(const Ip6& addr) const {
  for (uint32_t i = 0; i < config_.dp.softwire_addr_count && i < AFTR_MAX_SOFTWIRE_ADDRS; i++)
    if (std::memcmp(addr.data(), config_.dp.softwire_addrs[i], 16) == 0) return int(i);
  return -1;
}

// The pool's prefixes, active and draining: replies to a draining address still come back.
bool Model::PoolContains(uint32_t addr) const {
  for (uint32_t i = 0; i < config_.dp.pool_prefix_count && i < AFTR_MAX_POOL_PREFIXES; i++) {
    uint32_t mask = __builtin_bswap32(config_.dp.pool_prefix_mask[i]);
    if ((addr & mask) == __builtin_bswap32(config_.dp.pool_prefix_addr[i])) return true;
  }
  return false;
}

bool Model::B4Allowed(const Ip6& b4) const {
  for (const auto& [prefix, len] : config_.b4_prefixes)
    if (PrefixMatch(b4, prefix, len)) return true;
  return false;
}

Result Model::Process(const Bytes& frame, int ingress_ifindex, Choices choices) {
  Packet p;
  p.buf = frame;
  p.ingress = ingress_ifindex;
  p.choices = std::move(choices);
  int rc;
  if (frame.size() < kEthLen) {
    p.ctr = &state_.counters[AFTR_DIR_OTHER];
    p.Count(AFTR_C_RX_PACKETS);
    rc = Drop(AFTR_C_DROP_MALFORMED_ETH);
  } else if (Get16(frame, 12) == kEtherTypeIpv6) {
    p.ctr = &state_.counters[AFTR_DIR_FROM_B4];
    p.Count(AFTR_C_RX_PACKETS);
    rc = FromB4(p);
  } else if (Get16(frame, 12) == kEtherTypeIpv4) {
    p.ctr = &state_.counters[AFTR_DIR_FROM_INTERNET];
    p.Count(AFTR_C_RX_PACKETS);
    rc = FromInternet(p);
  } else {
    p.ctr = &state_.counters[AFTR_DIR_OTHER];
    p.Count(AFTR_C_RX_PACKETS);
    p.Count(AFTR_C_PASS_NOT_OURS);  // ARP, VLAN tags, anything else: the kernel's
    rc = kPass;
  }
  if (rc < 0) {
    p.Count(aftr_counter(-rc));  // every drop counts exactly one reason
    rc = kDrop;
  }
  if (p.retries_used != p.choices.port_pick_retries && p.result.illegal_choices.empty() &&
      p.choices.port_pick_retries != 0)
    p.result.illegal_choices.push_back("port_pick_retries " +
                                       std::to_string(p.choices.port_pick_retries) +
                                       " reported, the picks made account for " +
                                       std::to_string(p.retries_used));
  p.result.verdict = rc;
  p.result.out = std::move(p.buf);
  return std::move(p.result);
}

// ---- B4 → Internet ----

int Model::FromB4(Packet& p) {
  Bytes& f = p.buf;
  const size_t ip6 = kEthLen;
  if (f.size() < ip6 + kIpv6Len || f[ip6] >> 4 != 6) return Drop(AFTR_C_DROP_MALFORMED_IPV6);
  int sw = SoftwireIndex(GetIp6(f, ip6 + 24));
  if (sw < 0) {
    p.Count(AFTR_C_PASS_NOT_OURS);
    return kPass;
  }
  uint8_t next = f[ip6 + 6];
  size_t outer = kIpv6Len;  // IPv6 header and the extension headers we skip

  // A Destination Options header (Linux ip6tnl sends the Tunnel Encapsulation Limit in one).
  if (next == kProtoDstOpts) {
    size_t opts = ip6 + kIpv6Len;
    if (opts + 2 > f.size()) return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
    size_t len = (f[opts + 1] + 1) * 8;
    if (len > kMaxDstOptsLen) {
      p.Count(AFTR_C_PASS_LOCAL_CONTROL);
      return kPass;
    }
    if (opts + len > f.size()) return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
    // RFC 8200 section 4.2: unknown options whose type starts with bits 00 are skipped,
    // any other unknown one means discard.
    for (size_t off = 2; off < len;) {
      uint8_t type = f[opts + off];
      if (type == kOptPad1) {
        off++;
        continue;
      }
      if (off + 2 > len) return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
      uint8_t olen = f[opts + off + 1];
      if (off + 2 + olen > len) return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
      if (type == kOptTunnelEncapLimit && olen != 1) return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
      if (type != kOptPadN && type != kOptTunnelEncapLimit && (type & 0xc0))
        return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
      off += 2 + olen;
    }
    next = f[opts];
    outer += len;
  }
  // IPv6-fragmented softwire packets go to the kernel, which reassembles them for aftrd's
  // IPPROTO_IPIP raw socket (the softwire address is local).
  if (next == kProtoFragment) {
    size_t frag = ip6 + outer;
    if (frag + 8 > f.size()) return Drop(AFTR_C_DROP_MALFORMED_EXT_HDR);
    if (f[frag] == kProtoIpip) {
      p.Count(AFTR_C_PASS_IPV6_FRAGMENT);
      return kPass;
    }
  }
  if (next != kProtoIpip) {
    if (f[ip6 + 6] == kProtoIcmpv6) return Icmp6ErrorFromB4(p);  // errors about softwire packets
    p.Count(AFTR_C_PASS_LOCAL_CONTROL);  // PCP, ICMPv6, management: the kernel's
    return kPass;
  }
  uint16_t payload_len = Get16(f, ip6 + 4);
  if (ip6 + kIpv6Len + payload_len > f.size()) return Drop(AFTR_C_DROP_MALFORMED_IPV6);

  const size_t ip = ip6 + outer;
  if (!Ipv4Fits(f, ip)) return Drop(AFTR_C_DROP_MALFORMED_IPV4);
  Ipv4Header h{ip, f};
  if (payload_len < outer - kIpv6Len + h.tot_len()) return Drop(AFTR_C_DROP_MALFORMED_IPV4);
  if (h.frag_off() & 0x3fff) return SlowPathQueue(p, AFTR_SLOW_SOFTWIRE_FRAGMENT);
  if (h.ttl() <= 1) return IcmpErrorGen(p, outer, kIcmpTimeExceeded, 0);

  L4View v;
  if (int rc = ParseL4(f, ip, /*outbound=*/true, PoolContains(h.daddr()), v)) return rc;
  if (v.icmp_error) return IcmpErrorFromB4(p, outer);

  SessionOutKey key{GetIp6(f, ip6 + 8), h.saddr(), Get16(f, v.port_off), h.protocol()};
  uint32_t remote = h.daddr();
  auto it = state_.sessions_out.find(key);
  if (it != state_.sessions_out.end()) {
    it->second.tcp_flags |= v.seen;
  } else {
    if (v.existing_only) return Drop(AFTR_C_DROP_NO_SESSION);
    if (int rc = SessionCreate(p, key, uint8_t(sw), v.seen)) return rc;
    it = state_.sessions_out.find(key);
  }
  SessionOut& s = it->second;
  if (config_.dp.filtering == AFTR_FILTER_ADDRESS_DEPENDENT)
    state_.filter_peers.insert(FilterKey{s.public_addr, remote, s.public_port, key.proto});
  if (int rc = OutMtuCheck(p, s, outer)) return rc;

  Rewrite(f, ip, ip + 12, s.public_addr, v, s.public_port);
  if (v.tcp_off) ClampMss(p, *v.tcp_off);
  if (PoolContains(remote)) return Hairpin(p, outer);
  p.Count(AFTR_C_OUT_TRANSLATED);

  // Decapsulate: the Ethernet header stays, now announcing IPv4.
  f.erase(f.begin() + kEthLen, f.begin() + kEthLen + outer);
  Set16(f, 12, kEtherTypeIpv4);
  return SendOut(p, s.fib, /*ipv6=*/false);
}

// Fragments go whole, as received, to aftrd's slow path (a frame the ring takes: at most
// AFTR_SLOW_MAX_FRAME bytes; the model's ring never fills) and are dropped here.
int Model::SlowPathQueue(Packet& p, uint32_t kind) {
  if (p.buf.size() > AFTR_SLOW_MAX_FRAME) return Drop(AFTR_C_DROP_SLOW_PATH_TOO_BIG);
  p.result.slow_path_frame = p.buf;
  p.result.slow_path_kind = kind;
  p.Count(AFTR_C_SLOW_PATH_QUEUED);
  return kDrop;
}

// ---- Internet → B4 ----

int Model::FromInternet(Packet& p) {
  Bytes& f = p.buf;
  const size_t ip = kEthLen;
  if (f.size() < ip + 20) return Drop(AFTR_C_DROP_MALFORMED_IPV4);
  Ipv4Header h{ip, f};
  if (!PoolContains(h.daddr())) {
    p.Count(AFTR_C_PASS_NOT_OURS);
    return kPass;
  }
  if (!Ipv4Fits(f, ip)) return Drop(AFTR_C_DROP_MALFORMED_IPV4);
  if (h.frag_off() & 0x3fff) return SlowPathQueue(p, AFTR_SLOW_INET_FRAGMENT);

  L4View v;
  if (int rc = ParseL4(f, ip, /*outbound=*/false, /*to_pool=*/true, v)) return rc;
  if (v.icmp_error) return IcmpErrorFromInternet(p);

  SessionInKey key{h.daddr(), Get16(f, v.port_off), h.protocol()};
  auto it = state_.sessions_in.find(key);
  if (it == state_.sessions_in.end()) return Drop(AFTR_C_DROP_NO_SESSION);
  SessionIn& s = it->second;
  // Static and PCP mappings are port forwards, open to every peer; a PCP FILTER limits one
  // to its filter set (this model holds none: sessions come from packets only).
  if (s.tcp_flags & AFTR_SESSION_FILTERED) return Drop(AFTR_C_DROP_FILTERED);
  if (config_.dp.filtering == AFTR_FILTER_ADDRESS_DEPENDENT &&
      !(s.tcp_flags & AFTR_SESSION_FORWARD) &&
      !state_.filter_peers.count(FilterKey{key.public_addr, h.saddr(), key.public_port, key.proto}))
    return Drop(AFTR_C_DROP_FILTERED);
  if (h.ttl() <= 1) return IcmpErrorGen(p, 0, kIcmpTimeExceeded, 0);
  if (int rc = InMtuCheck(p, s)) return rc;

  s.tcp_flags |= v.seen;
  Rewrite(f, ip, ip + 16, s.inner_addr, v, s.inner_port);
  if (v.tcp_off) ClampMss(p, *v.tcp_off);
  DecrementTtl(f, ip);
  p.Count(AFTR_C_IN_TRANSLATED);

  // Encapsulate toward the B4, from the AFTR address it talks to.
  uint16_t inner_len = h.tot_len();
  Bytes ip6(kIpv6Len, 0);
  ip6[0] = 0x60;  // version 6, traffic class 0, flow label 0
  Set16(ip6, 4, inner_len);
  ip6[6] = kProtoIpip;
  ip6[7] = config_.dp.hop_limit;
  std::memcpy(&ip6[8], config_.dp.softwire_addrs[s.softwire_index & 3], 16);
  std::memcpy(&ip6[24], s.b4.data(), 16);
  f.insert(f.begin() + kEthLen, ip6.begin(), ip6.end());
  Set16(f, 12, kEtherTypeIpv6);
  return SendOut(p, s.fib, /*ipv6=*/true);
}

// An ICMP error about a packet we sent out (RFC 5508 section 4): found by the session of
// the quoted packet, whose source and port (or echo id) go back to the inner host's, with
// the quoted checksums and the ICMP checksum updated; never creates or refreshes a session.
int Model::IcmpErrorFromInternet(Packet& p, bool hairpinned) {
  Bytes& f = p.buf;
  const size_t ip = kEthLen;
  Ipv4Header h{ip, f};
  const size_t icmp = ip + h.ihl();
  const size_t q = icmp + 8;  // the quoted IPv4 header
  uint32_t quoted = h.tot_len() - h.ihl() - 8;
  if (q + 20 > f.size() || quoted < 20) return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);
  Ipv4Header qh{q, f};
  // A whole header and the 8 bytes after it (RFC 792); not a later fragment.
  if (f[q] >> 4 != 4 || qh.ihl() < 20 || quoted < qh.ihl() + 8 || (qh.frag_off() & 0x1fff))
    return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);
  if (qh.saddr() != h.daddr()) return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);
  const size_t l4 = q + qh.ihl();
  if (l4 + 8 > f.size()) return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);

  size_t port_off = l4;  // the quoted source port: our public port
  uint16_t peer_port = 0;
  std::optional<size_t> check_off;
  switch (qh.protocol()) {
    case kProtoTcp:
      peer_port = Get16(f, l4 + 2);
      if (quoted >= qh.ihl() + 18) check_off = l4 + 16;  // if the router quoted that far
      break;
    case kProtoUdp:
      peer_port = Get16(f, l4 + 2);
      if (Get16(f, l4 + 6) != 0) check_off = l4 + 6;  // 0: sent without, stays so
      break;
    case kProtoIcmp:
      if (f[l4] != kIcmpEcho) return Drop(AFTR_C_DROP_ICMP_ERROR_NO_SESSION);
      port_off = l4 + 4;
      check_off = l4 + 2;
      break;
    default:
      return Drop(AFTR_C_DROP_ICMP_ERROR_NO_SESSION);
  }
  SessionInKey key{qh.saddr(), Get16(f, port_off), qh.protocol()};
  auto it = state_.sessions_in.find(key);
  if (it == state_.sessions_in.end()) return Drop(AFTR_C_DROP_ICMP_ERROR_NO_SESSION);
  SessionIn& s = it->second;
  // Filtering applies to the peer the quoted packet went to, not to the error's sender.
  (void)peer_port;  // only PCP FILTER sets look at it, and the model holds none
  if (s.tcp_flags & AFTR_SESSION_FILTERED) return Drop(AFTR_C_DROP_FILTERED);
  if (config_.dp.filtering == AFTR_FILTER_ADDRESS_DEPENDENT &&
      !(s.tcp_flags & AFTR_SESSION_FORWARD) &&
      !state_.filter_peers.count(FilterKey{key.public_addr, qh.daddr(), key.public_port, key.proto}))
    return Drop(AFTR_C_DROP_FILTERED);
  if (h.ttl() <= 1) return Drop(AFTR_C_DROP_TTL_EXPIRED);

  const uint32_t pub = key.public_addr, inner = s.inner_addr;
  const uint16_t pub_port = key.public_port, inner_port = s.inner_port;
  const size_t icmp_check = icmp + 2;
  // Every quoted byte that changes changes the ICMP checksum too (it has no pseudo header).
  auto change16 = [&](size_t off, uint16_t value) {
    Set16(f, icmp_check, ChecksumUpdate(Get16(f, icmp_check), Get16(f, off), value));
    Set16(f, off, value);
  };
  if (check_off) {
    uint16_t c = Get16(f, *check_off);
    if (qh.protocol() != kProtoIcmp) c = ChecksumUpdate32(c, pub, inner);
    c = ChecksumUpdate(c, pub_port, inner_port);
    if (c == 0 && qh.protocol() == kProtoUdp) c = 0xffff;
    change16(*check_off, c);
  }
  change16(port_off, inner_port);
  change16(q + 10, ChecksumUpdate32(Get16(f, q + 10), pub, inner));
  change16(q + 12, inner >> 16);
  change16(q + 14, inner & 0xffff);
  // A "fragmentation needed" naming more than the softwire carries is lowered to that.
  const uint16_t tunnel_mtu = config_.dp.softwire_mtu - kIpv6Len;
  if (f[icmp] == kIcmpUnreachable && f[icmp + 1] == kCodeFragNeeded &&
      Get16(f, icmp + 6) > tunnel_mtu) {
    change16(icmp + 6, tunnel_mtu);
    p.Count(AFTR_C_RELAYED_MTU_LOWERED);
  }

  Set32(f, ip + 16, inner);
  Set16(f, ip + 10, ChecksumUpdate32(Get16(f, ip + 10), pub, inner));
  DecrementTtl(f, ip);
  p.Count(AFTR_C_IN_ICMP_ERROR_TRANSLATED);

  uint16_t inner_len = h.tot_len();
  Bytes ip6(kIpv6Len, 0);
  ip6[0] = 0x60;
  Set16(ip6, 4, inner_len);
  ip6[6] = kProtoIpip;
  ip6[7] = config_.dp.hop_limit;
  std::memcpy(&ip6[8], config_.dp.softwire_addrs[s.softwire_index & 3], 16);
  std::memcpy(&ip6[24], s.b4.data(), 16);
  f.insert(f.begin() + kEthLen, ip6.begin(), ip6.end());
  Set16(f, 12, kEtherTypeIpv6);
  return SendOut(p, s.fib, /*ipv6=*/true, /*redirect_back=*/hairpinned);
}

// Pushes the IPv6 header toward the session's B4, from the AFTR address it talks to, and
// sends the frame.
int Model::EncapToB4(Packet& p, SessionIn& s, bool redirect_back) {
  Bytes& f = p.buf;
  uint16_t inner_len = Get16(f, kEthLen + 2);
  Bytes ip6(kIpv6Len, 0);
  ip6[0] = 0x60;
  Set16(ip6, 4, inner_len);
  ip6[6] = kProtoIpip;
  ip6[7] = config_.dp.hop_limit;
  std::memcpy(&ip6[8], config_.dp.softwire_addrs[s.softwire_index & 3], 16);
  std::memcpy(&ip6[24], s.b4.data(), 16);
  f.insert(f.begin() + kEthLen, ip6.begin(), ip6.end());
  Set16(f, 12, kEtherTypeIpv6);
  return SendOut(p, s.fib, /*ipv6=*/true, redirect_back);
}

// ---- B4 → B4 (hairpinning, RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 REQ-7) ----

// The source is translated already (the sender's session); the destination, one of our
// public addresses, is found and filtered as if the packet came from the Internet with the
// sender's public end as the peer, rewritten to the target's inner end, TTL - 1 once, and
// the packet goes to the target's B4 in a new softwire header.
int Model::Hairpin(Packet& p, size_t outer) {
  Bytes& f = p.buf;
  const size_t ip = kEthLen + outer;
  Ipv4Header h{ip, f};
  const size_t l4 = ip + h.ihl();
  L4View v;
  uint16_t peer_port = 0;
  switch (h.protocol()) {
    case kProtoTcp: {
      v.port_off = l4 + 2;
      v.check_off = l4 + 16;
      v.pseudo = true;
      uint8_t flags = f[l4 + 13];
      v.seen = (flags & kTcpSyn ? AFTR_TCP_SEEN_SYN : 0) | (flags & kTcpFin ? AFTR_TCP_SEEN_FIN : 0) |
               (flags & kTcpRst ? AFTR_TCP_SEEN_RST : 0);
      peer_port = Get16(f, l4);
      break;
    }
    case kProtoUdp:
      v.port_off = l4 + 2;
      if (Get16(f, l4 + 6) != 0) v.check_off = l4 + 6;
      v.pseudo = true;
      peer_port = Get16(f, l4);
      break;
    default:  // ICMP echo or echo reply: by the identifier
      v.port_off = l4 + 4;
      v.check_off = l4 + 2;
      break;
  }
  (void)peer_port;  // only PCP FILTER sets look at it, and the model holds none
  SessionInKey key{h.daddr(), Get16(f, v.port_off), h.protocol()};
  auto it = state_.sessions_in.find(key);
  if (it == state_.sessions_in.end()) return Drop(AFTR_C_DROP_NO_SESSION);
  SessionIn& s = it->second;
  if (s.tcp_flags & AFTR_SESSION_FILTERED) return Drop(AFTR_C_DROP_FILTERED);
  if (config_.dp.filtering == AFTR_FILTER_ADDRESS_DEPENDENT &&
      !(s.tcp_flags & AFTR_SESSION_FORWARD) &&
      !state_.filter_peers.count(FilterKey{key.public_addr, h.saddr(), key.public_port, key.proto}))
    return Drop(AFTR_C_DROP_FILTERED);

  s.tcp_flags |= v.seen;
  Rewrite(f, ip, ip + 16, s.inner_addr, v, s.inner_port);
  DecrementTtl(f, ip);
  p.Count(AFTR_C_HAIRPIN_TRANSLATED);
  f.erase(f.begin() + kEthLen, f.begin() + kEthLen + outer);
  Set16(f, 12, kEtherTypeIpv4);
  return EncapToB4(p, s, /*redirect_back=*/true);  // never XDP_TX (fib_send says why)
}

// An ICMP error from behind a B4 about a packet we translated in (the mirror of
// IcmpErrorFromInternet): found by the subscriber-side session of the quoted destination,
// which goes back to the public address and port (or echo id), with the outer source; never
// creates or refreshes a session, not filtered. An error about a hairpinned packet (quoted
// source one of our addresses) then continues as an inbound error for the other subscriber.
int Model::IcmpErrorFromB4(Packet& p, size_t outer) {
  Bytes& f = p.buf;
  const size_t ip = kEthLen + outer;
  Ipv4Header h{ip, f};
  const size_t icmp = ip + h.ihl();
  const size_t q = icmp + 8;
  uint32_t quoted = h.tot_len() - h.ihl() - 8;
  if (q + 20 > f.size() || quoted < 20) return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);
  Ipv4Header qh{q, f};
  if (f[q] >> 4 != 4 || qh.ihl() < 20 || quoted < qh.ihl() + 8 || (qh.frag_off() & 0x1fff))
    return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);
  if (qh.saddr() != h.daddr()) return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);
  const size_t l4 = q + qh.ihl();
  if (l4 + 8 > f.size()) return Drop(AFTR_C_DROP_ICMP_ERROR_MALFORMED);

  size_t port_off = l4 + 2;  // the quoted destination port: the inner one
  std::optional<size_t> check_off;
  switch (qh.protocol()) {
    case kProtoTcp:
      if (quoted >= qh.ihl() + 18 && l4 + 18 <= f.size()) check_off = l4 + 16;
      break;
    case kProtoUdp:
      if (Get16(f, l4 + 6) != 0) check_off = l4 + 6;
      break;
    case kProtoIcmp:
      if (f[l4] != kIcmpEchoReply && f[l4] != kIcmpEcho)
        return Drop(AFTR_C_DROP_ICMP_ERROR_NO_SESSION);
      port_off = l4 + 4;
      check_off = l4 + 2;
      break;
    default:
      return Drop(AFTR_C_DROP_ICMP_ERROR_NO_SESSION);
  }
  SessionOutKey key{GetIp6(f, kEthLen + 8), qh.daddr(), Get16(f, port_off), qh.protocol()};
  auto it = state_.sessions_out.find(key);
  if (it == state_.sessions_out.end()) return Drop(AFTR_C_DROP_ICMP_ERROR_NO_SESSION);
  SessionOut& s = it->second;

  const uint32_t inner = key.inner_addr, pub = s.public_addr;
  const uint16_t inner_port = key.inner_port, pub_port = s.public_port;
  const size_t icmp_check = icmp + 2;
  auto change16 = [&](size_t off, uint16_t value) {
    Set16(f, icmp_check, ChecksumUpdate(Get16(f, icmp_check), Get16(f, off), value));
    Set16(f, off, value);
  };
  if (check_off) {
    uint16_t c = Get16(f, *check_off);
    if (qh.protocol() != kProtoIcmp) c = ChecksumUpdate32(c, inner, pub);
    c = ChecksumUpdate(c, inner_port, pub_port);
    if (c == 0 && qh.protocol() == kProtoUdp) c = 0xffff;
    change16(*check_off, c);
  }
  change16(port_off, pub_port);
  change16(q + 10, ChecksumUpdate32(Get16(f, q + 10), inner, pub));
  change16(q + 16, pub >> 16);
  change16(q + 18, pub & 0xffff);
  uint32_t old_src = h.saddr();
  Set32(f, ip + 12, pub);
  Set16(f, ip + 10, ChecksumUpdate32(Get16(f, ip + 10), old_src, pub));

  bool hairpinned = PoolContains(h.daddr());
  if (!hairpinned) p.Count(AFTR_C_OUT_ICMP_ERROR_TRANSLATED);  // TTL - 1 in SendOut
  f.erase(f.begin() + kEthLen, f.begin() + kEthLen + outer);
  Set16(f, 12, kEtherTypeIpv4);
  if (hairpinned) return IcmpErrorFromInternet(p, /*hairpinned=*/true);
  return SendOut(p, s.fib, /*ipv6=*/false);
}

// RFC 6333 section 5.3: the tunnel costs 40 bytes, so a SYN's MSS option above the clamp is
// lowered (both directions). The options are walked as the program does: at most 12, and an
// option is read as far as the frame goes.
void Model::ClampMss(Packet& p, size_t tcp) {
  Bytes& f = p.buf;
  uint16_t clamp = config_.dp.tcp_mss_clamp;
  if (!clamp || !(f[tcp + 13] & kTcpSyn)) return;
  size_t optlen = (f[tcp + 12] >> 4) * 4 - 20;
  size_t opts = tcp + 20, off = 0;
  for (int i = 0; i < kMssOptionWalk; i++) {
    if (off >= optlen) return;
    size_t at = opts + off;
    if (at + 1 > f.size()) return;
    if (f[at] == 0) return;  // End of Option List
    if (f[at] == 1) {        // No-Operation
      off++;
      continue;
    }
    if (at + 4 > f.size()) return;
    if (f[at] == 2 && f[at + 1] == 4) {
      uint16_t mss = Get16(f, at + 2);
      if (mss > clamp) {
        Set16(f, tcp + 16, ChecksumUpdate(Get16(f, tcp + 16), mss, clamp));
        Set16(f, at + 2, clamp);
        p.Count(AFTR_C_MSS_CLAMPED);
      }
      return;
    }
    if (f[at + 1] < 2) return;
    off += f[at + 1];
  }
}

// The next hop: the session's cached one when caching is on and it has one, else the FIB
// (whose MTU check is on the IP length); then MACs and out of the egress interface (XDP_TX
// when that is the ingress one, unless `redirect_back`: a hairpinned packet). An unresolved
// neighbour hands the packet to the kernel.
int Model::SendOut(Packet& p, FibCache& cache, bool ipv6, bool redirect_back) {
  Bytes& f = p.buf;
  const size_t l3 = kEthLen;
  auto send = [&](int ifindex, const Mac& dmac, const Mac& smac) {
    std::memcpy(&f[0], dmac.data(), 6);
    std::memcpy(&f[6], smac.data(), 6);
    if (ifindex == p.ingress && !redirect_back) {
      p.Count(AFTR_C_TX_SAME_IF);
      return int(kTx);
    }
    p.Count(AFTR_C_TX_REDIRECT);
    return int(kRedirect);
  };

  if (config_.dp.fib_cache_ticks && cache.valid && state_.if_macs.count(cache.ifindex)) {
    if (!ipv6) DecrementTtl(f, l3);
    if (f.size() - kEthLen > cache.mtu) return Drop(AFTR_C_DROP_TOO_BIG);  // the frame, here
    p.Count(AFTR_C_FIB_CACHE_HIT);
    return send(cache.ifindex, cache.dmac, state_.if_macs[cache.ifindex]);
  }

  const Route* route = nullptr;
  uint32_t tot_len;
  if (ipv6) {
    Ip6 dst = GetIp6(f, l3 + 24);
    tot_len = kIpv6Len + Get16(f, l3 + 4);
    int best = -1;
    for (const Route6& r : config_.net.routes6)
      if (r.len > best && PrefixMatch(dst, r.prefix, r.len)) route = &r, best = r.len;
  } else {
    uint32_t dst = Get32(f, l3 + 16);
    tot_len = Get16(f, l3 + 2);
    int best = -1;
    for (const Route4& r : config_.net.routes4) {
      uint32_t mask = r.len ? ~0u << (32 - r.len) : 0;
      if (r.len > best && (dst & mask) == r.prefix) route = &r, best = r.len;
    }
  }
  if (!route) return Drop(AFTR_C_DROP_FIB_FAILED);
  if (tot_len > route->mtu) return Drop(AFTR_C_DROP_TOO_BIG);  // checked before the neighbour
  if (route->kind == Route::Kind::kNoNeighbour) {
    p.Count(AFTR_C_PASS_NO_NEIGH);  // the kernel forwards it (TTL and all) and resolves
    return kPass;
  }
  const Mac& smac = config_.net.interface_macs.at(route->ifindex);
  if (config_.dp.fib_cache_ticks && route->ifindex < AFTR_MAX_IFINDEX) {
    state_.if_macs[route->ifindex] = smac;
    cache = FibCache{true, route->ifindex, route->gateway_mac, route->mtu};
  }
  if (!ipv6) DecrementTtl(f, l3);
  return send(route->ifindex, route->gateway_mac, smac);
}

// ---- MTU and the ICMP errors the AFTR makes (RFC 792, 1191, 1812; RFC 6333 5.3/6.3) ----

// The IPv4 route to `dst` (longest prefix), or none.
const Route* Model::Lookup4(uint32_t dst) const {
  const Route* route = nullptr;
  int best = -1;
  for (const Route4& r : config_.net.routes4) {
    uint32_t mask = r.len ? ~0u << (32 - r.len) : 0;
    if (r.len > best && (dst & mask) == r.prefix) route = &r, best = r.len;
  }
  return route;
}

// Internet -> B4, before translation: the tunnel carries softwire_mtu (the session's cached
// route MTU when smaller and the cache is in use) less the 40 bytes pushed. 0: it fits.
int Model::InMtuCheck(Packet& p, const SessionIn& s) {
  Bytes& f = p.buf;
  uint32_t mtu = config_.dp.softwire_mtu;
  if (config_.dp.fib_cache_ticks && s.fib.valid && state_.if_macs.count(s.fib.ifindex) &&
      s.fib.mtu < mtu)
    mtu = s.fib.mtu;
  auto learned = state_.b4_mtu.find(s.b4);  // from a Packet Too Big
  if (learned != state_.b4_mtu.end() && learned->second < mtu) mtu = learned->second;
  Ipv4Header h{kEthLen, f};
  if (h.tot_len() + kIpv6Len <= mtu) return 0;
  if (!(h.frag_off() & kIpv4Df)) return SlowPathQueue(p, AFTR_SLOW_OVERSIZE);
  return IcmpErrorGen(p, 0, kIcmpUnreachable, uint16_t(mtu - kIpv6Len));
}

// B4 -> Internet, before translation: the egress MTU from the cache or the FIB; a
// hairpinned packet goes into another softwire. 0: it fits, or the FIB has no answer here.
int Model::OutMtuCheck(Packet& p, const SessionOut& s, size_t outer) {
  Bytes& f = p.buf;
  Ipv4Header h{kEthLen + outer, f};
  // The data plane's shortcut: a cached next hop that takes it, and a softwire that would.
  if (config_.dp.fib_cache_ticks && s.fib.valid && h.tot_len() <= s.fib.mtu &&
      h.tot_len() + kIpv6Len <= config_.dp.softwire_mtu)
    return 0;
  uint32_t mtu;
  if (PoolContains(h.daddr())) {
    mtu = config_.dp.softwire_mtu - kIpv6Len;
  } else if (config_.dp.fib_cache_ticks && s.fib.valid && state_.if_macs.count(s.fib.ifindex)) {
    mtu = s.fib.mtu;
  } else {
    const Route* route = Lookup4(h.daddr());
    if (!route || h.tot_len() <= route->mtu) return 0;
    mtu = route->mtu;
  }
  if (h.tot_len() <= mtu) return 0;
  if (!(h.frag_off() & kIpv4Df)) return SlowPathQueue(p, AFTR_SLOW_OVERSIZE);
  return IcmpErrorGen(p, outer, kIcmpUnreachable, uint16_t(mtu));
}

// The packet at `outer` bytes after Ethernet (0: from the Internet; else in a softwire from
// a B4) becomes an ICMP error about it: from our public address to its source, routed; or
// from 192.0.0.1 to the inner host in IPv6 back to the B4 (XDP_TX, MACs swapped). It quotes
// the header and 8 bytes as sent. Never about an ICMP error (only echo and echo reply are
// answered), a later fragment, a packet shorter than its header and 8 bytes, from or to
// 0/8, 127/8 or 224/3; none at all when icmp_errors_per_second is 0. (Any other rate: the
// model has no clock, and never runs out of tokens.)
int Model::IcmpErrorGen(Packet& p, size_t outer, uint8_t type, uint16_t mtu, int code,
                        bool translated) {
  Bytes& f = p.buf;
  const int drop = translated                  ? Drop(AFTR_C_DROP_ICMP6_ERROR_NOT_SENT)
                   : type == kIcmpTimeExceeded ? Drop(AFTR_C_DROP_TTL_EXPIRED)
                                               : Drop(AFTR_C_DROP_TOO_BIG);
  if (code < 0) code = type == kIcmpUnreachable ? kCodeFragNeeded : 0;
  const size_t ip = kEthLen + outer;
  Ipv4Header h{ip, f};
  const size_t quote = h.ihl() + 8, l4 = ip + h.ihl();
  if (h.ihl() < 20 || h.tot_len() < quote || l4 + 8 > f.size()) return drop;
  if (h.frag_off() & 0x1fff) return drop;
  auto addr_ok = [](uint32_t a) {
    uint32_t first = a >> 24;
    return first != 0 && first != 127 && first < 224;
  };
  if (!addr_ok(h.saddr()) || !addr_ok(h.daddr())) return drop;
  if (h.protocol() == kProtoIcmp && f[l4] != kIcmpEcho && f[l4] != kIcmpEchoReply) return drop;
  if (config_.dp.icmp_errors_per_second == 0) {
    p.Count(AFTR_C_ICMP_RATE_LIMITED);
    return drop;
  }

  const uint32_t src = outer ? kAftrWellKnownIpv4 : h.daddr(), dst = h.saddr();
  Bytes out(f.begin(), f.begin() + kEthLen);
  if (outer) {  // back where it came from: the MACs swapped
    std::swap_ranges(out.begin(), out.begin() + 6, out.begin() + 6);
    Set16(out, 12, kEtherTypeIpv6);
    Bytes ip6(kIpv6Len, 0);
    ip6[0] = 0x60;
    Set16(ip6, 4, uint16_t(kIcmpErrorHeaders + quote));
    ip6[6] = kProtoIpip;
    ip6[7] = config_.dp.hop_limit;
    std::memcpy(&ip6[8], &f[kEthLen + 24], 16);   // from the softwire address it was sent to
    std::memcpy(&ip6[24], &f[kEthLen + 8], 16);   // to the B4
    out.insert(out.end(), ip6.begin(), ip6.end());
  } else {
    Set16(out, 12, kEtherTypeIpv4);
  }
  const size_t e4 = out.size();
  Bytes hdr(kIcmpErrorHeaders, 0);
  hdr[0] = 0x45;
  hdr[1] = 0xc0;  // precedence 6, internetwork control
  Set16(hdr, 2, uint16_t(kIcmpErrorHeaders + quote));
  hdr[8] = 64;
  hdr[9] = kProtoIcmp;
  Set32(hdr, 12, src);
  Set32(hdr, 16, dst);
  hdr[20] = type;
  hdr[21] = uint8_t(code);
  if (type == kIcmpUnreachable) Set16(hdr, 26, mtu);
  out.insert(out.end(), hdr.begin(), hdr.end());
  out.insert(out.end(), f.begin() + ip, f.begin() + ip + quote);
  auto checksum = [&](size_t from, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i += 2) sum += Get16(out, from + i);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
  };
  Set16(out, e4 + 10, checksum(e4, 20));
  Set16(out, e4 + 22, checksum(e4 + 20, 8 + quote));
  f = std::move(out);

  const aftr_counter sent = translated                 ? AFTR_C_ICMP6_ERROR_TRANSLATED
                           : type == kIcmpUnreachable ? AFTR_C_ICMP_FRAG_NEEDED_SENT
                                                      : AFTR_C_ICMP_TIME_EXCEEDED_SENT;
  // Always a redirect, even out of the ingress interface (never XDP_TX: see icmp_gen.h).
  if (outer) {
    p.Count(sent);
    p.Count(AFTR_C_TX_REDIRECT);
    return kRedirect;
  }
  const Route* route = Lookup4(dst);
  if (!route) return Drop(AFTR_C_DROP_FIB_FAILED);
  p.Count(sent);
  if (route->kind == Route::Kind::kNoNeighbour) {
    p.Count(AFTR_C_PASS_NO_NEIGH);  // the kernel forwards it
    return kPass;
  }
  const Mac& smac = config_.net.interface_macs.at(route->ifindex);
  std::memcpy(&f[0], route->gateway_mac.data(), 6);
  std::memcpy(&f[6], smac.data(), 6);
  p.Count(AFTR_C_TX_REDIRECT);
  return kRedirect;
}

// ---- ICMPv6 errors about softwire packets (RFC 2473 section 8, RFC 6333 5.3/6.3) ----

// An ICMPv6 message to a softwire address. Not an error, or not quoting our encapsulation
// (an IPv6 header from that address with IPv4 inside, no extension headers): the kernel's,
// as any ICMPv6. Ours: found by the session of the quoted IPv4 packet (which we sent toward
// the B4: the Internet host to the inner host), then Parameter Problem dropped, Packet Too Big
// learned for the B4 (1280..softwire_mtu, never raised) and answered with "fragmentation
// needed" (MTU - 40) when the quoted packet had DF, Destination Unreachable as host
// unreachable (administratively prohibited as 3/13), Time Exceeded as 11/0: from the
// session's public address to the Internet host, quoting the packet translated back as the
// host sent it (destination and port or echo id public, TTL + 1, checksums updated).
int Model::Icmp6ErrorFromB4(Packet& p) {
  Bytes& f = p.buf;
  const size_t ip6 = kEthLen, ic6 = ip6 + kIpv6Len, q6 = ic6 + 8, q = q6 + kIpv6Len;
  auto not_ours = [&] {
    p.Count(AFTR_C_PASS_LOCAL_CONTROL);
    return int(kPass);
  };
  if (ic6 + 8 > f.size() || f[ic6] < 1 || f[ic6] > 4) return not_ours();
  if (q6 + kIpv6Len > f.size() || f[q6] >> 4 != 6 || f[q6 + 6] != kProtoIpip ||
      GetIp6(f, q6 + 8) != GetIp6(f, ip6 + 24))
    return not_ours();

  const uint32_t payload = Get16(f, ip6 + 4);
  if (ip6 + kIpv6Len + payload > f.size() || payload < 8 + kIpv6Len)
    return Drop(AFTR_C_DROP_ICMP6_ERROR_MALFORMED);
  const uint32_t quoted = payload - 8 - kIpv6Len;
  if (q + 20 > f.size() || quoted < 20) return Drop(AFTR_C_DROP_ICMP6_ERROR_MALFORMED);
  Ipv4Header qh{q, f};
  if (f[q] >> 4 != 4 || qh.ihl() < 20 || quoted < qh.ihl() + 8 || (qh.frag_off() & 0x1fff) ||
      Get16(f, q6 + 4) != qh.tot_len())
    return Drop(AFTR_C_DROP_ICMP6_ERROR_MALFORMED);
  const size_t l4 = q + qh.ihl();
  if (l4 + 8 > f.size()) return Drop(AFTR_C_DROP_ICMP6_ERROR_MALFORMED);

  size_t port_off = l4 + 2;  // the quoted destination port: the inner one
  std::optional<size_t> check_off;
  switch (qh.protocol()) {
    case kProtoTcp: break;  // its checksum is past the 8 bytes the ICMPv4 error quotes
    case kProtoUdp:
      if (Get16(f, l4 + 6) != 0) check_off = l4 + 6;
      break;
    case kProtoIcmp:
      if (f[l4] != kIcmpEchoReply) return Drop(AFTR_C_DROP_ICMP6_ERROR_NO_SESSION);
      port_off = l4 + 4;
      check_off = l4 + 2;
      break;
    default:
      return Drop(AFTR_C_DROP_ICMP6_ERROR_NO_SESSION);
  }
  const Ip6 b4 = GetIp6(f, q6 + 24);
  auto it = state_.sessions_out.find(SessionOutKey{b4, qh.daddr(), Get16(f, port_off), qh.protocol()});
  if (it == state_.sessions_out.end()) return Drop(AFTR_C_DROP_ICMP6_ERROR_NO_SESSION);
  const SessionOut& s = it->second;
  const uint32_t pub = s.public_addr, remote = qh.saddr(), inner = qh.daddr();
  const uint16_t pub_port = s.public_port, inner_port = Get16(f, port_off);
  // The quoted source must be a peer the session hears from (the model holds no PCP sets).
  if (s.flags & AFTR_SESSION_FILTERED) return Drop(AFTR_C_DROP_FILTERED);
  if (config_.dp.filtering == AFTR_FILTER_ADDRESS_DEPENDENT && !(s.flags & AFTR_SESSION_FORWARD) &&
      !state_.filter_peers.count(FilterKey{pub, remote, pub_port, qh.protocol()}))
    return Drop(AFTR_C_DROP_FILTERED);

  uint8_t type, code = 0;
  uint16_t mtu4 = 0;
  switch (f[ic6]) {
    case 4: return Drop(AFTR_C_DROP_ICMP6_PARAM_PROBLEM);
    case 3: type = kIcmpTimeExceeded; break;
    case 1:
      type = kIcmpUnreachable;
      code = f[ic6 + 1] == 1 ? 13 : 1;  // administratively prohibited, else host unreachable
      break;
    default: {  // Packet Too Big
      uint32_t mtu = std::max<uint32_t>(Get32(f, ic6 + 4), 1280);
      if (mtu >= kIpv6Len + Get16(f, q6 + 4)) return Drop(AFTR_C_DROP_ICMP6_ERROR_MALFORMED);
      mtu = std::min<uint32_t>(mtu, config_.dp.softwire_mtu);
      auto cur = state_.b4_mtu.find(b4);
      if (cur == state_.b4_mtu.end() || mtu < cur->second) {
        state_.b4_mtu[b4] = mtu;
        p.Count(AFTR_C_ICMP6_PTB_LEARNED);
      }
      if (!(qh.frag_off() & kIpv4Df)) return Drop(AFTR_C_DROP_ICMP6_PTB_NO_DF);
      type = kIcmpUnreachable;
      code = kCodeFragNeeded;
      mtu4 = uint16_t(mtu - kIpv6Len);
    }
  }
  if (PoolContains(remote)) return Drop(AFTR_C_DROP_ICMP6_ERROR_NOT_SENT);  // hairpinned

  if (check_off) {
    uint16_t c = Get16(f, *check_off);
    if (qh.protocol() == kProtoUdp) c = ChecksumUpdate32(c, inner, pub);
    c = ChecksumUpdate(c, inner_port, pub_port);
    if (c == 0 && qh.protocol() == kProtoUdp) c = 0xffff;
    Set16(f, *check_off, c);
  }
  Set16(f, port_off, pub_port);
  Set32(f, q + 16, pub);
  Set16(f, q + 10, ChecksumUpdate32(Get16(f, q + 10), inner, pub));
  if (qh.ttl() < 255) {
    uint16_t old_word = Get16(f, q + 8);
    f[q + 8]++;
    Set16(f, q + 10, ChecksumUpdate(Get16(f, q + 10), old_word, Get16(f, q + 8)));
  }
  // The frame becomes the quoted packet behind the Ethernet header, as if from the Internet.
  f.erase(f.begin() + kEthLen, f.begin() + q);
  Set16(f, 12, kEtherTypeIpv4);
  return IcmpErrorGen(p, 0, type, mtu4, code, /*translated=*/true);
}

// ---- Sessions, subscribers, port blocks ----

void Model::EmitSimple(Packet& p, uint8_t type, const SessionOutKey& key, uint32_t public_addr) {
  Event e;
  e.type = type;
  e.b4 = key.b4;
  e.proto = key.proto;
  e.inner_addr = key.inner_addr;
  e.inner_port = key.inner_port;
  e.public_addr = public_addr;
  p.result.events.push_back(e);
}

// A block is claimed at the lowest free bit of a bitmap word the program draws at random
// (then the next words in turn): so any word's lowest free bit is a legal claim.
std::optional<uint32_t> Model::ClaimBlock(Packet& p, uint32_t addr_index) {
  if (addr_index >= state_.pool.size()) return std::nullopt;
  PoolAddress& pa = state_.pool[addr_index];
  if (pa.flags & AFTR_POOL_ADDR_DRAINING) return std::nullopt;
  std::vector<uint32_t> legal;
  for (uint32_t w = 0; w < AFTR_BLOCK_WORDS; w++) {
    if (pa.used[w] == ~0ull) continue;
    uint32_t block = w * 64 + __builtin_ctzll(~pa.used[w]);
    if (block < config_.dp.blocks_per_addr) legal.push_back(block);
  }
  if (legal.empty()) return std::nullopt;
  uint32_t block = legal.front();
  auto& told = p.choices.claimed_blocks;
  if (!told.empty() && told.front().first == pa.addr) {
    uint32_t chosen = told.front().second;
    told.pop_front();
    if (std::find(legal.begin(), legal.end(), chosen) != legal.end())
      block = chosen;
    else
      p.result.illegal_choices.push_back("claimed block " + std::to_string(chosen) +
                                         " is not the lowest free block of its word");
  }
  pa.used[block / 64] |= 1ull << (block % 64);
  return block;
}

static void EmitBlock(std::vector<Event>& events, const Ip6& b4, uint32_t addr, uint32_t block,
                      const aftr_dp_config& dp) {
  Event e;
  e.type = AFTR_EV_BLOCK_CLAIMED;
  e.b4 = b4;
  e.public_addr = addr;
  e.public_port = uint16_t(dp.port_min + block * dp.block_size);
  e.block_size = dp.block_size;
  events.push_back(e);
}

int Model::SubscriberCreate(Packet& p, const SessionOutKey& key) {
  if (!B4Allowed(key.b4)) return Drop(AFTR_C_DROP_UNKNOWN_B4);
  uint32_t count = config_.dp.pool_addr_count;
  if (count == 0) return Drop(AFTR_C_DROP_ADDRESS_EXHAUSTED);
  // Paired pooling (RFC 4787 REQ-2): one address per subscriber, chosen by hash, then the
  // next addresses, then the controller's hint.
  uint32_t start = B4Hash(key.b4) % count;
  uint32_t index = 0;
  std::optional<uint32_t> block;
  for (int i = 0; i <= kAddressProbes && !block; i++) {
    index = i < kAddressProbes ? (start + i) % count : config_.pool_hint;
    block = ClaimBlock(p, index);
  }
  if (!block) {
    EmitSimple(p, AFTR_EV_ADDRESS_EXHAUSTED, key);
    return Drop(AFTR_C_DROP_ADDRESS_EXHAUSTED);
  }
  PoolAddress& pa = state_.pool[index];
  if (state_.subscribers.size() >= config_.max_subscribers) {
    pa.used[*block / 64] &= ~(1ull << (*block % 64));
    EmitSimple(p, AFTR_EV_SUBSCRIBER_TABLE_FULL, key);
    return Drop(AFTR_C_DROP_SUBSCRIBER_TABLE_FULL);
  }
  Subscriber sub;
  sub.public_addr = pa.addr;
  sub.addr_index = index;
  sub.blocks = {uint16_t(*block)};
  state_.subscribers[key.b4] = sub;
  p.Count(AFTR_C_SUBSCRIBER_CREATED);
  EmitBlock(p.result.events, key.b4, pa.addr, *block, config_.dp);
  p.Count(AFTR_C_BLOCK_CLAIMED);
  return 0;
}

// Deterministic NAT (RFC 7422 style): a B4 inside a range of dp.det is subscriber i, the
// i-th prefix of the range's subscriber length; it holds public address pool_base +
// i / per_addr and blocks_per_sub consecutive blocks from (i % per_addr) * blocks_per_sub.
// Nothing comes from the pool and no block event is emitted. Returns 1 when no range holds
// the B4 (the pool decides), 0 when the subscriber was made, or a drop.
int Model::DeterministicCreate(Packet& p, const SessionOutKey& key) {
  using U128 = unsigned __int128;
  U128 b4 = 0;
  for (uint8_t byte : key.b4) b4 = (b4 << 8) | byte;
  for (uint32_t i = 0; i < config_.dp.det_count && i < AFTR_MAX_DET_RANGES; i++) {
    const aftr_det_range& r = config_.dp.det[i];
    U128 prefix = (U128(r.prefix_hi) << 64) | r.prefix_lo;
    U128 mask = (U128(r.mask_hi) << 64) | r.mask_lo;
    if ((b4 & mask) != prefix) continue;
    uint32_t index = uint32_t(b4 >> r.shift) & r.index_mask;
    if (state_.subscribers.size() >= config_.max_subscribers) {
      EmitSimple(p, AFTR_EV_SUBSCRIBER_TABLE_FULL, key);
      return Drop(AFTR_C_DROP_SUBSCRIBER_TABLE_FULL);
    }
    Subscriber sub;
    sub.public_addr = r.pool_base + index / r.per_addr;
    sub.addr_index = AFTR_ADDR_INDEX_DETERMINISTIC;
    for (uint32_t b = 0; b < r.blocks_per_sub; b++)
      sub.blocks.push_back(uint16_t((index % r.per_addr) * r.blocks_per_sub + b));
    state_.subscribers[key.b4] = sub;
    p.Count(AFTR_C_SUBSCRIBER_CREATED);
    return 0;
  }
  return 1;
}

// Picks a public port among the subscriber's blocks from slot `first_slot` on, as the
// program does: from a random start, up to 32 consecutive candidates of its port space
// (blocks back to back), a block not usable skipped whole; the first free one is taken. The
// program's choice is checked against the outcomes of every possible start. Returns the port,
// 0 when every try was taken, -1 when the Internet-side table is full.
int Model::PickPort(Packet& p, const SessionOutKey& key, uint8_t softwire_index,
                    uint32_t first_slot) {
  Subscriber& sub = state_.subscribers.at(key.b4);
  const uint32_t bs = config_.dp.block_size;
  const uint32_t n = std::min<uint32_t>(sub.blocks.size(), AFTR_MAX_BLOCKS_PER_SUB);
  if (first_slot >= n || bs == 0) return 0;
  const uint32_t total = (n - first_slot) * bs;
  auto port_of = [&](uint32_t idx) {
    uint32_t slot = first_slot + idx / bs;
    return config_.dp.port_min + uint32_t(sub.blocks[slot]) * bs + idx % bs;
  };
  auto usable = [&](uint32_t idx) {
    return AFTR_BLOCK_SLOT_USABLE(sub.blocks[first_slot + idx / bs]);
  };
  auto taken = [&](uint32_t port) {
    return state_.sessions_in.count(SessionInKey{sub.public_addr, uint16_t(port), key.proto}) > 0;
  };
  bool table_full = state_.sessions_in.size() >= config_.max_sessions_in;
  struct Outcome {
    int port;
    uint64_t retries;
    auto operator<=>(const Outcome&) const = default;
  };
  auto from_start = [&](uint32_t start) {
    Outcome o{0, 0};
    uint32_t idx = start;
    for (int i = 0; i < kPortTries; i++) {
      if (idx >= total) idx = 0;
      uint32_t cur = idx++;
      if (!usable(cur)) {
        idx = (cur / bs + 1) * bs;  // on to the next slot's first port
        continue;
      }
      uint32_t port = port_of(cur);
      if (taken(port)) {
        o.retries++;
        continue;
      }
      o.port = table_full ? -1 : int(port);
      return o;
    }
    return o;
  };
  std::set<Outcome> possible;
  for (uint32_t s = 0; s < total; s++) possible.insert(from_start(s));

  // What the program did, as far as it shows: the session's port, a block claimed after
  // this pick (so the pick found nothing), the retries counted in all.
  uint64_t left = p.choices.port_pick_retries >= p.retries_used
                      ? p.choices.port_pick_retries - p.retries_used
                      : 0;
  std::optional<Outcome> chosen;
  if (p.choices.session_port && possible.count(Outcome{*p.choices.session_port, left}))
    chosen = Outcome{*p.choices.session_port, left};
  if (!chosen && p.choices.claimed_blocks.empty() && possible.count(Outcome{-1, left}))
    chosen = Outcome{-1, left};
  if (!chosen)
    for (const Outcome& o : possible)
      if (o.port == 0 && o.retries <= left) chosen = o;
  if (!chosen) {
    chosen = from_start(0);
    if (p.choices.session_port || p.choices.port_pick_retries)
      p.result.illegal_choices.push_back(
          "no start of the port pick gives port " +
          std::to_string(p.choices.session_port.value_or(0)) + " after " +
          std::to_string(left) + " retries");
  }
  p.retries_used += chosen->retries;
  p.Count(AFTR_C_PORT_PICK_RETRIES, chosen->retries);
  if (chosen->port > 0) {
    SessionIn in;
    in.b4 = key.b4;
    in.inner_addr = key.inner_addr;
    in.inner_port = key.inner_port;
    in.softwire_index = softwire_index;
    state_.sessions_in[SessionInKey{sub.public_addr, uint16_t(chosen->port), key.proto}] = in;
  }
  return chosen->port;
}

// Another block on the subscriber's address (a slot freed by aftrd first, else a new slot
// within max_blocks_per_sub). Returns the slot, or a drop.
int Model::AddBlock(Packet& p, const SessionOutKey& key) {
  Subscriber& sub = state_.subscribers.at(key.b4);
  uint32_t n = sub.blocks.size();
  int hole = -1;
  for (uint32_t i = 0; i < n; i++)
    if (sub.blocks[i] == AFTR_BLOCK_SLOT_FREE) {
      hole = int(i);
      break;
    }
  // A deterministic subscriber has its range and no more.
  if (sub.addr_index == AFTR_ADDR_INDEX_DETERMINISTIC ||
      (hole < 0 && (n >= config_.dp.max_blocks_per_sub || n >= AFTR_MAX_BLOCKS_PER_SUB))) {
    EmitSimple(p, AFTR_EV_PORTS_EXHAUSTED, key);
    return Drop(AFTR_C_DROP_PORTS_EXHAUSTED);
  }
  std::optional<uint32_t> block = ClaimBlock(p, sub.addr_index);
  if (!block) {
    // Its own address's ports ran out (paired pooling): the event names the address.
    EmitSimple(p, AFTR_EV_ADDRESS_PORTS_EXHAUSTED, key, sub.public_addr);
    return Drop(AFTR_C_DROP_ADDRESS_EXHAUSTED);
  }
  int slot = hole >= 0 ? hole : int(n);
  if (hole >= 0)
    sub.blocks[hole] = uint16_t(*block);
  else
    sub.blocks.push_back(uint16_t(*block));
  EmitBlock(p.result.events, key.b4, sub.public_addr, *block, config_.dp);
  p.Count(AFTR_C_BLOCK_CLAIMED);
  return slot;
}

// A new session: the subscriber (made on its first packet), one more in its session count,
// a port (another block when its blocks have none free), then both entries.
int Model::SessionCreate(Packet& p, const SessionOutKey& key, uint8_t softwire_index,
                         uint8_t tcp_flags) {
  if (!state_.subscribers.count(key.b4)) {
    int rc = DeterministicCreate(p, key);
    if (rc == 1) rc = SubscriberCreate(p, key);
    if (rc) return rc;
  }
  Subscriber& sub = state_.subscribers.at(key.b4);
  if (sub.retired) return Drop(AFTR_C_DROP_SUBSCRIBER_RETIRING);
  if (sub.sessions >= config_.dp.max_sessions_per_sub) {
    EmitSimple(p, AFTR_EV_SESSION_LIMIT, key);
    return Drop(AFTR_C_DROP_SESSION_LIMIT);
  }
  sub.sessions++;
  int port = PickPort(p, key, softwire_index, 0);
  if (port == 0) {
    int slot = AddBlock(p, key);
    if (slot < 0) {
      sub.sessions--;
      return slot;
    }
    port = PickPort(p, key, softwire_index, uint32_t(slot));
    if (port == 0) {
      sub.sessions--;
      return Drop(AFTR_C_DROP_PORTS_EXHAUSTED);
    }
  }
  if (port < 0) {
    sub.sessions--;
    EmitSimple(p, AFTR_EV_SESSION_TABLE_FULL, key);
    return Drop(AFTR_C_DROP_SESSION_TABLE_FULL);
  }
  SessionInKey in_key{sub.public_addr, uint16_t(port), key.proto};
  if (state_.sessions_out.size() >= config_.max_sessions_out) {
    state_.sessions_in.erase(in_key);
    sub.sessions--;
    EmitSimple(p, AFTR_EV_SESSION_TABLE_FULL, key);
    return Drop(AFTR_C_DROP_SESSION_TABLE_FULL);
  }
  SessionOut out;
  out.public_addr = sub.public_addr;
  out.public_port = uint16_t(port);
  out.tcp_flags = tcp_flags;
  state_.sessions_out[key] = out;
  p.Count(AFTR_C_SESSION_CREATED);
  Event e;
  e.type = AFTR_EV_SESSION_CREATE;
  e.b4 = key.b4;
  e.proto = key.proto;
  e.inner_addr = key.inner_addr;
  e.inner_port = key.inner_port;
  e.public_addr = sub.public_addr;
  e.public_port = uint16_t(port);
  p.result.events.push_back(e);
  return 0;
}

int Model::DeleteSession(const SessionOutKey& key) {
  auto out = state_.sessions_out.find(key);
  if (out == state_.sessions_out.end()) return -ENOENT;
  SessionInKey in_key{out->second.public_addr, out->second.public_port, key.proto};
  auto in = state_.sessions_in.find(in_key);
  // The Internet-side entry goes only if it is this session's twin.
  if (in != state_.sessions_in.end() && in->second.b4 == key.b4 &&
      in->second.inner_addr == key.inner_addr && in->second.inner_port == key.inner_port)
    state_.sessions_in.erase(in);
  state_.sessions_out.erase(out);
  auto sub = state_.subscribers.find(key.b4);
  if (sub != state_.subscribers.end() && sub->second.sessions > 0) sub->second.sessions--;
  return 1;
}

}  // namespace aftr::model
