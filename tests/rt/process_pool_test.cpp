// ProcessPoolActor with real processes, run as root: the bound on running
// jobs under a stress of concurrent requesters (checked against the
// process table, not only the pool's own count), queue overflow, the token
// bucket on a manual clock, a requester that stops taking its jobs with
// it, and the pool's stop answering and tearing down everything.
//
// Every test runs under a guard (NothingLeftCensus) that kills whatever
// carries this file's environment marker, reaps every child, and checks
// that nothing was left: no process, no child, no descriptor, no cgroup.

#include <airssys/rt/process_pool.hpp>

#include <catch2/catch.hpp>

#include "support/named_child.hpp"
#include "support/process_guard.hpp"
#include "support/rt_test.hpp"
#include "support/wait_for.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <variant>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

const std::string& marker() {
  static const std::string m = "AIRSSYS_RT_PROCESS_POOL_TEST=" + std::to_string(::getpid());
  return m;
}

ProcessSpec sleeper(const char* seconds) {
  ProcessSpec spec("/bin/sleep");
  spec.arg(seconds).env(marker());
  return spec;
}

// Asks the pool for `count` jobs at once (Context::ask: it never blocks),
// and logs each reply's outcome.
struct Go {
  int count;
  const char* seconds;
};
using SubmitterMsg = std::variant<Go, Reply<Result<JobResult>>>;
struct Submitter : Actor<SubmitterMsg> {
  ActorRef<ProcessPoolMsg> pool;
  Log<Errc>* outcomes;
  Submitter(ActorRef<ProcessPoolMsg> p, Log<Errc>* o) : pool(p), outcomes(o) {}
  void on_message(Context<SubmitterMsg>& ctx, SubmitterMsg& m) override {
    if (auto* go = std::get_if<Go>(&m)) {
      const ActorId self = ctx.self().id;
      for (int i = 0; i < go->count; ++i) {
        auto asked = ctx.template ask<Result<JobResult>>(
            pool, [&](ReplyTo<Result<JobResult>> r) { return PoolRun{sleeper(go->seconds), self, r}; }, 120s);
        if (!asked) outcomes->push(asked.code());
      }
      return;
    }
    auto& reply = std::get<Reply<Result<JobResult>>>(m);
    outcomes->push(!reply.result ? reply.result.code() : reply.result.value().code());
  }
};

ActorRef<SubmitterMsg> spawn_submitter(System& sys, ActorRef<ProcessPoolMsg> pool, Log<Errc>& log, int worker) {
  auto ref = sys.spawn_with<Submitter>(on_worker(worker), [pool, &log] { return Submitter(pool, &log); });
  REQUIRE(ref);
  return ref.value();
}

ActorRef<ProcessPoolMsg> spawn_pool(System& sys, const ProcessPoolConfig& cfg) {
  auto ref = sys.spawn_with<ProcessPoolActor>(on_worker(0), [cfg] { return ProcessPoolActor(cfg); });
  REQUIRE(ref);
  return ref.value();
}

