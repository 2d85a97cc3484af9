#include <airssys/arch/guardian.hpp>

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/process.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>

#include <linux/sched.h>  // struct clone_args
#include <sys/eventfd.h>
#include <sys/prctl.h>
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>  // glibc >= 2.35 registers an rseq area per thread
#define AIRSSYS_HAVE_RSEQ_ABI 1
#else
#define AIRSSYS_HAVE_RSEQ_ABI 0
#endif

// The clone3 trampoline of process.cpp: runs fn(arg) on the new stack and
// exits, with no C library (and no sanitizer interceptor) in between.
extern "C" long airssys_clone3_run(void* args, unsigned long size, int (*fn)(void*), void* arg);

namespace airssys::arch {

namespace {

constexpr std::uint32_t kOpWatch = 1;
constexpr std::uint32_t kOpUnwatch = 2;
constexpr std::uint32_t kOpStop = 3;

// How long the guardian leaves requests queued after serving some (its
// reaction to the host's death is not delayed: see guardian_main).
constexpr long kBatchNs = 5'000'000;

constexpr std::uint32_t kKindNone = 0;
constexpr std::uint32_t kKindProcess = 1;  // signalled through its pidfd
constexpr std::uint32_t kKindGroup = 2;    // the group of the pidfd's process, and the process
constexpr std::uint32_t kKindMarker = 3;   // no descriptor: the marker sweep alone

// One request from the host; a kOpWatch carries the descriptor (if any)
// as SCM_RIGHTS and is answered with one int (0, or an errno value).
struct Request {
  std::uint32_t op;
  std::uint32_t slot;
  std::uint32_t kind;
  char marker[Guardian::kMarkerSize];
};

}  // namespace

// The guardian's own memory. The host fills it in a private mapping before
// the clone; the guardian gets a copy (no CLONE_VM) and the host unmaps
// its own. After the clone nothing in here is shared: requests arrive over
// the socket.
struct Guardian::Region {
  int host_pidfd = -1;   // readable once every thread of the host is gone
  int sock = -1;         // the guardian's end of the socketpair
  int poke = -1;         // eventfd the host writes when it waits for an answer
  int root_dir = -1;     // the cgroup root, or -1
  int root_base = -1;
  char root_name[64] = {};
  std::uintptr_t begin = 0, end = 0;  // this mapping, kept when the rest goes
  // The cloning thread's rseq area (in its TLS block, which the guardian
  // inherits): the kernel writes it on the way back from system calls, so
  // it is unregistered before the memory goes, or its mapping is kept.
  std::uintptr_t rseq_area = 0;
  std::uint32_t rseq_len = 0, rseq_sig = 0;
  int slot_fd[kSlots];
  std::uint32_t slot_kind[kSlots];
  char slot_marker[kSlots][kMarkerSize];
  alignas(64) char scratch[8192];  // /proc/self/maps, environ
  alignas(64) char dents[4096];    // getdents64
  alignas(64) unsigned char stack[64 * 1024];
};

namespace {

// The guardian runs without the C library (its mappings are gone), without
// TLS it can rely on, a sanitizer's runtime or a stack protector: only raw
// system calls, and no loop the compiler may turn into a memcpy/memset call.
#if defined(__clang__)
#define AIRSSYS_GUARDIAN_CODE                                                                        \
  __attribute__((no_sanitize("address", "thread", "undefined"), no_stack_protector, \
                 no_builtin("memcpy", "memset", "memmove")))
#else
#define AIRSSYS_GUARDIAN_CODE                                                                          \
  __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined, no_stack_protector, \
                 optimize("no-tree-loop-distribute-patterns")))
#endif

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
// The marker sweep's bound: rounds of a /proc scan. A round that finds
// nothing is confirmed twice (1 ms apart) before the sweep ends, so that a
// process between the halves of an execve (no environment for an instant)
// is seen on the next look.
constexpr int kSweepRounds = 4000;
constexpr int kCleanRoundsNeeded = 3;

AIRSSYS_GUARDIAN_CODE void nap_ms(long ms) noexcept {
  struct {
    long sec, nsec;
  } ts{0, ms * 1'000'000};
  sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, reinterpret_cast<long>(&ts), 0);
}

