#pragma once
// Supervisors with Erlang/OTP's semantics: strategies, restart types,
// intensity/period, shutdown specs, significant children and auto_shutdown,
// plus restart backoff and health checks, on fixed capacity. See
// docs/supervision.md for the rules beside OTP's.
//
// A supervisor is an actor (Supervisor, message type SupervisorMsg). Its
// state lives in a SupervisorSpec, built before the system runs: the child
// table, the restart history and every other table are allocated there,
// once, so that supervising (crash, stop, restart) allocates nothing.

#include <airssys/rt/system.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace airssys {

// Which children a restart touches.
//   OneForOne       — only the child that ended;
//   OneForAll       — every child: the others are stopped in reverse start
//                     order, then all start again in order;
//   RestForOne      — the child that ended and those started after it;
//   SimpleOneForOne — one template spec, instances added at run time with
//                     start_child, each restarted alone, stopped in parallel.
enum class Strategy : std::uint8_t { OneForOne, OneForAll, RestForOne, SimpleOneForOne };
// When a child that ended by itself is restarted.
//   Permanent — always;
//   Transient — only after an abnormal exit (StopReason Failed or Escalated;
//               Normal, Requested and Shutdown are not abnormal);
//   Temporary — never; its spec is removed when it ends, also when a
//               sibling's restart stopped it.
enum class RestartType : std::uint8_t { Permanent, Transient, Temporary };
// When the ending of significant children shuts the supervisor down (OTP 24+).
enum class AutoShutdown : std::uint8_t { Never, AnySignificant, AllSignificant };
enum class ChildKind : std::uint8_t { Worker, Supervisor };

const char* to_string(Strategy s) noexcept;
const char* to_string(RestartType r) noexcept;

// How a child is stopped. For a worker it is the teardown of its OS process
// trees (SpawnOptions::kill_timeout): BrutalKill -> KILL at once,
// Timeout(ms) -> the first signal, KILL after ms, Infinity -> never KILL.
// The actor itself stops cooperatively, after its current handler. For a
// child supervisor, BrutalKill stops it at once (its on_stop stops its own
// children without waiting), Timeout gives its orderly shutdown that long,
// and Infinity waits for it however long it takes.
struct ShutdownSpec {
  enum class Kind : std::uint8_t { BrutalKill, Timeout, Infinity };
  Kind kind = Kind::Timeout;
  std::chrono::milliseconds timeout{5000};

  static constexpr ShutdownSpec brutal_kill() noexcept { return {Kind::BrutalKill, std::chrono::milliseconds(0)}; }
  static constexpr ShutdownSpec after(std::chrono::milliseconds ms) noexcept { return {Kind::Timeout, ms}; }
  static constexpr ShutdownSpec infinity() noexcept {
    return {Kind::Infinity, std::chrono::milliseconds::max()};
  }
  // The value for SpawnOptions::kill_timeout.
  constexpr std::chrono::milliseconds kill_timeout() const noexcept {
    return kind == Kind::BrutalKill ? std::chrono::milliseconds(0)
           : kind == Kind::Infinity ? std::chrono::milliseconds::max()
                                    : timeout;
  }
};

// The time source of intensity windows, backoff delays and health checks.
// Tests inject a ManualClock and advance it; a clock that does not advance by
// itself gets no timers: SupervisorRef::tick() makes the supervisor look at
// what is due.
class SupervisorClock {
 public:
  virtual ~SupervisorClock() = default;
  virtual std::int64_t now_ns() noexcept = 0;
  // False for clocks that move only when told (no timers are armed for them).
  virtual bool advances_by_itself() const noexcept { return true; }
};
// std::chrono::steady_clock.
SupervisorClock& monotonic_clock() noexcept;

// A clock that moves only when the test says so. Thread-safe.
class ManualClock final : public SupervisorClock {
 public:
  std::int64_t now_ns() noexcept override { return now_.load(std::memory_order_acquire); }
  bool advances_by_itself() const noexcept override { return false; }
  void advance(std::chrono::nanoseconds d) noexcept { now_.fetch_add(d.count(), std::memory_order_acq_rel); }

