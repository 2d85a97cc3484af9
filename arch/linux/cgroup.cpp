#include <airssys/arch/cgroup.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>

#include <airssys/arch/wait.hpp>

#include "poll_timeout.hpp"

namespace airssys::arch {

namespace {

constexpr long kCgroup2Magic = 0x63677270;  // CGROUP2_SUPER_MAGIC

bool is_cgroup2(const char* path) noexcept {
  struct statfs st {};
  return statfs(path, &st) == 0 && static_cast<long>(st.f_type) == kCgroup2Magic;
}

// The mount point of the cgroup2 file system, from /proc/self/mountinfo
// ("id parent major:minor root mountpoint options ... - cgroup2 src opts").
bool find_cgroup2_mount(char (&out)[256]) noexcept {
  FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (f == nullptr) return false;
  char line[1024];
  bool found = false;
  while (!found && std::fgets(line, sizeof line, f) != nullptr) {
    const char* dash = std::strstr(line, " - cgroup2 ");
    if (dash == nullptr) continue;
    char mount[256];
    if (std::sscanf(line, "%*s %*s %*s %*s %255s", mount) == 1) {
      std::snprintf(out, sizeof out, "%s", mount);
      found = true;
    }
  }
  std::fclose(f);
  return found;
}

// This process's cgroup in the v2 hierarchy ("0::/path").
bool own_cgroup(char (&out)[256]) noexcept {
  FILE* f = std::fopen("/proc/self/cgroup", "re");
  if (f == nullptr) return false;
  char line[512];
  bool found = false;
  while (!found && std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "0::", 3) != 0) continue;
    line[std::strcspn(line, "\n")] = '\0';
    std::snprintf(out, sizeof out, "%.255s", line + 3);
    found = true;
  }
  std::fclose(f);
  return found;
}

