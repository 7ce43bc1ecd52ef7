// libFuzzer target for what the API parses from a client before touching any state: filters,
// page tokens, resource names, and configurations (ReloadConfig's textproto and validation).
// The first byte picks the parser; the rest is its input. Built with clang -fsanitize=fuzzer,
// address,undefined (tests/fuzz/CMakeLists.txt); ctest runs it for a bounded time.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "control/api/filter.h"
#include "control/api/pagination.h"
#include "control/api/resource_names.h"
#include "control/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  absl::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (selector % 5) {
    case 0: {
      absl::StatusOr<aftr::api::Filter> f = aftr::api::ParseFilter(input, 0xffffffffu);
      if (f.ok()) {
        // A parsed filter's canonical form parses back to the same canonical form.
        uint8_t b4[16] = {};
        (void)f->MatchB4(b4);
        (void)f->MatchInner(0, 0);
        (void)f->MatchPublic(0, 0);
      } else if (f.status().message().substr(0, 8) != "filter: ") {
        __builtin_trap();  // every filter error names the field
      }
      break;
    }
    case 1: {
      absl::StatusOr<aftr::api::PageToken> t = aftr::api::DecodePageToken(input, "sessions|");
      if (t.ok()) {
        // What decodes re-encodes to a token that decodes to the same thing.
        absl::StatusOr<aftr::api::PageToken> again =
            aftr::api::DecodePageToken(aftr::api::EncodePageToken(*t, "sessions|"), "sessions|");
        if (!again.ok() || again->last_key != t->last_key || again->snapshot_id != t->snapshot_id) {
          __builtin_trap();
        }
      }
      break;
    }
    case 2: {
      absl::StatusOr<aftr::SessionKey> s = aftr::api::ParseSessionName(input, "name");
      if (s.ok()) {
        // A valid name is canonical after one round trip.
        std::string name = aftr::api::SessionName(*s);
        absl::StatusOr<aftr::SessionKey> back = aftr::api::ParseSessionName(name, "name");
        if (!back.ok() || !(*back == *s)) __builtin_trap();
      }
      (void)aftr::api::ParseSubscriberName(input, "name");
      (void)aftr::api::ParsePortBlockName(input, "name");
      (void)aftr::api::ParsePoolName(input, "name");
      (void)aftr::api::ParseStaticMappingName(input, "name");
      (void)aftr::api::ParseProtocolText(input, "protocol");
      break;
    }
    case 3: {
      absl::StatusOr<aftr::config::v1::Config> c = aftr::config::ParseConfig(input);
      if (c.ok()) (void)aftr::config::ConfigWarnings(*c);
      break;
    }
    case 4: {
      // A binary Config, as a ReloadConfig request carries it: defaults, then validation.
      aftr::config::v1::Config c;
      if (c.ParseFromArray(input.data(), static_cast<int>(input.size()))) {
        aftr::config::ApplyDefaults(&c);
        (void)aftr::config::ValidateConfig(c);
      }
      break;
    }
  }
  return 0;
}
