#pragma once
// Monitoring: what the runtime and its process layer did, for people and
// for scrapers.
//
// - An event ring: a fixed number of slots, allocated once, that any thread
//   records into (workers, the process reactor, supervisors) and any thread
//   reads while the producers go on. Full, it overwrites the oldest event.
//   A reader gets each event whole or not at all, and learns exactly how
//   many it missed (overwritten before it looked, or lost to a producer that
//   was preempted for a whole lap of the ring). Recording never blocks,
//   never allocates and never takes a lock.
// - Counters: every event kind, alerts, restarts in all and per child name
//   (a fixed table; names that find it full count as "untracked"), plus
//   the actor and process counts the caller passes in (System::stats(),
//   osl::ProcessExecutor::counters(): those are exact at their source).
// - An alert hook, called on the recording thread for the events that need
//   a human: a teardown that failed, an orphan adopted, a stale tree swept,
//   a tree still alive at shutdown, a guardian that could not be restarted.
// - write_prometheus: all counters in the Prometheus text exposition format
//   0.0.4, into the caller's buffer. No allocation, no HTTP.
// - MonitoringMiddleware: an osl::Middleware that records the process
//   events of a ProcessExecutor.

#include <airssys/rt/actor.hpp>
#include <airssys/rt/error.hpp>
#include <airssys/osl/executor.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace airssys {

// One thing that happened. Trivially copyable and fixed size: the ring
// stores it word by word.
struct MonitorEvent {
  enum class Kind : std::uint8_t {
    ActorStarted,        // actor, name (the child's spec name, if any)
    ActorStopped,        // actor, name
    ActorFailed,         // actor, name, error
    ActorRestarted,      // actor, name; counted per child name
    StrategyApplied,     // actor (the supervisor), name (the child that triggered it), count (children restarted)
    IntensityExceeded,   // actor (the supervisor), count (restarts inside the period)
    TreeSpawned,         // pid, pgid, name (the program's file name)
    TreeTerminated,      // pid, pgid, count (processes reaped): the tree ended on its first signal
    TreeKilled,          // pid, pgid, count (processes SIGKILL ended)
    OrphanAdopted,       // pid, pgid; error Full when the table had no room for it
    TeardownFailed,      // pid, pgid, error; name (who asked)
    StaleTreeSwept,      // count (live trees of dead runtimes killed)
    GuardianRestarted,   // pid (the new guardian, -1 if unknown), error if it could not be restarted
    TreeLeftAtShutdown,  // pid, pgid, count (processes killed): still alive when the executor ended
  };
  static constexpr std::size_t kKinds = 14;
  static constexpr std::size_t kNameSize = 32;  // with the terminating NUL

  std::uint64_t sequence = 0;  // its place among all recorded events (0, 1, ...); set by record()
  std::int64_t time_ns = 0;    // monotonic clock; record() sets it when 0
  ActorId actor;               // invalid (slot ~0u) when no actor is concerned
  std::int32_t pid = -1;
  std::int32_t pgid = -1;
  std::uint64_t count = 0;
  std::int32_t os_error = 0;
  Kind kind = Kind::ActorStarted;
  Errc error = Errc::Ok;
  std::uint8_t reserved[2] = {};
  char name[kNameSize] = {};  // NUL-terminated, cut to kNameSize - 1 bytes

  static MonitorEvent make(Kind k, ActorId actor = {}, std::string_view name = {}, std::uint64_t count = 0) noexcept;
  void set_name(std::string_view n) noexcept;
  void set_error(const Error& e) noexcept {
    error = e.code();
    os_error = e.os_error();
  }
  std::string_view name_view() const noexcept;
};
static_assert(sizeof(MonitorEvent) % sizeof(std::uint64_t) == 0);
const char* to_string(MonitorEvent::Kind k) noexcept;
// True for the events the alert hook is called for.
bool needs_alert(const MonitorEvent& e) noexcept;

// Called on the recording thread, after the event is in the ring. It must
// not block and must not record into the same Monitoring (it would recurse);
// copy what it needs and hand it on. Process events are recorded by the
// middleware on the thread doing the process operation (often the reactor),
// with the executor's lock held: the hook must not call into the executor.
using AlertHook = void (*)(const MonitorEvent& event, void* cookie) noexcept;

struct MonitoringConfig {
  // Ring slots, rounded up to a power of two (1 .. 2^24): a reader can read
  // the last `events` events recorded. Each bound lane has a ring of this
  // size of its own, as the shared lane has: (lanes + 1) x events x 96 bytes.
  std::size_t events = 1024;
  std::size_t child_names = 64;   // per-child restart counters (0 .. 4096)
  AlertHook alert = nullptr;
  void* alert_cookie = nullptr;
  // Counter lanes for threads that bind one (bind_lane): a System gives
  // each worker its own (0 .. 1024). A bound thread counts with plain
  // stores; every other thread with atomic adds on a shared lane.
  std::size_t lanes = 0;
};

