#pragma once
// ProcessActor: an actor that runs OS processes for other actors (and plain
// threads) on request — the integration pattern the design recommends.
// Every operation goes through the System's process executor, so through
// the osl middleware (security policy, audit log).
//
// Guarantees:
// - Requests are values with a ReplyTo; each gets exactly one reply (a
//   Result): spawn, signal, kill (graceful or brutal), wait with a timeout,
//   status (with the live tree's CPU time and memory), stdin write and close.
// - Output: stdout and stderr, when piped, reach a subscriber as OutputLine
//   messages, one per line, at most OutputLine::kCapacity bytes each; a
//   longer line arrives in pieces, each but the last marked `partial`, cut
//   between UTF-8 characters (a piece may be up to 3 bytes short).
//   Lines are sent with Backpressure::Error: while the subscriber's mailbox
//   is full the line is kept, its pipe is not read, and a timer retries.
//   So the window of undelivered lines is the subscriber's mailbox bound, a
//   writer faster than its reader is held back by its pipe, and nothing is
//   lost or allocated on the way.
// - Requester cleanup: the actor monitors each requester that named itself
//   in ProcessSpawn; when it stops or crashes, the trees spawned for it are
//   torn down (first signal, then KILL after the process's kill timeout).
// - A process's tree ends with it: when the spawned process exits, what it
//   left running in its tree is torn down.
// - Ids are the actor's own, from 1, never reused. A process is known from
//   spawn until a Wait reported its exit (then it is "reaped"), or until
//   the requester it was spawned for stopped: then its tree is torn down
//   and its id forgotten once the tree is gone (a Wait already pending
//   gets the exit status; nobody is left to wait later). An unknown or
//   reaped id gives NotFound naming the id.
// - Fixed capacity (ProcessActorConfig), reserved when the actor is built
//   (spawn or restart); after that nothing allocates. The System's
//   SystemConfig::processes_per_actor also bounds the live trees of one
//   ProcessActor, and the executor's fd_watches its piped streams.

#include <airssys/rt/process.hpp>
#include <airssys/rt/system.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>

namespace airssys {

// A process as one ProcessActor knows it: 1, 2, ... in spawn order.
using ProcessId = std::uint64_t;

enum class OutputStream : std::uint8_t { Stdout = 1, Stderr = 2 };

// One line (or piece of a line) a process wrote, without its newline.
struct OutputLine {
  static constexpr std::size_t kCapacity = 256;
  ProcessId id = 0;
  OutputStream stream = OutputStream::Stdout;
  bool partial = false;  // the line goes on in the next OutputLine of this stream
  std::uint16_t length = 0;
  char bytes[kCapacity];
  std::string_view text() const noexcept { return {bytes, length}; }
};

// Where output lines go: an actor whose message type accepts OutputLine.
class OutputSubscriber {
 public:
  OutputSubscriber() = default;
  template <class M>
  static OutputSubscriber to(ActorRef<M> ref) noexcept {
    static_assert(std::is_constructible_v<M, const OutputLine&>,
                  "a subscriber's message type must be constructible from airssys::OutputLine");
    OutputSubscriber s;
    s.id_ = ref.id;
    s.send_ = [](System& sys, ActorId id, const OutputLine& line) -> Result<void> {
      return sys.send(ActorRef<M>{id}, line, Backpressure::Error);
    };
    return s;
  }
  bool valid() const noexcept { return send_ != nullptr; }
  ActorId id() const noexcept { return id_; }
  Result<void> deliver(System& sys, const OutputLine& line) const { return send_(sys, id_, line); }

 private:
  ActorId id_;
  Result<void> (*send_)(System&, ActorId, const OutputLine&) = nullptr;
};

// What to run, kept inline (a request is one pooled message): program,
// arguments, environment and working directory in a fixed string area.
// A spec that overflows remembers it, and its spawn is refused with
// InvalidArgument naming what did not fit.
class ProcessSpec {
 public:
  static constexpr std::size_t kStringBytes = 640;
  static constexpr std::size_t kMaxArgs = 24;
  static constexpr std::size_t kMaxEnv = 8;

