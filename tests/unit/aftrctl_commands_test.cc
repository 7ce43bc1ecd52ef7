// aftrctl end to end against an in-process fake AftrService on a Unix socket: what each
// command sends, what it prints (text and JSON), paging with --all, events with --count and
// --duration, health, and the exit status and stderr of failed calls.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "aftr/v1/aftr_service.grpc.pb.h"
#include "control/cli/commands.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace aftr::cli {
namespace {

namespace v1 = ::aftr::v1;
using grpc::ServerContext;
using grpc::Status;

// Serves canned data and records the requests it got.
class FakeAftrService final : public v1::AftrService::Service {
 public:
  FakeAftrService() {
    for (int i = 0; i < 5; ++i) {
      v1::Session* s = sessions_.Add();
      s->set_b4_address(i % 2 ? "2001:db8:b::2" : "2001:db8:a::2");
      s->set_name(absl::StrCat("subscribers/", s->b4_address(), "/sessions/udp-192.0.2.10-",
                               40000 + i));
      s->set_protocol(v1::UDP);
      s->set_inner_address("192.0.2.10");
      s->set_inner_port(40000 + i);
      s->set_public_address("198.51.100.3");
      s->set_public_port(1024 + i);
      s->set_kind(v1::Session::DYNAMIC);
    }
  }

  Status ListSessions(ServerContext*, const v1::ListSessionsRequest* req,
                      v1::ListSessionsResponse* resp) override {
    absl::MutexLock lock(&mu_);
    list_requests_.push_back(*req);
    if (repeat_token_) {
      resp->set_next_page_token("same");
      return Status::OK;
    }
    // Pages of 2 by default; the token is the next index.
    int size = req->page_size() > 0 ? req->page_size() : 2;
    int start = 0;
    if (!req->page_token().empty() && !absl::SimpleAtoi(req->page_token(), &start)) {
      return Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: not ours");
    }
    for (int i = start; i < sessions_.size() && i < start + size; ++i) {
      *resp->add_sessions() = sessions_[i];
    }
    if (start + size < sessions_.size()) resp->set_next_page_token(absl::StrCat(start + size));
    return Status::OK;
  }

  Status GetSession(ServerContext*, const v1::GetSessionRequest* req, v1::Session*) override {
    return Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("name: no session ", req->name()));
  }

  Status GetSubscriber(ServerContext*, const v1::GetSubscriberRequest* req,
                       v1::Subscriber* resp) override {
    resp->set_name(req->name());
    resp->set_b4_address("2001:db8:a::2");
    resp->set_public_address("198.51.100.3");
    resp->set_state(v1::Subscriber::ACTIVE);
    return Status::OK;
  }

  Status ReleasePortBlock(ServerContext*, const v1::ReleasePortBlockRequest* req,
                          v1::PortBlock* resp) override {
    absl::MutexLock lock(&mu_);
    names_.push_back(req->name());
    resp->set_name(req->name());
    resp->set_public_address("198.51.100.1");
    resp->set_first_port(1024);
    resp->set_last_port(1535);
    resp->set_block_size(512);
    resp->set_subscriber("subscribers/2001:db8:a::2");
    return Status::OK;
  }

  Status DrainPool(ServerContext*, const v1::DrainPoolRequest* req, v1::Pool* resp) override {
    absl::MutexLock lock(&mu_);
    names_.push_back(req->name());
    resp->set_name(req->name());
    resp->set_state(v1::Pool::DRAINING);
    return Status::OK;
  }

  Status CreateStaticMapping(ServerContext*, const v1::CreateStaticMappingRequest* req,
                             v1::StaticMapping* resp) override {
    absl::MutexLock lock(&mu_);
    created_mapping_ = req->static_mapping();
    *resp = req->static_mapping();
    resp->set_public_address("198.51.100.3");
    resp->set_name(absl::StrCat("staticMappings/udp-198.51.100.3-", resp->public_port()));
    return Status::OK;
  }

  Status DeleteStaticMapping(ServerContext*, const v1::DeleteStaticMappingRequest* req,
                             google::protobuf::Empty*) override {
    absl::MutexLock lock(&mu_);
    names_.push_back(req->name());
    return Status::OK;
  }

  Status GetStatistics(ServerContext*, const v1::GetStatisticsRequest*,
                       v1::Statistics* resp) override {
    *resp = Statistics();
    return Status::OK;
  }

