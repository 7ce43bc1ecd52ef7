// Fixture implementation: namespaces, bpffs, configurations, the attached program.
#include "dp_fixture.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "control/config/config.h"
#include "flows.h"
#include "harness.h"

namespace dptest {
namespace {

std::string g_bpffs;  // this process's private bpffs

void Unmount() {
  if (g_bpffs.empty()) return;
  umount2(g_bpffs.c_str(), MNT_DETACH);
  rmdir(g_bpffs.c_str());
}

// The harness's network namespace, then a private mount namespace with a bpffs of our own.
const std::string& Bpffs() {
  static std::once_flag once;
  std::call_once(once, [] {
    bpftest::Net();
    if (unshare(CLONE_NEWNS) != 0) throw std::runtime_error("unshare(CLONE_NEWNS) (need root)");
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      throw std::runtime_error("making / private");
    }
    char dir[] = "/tmp/aftr-dptest.XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp");
    if (mount("bpf", dir, "bpf", 0, "mode=0700") != 0) {
      rmdir(dir);
      throw std::runtime_error(std::string("mounting bpffs: ") + std::strerror(errno));
    }
    g_bpffs = dir;
    atexit(Unmount);
  });
  return g_bpffs;
}

int AttachedProgFd(int ifindex) {
  uint32_t id = AttachedProgId(ifindex);
  if (id == 0) throw std::runtime_error("no XDP program attached");
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw std::runtime_error("bpf_prog_get_fd_by_id");
  return fd;
}

}  // namespace

std::string FreshPinPath() {
  static int n = 0;
  const std::string& base = Bpffs();
  // A new test starts: whatever the last one left attached goes (tests share the veths).
  for (int ifindex : {bpftest::Net().b4_ifindex, bpftest::Net().inet_ifindex}) {
    bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
  }
  return absl::StrCat(base, "/t", ++n);
}

Config TestConfig(const std::string& pin_path, const std::string& extra) {
  Bpffs();
  std::string text = absl::StrCat(R"pb(
    interfaces: ["aftrbt-b4", "aftrbt-inet"]
    softwire_addresses: "2001:db8:ffff::1"
    b4_prefixes: "2001:db8:100::/40"
    pool_prefixes: "198.51.100.0/30"
    log_file: "/dev/null"
    port_blocks {
      port_min: 1024
      port_max: 2047
      block_size: 64
      max_blocks_per_subscriber: 2
      max_sessions_per_subscriber: 8
      hold_down_seconds: 1
    }
    tables { max_sessions: 4096 max_subscribers: 256 max_pool_addresses: 64 }
    fib_cache_ms: -1
    api { unix_socket: "-" }
    pin_path: ")pb", pin_path, "\"\n", extra);
  absl::StatusOr<Config> c = aftr::config::ParseConfig(text);
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  return *c;
}

Config WithPools(Config c, const std::vector<std::string>& prefixes) {
  c.clear_pool_prefixes();
  for (const std::string& p : prefixes) c.add_pool_prefixes(p);
  return c;
}

std::string RecordingSink::Codes() const {
  std::string s;
  for (const auto& e : events_) absl::StrAppend(&s, s.empty() ? "" : " ", aftr::events::EventCode(e.type));
  return s;
}

uint32_t AttachedProgId(int ifindex) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0) throw std::runtime_error("bpf_xdp_query");
  return q.drv_prog_id;
}

std::string AttachedProgName(int ifindex) {
  int fd = AttachedProgFd(ifindex);
  bpf_prog_info info = {};
  uint32_t len = sizeof(info);
  bpf_obj_get_info_by_fd(fd, &info, &len);
  close(fd);
  return info.name;
}

int RunAttached(const bpftest::Bytes& frame, int ingress_ifindex) {
  int fd = AttachedProgFd(bpftest::Net().b4_ifindex);
  bpftest::Bytes out(frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = frame.size();
  ctx.ingress_ifindex = ingress_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = 1);
  int err = bpf_prog_test_run_opts(fd, &opts);
  close(fd);
  if (err != 0) throw std::runtime_error("BPF_PROG_TEST_RUN on the attached program");
  return static_cast<int>(opts.retval);
}

int SendFromB4(const bpftest::Ip6& b4, uint16_t inner_port) {
  return RunAttached(bpftest::FromB4(b4).Udp(inner_port, bpftest::kRemotePort).Payload("x").Build(),
                     bpftest::Net().b4_ifindex);
}

}  // namespace dptest
