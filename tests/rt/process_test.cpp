// Context::spawn_process with real process trees, run as root, for both
// containments (a cgroup per tree, and a process group with this process
// as child subreaper): the ProcessSet an actor sees, exits as
// ProcessExited, teardown of a three-level tree with a setsid escapee that
// ignores SIGTERM when its actor crashes, stops or restarts, signalling
// only one's own processes, a full ProcessSet, Detached processes that
// outlive the runtime, the reactor's orphan scan, children the application
// forked itself (not the runtime's to reap), a host killed by SIGKILL,
// shutdown, and the capacity limits validate() enforces.
//
// Every test runs under a guard that, on every exit path, SIGKILLs every
// process carrying this test's environment marker and reaps every child:
// PID 1 here does not reap orphans, so anything leaked would stay forever.
// The guard also checks that it had nothing to clean.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/alloc_counter.hpp"
#include "support/cgroup_base.hpp"
#include "support/proc_table.hpp"
#include "support/process_tree.hpp"
#include "support/rt_test.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace Catch {
template <>
struct StringMaker<airssys::Containment> {
  static std::string convert(airssys::Containment c) { return airssys::osl::to_string(c); }
};
}  // namespace Catch

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr Containment kContainments[] = {Containment::Cgroup, Containment::ProcessGroup};

// Every process a test starts carries this in its environment.
std::string marker_for(int pid) { return "AIRSSYS_RT_PROCESS_TEST=" + std::to_string(pid); }
const std::string& marker() {
  static const std::string m = marker_for(::getpid());
  return m;
}

// Kills and reaps whatever is left (see the file comment), then checks
// that nothing was: no process of ours, no child, no descriptor.
struct Hygiene {
  KillMarkedOnExit guard{marker()};
  std::size_t fds = open_fds();
  ~Hygiene() {
    guard.sweep();
    CHECK(guard.killed == 0);
    CHECK(guard.reaped == 0);
    CHECK(processes_with_env(marker()).empty());
    CHECK(children_of_self().empty());
    CHECK(open_fds() == fds);
  }
};

// The tree, three levels and an escapee, each process ignoring SIGTERM and
// appending "<label> <pid>" to $PIDFILE: the leader; its child; the
// child's child (the grandchild), which double-forks a process that calls
// setsid — the escapee, orphaned at once. Every level ends in `exec sleep`,
// which keeps the pid and the ignored SIGTERM.
const char* const kTreeScript =
    "trap '' TERM\n"
    "case \"$1\" in\n"
    "leader) echo \"leader $$\" >> \"$PIDFILE\"; sh -c \"$TREE_SCRIPT\" tree child & exec sleep 1000 ;;\n"
    "child) echo \"child $$\" >> \"$PIDFILE\"; sh -c \"$TREE_SCRIPT\" tree grandchild & exec sleep 1000 ;;\n"
    "grandchild) echo \"grandchild $$\" >> \"$PIDFILE\"; (setsid sh -c \"$TREE_SCRIPT\" tree escapee &);"
    " exec sleep 1000 ;;\n"
    "escapee) echo \"escapee $$\" >> \"$PIDFILE\"; exec sleep 1000 ;;\n"
    "esac\n";
constexpr std::size_t kTreeSize = 4;

std::unique_ptr<OpSpec> shell(const std::string& script, Containment c, const std::string& mark = marker()) {
  return std::make_unique<OpSpec>("/bin/sh", std::vector<std::string>{"-c", script},
                                  std::vector<std::string>{mark}, c);
}

std::unique_ptr<OpSpec> sleeper(Containment c, const std::string& mark = marker()) {
  return std::make_unique<OpSpec>("/bin/sleep", std::vector<std::string>{"1000"}, std::vector<std::string>{mark}, c);
}

struct TreeSpec {
  std::string pidfile;
  std::unique_ptr<OpSpec> spec;
  TreeSpec(const fs::path& dir, const std::string& name, Containment c, const std::string& mark = marker())
      : pidfile((dir / name).string()) {
    spec = std::make_unique<OpSpec>(
        "/bin/sh", std::vector<std::string>{"-c", kTreeScript, "tree", "leader"},
        std::vector<std::string>{"PIDFILE=" + pidfile, std::string("TREE_SCRIPT=") + kTreeScript, mark}, c);
  }
  const SpawnProcessOperation& op() const { return spec->op; }
};

int ppid_of(int pid) {
  ProcEntry e;
  return read_proc(pid, e) ? e.ppid : -1;
}

// ---- the owning actor ---------------------------------------------------------

struct Cmd {
  enum Kind { Spawn, Nudge, Crash, Throw, Stop, Report, Probe } kind = Report;
  int a = 0;
  int b = 0;
};
using Msg = std::variant<Cmd, ProcessExited>;

// What an Owner saw, for the test thread.
struct Probe {
  Log<SpawnProcessResult> spawned;
  Log<Error> spawn_errors;
  Log<ProcessExited> exits;
  Log<std::vector<ChildProcess>> sets;  // child_processes() after each message
  Log<StopReason> stops;
  std::atomic<int> starts{0};
  std::size_t last_set_size() const {
    auto v = sets.get();
    return v.empty() ? 0 : v.back().size();
  }
};

void snapshot(Context<Msg>& ctx, Probe& p) {
  auto s = ctx.child_processes();
  p.sets.push(std::vector<ChildProcess>(s.begin(), s.end()));
}

using Handle = std::function<void(Context<Msg>&, Msg&)>;

struct Owner : Actor<Msg> {
  Handle handle;
  ErrorAction on_fail;
  Probe* probe;
  Owner(Handle h, ErrorAction a, Probe* p) : handle(std::move(h)), on_fail(a), probe(p) {}
  void on_start(Context<Msg>&) override { probe->starts.fetch_add(1); }
  void on_message(Context<Msg>& ctx, Msg& m) override { handle(ctx, m); }
  ErrorAction on_error(Context<Msg>&, const Error&) override { return on_fail; }
  void on_stop(Context<Msg>&, StopReason r) override { probe->stops.push(r); }
};

// `sh -c 'exit 0'`: a process that ends at once.
const SpawnProcessOperation& quick_exit_op(Containment c) {
  static const auto cg = shell("exit 0", Containment::Cgroup);
  static const auto pg = shell("exit 0", Containment::ProcessGroup);
  return c == Containment::Cgroup ? cg->op : pg->op;
}

// Spawn: spawns `op`. Nudge: spawns a process that exits at once (its
// exit wakes the executor's reactor). Crash: ctx.fail. Throw: throws
// (exceptions on). Stop: ctx.stop(). Report: records the set. Every exit
// is recorded.
Handle standard(const SpawnProcessOperation* op, Probe* p) {
  return [op, p](Context<Msg>& ctx, Msg& m) {
    if (auto* e = std::get_if<ProcessExited>(&m)) {
      // The set first: a test that sees the exit also sees the set as the
      // handler saw it.
      snapshot(ctx, *p);
      p->exits.push(*e);
      return;
    }
    switch (std::get<Cmd>(m).kind) {
      case Cmd::Spawn: {
        auto r = ctx.spawn_process(*op);
        if (r) {
          p->spawned.push(r.value());
        } else {
          p->spawn_errors.push(r.error());
        }
        break;
      }
      case Cmd::Nudge: {
        auto r = ctx.spawn_process(quick_exit_op(op->containment));
        if (!r) p->spawn_errors.push(r.error());
        break;
      }
      case Cmd::Crash: ctx.fail(Error::make(Errc::Failed, "told to crash")); break;
      case Cmd::Throw:
#if defined(__cpp_exceptions)
        throw std::runtime_error("told to throw");
#else
        ctx.fail(Error::make(Errc::Failed, "told to throw, without exceptions"));
        break;
#endif
      case Cmd::Stop: ctx.stop(); break;
      case Cmd::Report:
      case Cmd::Probe: break;
    }
    snapshot(ctx, *p);
  };
}

