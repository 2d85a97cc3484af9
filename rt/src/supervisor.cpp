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

#include <airssys/rt/supervisor.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

namespace airssys {

const char* to_string(Strategy s) noexcept {
  switch (s) {
    case Strategy::OneForOne: return "one_for_one";
    case Strategy::OneForAll: return "one_for_all";
    case Strategy::RestForOne: return "rest_for_one";
    case Strategy::SimpleOneForOne: return "simple_one_for_one";
  }
  return "?";
}

const char* to_string(RestartType r) noexcept {
  switch (r) {
    case RestartType::Permanent: return "permanent";
    case RestartType::Transient: return "transient";
    case RestartType::Temporary: return "temporary";
  }
  return "?";
}

namespace {

class SteadyClock final : public SupervisorClock {
 public:
  std::int64_t now_ns() noexcept override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

bool abnormal(StopReason r) noexcept { return r == StopReason::Failed || r == StopReason::Escalated; }

std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t out;
  return __builtin_add_overflow(a, b, &out) ? kNever : out;
}

using Ctx = Context<SupervisorMsg>;

}  // namespace

SupervisorClock& monotonic_clock() noexcept {
  static SteadyClock clock;
  return clock;
}

namespace detail {

// start_state_ values, for start_supervisor.
constexpr std::uint8_t kStartPending = 0;
constexpr std::uint8_t kStartOk = 1;
constexpr std::uint8_t kStartFailed = 2;

class SupervisorState {
 public:
  SupervisorState(const SupervisorFlags& flags, std::uint32_t max_children);

  Result<void> add(const ChildSpec& spec);
  void on_start(Ctx& ctx);
  void on_message(Ctx& ctx, SupervisorMsg& msg);
  void on_stop(Ctx& ctx, StopReason reason);

  // Written by the supervisor (start_error_ first, then start_state_ with
  // release), read by start_supervisor and by a parent supervisor after
  // this one's Down (which the write happens before).
  std::atomic<std::uint8_t> start_state_{kStartPending};
  Error start_error_;
  // One Supervisor instance per spec at a time.
  std::atomic<bool> in_use_{false};
  Error flags_error_;

 private:
  enum class Phase : std::uint8_t { Stopped, Starting, Running, Stopping, Exited };
  struct Child {
    ChildSpec spec;
    ActorId ref;
    Phase phase = Phase::Stopped;
    bool removed = false;  // a tombstone until compact()
    bool to_stop = false;
    bool to_start = false;
    bool health_kill = false;  // stopped for failed health checks: its end is a crash
    bool probe_out = false;
    bool kill_armed = false;
    StopReason exit_reason = StopReason::Normal;
    std::uint32_t restarts = 0;
    std::uint32_t consecutive = 0;  // restarts since the backoff was last reset
    std::uint32_t health_failures = 0;
    std::int64_t started_at = 0;
    std::int64_t next_probe = kNever;
    TimerId kill_timer;
  };
  enum class OpKind : std::uint8_t { None, InitialStart, Restart, Shutdown, Terminate, StartChild, RestartChild };
  enum class ReplyKind : std::uint8_t { None, Id, Void };
  struct Op {
    OpKind kind = OpKind::None;
    bool stopping = false;    // in the stop phase
    bool fail_start = false;  // a Shutdown that rolls back a failed start
    std::int64_t not_before = 0;
    std::uint32_t target = ~0u;
    ReplyKind reply_kind = ReplyKind::None;
    ReplyTo<Result<ActorId>> reply_id;
    ReplyTo<Result<void>> reply_void;
  };
  // Monitoring call sites (the lead wires these to the Monitoring ring).
  enum class Note : std::uint8_t {
    ChildStarted, ChildStopped, ChildFailed, ChildRestarted, StrategyApplied, IntensityExceeded
  };
  void note(Note, const Child*, StopReason) noexcept {}

