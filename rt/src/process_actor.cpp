// ProcessActor: processes run on request, their output as messages, their
// trees torn down with their requester. This file: the actor's lifecycle,
// spawn, exits and requester cleanup; the requests on a known process are
// in process_actor_requests.cpp, output lines in process_actor_output.cpp,
// the request values in process_actor_spec.cpp, the blocking handle in
// process_actor_ref.cpp.
#include "process_actor_state.hpp"

#include <airssys/arch/poller.hpp>
#include <airssys/arch/process.hpp>
#include <airssys/arch/wait.hpp>

#include <new>

namespace airssys {

ProcessActor::ProcessActor(const ProcessActorConfig& config) : config_(config) {
  if (config_.max_processes == 0) config_.max_processes = 1;
  if (config_.max_waiters == 0) config_.max_waiters = 1;
  if (config_.max_requesters == 0) config_.max_requesters = 1;
  procs_.reset(new (std::nothrow) Proc[config_.max_processes]);
  waiters_.reset(new (std::nothrow) Waiter[config_.max_waiters]);
  requesters_.reset(new (std::nothrow) Requester[config_.max_requesters]);
}

ProcessActor::~ProcessActor() {
  // on_stop closed everything; a state destroyed without it (a restart
  // after a failed handler) must still leave no watch behind.
  if (procs_)
    for (std::uint32_t i = 0; i < config_.max_processes; ++i) close_all(procs_[i]);
}

void ProcessActor::on_start(Ctx& ctx) {
  if (!procs_ || !waiters_ || !requesters_) {
    ctx.fail(Error::make(Errc::Full, "ProcessActor #%u: no memory for its tables (%u processes)", ctx.self().id.slot,
                         config_.max_processes));
    return;
  }
  if (config_.name.empty()) return;
  if (auto ok = config_.name.check(); !ok) {
    ctx.fail(ok.error());
    return;
  }
  if (auto r = ctx.system().registry().add(config_.name.view(), ctx.self()); !r) ctx.fail(r.error());
}

void ProcessActor::on_stop(Ctx& ctx, StopReason) {
  for (std::uint32_t i = 0; i < config_.max_waiters; ++i) {
    Waiter& w = waiters_[i];
    if (w.id == 0) continue;
    if (w.timed) (void)ctx.cancel(w.timer);
    (void)ctx.reply(w.reply, Error::make(Errc::ShuttingDown, "ProcessActor #%u stopped before process id %llu exited",
                                         ctx.self().id.slot, static_cast<unsigned long long>(w.id)));
    w.id = 0;
  }
  // The runtime tears this actor's trees down after on_stop.
  for (std::uint32_t i = 0; i < config_.max_processes; ++i) close_all(procs_[i]);
}

void ProcessActor::on_message(Ctx& ctx, ProcessActorMsg& msg) {
  std::visit([&](auto& m) { handle(ctx, m); }, msg);
}

ProcessActor::Proc* ProcessActor::find(ProcessId id) noexcept {
  if (id == 0) return nullptr;
  for (std::uint32_t i = 0; i < config_.max_processes; ++i)
    if (procs_[i].id == id && !procs_[i].reaped) return &procs_[i];
  return nullptr;
}

Error ProcessActor::not_found(ProcessId id) const noexcept {
  return Error::make(Errc::NotFound, "process id %llu is not known to this ProcessActor (never spawned, or reaped)",
                     static_cast<unsigned long long>(id));
}

// ---------------------------------------------------------------------------
// Spawn

void ProcessActor::handle(Ctx& ctx, ProcessSpawn& m) {
  const ProcessSpec& spec = m.spec;
  if (auto ok = spec.check(); !ok) {
    (void)ctx.reply(m.reply, ok.error());
    return;
  }
  // A free record, else the oldest exited one whose streams are closed
  // (its status is then no longer asked for: it is reaped).
  Proc* p = nullptr;
  for (std::uint32_t i = 0; i < config_.max_processes && p == nullptr; ++i)
    if (procs_[i].id == 0) p = &procs_[i];
  if (p == nullptr) {
    for (std::uint32_t i = 0; i < config_.max_processes; ++i) {
      Proc& q = procs_[i];
      if (q.exited && q.out[0].fd < 0 && q.out[1].fd < 0 && (p == nullptr || q.id < p->id)) p = &q;
    }
    if (p != nullptr) {
      retire(*p);
      if (p->id != 0) p = nullptr;
    }
  }
  if (p == nullptr) {
    (void)ctx.reply(m.reply, Error::make(Errc::Full, "ProcessActor #%u is full (%u processes running or unreaped)",
                                         ctx.self().id.slot, config_.max_processes));
    return;
  }
  if (m.requester.valid()) {
    if (auto r = watch_requester(ctx, m.requester); !r) {
      (void)ctx.reply(m.reply, r.error());
      return;
    }
  }

  std::string_view args[ProcessSpec::kMaxArgs];
  std::string_view env[ProcessSpec::kMaxEnv];
  SpawnProcessOperation op = spec.operation(args, env);
  op.stdio[0] = spec.stdin_piped() ? osl::StdioConfig::pipe() : osl::StdioConfig::null();
  op.stdio[1] = spec.stdout_piped() ? osl::StdioConfig::pipe() : osl::StdioConfig::inherit();
  op.stdio[2] = spec.stderr_piped() ? osl::StdioConfig::pipe() : osl::StdioConfig::inherit();
  auto spawned = ctx.spawn_process(op);
  if (!spawned) {
    if (m.requester.valid())
      for (std::uint32_t i = 0; i < config_.max_requesters; ++i)
        if (requesters_[i].who == m.requester && requesters_[i].processes == 0) requesters_[i].who = ActorId{};
    (void)ctx.reply(m.reply, spawned.error());
    return;
  }
  const SpawnProcessResult& sp = spawned.value();
  if (executor_ == nullptr) {
    // The spawn built the executor: this returns it.
    auto ex = ctx.system().process_executor();
    if (ex) executor_ = ex.value();
  }
  *p = Proc{};  // generation and streams start clean
  p->id = next_id_++;
  p->generation = next_serial_++;
  p->pid = sp.pid;
  p->pgid = sp.pgid;
  p->containment = sp.containment;
  p->requester = m.requester;
  p->subscriber = spec.subscriber();
  p->first_signal = spec.first_signal();
  p->kill_timeout_ns = arch::ms_to_ns_saturated(spec.kill_timeout().count());
  p->stdin_fd = sp.pipes[0];
  if (p->stdin_fd >= 0) (void)arch::set_nonblocking(p->stdin_fd);
  Result<void> watched;
  for (int s = 0; s < 2; ++s) {
    Proc::Stream& st = p->out[s];
    st.fd = sp.pipes[s + 1];
    if (st.fd < 0) continue;
    (void)arch::set_nonblocking(st.fd);
    st.watch.system = &ctx.system();
    st.watch.actor = ctx.self();
    st.watch.ready = detail::PipeReady{static_cast<std::uint32_t>(p - procs_.get()), p->generation,
                                       static_cast<std::uint8_t>(s)};
    if (watched) {
      watched = executor_ != nullptr ? executor_->watch_readable(st.fd, st.watch)
                                     : Result<void>(Error::make(Errc::Unavailable, "no process executor"));
      st.watched = watched.ok();
    }
  }
  if (m.requester.valid())
    for (std::uint32_t i = 0; i < config_.max_requesters; ++i)
      if (requesters_[i].who == m.requester) ++requesters_[i].processes;
  if (!watched) {
    // Output nobody reads would stall the process on a full pipe: refuse
    // the spawn, and end what was started.
    cleanup_tree(ctx, *p, 0, 0);
    p->orphaned = true;
    close_all(*p);
    (void)ctx.reply(m.reply, watched.error());
    return;
  }
  (void)ctx.reply(m.reply, SpawnedProcess{p->id, p->pid, p->pgid, p->containment});
}

Result<void> ProcessActor::watch_requester(Ctx& ctx, ActorId who) noexcept {
  Requester* free_slot = nullptr;
  for (std::uint32_t i = 0; i < config_.max_requesters; ++i) {
    Requester& r = requesters_[i];
    if (r.who == who) return {};
    if (free_slot == nullptr && !r.who.valid()) free_slot = &r;
  }
  if (free_slot == nullptr)
    return Error::make(Errc::Full, "ProcessActor #%u monitors %u requesters already (max_requesters)",
                       ctx.self().id.slot, config_.max_requesters);
  if (auto r = ctx.monitor(ActorRef<Down>{who}); !r) return r;
  free_slot->who = who;
  free_slot->processes = 0;
  return {};
}

// ---------------------------------------------------------------------------
// Signal, kill, wait, status, stdin
// ---------------------------------------------------------------------------
// Exits, requesters, trees

void ProcessActor::cleanup_tree(Ctx& ctx, Proc& p, int first_signal, std::int64_t timeout_ns) noexcept {
  if (executor_ == nullptr) return;
  // NotFound: the tree is already gone (and released) — nothing to do.
  (void)executor_->request_tree_teardown(ctx.self().id.to_bits(), p.pid, timeout_ns, first_signal);
}

void ProcessActor::handle(Ctx& ctx, ProcessExited& m) {
  Proc* p = nullptr;
  for (std::uint32_t i = 0; i < config_.max_processes && p == nullptr; ++i)
    if (procs_[i].id != 0 && !procs_[i].exited && procs_[i].pid == m.pid) p = &procs_[i];
  if (p == nullptr) return;
  p->exited = true;
  p->status = m.status;
  // What the process left running in its tree goes with it. Not if a
  // newer process of ours got the same pid meanwhile: the request names
  // trees by pid, and that one is not done.
  bool reused = false;
  for (std::uint32_t i = 0; i < config_.max_processes; ++i)
    reused |= &procs_[i] != p && procs_[i].id != 0 && !procs_[i].exited && procs_[i].pid == m.pid;
  if (!reused) cleanup_tree(ctx, *p, p->first_signal, p->kill_timeout_ns);
  answer_waiters(ctx, *p);
  if (p->orphaned) retire(*p);
}

void ProcessActor::handle(Ctx& ctx, Down& m) {
  for (std::uint32_t i = 0; i < config_.max_requesters; ++i)
    if (requesters_[i].who == m.who) requesters_[i] = Requester{};
  for (std::uint32_t i = 0; i < config_.max_processes; ++i) {
    Proc& p = procs_[i];
    if (p.id == 0 || p.requester != m.who) continue;
    p.orphaned = true;
    if (p.exited) {
      retire(p);
    } else {
      cleanup_tree(ctx, p, p.first_signal, p.kill_timeout_ns);
    }
  }
}

void ProcessActor::retire(Proc& p) noexcept {
  p.reaped = true;
  if (p.stdin_fd >= 0) {
    arch::close_handle(p.stdin_fd);
    p.stdin_fd = -1;
  }
  maybe_free(p);
}

// A record is free once its id is reaped and its output is read to the end
// (the output of a process that exited still reaches the subscriber).
void ProcessActor::maybe_free(Proc& p) noexcept {
  if (!p.reaped || p.out[0].fd >= 0 || p.out[1].fd >= 0) return;
  if (p.requester.valid())
    for (std::uint32_t i = 0; i < config_.max_requesters; ++i)
      if (requesters_[i].who == p.requester && requesters_[i].processes > 0) --requesters_[i].processes;
  p.id = 0;
}

}  // namespace airssys
