#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace airssys {

using detail::Cell;
using detail::Node;
using detail::NodeKind;
using detail::Turn;
using detail::Worker;
namespace word = detail::word;

const char* to_string(StopReason r) noexcept {
  switch (r) {
    case StopReason::Normal: return "normal";
    case StopReason::Requested: return "requested";
    case StopReason::Failed: return "failed";
    case StopReason::Escalated: return "escalated";
    case StopReason::Shutdown: return "shutdown";
    case StopReason::NoActor: return "no actor";
  }
  return "unknown";
}

const char* to_string(Health h) noexcept {
  switch (h) {
    case Health::Healthy: return "healthy";
    case Health::Degraded: return "degraded";
    case Health::Failed: return "failed";
  }
  return "unknown";
}

using detail::foreign_pending;
using detail::raise_high_water;

namespace {

inline std::uint32_t next_gen(std::uint32_t g) noexcept { return g + 1 == 0 ? 1 : g + 1; }

// The tags of the Systems alive now, one bit each, and where the next search
// for a free one starts (so that Systems made one after another get
// different tags too). Relaxed throughout: the bitmap only hands out
// distinct numbers, the RMWs on one word are totally ordered, and nothing
// else is published through it.
std::atomic<std::uint64_t> g_tags_in_use[4];
std::atomic<std::uint32_t> g_next_tag{0};


}  // namespace

// ---------------------------------------------------------------------------
// Construction

detail::SystemTag::SystemTag() noexcept {
  const std::uint32_t start = g_next_tag.fetch_add(1, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < 256; ++i) {
    const std::uint32_t t = (start + i) & 255;
    const std::uint64_t bit = std::uint64_t{1} << (t % 64);
    if ((g_tags_in_use[t / 64].fetch_or(bit, std::memory_order_relaxed) & bit) == 0) {
      tag_ = t;
      held_ = true;
      return;
    }
  }
  tag_ = start & 255;  // 256 Systems alive at once: this one shares a tag
}

detail::SystemTag::~SystemTag() {
  if (held_) g_tags_in_use[tag_ / 64].fetch_and(~(std::uint64_t{1} << (tag_ % 64)), std::memory_order_relaxed);
}

Result<void> System::validate(const SystemConfig& c) noexcept {
  if (c.workers < 1 || c.workers > 255)
    return Error::make(Errc::InvalidArgument, "workers = %u (must be 1..255)", c.workers);
  if (c.actor_capacity < 1 || c.actor_capacity > (1u << 24))
    return Error::make(Errc::InvalidArgument, "actor_capacity = %u (must be 1..16777216)",
                       c.actor_capacity);
  if (c.mailbox_capacity < 1 || c.mailbox_capacity > kMaxMailboxCapacity)
    return Error::make(Errc::InvalidArgument, "mailbox_capacity = %u (must be 1..%u)",
                       c.mailbox_capacity, kMaxMailboxCapacity);
  if (c.budget < 1) return Error::make(Errc::InvalidArgument, "budget = 0 (must be at least 1)");
  if (c.message_blocks[0] < 1)
    return Error::make(Errc::InvalidArgument, "message_blocks[0] = 0 (the 64-byte class is required)");
  {
    bool any_actor_blocks = false;
    for (std::uint32_t n : c.actor_blocks) any_actor_blocks = any_actor_blocks || n != 0;
    if (!any_actor_blocks)
      return Error::make(Errc::InvalidArgument,
                         "actor_blocks are all 0 (no actor could be spawned; give at least one "
                         "size class blocks)");
  }
  if (c.pending_asks < 1 || c.pending_asks > (1u << 24))
    return Error::make(Errc::InvalidArgument, "pending_asks = %u (must be 1..16777216)", c.pending_asks);
  if (c.timers_per_worker < 1)
    return Error::make(Errc::InvalidArgument, "timers_per_worker = 0 (must be at least 1)");
  if (c.registry_capacity < 1 || c.broker_topics < 1 || c.subscribers_per_topic < 1)
    return Error::make(Errc::InvalidArgument,
                       "registry_capacity, broker_topics and subscribers_per_topic must be at least 1");
  if (c.spin_before_park.count() < 0)
    return Error::make(Errc::InvalidArgument, "spin_before_park is negative");
  // A cell keeps its set's index in 16 bits and a set its count in 8.
  if (c.process_owners < 1 || c.process_owners > 65535)
    return Error::make(Errc::InvalidArgument, "process_owners = %u (must be 1..65535)", c.process_owners);
  if (c.processes_per_actor < 1 || c.processes_per_actor > 255)
    return Error::make(Errc::InvalidArgument, "processes_per_actor = %u (must be 1..255)", c.processes_per_actor);
  if (c.max_processes < 1)
    return Error::make(Errc::InvalidArgument, "max_processes = 0 (must be at least 1)");
  if (c.process_kill_timeout.count() < 0)
    return Error::make(Errc::InvalidArgument, "process_kill_timeout is negative");
  return {};
}

Result<std::unique_ptr<System>> System::create(const SystemConfig& config) {
  auto ok = validate(config);
  if (!ok) return ok.error();
  return std::make_unique<System>(config);
}