  bool simple() const noexcept { return flags_.strategy == Strategy::SimpleOneForOne; }
  static bool live(const Child& c) noexcept {
    return c.phase == Phase::Running || c.phase == Phase::Starting || c.phase == Phase::Stopping;
  }
  Result<void> check_spec(const ChildSpec& spec) const noexcept;
  std::uint32_t find_id(std::string_view id) const noexcept;
  std::uint32_t find_ref(ActorId ref) const noexcept;
  void compact() noexcept;
  void clear_marks() noexcept;

  void run(Ctx& ctx);
  bool step(Ctx& ctx);
  bool next_work(Ctx& ctx);
  void finish_op(Ctx& ctx);
  void start_one(Ctx& ctx, std::uint32_t i);
  void stop_one(Ctx& ctx, std::uint32_t i);
  void start_failed(Ctx& ctx, std::uint32_t i, const Error& e);
  void handle_exit(Ctx& ctx, std::uint32_t i);
  void apply_restart(Ctx& ctx, std::uint32_t i, std::int64_t delay);
  bool add_restart(std::int64_t now) noexcept;
  // The backoff delay of child i's next restart; false: give up.
  bool backoff_delay(Child& c, std::int64_t now, std::int64_t& delay) noexcept;
  void begin_shutdown(Ctx& ctx, bool fail_start, ReplyTo<Result<void>> reply);
  void answer_op(Ctx& ctx, const Error& e);
  void poll_due(Ctx& ctx);

  void on_down(Ctx& ctx, const Down& d);
  void on_started(Ctx& ctx, const Started& s);
  void on_health(Ctx& ctx, const HealthReport& h);
  void handle_request(Ctx& ctx, SupervisorMsg& msg);
  void reject(Ctx& ctx, SupervisorMsg& msg, const Error& e);
  ChildPage page(std::uint32_t offset) const noexcept;
  ChildCounts counts() const noexcept;

  SupervisorFlags flags_;
  SupervisorClock* clock_;
  std::uint32_t max_children_;
  ActorRef<SupervisorMsg> self_;
  // The specs given with add() (a restarted supervisor starts from these),
  // and the running table.
  std::unique_ptr<ChildSpec[]> statics_;
  std::uint32_t static_count_ = 0;
  std::unique_ptr<Child[]> children_;
  std::uint32_t count_ = 0;
  ChildSpec template_;  // SimpleOneForOne
  bool has_template_ = false;
  // Restart times within the period, oldest first (intensity + 1 places).
  std::unique_ptr<std::int64_t[]> history_;
  std::uint32_t history_cap_ = 0;
  std::uint32_t history_len_ = 0;
  std::unique_ptr<SupervisorMsg[]> deferred_;
  std::uint32_t deferred_head_ = 0;
  std::uint32_t deferred_len_ = 0;
  Op op_;
  bool stopped_self_ = false;
  std::uint32_t health_children_ = 0;  // running children with health checks
  bool timed_ = false;  // a child with health checks has started (poll_due has work)
  std::int64_t armed_due_ = kNever;
  TimerId timer_;
  std::uint64_t rng_ = 0x9e3779b97f4a7c15ull;
};

SupervisorState::SupervisorState(const SupervisorFlags& flags, std::uint32_t max_children)
    : flags_(flags),
      clock_(flags.clock != nullptr ? flags.clock : &monotonic_clock()),
      max_children_(max_children) {
  if (flags.intensity > SupervisorSpec::kMaxIntensity) {
    flags_error_ = Error::make(Errc::InvalidArgument, "SupervisorFlags::intensity = %u (at most %u)",
                               flags.intensity, SupervisorSpec::kMaxIntensity);
    flags_.intensity = 0;
  } else if (flags.period.count() <= 0) {
    flags_error_ = Error::make(Errc::InvalidArgument, "SupervisorFlags::period = %lld ns (must be positive)",
                               static_cast<long long>(flags.period.count()));
  } else if (max_children == 0) {
    flags_error_ = Error::make(Errc::InvalidArgument, "SupervisorSpec max_children = 0 (must be at least 1)");
  }
  statics_ = std::make_unique<ChildSpec[]>(max_children_);
  children_ = std::make_unique<Child[]>(max_children_);
  history_cap_ = flags_.intensity + 1;
  history_ = std::make_unique<std::int64_t[]>(history_cap_);
  deferred_ = std::make_unique<SupervisorMsg[]>(SupervisorSpec::kDeferredRequests);
  rng_ ^= reinterpret_cast<std::uintptr_t>(this);
}

Result<void> SupervisorState::check_spec(const ChildSpec& spec) const noexcept {
  const auto id = spec.id();
  if (id.empty() || spec.id_.too_long)
    return Error::make(Errc::InvalidArgument, "child id '%.*s' must be 1..31 bytes",
                       static_cast<int>(id.size()), id.data());
  if (!spec.has_factory())
    return Error::make(Errc::InvalidArgument, "child '%.*s' has no factory (use ChildSpec::worker)",
                       static_cast<int>(id.size()), id.data());
  if (spec.is_significant() && spec.restart_type() == RestartType::Permanent)
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' is significant and Permanent (significant needs Transient or Temporary)",
                       static_cast<int>(id.size()), id.data());
  const Backoff& b = spec.backoff_spec();
  if (b.min.count() < 0 || b.max.count() < 0 || (b.max.count() > 0 && b.max < b.min) || !(b.jitter >= 0.0) ||
      b.jitter > 1.0 || b.reset_after.count() < 0)
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' has a bad backoff (needs 0 <= min <= max, jitter in 0..1)",
                       static_cast<int>(id.size()), id.data());
  if (spec.health_spec().interval.count() < 0 ||
      (spec.health_spec().interval.count() > 0 && spec.health_spec().failures_to_restart == 0))
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' has a bad health check (interval >= 0, failures_to_restart >= 1)",
                       static_cast<int>(id.size()), id.data());
  if (spec.child_spec_ != nullptr && spec.child_spec_->state_.get() == this)
    return Error::make(Errc::InvalidArgument, "child '%.*s' is the supervisor's own spec",
                       static_cast<int>(id.size()), id.data());
  return {};
}

