// cgroup v2 containment, with real processes: the runtime's root directory,
// one cgroup per managed tree, children born inside it (and their setsid
// descendants with them), cgroup.kill, and the destructors that must kill
// and remove whatever is left. The test process is a child subreaper, so
// that a descendant orphaned by a kill comes back to it and is reaped;
// every test ends with no child of this process, no cgroup directory of
// this process and no extra descriptor.

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/process.hpp>

#include <catch2/catch.hpp>

#include "support/arch_spawn.hpp"
#include "support/fd.hpp"
#include "support/cgroup_base.hpp"
#include "support/proc_table.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace airssys;
using airssys::arch::Cgroup;
using airssys::arch::CgroupRoot;
using airssys::arch::SpawnSpec;
using airssys::arch::StdioMode;

namespace {

namespace fs = std::filesystem;

// Every "airssys-<our pid>-*" directory under the cgroup2 mount (the root
// may be made in our own cgroup when that is writable, so the whole
// hierarchy is searched, but not deeper than a few levels).
std::vector<std::string> our_roots(int pid = test::self_pid()) {
  const std::string mount = test::cgroup2_mount_point();
  if (mount.empty()) return {};
  return test::dirs_with_prefix(mount, "airssys-" + std::to_string(pid) + "-");
}

// Taken at the start of a test, checked at its end (also after a failed
// REQUIRE, whose unwinding has destroyed handles, groups and roots by
// then): every child of ours — including orphans re-parented to us — is
// killed and reaped first, then nothing may be left.
struct NothingLeft {
  std::size_t fds = test::open_fds();
  NothingLeft() { REQUIRE(arch::become_subreaper().ok()); }
  ~NothingLeft() {
    test::kill_and_reap_children();
    CHECK(test::children_of_self().empty());
    CHECK(test::open_fds() == fds);
    const auto left = our_roots();
    INFO("left: " << (left.empty() ? std::string() : left.front()));
    CHECK(left.empty());
  }
};

CgroupRoot open_root(const char* base = nullptr) {
  auto r = CgroupRoot::open(base);
  INFO(r.error().message());
  REQUIRE(r.ok());
  return std::move(*r);
}

Cgroup create_ok(const CgroupRoot& root, std::uint64_t id) {
  auto g = root.create(id);
  INFO(g.error().message());
  REQUIRE(g.ok());
  return std::move(*g);
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Gone, or ended and waiting to be reaped by us.
bool dead(int pid) {
  arch::ProcessInfo i{};
  return !arch::process_info(pid, i) || i.ended;
}

// The same for the process that had start time `start` (read while it ran;
// 0: unknown): another process that got the number since is not it.
bool dead(int pid, unsigned long long start) {
  arch::ProcessInfo i{};
  return !arch::process_info(pid, i) || i.ended || (start != 0 && i.start_ticks != 0 && i.start_ticks != start);
}

// The "<label> <pid>" lines of test::read_labelled, as numbers.
std::multimap<std::string, int> read_pids(int fd, const std::map<std::string, int>& want,
                                          std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::multimap<std::string, int> got;
  for (const auto& [label, value] : test::read_labelled(fd, want, limit)) {
    char* end = nullptr;
    const long pid = std::strtol(value.c_str(), &end, 10);
    if (end != value.c_str() && *end == '\0') got.emplace(label, static_cast<int>(pid));
  }
  return got;
}

// A tree of three levels in the cgroup: the leader shell, a sleep of its
// own, a subshell that starts — in a new session, ignoring SIGTERM — an
// escapee with a sleep of its own, and exits (so the escapee is orphaned
// and re-parented to us, the subreaper). Every process prints its pid.
const char* const kTreeScript =
    "trap '' TERM\n"
    "echo leader $$\n"
    "(setsid sh -c 'trap \"\" TERM; echo escapee $$; sleep 100 & echo sleeper $!; wait' &)\n"
    "sleep 100 & echo sleeper $!\n"
    "wait\n";

struct Tree {
  arch::Process leader;
  int escapee = 0;
  std::vector<int> pids;  // every process of the tree, the leader included
  std::map<int, unsigned long long> start;  // each one's start time, read while the tree ran
};

Tree spawn_tree(const Cgroup& g) {
  const char* argv[] = {"sh", "-c", kTreeScript, nullptr};
  SpawnSpec s;
  s.program = "/bin/sh";
  s.argv = argv;
  s.stdio[0] = StdioMode::Null;
  s.stdio[1] = StdioMode::Pipe;
  s.cgroup = &g;
  Tree t;
  t.leader = test::spawn_ok(s);
  test::Fd out(t.leader.take_pipe(1));
  const auto got = read_pids(out.fd, {{"leader", 1}, {"escapee", 1}, {"sleeper", 2}});
  REQUIRE(got.count("leader") == 1);
  REQUIRE(got.count("escapee") == 1);
  REQUIRE(got.count("sleeper") == 2);
  REQUIRE(got.find("leader")->second == t.leader.pid());
  t.escapee = got.find("escapee")->second;
  for (const auto& [label, pid] : got) {
    t.pids.push_back(pid);
    t.start[pid] = test::start_time_of(pid);
  }
  return t;
}

}  // namespace

// ---- the root ---------------------------------------------------------------

TEST_CASE("CgroupRoot::open() makes airssys-<pid>-<n> in a cgroup2 directory and the root's end removes it") {
  NothingLeft check;
  const std::string mount = test::cgroup2_mount_point();
  REQUIRE_FALSE(mount.empty());
  std::string path;
  {
    auto root = open_root();
    REQUIRE(root.valid());
    path = root.path();
    const std::string name = fs::path(path).filename().string();
    const std::string prefix = "airssys-" + std::to_string(test::self_pid()) + "-";
    REQUIRE(name.rfind(prefix, 0) == 0);
    REQUIRE(name.size() > prefix.size());
    REQUIRE(path.rfind(mount, 0) == 0);  // under the cgroup2 mount
    REQUIRE(is_dir(path));
    REQUIRE(fs::exists(path + "/cgroup.procs"));  // the kernel made it a cgroup
    REQUIRE(fs::exists(path + "/cgroup.kill"));

    SECTION("a second root gets another name") {
      auto second = open_root();
      REQUIRE(std::string(second.path()) != path);
      REQUIRE(is_dir(second.path()));
      REQUIRE(our_roots().size() == 2);
    }
    SECTION("a moved root is removed once, by its new owner") {
      CgroupRoot moved = std::move(root);
      REQUIRE_FALSE(root.valid());
      REQUIRE(moved.valid());
      REQUIRE(std::string(moved.path()) == path);
      { CgroupRoot gone = std::move(moved); }
      REQUIRE_FALSE(is_dir(path));
    }
    SECTION("an explicit base: the cgroup2 mount itself") {
      auto r = CgroupRoot::open(mount.c_str());
      INFO(r.error().message());
      REQUIRE(r.ok());
      REQUIRE(fs::path(r->path()).parent_path() == fs::path(mount));
    }
  }
  REQUIRE_FALSE(is_dir(path));
}

TEST_CASE("CgroupRoot::open() removes the roots nobody holds, never one whose lock is held") {
  NothingLeft check;
  test::PrivateCgroupBase base;  // this test's open is the only sweep
  const std::string mount = base.path;
  // A pid that is certainly gone: a child that has been reaped.
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  // A live one: a child kept alive until the end of the test.
  const pid_t live = ::fork();
  REQUIRE(live >= 0);
  if (live == 0) {
    ::pause();
    ::_exit(0);
  }
  struct EndLive {
    pid_t pid;
    ~EndLive() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } end_live{live};
  // Named the older way (no lock): judged by the pid.
  const std::string legacy_stale = mount + "/airssys-" + std::to_string(dead) + "-7";
  const std::string legacy_kept = mount + "/airssys-" + std::to_string(live) + "-7";
  // Named the current way: judged by the lock alone, whatever the pid.
  const std::string unlocked = mount + "/airssys-" + std::to_string(live) + "-abc-7";
  const std::string locked = mount + "/airssys-" + std::to_string(dead) + "-abc-8";
  REQUIRE(fs::create_directory(legacy_stale));
  REQUIRE(fs::create_directory(legacy_stale + "/g3"));
  REQUIRE(fs::create_directory(legacy_kept));
  REQUIRE(fs::create_directory(unlocked));
  REQUIRE(fs::create_directory(unlocked + "/g1"));
  REQUIRE(fs::create_directory(unlocked + "/g1/sub"));
  REQUIRE(fs::create_directory(locked));
  struct RemoveKept {
    std::vector<std::string> paths;
    ~RemoveKept() {
      for (const auto& p : paths) ::rmdir(p.c_str());
    }
  } remove_kept{{legacy_kept, locked, unlocked + "/g1/sub", unlocked + "/g1", unlocked}};
  test::Fd lock(::open(locked.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(lock.fd >= 0);
  REQUIRE(::flock(lock.fd, LOCK_EX | LOCK_NB) == 0);
  {
    auto root = open_root(base.c_str());
    REQUIRE(root.valid());
    CHECK_FALSE(is_dir(legacy_stale));
    CHECK(is_dir(legacy_kept));
    CHECK_FALSE(is_dir(unlocked));
    CHECK(is_dir(locked));
    CHECK(root.swept().roots >= 2);
  }
}

namespace {

// Runs `body` in a forked child, which exits with what `body` returns
// (its locals destroyed first) and never returns into Catch.
template <class Body>
pid_t in_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

// Runs `body` as the first process (PID 1) of a new PID namespace: a
// child unshares, forks the namespace's first process, waits for it and
// exits with its status.
template <class Body>
pid_t in_new_pid_namespace(Body body) {
  return in_child([&] {
    if (::unshare(CLONE_NEWPID) != 0) return 100;
    const pid_t init = ::fork();
    if (init < 0) return 101;
    if (init == 0) ::_exit(body());
    int status = 0;
    while (::waitpid(init, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 102;
  });
}

int exit_code_of(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A pipe whose ends close with the test.
struct Pipe {
  test::Fd read, write;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read.fd = fds[0];
    write.fd = fds[1];
  }
};

// What a runtime in a child reports: "path <root>", "create ok|failed", ...
std::string value_of(const std::multimap<std::string, std::string>& got, const std::string& label) {
  const auto it = got.find(label);
  return it == got.end() ? std::string() : it->second;
}

}  // namespace

TEST_CASE("CgroupRoot::open() kills the trees of a runtime that is gone, removes its cgroups and says so") {
  NothingLeft check;
  test::PrivateCgroupBase base;  // this test's open is the only sweep
  // The dead runtime: a child that opens a root, starts a tree in g1 (a
  // leader, its sleep, a setsid escapee) and moves one process into a
  // cgroup it makes below g1, then dies by SIGKILL (no destructor, no
  // guardian). The tree lives on; its orphans come back to us, the
  // subreaper, to be reaped at the end.
  Pipe up;
  const pid_t runtime = in_child([&] {
    auto root = CgroupRoot::open(base.c_str());
    if (!root) return 1;
    auto g = root->create(1);
    if (!g) return 2;
    const char* argv[] = {"sh", "-c", kTreeScript, nullptr};
    SpawnSpec s;
    s.program = "/bin/sh";
    s.argv = argv;
    s.stdio[0] = StdioMode::Null;
    s.stdio[1] = StdioMode::Pipe;
    s.kill_with_parent = false;
    s.cgroup = &*g;
    auto leader = arch::spawn(s);
    if (!leader) return 3;
    {
      // Every process of the tree has started once each has said so.
      test::Fd out(leader->take_pipe(1));
      const auto started = test::read_labelled(out.fd, {{"leader", 1}, {"escapee", 1}, {"sleeper", 2}});
      if (started.size() != 4) return 8;
    }
    s.stdio[1] = StdioMode::Null;
    const char* sleep_argv[] = {"sleep", "1000", nullptr};
    s.argv = sleep_argv;
    s.program = "/bin/sleep";
    auto deep = arch::spawn(s);
    if (!deep) return 4;
    const std::string sub = std::string(root->path()) + "/g1/worker/deep";
    if (::mkdir((std::string(root->path()) + "/g1/worker").c_str(), 0755) != 0 || ::mkdir(sub.c_str(), 0755) != 0)
      return 5;
    const std::string procs = sub + "/cgroup.procs";
    FILE* f = std::fopen(procs.c_str(), "w");
    if (f == nullptr || std::fprintf(f, "%d", deep->pid()) <= 0 || std::fclose(f) != 0) return 6;
    ::dprintf(up.write.fd, "path %s\nleader %d\ndeep %d\n", root->path(), leader->pid(), deep->pid());
    ::raise(SIGKILL);
    return 7;
  });
  REQUIRE(runtime > 0);
  up.write.reset();
  const auto got = test::read_labelled(up.read.fd, {{"path", 1}, {"leader", 1}, {"deep", 1}});
  const int code = exit_code_of(runtime);
  REQUIRE(code == 128 + SIGKILL);
  const std::string path = value_of(got, "path");
  REQUIRE_FALSE(path.empty());
  const int leader = std::stoi(value_of(got, "leader"));
  const int deep = std::stoi(value_of(got, "deep"));
  REQUIRE(is_dir(path + "/g1/worker/deep"));
  REQUIRE(test::wait_for([&] { return test::cgroup2_of(deep).find("/g1/worker/deep") != std::string::npos; }));
  REQUIRE_FALSE(dead(leader));
  REQUIRE_FALSE(dead(deep));
  // The tree, orphaned to us (a subreaper), runs on: the numbers are still its own.
  const unsigned long long leader_start = test::start_time_of(leader), deep_start = test::start_time_of(deep);
  // The deep sleep may still be inside its exec: a vfork'd child lets its
  // parent go on before its close-on-exec has run, so for a moment it
  // holds the runtime's descriptors, the root's locked one among them, and
  // a sweep then rightly takes the root for one in use (CI's make test
  // stage saw that once). The root is abandoned once nobody holds it.
  REQUIRE(test::wait_for([&] { return test::holders_of(path).empty(); }));
  {
    auto root = open_root(base.c_str());
    const arch::StaleSweep& swept = root.swept();
    // A root is swept only if its lock can be taken: who holds it, if not.
    INFO("open on the dead runtime's root: " << (swept.roots == 0 ? test::holders_of(path) : "-"));
    CHECK(swept.roots >= 1);
    CHECK(swept.trees >= 1);
    CHECK(swept.processes >= 5);  // leader, its sleep, the escapee, its sleep, the deep sleep
    CHECK_FALSE(is_dir(path));
  }
  // Every process of the dead runtime's tree is gone or a zombie of ours.
  REQUIRE(test::wait_for([&] { return dead(leader, leader_start) && dead(deep, deep_start); }));
  test::kill_and_reap_children();
}

TEST_CASE("a root held by a runtime in another PID namespace is never swept, whatever its pid means here") {
  NothingLeft check;
  Pipe up, down;
  const pid_t outer = in_new_pid_namespace([&] {
    // The runtime gets a pid that no process has in the test's namespace:
    // a pid check made from here would call it dead.
    int last = 20000;
    while (last < 32000 && ::access(("/proc/" + std::to_string(last + 1)).c_str(), F_OK) == 0) ++last;
    FILE* f = std::fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (f == nullptr || std::fprintf(f, "%d", last) <= 0 || std::fclose(f) != 0) return 10;
    const pid_t inner = in_child([&] {
      auto root = CgroupRoot::open();
      if (!root) return 11;
      ::dprintf(up.write.fd, "pid %d\npath %s\n", ::getpid(), root->path());
      char go = 0;
      if (::read(down.read.fd, &go, 1) != 1) return 12;
      auto g = root->create(1);
      ::dprintf(up.write.fd, "create %s\n", g ? "ok" : "failed");
      return 0;
    });
    return exit_code_of(inner);
  });
  REQUIRE(outer > 0);
  up.write.reset();
  down.read.reset();
  const auto got = test::read_labelled(up.read.fd, {{"pid", 1}, {"path", 1}});
  const std::string path = value_of(got, "path");
  REQUIRE_FALSE(path.empty());
  INFO("the other runtime's root: " << path);
  // Bare on purpose: the number is the other namespace's; no process here had it, so there is no start time.
  REQUIRE_FALSE(test::process_exists(std::stoi(value_of(got, "pid"))));
  {
    auto root = open_root();  // sweeps the base
    CHECK(is_dir(path));
  }
  REQUIRE(::write(down.write.fd, "x", 1) == 1);
  const auto created = test::read_labelled(up.read.fd, {{"create", 1}});
  CHECK(value_of(created, "create") == "ok");
  CHECK(exit_code_of(outer) == 0);
  CHECK_FALSE(is_dir(path));
}

TEST_CASE("two runtimes that are both PID 1 in their namespaces get roots of different names") {
  NothingLeft check;
  Pipe up, down;
  auto runtime = [&] {
    return in_new_pid_namespace([&] {
      auto root = CgroupRoot::open();
      if (!root) {
        ::dprintf(up.write.fd, "error %s\n", root.error().message());
        return 1;
      }
      ::dprintf(up.write.fd, "path %s\n", root->path());
      char go = 0;
      return ::read(down.read.fd, &go, 1) == 1 ? 0 : 2;
    });
  };
  // One after the other, each holding its root: the same pid (1), the
  // same sequence number (both forked from this process).
  const pid_t first = runtime();
  REQUIRE(first > 0);
  const auto one = test::read_labelled(up.read.fd, {{"path", 1}});
  const pid_t second = runtime();
  REQUIRE(second > 0);
  const auto two = test::read_labelled(up.read.fd, {{"path", 1}});
  REQUIRE(::write(down.write.fd, "xx", 2) == 2);
  CHECK(exit_code_of(first) == 0);
  CHECK(exit_code_of(second) == 0);
  INFO("first: " << value_of(one, "error") << "; second: " << value_of(two, "error"));
  REQUIRE_FALSE(value_of(one, "path").empty());
  REQUIRE_FALSE(value_of(two, "path").empty());
  CHECK(value_of(one, "path") != value_of(two, "path"));
  CHECK(fs::path(value_of(one, "path")).filename().string().rfind("airssys-1-", 0) == 0);
  CHECK_FALSE(is_dir(value_of(one, "path")));
  CHECK_FALSE(is_dir(value_of(two, "path")));
}

TEST_CASE("a root name held by another runtime is passed over, and when all are held the error says so") {
  NothingLeft check;
  auto first = open_root();
  // "airssys-<pid>-<ns>-<n>": the next roots of this process take n+1, n+2...
  const std::string name = fs::path(first.path()).filename().string();
  const std::string stem = name.substr(0, name.rfind('-') + 1);
  const unsigned n = static_cast<unsigned>(std::stoul(name.substr(name.rfind('-') + 1)));
  const std::string base = fs::path(first.path()).parent_path().string();
  // Held names: made and locked the way a live runtime holds its root.
  struct Held {
    std::vector<std::string> paths;
    std::vector<int> fds;
    // Another test process's runtime may sweep the name between its mkdir
    // and its lock, as it may a real runtime's (it locks, then removes an
    // unlocked root): taken again then, as CgroupRoot::open does.
    void take(const std::string& path) {
      for (int attempt = 0; attempt < 1000; ++attempt) {
        if (::mkdir(path.c_str(), 0755) != 0) REQUIRE(errno == EEXIST);  // ours, or being swept
        const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat opened {}, named {};
        if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &opened) == 0 &&
            ::stat(path.c_str(), &named) == 0 && opened.st_ino == named.st_ino) {
          paths.push_back(path);
          fds.push_back(fd);
          return;
        }
        if (fd >= 0) ::close(fd);
        ::usleep(1000);
      }
      FAIL("could not hold " << path);
    }
    ~Held() {
      for (int fd : fds) ::close(fd);
      for (const auto& p : paths) ::rmdir(p.c_str());
    }
  } held;
  SECTION("the next name is held: the one after it is used") {
    held.take(base + "/" + stem + std::to_string(n + 1));
    auto second = open_root();
    CHECK(std::string(second.path()) == base + "/" + stem + std::to_string(n + 2));
  }
  SECTION("every name it tries is held: an error that says they are taken") {
    for (unsigned k = n + 1; k <= n + 16; ++k) held.take(base + "/" + stem + std::to_string(k));
    auto second = CgroupRoot::open();
    REQUIRE_FALSE(second.ok());
    INFO(second.error().message());
    CHECK(second.code() == Errc::AlreadyExists);
    CHECK(std::string(second.error().message()).find(stem + std::to_string(n + 1)) != std::string::npos);
    CHECK(std::string(second.error().message()).find("held by other runtimes") != std::string::npos);
  }
}

TEST_CASE("a root removed behind the runtime's back is made again by the next create()") {
  NothingLeft check;
  auto root = open_root();
  const std::string path = root.path();
  REQUIRE(::rmdir(path.c_str()) == 0);
  auto g = root.create(4);
  INFO(g.error().message());
  REQUIRE(g.ok());
  CHECK(is_dir(path + "/g4"));
  // Held again: a sweep by another runtime leaves it.
  test::Fd probe(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(probe.fd >= 0);
  CHECK(::flock(probe.fd, LOCK_EX | LOCK_NB) != 0);
}

TEST_CASE("CgroupRoot::open() refuses a base that is not a cgroup2 directory, naming it") {
  NothingLeft check;
  std::string base;
  SECTION("a plain directory") { base = "/tmp"; }
  SECTION("a path that does not exist") { base = "/nonexistent"; }
  SECTION("a cgroup v1 hierarchy") {
    base = "/sys/fs/cgroup/memory";
    if (!is_dir(base)) base = "/proc";  // no v1 here: any other file system
  }
  auto r = CgroupRoot::open(base.c_str());
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.code() == Errc::InvalidArgument);
  CHECK(std::string(r.error().message()).find("'" + base + "'") != std::string::npos);
  CHECK(std::string(r.error().message()).find("not a cgroup2 directory") != std::string::npos);
}

// ---- one cgroup -------------------------------------------------------------

TEST_CASE("create(id) makes an empty cgroup g<id> under the root, removed with its handle") {
  NothingLeft check;
  auto root = open_root();
  const std::string dir = std::string(root.path()) + "/g7";
  {
    auto g = create_ok(root, 7);
    REQUIRE(g.valid());
    REQUIRE(std::string(g.name()) == "g7");
    REQUIRE(is_dir(dir));
    REQUIRE(g.populated().ok());
    REQUIRE_FALSE(*g.populated());
    REQUIRE(g.count_processes() == 0);
    REQUIRE(g.wait_empty(0).ok());
    REQUIRE(g.events_handle() >= 0);

    SECTION("the same id twice is an error naming it") {
      auto twice = root.create(7);
      REQUIRE_FALSE(twice.ok());
      INFO(twice.error().message());
      REQUIRE(twice.error().os_error() == EEXIST);
      REQUIRE(std::string(twice.error().message()).find("/g7") != std::string::npos);
    }
    SECTION("remove() of an empty cgroup removes it and empties the handle") {
      REQUIRE(g.remove().ok());
      REQUIRE_FALSE(g.valid());
      REQUIRE_FALSE(is_dir(dir));
      REQUIRE(g.remove().code() == Errc::Dead);
      REQUIRE(g.kill().code() == Errc::Dead);
      REQUIRE(g.populated().code() == Errc::Dead);
      REQUIRE(g.wait_empty(0).code() == Errc::Dead);
      REQUIRE(g.count_processes() == 0);
    }
    SECTION("a moved cgroup is removed once, by its new owner") {
      Cgroup moved = std::move(g);
      REQUIRE_FALSE(g.valid());
      REQUIRE(std::string(moved.name()) == "g7");
      { Cgroup gone = std::move(moved); }
      REQUIRE_FALSE(is_dir(dir));
    }
  }
  REQUIRE_FALSE(is_dir(dir));
  REQUIRE(is_dir(root.path()));
}

TEST_CASE("a closed root and an empty cgroup handle refuse their operations") {
  NothingLeft check;
  CgroupRoot closed;
  REQUIRE_FALSE(closed.valid());
  REQUIRE(closed.create(1).code() == Errc::Dead);
  REQUIRE(closed.kill_all().code() == Errc::Dead);
  Cgroup empty;
  REQUIRE(empty.kill().code() == Errc::Dead);
  REQUIRE(empty.populated().code() == Errc::Dead);
  // Spawning into it is refused before any child exists.
  SpawnSpec s;
  s.program = "/bin/true";
  s.cgroup = &empty;
  auto p = arch::spawn(s);
  REQUIRE(p.code() == Errc::InvalidArgument);
  REQUIRE(test::children_of_self().empty());
}

// ---- children born inside ---------------------------------------------------

TEST_CASE("a child spawned with SpawnSpec::cgroup is born inside it, and so is its descendant that called setsid") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 1);
  auto tree = spawn_tree(g);
  const std::string where = test::cgroup2_of(tree.leader.pid());
  INFO("leader's cgroup: " << where);
  REQUIRE(ends_with(where, "/" + fs::path(root.path()).filename().string() + "/g1"));
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE(test::cgroup2_of(pid) == where);
  }
  // The escapee left the leader's session and group, and its parent, but
  // not the cgroup.
  arch::ProcessInfo e{};
  REQUIRE(arch::process_info(tree.escapee, e));
  REQUIRE(e.sid == tree.escapee);
  REQUIRE(e.pgid == tree.escapee);
  REQUIRE(test::wait_for([&] {
    arch::ProcessInfo i{};
    return arch::process_info(tree.escapee, i) && i.ppid == test::self_pid();
  }));
  REQUIRE(*g.populated());
  // The leader, its sleep, the escapee and its sleep; the subshell may not
  // have exited yet.
  REQUIRE(g.count_processes() >= 4);
}