AIRSSYS_GUARDIAN_CODE bool starts_with(const char* s, const char* prefix) noexcept {
  for (; *prefix != '\0'; ++s, ++prefix)
    if (*s != *prefix) return false;
  return true;
}

// ---- start-up: a process of its own -------------------------------------------

// Closes every descriptor but the ones the guardian needs: the host's
// stdout pipe, sockets and files must not stay open in it.
AIRSSYS_GUARDIAN_CODE void close_others(Guardian::Region* r) noexcept {
  int keep[5] = {r->host_pidfd, r->sock, r->poke, r->root_dir, r->root_base};
  for (int i = 1; i < 5; ++i)  // insertion sort; -1s first
    for (int k = i; k > 0 && keep[k - 1] > keep[k]; --k) {
      const int t = keep[k];
      keep[k] = keep[k - 1];
      keep[k - 1] = t;
    }
  long from = 0;
  for (int i = 0; i < 5; ++i) {
    if (keep[i] < 0) continue;
    if (keep[i] > from) sys(SYS_close_range, from, keep[i] - 1, 0);
    from = keep[i] + 1;
  }
  sys(SYS_close_range, from, ~0U, 0);
}

// Up to the hard limit: the guardian holds one descriptor per slot.
AIRSSYS_GUARDIAN_CODE void raise_nofile() noexcept {
  struct {
    unsigned long long cur, max;
  } lim{0, 0};
  if (sys(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, reinterpret_cast<long>(&lim)) != 0) return;
  lim.cur = lim.max;
  sys(SYS_prlimit64, 0, RLIMIT_NOFILE, reinterpret_cast<long>(&lim), 0);
}

