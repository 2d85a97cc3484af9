#pragma once
// System: the runtime. Owns the workers, the actor slots, every pool, the
// timers, the registry and the broker.

#include <airssys/rt/actor.hpp>
#include <airssys/rt/config.hpp>
#include <airssys/rt/error.hpp>
#include <airssys/rt/process.hpp>
#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/name_table.hpp>
#include <airssys/rt/detail/pool.hpp>
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

// Counters of a whole system. `dead_letters` counts messages that were never
// handled: dropped under backpressure, or still queued when their actor
// stopped, or addressed to an actor that stopped before a timer fired.
struct SystemStats {
  std::uint64_t live_actors = 0;
  std::uint64_t spawned = 0;
  std::uint64_t stopped = 0;
  std::uint64_t messages = 0;
  std::uint64_t dead_letters = 0;
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

// Result of Broker::publish: subscribers reached and subscribers refused.
struct PublishReport {
  std::uint32_t delivered = 0;
  std::uint32_t failed = 0;
};

namespace detail {
template <class T>
void destroy_user_node(Node* n) noexcept {
  payload<T>(n)->~T();
}

template <class M>
std::uintptr_t type_tag() noexcept {
  static const char tag = 0;
  return reinterpret_cast<std::uintptr_t>(&tag);
}
inline std::uint64_t pack(ActorId id) noexcept { return (std::uint64_t{id.slot} << 32) | id.gen; }
inline ActorId unpack(std::uint64_t v) noexcept {
  return ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)};
}

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

// One outstanding ask(). `state` is gen << 2 | phase: 0 free, 1 waiting,
// 2 replied (thread asker may take `reply`), 3 claimed by a replier.
struct PendingAsk {
  std::atomic<std::uint32_t> state{0};
  std::atomic<std::uint32_t> free_link{0};
  Node* reply = nullptr;
  ActorId asker;           // valid for an actor's ask
  std::uint64_t request = 0;
  TimerId timer;
  // Delivers the reply (a Rep on the replier's stack) to the asking actor.
  Result<void> (*complete)(System&, PendingAsk&, void* rep) = nullptr;
};
}  // namespace detail

// A fixed-capacity directory of named actors. Lookups are lock-free; a name
// is bound to one actor, and frees itself when that actor stops (reclaimed
// lazily on the next lookup, add or when the table is full).
class Registry {
 public:
  // Binds `name` (1..31 bytes) to `ref`. AlreadyExists if a live actor
  // holds it, Full if `registry_capacity` live names exist.
  template <class M>
  Result<void> add(std::string_view name, ActorRef<M> ref) noexcept {
    return add_id(name, ref.id, detail::type_tag<M>());
  }
  // NotFound if absent or its actor stopped; TypeMismatch if the actor's
  // message type is not M.
  template <class M>
  Result<ActorRef<M>> find(std::string_view name) const noexcept {
    std::uintptr_t tag = 0;
    auto id = find_id(name, tag);
    if (!id) return id.error();
    if (tag != detail::type_tag<M>())
      return Error::make(Errc::TypeMismatch, "actor named '%.*s' takes another message type",
                         static_cast<int>(name.size()), name.data());
    return ActorRef<M>{*id};
  }
  Result<void> remove(std::string_view name) noexcept;
  std::uint32_t size() const noexcept { return table_.size(); }
  std::uint32_t capacity() const noexcept { return table_.capacity(); }

 private:
  friend class System;
  explicit Registry(System& s) : system_(s) {}
  Result<void> add_id(std::string_view name, ActorId id, std::uintptr_t tag) noexcept;
  Result<ActorId> find_id(std::string_view name, std::uintptr_t& tag) const noexcept;
  void sweep() noexcept;
  System& system_;
  mutable detail::NameTable table_;
};

// A fixed-capacity publish/subscribe hub. A topic is created by its first
// subscriber and typed by its message type; `publish` sends a copy to each
// subscriber (lock-free) and removes subscribers that have stopped.
class Broker {
 public:
  template <class M>
  Result<void> subscribe(std::string_view topic, ActorRef<M> ref) noexcept {
    return subscribe_id(topic, ref.id, detail::type_tag<M>());
  }
  Result<void> unsubscribe(std::string_view topic, ActorId id) noexcept;
  template <class M>
  Result<PublishReport> publish(std::string_view topic, const M& msg,
                                Backpressure bp = Backpressure::Drop) noexcept;
  std::uint32_t topics() const noexcept { return table_.size(); }

