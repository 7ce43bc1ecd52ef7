// libFuzzer target for the PCP server's clients file (control/pcp/known_clients: one B4
// address per line, a torn last line after a crash), which aftrd reads at start-up and
// rewrites compacted. The input is the file. Invariants: at most `limit` distinct addresses
// come back, in file order; the rewritten file is exactly those addresses, one canonical line
// each, and opening it again gives the same list; an address added afterwards is there at the
// next open. Built with clang -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt);
// ctest runs it for a bounded time from tests/fuzz/corpus/pcp_clients.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "control/pcp/known_clients.h"

namespace {

constexpr size_t kLimit = 16;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// One private directory per process (tmpfs when /dev/shm exists), removed at exit.
const std::string& Path() {
  static const std::string path = [] {
    char dir[] = "/dev/shm/aftr-pcp-clients-fuzz.XXXXXX";
    char fallback[] = "/tmp/aftr-pcp-clients-fuzz.XXXXXX";
    const char* d = mkdtemp(dir);
    if (d == nullptr) d = mkdtemp(fallback);
    Check(d != nullptr);
    static const std::string dir_path = d;
    std::atexit([] {
      std::remove((dir_path + "/clients").c_str());
      std::remove((dir_path + "/clients.tmp").c_str());
      rmdir(dir_path.c_str());
    });
    return dir_path + "/clients";
  }();
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string& path = Path();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    Check(static_cast<bool>(out));
  }
  absl::StatusOr<std::unique_ptr<aftr::pcp::KnownClients>> kc =
      aftr::pcp::KnownClients::Open(path, kLimit);
  Check(kc.ok());  // whatever the contents: a bad line is skipped, never fatal
  const std::vector<aftr::Ipv6Address> all = (*kc)->All();
  Check(all.size() <= kLimit);
  std::set<std::array<uint8_t, 16>> seen;
  std::string expected;
  for (const aftr::Ipv6Address& a : all) {
    Check(seen.insert(a.bytes).second);
    expected += a.ToString() + "\n";
  }
  Check(ReadFile(path) == expected);

  absl::StatusOr<std::unique_ptr<aftr::pcp::KnownClients>> again =
      aftr::pcp::KnownClients::Open(path, kLimit);
  Check(again.ok() && (*again)->All() == all);

  // One more B4, appended as the server does: there at the next open unless the list is full.
  aftr::Ipv6Address extra;
  extra.bytes = {0x20, 0x01, 0x0d, 0xb8, 0xfe, 0xed};
  const bool had = seen.count(extra.bytes) > 0;
  Check((*again)->Add(extra));
  absl::StatusOr<std::unique_ptr<aftr::pcp::KnownClients>> third =
      aftr::pcp::KnownClients::Open(path, kLimit);
  Check(third.ok());
  std::vector<aftr::Ipv6Address> want = all;
  if (!had && all.size() < kLimit) want.push_back(extra);
  Check((*third)->All() == want);
  return 0;
}
