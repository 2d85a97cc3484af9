#pragma once
// Shared by the benchmark files: the batch hand-off with the benchmark
// thread, and the allocation counter's per-iteration figure.

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "support/alloc_counter.hpp"

namespace airssys::bench {

// The actor side bumps it once per finished batch; the benchmark thread
// waits for it to move past the value it saw before starting the batch.
class BatchDone {
 public:
  std::uint32_t current() const noexcept { return gen_.load(std::memory_order_acquire); }
  void signal() noexcept {
    gen_.fetch_add(1, std::memory_order_release);
    gen_.notify_one();
  }
  void wait_past(std::uint32_t seen) const noexcept {
    for (auto v = current(); v == seen; v = current()) gen_.wait(v, std::memory_order_acquire);
  }

 private:
  std::atomic<std::uint32_t> gen_{0};
};

// Reports allocations per iteration over the timed loop as `allocs_per_op`.
class AllocsPerOp {
 public:
  AllocsPerOp() noexcept : start_(test::allocations()) {}
  void report(benchmark::State& state) const {
    const double n = static_cast<double>(test::allocations() - start_);
    state.counters["allocs_per_op"] =
        benchmark::Counter(n / static_cast<double>(state.iterations() ? state.iterations() : 1));
  }

 private:
  std::uint64_t start_;
};

}  // namespace airssys::bench