Result<void> SupervisorState::add(const ChildSpec& spec) {
  if (flags_error_.code() != Errc::Ok) return flags_error_;
  // acquire: pairs with the release in Supervisor::on_stop.
  if (in_use_.load(std::memory_order_acquire))
    return Error::make(Errc::InvalidArgument, "child '%.*s': add() while a Supervisor runs this spec (use start_child)",
                       static_cast<int>(spec.id().size()), spec.id().data());
  auto ok = check_spec(spec);
  if (!ok) return ok;
  const auto id = spec.id();
  if (simple()) {
    if (has_template_)
      return Error::make(Errc::InvalidArgument,
                         "child '%.*s': a SimpleOneForOne supervisor takes one spec, the template ('%s')",
                         static_cast<int>(id.size()), id.data(), template_.id_.text);
    template_ = spec;
    has_template_ = true;
    return {};
  }
  for (std::uint32_t i = 0; i < static_count_; ++i)
    if (statics_[i].id() == id)
      return Error::make(Errc::AlreadyExists, "child '%.*s' already exists", static_cast<int>(id.size()),
                         id.data());
  if (static_count_ == max_children_)
    return Error::make(Errc::Full, "supervisor is full (%u children); child '%.*s' not added", max_children_,
                       static_cast<int>(id.size()), id.data());
  statics_[static_count_++] = spec;
  return {};
}

std::uint32_t SupervisorState::find_id(std::string_view id) const noexcept {
  for (std::uint32_t i = 0; i < count_; ++i)
    if (!children_[i].removed && children_[i].spec.id() == id) return i;
  return ~0u;
}

std::uint32_t SupervisorState::find_ref(ActorId ref) const noexcept {
  if (!ref.valid()) return ~0u;
  for (std::uint32_t i = 0; i < count_; ++i)
    if (!children_[i].removed && children_[i].ref == ref) return i;
  return ~0u;
}

