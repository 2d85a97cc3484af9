// The cost of monitoring on the paths that record into it: one event into
// the ring from one thread and from two contending ones, a restart (which
// also counts per child name), and the Prometheus text of it all.

#include <airssys/rt/monitoring.hpp>

#include "bench_support.hpp"

#include <vector>

namespace {

using namespace airssys;

// Shared by the threads of one run, as a System's Monitoring is.
Monitoring& shared_monitoring() {
  static Monitoring m(MonitoringConfig{4096, 64, nullptr, nullptr});
  return m;
}

// One event recorded: a sequence, a slot claimed, ten words stored, the
// slot released, a kind counted.
void BM_record(benchmark::State& state) {
  Monitoring& m = shared_monitoring();
  const MonitorEvent e = MonitorEvent::make(MonitorEvent::Kind::ActorStopped, ActorId{7, 1}, "worker");
  bench::AllocsPerOp allocs;
  for (auto _ : state) m.record(e);
  allocs.report(state);
}

// A restart: the same, plus the per-child row of its name.
void BM_record_restart(benchmark::State& state) {
  Monitoring& m = shared_monitoring();
  const MonitorEvent e = MonitorEvent::make(MonitorEvent::Kind::ActorRestarted, ActorId{7, 1}, "worker");
  bench::AllocsPerOp allocs;
  for (auto _ : state) m.record(e);
  allocs.report(state);
}

// The whole Prometheus text (about 3 KB with a few child rows).
void BM_write_prometheus(benchmark::State& state) {
  Monitoring m;
  for (const char* name : {"db", "web", "cache", "queue"}) m.record(MonitorEvent::Kind::ActorRestarted, {}, name);
  std::vector<char> buf(64 * 1024);
  SystemStats actors{10, 20, 10, 1'000'000, 3};
  osl::ProcessExecutor::Counters processes;
  processes.spawned = 5;
  processes.cleaned = 4;
  bench::AllocsPerOp allocs;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto r = m.write_prometheus(buf, actors, processes);
    bytes = r ? r.value() : 0;
    benchmark::DoNotOptimize(buf.data());
  }
  state.counters["bytes"] = benchmark::Counter(static_cast<double>(bytes));
  allocs.report(state);
}

}  // namespace

BENCHMARK(BM_record)->Name("rt/monitoring/record")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_record_restart)->Name("rt/monitoring/record_restart")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_write_prometheus)->Name("rt/monitoring/write_prometheus");