Result<ActorRef<Msg>> spawn_owner(System& sys, int worker, Handle h, Probe* p,
                                  ErrorAction on_fail = ErrorAction::Stop) {
  return sys.spawn_with<Owner>(on_worker(worker), [h, on_fail, p] { return Owner(h, on_fail, p); });
}

bool send_cmd(System& sys, ActorRef<Msg> a, Cmd::Kind k, int x = 0, int y = 0) {
  return sys.send(a, Msg{Cmd{k, x, y}}).ok();
}

std::unique_ptr<System> make_system(std::chrono::milliseconds kill_timeout = 200ms, std::uint32_t per_actor = 8) {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.process_kill_timeout = kill_timeout;
  cfg.processes_per_actor = per_actor;
  return std::make_unique<System>(cfg);
}

// Spawns the tree through `owner` and waits until every process of it has
// written its pid and the escapee has been orphaned to this process, then
// gives the reactor's orphan scan (every 50 ms) 200 ms to adopt it.
// First `owner` spawns a process that exits at once, so that the executor
// and its reactor run and the reactor has gone idle when the tree comes:
// the state of a runtime that has been up for a while.
// `adopt`: afterwards wakes the reactor the same way, and requires the
// executor to hold the escapee by a pidfd (adopted).
std::map<std::string, int> start_tree(System& sys, ActorRef<Msg> owner, const TreeSpec& tree, Probe& probe,
                                      bool adopt = false) {
  const std::size_t exits_before = probe.exits.size();
  REQUIRE(send_cmd(sys, owner, Cmd::Nudge));
  REQUIRE(wait_for([&] { return probe.exits.size() == exits_before + 1; }));
  REQUIRE(send_cmd(sys, owner, Cmd::Spawn));
  REQUIRE(wait_for([&] { return probe.spawned.size() + probe.spawn_errors.size() == 1; }));
  if (probe.spawn_errors.size() != 0) FAIL("spawn failed: " << probe.spawn_errors.get()[0].message());
  std::map<std::string, int> pids;
  const bool up = wait_for([&] {
    pids = read_pids(tree.pidfile);
    return pids.size() == kTreeSize && ppid_of(pids["escapee"]) == self_pid();
  });
  INFO(describe(pids) << " held " << sys.processes_held());
  REQUIRE(up);
  REQUIRE(pids["leader"] == probe.spawned.get()[0].pid);
  std::this_thread::sleep_for(200ms);
  if (adopt) {
    const std::size_t exits = probe.exits.size();
    REQUIRE(send_cmd(sys, owner, Cmd::Nudge));
    REQUIRE(wait_for([&] { return probe.exits.size() == exits + 1; }));
    const int escapee = pids["escapee"];
    REQUIRE(wait_for([&] { return holds_pidfd_for(escapee); }, 2s));
  }
  return pids;
}

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE("an actor that never spawns has no processes, no reactor thread, and child_processes() allocates nothing") {
  Hygiene hygiene;
  auto sys = make_system();
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> allocs{~0ull};
  std::atomic<std::size_t> total{~std::size_t{0}};
  Log<Errc> codes;
  auto a = spawn_scripted<int>(*sys, 0, nullptr, [&](Context<int>& ctx, int&) {
    const std::uint64_t before = allocations();
    std::size_t n = 0;
    for (int i = 0; i < 1'000'000; ++i) {
      auto s = ctx.child_processes();
      n += s.size() + (s.data() != nullptr ? 1 : 0);
      asm volatile("" : "+r"(n));
    }
    const std::uint64_t after = allocations();
    allocs = after - before;
    total = n;
    // Nothing to signal: refused before any executor exists.
    codes.push(ctx.signal_process(::getpid(), 0).code());
    codes.push(ctx.kill_process_group(::getpgrp(), 0).code());
    done = true;
  });
  REQUIRE(a.ok());
  REQUIRE(sys->send(*a, 1).ok());
  REQUIRE(wait_for([&] { return done.load(); }));
  CHECK(allocs.load() == 0);
  CHECK(total.load() == 0);
  CHECK(codes.get() == std::vector<Errc>{Errc::InvalidArgument, Errc::InvalidArgument});
  CHECK_FALSE(sys->processes_started());
  CHECK_FALSE(has_thread_named("airssys-procs"));
  CHECK(sys->processes_held() == 0);
  const auto k = sys->process_counters();
  CHECK(k.spawned == 0);
  CHECK(k.cleaned == 0);
  REQUIRE(sys->shutdown().ok());
  CHECK_FALSE(sys->processes_started());
}

TEST_CASE("spawn_process records the process in child_processes(), and its exit arrives as ProcessExited and removes it") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    Hygiene hygiene;
    auto exit3 = shell("exit 3", c);
    auto sleeps = sleeper(c);
    Probe p3, pterm, pkill;
    auto sys = make_system();

    {
      // Exits by itself with code 3.
      auto a = spawn_owner(*sys, 0, standard(&exit3->op, &p3), &p3);
      REQUIRE(a.ok());
      REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
      REQUIRE(wait_for([&] { return p3.exits.size() == 1; }));
      REQUIRE(p3.spawned.size() == 1);
      const SpawnProcessResult r = p3.spawned.get()[0];
      CHECK(r.pid > 0);
      CHECK(r.pgid == r.pid);  // NewGroup
      CHECK(r.containment == c);
      CHECK(r.lifetime == ProcessLifetime::Managed);
      // Within the handler that spawned it, the set holds it.
      const auto sets = p3.sets.get();
      REQUIRE(sets.size() >= 2);
      REQUIRE(sets[0].size() == 1);
      CHECK(sets[0][0].pid == r.pid);
      CHECK(sets[0][0].pgid == r.pgid);
      CHECK(sets[0][0].containment == c);
      const ProcessExited e = p3.exits.get()[0];
      CHECK(e.pid == r.pid);
      CHECK(e.status.code == 3);
      CHECK(e.status.signal == 0);
      // The exit's handler sees the set without it.
      CHECK(sets[1].empty());
    }
    {
      // Killed by a signal it was sent through its actor.
      Handle h = [&](Context<Msg>& ctx, Msg& m) {
        if (auto* cmd = std::get_if<Cmd>(&m); cmd != nullptr && cmd->kind == Cmd::Probe) {
          const auto r = ctx.signal_process(cmd->a, SIGTERM);
          if (!r) pterm.spawn_errors.push(r.error());
          return;
        }
        standard(&sleeps->op, &pterm)(ctx, m);
      };
      auto a = spawn_owner(*sys, 1, h, &pterm);
      REQUIRE(a.ok());
      REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
      REQUIRE(wait_for([&] { return pterm.spawned.size() == 1; }));
      const int pid = pterm.spawned.get()[0].pid;
      REQUIRE(send_cmd(*sys, *a, Cmd::Probe, pid));
      REQUIRE(wait_for([&] { return pterm.exits.size() == 1; }));
      CHECK(pterm.spawn_errors.size() == 0);
      const ProcessExited e = pterm.exits.get()[0];
      CHECK(e.pid == pid);
      CHECK(e.status.signal == SIGTERM);
      CHECK(pterm.last_set_size() == 0);
    }
    {
      // Killed by a SIGKILL from outside.
      auto a = spawn_owner(*sys, 0, standard(&sleeps->op, &pkill), &pkill);
      REQUIRE(a.ok());
      REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
      REQUIRE(wait_for([&] { return pkill.spawned.size() == 1; }));
      const int pid = pkill.spawned.get()[0].pid;
      const unsigned long long start = start_time_of(pid);  // our unreaped child: still the sleep
      REQUIRE(::kill(pid, SIGKILL) == 0);
      REQUIRE(wait_for([&] { return pkill.exits.size() == 1; }));
      const ProcessExited e = pkill.exits.get()[0];
      CHECK(e.pid == pid);
      CHECK(e.status.signal == SIGKILL);
      CHECK(pkill.last_set_size() == 0);
      CHECK_FALSE(same_process_exists(pid, start));
    }
    REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
    const auto k = sys->process_counters();
    CHECK(k.spawned == 3);
    CHECK(k.cleaned == 3);
    REQUIRE(sys->shutdown().ok());
    sys.reset();
  }
}

