// aftrctl's commands over aftr.v1.AftrService and grpc.health.v1.Health (see commands.h).
#include "control/cli/commands.h"

#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "aftr/v1/aftr_service.grpc.pb.h"
#include "control/cli/format.h"
#include "control/cli/names.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace aftr::cli {
namespace {

namespace v1 = ::aftr::v1;
using HealthStub = ::grpc::health::v1::Health::Stub;

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Keeps the first textproto error with its position, for --from.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (error_.empty()) error_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

class Runner {
 public:
  Runner(const Invocation& inv, const std::shared_ptr<grpc::Channel>& channel, std::ostream& out,
         std::ostream& err)
      : inv_(inv),
        stub_(v1::AftrService::NewStub(channel)),
        health_(grpc::health::v1::Health::NewStub(channel)),
        out_(out),
        err_(err) {}

  int Run();

 private:
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + inv_.global.timeout));
    return ctx;
  }

  int RpcError(const grpc::Status& s) {
    // grpc::StatusCode and absl::StatusCode share the canonical numbering.
    err_ << "aftrctl: "
         << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": "
         << s.error_message() << "\n";
    return kExitRpcError;
  }

  int UsageError(const absl::Status& s) {
    err_ << "aftrctl: " << s.message() << "\n";
    return kExitUsage;
  }

  // Prints `message` as JSON, or `text` of it.
  template <typename M>
  int Print(const M& message, const std::function<std::string(const M&)>& text) {
    out_ << (inv_.global.json ? ToJson(message) : text(message));
    return kExitOk;
  }

  // A unary call, then Print.
  template <typename Request, typename Response, typename Call>
  int Unary(const Request& request, Call call,
            const std::function<std::string(const Response&)>& text) {
    Response response;
    std::unique_ptr<grpc::ClientContext> ctx = Context();
    grpc::Status s = call(ctx.get(), request, &response);
    if (!s.ok()) return RpcError(s);
    return Print(response, text);
  }

  // A List method: one page, or with --all every page merged into one response (the items
  // concatenated, no next_page_token), which is also what --json prints.
  template <typename Request, typename Response, typename Call>
  int List(Request request, Call call, const std::function<std::string(const Response&)>& text) {
    if constexpr (requires { request.set_filter(""); }) {
      if (inv_.Has("filter")) request.set_filter(inv_.Get("filter"));
    }
    request.set_page_size(static_cast<int32_t>(inv_.Count("page_size", 0)));
    request.set_page_token(inv_.Get("page_token"));
    const bool all = inv_.Has("all");
    Response total;
    std::set<std::string> tokens;
    for (;;) {
      Response page;
      std::unique_ptr<grpc::ClientContext> ctx = Context();
      grpc::Status s = call(ctx.get(), request, &page);
      if (!s.ok()) return RpcError(s);
      std::string token = page.next_page_token();
      total.MergeFrom(page);  // appends the items; takes a non-empty next_page_token
      if (!all || token.empty()) break;
      // A server handing out a token twice would make --all loop forever.
      if (!tokens.insert(token).second) {
        return RpcError(grpc::Status(grpc::StatusCode::INTERNAL,
                                     absl::StrCat("server repeated page token ", token)));
      }
      request.set_page_token(token);
    }
    if (all) total.clear_next_page_token();
    return Print(total, text);
  }

  int Subscribers();
  int Sessions();
  int Blocks();
  int Pools();
  int Mappings();
  int Pcp();
  int Who();
  int Deterministic();
  int Stats();
  int Events();
  int Config();
  int Health();

  const Invocation& inv_;
  std::unique_ptr<v1::AftrService::Stub> stub_;
  std::unique_ptr<HealthStub> health_;
  std::ostream& out_;
  std::ostream& err_;
};

int Runner::Run() {
  const std::string& group = inv_.command->words[0];
  if (group == "subscribers") return Subscribers();
  if (group == "sessions") return Sessions();
  if (group == "blocks") return Blocks();
  if (group == "pools") return Pools();
  if (group == "mappings") return Mappings();
  if (group == "pcp") return Pcp();
  if (group == "who") return Who();
  if (group == "deterministic") return Deterministic();
  if (group == "stats") return Stats();
  if (group == "events") return Events();
  if (group == "config") return Config();
  if (group == "health") return Health();
  return UsageError(absl::InvalidArgumentError(absl::StrCat("no handler for ", group)));
}

