// Torture: 500 actors (fewer under sanitizers), each spawning a small tree
// with a setsid escapee — `sh -c 'sleep 100 & (setsid sleep 100 &) ;
// sleep 100'` — alternating cgroup and process-group containment, and each
// cut short at a random moment 0-20 ms later (sometimes while its spawn is
// still running, sometimes before it starts) by a crash, a throw, its own
// stop, a stop from outside, or a restart (the old tree goes, the new
// instance spawns another, and is stopped from outside at a second random
// moment). Teardowns overlap. At the end nothing may be
// left: no process carrying this test's environment marker anywhere, no
// zombie child, no extra descriptor, nothing held by the executor, and
// every spawned tree counted as cleaned.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/proc_table.hpp"
#include "support/rt_test.hpp"
#include "support/wait_for.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

enum class Cmd { Spawn, Crash, Throw, Stop };
using Msg = std::variant<Cmd, ProcessExited>;

struct Tally {
  std::atomic<int> spawned{0};
  std::atomic<int> spawn_failed{0};
  std::atomic<int> exits{0};
  Log<std::string> errors;
};

struct Victim : Actor<Msg> {
  const SpawnProcessOperation* op;
  Tally* tally;
  ErrorAction on_fail;
  Victim(const SpawnProcessOperation* o, Tally* t, ErrorAction a) : op(o), tally(t), on_fail(a) {}
  ErrorAction on_error(Context<Msg>&, const Error&) override { return on_fail; }
  void on_message(Context<Msg>& ctx, Msg& m) override {
    if (std::holds_alternative<ProcessExited>(m)) {
      tally->exits.fetch_add(1);
      return;
    }
    switch (std::get<Cmd>(m)) {
      case Cmd::Spawn: {
        auto r = ctx.spawn_process(*op);
        if (r) {
          tally->spawned.fetch_add(1);
        } else {
          tally->spawn_failed.fetch_add(1);
          tally->errors.push(r.error().message());
        }
        break;
      }
      case Cmd::Crash: ctx.fail(Error::make(Errc::Failed, "crash")); break;
      case Cmd::Throw:
#if defined(__cpp_exceptions)
        throw std::runtime_error("throw");
#else
        ctx.fail(Error::make(Errc::Failed, "throw, without exceptions"));
        break;
#endif
      case Cmd::Stop: ctx.stop(); break;
    }
  }
};

}  // namespace

TEST_CASE("actors whose process trees are cut short at random moments leave no process, zombie or descriptor") {
  const std::string mark = "AIRSSYS_TORTURE=" + std::to_string(::getpid());
  // Kills and reaps whatever is left on every exit path (declared first:
  // it runs after the System is gone).
  KillMarkedOnExit guard{mark};
  const std::size_t fds_before = open_fds();
  const int rounds = 500 / kScale;
  const unsigned seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);

  const std::string_view args[] = {"-c", "sleep 100 & (setsid sleep 100 &) ; sleep 100"};
  const std::string_view env[] = {mark};
  SpawnProcessOperation ops[2];
  for (int i = 0; i < 2; ++i) {
    ops[i].program = "/bin/sh";
    ops[i].args = args;
    ops[i].env = env;
    ops[i].containment = i == 0 ? Containment::Cgroup : Containment::ProcessGroup;
    ops[i].stdio[0] = osl::StdioConfig::null();
    ops[i].stdio[1] = osl::StdioConfig::null();
  }

  Tally tally;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.process_kill_timeout = 50ms;
  cfg.process_owners = 64;
  cfg.max_processes = 256;
  auto sys = std::make_unique<System>(cfg);

  int actions[5] = {};
  const auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    // Bound the teardowns in flight well below the ProcessSets and the
    // process table.
    REQUIRE(wait_for([&] { return sys->processes_held() < 64 && sys->stats().live_actors < 32; }, 60s));
    const SpawnProcessOperation* op = &ops[i % 2];
    const int action = static_cast<int>(rng() % 5);
    ++actions[action];
    const ErrorAction on_fail = action == 4 ? ErrorAction::Restart : ErrorAction::Stop;
    auto a = sys->spawn_with<Victim>(on_worker(static_cast<int>(rng() % 2)),
                                     [op, t = &tally, on_fail] { return Victim(op, t, on_fail); });
    REQUIRE(a.ok());
    REQUIRE(sys->send(*a, Msg{Cmd::Spawn}).ok());
    // 0-20 ms; below 1 ms spin, so that it can land inside the spawn.
    auto pause = [&rng] {
      const auto delay = std::chrono::microseconds(rng() % 20'001);
      if (delay.count() >= 1000) {
        std::this_thread::sleep_for(delay);
      } else {
        const auto until = Clock::now() + delay;
        while (Clock::now() < until) {
        }
      }
    };
    pause();
    switch (action) {
      case 0: (void)sys->send(*a, Msg{Cmd::Crash}); break;
      case 1: (void)sys->send(*a, Msg{Cmd::Throw}); break;
      case 2: (void)sys->send(*a, Msg{Cmd::Stop}); break;
      case 3: (void)sys->stop(*a); break;
      case 4:
        (void)sys->send(*a, Msg{Cmd::Crash});  // restart: the old tree goes
        (void)sys->send(*a, Msg{Cmd::Spawn});  // the new instance spawns another
        pause();
        (void)sys->stop(*a);
        break;
    }
  }
  const auto loop_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();

  CHECK(wait_for([&] { return sys->stats().live_actors == 0; }, 60s));
  const bool drained = wait_for([&] { return sys->processes_held() == 0; }, 60s);
  const auto drain_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  const auto k = sys->process_counters();
  std::printf("torture: %d rounds (crash %d, throw %d, stop %d, outside stop %d, restart %d) in %lld ms, drained at %lld ms; "
              "trees spawned %d (%d refused), counters: spawned %llu cleaned %llu killed %llu orphans_adopted %llu\n",
              rounds, actions[0], actions[1], actions[2], actions[3], actions[4], static_cast<long long>(loop_ms),
              static_cast<long long>(drain_ms), tally.spawned.load(), tally.spawn_failed.load(),
              static_cast<unsigned long long>(k.spawned), static_cast<unsigned long long>(k.cleaned),
              static_cast<unsigned long long>(k.killed), static_cast<unsigned long long>(k.orphans_adopted));
  INFO("held " << sys->processes_held() << ", counters: spawned " << k.spawned << ", cleaned " << k.cleaned);
  CHECK(drained);
  CHECK(tally.spawn_failed.load() == 0);
  for (const auto& e : tally.errors.get()) {
    INFO(e);
    CHECK(e.empty());
  }
  CHECK(k.spawned == static_cast<std::uint64_t>(tally.spawned.load()));
  CHECK(k.spawned == k.cleaned);
  REQUIRE(sys->shutdown().ok());
  sys.reset();

  // Nothing of ours anywhere: no process with the marker (alive: a zombie
  // has no environment, and zombies are the children checked next).
  CHECK(processes_with_env(mark).empty());
  INFO("children left:\n" << describe_children());
  CHECK(children_of_self().empty());
  CHECK(open_fds() == fds_before);
  guard.sweep();
  CHECK(guard.killed == 0);
  CHECK(guard.reaped == 0);
}
