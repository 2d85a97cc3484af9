// ProcessActor's requests on a known process: signal, kill, wait (with the
// replies waiting for an exit), status, and stdin.
#include "process_actor_state.hpp"

#include <airssys/arch/poller.hpp>
#include <airssys/arch/process.hpp>
#include <airssys/arch/wait.hpp>

#include <algorithm>

namespace airssys {

// The process a request names, or null once NotFound is replied.
template <class R>
ProcessActor::Proc* ProcessActor::known(Ctx& ctx, ProcessId id, const ReplyTo<R>& reply) noexcept {
  Proc* p = find(id);
  if (p == nullptr) (void)ctx.reply(reply, not_found(id));
  return p;
}

void ProcessActor::handle(Ctx& ctx, ProcessSignal& m) {
  Proc* p = known(ctx, m.id, m.reply);
  if (p == nullptr) return;
  if (p->exited) {
    (void)ctx.reply(m.reply, Error::make(Errc::Dead, "process id %llu (pid %d) has exited; signal %d not sent",
                                         static_cast<unsigned long long>(m.id), p->pid, m.signal));
    return;
  }
  (void)ctx.reply(m.reply, ctx.signal_process(p->pid, m.signal));
}

void ProcessActor::handle(Ctx& ctx, ProcessKill& m) {
  Proc* p = known(ctx, m.id, m.reply);
  if (p == nullptr) return;
  if (m.how.first_signal < 0 || m.how.first_signal > 64) {
    (void)ctx.reply(m.reply, Error::make(Errc::InvalidArgument,
                                         "kill of process id %llu: first signal %d is not a signal (0: TERM, or 1..64)",
                                         static_cast<unsigned long long>(m.id), m.how.first_signal));
    return;
  }
  if (m.how.timeout.count() < 0) {
    (void)ctx.reply(m.reply, Error::make(Errc::InvalidArgument, "kill of process id %llu: timeout %lld ms is negative",
                                         static_cast<unsigned long long>(m.id),
                                         static_cast<long long>(m.how.timeout.count())));
    return;
  }
  cleanup_tree(ctx, *p, m.how.first_signal, arch::ms_to_ns_saturated(m.how.timeout.count()));
  if (p->exited) {
    (void)ctx.reply(m.reply, p->status);
    return;
  }
  if (auto r = add_waiter(ctx, *p, m.reply, false, std::chrono::nanoseconds::max()); !r)
    (void)ctx.reply(m.reply, r.error());
}

void ProcessActor::handle(Ctx& ctx, ProcessWait& m) {
  Proc* p = known(ctx, m.id, m.reply);
  if (p == nullptr) return;
  if (m.timeout.count() < 0) {
    (void)ctx.reply(m.reply, Error::make(Errc::InvalidArgument,
                                         "wait for process id %llu: timeout %lld ns is negative (0 only looks)",
                                         static_cast<unsigned long long>(m.id),
                                         static_cast<long long>(m.timeout.count())));
    return;
  }
  if (p->exited) {
    (void)ctx.reply(m.reply, p->status);
    retire(*p);
    return;
  }
  if (m.timeout.count() == 0) {
    (void)ctx.reply(m.reply, Error::make(Errc::Timeout, "process id %llu (pid %d) is still running",
                                         static_cast<unsigned long long>(m.id), p->pid));
    return;
  }
  if (auto r = add_waiter(ctx, *p, m.reply, true, m.timeout); !r) (void)ctx.reply(m.reply, r.error());
}

Result<void> ProcessActor::add_waiter(Ctx& ctx, Proc& p, ReplyTo<Result<ExitStatus>> reply, bool reaps,
                                      std::chrono::nanoseconds timeout) noexcept {
  for (std::uint32_t i = 0; i < config_.max_waiters; ++i) {
    Waiter& w = waiters_[i];
    if (w.id != 0) continue;
    w = Waiter{};
    w.serial = next_serial_++;
    w.reaps = reaps;
    w.reply = reply;
    if (timeout != std::chrono::nanoseconds::max()) {
      auto t = ctx.send_after(ctx.self(), detail::WaitExpired{i, w.serial}, timeout);
      if (!t) return t.error();
      w.timer = t.value();
      w.timed = true;
    }
    w.id = p.id;
    return {};
  }
  return Error::make(Errc::Full, "ProcessActor #%u: %u replies already wait for exits (max_waiters)",
                     ctx.self().id.slot, config_.max_waiters);
}

void ProcessActor::handle(Ctx& ctx, detail::WaitExpired& m) {
  if (m.waiter >= config_.max_waiters) return;
  Waiter& w = waiters_[m.waiter];
  if (w.id == 0 || w.serial != m.serial) return;  // answered by the exit first
  const Proc* p = find(w.id);
  (void)ctx.reply(w.reply, Error::make(Errc::Timeout, "process id %llu (pid %d) still running at the wait's timeout",
                                       static_cast<unsigned long long>(w.id), p != nullptr ? p->pid : -1));
  w.id = 0;
}

void ProcessActor::answer_waiters(Ctx& ctx, Proc& p) noexcept {
  bool reaped = false;
  for (std::uint32_t i = 0; i < config_.max_waiters; ++i) {
    Waiter& w = waiters_[i];
    if (w.id != p.id) continue;
    if (w.timed) (void)ctx.cancel(w.timer);
    if (ctx.reply(w.reply, p.status) && w.reaps) reaped = true;
    w.id = 0;
  }
  if (reaped) retire(p);
}

void ProcessActor::handle(Ctx& ctx, ProcessStatusQuery& m) {
  Proc* p = known(ctx, m.id, m.reply);
  if (p == nullptr) return;
  ProcessStatus st;
  st.id = p->id;
  st.pid = p->pid;
  st.state = p->exited ? ProcessState::Exited : ProcessState::Running;
  st.exit = p->status;
  if (executor_ != nullptr) {
    auto u = executor_->tree_usage(p->pid);  // NotFound: nothing of the tree is held any more
    if (u) {
      st.cpu_ns = u.value().cpu_ns;
      st.memory_bytes = u.value().memory_bytes;
      st.processes = u.value().processes;
    }
  }
  (void)ctx.reply(m.reply, st);
}

namespace {
Error no_stdin(ProcessId id) noexcept {
  return Error::make(Errc::InvalidArgument, "process id %llu has no open stdin pipe",
                     static_cast<unsigned long long>(id));
}
}  // namespace

void ProcessActor::handle(Ctx& ctx, StdinWrite& m) {
  Proc* p = find(m.id);
  if (p == nullptr || p->stdin_fd < 0) {
    (void)ctx.reply(m.reply, p == nullptr ? not_found(m.id) : no_stdin(m.id));
    return;
  }
  const std::size_t n = std::min<std::size_t>(m.length, StdinWrite::kCapacity);
  const arch::PipeResult r = arch::write_pipe(p->stdin_fd, m.bytes, n);
  switch (r.status) {
    case arch::PipeIo::Ok: (void)ctx.reply(m.reply, r.bytes); return;
    case arch::PipeIo::WouldBlock: (void)ctx.reply(m.reply, std::size_t{0}); return;
    case arch::PipeIo::End:
      (void)ctx.reply(m.reply, Error::make(Errc::Dead, "stdin of process id %llu: nobody reads it any more",
                                           static_cast<unsigned long long>(m.id)));
      return;
    case arch::PipeIo::Failed:
      (void)ctx.reply(m.reply, Error::make_os(r.os_error, "stdin of process id %llu: write failed",
                                              static_cast<unsigned long long>(m.id)));
      return;
  }
}

void ProcessActor::handle(Ctx& ctx, StdinClose& m) {
  Proc* p = find(m.id);
  if (p == nullptr || p->stdin_fd < 0) {
    (void)ctx.reply(m.reply, p == nullptr ? not_found(m.id) : no_stdin(m.id));
    return;
  }
  arch::close_handle(p->stdin_fd);
  p->stdin_fd = -1;
  (void)ctx.reply(m.reply, Result<void>{});
}

}  // namespace airssys
