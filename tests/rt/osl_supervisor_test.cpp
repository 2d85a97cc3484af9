// OslSupervisor and the recommended tree (OslTree), with real processes,
// run as root: the tree starts the integration actors before the
// application's actors, they are found by name, a ProcessActor that stops
// is restarted only after its old trees are gone, and stopping the root
// leaves nothing (checked in the process table by NothingLeftCensus).

#include <airssys/rt/osl_supervisor.hpp>

#include <catch2/catch.hpp>

#include "support/process_guard.hpp"
#include "support/rt_test.hpp"
#include "support/wait_for.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

const std::string& marker() {
  static const std::string m = "AIRSSYS_RT_OSL_SUPERVISOR_TEST=" + std::to_string(::getpid());
  return m;
}

// An application actor that, when it starts, checks that the integration
// actors are already there.
struct App : Actor<int> {
  std::atomic<int>* found;
  explicit App(std::atomic<int>* f) : found(f) {}
  void on_start(Context<int>& ctx) override {
    if (OslSupervisor::process_actor(ctx.system()) && OslSupervisor::process_pool(ctx.system())) found->fetch_add(1);
  }
  void on_message(Context<int>&, int&) override {}
};

}  // namespace

TEST_CASE("The recommended tree runs the integration actors first and restarts one only after its trees are gone",
          "[osl_supervisor]") {
  NothingLeftCensus guard(marker());
  SystemConfig cfg;
  cfg.workers = 2;
  auto created = System::create(cfg);
  REQUIRE(created);
  System& sys = *created.value();

  std::atomic<int> found{0};
  OslTreeConfig tc;
  tc.osl.flags.intensity = 3;
  OslTree tree(tc);
  REQUIRE(tree.add_application(ChildSpec::worker_with<App>("app", [&found] { return App(&found); })));
  auto root = tree.start(sys);
  INFO(root.error().message());
  REQUIRE(root);
  CHECK(found.load() == 1);
  ChildInfo kids[4];
  auto n = root.value().which_children(kids);
  REQUIRE(n);
  REQUIRE(n.value() == 2);
  CHECK(std::string(kids[0].id) == "osl");
  CHECK(std::string(kids[1].id) == "application");

  auto pa = OslSupervisor::process_actor(sys);
  REQUIRE(pa);
  auto pool = OslSupervisor::process_pool(sys);
  REQUIRE(pool);
  ProcessActorRef procs(sys, pa.value());
  ProcessSpec sleeper("/bin/sleep");
  sleeper.arg("1000").env(marker());
  auto p = procs.spawn(sleeper);
  REQUIRE(p);
  const unsigned long long p_start = start_time_of(p.value().pid);  // held by the ProcessActor: still the sleep
  ProcessPoolRef jobs(sys, pool.value());
  ProcessSpec quick("/bin/sh");
  quick.arg("-c").arg("exit 4").env(marker());
  auto job = jobs.run(quick, 10s);
  REQUIRE(job);
  CHECK(job.value().status.code == 4);

  // The ProcessActor stops: its supervisor (OneForOne) restarts it, and
  // the new one binds the name only after the old tree is gone.
  REQUIRE(sys.stop(pa.value()));
  ActorRef<ProcessActorMsg> again;
  REQUIRE(wait_for([&] {
    auto r = OslSupervisor::process_actor(sys);
    if (!r || r.value() == pa.value()) return false;
    again = r.value();
    return true;
  }));
  CHECK_FALSE(same_process_exists(p.value().pid, p_start));
  CHECK(sys.alive(pool.value()));  // OneForOne: the pool stays
  ProcessActorRef procs2(sys, again);
  auto unknown = procs2.status(p.value().id);
  CHECK(unknown.code() == Errc::NotFound);  // a fresh actor knows no old id
  auto p2 = procs2.spawn(sleeper);
  REQUIRE(p2);
  const unsigned long long p2_start = start_time_of(p2.value().pid);

  REQUIRE(root.value().stop());
  CHECK_FALSE(sys.alive(again));
  CHECK_FALSE(sys.alive(pool.value()));
  CHECK_FALSE(same_process_exists(p2.value().pid, p2_start));
  CHECK(sys.processes_held() == 0);
  REQUIRE(sys.shutdown());
}

TEST_CASE("An integration actor name longer than the registry holds is refused when the OslSupervisor is built",
          "[osl_supervisor]") {
  for (int which = 0; which < 2; ++which) {
    OslSupervisorConfig cfg;
    const std::string name = "osl.name." + std::string(40, 'o');
    (which == 0 ? cfg.process_actor.name : cfg.process_pool.name) = name;
    OslSupervisor osl(cfg);
    CHECK(osl.built().code() == Errc::InvalidArgument);
    CHECK_THAT(osl.built().error().message(), Catch::Contains("osl.name.ooo"));
  }
}
