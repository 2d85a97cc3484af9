#pragma once
// Timers: the TimerId a user holds, and the per-worker timing wheel that
// arms, cancels and fires send_after timers and the timeouts of asks.

#include <airssys/error.hpp>
#include <airssys/rt/actor_ref.hpp>
#include <airssys/rt/detail/mailbox.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace airssys {

// Handle to an armed timer; cancel() with it from any thread.
struct TimerId {
  std::uint32_t worker = ~0u;
  std::uint32_t index = 0;
  std::uint32_t gen = 0;
};

namespace detail {

struct Worker;

// One armed timer. Owned by one worker; cancel() may come from any thread
// and only flips `state`, the owner frees the entry when its tick comes (a
// timer with no deadline: at the owner's next sweep, see TimerWheel).
struct TimerEntry {
  std::atomic<std::uint32_t> state{0};  // gen_phase::make(gen, TimerWheel phase)
  std::uint32_t next = 0;      // bucket chain / free chain, index+1 (0 = none)
  std::int64_t deadline = 0;   // tick
  Node* node = nullptr;        // the message to deliver, already built
  ActorId target;
  void (*destroy)(Node*) noexcept = nullptr;
  std::uint32_t guard_index = ~0u;  // pending ask this timer times out, if any
  std::uint32_t guard_gen = 0;
};

// A hashed timing wheel of 1 ms ticks: entries hash to slot deadline % kSlots
// and wait there whole rounds until their tick. Timers of one tick fire in
// the order they were set. Only the owning worker arms, polls and fires;
// any thread may cancel. Capacity is fixed at init: arming allocates nothing.
// A timer with no deadline (nanoseconds::max(), kForever) is kept off the
// wheel, on a list of its own: it never makes the worker wake for a tick,
// and it gives its entry back at the next arm on this worker once it is
// cancelled, or once its target has stopped (an ask's: once its asker has
// stopped and the ask is unanswered); the next arm sweeps that list when
// a cancel has flagged it, and always before it would report Full.
class TimerWheel {
 public:
  static constexpr std::uint32_t kSlots = 1024;
  static constexpr std::int64_t kTickNs = 1'000'000;

  // The phase of an entry, in the low two bits of its state word; the rest
  // is a 30-bit generation that makes each arming's TimerId unique.
  static constexpr std::uint32_t kFree = 0;       // on the free chain
  static constexpr std::uint32_t kArmed = 1;      // waiting for its tick
  static constexpr std::uint32_t kCancelled = 2;  // freed at its tick, not delivered
  static constexpr std::uint32_t kForever = 3;    // armed with no deadline: never fires

  TimerWheel() = default;
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  ~TimerWheel();

  // Reserves `capacity` entries whose generations start at `first_gen`
  // (see SystemTag::first_gen30), for worker `owner` (number `worker`).
  void init(Worker& owner, std::uint32_t worker, std::uint32_t capacity, std::uint32_t first_gen,
            std::int64_t now_tick);

  // On the owning worker: delivers `n` to `target` on the system lane after
  // `delay` (rounded up to ticks; nanoseconds::max() never fires). `destroy`
  // destroys the payload of a node that is not delivered. A timer that
  // guards a pending ask (guard_index != ~0u) is its timeout: it fires only
  // if it claims the ask (AskTable::claim_timeout).
  Result<TimerId> arm(Node* n, ActorId target, std::chrono::nanoseconds delay,
                      void (*destroy)(Node*) noexcept, std::uint32_t guard_index,
                      std::uint32_t guard_gen) noexcept;
  // Any thread: false if the timer fired, was cancelled, or is not of this
  // wheel's capacity.
  bool cancel(std::uint32_t index, std::uint32_t gen) noexcept;
  // Timers on the wheel (those with no deadline are not).
  bool armed() const noexcept { return armed_ != 0; }
  std::uint32_t capacity() const noexcept { return capacity_; }

  // On the owning worker: fires every timer whose tick has passed.
  void poll(Worker& w) noexcept;
  // At shutdown, on the thread that plays worker `w`: frees every entry and
  // its message, and voids the asks they guarded.
  void drain(Worker& w) noexcept;

 private:
  // False: the entry must stay armed one more round (see the ask guard).
  bool fire(Worker& w, TimerEntry& e) noexcept;
  void link(std::uint32_t slot, std::uint32_t index1) noexcept;
  // Frees the no-deadline timers that are cancelled or whose target has
  // stopped.
  void sweep_forever(Worker& w) noexcept;
  void free_entry(std::uint32_t index1) noexcept;

  TimerEntry* entries_ = nullptr;
  Worker* owner_ = nullptr;
  std::uint32_t worker_ = 0;
  std::uint32_t capacity_ = 0;
  std::uint32_t free_head_ = 0;  // index+1
  std::uint32_t armed_ = 0;
  std::int64_t current_ = 0;     // last tick processed
  std::uint32_t forever_head_ = 0;  // index+1: the no-deadline timers, chained by `next`
  // Set by a cancel of a no-deadline timer (any thread), cleared by the
  // sweep that follows at the next arm.
  std::atomic<bool> forever_cancelled_{false};
  std::uint32_t heads_[kSlots] = {};
  std::uint32_t tails_[kSlots] = {};
};

}  // namespace detail
}  // namespace airssys