// Live (not zombie) processes carrying the marker.
std::size_t live_jobs() {
  std::size_t n = 0;
  for (int pid : processes_with_env(marker())) {
    ProcEntry e;
    if (read_proc(pid, e) && e.state != 'Z' && e.state != 'X') ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("The pool never runs more jobs at once than its bound, under a stress of concurrent requesters",
          "[process_pool]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  ProcessPoolConfig cfg;
  cfg.max_running = 3;
  cfg.max_queued = 64;
  auto pool = spawn_pool(*sys, cfg);
  ProcessPoolRef handle(*sys, pool);
  Log<Errc> outcomes;
  constexpr int kPerSubmitter = 30 / kScale;
  auto a = spawn_submitter(*sys, pool, outcomes, 1);
  auto b = spawn_submitter(*sys, pool, outcomes, 1);

  // The process table is sampled the whole time, independently of the
  // pool's own count.
  std::atomic<bool> sampling{true};
  std::size_t most = 0;
  std::thread sampler([&] {
    while (sampling.load()) most = std::max(most, live_jobs());
  });
  REQUIRE(sys->send(a, Go{kPerSubmitter, "0.05"}));
  REQUIRE(sys->send(b, Go{kPerSubmitter, "0.05"}));
  const bool all = wait_for([&] { return outcomes.size() == 2 * kPerSubmitter; }, 120s);
  sampling = false;
  sampler.join();
  REQUIRE(all);
  for (Errc e : outcomes.get()) CHECK(e == Errc::Ok);
  CHECK(most <= cfg.max_running);
  CHECK(most > 0);

  auto total = handle.counts();
  REQUIRE(total);
  CHECK(total.value().spawned == 2 * kPerSubmitter);
  CHECK(total.value().exited == 2 * kPerSubmitter);
  CHECK(total.value().running == 0);
  CHECK(total.value().queued == 0);
  CHECK(total.value().rejected == 0);
  CHECK(total.value().killed == 0);
  CHECK(total.value().max_running_seen == cfg.max_running);
  for (auto who : {a.id, b.id}) {
    auto mine = handle.counts(who);
    REQUIRE(mine);
    CHECK(mine.value().spawned == kPerSubmitter);
    CHECK(mine.value().exited == kPerSubmitter);
  }
  auto stranger = handle.counts(ActorId{4000, 1});
  REQUIRE_FALSE(stranger);
  CHECK(stranger.code() == Errc::NotFound);
  REQUIRE(sys->shutdown());
  CHECK(sys->processes_held() == 0);
}

TEST_CASE("A job that finds the queue full is refused with Full and counted as rejected; stopping the pool ends the rest",
          "[process_pool]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  ProcessPoolConfig cfg;
  cfg.max_running = 1;
  cfg.max_queued = 2;
  auto pool = spawn_pool(*sys, cfg);
  ProcessPoolRef handle(*sys, pool);
  Log<Errc> outcomes;
  auto sub = spawn_submitter(*sys, pool, outcomes, 1);
  REQUIRE(sys->send(sub, Go{4, "1000"}));
  REQUIRE(wait_for([&] { return outcomes.size() == 1; }));
  CHECK(outcomes.get()[0] == Errc::Full);
  auto c = handle.counts();
  REQUIRE(c);
  CHECK(c.value().running == 1);
  CHECK(c.value().queued == 2);
  CHECK(c.value().rejected == 1);
  auto mine = handle.counts(sub.id);
  REQUIRE(mine);
  CHECK(mine.value().rejected == 1);
  CHECK(mine.value().queued == 2);

  REQUIRE(sys->stop(pool));
  REQUIRE(wait_for([&] { return outcomes.size() == 4; }));
  const auto got = outcomes.get();
  CHECK(std::count(got.begin(), got.end(), Errc::ShuttingDown) == 3);
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 20s));
  CHECK(live_jobs() == 0);
  REQUIRE(sys->shutdown());
}

TEST_CASE("Jobs start no faster than the token bucket allows on a manual clock", "[process_pool]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  ManualClock clock;
  ProcessPoolConfig cfg;
  cfg.max_running = 4;
  cfg.max_queued = 8;
  cfg.rate_per_second = 1.0;
  cfg.burst = 2;
  cfg.clock = &clock;
  auto pool = spawn_pool(*sys, cfg);
  ProcessPoolRef handle(*sys, pool);
  Log<Errc> outcomes;
  auto sub = spawn_submitter(*sys, pool, outcomes, 1);
  REQUIRE(sys->send(sub, Go{6, "1000"}));
  auto spawned = [&] {
    auto c = handle.counts();
    REQUIRE(c);
    return c.value().spawned;
  };
  REQUIRE(wait_for([&] {
    auto c = handle.counts();
    return c && c.value().spawned + c.value().queued == 6;
  }));
  CHECK(spawned() == 2);  // the burst
  REQUIRE(handle.tick());
  CHECK(spawned() == 2);
  clock.advance(999ms);
  CHECK(spawned() == 2);
  clock.advance(1ms);
  CHECK(spawned() == 3);
  clock.advance(500ms);
  CHECK(spawned() == 3);
  clock.advance(500ms);
  CHECK(spawned() == 4);
  // Tokens are there, slots are not: the bound holds.
  clock.advance(10s);
  CHECK(spawned() == 4);
  auto c = handle.counts();
  REQUIRE(c);
  CHECK(c.value().running == 4);
  CHECK(c.value().queued == 2);

  REQUIRE(sys->stop(pool));
  REQUIRE(wait_for([&] { return outcomes.size() == 6; }));
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 20s));
  REQUIRE(sys->shutdown());
}

TEST_CASE("A requester that stops takes its queued and running jobs with it", "[process_pool]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  ProcessPoolConfig cfg;
  cfg.max_running = 2;
  cfg.max_queued = 4;
  auto pool = spawn_pool(*sys, cfg);
  ProcessPoolRef handle(*sys, pool);
  Log<Errc> outcomes;
  auto sub = spawn_submitter(*sys, pool, outcomes, 1);
  REQUIRE(sys->send(sub, Go{3, "1000"}));
  REQUIRE(wait_for([&] {
    auto c = handle.counts(sub.id);
    return c && c.value().running == 2 && c.value().queued == 1;
  }));
  REQUIRE(sys->stop(sub));
  REQUIRE(wait_for([&] {
    auto c = handle.counts(sub.id);
    return c && c.value().running == 0 && c.value().killed == 2;
  }, 20s));
  auto mine = handle.counts(sub.id);
  REQUIRE(mine);
  CHECK(mine.value().queued == 0);
  CHECK(mine.value().rejected == 1);
  CHECK(mine.value().exited == 0);
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 20s));
  CHECK(live_jobs() == 0);
  REQUIRE(sys->shutdown());
}

