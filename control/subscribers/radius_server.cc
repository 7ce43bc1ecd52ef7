// The RADIUS accounting server. See radius_server.h.
#include "control/subscribers/radius_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/common/socket_address.h"

namespace aftr::subscribers {
namespace {

constexpr size_t kMaxRecentResponses = 1 << 16;  // bounds the duplicate cache under a flood
constexpr absl::Duration kPruneInterval = absl::Hours(1);

Ipv6Address V4Mapped(Ipv4Address a) {
  Ipv6Address out;
  out.bytes[10] = out.bytes[11] = 0xff;
  out.bytes[12] = static_cast<uint8_t>(a.host_order >> 24);
  out.bytes[13] = static_cast<uint8_t>(a.host_order >> 16);
  out.bytes[14] = static_cast<uint8_t>(a.host_order >> 8);
  out.bytes[15] = static_cast<uint8_t>(a.host_order);
  return out;
}

bool IsV4Mapped(const Ipv6Address& a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.bytes.data(), kPrefix, 12) == 0;
}

std::string SourceText(const Ipv6Address& a) {
  if (!IsV4Mapped(a)) return a.ToString();
  return Ipv4Address{static_cast<uint32_t>(a.bytes[12]) << 24 | static_cast<uint32_t>(a.bytes[13]) << 16 |
                     static_cast<uint32_t>(a.bytes[14]) << 8 | a.bytes[15]}
      .ToString();
}

absl::StatusOr<Ipv6Prefix> SourcePrefix(const std::string& text) {
  if (absl::StatusOr<Ipv4Prefix> p = ParseIpv4Prefix(text); p.ok()) {
    return Ipv6Prefix{V4Mapped(p->addr), 96 + p->length};
  }
  if (absl::StatusOr<Ipv4Address> a = ParseIpv4(text); a.ok()) return Ipv6Prefix{V4Mapped(*a), 128};
  if (absl::StatusOr<Ipv6Prefix> p = ParseIpv6Prefix(text); p.ok()) return *p;
  if (absl::StatusOr<Ipv6Address> a = ParseIpv6(text); a.ok()) return Ipv6Prefix{*a, 128};
  return absl::InvalidArgumentError(absl::StrCat("radius client \"", text, "\" is not an address or prefix"));
}

}  // namespace

absl::StatusOr<std::vector<RadiusClient>> LoadRadiusClients(const aftr::config::v1::Radius& config) {
  std::vector<RadiusClient> out;
  for (const auto& c : config.clients()) {
    absl::StatusOr<Ipv6Prefix> source = SourcePrefix(c.source());
    if (!source.ok()) return source.status();
    RadiusClient client{*source, c.secret()};
    if (!c.secret_file().empty()) {
      std::ifstream in(c.secret_file());
      std::string line;
      if (!in || !std::getline(in, line)) {
        return absl::FailedPreconditionError(
            absl::StrCat("radius client ", c.source(), ": cannot read secret_file ", c.secret_file()));
      }
      client.secret = std::string(absl::StripAsciiWhitespace(line));
    }
    if (client.secret.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("radius client ", c.source(), ": empty secret"));
    }
    out.push_back(std::move(client));
  }
  return out;
}

absl::StatusOr<std::optional<AccountingEvent>> EventOf(const AccountingRequest& r,
                                                       const Ipv6Address& source, absl::Time received) {
  using Kind = AccountingEvent::Kind;
  if (!r.status_type) return absl::InvalidArgumentError("no Acct-Status-Type");
  AccountingEvent e;
  switch (static_cast<AcctStatusType>(*r.status_type)) {
    case AcctStatusType::kStart:
      e.kind = Kind::kStart;
      break;
    case AcctStatusType::kStop:
      e.kind = Kind::kStop;
      break;
    case AcctStatusType::kInterimUpdate:
      e.kind = Kind::kInterimUpdate;
      break;
    case AcctStatusType::kAccountingOn:
    case AcctStatusType::kAccountingOff:
      e.kind = Kind::kAccountingOnOff;
      break;
    default:
      return std::optional<AccountingEvent>();
  }
  if (e.kind != Kind::kAccountingOnOff && r.acct_session_id.empty()) {
    return absl::InvalidArgumentError("no Acct-Session-Id");
  }
  // The NAS's own name, so that its Accounting-On finds the sessions of its Starts whichever
  // address it sent them from.
  e.nas = !r.nas_identifier.empty() ? r.nas_identifier
          : r.nas_ip                ? r.nas_ip->ToString()
          : r.nas_ipv6              ? r.nas_ipv6->ToString()
                                    : SourceText(source);
  e.acct_session_id = r.acct_session_id;
  e.user_name = r.user_name;
  e.nas_port_id = r.nas_port_id;
  e.prefixes = PrefixesOf(r.framed_prefixes, r.delegated_prefixes, r.framed_addresses);
  e.time = r.event_timestamp ? absl::FromUnixSeconds(*r.event_timestamp) : received;
  if (r.acct_session_time) e.session_time = absl::Seconds(*r.acct_session_time);
  return std::optional<AccountingEvent>(std::move(e));
}

