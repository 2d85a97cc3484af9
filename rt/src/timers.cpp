// Timers: each worker's TimerWheel — arming, cancelling, polling and firing
// send_after timers and the timeouts of actors' asks — and System::cancel.
#include <airssys/rt/timers.hpp>

#include <airssys/arch/wait.hpp>
#include <airssys/rt/system.hpp>

#include <new>

namespace airssys {

bool System::cancel(TimerId id) noexcept {
  if (id.worker >= config_.workers || id.index >= config_.timers_per_worker) return false;
  return workers_[id.worker].timers.cancel(id.index, id.gen);
}

namespace detail {

TimerWheel::~TimerWheel() {
  if (entries_ != nullptr) release(entries_);
}

void TimerWheel::init(Worker& owner, std::uint32_t worker, std::uint32_t capacity, std::uint32_t first_gen,
                      std::int64_t now_tick) {
  owner_ = &owner;
  worker_ = worker;
  capacity_ = capacity;
  entries_ = static_cast<TimerEntry*>(reserve(sizeof(TimerEntry) * capacity, 64));
  for (std::uint32_t k = 0; k < capacity; ++k) {
    auto* e = new (&entries_[k]) TimerEntry();
    e->state.store(gen_phase::make(first_gen, kFree), std::memory_order_relaxed);
    e->next = k + 1 < capacity ? k + 2 : 0;
  }
  free_head_ = 1;
  current_ = now_tick;
}

// Appends entry index1 - 1 to the bucket of `slot`.
void TimerWheel::link(std::uint32_t slot, std::uint32_t index1) noexcept {
  if (tails_[slot] != 0) entries_[tails_[slot] - 1].next = index1; else heads_[slot] = index1;
  tails_[slot] = index1;
}

Result<TimerId> TimerWheel::arm(Node* n, ActorId target, std::chrono::nanoseconds delay,
                                void (*destroy)(Node*) noexcept, std::uint32_t guard_index,
                                std::uint32_t guard_gen) noexcept {
  if (delay.count() < 0)
    return Error::make(Errc::InvalidArgument, "timer delay %lld ns is negative",
                       static_cast<long long>(delay.count()));
  // acquire: the cancelled states the flag was set after are seen.
  if (forever_head_ != 0 && (free_head_ == 0 || (forever_cancelled_.load(std::memory_order_relaxed) &&
                                                forever_cancelled_.exchange(false, std::memory_order_acquire))))
    sweep_forever(*owner_);
  if (free_head_ == 0)
    return Error::make(Errc::Full, "all %u timers of worker %u are armed", capacity_, worker_);
  std::uint32_t index = free_head_ - 1;
  TimerEntry& e = entries_[index];
  free_head_ = e.next;
  // The first tick that starts at or after now + delay: poll fires a tick
  // once the clock has reached its start, so a timer is never early. (The
  // tick now is in counted from its start would make it early by up to a
  // tick.) Saturated: nanoseconds::max() never fires.
  const std::int64_t now_ns = arch::monotonic_ns();
  const std::int64_t due_ns = arch::add_saturated(now_ns, delay.count());
  const std::int64_t now = now_ns / kTickNs;
  if (armed_ == 0 && current_ < now) current_ = now;  // no walk through idle ticks later
  std::int64_t deadline = due_ns / kTickNs + (due_ns % kTickNs != 0 ? 1 : 0);
  if (deadline <= current_) deadline = current_ + 1;
  e.deadline = deadline;
  e.node = n;
  e.target = target;
  e.destroy = destroy;
  e.guard_index = guard_index;
  e.guard_gen = guard_gen;
  e.next = 0;
  const std::uint32_t gen = gen_phase::gen(e.state.load(std::memory_order_relaxed));
  if (due_ns == INT64_MAX) {
    // No deadline: off the wheel (no tick to wait for), on the forever list.
    e.next = forever_head_;
    forever_head_ = index + 1;
    // release: a canceller that sees "armed" sees a complete entry.
    e.state.store(gen_phase::make(gen, kForever), std::memory_order_release);
    return TimerId{worker_, index, gen};
  }
  // release: a canceller that sees "armed" sees a complete entry.
  e.state.store(gen_phase::make(gen, kArmed), std::memory_order_release);
  link(static_cast<std::uint32_t>(deadline % kSlots), index + 1);
  ++armed_;
  return TimerId{worker_, index, gen};
}

bool TimerWheel::cancel(std::uint32_t index, std::uint32_t gen) noexcept {
  if (index >= capacity_) return false;
  auto& e = entries_[index];
  std::uint32_t expected = gen_phase::make(gen, kArmed);
  // The owning worker frees the entry at its tick; here only the phase flips.
  if (e.state.compare_exchange_strong(expected, gen_phase::make(gen, kCancelled), std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
    return true;
  // A timer with no deadline: freed at the owner's next arm, flagged here.
  expected = gen_phase::make(gen, kForever);
  if (!e.state.compare_exchange_strong(expected, gen_phase::make(gen, kCancelled), std::memory_order_acq_rel,
                                       std::memory_order_relaxed))
    return false;
  // release: the sweep that clears the flag sees the cancelled state.
  forever_cancelled_.store(true, std::memory_order_release);
  return true;
}

void TimerWheel::free_entry(std::uint32_t index1) noexcept {
  entries_[index1 - 1].next = free_head_;
  free_head_ = index1;
}

void TimerWheel::sweep_forever(Worker& w) noexcept {
  System& s = *w.system;
  std::uint32_t* link_to = &forever_head_;
  for (std::uint32_t i = forever_head_; i != 0;) {
    TimerEntry& e = entries_[i - 1];
    const std::uint32_t next = e.next;
    std::uint32_t st = e.state.load(std::memory_order_acquire);
    const std::uint32_t gen = gen_phase::gen(st);
    bool done = gen_phase::phase(st) == kCancelled;
    if (!done && !s.alive(e.target)) {
      // Its target has stopped: nobody will ever take what it would send.
      if (e.guard_index != ~0u) {
        // An ask's: only an unanswered ask is voided here (a replier that
        // holds the claim may still give it back: its cancel comes later).
        done = s.asks_.claim_timeout(e.guard_index, e.guard_gen) != AskTable::TimeoutClaim::Held;
      } else {
        // against a cancel of the same timer: one of the two wins.
        done = e.state.compare_exchange_strong(st, gen_phase::make(gen, kCancelled), std::memory_order_acq_rel,
                                               std::memory_order_acquire) ||
               gen_phase::phase(st) == kCancelled;
      }
    }
    if (done) {
      *link_to = next;
      e.state.store(gen_phase::make(next_gen(gen), kFree), std::memory_order_relaxed);
      e.destroy(e.node);
      s.free_node(e.node, &w);
      free_entry(i);
    } else {
      link_to = &e.next;
    }
    i = next;
  }
}

void TimerWheel::poll(Worker& w) noexcept {
  const std::int64_t now = arch::monotonic_ns() / kTickNs;
  while (current_ < now && armed_ != 0) {
    ++current_;
    const std::uint32_t slot = static_cast<std::uint32_t>(current_ % kSlots);
    std::uint32_t i = heads_[slot];
    std::uint32_t prev = 0;
    while (i != 0) {
      TimerEntry& e = entries_[i - 1];
      const std::uint32_t next = e.next;
      // A cancelled timer of a later round gives its entry back now, on the
      // wheel's pass over its slot, not only at its tick. relaxed: only the
      // owner frees; fire() reads the state again (acquire).
      if (e.deadline <= current_ ||
          gen_phase::phase(e.state.load(std::memory_order_relaxed)) == kCancelled) {
        if (prev != 0) entries_[prev - 1].next = next; else heads_[slot] = next;
        if (tails_[slot] == i) tails_[slot] = prev;
        if (fire(w, e)) {
          free_entry(i);
          --armed_;
        } else {
          // Deferred by fire(): look again at the next tick.
          e.deadline = current_ + 1;
          e.next = 0;
          link(static_cast<std::uint32_t>(e.deadline % kSlots), i);
        }
      } else {
        prev = i;
      }
      i = next;
    }
  }
  if (armed_ == 0) current_ = now;
}

bool TimerWheel::fire(Worker& w, TimerEntry& e) noexcept {
  System& s = *w.system;
  std::uint32_t st = e.state.load(std::memory_order_acquire);
  const std::uint32_t gen = gen_phase::gen(st);
  bool deliver_it = false;
  if (gen_phase::phase(st) == kArmed && e.guard_index != ~0u) {
    // An ask's timeout. The request is claimed before the entry is
    // consumed: while a replier holds the request the entry must stay
    // armed, because the replier may still give the request back (its
    // reply failed) and this timeout is then the ask's only Reply.
    switch (s.asks_.claim_timeout(e.guard_index, e.guard_gen)) {
      case AskTable::TimeoutClaim::Claimed: deliver_it = true; break;
      case AskTable::TimeoutClaim::Held: return false;  // still armed: look again next tick
      case AskTable::TimeoutClaim::Answered: break;
    }
    // Claimed by this timer, or answered: either way nobody cancels the
    // entry any more (a replier cancels only while it holds the claim).
    e.state.store(gen_phase::make(next_gen(gen), kFree), std::memory_order_relaxed);
  } else if (gen_phase::phase(st) == kArmed &&
             e.state.compare_exchange_strong(st, gen_phase::make(next_gen(gen), kFree), std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
    deliver_it = true;
  } else {
    e.state.store(gen_phase::make(next_gen(gen), kFree), std::memory_order_relaxed);  // was cancelled
  }
  if (deliver_it && s.post_system(e.target, e.node, &w)) return true;
  if (deliver_it) s.count_dead_letter();
  e.destroy(e.node);
  s.free_node(e.node, &w);
  return true;
}

void TimerWheel::drain(Worker& w) noexcept {
  System& s = *w.system;
  for (std::uint32_t k = 0; k < capacity_; ++k) {
    auto& e = entries_[k];
    const std::uint32_t st = e.state.load(std::memory_order_relaxed);
    if (gen_phase::phase(st) == kFree) continue;
    e.destroy(e.node);
    s.free_node(e.node, &w);
    e.state.store(gen_phase::make(next_gen(gen_phase::gen(st)), kFree), std::memory_order_relaxed);
    // An ask this timer guarded is void: its asker has stopped. The entry
    // is freed unless a replier on a plain thread holds it (that one frees
    // it, or gives it back to nobody).
    if ((gen_phase::phase(st) == kArmed || gen_phase::phase(st) == kForever) && e.guard_index != ~0u)
      s.asks_.void_waiting(e.guard_index, e.guard_gen);
  }
  armed_ = 0;
  forever_head_ = 0;
}

}  // namespace detail
}  // namespace airssys
