#include <airssys/arch/guardian.hpp>

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/process.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <linux/sched.h>  // struct clone_args

// The clone3 trampoline of process.cpp: runs fn(arg) on the new stack and
// exits, with no C library (and no sanitizer interceptor) in between.
extern "C" long airssys_clone3_run(void* args, unsigned long size, int (*fn)(void*), void* arg);

namespace airssys::arch {

// Lives in its own mapping, shared with the guardian (CLONE_VM): the slot
// table, the descriptors it needs, and its stack.
struct Guardian::Shared {
  int host_pidfd = -1;   // readable once every thread of the host is gone
  int stop_fd = -1;      // eventfd: orderly stop
  int root_dir = -1;     // the cgroup root, or -1
  int root_base = -1;
  char root_name[64] = {};
  bool group_by_pidfd = false;
  int pid = -1;          // the guardian, host side only
  int pidfd = -1;
  // slot_fd: -1 free, else a pidfd in the shared descriptor table;
  // slot_pgid: > 1 for a group (signalled through the leader), 0 for one
  // process. The host publishes pgid before fd (release); the guardian
  // reads fd first (acquire).
  std::atomic<int> slot_fd[kSlots];
  std::atomic<int> slot_pgid[kSlots];
  alignas(64) unsigned char stack[64 * 1024];
};

namespace {

// The guardian runs without TLS it can rely on (the thread that started it
// may be gone), so it never touches errno, the stack protector's canary or
// a sanitizer: system calls are issued directly.
#define AIRSSYS_GUARDIAN_CODE \
  __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined, no_stack_protector))

#if defined(__x86_64__)
AIRSSYS_GUARDIAN_CODE inline long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) noexcept {
  long ret;
  register long r10 asm("r10") = d;
  asm volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}
#define AIRSSYS_HAVE_GUARDIAN 1
#elif defined(__aarch64__)
AIRSSYS_GUARDIAN_CODE inline long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) noexcept {
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
#define AIRSSYS_HAVE_GUARDIAN 1
#else
#define AIRSSYS_HAVE_GUARDIAN 0
#endif

#if AIRSSYS_HAVE_GUARDIAN
constexpr long kPidfdSignalProcessGroup = 1L << 2;

AIRSSYS_GUARDIAN_CODE void nap_ms(long ms) noexcept {
  struct { long sec, nsec; } ts{0, ms * 1'000'000};
  sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, reinterpret_cast<long>(&ts), 0);
}

