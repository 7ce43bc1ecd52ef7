// Packet construction from scratch (full checksums, never incremental, so that they are an
// independent reference for the XDP program's incremental updates) and output decoding.
#include "packet_builder.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace bpftest {
namespace {

void Put8(Bytes& b, uint8_t v) { b.push_back(v); }
void Put16(Bytes& b, uint16_t v) {
  b.push_back(v >> 8);
  b.push_back(v & 0xff);
}
void Put32(Bytes& b, uint32_t v) {
  Put16(b, v >> 16);
  Put16(b, v & 0xffff);
}
void PutBe32(Bytes& b, uint32_t be) {  // already in network order
  const auto* p = reinterpret_cast<const uint8_t*>(&be);
  b.insert(b.end(), p, p + 4);
}
void Append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
void Set16(Bytes& b, size_t off, uint16_t v) {
  b[off] = v >> 8;
  b[off + 1] = v & 0xff;
}
uint16_t Get16(const Bytes& b, size_t off) { return (b[off] << 8) | b[off + 1]; }
uint32_t Get32(const Bytes& b, size_t off) {
  return (uint32_t{b[off]} << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
}
uint32_t GetBe32(const Bytes& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, &b[off], 4);
  return v;
}

uint32_t Ipv6PseudoSum(const Ip6& src, const Ip6& dst, uint8_t next, uint32_t len) {
  Bytes p(src.begin(), src.end());
  p.insert(p.end(), dst.begin(), dst.end());
  Put32(p, len);
  Put32(p, next);
  return ChecksumAdd(p.data(), p.size());
}

// Options padded to a multiple of `unit` bytes as RFC 8200 wants for an options header:
// the 2-byte header plus options, Pad1 for one byte, PadN for more.
Bytes PadIpv6Options(Bytes opts) {
  size_t total = 2 + opts.size();
  size_t pad = (8 - total % 8) % 8;
  if (pad == 1) {
    opts.push_back(0);
  } else if (pad >= 2) {
    opts.push_back(1);
    opts.push_back(pad - 2);
    opts.insert(opts.end(), pad - 2, 0);
  }
  return opts;
}

}  // namespace

Ip6 Ip6Addr(const char* text) {
  Ip6 a{};
  if (inet_pton(AF_INET6, text, a.data()) != 1) throw std::invalid_argument(text);
  return a;
}

uint32_t Ip4Addr(const char* text) {
  in_addr a{};
  if (inet_pton(AF_INET, text, &a) != 1) throw std::invalid_argument(text);
  return a.s_addr;
}

std::string Ip4String(uint32_t be_addr) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{be_addr};
  return inet_ntop(AF_INET, &a, buf, sizeof(buf));
}

std::string Ip6String(const Ip6& addr) {
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
}

std::string Hex(const Bytes& bytes) {
  std::string s;
  char buf[8];
  for (size_t i = 0; i < bytes.size(); i++) {
    if (i % 16 == 0) {
      std::snprintf(buf, sizeof(buf), "\n%04zx:", i);
      s += buf;
    }
    std::snprintf(buf, sizeof(buf), " %02x", bytes[i]);
    s += buf;
  }
  return s;
}

