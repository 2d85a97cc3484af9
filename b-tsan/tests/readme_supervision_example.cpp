#include <airssys/rt/supervisor.hpp>
#include <cstdio>
#include <thread>

using namespace airssys;

// Fails on a 0; the supervisor builds a fresh one from the spec.
struct Flaky : Actor<int> {
  void on_start(Context<int>&) override { std::printf("flaky started\n"); }
  void on_message(Context<int>& ctx, int& n) override {
    if (n == 0) ctx.fail(Error::make(Errc::Failed, "cannot take %d", n));
  }
};

int main() {
  auto sys = System::create(SystemConfig{.workers = 2});
  if (!sys) return std::printf("%s\n", sys.error().message()), 1;
  SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForOne, .intensity = 3}, 4);
  if (auto added = spec.add(ChildSpec::worker<Flaky>("flaky")); !added) return 1;
  auto sup = start_supervisor(**sys, spec);
  if (!sup) return std::printf("%s\n", sup.error().message()), 1;

  ChildInfo kids[4];
  (void)sup->which_children(kids);
  (void)(*sys)->send(ActorRef<int>{kids[0].ref}, 0);  // crash it
  while (sup->which_children(kids).ok() && !(kids[0].restarts == 1 && kids[0].running))
    std::this_thread::yield();
  std::printf("restarts: %u\n", kids[0].restarts);
  auto stopped = sup->stop();  // children in reverse order, each gone
  std::printf("stopped: %s\n", stopped ? "ok" : stopped.error().message());
}
