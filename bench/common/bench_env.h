// What the benchmarks share: dying with a message, running setup commands, a private network
// and mount namespace with its own bpffs, and big-endian packet bytes. Benchmarks only.
#ifndef AFTR_BENCH_COMMON_BENCH_ENV_H_
#define AFTR_BENCH_COMMON_BENCH_ENV_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace aftr::bench {

// Prints "<name>: what" (name from SetBenchName) and exits 1.
[[noreturn]] void Die(const std::string& what);
void SetBenchName(const char* name);

// Runs a setup command (its output discarded); dies when it fails.
void Shell(const std::string& cmd);
// Writes a /proc/sys value; dies when it cannot.
void WriteSysctl(const char* path, const char* value);

// Leaves the host's network and mount namespaces, so that every interface and mount made
// afterwards vanishes with the process, and mounts a bpffs in a fresh /tmp/<prefix>.XXXXXX
// directory (removed at exit). Returns that directory; the bpffs is <dir>/bpffs. Needs root.
std::string EnterPrivateNamespaces(const char* prefix);

// Big-endian fields and the Internet checksum (RFC 1071) over `len` bytes from `sum`.
inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
inline void Put32(uint8_t* p, uint32_t v) {
  Put16(p, v >> 16);
  Put16(p + 2, v & 0xffff);
}
inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t Get32(const uint8_t* p) { return (uint32_t{Get16(p)} << 16) | Get16(p + 2); }
inline uint16_t Checksum(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace aftr::bench

#endif  // AFTR_BENCH_COMMON_BENCH_ENV_H_
