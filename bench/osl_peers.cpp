// Process benchmarks: the floors and the peer the osl side is compared with.
//
//   osl/spawn/raw_posix_spawn[/rss_mb:1024]  the spawn floor: posix_spawn of
//       /bin/true in a new process group + waitpid, no library. glibc spawns
//       with CLONE_VM|CLONE_VFORK, so the parent's size should not matter.
//   peer/boost_process/spawn_group[/rss_mb:1024]  Boost.Process v1 as its
//       users write it: a group, a child in it, wait. v1 fork()s, so the
//       child starts as a copy of the parent's page tables; the 1 GiB
//       variant shows what that costs a big service.
//   limit/teardown/tree100  the teardown floor: 100 processes (10 escaped
//       with setsid()) whose pids are all known, SIGKILLed one by one and
//       reaped. Only the kill + reap is timed (manual time); the tree is
//       built and checked outside the timed part.
//
// The osl/spawn/managed_* and osl/teardown/tree100/* counterparts live with
// the osl library's benchmarks and reuse process_tree.hpp.

#include "process_tree.hpp"

#include <benchmark/benchmark.h>

#include <boost/process.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>

namespace {

using airssys::bench::Ballast;

constexpr std::size_t kBigRssMib = 1024;

}  // namespace

// Registered in osl_spawn.cpp, interleaved with the library's spawns.
void BM_raw_posix_spawn(benchmark::State& state, std::size_t ballast_mib) {
  const Ballast ballast(ballast_mib);
  if (!ballast.ok()) {
    state.SkipWithError("could not map the ballast");
    return;
  }
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  ::posix_spawnattr_setpgroup(&attr, 0);
  char program[] = "/bin/true";
  char* const argv[] = {program, nullptr};
  // One spawn until its exit is reaped; an error message, or "" when it worked.
  const auto spawn_once = [&]() -> std::string {
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, program, nullptr, &attr, argv, environ);
    if (rc != 0) return std::string("posix_spawn: ") + std::strerror(rc);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "/bin/true failed";
    return {};
  };
  // Untimed, as on the library's side (BM_osl_spawn_managed): both sides
  // time spawns after a first one.
  std::string error = spawn_once();
  for (auto _ : state) {
    if (!error.empty()) break;
    error = spawn_once();
  }
  if (!error.empty()) state.SkipWithError(error.c_str());
  ::posix_spawnattr_destroy(&attr);
}

namespace {

void BM_boost_process_spawn_group(benchmark::State& state, std::size_t ballast_mib) {
  const Ballast ballast(ballast_mib);
  if (!ballast.ok()) {
    state.SkipWithError("could not map the ballast");
    return;
  }
  try {
    for (auto _ : state) {
      boost::process::group g;
      boost::process::child c("/bin/true", g);
      c.wait();
      if (c.exit_code() != 0) {
        state.SkipWithError("/bin/true failed");
        break;
      }
    }
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("boost::process: ") + e.what()).c_str());
  }
}

void BM_limit_teardown_tree100(benchmark::State& state) {
  using namespace airssys::bench;
  // The escapees are orphaned on purpose; as subreaper we get them (and
  // the leader's group children once it dies) instead of PID 1.
  if (!become_subreaper()) {
    state.SkipWithError("prctl(PR_SET_CHILD_SUBREAPER) failed");
    return;
  }
  if (!no_children_left()) {
    state.SkipWithError("children exist before the benchmark; refusing to mix them in");
    return;
  }
  for (auto _ : state) {
    TreeInfo tree;
    std::string error;
    if (!spawn_raw_tree(kTree100, tree, error)) {
      state.SkipWithError(error.c_str());
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    const bool reaped = kill_and_reap(tree);
    const auto stop = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(stop - start).count());
    // Untimed: every one of the 100 was ours to reap and nothing else is
    // left — no intermediate, no zombie.
    if (!reaped || !no_children_left()) {
      kill_all_children();
      state.SkipWithError(reaped ? "children left after the teardown" : "a tree pid was not our child");
      break;
    }
  }
}

}  // namespace

BENCHMARK_CAPTURE(BM_boost_process_spawn_group, plain, std::size_t{0})
    ->Name("peer/boost_process/spawn_group")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(500);
BENCHMARK_CAPTURE(BM_boost_process_spawn_group, big, kBigRssMib)
    ->Name("peer/boost_process/spawn_group/rss_mb:1024")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(200);
BENCHMARK(BM_limit_teardown_tree100)
    ->Name("limit/teardown/tree100")
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(50);