 private:
  std::atomic<std::int64_t> now_{1'000'000'000};
};

// Restart backoff, off while min == 0. The n-th consecutive restart of a
// child waits min * 2^(n-1), at most max, +- jitter * delay. An uptime of at
// least reset_after before a crash starts the count again. The restart after
// give_up_after consecutive ones is not made: the supervisor stops its
// children and stops itself with Shutdown, as when its intensity is
// exceeded (0: never gives up).
struct Backoff {
  std::chrono::nanoseconds min{0};
  std::chrono::nanoseconds max{0};  // 0: no cap
  double jitter = 0.0;              // 0..1, fraction of the delay
  std::chrono::nanoseconds reset_after{0};
  std::uint32_t give_up_after = 0;
};

// Periodic health checks, off while interval == 0: every interval the
// supervisor probes the child (Actor::health_check); `failures_to_restart`
// consecutive Failed reports restart it as a crash would (reason Failed:
// counted toward intensity, Transient children included).
struct HealthCheckSpec {
  std::chrono::nanoseconds interval{0};
  std::uint32_t failures_to_restart = 3;
};

// A child's name: 1..31 bytes.
struct ChildName {
  static constexpr std::size_t kMax = 31;
  char text[kMax + 1] = {};
  std::uint8_t size = 0;
  bool too_long = false;
  ChildName() = default;
  ChildName(std::string_view s) noexcept {  // NOLINT: implicit by design
    too_long = s.size() > kMax;
    size = static_cast<std::uint8_t>(too_long ? kMax : s.size());
    std::memcpy(text, s.data(), size);
    text[size] = '\0';
  }
  std::string_view view() const noexcept { return {text, size}; }
};

class Supervisor;
class SupervisorSpec;
struct SupervisorMsg;

namespace detail {
class SupervisorState;
// The type-erased factory of a child: spawn a fresh instance under the
// supervisor, copy, destroy. The factory itself lives inline in ChildSpec.
// quiet: the child sends no Started (a lone restart; see
// SupervisorState::start_one).
struct ChildFactoryOps {
  Result<ActorId> (*spawn)(const void* factory, const Context<SupervisorMsg>& ctx, const SpawnOptions& options,
                           bool quiet);
  void (*copy)(void* dst, const void* src);
  void (*destroy)(void* p) noexcept;
};
template <class A, class F>
struct ChildFactoryFor {
  static Result<ActorId> spawn(const void* factory, const Context<SupervisorMsg>& ctx, const SpawnOptions& options,
                               bool quiet);
  static void copy(void* dst, const void* src) { new (dst) F(*static_cast<const F*>(src)); }
  static void destroy(void* p) noexcept { static_cast<F*>(p)->~F(); }
  static constexpr ChildFactoryOps ops{&spawn, &copy, &destroy};
};
}  // namespace detail

// One child: an id, how to build it (a factory kept inline, copied for each
// restart), its restart type, shutdown, kind, significance, spawn options,
// backoff and health checks. Fixed size; never allocates.
class ChildSpec {
 public:
  // Bytes a factory (its captures) may take.
  static constexpr std::size_t kFactoryBytes = 96;

  ChildSpec() = default;
  ChildSpec(const ChildSpec& o) { assign(o); }
  ChildSpec& operator=(const ChildSpec& o) {
    if (this != &o) {
      reset();
      assign(o);
    }
    return *this;
  }
  ~ChildSpec() { reset(); }

  // A worker A built from copies of `args` at each (re)start.
  template <class A, class... Args>
  static ChildSpec worker(std::string_view id, Args&&... args) {
    return worker_with<A>(id, [... a = std::decay_t<Args>(std::forward<Args>(args))]() { return A(a...); });
  }
  // A worker A built by `factory()` (copyable; returns an A) at each (re)start.
  template <class A, class F>
  static ChildSpec worker_with(std::string_view id, F factory);
  // A child supervisor running `spec` (which must outlive the parent).
  // Shutdown defaults to Infinity, as in OTP.
  static ChildSpec supervisor(std::string_view id, SupervisorSpec& spec);

