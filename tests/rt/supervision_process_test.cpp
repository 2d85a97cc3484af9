// Supervision with real process trees, run as root, for both containments
// (a cgroup per tree, and a process group with this process as child
// subreaper): every way a supervised child stops — it crashes, it restarts
// itself, a sibling's restart stops it (OneForAll, RestForOne), its
// supervisor shuts down, a nested supervisor escalates, its supervisor's
// intensity is exceeded, the System shuts down — tears down the trees it
// owns, TERM first and KILL after its ShutdownSpec timeout (BrutalKill:
// KILL at once), and a replacement starts only once the old tree is gone
// from the process table. Then: a restarted server binds the port its
// predecessor's tree held, a teardown that cannot finish is reported, and a
// worker is never blocked while a tree waits out its timeout.
//
// The tree of each incarnation of a worker: the process it spawns ("child",
// a shell that logs SIGTERM and ignores it) and that shell's child, which
// leaves the session with setsid ("grandchild", ignoring SIGTERM the same
// way). Every process carries this test's environment marker and its
// incarnation's marker, so a scan of /proc finds it wherever it went. A
// guard declared first in each test kills and reaps whatever is left on
// every exit path (PID 1 here does not reap orphans) and checks that it had
// nothing to clean: no process, no child, no descriptor, no cgroup.

#include <airssys/rt/monitoring.hpp>
#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/process_tree.hpp"
#include "support/rt_test.hpp"
#include "support/tcp_port.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_for.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr Containment kContainments[] = {Containment::Cgroup, Containment::ProcessGroup};

// Every process a test starts carries this in its environment.
const std::string& marker() {
  static const std::string m = "AIRSSYS_SUPERVISION_PROCESS_TEST=" + std::to_string(::getpid());
  return m;
}
// And this one, naming the incarnation of the worker that spawned it.
std::string incarnation_marker(int n) {
  return "AIRSSYS_SUPERVISION_TREE=" + std::to_string(::getpid()) + "." + std::to_string(n);
}

// The tree (see the file comment). A shell that logs SIGTERM keeps running
// after it; its `sleep` was started with SIGTERM ignored (an ignored signal
// stays ignored across exec), so the shell's `wait` returns only to the
// trap, and only SIGKILL ends the tree.
const char* const kTreeScript =
    "trap '' TERM; sleep 1000 & s=$!\n"
    "trap 'echo \"term-$1 $$\" >> \"$PIDFILE\"' TERM\n"
    "echo \"sleep-$1 $s\" >> \"$PIDFILE\"\n"
    "echo \"$1 $$\" >> \"$PIDFILE\"\n"
    "if [ \"$1\" = child ]; then setsid sh -c \"$TREE_SCRIPT\" tree grandchild & fi\n"
    "while :; do wait $s; done\n";

// ---- what the executor reports --------------------------------------------

// One ProcessEvent, copied out of the middleware call.
struct Seen {
  osl::ProcessEvent::Kind kind = osl::ProcessEvent::Kind::Spawn;
  int pid = -1;
  int signal = 0;
  bool has_report = false;
  osl::TeardownReport report;
  std::string error;  // empty: no error
  Clock::time_point at;
};

// Records every process event of the System's executor.
class Events final : public osl::Middleware {
 public:
  void observe(const osl::ProcessEvent& e) noexcept override {
    Seen s;
    s.kind = e.kind;
    s.pid = e.pid;
    s.signal = e.signal;
    if (e.teardown != nullptr) {
      s.has_report = true;
      s.report = *e.teardown;
    }
    if (e.error != nullptr) s.error = e.error->message();
    s.at = Clock::now();
    log_.push(s);
  }
  // The teardown events (Teardown, or Cleanup at the executor's end) of
  // the tree led by `pid`.
  std::vector<Seen> teardowns_of(int pid) const {
    std::vector<Seen> out;
    for (const auto& s : log_.get())
      if (s.pid == pid && (s.kind == osl::ProcessEvent::Kind::Teardown || s.kind == osl::ProcessEvent::Kind::Cleanup))
        out.push_back(s);
    return out;
  }

 private:
  Log<Seen> log_;
};

// ---- the supervised worker that owns a tree --------------------------------

enum class Cmd : std::uint8_t { Crash };