AIRSSYS_GUARDIAN_CODE unsigned long parse_hex(const char*& p, const char* end) noexcept {
  unsigned long v = 0;
  for (; p < end; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + static_cast<unsigned long>(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + static_cast<unsigned long>(c - 'a' + 10);
    else break;
  }
  return v;
}

// One line of /proc/self/maps: unmaps the range unless it is file-backed
// (the guardian's code and constants live there), the kernel's [vdso] /
// [vvar], or the guardian's own region. Returns true when it unmapped.
AIRSSYS_GUARDIAN_CODE bool drop_mapping(Guardian::Region* r, const char* line, const char* end) noexcept {
  const char* p = line;
  const unsigned long lo = parse_hex(p, end);
  if (p >= end || *p != '-') return false;
  ++p;
  const unsigned long hi = parse_hex(p, end);
  while (p < end && *p == ' ') ++p;
  // "rw-p": the host's written copy of a file's data (.data, .bss, the
  // GOT), which the guardian's code never reads.
  const bool private_writable = end - p >= 4 && p[1] == 'w' && p[3] == 'p';
  // Skip perms, offset, device and inode, then the padding.
  for (int field = 0; field < 4; ++field) {
    while (p < end && *p == ' ') ++p;
    while (p < end && *p != ' ') ++p;
  }
  while (p < end && *p == ' ') ++p;
  // File-backed: kept (the guardian's code and constants are in them),
  // except written private copies and shared memory, which hold neither.
  if (p < end && *p == '/' && !private_writable && !starts_with(p, "/memfd:") && !starts_with(p, "/dev/zero") &&
      !starts_with(p, "/SYSV"))
    return false;
  if (p < end && *p == '[' && (starts_with(p, "[vdso") || starts_with(p, "[vvar") || starts_with(p, "[vsyscall")))
    return false;
  if (r->rseq_area != 0 && lo <= r->rseq_area && r->rseq_area < hi) return false;
  bool dropped = false;
  // Anonymous (heap, stacks, the host's data, sanitizer shadows): gone,
  // except this region (which may share a line with a neighbour).
  if (lo < r->begin) {
    const unsigned long stop = hi < r->begin ? hi : r->begin;
    dropped |= sys(SYS_munmap, static_cast<long>(lo), static_cast<long>(stop - lo)) == 0;
  }
  if (hi > r->end) {
    const unsigned long start = lo > r->end ? lo : r->end;
    dropped |= sys(SYS_munmap, static_cast<long>(start), static_cast<long>(hi - start)) == 0;
  }
  return dropped;
}

// Gives back the guardian's copy of the host's memory. Without it the
// guardian would keep every page the host writes after the clone (its copy
// of the old contents), and count as large as the host to the OOM killer.
AIRSSYS_GUARDIAN_CODE void drop_host_memory(Guardian::Region* r) noexcept {
  if (r->rseq_area != 0) {
    // The length must be the one registered, which the C library does not
    // publish as such (glibc 2.35-2.39 register 32 bytes and report 20):
    // the reported size first, then every plausible length.
    constexpr long kUnregister = 1;  // RSEQ_FLAG_UNREGISTER
    long rc = sys(SYS_rseq, static_cast<long>(r->rseq_area), r->rseq_len, kUnregister, r->rseq_sig);
    for (long len = 32; rc == -EINVAL && len <= 1024; len += 4)
      rc = sys(SYS_rseq, static_cast<long>(r->rseq_area), len, kUnregister, r->rseq_sig);
    if (rc == 0) r->rseq_area = 0;
  }
  for (int pass = 0; pass < 4; ++pass) {
    const long fd = sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/maps"), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    bool dropped = false;
    long have = 0;
    for (;;) {
      const long n = sys(SYS_read, fd, reinterpret_cast<long>(r->scratch + have),
                         static_cast<long>(sizeof r->scratch) - have);
      if (n <= 0) break;
      have += n;
      long start = 0;
      for (long i = 0; i < have; ++i) {
        if (r->scratch[i] != '\n') continue;
        dropped |= drop_mapping(r, r->scratch + start, r->scratch + i);
        start = i + 1;
      }
      if (start == 0 && have == static_cast<long>(sizeof r->scratch)) have = 0;  // no line fits: skip it
      for (long i = start; i < have; ++i) r->scratch[i - start] = r->scratch[i];
      have -= start;
    }
    sys(SYS_close, fd);
    if (!dropped) return;
  }
}

// ---- requests -------------------------------------------------------------------

AIRSSYS_GUARDIAN_CODE void reply(Guardian::Region* r, int value) noexcept {
  struct iovec iov;
  iov.iov_base = &value;
  iov.iov_len = sizeof value;
  struct msghdr mh;
  mh.msg_name = nullptr;
  mh.msg_namelen = 0;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = nullptr;
  mh.msg_controllen = 0;
  mh.msg_flags = 0;
  sys(SYS_sendmsg, r->sock, reinterpret_cast<long>(&mh), MSG_NOSIGNAL | MSG_DONTWAIT);
}

AIRSSYS_GUARDIAN_CODE void clear_slot(Guardian::Region* r, std::uint32_t slot) noexcept {
  if (r->slot_fd[slot] >= 0) sys(SYS_close, r->slot_fd[slot]);
  r->slot_fd[slot] = -1;
  r->slot_kind[slot] = kKindNone;
  r->slot_marker[slot][0] = '\0';
}

enum class Served { Idle, Stop, HostGone };

// Handles every request that is waiting, without blocking.
AIRSSYS_GUARDIAN_CODE Served serve(Guardian::Region* r) noexcept {
  for (;;) {
    Request req{};  // a short message leaves the rest zero, never stale
    struct iovec iov;
    iov.iov_base = &req;
    iov.iov_len = sizeof req;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    struct msghdr mh;
    mh.msg_name = nullptr;
    mh.msg_namelen = 0;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    mh.msg_flags = 0;
    const long n = sys(SYS_recvmsg, r->sock, reinterpret_cast<long>(&mh), MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n == -EINTR) continue;
    if (n == -EAGAIN) return Served::Idle;
    if (n <= 0) return Served::HostGone;  // every copy of the host's end is closed
    int fd = -1;
    const struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    if (c != nullptr && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      const unsigned char* data = CMSG_DATA(c);
      fd = static_cast<int>(static_cast<unsigned>(data[0]) | static_cast<unsigned>(data[1]) << 8 |
                            static_cast<unsigned>(data[2]) << 16 | static_cast<unsigned>(data[3]) << 24);
    }
    if (n != static_cast<long>(sizeof req) || req.slot >= Guardian::kSlots) {
      if (fd >= 0) sys(SYS_close, fd);
      if (req.op == kOpWatch) reply(r, EINVAL);
      continue;
    }
    if (req.op == kOpStop) {
      if (fd >= 0) sys(SYS_close, fd);
      return Served::Stop;
    }
    clear_slot(r, req.slot);
    if (req.op != kOpWatch) {
      if (fd >= 0) sys(SYS_close, fd);
      continue;
    }
    if (req.kind != kKindMarker && fd < 0) {
      // The descriptor did not arrive: the guardian is out of descriptors.
      reply(r, (mh.msg_flags & MSG_CTRUNC) != 0 ? EMFILE : EBADF);
      continue;
    }
    r->slot_fd[req.slot] = fd;
    r->slot_kind[req.slot] = req.kind;
    for (std::size_t i = 0; i < Guardian::kMarkerSize; ++i) r->slot_marker[req.slot][i] = req.marker[i];
    r->slot_marker[req.slot][Guardian::kMarkerSize - 1] = '\0';
    reply(r, 0);
  }
}

// ---- the host is gone -----------------------------------------------------------

// Does the environment read from `fd` hold one of the registered markers
// as a whole entry?
AIRSSYS_GUARDIAN_CODE bool carries_marker(Guardian::Region* r, long fd) noexcept {
  char entry[Guardian::kMarkerSize];
  std::size_t len = 0;
  bool overflow = false;
  long n;
  while ((n = sys(SYS_read, fd, reinterpret_cast<long>(r->scratch), sizeof r->scratch)) > 0) {
    for (long i = 0; i < n; ++i) {
      const char c = r->scratch[i];
      if (c != '\0') {
        if (len + 1 < sizeof entry) entry[len++] = c;
        else overflow = true;
        continue;
      }
      if (!overflow && len > 0) {
        entry[len] = '\0';
        for (std::size_t s = 0; s < Guardian::kSlots; ++s) {
          const char* m = r->slot_marker[s];
          if (m[0] == '\0') continue;
          std::size_t k = 0;
          while (k <= len && m[k] == entry[k]) {
            if (m[k] == '\0') return true;
            ++k;
          }
        }
      }
      len = 0;
      overflow = false;
    }
  }
  return false;
}

// Kills `pid` if it carries a marker. The pidfd is opened before the
// environment is read and the signal goes through it: if the process ends
// in between and its number is reused, the signal reaches no one.
AIRSSYS_GUARDIAN_CODE bool kill_if_marked(Guardian::Region* r, long proc, long pid) noexcept {
  const long pidfd = sys(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return false;
  char path[32];
  char digits[24];
  int nd = 0;
  for (long v = pid; v > 0 && nd < 20; v /= 10) digits[nd++] = static_cast<char>('0' + v % 10);
  int k = 0;
  while (nd > 0) path[k++] = digits[--nd];
  for (const char* s = "/environ"; *s != '\0'; ++s) path[k++] = *s;
  path[k] = '\0';
  bool killed = false;
  const long fd = sys(SYS_openat, proc, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (carries_marker(r, fd)) killed = sys(SYS_pidfd_send_signal, pidfd, SIGKILL, 0, 0) == 0;
    sys(SYS_close, fd);
  }
  sys(SYS_close, pidfd);
  return killed;
}

// Processes of the registered trees that left every registered group (a
// setsid storm while the host died, escapees not adopted yet): found by
// their environment marker, killed, round after round until a few rounds
// in a row find none. A killed process cannot fork any more, so each round
// can only find what the previous ones had not reached yet.
AIRSSYS_GUARDIAN_CODE void sweep_markers(Guardian::Region* r) noexcept {
  bool any = false;
  for (std::size_t s = 0; s < Guardian::kSlots && !any; ++s) any = r->slot_marker[s][0] != '\0';
  if (!any) return;
  const long proc = sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (proc < 0) return;
  const long self = sys(SYS_getpid);
  int clean = 0;
  for (int round = 0; round < kSweepRounds && clean < kCleanRoundsNeeded; ++round) {
    int found = 0;
    sys(SYS_lseek, proc, 0, SEEK_SET);
    long n;
    while ((n = sys(SYS_getdents64, proc, reinterpret_cast<long>(r->dents), sizeof r->dents)) > 0) {
      for (long off = 0; off < n;) {
        const unsigned short reclen = *reinterpret_cast<const unsigned short*>(r->dents + off + 16);
        const char* name = r->dents + off + 19;
        long pid = 0;
        bool digits = name[0] != '\0';
        for (const char* c = name; *c != '\0' && digits; ++c) {
          if (*c < '0' || *c > '9') digits = false;
          else pid = pid * 10 + (*c - '0');
        }
        if (digits && pid > 1 && pid != self) found += kill_if_marked(r, proc, pid);
        off += reclen;
      }
    }
    if (found != 0) {
      clean = 0;
    } else {
      ++clean;
      nap_ms(1);
    }
  }
  sys(SYS_close, proc);
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

AIRSSYS_GUARDIAN_CODE void remove_root(Guardian::Region* r) noexcept {
  wait_root_empty(r->root_dir);
  // Each group directory (g<id>), then the root.
  const long dir = sys(SYS_openat, r->root_dir, reinterpret_cast<long>("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    long n;
    while ((n = sys(SYS_getdents64, dir, reinterpret_cast<long>(r->dents), sizeof r->dents)) > 0) {
      for (long off = 0; off < n;) {
        const unsigned short reclen = *reinterpret_cast<const unsigned short*>(r->dents + off + 16);
        const unsigned char type = static_cast<unsigned char>(r->dents[off + 18]);
        const char* name = r->dents + off + 19;
        if (type == 4 /* DT_DIR */ && name[0] == 'g')
          sys(SYS_unlinkat, r->root_dir, reinterpret_cast<long>(name), AT_REMOVEDIR);
        off += reclen;
      }
    }
    sys(SYS_close, dir);
  }
  sys(SYS_unlinkat, r->root_base, reinterpret_cast<long>(r->root_name), AT_REMOVEDIR);
}

AIRSSYS_GUARDIAN_CODE void kill_everything(Guardian::Region* r) noexcept {
  if (r->root_dir >= 0) {
    // The root by its name now: the host makes it again under the same
    // name if it was removed behind its back (CgroupRoot::reopen), and the
    // guardian's own copy of the old descriptor would name the removed
    // directory. The old one stays open (it holds the root's lock).
    const long now = sys(SYS_openat, r->root_base, reinterpret_cast<long>(r->root_name),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (now >= 0) r->root_dir = static_cast<int>(now);
    const long fd = sys(SYS_openat, r->root_dir, reinterpret_cast<long>("cgroup.kill"), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      sys(SYS_write, fd, reinterpret_cast<long>("1"), 1);
      sys(SYS_close, fd);
    }
  }
  for (std::size_t i = 0; i < Guardian::kSlots; ++i) {
    const int fd = r->slot_fd[i];
    if (fd < 0) continue;
    // The descriptor is the guardian's own: it names the process it was
    // registered for, reaped or not, never one that reused its number, and
    // with PIDFD_SIGNAL_PROCESS_GROUP the group that process leads (its
    // members, even once the leader is reaped). A kernel without the flag
    // (before 6.9) refuses it (EINVAL): the rest of the group is then left
    // to the marker sweep. No pgid is ever signalled by its number.
    if (r->slot_kind[i] == kKindGroup) sys(SYS_pidfd_send_signal, fd, SIGKILL, 0, kPidfdSignalProcessGroup);
    sys(SYS_pidfd_send_signal, fd, SIGKILL, 0, 0);
  }
  sweep_markers(r);
  if (r->root_dir >= 0) remove_root(r);
}

AIRSSYS_GUARDIAN_CODE int guardian_main(void* arg) noexcept {
  auto* r = static_cast<Guardian::Region*>(arg);
  // No signal handler of the host may run here, and a signal aimed at the
  // host's group or session does not reach a process in neither.
  unsigned long all = ~0UL;
  sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&all), 0, 8);
  sys(SYS_setsid);
  // A name of its own in ps and top, not the thread's it was cloned from
  // (a worker's, say). Before drop_host_memory: the kernel copies the
  // name, and the literal is the host's memory.
  sys(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>("airssys-guard"));
  close_others(r);
  raise_nofile();
  drop_host_memory(r);
  reply(r, 0);  // ready
  // The host's death, a request, or a poke (the host waits for an answer).
  // After serving, the guardian naps for kBatchNs on the host's death and
  // pokes only: requests that come meanwhile (a spawn's queued watch, an
  // unwatch) wait in the socket and are served together when the nap ends,
  // so a busy host does not wake the guardian for each of them.
  struct pollfd fds[3];
  fds[0].fd = r->host_pidfd;
  fds[0].events = POLLIN;
  fds[1].fd = r->poke;
  fds[1].events = POLLIN;
  fds[2].fd = r->sock;
  fds[2].events = POLLIN;
  struct {
    long sec, nsec;
  } nap;
  bool napping = false;
  for (;;) {
    fds[0].revents = fds[1].revents = fds[2].revents = 0;
    nap.sec = 0;  // ppoll leaves what was left of it here
    nap.nsec = kBatchNs;
    const long rc = sys(SYS_ppoll, reinterpret_cast<long>(fds), napping ? 2 : 3,
                        napping ? reinterpret_cast<long>(&nap) : 0, 0);
    if (rc < 0) continue;  // EINTR
    if (fds[0].revents != 0) break;  // the host is gone
    if (fds[1].revents != 0) {
      std::uint64_t count;
      sys(SYS_read, r->poke, reinterpret_cast<long>(&count), sizeof count);
    }
    // A poke, a request, or the nap's end: everything queued is served.
    const Served s = serve(r);
    if (s == Served::Stop) sys(SYS_exit, 0);
    if (s == Served::HostGone) break;
    // Blocked: nap now. Napping: poked, nap again; the nap ended, block.
    napping = !napping || rc > 0;
  }
  // The host is gone. What it sent before it died is still queued: take
  // it (registrations and unwatches alike) before killing.
  if (serve(r) == Served::Stop) sys(SYS_exit, 0);
  kill_everything(r);
  sys(SYS_exit, 0);
  return 0;
}
#endif

// Tells a napping guardian to serve its queue now.
void poke(int fd) noexcept {
  const std::uint64_t one = 1;
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

// Waits for the guardian's one-int answer (poking it first: it may be
// napping); Dead if it ends first. A guardian that does not answer within
// 5 s (stopped by someone's SIGSTOP, say) is ended: its answers could no
// longer be told apart, and a dead guardian is replaced (Guardian::restart).
Result<int> read_answer(int sock, int poke_fd, int pidfd, int pid) noexcept {
  poke(poke_fd);
  for (;;) {
    struct pollfd fds[2] = {{sock, POLLIN, 0}, {pidfd, POLLIN, 0}};
    const int rc = poll(fds, 2, 5000);
    if (rc == 0) {
      syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
      return Error::make(Errc::Dead, "the guardian (pid %d) did not answer within 5 s and was ended", pid);
    }
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Error::make_os(errno, "guardian: waiting for pid %d: %s", pid, std::strerror(errno));
    }
    if ((fds[0].revents & POLLIN) != 0) {
      int value = 0;
      const ssize_t n = recv(sock, &value, sizeof value, MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(sizeof value)) return value;
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    }
    if (fds[0].revents != 0 || fds[1].revents != 0)
      return Error::make(Errc::Dead, "the guardian (pid %d) has died", pid);
  }
}

}  // namespace

Guardian::~Guardian() { stop(); }

Result<void> Guardian::start(const CgroupRoot* root) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (pid_ > 0) return {};
  root_ = root;
  return start_locked();
}

Result<void> Guardian::start_locked() noexcept {
#if !AIRSSYS_HAVE_GUARDIAN
  return Error::make(Errc::Unavailable, "the guardian is not available on this architecture");
#else
  void* mem = mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Error::make_os(errno, "guardian: no memory: %s", std::strerror(errno));
  auto* r = new (mem) Region;
  for (std::size_t i = 0; i < kSlots; ++i) {
    r->slot_fd[i] = -1;
    r->slot_kind[i] = kKindNone;
    r->slot_marker[i][0] = '\0';
  }
  r->begin = reinterpret_cast<std::uintptr_t>(mem);
  r->end = r->begin + ((sizeof(Region) + 4095) & ~std::size_t{4095});
#if AIRSSYS_HAVE_RSEQ_ABI
  if (__rseq_size != 0) {
    r->rseq_area = reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer()) + static_cast<std::uintptr_t>(__rseq_offset);
    r->rseq_len = __rseq_size;
    r->rseq_sig = RSEQ_SIG;
  }
#endif
  if (root_ != nullptr && root_->valid()) {
    r->root_dir = root_->dir_handle();
    r->root_base = root_->base_handle();
    const char* slash = std::strrchr(root_->path(), '/');
    std::snprintf(r->root_name, sizeof r->root_name, "%.63s", slash != nullptr ? slash + 1 : root_->path());
  }
  int sv[2] = {-1, -1};
  const auto undo = [&](int e, const char* what) {
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (r->poke >= 0) close(r->poke);
    if (r->host_pidfd >= 0) close(r->host_pidfd);
    munmap(mem, sizeof(Region));
    return Error::make_os(e, "guardian: %s: %s", what, std::strerror(e));
  };
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return undo(errno, "no socket");
  r->sock = sv[1];
  r->poke = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->poke < 0) return undo(errno, "no eventfd");
  r->host_pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (r->host_pidfd < 0) return undo(errno, "no pidfd of the host");

  // A process of its own (no CLONE_VM, no CLONE_FILES): a kill that
  // reaches every process sharing the host's memory map (the OOM killer)
  // does not reach it. No exit signal: it is not a child a waitpid(-1) or
  // a SIGCHLD handler of the host would see; it is reaped through its
  // pidfd. clone3 through spawn's raw trampoline, not the C library's
  // clone(): sanitizers intercept clone() and fork() and run their hooks in
  // the child, which here must run nothing but the guardian. Every signal
  // is blocked across the clone, so no handler of the host runs in the
  // child before the guardian blocks them itself.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  clone_args ca{};
  ca.flags = CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  ca.exit_signal = 0;
  ca.stack = reinterpret_cast<std::uint64_t>(r->stack);
  ca.stack_size = sizeof r->stack;
  long pid = airssys_clone3_run(&ca, sizeof ca, guardian_main, r);
  if (pid == -ENOSYS) {  // no clone3 (Linux < 5.3)
    pid = clone(guardian_main, r->stack + sizeof r->stack, CLONE_PIDFD, r, &pidfd);
    if (pid < 0) pid = -errno;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return undo(static_cast<int>(-pid), "cannot start");
  // The guardian has its own copies of all of these now (the eventfd is
  // shared: the host keeps it to poke).
  close(sv[1]);
  close(r->host_pidfd);
  poke_ = r->poke;  // the guardian has its own copy, at the same number
  r->~Region();
  munmap(mem, sizeof(Region));
  sock_ = sv[0];
  pid_ = static_cast<int>(pid);
  pidfd_ = pidfd;
  for (bool& u : used_) u = false;
  if (auto ready = read_answer(sock_, poke_, pidfd_, pid_); !ready) {
    stop_locked(false);
    return Error::make(Errc::Dead, "the guardian (pid %ld) ended while starting", pid);
  }
  return {};
#endif
}

