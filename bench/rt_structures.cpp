// Benchmarks of the runtime's lock-free building blocks on their own.

#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/name_table.hpp>
#include <airssys/rt/detail/pool.hpp>

#include "bench_support.hpp"

#include <atomic>
#include <string>
#include <vector>

namespace {

using namespace airssys;

// One pop and one push of a shared index stack, by 1 or 2 threads at once.
detail::IndexStack g_stack;
std::vector<std::atomic<std::uint32_t>> g_links(1024);

void BM_index_stack_pop_push(benchmark::State& state) {
  if (state.thread_index() == 0) g_stack.init(g_links.data(), 1024, true);
  bench::AllocsPerOp allocs;
  for (auto _ : state) {
    std::uint32_t i;
    if (g_stack.pop(i)) g_stack.push(i);
    benchmark::DoNotOptimize(i);
  }
  allocs.report(state);
}

// A mailbox's queues, uncontended: one push and one pop, either a foreign
// push (the inbox's compare-and-swap, then the pop's exchange) or a local
// append (plain stores).
void BM_mailbox_push_pop(benchmark::State& state, bool foreign) {
  detail::Node node;
  std::atomic<detail::Node*> inbox{nullptr};
  detail::LocalFifo fifo;
  bench::AllocsPerOp allocs;
  for (auto _ : state) {
    if (foreign) {
      detail::inbox_push(inbox, &node);
    } else {
      fifo.append(inbox, &node);
    }
    benchmark::DoNotOptimize(fifo.pop(inbox));
  }
  allocs.report(state);
}

// A hit in a name table of 512 names.
void BM_name_table_find(benchmark::State& state) {
  detail::NameTable table;
  table.init(512);
  std::vector<detail::Name> names;
  for (int i = 0; i < 512; ++i) {
    names.push_back(*detail::Name::make("service-" + std::to_string(i), "bench"));
    (void)table.insert(names.back(), static_cast<std::uint64_t>(i), 1, nullptr);
  }
  std::size_t i = 0;
  bench::AllocsPerOp allocs;
  for (auto _ : state) {
    detail::NameTable::Found f{};
    benchmark::DoNotOptimize(table.find(names[i++ & 511], f));
  }
  allocs.report(state);
}

}  // namespace

BENCHMARK(BM_index_stack_pop_push)->Name("rt/structures/index_stack/pop_push")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_mailbox_push_pop, foreign, true)->Name("rt/structures/mailbox/foreign_push_pop");
BENCHMARK_CAPTURE(BM_mailbox_push_pop, local, false)->Name("rt/structures/mailbox/local_append_pop");
BENCHMARK(BM_name_table_find)->Name("rt/structures/name_table/find");