  explicit ProcessSpec(std::string_view program) noexcept;
  ProcessSpec& arg(std::string_view a) noexcept;
  ProcessSpec& env(std::string_view name_equals_value) noexcept;  // an override of the inherited environment
  ProcessSpec& clean_env(bool clean = true) noexcept;              // only the env() entries
  ProcessSpec& working_dir(std::string_view dir) noexcept;
  ProcessSpec& containment(Containment c) noexcept;
  // Stdio: stdin is Null unless piped here (then StdinWrite / StdinClose
  // feed it); stdout and stderr are inherited unless piped (then their
  // lines go to `subscriber`, or are read and discarded without one).
  ProcessSpec& stdin_pipe(bool pipe = true) noexcept;
  ProcessSpec& output(OutputSubscriber subscriber, bool stdout_pipe = true, bool stderr_pipe = true) noexcept;
  // How kill-on-cleanup ends this tree (requester gone, the ProcessActor
  // stopping, its leader exiting): the first signal, then KILL after the
  // timeout (0: KILL at once).
  ProcessSpec& on_cleanup(int first_signal, std::chrono::milliseconds kill_timeout) noexcept;

  Result<void> check() const noexcept;
  std::string_view program() const noexcept { return view(program_); }
  std::size_t arg_count() const noexcept { return args_; }
  std::string_view arg_at(std::size_t i) const noexcept { return view(arg_[i]); }
  std::size_t env_count() const noexcept { return envs_; }
  std::string_view env_at(std::size_t i) const noexcept { return view(env_[i]); }
  std::string_view working_dir() const noexcept { return view(dir_); }
  bool clean_env() const noexcept { return clean_env_; }
  Containment containment() const noexcept { return containment_; }
  bool stdin_piped() const noexcept { return stdin_pipe_; }
  bool stdout_piped() const noexcept { return stdout_pipe_; }
  bool stderr_piped() const noexcept { return stderr_pipe_; }
  // The operation that runs this spec, viewing its strings through `args`
  // and `env` (filled here; they must outlive the operation). The standard
  // streams are left to the caller.
  SpawnProcessOperation operation(std::string_view (&args)[kMaxArgs], std::string_view (&env)[kMaxEnv]) const noexcept {
    for (std::size_t i = 0; i < arg_count(); ++i) args[i] = arg_at(i);
    for (std::size_t i = 0; i < env_count(); ++i) env[i] = env_at(i);
    SpawnProcessOperation op;
    op.program = program();
    op.args = {args, arg_count()};
    op.env = {env, env_count()};
    op.env_mode = clean_env() ? osl::EnvMode::Clean : osl::EnvMode::InheritWithOverrides;
    op.working_dir = working_dir();
    op.containment = containment();
    return op;
  }
  const OutputSubscriber& subscriber() const noexcept { return subscriber_; }
  int first_signal() const noexcept { return first_signal_; }
  std::chrono::milliseconds kill_timeout() const noexcept { return kill_timeout_; }

 private:
  struct Slice {
    std::uint16_t offset = 0;
    std::uint16_t length = 0;
  };
  bool store(std::string_view s, Slice& out, const char* what) noexcept;
  // Stores `s` as list[count] and counts it, unless `max` are there
  // (overflow: `count_what`) or the string area is full (overflow: `what`).
  bool append(Slice* list, std::uint8_t& count, std::size_t max, std::string_view s, const char* count_what,
              const char* what) noexcept;
  std::string_view view(Slice s) const noexcept { return {strings_ + s.offset, s.length}; }

