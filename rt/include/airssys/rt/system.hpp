#pragma once
// System: the runtime. Owns the workers, the actor slots, every pool, and
// one object per concept: each worker's TimerWheel (timers.hpp), the
// AskTable (detail/asks.hpp), the Registry, the Broker and the ProcessSets
// (detail/process_sets.hpp). Its own code is split by concept too:
// system.cpp (build, validate, stats), send.cpp (admission, scheduling;
// the fast path is inline below), worker.cpp (the worker loop),
// lifecycle.cpp (spawn, stop, failure, finalisation), shutdown.cpp.
//
// Including this header gives a user everything: actors, Context, the
// registry, the broker and the process types.

#include <airssys/error.hpp>
#include <airssys/rt/actor.hpp>
#include <airssys/rt/broker.hpp>
#include <airssys/rt/config.hpp>
#include <airssys/rt/fwd.hpp>
#include <airssys/rt/messages.hpp>
#include <airssys/rt/monitoring.hpp>
#include <airssys/rt/process.hpp>
#include <airssys/rt/registry.hpp>
#include <airssys/rt/timers.hpp>
#include <airssys/rt/detail/asks.hpp>
#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/pool.hpp>
#include <airssys/rt/detail/process_sets.hpp>
#include <airssys/rt/detail/worker.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

namespace airssys {

// Where and how to spawn an actor, and how its OS process trees are torn
// down when it stops, crashes or restarts: `first_signal` to each managed
// tree, then KILL after `kill_timeout` if the tree has not emptied (0: KILL
// at once; milliseconds::max(): never KILL; negative: the system's
// SystemConfig::process_kill_timeout).
struct SpawnOptions {
  int worker = -1;                    // home worker; -1: round robin
  std::uint32_t mailbox_capacity = 0; // 0: SystemConfig::mailbox_capacity; else 1..kMaxMailboxCapacity
  std::chrono::milliseconds kill_timeout{-1};
  int first_signal = 15;              // SIGTERM; 1..64
};

// Counters of one actor. `received` counts every message that entered the
// mailbox, `handled` every one taken out, `dropped` the sends refused by a
// full mailbox under Backpressure::Drop; `queued` is what waits now and
// `high_water` the most that ever waited.
struct ActorStats {
  std::uint64_t received = 0;
  std::uint64_t handled = 0;
  std::uint64_t dropped = 0;
  std::uint32_t queued = 0;
  std::uint32_t high_water = 0;
};

// What a system holds of its pools, for leak checks: message blocks taken
// (queued or in-flight messages, armed timers, uncollected replies, and the
// blocks a worker keeps cached) and ask entries still outstanding. Exact
// while nothing sends, replies or arms a timer. After shutdown() returned
// every count is 0, except a reply that reached a plain thread's
// System::ask during shutdown: that thread still holds it until it takes it.
// Not meant for hot paths.
struct PoolUsage {
  std::uint64_t message_blocks = 0;
  std::uint32_t pending_asks = 0;
};

namespace detail {

template <class A, class F>
struct ChildFactoryFor;

// A System's identity among the Systems alive in the process: an 8-bit tag,
// distinct for up to 256 live Systems (beyond that, tags are shared), which
// is the top byte of the generation every slot starts at. Generations then
// count up by one per reuse of a slot, as before. An ActorId carries the
// generation, so an id of one System used with another is refused as Dead
// by the generation check that every send, stop and lookup already makes:
// it could only match if that slot had been reused 2^24 times more in one
// System than in the other.
class SystemTag {
 public:
  SystemTag() noexcept;
  ~SystemTag();
  SystemTag(const SystemTag&) = delete;
  SystemTag& operator=(const SystemTag&) = delete;
  std::uint32_t first_gen() const noexcept { return (tag_ << 24) | 1; }
  // The same for the 30-bit generations of pending asks and timer entries
  // (their state word keeps a phase in the low two bits), so that a ReplyTo
  // or TimerId of one System is refused by another.
  std::uint32_t first_gen30() const noexcept { return (tag_ << 22) | 1; }

