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

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace airssys;
using airssys::osl::Containment;
using airssys::osl::KillProcessGroupOperation;
using airssys::osl::Middleware;
using airssys::osl::ProcessEvent;
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
  // Their start times, in all()'s order, read while the tree ran: by the
  // end a number may be another process's.
  std::vector<unsigned long long> starts;
  std::vector<int> all() const { return {leader, child, sleeper, escapee}; }
  // Each pid with its start time (0 if not read).
  std::vector<std::pair<int, unsigned long long>> identities() const {
    std::vector<std::pair<int, unsigned long long>> out;
    const std::vector<int> pids = all();
    for (std::size_t i = 0; i < pids.size(); ++i) out.emplace_back(pids[i], i < starts.size() ? starts[i] : 0);
    return out;
  }
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
  Tree t{pid_of['L'], pid_of['C'], pid_of['S'], pid_of['E'], {}};
  REQUIRE(t.leader == r->pid);
  // The escapee has left the session and, orphaned, came back to us.
  REQUIRE(test::wait_for([&] {
    test::ProcEntry e;
    return test::read_proc(t.escapee, e) && e.ppid == test::self_pid() && test::session_of(t.escapee) == t.escapee;
  }));
  for (int pid : t.all()) {
    INFO("pid " << pid);
    REQUIRE(running(pid));
    t.starts.push_back(test::start_time_of(pid));
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
    for (const auto& [pid, start] : t.identities()) {
      INFO("pid " << pid);
      CHECK_FALSE(test::same_process_exists(pid, start));
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
  // The longest timeout means "no KILL stage": its deadline saturates
  // instead of wrapping into the past (which sent KILL at once).
  for (const std::int64_t term_timeout : {10'000 * kMs, INT64_MAX}) {
    INFO("term_timeout_ns " << term_timeout);
    ProcessExecutor ex;
    const std::string_view args[] = {"1000"};
    const std::string_view env[] = {guard.marker};
    SpawnProcessOperation op = marked("/bin/sleep", args, env, c);
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    guard.pids.push_back(p->pid);
    REQUIRE(running(p->pid));
    const unsigned long long start = test::start_time_of(p->pid);
    auto r = ex.execute(TeardownOperation{p->pid, term_timeout});
    INFO(r.error().message());
    REQUIRE(r.ok());
    CHECK(r->containment == c);
    CHECK(r->exited_on_term);
    CHECK(r->killed == 0);
    CHECK(r->orphans_adopted == 0);
    CHECK(r->leader_status.signal == SIGTERM);
    CHECK_FALSE(test::same_process_exists(p->pid, start));
    CHECK(ex.live() == 0);
    const auto counters = ex.counters();
    CHECK(counters.spawned == 1);
    CHECK(counters.cleaned == 1);
    CHECK(counters.killed == 0);
  }
  CHECK(test::own_airssys_cgroups().empty());
}

TEST_CASE("a stopped tree (SIGSTOP) still ends on SIGTERM: the first signal is followed by SIGCONT") {
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  NothingLeft guard;
  ProcessExecutor ex;
  const std::string_view args[] = {"1000"};
  const std::string_view env[] = {guard.marker};
  auto p = ex.execute(marked("/bin/sleep", args, env, c));
  INFO(p.error().message());
  REQUIRE(p.ok());
  guard.pids.push_back(p->pid);
  const unsigned long long start = test::start_time_of(p->pid);
  REQUIRE(::kill(p->pid, SIGSTOP) == 0);
  REQUIRE(test::wait_for([&] {
    test::ProcEntry e;
    return test::read_proc(p->pid, e) && e.state == 'T';
  }));
  // A KILL stage far away: a TERM left pending in a stopped process would
  // show as a KILLed leader.
  auto r = ex.execute(TeardownOperation{p->pid, 20'000 * kMs});
  INFO(r.error().message());
  REQUIRE(r.ok());
  CHECK(r->exited_on_term);
  CHECK(r->killed == 0);
  CHECK(r->leader_status.signal == SIGTERM);
  CHECK_FALSE(test::same_process_exists(p->pid, start));
  CHECK(ex.live() == 0);
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
    // Each by the pidfd taken when it was recorded (running).
    for (std::size_t i = 0; i < guard.pids.size(); ++i) {
      INFO(guard.pids.describe(i));
      CHECK_FALSE(guard.pids.exists(i));
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
    const unsigned long long start = test::start_time_of(pid);
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
    CHECK_FALSE(test::same_process_exists(pid, start));
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
  for (const auto& [pid, start] : t.identities()) {
    INFO("pid " << pid);
    CHECK_FALSE(test::same_process_exists(pid, start));
  }
  CHECK(test::processes_with_env(guard.marker).empty());
  CHECK(test::children_of_self().empty());
  CHECK(test::own_airssys_cgroups().empty());
}

// Two executors in one process (two Systems, say) number their trees from
// 1 each. Their markers must still differ: before, A's teardown took B's
// escapee for one of its own (same "<pid>.1" marker) and killed it, and so
// did A's destruction.
TEST_CASE("two executors in one process never take each other's escapees for their own") {
  NothingLeft guard;
  auto b = std::make_unique<ProcessExecutor>();
  const Tree tb = spawn_tree(*b, Containment::ProcessGroup, guard.marker, guard);
  {
    ProcessExecutor a;
    const Tree ta = spawn_tree(a, Containment::ProcessGroup, guard.marker, guard);
    auto r = a.execute(TeardownOperation{ta.leader, 100 * kMs});
    INFO(r.error().message());
    REQUIRE(r.ok());
    CHECK(r->orphans_adopted == 1);  // its own escapee, not B's too
    for (const auto& [pid, start] : ta.identities()) {
      INFO("A's pid " << pid);
      CHECK_FALSE(test::same_process_exists(pid, start));
    }
    for (const auto& [pid, start] : tb.identities()) {
      INFO("B's pid " << pid);
      CHECK(test::same_process_running(pid, start));
    }
  }
  // A is gone, with its guardian and its registered markers: B's tree is whole.
  for (const auto& [pid, start] : tb.identities()) {
    INFO("B's pid " << pid);
    CHECK(test::same_process_running(pid, start));
  }
  auto r = b->execute(TeardownOperation{tb.leader, 100 * kMs});
  REQUIRE(r.ok());
  CHECK(r->orphans_adopted == 1);
  b.reset();
  for (const auto& [pid, start] : tb.identities()) {
    INFO("B's pid " << pid);
    CHECK_FALSE(test::same_process_exists(pid, start));
  }
  CHECK(test::processes_with_env(guard.marker).empty());
  CHECK(test::children_of_self().empty());
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
    const unsigned long long sleeper_start = test::start_time_of(sleeper);  // runs until the teardown
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
    CHECK_FALSE(test::same_process_exists(sleeper, sleeper_start));
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
    // Every fourth round waits for escapees to be out (on a loaded machine
    // the others may all land before the first setsid), so that some
    // teardown surely meets them.
    if (round % 4 == 3)
      CHECK(test::wait_for([&] { return test::processes_with_env(guard.marker).size() >= 4; }, std::chrono::seconds(20)));
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

namespace {

// A process the test starts itself, outside the executor, leading a
// session of its own, whose pid is `want` (test::spawn_session_at). It
// writes "ready" to `file`, and one line per TERM, CONT or HUP it receives
// (a STOP shows as state T, a KILL ends it). -1 if the pid could not be had.
int spawn_bystander_at(int want, const std::string& file) {
  const std::string script = "trap 'echo TERM >> \"$F\"' TERM; trap 'echo CONT >> \"$F\"' CONT; "
                             "trap 'echo HUP >> \"$F\"' HUP; echo ready >> \"$F\"; while :; do sleep 0.2; done";
  const std::string f = "F=" + file;
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  env.push_back(const_cast<char*>(f.c_str()));
  env.push_back(nullptr);
  const char* argv[] = {"sh", "-c", script.c_str(), nullptr};
  // A miss may have run as far as its "ready" before it was ended (under
  // load it often does): the file must hold the real bystander's lines alone.
  return test::spawn_session_at(want, "/bin/sh", argv, env.data(), [&] { std::remove(file.c_str()); });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Records the events of an executor.
struct Recorder final : Middleware {
  std::mutex mu;
  std::vector<std::string> lines;
  void observe(const ProcessEvent& e) noexcept override {
    std::lock_guard<std::mutex> lock(mu);
    std::ostringstream s;
    s << osl::to_string(e.kind) << " pid " << e.pid << " pgid " << e.pgid << " signal " << e.signal << " "
      << (e.error != nullptr ? e.error->message() : "ok") << (e.tree_ended ? " (tree ended)" : "");
    lines.push_back(s.str());
  }
  std::size_t count(const std::string& what, const std::string& also = {}) {
    std::lock_guard<std::mutex> lock(mu);
    std::size_t n = 0;
    for (const auto& l : lines) n += l.find(what) != std::string::npos && l.find(also) != std::string::npos;
    return n;
  }
  // Every event seen so far, one a line: what a failed wait prints.
  std::string dump() {
    std::lock_guard<std::mutex> lock(mu);
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    return all;
  }
};

// A table of two slots (sweeps every 5 ms), both taken: a filler (a lone
// sleep) and a tree whose setsid escapee, orphaned to this process, finds
// no slot.
osl::ExecutorConfig two_slots() {
  osl::ExecutorConfig cfg;
  cfg.max_processes = 2;
  cfg.orphan_scan_ns = 5 * kMs;
  return cfg;
}
struct ExitsIgnored final : osl::ExitSink {
  void on_exit(std::uint64_t, int, osl::ExitStatus) noexcept override {}
};
struct FullTable {
  int filler = -1;
  int leader = -1;
  int escapee = -1;
};
FullTable fill_table(ProcessExecutor& ex, NothingLeft& guard) {
  FullTable t;
  const std::string_view env[] = {guard.marker};
  auto filler = ex.execute(marked("/bin/sleep", test::kSleep, env, Containment::ProcessGroup));
  INFO(filler.error().message());
  REQUIRE(filler.ok());
  t.filler = filler->pid;
  guard.pids.push_back(t.filler);
  const std::string_view args[] = {"-c", "(setsid sh -c 'echo $$; exec sleep 1000' &); exec sleep 1000"};
  SpawnProcessOperation op = marked("/bin/sh", args, env, Containment::ProcessGroup);
  op.stdio[1] = StdioConfig::pipe();
  auto p = ex.execute(op);
  INFO(p.error().message());
  REQUIRE(p.ok());
  t.leader = p->pid;
  guard.pids.push_back(t.leader);
  test::Fd out(p.value().pipes[1]);
  const auto lines = test::read_lines(out.fd, 1);
  REQUIRE(lines.size() == 1);
  t.escapee = std::stoi(lines[0]);
  guard.pids.push_back(t.escapee);
  return t;
}

// The executor with its table full, and what checks it, in the order they
// end: the executor before the sink and the audit it calls, the guard last.
struct FullTableRig {
  NothingLeft guard;
  Recorder audit;
  ExitsIgnored sink;
  ProcessExecutor ex{two_slots()};
  FullTable t;
  FullTableRig() {
    REQUIRE(ex.use(audit).ok());
    REQUIRE(ex.start_reactor(sink).ok());
    t = fill_table(ex, guard);
  }
};

// Restores the pidfd group signals at the end of a test that turned them off.
struct GroupSignalPath {
  explicit GroupSignalPath(bool fallback) { arch::force_group_signal_fallback(fallback); }
  ~GroupSignalPath() { arch::force_group_signal_fallback(false); }
};

}  // namespace

TEST_CASE("an emptied group whose number an unrelated process now has is never signalled by a teardown or an operation") {
  // The leader ends, and its group empties (the member is killed and
  // reaped, or calls setsid); then a process the test starts itself gets
  // the leader's pid and leads a session of its own: its group has the
  // tree's pgid as its number. Neither KillProcessGroup, nor a signal to
  // the reaped leader, nor the tree's teardown (STOP, TERM, CONT, KILL to
  // the group) may reach it; the refusals are in the audit events.
  Containment c = Containment::Cgroup;
  bool fallback = false;
  bool setsid_member = false;
  SECTION("cgroup, pidfd group signals, member reaped") {}
  SECTION("cgroup, pidfd group signals, member calls setsid") { setsid_member = true; }
  SECTION("process group, pidfd group signals, member reaped") { c = Containment::ProcessGroup; }
  SECTION("process group, pidfd group signals, member calls setsid") {
    c = Containment::ProcessGroup;
    setsid_member = true;
  }
  SECTION("cgroup, killpg fallback, member reaped") { fallback = true; }
  SECTION("process group, killpg fallback, member reaped") {
    c = Containment::ProcessGroup;
    fallback = true;
  }
  SECTION("process group, killpg fallback, member calls setsid") {
    c = Containment::ProcessGroup;
    fallback = true;
    setsid_member = true;
  }
  INFO((c == Containment::Cgroup ? "cgroup" : "process group") << (fallback ? ", killpg fallback" : ", pidfd")
                                                                 << (setsid_member ? ", member calls setsid" : ""));
  GroupSignalPath path(fallback);
  NothingLeft guard;
  const std::string file = "/tmp/airssys-teardown-bystander-" + std::to_string(test::self_pid());
  std::remove(file.c_str());
  int bystander = -1;
  {
    Recorder audit;
    ProcessExecutor ex;
    REQUIRE(ex.use(audit).ok());
    const std::string_view args[] = {"-c", setsid_member ? "setsid sleep 1000 & echo $!" : "sleep 1000 & echo $!"};
    const std::string_view env[] = {guard.marker};
    SpawnProcessOperation op = marked("/bin/sh", args, env, c);
    op.stdio[1] = StdioConfig::pipe();
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    guard.pids.push_back(p->pid);
    const unsigned long long leader_start = test::start_time_of(p->pid);  // our child, unreaped until its wait
    const int pgid = p->pgid;
    REQUIRE(pgid == p->pid);
    int member = -1;
    {
      test::Fd out(p.value().pipes[1]);
      const auto lines = test::read_lines(out.fd, 1);
      REQUIRE(lines.size() == 1);
      member = std::stoi(lines[0]);
      guard.pids.push_back(member);
    }
    auto st = ex.execute(WaitProcessOperation{p->pid, 20'000 * kMs});
    INFO(st.error().message());
    REQUIRE(st.ok());
    REQUIRE(st->code == 0);
    // The group empties.
    if (setsid_member) {
      REQUIRE(test::wait_for([&] { return test::session_of(member) == member; }));
    } else {
      REQUIRE(::kill(member, SIGKILL) == 0);
      int status = 0;
      REQUIRE(::waitpid(member, &status, 0) == member);  // orphaned to this process, a subreaper
    }
    INFO("children: " << test::describe_children());
    // Without pidfd group signals the number is used only while the leader
    // is unreaped: the executor keeps it a zombie while its group has
    // other processes (unless the member left before the leader's exit was
    // collected), so the number cannot be reused at all.
    test::ProcEntry leader;
    const bool pinned = test::read_proc(pgid, leader) && leader.state == 'Z';
    if (!setsid_member) CHECK(pinned == fallback);
    if (pinned) {
      REQUIRE(fallback);
      CHECK(ex.execute(SignalProcessOperation{pgid, SIGTERM}).code() == Errc::InvalidArgument);  // ended
      auto r = ex.execute(TeardownOperation{p->pid, 50 * kMs});
      INFO(r.error().message());
      REQUIRE(r.ok());
      CHECK(r->leader_status.code == 0);
      CHECK(ex.live() == 0);
      CHECK_FALSE(test::same_process_exists(pgid, leader_start));  // reaped with its tree
    } else {
      CHECK(::killpg(pgid, 0) != 0);  // nobody is in the group
      // Bare: the number itself must be free (the leader is reaped already), for the bystander to take it.
      REQUIRE(test::wait_for([&] { return !test::process_exists(pgid); }));
      bystander = spawn_bystander_at(pgid, file);
      REQUIRE(bystander == pgid);
      // Generous under sanitizers and a parallel ctest; a bystander that
      // never gets ready says in which state it is (T: something stopped it).
      const bool ready = test::wait_for([&] { return read_file(file) == "ready\n"; }, std::chrono::seconds(30));
      test::ProcEntry by;
      INFO("bystander " << bystander << " state " << (test::read_proc(bystander, by) ? by.state : '?') << ", its file ["
                        << read_file(file) << "]");
      REQUIRE(ready);

      CHECK(ex.execute(SignalProcessOperation{pgid, SIGTERM}).code() == Errc::InvalidArgument);  // reaped
      auto k = ex.execute(KillProcessGroupOperation{pgid, SIGTERM});
      INFO(k.error().message());
      CHECK(k.code() == Errc::Dead);
      auto r = ex.execute(TeardownOperation{p->pid, 50 * kMs});
      INFO(r.error().message());
      REQUIRE(r.ok());
      CHECK(ex.live() == 0);
      for (const auto& line : audit.lines) UNSCOPED_INFO(line);
      // The refusals are audited: the operation's, and the teardown's.
      CHECK(audit.count("group_kill pid -1 pgid " + std::to_string(pgid) + " signal 15 process group " +
                        std::to_string(pgid) + " has no process left") == 1);
      CHECK(audit.count("group_kill pid " + std::to_string(pgid) + " pgid " + std::to_string(pgid)) == 1);

      // The bystander was reached by none of it.
      test::ProcEntry e;
      REQUIRE(test::read_proc(bystander, e));
      CHECK(e.state != 'T');
      CHECK(e.state != 'Z');
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a trap runs after the current sleep
      CHECK(read_file(file) == "ready\n");
    }
  }
  if (bystander > 0) test::end_session(bystander);
  std::remove(file.c_str());
}

TEST_CASE("a full process table leaves a live tree's escapee running, reports Full, and adopts it once a slot frees") {
  // Two slots: a filler tree holds one, the tree the other; its setsid
  // escapee, orphaned to this process, finds no slot. It must not be
  // ended for that (its tree lives): the sweeps leave it running, say
  // Full (an event, a counter), and adopt it once the filler is gone.
  FullTableRig rig;
  auto& [guard, audit, sink, ex, t] = rig;
  const int escapee = t.escapee;
  const unsigned long long escapee_start = test::start_time_of(escapee);  // it printed its pid, then exec'd sleep
  const std::string about = "orphan_adopted pid " + std::to_string(escapee) + " ";
  REQUIRE(test::wait_for([&] { return audit.count(about) >= 1; }));
  // Several sweeps later it still runs, unheld; the refusal was reported.
  REQUIRE(test::wait_for([&] { return ex.counters().orphans_refused >= 5; }));
  CHECK(running(escapee));
  CHECK_FALSE(test::holds_pidfd_for(escapee));
  CHECK(audit.count(about, "process table is full") >= 1);
  CHECK(audit.count(about) == audit.count("process table is full"));  // no "ok" adoption yet
  CHECK(audit.count("process table is full") < ex.counters().orphans_refused);  // rate-limited
  CHECK(ex.counters().orphans_adopted == 0);

  // A slot frees: the next sweep adopts it.
  REQUIRE(ex.execute(SignalProcessOperation{t.filler, SIGKILL}).ok());
  const bool adopted = test::wait_for([&] { return test::holds_pidfd_for(escapee); });
  if (!adopted) {
    // What the executor saw, for a failure that does not repeat.
    INFO("events:\n" << audit.dump());
    INFO("live " << ex.live() << ", adopted " << ex.counters().orphans_adopted << ", refused "
                 << ex.counters().orphans_refused << ", filler running " << running(t.filler)
                 << ", escapee running " << running(escapee));
    REQUIRE(adopted);
  }
  CHECK(running(escapee));
  CHECK(ex.counters().orphans_adopted == 1);
  CHECK(audit.count(about, " ok") == 1);

  auto r = ex.execute(TeardownOperation{t.leader, 0});
  INFO(r.error().message());
  REQUIRE(r.ok());
  CHECK(r->orphans_adopted == 1);
  CHECK(r->killed >= 2);
  CHECK_FALSE(test::same_process_exists(escapee, escapee_start));
  CHECK(ex.live() == 0);
}

TEST_CASE("an escapee the full table left running is reaped when it ends, not left a zombie") {
  // Its environment goes with its memory: once it has ended, only the
  // sweep that refused it can still tell that it was the tree's.
  FullTableRig rig;
  auto& [guard, audit, sink, ex, t] = rig;
  const int escapee = t.escapee;
  REQUIRE(test::wait_for([&] { return ex.counters().orphans_refused >= 2; }));
  REQUIRE(running(escapee));
  // It ends on its own (our child, unreaped: the number is still its own).
  REQUIRE(::kill(escapee, SIGKILL) == 0);
  const bool reaped = test::wait_for([&] { return !test::process_exists(escapee); });
  INFO("events:\n" << audit.dump());
  CHECK(reaped);
  CHECK(ex.counters().orphans_adopted == 1);  // reaped as the tree's, and counted
  CHECK(ex.live() == 2);

  REQUIRE(ex.execute(TeardownOperation{t.leader, 0}).ok());
  REQUIRE(ex.execute(TeardownOperation{t.filler, 0}).ok());
  CHECK(ex.live() == 0);
}

TEST_CASE("a process looked at inside an execve is never judged to lack the tree's marker") {
  // The sweeps recognise a process-group tree's escapee by the marker in
  // its environment. /proc/<pid>/environ reads the memory the process had
  // when the file was opened: an execve running during the read leaves it
  // empty or cut short. Taken for a verdict, that made the teardown's last
  // sweep miss an escapee caught mid-exec and end the teardown with it
  // alive (rt/process_test's crash test, under load). Here a process execs
  // a shell again and again; every look must say Present or Unknown.
  NothingLeft guard;
  const std::string loop = "AIRSSYS_T_LOOP=exec sh -c \"$AIRSSYS_T_LOOP\"";
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  env.push_back(const_cast<char*>(loop.c_str()));
  env.push_back(const_cast<char*>(guard.marker.c_str()));
  env.push_back(nullptr);
  const char* argv[] = {"sh", "-c", "exec sh -c \"$AIRSSYS_T_LOOP\"", nullptr};
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), env.data()) == 0);
  struct End {
    pid_t pid;
    ~End() {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  } end{pid};
  int absent = 0, present = 0, unknown = 0;
  for (int i = 0; i < 20'000; ++i) {
    switch (arch::environment_contains(pid, guard.marker.c_str())) {
      case arch::Presence::Absent: ++absent; break;
      case arch::Presence::Present: ++present; break;
      case arch::Presence::Unknown: ++unknown; break;
    }
  }
  INFO("present " << present << ", unknown " << unknown << ", absent " << absent);
  CHECK(absent == 0);
  CHECK(present > 0);
  CHECK(arch::environment_contains(pid, "AIRSSYS_NOT_THERE=1") != arch::Presence::Present);
}

TEST_CASE("the reactor sleeps while a leader that ended before its group waits for its teardown") {
  // The reaped leader's pidfd stays readable, and closing it does not end
  // its registration in the poller while the held group's duplicate (and
  // the guardian's copy) of the same file is open: the reactor must take
  // it out first, or wake for it again and again until the teardown.
  NothingLeft guard;
  struct Sink final : osl::ExitSink {
    std::atomic<int> exited{-1};
    void on_exit(std::uint64_t, int pid, osl::ExitStatus) noexcept override { exited.store(pid); }
  } sink;
  ProcessExecutor ex;
  REQUIRE(ex.start_reactor(sink).ok());
  const std::string_view env[] = {guard.marker};
  const std::string_view args[] = {"-c", "sleep 1000 & exit 0"};
  auto p = ex.execute(marked("/bin/sh", args, env, Containment::ProcessGroup));
  INFO(p.error().message());
  REQUIRE(p.ok());
  guard.pids.push_back(p->pid);
  REQUIRE(test::wait_for([&] { return sink.exited.load() == p->pid; }));
  CHECK(ex.live() == 1);  // the leader, ended, held for its group
  const long before = test::thread_cpu_ticks("airssys-procs");
  REQUIRE(before >= 0);
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long used = test::thread_cpu_ticks("airssys-procs") - before;
  const long elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count() *
      ::sysconf(_SC_CLK_TCK) / 1000;
  // A reactor that spins takes every tick it is given; a sleeping one
  // wakes for its orphan scans only.
  INFO("reactor used " << used << " of " << elapsed << " ticks");
  CHECK(used * 10 < elapsed);
  auto r = ex.execute(TeardownOperation{p->pid, 0});
  INFO(r.error().message());
  REQUIRE(r.ok());
  CHECK(r->killed >= 1);
  CHECK(ex.live() == 0);
}

TEST_CASE("a KILLed leader that takes long to die: its stopped group is scanned and killed meanwhile") {
  // A KILL goes to the leader first, and the group's scan waits for the
  // leader's end, at most 1 ms. This leader holds 400 MB, which takes the
  // kernel tens of milliseconds to free after the KILL: the scan does not
  // wait for that, finds the group's other member stopped, and kills it;
  // the teardown then ends once the leader is gone too. The leader never
  // waits for its child: a parent killed inside wait() that has not run
  // yet when its child dies reaps that child on its way out (the kernel
  // looks for a waitable child before the pending KILL), and the
  // teardown could not count it.
  NothingLeft guard;
  ProcessExecutor ex;
  const std::string_view args[] = {"-e",
                                   "$x = 'a' x 400_000_000; if (fork() == 0) { exec('sleep', '1000') } sleep 1000"};
  const std::string_view env[] = {guard.marker};
  SpawnProcessOperation op = marked("/usr/bin/perl", args, env, Containment::ProcessGroup);
  auto r = ex.execute(op);
  INFO(r.error().message());
  REQUIRE(r.ok());
  const int leader = r->pid;
  const unsigned long long leader_start = test::start_time_of(leader);
  guard.pids.push_back(leader);
  // The member (perl's `sleep`, in its group) runs, and the memory is held.
  int member = 0;
  REQUIRE(test::wait_for([&] {
    for (int pid : test::processes_with_env(guard.marker))
      if (pid != leader && test::comm_of(pid) == "sleep") member = pid;
    return member != 0 && test::status_field(leader, "VmRSS") > 300'000;
    // Touching 400 MB took 3-5 s alone on a 2-core VM, and once over 20 s
    // beside the rest of the suite.
  }, std::chrono::seconds(90)));
  const unsigned long long member_start = test::start_time_of(member);  // unreaped till the teardown: the sleep
  guard.pids.push_back(member);
  auto t = ex.execute(TeardownOperation{leader, 0});
  INFO(t.error().message());
  REQUIRE(t.ok());
  CHECK_FALSE(t->gave_up);
  CHECK(t->killed == 2);
  CHECK(t->reaped == 2);
  CHECK(t->leader_status.signal == SIGKILL);
  CHECK_FALSE(test::same_process_exists(leader, leader_start));
  CHECK_FALSE(test::same_process_exists(member, member_start));
  CHECK(ex.live() == 0);
  CHECK(test::children_of_self().size() == 1);  // the guardian
}

TEST_CASE("the reactor reports to its sink with the table unlocked: a sink may call the executor") {
  // A report wakes whoever waits for it, who may call the executor at
  // once; the reactor must not still hold the table's lock then. A sink
  // that calls back proves it: under the lock, its first call would
  // deadlock the reactor on itself.
  NothingLeft guard;
  struct Sink final : osl::ExitSink {
    ProcessExecutor* ex = nullptr;
    std::atomic<int> exit_pid{0}, torn_pid{0};
    std::atomic<long> live_at_exit{-1}, live_at_teardown{-1};
    void on_exit(std::uint64_t, int pid, osl::ExitStatus) noexcept override {
      live_at_exit = static_cast<long>(ex->live());
      exit_pid = pid;
    }
    void on_teardown(std::uint64_t owner, int pid, const osl::TeardownReport& report) noexcept override {
      if (owner != 7 || !report.owner_wide) return;
      live_at_teardown = static_cast<long>(ex->counters().cleaned);
      torn_pid = pid;
    }
  } sink;
  ProcessExecutor ex;
  sink.ex = &ex;
  REQUIRE(ex.start_reactor(sink).ok());
  const std::string_view env[] = {guard.marker};
  // One that ends by itself: on_exit, its entry already released.
  const std::string_view quick[] = {"-c", "exit 3"};
  auto a = ex.execute(marked("/bin/sh", quick, env, Containment::ProcessGroup), {}, 5);
  INFO(a.error().message());
  REQUIRE(a.ok());
  guard.pids.push_back(a->pid);
  REQUIRE(test::wait_for([&] { return sink.exit_pid.load() == a->pid; }));
  CHECK(sink.live_at_exit.load() == 0);
  // One torn down on request: on_teardown, counted as cleaned.
  auto b = ex.execute(marked("/bin/sleep", test::kSleep, env, Containment::ProcessGroup), {}, 7);
  INFO(b.error().message());
  REQUIRE(b.ok());
  guard.pids.push_back(b->pid);
  const unsigned long long b_start = test::start_time_of(b->pid);
  CHECK(ex.request_teardown(7, 0) == 1);
  REQUIRE(test::wait_for([&] { return sink.torn_pid.load() == b->pid; }));
  CHECK(sink.live_at_teardown.load() == 2);
  CHECK_FALSE(test::same_process_exists(b->pid, b_start));
  // One whose blocking teardown (on another thread) its owner also asks
  // for: the blocking thread finishes it, and its report still reaches
  // the sink with the lock released.
  const std::string_view stubborn[] = {"-c", "trap 'echo term' TERM; echo up; while :; do sleep 1; done"};
  SpawnProcessOperation op = marked("/bin/sh", stubborn, env, Containment::ProcessGroup);
  op.stdio[1] = StdioConfig::pipe();
  auto c = ex.execute(op, {}, 7);
  INFO(c.error().message());
  REQUIRE(c.ok());
  guard.pids.push_back(c->pid);
  const unsigned long long c_start = test::start_time_of(c->pid);
  test::Fd out(c.value().pipes[1]);
  REQUIRE(test::read_lines(out.fd, 1) == std::vector<std::string>{"up"});  // its trap is set
  Result<osl::TeardownReport> blocking = Error::make(Errc::Failed, "not run");
  std::thread t([&] { blocking = ex.execute(TeardownOperation{c->pid, 2000 * kMs}); });
  // The blocking teardown has sent its TERM, which the tree survives, and
  // waits out the two seconds before its KILL.
  CHECK(test::read_lines(out.fd, 1) == std::vector<std::string>{"term"});
  CHECK(ex.request_teardown(7, 0) == 1);
  t.join();
  INFO(blocking.error().message());
  REQUIRE(blocking.ok());
  CHECK(blocking->leader_status.signal == SIGKILL);
  REQUIRE(test::wait_for([&] { return sink.torn_pid.load() == c->pid; }));
  CHECK(sink.live_at_teardown.load() == 3);
  CHECK_FALSE(test::same_process_exists(c->pid, c_start));
  CHECK(ex.live() == 0);
}
