#pragma once
// Context: what a handler sees of the runtime. Also the bodies of Actor<M>'s
// hooks, which build a Context for each call.
//
// Needs the whole System (its inline calls go through it): include
// <airssys/rt/system.hpp>, which includes this header at its end.

#include <airssys/rt/system.hpp>

#include <chrono>
#include <span>
#include <type_traits>
#include <utility>

namespace airssys {

// What a handler sees of the runtime: its own handle, sending, spawning
// children, stopping, failing, timers, monitors and asks. Valid only during
// the handler call it was passed to.
template <class M>
class Context {
 public:
  System& system() const noexcept { return *t_.system; }
  ActorRef<M> self() const noexcept {
    return ActorRef<M>{ActorId{t_.slot, detail::word::gen(t_.cell->word.load(std::memory_order_relaxed))}};
  }

  template <class T, class U>
  Result<void> send(ActorRef<T> to, U&& msg) const {
    return t_.system->send(to, std::forward<U>(msg));
  }
  template <class T, class U>
  Result<void> send(ActorRef<T> to, U&& msg, Backpressure bp) const {
    return t_.system->send(to, std::forward<U>(msg), bp);
  }

  // Spawns a child. If the child's on_error answers Escalate, this actor's
  // on_error runs with Errc::ChildEscalated.
  template <class A, class... Args>
  Result<ActorRef<typename A::Message>> spawn(Args&&... args) const;
  template <class A, class F>
  Result<ActorRef<typename A::Message>> spawn_with(const SpawnOptions& options, F factory) const {
    return t_.system->template spawn_linked<A>(options, std::move(factory), self().id);
  }
  // Like spawn_with, and this actor receives Started{child} once the child
  // has started (see Started), and monitors the child from its birth: it
  // receives Down{child, reason} when the child stops, once the child's
  // process trees are gone (no separate monitor() call is needed; one adds
  // a second Down). M must be constructible from Started and from Down.
  // failures_recorded: this actor records the child's failures in the
  // System's Monitoring itself (a Supervisor does), so the runtime does not
  // record an ActorFailed for a failure that stops the child (it still
  // does for one its on_error resumes or restarts in place).
  template <class A, class F>
  Result<ActorRef<typename A::Message>> spawn_supervised(const SpawnOptions& options, F factory,
                                                         bool failures_recorded = false) const {
    static_assert(std::is_constructible_v<M, Started> && std::is_constructible_v<M, Down>,
                  "a supervising actor's message type must be constructible from airssys::Started and Down");
    return t_.system->template spawn_linked<A>(options, std::move(factory), self().id, true, failures_recorded);
  }
  // In on_start: this actor's Started is not sent when on_start returns,
  // but when report_started() is called (a supervisor is started once its
  // children are). Outside on_start it does nothing.
  void defer_started() noexcept { t_.defer_started = true; }
  // Sends this actor's Started to the actor that spawned it with
  // spawn_supervised, once; later calls and actors not spawned so do nothing.
  Result<void> report_started() const noexcept { return t_.system->report_started(t_); }
  // Asks `target` for its Actor::health_check() on the system lane; this
  // actor then receives HealthReport{target, health}, unless `target` stops
  // first (its Down tells). Dead if it is gone. M must be constructible from
  // HealthReport.
  Result<void> probe_health(ActorId target) const noexcept {
    static_assert(std::is_constructible_v<M, HealthReport>,
                  "a probing actor's message type must be constructible from airssys::HealthReport");
    return t_.system->probe_health(t_, target);
  }

  // Stops this actor once the handler returns (reason Normal).
  void stop() noexcept {
    t_.stop_self = true;
    t_.reason = StopReason::Normal;
  }
  // The same with the reason its monitors see (a supervisor that gave up
  // stops with Shutdown).
  void stop(StopReason reason) noexcept {
    t_.stop_self = true;
    t_.reason = reason;
  }
  Result<void> stop(ActorId other) const noexcept { return t_.system->stop(other); }
  Result<void> stop(ActorId other, StopReason reason) const noexcept { return t_.system->stop(other, reason); }
  // Reports that the current handler failed; on_error decides what follows.
  // From on_error: the turn's actor stops, with the error on_error was given.
  void fail(const Error& e) noexcept {
    t_.failed = true;
    if (!t_.handling_error) t_.error = e;
  }

  // Delivers `msg` to `to` after `delay`, on the system lane: the mailbox
  // bound does not refuse it. Never sooner than `delay`; timers fire on
  // 1 ms ticks, so up to a tick later (more while the worker is busy in a
  // handler). Full if this worker's timers are all armed; InvalidArgument
  // if `delay` is negative or `to` is empty. A delay of nanoseconds::max()
  // never fires: it holds its timer until it is cancelled or `to` stops
  // (given back at this worker's next send_after or ask), and never wakes
  // the worker. A cancelled timer with a deadline gives its timer back at
  // its tick, or sooner on the wheel's pass over its slot (at most
  // 1.024 s later).
  template <class T, class U>
  Result<TimerId> send_after(ActorRef<T> to, U&& msg, std::chrono::nanoseconds delay) const;
  bool cancel(TimerId id) const noexcept { return t_.system->cancel(id); }