 private:
  std::uint32_t tag_ = 0;
  bool held_ = false;
};

}  // namespace detail

// The actor runtime. Construction reserves every pool and starts the
// workers; after it returns, spawn, send, receive, stop, timers and ask
// allocate nothing, and running out of anything is an Errc::Full result.
// All member functions are thread-safe. Destroying the System shuts it down
// (shutdown() with its default deadline). Destroy it from a thread that is
// not one of its workers: a handler that deletes its own System would free
// its actor, its message and its worker under its own frame, so the
// destructor called on a worker writes "System destroyed from inside one of
// its own actors" to stderr and aborts the process. An actor that wants the
// system gone tells a plain thread (a message, a flag), which destroys it.
class System {
 public:
  // Validates `config`, then builds the system.
  static Result<std::unique_ptr<System>> create(const SystemConfig& config);
  // InvalidArgument naming the first bad field, if any.
  static Result<void> validate(const SystemConfig& config) noexcept;
  // Precondition: validate(config) is ok (aborts otherwise).
  explicit System(const SystemConfig& config);
  System(const System&) = delete;
  System& operator=(const System&) = delete;
  ~System();

  // Spawns A built from copies of `args` (kept for restarts).
  template <class A, class... Args>
  Result<ActorRef<typename A::Message>> spawn(Args&&... args);
  // Spawns A built by `factory()` (which must return an A), with options.
  template <class A, class F>
  Result<ActorRef<typename A::Message>> spawn_with(const SpawnOptions& options, F factory);

  // Sends `msg` to `to`. Dead if the actor stopped, or if `to` was made by
  // another System. On a full mailbox the Backpressure policy decides
  // (default: SystemConfig::backpressure); a blocking send from a worker
  // gives WouldDeadlock rather than close a cycle of blocked workers (see
  // Backpressure::Block). On failure the message is not consumed.
  template <class M, class U>
  Result<void> send(ActorRef<M> to, U&& msg) {
    return send(to, std::forward<U>(msg), config_.backpressure);
  }
  template <class M, class U>
  Result<void> send(ActorRef<M> to, U&& msg, Backpressure bp) {
    return send_on(to, std::forward<U>(msg), bp, false);
  }

  // Like send, on the system lane: the mailbox bound does not refuse it
  // (only an exhausted message pool does, with Full). For notifications
  // that must not be lost and that their sender bounds in number (one per
  // readiness of a descriptor, per tick); ordinary traffic uses send.
  template <class M, class U>
  Result<void> post(ActorRef<M> to, U&& msg) {
    return send_on(to, std::forward<U>(msg), Backpressure::Error, true);
  }

  // Asks the actor to stop after its current message; queued messages are
  // discarded as dead letters. Dead if it already stopped. Its Down reaches
  // its monitors once its managed process trees are gone too (a monitor
  // placed once it has begun to stop hears NoActor at once).
  Result<void> stop(ActorId id) noexcept;
  // The same, with the reason the actor's on_stop and its monitors see:
  // Requested (as stop(id)) or Shutdown (a supervisor stopping a child, as
  // OTP's shutdown exit); InvalidArgument for another reason.
  Result<void> stop(ActorId id, StopReason reason) noexcept;
  // True while the actor takes messages (false once its stop began).
  bool alive(ActorId id) const noexcept;
  // True while the actor is alive and has started: its on_start returned
  // without failing or stopping it (or, if it deferred its Started, it
  // called Context::report_started). What its start did happens before a
  // true answer.
  bool has_started(ActorId id) const noexcept;
  // True once the actor is gone completely: its on_stop has returned, its
  // process trees are gone, its Down is sent and its slot has moved on.
  // Wait for this, not for !alive, before freeing what its handlers use.
  bool gone(ActorId id) const noexcept;
  // Why an actor failed to start: the error its on_start (or the on_error
  // that handled it) failed with, for any actor; for one spawned with
  // Context::spawn_supervised, also a failure after on_start and before it
  // reported Started (a Supervisor puts it in the start error it reports).
  // Its Down says only Failed. Kept for the last kStartErrors such failures
  // of the System; false when `id` is not among them.
  static constexpr std::size_t kStartErrors = 16;
  bool start_error(ActorId id, Error& out) const noexcept;