// What the test shares with every incarnation of its workers.
struct Shared {
  Containment containment = Containment::Cgroup;
  fs::path dir;
  // Incarnations of the tree-owning worker, counted in on_start.
  std::atomic<int> incarnations{0};
  // Per incarnation n (index n - 1), what on_start saw of the trees of the
  // incarnations before it, then whether its own spawn worked.
  struct Start {
    int n = 0;
    std::vector<int> old_in_table;   // recorded pids of older trees still theirs in /proc (zombies too)
    std::vector<int> old_by_marker;  // live processes carrying an older incarnation's marker
    std::string spawn_error;
  };
  Log<Start> starts;
  // The current incarnation of each named actor (for Crash), packed.
  std::atomic<std::uint64_t> tree_owner{0};
  std::atomic<std::uint64_t> crasher{0};
  bool restart_in_place = false;  // the worker's on_error answers Restart

  std::string pidfile(int n) const { return (dir / ("tree" + std::to_string(n))).string(); }

  // The start time of each process of tree n, by pid, as wait_tree saw it
  // running (0: not seen): a number another process got since is not taken
  // for one of the tree's.
  void record_starts(int n, const std::map<std::string, int>& pids) {
    std::lock_guard<std::mutex> lock(starts_mu_);
    for (const auto& [label, pid] : pids) tree_starts_[n][pid] = start_time_of(pid);
  }
  unsigned long long start_of(int n, int pid) const {
    std::lock_guard<std::mutex> lock(starts_mu_);
    const auto tree = tree_starts_.find(n);
    if (tree == tree_starts_.end()) return 0;
    const auto start = tree->second.find(pid);
    return start == tree->second.end() ? 0 : start->second;
  }

 private:
  mutable std::mutex starts_mu_;
  std::map<int, std::map<int, unsigned long long>> tree_starts_;
};

