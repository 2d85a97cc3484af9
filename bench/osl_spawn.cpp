// The osl side of the process benchmarks (floors and peer in osl_peers.cpp).
//
//   osl/spawn/managed_pgroup[/rss_mb:1024]  ProcessExecutor::execute of a
//       Managed /bin/true contained by its process group, then
//       WaitProcessOperation (exit delivered and reaped): the same work as
//       osl/spawn/raw_posix_spawn (posix_spawn + SETPGROUP + waitpid) plus
//       what the library adds (policy chain, the program held by an O_PATH
//       descriptor and run with execveat, table entry, pidfd and a second
//       one for the group, the guardian's registration (queued),
//       parent-death signal, tree marker). The executor's first spawn,
//       which starts the guardian, is left out of the timing.
//   osl/spawn/managed_cgroup  the same, contained by a cgroup of its own
//       (mkdir, CLONE_INTO_CGROUP, rmdir per spawn).
//   osl/teardown/tree100/{cgroup,pgroup}  the tree of limit/teardown/tree100
//       (the helper as managed leader, 89 in its group, 10 escaped with
//       setsid) torn down by TeardownOperation with term_timeout_ns = 0,
//       i.e. straight to SIGKILL like the floor, until everything is reaped.
//       Only the teardown is timed (manual time); the tree is built and the
//       result checked outside the timed part.

#include "process_tree.hpp"

#include <airssys/osl/executor.hpp>

#include <benchmark/benchmark.h>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>