  ChildSpec& restart(RestartType r) noexcept { restart_ = r; return *this; }
  ChildSpec& shutdown(ShutdownSpec s) noexcept { shutdown_ = s; return *this; }
  ChildSpec& significant(bool on = true) noexcept { significant_ = on; return *this; }
  ChildSpec& options(const SpawnOptions& o) noexcept { options_ = o; return *this; }
  ChildSpec& backoff(const Backoff& b) noexcept { backoff_ = b; return *this; }
  ChildSpec& health(const HealthCheckSpec& h) noexcept { health_ = h; return *this; }

  std::string_view id() const noexcept { return id_.view(); }
  RestartType restart_type() const noexcept { return restart_; }
  ShutdownSpec shutdown_spec() const noexcept { return shutdown_; }
  ChildKind kind() const noexcept { return kind_; }
  bool is_significant() const noexcept { return significant_; }
  const SpawnOptions& spawn_options() const noexcept { return options_; }
  const Backoff& backoff_spec() const noexcept { return backoff_; }
  const HealthCheckSpec& health_spec() const noexcept { return health_; }
  bool has_factory() const noexcept { return ops_ != nullptr; }

 private:
  friend class detail::SupervisorState;
  void assign(const ChildSpec& o) {
    id_ = o.id_;
    restart_ = o.restart_;
    shutdown_ = o.shutdown_;
    kind_ = o.kind_;
    significant_ = o.significant_;
    options_ = o.options_;
    backoff_ = o.backoff_;
    health_ = o.health_;
    child_spec_ = o.child_spec_;
    if (o.ops_ != nullptr) o.ops_->copy(factory_, o.factory_);
    ops_ = o.ops_;
  }
  void reset() noexcept {
    if (ops_ != nullptr) ops_->destroy(factory_);
    ops_ = nullptr;
  }
  Result<ActorId> spawn(const Context<SupervisorMsg>& ctx, const SpawnOptions& o, bool quiet = false) const {
    return ops_->spawn(factory_, ctx, o, quiet);
  }

