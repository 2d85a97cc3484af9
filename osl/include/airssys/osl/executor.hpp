#pragma once
// ProcessExecutor: runs process operations through a middleware chain
// (security policy, audit log), holds every process it spawned from spawn
// to reap, and tears managed trees down completely.
//
// Guarantees:
// - Every process is held by a handle (pidfd) until it is reaped; signals go
//   through it, never to a bare number, and never to pgid 0, 1 or -1.
// - A Managed process is contained (a cgroup of its own, or its process
//   group with this process as child subreaper), is killed if the spawning
//   thread dies (parent-death signal), and its whole tree is killed if the
//   host process dies, even by SIGKILL (the guardian, arch/guardian.hpp).
// - Teardown reaches the whole tree — descendants that called setsid()
//   included — and reaps everything it kills.
// - Destroying the executor tears down every managed tree it still holds;
//   Detached processes are let go.
// - Fixed capacity, reserved at construction: the process table, the
//   spawn buffers; "full" is an error value.
//
// Threads: operations may be called from any thread. The table is guarded
// by a mutex held only for bookkeeping, never across a wait. With a reactor
// (start_reactor), a thread of the executor reaps exits and drives
// teardowns asynchronously and reports them to an ExitSink.

#include <airssys/osl/operations.hpp>

#include <airssys/arch/usage.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace airssys::arch {
class CgroupRoot;
class ChildLister;
class Guardian;
class Poller;
}  // namespace airssys::arch

