// libFuzzer target for the configuration file parser (control/config: ParseConfig, the
// textproto of aftr.config.v1.Config, defaults and validation), as aftrd --config and
// --check_config read it. Invariants: errors say something; a configuration that is accepted
// prints (TextFormat) to text that is accepted again as the same configuration, and its
// warnings can be computed. Built with clang -fsanitize=fuzzer,address,undefined
// (tests/fuzz/CMakeLists.txt); ctest runs it for a bounded time from tests/fuzz/corpus/configs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "control/config/config.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Bigger inputs only slow the search down; LoadConfigFile refuses huge files anyway.
  if (size > 16384) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<aftr::config::v1::Config> c = aftr::config::ParseConfig(text);
  if (!c.ok()) {
    Check(!c.status().message().empty());
    return 0;
  }
  (void)aftr::config::ConfigWarnings(*c);
  std::string printed;
  Check(google::protobuf::TextFormat::PrintToString(*c, &printed));
  const absl::StatusOr<aftr::config::v1::Config> again = aftr::config::ParseConfig(printed);
  Check(again.ok());
  Check(google::protobuf::util::MessageDifferencer::Equals(*c, *again));
  return 0;
}
