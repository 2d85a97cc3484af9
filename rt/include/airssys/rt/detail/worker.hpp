#pragma once
// A worker thread's state: its ready queues, its timer wheel, its block
// cache. Internal to the runtime; included by system.hpp so that the send
// fast path can be inlined. The loop that runs it is in rt/src/worker.cpp.

#include <airssys/rt/actor.hpp>
#include <airssys/rt/timers.hpp>
#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/pool.hpp>
#include <airssys/arch/poller.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

namespace airssys::detail {

// The next spin of an idle SpinThenPark worker, after a wait of
// `waited_ns` (spin included) that ended in a park. A wait shorter than
// `longest_ns` (SystemConfig::spin_before_park) would have been caught by a
// long enough spin: the spin doubles, from at least 1 µs, up to
// `longest_ns`. A longer wait (a process's exit, a timer, a quiet system)
// would not: the spin halves. So a worker whose messages come back quickly
// keeps spinning, and one that waits on the kernel stops burning its core,
// which it shares with the processes it spawns (a spin delays a child
// still in its exec). A spin that finds work changes nothing.
inline std::int64_t next_spin_ns(std::int64_t spin_ns, std::int64_t waited_ns, std::int64_t longest_ns) noexcept {
  if (waited_ns >= longest_ns) return spin_ns / 2;
  const std::int64_t doubled = spin_ns < 500 ? 1000 : 2 * spin_ns;
  return doubled < longest_ns ? doubled : longest_ns;
}

// Values of Worker::sleeping: awake, parked on its futex, or parked on its
// poller (`park`), which a waker wakes instead.
inline constexpr std::uint32_t kAwake = 0;
inline constexpr std::uint32_t kParkedOnFutex = 1;
inline constexpr std::uint32_t kParkedOnPoller = 2;
// The data value of the process executor's events in Worker::park.
inline constexpr std::uint64_t kProcessEvents = 1;

struct alignas(64) Worker {
  System* system = nullptr;
  std::uint32_t index = 0;
  std::thread thread;

  // Foreign ready queue: cells made ready by other threads. Producers push
  // onto a lock-free stack (one CAS); the worker takes the whole stack with
  // one exchange and reverses it into `ready_list`, so the order is FIFO.
  // An empty queue is a null head: no stub node to re-link, which saves a
  // cache-line transfer per hand-off compared with a stub-based queue.
  alignas(64) std::atomic<Cell*> ready_head{nullptr};
  // kParkedOnFutex or kParkedOnPoller while the worker sleeps; a waker
  // swaps it to kAwake and wakes it the way the old value says.
  alignas(64) std::atomic<std::uint32_t> sleeping{kAwake};
  std::atomic<bool> exit{false};
  // Senders blocked (Backpressure::Block) on a mailbox of this worker, and
  // the epoch they wait on; bumped after a pass that took messages out.
  alignas(64) std::atomic<std::uint32_t> space_waiters{0};
  std::atomic<std::uint32_t> space_epoch{0};
  // While this worker itself waits in a blocking send: a sequence number
  // (high 32 bits, new for each wait) and the slot + 1 of the full mailbox
  // it waits on (low 32 bits, 0 when not waiting). Written by this worker
  // only; read by other workers about to wait, to find wait cycles
  // (System::closes_wait_cycle). Untouched by sends that do not wait.
  std::atomic<std::uint64_t> waits_on{0};
  // Consumer side, this worker only.
  alignas(64) Cell* ready_list = nullptr;
  Cell* local_head = nullptr;  // local ready queue: cells made ready by this worker
  Cell* local_tail = nullptr;
  // How long an idle SpinThenPark worker polls before it parks: starts at
  // SystemConfig::spin_before_park and adapts (System::idle).
  std::int64_t spin_ns = 0;
  // Once an actor of this worker has used the process executor, the worker
  // parks here instead of on its futex: on its own wake-up and on the
  // executor's events (kProcessEvents), which it then handles itself
  // (ProcessExecutor::reactor_pass) rather than waiting to be woken by the
  // reactor thread for them. Made on this worker; read by wakers only after
  // they swapped kParkedOnPoller out of `sleeping`.
  arch::Poller park;
  bool park_failed = false;  // no descriptor for it: the futex, as before
  // The last pass this worker tried was another thread's to run: the
  // executor's events stay readable until that pass takes them, so the
  // next park is on the futex (System::idle), not a loop on the poller.
  bool pass_lost = false;
  BlockCache cache;        // message blocks
  BlockCache actor_cache;  // actor-state blocks
  TimerWheel timers;
  std::atomic<std::uint64_t> handled{0};  // messages handled (this worker writes)
  std::atomic<std::uint64_t> stopped{0};  // actors finalized (this worker writes)
  std::atomic<std::uint64_t> spawned{0};  // actors spawned from this worker (this worker writes)
  // Any thread. A cell is in at most one ready queue at a time (kQueued).
  void ready_push(Cell* c) noexcept {
    Cell* head = ready_head.load(std::memory_order_relaxed);
    do {
      c->link.store(head, std::memory_order_relaxed);
      // seq_cst: the scheduling protocol reads `sleeping` after this push
      // (see System::schedule_foreign); also releases the cell to the worker.
    } while (!ready_head.compare_exchange_weak(head, c, std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
  }
  // This worker only.
  Cell* ready_pop() noexcept {
    if (ready_list == nullptr) {
      if (ready_head.load(std::memory_order_relaxed) == nullptr) return nullptr;
      // acquire: pairs with the pushers' CAS; their links and cells are visible.
      Cell* stack = ready_head.exchange(nullptr, std::memory_order_acquire);
      while (stack != nullptr) {  // reverse: oldest first
        Cell* next = stack->link.load(std::memory_order_relaxed);
        stack->link.store(ready_list, std::memory_order_relaxed);
        ready_list = stack;
        stack = next;
      }
    }
    Cell* c = ready_list;
    ready_list = c->link.load(std::memory_order_relaxed);
    return c;
  }
  bool ready_maybe_nonempty() const noexcept {
    return ready_list != nullptr || ready_head.load(std::memory_order_seq_cst) != nullptr;
  }

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
