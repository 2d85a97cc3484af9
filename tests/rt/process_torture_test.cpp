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
#include <span>
#include <sstream>
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

TEST_CASE("an owner that crashes at any stage of its tree's setsid escape leaves nothing once the teardown is over, under load") {
  // The tree of rt/process_test's crash test: a leader, and an escapee
  // that a subshell forks, that calls setsid, execs a shell, and then
  // execs sleep; or one that, once out, execs a shell again and again, so
  // that every look at it may land inside an execve (its environment then
  // reads as empty, or cut short, which says nothing about whose it is).
  // The owner crashes 0-30 ms after asking for the spawn, so the teardown
  // lands before the escape, inside it (between fork and setsid, between
  // setsid and exec, inside an exec), or after it, while two threads keep
  // both CPUs busy. Each teardown is judged on its own: once the runtime
  // holds nothing of the tree, no process of it may be alive anywhere, and
  // no zombie of it may be left.
  const std::string mark = "AIRSSYS_TORTURE_ESCAPE=" + std::to_string(::getpid());
  KillMarkedOnExit guard{mark};
  const std::size_t fds_before = open_fds();
  const int rounds = 60 / kScale;
  const unsigned seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);

  const std::string_view settled[] = {
      "-c", "trap '' TERM; (setsid sh -c 'trap \"\" TERM; echo escapee; exec sleep 1000' &); exec sleep 1000"};
  const std::string_view execing[] = {"-c", "(setsid sh -c \"$AIRSSYS_ESC_LOOP\" &); exec sleep 1000"};
  const std::string_view env[] = {mark, "AIRSSYS_ESC_LOOP=exec sh -c \"$AIRSSYS_ESC_LOOP\""};
  constexpr int kKinds = 3;
  SpawnProcessOperation ops[kKinds];
  for (int i = 0; i < kKinds; ++i) {
    ops[i].program = "/bin/sh";
    ops[i].args = i == 0 ? std::span<const std::string_view>(settled) : std::span<const std::string_view>(execing);
    ops[i].env = env;
    ops[i].containment = i == 2 ? Containment::Cgroup : Containment::ProcessGroup;
    ops[i].stdio[0] = osl::StdioConfig::null();
    ops[i].stdio[1] = osl::StdioConfig::null();
  }

  std::atomic<bool> busy{true};
  std::thread load[2];
  for (auto& t : load)
    t = std::thread([&busy] {
      // relaxed: a flag to stop spinning, ordering nothing.
      while (busy.load(std::memory_order_relaxed)) {
      }
    });
  struct StopLoad {
    std::atomic<bool>& busy;
    std::thread (&load)[2];
    ~StopLoad() {
      busy.store(false, std::memory_order_relaxed);
      for (auto& t : load) t.join();
    }
  } stop_load{busy, load};

  Tally tally;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.process_kill_timeout = 20ms;
  auto sys = std::make_unique<System>(cfg);
  int survivors = 0, zombies = 0;
  std::string first_left;
  for (int i = 0; i < rounds; ++i) {
    const SpawnProcessOperation* op = &ops[i % kKinds];
    auto a = sys->spawn_with<Victim>(on_worker(i % 2), [op, t = &tally] { return Victim(op, t, ErrorAction::Stop); });
    REQUIRE(a.ok());
    REQUIRE(sys->send(*a, Msg{Cmd::Spawn}).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30'001));
    (void)sys->send(*a, Msg{Cmd::Crash});
    REQUIRE(wait_for([&] { return sys->stats().live_actors == 0 && sys->processes_held() == 0; }, 60s));
    // The teardown is over: nothing of the tree may be left.
    const auto left = processes_with_env(mark);
    if (!left.empty() && first_left.empty()) {
      std::ostringstream s;
      s << "round " << i << " (kind " << i % kKinds << ", " << osl::to_string(op->containment) << "):";
      for (int pid : left) {
        ProcEntry e;
        if (read_proc(pid, e))
          s << " pid " << pid << " state " << e.state << " ppid " << e.ppid << " pgid " << e.pgid << " sid "
            << session_of(pid) << " cgroup " << cgroup2_of(pid) << ";";
      }
      first_left = s.str();
    }
    survivors += static_cast<int>(left.size());
    if (!left.empty()) (void)kill_processes_with_env(mark);
    zombies += reap_zombie_children();
  }
  const auto k = sys->process_counters();
  std::printf("escape torture: %d rounds, trees spawned %d, killed %llu, orphans_adopted %llu, survivors %d, zombies %d\n",
              rounds, tally.spawned.load(), static_cast<unsigned long long>(k.killed),
              static_cast<unsigned long long>(k.orphans_adopted), survivors, zombies);
  INFO("first leftover: " << first_left);
  CHECK(survivors == 0);
  CHECK(zombies == 0);
  CHECK(k.spawned == k.cleaned);
  REQUIRE(sys->shutdown().ok());
  sys.reset();
  CHECK(processes_with_env(mark).empty());
  INFO("children left:\n" << describe_children());
  CHECK(children_of_self().empty());
  CHECK(open_fds() == fds_before);
  guard.sweep();
  CHECK(guard.killed == 0);
  CHECK(guard.reaped == 0);
}
