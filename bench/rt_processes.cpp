// The runtime's process bookkeeping seen from an actor.
//
//   rt/child_processes/empty  Context::child_processes() in an actor that
//       never spawned a process: must be an empty span without a call into
//       the System, a lock or an allocation (allocs_per_op = 0). The actor
//       makes a batch of calls per message, so one message hand-off is
//       spread over kListBatch calls.

#include <airssys/rt/system.hpp>

#include "bench_support.hpp"

#include <atomic>
#include <cstddef>

namespace {

using namespace airssys;
using airssys::bench::AllocsPerOp;
using airssys::bench::BatchDone;

constexpr int kListBatch = 100000;

struct Lister : Actor<int> {
  BatchDone* done;
  std::atomic<std::size_t>* seen;  // processes listed in all: must stay 0
  Lister(BatchDone* d, std::atomic<std::size_t>* s) : done(d), seen(s) {}
  void on_message(Context<int>& ctx, int& calls) override {
    std::size_t listed = 0;
    for (int i = 0; i < calls; ++i) {
      const auto set = ctx.child_processes();
      const ChildProcess* data = set.data();
      std::size_t size = set.size();
      benchmark::DoNotOptimize(data);
      benchmark::DoNotOptimize(size);
      listed += size;
    }
    seen->fetch_add(listed, std::memory_order_relaxed);
    done->signal();
  }
};

void BM_rt_child_processes_empty(benchmark::State& state) {
  SystemConfig cfg;
  System sys(cfg);
  BatchDone done;
  std::atomic<std::size_t> seen{0};
  auto lister = sys.spawn_with<Lister>(SpawnOptions{}, [d = &done, s = &seen] { return Lister(d, s); });
  if (!lister) {
    state.SkipWithError("spawn failed");
    return;
  }
  AllocsPerOp allocs;
  while (state.KeepRunningBatch(kListBatch)) {
    const auto before = done.current();
    (void)sys.send(*lister, kListBatch);
    done.wait_past(before);
  }
  allocs.report(state);
  if (seen.load(std::memory_order_relaxed) != 0) state.SkipWithError("an actor that never spawned listed processes");
  if (sys.processes_started()) state.SkipWithError("listing processes started the process executor");
}

}  // namespace

BENCHMARK(BM_rt_child_processes_empty)->Name("rt/child_processes/empty")->UseRealTime();