namespace airssys::osl {

// Who asks for an operation, for the policy and the audit log.
struct SecurityContext {
  std::string_view principal = "runtime";
};

// Everything the executor does or sees, as the middleware observes it.
struct ProcessEvent {
  enum class Kind : std::uint8_t {
    Spawn, Signal, GroupKill, Wait, Exit, OrphanAdopted, Teardown, Cleanup, Denied,
    StaleSwept,  // trees a dead runtime left (in its cgroups, or marked process groups), killed
    GuardianRestarted,  // the guardian died and a new one was started (pid); error: it could not be
  };
  Kind kind = Kind::Spawn;
  std::int64_t time_ns = 0;          // wall clock
  std::string_view principal;
  std::string_view program;          // Spawn, Denied: as given (argv[0])
  std::string_view executable;       // Spawn, Denied: the fully resolved file exec runs, once known
  const SpawnProcessOperation* spawn = nullptr;  // Spawn, Denied: argv, working_dir, env (names for the audit)
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
  ProcessLifetime lifetime = ProcessLifetime::Managed;
  int signal = 0;                    // Signal, GroupKill
  ExitStatus status;                 // Exit
  // Exit: the process leads a managed tree (tree_ended applies to it).
  bool tree_leader = false;
  // Exit of a managed tree's leader: nothing of its tree is left, so the
  // tree ended with it (counted cleaned; no teardown follows).
  bool tree_ended = false;
  const TeardownReport* teardown = nullptr;  // Teardown
  const Error* error = nullptr;      // null: the operation succeeded
  std::size_t trees = 0;             // StaleSwept: live trees of dead runtimes killed
  std::size_t processes = 0;         // StaleSwept: the processes in them
};
const char* to_string(ProcessEvent::Kind k) noexcept;

// What an operation is about to do, for check().
struct OperationView {
  enum class Kind : std::uint8_t { Spawn, Signal, GroupKill, Wait, Teardown };
  Kind kind = Kind::Spawn;
  const SpawnProcessOperation* spawn = nullptr;
  // Spawn: the file exec will run — its path with every symlink and ".."
  // resolved, and its identity (device and inode) — held open until the
  // exec, so that the file judged is the file that runs.
  std::string_view resolved_program;
  arch::FileIdentity program_identity;
  int pid = -1;
  int pgid = -1;
  int signal = 0;
};

// A link of the chain. check() may deny an operation with an error value
// (it is not run, and a Denied event is observed); observe() sees every
// event. Both are called on the thread doing the work, must not block for
// long, and must not call back into the executor.
class Middleware {
 public:
  virtual ~Middleware() = default;
  virtual Result<void> check(const OperationView& op, const SecurityContext& who) noexcept {
    (void)op;
    (void)who;
    return {};
  }
  virtual void observe(const ProcessEvent& event) noexcept { (void)event; }
};

// Receives what the reactor finds, in a reactor pass (on the reactor's
// thread, or on a thread that runs ProcessExecutor::reactor_pass(); one
// pass at a time), with the executor's lock released: a report may wake a
// thread that calls the executor at once, and the sink itself may call it. (A blocking
// TeardownOperation's reports are handed to the reactor too; those of the
// executor's destructor come from the destructor's thread.)
class ExitSink {
 public:
  virtual ~ExitSink() = default;
  // A process this executor spawned ended and was reaped.
  virtual void on_exit(std::uint64_t owner, int pid, ExitStatus status) noexcept = 0;
  // An asynchronous teardown (request_teardown) finished.
  virtual void on_teardown(std::uint64_t owner, int pid, const TeardownReport& report) noexcept {
    (void)owner;
    (void)pid;
    (void)report;
  }
};

// Told by the reactor that a watched descriptor (a pipe's read end) has
// data or is at its end, in a reactor pass (see ExitSink). One-shot: not
// told again until ProcessExecutor::rearm. Must not block, and must not
// call back into the executor, except to unwatch its own descriptor
// (handing the news to another thread is what it is for).
class FdWatcher {
 public:
  virtual ~FdWatcher() = default;
  virtual void on_readable(int fd) noexcept = 0;
};

struct ExecutorConfig {
  std::size_t max_processes = 256;       // spawned, adopted and not yet reaped (at most 1024)
  std::size_t spawn_buffers = 8;         // concurrent spawns
  // argv + env + strings of one spawn. 0: as much as exec accepts
  // (arch::argument_limit(), 2 MiB by default on Linux) plus room for the
  // paths and the tree marker, so that whatever the kernel would run fits.
  // At least 16 KiB. The buffers are reserved, not touched: memory is used
  // as spawns fill them.
  std::size_t spawn_buffer_bytes = 0;
  // null: see arch::CgroupRoot::open. Copied when the executor is built
  // (it is read at the first cgroup-contained spawn).
  const char* cgroup_base = nullptr;
  // How often the reactor looks for escaped orphans while process-group
  // contained trees live (adopted ones are then guarded too).
  std::int64_t orphan_scan_ns = 50'000'000;
  // Descriptors the reactor can watch at once (watch_readable), reserved
  // at construction.
  std::size_t fd_watches = 128;
};

class ProcessExecutor {
 public:
  static constexpr std::size_t kMaxMiddleware = 16;

  explicit ProcessExecutor(const ExecutorConfig& config = {});
  ~ProcessExecutor();  // shutdown()
  // Ends the executor's work, as its destructor does: the reactor stops,
  // every managed tree is killed and reaped, Detached processes are let
  // go, the guardian stops. Afterwards counters(), live() and managed()
  // still answer (the final counts); nothing else may be called. Once:
  // a second call does nothing.
  void shutdown() noexcept;
  ProcessExecutor(const ProcessExecutor&) = delete;
  ProcessExecutor& operator=(const ProcessExecutor&) = delete;

  // Appends a link (not owned; must outlive the executor). Full after
  // kMaxMiddleware. Configure before the first operation.
  Result<void> use(Middleware& m) noexcept;

  // `owner` tags the process for the ExitSink (an opaque id of the caller's choosing).
  Result<SpawnProcessResult> execute(const SpawnProcessOperation& op, const SecurityContext& who = {},
                                     std::uint64_t owner = 0) noexcept;
  Result<void> execute(const KillProcessGroupOperation& op, const SecurityContext& who = {}) noexcept;
  Result<void> execute(const SignalProcessOperation& op, const SecurityContext& who = {}) noexcept;
  // AlreadyExists while the process's tree is being torn down (the
  // teardown reaps it); WouldDeadlock once a reactor runs.
  Result<ExitStatus> execute(const WaitProcessOperation& op, const SecurityContext& who = {}) noexcept;
  // Blocking graceful teardown (TERM, wait, KILL, reap).
  Result<TeardownReport> execute(const TeardownOperation& op, const SecurityContext& who = {}) noexcept;