std::uint64_t pack(ActorId id) { return (std::uint64_t{id.slot} << 32) | id.gen; }
ActorRef<Cmd> unpack(std::uint64_t v) {
  return ActorRef<Cmd>{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
}

std::unique_ptr<OpSpec> tree_op(const Shared& s, int n) {
  return std::make_unique<OpSpec>(
      "/bin/sh", std::vector<std::string>{"-c", kTreeScript, "tree", "child"},
      std::vector<std::string>{"PIDFILE=" + s.pidfile(n), std::string("TREE_SCRIPT=") + kTreeScript, marker(),
                               incarnation_marker(n)},
      s.containment);
}

// Records, first thing in on_start, what /proc shows of every older
// incarnation's tree; then spawns its own.
struct TreeOwner : Actor<Cmd> {
  Shared* shared;
  explicit TreeOwner(Shared* s) : shared(s) {}
  void on_start(Context<Cmd>& ctx) override {
    // Before the spawn: once the tree is seen running, this is the current one.
    shared->tree_owner.store(pack(ctx.self().id));
    const int n = shared->incarnations.fetch_add(1) + 1;
    Shared::Start st;
    st.n = n;
    for (int k = 1; k < n; ++k) {
      for (const auto& [label, pid] : read_pids(shared->pidfile(k)))
        if (same_process_exists(pid, shared->start_of(k, pid))) st.old_in_table.push_back(pid);
      for (int pid : processes_with_env(incarnation_marker(k))) st.old_by_marker.push_back(pid);
    }
    const auto op = tree_op(*shared, n);
    if (auto r = ctx.spawn_process(op->op); !r) st.spawn_error = r.error().message();
    shared->starts.push(st);
  }
  void on_message(Context<Cmd>& ctx, Cmd& c) override {
    if (c == Cmd::Crash) ctx.fail(Error::make(Errc::Failed, "tree owner told to crash"));
  }
  ErrorAction on_error(Context<Cmd>&, const Error&) override {
    return shared->restart_in_place ? ErrorAction::Restart : ErrorAction::Stop;
  }
};

// A sibling that owns nothing and crashes when told.
struct Crasher : Actor<Cmd> {
  Shared* shared;
  explicit Crasher(Shared* s) : shared(s) {}
  void on_start(Context<Cmd>& ctx) override { shared->crasher.store(pack(ctx.self().id)); }
  void on_message(Context<Cmd>& ctx, Cmd& c) override {
    if (c == Cmd::Crash) ctx.fail(Error::make(Errc::Failed, "crasher told to crash"));
  }
};

ChildSpec tree_owner_spec(Shared& s, ShutdownSpec shutdown) {
  return ChildSpec::worker_with<TreeOwner>("tree", [p = &s] { return TreeOwner(p); })
      .restart(RestartType::Permanent)
      .shutdown(shutdown);
}
ChildSpec crasher_spec(Shared& s) {
  return ChildSpec::worker_with<Crasher>("crasher", [p = &s] { return Crasher(p); })
      .restart(RestartType::Permanent)
      .shutdown(ShutdownSpec::brutal_kill());
}

std::unique_ptr<System> make_system(Events& events, std::uint32_t workers = 2, osl::Middleware* also = nullptr) {
  SystemConfig cfg;
  cfg.workers = workers;
  // Never the teardown timeout of these tests: each child has its own
  // (ShutdownSpec), and a test that fell back to this would see it.
  cfg.process_kill_timeout = 20s;
  cfg.process_middleware[0] = &events;
  cfg.process_middleware[1] = also;
  return std::make_unique<System>(cfg);
}

// The alerts a Monitoring raised for the executor's events (its
// MonitoringMiddleware in the chain): kind and pid of each.
struct Alerts {
  Log<std::pair<MonitorEvent::Kind, int>> got;
  static void hook(const MonitorEvent& e, void* self) noexcept {
    static_cast<Alerts*>(self)->got.push({e.kind, e.pid});
  }
  bool teardown_failed(int pid) const {
    for (const auto& [kind, p] : got.get())
      if (kind == MonitorEvent::Kind::TeardownFailed && p == pid) return true;
    return false;
  }
};
struct Watch {
  Alerts alerts;
  Monitoring monitoring{MonitoringConfig{64, 0, &Alerts::hook, &alerts}};
  MonitoringMiddleware middleware{monitoring};
};

// Waits until incarnation `n`'s tree is up: both shells have logged their
// pids and the grandchild has left the session; records their start times.
// Returns the pids.
std::map<std::string, int> wait_tree(Shared& s, int n) {
  std::map<std::string, int> pids;
  const bool up = wait_for([&] {
    pids = read_pids(s.pidfile(n));
    return pids.count("child") == 1 && pids.count("grandchild") == 1 &&
           session_of(pids["grandchild"]) == pids["grandchild"];
  });
  const auto starts = s.starts.get();
  INFO("tree " << n << ": " << describe(pids));
  if (!starts.empty()) INFO("spawn error: " << starts.back().spawn_error);
  REQUIRE(up);
  s.record_starts(n, pids);
  return pids;
}

// How the first tree must have been torn down: its child logged the TERM
// and outlived it until the KILL, which came no earlier than `timeout`
// after the stop began at `t0`; or, BrutalKill, nobody saw a TERM.
void check_teardown(const Events& events, const Shared& s, const std::map<std::string, int>& pids,
                    ShutdownSpec shutdown, Clock::time_point t0) {
  const auto seen = events.teardowns_of(pids.at("child"));
  REQUIRE(seen.size() == 1);
  const Seen& t = seen[0];
  INFO("teardown of tree 1: killed " << t.report.killed << ", reaped " << t.report.reaped << ", orphans "
                                     << t.report.orphans_adopted << ", error '" << t.error << "'");
  REQUIRE(t.has_report);
  CHECK(t.error.empty());
  CHECK_FALSE(t.report.gave_up);
  CHECK_FALSE(t.report.exited_on_term);  // nothing ended on TERM: the KILL stage ran
  CHECK(t.report.killed >= 2);           // both shells (and their sleeps) died of the KILL
  const auto logged = read_pids(s.pidfile(1));
  if (shutdown.kind == ShutdownSpec::Kind::BrutalKill) {
    CHECK(logged.count("term-child") == 0);
    CHECK(logged.count("term-grandchild") == 0);
  } else {
    // The child is in the tree's group and cgroup: the TERM reached it, and
    // it lived on until the KILL.
    CHECK(logged.count("term-child") == 1);
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(t.at - t0);
    INFO("teardown reported " << waited.count() << " ms after the stop began");
    CHECK(waited >= shutdown.timeout);
  }
}

// The replacement's on_start (incarnation 2) found nothing of tree 1.
void check_replacement_saw_nothing(const Shared& s) {
  const auto starts = s.starts.get();
  REQUIRE(starts.size() >= 2);
  const Shared::Start& st = starts[1];
  CHECK(st.n == 2);
  CHECK(st.spawn_error.empty());
  std::ostringstream left;
  for (int pid : st.old_in_table) left << pid << " ";
  for (int pid : st.old_by_marker) left << "marked:" << pid << " ";
  INFO("processes of tree 1 the replacement's on_start saw: " << left.str());
  CHECK(st.old_in_table.empty());
  CHECK(st.old_by_marker.empty());
}

enum class Path {
  Crash,            // the child fails; OneForOne restarts it
  RestartInPlace,   // the child fails and restarts itself (on_error: Restart)
  OneForAll,        // a sibling fails; OneForAll stops and restarts the child
  RestForOne,       // an earlier sibling fails; RestForOne stops and restarts the child
  SupervisorStop,   // SupervisorRef::stop
  Escalation,       // the child's supervisor gives up; its parent restarts it
  Intensity,        // the child's (top) supervisor gives up for good
  SystemShutdown,   // System::shutdown
};

const char* name_of(Path p) {
  switch (p) {
    case Path::Crash: return "crash";
    case Path::RestartInPlace: return "restart in place";
    case Path::OneForAll: return "sibling's restart (OneForAll)";
    case Path::RestForOne: return "sibling's restart (RestForOne)";
    case Path::SupervisorStop: return "supervisor shutdown";
    case Path::Escalation: return "escalation";
    case Path::Intensity: return "intensity exceeded";
    case Path::SystemShutdown: return "System shutdown";
  }
  return "?";
}

bool has_replacement(Path p) {
  return p != Path::SupervisorStop && p != Path::Intensity && p != Path::SystemShutdown;
}

// Runs one stop path for one containment and one ShutdownSpec.
void stop_path(Path path, Containment c, ShutdownSpec shutdown) {
  INFO("stop path: " << name_of(path) << ", containment " << osl::to_string(c) << ", shutdown "
                     << (shutdown.kind == ShutdownSpec::Kind::BrutalKill ? "BrutalKill" : "Timeout"));
  NothingLeftCensus guard(marker());
  TempDir dir{"airssys-supervision"};
  Shared shared;
  shared.containment = c;
  shared.dir = dir.path;
  shared.restart_in_place = path == Path::RestartInPlace;
  Events events;

  // The specs outlive the System that runs their supervisors.
  SupervisorFlags flags;
  flags.intensity = 5;
  if (path == Path::OneForAll) flags.strategy = Strategy::OneForAll;
  if (path == Path::RestForOne) flags.strategy = Strategy::RestForOne;
  if (path == Path::Intensity) flags.intensity = 0;  // the first restart is one too many
  SupervisorSpec top(flags, 2);
  // Escalation: top (OneForOne) -> mid (intensity 0) -> tree owner, crasher.
  SupervisorFlags mid_flags;
  mid_flags.intensity = 0;
  SupervisorSpec mid(mid_flags, 2);
  auto sys = make_system(events);
  if (path == Path::Escalation) {
    REQUIRE(mid.add(tree_owner_spec(shared, shutdown)).ok());
    REQUIRE(mid.add(crasher_spec(shared)).ok());
    REQUIRE(top.add(ChildSpec::supervisor("mid", mid)).ok());
  } else if (path == Path::RestForOne) {
    REQUIRE(top.add(crasher_spec(shared)).ok());  // before the tree owner: its restart stops the owner
    REQUIRE(top.add(tree_owner_spec(shared, shutdown)).ok());
  } else {
    REQUIRE(top.add(tree_owner_spec(shared, shutdown)).ok());
    if (path == Path::OneForAll || path == Path::Intensity) REQUIRE(top.add(crasher_spec(shared)).ok());
  }
  auto sup = start_supervisor(*sys, top);
  if (!sup) FAIL("start_supervisor: " << sup.error().message());

  const auto pids = wait_tree(shared, 1);
  const auto starts = start_times(pids);
  guard.pids.push_back(pids.at("child"));
  guard.pids.push_back(pids.at("grandchild"));

  const auto t0 = Clock::now();
  switch (path) {
    case Path::Crash:
    case Path::RestartInPlace:
      REQUIRE(sys->send(unpack(shared.tree_owner.load()), Cmd::Crash).ok());
      break;
    case Path::OneForAll:
    case Path::RestForOne:
    case Path::Escalation:
    case Path::Intensity:
      // A crasher added after the tree owner starts once the owner has.
      REQUIRE(wait_for([&] { return shared.crasher.load() != 0; }));
      REQUIRE(sys->send(unpack(shared.crasher.load()), Cmd::Crash).ok());
      break;
    case Path::SupervisorStop: {
      auto r = sup.value().stop(30s);
      INFO((r ? std::string("ok") : r.error().message()));
      REQUIRE(r.ok());
      // Stopped: every tree of its children is gone already.
      INFO("after stop: " << describe(pids));
      CHECK(all_gone(pids, starts));
      CHECK(processes_with_env(incarnation_marker(1)).empty());
      break;
    }
    case Path::SystemShutdown: {
      REQUIRE(sys->shutdown(30s).ok());
      INFO("after shutdown: " << describe(pids));
      CHECK(all_gone(pids, starts));
      CHECK(processes_with_env(incarnation_marker(1)).empty());
      break;
    }
  }

  if (has_replacement(path)) {
    const bool replaced = wait_for([&] { return shared.starts.size() >= 2; }, 30s);
    INFO("tree 1 now: " << describe(pids));
    REQUIRE(replaced);
    check_replacement_saw_nothing(shared);
    (void)wait_tree(shared, 2);
  } else if (path == Path::Intensity) {
    // The supervisor stops its children, then itself: once it is gone, so
    // are their trees.
    REQUIRE(wait_for([&] { return !sys->alive(sup.value().ref); }, 30s));
    INFO("after the supervisor gave up: " << describe(pids));
    CHECK(all_gone(pids, starts));
    CHECK(processes_with_env(incarnation_marker(1)).empty());
    CHECK(shared.starts.size() == 1);  // nothing was restarted
  }
  check_teardown(events, shared, pids, shutdown, t0);

  if (path != Path::SystemShutdown) {
    if (sys->alive(sup.value().ref)) REQUIRE(sup.value().stop(30s).ok());
    REQUIRE(sys->shutdown(30s).ok());
  }
  CHECK(sys->processes_held() == 0);
  const auto k = sys->process_counters();
  CHECK(k.spawned == k.cleaned);
  sys.reset();
}

void every_variant(Path path) {
  for (Containment c : kContainments) {
    stop_path(path, c, ShutdownSpec::after(300ms));
    stop_path(path, c, ShutdownSpec::brutal_kill());
  }
}

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE("a crashed child's whole tree is gone, TERM then KILL after its timeout, before its replacement starts") {
  every_variant(Path::Crash);
}

// An in-place restart (on_error -> Restart) rebuilds the actor only once
// the old instance's trees are gone, as a stopped actor's Down waits for
// them.
TEST_CASE("a child that restarts itself in place starts again only after its old tree is gone",
          "[restart-in-place]") {
  every_variant(Path::RestartInPlace);
}

TEST_CASE("a OneForAll sibling's restart tears down the child's tree before the child starts again") {
  every_variant(Path::OneForAll);
}

TEST_CASE("a RestForOne restart of an earlier sibling tears down the child's tree before the child starts again") {
  every_variant(Path::RestForOne);
}

TEST_CASE("when SupervisorRef::stop returns, every tree of its children is gone") {
  every_variant(Path::SupervisorStop);
}

TEST_CASE("a nested supervisor that escalates tears down its children's trees before its parent restarts it") {
  every_variant(Path::Escalation);
}

TEST_CASE("a supervisor whose intensity is exceeded tears down every child's tree before it stops") {
  every_variant(Path::Intensity);
}

TEST_CASE("when System::shutdown returns, every supervised child's tree is gone") {
  every_variant(Path::SystemShutdown);
}

// ---------------------------------------------------------------------------

namespace {

// Incarnation 1 spawns a tree (airssys-port-holder) that listens on the
// port and ignores TERM, and whose setsid escapee holds the socket too.
// Incarnation 2 binds the port first thing in on_start and records the
// result (the descriptor is closed again at once).
struct PortOwner : Actor<Cmd> {
  Shared* shared;
  int port;
  Log<int>* binds;  // what incarnation 2's bind returned: >= 0 or -errno
  PortOwner(Shared* s, int p, Log<int>* b) : shared(s), port(p), binds(b) {}
  void on_start(Context<Cmd>& ctx) override {
    const int n = shared->incarnations.fetch_add(1) + 1;
    shared->tree_owner.store(pack(ctx.self().id));
    Shared::Start st;
    st.n = n;
    if (n == 1) {
      OpSpec op(AIRSSYS_PORT_HOLDER, {std::to_string(port), shared->pidfile(1)}, {marker(), incarnation_marker(1)},
                shared->containment);
      if (auto r = ctx.spawn_process(op.op); !r) st.spawn_error = r.error().message();
    } else {
      const int fd = listen_tcp(port);
      binds->push(fd);
      if (fd >= 0) ::close(fd);
    }
    shared->starts.push(st);
  }
  void on_message(Context<Cmd>& ctx, Cmd& c) override {
    if (c == Cmd::Crash) ctx.fail(Error::make(Errc::Failed, "port owner told to crash"));
  }
};

}  // namespace

TEST_CASE("a restarted child binds at once the port its predecessor's TERM-ignoring tree listened on") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    NothingLeftCensus guard(marker());
    TempDir dir{"airssys-supervision"};
    Shared shared;
    shared.containment = c;
    shared.dir = dir.path;
    Log<int> binds;
    const int port = free_tcp_port();
    REQUIRE(port > 0);
    Events events;
    SupervisorSpec spec(SupervisorFlags{}, 1);
    auto sys = make_system(events);
    REQUIRE(spec.add(ChildSpec::worker_with<PortOwner>("server", [&] { return PortOwner(&shared, port, &binds); })
                         .shutdown(ShutdownSpec::after(200ms)))
                .ok());
    auto sup = start_supervisor(*sys, spec);
    if (!sup) FAIL("start_supervisor: " << sup.error().message());

    std::map<std::string, int> pids;
    const bool up = wait_for([&] {
      pids = read_pids(shared.pidfile(1));
      return pids.count("error") == 1 || (pids.count("holder") == 1 && pids.count("escapee") == 1);
    });
    INFO("tree: " << describe(pids));
    REQUIRE(up);
    REQUIRE(pids.count("error") == 0);
    const auto starts = start_times(pids);
    guard.pids.push_back(pids.at("holder"));
    guard.pids.push_back(pids.at("escapee"));
    // The premise: the old tree holds the port (a bind here is refused).
    CHECK(listen_tcp(port) == -EADDRINUSE);

    REQUIRE(sys->send(unpack(shared.tree_owner.load()), Cmd::Crash).ok());
    REQUIRE(wait_for([&] { return binds.size() == 1; }, 30s));
    const int bound = binds.get()[0];
    INFO("the replacement's bind of 127.0.0.1:" << port << " returned " << bound
                                                 << (bound == -EADDRINUSE ? " (EADDRINUSE)" : ""));
    CHECK(bound >= 0);
    CHECK(all_gone(pids, starts));
    const auto seen = events.teardowns_of(pids.at("holder"));
    REQUIRE(seen.size() == 1);
    CHECK_FALSE(seen[0].report.exited_on_term);  // both ignored TERM: KILLed after the timeout

    REQUIRE(sup.value().stop(30s).ok());
    REQUIRE(sys->shutdown(30s).ok());
    sys.reset();
  }
}

