#pragma once
// Thread waiting and time: the few OS services the runtime core needs.
//
// Everything here is a thin wrapper over one system call (futex,
// clock_gettime, sched_yield, nanosleep on Linux). Nothing allocates.

#include <atomic>
#include <cstdint>

namespace airssys::arch {

// Blocks the calling thread while `word` holds `expected`, for at most
// `timeout_ns` nanoseconds (negative: no limit). Returns early on a wake,
// a signal, or if the word no longer holds `expected` when the call starts;
// callers re-check their condition in a loop. Never allocates.
void wait_on(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
             std::int64_t timeout_ns) noexcept;

// Wakes up to one / all threads blocked in wait_on() on `word`.
void wake_one(const std::atomic<std::uint32_t>& word) noexcept;
void wake_all(const std::atomic<std::uint32_t>& word) noexcept;

// Monotonic clock in nanoseconds; unaffected by wall-clock changes.
std::int64_t monotonic_ns() noexcept;
// Wall-clock time, nanoseconds since the Unix epoch (for logs).
std::int64_t wall_clock_ns() noexcept;

// `base + delta` for deadlines on the clocks above: a delta that would run
// past the largest value saturates there ("no deadline"), and a negative
// one counts as 0, so that an "infinite" timeout never wraps into the past.
constexpr std::int64_t add_saturated(std::int64_t base, std::int64_t delta) noexcept {
  if (delta <= 0) return base;
  return delta > INT64_MAX - base ? INT64_MAX : base + delta;
}

// Milliseconds as nanoseconds, saturating at the int64 range instead of
// overflowing: milliseconds::max() as a timeout stays "no limit".
constexpr std::int64_t ms_to_ns_saturated(std::int64_t ms) noexcept {
  constexpr std::int64_t kNsPerMs = 1'000'000;
  if (ms > INT64_MAX / kNsPerMs) return INT64_MAX;
  if (ms < INT64_MIN / kNsPerMs) return INT64_MIN;
  return ms * kNsPerMs;
}

// Gives the rest of the time slice to another runnable thread.
void yield_thread() noexcept;

// Sleeps for at least `ns` nanoseconds.
void sleep_ns(std::int64_t ns) noexcept;

// Names the calling thread (visible in ps/top/gdb); truncated to 15 chars.
void name_thread(const char* name) noexcept;

// One pause of a spin-wait loop: tells the core we are spinning.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace airssys::arch
