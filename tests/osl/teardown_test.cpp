// TeardownOperation with real process trees, for both containments: a
// tree whose grandchild double-forks, calls setsid and ignores SIGTERM is
// killed and reaped completely (the escapee included), and a tree that
// ends on SIGTERM is reported as such. Nothing may be left: no process of
// the tree anywhere, no child of this process, no descriptor, no cgroup.
//
// Hygiene: every process of a test's tree carries an environment marker,
// so that the guard (declared before the executor, so that it runs last)
// can find and kill any of them wherever it went, then reap every child
// of this process, which is a child subreaper (the executor makes it one;
// the guard does too, up front).

#include <airssys/arch/process.hpp>
#include <airssys/osl/executor.hpp>

#include <catch2/catch.hpp>

#include "support/fd.hpp"
#include "support/osl_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/wait_for.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace airssys;
using airssys::osl::Containment;
using airssys::osl::KillProcessGroupOperation;
using airssys::osl::ProcessExecutor;
using airssys::osl::SignalProcessOperation;
using airssys::osl::SpawnProcessOperation;
using airssys::osl::StdioConfig;
using airssys::osl::TeardownOperation;
using airssys::osl::WaitProcessOperation;

namespace {

constexpr std::int64_t kMs = 1'000'000;

std::string fresh_marker() {
  static std::atomic<int> n{0};
  return "AIRSSYS_OSL_TEARDOWN_TEST=" + std::to_string(test::self_pid()) + "." + std::to_string(n++);
}

// Declared first in every test. At the end (also after a failed REQUIRE):
// kills every process carrying the marker and reaps every child, then
// checks that nothing had to be cleaned, that every recorded pid is gone,
// and that children, descriptors and cgroups are as they were.
struct NothingLeft : test::NothingLeftCensus {
  NothingLeft() : test::NothingLeftCensus(fresh_marker()) {}
};

bool running(int pid) { return test::process_exists(pid) && !test::process_ended(pid); }

// The tree, three levels deep, every level ignoring SIGTERM and printing
// its pid ("<role> <pid>") on the shared stdout pipe:
//   L  the leader (the spawned /bin/sh), waiting for C;
//   C  its child, which starts E through a subshell that exits at once
//      (a double fork), then S, and waits;
//   S  C's sleep;
//   E  the escapee: `setsid` gives it a session of its own; orphaned by
//      the subshell's exit, it comes back to this process (a subreaper).
// The levels' scripts travel in the environment, so no quoting is nested.
constexpr std::string_view kLeader = R"(trap '' TERM; echo "L $$"; sh -c "$AIRSSYS_T_L2" & wait)";
constexpr std::string_view kLevel2 =
    R"(AIRSSYS_T_L2=trap '' TERM; echo "C $$"; (setsid sh -c "$AIRSSYS_T_L3" &); sleep 1000 & echo "S $!"; wait)";
constexpr std::string_view kLevel3 = R"(AIRSSYS_T_L3=trap '' TERM; echo "E $$"; exec sleep 1000)";

struct Tree {
  int leader = -1, child = -1, sleeper = -1, escapee = -1;
  std::vector<int> all() const { return {leader, child, sleeper, escapee}; }
};

// A spawn of `program` whose environment carries the test's marker (in
// `env`), in containment `c`, with all stdio on /dev/null.
SpawnProcessOperation marked(std::string_view program, std::span<const std::string_view> args,
                             std::span<const std::string_view> env, Containment c) {
  SpawnProcessOperation op = test::quiet(program, args);
  op.env = env;
  op.containment = c;
  return op;
}

// Spawns the tree and learns every pid of it.
Tree spawn_tree(ProcessExecutor& ex, Containment c, const std::string& marker, NothingLeft& guard) {
  const std::string_view args[] = {"-c", kLeader};
  const std::string_view env[] = {kLevel2, kLevel3, marker};
  SpawnProcessOperation op = marked("/bin/sh", args, env, c);
  op.stdio[1] = StdioConfig::pipe();
  auto r = ex.execute(op);
  INFO(r.error().message());
  REQUIRE(r.ok());
  test::Fd out(r->pipes[1]);
  guard.pids.push_back(r->pid);
  CHECK(r->containment == c);
  const auto lines = test::read_lines(out.fd, 4);
  std::map<char, int> pid_of;
  for (const auto& line : lines) {
    INFO("line: " << line);
    REQUIRE(line.size() > 2);
    pid_of[line[0]] = std::stoi(line.substr(2));
    guard.pids.push_back(pid_of[line[0]]);
  }
  REQUIRE(lines.size() == 4);
  REQUIRE(pid_of.size() == 4);
  Tree t{pid_of['L'], pid_of['C'], pid_of['S'], pid_of['E']};
  REQUIRE(t.leader == r->pid);
  // The escapee has left the session and, orphaned, came back to us.
  REQUIRE(test::wait_for([&] {
    test::ProcEntry e;
    return test::read_proc(t.escapee, e) && e.ppid == test::self_pid() && test::session_of(t.escapee) == t.escapee;
  }));
  for (int pid : t.all()) {
    INFO("pid " << pid);
    REQUIRE(running(pid));
  }
  return t;
}

}  // namespace