uint32_t ChecksumAdd(const uint8_t* data, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (len % 2) sum += data[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

uint32_t Ipv4PseudoSum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len) {
  Bytes p;
  PutBe32(p, src);
  PutBe32(p, dst);
  Put8(p, 0);
  Put8(p, proto);
  Put16(p, len);
  return ChecksumAdd(p.data(), p.size());
}

uint16_t ChecksumFinish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

PacketBuilder& PacketBuilder::Eth(const Mac& dst, const Mac& src) {
  eth_dst_ = dst;
  eth_src_ = src;
  return *this;
}
PacketBuilder& PacketBuilder::EtherType(uint16_t type) {
  ether_type_ = type;
  return *this;
}
PacketBuilder& PacketBuilder::Raw(Bytes l3) {
  raw_l3_ = std::move(l3);
  return *this;
}
PacketBuilder& PacketBuilder::Ipv6(const Ip6& src, const Ip6& dst) {
  has_ipv6_ = true;
  ip6_src_ = src;
  ip6_dst_ = dst;
  return *this;
}
PacketBuilder& PacketBuilder::HopLimit(uint8_t hop_limit) {
  hop_limit_ = hop_limit;
  return *this;
}
PacketBuilder& PacketBuilder::DstOpts(Bytes options) {
  dst_opts_ = PadIpv6Options(std::move(options));
  return *this;
}
PacketBuilder& PacketBuilder::EncapLimit(uint8_t limit) { return DstOpts({4, 1, limit}); }
PacketBuilder& PacketBuilder::Ipv6Fragment(uint16_t offset_flags, uint32_t id) {
  frag6_ = {offset_flags, id};
  return *this;
}
PacketBuilder& PacketBuilder::RawIpv6Payload(uint8_t next_header, Bytes payload) {
  ip6_payload_ = {next_header, std::move(payload)};
  return *this;
}
PacketBuilder& PacketBuilder::Ipv4(uint32_t src, uint32_t dst) {
  has_ipv4_ = true;
  ip4_src_ = src;
  ip4_dst_ = dst;
  return *this;
}
PacketBuilder& PacketBuilder::Ttl(uint8_t ttl) {
  ttl_ = ttl;
  return *this;
}
PacketBuilder& PacketBuilder::Tos(uint8_t tos) {
  tos_ = tos;
  return *this;
}
PacketBuilder& PacketBuilder::Id(uint16_t id) {
  id_ = id;
  return *this;
}
PacketBuilder& PacketBuilder::FragOff(uint16_t flags_offset) {
  frag_off_ = flags_offset;
  return *this;
}
PacketBuilder& PacketBuilder::Ipv4Options(Bytes options) {
  if (options.size() % 4 || options.size() > 40) throw std::invalid_argument("ipv4 options");
  ip4_options_ = std::move(options);
  return *this;
}
PacketBuilder& PacketBuilder::Udp(uint16_t sport, uint16_t dport) {
  l4_ = L4::kUdp;
  sport_ = sport;
  dport_ = dport;
  return *this;
}
PacketBuilder& PacketBuilder::UdpZeroChecksum() {
  udp_zero_checksum_ = true;
  return *this;
}
PacketBuilder& PacketBuilder::Tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  l4_ = L4::kTcp;
  sport_ = sport;
  dport_ = dport;
  tcp_flags_ = flags;
  return *this;
}
PacketBuilder& PacketBuilder::TcpSeq(uint32_t seq, uint32_t ack) {
  tcp_seq_ = seq;
  tcp_ack_ = ack;
  return *this;
}
PacketBuilder& PacketBuilder::TcpMss(uint16_t mss) {
  tcp_options_.insert(tcp_options_.end(), {2, 4, uint8_t(mss >> 8), uint8_t(mss & 0xff)});
  return *this;
}
PacketBuilder& PacketBuilder::TcpOptions(Bytes options) {
  Append(tcp_options_, options);
  return *this;
}
PacketBuilder& PacketBuilder::Icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
  l4_ = L4::kIcmp;
  icmp_type_ = type;
  icmp_code_ = code;
  sport_ = id;
  dport_ = seq;
  return *this;
}
PacketBuilder& PacketBuilder::Ipv4Payload(uint8_t protocol, Bytes l4) {
  l4_ = L4::kRaw;
  raw_protocol_ = protocol;
  payload_ = std::move(l4);
  return *this;
}
PacketBuilder& PacketBuilder::Payload(Bytes payload) {
  payload_ = std::move(payload);
  return *this;
}
PacketBuilder& PacketBuilder::Payload(std::string_view payload) {
  return Payload(Bytes(payload.begin(), payload.end()));
}
PacketBuilder& PacketBuilder::Trailer(Bytes trailer) {
  trailer_ = std::move(trailer);
  return *this;
}

Bytes PacketBuilder::BuildL4(uint32_t src, uint32_t dst) const {
  Bytes l4;
  switch (l4_) {
    case L4::kNone:
      return payload_;
    case L4::kRaw:
      return payload_;
    case L4::kUdp: {
      uint16_t len = 8 + payload_.size();
      Put16(l4, sport_);
      Put16(l4, dport_);
      Put16(l4, len);
      Put16(l4, 0);
      Append(l4, payload_);
      if (!udp_zero_checksum_) {
        uint16_t c = ChecksumFinish(
            ChecksumAdd(l4.data(), l4.size(), Ipv4PseudoSum(src, dst, kProtoUdp, len)));
        Set16(l4, 6, c == 0 ? 0xffff : c);  // RFC 768: 0 means "none"
      }
      return l4;
    }
    case L4::kTcp: {
      Bytes opts = tcp_options_;
      while (opts.size() % 4) opts.push_back(0);  // EOL padding
      Put16(l4, sport_);
      Put16(l4, dport_);
      Put32(l4, tcp_seq_);
      Put32(l4, tcp_ack_);
      Put8(l4, uint8_t(((20 + opts.size()) / 4) << 4));
      Put8(l4, tcp_flags_);
      Put16(l4, 64240);  // window
      Put16(l4, 0);      // checksum
      Put16(l4, 0);      // urgent pointer
      Append(l4, opts);
      Append(l4, payload_);
      Set16(l4, 16,
            ChecksumFinish(ChecksumAdd(l4.data(), l4.size(),
                                       Ipv4PseudoSum(src, dst, kProtoTcp, l4.size()))));
      return l4;
    }
    case L4::kIcmp: {
      Put8(l4, icmp_type_);
      Put8(l4, icmp_code_);
      Put16(l4, 0);
      Put16(l4, sport_);
      Put16(l4, dport_);
      Append(l4, payload_);
      Set16(l4, 2, ChecksumFinish(ChecksumAdd(l4.data(), l4.size())));
      return l4;
    }
  }
  return l4;
}