System::System(const SystemConfig& config) : config_(config) {
  if (!validate(config)) std::abort();
  messages_.init(config.message_blocks, config.workers);
  actors_.init(config.actor_blocks, config.workers);

  cells_ = static_cast<Cell*>(detail::reserve(sizeof(Cell) * config.actor_capacity, 64));
  for (std::uint32_t i = 0; i < config.actor_capacity; ++i) {
    Cell* c = new (&cells_[i]) Cell();
    // Every slot starts at this System's first generation, so that an id
    // of another live System never matches (see detail::SystemTag).
    c->word.store(word::make(tag_.first_gen(), word::kClosed), std::memory_order_relaxed);
    c->head = &c->stub;
    c->tail.store(&c->stub, std::memory_order_relaxed);
  }
  free_slots_.init(&cells_[0].free_link, config.actor_capacity, true, sizeof(Cell));

  pending_ = static_cast<detail::PendingAsk*>(
      detail::reserve(sizeof(detail::PendingAsk) * config.pending_asks, 64));
  for (std::uint32_t i = 0; i < config.pending_asks; ++i) {
    new (&pending_[i]) detail::PendingAsk();
    pending_[i].state.store(tag_.first_gen30() << 2, std::memory_order_relaxed);  // free
  }
  free_pending_.init(&pending_[0].free_link, config.pending_asks, true, sizeof(detail::PendingAsk));

  registry_.table_.init(config.registry_capacity);
  broker_.init(config.broker_topics, config.subscribers_per_topic);

  workers_ = static_cast<Worker*>(detail::reserve(sizeof(Worker) * config.workers, 64));
  const std::int64_t now_tick = arch::monotonic_ns() / detail::TimerWheel::kTickNs;
  for (std::uint32_t i = 0; i < config.workers; ++i) {
    Worker* w = new (&workers_[i]) Worker();
    w->system = this;
    w->index = i;
    auto& tw = w->timers;
    tw.capacity = config.timers_per_worker;
    tw.entries = static_cast<detail::TimerEntry*>(
        detail::reserve(sizeof(detail::TimerEntry) * tw.capacity, 64));
    for (std::uint32_t k = 0; k < tw.capacity; ++k) {
      auto* e = new (&tw.entries[k]) detail::TimerEntry();
      e->state.store(tag_.first_gen30() << 2, std::memory_order_relaxed);  // free
      e->next = k + 1 < tw.capacity ? k + 2 : 0;
    }
    tw.free_head = 1;
    tw.current = now_tick;
  }
  for (std::uint32_t i = 0; i < config.workers; ++i)
    workers_[i].thread = std::thread([this, i] { run_worker(workers_[i]); });
}

System::~System() {
  if (this_worker() != nullptr) {
    // The handler that called this runs on a worker the destructor would
    // have to join, for an actor and a message it would have to free: none
    // of them can end while that handler is still on the stack, so there is
    // no way to finish, and returning would leave it in freed memory.
    std::fprintf(stderr,
                 "airssys: System destroyed from inside one of its own actors (on its worker %u); "
                 "destroy a System from a thread that is not one of its workers\n",
                 detail::tls_worker->index);
    std::abort();
  }
  (void)shutdown();
  for (std::uint32_t i = 0; i < config_.workers; ++i) {
    detail::release(workers_[i].timers.entries);
    workers_[i].~Worker();
  }
  detail::release(workers_);
  for (std::uint32_t i = 0; i < config_.pending_asks; ++i) pending_[i].~PendingAsk();
  detail::release(pending_);
  for (std::uint32_t i = 0; i < config_.actor_capacity; ++i) cells_[i].~Cell();
  detail::release(cells_);
}

// ---------------------------------------------------------------------------
// Sending

Error System::bad_ref(ActorId id) const noexcept {
  if (!id.valid()) return Error::make(Errc::InvalidArgument, "actor handle is empty");
  return Error::make(Errc::InvalidArgument, "actor #%u is not a slot of this system (capacity %u)",
                     id.slot, config_.actor_capacity);
}