TEST_CASE("teardown kills and reaps a whole tree, including a setsid escapee that ignores SIGTERM") {
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  const std::string mount = test::cgroup2_mount_point();
  const std::string prefix = "airssys-" + std::to_string(test::self_pid()) + "-";
  {
    ProcessExecutor ex;
    const Tree t = spawn_tree(ex, c, guard.marker, guard);
    if (c == Containment::Cgroup) {
      // Born in the leader's cgroup, the escapee is still in it.
      CHECK(test::cgroup2_of(t.escapee) == test::cgroup2_of(t.leader));
    } else {
      test::ProcEntry e;
      REQUIRE(test::read_proc(t.escapee, e));
      CHECK(e.pgid != t.leader);
    }

    auto r = ex.execute(TeardownOperation{t.leader, 200 * kMs});
    INFO(r.error().message());
    REQUIRE(r.ok());
    const auto& report = r.value();
    CHECK(report.containment == c);
    CHECK_FALSE(report.exited_on_term);
    CHECK(report.killed >= 1);
    CHECK(report.orphans_adopted >= 1);
    CHECK(report.reaped >= 1);
    CHECK(report.leader_status.signal == SIGKILL);
    for (int pid : t.all()) {
      INFO("pid " << pid);
      CHECK_FALSE(test::process_exists(pid));
    }
    CHECK(ex.live() == 0);
    CHECK(ex.managed() == 0);
    // Nothing of ours but the guardian.
    const auto children = test::children_of_self();
    CHECK(children.size() == 1);
    const auto counters = ex.counters();
    CHECK(counters.spawned == 1);
    CHECK(counters.cleaned == counters.spawned);
    CHECK(counters.killed == report.killed);
    CHECK(counters.orphans_adopted == report.orphans_adopted);
    // A second teardown of the same tree is refused.
    CHECK(ex.execute(TeardownOperation{t.leader, 0}).code() == Errc::InvalidArgument);
  }
  CHECK(test::own_airssys_cgroups().empty());
  CHECK(test::dirs_with_prefix(mount, prefix, 1).empty());
  CHECK(test::children_of_self().empty());
}