// "populated 0" in <root>/cgroup.events, checked every millisecond for up
// to two seconds.
AIRSSYS_GUARDIAN_CODE void wait_root_empty(int root_dir) noexcept {
  const long fd = sys(SYS_openat, root_dir, reinterpret_cast<long>("cgroup.events"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (int i = 0; i < 2000; ++i) {
    char buf[128];
    const long n = sys(SYS_pread64, fd, reinterpret_cast<long>(buf), sizeof buf - 1, 0);
    if (n <= 0) break;
    bool populated = false;
    for (long k = 0; k + 11 < n; ++k)
      if (buf[k] == 'p' && buf[k + 1] == 'o' && buf[k + 9] == ' ' && buf[k + 10] == '1') populated = true;
    if (!populated) break;
    nap_ms(1);
  }
  sys(SYS_close, fd);
}

AIRSSYS_GUARDIAN_CODE void remove_root(Guardian::Shared* s) noexcept {
  wait_root_empty(s->root_dir);
  // Each group directory (g<id>), then the root.
  const long dir = sys(SYS_openat, s->root_dir, reinterpret_cast<long>("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    alignas(8) char buf[4096];
    long n;
    while ((n = sys(SYS_getdents64, dir, reinterpret_cast<long>(buf), sizeof buf)) > 0) {
      for (long off = 0; off < n;) {
        struct Entry {
          std::uint64_t ino;
          std::int64_t off;
          unsigned short reclen;
          unsigned char type;
          char name[1];
        };
        const auto* e = reinterpret_cast<const Entry*>(buf + off);
        if (e->type == 4 /* DT_DIR */ && e->name[0] == 'g')
          sys(SYS_unlinkat, s->root_dir, reinterpret_cast<long>(e->name), AT_REMOVEDIR);
        off += e->reclen;
      }
    }
    sys(SYS_close, dir);
  }
  sys(SYS_unlinkat, s->root_base, reinterpret_cast<long>(s->root_name), AT_REMOVEDIR);
}

AIRSSYS_GUARDIAN_CODE int guardian_main(void* arg) noexcept {
  auto* s = static_cast<Guardian::Shared*>(arg);
  // No signal handler of the host may run here.
  unsigned long all = ~0UL;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&all), 0, 8);
  struct pollfd fds[2] = {{s->host_pidfd, POLLIN, 0}, {s->stop_fd, POLLIN, 0}};
  for (;;) {
    fds[0].revents = fds[1].revents = 0;
    const long rc = sys(SYS_ppoll, reinterpret_cast<long>(fds), 2, 0, 0);
    if (rc < 0) continue;  // EINTR
    if (fds[1].revents != 0) sys(SYS_exit, 0);
    if (fds[0].revents != 0) break;
  }
  // The host is gone: kill everything it registered.
  if (s->root_dir >= 0) {
    const long fd = sys(SYS_openat, s->root_dir, reinterpret_cast<long>("cgroup.kill"), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      sys(SYS_write, fd, reinterpret_cast<long>("1"), 1);
      sys(SYS_close, fd);
    }
  }
  for (std::size_t i = 0; i < Guardian::kSlots; ++i) {
    // acquire: pairs with the host's release store of the fd, so the pgid
    // written before it is visible.
    const int fd = s->slot_fd[i].load(std::memory_order_acquire);
    if (fd < 0) continue;
    const int pgid = s->slot_pgid[i].load(std::memory_order_relaxed);
    if (pgid > 1) {
      if (!s->group_by_pidfd ||
          sys(SYS_pidfd_send_signal, fd, SIGKILL, 0, kPidfdSignalProcessGroup) != 0)
        sys(SYS_kill, -pgid, SIGKILL);  // the group is non-empty or the call is a no-op
    }
    sys(SYS_pidfd_send_signal, fd, SIGKILL, 0, 0);
  }
  if (s->root_dir >= 0) remove_root(s);
  sys(SYS_exit, 0);
  return 0;
}
#endif

}  // namespace

Guardian::~Guardian() { stop(); }

Result<void> Guardian::start(const CgroupRoot* root) noexcept {
#if !AIRSSYS_HAVE_GUARDIAN
  (void)root;
  return Error::make(Errc::InvalidArgument, "the guardian is not available on this architecture");
#else
  if (shared_ != nullptr) return {};
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Error::make_os(errno, "guardian: no memory: %s", std::strerror(errno));
  auto* s = new (mem) Shared;
  for (std::size_t i = 0; i < kSlots; ++i) {
    s->slot_fd[i].store(-1, std::memory_order_relaxed);
    s->slot_pgid[i].store(0, std::memory_order_relaxed);
  }
  s->group_by_pidfd = group_signal_by_pidfd();
  s->host_pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  s->stop_fd = eventfd(0, EFD_CLOEXEC);
  if (root != nullptr && root->valid()) {
    s->root_dir = root->dir_handle();
    s->root_base = root->base_handle();
    const char* slash = std::strrchr(root->path(), '/');
    std::snprintf(s->root_name, sizeof s->root_name, "%.63s", slash != nullptr ? slash + 1 : root->path());
  }
  if (s->host_pidfd < 0 || s->stop_fd < 0) {
    const int e = errno;
    if (s->host_pidfd >= 0) close(s->host_pidfd);
    if (s->stop_fd >= 0) close(s->stop_fd);
    munmap(mem, sizeof(Shared));
    return Error::make_os(e, "guardian: no file descriptor: %s", std::strerror(e));
  }
  // No exit signal: the guardian is not a child a waitpid(-1) or a
  // SIGCHLD handler of the host would see; it is reaped through its pidfd.
  // clone3 through spawn's raw trampoline, not the C library's clone():
  // sanitizers intercept clone() as if it were fork (TSan's wrapper hands
  // the child a pointer into its own stack frame, gone once clone returns
  // in the parent, and runs its fork hooks in the child on the parent's
  // state — both fatal for a CLONE_VM child that outlives the call).
  int pidfd = -1;
  clone_args ca{};
  ca.flags = CLONE_VM | CLONE_FILES | CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  ca.exit_signal = 0;
  ca.stack = reinterpret_cast<std::uint64_t>(s->stack);
  ca.stack_size = sizeof s->stack;
  long pid = airssys_clone3_run(&ca, sizeof ca, guardian_main, s);
  if (pid == -ENOSYS) {  // no clone3 (Linux < 5.3)
    pid = clone(guardian_main, s->stack + sizeof s->stack, CLONE_VM | CLONE_FILES | CLONE_PIDFD, s, &pidfd);
    if (pid < 0) pid = -errno;
  }
  if (pid < 0) {
    const int e = static_cast<int>(-pid);
    close(s->host_pidfd);
    close(s->stop_fd);
    munmap(mem, sizeof(Shared));
    return Error::make_os(e, "guardian: cannot start: %s", std::strerror(e));
  }
  s->pid = static_cast<int>(pid);
  s->pidfd = pidfd;
  shared_ = s;
  return {};
#endif
}

