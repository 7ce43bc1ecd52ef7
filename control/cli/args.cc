// aftrctl's command table and argument parser (see args.h).
#include "control/cli/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace aftr::cli {
namespace {

OptionSpec Filter(std::string fields) {
  return {"filter", OptionType::kString, "F",
          absl::StrCat("AIP-160 filter, terms `field = value` joined by AND; fields: ", fields)};
}
OptionSpec PageSize() {
  return {"page_size", OptionType::kCount, "N", "items per page (server default 100, at most 1000)"};
}
OptionSpec PageToken() {
  return {"page_token", OptionType::kString, "T",
          "continue a listing where the previous page ended (its next_page_token)"};
}
OptionSpec All() {
  return {"all", OptionType::kFlag, "",
          "fetch every page; with --json one object holding all items"};
}

std::vector<CommandSpec> MakeCommands() {
  return {
      {{"subscribers", "list"}, "", 0, 0,
       "List subscribers (B4s): public address, state, sessions, port blocks.", "",
       {Filter("b4_address, public_address"), PageSize(), PageToken(), All()}},
      {{"subscribers", "get"}, "B4_ADDRESS|NAME", 1, 1,
       "Show one subscriber with its port blocks (e.g. 2001:db8:a::2).", "", {}},
      {{"sessions", "list"}, "", 0, 0,
       "List NAT44 sessions: protocol, inner and public endpoint, B4, kind, TCP state, expiry.",
       "",
       {Filter("subscriber, b4_address, inner_address, inner_port, public_address, "
               "public_port, protocol, kind (dynamic/static)"),
        PageSize(), PageToken(), All()}},
      {{"sessions", "get"}, "NAME", 1, 1,
       "Show one session by name: subscribers/{b4}/sessions/{protocol}-{inner}-{port}.", "", {}},
      {{"blocks", "list"}, "", 0, 0, "List port blocks owned by subscribers.", "",
       {Filter("b4_address, public_address"), PageSize(), PageToken(), All()}},
      {{"blocks", "release"}, "NAME|ADDR:PORT", 1, 1,
       "Take a port block from its subscriber: its sessions are deleted, the block returns to "
       "the pool.",
       "ADDR:PORT is the block's public address and first port: 198.51.100.1:1024 is "
       "portBlocks/198.51.100.1-1024.",
       {}},
      {{"pools", "list"}, "", 0, 0, "List pool prefixes with their state and block usage.", "",
       {PageSize(), PageToken(), All()}},
      {{"pools", "get"}, "NAME|PREFIX", 1, 1, "Show one pool prefix (e.g. 198.51.100.0/28).", "",
       {}},
      {{"pools", "add"}, "PREFIX", 1, 1,
       "Add a prefix to the running pool, or take a draining one back into service.",
       "The prefix must not overlap another pool. Not written to the configuration file.", {}},
      {{"pools", "drain"}, "NAME|PREFIX", 1, 1,
       "Stop handing out port blocks from a prefix; existing blocks and sessions live out.", "",
       {}},
      {{"mappings", "list"}, "", 0, 0, "List static mappings (operator port forwards).", "",
       {Filter("b4_address, public_address, protocol"), PageSize(), PageToken(), All()}},
      {{"mappings", "get"}, "NAME", 1, 1,
       "Show one static mapping (staticMappings/{protocol}-{public_address}-{public_port}).", "",
       {}},
      {{"mappings", "create"}, "", 0, 0,
       "Create a static mapping: inbound connections to the public address and port reach "
       "the inner endpoint behind the B4.",
       "Without --public_port the AFTR picks a port in the subscriber's blocks.",
       {{"b4", OptionType::kString, "ADDR", "the subscriber's B4 address (required)", true},
        {"protocol", OptionType::kString, "tcp|udp", "protocol (required)", true},
        {"inner", OptionType::kString, "ADDR:PORT", "inner address and port (required)", true},
        {"public_port", OptionType::kCount, "P",
         "public port, inside the subscriber's port blocks (or a block it may still claim)"}}},
      {{"mappings", "delete"}, "NAME", 1, 1, "Delete a static mapping.", "", {}},
      {{"pcp", "list"}, "", 0, 0,
       "List PCP mappings (RFC 6887 MAP and PEER) that B4s hold for hosts behind them.", "",
       {Filter("b4_address, public_address, protocol"), PageSize(), PageToken(), All()}},
      {{"pcp", "delete"}, "NAME", 1, 1,
       "Delete a PCP mapping (pcpMappings/{protocol}-{public_address}-{public_port}[-{remote}-{port}]).",
       "The B4 learns it at its next refresh, which then makes a new mapping.", {}},
      {{"who"}, "ADDRESS PORT [TIME]", 2, 3,
       "Who held a public address and port at a time (default now): the B4 and its port block "
       "or mapping with when it held it, and the RADIUS identity bound to the B4 then.",
       "TIME is RFC 3339 (2026-11-27T10:35:59Z, or with an offset); the logs have whole "
       "seconds. Exit 0 with an answer, 4 when nobody held the port then.",
       {{"protocol", OptionType::kString, "tcp|udp|icmp", "only mappings of this protocol (blocks hold every protocol)"}}},
      {{"deterministic"}, "B4ADDR | ADDRESS PORT", 1, 2,
       "Deterministic NAT, from the configuration alone: a B4 address's subscriber prefix, "
       "public address and port range, or the subscriber prefix holding a public address and port.",
       "Exit 0 with an answer, 1 (NOT_FOUND) outside every deterministic range.", {}},
      {{"stats"}, "", 0, 0,
       "Data-plane counters and drop reasons per direction, table gauges, controller counters.",
       "",
       {{"nonzero", OptionType::kFlag, "", "hide counters that are zero in every direction"}}},
      {{"events"}, "", 0, 0,
       "Stream events as they happen (session and block events, exhaustion, config reloads).",
       "Runs until --count events arrived, --duration passed, or it is interrupted. "
       "With --json one JSON object per line.",
       {Filter("type (e.g. PORT_BLOCK_ALLOCATED), b4_address, public_address"),
        {"count", OptionType::kCount, "N", "stop after N events"},
        {"duration", OptionType::kDuration, "30s", "stop after this long"}}},
      {{"config", "get"}, "", 0, 0,
       "Print the running configuration, defaults applied (textproto; --json for JSON).", "",
       {}},
      {{"config", "reload"}, "", 0, 0,
       "Validate and apply a configuration without dropping sessions.",
       "One of --file (a textproto file on the daemon's host, read like aftrd --config) or "
       "--from (a local textproto file whose content is sent). Fields that cannot change "
       "live are refused with FAILED_PRECONDITION and nothing changes. (SIGHUP makes aftrd "
       "reload its own --config file.)",
       {{"file", OptionType::kString, "PATH", "configuration file on the daemon's host"},
        {"from", OptionType::kString, "FILE", "local textproto file to send"},
        {"validate_only", OptionType::kFlag, "", "report what would change; apply nothing"}}},
      {{"health"}, "", 0, 0,
       "grpc.health.v1 Check of the server (\"\"): prints its status; exit 0 only if SERVING.",
       "Exit 3 when the server answered with another status, 1 when it could not be asked.",
       {}},
  };
}

struct GlobalSpec {
  std::string name;
  OptionType type;
  std::string value_name;
  std::string help;
};

const std::vector<GlobalSpec>& GlobalSpecs() {
  static const auto* specs = new std::vector<GlobalSpec>{
      {"socket", OptionType::kString, "PATH",
       absl::StrCat("aftrd's Unix socket (default ", kDefaultSocket, ")")},
      {"target", OptionType::kString, "HOST:PORT", "aftrd's TCP listener instead (always TLS)"},
      {"tls_ca", OptionType::kString, "FILE",
       "PEM CA bundle the server certificate must chain to (default: system roots)"},
      {"tls_cert", OptionType::kString, "FILE", "PEM client certificate (mutual TLS)"},
      {"tls_key", OptionType::kString, "FILE", "PEM private key of --tls_cert"},
      {"tls_server_name", OptionType::kString, "NAME",
       "name to expect in the server certificate instead of HOST"},
      {"json", OptionType::kFlag, "", "print responses as JSON (proto field names)"},
      {"timeout", OptionType::kDuration, "10s", "deadline of each call (not of events)"},
  };
  return *specs;
}

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::Status CheckValue(absl::string_view name, OptionType type, absl::string_view value) {
  switch (type) {
    case OptionType::kCount: {
      int64_t n = 0;
      if (value.empty() || value[0] == '-' || value[0] == '+' || !absl::SimpleAtoi(value, &n) ||
          n > INT32_MAX) {
        return Usage(absl::StrCat("--", name, " \"", value, "\": want a whole number >= 0"));
      }
      return absl::OkStatus();
    }
    case OptionType::kDuration: {
      absl::Duration d;
      if (!absl::ParseDuration(value, &d) || d <= absl::ZeroDuration()) {
        return Usage(absl::StrCat("--", name, " \"", value,
                                  "\": want a positive duration such as 500ms, 30s, 5m"));
      }
      return absl::OkStatus();
    }
    case OptionType::kFlag:
      if (value != "true" && value != "false") {
        return Usage(absl::StrCat("--", name, " takes no value (or =true/=false)"));
      }
      return absl::OkStatus();
    case OptionType::kString:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

// The type of an option name across the global options and every command's, so a value can
// be consumed before the command is known ("--filter F sessions list" works too).
const OptionType* FindOptionType(const std::string& name) {
  for (const GlobalSpec& g : GlobalSpecs()) {
    if (g.name == name) return &g.type;
  }
  for (const CommandSpec& c : Commands()) {
    for (const OptionSpec& o : c.options) {
      if (o.name == name) return &o.type;
    }
  }
  return nullptr;
}

void ApplyGlobal(const std::string& name, const std::string& value, GlobalOptions& g) {
  if (name == "socket") g.socket = value;
  if (name == "target") g.target = value;
  if (name == "tls_ca") g.tls_ca = value;
  if (name == "tls_cert") g.tls_cert = value;
  if (name == "tls_key") g.tls_key = value;
  if (name == "tls_server_name") g.tls_server_name = value;
  if (name == "json") g.json = value == "true";
  if (name == "timeout") absl::ParseDuration(value, &g.timeout);
}

bool IsGlobal(const std::string& name) {
  return std::any_of(GlobalSpecs().begin(), GlobalSpecs().end(),
                     [&](const GlobalSpec& g) { return g.name == name; });
}

std::string OptionUsage(const std::string& name, OptionType type, const std::string& value) {
  return type == OptionType::kFlag ? absl::StrCat("--", name)
                                   : absl::StrCat("--", name, " ", value);
}

std::string CommandLine(const CommandSpec& c) {
  std::string line = c.Words();
  if (!c.positional.empty()) absl::StrAppend(&line, " ", c.positional);
  for (const OptionSpec& o : c.options) {
    std::string usage = OptionUsage(o.name, o.type, o.value_name);
    absl::StrAppend(&line, " ", o.required ? usage : absl::StrCat("[", usage, "]"));
  }
  return line;
}

}  // namespace

std::string GlobalOptions::GrpcTarget() const {
  return target.empty() ? absl::StrCat("unix:", socket) : target;
}

std::string CommandSpec::Words() const { return absl::StrJoin(words, " "); }

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>(MakeCommands());
  return *commands;
}

std::string Invocation::Get(const std::string& name, const std::string& fallback) const {
  auto it = options.find(name);
  return it == options.end() ? fallback : it->second;
}

int64_t Invocation::Count(const std::string& name, int64_t fallback) const {
  int64_t n = fallback;
  if (Has(name)) absl::SimpleAtoi(Get(name), &n);
  return n;
}

absl::Duration Invocation::Duration(const std::string& name, absl::Duration fallback) const {
  absl::Duration d = fallback;
  if (Has(name)) absl::ParseDuration(Get(name), &d);
  return d;
}

absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& argv) {
  Invocation inv;
  std::vector<std::string> words;
  std::vector<std::pair<std::string, std::string>> command_options;
  bool socket_given = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      inv.help = true;
      continue;
    }
    if (arg == "--") {  // everything after is positional (a name starting with "-")
      words.insert(words.end(), argv.begin() + i + 1, argv.end());
      break;
    }
    if (!absl::StartsWith(arg, "--")) {
      words.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    const OptionType* type = FindOptionType(name);
    if (type == nullptr) return Usage(absl::StrCat("unknown option --", name));
    if (*type == OptionType::kFlag) {
      if (!has_value) value = "true";
    } else if (!has_value) {
      if (i + 1 >= argv.size()) return Usage(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    if (absl::Status s = CheckValue(name, *type, value); !s.ok()) return s;
    if (IsGlobal(name)) {
      ApplyGlobal(name, value, inv.global);
      socket_given |= name == "socket";
    } else {
      command_options.emplace_back(name, value);
    }
  }

  // `aftrctl help [COMMAND...]` is `aftrctl [COMMAND...] --help`.
  if (!words.empty() && words[0] == "help") {
    inv.help = true;
    words.erase(words.begin());
  }
  // The longest command whose words start the positional list.
  for (const CommandSpec& c : Commands()) {
    if (c.words.size() <= words.size() && std::equal(c.words.begin(), c.words.end(), words.begin()) &&
        (inv.command == nullptr || c.words.size() > inv.command->words.size())) {
      inv.command = &c;
    }
  }
  if (inv.command == nullptr) {
    if (words.empty()) {
      if (inv.help) return inv;
      return Usage("no command given");
    }
    std::vector<std::string> subcommands;
    for (const CommandSpec& c : Commands()) {
      if (c.words.size() > 1 && c.words[0] == words[0]) subcommands.push_back(c.words[1]);
    }
    if (!subcommands.empty()) {
      return Usage(absl::StrCat(words[0], ": ",
                                words.size() > 1 ? absl::StrCat("unknown command \"", words[1], "\"; ")
                                                 : "",
                                "expected one of ", absl::StrJoin(subcommands, ", ")));
    }
    return Usage(absl::StrCat("unknown command \"", words[0], "\""));
  }
  if (inv.help) return inv;  // help for the command, whatever else was given

  inv.args.assign(words.begin() + inv.command->words.size(), words.end());
  const CommandSpec& c = *inv.command;
  if (static_cast<int>(inv.args.size()) < c.min_args ||
      static_cast<int>(inv.args.size()) > c.max_args) {
    if (c.max_args == 0) {
      return Usage(absl::StrCat(c.Words(), ": unexpected argument \"", inv.args[0], "\""));
    }
    return Usage(absl::StrCat(c.Words(), ": expected ", c.positional));
  }
  for (auto& [name, value] : command_options) {
    // Captured through a plain reference: clang 14 (the sanitizer build) cannot capture a
    // structured binding in a lambda.
    const auto& option = name;
    bool known = std::any_of(c.options.begin(), c.options.end(),
                             [&](const OptionSpec& o) { return o.name == option; });
    if (!known) return Usage(absl::StrCat(c.Words(), " has no option --", name));
    if (inv.options.count(name)) return Usage(absl::StrCat("--", name, " given twice"));
    inv.options[name] = value;
  }
  for (const OptionSpec& o : c.options) {
    if (o.required && !inv.options.count(o.name)) {
      return Usage(absl::StrCat(c.Words(), ": --", o.name, " is required"));
    }
  }
  for (auto it = inv.options.begin(); it != inv.options.end();) {
    it = it->second == "false" && *FindOptionType(it->first) == OptionType::kFlag
             ? inv.options.erase(it)
             : std::next(it);
  }

  const GlobalOptions& g = inv.global;
  if (!g.target.empty() && socket_given) {
    return Usage("--socket and --target exclude each other");
  }
  if (g.target.empty() && (!g.tls_ca.empty() || !g.tls_cert.empty() || !g.tls_key.empty() ||
                           !g.tls_server_name.empty())) {
    return Usage("--tls_* options need --target (the Unix socket has no TLS)");
  }
  if (g.tls_cert.empty() != g.tls_key.empty()) {
    return Usage("--tls_cert and --tls_key go together");
  }
  return inv;
}

std::string Usage() {
  std::string out =
      "aftrctl: the AFTR's operator CLI, a client of aftrd's gRPC API (aftr.v1.AftrService).\n"
      "\nusage: aftrctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n\nglobal options:\n";
  for (const GlobalSpec& g : GlobalSpecs()) {
    absl::StrAppend(&out, "  ", OptionUsage(g.name, g.type, g.value_name), "\n      ", g.help,
                    "\n");
  }
  absl::StrAppend(&out, "\ncommands:\n");
  for (const CommandSpec& c : Commands()) {
    absl::StrAppend(&out, "  ", CommandLine(c), "\n      ", c.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\n`aftrctl COMMAND --help` describes one command.\n"
                  "exit status: 0 success, 1 the call failed (aftrctl: CODE: message on "
                  "stderr), 2 usage error, 3 health not SERVING, 4 who found nobody.\n");
  return out;
}

std::string CommandHelp(const CommandSpec& c) {
  std::string out = absl::StrCat("usage: aftrctl ", CommandLine(c), "\n\n", c.summary, "\n");
  if (!c.details.empty()) absl::StrAppend(&out, c.details, "\n");
  if (!c.options.empty()) {
    absl::StrAppend(&out, "\noptions:\n");
    for (const OptionSpec& o : c.options) {
      absl::StrAppend(&out, "  ", OptionUsage(o.name, o.type, o.value_name), "\n      ", o.help,
                      "\n");
    }
  }
  absl::StrAppend(&out, "\nGlobal options (--socket, --target, --json, --timeout, ...): "
                        "aftrctl --help.\n");
  return out;
}

}  // namespace aftr::cli
