// System: building and validating it, its identity (SystemTag), handles
// and statistics.
#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace airssys {

using detail::Cell;
using detail::Worker;
namespace word = detail::word;

using detail::foreign_pending;

namespace {

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
  if (c.monitoring_events < 1 || c.monitoring_events > (1u << 24))
    return Error::make(Errc::InvalidArgument, "monitoring_events = %u (must be 1..16777216)", c.monitoring_events);
  if (c.monitoring_child_names > 4096)
    return Error::make(Errc::InvalidArgument, "monitoring_child_names = %u (must be 0..4096)",
                       c.monitoring_child_names);
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

namespace {
MonitoringConfig monitoring_config(const SystemConfig& c) noexcept {
  MonitoringConfig m;
  m.events = c.monitoring_events;
  m.child_names = c.monitoring_child_names;
  m.lanes = c.workers;  // one counter lane per worker (bound in its thread)
  return m;
}
}  // namespace

System::System(const SystemConfig& config)
    : config_(config), monitoring_(monitoring_config(config)), processes_(config_, monitoring_) {
  if (!validate(config)) std::abort();
  messages_.init(config.message_blocks, config.workers);
  actors_.init(config.actor_blocks, config.workers);

  cells_ = static_cast<Cell*>(detail::reserve(sizeof(Cell) * config.actor_capacity, 64));
  for (std::uint32_t i = 0; i < config.actor_capacity; ++i) {
    Cell* c = new (&cells_[i]) Cell();
    // Every slot starts at this System's first generation, so that an id
    // of another live System never matches (see detail::SystemTag).
    c->word.store(word::make(tag_.first_gen(), word::kClosed), std::memory_order_relaxed);
  }
  free_slots_.init(&cells_[0].free_link, config.actor_capacity, true, sizeof(Cell));

  asks_.init(config.pending_asks, tag_.first_gen30());
  registry_.init(config.registry_capacity);
  broker_.init(config.broker_topics, config.subscribers_per_topic);

  workers_ = static_cast<Worker*>(detail::reserve(sizeof(Worker) * config.workers, 64));
  const std::int64_t now_tick = arch::monotonic_ns() / detail::TimerWheel::kTickNs;
  for (std::uint32_t i = 0; i < config.workers; ++i) {
    Worker* w = new (&workers_[i]) Worker();
    w->system = this;
    w->index = i;
    w->timers.init(*w, i, config.timers_per_worker, tag_.first_gen30(), now_tick);
  }
  for (std::uint32_t i = 0; i < config.workers; ++i)
    workers_[i].thread = std::thread([this, i] {
      (void)monitoring_.bind_lane(i);  // fails only past MonitoringConfig's lane limit: the shared lane then
      run_worker(workers_[i]);
    });
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
  for (std::uint32_t i = 0; i < config_.workers; ++i) workers_[i].~Worker();  // and its timer wheel
  detail::release(workers_);
  for (std::uint32_t i = 0; i < config_.actor_capacity; ++i) cells_[i].~Cell();
  detail::release(cells_);
}

// ---------------------------------------------------------------------------
// Handles and statistics

Result<Cell*> System::cell_for(ActorId id) const noexcept {
  if (id.slot >= config_.actor_capacity) return bad_ref(id);
  return &cells_[id.slot];
}

bool System::gone(ActorId id) const noexcept {
  if (id.slot >= config_.actor_capacity) return true;
  // acquire: pairs with the release store of the next generation, made
  // once the actor's finalisation (on_stop, trees, Downs) is complete.
  return word::gen(cells_[id.slot].word.load(std::memory_order_acquire)) != id.gen;
}

bool System::alive(ActorId id) const noexcept {
  if (id.slot >= config_.actor_capacity) return false;
  std::uint64_t cur = cells_[id.slot].word.load(std::memory_order_acquire);
  return word::gen(cur) == id.gen && (cur & word::kClosed) == 0;
}

bool System::has_started(ActorId id) const noexcept {
  // acquire (alive's word, the flag, the word again): the flag's release by
  // the actor's worker; and a reset flag (released after the slot's next
  // generation) or the next occupant's flag is followed by a word that no
  // longer matches.
  if (!alive(id)) return false;
  const Cell& c = cells_[id.slot];
  const bool started = c.start_done.load(std::memory_order_acquire);
  return started && word::gen(c.word.load(std::memory_order_acquire)) == id.gen;
}

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

std::uint64_t System::spawned_count() const noexcept {
  std::uint64_t n = spawned_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < config_.workers; ++i) n += workers_[i].spawned.load(std::memory_order_acquire);
  return n;
}

std::uint64_t System::live_count() const noexcept {
  // Stops are read before spawns, so a concurrent spawn can only make the
  // result too high, never report a live actor as gone: a stop counted
  // (release) after its actor's spawn was counted (release; the home
  // worker acquired the cell's word in between) is read here (acquire)
  // before that spawn's counter is.
  const std::uint64_t stopped = stopped_count();
  const std::uint64_t spawned = spawned_count();
  return spawned > stopped ? spawned - stopped : 0;
}

SystemStats System::stats() const noexcept {
  SystemStats s;
  s.stopped = stopped_count();
  s.spawned = spawned_count();
  s.live_actors = s.spawned > s.stopped ? s.spawned - s.stopped : 0;
  s.dead_letters = dead_letters_.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < config_.workers; ++i)
    s.messages += workers_[i].handled.load(std::memory_order_relaxed);
  return s;
}

PoolUsage System::pool_usage() const noexcept {
  PoolUsage u;
  u.message_blocks = messages_.in_use_quiescent();
  u.pending_asks = asks_.outstanding();
  return u;
}


MonitoringSnapshot System::monitoring_snapshot() const noexcept {
  return monitoring_.snapshot(stats(), process_counters());
}

Result<std::size_t> System::write_prometheus(std::span<char> out) const noexcept {
  return monitoring_.write_prometheus(out, stats(), process_counters());
}

}  // namespace airssys