int Runner::Subscribers() {
  if (inv_.command->words[1] == "list") {
    return List(v1::ListSubscribersRequest(),
                [&](auto* ctx, const auto& req, auto* resp) {
                  return stub_->ListSubscribers(ctx, req, resp);
                },
                std::function<std::string(const v1::ListSubscribersResponse&)>(
                    [](const v1::ListSubscribersResponse& r) {
                      return SubscribersTable(r.subscribers(), absl::Now()) +
                             ListFooter(r.subscribers_size(), "subscribers", r.next_page_token());
                    }));
  }
  absl::StatusOr<std::string> name = SubscriberName(inv_.args[0]);
  if (!name.ok()) return UsageError(name.status());
  v1::GetSubscriberRequest req;
  req.set_name(*name);
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) { return stub_->GetSubscriber(ctx, r, resp); },
               std::function<std::string(const v1::Subscriber&)>(
                   [](const v1::Subscriber& s) { return SubscriberText(s, absl::Now()); }));
}

int Runner::Sessions() {
  if (inv_.command->words[1] == "list") {
    return List(v1::ListSessionsRequest(),
                [&](auto* ctx, const auto& req, auto* resp) {
                  return stub_->ListSessions(ctx, req, resp);
                },
                std::function<std::string(const v1::ListSessionsResponse&)>(
                    [](const v1::ListSessionsResponse& r) {
                      return SessionsTable(r.sessions(), absl::Now()) +
                             ListFooter(r.sessions_size(), "sessions", r.next_page_token());
                    }));
  }
  absl::StatusOr<std::string> name = SessionName(inv_.args[0]);
  if (!name.ok()) return UsageError(name.status());
  v1::GetSessionRequest req;
  req.set_name(*name);
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) { return stub_->GetSession(ctx, r, resp); },
               std::function<std::string(const v1::Session&)>(
                   [](const v1::Session& s) { return SessionText(s, absl::Now()); }));
}

int Runner::Blocks() {
  if (inv_.command->words[1] == "list") {
    return List(v1::ListPortBlocksRequest(),
                [&](auto* ctx, const auto& req, auto* resp) {
                  return stub_->ListPortBlocks(ctx, req, resp);
                },
                std::function<std::string(const v1::ListPortBlocksResponse&)>(
                    [](const v1::ListPortBlocksResponse& r) {
                      return PortBlocksTable(r.port_blocks()) +
                             ListFooter(r.port_blocks_size(), "port blocks", r.next_page_token());
                    }));
  }
  absl::StatusOr<std::string> name = PortBlockName(inv_.args[0]);
  if (!name.ok()) return UsageError(name.status());
  v1::ReleasePortBlockRequest req;
  req.set_name(*name);
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) {
                 return stub_->ReleasePortBlock(ctx, r, resp);
               },
               std::function<std::string(const v1::PortBlock&)>([](const v1::PortBlock& b) {
                 return "released:\n" + PortBlockText(b);
               }));
}

int Runner::Pools() {
  const std::string& verb = inv_.command->words[1];
  auto pool_text = std::function<std::string(const v1::Pool&)>(PoolText);
  if (verb == "list") {
    return List(v1::ListPoolsRequest(),
                [&](auto* ctx, const auto& req, auto* resp) {
                  return stub_->ListPools(ctx, req, resp);
                },
                std::function<std::string(const v1::ListPoolsResponse&)>(
                    [](const v1::ListPoolsResponse& r) {
                      return PoolsTable(r.pools()) +
                             ListFooter(r.pools_size(), "pools", r.next_page_token());
                    }));
  }
  if (verb == "add") {
    v1::CreatePoolRequest req;
    req.set_prefix(inv_.args[0]);
    return Unary(req,
                 [&](auto* ctx, const auto& r, auto* resp) { return stub_->CreatePool(ctx, r, resp); },
                 pool_text);
  }
  absl::StatusOr<std::string> name = PoolName(inv_.args[0]);
  if (!name.ok()) return UsageError(name.status());
  if (verb == "get") {
    v1::GetPoolRequest req;
    req.set_name(*name);
    return Unary(req,
                 [&](auto* ctx, const auto& r, auto* resp) { return stub_->GetPool(ctx, r, resp); },
                 pool_text);
  }
  v1::DrainPoolRequest req;
  req.set_name(*name);
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) { return stub_->DrainPool(ctx, r, resp); },
               pool_text);
}

