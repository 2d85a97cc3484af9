#include <airssys/rt/system.hpp>
#include <cstdio>
#include <thread>

using namespace airssys;

struct Greeter : Actor<int> {
  int greeted = 0;
  void on_message(Context<int>& ctx, int& n) override {
    std::printf("hello #%d\n", n);
    if (++greeted == 3) ctx.stop();  // on_stop, then the slot is free again
  }
};

int main() {
  auto sys = System::create(SystemConfig{.workers = 2});
  if (!sys) return std::printf("%s\n", sys.error().message()), 1;
  auto greeter = (*sys)->spawn<Greeter>();
  for (int i = 1; i <= 3; ++i) (void)(*sys)->send(*greeter, i);
  while ((*sys)->alive(*greeter)) std::this_thread::yield();
  auto late = (*sys)->send(*greeter, 4);  // a stopped actor: Dead, never a crash
  std::printf("late send: %s\n", late.error().message());
}
