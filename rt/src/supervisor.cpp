// Supervisors: the child table, the restart history, and the operation
// machine that stops and starts children one Down / one Started at a time.
//
// Every change to the children is an operation (Op): a stop phase (children
// marked to_stop, stopped in reverse table order, one at a time — all at
// once for SimpleOneForOne — each awaited through its Down) followed by a
// start phase (children marked to_start, started in table order, each
// awaited through its Started), then a finish (reply, report Started, stop
// the supervisor). One operation runs at a time. What happens meanwhile is
// kept: a child that ends by itself is marked Exited and handled after the
// operation; a request that changes the children waits in a fixed ring. An
// orderly stop (intensity exceeded, auto_shutdown, backoff giving up, a
// stop request, a failed start) preempts whatever runs.
// (The shared state is in supervisor_state.hpp; the requests of the runtime
// API in supervisor_requests.cpp.)

#include "supervisor_state.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace airssys {
namespace detail {

// Each note becomes one event in the System's Monitoring ring:
//   ChildStarted      ActorStarted      the child's instance, its id (not
//                                       for the child a restart is for:
//                                       its new instance is ChildRestarted)
//   ChildStopped      ActorStopped      the instance, its id
//   ChildFailed       ActorFailed       the instance (invalid if its spawn
//                                       failed), its id, the start error
//   ChildRestarted    ActorRestarted    the new instance, once spawned, its
//                                       id (counted per child id by the ring)
//   StrategyApplied   StrategyApplied   the supervisor, the child that ended,
//                                       count: children the strategy restarts
//   IntensityExceeded IntensityExceeded the supervisor, the child whose
//                                       restart exceeded it, count: restarts
//                                       inside the period
// On the monotonic clock the event carries this message's clock read (the
// ring would read the clock again per event); on an injected clock the
// ring stamps it, as its time must be monotonic.
void SupervisorState::note(Ctx& ctx, Note n, const Child& c, ActorId who, std::uint64_t count,
                           const Error* error) noexcept {
  using K = MonitorEvent::Kind;
  K kind = K::ActorStarted;
  switch (n) {
    case Note::ChildStarted: kind = K::ActorStarted; break;
    case Note::ChildStopped: kind = K::ActorStopped; break;
    case Note::ChildFailed: kind = K::ActorFailed; break;
    case Note::ChildRestarted: kind = K::ActorRestarted; break;
    case Note::StrategyApplied: kind = K::StrategyApplied; break;
    case Note::IntensityExceeded: kind = K::IntensityExceeded; break;
  }
  if (notes_len_ == kNoteBuffer) flush_notes(ctx);
  MonitorEvent& e = notes_[notes_len_++];
  e = MonitorEvent{};
  e.kind = kind;
  e.actor = who;
  e.count = count;
  // A ChildName is NUL-padded to the event's name size (ChildName's
  // constructor zeroes it first): copied whole, no length to find.
  static_assert(sizeof c.spec.id_.text == MonitorEvent::kNameSize);
  std::memcpy(e.name, c.spec.id_.text, MonitorEvent::kNameSize);
  if (error != nullptr) {
    e.set_error(*error);
  } else if (n == Note::ChildFailed) {
    e.error = Errc::Failed;  // a crash (the child's own error went to its on_error)
  }
  if (steady_) e.time_ns = now();
}

void SupervisorState::flush_notes(Ctx& ctx) noexcept {
  if (notes_len_ == 0) return;
  ctx.system().monitoring().record(std::span<const MonitorEvent>(notes_, notes_len_));
  notes_len_ = 0;
}

void SupervisorState::on_start(Ctx& ctx) {
  begin_message();
  self_ = ctx.self();
  stopped_self_ = false;
  op_ = Op{};
  history_len_ = 0;
  deferred_head_ = deferred_len_ = 0;
  health_children_ = 0;
  timed_ = false;
  armed_due_ = kNever;
  timer_ = TimerId{};
  start_error_ = Error{};
  start_state_.store(kStartPending, std::memory_order_relaxed);
  ctx.defer_started();
  if (flags_error_.code() != Errc::Ok) {
    start_error_ = flags_error_;
    start_state_.store(kStartFailed, std::memory_order_release);
    stopped_self_ = true;
    ctx.stop(StopReason::Failed);
    return;
  }
  // A restarted supervisor starts from its add() children, as OTP's init.
  for (std::uint32_t i = 0; i < count_; ++i) children_[i] = Child{};
  count_ = static_count_;
  for (std::uint32_t i = 0; i < count_; ++i) {
    children_[i].spec = statics_[i];
    children_[i].to_start = true;
  }
  op_.kind = OpKind::InitialStart;
  run(ctx);
}

// Drives the current operation, then the work that waited for it.
void SupervisorState::run(Ctx& ctx) {
  while (!stopped_self_) {
    if (op_.kind != OpKind::None) {
      if (!step(ctx)) break;
      finish_op(ctx);
      continue;
    }
    if (!next_work(ctx)) break;
  }
  if (!stopped_self_) poll_due(ctx);
  flush_notes(ctx);
}

// One step of the operation; true once it is complete.
bool SupervisorState::step(Ctx& ctx) {
  for (;;) {
    if (op_.kind == OpKind::None) return false;
    if (op_.stopping) {
      for (std::uint32_t i = 0; i < count_; ++i)
        if (children_[i].phase == Phase::Stopping) return false;  // its Down comes
      bool issued = false;
      for (std::uint32_t k = count_; k-- > 0;) {
        Child& c = children_[k];
        if (!c.to_stop) continue;
        if (c.phase == Phase::Running || c.phase == Phase::Starting) {
          stop_one(ctx, k);
          issued = true;
          if (!simple()) break;  // one at a time, in reverse order
        } else {
          c.to_stop = false;
          if (c.phase == Phase::Exited) {
            // It ended by itself while the stop was coming: the stop it is.
            note_exited(ctx, c);
            if (c.spec.restart_type() == RestartType::Temporary || simple()) set_removed(c, !c.to_start);
          }
        }
      }
      if (issued) return false;
      op_.stopping = false;
    }
    for (std::uint32_t i = 0; i < count_; ++i)
      if (children_[i].phase == Phase::Starting) return false;  // its Started comes
    if (op_.not_before > 0 && now() < op_.not_before) return false;  // backoff; poll_due arms the tick
    std::uint32_t next = ~0u;
    for (std::uint32_t i = 0; i < count_ && next == ~0u; ++i)
      if (children_[i].to_start && !children_[i].removed) next = i;
    if (next == ~0u) return true;
    start_one(ctx, next);
    // A failed spawn changed the operation (rollback, retry, reply): look again.
  }
}

// A restart of one worker child that nothing else waits on: OneForOne or
// SimpleOneForOne restarting the child that ended, which has no health
// check and no backoff reset (the two need its start time). Such a child is
// spawned without a Started and taken as Running at once; the supervisor
// goes on without waiting for its on_start. Its Down then says whether it
// had started (Down::started), and one that had not is a failed start,
// counted and tried again as before. Any other start is awaited.
bool SupervisorState::lone_restart(std::uint32_t i) const noexcept {
  if (op_.kind != OpKind::Restart || op_.target != i) return false;
  if (flags_.strategy != Strategy::OneForOne && !simple()) return false;
  const ChildSpec& s = children_[i].spec;
  const Backoff& b = s.backoff_spec();
  return s.kind() == ChildKind::Worker && s.health_spec().interval.count() <= 0 &&
         !(b.min.count() > 0 && b.reset_after.count() > 0);
}

void SupervisorState::start_one(Ctx& ctx, std::uint32_t i) {
  Child& c = children_[i];
  c.to_start = false;
  SpawnOptions o = c.spec.spawn_options();
  o.kill_timeout = c.spec.shutdown_spec().kill_timeout();
  const bool quiet = lone_restart(i);
  auto r = c.spec.spawn(ctx, o, quiet);
  if (!r) {
    start_failed(ctx, i, r.error());
    return;
  }
  // The child is monitored from its birth: its Started (unless quiet), or
  // its Down (once its process trees are gone), comes.
  c.ref = *r;
  c.quiet = quiet;
  c.failed_start = false;
  if (quiet) {
    c.phase = Phase::Running;
    c.started_at = 0;
    c.next_probe = kNever;
  } else {
    c.phase = Phase::Starting;
  }
  // Usually in the same message as the Down that caused the restart, so
  // the event shares that message's one clock read.
  if (op_.kind == OpKind::Restart && op_.target == i) note(ctx, Note::ChildRestarted, c, c.ref);
  if (c.spec.health_spec().interval.count() > 0) timed_ = true;
  c.health_kill = c.probe_out = false;
  c.health_failures = 0;
}

void SupervisorState::stop_one(Ctx& ctx, std::uint32_t i) {
  Child& c = children_[i];
  c.to_stop = false;
  c.phase = Phase::Stopping;
  if (c.probe_out) c.probe_out = false;
  const ShutdownSpec sd = c.spec.shutdown_spec();
  if (c.spec.kind() == ChildKind::Supervisor && sd.kind != ShutdownSpec::Kind::BrutalKill) {
    // A child supervisor stops its own children first (in reverse, each
    // awaited), so that its Down means its whole subtree is gone.
    if (ctx.system().post(ActorRef<SupervisorMsg>{c.ref}, StopSupervisorRequest{})) {
      if (sd.kind == ShutdownSpec::Kind::Timeout) {
        auto t = ctx.send_after(self_, SupervisorKillChild{c.ref}, sd.timeout);
        if (t) {
          c.kill_timer = *t;
          c.kill_armed = true;
        }
      }
      return;
    }
  }
  // Dead: it is already stopping; its Down is on the way (we monitor it).
  (void)ctx.system().stop(c.ref, StopReason::Shutdown);
}

void SupervisorState::start_failed(Ctx& ctx, std::uint32_t i, const Error& e) {
  Child& c = children_[i];
  const ActorId was = c.ref;  // invalid when the spawn itself failed
  c.phase = Phase::Stopped;
  c.ref = ActorId{};
  c.to_start = false;
  const auto id = c.spec.id();
  note(ctx, Note::ChildFailed, c, was, 0, &e);
  switch (op_.kind) {
    case OpKind::InitialStart: {
      start_error_ = Error::make(e.code() == Errc::Ok ? Errc::Failed : e.code(), "child '%.*s' failed to start: %s",
                                 static_cast<int>(id.size()), id.data(), e.message());
      begin_shutdown(ctx, true, ReplyTo<Result<void>>{});
      return;
    }
    case OpKind::StartChild:
      set_removed(c);  // as OTP: a child that does not start is not added
      answer_op(ctx, Error::make(e.code() == Errc::Ok ? Errc::Failed : e.code(), "child '%.*s' failed to start: %s",
                                 static_cast<int>(id.size()), id.data(), e.message()));
      clear_marks();
      op_ = Op{};
      return;
    case OpKind::RestartChild:
      answer_op(ctx, Error::make(e.code() == Errc::Ok ? Errc::Failed : e.code(), "child '%.*s' failed to start: %s",
                                 static_cast<int>(id.size()), id.data(), e.message()));
      clear_marks();
      op_ = Op{};
      return;
    case OpKind::Restart: {
      // A failed restart counts, and is tried again (as OTP's try_again).
      clear_marks();
      op_ = Op{};
      begin_restart(ctx, i);
      return;
    }
    case OpKind::None:
    case OpKind::Shutdown:
    case OpKind::Terminate:
      return;
  }
}

// The intensity check, exactly as OTP: keep the restarts within `period`
// of now (now <= then + period), add this one, and allow at most intensity.
bool SupervisorState::add_restart(std::int64_t now) noexcept {
  const std::int64_t period = flags_.period.count();
  std::uint32_t drop = 0;
  while (drop < history_len_ && now > add_sat(history_[drop], period)) ++drop;
  if (drop > 0) {
    for (std::uint32_t k = drop; k < history_len_; ++k) history_[k - drop] = history_[k];
    history_len_ -= drop;
  }
  if (history_len_ == history_cap_) {  // cannot happen: exceeding shuts down
    for (std::uint32_t k = 1; k < history_len_; ++k) history_[k - 1] = history_[k];
    --history_len_;
  }
  history_[history_len_++] = now;
  return history_len_ <= flags_.intensity;
}

bool SupervisorState::backoff_delay(Child& c, std::int64_t& delay) noexcept {
  delay = 0;
  const Backoff& b = c.spec.backoff_spec();
  if (b.min.count() <= 0) return true;  // off: nothing to compute
  if (b.reset_after.count() > 0 && c.started_at != 0 && now() - c.started_at >= b.reset_after.count())
    c.consecutive = 0;
  ++c.consecutive;
  if (b.give_up_after != 0 && c.consecutive > b.give_up_after) return false;
  const std::uint32_t shift = std::min<std::uint32_t>(c.consecutive - 1, 62);
  std::int64_t d = b.min.count();
  for (std::uint32_t k = 0; k < shift && d < kNever / 2; ++k) d *= 2;
  if (b.max.count() > 0 && d > b.max.count()) d = b.max.count();
  if (b.jitter > 0.0) {
    // xorshift64: a draw without a lock, an allocation or a syscall.
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    const double u = static_cast<double>(rng_ >> 11) / static_cast<double>(std::uint64_t{1} << 53);
    d += static_cast<std::int64_t>(static_cast<double>(d) * b.jitter * (2.0 * u - 1.0));
    if (d < 0) d = 0;
  }
  delay = d;
  return true;
}

// The error of a child that stopped before it started: its own, when it
// failed, else its stop reason.
Error SupervisorState::start_failure(ActorId who, StopReason reason, Ctx& ctx) const noexcept {
  Error e = Error::make(Errc::Failed, "stopped before it started (%s)", to_string(reason));
  (void)ctx.system().start_error(who, e);
  return e;
}

// A quiet child (start_one) whose Down says it never started: what the
// Starting case of on_down does for an awaited one. With no operation
// running (the restart that spawned it is over), it is that restart
// failing: counted, and tried again. An operation that was stopping it
// takes it as a failed start, as it would an awaited child; any other
// operation runs first (next_work then handles it).
void SupervisorState::quiet_start_failed(Ctx& ctx, std::uint32_t i, const Down& d) {
  Child& c = children_[i];
  if (op_.kind != OpKind::None && !c.to_stop) {
    c.ref = ActorId{};
    c.phase = Phase::Exited;
    c.exit_reason = d.reason;
    c.exited = d.who;
    c.failed_start = true;
    return;
  }
  const Error e = start_failure(d.who, d.reason, ctx);
  if (op_.kind != OpKind::None) {
    start_failed(ctx, i, e);
    return;
  }
  c.phase = Phase::Stopped;
  c.ref = ActorId{};
  note(ctx, Note::ChildFailed, c, d.who, 0, &e);
  begin_restart(ctx, i);
}

// An Exited child's end becomes Stopped, with its event: failed (a quiet
// child that never started, with its start error; or an abnormal exit) or
// stopped.
void SupervisorState::note_exited(Ctx& ctx, Child& c) {
  if (c.failed_start) {
    c.failed_start = false;
    const Error e = start_failure(c.exited, c.exit_reason, ctx);
    note(ctx, Note::ChildFailed, c, c.exited, 0, &e);
  } else {
    note(ctx, abnormal(c.exit_reason) ? Note::ChildFailed : Note::ChildStopped, c, c.exited);
  }
  c.exited = ActorId{};
  c.phase = Phase::Stopped;
}

// Child i ended by itself (or failed its health checks) and no operation
// runs. A quiet child that never started is a failed restart: counted and
// tried again, whatever its restart type.
void SupervisorState::handle_exit(Ctx& ctx, std::uint32_t i) {
  Child& c = children_[i];
  const bool failed_start = c.failed_start;
  const StopReason r = c.exit_reason;
  c.ref = ActorId{};
  note_exited(ctx, c);
  if (failed_start) {
    begin_restart(ctx, i);
    return;
  }
  const RestartType rt = c.spec.restart_type();
  const bool restart = rt == RestartType::Permanent || (rt == RestartType::Transient && abnormal(r));
  if (!restart) {
    if (rt == RestartType::Temporary || simple()) set_removed(c);
    if (!c.spec.is_significant() || flags_.auto_shutdown == AutoShutdown::Never) return;
    bool shut = flags_.auto_shutdown == AutoShutdown::AnySignificant;
    if (!shut) {
      shut = true;
      for (std::uint32_t k = 0; k < count_; ++k) {
        const Child& o = children_[k];
        if (!o.removed && o.spec.is_significant() && (live(o) || o.phase == Phase::Exited)) shut = false;
      }
    }
    if (shut) begin_shutdown(ctx, false, ReplyTo<Result<void>>{});
    return;
  }
  begin_restart(ctx, i);
}

// Counts a restart of child i (intensity, backoff) and applies the strategy;
// past the intensity, or when backoff gives up, shuts the supervisor down
// (escalating). The only clock read of a plain restart is the intensity
// window's, and with intensity 0 (no restart allowed) there is none.
void SupervisorState::begin_restart(Ctx& ctx, std::uint32_t i) {
  Child& c = children_[i];
  if (!add_restart(flags_.intensity == 0 ? 0 : now())) {
    note(ctx, Note::IntensityExceeded, c, self_.id, history_len_);
    begin_shutdown(ctx, false, ReplyTo<Result<void>>{});
    return;
  }
  ++c.restarts;
  std::int64_t delay = 0;
  if (!backoff_delay(c, delay)) {
    begin_shutdown(ctx, false, ReplyTo<Result<void>>{});  // backoff gave up: escalate
    return;
  }
  apply_restart(ctx, i, delay);
}

void SupervisorState::apply_restart(Ctx& ctx, std::uint32_t i, std::int64_t delay) {
  op_ = Op{};
  op_.kind = OpKind::Restart;
  op_.target = i;
  op_.not_before = delay > 0 ? add_sat(now(), delay) : 0;
  children_[i].to_start = true;
  std::uint64_t restarted = 1;
  if (flags_.strategy == Strategy::OneForAll || flags_.strategy == Strategy::RestForOne) {
    const std::uint32_t from = flags_.strategy == Strategy::OneForAll ? 0 : i + 1;
    for (std::uint32_t k = from; k < count_; ++k) {
      Child& o = children_[k];
      if (k == i || o.removed) continue;
      if (o.phase != Phase::Stopped) {
        o.to_stop = true;
        op_.stopping = true;
      }
      // A Temporary child is stopped and removed, never started again.
      o.to_start = o.spec.restart_type() != RestartType::Temporary;
      restarted += o.to_start ? 1 : 0;
    }
  }
  note(ctx, Note::StrategyApplied, children_[i], self_.id, restarted);
}

// Stops every child (reverse order; SimpleOneForOne in parallel), then the
// supervisor: Shutdown, or Failed for the rollback of a failed start.
void SupervisorState::begin_shutdown(Ctx& ctx, bool fail_start, ReplyTo<Result<void>> reply) {
  answer_op(ctx, Error::make(Errc::ShuttingDown, "supervisor #%u is shutting down", self_.id.slot));
  clear_marks();
  op_ = Op{};
  op_.kind = OpKind::Shutdown;
  op_.stopping = true;
  op_.fail_start = fail_start;
  op_.reply_kind = ReplyKind::Void;
  op_.reply_void = reply;
  for (std::uint32_t i = 0; i < count_; ++i) {
    Child& c = children_[i];
    if (c.removed) continue;
    if (c.phase == Phase::Running || c.phase == Phase::Starting) c.to_stop = true;
    if (c.phase == Phase::Exited) note_exited(ctx, c);  // ended by itself; not restarted now
  }
}

void SupervisorState::answer_op(Ctx& ctx, const Error& e) {
  flush_notes(ctx);  // before the reply
  if (op_.reply_kind == ReplyKind::Id && op_.reply_id.index != ~0u)
    (void)ctx.reply(op_.reply_id, Result<ActorId>(e));
  if (op_.reply_kind == ReplyKind::Void && op_.reply_void.index != ~0u)
    (void)ctx.reply(op_.reply_void, Result<void>(e));
  op_.reply_kind = ReplyKind::None;
}

void SupervisorState::finish_op(Ctx& ctx) {
  const Op op = op_;
  op_ = Op{};
  flush_notes(ctx);  // before the replies and start_state_
  switch (op.kind) {
    case OpKind::InitialStart:
      start_state_.store(kStartOk, std::memory_order_release);
      (void)ctx.report_started();
      break;
    case OpKind::Shutdown:
      if (op.reply_void.index != ~0u) (void)ctx.reply(op.reply_void, Result<void>());
      stopped_self_ = true;
      if (op.fail_start) {
        start_state_.store(kStartFailed, std::memory_order_release);
        ctx.stop(StopReason::Failed);
      } else {
        ctx.stop(StopReason::Shutdown);
      }
      break;
    case OpKind::Terminate: {
      Child& c = children_[op.target];
      if (c.spec.restart_type() == RestartType::Temporary || simple()) set_removed(c);
      if (op.reply_void.index != ~0u) (void)ctx.reply(op.reply_void, Result<void>());
      break;
    }
    case OpKind::StartChild:
    case OpKind::RestartChild:
      if (op.reply_id.index != ~0u) (void)ctx.reply(op.reply_id, Result<ActorId>(children_[op.target].ref));
      break;
    case OpKind::Restart:  // recorded when the replacement was spawned (start_one)
    case OpKind::None:
      break;
  }
}

// Work that waited for the operation: children that ended meanwhile (in
// table order), then health-check restarts, then deferred requests.
bool SupervisorState::next_work(Ctx& ctx) {
  compact();
  for (std::uint32_t i = 0; i < count_; ++i) {
    if (children_[i].phase == Phase::Exited) {
      handle_exit(ctx, i);
      return true;
    }
  }
  if (health_children_ != 0) {
    for (std::uint32_t i = 0; i < count_; ++i) {
      Child& c = children_[i];
      if (c.phase == Phase::Running && !c.health_kill && c.spec.health_spec().interval.count() > 0 &&
          c.health_failures >= c.spec.health_spec().failures_to_restart) {
        c.health_kill = true;
        (void)ctx.system().stop(c.ref, StopReason::Shutdown);
      }
    }
  }
  if (deferred_len_ == 0) return false;
  SupervisorMsg msg = std::move(deferred_[deferred_head_]);
  deferred_head_ = (deferred_head_ + 1) % SupervisorSpec::kDeferredRequests;
  --deferred_len_;
  handle_request(ctx, msg);
  return true;
}

// Health probes that are due, and the tick for the next due time (a
// monotonic clock only: a manual one is poked with SupervisorRef::tick()).
void SupervisorState::poll_due(Ctx& ctx) {
  if (!timed_ && op_.not_before == 0) return;  // no health checks, no backoff: nothing is ever due
  std::int64_t next = kNever;
  if (op_.kind != OpKind::None && op_.not_before > 0) next = op_.not_before;
  health_children_ = 0;
  const std::int64_t now = this->now();
  for (std::uint32_t i = 0; i < count_; ++i) {
    Child& c = children_[i];
    const std::int64_t interval = c.spec.health_spec().interval.count();
    if (interval <= 0 || c.phase != Phase::Running || c.removed) continue;
    ++health_children_;
    if (c.next_probe <= now && !c.probe_out && !c.health_kill) {
      if (ctx.probe_health(c.ref)) c.probe_out = true;
      c.next_probe = add_sat(now, interval);
    }
    if (!c.probe_out) next = std::min(next, c.next_probe);
  }
  if (next == kNever || !clock_->advances_by_itself() || next >= armed_due_) return;
  if (armed_due_ != kNever) (void)ctx.cancel(timer_);
  const std::int64_t delay = std::max<std::int64_t>(next - now, 0);
  auto t = ctx.send_after(self_, SupervisorTick{}, std::chrono::nanoseconds(delay));
  if (t) {
    timer_ = *t;
    armed_due_ = next;
  }
}

void SupervisorState::on_down(Ctx& ctx, const Down& d) {
  const std::uint32_t i = find_ref(d.who);
  if (i == ~0u) return;
  Child& c = children_[i];
  if (c.kill_armed) {
    (void)ctx.cancel(c.kill_timer);
    c.kill_armed = false;
  }
  c.probe_out = false;
  switch (c.phase) {
    case Phase::Stopping:
      // Stopped by this supervisor: reported as Shutdown, never counted.
      c.phase = Phase::Stopped;
      c.ref = ActorId{};
      note(ctx, Note::ChildStopped, c, d.who);
      if (c.spec.restart_type() == RestartType::Temporary || (simple() && !c.to_start)) set_removed(c);
      break;
    case Phase::Starting: {
      Error e = start_failure(d.who, d.reason, ctx);
      if (c.spec.kind() == ChildKind::Supervisor && c.spec.child_spec_ != nullptr) {
        auto* sub = c.spec.child_spec_->state_.get();
        if (sub->start_state_.load(std::memory_order_acquire) == kStartFailed) e = sub->start_error_;
      }
      start_failed(ctx, i, e);
      break;
    }
    case Phase::Running: {
      if (c.quiet && !d.started) {
        quiet_start_failed(ctx, i, d);
        break;
      }
      const StopReason r = c.health_kill ? StopReason::Failed : d.reason;
      c.ref = ActorId{};
      if (op_.kind != OpKind::None && c.to_stop) {
        // It ended by itself just before this operation would have stopped it.
        c.to_stop = false;
        c.phase = Phase::Stopped;
        note(ctx, Note::ChildStopped, c, d.who);
        if (c.spec.restart_type() == RestartType::Temporary || (simple() && !c.to_start)) set_removed(c);
      } else {
        c.phase = Phase::Exited;
        c.exit_reason = r;
        c.exited = d.who;
      }
      break;
    }
    case Phase::Stopped:
    case Phase::Exited:
      break;
  }
  run(ctx);
}

void SupervisorState::on_started(Ctx& ctx, const Started& s) {
  const std::uint32_t i = find_ref(s.who);
  if (i == ~0u || children_[i].phase != Phase::Starting) return;
  Child& c = children_[i];
  c.phase = Phase::Running;
  // The start time matters only to backoff's reset_after and to the first
  // health probe: a child with neither costs no clock read here.
  const std::int64_t interval = c.spec.health_spec().interval.count();
  const Backoff& b = c.spec.backoff_spec();
  const bool timed = interval > 0 || (b.min.count() > 0 && b.reset_after.count() > 0);
  c.started_at = timed ? now() : 0;
  c.next_probe = interval > 0 ? add_sat(c.started_at, interval) : kNever;
  // The child a restart is for was recorded once, as ActorRestarted when
  // its replacement was spawned (start_one): one event per fact, and this
  // message then needs neither a ring write nor a clock read.
  if (op_.kind != OpKind::Restart || op_.target != i) note(ctx, Note::ChildStarted, c, c.ref);
  run(ctx);
}

void SupervisorState::on_health(Ctx& ctx, const HealthReport& h) {
  const std::uint32_t i = find_ref(h.who);
  if (i == ~0u || children_[i].phase != Phase::Running) return;
  Child& c = children_[i];
  c.probe_out = false;
  if (h.health == Health::Failed) {
    ++c.health_failures;
  } else {
    c.health_failures = 0;  // consecutive Failed reports only
  }
  run(ctx);  // next_work acts on a reached threshold once no operation runs
}

}  // namespace detail