  // Starts the reactor thread: from now on exits are reaped by it and
  // reported to `sink`; WaitProcessOperation is refused. Idempotent.
  Result<void> start_reactor(ExitSink& sink) noexcept;
  // For a thread that would rather handle the reactor's events itself than
  // be woken by the reactor for them (an idle worker whose actors own
  // processes; on a machine where waking a thread on another core is
  // slow, that hop costs more than the work): a descriptor that is
  // readable while an event waits (an exit, watched output, a dead
  // guardian); -1 before start_reactor. The thread then calls
  // reactor_pass(). The reactor thread still wakes for every event too.
  int event_handle() const noexcept;
  // One pass of the reactor on the calling thread, without waiting: the
  // events ready now handled, teardowns advanced, and the reports given to
  // the sink, from this thread (so the sink and the watchers are called on
  // whichever thread runs a pass, one pass at a time). False, doing
  // nothing, when another thread is in a pass (that pass handles the
  // events), when called from inside a pass (a sink's or a watcher's
  // call), or when there is no reactor. It never waits for a process.
  bool reactor_pass() noexcept;
  // Asynchronous teardown of every managed tree `owner` holds:
  // `first_signal` now (0: TERM; none when term_timeout_ns <= 0), KILL after
  // `term_timeout_ns`, then reaped; each tree is reported through the sink's
  // on_teardown with TeardownReport::owner_wide set. Needs the reactor.
  // Returns how many trees it counted: every managed tree of `owner` not
  // counted by an earlier call, those already being torn down one by one
  // included (their teardown goes on as it was).
  std::size_t request_teardown(std::uint64_t owner, std::int64_t term_timeout_ns, int first_signal = 0) noexcept;
  // The same for the one tree led by `pid`, which `owner` spawned (Managed):
  // for an integration actor that ends one tree and keeps the others.
  // NotFound if `owner` holds no such tree (it was already torn down and
  // released, or is not its); a tree already being torn down is left to
  // that teardown.
  Result<void> request_tree_teardown(std::uint64_t owner, int pid, std::int64_t term_timeout_ns,
                                     int first_signal = 0) noexcept;
  // CPU time and memory of the live processes of the tree led by `pid`
  // (its process group, and its cgroup in cgroup containment). NotFound if
  // no tree led by `pid` is held.
  Result<arch::TreeUsage> tree_usage(int pid) noexcept;

  // Readiness of descriptors on the reactor (needs start_reactor): `w` is
  // told once when `fd` is readable (or at its end), then again only after
  // rearm(fd). Fixed capacity (ExecutorConfig::fd_watches): Full when every
  // watch is taken, AlreadyExists if `fd` is watched, Unavailable without a
  // reactor. Nothing allocates per event.
  Result<void> watch_readable(int fd, FdWatcher& w) noexcept;
  Result<void> rearm(int fd) noexcept;
  // Stops watching `fd`: once it returns, no on_readable for it runs or
  // will run (a call in progress on the reactor is waited for, unless
  // unwatch is called from that call). Call it before closing `fd`.
  void unwatch(int fd) noexcept;


  struct Counters {
    std::uint64_t spawned = 0;        // managed trees spawned
    std::uint64_t cleaned = 0;        // managed trees torn down completely
    std::uint64_t killed = 0;         // processes reaped after SIGKILL
    std::uint64_t orphans_adopted = 0;
    // Escapees of a live tree that a sweep found but could not hold (the
    // process table was full): left running, adopted by a later sweep (or,
    // if it ends first, reaped as its tree's and counted adopted); one
    // Full OrphanAdopted event per second says so.
    std::uint64_t orphans_refused = 0;
    std::uint64_t detached = 0;
    // Live trees of dead runtimes killed: cgroup roots swept when the root
    // opens; process-group trees found by their markers at the first
    // managed spawn.
    std::uint64_t stale_trees = 0;
  };
  Counters counters() const noexcept;
  // How many table entries are in use (for tests: 0 when all is reaped).
  std::size_t live() const noexcept;
  // How many of them belong to managed trees (teardowns still to finish).
  std::size_t managed() const noexcept;
  // The containment Auto picks on this machine (opens the cgroup root on
  // first use), and why cgroups are not used when they are not.
  Containment auto_containment(Error* why_not = nullptr) noexcept;