namespace {

enum class Ending { Crash, Throw, Stop, Restart };

// The trees a teardown test runs: each containment and, for process
// groups, also a tree whose escapee the reactor adopted (held, guarded)
// before the teardown began.
struct Variant {
  Containment c;
  bool adopt;
  const char* name;
};
constexpr Variant kVariants[] = {
    {Containment::Cgroup, false, "cgroup"},
    {Containment::ProcessGroup, false, "pgroup"},
    {Containment::ProcessGroup, true, "pgroup, the escapee adopted by the reactor first"},
};

// Spawns the tree, ends its actor `how`, and checks that within a few
// seconds (process_kill_timeout is 200 ms) every process of it is gone
// from /proc — killed and reaped — and the executor holds nothing.
void tree_is_torn_down(Ending how) {
  for (const Variant& v : kVariants) {
    const Containment c = v.c;
    INFO("tree: " << v.name);
    Hygiene hygiene;
    TempDir dir{"airssys-rt-process"};
    TreeSpec tree(dir.path, "pids", c);
    Probe p;
    auto sys = make_system(200ms);
    auto a = spawn_owner(*sys, 0, standard(&tree.op(), &p), &p,
                         how == Ending::Restart ? ErrorAction::Restart : ErrorAction::Stop);
    REQUIRE(a.ok());
    const auto pids = start_tree(*sys, *a, tree, p, v.adopt);
    const auto starts = start_times(pids);
    {
      // The set after the Spawn: the leader alone.
      bool recorded = false;
      for (const auto& set : p.sets.get())
        recorded |= set.size() == 1 && set[0].pid == pids.at("leader") && set[0].pgid == pids.at("leader") &&
                    set[0].containment == c;
      CHECK(recorded);
    }
    const auto t0 = Clock::now();
    switch (how) {
      case Ending::Crash: REQUIRE(send_cmd(*sys, *a, Cmd::Crash)); break;
      case Ending::Throw: REQUIRE(send_cmd(*sys, *a, Cmd::Throw)); break;
      case Ending::Stop: REQUIRE(send_cmd(*sys, *a, Cmd::Stop)); break;
      case Ending::Restart: REQUIRE(send_cmd(*sys, *a, Cmd::Crash)); break;
    }
    const bool in_time = wait_for([&] { return all_gone(pids, starts); }, 3s);
    const std::string state = describe(pids);
    const bool at_all = in_time || wait_for([&] { return all_gone(pids, starts); }, 15s);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    INFO("after 3 s: " << state << "gone after " << ms << " ms: " << (at_all ? "yes" : "no"));
    CHECK(in_time);
    CHECK(wait_for([&] { return sys->processes_held() == 0; }, 15s));
    const auto k = sys->process_counters();
    INFO("counters: spawned " << k.spawned << ", cleaned " << k.cleaned << ", killed " << k.killed
                              << ", orphans_adopted " << k.orphans_adopted);
    CHECK(k.spawned == (v.adopt ? 3u : 2u));  // the nudges are trees too
    CHECK(k.cleaned == k.spawned);
    CHECK(k.orphans_adopted >= 1);
    if (how == Ending::Restart) {
      CHECK(sys->alive(*a));
      // The new instance starts once the reactor has reported the old
      // tree gone, a moment after the process table shows it.
      CHECK(wait_for([&] { return p.starts.load() == 2; }));
      const std::size_t before = p.sets.size();
      REQUIRE(send_cmd(*sys, *a, Cmd::Report));
      REQUIRE(wait_for([&] { return p.sets.size() > before; }));
      CHECK(p.last_set_size() == 0);  // the restarted actor owns nothing
      REQUIRE(send_cmd(*sys, *a, Cmd::Stop));
      REQUIRE(wait_for([&] { return !sys->alive(*a); }));
    } else {
      REQUIRE(wait_for([&] { return !sys->alive(*a); }));
      const auto stops = p.stops.get();
      REQUIRE(stops.size() == 1);
      CHECK(stops[0] == (how == Ending::Stop ? StopReason::Normal : StopReason::Failed));
    }
    REQUIRE(sys->shutdown().ok());
    sys.reset();
  }
}

}  // namespace

TEST_CASE("when the owning actor crashes, its whole tree, setsid escapee included, is killed and reaped") {
  tree_is_torn_down(Ending::Crash);
}

TEST_CASE("when the owning actor's handler throws, its whole tree is killed and reaped") {
  // Without exceptions the handler reports the failure with ctx.fail.
  tree_is_torn_down(Ending::Throw);
}

TEST_CASE("when the owning actor stops normally, its whole tree is killed and reaped") {
  tree_is_torn_down(Ending::Stop);
}

TEST_CASE("when the owning actor restarts, the old instance's tree is killed and reaped and the new one owns nothing") {
  tree_is_torn_down(Ending::Restart);
}