// ---------------------------------------------------------------------------

void Supervisor::on_start(Context<SupervisorMsg>& ctx) {
  detail::SupervisorState& s = *spec_->state_;
  // acq_rel: the previous instance's writes (its on_stop) are seen here.
  if (s.in_use_.exchange(true, std::memory_order_acq_rel)) {
    // Another instance runs this spec; its state is not ours to touch.
    ctx.stop(StopReason::Failed);
    return;
  }
  owns_ = true;
  s.on_start(ctx);
  s.flush_notes(ctx);
}

void Supervisor::on_message(Context<SupervisorMsg>& ctx, SupervisorMsg& msg) {
  if (!owns_) return;
  spec_->state_->on_message(ctx, msg);
  spec_->state_->flush_notes(ctx);
}

void Supervisor::on_stop(Context<SupervisorMsg>& ctx, StopReason reason) {
  if (!owns_) return;
  spec_->state_->on_stop(ctx, reason);
  spec_->state_->flush_notes(ctx);
  owns_ = false;
  // release: the next instance (a restart) sees this one's last writes.
  spec_->state_->in_use_.store(false, std::memory_order_release);
}

ErrorAction Supervisor::on_error(Context<SupervisorMsg>&, const Error& e) {
  // A child that escalated also stops with Escalated: its Down carries that,
  // and the strategy handles it there.
  return e.code() == Errc::ChildEscalated ? ErrorAction::Resume : ErrorAction::Stop;
}

}  // namespace airssys
