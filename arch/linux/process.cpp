#include <airssys/arch/process.hpp>
#include <airssys/arch/cgroup.hpp>

#include "dir_reader.hpp"
#include "poll_timeout.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <linux/close_range.h>
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
#include <atomic>
#include <linux/sched.h>
#include <sched.h>
#include <sys/resource.h>
#include <pthread.h>

extern char** environ;

namespace airssys::arch {

namespace {

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

constexpr unsigned kPidfdSignalProcessGroup = 1u << 2;  // PIDFD_SIGNAL_PROCESS_GROUP, Linux 6.9

int pidfd_send_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// True while the process behind `pidfd` is not yet reaped (running, or a
// zombie): its pid, and a group it leads, keep their numbers. Looks only
// (WNOWAIT); false once reaped or for a process that is not our child.
bool unreaped(int pidfd) noexcept {
  siginfo_t info{};
  int r;
  while ((r = waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG | WNOWAIT | __WALL)) < 0 &&
         errno == EINTR) {
  }
  return r == 0;
}

// The test switch of force_group_signal_fallback. relaxed: a test sets it
// before any group exists; nothing else is ordered by it.
std::atomic<bool> group_fallback_forced{false};

// The start of a small /proc file, NUL-terminated; false when it cannot be
// read (the process is gone) or is empty.
// `path` is relative to the directory open at `dir` (AT_FDCWD: the
// working directory) unless absolute.
bool read_text_at(int dir, const char* path, char* buf, std::size_t capacity) noexcept {
  const int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = read(fd, buf, capacity - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

bool read_text(const char* path, char* buf, std::size_t capacity) noexcept {
  return read_text_at(AT_FDCWD, path, buf, capacity);
}

// Whether the file `fd` holds may be executed by this process (its
// effective ids, as exec judges).
bool executable(int fd) noexcept {
  if (syscall(SYS_faccessat2, fd, "", X_OK, AT_EMPTY_PATH | AT_EACCESS) == 0) return true;
  if (errno != ENOSYS) return false;
  char proc[40];  // kernels before 5.8: through the descriptor's /proc link
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  return access(proc, X_OK) == 0;
}

// Opens `path` (relative to the directory `dir`, or AT_FDCWD) as exec would
// find it — every symlink followed — and holds it (O_PATH, close-on-exec)
// if it is an executable regular file, and gives its identity when asked
// (from the same fstat). Errors name `program`.
Result<int> open_executable(int dir, const char* path, const char* program, FileIdentity* identity) noexcept {
  const int fd = openat(dir, path, O_PATH | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == EMFILE || e == ENFILE)
      return Error::make_os(e, "no file descriptor left to spawn '%s': %s", program, std::strerror(e));
    if (e == ENOENT || e == ENOTDIR)
      return Error::make_code_os(Errc::NotFound, e, "program '%s' does not exist", program);
    return Error::make_os(e, "program '%s': %s", program, std::strerror(e));
  }
  struct stat st {};
  Error err;
  if (fstat(fd, &st) != 0) {
    err = Error::make_os(errno, "program '%s': %s", program, std::strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    err = Error::make_code_os(Errc::InvalidArgument, EISDIR, "program '%s' is a directory", program);
  } else if (!S_ISREG(st.st_mode) || !executable(fd)) {
    err = Error::make_code_os(Errc::InvalidArgument, EACCES, "program '%s' is not executable", program);
  } else {
    if (identity != nullptr) *identity = FileIdentity{static_cast<std::uint64_t>(st.st_dev), st.st_ino};
    return fd;
  }
  close(fd);
  return err;
}

// Finds and holds `program` as chdir(working_dir) followed by execvp would
// find it, but with errors that say what went wrong: a name with '/' is a
// path, relative to `working_dir`; any other name is looked up in this
// process's PATH, each relative entry (an empty one is ".") relative to
// `working_dir` too. Returns the O_PATH descriptor, and writes the path it
// was found by to `found` (PATH_MAX bytes) when not null.
Result<int> find_program(const char* program, const char* working_dir, FileIdentity* identity = nullptr,
                         char* found = nullptr) noexcept {
  if (program == nullptr || program[0] == '\0')
    return Error::make(Errc::InvalidArgument, "program is empty");
  if (std::strlen(program) >= PATH_MAX)
    return Error::make(Errc::InvalidArgument, "program path is longer than %d bytes", PATH_MAX - 1);
  struct Dir {
    int fd = AT_FDCWD;
    ~Dir() {
      if (fd >= 0) close(fd);
    }
  } dir;
  if (working_dir != nullptr) {
    dir.fd = open(working_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir.fd < 0) {
      const int e = errno;
      if (e == ENOENT) return Error::make_code_os(Errc::NotFound, e, "working_dir '%s' does not exist", working_dir);
      if (e == ENOTDIR)
        return Error::make_code_os(Errc::InvalidArgument, e, "working_dir '%s' is not a directory", working_dir);
      return Error::make_os(e, "working_dir '%s': %s", working_dir, std::strerror(e));
    }
  }
  if (std::strchr(program, '/') != nullptr) {
    auto fd = open_executable(dir.fd, program, program, identity);
    if (fd && found != nullptr) std::strcpy(found, program);
    return fd;
  }
  const char* path = std::getenv("PATH");
  if (path == nullptr || path[0] == '\0') path = "/usr/local/bin:/usr/bin:/bin";
  bool found_unusable = false;
  Error unusable;
  char candidate[PATH_MAX];
  for (const char* entry = path;;) {
    const char* end = std::strchr(entry, ':');
    const std::size_t len = end != nullptr ? static_cast<std::size_t>(end - entry) : std::strlen(entry);
    const char* base = len > 0 ? entry : ".";
    const std::size_t base_len = len > 0 ? len : 1;
    if (base_len + 1 + std::strlen(program) < PATH_MAX) {
      std::memcpy(candidate, base, base_len);
      candidate[base_len] = '/';
      std::strcpy(candidate + base_len + 1, program);
      auto fd = open_executable(dir.fd, candidate, program, identity);
      if (fd) {
        if (found != nullptr) std::strcpy(found, candidate);
        return fd.value();
      }
      if (fd.code() != Errc::NotFound && !found_unusable) {
        found_unusable = true;
        unusable = fd.error();
      }
    }
    if (end == nullptr) break;
    entry = end + 1;
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

// Waits for the process of `pidfd` to end and reaps it. Through the pidfd,
// not the number: a process the application reaped behind its handle
// (waitpid(-1)) gives ECHILD at once, where a wait by number would wait
// for, and reap, whichever child of ours got the number since.
void reap(int pidfd) noexcept {
  siginfo_t info{};
  while (waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | __WALL) < 0 && errno == EINTR) {
  }
}

// ---------------------------------------------------------------------------
// The child side of spawn. It runs in the parent's address space on a stack
// of its own (CLONE_VM|CLONE_VFORK) while the parent is suspended, so it
// makes raw system calls only: no allocation, no lock, no sanitizer
// runtime, no libc state. A failure is written into `err`/`stage` before the
// child exits; the parent reads them when clone returns.

enum class Stage : int { None, Cgroup, Group, ParentDeath, Limit, Stdio, PassFd, WorkingDir, Exec };

struct ChildArgs {
  int program_fd;              // the file to execute (O_PATH), as checked
  const char* exec_path;       // the path it was found by: a script is executed by it
  char* const* argv;
  char* const* envp;
  const char* working_dir;
  GroupMode group;
  int join_pgid;
  int stdio_src[3];            // fd to place at 0..2, or -1 to inherit
  const int* pass_fds;
  std::size_t pass_fd_count;
  const LimitSpec* limits;
  std::size_t limit_count;
  bool kill_with_parent;
  int parent_pid;
  int cgroup_procs;            // fallback entry into the cgroup, or -1
  bool handlers_cleared;       // clone3 reset every caught signal (CLONE_CLEAR_SIGHAND)
  int err;                     // written by the child on failure
  int stage;
  int stage_index;
};

int rlimit_resource(LimitKind k) noexcept {
  switch (k) {
    case LimitKind::OpenFiles: return RLIMIT_NOFILE;
    case LimitKind::AddressSpace: return RLIMIT_AS;
    case LimitKind::CpuSeconds: return RLIMIT_CPU;
    case LimitKind::Processes: return RLIMIT_NPROC;
    case LimitKind::CoreSize: return RLIMIT_CORE;
    case LimitKind::FileSize: return RLIMIT_FSIZE;
  }
  return -1;
}

#define AIRSSYS_CHILD_CODE __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined, noinline))

AIRSSYS_CHILD_CODE long raw(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) noexcept {
  return syscall(nr, a, b, c, d, e);
}

AIRSSYS_CHILD_CODE int child_fail(ChildArgs* a, Stage stage, int index, long rc) noexcept {
  // syscall() returns -1 and leaves the cause in errno, which here is the
  // suspended parent thread's errno (the child shares its TLS); read it
  // back before anything else can change it.
  (void)rc;
  __atomic_store_n(&a->err, errno, __ATOMIC_RELAXED);
  __atomic_store_n(&a->stage_index, index, __ATOMIC_RELAXED);
  __atomic_store_n(&a->stage, static_cast<int>(stage), __ATOMIC_RELAXED);
  raw(SYS_exit, 127);
  __builtin_unreachable();
}

struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  unsigned long mask;
};

// The signals the child ignores, from its own /proc status ("SigIgn:",
// 16 hex digits, bit n-1 for signal n). Its dispositions are its own
// since clone (no CLONE_SIGHAND), so nothing can change them meanwhile.
// False when /proc cannot tell (not mounted, say).
AIRSSYS_CHILD_CODE bool child_ignored_signals(unsigned long& mask) noexcept {
  const long fd = raw(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/status"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  long len = 0;
  for (long n; len < static_cast<long>(sizeof buf) &&
               (n = raw(SYS_read, fd, reinterpret_cast<long>(buf + len), static_cast<long>(sizeof buf) - len)) > 0;)
    len += n;
  raw(SYS_close, fd);
  static constexpr char kKey[] = "\nSigIgn:\t";
  constexpr long kKeyLen = sizeof kKey - 1;
  for (long at = 0; at + kKeyLen + 16 <= len; ++at) {
    long k = 0;
    while (k < kKeyLen && buf[at + k] == kKey[k]) ++k;
    if (k < kKeyLen) continue;
    unsigned long v = 0;
    for (long i = at + kKeyLen; i < at + kKeyLen + 16; ++i) {
      const char c = buf[i];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v << 4 | static_cast<unsigned long>(d);
    }
    mask = v;
    return true;
  }
  return false;
}

AIRSSYS_CHILD_CODE int child_main(void* arg) noexcept {
  auto* a = static_cast<ChildArgs*>(arg);
  // Every disposition back to its default while all signals are still
  // blocked (the parent blocked them around clone), then unblock. When
  // clone3 already reset the caught ones (CLONE_CLEAR_SIGHAND), only the
  // ignored ones are left: a handful of system calls instead of 62.
  KernelSigaction dfl{};
  unsigned long to_reset = ~0UL;
  if (a->handlers_cleared && !child_ignored_signals(to_reset)) to_reset = ~0UL;
  for (long sig = 1; sig < 65; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP && (to_reset >> (sig - 1) & 1) != 0)
      raw(SYS_rt_sigaction, sig, reinterpret_cast<long>(&dfl), 0, 8);
  unsigned long none = 0;
  raw(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&none), 0, 8);

  if (a->cgroup_procs >= 0) {
    if (long rc = raw(SYS_write, a->cgroup_procs, reinterpret_cast<long>("0"), 1); rc != 1)
      return child_fail(a, Stage::Cgroup, 0, rc);
    // A cgroup namespace rooted at the cgroup just entered, as clone3
    // would have made (see clone_child); without the privilege, none.
    raw(SYS_unshare, CLONE_NEWCGROUP);
  }
  long rc = 0;
  switch (a->group) {
    case GroupMode::Inherit: break;
    case GroupMode::NewGroup: rc = raw(SYS_setpgid, 0, 0); break;
    case GroupMode::JoinGroup: rc = raw(SYS_setpgid, 0, a->join_pgid); break;
    case GroupMode::NewSession: rc = raw(SYS_setsid); break;
  }
  if (rc < 0) return child_fail(a, Stage::Group, 0, rc);
  if (a->kill_with_parent) {
    if ((rc = raw(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL)) < 0) return child_fail(a, Stage::ParentDeath, 0, rc);
    // The parent may have died before the prctl took effect.
    if (raw(SYS_getppid) != a->parent_pid) raw(SYS_exit, 127);
  }
  for (std::size_t i = 0; i < a->limit_count; ++i) {
    struct { std::uint64_t cur, max; } lim{a->limits[i].soft, a->limits[i].hard};
    if ((rc = raw(SYS_prlimit64, 0, rlimit_resource(a->limits[i].kind), reinterpret_cast<long>(&lim), 0)) < 0)
      return child_fail(a, Stage::Limit, static_cast<int>(i), rc);
  }
  for (int fd = 0; fd < 3; ++fd) {
    if (a->stdio_src[fd] < 0) continue;
    if ((rc = raw(SYS_dup3, a->stdio_src[fd], fd, 0)) < 0) return child_fail(a, Stage::Stdio, fd, rc);
  }
  // Everything from 3 up closes at exec, then the passed fds are kept.
  if (raw(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    struct { std::uint64_t cur, max; } lim{};
    raw(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, reinterpret_cast<long>(&lim));
    for (long fd = 3; fd < static_cast<long>(lim.cur); ++fd) raw(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
  }
  for (std::size_t i = 0; i < a->pass_fd_count; ++i)
    if ((rc = raw(SYS_fcntl, a->pass_fds[i], F_SETFD, 0)) < 0)
      return child_fail(a, Stage::PassFd, static_cast<int>(i), rc);
  if (a->working_dir != nullptr)
    if ((rc = raw(SYS_chdir, reinterpret_cast<long>(a->working_dir))) < 0)
      return child_fail(a, Stage::WorkingDir, 0, rc);
  // Exactly the file that was resolved and checked, whatever its path
  // names by now.
  rc = raw(SYS_execveat, a->program_fd, reinterpret_cast<long>(""), reinterpret_cast<long>(a->argv),
           reinterpret_cast<long>(a->envp), AT_EMPTY_PATH);
  if (errno == ENOENT) {
    // The file is held, so ENOENT means it is a script ("#!") — whose
    // interpreter would have to read it as /dev/fd/<program_fd>, which a
    // close-on-exec descriptor does not survive — or its interpreter is
    // missing, which the second try reports. A script is executed by the
    // path it was found by, as execvp would (its $0, dirname "$0" and
    // basename "$0" then mean what scripts expect), and only while that
    // path still names the held file.
    struct statx held {}, named {};
    if (raw(SYS_statx, a->program_fd, reinterpret_cast<long>(""), AT_EMPTY_PATH, STATX_INO,
            reinterpret_cast<long>(&held)) < 0 ||
        raw(SYS_statx, AT_FDCWD, reinterpret_cast<long>(a->exec_path), 0, STATX_INO,
            reinterpret_cast<long>(&named)) < 0)
      return child_fail(a, Stage::Exec, 1, -1);
    if (held.stx_ino != named.stx_ino || held.stx_dev_major != named.stx_dev_major ||
        held.stx_dev_minor != named.stx_dev_minor) {
      errno = ESTALE;
      return child_fail(a, Stage::Exec, 1, -1);
    }
    rc = raw(SYS_execve, reinterpret_cast<long>(a->exec_path), reinterpret_cast<long>(a->argv),
             reinterpret_cast<long>(a->envp));
  }
  return child_fail(a, Stage::Exec, 0, rc);
}

}  // namespace
}  // namespace airssys::arch

// clone3 with a stack of its own for the child: the child starts on that
// stack right after the system call, so it must not return through the
// parent's frames; this trampoline calls fn(arg) and exits. Only the
// registers the kernel preserves across a system call carry fn and arg.
extern "C" long airssys_clone3_run(void* args, unsigned long size, int (*fn)(void*), void* arg);
#if defined(__x86_64__)
asm(R"(
  .text
  .globl airssys_clone3_run
  .type airssys_clone3_run,@function
airssys_clone3_run:
  .cfi_startproc
  movq %rdx, %r8
  movq %rcx, %r9
  movl $435, %eax
  syscall
  testq %rax, %rax
  jnz 1f
  .cfi_undefined rip
  xorl %ebp, %ebp
  movq %r9, %rdi
  call *%r8
  movl %eax, %edi
  movl $60, %eax
  syscall
  hlt
1:
  ret
  .cfi_endproc
  .size airssys_clone3_run, .-airssys_clone3_run
  .section .note.GNU-stack,"",@progbits
  .text
)");
#define AIRSSYS_HAVE_CLONE3_RUN 1
#elif defined(__aarch64__)
asm(R"(
  .text
  .globl airssys_clone3_run
  .type airssys_clone3_run,%function
airssys_clone3_run:
  mov x10, x2
  mov x11, x3
  mov x8, #435
  svc #0
  cbnz x0, 1f
  mov x29, xzr
  mov x30, xzr
  mov x0, x11
  blr x10
  mov x8, #93
  svc #0
  brk #0
1:
  ret
  .size airssys_clone3_run, .-airssys_clone3_run
  .section .note.GNU-stack,"",%progbits
  .text
)");
#define AIRSSYS_HAVE_CLONE3_RUN 1
#else
#define AIRSSYS_HAVE_CLONE3_RUN 0
#endif

namespace airssys::arch {
namespace {

// 0 unknown, 1 clone3 with CLONE_INTO_CGROUP works, 2 it does not (old
// kernel or another architecture): glibc clone, and the child enters the
// cgroup by writing cgroup.procs.
std::atomic<int> clone3_state{AIRSSYS_HAVE_CLONE3_RUN ? 0 : 2};
// 0 unknown or allowed, 2 CLONE_NEWCGROUP is refused (no CAP_SYS_ADMIN).
std::atomic<int> cgroupns_state{0};
// 0 unknown or works, 2 CLONE_CLEAR_SIGHAND is refused (kernel before 5.5).
std::atomic<int> clear_sighand_state{0};
// The test switch of force_full_signal_reset.
std::atomic<bool> full_signal_reset_forced{false};
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

// Runs child_main in a new process that shares our memory until it execs.
// Returns the pid (and the pidfd in *pidfd) or -errno.
long clone_child(ChildArgs& a, int cgroup_dir, int* pidfd) noexcept {
  alignas(16) char stack[32 * 1024];
  long pid = -ENOSYS;
#if AIRSSYS_HAVE_CLONE3_RUN
  if (clone3_state.load(std::memory_order_relaxed) != 2) {
    clone_args ca{};
    // A child born into a cgroup also gets a cgroup namespace, which the
    // kernel roots at that cgroup (CLONE_INTO_CGROUP moves it first): the
    // tree sees its cgroup as "/" and no cgroup outside it, and the
    // runtime can tell its processes by the namespace wherever they go.
    // Making one needs CAP_SYS_ADMIN; without it, the child is spawned
    // without (EPERM once, then never asked again).
    const bool new_ns = cgroup_dir >= 0 && cgroupns_state.load(std::memory_order_relaxed) != 2;
    ca.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | (cgroup_dir >= 0 ? CLONE_INTO_CGROUP : 0) |
               (new_ns ? CLONE_NEWCGROUP : 0);
    ca.pidfd = reinterpret_cast<std::uint64_t>(pidfd);
    ca.exit_signal = SIGCHLD;
    ca.stack = reinterpret_cast<std::uint64_t>(stack);
    ca.stack_size = sizeof stack;
    ca.cgroup = cgroup_dir >= 0 ? static_cast<std::uint64_t>(cgroup_dir) : 0;
    // The kernel resets every caught signal in the child (ignored ones stay
    // ignored, for the child to reset): no handler of ours can run in it.
    a.handlers_cleared = clear_sighand_state.load(std::memory_order_relaxed) != 2 &&
                         !full_signal_reset_forced.load(std::memory_order_relaxed);
    if (a.handlers_cleared) ca.flags |= CLONE_CLEAR_SIGHAND;
    pid = airssys_clone3_run(&ca, sizeof ca, child_main, &a);
    if (pid == -EINVAL && a.handlers_cleared) {
      a.handlers_cleared = false;
      ca.flags &= ~static_cast<std::uint64_t>(CLONE_CLEAR_SIGHAND);
      pid = airssys_clone3_run(&ca, sizeof ca, child_main, &a);
      if (pid != -EINVAL) clear_sighand_state.store(2, std::memory_order_relaxed);
    }
    if (pid == -EPERM && new_ns) {
      ca.flags &= ~static_cast<std::uint64_t>(CLONE_NEWCGROUP);
      pid = airssys_clone3_run(&ca, sizeof ca, child_main, &a);
      if (pid >= 0) cgroupns_state.store(2, std::memory_order_relaxed);
    }
    if (pid >= 0 || (pid != -ENOSYS && pid != -E2BIG && !(pid == -EINVAL && cgroup_dir >= 0))) {
      if (pid >= 0) clone3_state.store(1, std::memory_order_relaxed);
      return pid;
    }
    clone3_state.store(2, std::memory_order_relaxed);
  }
#endif
  // Fallback: glibc clone (no CLONE_INTO_CGROUP); the child writes itself
  // into the cgroup before it can start anything, and resets every signal.
  a.handlers_cleared = false;
  if (cgroup_dir >= 0) {
    a.cgroup_procs = openat(cgroup_dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (a.cgroup_procs < 0) return -errno;
  }
  pid = clone(child_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &a, pidfd);
  const int e = errno;
  if (a.cgroup_procs >= 0) close(a.cgroup_procs);
  return pid >= 0 ? pid : -e;
}

// The file descriptor that becomes the child's stream `fd`, opened here in
// the parent (close-on-exec, above 2) so that errors name their input.
struct StdioFds {
  int child[3] = {-1, -1, -1};
  int parent[3] = {-1, -1, -1};  // our end of a pipe
  ~StdioFds() {
    for (int fd : child) if (fd >= 0) close(fd);
    for (int fd : parent) if (fd >= 0) close(fd);
  }
};

int above_stdio(int fd) noexcept {
  if (fd < 0 || fd > 2) return fd;
  const int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

const char* stream_name(int fd) noexcept { return fd == 0 ? "stdin" : fd == 1 ? "stdout" : "stderr"; }

Result<void> open_stdio(const SpawnSpec& spec, StdioFds& out) noexcept {
  for (int fd = 0; fd < 3; ++fd) {
    const StdioSpec& s = spec.stdio[fd];
    switch (s.mode) {
      case StdioMode::Inherit: break;
      case StdioMode::Null:
        out.child[fd] = above_stdio(open("/dev/null", (fd == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
        if (out.child[fd] < 0)
          return Error::make_os(errno, "%s: cannot open /dev/null: %s", stream_name(fd), std::strerror(errno));
        break;
      case StdioMode::File: {
        if (s.path == nullptr || s.path[0] == '\0')
          return Error::make(Errc::InvalidArgument, "%s: File mode needs a path", stream_name(fd));
        const int flags = fd == 0 ? O_RDONLY : O_WRONLY | O_CREAT | (s.append ? O_APPEND : O_TRUNC);
        // O_NONBLOCK: a FIFO's open would otherwise wait for its other end
        // (a device's, for a carrier) with no bound, and a JoinGroup spawn
        // waits under the executor's lock. A FIFO read with no writer
        // opens at once; one written with no reader is ENXIO.
        const int opened = open(s.path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
        if (opened < 0) {
          const int e = errno;
          if (e == ENXIO)
            return Error::make_code_os(Errc::InvalidArgument, e, "%s file '%s' has no reader (a FIFO nobody has open)",
                                       stream_name(fd), s.path);
          return Error::make_code_os(e == ENOENT ? Errc::NotFound : Errc::InvalidArgument, e,
                                     "%s file '%s' cannot be opened: %s", stream_name(fd), s.path,
                                     std::strerror(e));
        }
        // The child gets an ordinary blocking stream.
        const int fl = fcntl(opened, F_GETFL);
        if (fl < 0 || fcntl(opened, F_SETFL, fl & ~O_NONBLOCK) < 0) {
          const int e = errno;
          close(opened);
          return Error::make_os(e, "%s file '%s': %s", stream_name(fd), s.path, std::strerror(e));
        }
        out.child[fd] = above_stdio(opened);
        if (out.child[fd] < 0)
          return Error::make_os(errno, "%s: no descriptor for '%s': %s", stream_name(fd), s.path, std::strerror(errno));
        break;
      }
      case StdioMode::Pipe: {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
          return Error::make_os(errno, "%s: cannot create a pipe: %s", stream_name(fd), std::strerror(errno));
        const int child_end = fd == 0 ? p[0] : p[1];
        const int parent_end = fd == 0 ? p[1] : p[0];
        out.child[fd] = above_stdio(child_end);
        out.parent[fd] = above_stdio(parent_end);
        if (out.child[fd] < 0 || out.parent[fd] < 0)
          return Error::make_os(errno, "%s: no descriptor for a pipe: %s", stream_name(fd), std::strerror(errno));
        break;
      }
    }
  }
  return {};
}

Error child_error(const ChildArgs& a, const SpawnSpec& spec) noexcept {
  const int e = a.err;
  switch (static_cast<Stage>(a.stage)) {
    case Stage::Cgroup:
      return Error::make_os(e, "'%s': cannot enter the cgroup: %s", spec.program, std::strerror(e));
    case Stage::Group:
      return Error::make_os(e, "'%s': cannot set the process group (pgid %d): %s", spec.program, a.join_pgid,
                            std::strerror(e));
    case Stage::ParentDeath:
      return Error::make_os(e, "'%s': cannot set the parent-death signal: %s", spec.program, std::strerror(e));
    case Stage::Limit:
      return Error::make_code_os(Errc::InvalidArgument, e, "limit #%d for '%s' refused: %s", a.stage_index,
                                 spec.program, std::strerror(e));
    case Stage::Stdio:
      return Error::make_os(e, "'%s': cannot set up %s: %s", spec.program, stream_name(a.stage_index),
                            std::strerror(e));
    case Stage::PassFd:
      return Error::make_code_os(Errc::InvalidArgument, e, "pass_fds: fd %d cannot be passed to '%s': %s",
                                 spec.pass_fds[a.stage_index], spec.program, std::strerror(e));
    case Stage::WorkingDir:
      return Error::make_code_os(Errc::NotFound, e, "working_dir '%s': %s", spec.working_dir, std::strerror(e));
    case Stage::Exec:
      if (a.stage_index == 1) {  // a script, before its exec by path
        if (e == ESTALE)
          return Error::make_code_os(Errc::InvalidArgument, e, "script '%s' was replaced between its check and its exec",
                                     a.exec_path);
        return Error::make_os(e, "script '%s': %s", a.exec_path, std::strerror(e));
      }
      if (e == E2BIG)
        return Error::make_code_os(Errc::InvalidArgument, e, "argument list for '%s' is too long", spec.program);
      if (e == ENOEXEC)
        return Error::make_code_os(Errc::InvalidArgument, e, "program '%s' is not a valid executable", spec.program);
      if (e == ENOENT)  // the program itself is held open
        return Error::make_code_os(Errc::NotFound, e, "program '%s': its interpreter (#!) or loader does not exist",
                                   spec.program);
      if (e == EACCES)
        return Error::make_code_os(Errc::InvalidArgument, e, "program '%s' is not executable", spec.program);
      return Error::make_os(e, "executing '%s' failed: %s", spec.program, std::strerror(e));
    case Stage::None: break;
  }
  return Error::make_os(e, "spawning '%s' failed: %s", spec.program, std::strerror(e));
}

}  // namespace

Process::Process(Process&& o) noexcept
    : pid_(o.pid_), pidfd_(o.pidfd_), pgid_(o.pgid_), leads_group_(o.leads_group_) {
  for (int i = 0; i < 3; ++i) {
    pipes_[i] = o.pipes_[i];
    o.pipes_[i] = -1;
  }
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
    reap(pidfd_);
  }
  reset();
  for (int& fd : pipes_)
    if (fd >= 0) {
      close(fd);
      fd = -1;
    }
}

void Process::reset() noexcept {
  if (pidfd_ >= 0) close(pidfd_);
  pid_ = -1;
  pidfd_ = -1;
  pgid_ = -1;
  leads_group_ = false;
}

void Process::release() noexcept { reset(); }

int Process::take_pipe(int stream) noexcept {
  if (stream < 0 || stream > 2) return -1;
  const int fd = pipes_[stream];
  pipes_[stream] = -1;
  return fd;
}

Result<Process> spawn(const SpawnSpec& spec) noexcept {
  if (spec.working_dir != nullptr)
    if (auto r = check_working_dir(spec.working_dir); !r) return r.error();
  if (spec.program == nullptr || spec.program[0] == '\0')
    return Error::make(Errc::InvalidArgument, "program is empty");
  if (spec.group == GroupMode::JoinGroup) {
    if (spec.join == nullptr || !spec.join->valid() || !spec.join->leads_group())
      return Error::make(Errc::InvalidArgument,
                         "JoinGroup needs a live group leader spawned by this runtime");
    if (spec.join->pgid() <= 1)
      return Error::make(Errc::InvalidArgument, "JoinGroup to pgid %d refused", spec.join->pgid());
  }
  for (std::size_t i = 0; i < spec.pass_fd_count; ++i) {
    const int fd = spec.pass_fds[i];
    if (fd < 3 || fcntl(fd, F_GETFD) < 0)
      return Error::make(Errc::InvalidArgument, "pass_fds: %d is not an open descriptor above 2", fd);
  }
  for (std::size_t i = 0; i < spec.limit_count; ++i)
    if (spec.limits[i].soft > spec.limits[i].hard || rlimit_resource(spec.limits[i].kind) < 0)
      return Error::make(Errc::InvalidArgument, "limit #%zu: soft %llu above hard %llu or unknown kind", i,
                         static_cast<unsigned long long>(spec.limits[i].soft),
                         static_cast<unsigned long long>(spec.limits[i].hard));
  if (spec.cgroup != nullptr && !spec.cgroup->valid())
    return Error::make(Errc::InvalidArgument, "spawning '%s' into a cgroup handle that is empty", spec.program);

  // Opened after pass_fds are checked, so that it cannot take the number
  // of a closed descriptor passed by mistake.
  struct HeldProgram {
    int fd = -1;
    ~HeldProgram() {
      if (fd >= 0) close(fd);
    }
  } own;
  // The path a script is executed by (ChildArgs::exec_path).
  char found[PATH_MAX];
  const char* exec_path = spec.exec_path;
  int program_fd = spec.program_fd;
  if (program_fd < 0) {
    auto fd = find_program(spec.program, spec.working_dir, nullptr, found);
    if (!fd) return fd.error();
    program_fd = own.fd = fd.value();
    exec_path = found;
  } else if (exec_path == nullptr) {
    exec_path = spec.program;
    if (std::strchr(spec.program, '/') == nullptr) {
      char proc[40];
      std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", program_fd);
      const ssize_t n = readlink(proc, found, sizeof found - 1);
      found[n > 0 ? n : 0] = '\0';
      exec_path = found;
    }
  }
  StdioFds stdio;
  if (auto r = open_stdio(spec, stdio); !r) return r.error();

  const char* default_argv[] = {spec.program, nullptr};
  ChildArgs a{};
  a.program_fd = program_fd;
  a.exec_path = exec_path;
  a.argv = const_cast<char* const*>(spec.argv != nullptr ? spec.argv : default_argv);
  a.envp = spec.envp != nullptr ? const_cast<char* const*>(spec.envp) : environ;
  a.working_dir = spec.working_dir;
  a.group = spec.group;
  a.join_pgid = spec.group == GroupMode::JoinGroup ? spec.join->pgid() : 0;
  for (int fd = 0; fd < 3; ++fd) a.stdio_src[fd] = stdio.child[fd];
  a.pass_fds = spec.pass_fds;
  a.pass_fd_count = spec.pass_fd_count;
  a.limits = spec.limits;
  a.limit_count = spec.limit_count;
  a.kill_with_parent = spec.kill_with_parent;
  a.parent_pid = getpid();
  a.cgroup_procs = -1;

  // No handler of ours may run in the child while it shares our memory:
  // block everything around clone; the child resets and unblocks.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  const long pid = clone_child(a, spec.cgroup != nullptr ? spec.cgroup->dir_handle() : -1, &pidfd);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  // The child wrote `a` behind the compiler's back.
  asm volatile("" ::: "memory");
  if (pid < 0) {
    const int e = static_cast<int>(-pid);
    if (e == EMFILE || e == ENFILE)
      return Error::make_os(e, "no file descriptor left to spawn '%s': %s", spec.program, std::strerror(e));
    if (spec.cgroup != nullptr)
      return Error::make_os(e, "spawning '%s' into cgroup '%s' failed: %s", spec.program, spec.cgroup->name(),
                            std::strerror(e));
    return Error::make_os(e, "spawning '%s' failed: %s", spec.program, std::strerror(e));
  }
  if (__atomic_load_n(&a.stage, __ATOMIC_RELAXED) != 0) {
    siginfo_t info;
    while (waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
    }
    close(pidfd);
    return child_error(a, spec);
  }
  Process p;
  p.pid_ = static_cast<int>(pid);
  p.pidfd_ = pidfd;
  for (int fd = 0; fd < 3; ++fd) std::swap(p.pipes_[fd], stdio.parent[fd]);
  switch (spec.group) {
    case GroupMode::Inherit: p.pgid_ = getpgrp(); break;
    case GroupMode::NewGroup:
    case GroupMode::NewSession: p.pgid_ = p.pid_; p.leads_group_ = true; break;
    case GroupMode::JoinGroup: p.pgid_ = spec.join->pgid(); break;
  }
  return p;
}

Result<ExitStatus> wait(Process& p, std::int64_t timeout_ns) noexcept {
  if (!p.valid()) return Error::make(Errc::Dead, "wait on a process handle that was already reaped");
  if (!wait_readable(p.pidfd_, timeout_ns))
    return Error::make(Errc::Timeout, "process %d still running after %lld ms", p.pid_,
                       static_cast<long long>(detail::poll_timeout_ms(timeout_ns)));
  return try_wait(p);
}

Result<ExitStatus> try_wait(Process& p) noexcept {
  if (!p.valid()) return Error::make(Errc::Dead, "wait on a process handle that was already reaped");
  siginfo_t info{};
  int r;
  while ((r = waitid(P_PIDFD, static_cast<id_t>(p.pidfd_), &info, WEXITED | WNOHANG | __WALL)) < 0 &&
         errno == EINTR) {
  }
  if (r < 0) return Error::make_os(errno, "reaping process %d: %s", p.pid_, std::strerror(errno));
  if (info.si_pid == 0) return Error::make(Errc::Timeout, "process %d is still running", p.pid_);
  ExitStatus out;
  if (info.si_code == CLD_EXITED) out.code = info.si_status; else out.signal = info.si_status;
  out.core_dumped = info.si_code == CLD_DUMPED;
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
  // Through the pidfd, the kernel's pid object of the leader names the
  // group itself (ESRCH once nobody is in it), never a reused number.
  if (group_signal_by_pidfd()) {
    if (syscall(SYS_pidfd_send_signal, leader.pidfd_, sig, nullptr, kPidfdSignalProcessGroup) == 0) return {};
    if (errno == ESRCH) return Error::make(Errc::Dead, "signal %d to group %d: no process is left in it", sig, leader.pgid_);
    return Error::make_os(errno, "signal %d to group %d: %s", sig, leader.pgid_, std::strerror(errno));
  }
  // Without it, the number is used only while the leader is unreaped (at
  // worst a zombie): then it still names this group and no other. The
  // handle being valid does not prove it (the application may have reaped
  // the leader with waitpid(-1)), the kernel does.
  if (!unreaped(leader.pidfd_))
    return Error::make(Errc::Dead, "signal %d to group %d refused: its leader %d was reaped, the number may name another group",
                       sig, leader.pgid_, leader.pid_);
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


bool has_children() noexcept {
  siginfo_t info{};
  // WNOWAIT: look only. Without __WALL, children with no exit signal are
  // not counted.
  return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 || errno != ECHILD;
}

bool has_ended_child() noexcept {
  siginfo_t info{};
  return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
}

namespace {
// Appends the pids of a children file's text ("12 34 ") to pids[count..],
// and returns the new count (which goes on counting past `capacity`).
std::size_t append_pids(const char* text, int* pids, std::size_t count, std::size_t capacity) noexcept {
  for (const char* p = text; *p != '\0';) {
    char* end = nullptr;
    const long pid = std::strtol(p, &end, 10);
    if (end == p) break;
    if (count < capacity) pids[count] = static_cast<int>(pid);
    ++count;
    p = end;
  }
  return count;
}

// The children file `name` (relative to the task directory `tasks`) read
// and appended, opened and closed again.
std::size_t append_children_file(int tasks, const char* name, int* pids, std::size_t count,
                                 std::size_t capacity) noexcept {
  char path[272];  // a name is at most 255 bytes
  std::snprintf(path, sizeof path, "%s/children", name);
  char buf[4096];
  return read_text_at(tasks, path, buf, sizeof buf) ? append_pids(buf, pids, count, capacity) : count;
}

// Appends the children of process `who` ("self" or a pid) to pids[count..],
// and returns the new count (which goes on counting past `capacity`).
// A child is attached to the thread that forked it (and an orphan to
// whichever thread it was re-parented to), so every thread's list is read.
std::size_t append_children(const char* who, int* pids, std::size_t count, std::size_t capacity) noexcept {
  char dir[32];
  std::snprintf(dir, sizeof dir, "/proc/%s/task", who);
  const int tasks = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tasks < 0) return count;
  detail::DirReader r(tasks);
  while (const char* name = r.next())
    if (name[0] != '.') count = append_children_file(tasks, name, pids, count, capacity);
  close(tasks);
  return count;
}
}  // namespace

std::size_t list_children(int* pids, std::size_t capacity) noexcept {
  return append_children("self", pids, 0, capacity);
}

ChildLister::~ChildLister() { reset(); }

void ChildLister::drop(Thread& t) noexcept {
  if (t.children >= 0) close(t.children);
  if (t.comm >= 0) close(t.comm);
  t = Thread{};
}

void ChildLister::reset() noexcept {
  for (Thread& t : threads_) drop(t);
  if (task_dir_ >= 0) close(task_dir_);
  task_dir_ = -1;
  owner_ = -1;
}

std::size_t ChildLister::held() const noexcept {
  std::size_t n = task_dir_ >= 0 ? 1 : 0;
  for (const Thread& t : threads_) n += (t.children >= 0 ? 1 : 0) + (t.comm >= 0 ? 1 : 0);
  return n;
}

std::size_t ChildLister::list(int* pids, std::size_t capacity) noexcept {
  const int me = getpid();
  // Copies inherited across a fork name the parent's threads.
  if (owner_ != me) reset();
  if (task_dir_ < 0) {
    task_dir_ = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (task_dir_ < 0) return list_children(pids, capacity);
    owner_ = me;
  } else if (lseek(task_dir_, 0, SEEK_SET) != 0) {
    reset();
    return list_children(pids, capacity);
  }
  bool seen[kThreads] = {};
  std::size_t count = 0;
  detail::DirReader r(task_dir_);
  while (const char* name = r.next()) {
    if (name[0] == '.') continue;
    const int tid = std::atoi(name);
    std::size_t slot = kThreads;
    for (std::size_t i = 0; i < kThreads && slot == kThreads; ++i)
      if (threads_[i].tid == tid) slot = i;
    if (slot == kThreads) {
      for (std::size_t i = 0; i < kThreads && slot == kThreads; ++i)
        if (threads_[i].tid == 0) slot = i;
      if (slot == kThreads) {  // more threads than slots: read as list_children does
        count = append_children_file(task_dir_, name, pids, count, capacity);
        continue;
      }
      char path[272];
      Thread& t = threads_[slot];
      std::snprintf(path, sizeof path, "%s/children", name);
      t.children = openat(task_dir_, path, O_RDONLY | O_CLOEXEC);
      std::snprintf(path, sizeof path, "%s/comm", name);
      t.comm = openat(task_dir_, path, O_RDONLY | O_CLOEXEC);
      t.tid = tid;
      if (t.children < 0 || t.comm < 0) {  // ended since the directory was read
        drop(t);
        continue;
      }
    }
    Thread& t = threads_[slot];
    char buf[4096];
    ssize_t n = pread(t.children, buf, sizeof buf - 1, 0);
    // Read after the children: the comm file of a thread that is gone
    // fails (ESRCH), so a list read through it is not trusted. A number
    // listed in the directory but read through a gone thread's descriptor
    // belongs to a new thread: opened afresh.
    char comm[32];
    if (pread(t.comm, comm, sizeof comm, 0) < 0) {
      drop(t);
      count = append_children_file(task_dir_, name, pids, count, capacity);
      continue;
    }
    seen[slot] = true;
    if (n <= 0) continue;
    buf[n] = '\0';
    count = append_pids(buf, pids, count, capacity);
  }
  for (std::size_t i = 0; i < kThreads; ++i)
    if (!seen[i] && threads_[i].tid != 0) drop(threads_[i]);
  return count;
}

Result<Process> adopt_child(int pid) noexcept {
  ProcessInfo info;
  if (pid <= 1 || !process_info(pid, info) || info.ppid != getpid())
    return Error::make(Errc::InvalidArgument, "process %d is not a child of this process", pid);
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) return Error::make_os(errno, "no file descriptor to hold process %d: %s", pid, std::strerror(errno));
  Process p;
  p.pid_ = pid;
  p.pidfd_ = pidfd;
  p.pgid_ = info.pgid;
  p.leads_group_ = false;  // not created by this runtime as a group
  return p;
}

void force_group_signal_fallback(bool on) noexcept { group_fallback_forced.store(on, std::memory_order_relaxed); }

void force_full_signal_reset(bool on) noexcept { full_signal_reset_forced.store(on, std::memory_order_relaxed); }

bool group_signal_by_pidfd() noexcept {
  if (group_fallback_forced.load(std::memory_order_relaxed)) return false;
  static const bool supported = [] {
    // Signal 0 through our own pidfd to the group our pid names: only the
    // flag's acceptance is tested, nothing is delivered. A kernel without
    // the flag says EINVAL; ESRCH only says that we lead no group.
    const int self = pidfd_open(getpid());
    if (self < 0) return false;
    const bool ok = syscall(SYS_pidfd_send_signal, self, 0, nullptr, kPidfdSignalProcessGroup) == 0 || errno == ESRCH;
    close(self);
    return ok;
  }();
  return supported;
}

Result<bool> signal_remaining_group(int pgid, int sig) noexcept {
  if (sig < 0 || sig > SIGRTMAX)
    return Error::make(Errc::InvalidArgument, "signal number %d is out of range (0..%d)", sig, SIGRTMAX);
  if (pgid <= 1) return Error::make(Errc::InvalidArgument, "signal to process group %d refused", pgid);
  if (killpg(pgid, sig) == 0) return true;
  if (errno == ESRCH) return false;
  return Error::make_os(errno, "signal %d to group %d: %s", sig, pgid, std::strerror(errno));
}

std::size_t reap_group_members(int pgid, int keep, int sig, std::size_t* killed_by) noexcept {
  if (pgid <= 1) return 0;
  std::size_t reaped = 0;
  for (;;) {
    // Look first (WNOWAIT) so that `keep` is never reaped.
    siginfo_t info{};
    if (waitid(P_PGID, static_cast<id_t>(pgid), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0) break;
    if (info.si_pid == 0) break;
    if (info.si_pid == keep) {
      // The kept leader is the first ended member waitid reports; reap the
      // others one by one through their pids (our children, unreaped, so
      // the numbers are still theirs).
      int pids[256];
      const std::size_t n = list_children(pids, 256);
      for (std::size_t i = 0; i < n && i < 256; ++i) {
        if (pids[i] == keep) continue;
        ProcessInfo member;
        if (!process_info(pids[i], member) || member.pgid != pgid || !member.ended) continue;
        siginfo_t one{};
        if (waitid(P_PID, static_cast<id_t>(pids[i]), &one, WEXITED | WNOHANG | __WALL) == 0 && one.si_pid != 0) {
          ++reaped;
          if (killed_by != nullptr && one.si_code != CLD_EXITED && one.si_status == sig) ++*killed_by;
        }
      }
      break;
    }
    siginfo_t one{};
    if (waitid(P_PID, static_cast<id_t>(info.si_pid), &one, WEXITED | WNOHANG | __WALL) != 0) break;
    ++reaped;
    if (killed_by != nullptr && one.si_code != CLD_EXITED && one.si_status == sig) ++*killed_by;
  }
  return reaped;
}

bool process_info(int pid, ProcessInfo& out) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  char buf[512];
  if (!read_text(path, buf, sizeof buf)) return false;
  const char* close_paren = std::strrchr(buf, ')');
  if (close_paren == nullptr) return false;
  char state = 0;
  // state ppid pgrp session, then 13 fields (tty_nr .. nice), then
  // num_threads, itrealvalue and starttime.
  unsigned long long start = 0;
  const int got =
      std::sscanf(close_paren + 1, " %c %d %d %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %d %*s %llu",
                  &state, &out.ppid, &out.pgid, &out.sid, &out.threads, &start);
  if (got < 4) return false;
  if (got < 5) out.threads = 0;
  out.start_ticks = got < 6 ? 0 : static_cast<std::uint64_t>(start);
  out.ended = state == 'Z' || state == 'X';
  out.running = state == 'R';
  return true;
}

bool process_exists(int pid) noexcept {
  return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

void for_each_process(bool (*visit)(int pid, void* cookie), void* cookie) noexcept {
  const int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return;
  const int self = getpid();
  detail::DirReader r(proc);
  while (const char* name = r.next()) {
    char* end = nullptr;
    const long pid = std::strtol(name, &end, 10);
    if (end == name || *end != '\0' || pid <= 0 || pid == self) continue;
    if (!visit(static_cast<int>(pid), cookie)) break;
  }
  close(proc);
}

std::uint64_t own_pid_namespace() noexcept {
  struct stat st {};
  return stat("/proc/self/ns/pid", &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

namespace {
// Running processes of group `pgid` other than `except`, by a scan of
// every process in /proc.
std::size_t count_running(int pgid, int except) noexcept {
  struct Count {
    int pgid, except;
    std::size_t running = 0;
  } c{pgid, except};
  for_each_process(
      [](int pid, void* cookie) {
        auto* c = static_cast<Count*>(cookie);
        ProcessInfo info;
        if (pid > 1 && pid != c->except && process_info(pid, info) && info.pgid == c->pgid && info.running)
          ++c->running;
        return true;
      },
      &c);
  return c.running;
}
}  // namespace

std::size_t running_in_group(int pgid) noexcept {
  if (pgid <= 1) return 0;
  return count_running(pgid, -1);
}

bool reap_ended_child(int pid, ExitStatus& status) noexcept {
  if (pid <= 1) return false;
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | __WALL) != 0 || info.si_pid == 0) return false;
  status = ExitStatus{};
  if (info.si_code == CLD_EXITED) status.code = info.si_status; else status.signal = info.si_status;
  status.core_dumped = info.si_code == CLD_DUMPED;
  return true;
}

ProcessGroup::ProcessGroup(ProcessGroup&& o) noexcept : fd_(o.fd_), pgid_(o.pgid_), leader_(o.leader_) {
  o.fd_ = -1;
  o.pgid_ = -1;
  o.leader_ = -1;
}

ProcessGroup& ProcessGroup::operator=(ProcessGroup&& o) noexcept {
  if (this != &o) {
    this->~ProcessGroup();
    new (this) ProcessGroup(std::move(o));
  }
  return *this;
}

ProcessGroup::~ProcessGroup() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Result<ProcessGroup> ProcessGroup::of(const Process& leader) noexcept {
  if (!leader.valid() || !leader.leads_group() || leader.pgid() <= 1)
    return Error::make(Errc::InvalidArgument, "process %d does not lead a group this runtime created", leader.pid());
  const int fd = fcntl(leader.wait_handle(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0)
    return Error::make_os(errno, "no descriptor to hold process group %d: %s", leader.pgid(), std::strerror(errno));
  ProcessGroup g;
  g.fd_ = fd;
  g.pgid_ = leader.pgid();
  g.leader_ = leader.pid();
  return g;
}

bool ProcessGroup::owns_number() const noexcept {
  if (fd_ < 0 || pgid_ <= 1) return false;
  if (group_signal_by_pidfd()) return syscall(SYS_pidfd_send_signal, fd_, 0, nullptr, kPidfdSignalProcessGroup) == 0;
  return unreaped(fd_);
}

Result<bool> ProcessGroup::signal(int sig) noexcept {
  if (sig < 0 || sig > SIGRTMAX)
    return Error::make(Errc::InvalidArgument, "signal number %d is out of range (0..%d)", sig, SIGRTMAX);
  if (fd_ < 0 || pgid_ <= 1) return Error::make(Errc::InvalidArgument, "signal to process group %d refused", pgid_);
  if (group_signal_by_pidfd()) {
    if (syscall(SYS_pidfd_send_signal, fd_, sig, nullptr, kPidfdSignalProcessGroup) == 0) return true;
    if (errno == ESRCH) return false;
    return Error::make_os(errno, "signal %d to group %d: %s", sig, pgid_, std::strerror(errno));
  }
  if (!unreaped(fd_)) return false;  // the number may be another group's by now
  if (killpg(pgid_, sig) == 0) return true;
  if (errno == ESRCH) return false;
  return Error::make_os(errno, "signal %d to group %d: %s", sig, pgid_, std::strerror(errno));
}

namespace {
// Whether a process other than `except` has group `pgid` (a scan of /proc).
bool group_has_process_besides(int pgid, int except) noexcept {
  const int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return true;  // cannot tell: not empty
  detail::DirReader r(proc);
  bool found = false;
  while (!found) {
    const char* name = r.next();
    if (name == nullptr) break;
    char* end = nullptr;
    const long pid = std::strtol(name, &end, 10);
    if (end == name || *end != '\0' || pid <= 1 || pid == except) continue;
    ProcessInfo info;
    found = process_info(static_cast<int>(pid), info) && info.pgid == pgid;
  }
  close(proc);
  return found;
}
}  // namespace

bool ProcessGroup::empty() const noexcept {
  if (fd_ < 0 || pgid_ <= 1) return true;
  const bool leader_unreaped = unreaped(fd_);
  if (group_signal_by_pidfd()) {
    if (syscall(SYS_pidfd_send_signal, fd_, 0, nullptr, kPidfdSignalProcessGroup) != 0) return true;
    if (!leader_unreaped) return false;  // someone is in it, and it is not the leader
  } else if (!leader_unreaped) {
    return true;  // nothing can be known, or signalled, by the number any more
  }
  // The unreaped leader keeps the number this group's: whoever else has
  // it is a member.
  if (!group_has_process_besides(pgid_, leader_)) return true;
  if (unreaped(fd_)) return false;  // still pinned after the scan: a member was found
  // The leader was reaped during the scan: what it found may be another
  // group's. Only the pidfd can still tell.
  return !group_signal_by_pidfd() || syscall(SYS_pidfd_send_signal, fd_, 0, nullptr, kPidfdSignalProcessGroup) != 0;
}

Result<ExitStatus> peek_exit(const Process& p) noexcept {
  if (!p.valid()) return Error::make(Errc::Dead, "wait on a process handle that was already reaped");
  siginfo_t info{};
  int r;
  while ((r = waitid(P_PIDFD, static_cast<id_t>(p.wait_handle()), &info, WEXITED | WNOHANG | WNOWAIT | __WALL)) < 0 &&
         errno == EINTR) {
  }
  if (r < 0) return Error::make_os(errno, "looking at process %d: %s", p.pid(), std::strerror(errno));
  if (info.si_pid == 0) return Error::make(Errc::Timeout, "process %d is still running", p.pid());
  ExitStatus out;
  if (info.si_code == CLD_EXITED) out.code = info.si_status; else out.signal = info.si_status;
  out.core_dumped = info.si_code == CLD_DUMPED;
  return out;
}

std::size_t reap_group_members(const ProcessGroup& g, int keep, int sig, std::size_t* killed_by) noexcept {
  // The numbered reap is checked afterwards: waitid picks members by the
  // number, and an ended child found that way was in this group only if
  // the group still owned the number once it had been found. A child
  // outside it (the number reused by a group of the application's) is
  // left unreaped, and the loop stops.
  if (!g.valid() || g.pgid() <= 1) return 0;
  std::size_t reaped = 0;
  for (;;) {
    siginfo_t info{};
    if (waitid(P_PGID, static_cast<id_t>(g.pgid()), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0) break;
    if (info.si_pid == 0 || !g.owns_number()) break;
    if (info.si_pid == keep) {
      // Falls back on the numbered walk, which skips `keep`; the number is
      // this group's (checked just now, and the kept leader pins it in
      // the fallback; with pidfds a zombie member found there is checked
      // by the same rule).
      reaped += reap_group_members(g.pgid(), keep, sig, killed_by);
      break;
    }
    siginfo_t one{};
    if (waitid(P_PID, static_cast<id_t>(info.si_pid), &one, WEXITED | WNOHANG | __WALL) != 0 || one.si_pid == 0) break;
    ++reaped;
    if (killed_by != nullptr && one.si_code != CLD_EXITED && one.si_status == sig) ++*killed_by;
  }
  return reaped;
}

std::size_t running_in_group(const ProcessGroup& g) noexcept {
  ChildLister own;
  return running_in_group(g, own, -1);
}

std::size_t running_in_group(const ProcessGroup& g, ChildLister& own, int skip) noexcept {
  if (!g.valid() || !g.owns_number()) return 0;
  // A walk down this process's descendants, not a scan of the host: only
  // a descendant can become our zombie, the thing a member caught inside
  // setsid() by the group's signal would leave unrecognisable. Members are
  // descendants of the leader, or orphans re-parented to us (we are the
  // subreaper) or to a subreaper among them. The leader is not counted: a
  // group leader cannot call setsid(), and it is held by its handle.
  constexpr std::size_t kWalk = 1024;
  int pids[kWalk];
  std::size_t n = own.list(pids, kWalk);
  const std::size_t direct = n;
  std::size_t running = 0;
  std::size_t i = 0;
  for (bool reread = false;; reread = true) {
    for (; i < n && n <= kWalk; ++i) {
      if (pids[i] == skip) continue;
      // The leader's group is known and it is not counted: only its
      // children are wanted (its /proc/<pid>/stat costs as much as they do).
      int threads = 0;  // unknown
      if (pids[i] != g.leader()) {
        ProcessInfo info;
        if (!process_info(pids[i], info)) continue;
        if (info.pgid == g.pgid() && info.running) ++running;
        threads = info.threads;
      }
      char who[16];
      std::snprintf(who, sizeof who, "%d", pids[i]);
      if (threads == 1) {
        // One thread: its children file is the process's, no directory to
        // read. (A thread started since, and a child it forks at once, are
        // missed by this walk as a child forked after its parent's list was
        // read is: the next walk sees them.)
        char task[32];
        std::snprintf(task, sizeof task, "/proc/%d/task/%d", pids[i], pids[i]);
        n = append_children_file(AT_FDCWD, task, pids, n, kWalk);
      } else {
        n = append_children(who, pids, n, kWalk);
      }
    }
    if (reread || n > kWalk) break;
    // An orphan re-parented to us while the walk went down (its parent
    // ended after our list was read, before its own was) is in neither
    // list read so far: our list once more, and what is new in it. Not
    // needed when our children had no children and none of them has ended
    // since: an orphan comes to us only when a process of our subtree
    // ends (a child with no exit signal, the guardian, forks nothing).
    if (n == direct && !has_ended_child()) break;
    int again[256];
    const std::size_t m = own.list(again, 256);
    if (m > 256) n = kWalk + 1;
    for (std::size_t k = 0; k < m && n <= kWalk; ++k) {
      bool seen = false;
      for (std::size_t j = 0; j < n && !seen; ++j) seen = pids[j] == again[k];
      if (seen) continue;
      if (n < kWalk) pids[n] = again[k];
      ++n;
    }
  }
  // More descendants than the walk holds: the whole host, as before.
  if (n > kWalk) running = count_running(g.pgid(), g.leader());
  // Counted by number: only if the group still owned it afterwards.
  return g.owns_number() ? running : 0;
}

int kill_signal() noexcept { return SIGKILL; }
int term_signal() noexcept { return SIGTERM; }
int stop_signal() noexcept { return SIGSTOP; }
int continue_signal() noexcept { return SIGCONT; }
int max_signal() noexcept { return SIGRTMAX; }

Result<int> open_program(const char* program, const char* working_dir, char* out, std::size_t capacity,
                         FileIdentity* identity, char* found, std::size_t found_capacity) noexcept {
  char as_found[PATH_MAX];
  auto fd = find_program(program, working_dir, identity, as_found);
  if (!fd) return fd.error();
  if (found != nullptr) {
    if (std::strlen(as_found) >= found_capacity) {
      close(fd.value());
      return Error::make(Errc::InvalidArgument, "program '%s': the path it was found by is longer than %zu bytes",
                         program, found_capacity > 0 ? found_capacity - 1 : 0);
    }
    std::strcpy(found, as_found);
  }
  // The kernel's name for the open file: every symlink and ".." resolved,
  // no allocation, and no second lookup that could land elsewhere.
  char proc[40];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd.value());
  const ssize_t n = capacity > 0 ? readlink(proc, out, capacity) : -1;
  Error err;
  if (n < 0) {
    err = Error::make_os(errno, "program '%s': its resolved path cannot be read (%s): %s", program, proc,
                         std::strerror(errno));
  } else if (static_cast<std::size_t>(n) >= capacity) {
    err = Error::make(Errc::InvalidArgument, "program '%s': its resolved path is longer than %zu bytes", program,
                      capacity > 0 ? capacity - 1 : 0);
  } else {
    out[n] = '\0';
    return fd.value();
  }
  close(fd.value());
  return err;
}

bool file_identity(const char* path, FileIdentity& out) noexcept {
  struct stat st {};
  if (path == nullptr || stat(path, &st) != 0) return false;
  out = FileIdentity{static_cast<std::uint64_t>(st.st_dev), st.st_ino};
  return true;
}

const char* const* inherited_environment() noexcept { return environ; }

std::size_t argument_limit() noexcept {
  // The kernel's rule (fs/exec.c): a quarter of RLIMIT_STACK, at most
  // three quarters of the 8 MiB default stack, at least ARG_MAX's 128 KiB.
  constexpr std::size_t kFloor = 128 * 1024, kCeiling = 6 * 1024 * 1024;
  struct rlimit stack {};
  std::size_t limit = kCeiling;
  if (getrlimit(RLIMIT_STACK, &stack) == 0 && stack.rlim_cur != RLIM_INFINITY && stack.rlim_cur / 4 < kCeiling)
    limit = static_cast<std::size_t>(stack.rlim_cur / 4);
  return limit < kFloor ? kFloor : limit;
}

namespace {

// Where the process's environment lies in its current memory (fields 50
// and 51 of stat), and whether it has ended; false when it is gone. Both
// are 0 while an execve has replaced the memory but not yet set the new
// environment up, and once the process is exiting; after an exec they
// are new addresses.
bool environment_bounds(int pid, unsigned long long& start, unsigned long long& end, bool& ended) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  char stat[1024];
  if (!read_text(path, stat, sizeof stat)) return false;
  const char* p = std::strrchr(stat, ')');
  if (p == nullptr || p[1] != ' ') return false;
  ended = p[2] == 'Z' || p[2] == 'X';
  // Fields 3.. follow the command name, each after one space.
  int field = 2;
  for (; *p != '\0' && field < 50; ++p)
    if (*p == ' ') ++field;
  return field == 50 && std::sscanf(p, "%llu %llu", &start, &end) == 2;
}

// Reads the environment that /proc/<pid>/environ gives now and looks for
// `entry`. -1: it cannot be opened (gone, or not ours to read).
int scan_environment(int pid, const char* entry) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/environ", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const std::size_t want = std::strlen(entry) + 1;  // with its NUL
  char buf[4096];
  std::size_t have = 0;  // bytes of the current entry matched so far
  bool found = false, mismatch = false;
  ssize_t n;
  while (!found && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && !found; ++i) {
      const char c = buf[i];
      if (!mismatch && have < want && c == (have + 1 == want ? '\0' : entry[have])) {
        if (++have == want) found = true;
        continue;
      }
      mismatch = c != '\0';
      have = 0;
    }
  }
  close(fd);
  return found ? 1 : 0;
}

}  // namespace

Presence environment_contains(int pid, const char* entry) noexcept {
  // The environ file is bound to the memory the process had when it was
  // opened; an execve running meanwhile leaves the read empty or cut
  // short, which is not a verdict. So the environment's bounds are read
  // before and after: a scan that does not find the entry counts only if
  // the same memory, with its environment set up, was there throughout.
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned long long start = 0, end = 0, start2 = 0, end2 = 0;
    bool ended = false;
    if (!environment_bounds(pid, start, end, ended) || ended) return Presence::Absent;  // gone with its memory
    if (end == 0) return Presence::Unknown;  // between the halves of an execve, or on its way out
    if (start == end) {
      // An empty environment — or an execve laying the new one out right
      // now (the kernel sets both bounds to where it starts, then moves
      // the end). Empty only if it stays so.
      bool settled = true;
      for (int look = 0; look < 3 && settled; ++look) {
        usleep(200);
        if (!environment_bounds(pid, start2, end2, ended) || ended) return Presence::Absent;
        settled = start2 == start && end2 == end;
      }
      if (settled) return Presence::Absent;
      continue;
    }
    // -1 (cannot open) is judged like a miss: inside an execve the new
    // memory is briefly not dumpable, and a reader without CAP_SYS_PTRACE
    // is refused; only a refusal with the same memory throughout counts.
    if (scan_environment(pid, entry) == 1) return Presence::Present;
    if (!environment_bounds(pid, start2, end2, ended) || ended) return Presence::Absent;
    if (start2 == start && end2 == end) return Presence::Absent;
    // An execve replaced the memory during the scan: look again.
  }
  return Presence::Unknown;
}

std::size_t environment_entries(int pid, const char* prefix, char* out, std::size_t size,
                                std::size_t max) noexcept {
  if (size == 0 || max == 0) return 0;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/environ", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const std::size_t plen = std::strlen(prefix);
  std::size_t copied = 0;
  std::size_t at = 0;     // bytes of the current entry seen
  bool keep = true;       // the current entry still matches the prefix (and fits)
  char buf[4096];
  ssize_t n;
  while (copied < max && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && copied < max; ++i) {
      const char c = buf[i];
      char* row = out + copied * size;
      if (c == '\0') {
        if (keep && at >= plen) {
          row[at] = '\0';
          ++copied;
        }
        at = 0;
        keep = true;
        continue;
      }
      if (keep && ((at < plen && c != prefix[at]) || at + 1 >= size)) keep = false;
      if (keep) row[at] = c;
      ++at;
    }
  }
  close(fd);
  return copied;
}

bool kill_if_carries(int pid, const char* entry) noexcept {
  if (pid <= 1) return false;
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  // While the pidfd's process lives, `pid` is its number: the check reads
  // that process, and the signal reaches it or nothing.
  const bool sent = environment_contains(pid, entry) == Presence::Present &&
                    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == 0;
  close(pidfd);
  return sent;
}

bool cgroup_of(int pid, char* out, std::size_t capacity) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  char buf[4096];
  if (!read_text(path, buf, sizeof buf)) return false;
  for (char* line = buf; line != nullptr && *line != '\0';) {
    char* next = std::strchr(line, '\n');
    if (next != nullptr) *next++ = '\0';
    if (std::strncmp(line, "0::", 3) == 0) {
      if (std::strlen(line + 3) >= capacity) return false;
      std::strcpy(out, line + 3);
      return true;
    }
    line = next;
  }
  return false;
}

Result<int> open_append(const char* path) noexcept {
  const int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) {
    const int e = errno;
    return Error::make_code_os(e == ENOENT ? Errc::NotFound : Errc::InvalidArgument, e, "file '%s' cannot be opened: %s",
                               path, std::strerror(e));
  }
  return fd;
}

Result<void> write_record(int fd, const char* data, std::size_t len) noexcept {
  while (len > 0) {
    const ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::make_os(errno, "write to fd %d: %s", fd, std::strerror(errno));
    }
    data += n;
    len -= static_cast<std::size_t>(n);
  }
  return {};
}

void close_handle(int fd) noexcept {
  if (fd >= 0) close(fd);
}

Result<int> duplicate_handle(int fd) noexcept {
  const int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) return Error::make_os(errno, "duplicating fd %d: %s", fd, std::strerror(errno));
  return d;
}

bool wait_readable(int fd, std::int64_t timeout_ns) noexcept {
  pollfd pfd{fd, POLLIN, 0};
  const int timeout_ms = detail::poll_timeout_ms(timeout_ns);
  int rc;
  while ((rc = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return rc > 0;
}

int own_pid() noexcept { return getpid(); }

}  // namespace airssys::arch