 private:
  friend class System;
  explicit Broker(System& s) : system_(s) {}
  ~Broker();
  void init(std::uint32_t topics, std::uint32_t per_topic);
  Result<void> subscribe_id(std::string_view topic, ActorId id, std::uintptr_t tag) noexcept;
  Result<std::atomic<std::uint64_t>*> topic_for_publish(std::string_view topic,
                                                        std::uintptr_t tag) const noexcept;
  System& system_;
  detail::NameTable table_;
  std::atomic<std::uint64_t>* subscribers_ = nullptr;  // topics x per_topic, 0 = empty
  std::uint32_t per_topic_ = 0;
};

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
  bool alive(ActorId id) const noexcept;

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

  // Cancels an armed timer from any thread; false if it fired or was cancelled.
  bool cancel(TimerId id) noexcept;

  Result<ActorStats> stats(ActorId id) const noexcept;
  SystemStats stats() const noexcept;
  PoolUsage pool_usage() const noexcept;
  const SystemConfig& config() const noexcept { return config_; }
  // Bytes the runtime reserves per actor slot (not counting actor state).
  static constexpr std::size_t bytes_per_actor() noexcept { return sizeof(detail::Cell); }

  Registry& registry() noexcept { return registry_; }
  Broker& broker() noexcept { return broker_; }

  // The process executor (osl), built with its reactor thread on first use
  // as the first Context::spawn_process builds it. For integration actors
  // that use the reactor (descriptor watching); ShuttingDown once shutdown
  // began and it was never built.
  Result<osl::ProcessExecutor*> process_executor() noexcept { return processes(); }

  // Process counters (all zero while no actor has spawned a process):
  // groups spawned, cleaned, processes killed, orphans adopted.
  osl::ProcessExecutor::Counters process_counters() const noexcept;
  // True once an actor has spawned a process (the reactor thread runs).
  bool processes_started() const noexcept { return executor_.load(std::memory_order_acquire) != nullptr; }
  // Processes held (spawned or adopted, not yet reaped), for tests.
  std::size_t processes_held() const noexcept;

  // Stops every actor, waits for them up to `deadline` (nanoseconds::max():
  // no limit; zero or negative: already due), then stops the workers. Actors still running at the deadline are stopped on the calling
  // thread once their current handler returns, and the result is Timeout.
  // Idempotent. WouldDeadlock if called from one of this system's workers.
  Result<void> shutdown(std::chrono::nanoseconds deadline = std::chrono::seconds(5));
  bool shutting_down() const noexcept { return shutting_down_.load(std::memory_order_relaxed); }

 private:
  template <class M>
  friend class Context;
  template <class M>
  friend class Actor;
  friend class Registry;
  friend class Broker;

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
    detail::mpsc_push(c->tail, n);
    if (how == Admission::Local) {
      if (!c->local_queued) {
        c->local_queued = true;
        w->local_push(c);
      }
    } else if (how == Admission::ForeignSchedule) {
      schedule_foreign(c);
    }
  }
  Error bad_ref(ActorId id) const noexcept;
  void schedule_foreign(detail::Cell* c) noexcept;
  // Delivers a runtime-built node on the system lane (never refused for
  // room). On Dead the node is handed back: returns false.
  bool post_system(ActorId to, detail::Node* n, detail::Worker* w) noexcept;
  void link_monitor(detail::Cell* c, detail::Node* n) noexcept;

  // Processes: the executor is built on the first spawn_process.
  class ProcessSink;
  Result<osl::ProcessExecutor*> processes() noexcept;
  Result<SpawnProcessResult> spawn_process(detail::Turn& t, const SpawnProcessOperation& op) noexcept;
  std::span<const ChildProcess> child_processes(const detail::Cell* c) const noexcept;
  Result<void> signal_own_process(detail::Turn& t, int pid, int sig) noexcept;
  Result<void> kill_own_group(detail::Turn& t, int pgid, int sig) noexcept;
  void remove_child_process(detail::Cell* c, int pid) noexcept;
  void teardown_processes(detail::Cell* c, ActorId owner) noexcept;
  void release_process_set(detail::Cell* c) noexcept;
  void deliver_process_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept;
  void shutdown_processes(std::int64_t deadline_ns) noexcept;
  void free_holder(detail::ActorHolder* holder) noexcept;

  // Spawn plumbing.
  Result<std::uint32_t> acquire_slot(const char* what) noexcept;
  void release_slot(std::uint32_t slot) noexcept { free_slots_.push(slot); }
  void leave_spawn_gate() noexcept;
  void release_unstarted(std::uint32_t slot) noexcept;
  void* alloc_actor_block(std::size_t size_class) noexcept {
    return actors_.allocate(size_class, nullptr);
  }
  Result<ActorId> start_actor(std::uint32_t slot, detail::ActorHolder* holder,
                              const SpawnOptions& options, ActorId parent, bool notify_started) noexcept;
  template <class A, class F>
  Result<ActorRef<typename A::Message>> spawn_linked(const SpawnOptions& options, F factory,
                                                     ActorId parent, bool notify_started = false);
  // Started and health probes.
  Result<void> report_started(detail::Turn& t) noexcept;
  Result<void> probe_health(detail::Turn& t, ActorId target) noexcept;
  // Deferred finalisation: an actor whose trees are being torn down is
  // finalised (Down sent, slot released) once the reactor reports them gone.
  std::uint32_t set_of(const detail::Cell* c) const noexcept { return c->process_set - 1u; }
  bool trees_pending(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void tree_torn_down(std::uint64_t owner) noexcept;
  void detach_tree_reports() noexcept;

  // Worker side.
  void run_worker(detail::Worker& w) noexcept;
  void run_turn(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void idle(detail::Worker& w, std::int64_t& idle_since) noexcept;
  bool deliver(detail::Turn& t, detail::Node* n) noexcept;
  void handle_failure(detail::Turn& t) noexcept;
  bool build_actor(detail::Turn& t) noexcept;
  void requeue(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void begin_finalize(detail::Worker& w, detail::Cell* c, StopReason reason, bool foreign) noexcept;
  void continue_finalize(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void release_if_unqueued(detail::Worker& w, detail::Cell* c, bool foreign) noexcept;
  void notify_space(detail::Worker& w) noexcept;
  std::uint32_t slot_of(const detail::Cell* c) const noexcept {
    return static_cast<std::uint32_t>(c - cells_);
  }

  // Timers.
  Result<TimerId> arm_timer(detail::Worker& w, detail::Node* n, ActorId target,
                            std::chrono::nanoseconds delay, void (*destroy)(detail::Node*) noexcept,
                            std::uint32_t guard_index, std::uint32_t guard_gen) noexcept;
  void poll_timers(detail::Worker& w) noexcept;
  // False: the entry must stay armed one more round (see the ask guard).
  bool fire_timer(detail::Worker& w, detail::TimerEntry& e) noexcept;

  // Asks.
  Result<std::uint32_t> acquire_pending() noexcept;
  void release_pending(std::uint32_t index) noexcept;
  Result<void> wait_reply(std::uint32_t index, std::chrono::nanoseconds timeout,
                          detail::Node*& reply) noexcept;
  Result<std::uint32_t> claim_pending(std::uint32_t index, std::uint32_t gen) noexcept;
  void finish_claim(std::uint32_t index, detail::Node* reply) noexcept;
  void abandon_claim(std::uint32_t index, std::uint32_t gen) noexcept;
  void stop_all() noexcept;
  std::uint64_t stopped_count() const noexcept;
  std::uint64_t live_count() const noexcept;
  void drain_everything() noexcept;

  SystemConfig config_;
  detail::SystemTag tag_;  // before the cells: their first generation comes from it
  detail::Cell* cells_ = nullptr;
  detail::Worker* workers_ = nullptr;
  detail::PendingAsk* pending_ = nullptr;
  detail::IndexStack free_slots_;
  detail::IndexStack free_pending_;
  detail::SizedPools messages_;
  detail::SizedPools actors_;
  Registry registry_{*this};
  Broker broker_{*this};

  alignas(64) std::atomic<std::uint32_t> next_worker_{0};
  alignas(64) std::atomic<std::uint64_t> spawned_{0};
  std::atomic<std::uint64_t> dead_letters_{0};
  std::atomic<bool> shutting_down_{false};
  // Spawns in progress, plus kGateClosed once shutdown begins.
  static constexpr std::uint64_t kGateClosed = std::uint64_t{1} << 63;
  alignas(64) std::atomic<std::uint64_t> spawn_gate_{0};
  std::atomic<std::uint32_t> shutdown_state_{0};  // 0 running, 1 shutting down, 2 done

  // Processes, built by the first spawn_process (processes()).
  class ProcessSink final : public osl::ExitSink {
   public:
    explicit ProcessSink(System& s) noexcept : system_(s) {}
    void on_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept override {
      system_.deliver_process_exit(owner, pid, status);
    }
    void on_teardown(std::uint64_t owner, int, const osl::TeardownReport& report) noexcept override {
      if (report.owner_wide) system_.tree_torn_down(owner);
    }

   private:
    System& system_;
  };
  std::mutex processes_mu_;  // taken once, to build the executor
  std::atomic<osl::ProcessExecutor*> executor_{nullptr};
  std::unique_ptr<osl::ProcessExecutor> executor_owner_;
  std::unique_ptr<ProcessSink> process_sink_;
  std::unique_ptr<ChildProcess[]> process_items_;  // process_owners x processes_per_actor
  std::unique_ptr<std::uint8_t[]> process_counts_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> process_links_;
  detail::IndexStack free_process_sets_;
  // Per ProcessSet: the teardowns its actor requested and those the reactor
  // reported done, and the owner (ActorId, 64-bit) waiting for the two to
  // meet (0: none). See trees_pending / tree_torn_down.
  struct TreeWait {
    std::atomic<std::uint64_t> owner{0};
    std::atomic<std::uint32_t> requested{0};
    std::atomic<std::uint32_t> done{0};
    std::atomic<std::uint64_t> waiting{0};
  };
  std::unique_ptr<TreeWait[]> tree_waits_;
  std::mutex tree_reports_mu_;     // reactor reports vs. the final drain
  bool tree_reports_detached_ = false;
};

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
  template <class A, class F>
  Result<ActorRef<typename A::Message>> spawn_supervised(const SpawnOptions& options, F factory) const {
    static_assert(std::is_constructible_v<M, Started> && std::is_constructible_v<M, Down>,
                  "a supervising actor's message type must be constructible from airssys::Started and Down");
    return t_.system->template spawn_linked<A>(options, std::move(factory), self().id, true);
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
  // Reports that the current handler failed; on_error decides what follows.
  void fail(const Error& e) noexcept {
    t_.failed = true;
    t_.error = e;
  }

  // Delivers `msg` to `to` after `delay` (1 ms resolution), on the system
  // lane: the mailbox bound does not refuse it. Full if this worker's
  // timers are all armed; InvalidArgument if `delay` is negative. A delay
  // of nanoseconds::max() never fires (it holds its timer until cancelled).
  template <class T, class U>
  Result<TimerId> send_after(ActorRef<T> to, U&& msg, std::chrono::nanoseconds delay) const;
  bool cancel(TimerId id) const noexcept { return t_.system->cancel(id); }

  // Watches `other`: when it stops, this actor receives Down{other, reason}
  // (NoActor at once if it is already gone). M must be constructible from Down.
  template <class T>
  Result<void> monitor(ActorRef<T> other) const noexcept;

  // Sends make(ReplyTo<Rep>) to `to`; later this actor receives exactly one
  // Reply<Rep> carrying the returned request id: the reply, or Timeout after
  // `timeout` (nanoseconds::max(): never; negative: InvalidArgument). A reply
  // that fails (Full) gives the request back, and the timeout still answers.
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
  // process executor and starts its reactor thread.
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
// Template definitions.

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
                                                           ActorId parent, bool notify_started) {
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
  auto index = acquire_pending();
  if (!index) return index.error();
  detail::PendingAsk& p = pending_[*index];
  std::uint32_t gen = p.state.load(std::memory_order_relaxed) >> 2;
  p.asker = ActorId{};
  Result<void> sent;
#if __cpp_exceptions
  try {
    sent = send(to, make(ReplyTo<Rep>{*index, gen}));
  } catch (...) {
    release_pending(*index);
    throw;
  }
#else
  sent = send(to, make(ReplyTo<Rep>{*index, gen}));
#endif
  if (!sent) {
    release_pending(*index);
    return sent.error();
  }
  detail::Node* n = nullptr;
  auto waited = wait_reply(*index, timeout, n);
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
  auto claimed = claim_pending(to.index, to.gen);
  if (!claimed) return claimed.error();
  detail::PendingAsk& p = pending_[to.index];
  if (p.asker.valid()) {
    Result<void> r;
#if __cpp_exceptions
    try {
      r = p.complete(*this, p, &rep);
    } catch (...) {
      abandon_claim(to.index, to.gen);
      throw;
    }
#else
    r = p.complete(*this, p, &rep);
#endif
    if (!r && r.code() != Errc::Dead) {
      // No room for the reply: give the request back; its timeout timer
      // (which waits while a claim is held) still answers the asker.
      abandon_claim(to.index, to.gen);
      return r;
    }
    cancel(p.timer);  // answered, or the asker is gone
    finish_claim(to.index, nullptr);
    return r;
  }
  detail::Worker* w = this_worker();
  detail::Node* n = alloc_node(cls, w);
  if (n == nullptr) {
    abandon_claim(to.index, to.gen);
    return pool_exhausted(cls, ActorId{});
  }
#if __cpp_exceptions
  try {
    new (detail::payload<Rep>(n)) Rep(std::move(rep));
  } catch (...) {
    free_node(n, w);
    abandon_claim(to.index, to.gen);
    throw;
  }
#else
  new (detail::payload<Rep>(n)) Rep(std::move(rep));
#endif
  finish_claim(to.index, n);
  return {};
}

template <class M>
Result<PublishReport> Broker::publish(std::string_view topic, const M& msg, Backpressure bp) noexcept {
  auto subs = topic_for_publish(topic, detail::type_tag<M>());
  if (!subs) return subs.error();
  PublishReport report;
  std::atomic<std::uint64_t>* list = *subs;
  if (list == nullptr) return report;
  for (std::uint32_t i = 0; i < per_topic_; ++i) {
    std::uint64_t v = list[i].load(std::memory_order_acquire);
    if (v == 0) continue;
    auto r = system_.send(ActorRef<M>{detail::unpack(v)}, msg, bp);
    if (r) {
      ++report.delivered;
    } else {
      ++report.failed;
      if (r.code() == Errc::Dead) list[i].compare_exchange_strong(v, 0, std::memory_order_acq_rel);
    }
  }
  return report;
}

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
  detail::Node* n = s.alloc_node(cls, t_.worker);
  if (n == nullptr) return s.pool_exhausted(cls, to.id);
  new (detail::payload<T>(n)) T(std::forward<U>(msg));
  auto id = s.arm_timer(*t_.worker, n, to.id, delay, &detail::destroy_user_node<T>, ~0u, 0);
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
  auto index = s.acquire_pending();
  if (!index) return index.error();
  detail::PendingAsk& p = s.pending_[*index];
  std::uint32_t gen = p.state.load(std::memory_order_relaxed) >> 2;
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
    s.release_pending(*index);
    return s.pool_exhausted(cls, to.id);
  }
  new (detail::payload<M>(n)) M(Reply<Rep>{
      request, Error::make(Errc::Timeout, "request #%u to actor #%u got no reply within %lld ms",
                           *index, to.id.slot,
                           static_cast<long long>(timeout.count() / 1'000'000))});
  auto timer = s.arm_timer(*t_.worker, n, self().id, timeout, &detail::destroy_user_node<M>, *index, gen);
  if (!timer) {
    detail::destroy_user_node<M>(n);
    s.free_node(n, t_.worker);
    s.release_pending(*index);
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
    s.release_pending(*index);
    throw;
  }
#else
  sent = s.send(to, make(ReplyTo<Rep>{*index, gen}));
#endif
  if (!sent) {
    // The timer's guard finds the request gone and drops the timeout message.
    s.cancel(*timer);
    s.release_pending(*index);
    return sent.error();
  }
  return request;
}

}  // namespace airssys
