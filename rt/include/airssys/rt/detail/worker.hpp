#pragma once
// A worker thread's state. Internal to the runtime; included by system.hpp
// so that the send fast path can be inlined.

#include <airssys/rt/actor.hpp>
#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/pool.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

namespace airssys::detail {

// One armed send_after timer. Owned by one worker; cancel() may come from
// any thread and only flips `state`, the owner frees the entry when its tick
// comes.
struct TimerEntry {
  // gen << 2 | phase; phase 0 free, 1 armed, 2 cancelled.
  std::atomic<std::uint32_t> state{0};
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
// the order they were set.
struct TimerWheel {
  static constexpr std::uint32_t kSlots = 1024;
  static constexpr std::int64_t kTickNs = 1'000'000;
  TimerEntry* entries = nullptr;
  std::uint32_t capacity = 0;
  std::uint32_t free_head = 0;  // index+1
  std::uint32_t armed = 0;
  std::int64_t current = 0;     // last tick processed
  std::uint32_t heads[kSlots] = {};
  std::uint32_t tails[kSlots] = {};
};

struct alignas(64) Worker {
  System* system = nullptr;
  std::uint32_t index = 0;
  std::thread thread;

  // Foreign ready queue: cells made ready by other threads (MPSC).
  alignas(64) std::atomic<Cell*> ready_tail{nullptr};
  // 1 while the worker sleeps on its futex; a waker swaps it to 0.
  alignas(64) std::atomic<std::uint32_t> sleeping{0};
  std::atomic<bool> exit{false};
  // Consumer side, this worker only.
  alignas(64) Cell* ready_head = nullptr;
  Cell ready_stub;
  Cell* local_head = nullptr;  // local ready queue: cells made ready by this worker
  Cell* local_tail = nullptr;
  BlockCache cache;
  TimerWheel timers;
  std::atomic<std::uint64_t> handled{0};  // messages handled (this worker writes)
  std::atomic<std::uint64_t> stopped{0};  // actors finalized (this worker writes)
  void local_push(Cell* c) noexcept {
    c->local_next = nullptr;
    if (local_tail != nullptr) local_tail->local_next = c; else local_head = c;
    local_tail = c;
  }
  Cell* local_pop() noexcept {
    Cell* c = local_head;
    if (c != nullptr) {
      local_head = c->local_next;
      if (local_head == nullptr) local_tail = nullptr;
    }
    return c;
  }
};

// The worker running on this thread, if any (null on other threads).
// Constant-initialized inline variable: every use is a direct TLS access,
// with no wrapper function or guard.
inline thread_local constinit Worker* tls_worker = nullptr;

}  // namespace airssys::detail
