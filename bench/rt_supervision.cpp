// Supervision: what a restart costs, with and without a process to clean up.
//
//   rt/supervisor/restart_one_for_one  a child under a OneForOne supervisor
//       crashes (Context::fail), the supervisor gets its Down and builds a
//       fresh child from the spec's factory, and the new child handles one
//       message (a Ping it sends itself in on_start). One iteration is one
//       crash + restart + message; the children chain the iterations of a
//       batch themselves (each Ping crashes the child until the batch is
//       done), so the benchmark thread's wake-up is paid once per batch, as
//       in caf/monitor_respawn. allocs_per_op must be 0.
//   rt/supervisor/restart_with_process  the same, with a child that owns a
//       running managed process (`sleep`, process-group containment,
//       BrutalKill): each iteration includes the teardown of the old
//       process (KILL, reaped, confirmed gone before the Down) and the
//       spawn of a new one in the new child's on_start.
//   rt/supervisor/restart_with_process/cgroup  the same with the process in
//       a cgroup of its own (what Containment::Auto picks as root).
//   limit/respawn_process  the floor for that with no library: kill, reap
//       and posix_spawn a new `sleep` (in a new process group, as ours),
//       with the same environment as ours: the inherited one plus one
//       entry the size of the tree marker the library adds.

#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include "bench_support.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace {

using namespace airssys;
using namespace std::chrono_literals;
using airssys::bench::AllocsPerOp;
using airssys::bench::BatchDone;

// Ping: handled by each new child (sent by itself). Kick: the benchmark
// thread starts a batch by crashing the current child.
enum class Cmd : std::uint8_t { Ping, Kick };

// What the benchmark thread and every incarnation of the child share.
struct Chain {
  BatchDone done;
  // Pings handled in all, and the count at which the running batch ends.
  // Written by the child only (one incarnation at a time, the next built
  // after the previous one's Down), read by the benchmark thread after
  // done.signal(): relaxed loads and stores, ordered by that release/acquire.
  std::uint64_t handled = 0;
  std::uint64_t target = 0;
  // The running child, for the benchmark thread's Kick: published in
  // on_start (release), read after done.wait_past (acquire).
  std::atomic<std::uint64_t> current{0};
  std::atomic<std::uint64_t> spawn_failures{0};
  const SpawnProcessOperation* process = nullptr;  // null: no process to own
};