TEST_CASE("signal_process and kill_process_group reach only the actor's own processes, never pgid 0, 1 or -1") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    Hygiene hygiene;
    auto sleeps = sleeper(c);
    Probe pa, pb;
    Log<std::pair<std::string, Errc>> results;
    auto sys = make_system();
    Handle ha = [&](Context<Msg>& ctx, Msg& m) {
      auto* cmd = std::get_if<Cmd>(&m);
      if (cmd == nullptr || cmd->kind != Cmd::Probe) return standard(&sleeps->op, &pa)(ctx, m);
      auto note = [&](const char* what, const Result<void>& r) { results.push({what, r.code()}); };
      // Someone else's process and group: refused, and nothing is sent.
      note("other pid", ctx.signal_process(cmd->a, SIGKILL));
      note("other group", ctx.kill_process_group(cmd->b, SIGKILL));
      // Not processes of this runtime at all (signal 0: nothing would be sent).
      note("test process", ctx.signal_process(::getpid(), 0));
      note("test group", ctx.kill_process_group(::getpgrp(), 0));
      note("pid 0", ctx.signal_process(0, 0));
      note("pid 1", ctx.signal_process(1, 0));
      note("pid -1", ctx.signal_process(-1, 0));
      note("pgid 0", ctx.kill_process_group(0, 0));
      note("pgid 1", ctx.kill_process_group(1, 0));
      note("pgid -1", ctx.kill_process_group(-1, 0));
      // Its own.
      const auto set = ctx.child_processes();
      const ChildProcess own = set.empty() ? ChildProcess{} : set[0];
      note("own pid", ctx.signal_process(own.pid, 0));
      note("own group", ctx.kill_process_group(own.pgid, 0));
    };
    auto a = spawn_owner(*sys, 0, ha, &pa);
    auto b = spawn_owner(*sys, 1, standard(&sleeps->op, &pb), &pb);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
    REQUIRE(send_cmd(*sys, *b, Cmd::Spawn));
    REQUIRE(wait_for([&] { return pa.spawned.size() == 1 && pb.spawned.size() == 1; }));
    const SpawnProcessResult other = pb.spawned.get()[0];
    const unsigned long long other_start = start_time_of(other.pid);
    REQUIRE(send_cmd(*sys, *a, Cmd::Probe, other.pid, other.pgid));
    REQUIRE(wait_for([&] { return results.size() == 12; }));
    for (const auto& [what, code] : results.get()) {
      INFO(what);
      const bool own = std::string(what).rfind("own", 0) == 0;
      CHECK(code == (own ? Errc::Ok : Errc::InvalidArgument));
    }
    CHECK_FALSE(process_ended(other.pid));
    CHECK_FALSE(process_ended(pa.spawned.get()[0].pid));
    CHECK(pb.exits.size() == 0);
    CHECK(sys->stop(*a).ok());
    CHECK(sys->stop(*b).ok());
    REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
    CHECK_FALSE(same_process_exists(other.pid, other_start));
    REQUIRE(sys->shutdown().ok());
    sys.reset();
  }
}

// A System whose message pool a test can exhaust: 256 blocks of the
// smallest class, and a gate actor on worker 1 that holds its first message
// until `open`, so that its mailbox keeps every block the test fills.
// Declared after what its actors touch; opens the gate when it goes.
struct SmallPool {
  std::atomic<bool> open{false};
  Probe gate_probe;
  System sys{config()};
  Result<ActorRef<Msg>> gate = spawn_owner(sys, 1, [this](Context<Msg>&, Msg&) {
    while (!open.load()) std::this_thread::sleep_for(1ms);
  }, &gate_probe);
  ~SmallPool() { open.store(true); }
  static SystemConfig config() {
    SystemConfig cfg;
    cfg.workers = 2;
    cfg.message_blocks[0] = 256;
    return cfg;
  }
  // Sends to the gate until a send is refused: the refusal, and how many
  // were sent before it.
  std::pair<Error, int> fill() {
    int sent = 0;
    for (;;) {
      auto r = sys.send(*gate, Msg{Cmd{Cmd::Report}});
      if (!r) return {r.error(), sent};
      ++sent;
    }
  }
};

// An exit report is a message; it is reserved when the process is spawned,
// so that an exit while the message pool is exhausted still reaches the
// actor (allocated at the exit, it was lost: the actor never heard of it).
TEST_CASE("an exit while the message pool is exhausted still reaches its actor: its report was reserved at the spawn") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    Hygiene hygiene;
    auto sleeps = shell("sleep 1", c);
    Probe p;
    SmallPool pool;
    System& sys = pool.sys;
    REQUIRE(pool.gate.ok());
    auto a = spawn_owner(sys, 0, standard(&sleeps->op, &p), &p);
    REQUIRE(a.ok());
    REQUIRE(send_cmd(sys, *a, Cmd::Spawn));
    REQUIRE(wait_for([&] { return p.spawned.size() == 1; }));
    const auto [refused, sent] = pool.fill();
    INFO(sent << " sent, then: " << refused.message());
    REQUIRE(refused.code() == Errc::Full);
    REQUIRE(std::string(refused.message()).find("message pool") != std::string::npos);
    // The sleep ends while no block is free.
    REQUIRE(wait_for([&] { return p.exits.size() == 1; }, 10s));
    CHECK(p.exits.get()[0].pid == p.spawned.get()[0].pid);
    CHECK(p.exits.get()[0].status.code == 0);
    pool.open.store(true);
    REQUIRE(sys.shutdown());
  }
}

// The other side of that reservation: with no block free for the report,
// the spawn is refused before anything starts.
TEST_CASE("a spawn while the message pool is exhausted is refused with Full naming the exit report, and starts nothing") {
  Hygiene hygiene;
  auto sleeps = shell("sleep 1", Containment::ProcessGroup);
  Probe p;
  std::atomic<bool> filled{false};
  SmallPool pool;
  System& sys = pool.sys;
  REQUIRE(pool.gate.ok());
  // a spawns once the test has taken every block.
  auto a = spawn_owner(sys, 0, [&](Context<Msg>& ctx, Msg&) {
    while (!filled.load()) std::this_thread::sleep_for(1ms);
    auto r = ctx.spawn_process(sleeps->op);
    if (r) {
      p.spawned.push(r.value());
    } else {
      p.spawn_errors.push(r.error());
    }
  }, &p);
  REQUIRE(a.ok());
  REQUIRE(send_cmd(sys, *a, Cmd::Spawn));
  REQUIRE(pool.fill().first.code() == Errc::Full);
  filled.store(true);
  REQUIRE(wait_for([&] { return p.spawned.size() + p.spawn_errors.size() == 1; }));
  REQUIRE(p.spawn_errors.size() == 1);
  const Error e = p.spawn_errors.get()[0];
  INFO(e.message());
  CHECK(e.code() == Errc::Full);
  CHECK(std::string(e.message()).find("exit report") != std::string::npos);
  CHECK(std::string(e.message()).find("actor #" + std::to_string(a->id.slot)) != std::string::npos);
  CHECK(sys.process_counters().spawned == 0);
  CHECK(sys.processes_held() == 0);
  pool.open.store(true);
  REQUIRE(sys.shutdown());
}