bool Guardian::running() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return pid_ > 0;
}

bool Guardian::alive() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  // The pidfd turns readable when the guardian has exited.
  return pid_ > 0 && !wait_readable(pidfd_, 0);
}

Result<void> Guardian::restart() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  stop_locked(false);
  return start_locked();
}

int Guardian::pid() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return pid_;
}

int Guardian::wait_handle() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return pidfd_;
}

Result<void> Guardian::settle_locked(bool all) noexcept {
  while (unanswered_ > 0) {
    int value = 0;
    if (all || unanswered_ >= kUnanswered) {
      auto answer = read_answer(sock_, poke_, pidfd_, pid_);
      if (!answer) return answer.error();
      value = answer.value();
    } else if (recv(sock_, &value, sizeof value, MSG_DONTWAIT) != static_cast<ssize_t>(sizeof value)) {
      return {};  // not answered yet (or the guardian died: the next wait says so)
    }
    --unanswered_;
    if (value != 0) ++refused_;
  }
  return {};
}

std::uint64_t Guardian::refused() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

Result<std::uint32_t> Guardian::watch(int kind, int fd, std::string_view marker, bool wait) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (pid_ <= 0) return Error::make(Errc::Dead, "the guardian is not running");
  // The next answer must be this request's (waited for), or there must be
  // room to leave it unread (queued).
  if (auto r = settle_locked(wait); !r) return r.error();
  if (kind != static_cast<int>(kKindMarker) && fd < 0)
    return Error::make(Errc::InvalidArgument, "guardian: a process handle that was already reaped");
  if (marker.size() >= kMarkerSize)
    return Error::make(Errc::InvalidArgument, "guardian: marker '%.*s...' is longer than %zu bytes", 20,
                       marker.data(), kMarkerSize - 1);
  if (kind == static_cast<int>(kKindMarker) && marker.empty())
    return Error::make(Errc::InvalidArgument, "guardian: a tree needs its leader's pidfd or its marker");
  std::uint32_t slot = 0;
  while (slot < kSlots && used_[slot]) ++slot;
  if (slot == kSlots) return Error::make(Errc::Full, "guardian: all %zu slots are in use", kSlots);
  Request req{};
  req.op = kOpWatch;
  req.slot = slot;
  req.kind = static_cast<std::uint32_t>(kind);
  if (!marker.empty()) std::memcpy(req.marker, marker.data(), marker.size());
  iovec iov{&req, sizeof req};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (fd >= 0) {
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  while ((n = sendmsg(sock_, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n < 0) {
    if (errno == EBADF) return Error::make(Errc::InvalidArgument, "guardian: descriptor %d is not open", fd);
    return Error::make(Errc::Dead, "the guardian (pid %d) has died", pid_);
  }
  if (!wait) {
    used_[slot] = true;
    ++unanswered_;
    (void)settle_locked(false);  // answers already there, read without waiting
    return slot;
  }
  auto answer = read_answer(sock_, poke_, pidfd_, pid_);
  if (!answer) return answer.error();
  if (answer.value() != 0)
    return Error::make_os(answer.value(), "guardian: cannot hold descriptor %d: %s", fd,
                          std::strerror(answer.value()));
  used_[slot] = true;
  return slot;
}

Result<std::uint32_t> Guardian::watch_group(const Process& leader, std::string_view marker) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pid_ <= 0) return Error::make(Errc::Dead, "the guardian is not running");
  }
  if (!leader.valid()) return Error::make(Errc::InvalidArgument, "guardian: a process handle that was already reaped");
  if (!leader.leads_group() || leader.pgid() <= 1)
    return Error::make(Errc::InvalidArgument, "guardian: process %d does not lead a group", leader.pid());
  return watch(static_cast<int>(kKindGroup), leader.wait_handle(), marker);
}