  // Request/reply from a plain (non-worker) thread: builds the request with
  // make(ReplyTo<Rep>), sends it, and waits up to `timeout` for the reply
  // (nanoseconds::max(): no limit; negative: InvalidArgument). A reply sent
  // during shutdown is still returned; a wait cut short by shutdown gives
  // ShuttingDown. From an actor use Context::ask, which never blocks the worker.
  template <class Rep, class M, class Make>
  Result<Rep> ask(ActorRef<M> to, Make&& make, std::chrono::nanoseconds timeout);
  // Answers a request. Dead if the asker gave up (timed out) or was answered.
  template <class Rep, class U>
  Result<void> reply(ReplyTo<Rep> to, U&& value);

  // Cancels an armed timer from any thread; false if it fired or was
  // cancelled. Its message is never delivered; its entry (one of the
  // worker's timers_per_worker) is freed, with the message, when the
  // timer's tick comes, not at once.
  bool cancel(TimerId id) noexcept;

  Result<ActorStats> stats(ActorId id) const noexcept;
  SystemStats stats() const noexcept;
  PoolUsage pool_usage() const noexcept;
  const SystemConfig& config() const noexcept { return config_; }
  // Bytes the runtime reserves per actor slot (not counting actor state).
  static constexpr std::size_t bytes_per_actor() noexcept { return sizeof(detail::Cell); }

  Registry& registry() noexcept { return registry_; }
  Broker& broker() noexcept { return broker_; }

  // What happened, for people and scrapers (see Monitoring): the event
  // ring that supervisors, the runtime (actor failures, in-place restarts)
  // and the process layer (trees spawned, terminated, killed, orphans,
  // failed teardowns, stale trees, guardian restarts) record into, the
  // counters, and the alert hook (Monitoring::set_alert_hook). Built with
  // the System (SystemConfig::monitoring_events), lock-free, readable while
  // the system runs.
  Monitoring& monitoring() noexcept { return monitoring_; }
  const Monitoring& monitoring() const noexcept { return monitoring_; }
  // The counters with this system's actor and process counts filled in.
  MonitoringSnapshot monitoring_snapshot() const noexcept;
  // Every counter in the Prometheus text exposition format into `out`
  // (Monitoring::write_prometheus with this system's counts): the bytes
  // written, or Full naming the size needed. No allocation.
  Result<std::size_t> write_prometheus(std::span<char> out) const noexcept;

  // The process executor (osl), built with its reactor thread on first use
  // as the first Context::spawn_process builds it. For integration actors
  // that use the reactor (descriptor watching); ShuttingDown once shutdown
  // began and it was never built.
  Result<osl::ProcessExecutor*> process_executor() noexcept { return processes(); }

  // Process counters (all zero while no actor has spawned a process):
  // groups spawned, cleaned, processes killed, orphans adopted. After
  // shutdown, the final counts (the trees shutdown ended included), also
  // in monitoring_snapshot() and write_prometheus().
  osl::ProcessExecutor::Counters process_counters() const noexcept;
  // True once an actor has spawned a process (the reactor thread runs).
  bool processes_started() const noexcept { return processes_.built() != nullptr; }
  // Processes held (spawned or adopted, not yet reaped), for tests.
  std::size_t processes_held() const noexcept;

  // Stops every actor, waits for them up to `deadline` (nanoseconds::max():
  // no limit; zero or negative: already due), then stops the workers.
  // Actors still running at the deadline are stopped on the calling thread
  // once their current handler returns, and the result is Timeout. A
  // handler is never interrupted: one that is still running when the
  // deadline passes is waited for (one that never returns holds shutdown
  // up for good). Idempotent. WouldDeadlock if called from one of this
  // system's workers.
  Result<void> shutdown(std::chrono::nanoseconds deadline = std::chrono::seconds(5));
  bool shutting_down() const noexcept { return shutting_down_.load(std::memory_order_relaxed); }

 private:
  template <class M>
  friend class Context;
  template <class M>
  friend class Actor;
  friend class detail::TimerWheel;
  friend class detail::ProcessSets;
  template <class A, class F>
  friend struct detail::ChildFactoryFor;

  // ---- Sending and scheduling (send.cpp; the fast path inline here).
  enum class Admission : std::uint8_t { Local, Foreign, ForeignSchedule, Dropped, Refused };

