// ProcessActor: processes run on request, their output as messages, their
// trees torn down with their requester.
#include <airssys/rt/process_actor.hpp>

#include <airssys/arch/wait.hpp>

#include <airssys/arch/poller.hpp>
#include <airssys/arch/process.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>

namespace airssys {

namespace {

constexpr std::size_t kReadBuffer = 1024;  // per stream; holds several lines of the largest size
static_assert(kReadBuffer > OutputLine::kCapacity, "a full line and its newline must fit the read buffer");
}  // namespace

// ---------------------------------------------------------------------------
// ProcessSpec

ProcessSpec::ProcessSpec(std::string_view program) noexcept { (void)store(program, program_, "program"); }

bool ProcessSpec::store(std::string_view s, Slice& out, const char* what) noexcept {
  if (overflow_ != nullptr) return false;
  if (s.size() > kStringBytes - used_) {
    overflow_ = what;
    return false;
  }
  if (!s.empty()) std::memcpy(strings_ + used_, s.data(), s.size());
  out = Slice{used_, static_cast<std::uint16_t>(s.size())};
  used_ = static_cast<std::uint16_t>(used_ + s.size());
  return true;
}

ProcessSpec& ProcessSpec::arg(std::string_view a) noexcept {
  if (args_ == kMaxArgs) {
    if (overflow_ == nullptr) overflow_ = "argument count";
  } else if (store(a, arg_[args_], "arguments")) {
    ++args_;
  }
  return *this;
}

ProcessSpec& ProcessSpec::env(std::string_view e) noexcept {
  if (envs_ == kMaxEnv) {
    if (overflow_ == nullptr) overflow_ = "environment entry count";
  } else if (store(e, env_[envs_], "environment")) {
    ++envs_;
  }
  return *this;
}

ProcessSpec& ProcessSpec::clean_env(bool clean) noexcept {
  clean_env_ = clean;
  return *this;
}
ProcessSpec& ProcessSpec::working_dir(std::string_view dir) noexcept {
  (void)store(dir, dir_, "working_dir");
  return *this;
}
ProcessSpec& ProcessSpec::containment(Containment c) noexcept {
  containment_ = c;
  return *this;
}
ProcessSpec& ProcessSpec::stdin_pipe(bool pipe) noexcept {
  stdin_pipe_ = pipe;
  return *this;
}
ProcessSpec& ProcessSpec::output(OutputSubscriber subscriber, bool stdout_pipe, bool stderr_pipe) noexcept {
  subscriber_ = subscriber;
  stdout_pipe_ = stdout_pipe;
  stderr_pipe_ = stderr_pipe;
  return *this;
}
ProcessSpec& ProcessSpec::on_cleanup(int first_signal, std::chrono::milliseconds kill_timeout) noexcept {
  first_signal_ = first_signal;
  kill_timeout_ = kill_timeout;
  return *this;
}

Result<void> ProcessSpec::check() const noexcept {
  if (overflow_ != nullptr)
    return Error::make(Errc::InvalidArgument, "process spec for '%.*s': %s do not fit (%zu bytes, %zu args, %zu env)",
                       static_cast<int>(program_.length), strings_ + program_.offset, overflow_, kStringBytes,
                       kMaxArgs, kMaxEnv);
  if (program_.length == 0) return Error::make(Errc::InvalidArgument, "process spec: the program is empty");
  if (kill_timeout_.count() < 0)
    return Error::make(Errc::InvalidArgument, "process spec for '%.*s': kill timeout %lld ms is negative",
                       static_cast<int>(program_.length), strings_ + program_.offset,
                       static_cast<long long>(kill_timeout_.count()));
  return {};
}

// ---------------------------------------------------------------------------
// Tables

namespace {
// Tells the actor that a pipe of one of its processes is readable. Runs on
// the reactor thread; the post is one pooled node, on the system lane (one
// per readiness: the watch is one-shot until the actor re-arms it).
struct StreamWatch final : osl::FdWatcher {
  System* system = nullptr;
  ActorRef<ProcessActorMsg> actor;
  detail::PipeReady ready;
  void on_readable(int) noexcept override {
    // Full only when the message pool is exhausted; the pipe then stays
    // unread until the process ends and the actor tears its streams down.
    (void)system->post(actor, ready);
  }
};
}  // namespace

struct ProcessActor::Proc {
  struct Stream {
    StreamWatch watch;
    int fd = -1;
    bool watched = false;
    bool blocked = false;  // a line waits for room in the subscriber's mailbox
    std::uint16_t head = 0, tail = 0;
    char buf[kReadBuffer];
  };
  ProcessId id = 0;  // 0: free
  std::uint32_t generation = 0;
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
  bool exited = false;
  bool reaped = false;    // a Wait reported the exit: the id is gone for requests
  bool orphaned = false;  // its requester stopped: nobody will wait for it
  ExitStatus status;
  ActorId requester;
  OutputSubscriber subscriber;
  int stdin_fd = -1;
  int first_signal = 0;
  std::int64_t kill_timeout_ns = 0;
  Stream out[2];
};

struct ProcessActor::Waiter {
  ProcessId id = 0;  // 0: free
  std::uint32_t serial = 0;
  bool reaps = false;  // a Wait (reaps the id) rather than a Kill
  bool timed = false;
  TimerId timer;
  ReplyTo<Result<ExitStatus>> reply;
};

struct ProcessActor::Requester {
  ActorId who;
  std::uint32_t processes = 0;  // 0: free
};

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
  if (!config_.name.empty())
    if (auto r = ctx.system().registry().add(config_.name, ctx.self()); !r) ctx.fail(r.error());
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

void ProcessActor::handle(Ctx& ctx, ProcessSignal& m) {
  Proc* p = find(m.id);
  if (p == nullptr) {
    (void)ctx.reply(m.reply, not_found(m.id));
    return;
  }
  if (p->exited) {
    (void)ctx.reply(m.reply, Error::make(Errc::Dead, "process id %llu (pid %d) has exited; signal %d not sent",
                                         static_cast<unsigned long long>(m.id), p->pid, m.signal));
    return;
  }
  (void)ctx.reply(m.reply, ctx.signal_process(p->pid, m.signal));
}

void ProcessActor::handle(Ctx& ctx, ProcessKill& m) {
  Proc* p = find(m.id);
  if (p == nullptr) {
    (void)ctx.reply(m.reply, not_found(m.id));
    return;
  }
  if (m.how.timeout.count() < 0 || m.how.first_signal < 0) {
    (void)ctx.reply(m.reply, Error::make(Errc::InvalidArgument, "kill of process id %llu: signal %d, timeout %lld ms",
                                         static_cast<unsigned long long>(m.id), m.how.first_signal,
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
  Proc* p = find(m.id);
  if (p == nullptr) {
    (void)ctx.reply(m.reply, not_found(m.id));
    return;
  }
  if (p->exited) {
    (void)ctx.reply(m.reply, p->status);
    retire(*p);
    return;
  }
  if (m.timeout.count() <= 0) {
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
  Proc* p = find(m.id);
  if (p == nullptr) {
    (void)ctx.reply(m.reply, not_found(m.id));
    return;
  }
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

void ProcessActor::handle(Ctx& ctx, StdinWrite& m) {
  Proc* p = find(m.id);
  if (p == nullptr) {
    (void)ctx.reply(m.reply, not_found(m.id));
    return;
  }
  if (p->stdin_fd < 0) {
    (void)ctx.reply(m.reply, Error::make(Errc::InvalidArgument, "process id %llu has no open stdin pipe",
                                         static_cast<unsigned long long>(m.id)));
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
  if (p == nullptr) {
    (void)ctx.reply(m.reply, not_found(m.id));
    return;
  }
  if (p->stdin_fd < 0) {
    (void)ctx.reply(m.reply, Error::make(Errc::InvalidArgument, "process id %llu has no open stdin pipe",
                                         static_cast<unsigned long long>(m.id)));
    return;
  }
  arch::close_handle(p->stdin_fd);
  p->stdin_fd = -1;
  (void)ctx.reply(m.reply, Result<void>{});
}

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

void ProcessActor::close_stream(Proc& p, int s) noexcept {
  Proc::Stream& st = p.out[s];
  if (st.fd < 0) return;
  if (st.watched && executor_ != nullptr) executor_->unwatch(st.fd);
  st.watched = false;
  arch::close_handle(st.fd);
  st.fd = -1;
  st.blocked = false;
  st.head = st.tail = 0;
}

void ProcessActor::close_all(Proc& p) noexcept {
  close_stream(p, 0);
  close_stream(p, 1);
  if (p.stdin_fd >= 0) {
    arch::close_handle(p.stdin_fd);
    p.stdin_fd = -1;
  }
}

// ---------------------------------------------------------------------------
// Output

void ProcessActor::handle(Ctx& ctx, detail::PipeReady& m) {
  if (m.slot >= config_.max_processes || m.stream > 1) return;
  Proc& p = procs_[m.slot];
  if (p.id == 0 || p.generation != m.generation || p.out[m.stream].fd < 0) return;  // closed since
  pump(ctx, p, m.stream);
}

void ProcessActor::handle(Ctx& ctx, detail::OutputRetry&) {
  retry_armed_ = false;
  for (std::uint32_t i = 0; i < config_.max_processes; ++i)
    for (int s = 0; s < 2; ++s) {
      Proc& p = procs_[i];
      if (p.id == 0 || !p.out[s].blocked) continue;
      p.out[s].blocked = false;
      pump(ctx, p, s);
    }
}

// Passes complete lines (and pieces of over-long ones) from the stream's
// buffer to the subscriber, reading the pipe when the buffer holds no
// complete line. Stops, without re-arming the watch, when the subscriber's
// mailbox is full: the pipe then fills and holds the writer back.
void ProcessActor::pump(Ctx& ctx, Proc& p, int s) noexcept {
  Proc::Stream& st = p.out[s];
  OutputLine line;
  line.id = p.id;
  line.stream = s == 0 ? OutputStream::Stdout : OutputStream::Stderr;
  for (;;) {
    for (;;) {
      const std::size_t avail = static_cast<std::size_t>(st.tail - st.head);
      if (avail == 0) break;
      const char* at = st.buf + st.head;
      const auto* nl = static_cast<const char*>(std::memchr(at, '\n', std::min(avail, OutputLine::kCapacity + 1)));
      std::size_t length, consumed;
      bool partial = false;
      if (nl != nullptr) {
        length = static_cast<std::size_t>(nl - at);
        consumed = length + 1;
      } else if (avail > OutputLine::kCapacity) {
        length = consumed = OutputLine::kCapacity;
        partial = true;
      } else if (st.fd < 0) {
        length = consumed = avail;  // the last line, without a newline
      } else {
        break;  // an incomplete line: read more first
      }
      if (p.subscriber.valid()) {
        std::memcpy(line.bytes, at, length);
        line.length = static_cast<std::uint16_t>(length);
        line.partial = partial;
        auto sent = p.subscriber.deliver(ctx.system(), line);
        if (!sent && sent.code() != Errc::Dead) {
          st.blocked = true;
          if (!retry_armed_) {
            // Full timers are retried by the next PipeReady or OutputRetry;
            // a timer pool that is full leaves the line kept, not lost.
            retry_armed_ = ctx.send_after(ctx.self(), detail::OutputRetry{}, config_.output_retry).ok();
          }
          return;
        }
        // Dead: the subscriber is gone; the output is read and dropped so
        // that the writer is not stalled.
      }
      st.head = static_cast<std::uint16_t>(st.head + consumed);
    }
    if (st.fd < 0) {
      st.head = st.tail = 0;
      maybe_free(p);
      return;
    }
    if (st.head == st.tail) {
      st.head = st.tail = 0;
    } else if (st.head > 0) {
      std::memmove(st.buf, st.buf + st.head, static_cast<std::size_t>(st.tail - st.head));
      st.tail = static_cast<std::uint16_t>(st.tail - st.head);
      st.head = 0;
    }
    const arch::PipeResult r = arch::read_pipe(st.fd, st.buf + st.tail, sizeof st.buf - st.tail);
    if (r.status == arch::PipeIo::Ok) {
      st.tail = static_cast<std::uint16_t>(st.tail + r.bytes);
      continue;
    }
    if (r.status == arch::PipeIo::WouldBlock) {
      if (st.watched && executor_ != nullptr) (void)executor_->rearm(st.fd);
      return;
    }
    // End of file (every writer closed it) or a read error: deliver what
    // is left, then the stream is done.
    const std::uint16_t head = st.head, tail = st.tail;
    if (st.watched && executor_ != nullptr) executor_->unwatch(st.fd);
    st.watched = false;
    arch::close_handle(st.fd);
    st.fd = -1;
    st.head = head;
    st.tail = tail;
  }
}

// ---------------------------------------------------------------------------
// ProcessActorRef

namespace {
template <class T>
Result<T> flatten(Result<Result<T>>&& r) {
  if (!r) return r.error();
  return std::move(r).value();
}
std::chrono::nanoseconds plus(std::chrono::nanoseconds a, std::chrono::nanoseconds b) noexcept {
  return a > std::chrono::nanoseconds::max() - b ? std::chrono::nanoseconds::max() : a + b;
}
}  // namespace

Result<SpawnedProcess> ProcessActorRef::spawn(const ProcessSpec& spec, ActorId requester, Nanos timeout) {
  return flatten(system_->ask<Result<SpawnedProcess>>(
      ref_, [&](ReplyTo<Result<SpawnedProcess>> r) { return ProcessSpawn{spec, requester, r}; }, timeout));
}

Result<void> ProcessActorRef::signal(ProcessId id, int sig, Nanos timeout) {
  auto r = system_->ask<Result<void>>(
      ref_, [&](ReplyTo<Result<void>> rt) { return ProcessSignal{id, sig, rt}; }, timeout);
  if (!r) return r.error();
  return r.value();
}

Result<ExitStatus> ProcessActorRef::kill(ProcessId id, KillSpec how, Nanos timeout) {
  return flatten(system_->ask<Result<ExitStatus>>(
      ref_, [&](ReplyTo<Result<ExitStatus>> r) { return ProcessKill{id, how, r}; },
      plus(timeout, std::chrono::duration_cast<Nanos>(how.timeout))));
}

Result<ExitStatus> ProcessActorRef::wait(ProcessId id, Nanos wait_for, Nanos timeout) {
  return flatten(system_->ask<Result<ExitStatus>>(
      ref_, [&](ReplyTo<Result<ExitStatus>> r) { return ProcessWait{id, wait_for, r}; }, plus(wait_for, timeout)));
}

Result<ProcessStatus> ProcessActorRef::status(ProcessId id, Nanos timeout) {
  return flatten(system_->ask<Result<ProcessStatus>>(
      ref_, [&](ReplyTo<Result<ProcessStatus>> r) { return ProcessStatusQuery{id, r}; }, timeout));
}

Result<std::size_t> ProcessActorRef::write_stdin(ProcessId id, std::string_view bytes, Nanos timeout) {
  if (bytes.size() > StdinWrite::kCapacity)
    return Error::make(Errc::InvalidArgument, "stdin write of %zu bytes exceeds %zu", bytes.size(),
                       StdinWrite::kCapacity);
  return flatten(system_->ask<Result<std::size_t>>(
      ref_,
      [&](ReplyTo<Result<std::size_t>> r) {
        StdinWrite w;
        w.id = id;
        w.length = static_cast<std::uint16_t>(bytes.size());
        std::memcpy(w.bytes, bytes.data(), bytes.size());
        w.reply = r;
        return w;
      },
      timeout));
}

Result<void> ProcessActorRef::close_stdin(ProcessId id, Nanos timeout) {
  auto r = system_->ask<Result<void>>(ref_, [&](ReplyTo<Result<void>> rt) { return StdinClose{id, rt}; }, timeout);
  if (!r) return r.error();
  return r.value();
}

}  // namespace airssys