// Drops tombstones, keeping the order. Only while no operation runs: an
// operation's marks and target are table indices.
void SupervisorState::compact() noexcept {
  std::uint32_t out = 0;
  for (std::uint32_t i = 0; i < count_; ++i) {
    if (children_[i].removed) continue;
    if (out != i) children_[out] = children_[i];
    ++out;
  }
  for (std::uint32_t i = out; i < count_; ++i) children_[i] = Child{};
  count_ = out;
}

void SupervisorState::clear_marks() noexcept {
  for (std::uint32_t i = 0; i < count_; ++i) children_[i].to_stop = children_[i].to_start = false;
}

void SupervisorState::on_start(Ctx& ctx) {
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
            c.phase = Phase::Stopped;
            if (c.spec.restart_type() == RestartType::Temporary || simple()) c.removed = !c.to_start;
          }
        }
      }
      if (issued) return false;
      op_.stopping = false;
    }
    for (std::uint32_t i = 0; i < count_; ++i)
      if (children_[i].phase == Phase::Starting) return false;  // its Started comes
    if (op_.not_before > 0 && clock_->now_ns() < op_.not_before) return false;  // backoff; poll_due arms the tick
    std::uint32_t next = ~0u;
    for (std::uint32_t i = 0; i < count_ && next == ~0u; ++i)
      if (children_[i].to_start && !children_[i].removed) next = i;
    if (next == ~0u) return true;
    start_one(ctx, next);
    // A failed spawn changed the operation (rollback, retry, reply): look again.
  }
}

void SupervisorState::start_one(Ctx& ctx, std::uint32_t i) {
  Child& c = children_[i];
  c.to_start = false;
  SpawnOptions o = c.spec.spawn_options();
  o.kill_timeout = c.spec.shutdown_spec().kill_timeout();
  auto r = c.spec.spawn(ctx, o);
  if (!r) {
    start_failed(ctx, i, r.error());
    return;
  }
  // spawn_supervised monitors the child from its birth: its Started, or
  // its Down (once its process trees are gone), comes.
  c.ref = *r;
  c.phase = Phase::Starting;
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
  (void)ctx.system().stop(c.ref);
}

