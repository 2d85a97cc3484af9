// The worker loop: running ready cells, one turn of an actor (its
// messages up to the budget), and idling.
#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>
#include <airssys/osl/executor.hpp>

#include "guard.hpp"

#include <cstdio>

namespace airssys {

using detail::Cell;
using detail::Node;
using detail::NodeKind;
using detail::Turn;
using detail::Worker;
namespace word = detail::word;

void System::run_worker(Worker& w) noexcept {
  detail::tls_worker = &w;
  char name[16];
  std::snprintf(name, sizeof name, "airssys-w%u", w.index);
  arch::name_thread(name);
  std::int64_t idle_since = -1;
  std::uint32_t spins = 0;
  w.spin_ns = longest_spin_ns();
  while (!w.exit.load(std::memory_order_acquire)) {
    bool worked = false;
    // Up to kLocalRun cells made ready on this worker, then one from other
    // threads: a busy local queue delays a foreign cell by at most that.
    constexpr int kLocalRun = 8;
    for (int k = 0; k < kLocalRun; ++k) {
      Cell* c = w.local_pop();
      if (c == nullptr) break;
      c->local_queued = false;
      run_turn(w, c, false);
      worked = true;
    }
    if (Cell* c = w.ready_pop()) {
      run_turn(w, c, true);
      worked = true;
    }
    if (worked && w.space_waiters.load(std::memory_order_relaxed) != 0) notify_space(w);
    if (w.timers.armed() && (!worked || ++spins % 64 == 0)) w.timers.poll(w);
    // A timer may just have made a cell of this worker ready.
    if (worked || w.local_head != nullptr) {
      idle_since = -1;
      continue;
    }
    idle(w, idle_since);
  }
  messages_.flush(w.cache);
  actors_.flush(w.actor_cache);
  detail::tls_worker = nullptr;
}

void System::idle(Worker& w, std::int64_t& idle_since) noexcept {
  if (config_.idle == IdleStrategy::Spin) {
    for (int i = 0; i < 16; ++i) arch::cpu_relax();
    return;
  }
  const bool spins = config_.idle == IdleStrategy::SpinThenPark;
  if (spins) {
    std::int64_t now = arch::monotonic_ns();
    if (idle_since < 0) idle_since = now;
    if (now - idle_since < w.spin_ns) {
      for (int i = 0; i < 16; ++i) arch::cpu_relax();
      return;
    }
  }
  // seq_cst: see schedule_foreign().
  // Blocks stashed in this worker's cache go back to the shared pools
  // before it sleeps, so that no other thread sees Full because of them.
  messages_.flush(w.cache);
  actors_.flush(w.actor_cache);
  // After a lost pass, once on the futex: the poller would say at once
  // that the events the other thread's pass has not taken yet are still
  // there, and again until it has, a busy loop as long as that pass. The
  // pass's thread delivers what is for this worker's actors, waking it as
  // any sender does.
  osl::ProcessExecutor* ex = w.park.valid() && !w.pass_lost ? processes_.built() : nullptr;
  w.pass_lost = false;
  const std::uint32_t parked = ex != nullptr ? detail::kParkedOnPoller : detail::kParkedOnFutex;
  // seq_cst: see schedule_foreign().
  (void)w.sleeping.exchange(parked, std::memory_order_seq_cst);
  if (w.ready_maybe_nonempty() ||
      w.exit.load(std::memory_order_seq_cst)) {
    w.sleeping.store(detail::kAwake, std::memory_order_relaxed);
    if (spins) w.spin_ns = detail::next_spin_ns(w.spin_ns, arch::monotonic_ns() - idle_since, longest_spin_ns());
    return;
  }
  // With timers armed, wake every tick to fire them.
  const std::int64_t timeout = w.timers.armed() ? detail::TimerWheel::kTickNs : -1;
  std::uint64_t woke[2];
  std::size_t events = 0;
  if (ex != nullptr) {
    events = w.park.wait(woke, 2, timeout);
  } else {
    arch::wait_on(w.sleeping, detail::kParkedOnFutex, timeout);
  }
  w.sleeping.store(detail::kAwake, std::memory_order_relaxed);
  if (spins) w.spin_ns = detail::next_spin_ns(w.spin_ns, arch::monotonic_ns() - idle_since, longest_spin_ns());
  idle_since = -1;
  // A process event: handled here, so that the message it makes for an
  // actor of this worker needs no wake-up from the reactor thread.
  for (std::size_t k = 0; k < events; ++k)
    if (woke[k] == detail::kProcessEvents && !ex->reactor_pass()) w.pass_lost = true;
}

// On a worker whose actor uses the process executor. Once, on this worker:
// later wakers read `park` only after they swapped kParkedOnPoller out of
// `sleeping`, which this worker stores after making it.
void System::watch_process_events(Worker& w, osl::ProcessExecutor& ex) noexcept {
  if (w.park.valid() || w.park_failed || ex.event_handle() < 0) return;
  auto p = arch::Poller::create();
  if (!p || !p.value().add(ex.event_handle(), false, detail::kProcessEvents)) {
    w.park_failed = true;
    return;
  }
  w.park = std::move(p.value());
}

void System::notify_space(Worker& w) noexcept {
  w.space_epoch.fetch_add(1, std::memory_order_release);
  arch::wake_all(w.space_epoch);
}

void System::requeue(Worker& w, Cell* c, bool foreign) noexcept {
  if (foreign) {
    // kQueued stays set: this worker keeps the duty of the foreign run.
    w.ready_push(c);
  } else if (!c->local_queued) {
    c->local_queued = true;
    w.local_push(c);
  }
}

// Handles one node taken from the mailbox. Returns false if the node was
// kept (a monitor record now linked into the cell).
bool System::deliver(Turn& t, Node* n) noexcept {
  Cell* c = t.cell;
  switch (n->kind) {
    case NodeKind::User:
    case NodeKind::Down:
      AIRSSYS_GUARD(t, c->actor->invoke(t, n));
      break;
    case NodeKind::ProcessExit:
      // The set forgets the process before the handler sees the exit.
      processes_.remove(c, detail::payload<ProcessExited>(n)->pid);
      AIRSSYS_GUARD(t, c->actor->invoke(t, n));
      break;
    case NodeKind::Monitor:
      link_monitor(c, n);
      return false;
    case NodeKind::Started:
    case NodeKind::HealthReply:
      AIRSSYS_GUARD(t, c->actor->invoke(t, n));
      break;
    case NodeKind::Probe: {
      auto* rec = detail::payload<detail::ProbeRecord>(n);
      Health h = Health::Failed;  // a health_check that throws says Failed
      AIRSSYS_GUARD(t, h = c->actor->invoke_health(t));
      if (t.failed) {
        t.failed = false;
        h = Health::Failed;
      }
      rec->report.health = h;
      n->kind = NodeKind::HealthReply;
      if (post_system(rec->watcher, n, t.worker)) return false;
      n->kind = NodeKind::Probe;
      return true;
    }
    case NodeKind::Exit: {
      auto* rec = detail::payload<detail::MonitorRecord>(n);
      t.failed = true;
      t.error = Error::make(Errc::ChildEscalated, "child actor #%u escalated its failure",
                            rec->down.who.slot);
      break;
    }
  }
  if (t.failed) handle_failure(t);
  return true;
}

void System::run_turn(Worker& w, Cell* c, bool foreign) noexcept {
  if (c->dead) {
    release_if_unqueued(w, c, foreign);
    return;
  }
  if (c->finalizing) {
    continue_finalize(w, c, foreign);
    return;
  }
  Turn t{this, c, &w, slot_of(c)};
  if (!c->started) {
    c->started = true;
    if (!build_actor(t)) {
      begin_finalize(w, c, StopReason::Failed, foreign);
      return;
    }
    t.starting = true;
    AIRSSYS_GUARD(t, c->actor->invoke_start(t));
    if (t.failed) handle_failure(t);
    t.starting = false;
    if (t.stop_self) {
      begin_finalize(w, c, t.reason, foreign);
      return;
    }
    if (!t.defer_started) {
      auto* holder = static_cast<detail::ActorHolder*>(c->reserved);
      c->start_done.store(true, std::memory_order_release);  // release: see System::has_started
      if (holder->quiet_started) {
        holder->notify_started = ActorId{};  // started: its failures are no longer start errors
      } else if (holder->notify_started.valid()) {
        (void)report_started(t);
      }
    }
  } else if (c->actor == nullptr) {
    // An in-place restart waits for the old instance's process trees.
    if (!resume_restart(t, foreign)) return;
    if (t.stop_self) {
      begin_finalize(w, c, t.reason, foreign);
      return;
    }
  }
  if ((c->word.load(std::memory_order_acquire) & word::kStop) != 0) {
    begin_finalize(w, c, requested_reason(c), foreign);
    return;
  }
  std::uint32_t handled = 0;
  bool stop_requested = false;
  std::uint64_t handled_foreign = c->handled_foreign.load(std::memory_order_relaxed);
  const std::uint32_t budget = config_.budget;
  while (handled < budget) {
    Node* n = c->queue.pop(c->inbox);
    if (n == nullptr) break;
    ++handled;
    // The room is published before the handler runs: a message being
    // handled no longer counts as queued or against the bound.
    if (n->counted) {
      // release: a sender that sees the new count also sees the room.
      c->handled_foreign.store(++handled_foreign, std::memory_order_release);
    } else {
      c->local_pending.store(c->local_pending.load(std::memory_order_relaxed) - 1,
                             std::memory_order_relaxed);
    }
    c->handled.store(c->handled.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (deliver(t, n)) free_node(n, &w);
    if (t.stop_self || c->actor == nullptr) break;  // stopping, or restarting once its trees are gone
    if (c->stop_hint.load(std::memory_order_relaxed)) {
      c->stop_hint.store(false, std::memory_order_relaxed);
      if ((c->word.load(std::memory_order_acquire) & word::kStop) != 0) {
        stop_requested = true;
        break;
      }
    }
  }
  w.handled.store(w.handled.load(std::memory_order_relaxed) + handled, std::memory_order_relaxed);
  if (t.stop_self) {
    begin_finalize(w, c, t.reason, foreign);
    return;
  }
  if (stop_requested) {
    begin_finalize(w, c, requested_reason(c), foreign);
    return;
  }
  if (handled == budget || c->actor == nullptr) {
    requeue(w, c, foreign);
    return;
  }
  // The mailbox looked empty. A local run has nothing to publish: senders
  // on other threads schedule the cell through kQueued themselves.
  if (!foreign) return;
  std::uint64_t cur = c->word.load(std::memory_order_acquire);
  for (;;) {
    if ((cur & word::kStop) != 0 ||
        ((cur - handled_foreign) & word::kAdmittedMask) != 0) {
      // A stop request, or a message admitted but still being pushed.
      requeue(w, c, true);
      return;
    }
    // acq_rel: a sender whose CAS follows this one sees kQueued clear and
    // schedules the cell again; one that precedes it made this CAS fail.
    if (c->word.compare_exchange_weak(cur, cur & ~word::kQueued, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return;
  }
}

}  // namespace airssys
