#pragma once
// Actors: the base class Actor<M>, what a handler's failure leads to
// (ErrorAction), and the type-erased faces the runtime drives. The bodies
// of Actor<M>'s hooks run a Context, so they live in context.hpp. This
// header needs neither the System nor the process layer.

#include <airssys/error.hpp>
#include <airssys/rt/actor_ref.hpp>
#include <airssys/rt/fwd.hpp>
#include <airssys/rt/messages.hpp>
#include <airssys/rt/detail/mailbox.hpp>

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace airssys {

// What the runtime does after a handler fails (Context::fail, or an
// exception escaping it when exceptions are on).
//   Resume   — drop the failed message, keep the state, go on;
//   Restart  — destroy the state, build a fresh one with the spawn factory,
//              run on_start; the mailbox and the ActorRef stay valid;
//   Stop     — stop with StopReason::Failed;
//   Escalate — stop with StopReason::Escalated and run the parent's on_error
//              with Errc::ChildEscalated (parent = the actor that spawned
//              this one through its Context; none for top-level actors).
enum class ErrorAction : std::uint8_t { Resume, Restart, Stop, Escalate };

namespace detail {

struct Worker;

// The state of one actor's turn, handed to Context.
struct Turn {
  Turn(System* s, Cell* c, Worker* w, std::uint32_t i) noexcept
      : system(s), cell(c), worker(w), slot(i) {}
  System* system;
  Cell* cell;
  Worker* worker;
  std::uint32_t slot;
  bool stop_self = false;
  bool failed = false;
  bool defer_started = false;  // on_start asked to report Started itself
  bool starting = false;       // on_start is running (its failure is a start error)
  // on_error is running: a failure it reports sets `failed` but keeps
  // `error`, the one on_error was given (by reference) and the one recorded.
  bool handling_error = false;
  StopReason reason = StopReason::Normal;
  Error error;
};

struct MonitorRecord {
  ActorId watcher;
  Down down;
};

// A health probe on its way to the probed actor (NodeKind::Probe) and back
// to the prober (NodeKind::HealthReply), in one node.
struct ProbeRecord {
  ActorId watcher;
  HealthReport report;
};

class ActorHolder;

// The type-erased face of an actor that the runtime drives.
class ActorBase {
 public:
  virtual ~ActorBase() = default;

 protected:
  ActorBase() = default;
  ActorBase(const ActorBase&) = delete;
  ActorBase& operator=(const ActorBase&) = delete;

 private:
  friend class airssys::System;
  virtual void invoke_start(Turn& t) = 0;
  // Runs the handler for a User or Down node and destroys its payload.
  virtual void invoke(Turn& t, Node* n) = 0;
  virtual void invoke_stop(Turn& t, StopReason r) = 0;
  virtual ErrorAction invoke_error(Turn& t, const Error& e) = 0;
  virtual Health invoke_health(Turn& t) = 0;
};

// Owns an actor's storage and the factory that (re)builds it; lives in one
// pooled block.
class ActorHolder {
 public:
  virtual ~ActorHolder() = default;
  virtual ActorBase* construct() = 0;
  virtual void destroy() noexcept = 0;
  // Destroys the payload of a User node that will not be handled. Lives
  // here, not on the actor, because the state may not exist (its
  // constructor failed) while messages for it are queued.
  virtual void discard(Node* n) noexcept = 0;
  std::uint8_t size_class = 0;
  // How the actor's process trees are torn down (SpawnOptions).
  std::uint8_t first_signal = 0;      // 0: TERM
  // Its supervisor records its failures in the System's Monitoring (a
  // Supervisor's child): the runtime does not record a failure that stops
  // it a second time.
  bool failures_recorded = false;
  std::int64_t kill_timeout_ns = -1;  // <0: SystemConfig::process_kill_timeout
  // The actor that asked for Started (Context::spawn_supervised); cleared
  // once it is sent.
  ActorId notify_started;
  // A supervisor's lone restart: the child is watched from its birth, but
  // its Started is not sent (the Down's `started` tells a failed start).
  bool quiet_started = false;
};

template <class A, class F>
class HolderFor final : public ActorHolder {
 public:
  explicit HolderFor(F&& f) : factory_(std::move(f)) {}
  ActorBase* construct() override { return new (storage_) A(factory_()); }
  void destroy() noexcept override { std::launder(reinterpret_cast<A*>(storage_))->~A(); }
  void discard(Node* n) noexcept override {
    using M = typename A::Message;
    if (n->kind == NodeKind::User) payload<M>(n)->~M();
  }

 private:
  F factory_;
  alignas(A) unsigned char storage_[sizeof(A)];
};

}  // namespace detail

// Base class of every actor. M is the actor's message type (often a
// std::variant). Handlers run on the actor's home worker, one at a time,
// never concurrently with each other; the actor's state needs no locking.
//
// To restart, the runtime destroys the object and builds a new one with the
// factory given at spawn, so constructors should establish the initial state.
template <class M>
class Actor : public detail::ActorBase {
 public:
  using Message = M;

  virtual void on_start(Context<M>&) {}
  virtual void on_message(Context<M>& ctx, M& msg) = 0;
  virtual void on_stop(Context<M>&, StopReason) {}
  virtual ErrorAction on_error(Context<M>&, const Error&) { return ErrorAction::Stop; }
  // Answers Context::probe_health (a supervisor's periodic health check),
  // on this actor's worker between its messages. Keep it short.
  virtual Health health_check(Context<M>&) { return Health::Healthy; }

 private:
  void invoke_start(detail::Turn& t) final;
  void invoke(detail::Turn& t, detail::Node* n) final;
  void invoke_stop(detail::Turn& t, StopReason r) final;
  ErrorAction invoke_error(detail::Turn& t, const Error& e) final;
  Health invoke_health(detail::Turn& t) final;
};

}  // namespace airssys
