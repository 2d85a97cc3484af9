#pragma once
// Shared by the process benchmarks: a memory ballast that makes the
// benchmark process "big", and a tree of sleeping processes to tear down.
//
// The tree is built by the helper program airssys-tree-helper (built next
// to airssys-bench): run as `airssys-tree-helper <in_group> <escaped>` it
// forks <in_group> children that stay in its process group and <escaped>
// grandchildren that leave it with setsid() and are orphaned, then prints
// one line naming every pid and sleeps. Whoever spawns the helper (raw
// posix_spawn here, the osl library in the osl/teardown benchmarks) reads
// that line with read_tree_info() and waits with wait_adopted() for the
// orphans to be re-parented to it. That needs the spawning process to be a
// child subreaper (become_subreaper()): without it the orphans go to PID 1,
// which on our machines never reaps them.
//
// Header-only and without airssys dependencies, so the floor benchmarks
// measure the kernel and nothing of ours.

#include <benchmark/benchmark.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace airssys::bench {

// ---------------------------------------------------------------------------
// Ballast
// ---------------------------------------------------------------------------

// `mib` MiB of anonymous memory, every page written, for as long as it
// lives. A parent that forks has to copy the page tables of all of it; a
// vfork-style spawn (posix_spawn) does not, which is what the rss_mb
// variants show.
class Ballast {
 public:
  explicit Ballast(std::size_t mib) noexcept : bytes_(mib << 20) {
    if (bytes_ == 0) return;
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      bytes_ = 0;
      failed_ = true;
      return;
    }
    // 4 KiB pages whatever the THP setting, so the page-table size a fork
    // copies is the same on every machine (and like a real, fragmented heap).
    ::madvise(p, bytes_, MADV_NOHUGEPAGE);
    // Non-zero so no page can stay mapped to the shared zero page.
    std::memset(p, 0x5a, bytes_);
    benchmark::DoNotOptimize(p);
    benchmark::ClobberMemory();
    data_ = p;
  }
  ~Ballast() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
  }
  Ballast(const Ballast&) = delete;
  Ballast& operator=(const Ballast&) = delete;

  // False when the memory could not be mapped; the benchmark must skip.
  bool ok() const noexcept { return !failed_; }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_;
  bool failed_ = false;
};

// ---------------------------------------------------------------------------
// Process tree
// ---------------------------------------------------------------------------

// How many processes the helper creates besides itself (the leader).
struct TreeShape {
  int in_group = 0;  // children that stay in the leader's process group
  int escaped = 0;   // grandchildren that setsid() and are orphaned
  int total() const noexcept { return 1 + in_group + escaped; }
};

// 100 processes: the leader, 89 in its group, 10 escaped.
inline constexpr TreeShape kTree100{89, 10};

struct TreeInfo {
  int leader = -1;
  std::vector<int> pids;     // every process of the tree, the leader first
  std::vector<int> escaped;  // the subset that left the group with setsid()
};

// The helper's path: next to the running executable, so the build tree
// works without installing anything.
inline std::string tree_helper_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "airssys-tree-helper";
  std::string self(buf, static_cast<std::size_t>(n));
  const auto slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/airssys-tree-helper";
}

// The helper's command line, as program + NULL-terminated argv for
// posix_spawn or arch::SpawnSpec. Neither copyable nor movable: argv()
// points into the object.
class TreeCommand {
 public:
  explicit TreeCommand(TreeShape shape)
      : program_(tree_helper_path()),
        in_group_(std::to_string(shape.in_group)),
        escaped_(std::to_string(shape.escaped)),
        argv_{program_.data(), in_group_.data(), escaped_.data(), nullptr} {}
  TreeCommand(const TreeCommand&) = delete;
  TreeCommand& operator=(const TreeCommand&) = delete;

  const char* program() const noexcept { return program_.c_str(); }
  // posix_spawn wants char* const*; it never writes through it.
  char* const* argv() const noexcept { return argv_; }

 private:
  std::string program_, in_group_, escaped_;
  char* argv_[4];
};

// Reads the helper's line from `fd` (its stdout) and parses it:
//   "leader <pid> group <pid>... escaped <pid>...\n"
// Waits at most `timeout_ms` for the whole line. On failure says why.
inline bool read_tree_info(int fd, TreeShape shape, TreeInfo& out, std::string& error,
                           int timeout_ms = 10000) {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      error = "tree helper: no pid line within " + std::to_string(timeout_ms) + " ms";
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      error = std::string("tree helper: poll: ") + std::strerror(errno);
      return false;
    }
    if (r == 0) continue;
    char buf[1024];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "tree helper: exited before printing its pids (output: '" + line + "')";
      return false;
    }
    line.append(buf, static_cast<std::size_t>(n));
  }
  line.resize(line.find('\n'));

  TreeInfo info;
  std::vector<int>* into = nullptr;
  std::vector<int> group;
  std::size_t at = 0;
  while (at < line.size()) {
    const auto end = std::min(line.find(' ', at), line.size());
    const std::string_view word(line.data() + at, end - at);
    at = end + 1;
    if (word.empty()) continue;
    if (word == "leader" || word == "group" || word == "escaped") {
      into = word == "group" ? &group : word == "escaped" ? &info.escaped : &info.pids;
      continue;
    }
    char* stop = nullptr;
    const long pid = std::strtol(std::string(word).c_str(), &stop, 10);
    if (into == nullptr || pid <= 0 || *stop != '\0') {
      error = "tree helper: unparsable line '" + line + "'";
      return false;
    }
    into->push_back(static_cast<int>(pid));
  }
  if (info.pids.size() != 1 || group.size() != static_cast<std::size_t>(shape.in_group) ||
      info.escaped.size() != static_cast<std::size_t>(shape.escaped)) {
    error = "tree helper: wrong shape in '" + line + "'";
    return false;
  }
  info.leader = info.pids.front();
  info.pids.insert(info.pids.end(), group.begin(), group.end());
  info.pids.insert(info.pids.end(), info.escaped.begin(), info.escaped.end());
  out = std::move(info);
  return true;
}

