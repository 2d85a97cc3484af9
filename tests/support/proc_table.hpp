#pragma once
// Reads the process table and this process's fd table from /proc, so that
// tests which spawn processes can prove they left nothing behind.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace airssys::test {

inline int self_pid() { return std::stoi(std::filesystem::read_symlink("/proc/self").string()); }

struct ProcEntry {
  int pid = 0;
  int ppid = 0;
  int pgid = 0;
  char state = '?';
  long cpu_ticks = 0;                 // user + system time, clock ticks
  unsigned long long start_time = 0;  // clock ticks after boot: with the pid, who the process is
};

// A stat file ("pid (comm) state ppid pgrp ..."; comm may hold spaces):
// /proc/<pid>/stat, or /proc/self/task/<tid>/stat for one thread.
inline bool read_stat(const std::string& path, int pid, ProcEntry& out) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 2));
  out.pid = pid;
  rest >> out.state >> out.ppid >> out.pgid;
  // Fields 6..13 (session .. majflt), 14 utime, 15 stime, 16..21
  // (cutime .. itrealvalue), then field 22: starttime.
  std::string skip;
  for (int field = 6; field <= 13; ++field) rest >> skip;
  long utime = 0, stime = 0;
  rest >> utime >> stime;
  out.cpu_ticks = utime + stime;
  for (int field = 16; field <= 21; ++field) rest >> skip;
  rest >> out.start_time;
  return true;
}

inline bool read_proc(int pid, ProcEntry& out) { return read_stat("/proc/" + std::to_string(pid) + "/stat", pid, out); }

// Every process whose parent is this process, zombies included.
inline std::vector<ProcEntry> children_of_self() {
  const int self = self_pid();
  std::vector<ProcEntry> out;
  for (const auto& d : std::filesystem::directory_iterator("/proc")) {
    const std::string name = d.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcEntry e;
    if (read_proc(std::stoi(name), e) && e.ppid == self) out.push_back(e);
  }
  return out;
}

inline bool process_exists(int pid) {
  ProcEntry e;
  return read_proc(pid, e);
}

// The start time of process `pid`, 0 if there is none.
inline unsigned long long start_time_of(int pid) {
  ProcEntry e;
  return read_proc(pid, e) ? e.start_time : 0;
}

// Whether the process that had start time `start` (0: unknown) still has
// number `pid`: a number reused by another process (numbers come round,
// the sooner while a test forces them through ns_last_pid) does not count.
inline bool same_process_exists(int pid, unsigned long long start) {
  ProcEntry e;
  return read_proc(pid, e) && (start == 0 || e.start_time == start);
}

// Whether that process (as same_process_exists names it) still runs: there,
// and not a zombie.
inline bool same_process_running(int pid, unsigned long long start) {
  ProcEntry e;
  return read_proc(pid, e) && (start == 0 || e.start_time == start) && e.state != 'Z' && e.state != 'X';
}

inline std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& d : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

}  // namespace airssys::test

// ---------------------------------------------------------------------------
// Children of this process by pid, and a sweep that kills and reaps them:
// for tests whose process is a child subreaper, where orphaned descendants
// come back as children that no handle holds.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

namespace airssys::test {

// The pids of this process's children (every thread's children list),
// zombies included.
inline std::vector<int> child_pids() {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(t.path() / "children");
    int pid = 0;
    while (in >> pid) out.push_back(pid);
  }
  return out;
}

// SIGKILLs and reaps every child of this process except `keep` (children
// held by a handle, a guardian that is still running), round after round,
// until none is left: a reaped process's own children have already been
// re-parented to a subreaper by then. Safe by pid: an unreaped child's
// number cannot be reused. Returns how many were reaped.
inline int kill_and_reap_children_except(const std::vector<int>& keep,
                                         std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  int reaped = 0;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::vector<int> pids = child_pids();
    pids.erase(std::remove_if(pids.begin(), pids.end(),
                              [&](int p) { return std::find(keep.begin(), keep.end(), p) != keep.end(); }),
               pids.end());
    if (pids.empty() || std::chrono::steady_clock::now() > end) break;
    for (int pid : pids) {
      ::kill(pid, SIGKILL);
      int status = 0;
      // __WALL: also a child without an exit signal (a clone()d helper).
      while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
      }
      ++reaped;
    }
  }
  return reaped;
}