// Counters of a whole system (System::stats()), which snapshot() and
// write_prometheus take as they are. `dead_letters` counts messages that
// were never handled: dropped under backpressure, or still queued when their
// actor stopped, or addressed to an actor that stopped before a timer fired.
struct SystemStats {
  std::uint64_t live_actors = 0;
  std::uint64_t spawned = 0;
  std::uint64_t stopped = 0;
  std::uint64_t messages = 0;
  std::uint64_t dead_letters = 0;
};

struct MonitoringSnapshot {
  // Recorded events by kind (index: the Kind's value). Exact: counted as
  // they are recorded, whatever the ring has overwritten since.
  std::uint64_t events[MonitorEvent::kKinds] = {};
  std::uint64_t recorded = 0;            // all events
  std::uint64_t alerts = 0;              // events that needed a human (needs_alert)
  std::uint64_t restarts = 0;            // = events[ActorRestarted]
  std::uint64_t restarts_untracked = 0;  // of unnamed children, or names the table had no room for
  SystemStats actors;                    // as given
  // From the executor's counters, as given.
  std::uint64_t trees_spawned = 0;
  std::uint64_t trees_cleaned = 0;
  std::uint64_t trees_live = 0;          // spawned - cleaned
  std::uint64_t processes_killed = 0;
  std::uint64_t orphans_adopted = 0;
  std::uint64_t orphans_refused = 0;
  std::uint64_t stale_trees = 0;
  // From the events (the executor has no counter for these).
  std::uint64_t teardown_failures = 0;
  std::uint64_t guardian_restarts = 0;
  std::uint64_t trees_left_at_shutdown = 0;
};

// One row of the per-child restart table.
struct ChildRestarts {
  char name[MonitorEvent::kNameSize] = {};
  std::uint64_t restarts = 0;
};

// A reader's place in the event stream. One per reading thread; a fresh
// cursor starts at the first event ever recorded.
class EventCursor {
 public:
  std::uint64_t next() const noexcept { return next_; }     // sequence of the next event to read
  std::uint64_t missed() const noexcept { return missed_; }  // in all, since the cursor was made
 private:
  friend class Monitoring;
  std::uint64_t next_ = 0;
  std::uint64_t missed_ = 0;
};

struct EventRead {
  std::size_t events = 0;    // written to the front of `out`, oldest first
  std::uint64_t missed = 0;  // sequences skipped in this read: overwritten or lost
};

class Monitoring {
 public:
  // Allocates the ring and the name table (nothing allocates after). Call
  // validate() on a config that comes from a user first: out-of-range sizes
  // are clamped here. If the allocation fails, capacity() is 0: events are
  // still counted, none is kept.
  explicit Monitoring(const MonitoringConfig& config = {}) noexcept;
  ~Monitoring();
  Monitoring(const Monitoring&) = delete;
  Monitoring& operator=(const Monitoring&) = delete;

  static Result<void> validate(const MonitoringConfig& config) noexcept;

  // Sets the alert hook once (AlreadyExists if the config or an earlier
  // call set one). Any thread; recording threads see it from then on.
  Result<void> set_alert_hook(AlertHook hook, void* cookie) noexcept;

  // Makes the calling thread the only writer of counter lane `lane` (<
  // MonitoringConfig::lanes; InvalidArgument otherwise): its records then
  // count with plain stores, not atomic adds. Call it once per thread,
  // before the thread records; no other thread may bind the same lane while
  // it lives. A thread binds one Monitoring at a time (the last call wins).
  Result<void> bind_lane(std::size_t lane) noexcept;

  // Records `e` (its sequence is set; its time too, when 0). Any thread;
  // lock-free, never blocks, never allocates.
  void record(const MonitorEvent& e) noexcept;
  // Records `events` in order, with consecutive sequences (one reservation
  // for all of them). The same guarantees as record(e).
  void record(std::span<const MonitorEvent> events) noexcept;
  void record(MonitorEvent::Kind k, ActorId actor = {}, std::string_view name = {},
              std::uint64_t count = 0) noexcept {
    record(MonitorEvent::make(k, actor, name, count));
  }

  // Copies the events after `cursor` into `out`, oldest first, and moves
  // the cursor past them. Stops early at an event whose producer is still
  // writing it (the next read gets it), so a read may return fewer than
  // are recorded. Any thread, while producers run.
  EventRead read(EventCursor& cursor, std::span<MonitorEvent> out) const noexcept;

