// aftrctl's argument parser: commands, options anywhere, typed values, usage errors with
// their messages, help, and the global connection options.
#include "control/cli/args.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"

namespace aftr::cli {
namespace {

Invocation MustParse(const std::vector<std::string>& argv) {
  absl::StatusOr<Invocation> inv = ParseArgs(argv);
  INFO((inv.ok() ? "" : std::string(inv.status().message())));
  REQUIRE(inv.ok());
  return *inv;
}

// The usage error for argv; fails the test if argv parses.
std::string UsageError(const std::vector<std::string>& argv) {
  absl::StatusOr<Invocation> inv = ParseArgs(argv);
  REQUIRE_FALSE(inv.ok());
  CHECK(inv.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(inv.status().message());
}

TEST_CASE("aftrctl args: defaults talk to the default Unix socket", "[aftrctl]") {
  Invocation inv = MustParse({"sessions", "list"});
  REQUIRE(inv.command != nullptr);
  CHECK(inv.command->Words() == "sessions list");
  CHECK_FALSE(inv.help);
  CHECK(inv.args.empty());
  CHECK(inv.options.empty());
  CHECK(inv.global.GrpcTarget() == "unix:/run/aftrd/aftrd.sock");
  CHECK(inv.global.timeout == absl::Seconds(10));
  CHECK_FALSE(inv.global.json);
}

TEST_CASE("aftrctl args: global and command options anywhere, both spellings", "[aftrctl]") {
  Invocation inv = MustParse({"--filter", "b4_address = 2001:db8:a::2", "sessions", "--json",
                              "list", "--all", "--socket=/tmp/a.sock", "--page_size=5",
                              "--timeout", "1500ms"});
  CHECK(inv.command->Words() == "sessions list");
  CHECK(inv.global.json);
  CHECK(inv.global.GrpcTarget() == "unix:/tmp/a.sock");
  CHECK(inv.global.timeout == absl::Milliseconds(1500));
  CHECK(inv.Get("filter") == "b4_address = 2001:db8:a::2");
  CHECK(inv.Has("all"));
  CHECK(inv.Count("page_size", 0) == 5);
  CHECK(inv.Count("absent", 7) == 7);
}

TEST_CASE("aftrctl args: positional arguments and typed options", "[aftrctl]") {
  Invocation release = MustParse({"blocks", "release", "198.51.100.1:1024"});
  CHECK(release.command->Words() == "blocks release");
  CHECK(release.args == std::vector<std::string>{"198.51.100.1:1024"});

  Invocation events = MustParse({"events", "--count", "3", "--duration", "30s"});
  CHECK(events.Count("count", 0) == 3);
  CHECK(events.Duration("duration", absl::ZeroDuration()) == absl::Seconds(30));

  Invocation create = MustParse({"mappings", "create", "--b4", "2001:db8:a::2", "--protocol",
                                 "tcp", "--inner", "192.0.2.10:8080", "--public_port", "2000"});
  CHECK(create.Get("inner") == "192.0.2.10:8080");
  CHECK(create.Count("public_port", 0) == 2000);

  // "--" ends the options: a name may then start with a dash.
  Invocation dashed = MustParse({"mappings", "get", "--", "-odd"});
  CHECK(dashed.args == std::vector<std::string>{"-odd"});

  // Flags may be switched off explicitly.
  Invocation off = MustParse({"stats", "--nonzero=false", "--json=false"});
  CHECK_FALSE(off.Has("nonzero"));
  CHECK_FALSE(off.global.json);
}

TEST_CASE("aftrctl args: TLS over TCP", "[aftrctl]") {
  Invocation inv = MustParse({"--target", "aftr.example.net:9470", "--tls_ca", "ca.pem",
                              "--tls_cert", "c.pem", "--tls_key", "k.pem", "--tls_server_name",
                              "aftr", "health"});
  CHECK(inv.global.GrpcTarget() == "aftr.example.net:9470");
  CHECK(inv.global.tls_ca == "ca.pem");
  CHECK(inv.global.tls_cert == "c.pem");
  CHECK(inv.global.tls_key == "k.pem");
  CHECK(inv.global.tls_server_name == "aftr");
}

TEST_CASE("aftrctl args: usage errors say what is wrong", "[aftrctl]") {
  CHECK(UsageError({}) == "no command given");
  CHECK(UsageError({"frobnicate"}) == "unknown command \"frobnicate\"");
  CHECK(UsageError({"sessions"}) == "sessions: expected one of list, get");
  CHECK(UsageError({"sessions", "frob"}) ==
        "sessions: unknown command \"frob\"; expected one of list, get");
  CHECK(UsageError({"stats", "--bogus"}) == "unknown option --bogus");
  CHECK(UsageError({"stats", "--all"}) == "stats has no option --all");
  CHECK(UsageError({"sessions", "get"}) == "sessions get: expected NAME");
  CHECK(UsageError({"sessions", "get", "a", "b"}) == "sessions get: expected NAME");
  CHECK(UsageError({"stats", "extra"}) == "stats: unexpected argument \"extra\"");
  CHECK(UsageError({"sessions", "list", "--filter"}) == "--filter needs a value");
  CHECK(absl::StrContains(UsageError({"sessions", "list", "--page_size", "abc"}),
                          "--page_size \"abc\": want a whole number"));
  CHECK(absl::StrContains(UsageError({"sessions", "list", "--page_size", "-1"}),
                          "want a whole number"));
  CHECK(absl::StrContains(UsageError({"events", "--duration", "soon"}),
                          "--duration \"soon\": want a positive duration"));
  CHECK(absl::StrContains(UsageError({"events", "--duration", "0s"}), "positive duration"));
  CHECK(absl::StrContains(UsageError({"--timeout", "x", "stats"}), "--timeout \"x\""));
  CHECK(UsageError({"--json=maybe", "stats"}) == "--json takes no value (or =true/=false)");
  CHECK(UsageError({"sessions", "list", "--all", "--all"}) == "--all given twice");
  CHECK(UsageError({"mappings", "create", "--b4", "2001:db8:a::2", "--protocol", "tcp"}) ==
        "mappings create: --inner is required");
  CHECK(UsageError({"--socket", "/x", "--target", "h:1", "stats"}) ==
        "--socket and --target exclude each other");
  CHECK(UsageError({"--tls_ca", "ca.pem", "stats"}) ==
        "--tls_* options need --target (the Unix socket has no TLS)");
  CHECK(UsageError({"--target", "h:1", "--tls_cert", "c.pem", "stats"}) ==
        "--tls_cert and --tls_key go together");
}

TEST_CASE("aftrctl args: help for everything and for each command", "[aftrctl]") {
  Invocation all = MustParse({"--help"});
  CHECK(all.help);
  CHECK(all.command == nullptr);
  CHECK(MustParse({"help"}).help);

  // Help wins over missing arguments.
  Invocation get = MustParse({"sessions", "get", "--help"});
  CHECK(get.help);
  CHECK(get.command->Words() == "sessions get");
  Invocation via_help = MustParse({"help", "blocks", "release"});
  CHECK(via_help.help);
  CHECK(via_help.command->Words() == "blocks release");

  std::string usage = Usage();
  for (const CommandSpec& c : Commands()) {
    INFO(c.Words());
    CHECK(absl::StrContains(usage, "  " + c.Words()));
    CHECK(absl::StrContains(usage, c.summary));
    std::string help = CommandHelp(c);
    CHECK(absl::StartsWith(help, "usage: aftrctl " + c.Words()));
    CHECK(absl::StrContains(help, c.summary));
    for (const OptionSpec& o : c.options) CHECK(absl::StrContains(help, "--" + o.name));
  }
  // Required options are shown without brackets.
  CHECK(absl::StrContains(Usage(), "mappings create --b4 ADDR --protocol tcp|udp --inner "
                                   "ADDR:PORT [--public_port P]"));
  CHECK(absl::StrContains(CommandHelp(*via_help.command), "198.51.100.1:1024 is "
                                                           "portBlocks/198.51.100.1-1024"));
}

}  // namespace
}  // namespace aftr::cli