// ---------------------------------------------------------------------------

namespace {

// A v1 freezer cgroup of the test's own. A process frozen there does not
// die of SIGKILL until it is thawed (the v1 freezer keeps a frozen task in
// the refrigerator whatever signal is pending): a process that will not
// die, made on purpose, as root.
class FrozenProcess {
 public:
  explicit FrozenProcess(int pid) : pid_(pid) {
    path_ = "/sys/fs/cgroup/freezer/airssys-supervision-" + std::to_string(::getpid());
    std::error_code ec;
    fs::create_directory(path_, ec);
    REQUIRE(fs::is_directory(path_));
    write("cgroup.procs", std::to_string(pid));
    write("freezer.state", "FROZEN");
    REQUIRE(wait_for([&] { return read("freezer.state") == "FROZEN"; }));
  }
  FrozenProcess(const FrozenProcess&) = delete;
  FrozenProcess& operator=(const FrozenProcess&) = delete;
  ~FrozenProcess() { thaw(); }
  void thaw() {
    if (path_.empty()) return;
    write("freezer.state", "THAWED");
    // The process dies of its pending KILL once thawed; then the cgroup is
    // empty and can go.
    (void)wait_for([&] { return process_ended(pid_); });
    (void)wait_for([&] { return ::rmdir(path_.c_str()) == 0; });
    path_.clear();
  }

