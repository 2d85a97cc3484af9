// Sending: admission to a mailbox (bound, backpressure, the blocking-send
// cycle check) and scheduling a cell on its home worker. The fast path
// (System::send_on, admit_local, push) is inline in system.hpp.
#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>

namespace airssys {

using detail::Cell;
using detail::Node;
using detail::Worker;
namespace word = detail::word;

using detail::foreign_pending;
using detail::raise_high_water;

Error System::bad_ref(ActorId id) const noexcept {
  if (!id.valid()) return Error::make(Errc::InvalidArgument, "actor handle is empty");
  return Error::make(Errc::InvalidArgument, "actor #%u is not a slot of this system (capacity %u)",
                     id.slot, config_.actor_capacity);
}

Error System::pool_exhausted(std::size_t size_class, ActorId to) const noexcept {
  return Error::make(Errc::Full, "message pool for %zu-byte blocks is exhausted (%u blocks) sending to actor #%u",
                     kMinBlockSize << size_class, messages_.count(size_class), to.slot);
}

System::Admission System::admit(Cell* c, ActorId id, Worker* w, Backpressure bp, bool system_lane,
                                Result<void>& status) noexcept {
  Worker* blocked_on = nullptr;
  auto unblock = [&] {
    if (blocked_on != nullptr) blocked_on->space_waiters.fetch_sub(1, std::memory_order_relaxed);
  };
  for (;;) {
    // The handled count before the word, so that their difference is never
    // "negative" (see detail::foreign_pending). acquire (handled): pairs
    // with the consumer's release store, so room it freed is seen with the
    // node it popped. acquire (word): pairs with the release store of the
    // word in start_actor(), so home and capacity are read as the spawner
    // wrote them.
    const std::uint64_t handled = c->handled_foreign.load(std::memory_order_acquire);
    std::uint64_t cur = c->word.load(std::memory_order_acquire);
    if (word::gen(cur) != id.gen || (cur & word::kClosed) != 0) {
      unblock();
      status = Error::make(Errc::Dead, "actor #%u (generation %u) has stopped", id.slot, id.gen);
      return Admission::Refused;
    }
    // home and capacity are fixed while the generation matches; read them
    // only after that check (the acquire above orders them after spawn).
    const bool local = w != nullptr && w->index == c->home.load(std::memory_order_relaxed);
    const std::uint32_t capacity = c->capacity.load(std::memory_order_relaxed);
    const std::uint32_t queued =
        foreign_pending(cur, handled) + c->local_pending.load(std::memory_order_relaxed);
    if (system_lane || queued < capacity) {
      if (local) {
        // Only the home worker writes local_pending; relaxed suffices, the
        // node itself is published by the queue push.
        c->local_pending.store(c->local_pending.load(std::memory_order_relaxed) + 1,
                               std::memory_order_relaxed);
        raise_high_water(c, queued + 1);
        unblock();
        return Admission::Local;
      }
      std::uint64_t next = (cur & ~word::kAdmittedMask) | ((cur + 1) & word::kAdmittedMask) | word::kQueued;
      // acq_rel: the CAS orders this admission against the consumer's CAS
      // that clears kQueued and the finalizer's fetch_or of kClosed. On
      // failure both values are read again, handled first.
      if (c->word.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
        raise_high_water(c, queued + 1);
        unblock();
        return (cur & word::kQueued) != 0 ? Admission::Foreign : Admission::ForeignSchedule;
      }
      continue;
    }
    // Full as of `handled`, which may be older than the word. If the
    // consumer has taken messages out since, there may be room: look again.
    // Otherwise no message was taken out between the two reads, so the
    // mailbox held `queued` messages when the word was read.
    if (c->handled_foreign.load(std::memory_order_acquire) != handled) continue;
    switch (bp) {
      case Backpressure::Error:
        unblock();
        status = Error::make(Errc::Full, "mailbox of actor #%u is full (capacity %u)", id.slot,
                             capacity);
        return Admission::Refused;
      case Backpressure::Drop:
        unblock();
        c->dropped.fetch_add(1, std::memory_order_relaxed);
        dead_letters_.fetch_add(1, std::memory_order_relaxed);
        status = {};
        return Admission::Dropped;
      case Backpressure::Block:
        break;
    }
    if (w != nullptr && local) {
      unblock();
      status = Error::make(Errc::WouldDeadlock,
                           "blocking send to actor #%u from its own worker could never finish",
                           id.slot);
      return Admission::Refused;
    }
    if (shutting_down()) {
      unblock();
      status = Error::make(Errc::ShuttingDown, "system is shutting down; blocked send to actor #%u given up",
                           id.slot);
      return Admission::Refused;
    }
    // Wait on the target's home worker, which bumps its space epoch after a
    // pass that took messages out while senders wait on it.
    Worker& home = workers_[c->home.load(std::memory_order_relaxed)];
    if (blocked_on == nullptr) {
      blocked_on = &home;
      // seq_cst: the worker reads space_waiters after freeing room.
      home.space_waiters.fetch_add(1, std::memory_order_seq_cst);
    }
    std::uint32_t epoch = home.space_epoch.load(std::memory_order_acquire);
    // A worker that sleeps here drains nothing: it says on which mailbox it
    // waits, for the cycle check (closes_wait_cycle), from here until it
    // stops waiting, always before it tries to admit again.
    if (w != nullptr) publish_wait(*w, slot_of(c));
    if (detail::at_bound(c, id.gen)) {
      if (w != nullptr && closes_wait_cycle(*w, c)) {
        publish_wait(*w, ~0u);
        unblock();
        status = Error::make(Errc::WouldDeadlock,
                             "blocking send to actor #%u from worker %u would close a cycle of "
                             "workers each blocked on a full mailbox of the next",
                             id.slot, w->index);
        return Admission::Refused;
      }
      // The timeout covers a bump that raced with this check.
      arch::wait_on(home.space_epoch, epoch, 1'000'000);
    }
    if (w != nullptr) publish_wait(*w, ~0u);
  }
}

void System::publish_wait(Worker& w, std::uint32_t slot) noexcept {
  // Only this worker writes its wait word: a new sequence number for each
  // wait makes every published value unique, so that a walker that reads
  // the same value twice knows the worker waited in between.
  const std::uint64_t prev = w.waits_on.load(std::memory_order_relaxed);
  const std::uint64_t next = slot == ~0u ? (prev & ~std::uint64_t{0xffffffff})
                                         : (((prev >> 32) + 1) << 32) | (std::uint64_t{slot} + 1);
  // seq_cst: a worker that publishes and then walks, against another that
  // does the same (Dekker): at least one of two workers closing a cycle at
  // once sees the other's wait. Withdrawing happens before any admission
  // attempt, so a walker that still reads the value after it saw the target
  // full knows this worker had not been admitted (the admission CAS would
  // release the withdrawal to the walker's acquire of the word).
  w.waits_on.store(next, std::memory_order_seq_cst);
}

bool System::closes_wait_cycle(const Worker& self, const Cell* target) noexcept {
  // Follow "worker x waits on a mailbox homed on worker y" from the target's
  // home worker; a cycle through this worker has at most `workers` edges.
  constexpr std::uint32_t kMax = 255;
  std::uint32_t who[kMax];
  std::uint64_t seen[kMax];
  std::uint32_t n = 0;
  std::uint32_t x = target->home.load(std::memory_order_relaxed);
  while (x != self.index) {
    if (n == config_.workers || n == kMax) return false;  // a cycle that does not pass here
    const std::uint64_t v = workers_[x].waits_on.load(std::memory_order_seq_cst);
    const std::uint32_t slot1 = static_cast<std::uint32_t>(v);
    if (slot1 == 0 || slot1 > config_.actor_capacity) return false;  // x is not waiting
    who[n] = x;
    seen[n] = v;
    ++n;
    x = cells_[slot1 - 1].home.load(std::memory_order_relaxed);
  }
  // A cycle, as read one edge at a time. It is a deadlock if at one moment
  // every worker on it waits and every mailbox waited on is full: then no
  // one can drain any of them. Each worker on it stays in the same wait from
  // its first read to its second (the sequence number makes the values
  // unique), so none of them drained anything in between, and a mailbox
  // seen full in between stays full until the second reads.
  if (!detail::at_bound(target)) return false;
  for (std::uint32_t k = 0; k < n; ++k)
    if (!detail::at_bound(&cells_[static_cast<std::uint32_t>(seen[k]) - 1])) return false;
  for (std::uint32_t k = 0; k < n; ++k)
    if (workers_[who[k]].waits_on.load(std::memory_order_seq_cst) != seen[k]) return false;
  return true;
}

void System::unadmit(Cell* c, Admission how) noexcept {
  if (how == Admission::Local) {
    c->local_pending.store(c->local_pending.load(std::memory_order_relaxed) - 1,
                           std::memory_order_relaxed);
    return;
  }
  std::uint64_t cur = c->word.load(std::memory_order_relaxed);
  while (!c->word.compare_exchange_weak(
      cur, (cur & ~word::kAdmittedMask) | ((cur - 1) & word::kAdmittedMask), std::memory_order_acq_rel,
      std::memory_order_relaxed)) {
  }
  // This sender set kQueued: a foreign run must follow to clear it.
  if (how == Admission::ForeignSchedule) schedule_foreign(c);
}

void System::schedule_foreign(Cell* c) noexcept {
  Worker& wk = workers_[c->home.load(std::memory_order_relaxed)];
  wk.ready_push(c);
  // seq_cst: the push's CAS and this load against the worker's
  // exchange of `sleeping` in idle() and its re-check of the queue; in the
  // single total order one of the two sees the other.
  if (wk.sleeping.load(std::memory_order_seq_cst) != detail::kAwake)
    wake_parked(wk, wk.sleeping.exchange(detail::kAwake, std::memory_order_seq_cst));
}

void System::wake_parked(Worker& wk, std::uint32_t was) noexcept {
  if (was == detail::kParkedOnPoller) {
    wk.park.wake();
  } else if (was == detail::kParkedOnFutex) {
    arch::wake_one(wk.sleeping);
  }
}

bool System::post_system(ActorId to, Node* n, Worker* w) noexcept {
  auto c = cell_for(to);
  if (!c) return false;
  Result<void> status;
  Admission how = admit(*c, to, w, Backpressure::Error, true, status);
  if (how == Admission::Refused) return false;
  push(*c, n, w, how);
  return true;
}

}  // namespace airssys
