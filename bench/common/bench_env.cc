#include "bench/common/bench_env.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace aftr::bench {
namespace {

const char* g_name = "bench";
std::string g_tmp;     // the private temp dir: the bpffs mount point and the benchmark's files
bool g_bpffs = false;  // mounted there

void TearDown() {
  if (g_bpffs) umount2((g_tmp + "/bpffs").c_str(), MNT_DETACH);
  g_bpffs = false;
  if (!g_tmp.empty()) std::system(("rm -rf " + g_tmp).c_str());
  g_tmp.clear();
}

}  // namespace

void SetBenchName(const char* name) { g_name = name; }

void Die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", g_name, what.c_str());
  std::exit(1);
}

void Shell(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null").c_str()) != 0) Die("`" + cmd + "` failed");
}

void WriteSysctl(const char* path, const char* value) {
  std::ofstream f(path);
  f << value;
  f.close();
  if (!f) Die(std::string("cannot write ") + path);
}

std::string EnterPrivateNamespaces(const char* prefix) {
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) Die(std::string("unshare (need root): ") + std::strerror(errno));
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Die("making / private");
  std::string dir = std::string("/tmp/") + prefix + ".XXXXXX";
  if (!mkdtemp(dir.data())) Die("mkdtemp");
  g_tmp = dir;
  std::atexit(TearDown);
  const std::string bpffs = g_tmp + "/bpffs";
  if (mkdir(bpffs.c_str(), 0700) != 0) Die("mkdir " + bpffs);
  if (mount("bpf", bpffs.c_str(), "bpf", 0, "mode=0700") != 0) Die(std::string("mounting bpffs: ") + std::strerror(errno));
  g_bpffs = true;
  Shell("ip link set lo up");
  return g_tmp;
}

}  // namespace aftr::bench