TEST_CASE("a full ProcessSet refuses the next spawn with Full naming it, and what it holds is still torn down") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    Hygiene hygiene;
    auto sleeps = sleeper(c);
    Probe p;
    auto sys = make_system(200ms, 2);
    auto a = spawn_owner(*sys, 0, standard(&sleeps->op, &p), &p);
    REQUIRE(a.ok());
    for (int i = 0; i < 3; ++i) REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
    REQUIRE(wait_for([&] { return p.spawned.size() + p.spawn_errors.size() == 3; }));
    REQUIRE(p.spawned.size() == 2);
    REQUIRE(p.spawn_errors.size() == 1);
    const Error e = p.spawn_errors.get()[0];
    INFO(e.message());
    CHECK(e.code() == Errc::Full);
    CHECK(std::string(e.message()).find("ProcessSet") != std::string::npos);
    CHECK(p.last_set_size() == 2);
    CHECK(sys->process_counters().spawned == 2);  // the refused spawn started nothing
    CHECK(sys->processes_held() == 2);
    std::vector<int> pids;
    std::vector<unsigned long long> starts;
    for (const auto& r : p.spawned.get()) {
      pids.push_back(r.pid);
      starts.push_back(start_time_of(r.pid));
    }
    REQUIRE(send_cmd(*sys, *a, Cmd::Stop));
    auto gone = [&](std::size_t i) { return !same_process_exists(pids[i], starts[i]); };
    CHECK(wait_for([&] { return gone(0) && gone(1); }, 3s));
    REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
    const auto k = sys->process_counters();
    CHECK(k.spawned == 2);
    CHECK(k.cleaned == 2);
    REQUIRE(sys->shutdown().ok());
    sys.reset();
  }
}

TEST_CASE("when every ProcessSet is taken, a new owner's spawn is refused with Full naming process_owners") {
  Hygiene hygiene;
  auto sleeps = sleeper(Containment::ProcessGroup);
  Probe p1, p2;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.process_owners = 1;
  cfg.process_kill_timeout = 200ms;
  auto sys = std::make_unique<System>(cfg);
  auto a1 = spawn_owner(*sys, 0, standard(&sleeps->op, &p1), &p1);
  auto a2 = spawn_owner(*sys, 1, standard(&sleeps->op, &p2), &p2);
  REQUIRE(a1.ok());
  REQUIRE(a2.ok());
  REQUIRE(send_cmd(*sys, *a1, Cmd::Spawn));
  REQUIRE(wait_for([&] { return p1.spawned.size() == 1; }));
  REQUIRE(send_cmd(*sys, *a2, Cmd::Spawn));
  REQUIRE(wait_for([&] { return p2.spawn_errors.size() == 1; }));
  const Error e = p2.spawn_errors.get()[0];
  INFO(e.message());
  CHECK(e.code() == Errc::Full);
  CHECK(std::string(e.message()).find("process_owners") != std::string::npos);
  CHECK(sys->process_counters().spawned == 1);
  // The first owner stops: its set is free again — once its stop has
  // finished, which is a little after alive() turns false (the set goes
  // back after on_stop): retry for a while.
  REQUIRE(send_cmd(*sys, *a1, Cmd::Stop));
  REQUIRE(wait_for([&] { return !sys->alive(*a1); }));
  const bool spawned = wait_for(
      [&] {
        const std::size_t before = p2.spawned.size() + p2.spawn_errors.size();
        if (!send_cmd(*sys, *a2, Cmd::Spawn)) return false;
        (void)wait_for([&] { return p2.spawned.size() + p2.spawn_errors.size() > before; });
        return p2.spawned.size() == 1;
      },
      2s);
  INFO("refused " << p2.spawn_errors.size() - 1 << " more times");
  CHECK(spawned);
  REQUIRE(send_cmd(*sys, *a2, Cmd::Stop));
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
  const auto k = sys->process_counters();
  CHECK(k.spawned == 2);
  CHECK(k.cleaned == 2);
  REQUIRE(sys->shutdown().ok());
}

TEST_CASE("a Detached process outlives its actor and the System, in a session of its own and in no airssys cgroup") {
  for (Containment c : kContainments) {
    INFO("containment asked for " << osl::to_string(c));
    Hygiene hygiene;
    auto sleeps = sleeper(c);
    sleeps->op.lifetime = ProcessLifetime::Detached;
    sleeps->op.process_group = osl::ProcessGroupConfig::new_session();
    Probe p;
    auto sys = make_system();
    auto a = spawn_owner(*sys, 0, standard(&sleeps->op, &p), &p);
    REQUIRE(a.ok());
    REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
    REQUIRE(wait_for([&] { return p.spawned.size() + p.spawn_errors.size() == 1; }));
    if (p.spawn_errors.size() != 0) FAIL(p.spawn_errors.get()[0].message());
    const SpawnProcessResult r = p.spawned.get()[0];
    CHECK(r.lifetime == ProcessLifetime::Detached);
    CHECK(r.containment == Containment::None);
    CHECK(p.last_set_size() == 0);  // only managed processes are in the set
    CHECK(sys->process_counters().detached == 1);
    CHECK(sys->process_counters().spawned == 0);
    REQUIRE(send_cmd(*sys, *a, Cmd::Stop));
    REQUIRE(wait_for([&] { return !sys->alive(*a); }));
    std::this_thread::sleep_for(300ms);  // longer than process_kill_timeout
    CHECK_FALSE(process_ended(r.pid));
    REQUIRE(sys->shutdown().ok());
    sys.reset();
    std::this_thread::sleep_for(100ms);
    ProcEntry e;
    REQUIRE(read_proc(r.pid, e));
    CHECK(e.state != 'Z');
    CHECK(session_of(r.pid) == r.pid);
    CHECK(e.pgid == r.pid);
    CHECK(cgroup2_of(r.pid).find("airssys-") == std::string::npos);
    // Still this process's child: the test ends it and reaps it.
    CHECK(e.ppid == self_pid());
    REQUIRE(::kill(r.pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(r.pid, &status, 0) == r.pid);
    CHECK(WIFSIGNALED(status));
  }
}

TEST_CASE("a reaped process is never signalled: after ProcessExited its pid and its empty group are refused") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    Hygiene hygiene;
    auto quick = shell("exit 0", c);
    Probe p;
    Log<std::pair<std::string, Errc>> results;
    auto sys = make_system();
    Handle h = [&](Context<Msg>& ctx, Msg& m) {
      if (auto* e = std::get_if<ProcessExited>(&m)) {
        results.push({"pid", ctx.signal_process(e->pid, 0).code()});
        results.push({"group", ctx.kill_process_group(e->pid, 0).code()});
      }
      standard(&quick->op, &p)(ctx, m);
    };
    auto a = spawn_owner(*sys, 0, h, &p);
    REQUIRE(a.ok());
    REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
    REQUIRE(wait_for([&] { return p.exits.size() == 1; }));
    REQUIRE(results.size() == 2);
    for (const auto& [what, code] : results.get()) {
      INFO(what);
      CHECK(code != Errc::Ok);
    }
    REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
    REQUIRE(sys->shutdown().ok());
    sys.reset();
  }
}