inline int kill_and_reap_children() { return kill_and_reap_children_except({}); }

}  // namespace airssys::test

// ---------------------------------------------------------------------------
// Processes found by what they carry rather than by who their parent is:
// an environment marker survives setsid and double forks, so a test that
// gives every process it starts "NAME=value" can find (and kill) all of
// them wherever they went. Plus sessions, cgroups and thread names.

#include <dirent.h>
#include <sys/prctl.h>

#include <cstdlib>
#include <cstring>
#include <iterator>

namespace airssys::test {

// The pids of every process in /proc (this one included).
inline std::vector<int> all_pids() {
  std::vector<int> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const char* n = e->d_name;
    if (*n == '\0' || std::strspn(n, "0123456789") != std::strlen(n)) continue;
    out.push_back(std::atoi(n));
  }
  ::closedir(d);
  return out;
}

// True when /proc/<pid>/environ holds exactly `entry` ("NAME=value"). An
// ended process (a zombie) has no environment left: false.
inline bool environ_contains(int pid, const std::string& entry) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  if (!in) return false;
  const std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = 0;
  while (pos < env.size()) {
    std::size_t end = env.find('\0', pos);
    if (end == std::string::npos) end = env.size();
    if (env.compare(pos, end - pos, entry) == 0) return true;
    pos = end + 1;
  }
  return false;
}

// Every live process other than this one whose environment holds `entry`.
inline std::vector<int> processes_with_env(const std::string& entry) {
  std::vector<int> out;
  const int self = self_pid();
  for (int pid : all_pids())
    if (pid != self && environ_contains(pid, entry)) out.push_back(pid);
  return out;
}

// SIGKILLs every process whose environment holds `entry`, round after
// round (a killed shell may have just forked), until none is left or
// `limit` passes. Returns how many kills were sent. The killed become
// zombies of their parents, or of the nearest subreaper: reap them after.
inline int kill_processes_with_env(const std::string& entry,
                                   std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  int sent = 0;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const std::vector<int> pids = processes_with_env(entry);
    if (pids.empty() || std::chrono::steady_clock::now() > end) break;
    for (int pid : pids)
      if (::kill(pid, SIGKILL) == 0) ++sent;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return sent;
}

// The session id (field 6 of /proc/<pid>/stat), or -1 if there is no such
// process.
inline int session_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  char state = 0;
  int ppid = 0, pgid = 0, sid = -1;
  rest >> state >> ppid >> pgid >> sid;
  return sid;
}

// True when `pid` no longer runs: no such process, or a zombie.
inline bool process_ended(int pid) {
  ProcEntry e;
  return !read_proc(pid, e) || e.state == 'Z' || e.state == 'X';
}

// The process's cgroup v2 path (the "0::" line of /proc/<pid>/cgroup), or
// an empty string.
inline std::string cgroup2_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

// The process's command name (/proc/<pid>/comm), or "" when it is gone.
inline std::string comm_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

// A numeric field of /proc/<pid>/status ("VmRSS", "RssAnon",
// "voluntary_ctxt_switches"; memory fields are in kB), or -1 when the
// process is gone or has no such field.
inline long status_field(int pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string key = name + ":";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(key.size()));
  return -1;
}

// Whether the process ignores `sig` (SigIgn in /proc/<pid>/status, a hex
// mask with bit sig-1): a shell that runs `trap '' TERM` has got that far.
inline bool ignores_signal(int pid, int sig) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("SigIgn:", 0) == 0) return ((std::stoull(line.substr(7), nullptr, 16) >> (sig - 1)) & 1) != 0;
  return false;
}

// Processes with a descriptor open on `path`, as "pid (comm) " each: for a
// failure message about a file someone should have closed (a lock held).
inline std::string holders_of(const std::string& path) {
  std::string out;
  for (int pid : all_pids()) {
    std::error_code ec;
    std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::error_code link;
      if (std::filesystem::read_symlink(it->path(), link) == path) {
        out += std::to_string(pid) + " (" + comm_of(pid) + ") ";
        break;
      }
    }
  }
  return out;
}