TEST_CASE("a tree that ends on SIGTERM is reported as exited_on_term, with nothing killed") {
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  {
    ProcessExecutor ex;
    const std::string_view args[] = {"1000"};
    const std::string_view env[] = {guard.marker};
    SpawnProcessOperation op = marked("/bin/sleep", args, env, c);
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    guard.pids.push_back(p->pid);
    REQUIRE(running(p->pid));
    auto r = ex.execute(TeardownOperation{p->pid, 10'000 * kMs});
    INFO(r.error().message());
    REQUIRE(r.ok());
    CHECK(r->containment == c);
    CHECK(r->exited_on_term);
    CHECK(r->killed == 0);
    CHECK(r->orphans_adopted == 0);
    CHECK(r->leader_status.signal == SIGTERM);
    CHECK_FALSE(test::process_exists(p->pid));
    CHECK(ex.live() == 0);
    const auto counters = ex.counters();
    CHECK(counters.spawned == 1);
    CHECK(counters.cleaned == 1);
    CHECK(counters.killed == 0);
  }
  CHECK(test::own_airssys_cgroups().empty());
}

TEST_CASE("several trees torn down one after another: spawned == cleaned, nothing left") {
  NothingLeft guard;
  {
    ProcessExecutor ex;
    std::vector<int> leaders;
    for (Containment c : {Containment::Cgroup, Containment::ProcessGroup, Containment::Cgroup,
                          Containment::ProcessGroup}) {
      const Tree t = spawn_tree(ex, c, guard.marker, guard);
      leaders.push_back(t.leader);
    }
    CHECK(ex.live() == 4);
    for (int pid : leaders) {
      auto r = ex.execute(TeardownOperation{pid, 50 * kMs});
      INFO(r.error().message());
      REQUIRE(r.ok());
      CHECK(r->orphans_adopted >= 1);
    }
    for (int pid : guard.pids) {
      INFO("pid " << pid);
      CHECK_FALSE(test::process_exists(pid));
    }
    CHECK(ex.live() == 0);
    const auto counters = ex.counters();
    CHECK(counters.spawned == 4);
    CHECK(counters.cleaned == 4);
    CHECK(counters.orphans_adopted >= 4);
  }
  CHECK(test::own_airssys_cgroups().empty());
  CHECK(test::children_of_self().empty());
}

TEST_CASE("a WaitProcess racing a TeardownOperation of the same tree leaves the report and the counters right") {
  // Operations may come from any thread, and a blocking teardown releases
  // the executor's lock between its steps. A WaitProcess on the leader,
  // blocked when the teardown starts, wakes when SIGTERM ends it, while
  // the teardown is between steps. Whether the wait reaps the leader or is
  // refused, the teardown must still report this tree (not a released
  // table entry), and count it cleaned exactly once.
  NothingLeft guard;
  ProcessExecutor ex;
  const std::string_view args[] = {"1000"};
  const std::string_view env[] = {guard.marker};
  SpawnProcessOperation op = marked("/bin/sleep", args, env, Containment::Cgroup);
  constexpr int kRounds = 20;
  int wrong_reports = 0;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    const int pid = p->pid;
    guard.pids.push_back(pid);
    Errc waited = Errc::Ok;
    int waited_signal = -1;
    std::thread waiter([&] {
      auto w = ex.execute(WaitProcessOperation{pid, 10'000 * kMs});
      waited = w.code();
      if (w.ok()) waited_signal = w->signal;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the waiter blocks in its wait
    auto r = ex.execute(TeardownOperation{pid, 5'000 * kMs});
    waiter.join();
    INFO(r.error().message());
    REQUIRE(r.ok());
    INFO("wait: " << to_string(waited) << ", signal " << waited_signal);
    // Ok (it reaped the leader), AlreadyExists (the tree is being torn
    // down), or InvalidArgument (already reaped by the teardown).
    CHECK((waited == Errc::Ok || waited == Errc::AlreadyExists || waited == Errc::InvalidArgument));
    if (waited == Errc::Ok) CHECK(waited_signal == SIGTERM);
    const bool right = r->containment == Containment::Cgroup && r->leader_status.signal == SIGTERM;
    if (!right) ++wrong_reports;
    CHECK(r->containment == Containment::Cgroup);
    CHECK(r->leader_status.signal == SIGTERM);
    CHECK_FALSE(test::process_exists(pid));
    const auto counters = ex.counters();
    CHECK(counters.spawned == static_cast<std::uint64_t>(round + 1));
    CHECK(counters.cleaned == counters.spawned);
    CHECK(ex.live() == 0);
    if (counters.cleaned != counters.spawned) break;  // one round shows it; stop before the numbers drift
  }
  INFO("teardown reports about another tree than the one asked for: " << wrong_reports << " of " << kRounds);
  CHECK(wrong_reports == 0);
}

TEST_CASE("a TeardownOperation never ends a process it was not asked to, even when a WaitProcess reaps its leader") {
  // As above, and then the waiter spawns a bystander at once, while the
  // teardown may still be stepping (with the lock released): whatever the
  // wait did, the bystander must not be taken for part of the torn-down
  // tree, and must survive the teardown.
  NothingLeft guard;
  ProcessExecutor ex;
  const std::string_view args[] = {"1000"};
  const std::string_view env[] = {guard.marker};
  SpawnProcessOperation op = marked("/bin/sleep", args, env, Containment::Cgroup);
  constexpr int kRounds = 30;
  int killed_bystanders = 0;
  for (int round = 0; round < kRounds && killed_bystanders == 0; ++round) {
    INFO("round " << round);
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    const int pid = p->pid;
    guard.pids.push_back(pid);
    std::atomic<int> bystander{0};  // 0: not yet; -1: spawn failed
    std::atomic<bool> checked{false};
    // The waiter lives on until the bystander has been checked: a managed
    // child is killed when the thread that spawned it ends
    // (kill_with_parent), which is not what this test is about.
    std::thread waiter([&] {
      (void)ex.execute(WaitProcessOperation{pid, 10'000 * kMs});
      auto b = ex.execute(op);  // while the teardown may still be stepping
      bystander.store(b.ok() ? b->pid : -1);
      while (!checked.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    struct Join {
      std::thread& t;
      std::atomic<bool>& checked;
      ~Join() {
        checked.store(true);
        t.join();
      }
    } join{waiter, checked};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto r = ex.execute(TeardownOperation{pid, 5'000 * kMs});
    INFO(r.error().message());
    REQUIRE(r.ok());
    REQUIRE(test::wait_for([&] { return bystander.load() != 0; }));
    const int by = bystander.load();
    REQUIRE(by > 0);
    guard.pids.push_back(by);
    if (!running(by)) {
      ++killed_bystanders;
      test::ProcEntry be;
      const bool exists = test::read_proc(bystander, be);
      UNSCOPED_INFO("round " << round << ": bystander " << by << (exists ? " exists, state " : " is gone")
                             << (exists ? std::string(1, be.state) : std::string()) << "; leader " << pid
                             << ", report: reaped " << r->reaped << ", killed " << r->killed
                             << ", exited_on_term " << r->exited_on_term << "; table: " << ex.live());
    }
    // End the bystander (if the teardown left it) through the executor.
    auto end = ex.execute(TeardownOperation{by, 0});
    INFO(end.error().message());
    CHECK(end.ok());
  }
  INFO("bystanders killed by a teardown of another tree: " << killed_bystanders);
  CHECK(killed_bystanders == 0);
}

TEST_CASE("destroying the executor tears down a tree with a setsid escapee, for both containments") {
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  Tree t;
  {
    ProcessExecutor ex;
    t = spawn_tree(ex, c, guard.marker, guard);
  }
  for (int pid : t.all()) {
    INFO("pid " << pid);
    CHECK_FALSE(test::process_exists(pid));
  }
  CHECK(test::processes_with_env(guard.marker).empty());
  CHECK(test::children_of_self().empty());
  CHECK(test::own_airssys_cgroups().empty());
}

TEST_CASE("a leader that ends before its tree: WaitProcess gives its status, and the group is still reached") {
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  {
    ProcessExecutor ex;
    // The leader starts a sleep in its group, prints its pid and exits.
    const std::string_view args[] = {"-c", "sleep 1000 & echo $!"};
    const std::string_view env[] = {guard.marker};
    SpawnProcessOperation op = marked("/bin/sh", args, env, c);
    op.stdio[1] = StdioConfig::pipe();
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    guard.pids.push_back(p->pid);
    int sleeper = -1;
    {
      test::Fd out(p->pipes[1]);
      const auto lines = test::read_lines(out.fd, 1);
      REQUIRE(lines.size() == 1);
      sleeper = std::stoi(lines[0]);
      guard.pids.push_back(sleeper);
    }
    auto st = ex.execute(WaitProcessOperation{p->pid, 20'000 * kMs});
    INFO(st.error().message());
    REQUIRE(st.ok());
    CHECK(st->code == 0);
    REQUIRE(running(sleeper));
    test::ProcEntry e;
    REQUIRE(test::read_proc(sleeper, e));
    CHECK(e.pgid == p->pgid);
    CHECK(e.ppid == test::self_pid());  // orphaned, back to the subreaper
    // The group outlives its leader: its entry stays for the teardown.
    CHECK(ex.live() == 1);
    CHECK(ex.managed() == 1);
    CHECK(ex.execute(SignalProcessOperation{p->pid, 0}).code() == Errc::InvalidArgument);  // reaped
    CHECK(ex.execute(KillProcessGroupOperation{p->pgid, 0}).ok());                          // its group is not
    auto r = ex.execute(TeardownOperation{p->pid, 5'000 * kMs});
    INFO(r.error().message());
    REQUIRE(r.ok());
    CHECK(r->exited_on_term);
    CHECK(r->leader_status.code == 0);
    CHECK(r->reaped >= 1);
    CHECK(r->orphans_adopted == 0);  // it never left the group
    CHECK_FALSE(test::process_exists(sleeper));
    CHECK(ex.live() == 0);
    CHECK(ex.counters().cleaned == ex.counters().spawned);
    // The group is gone now, and with it any claim on its number.
    CHECK(ex.execute(KillProcessGroupOperation{p->pgid, 0}).code() == Errc::InvalidArgument);
  }
  CHECK(test::own_airssys_cgroups().empty());
}

TEST_CASE("a teardown ends only when every process of the tree is reaped, also those orphaned as the tree dies") {
  // A tree of middlemen each with children of their own, all killed at
  // once: a middleman leaves the cgroup (populated 0) before it hands its
  // children to this process, so an empty cgroup alone does not mean the
  // tree is reaped. The same holds for a process group whose members die
  // together. Right after each teardown no child of this process may be
  // left, not even a zombie.
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  ProcessExecutor ex;
  const std::string_view args[] = {
      "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sh -c 'for j in 1 2 3 4; do sleep 1000 & done; wait' & done; "
            "echo ready; wait"};
  const std::string_view env[] = {guard.marker};
  int leftovers = 0;
  for (int round = 0; round < 30; ++round) {
    SpawnProcessOperation op = marked("/bin/sh", args, env, c);
    op.stdio[1] = StdioConfig::pipe();
    auto r = ex.execute(op);
    INFO(r.error().message());
    REQUIRE(r.ok());
    test::Fd out(r->pipes[1]);
    REQUIRE(test::read_lines(out.fd, 1).size() == 1);
    // Every middleman has started its sleeps: 1 + 12 + 48 processes.
    REQUIRE(test::wait_for([&] { return test::processes_with_env(guard.marker).size() == 61; }));
    auto t = ex.execute(TeardownOperation{r->pid, 0});
    INFO(t.error().message());
    REQUIRE(t.ok());
    CHECK(t->reaped == 61);
    leftovers += test::reap_zombie_children();  // not the guardian, which runs
    CHECK(test::processes_with_env(guard.marker).empty());
  }
  CHECK(leftovers == 0);
  CHECK(ex.live() == 0);
  // The executor's guardian still runs, a child by /proc's account, but no
  // child waitpid reports: the sweeps' cheap test finds nothing to look for.
  CHECK(test::children_of_self().size() == 1);
  CHECK_FALSE(arch::has_children());
}

TEST_CASE("a teardown that lands while the tree makes setsid escapees leaves no process and no zombie") {
  // The tree keeps starting escapees (a subshell forks, the child calls
  // setsid and execs sleep, the subshell exits), so a teardown lands at
  // every stage of an escape: before setsid, inside it (a signal to the
  // group arriving then is taken on the way out of setsid, outside the
  // group), during the exec, after it. Every escapee must be found alive
  // and ended, none may die unrecognised and stay a zombie of this process.
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  ProcessExecutor ex;
  const std::string_view args[] = {
      "-c", "echo go; i=0; while [ $i -lt 60 ]; do (setsid sleep 1000 &); i=$((i+1)); done; exec sleep 1000"};
  const std::string_view env[] = {guard.marker};
  std::mt19937 rng(std::random_device{}());
  int zombies = 0, survivors = 0;
  std::size_t adopted = 0;
  for (int round = 0; round < 20; ++round) {
    SpawnProcessOperation op = marked("/bin/sh", args, env, c);
    op.stdio[1] = StdioConfig::pipe();
    auto r = ex.execute(op);
    INFO(r.error().message());
    REQUIRE(r.ok());
    test::Fd out(r->pipes[1]);
    REQUIRE(test::read_lines(out.fd, 1).size() == 1);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30'000));
    // Half the rounds give the tree a TERM stage, half kill at once.
    auto t = ex.execute(TeardownOperation{r->pid, round % 2 == 0 ? 0 : 20 * kMs});
    INFO(t.error().message());
    REQUIRE(t.ok());
    adopted += t->orphans_adopted;
    zombies += test::reap_zombie_children();  // not the guardian, which runs
    survivors += static_cast<int>(test::kill_processes_with_env(guard.marker));
    CHECK(ex.live() == 0);
  }
  INFO("escapees adopted over all rounds: " << adopted);
  CHECK(adopted > 0);
  CHECK(zombies == 0);
  CHECK(survivors == 0);
  const auto counters = ex.counters();
  CHECK(counters.spawned == 20);
  CHECK(counters.cleaned == 20);
}