  char strings_[kStringBytes];
  std::uint16_t used_ = 0;
  Slice program_, dir_;
  Slice arg_[kMaxArgs];
  Slice env_[kMaxEnv];
  std::uint8_t args_ = 0, envs_ = 0;
  bool clean_env_ = false;
  bool stdin_pipe_ = false, stdout_pipe_ = false, stderr_pipe_ = false;
  Containment containment_ = Containment::Auto;
  const char* overflow_ = nullptr;  // what did not fit, if anything
  OutputSubscriber subscriber_;
  int first_signal_ = 0;  // 0: TERM
  std::chrono::milliseconds kill_timeout_{5000};
};

struct SpawnedProcess {
  ProcessId id = 0;
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
};

enum class ProcessState : std::uint8_t { Running, Exited };

struct ProcessStatus {
  ProcessId id = 0;
  ProcessState state = ProcessState::Running;
  int pid = -1;
  ExitStatus exit;                 // Exited: code, or signal and core_dumped
  // The live tree now (running processes of its group or cgroup); zero once
  // nothing of it runs.
  std::uint64_t cpu_ns = 0;
  std::uint64_t memory_bytes = 0;
  std::size_t processes = 0;
};

// How Kill ends a tree: graceful sends `first_signal` (0: TERM) to the
// whole tree and KILL after `timeout`; brutal sends KILL at once.
struct KillSpec {
  int first_signal = 0;
  std::chrono::milliseconds timeout{5000};
  static constexpr KillSpec brutal() noexcept { return {0, std::chrono::milliseconds{0}}; }
  static constexpr KillSpec graceful(int first_signal = 0,
                                     std::chrono::milliseconds timeout = std::chrono::milliseconds{5000}) noexcept {
    return {first_signal, timeout};
  }
};

// Requests. `requester`: the actor whose processes these are (torn down
// when it stops); invalid for a plain thread.
struct ProcessSpawn {
  ProcessSpec spec;
  ActorId requester;
  ReplyTo<Result<SpawnedProcess>> reply;
};
struct ProcessSignal {
  ProcessId id = 0;
  int signal = 15;
  ReplyTo<Result<void>> reply;
};
// Replied when the spawned process has exited (its status), the rest of
// its tree being torn down by then or after.
struct ProcessKill {
  ProcessId id = 0;
  KillSpec how;
  ReplyTo<Result<ExitStatus>> reply;
};
// Replied with the exit status once the process exited (and the id is
// reaped), or Timeout after `timeout` (nanoseconds::max(): none; 0: only
// looks; negative: InvalidArgument).
struct ProcessWait {
  ProcessId id = 0;
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
  ReplyTo<Result<ExitStatus>> reply;
};
struct ProcessStatusQuery {
  ProcessId id = 0;
  ReplyTo<Result<ProcessStatus>> reply;
};
// Writes what the pipe takes now, without waiting: the reply is the number
// of bytes written (0 when the pipe is full; write the rest again later).
// At most kCapacity bytes per request (more: InvalidArgument); send a
// longer input in pieces.
struct StdinWrite {
  static constexpr std::size_t kCapacity = 512;
  ProcessId id = 0;
  std::uint16_t length = 0;
  char bytes[kCapacity];
  ReplyTo<Result<std::size_t>> reply;
};
struct StdinClose {
  ProcessId id = 0;
  ReplyTo<Result<void>> reply;
};

namespace detail {
struct PipeReady {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  std::uint8_t stream = 0;  // 0 stdout, 1 stderr
};
struct OutputRetry {};
struct WaitExpired {
  std::uint32_t waiter = 0;
  std::uint32_t serial = 0;
};
}  // namespace detail

using ProcessActorMsg = std::variant<ProcessSpawn, ProcessSignal, ProcessKill, ProcessWait, ProcessStatusQuery,
                                     StdinWrite, StdinClose, Down, ProcessExited, detail::PipeReady,
                                     detail::OutputRetry, detail::WaitExpired>;

// The ProcessActor's fixed capacities, reserved when it is built. A count
// of 0 is taken as 1.
struct ProcessActorConfig {
  std::uint32_t max_processes = 8;   // known ids at once (running, or exited and not reaped)
  std::uint32_t max_waiters = 32;    // pending Wait and Kill replies
  std::uint32_t max_requesters = 16; // distinct requesters monitored at once
  // How soon a line refused by a full subscriber mailbox is offered again.
  std::chrono::nanoseconds output_retry = std::chrono::milliseconds(1);
  // Non-empty: the actor binds this name to itself in the System's
  // registry when it starts (and fails to start if it cannot, or if the
  // name is too long: see RegistryName), so that requesters find it after
  // a supervisor restarted it under a new ref. Owned: a copy of the
  // caller's bytes.
  RegistryName name{};
};

class ProcessActor final : public Actor<ProcessActorMsg> {
 public:
  explicit ProcessActor(const ProcessActorConfig& config = {});
  ~ProcessActor() override;

