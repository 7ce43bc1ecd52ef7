// The gRPC server: AftrService, the standard health service and server reflection, on a
// Unix socket (mode 0660, configurable group) and optionally on TCP with TLS (mutual TLS
// when a client CA is configured).
#ifndef AFTR_CONTROL_API_API_SERVER_H_
#define AFTR_CONTROL_API_API_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "aftr/config/v1/config.pb.h"
#include "grpcpp/grpcpp.h"

namespace aftr::api {

class ApiServer {
 public:
  // Starts serving `service`; health reports NOT_SERVING until SetServing(true).
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(const aftr::config::v1::Api& api,
                                                          grpc::Service* service);
  ~ApiServer();  // stops, cancelling streams, and removes the socket

  void SetServing(bool serving);
  // The TCP port actually bound (tcp_listen with port 0 picks one), or 0.
  int tcp_port() const { return tcp_port_; }

 private:
  ApiServer() = default;
  std::unique_ptr<grpc::Server> server_;
  std::string socket_path_;
  ino_t socket_inode_ = 0;  // removed on exit only if still ours (a newer aftrd may own the path)
  int tcp_port_ = 0;
};

}  // namespace aftr::api

#endif  // AFTR_CONTROL_API_API_SERVER_H_