TEST_CASE("Cgroup::kill() kills every process in it, including one in another session, and it empties") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 2);
  auto tree = spawn_tree(g);
  REQUIRE(*g.populated());
  // An events descriptor of our own (the handle's is read by populated()
  // and wait_empty(), which consumes the notification), read once to arm it.
  test::Fd events(::openat(g.dir_handle(), "cgroup.events", O_RDONLY | O_CLOEXEC));
  REQUIRE(events.fd >= 0);
  char text[256];
  REQUIRE(::pread(events.fd, text, sizeof text, 0) > 0);

  REQUIRE(g.kill().ok());
  auto empty = g.wait_empty(10'000'000'000);
  INFO(empty.error().message());
  REQUIRE(empty.ok());
  REQUIRE_FALSE(*g.populated());
  REQUIRE(g.count_processes() == 0);
  // Every process of the tree is gone or a zombie of ours (the escapee
  // came back to us, the subreaper).
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE(dead(pid, tree.start.at(pid)));
  }
  auto st = arch::wait(tree.leader, 10'000'000'000);
  REQUIRE(st.ok());
  REQUIRE(st->signal == SIGKILL);  // SIGTERM is ignored, SIGKILL is not
  test::kill_and_reap_children();
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE_FALSE(test::same_process_exists(pid, tree.start.at(pid)));
  }
  // The events descriptor signalled the change (POLLPRI).
  pollfd pfd{events.fd, POLLPRI, 0};
  REQUIRE(::poll(&pfd, 1, 10'000) == 1);
  REQUIRE((pfd.revents & POLLPRI) != 0);
  // Empty now: the directory can go.
  REQUIRE(g.remove().ok());
}

TEST_CASE("Cgroup::remove() is refused with Full while the cgroup has processes") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 3);
  const std::string dir = std::string(root.path()) + "/g3";
  const char* argv[] = {"sleep", "100", nullptr};
  SpawnSpec s;
  s.program = "/bin/sleep";
  s.argv = argv;
  s.cgroup = &g;
  auto p = test::spawn_ok(s);
  auto r = g.remove();
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  REQUIRE(r.code() == Errc::Full);
  REQUIRE(std::string(r.error().message()).find("g3") != std::string::npos);
  REQUIRE(g.valid());
  REQUIRE(is_dir(dir));
  REQUIRE(g.count_processes() == 1);

  REQUIRE(g.kill().ok());
  REQUIRE(arch::wait(p, 10'000'000'000)->signal == SIGKILL);
  REQUIRE(g.wait_empty(10'000'000'000).ok());
  REQUIRE(g.remove().ok());
  REQUIRE_FALSE(is_dir(dir));
}

TEST_CASE("destroying a Cgroup with live processes kills them all and removes its directory") {
  NothingLeft check;
  auto root = open_root();
  const std::string dir = std::string(root.path()) + "/g4";
  Tree tree;
  {
    auto g = create_ok(root, 4);
    tree = spawn_tree(g);
    REQUIRE(is_dir(dir));
  }
  REQUIRE_FALSE(is_dir(dir));
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE(dead(pid, tree.start.at(pid)));
  }
  REQUIRE(arch::wait(tree.leader, 10'000'000'000)->signal == SIGKILL);
  test::kill_and_reap_children();
  for (int pid : tree.pids) REQUIRE_FALSE(test::same_process_exists(pid, tree.start.at(pid)));
}

TEST_CASE("destroying the root kills everything under it and removes every directory") {
  NothingLeft check;
  std::optional<CgroupRoot> root(open_root());
  const std::string path = root->path();
  std::vector<Tree> trees;
  std::vector<Cgroup> groups;
  for (std::uint64_t id : {10, 11}) {
    groups.push_back(create_ok(*root, id));
    trees.push_back(spawn_tree(groups.back()));
  }
  SECTION("the root's end, with its groups' handles still open") {
    root.reset();  // kills both trees, removes g10, g11 and the root
    for (auto& g : groups) {
      auto p = g.populated();  // a removed cgroup reads as empty, or the read fails
      if (p.ok()) REQUIRE_FALSE(*p);
    }
    // A child cannot be born into a removed cgroup: an error, and no
    // child outside it either.
    SpawnSpec s;
    s.program = "/bin/true";
    s.cgroup = &groups.front();
    auto late = arch::spawn(s);
    INFO(late.error().message());
    REQUIRE_FALSE(late.ok());
    for (auto& t : trees) REQUIRE(arch::wait(t.leader, 10'000'000'000)->signal == SIGKILL);
    test::kill_and_reap_children();
    REQUIRE(test::children_of_self().empty());
    // And a later spawn into a live cgroup is still born inside it.
    auto other = open_root();
    auto g = create_ok(other, 1);
    s.cgroup = &g;
    const char* argv[] = {"sleep", "100", nullptr};
    s.program = "/bin/sleep";
    s.argv = argv;
    auto inside = test::spawn_ok(s);
    REQUIRE(ends_with(test::cgroup2_of(inside.pid()), fs::path(other.path()).filename().string() + "/g1"));
    REQUIRE(g.kill().ok());
    REQUIRE(arch::wait(inside, 10'000'000'000)->signal == SIGKILL);
    groups.clear();  // harmless on removed directories
  }
  SECTION("kill_all() first, then the groups, then the root") {
    REQUIRE(root->kill_all().ok());
    for (auto& g : groups) REQUIRE(g.wait_empty(10'000'000'000).ok());
    REQUIRE(is_dir(path + "/g10"));
    groups.clear();
    REQUIRE_FALSE(is_dir(path + "/g10"));
    REQUIRE_FALSE(is_dir(path + "/g11"));
    REQUIRE(is_dir(path));
    root.reset();
  }
  REQUIRE_FALSE(is_dir(path));
  for (auto& t : trees) {
    for (int pid : t.pids) {
      INFO("pid " << pid);
      REQUIRE(dead(pid, t.start.at(pid)));
    }
    if (t.leader.valid()) REQUIRE(arch::wait(t.leader, 10'000'000'000)->signal == SIGKILL);
  }
  test::kill_and_reap_children();
  for (auto& t : trees)
    for (int pid : t.pids) REQUIRE_FALSE(test::same_process_exists(pid, t.start.at(pid)));
}

// ---- what a tree does to its cgroup -----------------------------------------

TEST_CASE("a cgroup's kill and its removal reach the cgroups its tree made below it") {
  NothingLeft check;
  std::optional<CgroupRoot> root(open_root());
  auto g = create_ok(*root, 5);
  const std::string dir = std::string(root->path()) + "/g5";
  const char* argv[] = {"sleep", "1000", nullptr};
  auto s = test::quiet("/bin/sleep", argv);
  s.cgroup = &g;
  auto deep = test::spawn_ok(s);
  REQUIRE(fs::create_directories(dir + "/w/x"));
  REQUIRE(fs::create_directory(dir + "/y"));
  {
    std::ofstream procs(dir + "/w/x/cgroup.procs");
    procs << deep.pid() << std::flush;
    REQUIRE(procs.good());
  }
  REQUIRE(ends_with(test::cgroup2_of(deep.pid()), "/g5/w/x"));
  REQUIRE(*g.populated());
  SECTION("kill(), then remove()") {
    REQUIRE(g.kill().ok());
    REQUIRE(g.wait_empty(10'000'000'000).ok());
    auto removed = g.remove();
    INFO(removed.error().message());
    REQUIRE(removed.ok());
    REQUIRE_FALSE(is_dir(dir));
  }
  SECTION("remove() while a process lives below: Full, and its cgroup stays") {
    REQUIRE(g.remove().code() == Errc::Full);
    REQUIRE(is_dir(dir + "/w/x"));
    REQUIRE(g.valid());
  }
  SECTION("the handle's end") {
    { Cgroup gone = std::move(g); }
    REQUIRE_FALSE(is_dir(dir));
  }
  SECTION("the root's end") {
    g.kill().ok();
    REQUIRE(g.wait_empty(10'000'000'000).ok());
    // The group's handle would remove it; let the root do it instead.
    REQUIRE(::rmdir((dir + "/y").c_str()) == 0);
    root.reset();
    REQUIRE_FALSE(is_dir(dir));
  }
  {
    Cgroup end = std::move(g);  // kills what is left
  }
  auto st = arch::wait(deep, 10'000'000'000);
  REQUIRE(st.ok());
  REQUIRE(st->signal == SIGKILL);
  REQUIRE_FALSE(is_dir(dir));
}

TEST_CASE("a child spawned into a cgroup is in a cgroup namespace rooted at it; from outside, its full path shows") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 6);
  const char* argv[] = {"sh", "-c", "echo inside $(grep '^0::' /proc/self/cgroup); exec sleep 1000", nullptr};
  SpawnSpec s;
  s.program = "/bin/sh";
  s.argv = argv;
  s.stdio[0] = StdioMode::Null;
  s.stdio[1] = StdioMode::Pipe;
  s.cgroup = &g;
  auto child = test::spawn_ok(s);
  test::Fd out(child.take_pipe(1));
  const auto got = test::read_labelled(out.fd, {{"inside", 1}});
  CHECK(value_of(got, "inside") == "0::/");
  // The runtime reads the path from its own namespace: the whole of it.
  CHECK(ends_with(test::cgroup2_of(child.pid()), "/" + std::string(root.name()) + "/g6"));
  CHECK(arch::cgroup_path_within(test::cgroup2_of(child.pid()).c_str(),
                                 ("/" + std::string(root.name()) + "/g6").c_str()));
  const std::uint64_t ns = arch::cgroup_namespace_of(child.pid());
  CHECK(ns != 0);
  CHECK(ns != arch::cgroup_namespace_of(test::self_pid()));
  REQUIRE(g.kill().ok());
  REQUIRE(arch::wait(child, 10'000'000'000)->signal == SIGKILL);
}

TEST_CASE("cgroup_path_within matches a cgroup and the cgroups below it, at component boundaries") {
  CHECK(arch::cgroup_path_within("/airssys-1-a-0/g3", "/airssys-1-a-0/g3"));
  CHECK(arch::cgroup_path_within("/x/airssys-1-a-0/g3/worker/deep", "/airssys-1-a-0/g3"));
  CHECK_FALSE(arch::cgroup_path_within("/airssys-1-a-0/g30", "/airssys-1-a-0/g3"));
  CHECK_FALSE(arch::cgroup_path_within("/airssys-1-a-0/g30/x", "/airssys-1-a-0/g3"));
  CHECK(arch::cgroup_path_within("/airssys-1-a-0/g30/g3", "/g3"));
  CHECK_FALSE(arch::cgroup_path_within("/", "/airssys-1-a-0/g3"));
  CHECK_FALSE(arch::cgroup_path_within("/airssys-1-a-0/g3", ""));
}