  std::size_t capacity() const noexcept { return mask_ + (slots_ ? 1 : 0); }
  std::uint64_t recorded() const noexcept;

  MonitoringSnapshot snapshot(const SystemStats& actors = {},
                              const osl::ProcessExecutor::Counters& processes = {}) const noexcept;
  // The per-child table: its used rows, up to out.size(); returns how many.
  std::size_t child_restarts(std::span<ChildRestarts> out) const noexcept;

  // Every counter of snapshot() and the per-child restarts, in the
  // Prometheus text format 0.0.4. Returns the bytes written; Full, naming
  // the size needed, when `out` is too small (its contents are then
  // unspecified).
  Result<std::size_t> write_prometheus(std::span<char> out, const SystemStats& actors = {},
                                       const osl::ProcessExecutor::Counters& processes = {}) const noexcept;

  struct Slot;
  struct NameSlot;
  // The counters of the events recorded through one lane. A bound lane has
  // one writer (its thread), which counts with relaxed load + store; the
  // shared lane counts with relaxed fetch_add. snapshot() sums the lanes.
  // A bound lane also has a ring of its own (`ring`), which only its thread
  // writes: its events need no slot claim (see monitoring.cpp).
  struct alignas(64) Lane {
    std::atomic<std::uint64_t> kinds[MonitorEvent::kKinds] = {};
    std::atomic<std::uint64_t> untracked{0};      // restarts of unnamed children, or of names with no row
    std::atomic<std::uint64_t>* names = nullptr;  // a restart count per row of the name table
    Slot* ring = nullptr;                         // a bound lane's own slots (mask_ + 1 of them)
    std::size_t last_row = ~std::size_t{0};       // a bound lane's last named row (none: ~0)
    bool single_writer = false;
  };

 private:
  Lane& lane() noexcept;
  void put(std::uint64_t seq, const MonitorEvent& event, Lane& lane) noexcept;
  void put_own(std::uint64_t seq, const MonitorEvent& event, Lane& lane) noexcept;
  static std::int64_t stamp(const MonitorEvent& event) noexcept;
  void count(const MonitorEvent& event, Lane& lane) noexcept;
  static void store_event(Slot& s, std::uint64_t seq, std::int64_t time, const MonitorEvent& event) noexcept;
  void alert_if_needed(std::uint64_t seq, std::int64_t time, const MonitorEvent& event) noexcept;
  void count_restart(const MonitorEvent& e, Lane& lane) noexcept;
  std::uint64_t restarts_of_row(std::size_t row) const noexcept;
  enum class LaneFind : std::uint8_t { Absent, Writing, Read, Overwritten };
  LaneFind find_in_lanes(std::uint64_t seq, std::size_t& hint, MonitorEvent& out) const noexcept;

  std::unique_ptr<Slot[]> slots_;        // the shared lane's ring
  std::unique_ptr<Slot[]> lane_slots_;   // the bound lanes' rings, one after another
  std::size_t mask_ = 0;  // slots - 1 (of each ring)
  std::unique_ptr<NameSlot[]> names_;
  std::size_t name_capacity_ = 0;
  // One per bound thread (bind_lane), and the one every other thread shares.
  std::unique_ptr<Lane[]> lanes_;
  std::size_t bound_lanes_ = 0;
  Lane shared_;
  // A restart count per lane (bound ones first, the shared one last) and
  // row of names_: [lane * name_capacity_ + row].
  std::unique_ptr<std::atomic<std::uint64_t>[]> name_counts_;
  // Tells this Monitoring from one built later at the same address (a
  // thread's binding names the one it was made for).
  std::uint64_t id_ = 0;
  alignas(64) std::atomic<std::uint64_t> head_{0};  // next sequence to hand out
  alignas(64) std::atomic<std::uint64_t> alerts_{0};
  std::atomic<bool> alert_claimed_{false};
  std::atomic<AlertHook> alert_{nullptr};
  void* alert_cookie_ = nullptr;
};

// Records the process events of a ProcessExecutor (executor.use(*this)):
// a managed tree spawned (its leader's Spawn), torn down (Teardown:
// terminated when it ended on its first signal, killed otherwise), an
// orphan adopted, a failed teardown (a Teardown or Cleanup with an error,
// other than a refused request), stale trees swept, a guardian that died
// and was restarted (or could not be), and trees still alive when the
// executor ended (Cleanup).
class MonitoringMiddleware final : public osl::Middleware {
 public:
  explicit MonitoringMiddleware(Monitoring& m) noexcept : monitoring_(m) {}
  void observe(const osl::ProcessEvent& event) noexcept override;

 private:
  Monitoring& monitoring_;
};

}  // namespace airssys