  ChildName id_;
  RestartType restart_ = RestartType::Permanent;
  ShutdownSpec shutdown_{};
  ChildKind kind_ = ChildKind::Worker;
  bool significant_ = false;
  SpawnOptions options_{};
  Backoff backoff_{};
  HealthCheckSpec health_{};
  SupervisorSpec* child_spec_ = nullptr;  // a child supervisor's spec
  const detail::ChildFactoryOps* ops_ = nullptr;
  alignas(16) unsigned char factory_[kFactoryBytes];
};

struct SupervisorFlags {
  Strategy strategy = Strategy::OneForOne;
  std::uint32_t intensity = 1;  // restarts allowed within `period`; 0..kMaxIntensity
  std::chrono::nanoseconds period = std::chrono::seconds(5);
  AutoShutdown auto_shutdown = AutoShutdown::Never;
  SupervisorClock* clock = nullptr;  // null: monotonic_clock(); must outlive the spec
};

// What which_children tells of one child.
struct ChildInfo {
  char id[ChildName::kMax + 1];
  ActorId ref;          // invalid while it is not running
  ChildKind kind;
  RestartType restart;
  bool running;
  // Restarts this child caused (its own exit restarted it; siblings that
  // OneForAll or RestForOne restarted with it do not count one), by this
  // supervisor instance.
  std::uint32_t restarts;
};
// count_children, as OTP: specs, running children, and specs per kind.
struct ChildCounts {
  std::uint32_t specs = 0;
  std::uint32_t active = 0;
  std::uint32_t supervisors = 0;
  std::uint32_t workers = 0;
};
// One page of which_children (a reply has a fixed size).
struct ChildPage {
  static constexpr std::uint32_t kSize = 16;
  std::uint32_t total = 0;
  std::uint32_t count = 0;
  ChildInfo items[kSize];
};

// The runtime API as messages: from an actor, Context::ask with these (its
// message type must accept Reply<Result<...>>); from a plain thread, use
// SupervisorRef. Requests that change the children wait while the
// supervisor is busy restarting or stopping children (at most
// SupervisorSpec::kDeferredRequests of them, then Full).
struct StartChildRequest {
  ChildSpec spec;  // for SimpleOneForOne: an instance; its id must be the template's
  ReplyTo<Result<ActorId>> reply;
};
struct TerminateChildRequest {
  ChildName id;       // by id; for SimpleOneForOne leave empty and give `instance`
  ActorId instance;
  ReplyTo<Result<void>> reply;
};
struct RestartChildRequest {
  ChildName id;
  ReplyTo<Result<ActorId>> reply;
};
struct DeleteChildRequest {
  ChildName id;
  ReplyTo<Result<void>> reply;
};
struct WhichChildrenRequest {
  std::uint32_t offset = 0;
  ReplyTo<Result<ChildPage>> reply;
};
struct CountChildrenRequest {
  ReplyTo<Result<ChildCounts>> reply;
};
// Orderly stop: children in reverse order (SimpleOneForOne: in parallel),
// each one's Down awaited, then the supervisor stops with Shutdown. The
// reply (if `reply` is a real one) comes once the children are gone.
struct StopSupervisorRequest {
  ReplyTo<Result<void>> reply;
};
// "Look at what is due now" (backoff delays, health checks).
struct SupervisorTick {};
// The end of a child supervisor's Timeout shutdown: stop it at once.
struct SupervisorKillChild {
  ActorId who;
};

using SupervisorVariant =
    std::variant<Down, Started, HealthReport, SupervisorTick, SupervisorKillChild, StartChildRequest,
                 TerminateChildRequest, RestartChildRequest, DeleteChildRequest, WhichChildrenRequest,
                 CountChildrenRequest, StopSupervisorRequest>;
struct SupervisorMsg : SupervisorVariant {
  using SupervisorVariant::SupervisorVariant;
};

// A plain thread's handle on a running supervisor: each call asks and waits
// (System::ask: not from a worker thread, WouldDeadlock there). A default
// SupervisorRef{} names no System: every call is InvalidArgument. An empty
// child id or ActorId is InvalidArgument too.
struct SupervisorRef {
  System* system = nullptr;
  ActorRef<SupervisorMsg> ref;