TEST_CASE("A pool restarted by its supervisor binds its name again after the string it was named from is gone",
          "[process_pool]") {
  NothingLeftCensus guard(marker());
  auto named = restart_after_name_freed<ProcessPoolActor, ProcessPoolMsg>(ProcessPoolConfig{},
                                                                          "test.pool.named.from.a.string");
  auto job = ProcessPoolRef(*named.system, named.actor).run(sleeper("0"), 10s);
  REQUIRE(job);
  CHECK(job.value().status.code == 0);
  REQUIRE(named.supervisor.stop());
  REQUIRE(named.system->shutdown());
}

TEST_CASE("A pool name longer than the registry holds is refused naming it, never cut", "[process_pool]") {
  check_overlong_name_refused<ProcessPoolActor>(ProcessPoolConfig{}, "jobs.");
}

// Threads asking on behalf of a requester actor: one job runs, one waits in
// the queue. When the requester stops, the waiting thread is answered at
// once with Dead (before, it waited out its whole ask timeout).
TEST_CASE("A queued job dropped with its stopped requester is answered with Dead, not left to time out",
          "[process_pool]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  ProcessPoolConfig cfg;
  cfg.max_running = 1;
  cfg.max_queued = 4;
  auto pool = spawn_pool(*sys, cfg);
  ProcessPoolRef handle(*sys, pool);
  Log<Errc> unused;
  auto requester = spawn_submitter(*sys, pool, unused, 1);
  Result<JobResult> running = Error(Errc::Failed), queued = Error(Errc::Failed);
  std::thread a([&] { running = ProcessPoolRef(*sys, pool).run(sleeper("1000"), 60s, requester.id); });
  REQUIRE(wait_for([&] {
    auto c = handle.counts(requester.id);
    return c && c.value().running == 1;
  }));
  std::thread b([&] { queued = ProcessPoolRef(*sys, pool).run(sleeper("1000"), 60s, requester.id); });
  REQUIRE(wait_for([&] {
    auto c = handle.counts(requester.id);
    return c && c.value().queued == 1;
  }));
  REQUIRE(sys->stop(requester));
  a.join();
  b.join();
  REQUIRE(running);  // its tree was torn down: the exit status
  CHECK(running.value().status.signal == SIGTERM);
  REQUIRE_FALSE(queued);
  CHECK(queued.code() == Errc::Dead);
  CHECK(std::string(queued.error().message()).find("dropped from the queue: its requester") != std::string::npos);
  auto mine = handle.counts(requester.id);
  REQUIRE(mine);
  CHECK(mine.value().rejected == 1);
  CHECK(mine.value().killed == 1);
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 20s));
  CHECK(live_jobs() == 0);
  REQUIRE(sys->shutdown());
}

TEST_CASE("A pool with max_running 0 fails to start with InvalidArgument naming it", "[process_pool]") {
  auto sys = two_worker_system();
  ProcessPoolConfig cfg;
  cfg.max_running = 0;
  SupervisorSpec spec(SupervisorFlags{}, 1);
  REQUIRE(spec.add(ChildSpec::worker_with<ProcessPoolActor>("pool", [cfg] { return ProcessPoolActor(cfg); })));
  auto sup = start_supervisor(*sys, spec);
  REQUIRE_FALSE(sup);
  INFO(sup.error().message());
  CHECK(std::string(sup.error().message()).find("max_running 0") != std::string::npos);
  CHECK(sys->processes_held() == 0);
  REQUIRE(sys->shutdown());
}

// Both configs take designated initializers under -Wextra -Werror (every
// member has a default initializer), as SystemConfig does in the README.
TEST_CASE("ProcessPoolConfig and ProcessActorConfig take designated initializers", "[process_pool]") {
  const ProcessPoolConfig pool{.max_running = 2, .max_queued = 0};
  CHECK(pool.max_running == 2);
  CHECK(pool.max_queued == 0);
  CHECK(pool.name.empty());
  const ProcessActorConfig actor{.max_processes = 4};
  CHECK(actor.max_processes == 4);
  CHECK(actor.max_waiters == 32);
  CHECK(actor.name.empty());
}
