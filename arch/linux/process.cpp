#include <airssys/arch/process.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

extern char** environ;

namespace airssys::arch {

namespace {

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Checks that `path` names an executable regular file.
Result<void> check_executable(const char* path, const char* program) noexcept {
  struct stat st {};
  if (stat(path, &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      return Error::make_code_os(Errc::NotFound, e, "program '%s' does not exist", program);
    return Error::make_os(e, "program '%s': %s", program, std::strerror(e));
  }
  if (S_ISDIR(st.st_mode))
    return Error::make_code_os(Errc::InvalidArgument, EISDIR, "program '%s' is a directory", program);
  if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
    return Error::make_code_os(Errc::InvalidArgument, EACCES, "program '%s' is not executable", program);
  return {};
}

// Resolves `program` the way execvp would, but with errors that say what
// went wrong: a name with '/' is a path; otherwise each PATH entry is tried.
Result<void> resolve(const char* program, char (&out)[PATH_MAX]) noexcept {
  if (program == nullptr || program[0] == '\0')
    return Error::make(Errc::InvalidArgument, "program is empty");
  if (std::strchr(program, '/') != nullptr) {
    if (std::strlen(program) >= PATH_MAX)
      return Error::make(Errc::InvalidArgument, "program path is longer than %d bytes", PATH_MAX - 1);
    std::strcpy(out, program);
    return check_executable(out, program);
  }
  const char* path = std::getenv("PATH");
  if (path == nullptr || path[0] == '\0') path = "/usr/local/bin:/usr/bin:/bin";
  bool found_unusable = false;
  Error unusable;
  for (const char* dir = path; *dir != '\0';) {
    const char* end = std::strchr(dir, ':');
    const std::size_t len = end != nullptr ? static_cast<std::size_t>(end - dir) : std::strlen(dir);
    if (len > 0 && len + 1 + std::strlen(program) < PATH_MAX) {
      std::memcpy(out, dir, len);
      out[len] = '/';
      std::strcpy(out + len + 1, program);
      auto ok = check_executable(out, program);
      if (ok) return {};
      if (ok.code() != Errc::NotFound && !found_unusable) {
        found_unusable = true;
        unusable = ok.error();
      }
    }
    if (end == nullptr) break;
    dir = end + 1;
  }
  if (found_unusable) return unusable;
  return Error::make_code_os(Errc::NotFound, ENOENT, "program '%s' not found in PATH", program);
}

Result<void> check_working_dir(const char* dir) noexcept {
  struct stat st {};
  if (stat(dir, &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      return Error::make_code_os(Errc::NotFound, e, "working_dir '%s' does not exist", dir);
    return Error::make_os(e, "working_dir '%s': %s", dir, std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode))
    return Error::make_code_os(Errc::InvalidArgument, ENOTDIR, "working_dir '%s' is not a directory", dir);
  return {};
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() noexcept {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

void reap(int pid) noexcept {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Process::Process(Process&& o) noexcept
    : pid_(o.pid_), pidfd_(o.pidfd_), pgid_(o.pgid_), leads_group_(o.leads_group_) {
  o.pid_ = -1;
  o.pidfd_ = -1;
}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    this->~Process();
    new (this) Process(std::move(o));
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0) {
    // Never leak: a dropped handle takes its process down with it.
    pidfd_send_signal(pidfd_, SIGKILL);
    reap(pid_);
  }
  reset();
}

void Process::reset() noexcept {
  if (pidfd_ >= 0) close(pidfd_);
  pid_ = -1;
  pidfd_ = -1;
  pgid_ = -1;
  leads_group_ = false;
}

Result<Process> spawn(const SpawnSpec& spec) noexcept {
  char path[PATH_MAX];
  if (auto r = resolve(spec.program, path); !r) return r.error();
  if (spec.working_dir != nullptr)
    if (auto r = check_working_dir(spec.working_dir); !r) return r.error();
  if (spec.group == GroupMode::JoinGroup) {
    if (spec.join == nullptr || !spec.join->valid() || !spec.join->leads_group())
      return Error::make(Errc::InvalidArgument,
                         "JoinGroup needs a live group leader spawned by this runtime");
    if (spec.join->pgid() <= 1)
      return Error::make(Errc::InvalidArgument, "JoinGroup to pgid %d refused", spec.join->pgid());
  }

  SpawnSetup s;
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&s.attr, &none);     // the child starts with no signal blocked
  posix_spawnattr_setsigdefault(&s.attr, &all);   // and every handler at its default
  switch (spec.group) {
    case GroupMode::Inherit:
      break;
    case GroupMode::NewGroup:
      flags |= POSIX_SPAWN_SETPGROUP;
      posix_spawnattr_setpgroup(&s.attr, 0);
      break;
    case GroupMode::JoinGroup:
      flags |= POSIX_SPAWN_SETPGROUP;
      posix_spawnattr_setpgroup(&s.attr, spec.join->pgid());
      break;
    case GroupMode::NewSession:
      flags |= POSIX_SPAWN_SETSID;
      break;
  }
  posix_spawnattr_setflags(&s.attr, flags);
  for (int fd = 0; fd < 3; ++fd)
    if (spec.stdio[fd] == StdioMode::Null)
      posix_spawn_file_actions_addopen(&s.actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  if (spec.working_dir != nullptr) posix_spawn_file_actions_addchdir_np(&s.actions, spec.working_dir);
  // Only 0-2 reach the child, whatever the parent forgot to mark O_CLOEXEC.
  posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);

  const char* default_argv[] = {spec.program, nullptr};
  char* const* argv = const_cast<char* const*>(spec.argv != nullptr ? spec.argv : default_argv);
  char* const* envp = spec.envp != nullptr ? const_cast<char* const*>(spec.envp) : environ;
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, path, &s.actions, &s.attr, argv, envp);
  if (rc != 0) {
    if (rc == E2BIG)
      return Error::make_code_os(Errc::InvalidArgument, rc, "argument list for '%s' is too long", spec.program);
    return Error::make_os(rc, "spawning '%s' failed: %s", spec.program, std::strerror(rc));
  }
  // The child is ours and unreaped, so its pid cannot be reused before the
  // pidfd is taken.
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    const int e = errno;
    kill(pid, SIGKILL);
    reap(pid);
    return Error::make_os(e, "no file descriptor to hold process '%s' (pidfd_open: %s)", spec.program,
                          std::strerror(e));
  }
  Process p;
  p.pid_ = pid;
  p.pidfd_ = pidfd;
  switch (spec.group) {
    case GroupMode::Inherit: p.pgid_ = getpgrp(); break;
    case GroupMode::NewGroup:
    case GroupMode::NewSession: p.pgid_ = pid; p.leads_group_ = true; break;
    case GroupMode::JoinGroup: p.pgid_ = spec.join->pgid(); break;
  }
  return p;
}

Result<ExitStatus> wait(Process& p, std::int64_t timeout_ns) noexcept {
  if (!p.valid()) return Error::make(Errc::Dead, "wait on a process handle that was already reaped");
  pollfd pfd{p.pidfd_, POLLIN, 0};
  const int timeout_ms = timeout_ns < 0 ? -1
                         : timeout_ns / 1'000'000 >= INT_MAX ? INT_MAX
                                                             : static_cast<int>((timeout_ns + 999'999) / 1'000'000);
  int rc;
  while ((rc = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  if (rc < 0) return Error::make_os(errno, "waiting for process %d: %s", p.pid_, std::strerror(errno));
  if (rc == 0) return Error::make(Errc::Timeout, "process %d still running after %lld ms", p.pid_,
                                  static_cast<long long>(timeout_ms));
  int status = 0;
  pid_t r;
  while ((r = waitpid(p.pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r < 0) return Error::make_os(errno, "reaping process %d: %s", p.pid_, std::strerror(errno));
  ExitStatus out;
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status); else out.code = WEXITSTATUS(status);
  p.reset();
  return out;
}

Result<void> signal(Process& p, int sig) noexcept {
  if (sig < 0 || sig > SIGRTMAX)
    return Error::make(Errc::InvalidArgument, "signal number %d is out of range (0..%d)", sig, SIGRTMAX);
  if (!p.valid()) return Error::make(Errc::Dead, "signal %d to a process handle that was already reaped", sig);
  if (pidfd_send_signal(p.pidfd_, sig) != 0)
    return Error::make_os(errno, "signal %d to process %d: %s", sig, p.pid_, std::strerror(errno));
  return {};
}

Result<void> signal_group(Process& leader, int sig) noexcept {
  if (sig < 0 || sig > SIGRTMAX)
    return Error::make(Errc::InvalidArgument, "signal number %d is out of range (0..%d)", sig, SIGRTMAX);
  if (!leader.valid())
    return Error::make(Errc::Dead, "signal %d to the group of a process that was already reaped", sig);
  if (!leader.leads_group())
    return Error::make(Errc::InvalidArgument, "process %d does not lead a group this runtime created",
                       leader.pid_);
  if (leader.pgid_ <= 1)
    return Error::make(Errc::InvalidArgument, "signal to process group %d refused", leader.pgid_);
  // The leader is unreaped (at worst a zombie), so its pgid still names
  // this group and cannot have been reused.
  if (killpg(leader.pgid_, sig) != 0)
    return Error::make_os(errno, "signal %d to group %d: %s", sig, leader.pgid_, std::strerror(errno));
  return {};
}

}  // namespace airssys::arch

namespace airssys::arch {

Result<void> become_subreaper() noexcept {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    return Error::make_os(errno, "cannot become child subreaper: %s", std::strerror(errno));
  return {};
}

namespace {
// Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp.
bool read_stat(int pid, char& state, int& ppid, int& pgid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* close_paren = std::strrchr(buf, ')');
  if (close_paren == nullptr) return false;
  return std::sscanf(close_paren + 1, " %c %d %d", &state, &ppid, &pgid) == 3;
}
}  // namespace

std::size_t list_children(int* pids, std::size_t capacity) noexcept {
  // Orphans are re-parented to some thread of this process, so every
  // thread's children list is read.
  std::size_t count = 0;
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) return 0;
  while (dirent* t = readdir(tasks)) {
    if (t->d_name[0] == '.') continue;
    char path[300];  // d_name is at most 255 bytes
    std::snprintf(path, sizeof path, "/proc/self/task/%s/children", t->d_name);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    for (char* p = buf; *p != '\0';) {
      char* end = nullptr;
      const long pid = std::strtol(p, &end, 10);
      if (end == p) break;
      if (count < capacity) pids[count] = static_cast<int>(pid);
      ++count;
      p = end;
    }
  }
  closedir(tasks);
  return count;
}

Result<Process> adopt_child(int pid) noexcept {
  char state = 0;
  int ppid = 0, pgid = 0;
  if (pid <= 1 || !read_stat(pid, state, ppid, pgid) || ppid != getpid())
    return Error::make(Errc::InvalidArgument, "process %d is not a child of this process", pid);
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) return Error::make_os(errno, "no file descriptor to hold process %d: %s", pid, std::strerror(errno));
  Process p;
  p.pid_ = pid;
  p.pidfd_ = pidfd;
  p.pgid_ = pgid;
  p.leads_group_ = false;  // not created by this runtime as a group
  return p;
}

}  // namespace airssys::arch