Result<std::uint32_t> Guardian::watch_group_queued(const Process& leader, std::string_view marker) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pid_ <= 0) return Error::make(Errc::Dead, "the guardian is not running");
  }
  if (!leader.valid()) return Error::make(Errc::InvalidArgument, "guardian: a process handle that was already reaped");
  if (!leader.leads_group() || leader.pgid() <= 1)
    return Error::make(Errc::InvalidArgument, "guardian: process %d does not lead a group", leader.pid());
  return watch(static_cast<int>(kKindGroup), leader.wait_handle(), marker, false);
}

Result<std::uint32_t> Guardian::watch_process(const Process& p) noexcept {
  return watch(static_cast<int>(kKindProcess), p.wait_handle(), {});
}

Result<std::uint32_t> Guardian::watch_tree(int leader_pidfd, std::string_view marker) noexcept {
  return watch(static_cast<int>(leader_pidfd >= 0 ? kKindGroup : kKindMarker), leader_pidfd, marker);
}

void Guardian::unwatch(std::uint32_t slot) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (pid_ <= 0 || slot >= kSlots || !used_[slot]) return;
  used_[slot] = false;
  // No answer: requests are handled in order, and one the guardian has
  // not read when the host dies is still read before it kills anything.
  Request req{};
  req.op = kOpUnwatch;
  req.slot = slot;
  while (send(sock_, &req, sizeof req, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

void Guardian::stop() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  stop_locked(true);
}

void Guardian::stop_locked(bool orderly) noexcept {
  if (pid_ <= 0) return;
  if (orderly) {
    Request req{};
    req.op = kOpStop;
    while (send(sock_, &req, sizeof req, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
    poke(poke_);
  } else {
    // A guardian that is not orderly stopped is ended: nothing it holds
    // is killed (it is asked to die, not to act as if the host had).
    syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
  }
  siginfo_t info{};
  while (waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info, WEXITED | __WALL) < 0 && errno == EINTR) {
  }
  close(pidfd_);
  close(sock_);
  close(poke_);
  pidfd_ = sock_ = poke_ = pid_ = -1;
  for (bool& u : used_) u = false;
  unanswered_ = 0;  // their answers went with the socket
}

}  // namespace airssys::arch
