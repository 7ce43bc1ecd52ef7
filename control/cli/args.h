// aftrctl's command line: global options, the command table (words, options, positional
// arguments, help) and the parser that turns argv into an Invocation. Pure: no I/O, no gRPC.
#ifndef AFTR_CONTROL_CLI_ARGS_H_
#define AFTR_CONTROL_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace aftr::cli {

// The API's default Unix socket (config api.unix_socket).
inline constexpr char kDefaultSocket[] = "/run/aftrd/aftrd.sock";

struct GlobalOptions {
  std::string socket = kDefaultSocket;
  std::string target;  // HOST:PORT over TLS; empty = the Unix socket
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  bool json = false;
  absl::Duration timeout = absl::Seconds(10);

  // The gRPC target string: "unix:PATH" or HOST:PORT.
  std::string GrpcTarget() const;
};

enum class OptionType { kFlag, kString, kCount, kDuration };

struct OptionSpec {
  std::string name;  // without the leading "--"
  OptionType type = OptionType::kString;
  std::string value_name;  // for help: "F", "N", "30s"
  std::string help;
  bool required = false;  // command options only
};

struct CommandSpec {
  std::vector<std::string> words;  // e.g. {"sessions", "list"}
  std::string positional;          // for help, e.g. "NAME|ADDR:PORT"; empty = none
  int min_args = 0;
  int max_args = 0;
  std::string summary;  // one line
  std::string details;  // more lines for `--help` (may be empty)
  std::vector<OptionSpec> options;

  std::string Words() const;  // "sessions list"
};

// Every command aftrctl has, in help order.
const std::vector<CommandSpec>& Commands();

struct Invocation {
  GlobalOptions global;
  // Null when only help was asked for (`aftrctl --help`, `aftrctl help`).
  const CommandSpec* command = nullptr;
  bool help = false;  // print help for `command` (or everything) instead of running it
  std::vector<std::string> args;              // positional arguments after the command words
  std::map<std::string, std::string> options;  // command options given; flags map to "true"

  bool Has(const std::string& name) const { return options.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // For options of type kCount / kDuration (validated by ParseArgs).
  int64_t Count(const std::string& name, int64_t fallback) const;
  absl::Duration Duration(const std::string& name, absl::Duration fallback) const;
};

// argv without the program name. Options may come before or after the command words, as
// --name VALUE or --name=VALUE. Errors are InvalidArgument with a message fit for the user
// (aftrctl exits 2 on them).
absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& argv);

// `aftrctl --help`: global options and every command.
std::string Usage();
// `aftrctl COMMAND --help`.
std::string CommandHelp(const CommandSpec& command);

}  // namespace aftr::cli

#endif  // AFTR_CONTROL_CLI_ARGS_H_
