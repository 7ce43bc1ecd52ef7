#include "control/api/api_server.h"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "control/common/errno_status.h"
#include "control/common/log.h"
#include "control/config/config.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"

namespace aftr::api {
namespace {

// Requests are small; a config in ReloadConfig is the largest thing a client sends.
constexpr int kMaxRequestBytes = 4 << 20;

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(field, ": cannot read ", path));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(const aftr::config::v1::Tls& tls) {
  absl::StatusOr<std::string> cert = ReadFile(tls.cert_file(), "api.tls.cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(tls.key_file(), "api.tls.key_file");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!tls.client_ca_file().empty()) {
    absl::StatusOr<std::string> ca = ReadFile(tls.client_ca_file(), "api.tls.client_ca_file");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// A socket left by a previous aftrd (a restart, a SIGKILL) is replaced; anything else at that
// path is not ours to remove.
absl::Status PrepareSocketPath(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("api.unix_socket: creating ", p.parent_path().string(), ": ", ec.message()));
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("api.unix_socket: ", path, " exists and is not a socket"));
    }
    if (unlink(path.c_str()) != 0) return ErrnoToStatus(errno, absl::StrCat("removing stale ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(const aftr::config::v1::Api& api,
                                                            grpc::Service* service) {
  auto server = std::unique_ptr<ApiServer>(new ApiServer());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  builder.RegisterService(service);
  if (api.unix_socket() != config::kNoApiSocket && !api.unix_socket().empty()) {
    if (absl::Status s = PrepareSocketPath(api.unix_socket()); !s.ok()) return s;
    server->socket_path_ = api.unix_socket();
    builder.AddListeningPort(absl::StrCat("unix:", api.unix_socket()), grpc::InsecureServerCredentials());
  }
  if (!api.tcp_listen().empty()) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = TlsCredentials(api.tls());
    if (!creds.ok()) return creds.status();
    builder.AddListeningPort(api.tcp_listen(), *creds, &server->tcp_port_);
  }
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || (!api.tcp_listen().empty() && server->tcp_port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("api: cannot listen on ",
                                               server->socket_path_.empty() ? "" : server->socket_path_,
                                               api.tcp_listen().empty() ? "" : " and ",
                                               api.tcp_listen()));
  }
  if (!server->socket_path_.empty()) {
    // Operators in the configured group may use the API; nobody else.
    gid_t gid = static_cast<gid_t>(-1);
    if (!api.unix_socket_group().empty()) {
      struct group* g = getgrnam(api.unix_socket_group().c_str());
      if (g == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("api.unix_socket_group: no group named \"", api.unix_socket_group(), "\""));
      }
      gid = g->gr_gid;
    }
    if (chown(server->socket_path_.c_str(), static_cast<uid_t>(-1), gid) != 0 ||
        chmod(server->socket_path_.c_str(), 0660) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("setting owner and mode of ", server->socket_path_));
    }
    struct stat st;
    if (lstat(server->socket_path_.c_str(), &st) == 0) server->socket_inode_ = st.st_ino;
  }
  server->SetServing(false);
  LogInfo("API serving on %s%s%s", server->socket_path_.empty() ? "" : "unix:" + server->socket_path_,
          api.tcp_listen().empty() ? "" : " tls:", api.tcp_listen());
  return server;
}

void ApiServer::SetServing(bool serving) {
  if (server_ && server_->GetHealthCheckService()) {
    server_->GetHealthCheckService()->SetServingStatus(serving);
  }
}

ApiServer::~ApiServer() {
  if (server_) {
    SetServing(false);
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
  struct stat st;
  if (!socket_path_.empty() && lstat(socket_path_.c_str(), &st) == 0 && st.st_ino == socket_inode_) {
    unlink(socket_path_.c_str());
  }
}

}  // namespace aftr::api
