// An actor's life: spawn (a slot, its cell set up), stop requests, a
// handler's failure (on_error: resume, restart, stop, escalate), Started and
// health probes, and finalisation — on_stop, its process trees torn down,
// its mailbox drained, then (once the trees are gone) Down to its watchers
// and the slot freed.
#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>

#include "guard.hpp"

#include <new>

namespace airssys {

using detail::Cell;
using detail::Node;
using detail::NodeKind;
using detail::Turn;
using detail::Worker;
namespace word = detail::word;

Result<std::uint32_t> System::acquire_slot(const char* what) noexcept {
  if (this_worker() != nullptr) {
    // A spawn on a worker needs no gate (and no locked instruction): it runs
    // in a turn of a live actor, which shutdown stops and counts out only
    // after this turn, and a worker counts its spawn (release) before that
    // stop (release); live_count() reads stops before spawns, so shutdown's
    // loop sees the new actor live and stops it too. Once shutdown began,
    // this worker sees shutting_down_ here at the latest after it saw its
    // actor's kStop (acquire), which shutdown sets after the flag.
    if (shutting_down_.load(std::memory_order_acquire))
      return Error::make(Errc::ShuttingDown, "%s refused: the system is shutting down", what);
  } else if ((spawn_gate_.fetch_add(1, std::memory_order_seq_cst) & kGateClosed) != 0) {
    // Any other thread enters the spawn gate: shutdown closes it and waits
    // for spawns inside, so none starts after shutdown swept the slots.
    // seq_cst: against shutdown's fetch_or of kGateClosed.
    leave_spawn_gate();
    return Error::make(Errc::ShuttingDown, "%s refused: the system is shutting down", what);
  }
  std::uint32_t slot;
  if (!free_slots_.pop(slot)) {
    leave_spawn_gate();
    return Error::make(Errc::Full, "%s refused: all %u actor slots are in use", what,
                       config_.actor_capacity);
  }
  return slot;
}

void System::leave_spawn_gate() noexcept {
  // Only a spawn from outside the workers entered it (acquire_slot).
  if (this_worker() == nullptr) spawn_gate_.fetch_sub(1, std::memory_order_release);
}

void System::release_unstarted(std::uint32_t slot) noexcept {
  release_slot(slot);
  leave_spawn_gate();
}

Result<ActorId> System::start_actor(std::uint32_t slot, detail::ActorHolder* holder,
                                    const SpawnOptions& options, ActorId parent, bool notify_started) noexcept {
  Cell* c = &cells_[slot];
  if (options.first_signal < 1 || options.first_signal > 64) {
    free_holder(holder);
    release_unstarted(slot);
    return Error::make(Errc::InvalidArgument, "SpawnOptions::first_signal %d is not a signal (1..64)",
                       options.first_signal);
  }
  holder->first_signal = static_cast<std::uint8_t>(options.first_signal);
  if (options.kill_timeout.count() < 0) {
    holder->kill_timeout_ns = -1;
  } else {
    // milliseconds::max() saturates: never KILL.
    holder->kill_timeout_ns = arch::ms_to_ns_saturated(options.kill_timeout.count());
  }
  holder->notify_started = notify_started ? parent : ActorId{};
  // The admitted count in the cell's word has 29 bits; a bound at or above
  // that could never be reached (the count wraps), so the limit is the one
  // SystemConfig::mailbox_capacity has.
  if (options.mailbox_capacity > kMaxMailboxCapacity) {
    free_holder(holder);
    release_unstarted(slot);
    return Error::make(Errc::InvalidArgument,
                       "SpawnOptions::mailbox_capacity = %u (must be 0 for the system default, or "
                       "1..%u)",
                       options.mailbox_capacity, kMaxMailboxCapacity);
  }
  std::uint32_t home;
  if (options.worker >= 0 || options.worker < -1) {
    if (options.worker < 0 || static_cast<std::uint32_t>(options.worker) >= config_.workers) {
      free_holder(holder);
      release_unstarted(slot);
      return Error::make(Errc::InvalidArgument, "SpawnOptions::worker = %d (-1: round robin, or 0..%u)",
                         options.worker, config_.workers - 1);
    }
    home = static_cast<std::uint32_t>(options.worker);
  } else {
    // Round robin without an RMW: concurrent spawners may pick the same
    // worker, which is harmless, and the line is not fought over.
    // The counter wraps by comparison, not by a division.
    const std::uint32_t next = next_worker_.load(std::memory_order_relaxed);
    home = next < config_.workers ? next : 0;
    next_worker_.store(home + 1, std::memory_order_relaxed);
  }
  Worker* w = this_worker();
  if (parent.valid()) {
    // The link that carries an escalation to the parent; reserved now so
    // that delivering it can never fail for lack of room.
    Node* link = alloc_node(0, w);
    if (link == nullptr) {
      free_holder(holder);
      release_unstarted(slot);
      return pool_exhausted(0, parent);
    }
    link->kind = NodeKind::Exit;
    new (detail::payload<detail::MonitorRecord>(link))
        detail::MonitorRecord{parent, Down{ActorId{}, StopReason::Escalated}};
    link_monitor(c, link);
    if (notify_started) {
      // A supervising parent monitors the child from its birth: no stop of
      // the child can come before the monitor (Context::monitor after the
      // spawn could find it already stopping, and hear NoActor at once).
      Node* mon = alloc_node(0, w);
      if (mon == nullptr) {
        free_node(static_cast<Node*>(messages_.block(0, c->monitors - 1)), w);
        c->monitors = 0;
        free_holder(holder);
        release_unstarted(slot);
        return pool_exhausted(0, parent);
      }
      mon->kind = NodeKind::Monitor;
      new (detail::payload<detail::MonitorRecord>(mon))
          detail::MonitorRecord{parent, Down{ActorId{}, StopReason::NoActor}};
      link_monitor(c, mon);
    }
  }
  c->home.store(static_cast<std::uint8_t>(home), std::memory_order_relaxed);
  c->capacity.store(options.mailbox_capacity != 0 ? options.mailbox_capacity : config_.mailbox_capacity,
                    std::memory_order_relaxed);
  c->actor = nullptr;
  c->reserved = holder;  // built on its home worker at the first turn
  const std::uint32_t gen = word::gen(c->word.load(std::memory_order_relaxed));
  // release (a plain store on x86): see live_count(). A worker counts its
  // own spawns with no locked instruction.
  if (w != nullptr) {
    w->spawned.store(w->spawned.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  } else {
    spawned_.fetch_add(1, std::memory_order_release);
  }
  if (w != nullptr && w->index == home) {
    // release: publishes the cell set-up to senders that acquire the word.
    c->word.store(word::make(gen, 0), std::memory_order_release);
    c->local_queued = true;
    w->local_push(c);
  } else {
    c->word.store(word::make(gen, word::kQueued), std::memory_order_release);
    schedule_foreign(c);
  }
  leave_spawn_gate();
  // One 64-bit store into the Result: see ActorId.
  return ActorId::from_bits((std::uint64_t{gen} << 32) | slot);
}

Result<void> System::stop(ActorId id) noexcept { return stop(id, StopReason::Requested); }

// Why a stop request stops the actor in cell `c`: Shutdown during
// shutdown, else what stop(id, reason) asked for this generation, else
// Requested. On the home worker, after it saw kStop (acquire).
StopReason System::requested_reason(const Cell* c) const noexcept {
  if (shutting_down()) return StopReason::Shutdown;
  const std::uint16_t v = c->stop_as.load(std::memory_order_relaxed);
  const std::uint32_t gen = word::gen(c->word.load(std::memory_order_relaxed));
  if (v != 0 && (v >> 8) == (gen & 0xFFu)) return static_cast<StopReason>(v & 0xFFu);
  return StopReason::Requested;
}

Result<void> System::stop(ActorId id, StopReason reason) noexcept {
  if (reason != StopReason::Requested && reason != StopReason::Shutdown)
    return Error::make(Errc::InvalidArgument, "stop of actor #%u with reason '%s' (must be requested or shutdown)",
                       id.slot, to_string(reason));
  auto c = cell_for(id);
  if (!c) return c.error();
  std::uint64_t cur = (*c)->word.load(std::memory_order_acquire);
  if (reason != StopReason::Requested && word::gen(cur) == id.gen && (cur & (word::kClosed | word::kStop)) == 0) {
    // relaxed: the kStop CAS below releases it to the home worker. Of
    // stops that race, one's reason is kept.
    (*c)->stop_as.store(static_cast<std::uint16_t>(static_cast<std::uint16_t>(reason) | ((id.gen & 0xFFu) << 8)),
                        std::memory_order_relaxed);
  }
  for (;;) {
    if (word::gen(cur) != id.gen || (cur & word::kClosed) != 0)
      return Error::make(Errc::Dead, "actor #%u (generation %u) has stopped", id.slot, id.gen);
    if ((cur & word::kStop) != 0) return {};
    if ((*c)->word.compare_exchange_weak(cur, cur | word::kStop | word::kQueued,
                                         std::memory_order_acq_rel, std::memory_order_acquire)) {
      // The hint lets a running turn stop after its current message. It may
      // land after the slot was reused; it is only a hint, checked against
      // the word.
      (*c)->stop_hint.store(true, std::memory_order_relaxed);
      if ((cur & word::kQueued) == 0) schedule_foreign(*c);
      return {};
    }
  }
}

// Monitor and link records are 64-byte blocks; the cell keeps the index of
// the first, the records chain through `link`.
void System::link_monitor(Cell* c, Node* n) noexcept {
  n->link.store(c->monitors != 0 ? static_cast<Node*>(messages_.block(0, c->monitors - 1)) : nullptr,
                std::memory_order_relaxed);
  c->monitors = messages_.index_of(0, n) + 1;
}

void System::free_holder(detail::ActorHolder* holder) noexcept {
  const std::size_t size_class = holder->size_class;  // read before the object ends
  holder->~ActorHolder();
  detail::Worker* w = this_worker();
  actors_.deallocate(holder, size_class, w != nullptr ? &w->actor_cache : nullptr);
}

bool System::start_error(ActorId id, Error& out) const noexcept {
  const std::uint64_t bits = id.to_bits();
  std::lock_guard<std::mutex> lock(start_errors_mu_);
  for (const StartError& s : start_errors_)
    if (s.id == bits && bits != 0) {
      out = s.error;
      return true;
    }
  return false;
}

Result<void> System::report_started(detail::Turn& t) noexcept {
  auto* holder = static_cast<detail::ActorHolder*>(t.cell->reserved);
  t.cell->start_done.store(true, std::memory_order_release);  // release: see has_started
  const ActorId parent = holder->notify_started;
  if (!parent.valid()) return {};
  holder->notify_started = ActorId{};
  if (holder->quiet_started) return {};  // its supervisor does not wait for it
  Node* n = alloc_node(0, t.worker);
  if (n == nullptr) return pool_exhausted(0, parent);
  n->kind = NodeKind::Started;
  new (detail::payload<Started>(n)) Started{id_of(t.cell)};
  if (post_system(parent, n, t.worker)) return {};
  free_node(n, t.worker);
  return Error::make(Errc::Dead, "actor #%u: the actor that spawned it (#%u) has stopped; Started not sent", t.slot,
                     parent.slot);
}

Result<void> System::probe_health(detail::Turn& t, ActorId target) noexcept {
  Node* n = alloc_node(0, t.worker);
  if (n == nullptr) return pool_exhausted(0, target);
  n->kind = NodeKind::Probe;
  const ActorId self = id_of(t.cell);
  new (detail::payload<detail::ProbeRecord>(n)) detail::ProbeRecord{self, HealthReport{target, Health::Healthy}};
  if (post_system(target, n, t.worker)) return {};
  free_node(n, t.worker);
  return Error::make(Errc::Dead, "health probe of actor #%u (generation %u): it has stopped", target.slot,
                     target.gen);
}

// After an in-place restart: builds the new state and runs its on_start. A
// restart that cannot build or start stops the actor rather than loop.
void System::rebuild_actor(Turn& t) noexcept {
  if (!build_actor(t)) {
    t.stop_self = true;
    t.reason = StopReason::Failed;
    return;
  }
  AIRSSYS_GUARD(t, t.cell->actor->invoke_start(t));
  if (t.failed) {
    t.failed = false;
    t.stop_self = true;
    t.reason = StopReason::Failed;
    keep_start_error(ActorId{t.slot, word::gen(t.cell->word.load(std::memory_order_relaxed))}, t.error);
  }
}

void System::keep_start_error(ActorId id, const Error& error) noexcept {
  std::lock_guard<std::mutex> lock(start_errors_mu_);
  StartError& s = start_errors_[start_errors_next_++ % kStartErrors];
  s.id = id.to_bits();
  s.error = error;
}

// At the start of a run of a cell whose in-place restart waits for its old
// trees: false (and the cell leaves the run) while they are being torn
// down; once they are gone, rebuilds the actor and returns true.
bool System::resume_restart(Turn& t, bool foreign) noexcept {
  if (processes_.trees_pending(t.cell, foreign)) return false;
  rebuild_actor(t);
  return true;
}

bool System::build_actor(Turn& t) noexcept {
  auto* holder = static_cast<detail::ActorHolder*>(t.cell->reserved);
#if __cpp_exceptions
  try {
    t.cell->actor = holder->construct();
  } catch (...) {
    t.cell->actor = nullptr;
    return false;
  }
#else
  t.cell->actor = holder->construct();
#endif
  return true;
}

void System::handle_failure(Turn& t) noexcept {
  t.failed = false;
  ErrorAction action = ErrorAction::Stop;
  // on_error gets t.error itself, not a copy (a copy read back the words
  // Context::fail had just stored in other sizes: a store-forwarding stall
  // on every failure). While it runs, a failure it reports keeps t.error.
  const Error& error = t.error;
  t.handling_error = true;
  AIRSSYS_GUARD(t, action = t.cell->actor->invoke_error(t, error));
  t.handling_error = false;
  if (t.failed) {  // on_error itself failed
    t.failed = false;
    action = ErrorAction::Stop;
  }
  // One ActorFailed per failure: a Supervisor's child that this failure
  // stops is recorded by its supervisor (named, when it handles the Down,
  // with the clock read its restart needs anyway); every other failure here.
  const bool stops = action == ErrorAction::Stop || action == ErrorAction::Escalate;
  const ActorId self{t.slot, word::gen(t.cell->word.load(std::memory_order_relaxed))};
  if (!stops || !static_cast<detail::ActorHolder*>(t.cell->reserved)->failures_recorded) {
    // An in-place restart records its failure and its restart together:
    // one clock read, one reservation of the ring.
    MonitorEvent e[2] = {MonitorEvent::make(MonitorEvent::Kind::ActorFailed, self),
                         MonitorEvent::make(MonitorEvent::Kind::ActorRestarted, self)};
    e[0].set_error(error);
    e[0].time_ns = e[1].time_ns = arch::monotonic_ns();
    monitoring_.record(std::span<const MonitorEvent>(e, action == ErrorAction::Restart ? 2 : 1));
  }
  if (stops) {
    // A supervised child that fails before reporting Started: its parent
    // hears only the Down's reason; the error waits for it here. So does
    // the error of any actor whose on_start failed.
    const ActorId parent = static_cast<detail::ActorHolder*>(t.cell->reserved)->notify_started;
    if (parent.valid() || t.starting) keep_start_error(self, error);
  }
  switch (action) {
    case ErrorAction::Resume:
      return;
    case ErrorAction::Restart: {
      auto* holder = static_cast<detail::ActorHolder*>(t.cell->reserved);
      holder->destroy();
      t.cell->actor = nullptr;
      // A restarted actor starts without the old one's processes, and only
      // once they are gone (as a supervisor's replacement does): the run
      // loop rebuilds it (resume_restart) when the reactor reports the
      // trees torn down. An actor without processes is rebuilt now.
      if (t.cell->process_set != 0) {
        teardown_processes(t.cell);
        return;
      }
      rebuild_actor(t);
      return;
    }
    case ErrorAction::Stop:
      t.stop_self = true;
      t.reason = StopReason::Failed;
      return;
    case ErrorAction::Escalate:
      t.stop_self = true;
      t.reason = StopReason::Escalated;
      return;
  }
}

void System::begin_finalize(Worker& w, Cell* c, StopReason reason, bool foreign) noexcept {
  c->finalizing = true;
  c->stop_reason = reason;
  // acq_rel: after this no sender is admitted; the admitted count read here
  // and later is final.
  c->word.fetch_or(word::kClosed | word::kStop, std::memory_order_acq_rel);
  if (c->actor != nullptr) {
    Turn t{this, c, &w, slot_of(c)};
    AIRSSYS_GUARD(t, c->actor->invoke_stop(t, reason));
  }
  // on_stop has run: the actor's process trees go (asynchronously); the
  // set is released once they are gone (continue_finalize).
  if (c->process_set != 0) teardown_processes(c);
  continue_finalize(w, c, foreign);
}

void System::continue_finalize(Worker& w, Cell* c, bool foreign) noexcept {
  const ActorId self = id_of(c);
  std::uint64_t handled_foreign = c->handled_foreign.load(std::memory_order_relaxed);
  while (Node* n = c->queue.pop(c->inbox)) {
    if (n->counted) {
      c->handled_foreign.store(++handled_foreign, std::memory_order_release);
    } else {
      c->local_pending.store(c->local_pending.load(std::memory_order_relaxed) - 1,
                             std::memory_order_relaxed);
    }
    switch (n->kind) {
      case NodeKind::User:
        static_cast<detail::ActorHolder*>(c->reserved)->discard(n);
        count_dead_letter();
        free_node(n, &w);
        break;
      case NodeKind::Monitor:
        // Watching an actor that is stopping: its Down goes with the
        // others, once its process trees are gone.
        link_monitor(c, n);
        break;
      case NodeKind::Down:
      case NodeKind::Exit:
      case NodeKind::ProcessExit:
      case NodeKind::Started:
      case NodeKind::Probe:
      case NodeKind::HealthReply:
        free_node(n, &w);
        break;
    }
  }
  std::uint64_t cur = c->word.load(std::memory_order_acquire);
  if (((cur - handled_foreign) & word::kAdmittedMask) != 0) {
    requeue(w, c, foreign);  // a sender admitted before the close is still pushing
    return;
  }
  // Every message is accounted for. Its process trees must be gone before
  // the watchers hear of it (a supervisor then starts a replacement that
  // can bind the ports the old tree held).
  if (c->process_set != 0) {
    if (processes_.trees_pending(c, foreign)) return;
    processes_.release(c);
  }
  // Tell the watchers, then drop the state.
  Node* m = c->monitors != 0 ? static_cast<Node*>(messages_.block(0, c->monitors - 1)) : nullptr;
  c->monitors = 0;
  while (m != nullptr) {
    Node* next = m->link.load(std::memory_order_relaxed);
    auto* rec = detail::payload<detail::MonitorRecord>(m);
    bool send = m->kind == NodeKind::Monitor || c->stop_reason == StopReason::Escalated;
    // Field by field: a Down built on the stack and copied whole makes the
    // compiler store its two byte fields and reload them as one word, a
    // store-forwarding stall on every stop with a watcher.
    rec->down.who = self;
    rec->down.reason = c->stop_reason;
    rec->down.started = c->start_done.load(std::memory_order_relaxed);
    if (m->kind == NodeKind::Monitor) m->kind = NodeKind::Down;
    if (!send || !post_system(rec->watcher, m, &w)) free_node(m, &w);
    m = next;
  }
  auto* holder = static_cast<detail::ActorHolder*>(c->reserved);
  if (c->actor != nullptr) holder->destroy();
  free_holder(holder);
  c->actor = nullptr;
  c->reserved = nullptr;
  c->finalizing = false;
  c->dead = true;
  // Only this worker writes its count: no shared line per stop. release:
  // see live_count().
  w.stopped.store(w.stopped.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  release_if_unqueued(w, c, foreign);
}

void System::release_if_unqueued(Worker&, Cell* c, bool foreign) noexcept {
  // The word is closed: no sender touches it any more, only this worker.
  if (foreign) c->word.fetch_and(~word::kQueued, std::memory_order_relaxed);
  std::uint64_t cur = c->word.load(std::memory_order_relaxed);
  if ((cur & word::kQueued) != 0 || c->local_queued) return;  // a queued run will come back here
  c->word.store(word::make(detail::next_gen(word::gen(cur)), word::kClosed), std::memory_order_release);
  // release: a sender that reads the reset count (it reads handled_foreign
  // before the word) then reads the new generation, never the old open word
  // with a count that no longer matches it.
  c->handled_foreign.store(0, std::memory_order_release);
  c->local_pending.store(0, std::memory_order_relaxed);
  c->dropped.store(0, std::memory_order_relaxed);
  c->high_water.store(0, std::memory_order_relaxed);
  c->handled.store(0, std::memory_order_relaxed);
  c->queue = detail::LocalFifo{};  // empty: every message was taken out
  c->inbox.store(nullptr, std::memory_order_relaxed);
  c->started = false;
  // release: a has_started() that reads this reads the new generation after.
  c->start_done.store(false, std::memory_order_release);
  c->dead = false;
  c->stop_hint.store(false, std::memory_order_relaxed);
  c->stop_as.store(0, std::memory_order_relaxed);
  release_slot(slot_of(c));
}

}  // namespace airssys