Bytes PacketBuilder::BuildIpv4() const {
  Bytes l4 = BuildL4(ip4_src_, ip4_dst_);
  uint8_t proto = 0;
  switch (l4_) {
    case L4::kUdp: proto = kProtoUdp; break;
    case L4::kTcp: proto = kProtoTcp; break;
    case L4::kIcmp: proto = kProtoIcmp; break;
    case L4::kRaw: proto = raw_protocol_; break;
    case L4::kNone: proto = 255; break;
  }
  size_t hlen = 20 + ip4_options_.size();
  Bytes ip;
  Put8(ip, 0x40 | (hlen / 4));
  Put8(ip, tos_);
  Put16(ip, hlen + l4.size());
  Put16(ip, id_);
  Put16(ip, frag_off_);
  Put8(ip, ttl_);
  Put8(ip, proto);
  Put16(ip, 0);
  PutBe32(ip, ip4_src_);
  PutBe32(ip, ip4_dst_);
  Append(ip, ip4_options_);
  Set16(ip, 10, ChecksumFinish(ChecksumAdd(ip.data(), ip.size())));
  Append(ip, l4);
  return ip;
}

Bytes PacketBuilder::Build() const {
  Bytes frame(eth_dst_.begin(), eth_dst_.end());
  frame.insert(frame.end(), eth_src_.begin(), eth_src_.end());
  uint16_t type = has_ipv6_ ? kEtherTypeIpv6 : has_ipv4_ ? kEtherTypeIpv4 : 0;
  Put16(frame, ether_type_.value_or(type));

  if (!has_ipv6_) {
    Append(frame, has_ipv4_ ? BuildIpv4() : raw_l3_);
    Append(frame, trailer_);
    return frame;
  }

  uint8_t upper = kProtoIpip;
  Bytes body;
  if (has_ipv4_) {
    body = BuildIpv4();
  } else if (ip6_payload_) {
    upper = ip6_payload_->first;
    body = ip6_payload_->second;
    size_t check_off = upper == kProtoUdp ? 6 : upper == kProtoIcmpv6 ? 2 : 0;
    if (upper == kProtoUdp) Set16(body, 4, body.size());
    if (check_off && body.size() >= check_off + 2) {
      Set16(body, check_off, 0);
      Set16(body, check_off,
            ChecksumFinish(ChecksumAdd(body.data(), body.size(),
                                       Ipv6PseudoSum(ip6_src_, ip6_dst_, upper, body.size()))));
    }
  }
  // Extension headers, innermost first so that each names the one after it.
  Bytes ext;
  uint8_t next = upper;
  if (frag6_) {
    Bytes f;
    Put8(f, next);
    Put8(f, 0);
    Put16(f, frag6_->first);
    Put32(f, frag6_->second);
    next = kProtoIpv6Frag;
    ext = f;
  }
  if (dst_opts_) {
    Bytes d;
    Put8(d, next);
    Put8(d, uint8_t((2 + dst_opts_->size()) / 8 - 1));
    Append(d, *dst_opts_);
    next = kProtoDstOpts;
    Append(d, ext);
    ext = d;
  }
  Put32(frame, 0x60000000);
  Put16(frame, ext.size() + body.size());
  Put8(frame, next);
  Put8(frame, hop_limit_);
  frame.insert(frame.end(), ip6_src_.begin(), ip6_src_.end());
  frame.insert(frame.end(), ip6_dst_.begin(), ip6_dst_.end());
  Append(frame, ext);
  Append(frame, body);
  Append(frame, trailer_);
  return frame;
}

