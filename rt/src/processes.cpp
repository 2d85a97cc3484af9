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
  if (!executor_owner_ || !process_sink_ || !process_items_ || !process_counts_ || !process_links_)
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
// by the reactor; the set is emptied (and returned when the actor stops).
void System::teardown_processes(Cell* c, ActorId owner) noexcept {
  if (c->process_set == 0) return;
  if (auto* ex = executor_.load(std::memory_order_acquire))
    ex->request_teardown(owner_of(owner), kill_timeout_ns(config_.process_kill_timeout));
  process_counts_[c->process_set - 1u] = 0;
}

void System::release_process_set(Cell* c) noexcept {
  if (c->process_set == 0) return;
  free_process_sets_.push(c->process_set - 1u);
  c->process_set = 0;
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
