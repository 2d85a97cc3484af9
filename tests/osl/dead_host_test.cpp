// Process-group trees whose runtime died together with its guardian: they
// are re-parented out of any runtime's reach, and the next runtime's first
// managed spawn kills them by their tree marker
// ("AIRSSYS_TREE=<pid>.<executor>.<group>.<start>.<pidns>"), judging the
// host by its pid, its start time and its PID namespace. A live host's
// trees, a reused pid's, another namespace's and markers that name no
// start time are never touched.
//
// Hygiene: every process a test starts carries the guard's marker, and
// this process is a child subreaper, so that orphans come back here to be
// reaped; the guard checks that nothing is left.
//
// Other test binaries may run at the same time (ctest -j): their
// executors' first spawns sweep too, and may be the ones that kill a
// stale process here. Each test therefore checks what became of every
// process, and only bounds this executor's own count.

#include <airssys/arch/process.hpp>
#include <airssys/osl/executor.hpp>

#include <catch2/catch.hpp>

#include "support/fd.hpp"
#include "support/osl_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

using namespace airssys;
using airssys::osl::Containment;
using airssys::osl::ProcessEvent;
using airssys::osl::ProcessExecutor;
using airssys::osl::SpawnProcessOperation;
using airssys::osl::StdioConfig;

namespace {

std::string fresh_marker() {
  static std::atomic<int> n{0};
  return "AIRSSYS_OSL_DEAD_HOST_TEST=" + std::to_string(test::self_pid()) + "." + std::to_string(n++);
}

struct NothingLeft : test::NothingLeftCensus {
  NothingLeft() : test::NothingLeftCensus(fresh_marker()) {}
};

bool running(int pid) { return test::process_exists(pid) && !test::process_ended(pid); }

// `sleep 1000`, a child of this process, with exactly `env` as its
// environment.
pid_t sleeper(const std::vector<std::string>& env) {
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    char prog[] = "/bin/sleep";
    char arg[] = "1000";
    char* const argv[] = {prog, arg, nullptr};
    ::execve(prog, argv, envp.data());
    ::_exit(127);
  }
  return pid;
}

// A pid no process has now: a child's, once reaped.
int dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

std::string marker(long long pid, unsigned long long start, unsigned long long pidns, int group) {
  return "AIRSSYS_TREE=" + std::to_string(pid) + ".1." + std::to_string(group) + "." + std::to_string(start) + "." +
         std::to_string(pidns);
}

// The first managed spawn of a new executor: the one that sweeps.
void first_managed_spawn(ProcessExecutor& ex, const std::string& guard_marker) {
  const std::string_view env[] = {guard_marker};
  SpawnProcessOperation op = test::quiet("/bin/true");
  op.env = env;
  op.containment = Containment::ProcessGroup;
  auto r = ex.execute(op);
  INFO(r.error().message());
  REQUIRE(r.ok());
  auto w = ex.execute(osl::WaitProcessOperation{r->pid, 5'000'000'000});
  REQUIRE(w.ok());
}

// Waits for child `pid` to end; its signal, or 0 if it exited, or -1 if it
// did not end in time.
int end_signal(pid_t pid) {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    ::usleep(1000);
  }
  return -1;
}

struct Recorder final : osl::Middleware {
  std::mutex mu;
  std::vector<ProcessEvent> swept;
  void observe(const ProcessEvent& e) noexcept override {
    std::lock_guard<std::mutex> lock(mu);
    if (e.kind == ProcessEvent::Kind::StaleSwept) swept.push_back(e);
  }
};

}  // namespace

TEST_CASE("the first managed spawn kills what carries the marker of a dead host, and only that") {
  NothingLeft guard;
  const std::uint64_t ns = arch::own_pid_namespace();
  REQUIRE(ns != 0);
  // A live host H, and a host Z that has ended but is not reaped yet.
  const pid_t host = sleeper({guard.marker});
  const pid_t zombie = ::fork();
  if (zombie == 0) ::_exit(0);
  REQUIRE(test::wait_for([&] { return test::process_ended(zombie); }));
  arch::ProcessInfo h, z;
  REQUIRE(arch::process_info(host, h));
  REQUIRE(arch::process_info(zombie, z));
  REQUIRE(h.start_ticks != 0);
  REQUIRE(z.start_ticks != 0);
  const int gone = dead_pid();

  struct Case {
    const char* what;
    std::vector<std::string> markers;
    bool killed;
    pid_t pid = -1;
  };
  std::vector<Case> cases = {
      {"host gone", {marker(gone, h.start_ticks, ns, 1)}, true},
      {"host pid reused", {marker(host, h.start_ticks + 1, ns, 2)}, true},
      {"host ended, unreaped", {marker(zombie, z.start_ticks, ns, 3)}, true},
      {"nested: a live outer host, a gone inner one", {marker(host, h.start_ticks, ns, 4), marker(gone, 7, ns, 5)}, true},
      {"host alive", {marker(host, h.start_ticks, ns, 6)}, false},
      {"another PID namespace", {marker(gone, h.start_ticks, ns + 1, 7)}, false},
      {"no start time", {"AIRSSYS_TREE=" + std::to_string(gone) + ".1.8"}, false},
      {"not a marker", {"AIRSSYS_TREE=" + std::to_string(gone) + ".1.9.x.1"}, false},
  };
  for (auto& c : cases) {
    std::vector<std::string> env = c.markers;
    env.push_back(guard.marker);
    c.pid = sleeper(env);
    REQUIRE(c.pid > 0);
    guard.pids.push_back(c.pid);
  }
  // Each has its environment (it has exec'd) before the sweep looks.
  for (auto& c : cases)
    REQUIRE(test::wait_for([&] { return test::environ_contains(c.pid, guard.marker); }));

  Recorder rec;
  {
    ProcessExecutor ex;
    REQUIRE(ex.use(rec).ok());
    first_managed_spawn(ex, guard.marker);
    const std::uint64_t stale = ex.counters().stale_trees;
    CHECK(stale <= 4);
    // (Not under the recorder's lock: the executor reports under its own.)
    std::lock_guard<std::mutex> lock(rec.mu);
    CHECK(rec.swept.size() == (stale > 0 ? 1u : 0u));
    for (const ProcessEvent& e : rec.swept) {
      CHECK(e.containment == Containment::ProcessGroup);
      CHECK(e.trees == stale);
      CHECK(e.processes == e.trees);
    }
  }
  for (auto& c : cases) {
    INFO(c.what << " (pid " << c.pid << ")");
    if (c.killed) {
      CHECK(end_signal(c.pid) == SIGKILL);
    } else {
      CHECK(running(c.pid));
      ::kill(c.pid, SIGKILL);
      CHECK(end_signal(c.pid) == SIGKILL);
    }
  }
  ::kill(host, SIGKILL);
  CHECK(end_signal(host) == SIGKILL);
  CHECK(end_signal(zombie) == 0);
}