  // Three events, then holds the stream open until the client goes away.
  Status WatchEvents(ServerContext* ctx, const v1::WatchEventsRequest* req,
                     grpc::ServerWriter<v1::Event>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      watch_filter_ = req->filter();
    }
    for (int i = 0; i < 3; ++i) {
      v1::Event e;
      e.set_type(v1::Event::SESSION_CREATED);
      e.mutable_time()->set_seconds(1795776758 + i);
      e.set_b4_address("2001:db8:a::2");
      e.set_protocol(v1::UDP);
      e.set_inner_address("192.0.2.10");
      e.set_inner_port(40000 + i);
      writer->Write(e);
    }
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return Status::CANCELLED;
  }

  Status GetConfig(ServerContext*, const v1::GetConfigRequest*,
                   aftr::config::v1::Config* resp) override {
    resp->add_interfaces("sw-a");
    resp->add_pool_prefixes("198.51.100.0/28");
    return Status::OK;
  }

  Status ReloadConfig(ServerContext*, const v1::ReloadConfigRequest* req,
                      v1::ReloadConfigResponse* resp) override {
    absl::MutexLock lock(&mu_);
    reload_ = *req;
    resp->add_changed_fields("timeouts.udp");
    return Status::OK;
  }

  static v1::Statistics Statistics() {
    v1::Statistics s;
    v1::Statistics::Counter* rx = s.add_counters();
    rx->set_name("rx_packets");
    rx->set_from_b4(11);
    rx->set_total(11);
    v1::Statistics::Counter* zero = s.add_counters();
    zero->set_name("drop_fragment");
    zero->set_drop_reason(true);
    s.set_sessions(5);
    return s;
  }

  absl::Mutex mu_;
  google::protobuf::RepeatedPtrField<v1::Session> sessions_;
  std::vector<v1::ListSessionsRequest> list_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
  v1::StaticMapping created_mapping_ ABSL_GUARDED_BY(mu_);
  v1::ReloadConfigRequest reload_ ABSL_GUARDED_BY(mu_);
  std::string watch_filter_ ABSL_GUARDED_BY(mu_);
  bool repeat_token_ = false;
};

// The fake on a Unix socket in a fresh temporary directory, with gRPC's health service.
class FakeServer {
 public:
  FakeServer() {
    char dir[] = "/tmp/aftrctl_test.XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    socket_ = dir_ + "/api.sock";
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    REQUIRE(server_ != nullptr);
  }
  ~FakeServer() {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    unlink(socket_.c_str());
    rmdir(dir_.c_str());
  }

  struct Result {
    int exit;
    std::string out;
    std::string err;
  };
  Result Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_});
    std::ostringstream out, err;
    int exit = Main(args, out, err);
    return {exit, out.str(), err.str()};
  }

  FakeAftrService& service() { return service_; }
  grpc::Server& server() { return *server_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string socket_;
  FakeAftrService service_;
  std::unique_ptr<grpc::Server> server_;
};

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST_CASE("aftrctl: sessions list prints one page and says how to get more", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result r = fake.Run({"sessions", "list", "--filter", "protocol = udp"});
  INFO(r.err);
  REQUIRE(r.exit == kExitOk);
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() == 5);
  CHECK(absl::StartsWith(lines[0], "PROTO  INNER"));
  CHECK(absl::StartsWith(lines[1], "udp    192.0.2.10:40000  198.51.100.3:1024"));
  CHECK(lines[3] == "2 sessions");
  CHECK(lines[4] == "more: --page_token 2 (or --all)");
  absl::MutexLock lock(&fake.service().mu_);
  REQUIRE(fake.service().list_requests_.size() == 1);
  CHECK(fake.service().list_requests_[0].filter() == "protocol = udp");
  CHECK(fake.service().list_requests_[0].page_token().empty());
}

TEST_CASE("aftrctl: --all walks every page, and --json gives one object with all items",
          "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result r = fake.Run({"--json", "sessions", "list", "--all", "--page_size", "2"});
  INFO(r.err);
  REQUIRE(r.exit == kExitOk);
  v1::ListSessionsResponse all;
  REQUIRE(google::protobuf::util::JsonStringToMessage(r.out, &all).ok());
  REQUIRE(all.sessions_size() == 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(google::protobuf::util::MessageDifferencer::Equals(all.sessions(i),
                                                             fake.service().sessions_[i]));
  }
  CHECK(all.next_page_token().empty());
  CHECK(absl::StrContains(r.out, "\"inner_address\""));  // proto field names
  {
    absl::MutexLock lock(&fake.service().mu_);
    REQUIRE(fake.service().list_requests_.size() == 3);
    CHECK(fake.service().list_requests_[1].page_token() == "2");
    CHECK(fake.service().list_requests_[2].page_token() == "4");
    CHECK(fake.service().list_requests_[2].page_size() == 2);
  }

  // Text with --all: every row and no "more:" line.
  FakeServer::Result text = fake.Run({"sessions", "list", "--all"});
  CHECK(Lines(text.out).size() == 7);
  CHECK(Lines(text.out).back() == "5 sessions");

  // --page_token continues by hand.
  FakeServer::Result next = fake.Run({"sessions", "list", "--page_token", "4"});
  CHECK(Lines(next.out).size() == 3);
  CHECK(absl::StrContains(next.out, "192.0.2.10:40004"));
}