  void on_start(Context<ProcessActorMsg>& ctx) override;
  void on_message(Context<ProcessActorMsg>& ctx, ProcessActorMsg& msg) override;
  void on_stop(Context<ProcessActorMsg>& ctx, StopReason reason) override;

  struct Proc;
  struct Waiter;
  struct Requester;

 private:
  using Ctx = Context<ProcessActorMsg>;
  void handle(Ctx& ctx, ProcessSpawn& m);
  void handle(Ctx& ctx, ProcessSignal& m);
  void handle(Ctx& ctx, ProcessKill& m);
  void handle(Ctx& ctx, ProcessWait& m);
  void handle(Ctx& ctx, ProcessStatusQuery& m);
  void handle(Ctx& ctx, StdinWrite& m);
  void handle(Ctx& ctx, StdinClose& m);
  void handle(Ctx& ctx, Down& m);
  void handle(Ctx& ctx, ProcessExited& m);
  void handle(Ctx& ctx, detail::PipeReady& m);
  void handle(Ctx& ctx, detail::OutputRetry& m);
  void handle(Ctx& ctx, detail::WaitExpired& m);

  Proc* find(ProcessId id) noexcept;
  Error not_found(ProcessId id) const noexcept;
  template <class R>
  Proc* known(Ctx& ctx, ProcessId id, const ReplyTo<R>& reply) noexcept;
  void pump(Ctx& ctx, Proc& p, int stream) noexcept;
  void close_stream(Proc& p, int stream) noexcept;
  void close_all(Proc& p) noexcept;
  void retire(Proc& p) noexcept;
  void maybe_free(Proc& p) noexcept;
  void cleanup_tree(Ctx& ctx, Proc& p, int first_signal, std::int64_t timeout_ns) noexcept;
  Result<void> add_waiter(Ctx& ctx, Proc& p, ReplyTo<Result<ExitStatus>> reply, bool reaps,
                          std::chrono::nanoseconds timeout) noexcept;
  void answer_waiters(Ctx& ctx, Proc& p) noexcept;
  Result<void> watch_requester(Ctx& ctx, ActorId who) noexcept;

  ProcessActorConfig config_;
  std::unique_ptr<Proc[]> procs_;
  std::unique_ptr<Waiter[]> waiters_;
  std::unique_ptr<Requester[]> requesters_;
  osl::ProcessExecutor* executor_ = nullptr;
  ProcessId next_id_ = 1;
  std::uint32_t next_serial_ = 1;
  bool retry_armed_ = false;
};

// A plain thread's handle on a ProcessActor: each call asks and waits up
// to `timeout` for the reply (Errc::Timeout if none came), the actor's
// answer flattened into one Result. Not for use on a worker thread (use
// Context::ask with the request types there).
class ProcessActorRef {
 public:
  using Nanos = std::chrono::nanoseconds;
  static constexpr Nanos kAsk = std::chrono::seconds(10);

  ProcessActorRef(System& system, ActorRef<ProcessActorMsg> ref) noexcept : system_(&system), ref_(ref) {}
  ActorRef<ProcessActorMsg> ref() const noexcept { return ref_; }

  Result<SpawnedProcess> spawn(const ProcessSpec& spec, ActorId requester = {}, Nanos timeout = kAsk);
  Result<void> signal(ProcessId id, int sig, Nanos timeout = kAsk);
  Result<ExitStatus> kill(ProcessId id, KillSpec how, Nanos timeout = kAsk);
  // `wait_for`: how long the process may take; the ask waits that long
  // plus `timeout`.
  Result<ExitStatus> wait(ProcessId id, Nanos wait_for, Nanos timeout = kAsk);
  Result<ProcessStatus> status(ProcessId id, Nanos timeout = kAsk);
  // At most StdinWrite::kCapacity (512) bytes per call; the reply is what
  // the pipe took (0: full, write again later).
  Result<std::size_t> write_stdin(ProcessId id, std::string_view bytes, Nanos timeout = kAsk);
  Result<void> close_stdin(ProcessId id, Nanos timeout = kAsk);

 private:
  System* system_;
  ActorRef<ProcessActorMsg> ref_;
};

}  // namespace airssys