  // send() on the user lane, or on the system lane (never refused for room).
  template <class M, class U>
  Result<void> send_on(ActorRef<M> to, U&& msg, Backpressure bp, bool system_lane);

  detail::Worker* this_worker() const noexcept {
    detail::Worker* w = detail::tls_worker;
    return (w != nullptr && w->system == this) ? w : nullptr;
  }
  Result<detail::Cell*> cell_for(ActorId id) const noexcept;
  detail::Node* alloc_node(std::size_t size_class, detail::Worker* w) noexcept {
    auto* n = static_cast<detail::Node*>(
        messages_.allocate(size_class, w != nullptr ? &w->cache : nullptr));
    if (n != nullptr) {
      new (n) detail::Node();
      n->size_class = static_cast<std::uint8_t>(size_class);
    }
    return n;
  }
  void free_node(detail::Node* n, detail::Worker* w) noexcept {
    messages_.deallocate(n, n->size_class, w != nullptr ? &w->cache : nullptr);
  }
  Error pool_exhausted(std::size_t size_class, ActorId to) const noexcept;
  Admission admit(detail::Cell* c, ActorId id, detail::Worker* w, Backpressure bp,
                  bool system_lane, Result<void>& status) noexcept;
  void unadmit(detail::Cell* c, Admission how) noexcept;
  // Blocking sends from workers: publish (slot) or withdraw (~0u) this
  // worker's wait, and find whether waiting on `target` would close a cycle
  // of workers each waiting on a full mailbox of the next.
  void publish_wait(detail::Worker& w, std::uint32_t slot) noexcept;
  bool closes_wait_cycle(const detail::Worker& self, const detail::Cell* target) noexcept;
  // The fast path of admit(): a send from the target's home worker with
  // room in the mailbox. False sends the caller to admit().
  bool admit_local(detail::Cell* c, ActorId id, detail::Worker* w, bool system_lane) noexcept {
    if (w == nullptr) return false;
    // On the home worker nothing else can close or reuse the slot.
    const std::uint64_t cur = c->word.load(std::memory_order_acquire);
    if (detail::word::gen(cur) != id.gen || (cur & detail::word::kClosed) != 0 ||
        w->index != c->home.load(std::memory_order_relaxed))
      return false;
    const std::uint32_t local = c->local_pending.load(std::memory_order_relaxed);
    // This is the home worker, the only writer of handled_foreign: the
    // count cannot be newer than `cur` (see detail::foreign_pending).
    const std::uint32_t queued = detail::foreign_pending_home(c, cur) + local;
    if (!system_lane && queued >= c->capacity.load(std::memory_order_relaxed)) return false;
    // Only the home worker writes local_pending; the node is published by the push.
    c->local_pending.store(local + 1, std::memory_order_relaxed);
    detail::raise_high_water(c, queued + 1);
    return true;
  }
  void push(detail::Cell* c, detail::Node* n, detail::Worker* w, Admission how) noexcept {
    n->counted = how != Admission::Local;
    if (how == Admission::Local) {
      c->queue.append(c->inbox, n);
      if (!c->local_queued) {
        c->local_queued = true;
        w->local_push(c);
      }
      return;
    }
    detail::inbox_push(c->inbox, n);
    if (how == Admission::ForeignSchedule) schedule_foreign(c);
  }
  Error bad_ref(ActorId id) const noexcept;
  void schedule_foreign(detail::Cell* c) noexcept;
  // Delivers a runtime-built node on the system lane (never refused for
  // room). On Dead the node is handed back: returns false.
  bool post_system(ActorId to, detail::Node* n, detail::Worker* w) noexcept;
  void count_dead_letter() noexcept { dead_letters_.fetch_add(1, std::memory_order_relaxed); }