TEST_CASE("in process-group mode the reactor's scan adopts an escapee on its own, within a few scan periods") {
  // The scan runs every 50 ms while process-group trees live
  // (ExecutorConfig::orphan_scan_ns); adopted, the escapee is held by a
  // pidfd and registered with the guardian, which kills it if the host
  // dies. The reactor is idle first: an earlier process came and went
  // (start_tree).
  Hygiene hygiene;
  TempDir dir{"airssys-rt-process"};
  TreeSpec tree(dir.path, "pids", Containment::ProcessGroup);
  Probe p;
  auto sys = make_system(200ms);
  auto a = spawn_owner(*sys, 0, standard(&tree.op(), &p), &p);
  REQUIRE(a.ok());
  const auto pids = start_tree(*sys, *a, tree, p);
  const auto starts = start_times(pids);
  const int escapee = pids.at("escapee");
  const bool adopted = wait_for([&] { return holds_pidfd_for(escapee); }, 1s);
  const std::size_t held = sys->processes_held();
  bool after_nudge = adopted;
  if (!adopted) {
    // Does any reactor wake-up (here: another process's exit) start the scan?
    const std::size_t exits = p.exits.size();
    REQUIRE(send_cmd(*sys, *a, Cmd::Nudge));
    const bool exited = wait_for([&] { return p.exits.size() > exits; });
    INFO("exits " << exits << " -> " << p.exits.size() << ", spawn errors " << p.spawn_errors.size() << ", held "
                  << sys->processes_held() << "; " << describe(pids));
    REQUIRE(exited);
    after_nudge = wait_for([&] { return holds_pidfd_for(escapee); }, 1s);
  }
  INFO("escapee " << escapee << " orphaned to this process " << (200 + 1000) << " ms ago; held " << held
                  << "; adopted once another exit woke the reactor: " << (after_nudge ? "yes" : "no"));
  CHECK(adopted);
  CHECK(held == 2);
  REQUIRE(send_cmd(*sys, *a, Cmd::Stop));
  CHECK(wait_for([&] { return all_gone(pids, starts); }, 15s));
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 15s));
  REQUIRE(sys->shutdown().ok());
}

TEST_CASE("children the application forked itself are left for it to reap, even one leading its own session") {
  // The runtime is this process's child subreaper and sweeps its children
  // for escapees of its trees; children it did not spawn are not its own.
  Hygiene hygiene;
  TempDir dir{"airssys-rt-process"};
  TreeSpec tree(dir.path, "pids", Containment::ProcessGroup);
  Probe p;
  auto sys = make_system(200ms);
  auto a = spawn_owner(*sys, 0, standard(&tree.op(), &p), &p);
  REQUIRE(a.ok());
  const auto pids = start_tree(*sys, *a, tree, p, true);  // the reactor scans: a process-group tree lives
  const auto starts = start_times(pids);
  const pid_t own_session = ::fork();
  if (own_session == 0) {
    ::setsid();
    ::_exit(7);
  }
  const pid_t plain = ::fork();
  if (plain == 0) ::_exit(8);
  REQUIRE(own_session > 0);
  REQUIRE(plain > 0);
  std::this_thread::sleep_for(300ms);  // six orphan scans
  int status = 0;
  const pid_t got_own = ::waitpid(own_session, &status, 0);
  const int errno_own = errno;
  INFO("waitpid(" << own_session << ") = " << got_own << (got_own < 0 ? ": " : "")
                  << (got_own < 0 ? std::strerror(errno_own) : ""));
  CHECK(got_own == own_session);
  CHECK((got_own == own_session && WIFEXITED(status) && WEXITSTATUS(status) == 7));
  status = 0;
  CHECK(::waitpid(plain, &status, 0) == plain);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 8));
  REQUIRE(send_cmd(*sys, *a, Cmd::Stop));
  CHECK(wait_for([&] { return all_gone(pids, starts); }, 3s));
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
  REQUIRE(sys->shutdown().ok());
}

// ---- the host killed by SIGKILL -----------------------------------------------

namespace {

// The forked host: a System whose actor spawns the tree; once every pid is
// known and the escapee was orphaned to the host, plus 200 ms for the
// reactor's orphan scan (and with `adopt`, once the executor holds the
// escapee), it reports "<label> <pid>" lines, "info-held <n>" and "ready"
// on `report_fd` and waits to be killed. Never returns.
[[noreturn]] void run_host(int report_fd, Containment c, bool adopt, const std::string& dir,
                           const std::string& mark, int test_pid) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != test_pid) ::_exit(2);
  auto say = [report_fd](const std::string& s) { (void)!::write(report_fd, s.data(), s.size()); };
  SystemConfig cfg;
  cfg.workers = 1;
  cfg.process_kill_timeout = 200ms;
  auto* sys = new System(cfg);  // never destroyed: the host dies by SIGKILL
  auto* tree = new TreeSpec(dir, "host-pids", c, mark);
  auto* probe = new Probe;
  auto a = spawn_owner(*sys, 0, standard(&tree->op(), probe), probe);
  // As in start_tree: the reactor has gone idle when the tree comes.
  if (!a || !send_cmd(*sys, *a, Cmd::Nudge) || !wait_for([&] { return probe->exits.size() == 1; }) ||
      !send_cmd(*sys, *a, Cmd::Spawn)) {
    say("error: no actor\n");
    ::_exit(3);
  }
  std::map<std::string, int> pids;
  const int self = ::getpid();
  const bool up = wait_for(
      [&] {
        pids = read_pids(tree->pidfile);
        return pids.size() == kTreeSize && ppid_of(pids["escapee"]) == self;
      },
      20s);
  for (const auto& [label, pid] : pids) say(label + " " + std::to_string(pid) + "\n");
  if (!up) {
    say("error: the tree did not come up (" + std::to_string(probe->spawn_errors.size()) + " spawn errors)\n");
    ::_exit(3);
  }
  std::this_thread::sleep_for(200ms);
  if (adopt) {
    const bool held = send_cmd(*sys, *a, Cmd::Nudge) && wait_for([&] { return probe->exits.size() == 2; }) &&
                      wait_for([&] { return holds_pidfd_for(pids["escapee"]); }, 2s);
    if (!held) {
      say("error: the escapee was not adopted (held " + std::to_string(sys->processes_held()) + ")\n");
      ::_exit(3);
    }
  }
  say("info-held " + std::to_string(sys->processes_held()) + "\n");
  say("ready\n");
  for (;;) ::pause();
}

