#include <airssys/arch/usage.hpp>
#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/process.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace airssys::arch {

namespace {
// /proc/<pid>/stat after the command's closing parenthesis: field 3 is the
// state, 5 the process group, 14 and 15 utime and stime (clock ticks), 24
// the resident set (pages).
struct StatFields {
  char state = 0;
  int pgid = 0;
  unsigned long long utime = 0, stime = 0;
  long long rss_pages = 0;
};

bool read_stat(int pid, StatFields& out) noexcept {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  int ppid = 0, session = 0, tty = 0, tpgid = 0;
  unsigned flags = 0;
  unsigned long minflt = 0, cminflt = 0, majflt = 0, cmajflt = 0;
  long long cutime = 0, cstime = 0, priority = 0, nice = 0, threads = 0, itreal = 0;
  unsigned long long start = 0, vsize = 0;
  const int got = std::sscanf(p + 1,
                              " %c %d %d %d %d %d %u %lu %lu %lu %lu %llu %llu %lld %lld %lld %lld %lld %lld %llu %llu %lld",
                              &out.state, &ppid, &out.pgid, &session, &tty, &tpgid, &flags, &minflt, &cminflt,
                              &majflt, &cmajflt, &out.utime, &out.stime, &cutime, &cstime, &priority, &nice,
                              &threads, &itreal, &start, &vsize, &out.rss_pages);
  return got == 22;
}
}  // namespace

TreeUsage tree_usage(int pgid, const char* cgroup_dir) noexcept {
  TreeUsage u;
  const bool by_cgroup = cgroup_dir != nullptr && cgroup_dir[0] != '\0';
  if (pgid <= 1 && !by_cgroup) return u;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return u;
  while (dirent* d = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(d->d_name, &end, 10);
    if (end == d->d_name || *end != '\0' || pid <= 1) continue;
    StatFields f;
    if (!read_stat(static_cast<int>(pid), f) || f.state == 'Z' || f.state == 'X') continue;
    bool mine = pgid > 1 && f.pgid == pgid;
    if (!mine && by_cgroup) {
      char path[256];
      mine = cgroup_of(static_cast<int>(pid), path, sizeof path) && cgroup_path_within(path, cgroup_dir);
    }
    if (!mine) continue;
    ++u.processes;
    if (ticks > 0) u.cpu_ns += (f.utime + f.stime) * (1'000'000'000ull / static_cast<unsigned long long>(ticks));
    if (f.rss_pages > 0 && page > 0) u.memory_bytes += static_cast<std::uint64_t>(f.rss_pages) * static_cast<std::uint64_t>(page);
  }
  closedir(proc);
  return u;
}

}  // namespace airssys::arch
