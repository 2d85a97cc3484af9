// System: the actors' OS processes — the executor built on first use,
// ProcessSets, exits turned into messages, teardown at stop.
#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <new>

namespace airssys {

using detail::Cell;
using detail::Node;
using detail::NodeKind;

namespace {
std::uint64_t owner_of(ActorId id) noexcept { return (std::uint64_t{id.gen} << 32) | id.slot; }
ActorId actor_of(std::uint64_t owner) noexcept {
  return ActorId{static_cast<std::uint32_t>(owner), static_cast<std::uint32_t>(owner >> 32)};
}

// Who the policy and the audit log see: "actor#<slot>".
struct Principal {
  explicit Principal(std::uint32_t slot) noexcept { std::snprintf(name, sizeof name, "actor#%u", slot); }
  osl::SecurityContext context() const noexcept { return osl::SecurityContext{name}; }
  char name[32];
};
}  // namespace

Result<osl::ProcessExecutor*> System::processes() noexcept {
  // acquire: pairs with the release store below; the executor and the
  // ProcessSets are fully built when the pointer is seen.
  if (auto* ex = executor_.load(std::memory_order_acquire)) return ex;
  std::lock_guard<std::mutex> lock(processes_mu_);
  if (auto* ex = executor_.load(std::memory_order_acquire)) return ex;
  if (shutting_down()) return Error::make(Errc::ShuttingDown, "spawn_process refused: the system is shutting down");
  osl::ExecutorConfig cfg;
  cfg.max_processes = config_.max_processes;
  cfg.cgroup_base = config_.cgroup_base;
  const std::size_t sets = config_.process_owners;
  const std::size_t per = config_.processes_per_actor;
  executor_owner_.reset(new (std::nothrow) osl::ProcessExecutor(cfg));
  process_sink_.reset(new (std::nothrow) ProcessSink(*this));
  process_items_.reset(new (std::nothrow) ChildProcess[sets * per]);
  process_counts_.reset(new (std::nothrow) std::uint8_t[sets]());
  process_links_.reset(new (std::nothrow) std::atomic<std::uint32_t>[sets]);
  tree_waits_.reset(new (std::nothrow) TreeWait[sets]);
  if (!executor_owner_ || !process_sink_ || !process_items_ || !process_counts_ || !process_links_ || !tree_waits_)
    return Error::make(Errc::Full, "no memory for the process executor");
  free_process_sets_.init(process_links_.get(), static_cast<std::uint32_t>(sets), true);
  for (auto* m : config_.process_middleware)
    if (m != nullptr) (void)executor_owner_->use(*m);
  if (auto r = executor_owner_->start_reactor(*process_sink_); !r) return r.error();
  executor_.store(executor_owner_.get(), std::memory_order_release);
  return executor_owner_.get();
}

Result<SpawnProcessResult> System::spawn_process(detail::Turn& t, const SpawnProcessOperation& op) noexcept {
  auto ex = processes();
  if (!ex) return ex.error();
  Cell* c = t.cell;
  const bool managed = op.lifetime == ProcessLifetime::Managed;
  const std::size_t per = config_.processes_per_actor;
  if (managed) {
    if (c->process_set == 0) {
      std::uint32_t set;
      if (!free_process_sets_.pop(set))
        return Error::make(Errc::Full, "actor #%u: no ProcessSet free (SystemConfig::process_owners = %u)", t.slot,
                           config_.process_owners);
      process_counts_[set] = 0;
      // relaxed: the reactor reads it under tree_reports_mu_ only to find
      // the set of a teardown this actor requests later, after a request
      // that synchronises through the executor's mutex.
      tree_waits_[set].owner.store(owner_of(ActorId{t.slot, detail::word::gen(c->word.load(std::memory_order_relaxed))}),
                                   std::memory_order_relaxed);
      c->process_set = static_cast<std::uint16_t>(set + 1);
    }
    if (process_counts_[c->process_set - 1u] >= per)
      return Error::make(Errc::Full, "ProcessSet of actor #%u is full (%zu processes)", t.slot, per);
  }
  const ActorId self{t.slot, detail::word::gen(c->word.load(std::memory_order_relaxed))};
  auto r = ex.value()->execute(op, Principal(t.slot).context(), owner_of(self));
  if (!r) return r.error();
  if (managed) {
    const std::size_t set = c->process_set - 1u;
    process_items_[set * per + process_counts_[set]++] =
        ChildProcess{r.value().pid, r.value().pgid, r.value().containment};
  }
  return r;
}

std::span<const ChildProcess> System::child_processes(const Cell* c) const noexcept {
  if (c->process_set == 0) return {};
  const std::size_t set = c->process_set - 1u;
  return {process_items_.get() + set * config_.processes_per_actor, process_counts_[set]};
}

void System::remove_child_process(Cell* c, int pid) noexcept {
  if (c->process_set == 0) return;
  const std::size_t set = c->process_set - 1u;
  ChildProcess* items = process_items_.get() + set * config_.processes_per_actor;
  std::uint8_t& n = process_counts_[set];
  for (std::size_t i = 0; i < n; ++i)
    if (items[i].pid == pid) {
      items[i] = items[--n];  // order is not kept
      return;
    }
}

namespace {
bool owns(std::span<const ChildProcess> set, int pid, int pgid) noexcept {
  for (const auto& p : set)
    if ((pid > 0 && p.pid == pid) || (pgid > 1 && p.pgid == pgid && p.pid == pgid)) return true;
  return false;
}
}  // namespace

Result<void> System::signal_own_process(detail::Turn& t, int pid, int sig) noexcept {
  if (!owns(child_processes(t.cell), pid, 0))
    return Error::make(Errc::InvalidArgument, "actor #%u does not own process %d", t.slot, pid);
  return executor_.load(std::memory_order_acquire)
      ->execute(osl::SignalProcessOperation{pid, sig}, Principal(t.slot).context());
}

Result<void> System::kill_own_group(detail::Turn& t, int pgid, int sig) noexcept {
  if (pgid <= 1) return Error::make(Errc::InvalidArgument, "KillProcessGroup of pgid %d refused", pgid);
  if (!owns(child_processes(t.cell), 0, pgid))
    return Error::make(Errc::InvalidArgument, "actor #%u does not own a group with pgid %d", t.slot, pgid);
  return executor_.load(std::memory_order_acquire)
      ->execute(osl::KillProcessGroupOperation{pgid, sig}, Principal(t.slot).context());
}

namespace {
// milliseconds::max() means "never KILL": saturate instead of overflowing
// the conversion to nanoseconds.
std::int64_t kill_timeout_ns(std::chrono::milliseconds t) noexcept {
  constexpr std::int64_t kNsPerMs = 1'000'000;
  return t.count() > INT64_MAX / kNsPerMs ? INT64_MAX : t.count() * kNsPerMs;
}
}  // namespace

// On the actor's worker, as it stops or restarts: its trees are torn down
// by the reactor, with the actor's first signal and kill timeout
// (SpawnOptions); the set is emptied, and returned once the trees are gone
// (continue_finalize).
void System::teardown_processes(Cell* c, ActorId owner) noexcept {
  if (c->process_set == 0) return;
  const auto* holder = static_cast<const detail::ActorHolder*>(c->reserved);
  const std::int64_t timeout =
      holder->kill_timeout_ns >= 0 ? holder->kill_timeout_ns : kill_timeout_ns(config_.process_kill_timeout);
  if (auto* ex = executor_.load(std::memory_order_acquire)) {
    const std::size_t n = ex->request_teardown(owner_of(owner), timeout, holder->first_signal);
    TreeWait& tw = tree_waits_[set_of(c)];
    // Only this worker writes `requested`; the reactor compares its count
    // of reports with it (seq_cst, see trees_pending).
    tw.requested.store(tw.requested.load(std::memory_order_relaxed) + static_cast<std::uint32_t>(n),
                       std::memory_order_seq_cst);
  }
  process_counts_[set_of(c)] = 0;
}

void System::release_process_set(Cell* c) noexcept {
  if (c->process_set == 0) return;
  TreeWait& tw = tree_waits_[set_of(c)];
  tw.owner.store(0, std::memory_order_relaxed);
  tw.requested.store(0, std::memory_order_relaxed);
  tw.done.store(0, std::memory_order_relaxed);
  tw.waiting.store(0, std::memory_order_relaxed);
  // The free stack's push releases the resets to the set's next owner.
  free_process_sets_.push(set_of(c));
  c->process_set = 0;
}

// On the home worker, in continue_finalize with every message accounted
// for: true if some of the actor's trees are still being torn down. The
// cell then leaves its worker's queues; the reactor's report of the last
// tree (tree_torn_down) schedules it again. The two meet Dekker-style:
// this side publishes `waiting` then reads `done`, the reactor adds to
// `done` then reads `requested` and claims `waiting` (all seq_cst); the one
// that wins the claim of `waiting` goes on, so the cell runs exactly once
// more.
bool System::trees_pending(detail::Worker&, Cell* c, bool foreign) noexcept {
  if (tree_reports_detached_) return false;  // the final drain: the executor's end kills the rest
  TreeWait& tw = tree_waits_[set_of(c)];
  const std::uint32_t requested = tw.requested.load(std::memory_order_relaxed);
  if (tw.done.load(std::memory_order_seq_cst) == requested) return false;
  // A foreign run holds kQueued: give it up so that the reactor can queue
  // the cell again (the word is closed: no sender sets it meanwhile).
  if (foreign) c->word.fetch_and(~detail::word::kQueued, std::memory_order_seq_cst);
  const std::uint64_t owner = tw.owner.load(std::memory_order_relaxed);
  tw.waiting.store(owner, std::memory_order_seq_cst);
  if (tw.done.load(std::memory_order_seq_cst) != requested) return true;
  std::uint64_t expected = owner;
  if (tw.waiting.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) {
    // Done meanwhile, and the reactor did not claim the wake-up: go on
    // here. The cell is in no queue now, as after a local run.
    if (foreign) c->word.fetch_or(detail::word::kQueued, std::memory_order_relaxed);
    return false;
  }
  return true;  // the reactor claimed it and queued the cell
}

// On the reactor thread: one tree of `owner`, requested by teardown_processes, is gone.
void System::tree_torn_down(std::uint64_t owner) noexcept {
  std::lock_guard<std::mutex> lock(tree_reports_mu_);
  if (tree_reports_detached_ || !tree_waits_) return;
  TreeWait* tw = nullptr;
  for (std::uint32_t i = 0; i < config_.process_owners && tw == nullptr; ++i)
    if (tree_waits_[i].owner.load(std::memory_order_relaxed) == owner) tw = &tree_waits_[i];
  if (tw == nullptr) return;
  const std::uint32_t done = tw->done.fetch_add(1, std::memory_order_seq_cst) + 1;
  if (done != tw->requested.load(std::memory_order_seq_cst)) return;
  std::uint64_t expected = owner;
  // Only a finalising actor publishes `waiting`, and with its own id: a
  // claim cannot wake another occupant of the set or the slot.
  if (!tw->waiting.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) return;
  Cell* c = &cells_[actor_of(owner).slot];
  // acq_rel: the run this schedules sees the cell as its worker left it.
  if ((c->word.fetch_or(detail::word::kQueued, std::memory_order_acq_rel) & detail::word::kQueued) == 0)
    schedule_foreign(c);
}

void System::detach_tree_reports() noexcept {
  std::lock_guard<std::mutex> lock(tree_reports_mu_);
  tree_reports_detached_ = true;
}

Result<void> System::report_started(detail::Turn& t) noexcept {
  auto* holder = static_cast<detail::ActorHolder*>(t.cell->reserved);
  const ActorId parent = holder->notify_started;
  if (!parent.valid()) return {};
  holder->notify_started = ActorId{};
  Node* n = alloc_node(0, t.worker);
  if (n == nullptr) return pool_exhausted(0, parent);
  n->kind = NodeKind::Started;
  new (detail::payload<Started>(n)) Started{ActorId{t.slot, detail::word::gen(t.cell->word.load(std::memory_order_relaxed))}};
  if (post_system(parent, n, t.worker)) return {};
  free_node(n, t.worker);
  return Error::make(Errc::Dead, "actor #%u: the actor that spawned it (#%u) has stopped; Started not sent", t.slot,
                     parent.slot);
}

Result<void> System::probe_health(detail::Turn& t, ActorId target) noexcept {
  Node* n = alloc_node(0, t.worker);
  if (n == nullptr) return pool_exhausted(0, target);
  n->kind = NodeKind::Probe;
  const ActorId self{t.slot, detail::word::gen(t.cell->word.load(std::memory_order_relaxed))};
  new (detail::payload<detail::ProbeRecord>(n)) detail::ProbeRecord{self, HealthReport{target, Health::Healthy}};
  if (post_system(target, n, t.worker)) return {};
  free_node(n, t.worker);
  return Error::make(Errc::Dead, "health probe of actor #%u (generation %u): it has stopped", target.slot,
                     target.gen);
}

// On the reactor thread.
void System::deliver_process_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept {
  Node* n = alloc_node(0, nullptr);
  if (n == nullptr) return;  // message pool exhausted: the set entry stays until the actor stops
  n->kind = NodeKind::ProcessExit;
  new (detail::payload<ProcessExited>(n)) ProcessExited{pid, status};
  if (!post_system(actor_of(owner), n, nullptr)) free_node(n, nullptr);
}

osl::ProcessExecutor::Counters System::process_counters() const noexcept {
  auto* ex = executor_.load(std::memory_order_acquire);
  return ex != nullptr ? ex->counters() : osl::ProcessExecutor::Counters{};
}

std::size_t System::processes_held() const noexcept {
  auto* ex = executor_.load(std::memory_order_acquire);
  return ex != nullptr ? ex->live() : 0;
}

// During shutdown, with the workers still running (a managed child dies
// with the thread that spawned it): waits for the trees of the stopped
// actors to be torn down, up to the deadline. The executor itself, with
// its reactor and guardian, goes at the end of shutdown.
void System::shutdown_processes(std::int64_t deadline_ns) noexcept {
  auto* ex = executor_.load(std::memory_order_acquire);
  if (ex == nullptr) return;
  while (ex->managed() != 0 && arch::monotonic_ns() < deadline_ns) arch::sleep_ns(500'000);
}

}  // namespace airssys