// Reads `fd` until "ready\n" or "error" arrives, EOF, or `limit` passes.
std::string read_report(int fd, std::chrono::milliseconds limit) {
  std::string out;
  const auto end = Clock::now() + limit;
  while (out.find("ready\n") == std::string::npos && out.find("error") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    if (left <= 0) break;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace

TEST_CASE("when the host is SIGKILLed, no process of its actors' trees outlives it and no cgroup is left") {
  for (const Variant& v : kVariants) {
    const Containment c = v.c;
    INFO("tree: " << v.name);
    Hygiene hygiene;  // also makes this process a child subreaper
    TempDir dir{"airssys-rt-process"};
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    const int test_pid = ::getpid();
    const pid_t host = ::fork();
    if (host == 0) {
      ::close(fds[0]);
      run_host(fds[1], c, v.adopt, dir.path.string(), marker(), test_pid);
    }
    ::close(fds[1]);
    struct HostGuard {
      pid_t pid;
      int fd;
      ~HostGuard() {
        if (pid > 0) {
          ::kill(pid, SIGKILL);
          int st = 0;
          ::waitpid(pid, &st, 0);
        }
        ::close(fd);
      }
    } host_guard{host, fds[0]};
    REQUIRE(host > 0);
    const std::string report = read_report(fds[0], 30s);
    INFO("host said: " << report);
    REQUIRE(report.find("ready\n") != std::string::npos);
    std::map<std::string, int> pids;
    {
      std::istringstream in(report);
      std::string label;
      int pid = 0;
      while (in >> label >> pid)
        if (label.rfind("info-", 0) != 0) pids[label] = pid;
    }
    REQUIRE(pids.size() == kTreeSize);
    // Read while the host, paused, still holds the whole tree.
    const auto starts = start_times(pids);
    INFO("before: " << describe(pids));

    REQUIRE(::kill(host, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(host, &status, 0) == host);
    host_guard.pid = -1;
    CHECK(WIFSIGNALED(status));

    // Within a second every process of the tree is dead: gone, or a zombie
    // re-parented to this process (the subreaper), which reaps it.
    const auto t0 = Clock::now();
    const bool dead = wait_for(
        [&] {
          bool all = true;
          for (const auto& [label, pid] : pids) {
            reap_if_zombie_child(pid);
            if (same_process_exists(pid, starts.at(label))) all = false;
          }
          return all;
        },
        1s);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    INFO("after " << ms << " ms: " << describe(pids));
    CHECK(dead);
    // The guardian, re-parented here, ends by itself once it has killed
    // everything and removed the host's cgroups.
    CHECK(wait_for([&] {
      for (const auto& e : children_of_self()) {
        bool in_tree = false;
        for (const auto& [label, pid] : pids) in_tree |= pid == e.pid;
        if (!in_tree && e.state != 'Z') return false;
      }
      return true;
    }));
    const std::string prefix = "airssys-" + std::to_string(host) + "-";
    CHECK(wait_for([&] { return dirs_with_prefix("/sys/fs/cgroup/unified", prefix).empty(); }, 3s));
    kill_and_reap_children();
    for (const auto& [label, pid] : pids) {
      INFO(label);
      CHECK_FALSE(same_process_exists(pid, starts.at(label)));
    }
  }
}

TEST_CASE("System::shutdown() tears down every live tree of every containment") {
  Hygiene hygiene;
  TempDir dir{"airssys-rt-process"};
  std::vector<std::unique_ptr<TreeSpec>> trees;
  std::vector<std::unique_ptr<Probe>> probes;
  auto sys = make_system(200ms);
  std::map<std::string, int> pids;
  int n = 0;
  for (const Variant& v : kVariants) {
    INFO("tree: " << v.name);
    // snprintf and append, not operator+: GCC 12 reports a false -Wrestrict.
    char tag[16];
    std::snprintf(tag, sizeof tag, "t%d-", n++);
    trees.push_back(std::make_unique<TreeSpec>(dir.path, std::string(tag).append("pids"), v.c));
    probes.push_back(std::make_unique<Probe>());
    auto a = spawn_owner(*sys, n % 2, standard(&trees.back()->op(), probes.back().get()), probes.back().get());
    REQUIRE(a.ok());
    for (const auto& [label, pid] : start_tree(*sys, *a, *trees.back(), *probes.back(), v.adopt))
      pids[std::string(tag).append(label)] = pid;
  }
  REQUIRE(pids.size() == std::size(kVariants) * kTreeSize);
  const auto starts = start_times(pids);
  const auto t0 = Clock::now();
  REQUIRE(sys->shutdown().ok());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  INFO("shutdown took " << ms << " ms; " << describe(pids));
  CHECK(all_gone(pids, starts));
  CHECK(ms < 3000);  // process_kill_timeout is 200 ms
  CHECK(sys->processes_held() == 0);
  sys.reset();
  CHECK(all_gone(pids, starts));
}

TEST_CASE("validate refuses ProcessSet capacities a cell cannot index") {
  // A cell keeps its set's index in 16 bits and a set its count in 8.
  SystemConfig cfg;
  cfg.processes_per_actor = 256;
  auto r = System::validate(cfg);
  REQUIRE_FALSE(r);
  CHECK(r.code() == Errc::InvalidArgument);
  CHECK(std::string(r.error().message()).find("processes_per_actor = 256") != std::string::npos);
  cfg.processes_per_actor = 0;
  CHECK_FALSE(System::validate(cfg));
  cfg.processes_per_actor = 255;
  CHECK(System::validate(cfg));
  cfg.process_owners = 65536;
  r = System::validate(cfg);
  REQUIRE_FALSE(r);
  CHECK(std::string(r.error().message()).find("process_owners = 65536") != std::string::npos);
  cfg.process_owners = 65535;
  CHECK(System::validate(cfg));
}

namespace {

// What a watcher saw when Down came: whether every pid of the tree was
// already gone from the process table, and when.
struct DownSeen {
  std::atomic<int> downs{0};
  std::atomic<bool> tree_gone_at_down{false};
  std::atomic<std::int64_t> at_ns{0};
  std::atomic<bool> monitoring{false};
};
using WatchMsg = std::variant<int, Down>;

Result<ActorRef<Msg>> spawn_owner_with(System& sys, SpawnOptions o, Handle h, Probe* p) {
  return sys.spawn_with<Owner>(o, [h, p] { return Owner(h, ErrorAction::Stop, p); });
}

}  // namespace

TEST_CASE("Down reaches a monitor only once every process of the stopped actor's trees is gone") {
  for (const Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    Hygiene hygiene;
    TempDir dir{"airssys-rt-process"};
    TreeSpec tree(dir.path, "pids", c);
    Probe p;
    auto sys = make_system(5000ms);
    SpawnOptions o = on_worker(0);
    o.kill_timeout = 300ms;  // per actor: the system default (5 s) would be the wait otherwise
    auto a = spawn_owner_with(*sys, o, standard(&tree.op(), &p), &p);
    REQUIRE(a.ok());
    const auto pids = start_tree(*sys, *a, tree, p);
    DownSeen seen;
    std::map<std::string, int> watched = pids;
    const auto starts = start_times(pids);
    auto w = test::spawn_scripted<WatchMsg>(
        *sys, 1, [a = *a, &seen](Context<WatchMsg>& ctx) { seen.monitoring = ctx.monitor(a).ok(); },
        [&seen, watched, starts](Context<WatchMsg>&, WatchMsg& m) {
          if (std::holds_alternative<Down>(m)) {
            seen.tree_gone_at_down = all_gone(watched, starts);
            seen.at_ns = std::chrono::steady_clock::now().time_since_epoch().count();
            seen.downs.fetch_add(1);
          }
        });
    REQUIRE(w);
    REQUIRE(wait_for([&] { return seen.monitoring.load(); }));
    const auto t0 = std::chrono::steady_clock::now().time_since_epoch().count();
    REQUIRE(send_cmd(*sys, *a, Cmd::Crash));
    REQUIRE(wait_for([&] { return seen.downs.load() == 1; }));
    INFO(describe(pids));
    CHECK(seen.tree_gone_at_down.load());
    // Every level ignores TERM: the tree went at the actor's own KILL
    // deadline, not the system's.
    CHECK(seen.at_ns.load() - t0 >= 300'000'000);
    CHECK(sys->process_counters().killed >= kTreeSize);
    REQUIRE(sys->shutdown().ok());
  }
}

TEST_CASE("an actor's trees get its own first signal, and a zero kill_timeout kills them at once") {
  // The leader traps USR1 (ends cleanly) and ignores TERM; so does its
  // child. (Not INT: a background job of a script starts with INT ignored,
  // and a shell cannot trap what it started with ignored.)
  const std::string script =
      "trap 'exit 0' USR1; trap '' TERM; echo \"leader $$\" >> \"$PIDFILE\";"
      " sh -c 'trap \"exit 0\" USR1; trap \"\" TERM; echo \"child $$\" >> \"$PIDFILE\"; while :; do sleep 0.05; done' &"
      " while :; do sleep 0.05; done";
  for (const Containment c : kContainments) {
    for (const bool brutal : {false, true}) {
      INFO("containment " << osl::to_string(c) << (brutal ? ", kill_timeout 0" : ", first signal USR1"));
      Hygiene hygiene;
      TempDir dir{"airssys-rt-process"};
      const std::string pidfile = (dir.path / "pids").string();
      auto spec = std::make_unique<OpSpec>("/bin/sh", std::vector<std::string>{"-c", script},
                                           std::vector<std::string>{"PIDFILE=" + pidfile, marker()}, c);
      Probe p;
      auto sys = make_system(5000ms);
      SpawnOptions o = on_worker(0);
      if (brutal) {
        o.kill_timeout = 0ms;
      } else {
        o.first_signal = SIGUSR1;
        o.kill_timeout = std::chrono::milliseconds::max();  // never KILL: only USR1 can end it
      }
      auto a = spawn_owner_with(*sys, o, standard(&spec->op, &p), &p);
      REQUIRE(a.ok());
      REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
      std::map<std::string, int> pids;
      REQUIRE(wait_for([&] { return (pids = read_pids(pidfile)).size() == 2; }));
      const auto starts = start_times(pids);  // both loop until a signal ends them
      REQUIRE(send_cmd(*sys, *a, Cmd::Stop));
      REQUIRE(wait_for([&] { return all_gone(pids, starts) && sys->processes_held() == 0; }));
      const auto k = sys->process_counters();
      INFO("killed " << k.killed);
      if (brutal) {
        CHECK(k.killed >= 2);  // both by KILL (and their sleeps), none given a TERM to ignore
      } else {
        CHECK(k.killed == 0);  // both ended on USR1
      }
      REQUIRE(sys->shutdown().ok());
    }
  }
}

TEST_CASE("SystemConfig::cgroup_base is copied when the System is built: its string may be gone before the first spawn") {
  Hygiene hygiene;
  PrivateCgroupBase base;
  auto sleeps = sleeper(Containment::Cgroup);
  Probe p;
  std::unique_ptr<System> sys;
  {
    SystemConfig cfg;
    cfg.workers = 1;
    cfg.process_kill_timeout = 200ms;
    std::string temporary = base.path;
    cfg.cgroup_base = temporary.c_str();
    sys = std::make_unique<System>(cfg);
    temporary.assign(temporary.size(), 'x');  // what the pointer now reads, until it is freed
  }
  auto a = spawn_owner(*sys, 0, standard(&sleeps->op, &p), &p);
  REQUIRE(a.ok());
  REQUIRE(send_cmd(*sys, *a, Cmd::Spawn));
  REQUIRE(wait_for([&] { return p.spawned.size() + p.spawn_errors.size() == 1; }));
  REQUIRE(p.spawn_errors.size() == 0);
  const int pid = p.spawned.get()[0].pid;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line) && line.rfind("0::", 0) != 0) {
  }
  // "0::/<base below the mount>/airssys-.../..." (the cgroup v2 line)
  const std::string below = base.path.substr(cgroup2_mount_point().size());
  INFO("cgroup line: " << line << ", base: " << base.path);
  CHECK(line.find("0::" + below + "/") == 0);
  REQUIRE(sys->shutdown().ok());
}

TEST_CASE("a worker whose process events another thread's pass is taking parks until woken, and does not spin on them") {
  // A worker whose actor used the executor parks on the executor's events
  // and runs the pass itself; when another thread's pass holds them, they
  // stay readable until that pass takes them. Here the reactor thread's
  // pass is held (a watcher's call blocks in it) while the event it raised
  // waits for the next pass: the worker, idle meanwhile, must sleep, not
  // wake for that event again and again.
  Hygiene hygiene;
  // What the watchers and the actor touch outlives the System.
  struct Block final : osl::FdWatcher {
    int raise = -1;  // made readable from inside the pass
    std::atomic<int> tid{0};
    std::atomic<bool> entered{false}, release{false};
    void on_readable(int) noexcept override {
      tid = static_cast<int>(::syscall(SYS_gettid));
      const std::uint64_t one = 1;
      (void)!::write(raise, &one, sizeof one);
      entered = true;
      const auto until = Clock::now() + 20s;
      while (!release.load() && Clock::now() < until) std::this_thread::sleep_for(1ms);
    }
  } block;
  struct Count final : osl::FdWatcher {
    std::atomic<int> calls{0};
    void on_readable(int) noexcept override { calls.fetch_add(1); }
  } raised;
  const int a = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const int b = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  block.raise = b;
  std::atomic<int> worker_tid{0};
  std::atomic<bool> busy{false};
  Log<Errc> built;
  struct CloseFds {
    int a, b;
    ~CloseFds() {
      ::close(a);
      ::close(b);
    }
  } close_fds{a, b};
  auto sys = make_system();
  // On every way out, the blocked call ends before the System does.
  struct Release {
    std::atomic<bool>& release;
    ~Release() { release = true; }
  } release_on_exit{block.release};
  // 1: use the executor (the worker gets its park); 2: stay busy until the
  // blocking call has begun, so that the reactor thread runs that pass.
  auto user = spawn_scripted<int>(*sys, 0, nullptr, [&](Context<int>& ctx, int& m) {
    if (m == 1) {
      worker_tid = static_cast<int>(::syscall(SYS_gettid));
      built.push(ctx.system().process_executor().code());
      return;
    }
    busy = true;
    const auto until = Clock::now() + 20s;
    while (!block.entered.load() && Clock::now() < until) std::this_thread::yield();
  });
  REQUIRE(user.ok());
  REQUIRE(sys->send(*user, 1).ok());
  REQUIRE(wait_for([&] { return built.size() == 1; }));
  REQUIRE(built.get()[0] == Errc::Ok);
  auto ex = sys->process_executor();
  REQUIRE(ex.ok());
  REQUIRE((*ex)->watch_readable(a, block).ok());
  REQUIRE((*ex)->watch_readable(b, raised).ok());
  REQUIRE(sys->send(*user, 2).ok());
  REQUIRE(wait_for([&] { return busy.load(); }));
  const std::uint64_t one = 1;
  REQUIRE(::write(a, &one, sizeof one) == sizeof one);
  REQUIRE(wait_for([&] { return block.entered.load(); }));
  CHECK(block.tid.load() != worker_tid.load());  // the reactor thread's pass
  std::this_thread::sleep_for(50ms);  // the worker goes idle
  const long before = task_cpu_ticks(worker_tid.load());
  REQUIRE(before >= 0);
  const auto start = Clock::now();
  std::this_thread::sleep_for(1s);
  const long used = task_cpu_ticks(worker_tid.load()) - before;
  const long elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() * ::sysconf(_SC_CLK_TCK) /
      1000;
  block.release = true;
  // The held event is handled once the pass ends.
  REQUIRE(wait_for([&] { return raised.calls.load() == 1; }));
  INFO("the worker used " << used << " of " << elapsed << " ticks while the pass was held");
  CHECK(used * 10 < elapsed);
  (*ex)->unwatch(a);
  (*ex)->unwatch(b);
  REQUIRE(sys->shutdown().ok());
}