  // Adds and starts a child (SimpleOneForOne: an instance of the template).
  Result<ActorId> start_child(const ChildSpec& spec,
                              std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  // SimpleOneForOne: a new instance from the template spec (any other
  // strategy: InvalidArgument, pass a spec).
  Result<ActorId> start_child(std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  // Stops a child (its Down awaited); it stays as a spec, except Temporary
  // children and SimpleOneForOne instances, which go. As in OTP, a
  // SimpleOneForOne instance is named by its ActorId, any other child by
  // its child id; the other way round is InvalidArgument.
  Result<void> terminate_child(std::string_view id,
                               std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  Result<void> terminate_child(ActorId instance,
                               std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  // Starts a terminated child again from its spec.
  Result<ActorId> restart_child(std::string_view id,
                                std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  // Removes a terminated child's spec.
  Result<void> delete_child(std::string_view id,
                            std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  // Fills `out` with the children in start order; returns how many exist
  // (which may exceed out.size()).
  Result<std::uint32_t> which_children(std::span<ChildInfo> out,
                                       std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  Result<ChildCounts> count_children(std::chrono::nanoseconds timeout = std::chrono::seconds(5)) const;
  // Makes the supervisor evaluate due backoff delays and health checks now
  // (for a ManualClock that a test advanced).
  Result<void> tick() const;
  // Orderly stop: children in reverse order, each gone (its process trees
  // too), then the supervisor; returns once it is no longer alive.
  Result<void> stop(std::chrono::nanoseconds timeout = std::chrono::seconds(30)) const;
};

// Spawns a top-level supervisor and waits until each child started, or the
// first failure: then the started ones are stopped in reverse order and the
// error (naming the child) is returned once the supervisor is gone.
Result<SupervisorRef> start_supervisor(System& system, SupervisorSpec& spec,
                                       std::chrono::nanoseconds timeout = std::chrono::seconds(5));

// Capacity fixed here: the child table (max_children), the restart history
// (intensity + 1), and the requests that may wait. Build it before the
// system runs; it must outlive every Supervisor started from it. Only one
// Supervisor runs a spec at a time (a restart of the supervisor reuses it:
// the children given with add() start again, those added at run time are
// forgotten, as in OTP). Not thread-safe: add() before starting (while a
// Supervisor runs the spec, add() is refused: use start_child).
class SupervisorSpec {
 public:
  static constexpr std::uint32_t kDeferredRequests = 16;
  static constexpr std::uint32_t kMaxIntensity = 1u << 20;

  SupervisorSpec(const SupervisorFlags& flags, std::uint32_t max_children);
  ~SupervisorSpec();
  SupervisorSpec(const SupervisorSpec&) = delete;
  SupervisorSpec& operator=(const SupervisorSpec&) = delete;

  // Adds a child to start (in the order added). Full if max_children are
  // there, AlreadyExists for a taken id, InvalidArgument for a bad spec (an
  // id of 0 or over 31 bytes, no factory, a significant Permanent child, a
  // bad backoff, or a second spec of a SimpleOneForOne supervisor: its one
  // spec is the template of start_child).
  Result<void> add(const ChildSpec& child);
  const SupervisorFlags& flags() const noexcept { return flags_; }
  std::uint32_t max_children() const noexcept { return max_children_; }

 private:
  friend class Supervisor;
  friend class detail::SupervisorState;
  friend Result<SupervisorRef> start_supervisor(System&, SupervisorSpec&, std::chrono::nanoseconds);
  SupervisorFlags flags_;
  std::uint32_t max_children_;
  std::unique_ptr<detail::SupervisorState> state_;
};

// The supervisor actor. Spawn it with start_supervisor (top level) or as a
// child (ChildSpec::supervisor). It reports Started to its own supervisor
// only once all its children have started.
class Supervisor final : public Actor<SupervisorMsg> {
 public:
  explicit Supervisor(SupervisorSpec* spec) noexcept : spec_(spec) {}
  void on_start(Context<SupervisorMsg>& ctx) override;
  void on_message(Context<SupervisorMsg>& ctx, SupervisorMsg& msg) override;
  void on_stop(Context<SupervisorMsg>& ctx, StopReason reason) override;
  ErrorAction on_error(Context<SupervisorMsg>& ctx, const Error& e) override;

 private:
  SupervisorSpec* spec_;
  bool owns_ = false;  // this instance holds the spec (one instance at a time)
};

// ---------------------------------------------------------------------------
// Template definitions.

template <class A, class F>
Result<ActorId> detail::ChildFactoryFor<A, F>::spawn(const void* factory, const Context<SupervisorMsg>& ctx,
                                                     const SpawnOptions& options, bool quiet) {
  // As Context::spawn_supervised; the supervisor records the child's
  // failures itself (ActorFailed, named).
  auto r = ctx.system().template spawn_linked<A>(options, F(*static_cast<const F*>(factory)), ctx.self().id, true,
                                                 true, quiet);
  if (!r) return r.error();
  return r->id;
}

template <class A, class F>
ChildSpec ChildSpec::worker_with(std::string_view id, F factory) {
  static_assert(sizeof(F) <= kFactoryBytes, "the factory's captures exceed ChildSpec::kFactoryBytes");
  static_assert(alignof(F) <= 16, "factory alignment above 16 bytes is not supported");
  static_assert(std::is_copy_constructible_v<F>, "a child factory is copied for each restart");
  ChildSpec s;
  s.id_ = ChildName(id);
  new (s.factory_) F(std::move(factory));
  s.ops_ = &detail::ChildFactoryFor<A, F>::ops;
  return s;
}

}  // namespace airssys