 private:
  void write(const char* file, const std::string& value) {
    std::ofstream out(path_ + "/" + file);
    out << value;
  }
  std::string read(const char* file) {
    std::ifstream in(path_ + "/" + file);
    std::string v;
    in >> v;
    return v;
  }
  int pid_;
  std::string path_;
};

}  // namespace

TEST_CASE("a process that SIGKILL cannot end makes its teardown give up with an error event, held until it ends") {
  REQUIRE(fs::is_directory("/sys/fs/cgroup/freezer"));  // the v1 freezer this test freezes a process with
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    NothingLeftCensus guard(marker());
    TempDir dir{"airssys-supervision"};
    Shared shared;
    shared.containment = c;
    shared.dir = dir.path;
    Events events;
    Watch watch;
    SupervisorFlags flags;
    flags.intensity = 5;
    SupervisorSpec spec(flags, 1);
    auto sys = make_system(events, 2, &watch.middleware);
    REQUIRE(spec.add(tree_owner_spec(shared, ShutdownSpec::after(100ms))).ok());
    auto sup = start_supervisor(*sys, spec);
    if (!sup) FAIL("start_supervisor: " << sup.error().message());
    const auto pids = wait_tree(shared, 1);
    // The grandchild's sleep: a leaf, so nothing of its own is left when it ends.
    const int stuck = pids.at("sleep-grandchild");
    const unsigned long long stuck_start = start_time_of(stuck);
    guard.pids.push_back(stuck);
    {
      FrozenProcess frozen(stuck);
      REQUIRE(sys->send(unpack(shared.tree_owner.load()), Cmd::Crash).ok());
      // The executor gives up 5 s after the KILL and says so; the
      // replacement starts then, and spawns: neither the reactor nor a
      // worker is held up by the process that will not die.
      REQUIRE(wait_for([&] { return shared.starts.size() >= 2; }, 60s));
      (void)wait_tree(shared, 2);
      const auto seen = events.teardowns_of(pids.at("child"));
      REQUIRE(seen.size() == 1);
      INFO("error: '" << seen[0].error << "'");
      CHECK(seen[0].report.gave_up);
      CHECK(seen[0].error.find("teardown of tree " + std::to_string(pids.at("child"))) != std::string::npos);
      CHECK(seen[0].error.find("first " + std::to_string(stuck)) != std::string::npos);
      CHECK(same_process_exists(stuck, stuck_start));  // still there: the report is not a lie
      CHECK(holds_pidfd_for(stuck));  // and still held
      CHECK(watch.alerts.teardown_failed(pids.at("child")));  // and a human is told
      frozen.thaw();
    }
    // Thawed, it dies of its pending KILL, and the executor that still held
    // it reaps it: nothing for the guard to clean.
    CHECK(wait_for([&] { return !same_process_exists(stuck, stuck_start); }));
    REQUIRE(sup.value().stop(30s).ok());
    REQUIRE(sys->shutdown(30s).ok());
    CHECK(sys->processes_held() == 0);
    sys.reset();
  }
}

