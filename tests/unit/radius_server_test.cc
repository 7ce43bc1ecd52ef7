// The RADIUS accounting server's decisions, one datagram at a time: who is answered (known
// client, right secret, well formed, stored), what is dropped and counted, retransmissions
// answered from the cache without a second record, and what reaches the history.
#include "control/subscribers/radius_server.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace aftr::subscribers {
namespace {

using Bytes = std::vector<uint8_t>;
using C = RadiusServer::Counter;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

Ipv6Prefix P(const char* text) { return *ParseIpv6Prefix(text); }
Ipv6Address A(const char* text) { return *ParseIpv6(text); }
// IPv4 sources as a dual-stack socket reports them.
Ipv6Address Mapped(const char* v4) { return A((std::string("::ffff:") + v4).c_str()); }

struct TempDb {
  std::string path;
  TempDb() {
    static int n = 0;
    path = (std::filesystem::temp_directory_path() /
            ("aftr-radius-" + std::to_string(getpid()) + "-" + std::to_string(++n) + ".sqlite3"))
               .string();
  }
  ~TempDb() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

Attribute Text(uint8_t type, const std::string& s) { return Attribute{type, Bytes(s.begin(), s.end())}; }
Attribute Int(uint8_t type, uint32_t v) {
  return Attribute{type, {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}};
}
Attribute Prefix(uint8_t type, const char* p) { return Attribute{type, EncodeIpv6PrefixValue(P(p))}; }

// An Accounting-Request signed with `secret` (RFC 2866 section 3; the signing itself is
// checked against golden bytes in radius_message_test.cc).
Bytes Signed(uint8_t identifier, std::vector<Attribute> attributes, const std::string& secret,
             uint8_t code = kAccountingRequest) {
  Packet p;
  p.code = code;
  p.identifier = identifier;
  p.attributes = std::move(attributes);
  Bytes out = EncodePacket(p);
  const Authenticator auth = AccountingRequestAuthenticator(out, secret);
  std::copy(auth.begin(), auth.end(), out.begin() + 4);
  return out;
}

std::vector<Attribute> StartOf(const std::string& user, const std::string& session, uint32_t when,
                               uint32_t status = 1) {
  return {Int(kAcctStatusType, status),       Text(kUserName, user),
          Text(kAcctSessionId, session),      Text(kNasIdentifier, "bras1"),
          Text(kNasPortId, "ge-0/0/1.100"),   Prefix(kFramedIpv6Prefix, "2001:db8:a::/64"),
          Prefix(kDelegatedIpv6Prefix, "2001:db8:b::/56"), Int(kEventTimestamp, when)};
}

struct Fixture {
  TempDb db;
  std::unique_ptr<SubscriberHistory> history;
  absl::Time now = kT0 + absl::Seconds(1);
  std::unique_ptr<RadiusServer> server;
  Fixture() {
    auto h = SubscriberHistory::Open(db.path, absl::Hours(24));
    REQUIRE(h.ok());
    history = std::move(*h);
    std::vector<RadiusClient> clients = {
        {P("::ffff:192.0.2.0/120"), "lan-secret"},    // 192.0.2.0/24
        {P("::ffff:192.0.2.7/128"), "bras7-secret"},  // a more specific one
        {P("2001:db8:ffff::/48"), "v6-secret"},
    };
    server = std::make_unique<RadiusServer>(clients, history.get(), [this] { return now; });
  }
  uint64_t Counter(C c) const { return server->counters()[c]; }
  std::vector<std::string> Users(const char* b4, absl::Time at) const {
    auto found = history->Lookup(P(b4), at);
    REQUIRE(found.ok());
    std::vector<std::string> out;
    for (const auto& b : *found) out.push_back(b.user_name);
    return out;
  }
};

TEST_CASE("RADIUS server answers a valid Start after recording it", "[radius_server]") {
  Fixture f;
  const Bytes req = Signed(9, StartOf("alice", "s1", 1700000000), "lan-secret");
  const Bytes reply = f.server->Handle(req, Mapped("192.0.2.1"), 40000);
  REQUIRE(reply.size() == 20);
  CHECK(reply[0] == kAccountingResponse);
  CHECK(reply[1] == 9);
  // Response Authenticator: MD5(5, id, length, request authenticator, secret).
  Bytes signed_part = {5, 9, 0, 20};
  signed_part.insert(signed_part.end(), req.begin() + 4, req.begin() + 20);
  const std::string secret = "lan-secret";
  signed_part.insert(signed_part.end(), secret.begin(), secret.end());
  const Authenticator want = Md5(signed_part);
  CHECK(Bytes(reply.begin() + 4, reply.end()) == Bytes(want.begin(), want.end()));
  CHECK(f.Counter(C::kStarts) == 1);
  CHECK(f.Counter(C::kResponses) == 1);
  auto found = f.history->Lookup(P("2001:db8:b:3::1/128"), kT0);
  REQUIRE(found.ok());
  REQUIRE(found->size() == 1);
  CHECK((*found)[0].user_name == "alice");
  CHECK((*found)[0].nas == "bras1");
  CHECK((*found)[0].nas_port_id == "ge-0/0/1.100");
  CHECK((*found)[0].start == kT0);  // the Event-Timestamp, not the receive time
  CHECK(f.server->CounterMap().at("radius_open_sessions") == 1);
}

TEST_CASE("RADIUS server drops unknown sources and wrong secrets unanswered", "[radius_server]") {
  Fixture f;
  CHECK(f.server->Handle(Signed(1, StartOf("a", "s1", 1700000000), "lan-secret"), Mapped("198.51.100.1"), 1)
            .empty());
  CHECK(f.Counter(C::kDroppedUnknownClient) == 1);
  CHECK(f.server->Handle(Signed(2, StartOf("a", "s1", 1700000000), "wrong"), Mapped("192.0.2.1"), 1).empty());
  // 192.0.2.7 has its own secret: the /24's is wrong for it.
  CHECK(f.server->Handle(Signed(3, StartOf("a", "s1", 1700000000), "lan-secret"), Mapped("192.0.2.7"), 1)
            .empty());
  CHECK(f.Counter(C::kDroppedBadAuthenticator) == 2);
  CHECK(f.server->Handle(Signed(4, StartOf("a", "s1", 1700000000), "bras7-secret"), Mapped("192.0.2.7"), 1)
            .size() == 20);
  CHECK(f.server->Handle(Signed(5, StartOf("b", "s2", 1700000000), "v6-secret"), A("2001:db8:ffff::9"), 1)
            .size() == 20);
  CHECK(f.Counter(C::kStarts) == 2);
  CHECK(f.Counter(C::kRequests) == 5);
}

TEST_CASE("RADIUS server drops malformed and non-accounting packets", "[radius_server]") {
  Fixture f;
  const Ipv6Address src = Mapped("192.0.2.1");
  Bytes bad_length = Signed(1, StartOf("a", "s1", 1700000000), "lan-secret");
  bad_length[3] += 4;  // Length past the datagram
  CHECK(f.server->Handle(bad_length, src, 1).empty());
  CHECK(f.server->Handle(Bytes(5, 0), src, 1).empty());
  // Signed, but the prefix length is 129.
  std::vector<Attribute> bad_prefix = StartOf("a", "s1", 1700000000);
  bad_prefix.push_back(Attribute{kFramedIpv6Prefix, {0, 129}});
  CHECK(f.server->Handle(Signed(2, bad_prefix, "lan-secret"), src, 1).empty());
  // Signed, but without Acct-Status-Type / Acct-Session-Id.
  CHECK(f.server->Handle(Signed(3, {Text(kAcctSessionId, "x")}, "lan-secret"), src, 1).empty());
  CHECK(f.server->Handle(Signed(4, {Int(kAcctStatusType, 1)}, "lan-secret"), src, 1).empty());
  CHECK(f.Counter(C::kDroppedMalformed) == 5);
  // An Access-Request (code 1) is not ours.
  CHECK(f.server->Handle(Signed(5, StartOf("a", "s1", 1700000000), "lan-secret", 1), src, 1).empty());
  CHECK(f.Counter(C::kDroppedNotAccounting) == 1);
  CHECK(f.Counter(C::kResponses) == 0);
  CHECK(f.history->OpenSessionCount() == 0);
  // And it still serves.
  CHECK(f.server->Handle(Signed(6, StartOf("a", "s1", 1700000000), "lan-secret"), src, 1).size() == 20);
}

TEST_CASE("RADIUS server answers a retransmission from the cache without recording twice", "[radius_server]") {
  Fixture f;
  const Ipv6Address src = Mapped("192.0.2.1");
  const Bytes start = Signed(7, StartOf("alice", "s1", 1700000000), "lan-secret");
  const Bytes first = f.server->Handle(start, src, 1812);
  REQUIRE(first.size() == 20);
  // The Stop comes; then the Start is retransmitted (its reply was lost): it must not reopen.
  const Bytes stop = Signed(8, StartOf("alice", "s1", 1700000060, 2), "lan-secret");
  REQUIRE(f.server->Handle(stop, src, 1812).size() == 20);
  f.now += absl::Seconds(2);
  CHECK(f.server->Handle(start, src, 1812) == first);
  CHECK(f.Counter(C::kDuplicates) == 1);
  CHECK(f.Counter(C::kStarts) == 1);
  CHECK(f.history->OpenSessionCount() == 0);
  // Same identifier from another port: another request.
  CHECK(f.server->Handle(start, src, 1813).size() == 20);
  CHECK(f.Counter(C::kStarts) == 2);
  // After the window, the same bytes are a new request again.
  f.now += kDuplicateWindow + absl::Seconds(1);
  CHECK(f.server->Handle(stop, src, 1812).size() == 20);
  CHECK(f.Counter(C::kStops) == 2);
  CHECK(f.Counter(C::kDuplicates) == 1);
}

TEST_CASE("RADIUS server Interim Stop and Accounting-On reach the history", "[radius_server]") {
  Fixture f;
  const Ipv6Address src = Mapped("192.0.2.1");
  REQUIRE(f.server->Handle(Signed(1, StartOf("alice", "s1", 1700000000), "lan-secret"), src, 1).size() == 20);
  REQUIRE(f.server->Handle(Signed(2, StartOf("bob", "s2", 1700000000), "lan-secret"), src, 1).size() == 20);
  // bob's Interim moves him to another /56.
  std::vector<Attribute> interim = {Int(kAcctStatusType, 3), Text(kUserName, "bob"),
                                    Text(kAcctSessionId, "s2"), Text(kNasIdentifier, "bras1"),
                                    Text(kNasPortId, "ge-0/0/1.100"),
                                    Prefix(kDelegatedIpv6Prefix, "2001:db8:c::/56"),
                                    Int(kEventTimestamp, 1700000100)};
  REQUIRE(f.server->Handle(Signed(3, interim, "lan-secret"), src, 1).size() == 20);
  CHECK(f.Counter(C::kInterims) == 1);
  CHECK(f.Users("2001:db8:c::1/128", kT0 + absl::Seconds(100)) == std::vector<std::string>{"bob"});
  CHECK(f.Users("2001:db8:c::1/128", kT0 + absl::Seconds(99)).empty());
  // Accounting-On from bras1 (no session id needed) closes alice and bob.
  REQUIRE(f.server->Handle(Signed(4, {Int(kAcctStatusType, 7), Text(kNasIdentifier, "bras1"),
                                      Int(kEventTimestamp, 1700000200)},
                                  "lan-secret"),
                           src, 1)
              .size() == 20);
  CHECK(f.Counter(C::kAccountingOnOff) == 1);
  CHECK(f.history->OpenSessionCount() == 0);
  CHECK(f.Users("2001:db8:a::1/128", kT0 + absl::Seconds(199)) == std::vector<std::string>{"alice"});
  CHECK(f.Users("2001:db8:a::1/128", kT0 + absl::Seconds(200)).empty());
  // Tunnel-Start (9) is acknowledged, not recorded.
  CHECK(f.server->Handle(Signed(5, {Int(kAcctStatusType, 9)}, "lan-secret"), src, 1).size() == 20);
  CHECK(f.Counter(C::kIgnoredStatusTypes) == 1);
}

// Status-Server (RFC 5997), identifier 0x33, Request Authenticator 10..1f (as sent, not
// zeroed), Message-Authenticator and the Accounting-Response for secret "s3cret", computed
// by a hashlib one-off.
const Bytes kStatusServer = {0x0c, 0x33, 0x00, 0x26, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
                             0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x50, 0x12, 0x5d, 0x0f, 0x14, 0x59,
                             0x00, 0x8e, 0xd1, 0x69, 0xdc, 0xe3, 0xb0, 0xe0, 0x58, 0x58, 0x3d, 0x52};
const Bytes kStatusServerResponse = {0x05, 0x33, 0x00, 0x14, 0x4e, 0xb8, 0x95, 0xbb, 0x85, 0x96,
                                     0xda, 0xb5, 0xe6, 0xdf, 0x40, 0x54, 0xcc, 0x74, 0x8f, 0xbc};

TEST_CASE("RADIUS server answers Status-Server with a valid Message-Authenticator only", "[radius_server]") {
  TempDb db;
  auto h = SubscriberHistory::Open(db.path, absl::Hours(1));
  REQUIRE(h.ok());
  RadiusServer server({{P("::ffff:192.0.2.0/120"), "s3cret"}, {P("2001:db8::/32"), "other"}}, h->get());
  CHECK(server.Handle(kStatusServer, Mapped("192.0.2.9"), 1) == kStatusServerResponse);
  CHECK(server.Handle(kStatusServer, A("2001:db8::9"), 1).empty());  // another secret
  Bytes no_ma(kStatusServer.begin(), kStatusServer.begin() + 20);
  no_ma[3] = 20;
  CHECK(server.Handle(no_ma, Mapped("192.0.2.9"), 1).empty());  // it must carry one
  CHECK(server.counters()[C::kStatusServerAnswered] == 1);
  CHECK(server.counters()[C::kDroppedBadAuthenticator] == 2);
  CHECK((*h)->OpenSessionCount() == 0);
}

TEST_CASE("RADIUS NAS name falls back from NAS-Identifier to NAS-IP to the source", "[radius_server]") {
  AccountingRequest r;
  r.status_type = 1;
  r.acct_session_id = "s";
  r.nas_ipv6 = A("2001:db8::7");
  auto e = EventOf(r, Mapped("192.0.2.1"), kT0);
  REQUIRE(e.ok());
  CHECK((*e)->nas == "2001:db8::7");
  r.nas_ip = Ipv4Address{0xc0000205};
  CHECK((*EventOf(r, Mapped("192.0.2.1"), kT0))->nas == "192.0.2.5");
  r.nas_identifier = "bras1";
  CHECK((*EventOf(r, Mapped("192.0.2.1"), kT0))->nas == "bras1");
  AccountingRequest bare;
  bare.status_type = 2;
  bare.acct_session_id = "s";
  auto b = EventOf(bare, Mapped("192.0.2.1"), kT0 + absl::Seconds(5));
  CHECK((*b)->nas == "192.0.2.1");
  CHECK((*b)->time == kT0 + absl::Seconds(5));  // no Event-Timestamp: the receive time
  bare.framed_addresses.push_back(A("2001:db8:a::2"));
  bare.framed_prefixes.push_back(P("2001:db8:a::/64"));
  CHECK((*EventOf(bare, A("2001:db8::1"), kT0))->prefixes ==
        std::vector<Ipv6Prefix>{P("2001:db8:a::/64"), P("2001:db8:a::2/128")});
}

TEST_CASE("RADIUS clients load secrets from files", "[radius_server]") {
  TempDb secret_file;
  {
    FILE* f = std::fopen(secret_file.path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs("  from-file \nsecond line\n", f);
    std::fclose(f);
  }
  aftr::config::v1::Radius config;
  auto* c = config.add_clients();
  c->set_source("192.0.2.0/24");
  c->set_secret_file(secret_file.path);
  c = config.add_clients();
  c->set_source("2001:db8::1");
  c->set_secret("inline");
  auto clients = LoadRadiusClients(config);
  REQUIRE(clients.ok());
  REQUIRE(clients->size() == 2);
  CHECK((*clients)[0].source == P("::ffff:192.0.2.0/120"));
  CHECK((*clients)[0].secret == "from-file");
  CHECK((*clients)[1].source == P("2001:db8::1/128"));
  CHECK((*clients)[1].secret == "inline");
  config.mutable_clients(0)->set_secret_file("/nonexistent/aftr-secret");
  CHECK_FALSE(LoadRadiusClients(config).ok());
}

}  // namespace
}  // namespace aftr::subscribers
