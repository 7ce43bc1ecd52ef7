#include "control/api/filter.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aftr/v1/resources.pb.h"

namespace aftr::api {
namespace {

constexpr size_t kMaxFilterLength = 2048;
constexpr int kMaxTerms = 16;

absl::Status FilterError(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("filter: ", why));
}

std::string Shown(absl::string_view text) {
  std::string s(text.substr(0, 60));
  if (text.size() > 60) s += "...";
  return s;
}

// A tokenizer over the filter text: identifiers, '=', quoted strings, bare words.
class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  void SkipSpace() {
    while (pos_ < text_.size() && absl::ascii_isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ >= text_.size();
  }
  // A field name: letters, digits, '_' and '.'.
  absl::StatusOr<std::string> Field() {
    SkipSpace();
    size_t start = pos_;
    while (pos_ < text_.size() &&
           (absl::ascii_isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_' ||
            text_[pos_] == '.')) {
      ++pos_;
    }
    if (pos_ == start) return FilterError(absl::StrCat("expected a field name at offset ", start));
    return std::string(text_.substr(start, pos_ - start));
  }
  absl::Status Equals() {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '=') {
      ++pos_;
      return absl::OkStatus();
    }
    return FilterError(absl::StrCat("expected \"=\" at offset ", pos_, " (only = is supported)"));
  }
  // A double-quoted string (\" and \\ escapes) or a bare word up to whitespace.
  absl::StatusOr<std::string> Value() {
    SkipSpace();
    if (pos_ >= text_.size()) return FilterError("a value is missing at the end");
    std::string out;
    if (text_[pos_] == '"') {
      for (++pos_; pos_ < text_.size(); ++pos_) {
        char c = text_[pos_];
        if (c == '\\' && pos_ + 1 < text_.size()) {
          out.push_back(text_[++pos_]);
        } else if (c == '"') {
          ++pos_;
          return out;
        } else {
          out.push_back(c);
        }
      }
      return FilterError("unterminated quoted value");
    }
    size_t start = pos_;
    while (pos_ < text_.size() && !absl::ascii_isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  bool And() {
    SkipSpace();
    if (text_.substr(pos_, 3) == "AND" &&
        (pos_ + 3 == text_.size() || absl::ascii_isspace(static_cast<unsigned char>(text_[pos_ + 3])))) {
      pos_ += 3;
      return true;
    }
    return false;
  }
  size_t pos() const { return pos_; }

 private:
  absl::string_view text_;
  size_t pos_ = 0;
};

absl::StatusOr<Ipv6Prefix> ParseB4Value(absl::string_view field, absl::string_view value) {
  absl::string_view v = value;
  absl::ConsumePrefix(&v, "subscribers/");
  if (v.find('/') != absl::string_view::npos) {
    absl::StatusOr<Ipv6Prefix> p = ParseIpv6Prefix(v);
    if (p.ok()) return p;
    return FilterError(absl::StrCat(field, ": ", p.status().message()));
  }
  absl::StatusOr<Ipv6Address> a = ParseIpv6(v);
  if (!a.ok()) return FilterError(absl::StrCat(field, ": ", a.status().message()));
  return Ipv6Prefix{*a, 128};
}

absl::StatusOr<Ipv4Prefix> ParseV4Value(absl::string_view field, absl::string_view value) {
  if (value.find('/') != absl::string_view::npos) {
    absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(value);
    if (p.ok()) return p;
    return FilterError(absl::StrCat(field, ": ", p.status().message()));
  }
  absl::StatusOr<Ipv4Address> a = ParseIpv4(value);
  if (!a.ok()) return FilterError(absl::StrCat(field, ": ", a.status().message()));
  return Ipv4Prefix{*a, 32};
}

absl::StatusOr<uint16_t> ParsePortValue(absl::string_view field, absl::string_view value) {
  uint32_t port = 0;
  if (value.empty() || value.find_first_not_of("0123456789") != absl::string_view::npos ||
      value.size() > 5 || !absl::SimpleAtoi(value, &port) || port > 65535) {
    return FilterError(absl::StrCat(field, ": \"", Shown(value), "\" is not a port (0..65535)"));
  }
  return static_cast<uint16_t>(port);
}

template <typename T>
absl::Status SetOnce(std::optional<T>* slot, T value, absl::string_view field) {
  if (slot->has_value()) return FilterError(absl::StrCat(field, " is given twice"));
  *slot = std::move(value);
  return absl::OkStatus();
}

}  // namespace

bool PrefixContains(const Ipv6Prefix& prefix, const uint8_t addr[16]) {
  int full = prefix.length / 8, rest = prefix.length % 8;
  if (std::memcmp(prefix.addr.bytes.data(), addr, full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (prefix.addr.bytes[full] & mask) == (addr[full] & mask);
}

bool Filter::MatchB4(const uint8_t addr[16]) const { return !b4 || PrefixContains(*b4, addr); }

bool Filter::MatchInner(uint32_t addr_host, uint16_t port) const {
  return (!inner_addr || inner_addr->Contains(Ipv4Address{addr_host})) &&
         (!inner_port || *inner_port == port);
}

bool Filter::MatchPublic(uint32_t addr_host, uint16_t port) const {
  return (!public_addr || public_addr->Contains(Ipv4Address{addr_host})) &&
         (!public_port || *public_port == port);
}

absl::StatusOr<Filter> ParseFilter(absl::string_view text, uint32_t allowed) {
  Filter f;
  if (text.size() > kMaxFilterLength) {
    return FilterError(absl::StrCat("longer than ", kMaxFilterLength, " characters"));
  }
  Lexer lex(text);
  std::vector<std::string> canonical;
  for (int terms = 0; !lex.AtEnd(); ++terms) {
    if (terms > 0 && !lex.And()) {
      return FilterError(absl::StrCat("expected AND at offset ", lex.pos(),
                                      " (terms are joined by AND)"));
    }
    if (terms >= kMaxTerms) return FilterError(absl::StrCat("more than ", kMaxTerms, " terms"));
    absl::StatusOr<std::string> field = lex.Field();
    if (!field.ok()) return field.status();
    if (absl::Status s = lex.Equals(); !s.ok()) return s;
    absl::StatusOr<std::string> value = lex.Value();
    if (!value.ok()) return value.status();
    const std::string& name = *field;
    absl::Status s;
    if ((name == "b4_address" || name == "subscriber") && (allowed & kFilterB4)) {
      absl::StatusOr<Ipv6Prefix> p = ParseB4Value(name, *value);
      if (!p.ok()) return p.status();
      s = SetOnce(&f.b4, *p, "b4_address");
      canonical.push_back(absl::StrCat("b4=", p->ToString()));
    } else if (name == "inner_address" && (allowed & kFilterInnerAddr)) {
      absl::StatusOr<Ipv4Prefix> p = ParseV4Value(name, *value);
      if (!p.ok()) return p.status();
      s = SetOnce(&f.inner_addr, *p, name);
      canonical.push_back(absl::StrCat("inner=", p->ToString()));
    } else if (name == "inner_port" && (allowed & kFilterInnerPort)) {
      absl::StatusOr<uint16_t> p = ParsePortValue(name, *value);
      if (!p.ok()) return p.status();
      s = SetOnce(&f.inner_port, *p, name);
      canonical.push_back(absl::StrCat("inner_port=", *p));
    } else if (name == "public_address" && (allowed & kFilterPublicAddr)) {
      absl::StatusOr<Ipv4Prefix> p = ParseV4Value(name, *value);
      if (!p.ok()) return p.status();
      s = SetOnce(&f.public_addr, *p, name);
      canonical.push_back(absl::StrCat("public=", p->ToString()));
    } else if (name == "public_port" && (allowed & kFilterPublicPort)) {
      absl::StatusOr<uint16_t> p = ParsePortValue(name, *value);
      if (!p.ok()) return p.status();
      s = SetOnce(&f.public_port, *p, name);
      canonical.push_back(absl::StrCat("public_port=", *p));
    } else if (name == "protocol" && (allowed & kFilterProtocol)) {
      uint8_t proto;
      if (absl::EqualsIgnoreCase(*value, "tcp")) {
        proto = 6;
      } else if (absl::EqualsIgnoreCase(*value, "udp")) {
        proto = 17;
      } else if (absl::EqualsIgnoreCase(*value, "icmp")) {
        proto = 1;
      } else {
        return FilterError(absl::StrCat("protocol: \"", Shown(*value), "\" is not tcp, udp or icmp"));
      }
      s = SetOnce(&f.proto, proto, name);
      canonical.push_back(absl::StrCat("proto=", proto));
    } else if (name == "kind" && (allowed & kFilterKind)) {
      // Values as bpf::SessionKind: 0 dynamic, 1 static, 2 pcp.
      int kind;
      if (absl::EqualsIgnoreCase(*value, "dynamic")) {
        kind = 0;
      } else if (absl::EqualsIgnoreCase(*value, "static")) {
        kind = 1;
      } else if (absl::EqualsIgnoreCase(*value, "pcp")) {
        kind = 2;
      } else {
        return FilterError(
            absl::StrCat("kind: \"", Shown(*value), "\" is not dynamic, static or pcp"));
      }
      s = SetOnce(&f.kind, kind, name);
      canonical.push_back(absl::StrCat("kind=", kind));
    } else if (name == "type" && (allowed & kFilterEventType)) {
      aftr::v1::Event::Type type;
      if (!aftr::v1::Event::Type_Parse(absl::AsciiStrToUpper(*value), &type) ||
          type == aftr::v1::Event::TYPE_UNSPECIFIED) {
        return FilterError(absl::StrCat("type: \"", Shown(*value), "\" is not an event type"));
      }
      s = SetOnce(&f.event_type, static_cast<int>(type), name);
      canonical.push_back(absl::StrCat("type=", static_cast<int>(type)));
    } else {
      return FilterError(absl::StrCat("\"", Shown(name), "\" is not a field this method filters on"));
    }
    if (!s.ok()) return s;
  }
  std::sort(canonical.begin(), canonical.end());
  f.canonical = absl::StrJoin(canonical, " ");
  return f;
}

}  // namespace aftr::api