// This process's children, one per line ("pid state pgid sid comm
// cgroup"), for failure messages: what was left, and of which tree.
inline std::string describe_children() {
  std::ostringstream out;
  for (const auto& e : children_of_self()) {
    out << e.pid << ' ' << e.state << ' ' << e.pgid << ' ' << session_of(e.pid) << ' ' << comm_of(e.pid) << ' '
        << cgroup2_of(e.pid) << '\n';
  }
  return out.str();
}

// CPU time (user + system, clock ticks) thread `tid` of this process has
// used; -1 if there is no such thread.
inline long task_cpu_ticks(int tid) {
  ProcEntry e;
  return read_stat("/proc/self/task/" + std::to_string(tid) + "/stat", tid, e) ? e.cpu_ticks : -1;
}

// The same for the thread named `name` (the first one found).
inline long thread_cpu_ticks(const std::string& name) {
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c == name) return task_cpu_ticks(std::atoi(task.path().filename().c_str()));
  }
  return -1;
}

// True when a thread of this process is named `name` (/proc/self/task/*/comm).
inline bool has_thread_named(const std::string& name) {
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(t.path() / "comm");
    std::string comm;
    if (std::getline(in, comm) && comm == name) return true;
  }
  return false;
}

// Directories under `root`, down to `depth` levels, whose name starts with
// `prefix` (e.g. the cgroups "airssys-<pid>-" a runtime left behind).
// Other processes (tests running beside this one) make and remove cgroups
// under the same root: a directory that goes away mid-walk ends the walk
// with an error, and a walk cut short would miss what it looks for. So it
// walks again until one walk completes (after 100 cut-short walks it gives
// what the last one found).
inline std::vector<std::string> dirs_with_prefix(const std::string& root, const std::string& prefix, int depth = 3) {
  std::vector<std::string> out;
  for (int attempt = 0; attempt < 100; ++attempt) {
    out.clear();
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(root, std::filesystem::directory_options::skip_permission_denied, ec),
        end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it.depth() >= depth) it.disable_recursion_pending();
      std::error_code kind;  // an entry gone since it was listed is no directory of ours
      if (!it->is_directory(kind)) continue;
      if (it->path().filename().string().rfind(prefix, 0) == 0) out.push_back(it->path().string());
    }
    if (!ec) return out;
  }
  return out;
}

// Reaps `pid` if it is an ended child of this process. True if it reaped.
inline bool reap_if_zombie_child(int pid) {
  ProcEntry e;
  if (!read_proc(pid, e) || e.state != 'Z' || e.ppid != self_pid()) return false;
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG | __WALL) == pid;
}

// Reaps every zombie child of this process, leaving running ones (a
// guardian, say) alone; returns how many it reaped.
inline int reap_zombie_children() {
  int n = 0;
  for (const auto& child : children_of_self()) n += child.state == 'Z' && reap_if_zombie_child(child.pid);
  return n;
}

// Descriptors the tests' own guards hold (RecordedPids' pidfds): not the
// code under test's, so holds_pidfd_for passes over them.
inline std::vector<int>& guard_fds() {
  static std::vector<int> fds;
  return fds;
}

// True when this process holds a pidfd for `pid` (a "Pid:" line in
// /proc/self/fdinfo): the runtime holds that process by a handle.
inline bool holds_pidfd_for(int pid) {
  std::error_code ec;
  const std::string want = "Pid:\t" + std::to_string(pid);
  for (const auto& f : std::filesystem::directory_iterator("/proc/self/fdinfo", ec)) {
    const int fd = std::atoi(f.path().filename().c_str());
    if (std::find(guard_fds().begin(), guard_fds().end(), fd) != guard_fds().end()) continue;
    std::ifstream in(f.path());
    std::string line;
    while (std::getline(in, line))
      if (line == want) return true;
  }
  return false;
}

// A scope guard for tests whose processes may leave this process's tree:
// makes this process a child subreaper (so that orphans come back to it,
// never to a PID 1 that does not reap), and on every exit path SIGKILLs
// every process carrying `marker` and then kills and reaps every child.
// Declare it before the System (or anything else holding the processes),
// so that it runs last. `killed` and `reaped` say what it had to clean.
struct KillMarkedOnExit {
  std::string marker;
  int killed = 0;
  int reaped = 0;
  explicit KillMarkedOnExit(std::string m) : marker(std::move(m)) { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
  KillMarkedOnExit(const KillMarkedOnExit&) = delete;
  KillMarkedOnExit& operator=(const KillMarkedOnExit&) = delete;
  // Can run early (then again at scope exit, finding nothing).
  void sweep() {
    killed += kill_processes_with_env(marker);
    reaped += kill_and_reap_children();
  }
  ~KillMarkedOnExit() { sweep(); }
};

}  // namespace airssys::test