TEST_CASE("aftrctl: a server that repeats its page token does not loop --all", "[aftrctl]") {
  FakeServer fake;
  fake.service().repeat_token_ = true;
  FakeServer::Result r = fake.Run({"sessions", "list", "--all"});
  CHECK(r.exit == kExitRpcError);
  CHECK(r.err == "aftrctl: INTERNAL: server repeated page token same\n");
}

TEST_CASE("aftrctl: failed calls print the status code and exit 1", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result r = fake.Run({"sessions", "get", "subscribers/bogus/sessions/x"});
  CHECK(r.exit == kExitRpcError);
  CHECK(r.out.empty());
  CHECK(r.err == "aftrctl: NOT_FOUND: name: no session subscribers/bogus/sessions/x\n");

  // Nobody listening: UNAVAILABLE, still exit 1.
  std::ostringstream out, err;
  int exit = Main({"--socket", fake.dir() + "/nobody.sock", "--timeout", "2s", "stats"}, out, err);
  CHECK(exit == kExitRpcError);
  CHECK(absl::StartsWith(err.str(), "aftrctl: UNAVAILABLE: "));

  // Usage errors are 2 and call nothing.
  FakeServer::Result usage = fake.Run({"blocks", "release", "198.51.100.1"});
  CHECK(usage.exit == kExitUsage);
  CHECK(absl::StartsWith(usage.err, "aftrctl: port block \"198.51.100.1\": want"));
  FakeServer::Result unknown = fake.Run({"sessions", "lst"});
  CHECK(unknown.exit == kExitUsage);
}

TEST_CASE("aftrctl: names from operator input reach the server", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result release = fake.Run({"blocks", "release", "198.51.100.1:1024"});
  INFO(release.err);
  REQUIRE(release.exit == kExitOk);
  CHECK(absl::StartsWith(release.out, "released:\nname:       portBlocks/198.51.100.1-1024\n"));
  FakeServer::Result drain = fake.Run({"pools", "drain", "198.51.100.0/28"});
  REQUIRE(drain.exit == kExitOk);
  CHECK(absl::StrContains(drain.out, "state:     draining\n"));
  FakeServer::Result del = fake.Run({"mappings", "delete", "udp-198.51.100.3-1100"});
  REQUIRE(del.exit == kExitOk);
  CHECK(del.out == "deleted staticMappings/udp-198.51.100.3-1100\n");
  absl::MutexLock lock(&fake.service().mu_);
  CHECK(fake.service().names_ ==
        std::vector<std::string>{"portBlocks/198.51.100.1-1024", "pools/198.51.100.0-28",
                                 "staticMappings/udp-198.51.100.3-1100"});
}

TEST_CASE("aftrctl: mappings create sends every field", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result r =
      fake.Run({"mappings", "create", "--b4", "2001:db8:a::2", "--protocol", "udp", "--inner",
                "192.0.2.10:5000", "--public_port", "1100"});
  INFO(r.err);
  REQUIRE(r.exit == kExitOk);
  CHECK(absl::StrContains(r.out, "name:       staticMappings/udp-198.51.100.3-1100\n"));
  CHECK(absl::StrContains(r.out, "public:     198.51.100.3:1100\n"));
  absl::MutexLock lock(&fake.service().mu_);
  const v1::StaticMapping& m = fake.service().created_mapping_;
  CHECK(m.b4_address() == "2001:db8:a::2");
  CHECK(m.protocol() == v1::UDP);
  CHECK(m.inner_address() == "192.0.2.10");
  CHECK(m.inner_port() == 5000);
  CHECK(m.public_port() == 1100);
}