  struct Entry;
  struct Buffers;

 private:
  void emit(ProcessEvent& e) noexcept;
  // keep_guardian (executor_entry.hpp), emitting GuardianRestarted when a guardian that ran was replaced.
  Result<void> keep_guardian_locked() noexcept;
  using SignalTarget = Result<void> (ProcessExecutor::*)(const OperationView&, ProcessEvent&) noexcept;
  Result<void> signal_operation(const OperationView& view, const SecurityContext& who, SignalTarget send) noexcept;
  Result<void> signal_group_locked(const OperationView& view, ProcessEvent& ev) noexcept;
  Result<void> signal_process_locked(const OperationView& view, ProcessEvent& ev) noexcept;
  Result<void> check(const OperationView& op, const SecurityContext& who, std::string_view program) noexcept;
  Result<void> ensure_contained(Containment c) noexcept;
  Entry* find_locked(int pid) noexcept;
  Entry* find_group_locked(int pgid) noexcept;
  bool teardown_step_locked(Entry& leader, std::int64_t now) noexcept;
  TeardownReport complete_teardown_locked(Entry& leader, std::string_view principal, ProcessEvent::Kind kind) noexcept;
  std::size_t sweep_orphans_locked(Entry* only) noexcept;
  void sweep_dead_hosts_locked() noexcept;
  void report_stale_locked(Containment c, std::size_t trees, std::size_t processes) noexcept;
  bool tree_gone_locked(Entry& leader) noexcept;
  void release_locked(Entry& e) noexcept;
  void report_exit_locked(Entry& e, ExitStatus st, std::string_view principal, bool tree_ended = false) noexcept;
  void settle_exit_locked(Entry& e, ExitStatus st, std::string_view principal) noexcept;
  struct SinkReport {
    std::uint64_t owner = 0;
    int pid = 0;
    bool teardown = false;  // on_teardown with `report`, else on_exit with `status`
    ExitStatus status;
    TeardownReport report;
    void deliver(ExitSink& sink) const noexcept {
      if (teardown) {
        sink.on_teardown(owner, pid, report);
      } else {
        sink.on_exit(owner, pid, status);
      }
    }
  };
  void to_sink_locked(const SinkReport& r) noexcept;
  void begin_teardown_locked(Entry& leader, std::int64_t term_timeout_ns, int first_signal = 0) noexcept;
  void signal_tree_locked(Entry& leader, int sig) noexcept;
  void report_group_skip_locked(Entry& leader, int sig) noexcept;
  void report_table_full_locked(const Entry& tree, int pid, int pgid, bool ended) noexcept;
  bool group_empty_locked(Entry& leader) noexcept;
  void reactor_loop() noexcept;
  // One pass, with pass_mu_ held; the orphan scans (a walk of /proc) only
  // when `scans` (on the reactor thread: a worker's pass stays short).
  void run_pass(bool scans) noexcept;
  void wake_reactor() noexcept;
  void reactor_handle_exit(std::uint32_t index) noexcept;
  void reactor_advance_teardowns(std::int64_t now) noexcept;
  // Runs the watchers of ready watched descriptors and marks their entries
  // in `ready` as handled (kWake). Before the reactor takes mu_.
  void dispatch_watches(std::uint64_t* ready, std::size_t n) noexcept;

