// The supervisor's messages: the dispatch of each one, the requests of the
// runtime API (start_child, terminate_child, restart_child, delete_child),
// which wait in a fixed ring while an operation runs, and what is left of
// them when the supervisor is stopped from outside.

#include "supervisor_state.hpp"

#include <utility>
#include <variant>

namespace airssys::detail {

void SupervisorState::reject(Ctx& ctx, SupervisorMsg& msg, const Error& e) {
  SupervisorVariant& v = msg;
  if (auto* r = std::get_if<StartChildRequest>(&v)) (void)ctx.reply(r->reply, Result<ActorId>(e));
  if (auto* r = std::get_if<RestartChildRequest>(&v)) (void)ctx.reply(r->reply, Result<ActorId>(e));
  if (auto* r = std::get_if<TerminateChildRequest>(&v)) (void)ctx.reply(r->reply, Result<void>(e));
  if (auto* r = std::get_if<DeleteChildRequest>(&v)) (void)ctx.reply(r->reply, Result<void>(e));
}

// A request that changes the children, with no operation running.
void SupervisorState::handle_request(Ctx& ctx, SupervisorMsg& msg) {
  flush_notes(ctx);  // the events of the work before it, before its reply
  SupervisorVariant& v = msg;
  if (auto* r = std::get_if<StartChildRequest>(&v)) {
    // No spec: an instance of the template, which only SimpleOneForOne has.
    const bool no_spec = !r->spec.has_factory() && r->spec.id().empty();
    if (no_spec && !simple()) {
      (void)ctx.reply(r->reply, Result<ActorId>(Error::make(
                                    Errc::InvalidArgument,
                                    "start_child() with no spec is for SimpleOneForOne (this is %s): pass the "
                                    "child's spec",
                                    to_string(flags_.strategy))));
      return;
    }
    // SimpleOneForOne: an empty spec asks for an instance of the template.
    const ChildSpec& spec = simple() && has_template_ && no_spec ? template_ : r->spec;
    const auto id = spec.id();
    auto ok = check_spec(spec);
    if (!ok) {
      (void)ctx.reply(r->reply, Result<ActorId>(ok.error()));
      return;
    }
    if (simple()) {
      if (!has_template_ || id != template_.id()) {
        (void)ctx.reply(r->reply, Result<ActorId>(Error::make(
                                      Errc::InvalidArgument, "child '%.*s' is not this SimpleOneForOne supervisor's template ('%s')",
                                      static_cast<int>(id.size()), id.data(), has_template_ ? template_.id_.text : "")));
        return;
      }
    } else if (const std::uint32_t k = find_id(id); k != ~0u) {
      (void)ctx.reply(r->reply,
                      Result<ActorId>(Error::make(Errc::AlreadyExists, "child '%.*s' already exists (%s)",
                                                  static_cast<int>(id.size()), id.data(),
                                                  live(children_[k]) ? "running" : "terminated; restart or delete it")));
      return;
    }
    if (count_ == max_children_) {
      (void)ctx.reply(r->reply, Result<ActorId>(Error::make(Errc::Full, "supervisor is full (%u children); child '%.*s' not started",
                                                            max_children_, static_cast<int>(id.size()), id.data())));
      return;
    }
    const std::uint32_t i = count_++;
    children_[i] = Child{};
    children_[i].spec = spec;
    children_[i].to_start = true;
    op_.kind = OpKind::StartChild;
    op_.target = i;
    op_.reply_kind = ReplyKind::Id;
    op_.reply_id = r->reply;
    return;
  }
  if (auto* r = std::get_if<TerminateChildRequest>(&v)) {
    std::uint32_t i;
    if (simple()) {
      if (!r->instance.valid()) {
        (void)ctx.reply(r->reply, Result<void>(Error::make(
                                      Errc::InvalidArgument,
                                      "SimpleOneForOne children are terminated by ActorId, not by an id ('%s')",
                                      r->id.text)));
        return;
      }
      i = find_ref(r->instance);
      if (i == ~0u) {
        (void)ctx.reply(r->reply, Result<void>(Error::make(Errc::NotFound,
                                                           "actor #%u (generation %u) is not a child of this supervisor",
                                                           r->instance.slot, r->instance.gen)));
        return;
      }
    } else {
      if (r->id.view().empty() && r->instance.valid()) {
        // As OTP: only a simple_one_for_one supervisor takes the pid.
        (void)ctx.reply(r->reply, Result<void>(Error::make(
                                      Errc::InvalidArgument,
                                      "a %s supervisor's children are terminated by their child id, not by an "
                                      "ActorId (#%u)",
                                      to_string(flags_.strategy), r->instance.slot)));
        return;
      }
      i = find_id(r->id.view());
      if (i == ~0u) {
        (void)ctx.reply(r->reply,
                        Result<void>(Error::make(Errc::NotFound, "no child '%s' in this supervisor", r->id.text)));
        return;
      }
    }
    Child& c = children_[i];
    if (!live(c)) {
      (void)ctx.reply(r->reply, Result<void>());  // already terminated: ok, as OTP
      return;
    }
    c.to_stop = true;
    op_.kind = OpKind::Terminate;
    op_.stopping = true;
    op_.target = i;
    op_.reply_kind = ReplyKind::Void;
    op_.reply_void = r->reply;
    return;
  }
  if (auto* r = std::get_if<RestartChildRequest>(&v)) {
    if (simple()) {
      (void)ctx.reply(r->reply, Result<ActorId>(Error::make(Errc::InvalidArgument,
                                                            "restart_child('%s'): a SimpleOneForOne supervisor has no child ids",
                                                            r->id.text)));
      return;
    }
    const std::uint32_t i = find_id(r->id.view());
    if (i == ~0u) {
      (void)ctx.reply(r->reply, Result<ActorId>(Error::make(Errc::NotFound, "no child '%s' in this supervisor", r->id.text)));
      return;
    }
    if (live(children_[i])) {
      (void)ctx.reply(r->reply, Result<ActorId>(Error::make(Errc::InvalidArgument,
                                                            "child '%s' is running; terminate it first", r->id.text)));
      return;
    }
    children_[i].to_start = true;
    op_.kind = OpKind::RestartChild;
    op_.target = i;
    op_.reply_kind = ReplyKind::Id;
    op_.reply_id = r->reply;
    return;
  }
  if (auto* r = std::get_if<DeleteChildRequest>(&v)) {
    if (simple()) {
      (void)ctx.reply(r->reply, Result<void>(Error::make(Errc::InvalidArgument,
                                                         "delete_child('%s'): a SimpleOneForOne supervisor has no child ids",
                                                         r->id.text)));
      return;
    }
    const std::uint32_t i = find_id(r->id.view());
    if (i == ~0u) {
      (void)ctx.reply(r->reply, Result<void>(Error::make(Errc::NotFound, "no child '%s' in this supervisor", r->id.text)));
      return;
    }
    if (live(children_[i])) {
      (void)ctx.reply(r->reply, Result<void>(Error::make(Errc::InvalidArgument,
                                                         "child '%s' is running; terminate it first", r->id.text)));
      return;
    }
    set_removed(children_[i]);
    compact();
    (void)ctx.reply(r->reply, Result<void>());
    return;
  }
}
void SupervisorState::on_message(Ctx& ctx, SupervisorMsg& msg) {
  begin_message();
  SupervisorVariant& v = msg;
  if (stopped_self_) {
    reject(ctx, msg, Error::make(Errc::ShuttingDown, "supervisor #%u is shutting down", self_.id.slot));
    if (auto* r = std::get_if<StopSupervisorRequest>(&v); r != nullptr && r->reply.index != ~0u)
      (void)ctx.reply(r->reply, Result<void>());
    return;
  }
  if (auto* d = std::get_if<Down>(&v)) return on_down(ctx, *d);
  if (auto* s = std::get_if<Started>(&v)) return on_started(ctx, *s);
  if (auto* h = std::get_if<HealthReport>(&v)) return on_health(ctx, *h);
  if (std::holds_alternative<SupervisorTick>(v)) {
    // Whatever sent it (the timer, maybe early by the wheel's resolution, or
    // SupervisorRef::tick), poll_due arms the next one afresh.
    if (armed_due_ != kNever) (void)ctx.cancel(timer_);
    armed_due_ = kNever;
    return run(ctx);
  }
  if (auto* k = std::get_if<SupervisorKillChild>(&v)) {
    const std::uint32_t i = find_ref(k->who);
    if (i != ~0u && children_[i].phase == Phase::Stopping) {
      children_[i].kill_armed = false;
      (void)ctx.system().stop(k->who, StopReason::Shutdown);  // its orderly shutdown ran out of time
    }
    return;
  }
  if (auto* r = std::get_if<WhichChildrenRequest>(&v)) {
    (void)ctx.reply(r->reply, Result<ChildPage>(page(ctx.system(), r->offset)));
    return;
  }
  if (auto* r = std::get_if<CountChildrenRequest>(&v)) {
    (void)ctx.reply(r->reply, Result<ChildCounts>(counts(ctx.system())));
    return;
  }
  if (auto* r = std::get_if<StopSupervisorRequest>(&v)) {
    begin_shutdown(ctx, op_.kind == OpKind::InitialStart, r->reply);
    if (op_.fail_start)
      start_error_ = Error::make(Errc::ShuttingDown, "supervisor #%u was stopped before its children started",
                                 self_.id.slot);
    return run(ctx);
  }
  // A request that changes the children: in arrival order, after whatever runs.
  if (deferred_len_ == SupervisorSpec::kDeferredRequests) {
    reject(ctx, msg, Error::make(Errc::Full, "supervisor #%u is busy with %u requests waiting", self_.id.slot,
                                 SupervisorSpec::kDeferredRequests));
    return;
  }
  deferred_[(deferred_head_ + deferred_len_) % SupervisorSpec::kDeferredRequests] = std::move(msg);
  ++deferred_len_;
  run(ctx);
}


void SupervisorState::on_stop(Ctx& ctx, StopReason reason) {
  begin_message();
  // Stopped from outside (System::stop, shutdown, a failure) with children
  // left: stop them all now, last first. They stop after their current
  // handler; nothing waits for them here (see docs/supervision.md).
  for (std::uint32_t k = count_; k-- > 0;) {
    Child& c = children_[k];
    if (c.kill_armed) (void)ctx.cancel(c.kill_timer);
    c.kill_armed = false;
    if (!c.removed && live(c)) (void)ctx.system().stop(c.ref, StopReason::Shutdown);
  }
  if (armed_due_ != kNever) (void)ctx.cancel(timer_);
  armed_due_ = kNever;
  const Error gone = Error::make(Errc::ShuttingDown, "supervisor #%u stopped (%s)", self_.id.slot, to_string(reason));
  answer_op(ctx, gone);
  while (deferred_len_ > 0) {
    reject(ctx, deferred_[deferred_head_], gone);
    deferred_[deferred_head_] = SupervisorMsg{};
    deferred_head_ = (deferred_head_ + 1) % SupervisorSpec::kDeferredRequests;
    --deferred_len_;
  }
  if (start_state_.load(std::memory_order_relaxed) == kStartPending) {
    start_error_ = Error::make(Errc::ShuttingDown, "supervisor #%u stopped (%s) before its children started",
                               self_.id.slot, to_string(reason));
    start_state_.store(kStartFailed, std::memory_order_release);
  }
  op_ = Op{};
  stopped_self_ = true;
}

}  // namespace airssys::detail
