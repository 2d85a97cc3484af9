// Shutdown: stopping every actor up to a deadline, the process trees, the
// workers, then the final drain of what is left on the calling thread.
#include <airssys/rt/system.hpp>

#include <airssys/arch/wait.hpp>

namespace airssys {

using detail::Cell;
using detail::Worker;
namespace word = detail::word;

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
  processes_.wait_managed_gone(end);
  for (std::uint32_t i = 0; i < config_.workers; ++i) {
    workers_[i].exit.store(true, std::memory_order_seq_cst);
    wake_parked(workers_[i], workers_[i].sleeping.exchange(detail::kAwake, std::memory_order_seq_cst));
  }
  for (std::uint32_t i = 0; i < config_.workers; ++i)
    if (workers_[i].thread.joinable()) workers_[i].thread.join();
  drain_everything();
  // Whatever is left of the process trees is killed and reaped now; the
  // reactor and the guardian stop.
  processes_.stop_executor();
  processes_.free_exits([this](detail::Node* n) { free_node(n, nullptr); });
  shutdown_state_.store(2, std::memory_order_release);
  arch::wake_all(shutdown_state_);
  if (!in_time)
    return Error::make(Errc::Timeout,
                       "shutdown deadline of %lld ms passed with %llu actor(s) running; they were "
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
  processes_.detach_reports();
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
      w.timers.drain(w);
      messages_.flush(w.cache);
      actors_.flush(w.actor_cache);
      detail::tls_worker = nullptr;
    }
  }
  // A reply to a plain thread's ask is not freed here: once AskTable::finish
  // published it, the waiting thread always takes it (wait_reply gives up
  // only a request still unanswered), possibly after this returns.
}

}  // namespace airssys
