#include <airssys/arch/cgroup.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>

#include <airssys/arch/process.hpp>
#include <airssys/arch/wait.hpp>

#include "dir_reader.hpp"
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
  const std::int64_t deadline = add_saturated(monotonic_ns(), timeout_ns);
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

constexpr int kMaxDepth = 64;    // cgroups below a tree's own, at most
constexpr int kNameTries = 16;   // root names tried before giving up

// A new descriptor (its own read offset) for the directory `name` under
// `dir` ("." for `dir` itself).
int open_dir_at(int dir, const char* name) noexcept { return openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

// A directory stream over `name` below `dir`, or null; the descriptor it
// opens is closed when fdopendir fails (on success closedir closes it).
DIR* open_dir_stream(int dir, const char* name) noexcept {
  const int fd = open_dir_at(dir, name);
  if (fd < 0) return nullptr;
  DIR* d = fdopendir(fd);
  if (d == nullptr) close(fd);
  return d;
}

// Removes every cgroup below the directory `dir`, deepest first. A
// listing that changes under it may skip an entry, so a pass that removed
// something is followed by another. rmdir refuses a populated cgroup:
// nothing that holds a process is removed.
void remove_below(int dir, int depth) noexcept {
  if (depth > kMaxDepth) return;
  for (int pass = 0; pass < 4; ++pass) {
    // A reader, not a DIR stream: a tree's removal runs on every restart
    // and allocates nothing.
    const int listing = open_dir_at(dir, ".");
    if (listing < 0) return;
    detail::DirReader d(listing);
    bool removed = false;
    unsigned char type = 0;
    while (const char* name = d.next(&type)) {
      if (type != DT_DIR || name[0] == '.') continue;
      const int sub = open_dir_at(dir, name);
      if (sub >= 0) {
        remove_below(sub, depth + 1);
        close(sub);
      }
      removed |= unlinkat(dir, name, AT_REMOVEDIR) == 0;
    }
    close(listing);
    if (!removed) return;
  }
}

// Removes the cgroup `name` under `parent` and everything below it.
// Returns 0, or the errno of removing `name` itself.
int remove_cgroup_tree(int parent, const char* name) noexcept {
  const int dir = open_dir_at(parent, name);
  if (dir >= 0) {
    remove_below(dir, 1);
    close(dir);
  }
  return unlinkat(parent, name, AT_REMOVEDIR) == 0 ? 0 : errno;
}

// Lines of the file `name` under `dir` (processes in a cgroup.procs). Its
// buffer is not on the stack of the recursion below.
__attribute__((noinline)) std::size_t count_lines_at(int dir, const char* name) noexcept {
  std::size_t lines = 0;
  const int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  close(fd);
  return lines;
}

// Processes in the cgroup `dir` and in every cgroup below it.
std::size_t count_procs_below(int dir, int depth) noexcept {
  std::size_t lines = count_lines_at(dir, "cgroup.procs");
  if (depth >= kMaxDepth) return lines;
  const int listing = open_dir_at(dir, ".");
  if (listing >= 0) {
    detail::DirReader d(listing);
    unsigned char type = 0;
    while (const char* name = d.next(&type)) {
      if (type != DT_DIR || name[0] == '.') continue;
      const int sub = open_dir_at(dir, name);
      if (sub < 0) continue;
      lines += count_procs_below(sub, depth + 1);
      close(sub);
    }
    close(listing);
  }
  return lines;
}

// 1 when the cgroup `name` under `dir` (or one below it) holds a process.
int populated_at(int dir, const char* name) noexcept {
  char path[300];
  std::snprintf(path, sizeof path, "%s/cgroup.events", name);
  const int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const int p = read_populated(fd);
  close(fd);
  return p;
}

// Ends one stale root: kills what lives in it (cgroup.kill reaches every
// cgroup below), waits a bounded time for it to empty, and removes it,
// deepest first. The caller holds the root's lock (or judged it by pid).
void sweep_root(int base, const char* name, int root, StaleSweep& out) noexcept {
  std::size_t trees = 0;
  if (DIR* d = open_dir_stream(root, ".")) {
    while (dirent* g = readdir(d))
      if (g->d_type == DT_DIR && g->d_name[0] != '.') trees += populated_at(root, g->d_name) == 1;
    closedir(d);
  }
  const std::size_t processes = count_procs_below(root, 0);
  if (trees > 0 || processes > 0) {
    (void)write_file_at(root, "cgroup.kill", "1");
    const int events = openat(root, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (events >= 0) {
      wait_unpopulated(events, 2'000'000'000);
      close(events);
    }
  }
  out.trees += trees;
  out.processes += processes;
  if (remove_cgroup_tree(base, name) == 0) ++out.roots;
}

// True when a process numbered `pid` exists in our PID namespace.
bool pid_exists(int pid) noexcept {
  char proc[32];
  std::snprintf(proc, sizeof proc, "/proc/%d", pid);
  return access(proc, F_OK) == 0;
}

// Sweeps the roots under `base` that runtimes which no longer exist left
// behind — killed with their guardian, say — with whatever still lives in
// them. A root is in use while its lock is held (by its runtime, or by
// the guardian after the runtime's death), in whatever PID namespace that
// runtime is; only a root whose lock can be taken is swept, and the lock
// is held while it is. A root named the older way holds no lock: it is
// judged by its pid, which is only meaningful in our own PID namespace.
void sweep_stale_roots(int base, StaleSweep& out) noexcept {
  DIR* d = open_dir_stream(base, ".");
  if (d == nullptr) return;
  const pid_t self = getpid();
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR || std::strncmp(e->d_name, "airssys-", 8) != 0) continue;
    int pid = 0, end = 0;
    unsigned seq = 0;
    unsigned long long ns = 0;
    const bool legacy = std::sscanf(e->d_name, "airssys-%d-%u%n", &pid, &seq, &end) == 2 && e->d_name[end] == '\0';
    end = 0;
    const bool locked_kind =
        !legacy && std::sscanf(e->d_name, "airssys-%d-%llx-%u%n", &pid, &ns, &seq, &end) == 3 && e->d_name[end] == '\0';
    if (!legacy && !locked_kind) continue;  // not a name of ours
    if (legacy && (pid <= 1 || pid == self || pid_exists(pid))) continue;
    const int root = open_dir_at(base, e->d_name);
    if (root < 0) continue;
    if (locked_kind && flock(root, LOCK_EX | LOCK_NB) != 0) {
      close(root);  // its runtime, or that runtime's guardian, holds it
      continue;
    }
    sweep_root(base, e->d_name, root, out);
    close(root);
  }
  closedir(d);
}

// True when `dir` is still the directory `name` under `base` (not one
// removed, and perhaps made again, since it was opened).
bool still_there(int base, const char* name, int dir) noexcept {
  struct stat a {}, b {};
  return fstatat(base, name, &a, 0) == 0 && fstat(dir, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

}  // namespace

bool cgroup_path_within(const char* path, const char* dir) noexcept {
  const std::size_t len = std::strlen(dir);
  if (len == 0 || dir[0] != '/') return false;
  for (const char* p = std::strstr(path, dir); p != nullptr; p = std::strstr(p + 1, dir))
    if (p[len] == '\0' || p[len] == '/') return true;
  return false;
}

std::uint64_t cgroup_namespace_of(int pid) noexcept {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/ns/cgroup", pid);
  struct stat st {};
  return stat(path, &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

CgroupNamespace CgroupNamespace::of(int pid) noexcept {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/ns/cgroup", pid);
  CgroupNamespace ns;
  ns.fd_ = ::open(path, O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (ns.fd_ >= 0 && fstat(ns.fd_, &st) == 0) ns.id_ = static_cast<std::uint64_t>(st.st_ino);
  return ns;
}

CgroupNamespace& CgroupNamespace::operator=(CgroupNamespace&& o) noexcept {
  if (this != &o) {
    this->~CgroupNamespace();
    new (this) CgroupNamespace(std::move(o));
  }
  return *this;
}

CgroupNamespace::~CgroupNamespace() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  id_ = 0;
}

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
  sweep_stale_roots(r.base_, r.swept_);
  // A name is ours once the directory is made, opened and locked, and is
  // still the one we made (a sweep by another runtime that took the lock
  // first removes it; then the next name is tried).
  const int pid = getpid();
  const unsigned long long ns = own_pid_namespace();
  char name[64];
  char first[64] = {};
  for (int attempt = 0; attempt < kNameTries; ++attempt) {
    std::snprintf(name, sizeof name, "airssys-%d-%llx-%u", pid, ns, root_seq.fetch_add(1, std::memory_order_relaxed));
    if (attempt == 0) std::memcpy(first, name, sizeof first);
    if (mkdirat(r.base_, name, 0755) != 0) {
      const int e = errno;
      if (e == EEXIST) continue;  // another runtime's root, or one being swept
      if (e == EACCES || e == EPERM || e == EROFS)
        return Error::make_code_os(Errc::InvalidArgument, e, "cgroup base '%s' is not writable: %s", chosen,
                                   std::strerror(e));
      return Error::make_os(e, "cannot make cgroup '%s/%s': %s", chosen, name, std::strerror(e));
    }
    const int dir = open_dir_at(r.base_, name);
    if (dir < 0) {
      const int e = errno;
      if (e == ENOENT) continue;
      unlinkat(r.base_, name, AT_REMOVEDIR);
      return Error::make_os(e, "cgroup '%s/%s': %s", chosen, name, std::strerror(e));
    }
    if (flock(dir, LOCK_EX | LOCK_NB) != 0 || !still_there(r.base_, name, dir)) {
      close(dir);
      continue;
    }
    r.dir_ = dir;
    std::snprintf(r.path_, sizeof r.path_, "%s/%s", chosen, name);
    return r;
  }
  return Error::make_code_os(Errc::AlreadyExists, EEXIST,
                             "cgroup names '%s'+%d are all held by other runtimes, under '%s'", first,
                             kNameTries - 1, chosen);
}

const char* CgroupRoot::name() const noexcept {
  const char* slash = std::strrchr(path_, '/');
  return slash != nullptr ? slash + 1 : path_;
}

// Makes the root's directory again under its name, locks it and puts it
// at the descriptor number dir_ already has.
bool CgroupRoot::reopen() const noexcept {
  if (dir_ < 0 || base_ < 0) return false;
  if (mkdirat(base_, name(), 0755) != 0 && errno != EEXIST) return false;
  const int fd = open_dir_at(base_, name());
  if (fd < 0) return false;
  const bool ok = flock(fd, LOCK_EX | LOCK_NB) == 0 && still_there(base_, name(), fd) && dup3(fd, dir_, O_CLOEXEC) >= 0;
  close(fd);
  incarnation_ += ok;
  return ok;
}

CgroupRoot::CgroupRoot(CgroupRoot&& o) noexcept
    : dir_(o.dir_), base_(o.base_), swept_(o.swept_), incarnation_(o.incarnation_) {
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
    // Remove the group directories left behind (deepest first), then the
    // root itself; the lock goes with the descriptor.
    remove_below(dir_, 1);
    unlinkat(base_, name(), AT_REMOVEDIR);
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
  if (mkdirat(dir_, g.name_, 0755) != 0) {
    // ENOENT: the root itself is gone (removed behind our back); make it
    // again and retry once.
    int e = errno;
    if (e == ENOENT && reopen()) e = mkdirat(dir_, g.name_, 0755) == 0 ? 0 : errno;
    if (e != 0) return Error::make_os(e, "cgroup '%s/%s': %s", path_, g.name_, std::strerror(e));
  }
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
  if (parent_ >= 0 && name_[0] != '\0') (void)remove_cgroup_tree(parent_, name_);
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
  return dir_ < 0 ? 0 : count_lines_at(dir_, "cgroup.procs");
}

Result<void> Cgroup::remove() noexcept {
  if (dir_ < 0) return Error::make(Errc::Dead, "cgroup handle is empty");
  if (const int e = remove_cgroup_tree(parent_, name_); e != 0) {
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
