// The platform layer's process handling, with real processes. Every test
// checks the process table afterwards: nothing of its own is left running
// or unreaped, and no file descriptor is leaked.

#include <airssys/arch/process.hpp>

#include <catch2/catch.hpp>

#include "support/arch_spawn.hpp"
#include "support/proc_table.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace airssys;
using airssys::arch::GroupMode;
using airssys::arch::SpawnSpec;
using airssys::arch::StdioMode;

namespace {

// Counts taken at the start of a test and compared at its end.
struct NothingLeft {
  std::size_t fds = test::open_fds();
  ~NothingLeft() {
    CHECK(test::children_of_self().empty());
    CHECK(test::open_fds() == fds);
  }
};


}  // namespace

TEST_CASE("a spawned program runs, exits and is reaped with its status") {
  NothingLeft check;
  SECTION("exit code 0") {
    auto p = test::spawn_ok(test::quiet("/bin/true"));
    auto st = arch::wait(p, -1);
    REQUIRE(st.ok());
    REQUIRE(st->code == 0);
    REQUIRE(st->signal == 0);
    REQUIRE_FALSE(p.valid());
  }
  SECTION("a non-zero code, found through PATH, with arguments") {
    const char* argv[] = {"sh", "-c", "exit 7", nullptr};
    auto p = test::spawn_ok(test::quiet("sh", argv));
    auto st = arch::wait(p, -1);
    REQUIRE(st.ok());
    REQUIRE(st->code == 7);
  }
}

TEST_CASE("the working directory and the environment reach the child") {
  NothingLeft check;
  const auto dir = std::filesystem::temp_directory_path() / "airssys-process-test";
  std::filesystem::create_directories(dir);
  const char* argv[] = {"sh", "-c", "pwd > out.txt; echo \"$GREETING\" >> out.txt", nullptr};
  const char* envp[] = {"GREETING=hello", "PATH=/usr/bin:/bin", nullptr};
  SpawnSpec s = test::quiet("sh", argv);
  s.envp = envp;
  const std::string dir_s = dir.string();
  s.working_dir = dir_s.c_str();
  auto p = test::spawn_ok(s);
  REQUIRE(arch::wait(p, -1)->code == 0);
  std::ifstream in(dir / "out.txt");
  std::string cwd, greeting;
  std::getline(in, cwd);
  std::getline(in, greeting);
  REQUIRE(cwd == dir_s);
  REQUIRE(greeting == "hello");
  std::filesystem::remove_all(dir);
}

