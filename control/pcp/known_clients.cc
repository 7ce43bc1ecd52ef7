#include "control/pcp/known_clients.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "control/common/errno_status.h"

namespace aftr::pcp {

absl::StatusOr<std::unique_ptr<KnownClients>> KnownClients::Open(const std::string& path,
                                                                 size_t limit) {
  auto kc = std::unique_ptr<KnownClients>(new KnownClients());
  kc->path_ = path;
  kc->limit_ = limit;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("pcp.clients_file: cannot create the directory of ",
                                                      path, ": ", ec.message()));
  }
  {
    absl::MutexLock lock(&kc->mu_);
    std::ifstream in(path);
    std::string line;
    // Every whole line ends in a newline: a last line without one was torn by a crash.
    while (std::getline(in, line) && !in.eof() && kc->order_.size() < limit) {
      absl::StatusOr<Ipv6Address> a = ParseIpv6(line);
      if (!a.ok()) continue;  // a torn last line after a crash
      std::string key(reinterpret_cast<const char*>(a->bytes.data()), 16);
      if (kc->known_.insert(key).second) kc->order_.push_back(*a);
    }
    // Rewrite compacted (duplicates and torn lines gone), atomically.
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      for (const Ipv6Address& a : kc->order_) out << a.ToString() << "\n";
      if (!out) return absl::FailedPreconditionError(absl::StrCat("pcp.clients_file: cannot write ", tmp));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("pcp.clients_file: renaming ", tmp));
    }
  }
  return kc;
}

bool KnownClients::Add(const Ipv6Address& b4) {
  absl::MutexLock lock(&mu_);
  std::string key(reinterpret_cast<const char*>(b4.bytes.data()), 16);
  if (known_.contains(key) || order_.size() >= limit_) return true;
  known_.insert(key);
  order_.push_back(b4);
  // One write of a whole line with O_APPEND: a crash leaves whole lines (or a torn last
  // one, skipped at the next Open).
  int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  std::string line = b4.ToString() + "\n";
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  return ok;
}

std::vector<Ipv6Address> KnownClients::All() const {
  absl::MutexLock lock(&mu_);
  return order_;
}

}  // namespace aftr::pcp