void SupervisorState::start_failed(Ctx& ctx, std::uint32_t i, const Error& e) {
  Child& c = children_[i];
  c.phase = Phase::Stopped;
  c.ref = ActorId{};
  c.to_start = false;
  const auto id = c.spec.id();
  note(Note::ChildFailed, &c, StopReason::Failed);
  switch (op_.kind) {
    case OpKind::InitialStart: {
      start_error_ = Error::make(e.code() == Errc::Ok ? Errc::Failed : e.code(), "child '%.*s' failed to start: %s",
                                 static_cast<int>(id.size()), id.data(), e.message());
      begin_shutdown(ctx, true, ReplyTo<Result<void>>{});
      return;
    }
    case OpKind::StartChild:
      c.removed = true;  // as OTP: a child that does not start is not added
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
      const std::int64_t now = clock_->now_ns();
      if (!add_restart(now)) {
        note(Note::IntensityExceeded, &c, StopReason::Failed);
        begin_shutdown(ctx, false, ReplyTo<Result<void>>{});
        return;
      }
      ++c.restarts;
      std::int64_t delay = 0;
      if (!backoff_delay(c, now, delay)) {
        begin_shutdown(ctx, false, ReplyTo<Result<void>>{});
        return;
      }
      apply_restart(ctx, i, delay);
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

bool SupervisorState::backoff_delay(Child& c, std::int64_t now, std::int64_t& delay) noexcept {
  delay = 0;
  const Backoff& b = c.spec.backoff_spec();
  if (b.min.count() <= 0) return true;  // off: nothing to compute
  if (b.reset_after.count() > 0 && c.started_at != 0 && now - c.started_at >= b.reset_after.count())
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

// Child i ended by itself (or failed its health checks) and no operation runs.
void SupervisorState::handle_exit(Ctx& ctx, std::uint32_t i) {
  Child& c = children_[i];
  const StopReason r = c.exit_reason;
  c.phase = Phase::Stopped;
  c.ref = ActorId{};
  note(abnormal(r) ? Note::ChildFailed : Note::ChildStopped, &c, r);
  const RestartType rt = c.spec.restart_type();
  const bool restart = rt == RestartType::Permanent || (rt == RestartType::Transient && abnormal(r));
  if (!restart) {
    if (rt == RestartType::Temporary || simple()) c.removed = true;
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
  const std::int64_t now = clock_->now_ns();
  if (!add_restart(now)) {
    note(Note::IntensityExceeded, &c, r);
    begin_shutdown(ctx, false, ReplyTo<Result<void>>{});
    return;
  }
  ++c.restarts;
  std::int64_t delay = 0;
  if (!backoff_delay(c, now, delay)) {
    begin_shutdown(ctx, false, ReplyTo<Result<void>>{});  // backoff gave up: escalate
    return;
  }
  apply_restart(ctx, i, delay);
}

void SupervisorState::apply_restart(Ctx& ctx, std::uint32_t i, std::int64_t delay) {
  (void)ctx;
  note(Note::StrategyApplied, &children_[i], StopReason::Failed);
  op_ = Op{};
  op_.kind = OpKind::Restart;
  op_.target = i;
  op_.not_before = delay > 0 ? add_sat(clock_->now_ns(), delay) : 0;
  children_[i].to_start = true;
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
    }
  }
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
    if (c.phase == Phase::Exited) c.phase = Phase::Stopped;
  }
}

void SupervisorState::answer_op(Ctx& ctx, const Error& e) {
  if (op_.reply_kind == ReplyKind::Id && op_.reply_id.index != ~0u)
    (void)ctx.reply(op_.reply_id, Result<ActorId>(e));
  if (op_.reply_kind == ReplyKind::Void && op_.reply_void.index != ~0u)
    (void)ctx.reply(op_.reply_void, Result<void>(e));
  op_.reply_kind = ReplyKind::None;
}

void SupervisorState::finish_op(Ctx& ctx) {
  const Op op = op_;
  op_ = Op{};
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
      if (c.spec.restart_type() == RestartType::Temporary || simple()) c.removed = true;
      if (op.reply_void.index != ~0u) (void)ctx.reply(op.reply_void, Result<void>());
      break;
    }
    case OpKind::StartChild:
    case OpKind::RestartChild:
      if (op.reply_id.index != ~0u) (void)ctx.reply(op.reply_id, Result<ActorId>(children_[op.target].ref));
      break;
    case OpKind::Restart:
      note(Note::ChildRestarted, &children_[op.target], StopReason::Failed);
      break;
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
        (void)ctx.system().stop(c.ref);
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
  const std::int64_t now = clock_->now_ns();
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
      note(Note::ChildStopped, &c, StopReason::Shutdown);
      if (c.spec.restart_type() == RestartType::Temporary || (simple() && !c.to_start)) c.removed = true;
      break;
    case Phase::Starting: {
      Error e = Error::make(Errc::Failed, "stopped before it started (%s)", to_string(d.reason));
      if (c.spec.kind() == ChildKind::Supervisor && c.spec.child_spec_ != nullptr) {
        auto* sub = c.spec.child_spec_->state_.get();
        if (sub->start_state_.load(std::memory_order_acquire) == kStartFailed) e = sub->start_error_;
      }
      start_failed(ctx, i, e);
      break;
    }
    case Phase::Running: {
      const StopReason r = c.health_kill ? StopReason::Failed : d.reason;
      c.ref = ActorId{};
      if (op_.kind != OpKind::None && c.to_stop) {
        // It ended by itself just before this operation would have stopped it.
        c.to_stop = false;
        c.phase = Phase::Stopped;
        note(Note::ChildStopped, &c, r);
        if (c.spec.restart_type() == RestartType::Temporary || (simple() && !c.to_start)) c.removed = true;
      } else {
        c.phase = Phase::Exited;
        c.exit_reason = r;
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
  c.started_at = clock_->now_ns();
  const std::int64_t interval = c.spec.health_spec().interval.count();
  c.next_probe = interval > 0 ? add_sat(c.started_at, interval) : kNever;
  note(Note::ChildStarted, &c, StopReason::Normal);
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

void SupervisorState::reject(Ctx& ctx, SupervisorMsg& msg, const Error& e) {
  SupervisorVariant& v = msg;
  if (auto* r = std::get_if<StartChildRequest>(&v)) (void)ctx.reply(r->reply, Result<ActorId>(e));
  if (auto* r = std::get_if<RestartChildRequest>(&v)) (void)ctx.reply(r->reply, Result<ActorId>(e));
  if (auto* r = std::get_if<TerminateChildRequest>(&v)) (void)ctx.reply(r->reply, Result<void>(e));
  if (auto* r = std::get_if<DeleteChildRequest>(&v)) (void)ctx.reply(r->reply, Result<void>(e));
}

// A request that changes the children, with no operation running.
void SupervisorState::handle_request(Ctx& ctx, SupervisorMsg& msg) {
  SupervisorVariant& v = msg;
  if (auto* r = std::get_if<StartChildRequest>(&v)) {
    // SimpleOneForOne: an empty spec asks for an instance of the template.
    const ChildSpec& spec = simple() && has_template_ && !r->spec.has_factory() && r->spec.id().empty() ? template_ : r->spec;
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
      i = find_ref(r->instance);
      if (i == ~0u) {
        (void)ctx.reply(r->reply, Result<void>(Error::make(Errc::NotFound, "actor #%u is not a child of this supervisor",
                                                           r->instance.slot)));
        return;
      }
    } else {
      i = find_id(r->id.view());
      if (i == ~0u) {
        (void)ctx.reply(r->reply, Result<void>(Error::make(Errc::NotFound, "no child '%s' in this supervisor", r->id.text)));
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
    children_[i].removed = true;
    compact();
    (void)ctx.reply(r->reply, Result<void>());
    return;
  }
}

ChildPage SupervisorState::page(std::uint32_t offset) const noexcept {
  ChildPage p;
  for (std::uint32_t i = 0; i < count_; ++i) {
    const Child& c = children_[i];
    if (c.removed) continue;
    const std::uint32_t n = p.total++;
    if (n < offset || p.count == ChildPage::kSize) continue;
    ChildInfo& info = p.items[p.count++];
    std::memcpy(info.id, c.spec.id_.text, sizeof(info.id));
    info.ref = c.phase == Phase::Running ? c.ref : ActorId{};
    info.kind = c.spec.kind();
    info.restart = c.spec.restart_type();
    info.running = c.phase == Phase::Running;
    info.restarts = c.restarts;
  }
  return p;
}

ChildCounts SupervisorState::counts() const noexcept {
  ChildCounts n;
  for (std::uint32_t i = 0; i < count_; ++i) {
    const Child& c = children_[i];
    if (c.removed) continue;
    ++n.specs;
    if (c.phase == Phase::Running) ++n.active;
    if (c.spec.kind() == ChildKind::Supervisor) ++n.supervisors; else ++n.workers;
  }
  if (simple()) n.specs = has_template_ ? 1 : 0;  // as OTP: the one template
  return n;
}

void SupervisorState::on_message(Ctx& ctx, SupervisorMsg& msg) {
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
      (void)ctx.system().stop(k->who);  // its orderly shutdown ran out of time
    }
    return;
  }
  if (auto* r = std::get_if<WhichChildrenRequest>(&v)) {
    (void)ctx.reply(r->reply, Result<ChildPage>(page(r->offset)));
    return;
  }
  if (auto* r = std::get_if<CountChildrenRequest>(&v)) {
    (void)ctx.reply(r->reply, Result<ChildCounts>(counts()));
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
  // Stopped from outside (System::stop, shutdown, a failure) with children
  // left: stop them all now, last first. They stop after their current
  // handler; nothing waits for them here (see docs/supervision.md).
  for (std::uint32_t k = count_; k-- > 0;) {
    Child& c = children_[k];
    if (c.kill_armed) (void)ctx.cancel(c.kill_timer);
    c.kill_armed = false;
    if (!c.removed && live(c)) (void)ctx.system().stop(c.ref);
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

}  // namespace detail

// ---------------------------------------------------------------------------

ChildSpec ChildSpec::supervisor(std::string_view id, SupervisorSpec& spec) {
  ChildSpec s = worker_with<Supervisor>(id, [p = &spec] { return Supervisor(p); });
  s.kind_ = ChildKind::Supervisor;
  s.shutdown_ = ShutdownSpec::infinity();
  s.child_spec_ = &spec;
  return s;
}

SupervisorSpec::SupervisorSpec(const SupervisorFlags& flags, std::uint32_t max_children)
    : flags_(flags), max_children_(max_children),
      state_(std::make_unique<detail::SupervisorState>(flags, max_children)) {}

SupervisorSpec::~SupervisorSpec() {
  // A running Supervisor reads its spec at every message: destroying the
  // spec under it would be a use-after-free, so the misuse is named instead.
  if (state_ != nullptr && state_->in_use_.load(std::memory_order_acquire)) {
    std::fputs("airssys: SupervisorSpec destroyed while a Supervisor runs it; stop the supervisor (or the "
               "System) first\n",
               stderr);
    std::abort();
  }
}

Result<void> SupervisorSpec::add(const ChildSpec& child) { return state_->add(child); }

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
}

void Supervisor::on_message(Context<SupervisorMsg>& ctx, SupervisorMsg& msg) {
  if (owns_) spec_->state_->on_message(ctx, msg);
}

void Supervisor::on_stop(Context<SupervisorMsg>& ctx, StopReason reason) {
  if (!owns_) return;
  spec_->state_->on_stop(ctx, reason);
  owns_ = false;
  // release: the next instance (a restart) sees this one's last writes.
  spec_->state_->in_use_.store(false, std::memory_order_release);
}

ErrorAction Supervisor::on_error(Context<SupervisorMsg>&, const Error& e) {
  // A child that escalated also stops with Escalated: its Down carries that,
  // and the strategy handles it there.
  return e.code() == Errc::ChildEscalated ? ErrorAction::Resume : ErrorAction::Stop;
}

// ---------------------------------------------------------------------------
// SupervisorRef

namespace {

template <class T>
Result<T> flatten(Result<Result<T>>&& r) {
  if (!r) return r.error();
  return std::move(*r);
}

Result<void> flatten(Result<Result<void>>&& r) {
  if (!r) return r.error();
  return *r;
}

bool wait_gone(System& sys, ActorId id, std::chrono::steady_clock::time_point until) {
  while (sys.alive(id)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds t) {
  const auto now = std::chrono::steady_clock::now();
  if (t > std::chrono::hours(24 * 365)) return std::chrono::steady_clock::time_point::max();
  return now + t;
}

}  // namespace

Result<ActorId> SupervisorRef::start_child(const ChildSpec& spec, std::chrono::nanoseconds timeout) const {
  return flatten(system->ask<Result<ActorId>>(
      ref, [&spec](ReplyTo<Result<ActorId>> r) { return SupervisorMsg(StartChildRequest{spec, r}); }, timeout));
}

Result<ActorId> SupervisorRef::start_child(std::chrono::nanoseconds timeout) const {
  // An empty spec stands for the template, which lives in the supervisor.
  return flatten(system->ask<Result<ActorId>>(
      ref, [](ReplyTo<Result<ActorId>> r) { return SupervisorMsg(StartChildRequest{ChildSpec{}, r}); }, timeout));
}

Result<void> SupervisorRef::terminate_child(std::string_view id, std::chrono::nanoseconds timeout) const {
  return flatten(system->ask<Result<void>>(
      ref, [id](ReplyTo<Result<void>> r) { return SupervisorMsg(TerminateChildRequest{ChildName(id), ActorId{}, r}); },
      timeout));
}

Result<void> SupervisorRef::terminate_child(ActorId instance, std::chrono::nanoseconds timeout) const {
  return flatten(system->ask<Result<void>>(
      ref, [instance](ReplyTo<Result<void>> r) { return SupervisorMsg(TerminateChildRequest{ChildName{}, instance, r}); },
      timeout));
}

Result<ActorId> SupervisorRef::restart_child(std::string_view id, std::chrono::nanoseconds timeout) const {
  return flatten(system->ask<Result<ActorId>>(
      ref, [id](ReplyTo<Result<ActorId>> r) { return SupervisorMsg(RestartChildRequest{ChildName(id), r}); }, timeout));
}

Result<void> SupervisorRef::delete_child(std::string_view id, std::chrono::nanoseconds timeout) const {
  return flatten(system->ask<Result<void>>(
      ref, [id](ReplyTo<Result<void>> r) { return SupervisorMsg(DeleteChildRequest{ChildName(id), r}); }, timeout));
}

Result<std::uint32_t> SupervisorRef::which_children(std::span<ChildInfo> out, std::chrono::nanoseconds timeout) const {
  std::uint32_t offset = 0;
  for (;;) {
    auto p = flatten(system->ask<Result<ChildPage>>(
        ref, [offset](ReplyTo<Result<ChildPage>> r) { return SupervisorMsg(WhichChildrenRequest{offset, r}); },
        timeout));
    if (!p) return p.error();
    for (std::uint32_t k = 0; k < p->count && offset + k < out.size(); ++k) out[offset + k] = p->items[k];
    offset += p->count;
    if (p->count == 0 || offset >= p->total || offset >= out.size()) return p->total;
  }
}

Result<ChildCounts> SupervisorRef::count_children(std::chrono::nanoseconds timeout) const {
  return flatten(system->ask<Result<ChildCounts>>(
      ref, [](ReplyTo<Result<ChildCounts>> r) { return SupervisorMsg(CountChildrenRequest{r}); }, timeout));
}

Result<void> SupervisorRef::tick() const { return system->post(ref, SupervisorTick{}); }

Result<void> SupervisorRef::stop(std::chrono::nanoseconds timeout) const {
  const auto until = deadline_after(timeout);
  auto r = flatten(system->ask<Result<void>>(
      ref, [](ReplyTo<Result<void>> to) { return SupervisorMsg(StopSupervisorRequest{to}); }, timeout));
  if (!r && r.code() != Errc::ShuttingDown) return r;
  if (!wait_gone(*system, ref.id, until))
    return Error::make(Errc::Timeout, "supervisor #%u did not stop in time", ref.id.slot);
  return {};
}

Result<SupervisorRef> start_supervisor(System& system, SupervisorSpec& spec, std::chrono::nanoseconds timeout) {
  detail::SupervisorState& s = *spec.state_;
  if (s.flags_error_.code() != Errc::Ok) return s.flags_error_;
  if (s.in_use_.load(std::memory_order_acquire))
    return Error::make(Errc::AlreadyExists, "this SupervisorSpec already runs a supervisor");
  s.start_state_.store(detail::kStartPending, std::memory_order_relaxed);
  const auto until = deadline_after(timeout);
  auto sup = system.spawn_with<Supervisor>(SpawnOptions{}, [p = &spec] { return Supervisor(p); });
  if (!sup) return sup.error();
  std::uint8_t state;
  while ((state = s.start_state_.load(std::memory_order_acquire)) == detail::kStartPending) {
    if (std::chrono::steady_clock::now() > until) {
      (void)system.stop(*sup);
      (void)wait_gone(system, *sup, std::chrono::steady_clock::now() + std::chrono::seconds(30));
      return Error::make(Errc::Timeout, "supervisor #%u did not start its children within %lld ms", sup->id.slot,
                         static_cast<long long>(timeout.count() / 1'000'000));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (state == detail::kStartFailed) {
    // The rollback is done; wait for the supervisor itself, so the spec is free.
    (void)wait_gone(system, *sup, std::chrono::steady_clock::now() + std::chrono::seconds(30));
    return s.start_error_;
  }
  return SupervisorRef{&system, *sup};
}

}  // namespace airssys