bool write_file_at(int dir, const char* name, const char* text) noexcept {
  const int fd = openat(dir, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::size_t len = std::strlen(text);
  const bool ok = write(fd, text, len) == static_cast<ssize_t>(len);
  close(fd);
  return ok;
}

// "populated 0|1" from an open cgroup.events.
int read_populated(int events_fd) noexcept {
  char buf[256];
  const ssize_t n = pread(events_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* p = std::strstr(buf, "populated ");
  return p == nullptr ? -1 : p[10] == '1';
}

// Waits for `populated 0` on an events descriptor, up to timeout_ns.
bool wait_unpopulated(int events_fd, std::int64_t timeout_ns) noexcept {
  const std::int64_t deadline = monotonic_ns() + timeout_ns;
  for (;;) {
    const int p = read_populated(events_fd);
    if (p == 0) return true;
    if (p < 0) return false;
    const std::int64_t left = deadline - monotonic_ns();
    if (left <= 0) return false;
    pollfd pfd{events_fd, POLLPRI, 0};
    poll(&pfd, 1, detail::poll_timeout_ms(left));
  }
}

int dup_cloexec(int fd) noexcept { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

std::atomic<unsigned> root_seq{0};

// Removes the empty roots ("airssys-<pid>-<n>" and their "g<id>" groups)
// that runtimes which no longer exist left under `base` — one killed
// before its guardian had finished, say. A root whose pid is alive is
// never touched; rmdir refuses a populated cgroup, so nothing that still
// holds a process is removed.
void remove_stale_roots(int base) noexcept {
  DIR* d = fdopendir(dup_cloexec(base));
  if (d == nullptr) return;
  const pid_t self = getpid();
  while (dirent* e = readdir(d)) {
    int pid = 0;
    unsigned seq = 0;
    if (e->d_type != DT_DIR || std::sscanf(e->d_name, "airssys-%d-%u", &pid, &seq) != 2 || pid <= 1 ||
        pid == self)
      continue;
    char proc[32];
    std::snprintf(proc, sizeof proc, "/proc/%d", pid);
    if (access(proc, F_OK) == 0) continue;
    const int root = openat(base, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) continue;
    if (DIR* groups = fdopendir(dup_cloexec(root))) {
      while (dirent* g = readdir(groups))
        if (g->d_type == DT_DIR && g->d_name[0] == 'g') unlinkat(root, g->d_name, AT_REMOVEDIR);
      closedir(groups);
    }
    close(root);
    unlinkat(base, e->d_name, AT_REMOVEDIR);
  }
  closedir(d);
}

}  // namespace

// ---- CgroupRoot -------------------------------------------------------------

Result<CgroupRoot> CgroupRoot::open(const char* base) noexcept {
  char mount[256] = {};
  char chosen[256] = {};
  if (base != nullptr) {
    if (!is_cgroup2(base))
      return Error::make_code_os(Errc::InvalidArgument, ENOTDIR, "cgroup base '%s' is not a cgroup2 directory", base);
    std::snprintf(chosen, sizeof chosen, "%s", base);
  } else {
    if (!find_cgroup2_mount(mount))
      return Error::make_code_os(Errc::NotFound, ENOENT, "no cgroup2 file system is mounted");
    char own[256] = {};
    // Our own cgroup first (a delegated subtree), when we may write it.
    if (own_cgroup(own) && std::strcmp(own, "/") != 0) {
      char candidate[256];
      if (std::snprintf(candidate, sizeof candidate, "%s%s", mount, own) < static_cast<int>(sizeof candidate) &&
          access(candidate, W_OK) == 0 && is_cgroup2(candidate))
        std::snprintf(chosen, sizeof chosen, "%s", candidate);
    }
    if (chosen[0] == '\0') std::snprintf(chosen, sizeof chosen, "%s", mount);
  }
  CgroupRoot r;
  r.base_ = ::open(chosen, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r.base_ < 0)
    return Error::make_os(errno, "cgroup base '%s': %s", chosen, std::strerror(errno));
  remove_stale_roots(r.base_);
  char name[64];
  std::snprintf(name, sizeof name, "airssys-%d-%u", getpid(), root_seq.fetch_add(1, std::memory_order_relaxed));
  if (mkdirat(r.base_, name, 0755) != 0) {
    const int e = errno;
    return Error::make_code_os(e == EACCES || e == EPERM || e == EROFS ? Errc::InvalidArgument : Errc::Os, e,
                               "cgroup base '%s' is not writable: %s", chosen, std::strerror(e));
  }
  r.dir_ = openat(r.base_, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r.dir_ < 0) {
    const int e = errno;
    unlinkat(r.base_, name, AT_REMOVEDIR);
    return Error::make_os(e, "cgroup '%s/%s': %s", chosen, name, std::strerror(e));
  }
  std::snprintf(r.path_, sizeof r.path_, "%s/%s", chosen, name);
  return r;
}

CgroupRoot::CgroupRoot(CgroupRoot&& o) noexcept : dir_(o.dir_), base_(o.base_) {
  std::memcpy(path_, o.path_, sizeof path_);
  o.dir_ = o.base_ = -1;
  o.path_[0] = '\0';
}

CgroupRoot& CgroupRoot::operator=(CgroupRoot&& o) noexcept {
  if (this != &o) {
    this->~CgroupRoot();
    new (this) CgroupRoot(std::move(o));
  }
  return *this;
}

CgroupRoot::~CgroupRoot() { close_all(); }

void CgroupRoot::close_all() noexcept {
  if (dir_ >= 0) {
    (void)kill_all();
    const int events = openat(dir_, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (events >= 0) {
      wait_unpopulated(events, 2'000'000'000);
      close(events);
    }
    // Remove the group directories left behind, then the root itself.
    if (DIR* d = fdopendir(dup_cloexec(dir_))) {
      while (dirent* e = readdir(d))
        if (e->d_type == DT_DIR && e->d_name[0] != '.') unlinkat(dir_, e->d_name, AT_REMOVEDIR);
      closedir(d);
    }
    const char* slash = std::strrchr(path_, '/');
    if (slash != nullptr) unlinkat(base_, slash + 1, AT_REMOVEDIR);
    close(dir_);
  }
  if (base_ >= 0) close(base_);
  dir_ = base_ = -1;
}

Result<void> CgroupRoot::kill_all() const noexcept {
  if (dir_ < 0) return Error::make(Errc::Dead, "cgroup root is closed");
  if (!write_file_at(dir_, "cgroup.kill", "1"))
    return Error::make_os(errno, "cgroup '%s': cgroup.kill: %s", path_, std::strerror(errno));
  return {};
}

Result<Cgroup> CgroupRoot::create(std::uint64_t id) const noexcept {
  if (dir_ < 0) return Error::make(Errc::Dead, "cgroup root is closed");
  Cgroup g;
  std::snprintf(g.name_, sizeof g.name_, "g%llu", static_cast<unsigned long long>(id));
  if (mkdirat(dir_, g.name_, 0755) != 0)
    return Error::make_os(errno, "cgroup '%s/%s': %s", path_, g.name_, std::strerror(errno));
  g.parent_ = dup_cloexec(dir_);
  g.dir_ = openat(dir_, g.name_, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g.dir_ >= 0) g.events_ = openat(g.dir_, "cgroup.events", O_RDONLY | O_CLOEXEC);
  if (g.parent_ < 0 || g.dir_ < 0 || g.events_ < 0) {
    const int e = errno;
    // Remove it through the root's descriptor: g may have none to do it.
    unlinkat(dir_, g.name_, AT_REMOVEDIR);
    g.name_[0] = '\0';
    return Error::make_os(e, "no file descriptor for cgroup '%s': %s", path_, std::strerror(e));
  }
  return g;
}

// ---- Cgroup -----------------------------------------------------------------

Cgroup::Cgroup(Cgroup&& o) noexcept : dir_(o.dir_), parent_(o.parent_), events_(o.events_) {
  std::memcpy(name_, o.name_, sizeof name_);
  o.dir_ = o.parent_ = o.events_ = -1;
}

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
  if (this != &o) {
    this->~Cgroup();
    new (this) Cgroup(std::move(o));
  }
  return *this;
}

Cgroup::~Cgroup() {
  if (dir_ >= 0 && events_ >= 0 && read_populated(events_) != 0) {
    (void)kill();
    wait_unpopulated(events_, 2'000'000'000);
  }
  if (parent_ >= 0 && name_[0] != '\0') unlinkat(parent_, name_, AT_REMOVEDIR);
  if (events_ >= 0) close(events_);
  if (dir_ >= 0) close(dir_);
  if (parent_ >= 0) close(parent_);
  dir_ = parent_ = events_ = -1;
}

Result<void> Cgroup::kill() const noexcept {
  if (dir_ < 0) return Error::make(Errc::Dead, "cgroup handle is empty");
  if (write_file_at(dir_, "cgroup.kill", "1")) return {};
  if (errno != ENOENT)
    return Error::make_os(errno, "cgroup '%s': cgroup.kill: %s", name_, std::strerror(errno));
  return Error::make_code_os(Errc::NotFound, ENOENT, "cgroup '%s': no cgroup.kill (kernel older than 5.14)", name_);
}

Result<bool> Cgroup::populated() const noexcept {
  if (events_ < 0) return Error::make(Errc::Dead, "cgroup handle is empty");
  const int p = read_populated(events_);
  if (p < 0) return Error::make_os(errno, "cgroup '%s': cannot read cgroup.events", name_);
  return p == 1;
}

Result<void> Cgroup::wait_empty(std::int64_t timeout_ns) const noexcept {
  if (events_ < 0) return Error::make(Errc::Dead, "cgroup handle is empty");
  if (!wait_unpopulated(events_, timeout_ns))
    return Error::make(Errc::Timeout, "cgroup '%s' still has processes", name_);
  return {};
}

std::size_t Cgroup::count_processes() const noexcept {
  if (dir_ < 0) return 0;
  const int fd = openat(dir_, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::size_t lines = 0;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  close(fd);
  return lines;
}

Result<void> Cgroup::remove() noexcept {
  if (dir_ < 0) return Error::make(Errc::Dead, "cgroup handle is empty");
  if (unlinkat(parent_, name_, AT_REMOVEDIR) != 0) {
    const int e = errno;
    if (e == EBUSY) return Error::make_code_os(Errc::Full, e, "cgroup '%s' still has processes", name_);
    return Error::make_os(e, "removing cgroup '%s': %s", name_, std::strerror(e));
  }
  name_[0] = '\0';
  close(events_);
  close(dir_);
  close(parent_);
  dir_ = parent_ = events_ = -1;
  return {};
}

}  // namespace airssys::arch