int Runner::Mappings() {
  const std::string& verb = inv_.command->words[1];
  auto mapping_text = std::function<std::string(const v1::StaticMapping&)>(StaticMappingText);
  if (verb == "list") {
    return List(v1::ListStaticMappingsRequest(),
                [&](auto* ctx, const auto& req, auto* resp) {
                  return stub_->ListStaticMappings(ctx, req, resp);
                },
                std::function<std::string(const v1::ListStaticMappingsResponse&)>(
                    [](const v1::ListStaticMappingsResponse& r) {
                      return StaticMappingsTable(r.static_mappings()) +
                             ListFooter(r.static_mappings_size(), "static mappings",
                                        r.next_page_token());
                    }));
  }
  if (verb == "create") {
    absl::StatusOr<v1::Protocol> protocol = ParseProtocol(inv_.Get("protocol"));
    if (!protocol.ok()) return UsageError(protocol.status());
    absl::StatusOr<Ipv4Endpoint> inner = ParseIpv4Endpoint(inv_.Get("inner"));
    if (!inner.ok()) return UsageError(inner.status());
    int64_t public_port = inv_.Count("public_port", 0);
    if (public_port > 65535) {
      return UsageError(absl::InvalidArgumentError("--public_port: at most 65535"));
    }
    v1::CreateStaticMappingRequest req;
    v1::StaticMapping* m = req.mutable_static_mapping();
    m->set_b4_address(inv_.Get("b4"));
    m->set_protocol(*protocol);
    m->set_inner_address(inner->address);
    m->set_inner_port(inner->port);
    m->set_public_port(static_cast<uint32_t>(public_port));
    return Unary(req,
                 [&](auto* ctx, const auto& r, auto* resp) {
                   return stub_->CreateStaticMapping(ctx, r, resp);
                 },
                 mapping_text);
  }
  absl::StatusOr<std::string> name = StaticMappingName(inv_.args[0]);
  if (!name.ok()) return UsageError(name.status());
  if (verb == "get") {
    v1::GetStaticMappingRequest req;
    req.set_name(*name);
    return Unary(req,
                 [&](auto* ctx, const auto& r, auto* resp) {
                   return stub_->GetStaticMapping(ctx, r, resp);
                 },
                 mapping_text);
  }
  v1::DeleteStaticMappingRequest req;
  req.set_name(*name);
  std::string deleted = *name;
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) {
                 return stub_->DeleteStaticMapping(ctx, r, resp);
               },
               std::function<std::string(const google::protobuf::Empty&)>(
                   [&](const google::protobuf::Empty&) { return "deleted " + deleted + "\n"; }));
}

int Runner::Who() {
  v1::LookupAttributionRequest req;
  req.set_public_address(inv_.args[0]);
  uint32_t port = 0;
  if (!absl::SimpleAtoi(inv_.args[1], &port) || port < 1 || port > 65535) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("PORT \"", inv_.args[1], "\" is not a port in 1..65535")));
  }
  req.set_port(port);
  if (inv_.args.size() > 2) {
    absl::Time at;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, inv_.args[2], &at, &error)) {
      return UsageError(absl::InvalidArgumentError(absl::StrCat(
          "TIME \"", inv_.args[2], "\" is not RFC 3339 (e.g. 2026-11-27T10:35:59Z): ", error)));
    }
    req.mutable_time()->set_seconds(absl::ToUnixSeconds(at));
    req.mutable_time()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(at - absl::FromUnixSeconds(absl::ToUnixSeconds(at)))));
  }
  if (inv_.Has("protocol")) {
    const std::string p = inv_.Get("protocol");
    if (p == "tcp") req.set_protocol(v1::TCP);
    else if (p == "udp") req.set_protocol(v1::UDP);
    else if (p == "icmp") req.set_protocol(v1::ICMP);
    else return UsageError(absl::InvalidArgumentError(absl::StrCat("--protocol \"", p, "\" is not tcp, udp or icmp")));
  }
  v1::LookupAttributionResponse resp;
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  grpc::Status s = stub_->LookupAttribution(ctx.get(), req, &resp);
  if (!s.ok()) return RpcError(s);
  if (resp.attributions().empty() && !inv_.global.json) {
    out_ << "nobody held " << req.public_address() << " port " << port << " then\n";
    return kExitNobody;
  }
  Print(resp, std::function<std::string(const v1::LookupAttributionResponse&)>(AttributionText));
  return resp.attributions().empty() ? kExitNobody : kExitOk;
}