int Guardian::pid() const noexcept { return shared_ != nullptr ? shared_->pid : -1; }

Result<std::uint32_t> Guardian::watch(int kind, int fd, int pgid) noexcept {
  if (shared_ == nullptr) return Error::make(Errc::Dead, "the guardian is not running");
  if (fd < 0) return Error::make(Errc::InvalidArgument, "guardian: a process handle that was already reaped");
  (void)kind;
  for (std::uint32_t i = 0; i < kSlots; ++i) {
    int expected = -1;
    if (shared_->slot_fd[i].load(std::memory_order_relaxed) != -1) continue;
    // Claim the slot with a placeholder (-2 never names a descriptor),
    // write the group, then publish the descriptor (release: the guardian
    // reads the pgid after an acquire load of the fd).
    if (!shared_->slot_fd[i].compare_exchange_strong(expected, -2, std::memory_order_relaxed)) continue;
    shared_->slot_pgid[i].store(pgid, std::memory_order_relaxed);
    shared_->slot_fd[i].store(fd, std::memory_order_release);
    return i;
  }
  return Error::make(Errc::Full, "guardian: all %zu slots are in use", kSlots);
}

Result<std::uint32_t> Guardian::watch_group(const Process& leader) noexcept {
  if (!leader.leads_group() || leader.pgid() <= 1)
    return Error::make(Errc::InvalidArgument, "guardian: process %d does not lead a group", leader.pid());
  return watch(1, leader.wait_handle(), leader.pgid());
}

Result<std::uint32_t> Guardian::watch_process(const Process& p) noexcept {
  return watch(0, p.wait_handle(), 0);
}

void Guardian::unwatch(std::uint32_t slot) noexcept {
  if (shared_ == nullptr || slot >= kSlots) return;
  // relaxed: the pgid is rewritten (release) before the next publish.
  shared_->slot_fd[slot].store(-1, std::memory_order_release);
}

void Guardian::stop() noexcept {
  if (shared_ == nullptr) return;
  Shared* s = shared_;
  shared_ = nullptr;
  const std::uint64_t one = 1;
  (void)!write(s->stop_fd, &one, sizeof one);
  siginfo_t info{};
  while (waitid(P_PIDFD, static_cast<id_t>(s->pidfd), &info, WEXITED | __WALL) < 0 && errno == EINTR) {
  }
  close(s->pidfd);
  close(s->stop_fd);
  close(s->host_pidfd);
  s->~Shared();
  munmap(s, sizeof(Shared));
}

}  // namespace airssys::arch