namespace {

using airssys::bench::Ballast;
namespace osl = airssys::osl;

constexpr std::size_t kBigRssMib = 1024;

std::string describe(const airssys::Error& e) { return e.message(); }

void BM_osl_spawn_managed(benchmark::State& state, osl::Containment containment, std::size_t ballast_mib) {
  const Ballast ballast(ballast_mib);
  if (!ballast.ok()) {
    state.SkipWithError("could not map the ballast");
    return;
  }
  osl::ProcessExecutor executor;
  osl::SpawnProcessOperation spawn;
  spawn.program = "/bin/true";
  spawn.containment = containment;
  // One spawn until its exit is reaped; an error message, or "" when it worked.
  const auto spawn_once = [&]() -> std::string {
    auto spawned = executor.execute(spawn);
    if (!spawned) return "spawn: " + describe(spawned.error());
    if (spawned.value().containment != containment) {
      (void)executor.execute(osl::TeardownOperation{spawned.value().pid, 0});
      return "the executor chose another containment";
    }
    auto status = executor.execute(osl::WaitProcessOperation{spawned.value().pid});
    if (!status) return "wait: " + describe(status.error());
    if (status.value().code != 0 || status.value().signal != 0) return "/bin/true failed";
    return {};
  };
  // Untimed: the first managed spawn starts the guardian, once per
  // executor. Its start copies the parent's page tables (it shares no memory
  // map with the host, so that an OOM kill of the host spares it) and grows
  // with the parent's size; it is not a cost of each spawn, which is what
  // this measures. The floor (BM_raw_posix_spawn) leaves its first spawn
  // out too.
  std::string error = spawn_once();
  for (auto _ : state) {
    if (!error.empty()) break;
    error = spawn_once();
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  if (executor.live() != 0) state.SkipWithError("the executor still holds processes after the waits");
}

// True when none of `tree`'s pids names a process any more (running or
// zombie). Pids are not reused this fast: the kernel hands them out in
// increasing order up to pid_max.
bool all_gone(const airssys::bench::TreeInfo& tree) {
  for (const int pid : tree.pids)
    if (::kill(pid, 0) == 0 || errno != ESRCH) return false;
  return true;
}

void BM_osl_teardown_tree100(benchmark::State& state, osl::Containment containment) {
  using namespace airssys::bench;
  if (!no_children_left()) {
    state.SkipWithError("children exist before the benchmark; refusing to mix them in");
    return;
  }
  osl::ProcessExecutor executor;  // makes this process a child subreaper on its first spawn
  const TreeCommand cmd(kTree100);
  const std::string_view args[] = {cmd.argv()[1], cmd.argv()[2]};
  osl::SpawnProcessOperation spawn;
  spawn.program = cmd.program();
  spawn.args = args;
  spawn.containment = containment;
  spawn.stdio[1] = osl::StdioConfig::pipe();
  double reaped = 0, killed = 0, adopted = 0;
  for (auto _ : state) {
    auto spawned = executor.execute(spawn);
    if (!spawned) {
      state.SkipWithError(("spawn: " + describe(spawned.error())).c_str());
      break;
    }
    const int leader = spawned.value().pid;
    const int out = spawned.value().pipes[1];
    TreeInfo tree;
    std::string error;
    bool ok = spawned.value().containment == containment;
    if (!ok) error = "the executor chose another containment";
    if (ok) ok = read_tree_info(out, kTree100, tree, error);
    ::close(out);
    if (ok && tree.leader != leader) {
      error = "tree helper: leader pid " + std::to_string(tree.leader) + " is not the spawned " +
              std::to_string(leader);
      ok = false;
    }
    if (ok && !wait_adopted(tree)) {
      error = "tree: the escaped processes were not re-parented to us (is the executor a subreaper?)";
      ok = false;
    }
    if (!ok) {
      // The executor holds the tree; only it may kill and reap it.
      (void)executor.execute(osl::TeardownOperation{leader, 0});
      state.SkipWithError(error.c_str());
      break;
    }

    const auto start = std::chrono::steady_clock::now();
    auto report = executor.execute(osl::TeardownOperation{leader, 0});
    const auto stop = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(stop - start).count());

    // Untimed: the teardown reaped every one of the 100 — nothing of the
    // tree is left, not even a zombie, and the executor holds nothing.
    if (!report) {
      state.SkipWithError(("teardown: " + describe(report.error())).c_str());
      break;
    }
    reaped += static_cast<double>(report.value().reaped);
    killed += static_cast<double>(report.value().killed);
    adopted += static_cast<double>(report.value().orphans_adopted);
    if (!no_children_left()) {
      state.SkipWithError("children left after the teardown");
      break;
    }
    if (!all_gone(tree)) {
      state.SkipWithError("a process of the tree survived the teardown");
      break;
    }
    if (executor.live() != 0) {
      state.SkipWithError("the executor still holds processes after the teardown");
      break;
    }
  }
  // What the teardown reports doing, per iteration (100 each when all is
  // counted: the teardown reaps the whole tree).
  const double n = state.iterations() ? static_cast<double>(state.iterations()) : 1;
  state.counters["reaped"] = reaped / n;
  state.counters["killed"] = killed / n;
  state.counters["orphans"] = adopted / n;
}

}  // namespace

// The floor and the library's spawns, interleaved so that each ratio
// compares runs made close together, and each the best of three
// repetitions (the table keeps the fastest): a 2-core machine drifts
// between benchmarks more than the difference being measured.
BENCHMARK_CAPTURE(BM_raw_posix_spawn, plain, std::size_t{0})
    ->Name("osl/spawn/raw_posix_spawn")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(500)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_osl_spawn_managed, pgroup, osl::Containment::ProcessGroup, std::size_t{0})
    ->Name("osl/spawn/managed_pgroup")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(500)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_osl_spawn_managed, cgroup, osl::Containment::Cgroup, std::size_t{0})
    ->Name("osl/spawn/managed_cgroup")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(500)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_raw_posix_spawn, big, kBigRssMib)
    ->Name("osl/spawn/raw_posix_spawn/rss_mb:1024")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(500)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_osl_spawn_managed, pgroup_big, osl::Containment::ProcessGroup, kBigRssMib)
    ->Name("osl/spawn/managed_pgroup/rss_mb:1024")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(500)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_osl_teardown_tree100, cgroup, osl::Containment::Cgroup)
    ->Name("osl/teardown/tree100/cgroup")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(50);
BENCHMARK_CAPTURE(BM_osl_teardown_tree100, pgroup, osl::Containment::ProcessGroup)
    ->Name("osl/teardown/tree100/pgroup")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(50);