  // Watches `other`: when it stops, this actor receives Down{other, reason}
  // (NoActor at once if it is already gone). M must be constructible from Down.
  template <class T>
  Result<void> monitor(ActorRef<T> other) const noexcept;

  // Sends make(ReplyTo<Rep>) to `to`; later this actor receives exactly one
  // Reply<Rep> carrying the returned request id: the reply, or Timeout after
  // `timeout`, never sooner, on the timers' 1 ms ticks (nanoseconds::max():
  // never; negative: InvalidArgument). A reply that fails (Full) gives the
  // request back, and the timeout still answers.
  // Only this actor's own stop (or shutdown) ends the promise. M must be
  // constructible from Reply<Rep>.
  template <class Rep, class T, class Make>
  Result<std::uint64_t> ask(ActorRef<T> to, Make&& make, std::chrono::nanoseconds timeout) const;
  template <class Rep, class U>
  Result<void> reply(ReplyTo<Rep> to, U&& value) const {
    return t_.system->reply(to, std::forward<U>(value));
  }

  // Spawns an OS process owned by this actor (see osl::ProcessExecutor for
  // what Managed and Detached guarantee). A Managed process is recorded in
  // the actor's ProcessSet; when it ends the actor receives ProcessExited
  // (if M is constructible from it), and when the actor stops, restarts or
  // crashes, its trees are torn down asynchronously (SIGTERM, then SIGKILL
  // after SystemConfig::process_kill_timeout). The first call builds the
  // process executor and starts its reactor thread. The exit report's
  // message block is taken here, so that the exit reaches the actor even if
  // the message pool is exhausted when it comes: Full, naming the pool,
  // when no block is free now.
  Result<SpawnProcessResult> spawn_process(const SpawnProcessOperation& op) const noexcept {
    return t_.system->spawn_process(t_, op);
  }
  // The managed processes this actor owns and that have not been reaped.
  // An empty span, without a call or an allocation, for an actor that never
  // spawned one.
  std::span<const ChildProcess> child_processes() const noexcept {
    if (t_.cell->process_set == 0) return {};
    return t_.system->child_processes(t_.cell);
  }
  // Signals one of this actor's processes, or a group one of them leads.
  Result<void> signal_process(int pid, int sig) const noexcept { return t_.system->signal_own_process(t_, pid, sig); }
  Result<void> kill_process_group(int pgid, int sig) const noexcept {
    return t_.system->kill_own_group(t_, pgid, sig);
  }

  // True once a stop of this actor or a shutdown has been requested.
  bool stopping() const noexcept {
    return (t_.cell->word.load(std::memory_order_relaxed) & detail::word::kStop) != 0 ||
           t_.system->shutting_down();
  }