// ---- RadiusServer ----

const char* const RadiusServer::kCounterNames[kCounterCount] = {
    "radius_requests",
    "radius_responses",
    "radius_dropped_unknown_client",
    "radius_dropped_malformed",
    "radius_dropped_not_accounting_request",
    "radius_dropped_bad_authenticator",
    "radius_dropped_store_failed",
    "radius_duplicates",
    "radius_starts",
    "radius_stops",
    "radius_interims",
    "radius_accounting_on_off",
    "radius_ignored_status_types",
    "radius_status_server",
};

RadiusServer::RadiusServer(std::vector<RadiusClient> clients, SubscriberHistory* history,
                           std::function<absl::Time()> now)
    : clients_(std::move(clients)), history_(history), now_(std::move(now)) {}

const RadiusClient* RadiusServer::ClientOf(const Ipv6Address& source) const {
  const RadiusClient* best = nullptr;
  for (const RadiusClient& c : clients_) {
    if (Overlaps(c.source, Ipv6Prefix{source, 128}) && (!best || c.source.length > best->source.length)) {
      best = &c;
    }
  }
  return best;
}

void RadiusServer::ForgetOldResponses(absl::Time now) {
  while (!recent_order_.empty() &&
         (recent_order_.front().first + kDuplicateWindow < now || recent_order_.size() > kMaxRecentResponses)) {
    auto it = recent_.find(recent_order_.front().second);
    // The entry may have been replaced by a newer request with the same key.
    if (it != recent_.end() && it->second.received == recent_order_.front().first) recent_.erase(it);
    recent_order_.pop_front();
  }
}

std::vector<uint8_t> RadiusServer::Handle(std::span<const uint8_t> datagram, const Ipv6Address& source,
                                          uint16_t port) {
  Count(kRequests);
  const RadiusClient* client = ClientOf(source);
  if (client == nullptr) {
    Count(kDroppedUnknownClient);
    return {};
  }
  absl::StatusOr<Packet> packet = DecodePacket(datagram);
  if (!packet.ok()) {
    Count(kDroppedMalformed);
    return {};
  }
  const size_t length = static_cast<size_t>(datagram[2]) << 8 | datagram[3];
  const std::span<const uint8_t> signed_part = datagram.first(length);  // padding excluded
  if (packet->code == Code::kStatusServer) {
    // RFC 5997 section 3: authenticated by its Message-Authenticator alone, which it must
    // carry; answered on the accounting port with an Accounting-Response, recording nothing.
    if (!HasMessageAuthenticator(signed_part) || !VerifyMessageAuthenticator(signed_part, client->secret)) {
      Count(kDroppedBadAuthenticator);
      return {};
    }
    Count(kStatusServerAnswered);
    Count(kResponses);
    return AccountingResponse(packet->identifier, packet->authenticator, client->secret);
  }
  if (packet->code != kAccountingRequest) {
    Count(kDroppedNotAccounting);
    return {};
  }
  if (!VerifyAccountingRequest(signed_part, client->secret) ||
      !VerifyMessageAuthenticator(signed_part, client->secret)) {
    Count(kDroppedBadAuthenticator);
    return {};
  }

  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  ForgetOldResponses(now);
  const DuplicateKey key{source.bytes, static_cast<uint32_t>(port) << 8 | packet->identifier};
  if (auto it = recent_.find(key); it != recent_.end() &&
                                   it->second.request_authenticator == packet->authenticator &&
                                   now - it->second.received <= kDuplicateWindow) {
    Count(kDuplicates);
    Count(kResponses);
    return it->second.response;
  }
  absl::StatusOr<AccountingRequest> request = ParseAccountingRequest(*packet);
  if (!request.ok()) {
    Count(kDroppedMalformed);
    return {};
  }
  absl::StatusOr<std::optional<AccountingEvent>> event = EventOf(*request, source, now);
  if (!event.ok()) {
    Count(kDroppedMalformed);
    return {};
  }
  if (!event->has_value()) {
    Count(kIgnoredStatusTypes);
  } else {
    if (absl::Status s = history_->Record(**event); !s.ok()) {
      LogError("RADIUS: not acknowledged (the NAS will retransmit): %s", s.ToString());
      Count(kDroppedStoreFailed);
      return {};
    }
    switch ((*event)->kind) {
      case AccountingEvent::Kind::kStart:
        Count(kStarts);
        break;
      case AccountingEvent::Kind::kStop:
        Count(kStops);
        break;
      case AccountingEvent::Kind::kInterimUpdate:
        Count(kInterims);
        break;
      case AccountingEvent::Kind::kAccountingOnOff:
        Count(kAccountingOnOff);
        break;
    }
  }
  std::vector<uint8_t> response = AccountingResponse(packet->identifier, packet->authenticator, client->secret);
  recent_[key] = CachedResponse{packet->authenticator, response, now};
  recent_order_.emplace_back(now, key);
  Count(kResponses);
  return response;
}

