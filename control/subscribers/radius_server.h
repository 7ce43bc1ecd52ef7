// The RADIUS accounting server (RFC 2866): the BRASes send it a copy of their accounting,
// and it keeps the subscriber identity history from it.
//
// A datagram is answered only when it comes from a configured client, is a well-formed
// Accounting-Request, carries that client's Request Authenticator (and Message-Authenticator,
// if any), and has been stored: RFC 2866 section 2 lets the NAS retransmit until it is
// answered, so nothing is acknowledged that is not in the history. Everything else is dropped
// unanswered and counted. A Status-Server (RFC 5997) with a valid Message-Authenticator is
// answered with an Accounting-Response (the NAS's liveness check). A retransmission (RFC 5080 section 2.2.2: same source address and
// port, Identifier and Request Authenticator within kDuplicateWindow) gets the cached
// response again and is not recorded twice.
//
// RadiusServer holds the logic (one datagram in, one reply out); RadiusListener owns the
// sockets and the thread. Both are thread-safe.
#ifndef AFTR_CONTROL_SUBSCRIBERS_RADIUS_SERVER_H_
#define AFTR_CONTROL_SUBSCRIBERS_RADIUS_SERVER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aftr/config/v1/config.pb.h"
#include "control/common/ip.h"
#include "control/subscribers/radius_message.h"
#include "control/subscribers/subscriber_history.h"

namespace aftr::subscribers {

inline constexpr absl::Duration kDuplicateWindow = absl::Seconds(5);

// A BRAS allowed to send accounting. IPv4 sources are held as IPv4-mapped IPv6 prefixes
// (::ffff:192.0.2.1/128), as a dual-stack socket reports them.
struct RadiusClient {
  Ipv6Prefix source;
  std::string secret;
};

// The configured clients with their secrets (secret_file: its first line, trimmed).
absl::StatusOr<std::vector<RadiusClient>> LoadRadiusClients(const aftr::config::v1::Radius& config);

// What the history stores for an accounting request from `source` received at `received`:
// nullopt for a status type it does not act on (Accounting-Request is still acknowledged).
// InvalidArgument when a required attribute is missing.
absl::StatusOr<std::optional<AccountingEvent>> EventOf(const AccountingRequest& request,
                                                       const Ipv6Address& source, absl::Time received);

class RadiusServer {
 public:
  enum Counter {
    kRequests,                 // datagrams received
    kResponses,                // Accounting-Responses sent (retransmissions included)
    kDroppedUnknownClient,
    kDroppedMalformed,         // framing or attribute values, or required attributes missing
    kDroppedNotAccounting,     // a code other than Accounting-Request and Status-Server
    kDroppedBadAuthenticator,  // Request Authenticator or Message-Authenticator
    kDroppedStoreFailed,       // the history could not store it (the NAS will retransmit)
    kDuplicates,
    kStarts,
    kStops,
    kInterims,
    kAccountingOnOff,
    kIgnoredStatusTypes,       // valid, acknowledged, not recorded (e.g. Tunnel-Start)
    kStatusServerAnswered,     // RFC 5997 Status-Server answered
    kCounterCount
  };
  static const char* const kCounterNames[kCounterCount];

  // `now` gives the receive time (injected for tests).
  RadiusServer(std::vector<RadiusClient> clients, SubscriberHistory* history,
               std::function<absl::Time()> now = absl::Now);

  // One datagram from [source]:port (IPv4 as IPv4-mapped): the reply, or empty for none.
  std::vector<uint8_t> Handle(std::span<const uint8_t> datagram, const Ipv6Address& source,
                              uint16_t port);

  std::array<uint64_t, kCounterCount> counters() const;
  // Counters by name ("radius_requests", ...) for the controller's counters.
  std::map<std::string, uint64_t> CounterMap() const;

 private:
  struct CachedResponse {
    Authenticator request_authenticator;
    std::vector<uint8_t> response;
    absl::Time received;
  };
  // (source address, port, identifier)
  using DuplicateKey = std::pair<std::array<uint8_t, 16>, uint32_t>;

  const RadiusClient* ClientOf(const Ipv6Address& source) const;
  void Count(Counter c) { counters_[c].fetch_add(1, std::memory_order_relaxed); }
  void ForgetOldResponses(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<RadiusClient> clients_;
  SubscriberHistory* const history_;
  const std::function<absl::Time()> now_;

  // One request at a time: a retransmission arriving while its original is being stored
  // must find the cached response, not be stored again.
  absl::Mutex mu_;
  absl::flat_hash_map<DuplicateKey, CachedResponse> recent_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<absl::Time, DuplicateKey>> recent_order_ ABSL_GUARDED_BY(mu_);

  std::array<std::atomic<uint64_t>, kCounterCount> counters_ = {};
};

// The sockets (one per listen address; "::" also takes IPv4) and the thread that serves
// them and prunes the history every hour.
class RadiusListener {
 public:
  static absl::StatusOr<std::unique_ptr<RadiusListener>> Start(const aftr::config::v1::Radius& config,
                                                               RadiusServer* server,
                                                               SubscriberHistory* history);
  ~RadiusListener();  // stops the thread, closes the sockets

 private:
  RadiusListener() = default;
  void Run();
  void ServeSocket(int fd);

  RadiusServer* server_ = nullptr;
  SubscriberHistory* history_ = nullptr;
  std::vector<int> sockets_;
  int stop_fd_ = -1;  // eventfd
  std::thread thread_;
};

}  // namespace aftr::subscribers

#endif  // AFTR_CONTROL_SUBSCRIBERS_RADIUS_SERVER_H_