  // ---- Lifecycle: spawn, stop, failure, escalation, finalisation (lifecycle.cpp).
  Result<std::uint32_t> acquire_slot(const char* what) noexcept;
  void release_slot(std::uint32_t slot) noexcept { free_slots_.push(slot); }
  void leave_spawn_gate() noexcept;
  void release_unstarted(std::uint32_t slot) noexcept;
  void* alloc_actor_block(std::size_t size_class) noexcept {
    detail::Worker* w = this_worker();
    return actors_.allocate(size_class, w != nullptr ? &w->actor_cache : nullptr);
  }
  Result<ActorId> start_actor(std::uint32_t slot, detail::ActorHolder* holder,
                              const SpawnOptions& options, ActorId parent, bool notify_started) noexcept;
  // failures_recorded: see Context::spawn_supervised. quiet_started (with
  // notify_started): the child is watched from its birth but sends no
  // Started (ActorHolder::quiet_started).
  template <class A, class F>
  Result<ActorRef<typename A::Message>> spawn_linked(const SpawnOptions& options, F factory,
                                                     ActorId parent, bool notify_started = false,
                                                     bool failures_recorded = false, bool quiet_started = false);
  void free_holder(detail::ActorHolder* holder) noexcept;
  void link_monitor(detail::Cell* c, detail::Node* n) noexcept;
  Result<void> report_started(detail::Turn& t) noexcept;
  Result<void> probe_health(detail::Turn& t, ActorId target) noexcept;
  bool build_actor(detail::Turn& t) noexcept;
  void rebuild_actor(detail::Turn& t) noexcept;
  bool resume_restart(detail::Turn& t, bool foreign) noexcept;
  void handle_failure(detail::Turn& t) noexcept;
  // Stop: on_stop, the process trees torn down, the mailbox drained, then
  // (once the trees are gone) Down to the watchers and the slot freed.
  void begin_finalize(detail::Worker& w, detail::Cell* c, StopReason reason, bool foreign) noexcept;
  void continue_finalize(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void release_if_unqueued(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  ActorId id_of(const detail::Cell* c) const noexcept {
    return ActorId{slot_of(c), detail::word::gen(c->word.load(std::memory_order_relaxed))};
  }
  std::uint32_t slot_of(const detail::Cell* c) const noexcept {
    return static_cast<std::uint32_t>(c - cells_);
  }

  // ---- The worker loop (worker.cpp).
  void run_worker(detail::Worker& w) noexcept;
  void run_turn(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void idle(detail::Worker& w, std::int64_t& idle_since) noexcept;
  std::int64_t longest_spin_ns() const noexcept { return config_.spin_before_park.count() * 1000; }
  void wake_parked(detail::Worker& w, std::uint32_t was) noexcept;
  void watch_process_events(detail::Worker& w, osl::ProcessExecutor& ex) noexcept;
  bool deliver(detail::Turn& t, detail::Node* n) noexcept;
  void requeue(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void notify_space(detail::Worker& w) noexcept;

  // ---- The actors' processes (processes.cpp, over detail::ProcessSets).
  Result<osl::ProcessExecutor*> processes() noexcept;
  Result<SpawnProcessResult> spawn_process(detail::Turn& t, const SpawnProcessOperation& op) noexcept;
  std::span<const ChildProcess> child_processes(const detail::Cell* c) const noexcept {
    return processes_.children(c);
  }
  Result<void> signal_own_process(detail::Turn& t, int pid, int sig) noexcept {
    return processes_.signal(t.cell, t.slot, pid, sig);
  }
  Result<void> kill_own_group(detail::Turn& t, int pgid, int sig) noexcept {
    return processes_.kill_group(t.cell, t.slot, pgid, sig);
  }
  void teardown_processes(detail::Cell* c) noexcept;
  // The reactor's report of an exit (its thread).
  void deliver_process_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept;

  // ---- Stats and shutdown (system.cpp, shutdown.cpp).
  std::uint64_t stopped_count() const noexcept;
  std::uint64_t spawned_count() const noexcept;
  std::uint64_t live_count() const noexcept;
  StopReason requested_reason(const detail::Cell* c) const noexcept;
  void stop_all() noexcept;
  void drain_everything() noexcept;

  SystemConfig config_;
  // Before processes_: the executor's last events (trees left at its end)
  // are recorded while it is destroyed.
  Monitoring monitoring_;
  // start_error(): the last start failures, overwritten in turn. A mutex:
  // written only when an on_start fails (or a supervised child fails before
  // Started), read by whoever asks after the Down.
  struct StartError {
    std::uint64_t id = 0;  // ActorId::to_bits(); 0: none
    Error error{Errc::Failed};
  };
  mutable std::mutex start_errors_mu_;
  StartError start_errors_[kStartErrors];
  std::size_t start_errors_next_ = 0;
  void keep_start_error(ActorId id, const Error& error) noexcept;
  detail::SystemTag tag_;  // before the cells: their first generation comes from it
  detail::Cell* cells_ = nullptr;
  detail::Worker* workers_ = nullptr;
  detail::IndexStack free_slots_;
  detail::SizedPools messages_;
  detail::SizedPools actors_;
  detail::AskTable asks_;
  Registry registry_{*this};
  Broker broker_{*this};

  alignas(64) std::atomic<std::uint32_t> next_worker_{0};
  alignas(64) std::atomic<std::uint64_t> spawned_{0};  // spawns from plain threads (a worker counts its own)
  std::atomic<std::uint64_t> dead_letters_{0};
  std::atomic<bool> shutting_down_{false};
  // Spawns in progress on threads other than the workers (acquire_slot),
  // plus kGateClosed once shutdown begins.
  static constexpr std::uint64_t kGateClosed = std::uint64_t{1} << 63;
  alignas(64) std::atomic<std::uint64_t> spawn_gate_{0};
  std::atomic<std::uint32_t> shutdown_state_{0};  // 0 running, 1 shutting down, 2 done

  detail::ProcessSets processes_;
};

template <class A, class... Args>
Result<ActorRef<typename A::Message>> System::spawn(Args&&... args) {
  return spawn_with<A>(SpawnOptions{}, [... a = std::decay_t<Args>(std::forward<Args>(args))]() {
    return A(a...);
  });
}

template <class A, class F>
Result<ActorRef<typename A::Message>> System::spawn_with(const SpawnOptions& options, F factory) {
  return spawn_linked<A>(options, std::move(factory), ActorId{});
}

template <class A, class F>
Result<ActorRef<typename A::Message>> System::spawn_linked(const SpawnOptions& options, F factory,
                                                           ActorId parent, bool notify_started,
                                                           bool failures_recorded, bool quiet_started) {
  using M = typename A::Message;
  using Holder = detail::HolderFor<A, F>;
  static_assert(std::is_base_of_v<Actor<M>, A>, "A must derive from airssys::Actor<M>");
  static_assert(alignof(Holder) <= 64, "actor alignment above 64 bytes is not supported");
  constexpr std::size_t cls = detail::size_class_for(sizeof(Holder));
  static_assert(cls < kSizeClasses, "actor state plus factory exceeds the largest pool block (4 KiB)");
  auto slot = acquire_slot("spawn");
  if (!slot) return slot.error();
  void* block = alloc_actor_block(cls);
  if (block == nullptr) {
    release_unstarted(*slot);
    return Error::make(Errc::Full, "actor-state pool for %zu-byte blocks is exhausted (%u blocks)",
                       kMinBlockSize << cls, actors_.count(cls));
  }
  Holder* holder;
#if __cpp_exceptions
  try {
    holder = new (block) Holder(std::move(factory));
  } catch (...) {
    actors_.deallocate(block, cls, nullptr);
    release_unstarted(*slot);
    throw;
  }
#else
  holder = new (block) Holder(std::move(factory));
#endif
  holder->size_class = static_cast<std::uint8_t>(cls);
  holder->failures_recorded = failures_recorded;
  holder->quiet_started = quiet_started;
  auto id = start_actor(*slot, holder, options, parent, notify_started);
  if (!id) return id.error();
  return ActorRef<M>{*id};
}

template <class M, class U>
Result<void> System::send_on(ActorRef<M> to, U&& msg, Backpressure bp, bool system_lane) {
  static_assert(std::is_constructible_v<M, U&&>, "message type does not accept this value");
  static_assert(alignof(M) <= 16, "message alignment above 16 bytes is not supported");
  constexpr std::size_t cls = detail::size_class_for(detail::kNodePayload + sizeof(M));
  static_assert(cls < kSizeClasses, "message type exceeds the largest pool block (4 KiB)");
  if (to.id.slot >= config_.actor_capacity) return bad_ref(to.id);
  detail::Cell* c = &cells_[to.id.slot];
  detail::Worker* w = this_worker();
  detail::Node* n = alloc_node(cls, w);
  if (n == nullptr) return pool_exhausted(cls, to.id);
  Admission how = Admission::Local;
  if (!admit_local(c, to.id, w, system_lane)) {
    Result<void> status;
    how = admit(c, to.id, w, bp, system_lane, status);
    if (how == Admission::Dropped || how == Admission::Refused) {
      free_node(n, w);
      return status;
    }
  }
#if __cpp_exceptions
  try {
    new (detail::payload<M>(n)) M(std::forward<U>(msg));
  } catch (...) {
    unadmit(c, how);
    free_node(n, w);
    throw;
  }
#else
  new (detail::payload<M>(n)) M(std::forward<U>(msg));
#endif
  push(c, n, w, how);
  return {};
}

template <class Rep, class M, class Make>
Result<Rep> System::ask(ActorRef<M> to, Make&& make, std::chrono::nanoseconds timeout) {
  if (this_worker() != nullptr)
    return Error::make(Errc::WouldDeadlock,
                       "System::ask called on a worker thread; use Context::ask from an actor");
  if (timeout.count() < 0)
    return Error::make(Errc::InvalidArgument, "ask timeout %lld ns is negative",
                       static_cast<long long>(timeout.count()));
  auto index = asks_.acquire();
  if (!index) return index.error();
  detail::PendingAsk& p = asks_[*index];
  const std::uint32_t gen = asks_.gen(*index);
  p.asker = ActorId{};
  Result<void> sent;
#if __cpp_exceptions
  try {
    sent = send(to, make(ReplyTo<Rep>{*index, gen}));
  } catch (...) {
    asks_.release(*index);
    throw;
  }
#else
  sent = send(to, make(ReplyTo<Rep>{*index, gen}));
#endif
  if (!sent) {
    asks_.release(*index);
    return sent.error();
  }
  detail::Node* n = nullptr;
  auto waited = asks_.wait_reply(*index, to.id, timeout, shutting_down_, n);
  if (!waited) return waited.error();
  Rep* r = detail::payload<Rep>(n);
  Result<Rep> out(std::move(*r));
  r->~Rep();
  free_node(n, nullptr);
  return out;
}

template <class Rep, class U>
Result<void> System::reply(ReplyTo<Rep> to, U&& value) {
  constexpr std::size_t cls = detail::size_class_for(detail::kNodePayload + sizeof(Rep));
  static_assert(cls < kSizeClasses, "reply type exceeds the largest pool block (4 KiB)");
  // The value is built before the request is claimed, so that nothing that
  // can throw runs while the claim is held.
  Rep rep(std::forward<U>(value));
  auto claimed = asks_.claim(to.index, to.gen);
  if (!claimed) return claimed.error();
  detail::PendingAsk& p = asks_[to.index];
  if (p.asker.valid()) {
    Result<void> r;
#if __cpp_exceptions
    try {
      r = p.complete(*this, p, &rep);
    } catch (...) {
      asks_.abandon(to.index, to.gen);
      throw;
    }
#else
    r = p.complete(*this, p, &rep);
#endif
    if (!r && r.code() != Errc::Dead) {
      // No room for the reply: give the request back; its timeout timer
      // (which waits while a claim is held) still answers the asker.
      asks_.abandon(to.index, to.gen);
      return r;
    }
    cancel(p.timer);  // answered, or the asker is gone
    asks_.finish(to.index, nullptr);
    return r;
  }
  detail::Worker* w = this_worker();
  detail::Node* n = alloc_node(cls, w);
  if (n == nullptr) {
    asks_.abandon(to.index, to.gen);
    return pool_exhausted(cls, ActorId{});
  }
#if __cpp_exceptions
  try {
    new (detail::payload<Rep>(n)) Rep(std::move(rep));
  } catch (...) {
    free_node(n, w);
    asks_.abandon(to.index, to.gen);
    throw;
  }
#else
  new (detail::payload<Rep>(n)) Rep(std::move(rep));
#endif
  asks_.finish(to.index, n);
  return {};
}


namespace detail {
template <class M>
Result<void> send_published(System& s, ActorRef<M> to, const M& msg, Backpressure bp) {
  return s.send(to, msg, bp);
}
}  // namespace detail

}  // namespace airssys

// Context (and the bodies of Actor<M>'s hooks) need the complete System.
#include <airssys/rt/context.hpp>