// ---------------------------------------------------------------------------
// A census of everything a test could leave behind (children, descriptors,
// this process's airssys cgroups), to compare before and after an
// operation; and reading a child's output from a pipe with a limit.

#include <poll.h>
#include <unistd.h>

#include <map>
#include <system_error>

namespace airssys::test {

// The descriptor numbers open in this process (the directory handle used
// to list them excluded).
inline std::vector<int> open_fd_list() {
  std::vector<int> out;
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec), end;
  std::vector<int> seen;
  for (; !ec && it != end; it.increment(ec)) seen.push_back(std::stoi(it->path().filename().string()));
  // The iterator's own descriptor was closed at the end of the listing:
  // keep only those still open.
  for (int fd : seen) {
    std::error_code lec;
    (void)std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), lec);
    if (!lec) out.push_back(fd);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The cgroup v2 mount point, or "" (from /proc/self/mountinfo).
inline std::string cgroup2_mount_point() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" - cgroup2 ") == std::string::npos) continue;
    std::istringstream f(line);
    std::string id, parent, dev, root, mount;
    f >> id >> parent >> dev >> root >> mount;
    return mount;
  }
  return {};
}

// This process's airssys cgroup directories: "<mount>/airssys-<self>-<n>"
// and every directory below them, sorted. Another process's roots (tests
// running in parallel) are not ours and not listed.
inline std::vector<std::string> own_airssys_cgroups() {
  std::vector<std::string> out;
  const std::string mount = cgroup2_mount_point();
  if (mount.empty()) return out;
  const std::string prefix = "airssys-" + std::to_string(self_pid()) + "-";
  // Walked again when a directory went away mid-walk (see dirs_with_prefix).
  for (int attempt = 0; attempt < 100; ++attempt) {
    out.clear();
    std::error_code ec, sec;
    for (std::filesystem::directory_iterator it(mount, ec), end; !ec && !sec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      std::error_code kind;
      if (name.rfind(prefix, 0) != 0 || !it->is_directory(kind)) continue;
      out.push_back(it->path().string());
      for (std::filesystem::recursive_directory_iterator sub(it->path(), sec), send; !sec && sub != send;
           sub.increment(sec))
        if (sub->is_directory(kind)) out.push_back(sub->path().string());
    }
    if (!ec && !sec) break;
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Everything of this process a test could leak: its children (running or
// zombie), its descriptors, its airssys cgroups. Compare two with ==.
struct Census {
  std::vector<std::pair<int, char>> children;  // pid, state
  std::vector<int> fds;
  std::vector<std::string> cgroups;

  static Census take() {
    Census c;
    for (const auto& e : children_of_self()) c.children.emplace_back(e.pid, e.state);
    std::sort(c.children.begin(), c.children.end());
    c.fds = open_fd_list();
    c.cgroups = own_airssys_cgroups();
    return c;
  }
  bool operator==(const Census& o) const {
    if (children.size() != o.children.size() || fds != o.fds || cgroups != o.cgroups) return false;
    for (std::size_t i = 0; i < children.size(); ++i)
      if (children[i].first != o.children[i].first) return false;  // a state may change (S/R)
    return true;
  }
  std::string describe() const {
    std::ostringstream s;
    s << "children:";
    for (const auto& [pid, state] : children) s << ' ' << pid << '(' << state << ')';
    s << "; fds:";
    for (int fd : fds) s << ' ' << fd;
    s << "; cgroups:";
    for (const auto& g : cgroups) s << ' ' << g;
    return s.str();
  }
};

// Reads "<label> <value>" lines from `fd` until every label of `want` has
// been seen as often as asked, an "error" line came, end of file, or the
// limit passed (writers that keep the pipe open give no end of file).
inline std::multimap<std::string, std::string> read_labelled(int fd, const std::map<std::string, int>& want,
                                                             std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::multimap<std::string, std::string> got;
  std::string buf;
  auto complete = [&] {
    if (got.count("error") != 0) return true;
    for (const auto& [label, n] : want)
      if (static_cast<int>(got.count(label)) < n) return false;
    return true;
  };
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!complete() && std::chrono::steady_clock::now() < end) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char chunk[512];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    buf.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) {
      std::istringstream line(buf.substr(0, nl));
      std::string label, value;
      if (line >> label >> value) got.emplace(label, value);
    }
  }
  return got;
}

