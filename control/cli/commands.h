// aftrctl's commands: each turns a parsed Invocation into AftrService (or grpc.health.v1)
// calls and prints the result as text or JSON. Main() is the whole program behind argv.
#ifndef AFTR_CONTROL_CLI_COMMANDS_H_
#define AFTR_CONTROL_CLI_COMMANDS_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/cli/args.h"
#include "grpcpp/channel.h"

namespace aftr::cli {

// Exit statuses (documented in `aftrctl --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;  // the call failed: "aftrctl: CODE: message" on stderr
inline constexpr int kExitUsage = 2;     // bad arguments or unreadable local files
inline constexpr int kExitNotServing = 3;  // health answered, but not SERVING
inline constexpr int kExitNobody = 4;      // who: nobody held the port at that time

// The channel the global options describe: the Unix socket without credentials, or TCP with
// TLS (CA, client certificate and key read from their files here).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const GlobalOptions& options);

// Runs a parsed invocation (inv.command set, inv.help false) over `channel`.
int RunCommand(const Invocation& inv, const std::shared_ptr<grpc::Channel>& channel,
               std::ostream& out, std::ostream& err);

// aftrctl itself: args without the program name.
int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace aftr::cli

#endif  // AFTR_CONTROL_CLI_COMMANDS_H_