int Runner::Deterministic() {
  v1::MapDeterministicRequest req;
  if (inv_.args.size() == 1) {
    req.set_b4_address(inv_.args[0]);
  } else {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(inv_.args[1], &port) || port < 1 || port > 65535) {
      return UsageError(absl::InvalidArgumentError(
          absl::StrCat("PORT \"", inv_.args[1], "\" is not a port in 1..65535")));
    }
    req.mutable_public_port()->set_address(inv_.args[0]);
    req.mutable_public_port()->set_port(port);
  }
  v1::DeterministicMapping resp;
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  grpc::Status s = stub_->MapDeterministic(ctx.get(), req, &resp);
  if (!s.ok()) return RpcError(s);
  Print(resp, std::function<std::string(const v1::DeterministicMapping&)>(DeterministicText));
  return kExitOk;
}

int Runner::Pcp() {
  const std::string& verb = inv_.command->words[1];
  if (verb == "list") {
    return List(v1::ListPcpMappingsRequest(),
                [&](auto* ctx, const auto& req, auto* resp) {
                  return stub_->ListPcpMappings(ctx, req, resp);
                },
                std::function<std::string(const v1::ListPcpMappingsResponse&)>(
                    [](const v1::ListPcpMappingsResponse& r) {
                      return PcpMappingsTable(r.pcp_mappings(), absl::Now()) +
                             ListFooter(r.pcp_mappings_size(), "PCP mappings", r.next_page_token());
                    }));
  }
  absl::StatusOr<std::string> name = PcpMappingName(inv_.args[0]);
  if (!name.ok()) return UsageError(name.status());
  v1::DeletePcpMappingRequest req;
  req.set_name(*name);
  std::string deleted = *name;
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) {
                 return stub_->DeletePcpMapping(ctx, r, resp);
               },
               std::function<std::string(const google::protobuf::Empty&)>(
                   [&](const google::protobuf::Empty&) { return "deleted " + deleted + "\n"; }));
}

int Runner::Stats() {
  v1::GetStatisticsRequest req;
  req.set_name("statistics");
  v1::Statistics stats;
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  grpc::Status s = stub_->GetStatistics(ctx.get(), req, &stats);
  if (!s.ok()) return RpcError(s);
  const bool nonzero = inv_.Has("nonzero");
  if (inv_.global.json) {
    if (nonzero) {
      // The same rows the table would show.
      auto* counters = stats.mutable_counters();
      counters->erase(std::remove_if(counters->begin(), counters->end(),
                                     [](const v1::Statistics::Counter& c) {
                                       return c.from_b4() == 0 && c.from_internet() == 0 &&
                                              c.other() == 0 && c.total() == 0;
                                     }),
                      counters->end());
    }
    out_ << ToJson(stats);
  } else {
    out_ << StatisticsText(stats, nonzero);
  }
  return kExitOk;
}