TEST_CASE("a tree whose cgroup cannot be removed is reported by a Teardown event naming the cgroup") {
  NothingLeftCensus guard(marker());
  TempDir dir{"airssys-supervision"};
  Shared shared;
  shared.containment = Containment::Cgroup;
  shared.dir = dir.path;
  Events events;
  Watch watch;
  SupervisorFlags flags;
  flags.intensity = 5;
  SupervisorSpec spec(flags, 1);
  auto sys = make_system(events, 2, &watch.middleware);
  REQUIRE(spec.add(tree_owner_spec(shared, ShutdownSpec::brutal_kill())).ok());
  auto sup = start_supervisor(*sys, spec);
  if (!sup) FAIL("start_supervisor: " << sup.error().message());
  const auto pids = wait_tree(shared, 1);
  guard.pids.push_back(pids.at("child"));
  guard.pids.push_back(pids.at("grandchild"));
  // A directory in the tree's cgroup with a file system mounted on it:
  // rmdir refuses a mount point, and so the cgroup above it.
  const std::string cgroup = cgroup2_mount_point() + cgroup2_of(pids.at("child"));
  const std::string held = cgroup + "/held";
  REQUIRE(::mkdir(held.c_str(), 0755) == 0);
  REQUIRE(::mount("airssys-test", held.c_str(), "tmpfs", 0, nullptr) == 0);
  struct Unmount {
    std::string path;
    ~Unmount() {
      ::umount2(path.c_str(), MNT_DETACH);
      ::rmdir(path.c_str());
    }
  } unmount{held};

  REQUIRE(sys->send(unpack(shared.tree_owner.load()), Cmd::Crash).ok());
  REQUIRE(wait_for([&] { return shared.starts.size() >= 2; }, 30s));
  check_replacement_saw_nothing(shared);  // every process went; only the directory stayed
  const auto seen = events.teardowns_of(pids.at("child"));
  REQUIRE(seen.size() == 1);
  INFO("error: '" << seen[0].error << "'");
  CHECK_FALSE(seen[0].report.gave_up);
  CHECK(seen[0].error.find("could not be removed") != std::string::npos);
  CHECK(seen[0].error.find(cgroup2_of(pids.at("child"))) != std::string::npos);
  CHECK(fs::is_directory(held));
  CHECK(watch.alerts.teardown_failed(pids.at("child")));
  // Released: the System's end removes what is left of its cgroups.
  ::umount2(held.c_str(), MNT_DETACH);
  REQUIRE(sup.value().stop(30s).ok());
  REQUIRE(sys->shutdown(30s).ok());
  sys.reset();
  CHECK_FALSE(fs::exists(cgroup));
}

