// The physical floor for a cross-core round trip: two threads bouncing a
// counter through two cache-line-aligned atomics, nothing else.

#include <airssys/arch/wait.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace {

struct alignas(64) Line {
  std::atomic<std::uint64_t> value{0};
};

void BM_limit_spin_roundtrip(benchmark::State& state) {
  Line ping, pong;
  std::atomic<bool> stop{false};
  std::thread partner([&] {
    std::uint64_t seen = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      std::uint64_t v = ping.value.load(std::memory_order_acquire);
      if (v != seen) {
        seen = v;
        pong.value.store(v, std::memory_order_release);
      } else {
        airssys::arch::cpu_relax();
      }
    }
  });
  std::uint64_t i = 0;
  for (auto _ : state) {
    ping.value.store(++i, std::memory_order_release);
    while (pong.value.load(std::memory_order_acquire) != i) airssys::arch::cpu_relax();
  }
  stop.store(true);
  partner.join();
}

}  // namespace

BENCHMARK(BM_limit_spin_roundtrip)->Name("limit/spin_roundtrip")->UseRealTime();
