// The actors' OS processes: detail::ProcessSets — the executor built on
// first use, one ProcessSet per owning actor, and the count of teardowns a
// finalising actor waits for — and System's side of it: spawn_process,
// exits turned into messages, teardown at stop and restart.
#include <airssys/rt/detail/process_sets.hpp>

#include <airssys/arch/wait.hpp>
#include <airssys/rt/system.hpp>

#include <chrono>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <new>

namespace airssys {

using detail::Cell;
using detail::Node;
using detail::NodeKind;

namespace {
// Who the policy and the audit log see: "actor#<slot>".
struct Principal {
  explicit Principal(std::uint32_t slot) noexcept { std::snprintf(name, sizeof name, "actor#%u", slot); }
  osl::SecurityContext context() const noexcept { return osl::SecurityContext{name}; }
  char name[32];
};

bool owns(std::span<const ChildProcess> set, int pid, int pgid) noexcept {
  for (const auto& p : set)
    if ((pid > 0 && p.pid == pid) || (pgid > 1 && p.pgid == pgid && p.pid == pgid)) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------
// System's side

Result<osl::ProcessExecutor*> System::processes() noexcept {
  osl::ProcessExecutor* ex = processes_.built();
  if (ex == nullptr) {
    auto built = processes_.build(*this, shutting_down());
    if (!built) return built.error();
    ex = built.value();
  }
  // An actor of this worker uses processes: the worker parks on their
  // events from now on.
  if (detail::Worker* w = detail::tls_worker; w != nullptr && w->system == this && !w->park.valid())
    watch_process_events(*w, *ex);
  return ex;
}

Result<SpawnProcessResult> System::spawn_process(detail::Turn& t, const SpawnProcessOperation& op) noexcept {
  auto ex = processes();
  if (!ex) return ex.error();
  const ActorId self = id_of(t.cell);
  // The exit report's node, reserved now: an exit while the pool is
  // exhausted would otherwise be lost (the actor would never hear of it).
  Node* report = alloc_node(0, t.worker);
  if (report == nullptr) {
    return Error::make(Errc::Full,
                       "spawn_process of actor #%u refused: the message pool has no block for its exit report "
                       "(%u blocks of %zu bytes)",
                       self.slot, messages_.count(0), kMinBlockSize);
  }
  const std::uint32_t row = processes_.reserve_exit(self.to_bits(), report);
  if (row == ~0u) free_node(report, t.worker);  // no row free: allocated at the exit instead
  auto r = processes_.spawn(**ex, t.cell, self, op);
  if (row != ~0u) {
    if (r) {
      processes_.keep_exit(row, self.to_bits(), r.value().pid);
    } else if (Node* n = processes_.drop_exit(row, self.to_bits())) {
      free_node(n, t.worker);
    }
  }
  return r;
}

// On the actor's worker, as it stops or restarts: its trees are torn down
// by the reactor, with the actor's first signal and kill timeout
// (SpawnOptions); the set is emptied, and returned once the trees are gone
// (continue_finalize).
void System::teardown_processes(Cell* c) noexcept {
  const auto* holder = static_cast<const detail::ActorHolder*>(c->reserved);
  const std::int64_t timeout =
      holder->kill_timeout_ns >= 0 ? holder->kill_timeout_ns : arch::ms_to_ns_saturated(config_.process_kill_timeout.count());
  processes_.teardown(c, id_of(c), timeout, holder->first_signal);
}

// On the reactor thread.
void System::deliver_process_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept {
  Node* n = processes_.take_exit(owner, pid);  // reserved at the spawn
  if (n == nullptr) n = alloc_node(0, nullptr);
  if (n == nullptr) return;  // none reserved (no row was free) and the pool exhausted: the report is lost
  n->kind = NodeKind::ProcessExit;
  new (detail::payload<ProcessExited>(n)) ProcessExited{pid, status};
  if (!post_system(ActorId::from_bits(owner), n, nullptr)) free_node(n, nullptr);
}

osl::ProcessExecutor::Counters System::process_counters() const noexcept { return processes_.counters(); }

std::size_t System::processes_held() const noexcept { return processes_.held(); }

namespace detail {

// ---------------------------------------------------------------------------
// ProcessSets

// The reactor's reports, passed to the System.
class ProcessSets::Sink final : public osl::ExitSink {
 public:
  explicit Sink(System& s) noexcept : system_(s) {}
  void on_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept override {
    system_.deliver_process_exit(owner, pid, status);
  }
  void on_teardown(std::uint64_t owner, int, const osl::TeardownReport& report) noexcept override {
    if (report.owner_wide) system_.processes_.tree_torn_down(system_, owner);
  }

 private:
  System& system_;
};

ProcessSets::ProcessSets(const SystemConfig& config, Monitoring& monitoring) noexcept
    : config_(config), monitoring_(monitoring) {
  if (config.cgroup_base == nullptr) return;
  const std::size_t n = std::strlen(config.cgroup_base);
  cgroup_base_too_long_ = n >= sizeof cgroup_base_;
  if (!cgroup_base_too_long_) std::memcpy(cgroup_base_, config.cgroup_base, n + 1);
}

ProcessSets::~ProcessSets() = default;

Result<osl::ProcessExecutor*> ProcessSets::build(System& system, bool shutting_down) noexcept {
  std::lock_guard<std::mutex> lock(build_mu_);
  if (auto* ex = executor_.load(std::memory_order_acquire)) return ex;
  if (shutting_down) return Error::make(Errc::ShuttingDown, "spawn_process refused: the system is shutting down");
  if (cgroup_base_too_long_)
    return Error::make(Errc::InvalidArgument, "SystemConfig::cgroup_base '%.64s...' is longer than %zu bytes",
                       cgroup_base_, sizeof cgroup_base_ - 1);
  osl::ExecutorConfig cfg;
  cfg.max_processes = config_.max_processes;
  cfg.cgroup_base = config_.cgroup_base != nullptr ? cgroup_base_ : nullptr;
  const std::size_t sets = config_.process_owners;
  const std::size_t per = config_.processes_per_actor;
  executor_owner_.reset(new (std::nothrow) osl::ProcessExecutor(cfg));
  sink_.reset(new (std::nothrow) Sink(system));
  items_.reset(new (std::nothrow) ChildProcess[sets * per]);
  counts_.reset(new (std::nothrow) std::uint8_t[sets]());
  links_.reset(new (std::nothrow) std::atomic<std::uint32_t>[sets]);
  tree_waits_.reset(new (std::nothrow) TreeWait[sets]);
  exit_rows_ = config_.max_processes + config_.workers;  // held processes, and one pending spawn per worker
  exits_.reset(new (std::nothrow) ExitRow[exit_rows_]);
  if (!executor_owner_ || !sink_ || !items_ || !counts_ || !links_ || !tree_waits_ || !exits_)
    return Error::make(Errc::Full, "no memory for the process executor");
  free_sets_.init(links_.get(), static_cast<std::uint32_t>(sets), true);
  for (auto* m : config_.process_middleware)
    if (m != nullptr) (void)executor_owner_->use(*m);
  // Last: it records what the policy let through, and every event.
  (void)executor_owner_->use(monitoring_);
  if (auto r = executor_owner_->start_reactor(*sink_); !r) return r.error();
  // release: see built().
  executor_.store(executor_owner_.get(), std::memory_order_release);
  return executor_owner_.get();
}

Result<SpawnProcessResult> ProcessSets::spawn(osl::ProcessExecutor& ex, Cell* c, ActorId self,
                                              const SpawnProcessOperation& op) noexcept {
  const bool managed = op.lifetime == ProcessLifetime::Managed;
  const std::size_t per = config_.processes_per_actor;
  if (managed) {
    if (c->process_set == 0) {
      std::uint32_t set;
      if (!free_sets_.pop(set))
        return Error::make(Errc::Full, "actor #%u: no ProcessSet free (SystemConfig::process_owners = %u)",
                           self.slot, config_.process_owners);
      counts_[set] = 0;
      // relaxed: the reactor reads it under reports_mu_ only to find the
      // set of a teardown this actor requests later, after a request that
      // synchronises through the executor's mutex.
      tree_waits_[set].owner.store(self.to_bits(), std::memory_order_relaxed);
      c->process_set = static_cast<std::uint16_t>(set + 1);
    }
    if (counts_[set_of(c)] >= per)
      return Error::make(Errc::Full, "ProcessSet of actor #%u is full (%zu processes)", self.slot, per);
  }
  auto r = ex.execute(op, Principal(self.slot).context(), self.to_bits());
  if (!r) return r.error();
  if (managed) {
    const std::size_t set = set_of(c);
    items_[set * per + counts_[set]++] = ChildProcess{r.value().pid, r.value().pgid, r.value().containment};
  }
  return r;
}

std::uint32_t ProcessSets::reserve_exit(std::uint64_t owner, Node* node) noexcept {
  std::lock_guard<std::mutex> lock(exits_mu_);
  for (std::size_t i = 0; i < exit_rows_; ++i)
    if (exits_[i].node == nullptr) {
      exits_[i] = ExitRow{owner, 0, node};
      return static_cast<std::uint32_t>(i);
    }
  return ~0u;
}

// The row is still this owner's pending one unless an exit took it (and
// another owner may hold it since; this owner reserves again only after).
void ProcessSets::keep_exit(std::uint32_t row, std::uint64_t owner, int pid) noexcept {
  std::lock_guard<std::mutex> lock(exits_mu_);
  ExitRow& e = exits_[row];
  if (e.node != nullptr && e.owner == owner && e.pid == 0) e.pid = pid;
}

Node* ProcessSets::drop_exit(std::uint32_t row, std::uint64_t owner) noexcept {
  std::lock_guard<std::mutex> lock(exits_mu_);
  if (exits_[row].node == nullptr || exits_[row].owner != owner || exits_[row].pid != 0) return nullptr;
  Node* n = exits_[row].node;
  exits_[row] = ExitRow{};
  return n;
}

Node* ProcessSets::take_exit(std::uint64_t owner, int pid) noexcept {
  std::lock_guard<std::mutex> lock(exits_mu_);
  std::size_t pending = exit_rows_;
  for (std::size_t i = 0; i < exit_rows_; ++i) {
    ExitRow& e = exits_[i];
    if (e.node == nullptr || e.owner != owner) continue;
    if (e.pid == pid) {
      pending = i;
      break;
    }
    if (e.pid == 0) pending = i;
  }
  if (pending == exit_rows_) return nullptr;
  Node* n = exits_[pending].node;
  exits_[pending] = ExitRow{};
  return n;
}

std::span<const ChildProcess> ProcessSets::children(const Cell* c) const noexcept {
  if (c->process_set == 0) return {};
  const std::size_t set = set_of(c);
  return {items_.get() + set * config_.processes_per_actor, counts_[set]};
}

void ProcessSets::remove(Cell* c, int pid) noexcept {
  if (c->process_set == 0) return;
  const std::size_t set = set_of(c);
  ChildProcess* items = items_.get() + set * config_.processes_per_actor;
  std::uint8_t& n = counts_[set];
  for (std::size_t i = 0; i < n; ++i)
    if (items[i].pid == pid) {
      items[i] = items[--n];  // order is not kept
      return;
    }
}

Result<void> ProcessSets::signal(const Cell* c, std::uint32_t slot, int pid, int sig) noexcept {
  if (!owns(children(c), pid, 0))
    return Error::make(Errc::InvalidArgument, "actor #%u does not own process %d", slot, pid);
  return built()->execute(osl::SignalProcessOperation{pid, sig}, Principal(slot).context());
}

Result<void> ProcessSets::kill_group(const Cell* c, std::uint32_t slot, int pgid, int sig) noexcept {
  if (pgid <= 1) return Error::make(Errc::InvalidArgument, "KillProcessGroup of pgid %d refused", pgid);
  if (!owns(children(c), 0, pgid))
    return Error::make(Errc::InvalidArgument, "actor #%u does not own a group with pgid %d", slot, pgid);
  return built()->execute(osl::KillProcessGroupOperation{pgid, sig}, Principal(slot).context());
}

void ProcessSets::teardown(Cell* c, ActorId owner, std::int64_t timeout_ns, int first_signal) noexcept {
  if (c->process_set == 0) return;
  if (auto* ex = built()) {
    const std::size_t n = ex->request_teardown(owner.to_bits(), timeout_ns, first_signal);
    TreeWait& tw = tree_waits_[set_of(c)];
    // Only this worker writes `requested`; the reactor compares its count
    // of reports with it (seq_cst, see trees_pending).
    tw.requested.store(tw.requested.load(std::memory_order_relaxed) + static_cast<std::uint32_t>(n),
                       std::memory_order_seq_cst);
  }
  counts_[set_of(c)] = 0;
}

void ProcessSets::release(Cell* c) noexcept {
  if (c->process_set == 0) return;
  TreeWait& tw = tree_waits_[set_of(c)];
  tw.owner.store(0, std::memory_order_relaxed);
  tw.requested.store(0, std::memory_order_relaxed);
  tw.done.store(0, std::memory_order_relaxed);
  tw.waiting.store(0, std::memory_order_relaxed);
  // The free stack's push releases the resets to the set's next owner.
  free_sets_.push(set_of(c));
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
bool ProcessSets::trees_pending(Cell* c, bool foreign) noexcept {
  if (reports_detached_) return false;  // the final drain: the executor's end kills the rest
  TreeWait& tw = tree_waits_[set_of(c)];
  const std::uint32_t requested = tw.requested.load(std::memory_order_relaxed);
  if (tw.done.load(std::memory_order_seq_cst) == requested) return false;
  // A foreign run holds kQueued: give it up so that the reactor can queue
  // the cell again. (A finalising cell's word is closed, so no sender sets
  // it meanwhile; a restarting one's is open, and a sender that sets it
  // queues the cell for a run that will look again.)
  if (foreign) c->word.fetch_and(~word::kQueued, std::memory_order_seq_cst);
  const std::uint64_t owner = tw.owner.load(std::memory_order_relaxed);
  tw.waiting.store(owner, std::memory_order_seq_cst);
  if (tw.done.load(std::memory_order_seq_cst) != requested) return true;
  std::uint64_t expected = owner;
  if (tw.waiting.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) {
    // Done meanwhile, and the reactor did not claim the wake-up: go on
    // here, unless a sender queued the cell since (an open word): then the
    // run it queued goes on, and this one must not also hold kQueued.
    if (foreign && (c->word.fetch_or(word::kQueued, std::memory_order_seq_cst) & word::kQueued) != 0) return true;
    return false;
  }
  return true;  // the reactor claimed it and queued the cell
}

// On the reactor thread: one tree of `owner`, requested by teardown(), is
// gone. Under reports_mu_ throughout, so that no cell is queued once the
// final drain has detached the reports.
void ProcessSets::tree_torn_down(System& system, std::uint64_t owner) noexcept {
  std::lock_guard<std::mutex> lock(reports_mu_);
  if (reports_detached_ || !tree_waits_) return;
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
  Cell* c = &system.cells_[ActorId::from_bits(owner).slot];
  // acq_rel: the run this schedules sees the cell as its worker left it.
  if ((c->word.fetch_or(word::kQueued, std::memory_order_acq_rel) & word::kQueued) == 0)
    system.schedule_foreign(c);
}

void ProcessSets::detach_reports() noexcept {
  std::lock_guard<std::mutex> lock(reports_mu_);
  reports_detached_ = true;
}

osl::ProcessExecutor::Counters ProcessSets::counters() const noexcept {
  std::lock_guard<std::mutex> lock(readers_mu_);
  auto* ex = built();
  return ex != nullptr ? ex->counters() : final_;
}

std::size_t ProcessSets::held() const noexcept {
  std::lock_guard<std::mutex> lock(readers_mu_);
  auto* ex = built();
  return ex != nullptr ? ex->live() : 0;
}

// During shutdown, with the workers still running (a managed child dies
// with the thread that spawned it): waits for the trees of the stopped
// actors to be torn down, up to the deadline. The executor itself, with
// its reactor and guardian, goes at the end of shutdown.
void ProcessSets::wait_managed_gone(std::int64_t deadline_ns) noexcept {
  auto* ex = built();
  if (ex == nullptr) return;
  while (ex->managed() != 0 && arch::monotonic_ns() < deadline_ns) arch::sleep_ns(500'000);
}

void ProcessSets::stop_executor() noexcept {
  auto* ex = built();
  if (ex == nullptr) return;
  // The last trees go first, so that the counts kept include them; a
  // reader meanwhile still reads the executor (its counters stay valid).
  ex->shutdown();
  std::unique_ptr<osl::ProcessExecutor> gone;
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    final_ = ex->counters();
    executor_.store(nullptr, std::memory_order_release);
    gone = std::move(executor_owner_);
  }
}

}  // namespace detail
}  // namespace airssys