// Reads `fd` until it holds `n` complete lines (or end of file, or the
// limit); returns the lines read.
inline std::vector<std::string> read_lines(int fd, std::size_t n,
                                           std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::vector<std::string> lines;
  std::string partial;
  const auto end = std::chrono::steady_clock::now() + limit;
  while (lines.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    char buf[512];
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    partial.append(buf, static_cast<std::size_t>(got));
    for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
      lines.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
    }
  }
  return lines;
}

// Reads `fd` to end of file (or the limit).
inline std::string read_to_eof(int fd, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd pfd{fd, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return out;
    char buf[4096];
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return out;
    out.append(buf, static_cast<std::size_t>(got));
  }
}

}  // namespace airssys::test

// ---------------------------------------------------------------------------
// A process of the test's own at a number it chooses (a number a tree had
// before, say), to prove that nothing acts on a number it no longer owns.

#include <fcntl.h>
#include <spawn.h>

#include <functional>

#include "support/wait_for.hpp"

namespace airssys::test {

// Kills the session `sid` that this process started (its leader is our
// child) and reaps all of it: the leader, and its members, which come back
// to this process (a subreaper) as zombies.
inline void end_session(int sid) {
  ::killpg(sid, SIGKILL);
  int status = 0;
  while (::waitpid(sid, &status, 0) < 0 && errno == EINTR) {
  }
  (void)wait_for([&] {
    reap_zombie_children();
    for (const auto& c : children_of_self())
      if (c.pgid == sid) return false;
    return true;
  });
}

// Forces the number the next process or thread of this pid namespace gets,
// through /proc/sys/kernel/ns_last_pid (root only), and puts the counter
// back when destroyed. Forcing winds the counter back to the number wanted:
// until it is put back, every process started anywhere on the machine gets
// the numbers just above it, numbers other tests running in parallel have
// just seen freed and check are gone. Put back to where it was (or beyond),
// new numbers come from far away again.
class PidCounter {
 public:
  PidCounter() : fd_(::open("/proc/sys/kernel/ns_last_pid", O_RDWR | O_CLOEXEC)) { high_ = read(); }
  PidCounter(const PidCounter&) = delete;
  PidCounter& operator=(const PidCounter&) = delete;
  ~PidCounter() {
    const int now = read();
    write(now > high_ ? now : high_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // The next number handed out is `want`, unless another fork takes it first.
  bool force(int want) {
    const int now = read();
    if (now > high_) high_ = now;
    return write(want - 1);
  }

 private:
  int read() const {
    char buf[16] = {};
    return fd_ >= 0 && ::pread(fd_, buf, sizeof buf - 1, 0) > 0 ? std::atoi(buf) : 0;
  }
  bool write(int value) const {
    const std::string text = std::to_string(value);
    return fd_ >= 0 && ::pwrite(fd_, text.data(), text.size(), 0) > 0;
  }
  int fd_;
  int high_ = 0;
};

// Starts `path` (argv, envp) leading a session of its own as process
// `want`, forced through /proc/sys/kernel/ns_last_pid (root only). Between
// the write and the spawn any fork on the machine may take the number: such
// a miss is ended with end_session, then `after_miss` runs (nothing of the
// miss is left to act by then), and it tries again. The pid, or -1.
inline int spawn_session_at(int want, const char* path, const char* const* argv, char* const* envp,
                            const std::function<void()>& after_miss = {}) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  // Opened once, so that the window between the write and the spawn is short.
  PidCounter counter;
  int got = -1;
  for (int attempt = 0; attempt < 2000 && got < 0 && counter.ok(); ++attempt) {
    if (!counter.force(want)) break;
    pid_t pid = -1;
    if (posix_spawn(&pid, path, nullptr, &attr, const_cast<char* const*>(argv), envp) != 0) break;
    if (pid == want) {
      got = pid;
    } else {
      end_session(pid);
      if (after_miss) after_miss();
    }
  }
  posix_spawnattr_destroy(&attr);
  return got;
}

}  // namespace airssys::test