Result<Cell*> System::cell_for(ActorId id) const noexcept {
  if (id.slot >= config_.actor_capacity) return bad_ref(id);
  return &cells_[id.slot];
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
  if (wk.sleeping.load(std::memory_order_seq_cst) != 0 &&
      wk.sleeping.exchange(0, std::memory_order_seq_cst) != 0)
    arch::wake_one(wk.sleeping);
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
  actors_.deallocate(holder, size_class, nullptr);
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

// ---------------------------------------------------------------------------
// Spawning and stopping

Result<std::uint32_t> System::acquire_slot(const char* what) noexcept {
  // Enter the spawn gate: shutdown closes it and waits for spawns inside, so
  // no actor can start after shutdown has swept the slots.
  // seq_cst: against shutdown's fetch_or of kGateClosed.
  if ((spawn_gate_.fetch_add(1, std::memory_order_seq_cst) & kGateClosed) != 0) {
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
  spawn_gate_.fetch_sub(1, std::memory_order_release);
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
    return Error::make(Errc::InvalidArgument, "SpawnOptions::first_signal = %d (must be a signal, 1..64)",
                       options.first_signal);
  }
  holder->first_signal = static_cast<std::uint8_t>(options.first_signal);
  if (options.kill_timeout.count() < 0) {
    holder->kill_timeout_ns = -1;
  } else {
    constexpr std::int64_t kNsPerMs = 1'000'000;  // milliseconds::max() saturates: never KILL
    holder->kill_timeout_ns = options.kill_timeout.count() > INT64_MAX / kNsPerMs
                                  ? INT64_MAX
                                  : options.kill_timeout.count() * kNsPerMs;
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
  if (options.worker >= 0) {
    if (static_cast<std::uint32_t>(options.worker) >= config_.workers) {
      free_holder(holder);
      release_unstarted(slot);
      return Error::make(Errc::InvalidArgument, "SpawnOptions::worker = %d (system has %u workers)",
                         options.worker, config_.workers);
    }
    home = static_cast<std::uint32_t>(options.worker);
  } else {
    // Round robin without an RMW: concurrent spawners may pick the same
    // worker, which is harmless, and the line is not fought over.
    const std::uint32_t next = next_worker_.load(std::memory_order_relaxed);
    next_worker_.store(next + 1, std::memory_order_relaxed);
    home = next % config_.workers;
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
  spawned_.fetch_add(1, std::memory_order_relaxed);
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
  return ActorId{slot, gen};
}

Result<void> System::stop(ActorId id) noexcept {
  auto c = cell_for(id);
  if (!c) return c.error();
  std::uint64_t cur = (*c)->word.load(std::memory_order_acquire);
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

bool System::alive(ActorId id) const noexcept {
  if (id.slot >= config_.actor_capacity) return false;
  std::uint64_t cur = cells_[id.slot].word.load(std::memory_order_acquire);
  return word::gen(cur) == id.gen && (cur & word::kClosed) == 0;
}

// ---------------------------------------------------------------------------
// Workers

void System::run_worker(Worker& w) noexcept {
  detail::tls_worker = &w;
  char name[16];
  std::snprintf(name, sizeof name, "airssys-w%u", w.index);
  arch::name_thread(name);
  std::int64_t idle_since = -1;
  std::uint32_t spins = 0;
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
    if (w.timers.armed != 0 && (!worked || ++spins % 64 == 0)) poll_timers(w);
    // A timer may just have made a cell of this worker ready.
    if (worked || w.local_head != nullptr) {
      idle_since = -1;
      continue;
    }
    idle(w, idle_since);
  }
  messages_.flush(w.cache);
  detail::tls_worker = nullptr;
}

void System::idle(Worker& w, std::int64_t& idle_since) noexcept {
  if (config_.idle == IdleStrategy::Spin) {
    for (int i = 0; i < 16; ++i) arch::cpu_relax();
    return;
  }
  if (config_.idle == IdleStrategy::SpinThenPark) {
    std::int64_t now = arch::monotonic_ns();
    if (idle_since < 0) idle_since = now;
    if (now - idle_since < config_.spin_before_park.count() * 1000) {
      for (int i = 0; i < 16; ++i) arch::cpu_relax();
      return;
    }
  }
  // seq_cst: see schedule_foreign().
  // Blocks stashed in this worker's cache go back to the shared pools
  // before it sleeps, so that no other thread sees Full because of them.
  messages_.flush(w.cache);
  // seq_cst: see schedule_foreign().
  (void)w.sleeping.exchange(1, std::memory_order_seq_cst);
  if (w.ready_maybe_nonempty() ||
      w.exit.load(std::memory_order_seq_cst)) {
    w.sleeping.store(0, std::memory_order_relaxed);
    return;
  }
  // With timers armed, wake every tick to fire them.
  arch::wait_on(w.sleeping, 1, w.timers.armed != 0 ? detail::TimerWheel::kTickNs : -1);
  w.sleeping.store(0, std::memory_order_relaxed);
  idle_since = -1;
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

#if __cpp_exceptions
#define AIRSSYS_GUARD(turn, call)                                                      \
  try {                                                                                \
    call;                                                                              \
  } catch (const std::exception& ex) {                                                 \
    (turn).failed = true;                                                              \
    (turn).error = Error::make(Errc::Exception, "actor #%u threw: %s", (turn).slot, ex.what()); \
  } catch (...) {                                                                      \
    (turn).failed = true;                                                              \
    (turn).error = Error::make(Errc::Exception, "actor #%u threw a non-std exception", (turn).slot); \
  }
#else
#define AIRSSYS_GUARD(turn, call) call;
#endif

void System::handle_failure(Turn& t) noexcept {
  t.failed = false;
  ErrorAction action = ErrorAction::Stop;
  Error error = t.error;
  AIRSSYS_GUARD(t, action = t.cell->actor->invoke_error(t, error));
  if (t.failed) {  // on_error itself failed
    t.failed = false;
    action = ErrorAction::Stop;
  }
  switch (action) {
    case ErrorAction::Resume:
      return;
    case ErrorAction::Restart: {
      // A restarted actor starts without the old one's processes.
      if (t.cell->process_set != 0)
        teardown_processes(t.cell, ActorId{t.slot, word::gen(t.cell->word.load(std::memory_order_relaxed))});
      auto* holder = static_cast<detail::ActorHolder*>(t.cell->reserved);
      holder->destroy();
      if (!build_actor(t)) {
        t.stop_self = true;
        t.reason = StopReason::Failed;
        return;
      }
      AIRSSYS_GUARD(t, t.cell->actor->invoke_start(t));
      if (t.failed) {  // a restart that cannot start: stop rather than loop
        t.failed = false;
        t.stop_self = true;
        t.reason = StopReason::Failed;
      }
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
      remove_child_process(c, detail::payload<ProcessExited>(n)->pid);
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
    AIRSSYS_GUARD(t, c->actor->invoke_start(t));
    if (t.failed) handle_failure(t);
    if (t.stop_self) {
      begin_finalize(w, c, t.reason, foreign);
      return;
    }
    if (!t.defer_started && static_cast<detail::ActorHolder*>(c->reserved)->notify_started.valid())
      (void)report_started(t);
  }
  if ((c->word.load(std::memory_order_acquire) & word::kStop) != 0) {
    begin_finalize(w, c, shutting_down() ? StopReason::Shutdown : StopReason::Requested, foreign);
    return;
  }
  std::uint32_t handled = 0;
  bool stop_requested = false;
  std::uint64_t handled_foreign = c->handled_foreign.load(std::memory_order_relaxed);
  const std::uint32_t budget = config_.budget;
  while (handled < budget) {
    Node* n = detail::mpsc_pop(c->head, c->tail, &c->stub);
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
    if (t.stop_self) break;
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
    begin_finalize(w, c, shutting_down() ? StopReason::Shutdown : StopReason::Requested, foreign);
    return;
  }
  if (handled == budget) {
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
  if (c->process_set != 0)
    teardown_processes(c, ActorId{slot_of(c), word::gen(c->word.load(std::memory_order_relaxed))});
  continue_finalize(w, c, foreign);
}

void System::continue_finalize(Worker& w, Cell* c, bool foreign) noexcept {
  const ActorId self{slot_of(c), word::gen(c->word.load(std::memory_order_relaxed))};
  std::uint64_t handled_foreign = c->handled_foreign.load(std::memory_order_relaxed);
  while (Node* n = detail::mpsc_pop(c->head, c->tail, &c->stub)) {
    if (n->counted) {
      c->handled_foreign.store(++handled_foreign, std::memory_order_release);
    } else {
      c->local_pending.store(c->local_pending.load(std::memory_order_relaxed) - 1,
                             std::memory_order_relaxed);
    }
    switch (n->kind) {
      case NodeKind::User:
        static_cast<detail::ActorHolder*>(c->reserved)->discard(n);
        dead_letters_.fetch_add(1, std::memory_order_relaxed);
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
    if (trees_pending(w, c, foreign)) return;
    release_process_set(c);
  }
  // Tell the watchers, then drop the state.
  Node* m = c->monitors != 0 ? static_cast<Node*>(messages_.block(0, c->monitors - 1)) : nullptr;
  c->monitors = 0;
  while (m != nullptr) {
    Node* next = m->link.load(std::memory_order_relaxed);
    auto* rec = detail::payload<detail::MonitorRecord>(m);
    bool send = m->kind == NodeKind::Monitor || c->stop_reason == StopReason::Escalated;
    rec->down = Down{self, c->stop_reason};
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
  // Only this worker writes its count: no shared line per stop.
  w.stopped.store(w.stopped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  release_if_unqueued(w, c, foreign);
}

void System::release_if_unqueued(Worker&, Cell* c, bool foreign) noexcept {
  // The word is closed: no sender touches it any more, only this worker.
  if (foreign) c->word.fetch_and(~word::kQueued, std::memory_order_relaxed);
  std::uint64_t cur = c->word.load(std::memory_order_relaxed);
  if ((cur & word::kQueued) != 0 || c->local_queued) return;  // a queued run will come back here
  c->word.store(word::make(next_gen(word::gen(cur)), word::kClosed), std::memory_order_release);
  // release: a sender that reads the reset count (it reads handled_foreign
  // before the word) then reads the new generation, never the old open word
  // with a count that no longer matches it.
  c->handled_foreign.store(0, std::memory_order_release);
  c->local_pending.store(0, std::memory_order_relaxed);
  c->dropped.store(0, std::memory_order_relaxed);
  c->high_water.store(0, std::memory_order_relaxed);
  c->handled.store(0, std::memory_order_relaxed);
  c->head = &c->stub;
  c->stub.link.store(nullptr, std::memory_order_relaxed);
  c->tail.store(&c->stub, std::memory_order_relaxed);
  c->started = false;
  c->dead = false;
  c->stop_hint.store(false, std::memory_order_relaxed);
  release_slot(slot_of(c));
}

// ---------------------------------------------------------------------------
// Timers

Result<TimerId> System::arm_timer(Worker& w, Node* n, ActorId target, std::chrono::nanoseconds delay,
                                  void (*destroy)(Node*) noexcept, std::uint32_t guard_index,
                                  std::uint32_t guard_gen) noexcept {
  auto& tw = w.timers;
  if (delay.count() < 0)
    return Error::make(Errc::InvalidArgument, "timer delay %lld ns is negative",
                       static_cast<long long>(delay.count()));
  if (tw.free_head == 0)
    return Error::make(Errc::Full, "all %u timers of worker %u are armed", tw.capacity, w.index);
  std::uint32_t index = tw.free_head - 1;
  detail::TimerEntry& e = tw.entries[index];
  tw.free_head = e.next;
  // Rounded up to whole ticks without `delay + kTickNs - 1`, which
  // overflows for nanoseconds::max().
  const std::int64_t ticks = delay.count() / detail::TimerWheel::kTickNs +
                             (delay.count() % detail::TimerWheel::kTickNs != 0 ? 1 : 0);
  const std::int64_t now = arch::monotonic_ns() / detail::TimerWheel::kTickNs;
  if (tw.armed == 0 && tw.current < now) tw.current = now;  // no walk through idle ticks later
  std::int64_t deadline = arch::add_saturated(now, ticks);
  if (deadline <= tw.current) deadline = tw.current + 1;
  e.deadline = deadline;
  e.node = n;
  e.target = target;
  e.destroy = destroy;
  e.guard_index = guard_index;
  e.guard_gen = guard_gen;
  e.next = 0;
  const std::uint32_t gen = e.state.load(std::memory_order_relaxed) >> 2;
  // release: a canceller that sees "armed" sees a complete entry.
  e.state.store((gen << 2) | 1, std::memory_order_release);
  const std::uint32_t slot = static_cast<std::uint32_t>(deadline % detail::TimerWheel::kSlots);
  if (tw.tails[slot] != 0) tw.entries[tw.tails[slot] - 1].next = index + 1; else tw.heads[slot] = index + 1;
  tw.tails[slot] = index + 1;
  ++tw.armed;
  return TimerId{w.index, index, gen};
}

bool System::cancel(TimerId id) noexcept {
  if (id.worker >= config_.workers || id.index >= config_.timers_per_worker) return false;
  auto& e = workers_[id.worker].timers.entries[id.index];
  std::uint32_t expected = (id.gen << 2) | 1;
  // The owning worker frees the entry at its tick; here only the phase flips.
  return e.state.compare_exchange_strong(expected, (id.gen << 2) | 2, std::memory_order_acq_rel,
                                         std::memory_order_relaxed);
}

void System::poll_timers(Worker& w) noexcept {
  auto& tw = w.timers;
  const std::int64_t now = arch::monotonic_ns() / detail::TimerWheel::kTickNs;
  while (tw.current < now && tw.armed != 0) {
    ++tw.current;
    const std::uint32_t slot = static_cast<std::uint32_t>(tw.current % detail::TimerWheel::kSlots);
    std::uint32_t i = tw.heads[slot];
    std::uint32_t prev = 0;
    while (i != 0) {
      detail::TimerEntry& e = tw.entries[i - 1];
      const std::uint32_t next = e.next;
      if (e.deadline <= tw.current) {
        if (prev != 0) tw.entries[prev - 1].next = next; else tw.heads[slot] = next;
        if (tw.tails[slot] == i) tw.tails[slot] = prev;
        if (fire_timer(w, e)) {
          e.next = tw.free_head;
          tw.free_head = i;
          --tw.armed;
        } else {
          // Deferred by fire_timer: look again at the next tick.
          e.deadline = tw.current + 1;
          e.next = 0;
          const auto to = static_cast<std::uint32_t>(e.deadline % detail::TimerWheel::kSlots);
          if (tw.tails[to] != 0) tw.entries[tw.tails[to] - 1].next = i; else tw.heads[to] = i;
          tw.tails[to] = i;
        }
      } else {
        prev = i;
      }
      i = next;
    }
  }
  if (tw.armed == 0) tw.current = now;
}

bool System::fire_timer(Worker& w, detail::TimerEntry& e) noexcept {
  std::uint32_t st = e.state.load(std::memory_order_acquire);
  const std::uint32_t gen = st >> 2;
  bool deliver_it = false;
  if ((st & 3) == 1 && e.guard_index != ~0u) {
    // An ask's timeout. The request is claimed before the entry is
    // consumed: while a replier holds the request the entry must stay
    // armed, because the replier may still give the request back (its
    // reply failed) and this timeout is then the ask's only Reply.
    auto& p = pending_[e.guard_index];
    std::uint32_t expected = (e.guard_gen << 2) | 1;
    // acq_rel: against the replier's claim and release of the same entry.
    if (p.state.compare_exchange_strong(expected, (e.guard_gen << 2) | 3, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
      deliver_it = true;
      finish_claim(e.guard_index, nullptr);
    } else if (expected == ((e.guard_gen << 2) | 3)) {
      return false;  // still armed: look again next tick
    }
    // Claimed by this timer, or answered: either way nobody cancels the
    // entry any more (a replier cancels only while it holds the claim).
    e.state.store(next_gen(gen) << 2, std::memory_order_relaxed);
  } else if ((st & 3) == 1 &&
             e.state.compare_exchange_strong(st, (next_gen(gen) << 2), std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
    deliver_it = true;
  } else {
    e.state.store(next_gen(gen) << 2, std::memory_order_relaxed);  // was cancelled
  }
  if (deliver_it && post_system(e.target, e.node, &w)) return true;
  if (deliver_it) dead_letters_.fetch_add(1, std::memory_order_relaxed);
  e.destroy(e.node);
  free_node(e.node, &w);
  return true;
}

// ---------------------------------------------------------------------------
// Asks

Result<std::uint32_t> System::acquire_pending() noexcept {
  std::uint32_t index;
  if (!free_pending_.pop(index))
    return Error::make(Errc::Full, "all %u pending-ask entries are in use", config_.pending_asks);
  auto& p = pending_[index];
  std::uint32_t gen = p.state.load(std::memory_order_relaxed) >> 2;
  p.reply = nullptr;
  p.asker = ActorId{};
  p.timer = TimerId{};
  // release: the entry's fields are set before a replier can claim it.
  p.state.store((gen << 2) | 1, std::memory_order_release);
  return index;
}

void System::release_pending(std::uint32_t index) noexcept {
  auto& p = pending_[index];
  std::uint32_t gen = p.state.load(std::memory_order_relaxed) >> 2;
  p.state.store(next_gen(gen) << 2, std::memory_order_release);
  free_pending_.push(index);
}

Result<std::uint32_t> System::claim_pending(std::uint32_t index, std::uint32_t gen) noexcept {
  if (index >= config_.pending_asks)
    return Error::make(Errc::InvalidArgument, "reply address #%u is not from this system", index);
  std::uint32_t expected = (gen << 2) | 1;
  if (!pending_[index].state.compare_exchange_strong(expected, (gen << 2) | 3, std::memory_order_acq_rel,
                                                     std::memory_order_relaxed))
    return Error::make(Errc::Dead, "request #%u (generation %u) was already answered or timed out",
                       index, gen);
  return index;
}

void System::abandon_claim(std::uint32_t index, std::uint32_t gen) noexcept {
  pending_[index].state.store((gen << 2) | 1, std::memory_order_release);
}

void System::finish_claim(std::uint32_t index, Node* reply) noexcept {
  auto& p = pending_[index];
  if (reply == nullptr) {  // an actor's ask: the reply went to its mailbox
    release_pending(index);
    return;
  }
  std::uint32_t gen = p.state.load(std::memory_order_relaxed) >> 2;
  p.reply = reply;
  // release: the waiter reads `reply` after seeing phase 2.
  p.state.store((gen << 2) | 2, std::memory_order_release);
  arch::wake_all(p.state);
}

Result<void> System::wait_reply(std::uint32_t index, std::chrono::nanoseconds timeout,
                                Node*& reply) noexcept {
  auto& p = pending_[index];
  const std::uint32_t gen = p.state.load(std::memory_order_relaxed) >> 2;
  const std::int64_t deadline = arch::add_saturated(arch::monotonic_ns(), timeout.count());
  for (;;) {
    std::uint32_t st = p.state.load(std::memory_order_acquire);
    if ((st & 3) == 2) {
      reply = p.reply;
      release_pending(index);
      return {};
    }
    const std::int64_t left = deadline - arch::monotonic_ns();
    if ((st & 3) == 1 && (left <= 0 || shutting_down())) {
      if (p.state.compare_exchange_strong(st, (gen << 2) | 3, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
        release_pending(index);
        if (left > 0)
          return Error::make(Errc::ShuttingDown, "ask #%u abandoned: the system is shutting down", index);
        return Error::make(Errc::Timeout, "no reply to ask #%u within %lld ms", index,
                           static_cast<long long>(timeout.count() / 1'000'000));
      }
      continue;
    }
    // Phase 3: a replier is writing; it finishes in a moment.
    arch::wait_on(p.state, st, (st & 3) == 3 ? 100'000 : (left < 50'000'000 ? left : 50'000'000));
  }
}

// ---------------------------------------------------------------------------
// Stats

Result<ActorStats> System::stats(ActorId id) const noexcept {
  auto c = cell_for(id);
  if (!c) return c.error();
  const Cell* cell = *c;
  // The handled count before the word, so that their difference is never
  // "negative" (see detail::foreign_pending); acquire both, as in admit().
  // It can still be stale-high by what was taken out between the two
  // loads: if the count moved meanwhile, read the pair again (a few times;
  // a consumer that never pauses leaves the last pair, an upper bound).
  std::uint64_t handled_foreign = cell->handled_foreign.load(std::memory_order_acquire);
  std::uint64_t cur = cell->word.load(std::memory_order_acquire);
  for (int tries = 0; tries < 8; ++tries) {
    const std::uint64_t again = cell->handled_foreign.load(std::memory_order_acquire);
    if (again == handled_foreign) break;
    handled_foreign = again;
    cur = cell->word.load(std::memory_order_acquire);
  }
  if (word::gen(cur) != id.gen || (cur & word::kClosed) != 0)
    return Error::make(Errc::Dead, "actor #%u (generation %u) has stopped", id.slot, id.gen);
  ActorStats s;
  s.handled = cell->handled.load(std::memory_order_relaxed);
  s.queued = foreign_pending(cur, handled_foreign) + cell->local_pending.load(std::memory_order_relaxed);
  s.received = s.handled + s.queued;
  s.dropped = cell->dropped.load(std::memory_order_relaxed);
  s.high_water = cell->high_water.load(std::memory_order_relaxed);
  return s;
}

std::uint64_t System::stopped_count() const noexcept {
  std::uint64_t n = 0;
  for (std::uint32_t i = 0; i < config_.workers; ++i) n += workers_[i].stopped.load(std::memory_order_acquire);
  return n;
}

std::uint64_t System::live_count() const noexcept {
  // Stops are read before spawns, so a concurrent spawn can only make the
  // result too high, never report a live actor as gone.
  const std::uint64_t stopped = stopped_count();
  const std::uint64_t spawned = spawned_.load(std::memory_order_acquire);
  return spawned > stopped ? spawned - stopped : 0;
}

SystemStats System::stats() const noexcept {
  SystemStats s;
  s.stopped = stopped_count();
  s.spawned = spawned_.load(std::memory_order_relaxed);
  s.live_actors = s.spawned > s.stopped ? s.spawned - s.stopped : 0;
  s.dead_letters = dead_letters_.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < config_.workers; ++i)
    s.messages += workers_[i].handled.load(std::memory_order_relaxed);
  return s;
}

PoolUsage System::pool_usage() const noexcept {
  PoolUsage u;
  u.message_blocks = messages_.in_use_quiescent();
  for (std::uint32_t i = 0; i < config_.pending_asks; ++i)
    if ((pending_[i].state.load(std::memory_order_acquire) & 3) != 0) ++u.pending_asks;
  return u;
}

// ---------------------------------------------------------------------------
// Shutdown

void System::stop_all() noexcept {
  for (std::uint32_t i = 0; i < config_.actor_capacity; ++i) {
    std::uint64_t cur = cells_[i].word.load(std::memory_order_acquire);
    if ((cur & word::kClosed) == 0) (void)stop(ActorId{i, word::gen(cur)});
  }
}

Result<void> System::shutdown(std::chrono::nanoseconds deadline) {
  if (this_worker() != nullptr)
    return Error::make(Errc::WouldDeadlock, "System::shutdown called from one of its own workers");
  // The first caller shuts down; concurrent and later callers wait for it.
  std::uint32_t state = 0;
  if (!shutdown_state_.compare_exchange_strong(state, 1, std::memory_order_acq_rel)) {
    while ((state = shutdown_state_.load(std::memory_order_acquire)) != 2)
      arch::wait_on(shutdown_state_, state, 10'000'000);
    return {};
  }
  shutting_down_.store(true, std::memory_order_seq_cst);
  spawn_gate_.fetch_or(kGateClosed, std::memory_order_seq_cst);
  // Spawns already inside the gate finish first (they never block).
  while ((spawn_gate_.load(std::memory_order_acquire) & ~kGateClosed) != 0) arch::yield_thread();
  for (std::uint32_t i = 0; i < config_.workers; ++i) notify_space(workers_[i]);  // blocked senders give up
  const std::int64_t end = arch::add_saturated(arch::monotonic_ns(), deadline.count());
  bool in_time = true;
  for (;;) {
    stop_all();
    if (live_count() == 0) break;
    if (arch::monotonic_ns() >= end) {
      in_time = false;
      break;
    }
    arch::sleep_ns(200'000);
  }
  const std::uint64_t left = live_count();
  // Before the workers go: a managed child dies with the thread that
  // spawned it, so the trees are torn down gracefully first.
  shutdown_processes(end);
  for (std::uint32_t i = 0; i < config_.workers; ++i) {
    workers_[i].exit.store(true, std::memory_order_seq_cst);
    workers_[i].sleeping.store(0, std::memory_order_seq_cst);
    arch::wake_one(workers_[i].sleeping);
  }
  for (std::uint32_t i = 0; i < config_.workers; ++i)
    if (workers_[i].thread.joinable()) workers_[i].thread.join();
  drain_everything();
  // Whatever is left of the process trees is killed and reaped now; the
  // reactor and the guardian stop.
  executor_.store(nullptr, std::memory_order_release);
  executor_owner_.reset();
  shutdown_state_.store(2, std::memory_order_release);
  arch::wake_all(shutdown_state_);
  if (!in_time)
    return Error::make(Errc::Timeout,
                       "shutdown deadline of %lld ms passed with %llu actors running; they were "
                       "stopped after the workers",
                       static_cast<long long>(deadline.count() / 1'000'000),
                       static_cast<unsigned long long>(left));
  return {};
}

// With the workers joined, the calling thread plays each worker in turn to
// finish every actor and free every queued message and timer.
void System::drain_everything() noexcept {
  // The reactor no longer finishes anyone's finalisation: what is left of
  // the trees goes with the executor, after this.
  detach_tree_reports();
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t wi = 0; wi < config_.workers; ++wi) {
      Worker& w = workers_[wi];
      detail::tls_worker = &w;
      for (;;) {
        Cell* c = w.local_pop();
        bool foreign = false;
        if (c != nullptr) {
          c->local_queued = false;
        } else {
          c = w.ready_pop();
          foreign = true;
        }
        if (c == nullptr) break;
        if (!c->dead && !c->finalizing && c->started) {
          begin_finalize(w, c, StopReason::Shutdown, foreign);
        } else {
          run_turn(w, c, foreign);
        }
      }
      // Actors never started or not queued: finish them here.
      for (std::uint32_t i = 0; i < config_.actor_capacity; ++i) {
        Cell* c = &cells_[i];
        if (c->home.load(std::memory_order_relaxed) != wi || c->reserved == nullptr || c->dead) continue;
        if (!c->finalizing) begin_finalize(w, c, StopReason::Shutdown, false);
        else continue_finalize(w, c, false);
      }
      auto& tw = w.timers;
      for (std::uint32_t k = 0; k < tw.capacity; ++k) {
        auto& e = tw.entries[k];
        std::uint32_t st = e.state.load(std::memory_order_relaxed);
        if ((st & 3) != 0) {
          e.destroy(e.node);
          free_node(e.node, &w);
          e.state.store(next_gen(st >> 2) << 2, std::memory_order_relaxed);
          // An ask this timer guarded is void: its asker has stopped. The
          // entry is freed unless a replier on a plain thread holds it
          // (that one frees it, or gives it back to nobody).
          if ((st & 3) == 1 && e.guard_index != ~0u) {
            std::uint32_t expected = (e.guard_gen << 2) | 1;
            if (pending_[e.guard_index].state.compare_exchange_strong(
                    expected, (e.guard_gen << 2) | 3, std::memory_order_acq_rel, std::memory_order_relaxed))
              release_pending(e.guard_index);
          }
        }
      }
      tw.armed = 0;
      messages_.flush(w.cache);
      detail::tls_worker = nullptr;
    }
  }
  // A reply to a plain thread's ask is not freed here: once finish_claim
  // published it, the waiting thread always takes it (wait_reply gives up
  // only a request still unanswered), possibly after this returns.
}

// ---------------------------------------------------------------------------
// Registry

Result<void> Registry::add_id(std::string_view name, ActorId id, std::uintptr_t tag) noexcept {
  auto n = detail::Name::make(name, "registry");
  if (!n) return n.error();
  if (!system_.alive(id))
    return Error::make(Errc::Dead, "cannot register '%.*s': actor #%u has stopped",
                       static_cast<int>(name.size()), name.data(), id.slot);
  for (int attempt = 0; attempt < 2; ++attempt) {
    detail::NameTable::Found old{};
    auto r = table_.insert(*n, detail::pack(id), tag, &old);
    if (r) return {};
    if (r.code() == Errc::AlreadyExists) {
      if (system_.alive(detail::unpack(old.value)))
        return Error::make(Errc::AlreadyExists, "name '%.*s' is already registered to actor #%u",
                           static_cast<int>(name.size()), name.data(), detail::unpack(old.value).slot);
      table_.erase(old.index, old.value);  // held by a stopped actor: reclaim
      continue;
    }
    if (attempt == 0) {
      sweep();
      continue;
    }
  }
  return Error::make(Errc::Full, "registry is full (%u names) registering '%.*s'", table_.capacity(),
                     static_cast<int>(name.size()), name.data());
}

Result<ActorId> Registry::find_id(std::string_view name, std::uintptr_t& tag) const noexcept {
  auto n = detail::Name::make(name, "registry");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (table_.find(*n, f)) {
    ActorId id = detail::unpack(f.value);
    if (system_.alive(id)) {
      tag = f.tag;
      return id;
    }
    table_.erase(f.index, f.value);
  }
  return Error::make(Errc::NotFound, "no live actor is registered as '%.*s'",
                     static_cast<int>(name.size()), name.data());
}

Result<void> Registry::remove(std::string_view name) noexcept {
  auto n = detail::Name::make(name, "registry");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (table_.find(*n, f) && table_.erase(f.index, f.value)) return {};
  return Error::make(Errc::NotFound, "no actor is registered as '%.*s'", static_cast<int>(name.size()),
                     name.data());
}

void Registry::sweep() noexcept { table_.erase_if([this](std::uint64_t v) { return !system_.alive(detail::unpack(v)); }); }

// ---------------------------------------------------------------------------
// Broker

Broker::~Broker() {
  if (subscribers_ != nullptr) detail::release(subscribers_);
}

void Broker::init(std::uint32_t topics, std::uint32_t per_topic) {
  table_.init(topics);
  per_topic_ = per_topic;
  const std::size_t n = std::size_t{table_.slots()} * per_topic;
  subscribers_ = static_cast<std::atomic<std::uint64_t>*>(
      detail::reserve(sizeof(std::atomic<std::uint64_t>) * n, 64));
  for (std::size_t i = 0; i < n; ++i) new (&subscribers_[i]) std::atomic<std::uint64_t>(0);
}

Result<void> Broker::subscribe_id(std::string_view topic, ActorId id, std::uintptr_t tag) noexcept {
  auto n = detail::Name::make(topic, "topic");
  if (!n) return n.error();
  if (!system_.alive(id))
    return Error::make(Errc::Dead, "cannot subscribe actor #%u to '%.*s': it has stopped", id.slot,
                       static_cast<int>(topic.size()), topic.data());
  detail::NameTable::Found f{};
  if (!table_.find(*n, f)) {
    // Topics are never removed, so a topic's table index names its
    // subscriber row for the system's lifetime.
    auto r = table_.insert(*n, 0, tag, &f);
    if (r) {
      f = detail::NameTable::Found{*r, 0, tag};
    } else if (r.code() != Errc::AlreadyExists) {
      return Error::make(Errc::Full, "broker is full (%u topics) creating '%.*s'", table_.capacity(),
                         static_cast<int>(topic.size()), topic.data());
    }
  }
  if (f.tag != tag)
    return Error::make(Errc::TypeMismatch, "topic '%.*s' carries another message type",
                       static_cast<int>(topic.size()), topic.data());
  std::atomic<std::uint64_t>* row = subscribers_ + std::size_t{f.index} * per_topic_;
  const std::uint64_t packed = detail::pack(id);
  for (std::uint32_t i = 0; i < per_topic_; ++i)
    if (row[i].load(std::memory_order_acquire) == packed)
      return Error::make(Errc::AlreadyExists, "actor #%u already subscribes to '%.*s'", id.slot,
                         static_cast<int>(topic.size()), topic.data());
  for (std::uint32_t i = 0; i < per_topic_; ++i) {
    std::uint64_t v = row[i].load(std::memory_order_acquire);
    if (v != 0 && system_.alive(detail::unpack(v))) continue;
    // release: a publisher that loads the id can send to it at once.
    if (row[i].compare_exchange_strong(v, packed, std::memory_order_release, std::memory_order_relaxed))
      return {};
  }
  return Error::make(Errc::Full, "topic '%.*s' has its %u subscribers", static_cast<int>(topic.size()),
                     topic.data(), per_topic_);
}

Result<void> Broker::unsubscribe(std::string_view topic, ActorId id) noexcept {
  auto n = detail::Name::make(topic, "topic");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (table_.find(*n, f)) {
    std::atomic<std::uint64_t>* row = subscribers_ + std::size_t{f.index} * per_topic_;
    std::uint64_t packed = detail::pack(id);
    for (std::uint32_t i = 0; i < per_topic_; ++i) {
      std::uint64_t v = packed;
      if (row[i].compare_exchange_strong(v, 0, std::memory_order_acq_rel)) return {};
    }
  }
  return Error::make(Errc::NotFound, "actor #%u does not subscribe to '%.*s'", id.slot,
                     static_cast<int>(topic.size()), topic.data());
}

Result<std::atomic<std::uint64_t>*> Broker::topic_for_publish(std::string_view topic,
                                                              std::uintptr_t tag) const noexcept {
  auto n = detail::Name::make(topic, "topic");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (!table_.find(*n, f)) return static_cast<std::atomic<std::uint64_t>*>(nullptr);
  if (f.tag != tag)
    return Error::make(Errc::TypeMismatch, "topic '%.*s' carries another message type",
                       static_cast<int>(topic.size()), topic.data());
  return subscribers_ + std::size_t{f.index} * per_topic_;
}

}  // namespace airssys