// ---------------------------------------------------------------------------

namespace {

// Answers each ask with 1.
struct Echo : Actor<ReplyTo<int>> {
  void on_message(Context<ReplyTo<int>>& ctx, ReplyTo<int>& r) override { (void)ctx.reply(r, 1); }
};

}  // namespace

TEST_CASE("while a TERM-ignoring tree waits out its timeout, another actor on the only worker keeps answering") {
  for (Containment c : kContainments) {
    INFO("containment " << osl::to_string(c));
    NothingLeftCensus guard(marker());
    TempDir dir{"airssys-supervision"};
    Shared shared;
    shared.containment = c;
    shared.dir = dir.path;
    Events events;
    SupervisorSpec spec(SupervisorFlags{}, 1);
    auto sys = make_system(events, 1);
    // Long beside the 50 answers below, which all come while it runs.
    REQUIRE(spec.add(tree_owner_spec(shared, ShutdownSpec::after(3s))).ok());
    auto sup = start_supervisor(*sys, spec);
    if (!sup) FAIL("start_supervisor: " << sup.error().message());
    auto echo = sys->spawn_with<Echo>(on_worker(0), [] { return Echo{}; });
    REQUIRE(echo.ok());
    const auto pids = wait_tree(shared, 1);
    guard.pids.push_back(pids.at("child"));
    guard.pids.push_back(pids.at("grandchild"));

    REQUIRE(sys->send(unpack(shared.tree_owner.load()), Cmd::Crash).ok());
    // The teardown began: the child logged its TERM.
    REQUIRE(wait_for([&] { return read_pids(shared.pidfile(1)).count("term-child") == 1; }));
    int answered = 0;
    for (int i = 0; i < 50; ++i) {
      auto r = sys->ask<int>(*echo, [](ReplyTo<int> to) { return to; }, 10s);
      if (r && r.value() == 1) ++answered;
    }
    CHECK(answered == 50);
    // All of them while the old tree still ran, and before its replacement.
    CHECK_FALSE(process_ended(pids.at("child")));
    CHECK(shared.starts.size() == 1);
    // Then the KILL, and the replacement, which found nothing of the old tree.
    REQUIRE(wait_for([&] { return shared.starts.size() >= 2; }, 30s));
    check_replacement_saw_nothing(shared);
    REQUIRE(sup.value().stop(30s).ok());
    REQUIRE(sys->shutdown(30s).ok());
    sys.reset();
  }
}