 private:
  template <class>
  friend class Actor;
  explicit Context(detail::Turn& t) noexcept : t_(t) {}
  detail::Turn& t_;
};

// ---------------------------------------------------------------------------
// Actor<M>'s hooks.

template <class M>
void Actor<M>::invoke_start(detail::Turn& t) {
  Context<M> ctx(t);
  on_start(ctx);
}

template <class M>
void Actor<M>::invoke(detail::Turn& t, detail::Node* n) {
  Context<M> ctx(t);
  if (n->kind == detail::NodeKind::User) {
    M* m = detail::payload<M>(n);
    struct Destroy {
      M* m;
      ~Destroy() { m->~M(); }
    } guard{m};
    on_message(ctx, *m);
  } else if (n->kind == detail::NodeKind::ProcessExit) {
    if constexpr (std::is_constructible_v<M, ProcessExited>) {
      M m(*detail::payload<ProcessExited>(n));
      on_message(ctx, m);
    }
  } else if (n->kind == detail::NodeKind::Started) {
    if constexpr (std::is_constructible_v<M, Started>) {
      M m(*detail::payload<Started>(n));
      on_message(ctx, m);
    }
  } else if (n->kind == detail::NodeKind::HealthReply) {
    if constexpr (std::is_constructible_v<M, HealthReport>) {
      M m(detail::payload<detail::ProbeRecord>(n)->report);
      on_message(ctx, m);
    }
  } else if constexpr (std::is_constructible_v<M, Down>) {
    // Down: only reaches actors whose M accepts it (Context::monitor checks).
    M m(detail::payload<detail::MonitorRecord>(n)->down);
    on_message(ctx, m);
  }
}

template <class M>
void Actor<M>::invoke_stop(detail::Turn& t, StopReason r) {
  Context<M> ctx(t);
  on_stop(ctx, r);
}

template <class M>
ErrorAction Actor<M>::invoke_error(detail::Turn& t, const Error& e) {
  Context<M> ctx(t);
  return on_error(ctx, e);
}

template <class M>
Health Actor<M>::invoke_health(detail::Turn& t) {
  Context<M> ctx(t);
  return health_check(ctx);
}

// ---------------------------------------------------------------------------
// Context's template members.

template <class M>
template <class A, class... Args>
Result<ActorRef<typename A::Message>> Context<M>::spawn(Args&&... args) const {
  return spawn_with<A>(SpawnOptions{}, [... a = std::decay_t<Args>(std::forward<Args>(args))]() {
    return A(a...);
  });
}


template <class M>
template <class T, class U>
Result<TimerId> Context<M>::send_after(ActorRef<T> to, U&& msg, std::chrono::nanoseconds delay) const {
  static_assert(std::is_constructible_v<T, U&&>, "message type does not accept this value");
  constexpr std::size_t cls = detail::size_class_for(detail::kNodePayload + sizeof(T));
  static_assert(cls < kSizeClasses, "message type exceeds the largest pool block (4 KiB)");
  System& s = *t_.system;
  if (!to.id.valid()) return Error::make(Errc::InvalidArgument, "send_after: the actor handle is empty");
  detail::Node* n = s.alloc_node(cls, t_.worker);
  if (n == nullptr) return s.pool_exhausted(cls, to.id);
  new (detail::payload<T>(n)) T(std::forward<U>(msg));
  auto id = t_.worker->timers.arm(n, to.id, delay, &detail::destroy_user_node<T>, ~0u, 0);
  if (!id) {
    detail::destroy_user_node<T>(n);
    s.free_node(n, t_.worker);
  }
  return id;
}

template <class M>
template <class T>
Result<void> Context<M>::monitor(ActorRef<T> other) const noexcept {
  static_assert(std::is_constructible_v<M, Down>,
                "a monitoring actor's message type must be constructible from airssys::Down");
  System& s = *t_.system;
  detail::Node* n = s.alloc_node(0, t_.worker);
  if (n == nullptr) return s.pool_exhausted(0, other.id);
  n->kind = detail::NodeKind::Monitor;
  new (detail::payload<detail::MonitorRecord>(n))
      detail::MonitorRecord{self().id, Down{other.id, StopReason::NoActor}};
  if (s.post_system(other.id, n, t_.worker)) return {};
  // Already gone: answer at once with NoActor.
  n->kind = detail::NodeKind::Down;
  if (!s.post_system(self().id, n, t_.worker)) s.free_node(n, t_.worker);
  return {};
}

template <class M>
template <class Rep, class T, class Make>
Result<std::uint64_t> Context<M>::ask(ActorRef<T> to, Make&& make,
                                      std::chrono::nanoseconds timeout) const {
  static_assert(std::is_constructible_v<M, Reply<Rep>>,
                "an asking actor's message type must be constructible from airssys::Reply<Rep>");
  constexpr std::size_t cls = detail::size_class_for(detail::kNodePayload + sizeof(M));
  if (timeout.count() < 0)
    return Error::make(Errc::InvalidArgument, "ask timeout %lld ns is negative",
                       static_cast<long long>(timeout.count()));
  System& s = *t_.system;
  auto index = s.asks_.acquire();
  if (!index) return index.error();
  detail::PendingAsk& p = s.asks_[*index];
  const std::uint32_t gen = s.asks_.gen(*index);
  const std::uint64_t request = (std::uint64_t{gen} << 32) | *index;
  p.asker = self().id;
  p.request = request;
  p.complete = [](System& sys, detail::PendingAsk& pa, void* rep) -> Result<void> {
    return sys.send_on(ActorRef<M>{pa.asker},
                       M(Reply<Rep>{pa.request, std::move(*static_cast<Rep*>(rep))}),
                       Backpressure::Error, true);
  };
  detail::Node* n = s.alloc_node(cls, t_.worker);
  if (n == nullptr) {
    s.asks_.release(*index);
    return s.pool_exhausted(cls, to.id);
  }
  new (detail::payload<M>(n)) M(Reply<Rep>{
      request, Error::make(Errc::Timeout, "request #%u to actor #%u got no reply within %lld ms",
                           *index, to.id.slot,
                           static_cast<long long>(timeout.count() / 1'000'000))});
  auto timer = t_.worker->timers.arm(n, self().id, timeout, &detail::destroy_user_node<M>, *index, gen);
  if (!timer) {
    detail::destroy_user_node<M>(n);
    s.free_node(n, t_.worker);
    s.asks_.release(*index);
    return timer.error();
  }
  p.timer = *timer;
  Result<void> sent;
#if __cpp_exceptions
  try {
    sent = s.send(to, make(ReplyTo<Rep>{*index, gen}));
  } catch (...) {
    // No request went out: no Reply may come for it either.
    s.cancel(*timer);
    s.asks_.release(*index);
    throw;
  }
#else
  sent = s.send(to, make(ReplyTo<Rep>{*index, gen}));
#endif
  if (!sent) {
    // The timer's guard finds the request gone and drops the timeout message.
    s.cancel(*timer);
    s.asks_.release(*index);
    return sent.error();
  }
  return request;
}

}  // namespace airssys