std::optional<Frame> ParseFrame(const Bytes& b) {
  Frame f;
  if (b.size() < 14) return std::nullopt;
  std::memcpy(f.eth_dst.data(), &b[0], 6);
  std::memcpy(f.eth_src.data(), &b[6], 6);
  f.ether_type = Get16(b, 12);
  size_t off = 14;
  if (f.ether_type == kEtherTypeIpv6) {
    if (b.size() < off + 40) return f;
    f.has_ipv6 = true;
    f.ip6_first_word = Get32(b, off);
    f.ip6_payload_len = Get16(b, off + 4);
    f.ip6_next_header = b[off + 6];
    f.ip6_hop_limit = b[off + 7];
    std::memcpy(f.ip6_src.data(), &b[off + 8], 16);
    std::memcpy(f.ip6_dst.data(), &b[off + 24], 16);
    off += 40;
    uint8_t next = f.ip6_next_header;
    if (next == kProtoDstOpts) {
      if (b.size() < off + 2) return f;
      next = b[off];
      off += (b[off + 1] + 1) * 8;
    }
    if (next != kProtoIpip) return f;
  } else if (f.ether_type != kEtherTypeIpv4) {
    return f;
  }
  if (b.size() < off + 20) return f;
  f.has_ipv4 = true;
  f.ipv4_offset = off;
  f.ihl = b[off] & 0x0f;
  f.tos = b[off + 1];
  f.tot_len = Get16(b, off + 2);
  f.id = Get16(b, off + 4);
  f.frag_off = Get16(b, off + 6);
  f.ttl = b[off + 8];
  f.protocol = b[off + 9];
  f.ip_check = Get16(b, off + 10);
  f.src = GetBe32(b, off + 12);
  f.dst = GetBe32(b, off + 16);
  off += f.ihl * 4;
  f.l4_offset = off;
  switch (f.protocol) {
    case kProtoUdp:
      if (b.size() < off + 8) return f;
      f.sport = Get16(b, off);
      f.dport = Get16(b, off + 2);
      f.l4_check = Get16(b, off + 6);
      break;
    case kProtoTcp: {
      if (b.size() < off + 20) return f;
      f.sport = Get16(b, off);
      f.dport = Get16(b, off + 2);
      f.tcp_flags = b[off + 13];
      f.l4_check = Get16(b, off + 16);
      size_t opt_end = off + (b[off + 12] >> 4) * 4;
      for (size_t p = off + 20; p < opt_end && p < b.size();) {
        if (b[p] == 0) break;
        if (b[p] == 1) {
          p++;
          continue;
        }
        if (p + 1 >= b.size() || b[p + 1] < 2) break;
        if (b[p] == 2 && b[p + 1] == 4 && p + 4 <= b.size()) f.tcp_mss = Get16(b, p + 2);
        p += b[p + 1];
      }
      break;
    }
    case kProtoIcmp:
      if (b.size() < off + 8) return f;
      f.icmp_type = b[off];
      f.icmp_code = b[off + 1];
      f.l4_check = Get16(b, off + 2);
      f.icmp_id = f.sport = f.dport = Get16(b, off + 4);
      f.icmp_seq = Get16(b, off + 6);
      break;
  }
  return f;
}

Bytes Ipv4Packet(const Bytes& frame) {
  std::optional<Frame> f = ParseFrame(frame);
  if (!f || !f->has_ipv4 || f->ipv4_offset + f->tot_len > frame.size()) return {};
  auto begin = frame.begin() + f->ipv4_offset;
  return Bytes(begin, begin + f->tot_len);
}

std::string ChecksumErrors(const Bytes& b) {
  std::optional<Frame> f = ParseFrame(b);
  if (!f || !f->has_ipv4) return "no IPv4 packet in frame";
  size_t ip = f->ipv4_offset;
  size_t hlen = f->ihl * 4;
  if (hlen < 20 || ip + f->tot_len > b.size() || f->tot_len < hlen) return "bad IPv4 lengths";
  std::string errors;
  char buf[96];
  if (ChecksumAdd(&b[ip], hlen) != 0xffff) {
    std::snprintf(buf, sizeof(buf), "ipv4 header checksum 0x%04x wrong; ", f->ip_check);
    errors += buf;
  }
  const uint8_t* l4 = &b[ip + hlen];
  size_t l4_len = f->tot_len - hlen;
  uint32_t sum = 0;
  const char* what = nullptr;
  switch (f->protocol) {
    case kProtoUdp:
      if (l4_len >= 8 && f->l4_check == 0) return errors;  // sent without checksum
      [[fallthrough]];
    case kProtoTcp:
      sum = ChecksumAdd(l4, l4_len, Ipv4PseudoSum(f->src, f->dst, f->protocol, l4_len));
      what = f->protocol == kProtoUdp ? "udp" : "tcp";
      break;
    case kProtoIcmp:
      sum = ChecksumAdd(l4, l4_len);
      what = "icmp";
      break;
    default:
      return errors;
  }
  if (sum != 0xffff) {
    std::snprintf(buf, sizeof(buf), "%s checksum 0x%04x wrong (sum 0x%04x); ", what,
                  f->l4_check, sum);
    errors += buf;
  }
  return errors;
}

}  // namespace bpftest