int Runner::Events() {
  v1::WatchEventsRequest req;
  req.set_filter(inv_.Get("filter"));
  const int64_t count = inv_.Count("count", 0);
  const bool timed = inv_.Has("duration");
  grpc::ClientContext ctx;
  if (timed) ctx.set_deadline(absl::ToChronoTime(absl::Now() + inv_.Duration("duration", {})));
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader = stub_->WatchEvents(&ctx, req);
  v1::Event event;
  int64_t received = 0;
  bool cancelled = false;
  while (reader->Read(&event)) {
    // Flushed per event: a pipe or a file watched by a script sees each one as it happens.
    out_ << (inv_.global.json ? ToJson(event, /*multiline=*/false) : EventLine(event) + "\n");
    out_.flush();
    if (count > 0 && ++received >= count) {
      ctx.TryCancel();
      cancelled = true;
      break;
    }
  }
  grpc::Status s = reader->Finish();
  // Ending the stream ourselves (count reached, duration over) is success.
  if (cancelled && s.error_code() == grpc::StatusCode::CANCELLED) return kExitOk;
  if (timed && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return kExitOk;
  if (!s.ok()) return RpcError(s);
  return kExitOk;
}

int Runner::Config() {
  if (inv_.command->words[1] == "get") {
    v1::GetConfigRequest req;
    req.set_name("config");
    return Unary(req,
                 [&](auto* ctx, const auto& r, auto* resp) { return stub_->GetConfig(ctx, r, resp); },
                 std::function<std::string(const aftr::config::v1::Config&)>(
                     [](const aftr::config::v1::Config& c) {
                       std::string text;
                       google::protobuf::TextFormat::PrintToString(c, &text);
                       return text;
                     }));
  }
  // The API has no "reload what you loaded": the request names its source.
  if (inv_.Has("file") == inv_.Has("from")) {
    return UsageError(absl::InvalidArgumentError("config reload: give --file or --from"));
  }
  v1::ReloadConfigRequest req;
  req.set_validate_only(inv_.Has("validate_only"));
  if (inv_.Has("file")) req.set_path(inv_.Get("file"));
  if (inv_.Has("from")) {
    absl::StatusOr<std::string> text = ReadFile(inv_.Get("from"), "--from");
    if (!text.ok()) return UsageError(text.status());
    google::protobuf::TextFormat::Parser parser;
    FirstError errors;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(*text, req.mutable_config())) {
      return UsageError(absl::InvalidArgumentError(
          absl::StrCat(inv_.Get("from"), ":", errors.error())));
    }
  }
  const bool validate_only = req.validate_only();
  return Unary(req,
               [&](auto* ctx, const auto& r, auto* resp) { return stub_->ReloadConfig(ctx, r, resp); },
               std::function<std::string(const v1::ReloadConfigResponse&)>(
                   [validate_only](const v1::ReloadConfigResponse& r) {
                     return ReloadText(r, validate_only);
                   }));
}

int Runner::Health() {
  grpc::health::v1::HealthCheckRequest req;  // service "": the server as a whole
  grpc::health::v1::HealthCheckResponse resp;
  std::unique_ptr<grpc::ClientContext> ctx = Context();
  grpc::Status s = health_->Check(ctx.get(), req, &resp);
  if (!s.ok()) return RpcError(s);
  if (inv_.global.json) {
    out_ << ToJson(resp);
  } else {
    out_ << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  }
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                        : kExitNotServing;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const GlobalOptions& options) {
  if (options.target.empty()) {
    // Access control on the socket is its file mode and group (api.unix_socket_group).
    return grpc::CreateChannel(options.GrpcTarget(), grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFile(options.tls_ca, "--tls_ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!options.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(options.tls_cert, "--tls_cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options.tls_key, "--tls_key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  grpc::ChannelArguments args;
  if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
  return grpc::CreateCustomChannel(options.target, grpc::SslCredentials(ssl), args);
}

int RunCommand(const Invocation& inv, const std::shared_ptr<grpc::Channel>& channel,
               std::ostream& out, std::ostream& err) {
  return Runner(inv, channel, out, err).Run();
}

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Invocation> inv = ParseArgs(args);
  if (!inv.ok()) {
    err << "aftrctl: " << inv.status().message() << "\n(aftrctl --help lists the commands)\n";
    return kExitUsage;
  }
  if (inv->help) {
    out << (inv->command != nullptr ? CommandHelp(*inv->command) : Usage());
    return kExitOk;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(inv->global);
  if (!channel.ok()) {
    err << "aftrctl: " << channel.status().message() << "\n";
    return kExitUsage;
  }
  return RunCommand(*inv, *channel, out, err);
}

}  // namespace aftr::cli