  ExecutorConfig config_;
  mutable std::mutex mu_;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<Buffers> buffers_;
  Middleware* chain_[kMaxMiddleware] = {};
  std::size_t chain_size_ = 0;
  std::unique_ptr<arch::CgroupRoot> cgroup_root_;
  Error cgroup_error_;
  bool cgroup_tried_ = false;
  std::uint32_t guarded_root_incarnation_ = 0;  // the root's incarnation the guardian holds
  bool subreaper_ = false;
  std::unique_ptr<arch::Guardian> guardian_;
  // Our own children, listed by every sweep and quiesce walk (under mu_).
  std::unique_ptr<arch::ChildLister> children_;
  std::unique_ptr<char[]> cgroup_base_;  // config_.cgroup_base's copy
  std::uint64_t number_ = 0;  // this executor's, unique in the process: part of every tree marker
  // This process's start time and PID namespace: with its pid, the host
  // identity in every tree marker, which a later runtime checks to tell a
  // dead host's trees (found at the first managed spawn).
  std::uint64_t host_start_ = 0;
  std::uint64_t host_pidns_ = 0;
  std::uint64_t next_group_id_ = 1;
  Counters counters_;
  bool shut_down_ = false;  // shutdown() ran (its caller's thread only)
  // Reactor. `poller_` holds every descriptor the reactor handles; the
  // reactor thread waits on `reactor_wake_`, which holds poller_'s handle
  // and the wake-ups meant for the reactor thread alone (a thread in
  // reactor_pass() must not take those). A pass, on the reactor thread or
  // another (reactor_pass), runs under `pass_mu_`: one at a time.
  std::unique_ptr<arch::Poller> poller_;
  std::unique_ptr<arch::Poller> reactor_wake_;
  std::mutex pass_mu_;
  // The next orphan scan: written in the reactor thread's passes, read by
  // the reactor thread's wait.
  std::atomic<std::int64_t> next_scan_{0};
  ExitSink* sink_ = nullptr;
  // Sink reports are made under mu_ and given to the sink once it is
  // released (a report wakes a worker, which would otherwise run into the
  // lock the reactor still holds and sleep on it): queued in `reports_`
  // (under mu_), swapped into `delivering_` by the reactor (or the
  // destructor, once the reactor is gone) and delivered from there unlocked. Room for
  // an exit and a teardown of every entry; a report that finds it full
  // (the reactor held up for that long) is made on the spot, locked.
  std::unique_ptr<SinkReport[]> reports_;
  std::unique_ptr<SinkReport[]> delivering_;
  std::size_t report_count_ = 0;
  std::size_t take_reports_locked() noexcept;  // into delivering_; returns how many
  std::thread reactor_;
  std::atomic<bool> stopping_{false};
  // Under mu_: when the reactor's current wait ends (INT64_MAX: it waits
  // for an event only), and when it last saw a tree that needs orphan scans.
  std::int64_t reactor_wakes_at_ = INT64_MAX;
  std::int64_t scanned_trees_seen_at_ = INT64_MIN;  // INT64_MIN: never
  // Watched descriptors (watch_readable): their own lock, never held
  // across a watcher's call, so that a watcher may take anything but it.
  struct Watch {
    int fd = -1;
    FdWatcher* watcher = nullptr;
    std::uint32_t generation = 0;
    bool in_call = false;
  };
  std::mutex watch_mu_;
  std::condition_variable watch_done_;
  std::unique_ptr<Watch[]> watches_;
  // Rate limit of the table-full events (report_table_full_locked).
  std::int64_t last_full_event_ns_ = 0;
  std::uint64_t full_since_event_ = 0;
  // Escapees of live trees that a full table left running, remembered by
  // pid and start time with their tree's entry (under mu_): one that ends
  // before a slot frees has lost its environment marker with its memory,
  // and only this says that its zombie is the tree's to reap. As many as
  // the table has entries; a row is free again once its escapee is adopted
  // or reaped, or its tree's entry is released.
  struct Refused {
    int pid = -1;
    std::uint64_t start_ticks = 0;
    int tree = -1;
    std::uint32_t generation = 0;
  };
  std::unique_ptr<Refused[]> refused_;
  void remember_refused_locked(int pid, std::uint64_t start_ticks, const Entry& tree) noexcept;
  Entry* refused_tree_locked(int pid, std::uint64_t start_ticks, bool forget) noexcept;
  Entry* refused_tree_of(const Refused& r) noexcept;
};

}  // namespace airssys::osl