// Descendants orphaned later come to this process instead of PID 1.
// Process-wide and permanent; idempotent.
inline bool become_subreaper() noexcept { return ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0; }

// The parent pid of `pid` from /proc/<pid>/stat, or -1 if it is gone.
inline int parent_of(int pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so
  // parse from the last ')'.
  const char* close_paren = std::strrchr(buf, ')');
  if (close_paren == nullptr) return -1;
  char state = 0;
  int ppid = -1;
  if (std::sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) return -1;
  return ppid;
}

// Waits until every escaped process of the tree has this process as its
// parent. The helper prints only after the orphaning, so this normally
// returns at once; it guards the benchmarks against a changed helper.
inline bool wait_adopted(const TreeInfo& tree, int timeout_ms = 5000) {
  const int self = ::getpid();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    bool all = true;
    for (const int pid : tree.escaped) all = all && parent_of(pid) == self;
    if (all) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// The floor teardown of a tree whose every process is (or becomes) this
// process's child: SIGKILL every pid, the leader last, then reap the leader
// and the rest. Reaping the leader first matters: its group children are
// re-parented to us (the subreaper) before the leader becomes waitable, so
// afterwards a waitpid() on each of them is exact and never sees ECHILD.
// False if a pid was not ours to reap (e.g. the caller is no subreaper).
inline bool kill_and_reap(const TreeInfo& tree) {
  for (const int pid : tree.pids)
    if (pid != tree.leader) ::kill(pid, SIGKILL);
  ::kill(tree.leader, SIGKILL);
  bool ok = true;
  auto reap = [&ok](int pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno == EINTR) continue;
      ok = false;
      return;
    }
  };
  reap(tree.leader);
  for (const int pid : tree.pids)
    if (pid != tree.leader) reap(pid);
  return ok;
}

// True when this process has no child at all, running or zombie. WNOWAIT
// so that a child someone else is about to wait for is left alone.
inline bool no_children_left() noexcept {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

// The pids whose parent is this process, from a /proc scan (this kernel
// has no /proc/<pid>/task/<tid>/children). For diagnostics and cleanup.
inline std::vector<int> list_children() {
  std::vector<int> out;
  const int self = ::getpid();
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    char* stop = nullptr;
    const long pid = std::strtol(e->d_name, &stop, 10);
    if (pid <= 0 || *stop != '\0') continue;
    if (parent_of(static_cast<int>(pid)) == self) out.push_back(static_cast<int>(pid));
  }
  ::closedir(dir);
  return out;
}

// Last resort after a failed build or teardown: SIGKILL and reap every
// child until none is left, including orphans that arrive meanwhile (as a
// subreaper every descendant ends up here). Only for a process whose
// children are all disposable — the raw floor benchmarks; a library that
// holds children of its own must clean up through its own handles.
inline void kill_all_children() {
  for (int round = 0; round < 1000 && !no_children_left(); ++round) {
    for (const int pid : list_children()) ::kill(pid, SIGKILL);
    int status = 0;
    // Reap whatever has died; the next round catches later arrivals.
    while (::waitpid(-1, &status, WNOHANG) > 0) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// The raw builder used by the floor: posix_spawn of the helper as leader
// of a new process group, its stdout on a pipe, then the pid line and the
// adoption of the escapees. Requires become_subreaper(). On failure the
// leader and whatever it created are killed and reaped.
inline bool spawn_raw_tree(TreeShape shape, TreeInfo& out, std::string& error) {
  out = TreeInfo{};  // the failure path kills out.pids: never stale ones
  // Without it the escapees would be orphaned to PID 1, out of our reach.
  int subreaper = 0;
  if (::prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) != 0 || subreaper == 0) {
    error = "tree: the calling process is not a child subreaper";
    return false;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  const TreeCommand cmd(shape);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  ::posix_spawnattr_init(&attr);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  ::posix_spawnattr_setpgroup(&attr, 0);
  pid_t leader = -1;
  const int rc = ::posix_spawn(&leader, cmd.program(), &actions, &attr, cmd.argv(), environ);
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    error = std::string("posix_spawn ") + cmd.program() + ": " + std::strerror(rc);
    return false;
  }
  bool ok = read_tree_info(fds[0], shape, out, error);
  ::close(fds[0]);
  if (ok && !wait_adopted(out)) {
    error = "tree: the escaped processes were not re-parented to us (not a subreaper?)";
    ok = false;
  }
  if (!ok) {
    for (const int pid : out.pids) ::kill(pid, SIGKILL);
    ::kill(leader, SIGKILL);
    kill_all_children();
  }
  return ok;
}

}  // namespace airssys::bench

// The floor: posix_spawn of /bin/true with POSIX_SPAWN_SETPGROUP and
// waitpid, with a touched ballast of `ballast_mib` MiB (osl_peers.cpp).
void BM_raw_posix_spawn(benchmark::State& state, std::size_t ballast_mib);
