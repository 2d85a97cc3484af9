#pragma once
// The supervisor's state, shared by its sources (src-private):
//   supervisor_spec.cpp      child specs, the spec's tables, the clocks;
//   supervisor.cpp           the operation machine: strategies, intensity,
//                            backoff, health checks, the events it records,
//                            the actor's hooks;
//   supervisor_requests.cpp  message dispatch, the runtime API as messages
//                            (start_child, ...), a stop from outside;
//   supervisor_ref.cpp       SupervisorRef and start_supervisor (plain threads).
// The operation machine itself is described at the top of supervisor.cpp.

#include <airssys/rt/supervisor.hpp>
#include <airssys/arch/wait.hpp>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>

namespace airssys::detail {

using Ctx = Context<SupervisorMsg>;

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

inline bool abnormal(StopReason r) noexcept { return r == StopReason::Failed || r == StopReason::Escalated; }

inline std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t out;
  return __builtin_add_overflow(a, b, &out) ? kNever : out;
}

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
  // Records the noted events (note()), in order, with one reservation of
  // the ring (a restart notes three in one message). Called before anything
  // another thread may act on (a reply, Started, start_state_, the end of a
  // message): whoever hears from the supervisor finds its events recorded.
  void flush_notes(Ctx& ctx) noexcept;

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
    ActorId exited;  // the instance that ended, while phase is Exited (for the events)
    Phase phase = Phase::Stopped;
    bool removed = false;  // a tombstone until compact()
    bool to_stop = false;
    bool to_start = false;
    bool health_kill = false;  // stopped for failed health checks: its end is a crash
    bool probe_out = false;
    bool kill_armed = false;
    // Spawned by a lone restart without a Started (start_one): Running at
    // once; a Down that says it never started is a failed start.
    bool quiet = false;
    bool failed_start = false;  // Exited: it was such a failed start
    StopReason exit_reason = StopReason::Normal;
    std::uint32_t restarts = 0;
    std::uint32_t consecutive = 0;  // restarts since the backoff was last reset
    std::uint32_t health_failures = 0;
    std::int64_t started_at = 0;  // read only when backoff's reset_after or health checks need it
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
  // What the supervisor records into the System's Monitoring ring (see
  // note() for the event each one becomes).
  enum class Note : std::uint8_t {
    ChildStarted, ChildStopped, ChildFailed, ChildRestarted, StrategyApplied, IntensityExceeded
  };
  void note(Ctx& ctx, Note n, const Child& c, ActorId who, std::uint64_t count = 0,
            const Error* error = nullptr) noexcept;
  // The clock, read at most once per message handled: the intensity window,
  // backoff, health checks and the events of one message share that read,
  // and a message that needs none of them (a restart with intensity 0 and
  // no backoff, no health checks, no event) reads nothing. begin_message()
  // forgets it.
  std::int64_t now() noexcept {
    if (now_ == 0) now_ = steady_ ? arch::monotonic_ns() : clock_->now_ns();
    return now_;
  }
  void begin_message() noexcept { now_ = 0; }

  bool simple() const noexcept { return flags_.strategy == Strategy::SimpleOneForOne; }
  static bool live(const Child& c) noexcept {
    return c.phase == Phase::Running || c.phase == Phase::Starting || c.phase == Phase::Stopping;
  }
  Result<void> check_spec(const ChildSpec& spec) const noexcept;
  std::uint32_t find_id(std::string_view id) const noexcept;
  std::uint32_t find_ref(ActorId ref) const noexcept;
  // Marks c a tombstone (when `remove`), dropped by the next compact().
  void set_removed(Child& c, bool remove = true) noexcept {
    c.removed = remove;
    tombstones_ = tombstones_ || remove;
  }
  // Drops tombstones, if any, keeping the order (see drop_tombstones).
  void compact() noexcept {
    if (tombstones_) drop_tombstones();
  }
  void drop_tombstones() noexcept;
  void clear_marks() noexcept;

  void run(Ctx& ctx);
  bool step(Ctx& ctx);
  bool next_work(Ctx& ctx);
  void finish_op(Ctx& ctx);
  void start_one(Ctx& ctx, std::uint32_t i);
  void stop_one(Ctx& ctx, std::uint32_t i);
  void start_failed(Ctx& ctx, std::uint32_t i, const Error& e);
  bool lone_restart(std::uint32_t i) const noexcept;
  void quiet_start_failed(Ctx& ctx, std::uint32_t i, const Down& d);
  void note_exited(Ctx& ctx, Child& c);
  Error start_failure(ActorId who, StopReason reason, Ctx& ctx) const noexcept;
  void handle_exit(Ctx& ctx, std::uint32_t i);
  void begin_restart(Ctx& ctx, std::uint32_t i);
  void apply_restart(Ctx& ctx, std::uint32_t i, std::int64_t delay);
  bool add_restart(std::int64_t now) noexcept;
  // The backoff delay of child i's next restart; false: give up.
  bool backoff_delay(Child& c, std::int64_t& delay) noexcept;
  void begin_shutdown(Ctx& ctx, bool fail_start, ReplyTo<Result<void>> reply);
  void answer_op(Ctx& ctx, const Error& e);
  void poll_due(Ctx& ctx);

  void on_down(Ctx& ctx, const Down& d);
  void on_started(Ctx& ctx, const Started& s);
  void on_health(Ctx& ctx, const HealthReport& h);
  void handle_request(Ctx& ctx, SupervisorMsg& msg);
  void reject(Ctx& ctx, SupervisorMsg& msg, const Error& e);
  // What which_children and count_children say: Running, and for a quiet
  // child (not awaited), once its on_start has returned.
  bool reported_running(const System& sys, const Child& c) const noexcept {
    return c.phase == Phase::Running && (!c.quiet || sys.has_started(c.ref));
  }
  ChildPage page(const System& sys, std::uint32_t offset) const noexcept;
  ChildCounts counts(const System& sys) const noexcept;

  SupervisorFlags flags_;
  SupervisorClock* clock_;
  // clock_ is monotonic_clock(), which reads arch::monotonic_ns(): called
  // directly (no virtual call), and its reads stamp the events too.
  bool steady_ = false;
  std::int64_t now_ = 0;  // this message's clock read; 0: not read yet
  // Events noted and not yet recorded (flush_notes).
  static constexpr std::uint32_t kNoteBuffer = 4;
  MonitorEvent notes_[kNoteBuffer];
  std::uint32_t notes_len_ = 0;
  std::uint32_t max_children_;
  ActorRef<SupervisorMsg> self_;
  // The specs given with add() (a restarted supervisor starts from these),
  // and the running table.
  std::unique_ptr<ChildSpec[]> statics_;
  std::uint32_t static_count_ = 0;
  std::unique_ptr<Child[]> children_;
  std::uint32_t count_ = 0;
  bool tombstones_ = false;  // some child is `removed` (set_removed): compact() has work
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

}  // namespace airssys::detail