TEST_CASE("a process-group tree whose runtime was killed together with its guardian is ended by the next runtime") {
  NothingLeft guard;
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  test::Fd up_read(fds[0]), up_write(fds[1]);
  // The runtime R: a child of ours that spawns a managed tree — a shell
  // with a sleep, and a setsid escapee — reports the pids and waits.
  const pid_t runtime = ::fork();
  REQUIRE(runtime >= 0);
  if (runtime == 0) {
    ProcessExecutor ex;
    const std::string_view args[] = {
        "-c", "sleep 1000 & echo S $!; (setsid sleep 1000 & echo E $! >&3) 3>&1; echo L $$; wait"};
    const std::string_view env[] = {guard.marker};
    SpawnProcessOperation op = test::quiet("/bin/sh", args);
    op.env = env;
    op.containment = Containment::ProcessGroup;
    op.stdio[1] = StdioConfig::pipe();
    auto r = ex.execute(op);
    if (!r) ::_exit(1);
    test::Fd out(r->pipes[1]);
    const auto got = test::read_labelled(out.fd, {{"S", 1}, {"E", 1}, {"L", 1}});
    for (const auto& [k, v] : got) ::dprintf(fds[1], "%s %s\n", k.c_str(), v.c_str());
    ::pause();
    ::_exit(2);
  }
  up_write.reset();
  const auto got = test::read_labelled(up_read.fd, {{"S", 1}, {"E", 1}, {"L", 1}});
  REQUIRE(got.size() == 3);
  // Each with its start time, read while R holds the tree (running): by the
  // end a number may be another process's.
  std::map<std::string, int> pid;
  std::map<int, unsigned long long> start;
  for (const auto& [k, v] : got) {
    pid[k] = std::stoi(v);
    start[pid[k]] = test::start_time_of(pid[k]);
    guard.pids.push_back(pid[k]);
  }
  // Its guardian: R's child named airssys-guard.
  int guardian = -1;
  REQUIRE(test::wait_for([&] {
    for (int p : test::all_pids()) {
      test::ProcEntry e;
      if (test::read_proc(p, e) && e.ppid == runtime && test::comm_of(p) == "airssys-guard") {
        guardian = p;
        start[p] = e.start_time;
      }
    }
    return guardian > 0;
  }));
  // A live runtime's first spawn leaves R's tree alone: R is alive.
  {
    ProcessExecutor live;
    first_managed_spawn(live, guard.marker);
    for (const auto& [k, p] : pid) {
      INFO(k << " " << p);
      CHECK(test::same_process_running(p, start[p]));
    }
  }
  // R and its guardian die together: R stopped first, so that it cannot
  // replace the guardian in between.
  ::kill(runtime, SIGSTOP);
  REQUIRE(test::wait_for([&] {
    test::ProcEntry e;
    return test::read_proc(runtime, e) && e.state == 'T';
  }));
  ::kill(guardian, SIGKILL);
  ::kill(runtime, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(runtime, &status, 0) == runtime);
  // The leader dies with R (parent-death signal); the sleep and the
  // escapee live on, orphaned (to us: a subreaper).
  auto runs = [&](const char* k) { return test::same_process_running(pid[k], start[pid[k]]); };
  REQUIRE(test::wait_for([&] { return !runs("L"); }));
  CHECK(runs("S"));
  CHECK(runs("E"));

  {
    ProcessExecutor next;
    first_managed_spawn(next, guard.marker);
    CHECK(next.counters().stale_trees <= 1);
  }
  REQUIRE(test::wait_for([&] { return !runs("S") && !runs("E"); }));
  // What came back to us (the guardian, the leader, the sleep, the
  // escapee) is reaped here.
  REQUIRE(test::wait_for([&] {
    test::reap_zombie_children();
    for (int p : {guardian, pid["L"], pid["S"], pid["E"]})
      if (test::same_process_exists(p, start[p])) return false;
    return true;
  }));
}