TEST_CASE("bad spawn input is an error that names it, and nothing is left behind") {
  NothingLeft check;
  const auto dir = std::filesystem::temp_directory_path() / "airssys-process-bad";
  std::filesystem::create_directories(dir);
  const auto plain_file = dir / "not-executable";
  std::ofstream(plain_file) << "#!/bin/sh\n";
  std::filesystem::permissions(plain_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::string plain = plain_file.string();
  const std::string dir_s = dir.string();

  struct Case {
    const char* what;
    SpawnSpec spec;
    Errc code;
    const char* names;
  };
  SpawnSpec missing = test::quiet("/nope/missing-program");
  SpawnSpec a_dir = test::quiet(dir_s.c_str());
  SpawnSpec not_exec = test::quiet(plain.c_str());
  SpawnSpec not_in_path = test::quiet("airssys-no-such-program");
  SpawnSpec empty = test::quiet("");
  SpawnSpec bad_cwd = test::quiet("/bin/true");
  bad_cwd.working_dir = "/nope/dir";
  SpawnSpec cwd_file = test::quiet("/bin/true");
  cwd_file.working_dir = plain.c_str();
  SpawnSpec join_nothing = test::quiet("/bin/true");
  join_nothing.group = GroupMode::JoinGroup;
  const Case cases[] = {
      {"missing program", missing, Errc::NotFound, "/nope/missing-program"},
      {"a directory", a_dir, Errc::InvalidArgument, "is a directory"},
      {"not executable", not_exec, Errc::InvalidArgument, "is not executable"},
      {"not in PATH", not_in_path, Errc::NotFound, "not found in PATH"},
      {"empty program", empty, Errc::InvalidArgument, "program is empty"},
      {"missing working dir", bad_cwd, Errc::NotFound, "working_dir '/nope/dir'"},
      {"working dir is a file", cwd_file, Errc::InvalidArgument, "is not a directory"},
      {"JoinGroup without a leader", join_nothing, Errc::InvalidArgument, "JoinGroup"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto p = arch::spawn(c.spec);
    REQUIRE_FALSE(p.ok());
    CHECK(p.code() == c.code);
    CHECK(std::string(p.error().message()).find(c.names) != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a NewGroup child leads its own group and the group can be signalled") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  auto leader = test::spawn_ok(test::quiet("sleep", argv));
  REQUIRE(leader.leads_group());
  REQUIRE(leader.pgid() == leader.pid());
  test::ProcEntry e;
  REQUIRE(test::read_proc(leader.pid(), e));
  REQUIRE(e.pgid == leader.pid());

  SpawnSpec member_spec = test::quiet("sleep", argv);
  member_spec.group = GroupMode::JoinGroup;
  member_spec.join = &leader;
  auto member = test::spawn_ok(member_spec);
  REQUIRE(member.pgid() == leader.pgid());
  REQUIRE(test::read_proc(member.pid(), e));
  REQUIRE(e.pgid == leader.pid());
  REQUIRE_FALSE(member.leads_group());

  REQUIRE(arch::signal_group(leader, SIGTERM).ok());
  auto a = arch::wait(leader, -1);
  auto b = arch::wait(member, -1);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a->signal == SIGTERM);
  REQUIRE(b->signal == SIGTERM);
  REQUIRE(a->shell_status() == 128 + SIGTERM);
}

TEST_CASE("groups this runtime did not create, reaped processes and bad signals are refused") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  SpawnSpec inherit = test::quiet("sleep", argv);
  inherit.group = GroupMode::Inherit;
  auto p = test::spawn_ok(inherit);
  REQUIRE_FALSE(p.leads_group());
  auto refused = arch::signal_group(p, SIGKILL);  // would hit the test's own group
  REQUIRE(refused.code() == Errc::InvalidArgument);
  REQUIRE(arch::signal(p, 65).code() == Errc::InvalidArgument);
  REQUIRE(arch::signal(p, -1).code() == Errc::InvalidArgument);
  REQUIRE(arch::signal(p, SIGKILL).ok());
  REQUIRE(arch::wait(p, -1)->signal == SIGKILL);
  // Reaped: the handle no longer names a process, so nothing can be signalled.
  REQUIRE(arch::signal(p, SIGKILL).code() == Errc::Dead);
  REQUIRE(arch::signal_group(p, SIGKILL).code() == Errc::Dead);
  REQUIRE(arch::wait(p, 0).code() == Errc::Dead);
}

TEST_CASE("a wait that times out leaves the process running, and a dropped handle kills and reaps it") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  int pid = 0;
  unsigned long long start = 0;
  {
    auto p = test::spawn_ok(test::quiet("sleep", argv));
    pid = p.pid();
    start = test::start_time_of(pid);
    auto w = arch::wait(p, 1'000'000);
    REQUIRE(w.code() == Errc::Timeout);
    REQUIRE(p.valid());
    REQUIRE(test::same_process_exists(pid, start));
  }
  REQUIRE_FALSE(test::same_process_exists(pid, start));
}

TEST_CASE("a dropped handle whose process the application reaped itself neither waits for nor reaps the child that got its number") {
  // The application reaps the process behind the handle (its own
  // waitpid); another child of this process then gets the number. Dropping
  // the handle must act through its pidfd only: a wait by number would
  // block on that child and take its exit status.
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  auto p = test::spawn_ok(test::quiet("sleep", argv));
  const int pid = p.pid();
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  const char* other_argv[] = {"sleep", "1000", nullptr};
  const int other = test::spawn_session_at(pid, "/bin/sleep", other_argv, environ);
  REQUIRE(other == pid);
  std::atomic<bool> dropped{false};
  std::thread drop([&] {
    { arch::Process gone = std::move(p); }
    dropped.store(true);
  });
  const bool returned = test::wait_for([&] { return dropped.load(); });
  // A drop stuck on the other child is freed by its end (and reaps it).
  if (!returned) ::kill(other, SIGKILL);
  drop.join();
  CHECK(returned);
  // The other child still runs, and is still ours to reap.
  test::ProcEntry e;
  REQUIRE(test::read_proc(other, e));
  CHECK(e.state != 'Z');
  CHECK(::waitpid(other, &status, WNOHANG) == 0);
  test::end_session(other);
}

TEST_CASE("only the standard streams reach the child") {
  NothingLeft check;
  // An fd the parent opened without O_CLOEXEC-awareness: std::fopen's
  // stream is inheritable unless "e" is given.
  std::FILE* leak = std::fopen("/proc/self/status", "r");
  REQUIRE(leak != nullptr);
  const char* argv[] = {"sh", "-c", "test $(ls /proc/self/fd | wc -l) -le 4", nullptr};
  auto p = test::spawn_ok(test::quiet("sh", argv));
  auto st = arch::wait(p, -1);
  std::fclose(leak);
  REQUIRE(st.ok());
  REQUIRE(st->code == 0);  // 0-2 plus the fd ls opens to read the directory
}

// Kills and reaps every child of this process that no handle holds; used
// as a scope guard so that a failing test still leaves nothing behind.
int kill_and_reap_children() {
  int adopted = 0;
  int pids[16];
  for (int round = 0; round < 100; ++round) {
    const std::size_t n = arch::list_children(pids, 16);
    if (n == 0) break;
    for (std::size_t i = 0; i < n && i < 16; ++i) {
      auto orphan = arch::adopt_child(pids[i]);
      if (!orphan) continue;  // reaped meanwhile, or held by a handle
      ++adopted;
      (void)arch::signal(*orphan, SIGKILL);
      (void)arch::wait(*orphan, -1);
    }
  }
  return adopted;
}

struct ReapChildren {
  ~ReapChildren() { kill_and_reap_children(); }
};

TEST_CASE("descendants that escaped the group with setsid come back to a subreaper and are killed and reaped") {
  NothingLeft check;
  REQUIRE(arch::become_subreaper().ok());
  ReapChildren guard;
  // The leader starts a subshell that starts, in a new session, a shell
  // ignoring SIGTERM with a child of its own, and exits: the escapee is
  // orphaned at once and, this process being a subreaper, becomes its child.
  const char* argv[] = {"sh", "-c", "(setsid sh -c 'trap \"\" TERM; sleep 30; true' &); sleep 30", nullptr};
  auto leader = test::spawn_ok(test::quiet("sh", argv));
  // Wait (bounded) until a child of ours runs outside the leader's group:
  // the escapee, after its setsid.
  int escapee = 0;
  unsigned long long escapee_start = 0;  // read while it is our unreaped child
  for (int i = 0; i < 5000 && escapee == 0; ++i) {
    int pids[16] = {};
    const std::size_t n = arch::list_children(pids, 16);
    for (std::size_t k = 0; k < n && k < 16; ++k) {
      test::ProcEntry e;
      if (pids[k] != leader.pid() && test::read_proc(pids[k], e) && e.pgid != leader.pgid()) {
        escapee = pids[k];
        escapee_start = e.start_time;
      }
    }
    if (escapee == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(escapee != 0);

  // The group kill reaches the leader and its sleep, not the escapee.
  REQUIRE(arch::signal_group(leader, SIGTERM).ok());
  REQUIRE(arch::wait(leader, -1)->signal == SIGTERM);
  REQUIRE(test::same_process_exists(escapee, escapee_start));

  // Whatever is left is ours now: adopt, kill and reap, until nothing is.
  REQUIRE(kill_and_reap_children() >= 1);  // the escapee, and its sleep if it got that far
  int pids[16];
  REQUIRE(arch::list_children(pids, 16) == 0);
  REQUIRE_FALSE(test::same_process_exists(escapee, escapee_start));
}

TEST_CASE("only children of this process can be adopted") {
  NothingLeft check;
  REQUIRE(arch::adopt_child(1).code() == Errc::InvalidArgument);
  REQUIRE(arch::adopt_child(test::self_pid()).code() == Errc::InvalidArgument);
  REQUIRE(arch::adopt_child(-5).code() == Errc::InvalidArgument);
}

namespace {

// The pids a listing reported, as a sorted vector.
template <class List>
std::vector<int> children_by(List&& list) {
  int pids[64];
  const std::size_t n = list(pids, 64);
  std::vector<int> out(pids, pids + std::min<std::size_t>(n, 64));
  std::sort(out.begin(), out.end());
  return out;
}

bool contains(const std::vector<int>& v, int pid) { return std::find(v.begin(), v.end(), pid) != v.end(); }

// A thread that spawns `sleep 30` (the child is attached to it), reports
// its tid, and ends when told.
struct SpawningThread {
  std::atomic<int> tid{0};
  std::atomic<bool> end{false};
  arch::Process child;
  std::thread t;
  void start() {
    t = std::thread([this] {
      const char* argv[] = {"sleep", "30", nullptr};
      child = test::spawn_ok(test::quiet("sleep", argv));
      tid.store(static_cast<int>(::syscall(SYS_gettid)), std::memory_order_release);
      while (!end.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    while (tid.load(std::memory_order_acquire) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void stop() {
    end.store(true, std::memory_order_release);
    t.join();
  }
};

void end_child(arch::Process& p) {
  (void)arch::signal(p, SIGKILL);
  (void)arch::wait(p, -1);
}

}  // namespace

TEST_CASE("ChildLister reports what list_children does, and closes what it keeps open") {
  NothingLeft check;
  std::vector<int> mine;
  {
    arch::ChildLister lister;
    SpawningThread a;
    a.start();
    const auto plain = children_by([](int* p, std::size_t c) { return arch::list_children(p, c); });
    const auto kept = children_by([&](int* p, std::size_t c) { return lister.list(p, c); });
    CHECK(contains(plain, a.child.pid()));
    CHECK(kept == plain);
    CHECK(lister.held() > 0);
    CHECK(lister.held() <= 2 * arch::ChildLister::kThreads + 1);
    // Read again through the open descriptors: the same.
    CHECK(children_by([&](int* p, std::size_t c) { return lister.list(p, c); }) == plain);
    // More threads than it keeps open: those are read as list_children does.
    std::vector<SpawningThread> many(arch::ChildLister::kThreads + 4);
    for (auto& t : many) t.start();
    const auto all = children_by([&](int* p, std::size_t c) { return lister.list(p, c); });
    for (auto& t : many) CHECK(contains(all, t.child.pid()));
    CHECK(contains(all, a.child.pid()));
    CHECK(lister.held() <= 2 * arch::ChildLister::kThreads + 1);
    for (auto& t : many) {
      t.stop();
      end_child(t.child);
    }
    a.stop();
    end_child(a.child);
    CHECK(children_by([&](int* p, std::size_t c) { return lister.list(p, c); }).empty());
  }
  // NothingLeft: every descriptor it held is closed.
}

TEST_CASE("ChildLister reads a thread that took the number of an ended thread afresh, not as empty") {
  NothingLeft check;
  arch::ChildLister lister;
  SpawningThread a;
  a.start();
  const int number = a.tid.load();
  REQUIRE(contains(children_by([&](int* p, std::size_t c) { return lister.list(p, c); }), a.child.pid()));
  // A ends (its child goes to another of our threads); a new thread gets
  // its number (forced through ns_last_pid; other processes may take the
  // number first, so it tries again), and spawns a child of its own.
  // Between the two listings the lister sees the same thread number.
  a.stop();
  std::unique_ptr<SpawningThread> b;
  test::PidCounter counter;
  REQUIRE(counter.ok());
  for (int attempt = 0; attempt < 2000 && !b; ++attempt) {
    REQUIRE(counter.force(number));
    auto t = std::make_unique<SpawningThread>();
    t->start();
    if (t->tid.load() == number) {
      b = std::move(t);
    } else {
      t->stop();
      end_child(t->child);
    }
  }
  REQUIRE(b);
  const auto kept = children_by([&](int* p, std::size_t c) { return lister.list(p, c); });
  CHECK(contains(kept, b->child.pid()));  // through the old descriptor it would read as none
  CHECK(contains(kept, a.child.pid()));
  CHECK(kept == children_by([](int* p, std::size_t c) { return arch::list_children(p, c); }));
  b->stop();
  end_child(b->child);
  end_child(a.child);
}