TEST_CASE("aftrctl: stats as a table, --nonzero, and --json", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result text = fake.Run({"stats"});
  REQUIRE(text.exit == kExitOk);
  CHECK(absl::StrContains(text.out, "\nrx_packets "));
  CHECK(absl::StrContains(text.out, "\ndrop_fragment "));
  FakeServer::Result nonzero = fake.Run({"stats", "--nonzero"});
  CHECK(absl::StrContains(nonzero.out, "\nrx_packets "));
  CHECK_FALSE(absl::StrContains(nonzero.out, "drop_fragment"));

  FakeServer::Result json = fake.Run({"stats", "--json"});
  REQUIRE(json.exit == kExitOk);
  v1::Statistics got;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json.out, &got).ok());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(got, FakeAftrService::Statistics()));
}

TEST_CASE("aftrctl: events stop after --count or --duration", "[aftrctl]") {
  FakeServer fake;
  absl::Time start = absl::Now();
  FakeServer::Result two = fake.Run({"events", "--count", "2", "--filter", "type = SESSION_CREATED"});
  INFO(two.err);
  CHECK(two.exit == kExitOk);
  CHECK(Lines(two.out) ==
        std::vector<std::string>{
            "2026-11-27T10:52:38Z SESSION_CREATED udp 2001:db8:a::2 192.0.2.10:40000",
            "2026-11-27T10:52:39Z SESSION_CREATED udp 2001:db8:a::2 192.0.2.10:40001"});
  CHECK(absl::Now() - start < absl::Seconds(5));
  {
    absl::MutexLock lock(&fake.service().mu_);
    CHECK(fake.service().watch_filter_ == "type = SESSION_CREATED");
  }

  FakeServer::Result timed = fake.Run({"--json", "events", "--duration", "300ms"});
  CHECK(timed.exit == kExitOk);
  std::vector<std::string> lines = Lines(timed.out);
  REQUIRE(lines.size() == 3);  // JSON lines, one event each
  v1::Event e;
  REQUIRE(google::protobuf::util::JsonStringToMessage(lines[2], &e).ok());
  CHECK(e.inner_port() == 40002);
}

TEST_CASE("aftrctl: health is SERVING (exit 0) or not (exit 3)", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result ok = fake.Run({"health"});
  INFO(ok.err);
  CHECK(ok.exit == kExitOk);
  CHECK(ok.out == "SERVING\n");
  fake.server().GetHealthCheckService()->SetServingStatus(false);
  FakeServer::Result down = fake.Run({"health"});
  CHECK(down.exit == kExitNotServing);
  CHECK(down.out == "NOT_SERVING\n");
}

TEST_CASE("aftrctl: config get and reload --from a local textproto", "[aftrctl]") {
  FakeServer fake;
  FakeServer::Result get = fake.Run({"config", "get"});
  REQUIRE(get.exit == kExitOk);
  CHECK(get.out == "interfaces: \"sw-a\"\npool_prefixes: \"198.51.100.0/28\"\n");

  std::string file = fake.dir() + "/new.conf";
  std::ofstream(file) << "interfaces: \"sw-b\"\ntimeouts { udp: 30 }\n";
  FakeServer::Result reload = fake.Run({"config", "reload", "--from", file, "--validate_only"});
  INFO(reload.err);
  REQUIRE(reload.exit == kExitOk);
  CHECK(reload.out == "valid; would change: timeouts.udp\n");
  {
    absl::MutexLock lock(&fake.service().mu_);
    const v1::ReloadConfigRequest& req = fake.service().reload_;
    CHECK(req.validate_only());
    REQUIRE(req.has_config());
    CHECK(req.config().interfaces(0) == "sw-b");
    CHECK(req.config().timeouts().udp() == 30);
  }

  FakeServer::Result by_path = fake.Run({"config", "reload", "--file", "/etc/aftr/aftrd.conf"});
  REQUIRE(by_path.exit == kExitOk);
  {
    absl::MutexLock lock(&fake.service().mu_);
    CHECK(fake.service().reload_.path() == "/etc/aftr/aftrd.conf");
    CHECK_FALSE(fake.service().reload_.validate_only());
  }

  FakeServer::Result neither = fake.Run({"config", "reload", "--validate_only"});
  CHECK(neither.exit == kExitUsage);
  CHECK(neither.err == "aftrctl: config reload: give --file or --from\n");
  FakeServer::Result both = fake.Run({"config", "reload", "--file", "a", "--from", file});
  CHECK(both.exit == kExitUsage);

  std::ofstream(file) << "interfaces: \"sw-b\"\nno_such_field: 1\n";
  FakeServer::Result bad = fake.Run({"config", "reload", "--from", file});
  CHECK(bad.exit == kExitUsage);
  CHECK(absl::StrContains(bad.err, file + ":2:"));
  CHECK(absl::StrContains(bad.err, "no_such_field"));
  unlink(file.c_str());
}

}  // namespace
}  // namespace aftr::cli
