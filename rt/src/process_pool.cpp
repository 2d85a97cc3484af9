// ProcessPoolActor: a bounded number of running jobs, a bounded FIFO queue,
// a token bucket on an injectable clock, and accounting per requester.
#include <airssys/rt/process_pool.hpp>

#include <airssys/arch/wait.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <new>

namespace airssys {

struct ProcessPoolActor::Job {
  JobId id = 0;  // 0: free
  ActorId requester;
  ReplyTo<Result<JobResult>> reply;
  int pid = -1;
  bool kill_requested = false;
  int first_signal = 0;
  std::int64_t kill_timeout_ns = 0;
  ProcessSpec spec{std::string_view{}};  // queued jobs only
};

struct ProcessPoolActor::Account {
  ActorId who;
  bool used = false;
  bool gone = false;  // its requester stopped; the counts stay readable until the slot is needed
  PoolCounts counts;
};

ProcessPoolActor::ProcessPoolActor(const ProcessPoolConfig& config) : config_(config) {
  if (config_.max_requesters == 0) config_.max_requesters = 1;
  if (config_.burst == 0) config_.burst = 1;
  // max_running 0 keeps a table of one (on_start refuses it), as max_queued 0 does.
  running_.reset(new (std::nothrow) Job[std::max<std::uint32_t>(config_.max_running, 1)]);
  queue_.reset(new (std::nothrow) Job[std::max<std::uint32_t>(config_.max_queued, 1)]);
  accounts_.reset(new (std::nothrow) Account[config_.max_requesters + 1]);
  clock_ = config_.clock != nullptr ? config_.clock : &monotonic_clock();
  tokens_ = config_.burst;
  refilled_ns_ = clock_->now_ns();
}

ProcessPoolActor::~ProcessPoolActor() = default;

void ProcessPoolActor::on_start(Ctx& ctx) {
  if (!running_ || !queue_ || !accounts_) {
    ctx.fail(Error::make(Errc::Full, "ProcessPoolActor #%u: no memory for its tables", ctx.self().id.slot));
    return;
  }
  if (config_.max_running == 0) {
    ctx.fail(Error::make(Errc::InvalidArgument, "ProcessPoolActor: max_running 0: no job could ever run"));
    return;
  }
  const std::uint32_t per_actor = ctx.system().config().processes_per_actor;
  if (config_.max_running > per_actor) {
    ctx.fail(Error::make(Errc::InvalidArgument,
                         "ProcessPoolActor: max_running %u exceeds SystemConfig::processes_per_actor %u",
                         config_.max_running, per_actor));
    return;
  }
  if (!(config_.rate_per_second >= 0.0) || std::isinf(config_.rate_per_second)) {
    ctx.fail(Error::make(Errc::InvalidArgument, "ProcessPoolActor: rate_per_second %g is not a finite rate >= 0",
                         config_.rate_per_second));
    return;
  }
  accounts_[0].used = true;  // plain threads
  if (config_.name.empty()) return;
  if (auto ok = config_.name.check(); !ok) {
    ctx.fail(ok.error());
    return;
  }
  if (auto r = ctx.system().registry().add(config_.name.view(), ctx.self()); !r) ctx.fail(r.error());
}

void ProcessPoolActor::on_stop(Ctx& ctx, StopReason) {
  auto stopped = [&](JobId id) {
    return Error::make(Errc::ShuttingDown, "ProcessPoolActor #%u stopped before job %llu ended", ctx.self().id.slot,
                       static_cast<unsigned long long>(id));
  };
  for (std::uint32_t i = 0; i < config_.max_running; ++i)
    if (running_[i].id != 0) (void)ctx.reply(running_[i].reply, stopped(running_[i].id));
  for (std::uint32_t k = 0; k < queue_size_; ++k) {
    Job& j = queue_[(queue_head_ + k) % config_.max_queued];
    (void)ctx.reply(j.reply, stopped(j.id));
  }
  queue_size_ = 0;
  // The runtime tears the running trees down after on_stop.
}

void ProcessPoolActor::on_message(Ctx& ctx, ProcessPoolMsg& msg) {
  std::visit([&](auto& m) { handle(ctx, m); }, msg);
}

ProcessPoolActor::Account* ProcessPoolActor::account(ActorId who) noexcept {
  if (!who.valid()) return &accounts_[0];
  for (std::uint32_t i = 1; i <= config_.max_requesters; ++i)
    if (accounts_[i].used && accounts_[i].who == who) return &accounts_[i];
  return nullptr;
}

Result<ProcessPoolActor::Account*> ProcessPoolActor::open_account(Ctx& ctx, ActorId who) noexcept {
  if (Account* a = account(who); a != nullptr && !a->gone) return a;
  Account* slot = nullptr;
  for (std::uint32_t i = 1; i <= config_.max_requesters && slot == nullptr; ++i)
    if (!accounts_[i].used) slot = &accounts_[i];
  for (std::uint32_t i = 1; i <= config_.max_requesters && slot == nullptr; ++i)
    if (accounts_[i].gone) slot = &accounts_[i];
  if (slot == nullptr)
    return Error::make(Errc::Full, "ProcessPoolActor #%u accounts for %u requesters already (max_requesters)",
                       ctx.self().id.slot, config_.max_requesters);
  if (auto r = ctx.monitor(ActorRef<Down>{who}); !r) return r.error();
  *slot = Account{};
  slot->who = who;
  slot->used = true;
  return slot;
}

void ProcessPoolActor::refill() noexcept {
  if (config_.rate_per_second <= 0.0) return;
  const std::int64_t now = clock_->now_ns();
  if (now > refilled_ns_) {
    tokens_ = std::min<double>(config_.burst,
                               tokens_ + static_cast<double>(now - refilled_ns_) * config_.rate_per_second / 1e9);
    refilled_ns_ = now;
  }
}

void ProcessPoolActor::handle(Ctx& ctx, PoolRun& m) {
  auto reject = [&](Account* a, const Error& e) {
    ++total_.rejected;
    if (a != nullptr) ++a->counts.rejected;
    (void)ctx.reply(m.reply, e);
  };
  auto acct = open_account(ctx, m.requester);
  if (!acct) {
    reject(nullptr, acct.error());
    return;
  }
  Account* a = acct.value();
  if (auto ok = m.spec.check(); !ok) {
    reject(a, ok.error());
    return;
  }
  if (config_.max_queued > 0 && queue_size_ == config_.max_queued) {
    // The queue is the only way in: jobs start in order, so a full queue
    // refuses even when a slot and a token are free this instant (the
    // queue then drains on the next start_ready).
    refill();
    start_ready(ctx);
    if (queue_size_ == config_.max_queued) {
      reject(a, Error::make(Errc::Full, "ProcessPoolActor #%u: the queue is full (%u jobs waiting, %u running)",
                            ctx.self().id.slot, config_.max_queued, config_.max_running));
      return;
    }
  }
  if (config_.max_queued == 0) {
    // No queue: run now or refuse.
    refill();
    std::uint32_t running = 0;
    for (std::uint32_t i = 0; i < config_.max_running; ++i) running += running_[i].id != 0;
    if (running == config_.max_running || (config_.rate_per_second > 0.0 && tokens_ < 1.0)) {
      reject(a, Error::make(Errc::Full, "ProcessPoolActor #%u: no slot or token free and no queue",
                            ctx.self().id.slot));
      return;
    }
  }
  Job& j = queue_[(queue_head_ + queue_size_) % std::max<std::uint32_t>(config_.max_queued, 1)];
  j.id = next_job_++;
  j.requester = m.requester;
  j.reply = m.reply;
  j.pid = -1;
  j.kill_requested = false;
  j.first_signal = m.spec.first_signal();
  j.kill_timeout_ns = arch::ms_to_ns_saturated(m.spec.kill_timeout().count());
  j.spec = m.spec;
  ++queue_size_;
  ++total_.queued;
  ++a->counts.queued;
  refill();
  start_ready(ctx);
}

void ProcessPoolActor::start_ready(Ctx& ctx) noexcept {
  const std::uint32_t cap = std::max<std::uint32_t>(config_.max_queued, 1);
  while (queue_size_ > 0) {
    Job* slot = nullptr;
    for (std::uint32_t i = 0; i < config_.max_running && slot == nullptr; ++i)
      if (running_[i].id == 0) slot = &running_[i];
    if (slot == nullptr) return;  // a slot frees when a job's process exits
    if (config_.rate_per_second > 0.0 && tokens_ < 1.0) {
      if (clock_->advances_by_itself() && !timer_armed_) {
        const double wait_ns = (1.0 - tokens_) / config_.rate_per_second * 1e9;
        const auto delay = std::chrono::nanoseconds(static_cast<std::int64_t>(std::min(wait_ns, 3.6e12)) + 1'000'000);
        timer_armed_ = ctx.send_after(ctx.self(), detail::PoolTimer{}, delay).ok();
      }
      return;
    }
    Job& j = queue_[queue_head_];
    queue_head_ = (queue_head_ + 1) % cap;
    --queue_size_;
    --total_.queued;
    Account* a = account(j.requester);
    if (a != nullptr && a->counts.queued > 0) --a->counts.queued;
    *slot = j;
    j.id = 0;
    if (auto r = start(ctx, *slot); !r) {
      ++total_.rejected;
      if (a != nullptr) ++a->counts.rejected;
      (void)ctx.reply(slot->reply, r.error());
      slot->id = 0;
      continue;
    }
    if (config_.rate_per_second > 0.0) tokens_ -= 1.0;
    ++total_.spawned;
    ++total_.running;
    total_.max_running_seen = std::max(total_.max_running_seen, total_.running);
    if (a != nullptr) {
      ++a->counts.spawned;
      ++a->counts.running;
    }
  }
}

Result<void> ProcessPoolActor::start(Ctx& ctx, Job& job) noexcept {
  const ProcessSpec& spec = job.spec;
  std::string_view args[ProcessSpec::kMaxArgs];
  std::string_view env[ProcessSpec::kMaxEnv];
  SpawnProcessOperation op = spec.operation(args, env);
  op.stdio[0] = osl::StdioConfig::null();
  op.stdio[1] = spec.stdout_piped() ? osl::StdioConfig::null() : osl::StdioConfig::inherit();
  op.stdio[2] = spec.stderr_piped() ? osl::StdioConfig::null() : osl::StdioConfig::inherit();
  auto r = ctx.spawn_process(op);
  if (!r) return r.error();
  job.pid = r.value().pid;
  return {};
}

void ProcessPoolActor::handle(Ctx& ctx, ProcessExited& m) {
  Job* job = nullptr;
  for (std::uint32_t i = 0; i < config_.max_running && job == nullptr; ++i)
    if (running_[i].id != 0 && running_[i].pid == m.pid) job = &running_[i];
  if (job == nullptr) return;
  // What the job left running in its tree goes with it.
  if (auto ex = ctx.system().process_executor(); ex)
    (void)ex.value()->request_tree_teardown(ctx.self().id.to_bits(), m.pid, job->kill_timeout_ns,
                                            job->first_signal);
  --total_.running;
  ++(job->kill_requested ? total_.killed : total_.exited);
  if (Account* a = account(job->requester); a != nullptr) {
    if (a->counts.running > 0) --a->counts.running;
    ++(job->kill_requested ? a->counts.killed : a->counts.exited);
  }
  (void)ctx.reply(job->reply, JobResult{job->id, m.pid, m.status});
  job->id = 0;
  refill();
  start_ready(ctx);
}

void ProcessPoolActor::handle(Ctx& ctx, Down& m) {
  Account* a = account(m.who);
  if (a == nullptr || !m.who.valid()) return;
  a->gone = true;
  // Its queued jobs are dropped (keeping the others' order), each answered,
  // its running trees torn down.
  const std::uint32_t cap = std::max<std::uint32_t>(config_.max_queued, 1);
  std::uint32_t kept = 0;
  for (std::uint32_t k = 0; k < queue_size_; ++k) {
    Job& j = queue_[(queue_head_ + k) % cap];
    if (j.requester == m.who) {
      (void)ctx.reply(j.reply, Error::make(Errc::Dead,
                                           "ProcessPoolActor #%u: job %llu dropped from the queue: its requester "
                                           "#%u has stopped",
                                           ctx.self().id.slot, static_cast<unsigned long long>(j.id), m.who.slot));
      --total_.queued;
      ++total_.rejected;
      if (a->counts.queued > 0) --a->counts.queued;
      ++a->counts.rejected;
      j.id = 0;
      continue;
    }
    if (kept != k) queue_[(queue_head_ + kept) % cap] = j;
    ++kept;
  }
  queue_size_ = kept;
  auto ex = ctx.system().process_executor();
  for (std::uint32_t i = 0; i < config_.max_running; ++i) {
    Job& j = running_[i];
    if (j.id == 0 || j.requester != m.who || j.kill_requested) continue;
    j.kill_requested = true;
    if (ex) (void)ex.value()->request_tree_teardown(ctx.self().id.to_bits(), j.pid, j.kill_timeout_ns, j.first_signal);
  }
  start_ready(ctx);
}

void ProcessPoolActor::handle(Ctx& ctx, PoolCountsQuery& m) {
  refill();
  start_ready(ctx);
  if (!m.requester.valid()) {
    (void)ctx.reply(m.reply, total_);
    return;
  }
  const Account* a = account(m.requester);
  if (a == nullptr) {
    (void)ctx.reply(m.reply, Error::make(Errc::NotFound, "ProcessPoolActor #%u accounts for no requester #%u",
                                         ctx.self().id.slot, m.requester.slot));
    return;
  }
  (void)ctx.reply(m.reply, a->counts);
}

void ProcessPoolActor::handle(Ctx& ctx, PoolTick&) {
  refill();
  start_ready(ctx);
}

void ProcessPoolActor::handle(Ctx& ctx, detail::PoolTimer&) {
  timer_armed_ = false;
  refill();
  start_ready(ctx);
}

// ---------------------------------------------------------------------------

Result<JobResult> ProcessPoolRef::run(const ProcessSpec& spec, Nanos timeout, ActorId requester) {
  auto r = system_->ask<Result<JobResult>>(
      ref_, [&](ReplyTo<Result<JobResult>> rt) { return PoolRun{spec, requester, rt}; }, timeout);
  if (!r) return r.error();
  return std::move(r).value();
}

Result<PoolCounts> ProcessPoolRef::counts(ActorId requester, Nanos timeout) {
  auto r = system_->ask<Result<PoolCounts>>(
      ref_, [&](ReplyTo<Result<PoolCounts>> rt) { return PoolCountsQuery{requester, rt}; }, timeout);
  if (!r) return r.error();
  return std::move(r).value();
}

}  // namespace airssys
