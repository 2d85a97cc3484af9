#pragma once
// ProcessPoolActor: runs jobs (one process tree each) for other actors and
// threads with a bound on how many run at once, a bounded FIFO queue for
// the rest, and a token-bucket limit on how fast they start. Every spawn
// goes through the System's process executor (policy, audit).
//
// Guarantees:
// - At most `max_running` jobs run at once, ever (a job runs from its
//   spawn until its process exited).
// - Jobs that cannot start yet wait in a FIFO queue of `max_queued`; a job
//   that finds the queue full is refused at once with Full, and counted as
//   rejected.
// - A job starts only with a token: the bucket holds up to `burst` tokens
//   and gains `rate_per_second` of them per second of the injected clock.
// - Each PoolRun gets exactly one reply: the job's exit status once its
//   process ended, or the error that refused or ended it.
// - Accounting, in total and per requester: spawned, running, exited,
//   killed, queued, rejected.
// - Requester cleanup: the jobs of a requester that stops or crashes are
//   dropped from the queue, each answered with Dead (counted as rejected),
//   and its running trees torn down (counted as killed; their replies
//   carry the exit status). When the pool stops, queued and running jobs
//   are answered with ShuttingDown and the runtime tears the running trees
//   down.
// - Fixed capacity (ProcessPoolConfig), reserved when the actor is built.
//   max_running must be 1..SystemConfig::processes_per_actor (the pool's
//   own ProcessSet): the pool fails in on_start with InvalidArgument
//   otherwise (System::start_error(id) gives the message).
// - Jobs run without pipes: a spec's piped streams become /dev/null (the
//   ProcessActor is the actor for output).

#include <airssys/rt/process_actor.hpp>
#include <airssys/rt/supervisor.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <variant>

namespace airssys {

using JobId = std::uint64_t;

struct ProcessPoolConfig {
  std::uint32_t max_running = 4;      // 1..SystemConfig::processes_per_actor
  std::uint32_t max_queued = 16;      // 0: no queue (a job that cannot start at once is refused)
  std::uint32_t max_requesters = 16;  // requesters accounted (and monitored) at once; 0 is taken as 1
  // Token bucket: 0 rate means no limit.
  double rate_per_second = 0.0;
  std::uint32_t burst = 1;  // 0 is taken as 1
  // The bucket's time; null: monotonic_clock(). Not owned: the clock must
  // outlive every pool built from this config, restarts included (a
  // config copied into a ChildSpec keeps the pointer). A clock that does not
  // advance by itself (ManualClock) arms no timers: PoolTick (or any
  // request) makes the pool start what the clock now allows.
  SupervisorClock* clock = nullptr;
  // Non-empty: bound to the pool in the System's registry at its start
  // (see ProcessActorConfig::name). Owned: a copy of the caller's bytes.
  RegistryName name{};
};

struct JobResult {
  JobId job = 0;
  int pid = -1;
  ExitStatus status;
};

// Counts of one requester, or of the whole pool.
struct PoolCounts {
  std::uint64_t spawned = 0;   // jobs started
  std::uint64_t running = 0;   // now
  std::uint64_t exited = 0;    // ended on their own
  std::uint64_t killed = 0;    // ended by the pool (requester gone)
  std::uint64_t queued = 0;    // now
  std::uint64_t rejected = 0;  // refused: queue full, spawn failed, or dropped with their requester
  std::uint64_t max_running_seen = 0;  // the most that ever ran at once (pool total only)
};

struct PoolRun {
  ProcessSpec spec;
  ActorId requester;  // invalid: a plain thread (not monitored)
  ReplyTo<Result<JobResult>> reply;
};
// Counts of `requester`, or of the pool when it is invalid. NotFound for a
// requester the pool does not account.
struct PoolCountsQuery {
  ActorId requester;
  ReplyTo<Result<PoolCounts>> reply;
};
// Makes the pool start what its clock now allows (for a ManualClock).
struct PoolTick {};

namespace detail {
struct PoolTimer {};
}  // namespace detail

using ProcessPoolMsg = std::variant<PoolRun, PoolCountsQuery, PoolTick, Down, ProcessExited, detail::PoolTimer>;

class ProcessPoolActor final : public Actor<ProcessPoolMsg> {
 public:
  explicit ProcessPoolActor(const ProcessPoolConfig& config = {});
  ~ProcessPoolActor() override;

  void on_start(Context<ProcessPoolMsg>& ctx) override;
  void on_message(Context<ProcessPoolMsg>& ctx, ProcessPoolMsg& msg) override;
  void on_stop(Context<ProcessPoolMsg>& ctx, StopReason reason) override;

  struct Job;
  struct Account;

 private:
  using Ctx = Context<ProcessPoolMsg>;
  void handle(Ctx& ctx, PoolRun& m);
  void handle(Ctx& ctx, PoolCountsQuery& m);
  void handle(Ctx& ctx, PoolTick& m);
  void handle(Ctx& ctx, Down& m);
  void handle(Ctx& ctx, ProcessExited& m);
  void handle(Ctx& ctx, detail::PoolTimer& m);

  Account* account(ActorId who) noexcept;
  Result<Account*> open_account(Ctx& ctx, ActorId who) noexcept;
  void refill() noexcept;
  void start_ready(Ctx& ctx) noexcept;
  Result<void> start(Ctx& ctx, Job& job) noexcept;
  void finish(Ctx& ctx, Job& job, const Result<JobResult>& result) noexcept;

  ProcessPoolConfig config_;
  std::unique_ptr<Job[]> running_;
  std::unique_ptr<Job[]> queue_;  // ring, FIFO
  std::uint32_t queue_head_ = 0, queue_size_ = 0;
  std::unique_ptr<Account[]> accounts_;  // [0]: plain threads (invalid id)
  PoolCounts total_;
  SupervisorClock* clock_ = nullptr;
  double tokens_ = 0.0;
  std::int64_t refilled_ns_ = 0;
  bool timer_armed_ = false;
  JobId next_job_ = 1;
};

// A plain thread's handle on a ProcessPoolActor (blocking asks).
class ProcessPoolRef {
 public:
  using Nanos = std::chrono::nanoseconds;
  ProcessPoolRef(System& system, ActorRef<ProcessPoolMsg> ref) noexcept : system_(&system), ref_(ref) {}
  ActorRef<ProcessPoolMsg> ref() const noexcept { return ref_; }
  // Waits for the job to end (or be refused): up to `timeout`.
  Result<JobResult> run(const ProcessSpec& spec, Nanos timeout, ActorId requester = {});
  Result<PoolCounts> counts(ActorId requester = {}, Nanos timeout = std::chrono::seconds(10));
  Result<void> tick() { return system_->send(ref_, PoolTick{}); }

 private:
  System* system_;
  ActorRef<ProcessPoolMsg> ref_;
};

}  // namespace airssys