std::uint64_t pack(ActorId id) noexcept { return (std::uint64_t{id.slot} << 32) | id.gen; }
ActorRef<Cmd> unpack(std::uint64_t v) noexcept {
  return ActorRef<Cmd>{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
}

struct Child : Actor<Cmd> {
  Chain* chain;
  explicit Child(Chain* c) : chain(c) {}
  void on_start(Context<Cmd>& ctx) override {
    if (chain->process != nullptr && !ctx.spawn_process(*chain->process))
      chain->spawn_failures.fetch_add(1, std::memory_order_relaxed);
    chain->current.store(pack(ctx.self().id), std::memory_order_release);
    (void)ctx.send(ctx.self(), Cmd::Ping);
  }
  void on_message(Context<Cmd>& ctx, Cmd& cmd) override {
    if (cmd == Cmd::Ping && ++chain->handled == chain->target) {
      chain->done.signal();  // the batch is over: stay up for the next Kick
      return;
    }
    // A bare error code, as CAF's quit(sec::runtime_error): no message to format.
    ctx.fail(Error(Errc::Failed));
  }
};

// Runs batches of `batch` crash + restart + message cycles under a
// OneForOne supervisor whose only child is a Child on `chain`.
void restart_chain(benchmark::State& state, Chain& chain, int batch, ShutdownSpec shutdown) {
  SystemConfig cfg;
  System sys(cfg);
  SupervisorFlags flags;
  flags.strategy = Strategy::OneForOne;
  // Every restart is its own window: more than one restart within 1 ns
  // cannot happen, so the supervisor never gives up (the intensity check
  // still runs on every restart).
  flags.intensity = 1;
  flags.period = std::chrono::nanoseconds(1);
  SupervisorSpec spec(flags, 1);
  // The child lives on its supervisor's worker (the System's first actor
  // goes to worker 0): a restart is then a chain of local hand-offs, as in
  // CAF, where an actor spawned by an actor is scheduled on its thread.
  SpawnOptions home;
  home.worker = 0;
  if (!spec.add(ChildSpec::worker_with<Child>("child", [c = &chain] { return Child(c); })
                    .restart(RestartType::Permanent)
                    .shutdown(shutdown)
                    .options(home))) {
    state.SkipWithError("child spec refused");
    return;
  }
  chain.target = 1;  // the first child's own Ping ends the warm-up batch
  const auto warm = chain.done.current();
  auto sup = start_supervisor(sys, spec);
  if (!sup) {
    state.SkipWithError(("start_supervisor: " + std::string(sup.error().message())).c_str());
    return;
  }
  chain.done.wait_past(warm);
  AllocsPerOp allocs;
  while (state.KeepRunningBatch(batch)) {
    chain.target += static_cast<std::uint64_t>(batch);
    const auto seen = chain.done.current();
    if (!sys.send(unpack(chain.current.load(std::memory_order_acquire)), Cmd::Kick)) {
      state.SkipWithError("kick refused");
      break;
    }
    chain.done.wait_past(seen);
  }
  allocs.report(state);
  if (chain.spawn_failures.load(std::memory_order_relaxed) != 0) state.SkipWithError("a child's spawn_process failed");
  (void)sup.value().stop(5s);
  (void)sys.shutdown();
}

// 100000 restarts (about 20 ms) per batch, the duration of a batch of
// caf/monitor_respawn (10000 at about 4 us): each side pays the benchmark
// thread's wake-up and the worker's park once per batch, and so about the
// same share of each iteration. With 10000, ours paid it over 2 ms.
constexpr int kRestartBatch = 100000;
constexpr int kProcessBatch = 20;

void BM_rt_supervisor_restart_one_for_one(benchmark::State& state) {
  Chain chain;
  restart_chain(state, chain, kRestartBatch, ShutdownSpec::after(5000ms));
}

// `sleep 1000` in a process group of its own: the same process the floor
// respawns.
struct SleepOp {
  std::string_view args[1] = {"1000"};
  SpawnProcessOperation op;
  explicit SleepOp(Containment c) {
    op.program = "/bin/sleep";
    op.args = args;
    op.containment = c;
  }
};

void BM_rt_supervisor_restart_with_process(benchmark::State& state, Containment containment) {
  const SleepOp sleep(containment);
  Chain chain;
  chain.process = &sleep.op;
  restart_chain(state, chain, kProcessBatch, ShutdownSpec::brutal_kill());
}

// ---------------------------------------------------------------------------

// The floor: the process a restart replaces, with nothing around it.
void BM_limit_respawn_process(benchmark::State& state) {
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  ::posix_spawnattr_setpgroup(&attr, 0);
  char program[] = "/bin/sleep";
  char arg[] = "1000";
  char* const argv[] = {program, arg, nullptr};
  // environ plus an entry as long as the library's
  // "AIRSSYS_TREE=<pid>.<executor>.<group>.<start ticks>.<pid namespace>".
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  std::string marker = "AIRSSYS_TREE=" + std::to_string(::getpid()) + ".1.1.1234567.4026531836";
  envp.push_back(marker.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, program, nullptr, &attr, argv, envp.data());
  for (auto _ : state) {
    if (rc != 0) break;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    rc = ::posix_spawn(&pid, program, nullptr, &attr, argv, envp.data());
  }
  if (rc == 0) {
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  } else {
    state.SkipWithError((std::string("posix_spawn: ") + std::strerror(rc)).c_str());
  }
  ::posix_spawnattr_destroy(&attr);
}

}  // namespace

BENCHMARK(BM_rt_supervisor_restart_one_for_one)->Name("rt/supervisor/restart_one_for_one")->UseRealTime();
// The process benchmark and its floor interleaved, each the best of three
// repetitions (the table keeps the fastest), like the spawn benchmarks.
BENCHMARK(BM_limit_respawn_process)
    ->Name("limit/respawn_process")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(400)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_rt_supervisor_restart_with_process, pgroup, Containment::ProcessGroup)
    ->Name("rt/supervisor/restart_with_process")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(400)
    ->Repetitions(3);
// The same in a cgroup of its own (what Auto picks as root): cgroup.kill
// instead of the process group's stop-scan-signal, plus a mkdir and an
// rmdir per tree.
BENCHMARK_CAPTURE(BM_rt_supervisor_restart_with_process, cgroup, Containment::Cgroup)
    ->Name("rt/supervisor/restart_with_process/cgroup")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(400)
    ->Repetitions(3);