std::array<uint64_t, RadiusServer::kCounterCount> RadiusServer::counters() const {
  std::array<uint64_t, kCounterCount> out;
  for (int i = 0; i < kCounterCount; ++i) out[i] = counters_[i].load(std::memory_order_relaxed);
  return out;
}

std::map<std::string, uint64_t> RadiusServer::CounterMap() const {
  std::map<std::string, uint64_t> out;
  const auto values = counters();
  for (int i = 0; i < kCounterCount; ++i) out[kCounterNames[i]] = values[i];
  out["radius_open_sessions"] = history_->OpenSessionCount();
  return out;
}

// ---- RadiusListener ----

absl::StatusOr<std::unique_ptr<RadiusListener>> RadiusListener::Start(
    const aftr::config::v1::Radius& config, RadiusServer* server, SubscriberHistory* history) {
  auto l = std::unique_ptr<RadiusListener>(new RadiusListener());
  l->server_ = server;
  l->history_ = history;
  for (const std::string& text : config.listen_addresses()) {
    absl::StatusOr<SocketAddress> addr = MakeSocketAddress(text, static_cast<uint16_t>(config.port()));
    if (!addr.ok()) return addr.status();
    int fd = socket(addr->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, "RADIUS socket");
    l->sockets_.push_back(fd);
    int zero = 0, one = 1;
    if (addr->family() == AF_INET6) {
      // "::" takes IPv4 too (sources then appear IPv4-mapped, as the clients are held).
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
      setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
    } else {
      setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    }
    if (bind(fd, addr->get(), addr->length) != 0) {
      return ErrnoToStatus(errno, absl::StrFormat("RADIUS: binding %s", addr->ToString()));
    }
  }
  l->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->stop_fd_ < 0) return ErrnoToStatus(errno, "RADIUS eventfd");
  l->thread_ = std::thread([p = l.get()] { p->Run(); });
  return l;
}

RadiusListener::~RadiusListener() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  for (int fd : sockets_) close(fd);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void RadiusListener::ServeSocket(int fd) {
  uint8_t buf[kMaxPacketSize];
  for (int i = 0; i < 256; ++i) {  // bounded batch, then the other sockets get their turn
    sockaddr_storage from = {};
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;  // EAGAIN: drained
    Ipv6Address source;
    uint16_t port = 0;
    if (from.ss_family == AF_INET6) {
      const auto* sa = reinterpret_cast<const sockaddr_in6*>(&from);
      std::memcpy(source.bytes.data(), &sa->sin6_addr, 16);
      port = ntohs(sa->sin6_port);
    } else if (from.ss_family == AF_INET) {
      const auto* sa = reinterpret_cast<const sockaddr_in*>(&from);
      source.bytes[10] = source.bytes[11] = 0xff;
      std::memcpy(&source.bytes[12], &sa->sin_addr, 4);
      port = ntohs(sa->sin_port);
    } else {
      continue;
    }
    // A datagram over 4096 octets arrives cut to 4096: only its Length field matters.
    std::vector<uint8_t> reply =
        server_->Handle(std::span<const uint8_t>(buf, static_cast<size_t>(n)), source, port);
    if (!reply.empty()) {
      (void)sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
}

void RadiusListener::Run() {
  std::vector<pollfd> fds;
  for (int fd : sockets_) fds.push_back({fd, POLLIN, 0});
  fds.push_back({stop_fd_, POLLIN, 0});
  absl::Time next_prune = absl::InfinitePast();
  for (;;) {
    const absl::Time now = absl::Now();
    if (now >= next_prune) {
      absl::StatusOr<int64_t> pruned = history_->Prune(now);
      if (!pruned.ok()) {
        LogWarning("RADIUS: pruning the history: %s", pruned.status().ToString());
      } else if (*pruned > 0) {
        LogInfo("RADIUS: pruned %d expired bindings from the history", *pruned);
      }
      next_prune = now + kPruneInterval;
    }
    int n = poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) {
      LogError("RADIUS: poll: %s", std::strerror(errno));
      return;
    }
    if (fds.back().revents & POLLIN) return;
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) ServeSocket(sockets_[i]);
    }
  }
}

}  // namespace aftr::subscribers
