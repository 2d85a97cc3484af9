#pragma once
// The actors' OS processes: the process executor (built with its reactor
// on the first spawn_process), one ProcessSet per actor that owns managed
// processes, and the count of tree teardowns each finalising actor waits
// for before its Down goes out.

#include <airssys/rt/config.hpp>
#include <airssys/rt/monitoring.hpp>
#include <airssys/rt/process.hpp>
#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/pool.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

namespace airssys {

class System;

namespace detail {

class ProcessSets {
 public:
  // `monitoring` records the executor's events (MonitoringMiddleware).
  // The cgroup base path is copied here, when the System is built: the
  // executor reads it at the first spawn, long after the caller's string
  // may be gone.
  ProcessSets(const SystemConfig& config, Monitoring& monitoring) noexcept;
  ProcessSets(const ProcessSets&) = delete;
  ProcessSets& operator=(const ProcessSets&) = delete;
  ~ProcessSets();

  // The executor once built (null before, and after stop_executor).
  osl::ProcessExecutor* built() const noexcept {
    // acquire: pairs with the release store in build(); the executor and
    // the sets are fully built when the pointer is seen.
    return executor_.load(std::memory_order_acquire);
  }
  // Builds the executor and the sets once; its reactor reports exits and
  // finished teardowns to `system`. ShuttingDown if `shutting_down`.
  Result<osl::ProcessExecutor*> build(System& system, bool shutting_down) noexcept;

  // On the actor's worker: spawns for actor `self` (cell `c`); a managed
  // process goes into the actor's set, taken on its first managed spawn.
  Result<SpawnProcessResult> spawn(osl::ProcessExecutor& ex, Cell* c, ActorId self,
                                   const SpawnProcessOperation& op) noexcept;
  std::span<const ChildProcess> children(const Cell* c) const noexcept;
  void remove(Cell* c, int pid) noexcept;
  Result<void> signal(const Cell* c, std::uint32_t slot, int pid, int sig) noexcept;
  Result<void> kill_group(const Cell* c, std::uint32_t slot, int pgid, int sig) noexcept;

  // On the actor's worker, as it stops or restarts: asks the reactor to
  // tear down every tree of `owner` (first_signal, then KILL after
  // `timeout_ns`) and empties the set.
  void teardown(Cell* c, ActorId owner, std::int64_t timeout_ns, int first_signal) noexcept;
  // Returns the set of a finalised actor whose trees are gone.
  void release(Cell* c) noexcept;
  // Deferred finalisation (see processes.cpp): true if some trees of the
  // finalising actor are still being torn down; the reactor's report of
  // the last one (tree_torn_down) then schedules its cell again.
  bool trees_pending(Cell* c, bool foreign) noexcept;
  // On the reactor thread: one tree of `owner` is gone; the last one the
  // finalising owner waits for schedules its cell again.
  void tree_torn_down(System& system, std::uint64_t owner) noexcept;
  // The final drain: no finalisation waits for the reactor any more.
  void detach_reports() noexcept;

  // Each spawned process's exit report is reserved before its spawn (a
  // message node), so that the report never waits for room in the message
  // pool: reserve_exit before the spawn (a row, or ~0u when none is free:
  // the report is then allocated at the exit, as a fallback), then
  // keep_exit with the pid, or drop_exit when the spawn failed (the node
  // back, unless an exit took it). take_exit gives the exit its node (null:
  // none reserved). An owner spawns one process at a time (its actor's
  // turn), so an exit that finds no row of its pid takes its owner's
  // pending one: the process ended before keep_exit. Any thread.
  std::uint32_t reserve_exit(std::uint64_t owner, Node* node) noexcept;
  void keep_exit(std::uint32_t row, std::uint64_t owner, int pid) noexcept;
  Node* drop_exit(std::uint32_t row, std::uint64_t owner) noexcept;
  Node* take_exit(std::uint64_t owner, int pid) noexcept;
  // After stop_executor: the reports that never came (Detached processes
  // let go, an actor's spawn cut short), each node once to `free`.
  template <class F>
  void free_exits(F&& free) noexcept {
    std::lock_guard<std::mutex> lock(exits_mu_);
    for (std::size_t i = 0; i < exit_rows_; ++i)
      if (exits_[i].node != nullptr) {
        free(exits_[i].node);
        exits_[i] = ExitRow{};
      }
  }

  // The executor's counters; after stop_executor, its final ones. Any
  // thread, also while stop_executor runs.
  osl::ProcessExecutor::Counters counters() const noexcept;
  std::size_t held() const noexcept;
  // Waits, up to `deadline_ns`, for the managed trees to be torn down.
  void wait_managed_gone(std::int64_t deadline_ns) noexcept;
  // Destroys the executor: the rest of the trees is killed and reaped, the
  // reactor and the guardian stop.
  void stop_executor() noexcept;

 private:
  class Sink;
  std::uint32_t set_of(const Cell* c) const noexcept { return c->process_set - 1u; }

  const SystemConfig& config_;
  // config_.cgroup_base, copied (too_long: it did not fit, build() fails
  // naming it).
  char cgroup_base_[4096] = {};
  bool cgroup_base_too_long_ = false;
  MonitoringMiddleware monitoring_;
  std::mutex build_mu_;  // taken once, to build the executor
  std::atomic<osl::ProcessExecutor*> executor_{nullptr};
  std::unique_ptr<osl::ProcessExecutor> executor_owner_;
  // Held by counters() and held() while they use the executor, and by
  // stop_executor while it takes it away; final_ is what counters() gives
  // after that.
  mutable std::mutex readers_mu_;
  osl::ProcessExecutor::Counters final_{};
  std::unique_ptr<osl::ExitSink> sink_;
  std::unique_ptr<ChildProcess[]> items_;  // process_owners x processes_per_actor
  std::unique_ptr<std::uint8_t[]> counts_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> links_;
  IndexStack free_sets_;
  // Per ProcessSet: the teardowns its actor requested and those the reactor
  // reported done, and the owner (ActorId::to_bits) waiting for the two to
  // meet (0: none). See trees_pending / tree_torn_down.
  struct TreeWait {
    std::atomic<std::uint64_t> owner{0};
    std::atomic<std::uint32_t> requested{0};
    std::atomic<std::uint32_t> done{0};
    std::atomic<std::uint64_t> waiting{0};
  };
  std::unique_ptr<TreeWait[]> tree_waits_;
  std::mutex reports_mu_;     // reactor reports vs. the final drain
  bool reports_detached_ = false;
  // Reserved exit reports (reserve_exit): node null for a free row, pid 0
  // while the spawn is pending.
  struct ExitRow {
    std::uint64_t owner = 0;
    int pid = 0;
    Node* node = nullptr;
  };
  std::mutex exits_mu_;
  std::unique_ptr<ExitRow[]> exits_;
  std::size_t exit_rows_ = 0;
};

}  // namespace detail
}  // namespace airssys
