// airssys-run: runs a program as a managed, contained process tree under a
// supervising actor, forwards SIGINT/SIGTERM/SIGHUP to it, tears the whole
// tree down when it ends (restarting it if asked), and exits with its
// status. See usage_text below for the exact behaviour.
//
// Shape: the main thread parses the command line, blocks the forwarded
// signals (before the System starts, so every runtime thread inherits the
// mask and only the main thread ever takes them), then supervises. Each run
// of PROGRAM is owned by a fresh RunActor: its on_start spawns PROGRAM, it
// receives ProcessExited and the forwarded signals, and it stops when
// PROGRAM ends. Its stop is what tears the tree down (the runtime sends
// SIGTERM to the group or cgroup, SIGKILL after --kill-timeout, and reaps
// everything, escapees included); the main thread waits for that to finish
// before it restarts PROGRAM or exits, so two runs' trees never overlap and
// nothing outlives airssys-run.
//
// --procfile FILE runs every line of a Procfile as a service under one
// Supervisor instead (tools/run/services.hpp); the parsing, signal
// blocking and PID 1 handling below serve both modes.

#include "run/exit_status.hpp"
#include "run/notice.hpp"
#include "run/services.hpp"
#include "run/signals.hpp"
#include "run/usage.hpp"

#include <airssys/arch/process.hpp>
#include <airssys/arch/wait.hpp>
#include <airssys/osl/audit.hpp>
#include <airssys/rt/system.hpp>

// POSIX signal masking and sigtimedwait are not in <csignal>. The library
// keeps OS headers inside arch/; this is an executable built on it, not
// part of it, so it includes <signal.h> itself (and <fcntl.h>, <unistd.h>
// for the standard descriptors' check).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using airssys::ActorRef;
using airssys::Containment;
using airssys::Context;
using airssys::Error;
using airssys::Errc;
using airssys::ExitStatus;
using airssys::ProcessExited;
using airssys::SpawnProcessOperation;
using airssys::StopReason;
using airssys::System;
using airssys::SystemConfig;
using Clock = std::chrono::steady_clock;

using airssys::run::kExitInternal;
using airssys::run::kExitUsage;
using airssys::run::next_signal;
using airssys::run::notice;
using airssys::run::start_failure_status;
using airssys::run::usage_text;

enum class RestartPolicy : std::uint8_t { Never, OnFailure, Always };

struct Options {
  Containment containment = Containment::Auto;
  std::int64_t kill_timeout_ms = 5000;
  std::string_view cwd;
  const char* audit = nullptr;
  RestartPolicy restart = RestartPolicy::Never;
  std::uint32_t max_restarts = 3;
  std::int64_t period_s = 60;
  bool verbose = false;
  const char* procfile = nullptr;
  bool strategy_given = false;
  airssys::Strategy strategy = airssys::Strategy::OneForOne;
  const char* metrics = nullptr;
  std::string_view program;
  std::vector<std::string_view> args;
};

// ---------------------------------------------------------------------------
// Command line.

enum class Parsed : std::uint8_t { Run, Help, Version, Bad };

// The error, then the synopsis (the usage text's first two lines) and a
// pointer to --help: the one useful line stays on the screen.
Parsed bad(const char* fmt, const char* what) {
  std::fprintf(stderr, "airssys-run: ");
  std::fprintf(stderr, fmt, what);
  const std::string_view usage = usage_text;
  const std::size_t synopsis = usage.find('\n', usage.find('\n') + 1) + 1;
  std::fprintf(stderr, "\n%.*sTry 'airssys-run --help' for the options.\n", static_cast<int>(synopsis), usage_text);
  return Parsed::Bad;
}

// A whole decimal number in [min, max]; nothing else (no sign, no suffix).
bool parse_number(std::string_view s, std::int64_t min, std::int64_t max, std::int64_t& out) {
  if (s.empty() || s.front() == '+' || s.front() == '-') return false;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

Parsed parse(int argc, char** argv, Options& o) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h") return Parsed::Help;
    if (arg.size() < 2 || arg.substr(0, 2) != "--") {
      if (!arg.empty() && arg.front() == '-') return bad("unknown option '%s'", argv[i]);
      break;  // the program, without a "--" before it
    }
    if (arg == "--help") return Parsed::Help;
    if (arg == "--version") return Parsed::Version;
    if (arg == "--verbose") {
      o.verbose = true;
      continue;
    }
    // The rest take a value: "--name VALUE" or "--name=VALUE".
    std::string_view name = arg;
    std::string_view value;
    const char* value_z = nullptr;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      value_z = argv[i] + eq + 1;
    }
    const bool known = name == "--containment" || name == "--kill-timeout" || name == "--cwd" ||
                       name == "--audit" || name == "--restart" || name == "--max-restarts" || name == "--period" ||
                       name == "--procfile" || name == "--strategy" || name == "--metrics";
    if (!known) return bad("unknown option '%s'", argv[i]);
    if (value_z == nullptr) {
      if (i + 1 >= argc) return bad("option '%s' needs a value", argv[i]);
      value_z = argv[++i];
      value = value_z;
    }
    std::int64_t n = 0;
    if (name == "--containment") {
      if (value == "auto") o.containment = Containment::Auto;
      else if (value == "cgroup") o.containment = Containment::Cgroup;
      else if (value == "pgroup") o.containment = Containment::ProcessGroup;
      else return bad("--containment: '%s' is not auto, cgroup or pgroup", value_z);
    } else if (name == "--kill-timeout") {
      // Up to a day: a bound keeps the nanosecond arithmetic far from overflow.
      if (!parse_number(value, 0, 86'400'000, n))
        return bad("--kill-timeout: '%s' is not a number of milliseconds (0..86400000)", value_z);
      o.kill_timeout_ms = n;
    } else if (name == "--cwd") {
      if (value.empty()) return bad("--cwd: %s", "the directory is empty");
      o.cwd = value;
    } else if (name == "--audit") {
      if (value.empty()) return bad("--audit: %s", "the file name is empty");
      o.audit = value_z;
    } else if (name == "--restart") {
      if (value == "never") o.restart = RestartPolicy::Never;
      else if (value == "on-failure") o.restart = RestartPolicy::OnFailure;
      else if (value == "always") o.restart = RestartPolicy::Always;
      else return bad("--restart: '%s' is not never, on-failure or always", value_z);
    } else if (name == "--max-restarts") {
      if (!parse_number(value, 0, 1'000'000, n))
        return bad("--max-restarts: '%s' is not a count (0..1000000)", value_z);
      o.max_restarts = static_cast<std::uint32_t>(n);
    } else if (name == "--procfile") {
      if (value.empty()) return bad("--procfile: %s", "the file name is empty");
      if (o.procfile != nullptr) return bad("--procfile given twice (the second is '%s'): one Procfile per run", value_z);
      o.procfile = value_z;
    } else if (name == "--strategy") {
      if (value == "one-for-one") o.strategy = airssys::Strategy::OneForOne;
      else if (value == "one-for-all") o.strategy = airssys::Strategy::OneForAll;
      else if (value == "rest-for-one") o.strategy = airssys::Strategy::RestForOne;
      else return bad("--strategy: '%s' is not one-for-one, one-for-all or rest-for-one", value_z);
      o.strategy_given = true;
    } else if (name == "--metrics") {
      if (value.empty()) return bad("--metrics: %s", "the file name is empty");
      o.metrics = value_z;
    } else {  // --period
      if (!parse_number(value, 1, 31'536'000, n))
        return bad("--period: '%s' is not a number of seconds (1..31536000)", value_z);
      o.period_s = n;
    }
  }
  if (o.procfile != nullptr) {
    if (i < argc) return bad("--procfile runs the file's services; '%s' cannot be run beside them", argv[i]);
    return Parsed::Run;
  }
  if (o.strategy_given) return bad("%s", "--strategy needs --procfile");
  if (o.metrics != nullptr) return bad("%s", "--metrics needs --procfile");
  if (i >= argc) return bad("%s", "no PROGRAM given");
  o.program = argv[i];
  if (o.program.empty()) return bad("%s", "PROGRAM is empty");
  for (++i; i < argc; ++i) o.args.emplace_back(argv[i]);
  return Parsed::Run;
}

// ---------------------------------------------------------------------------
// The actor that owns one run of PROGRAM.

struct Forward {
  int signal;
};
// The grace period after a forwarded SIGINT/SIGTERM is over.
struct GraceOver {};
using RunMessage = std::variant<ProcessExited, Forward, GraceOver>;

// What one run produced. The actor writes it; the main thread reads it
// only after `done` (release/acquire orders the fields with it).
struct RunReport {
  bool spawn_failed = false;
  Error spawn_error;
  int pid = -1;
  Containment containment = Containment::None;
  bool exited = false;
  ExitStatus status;
  std::atomic<bool> done{false};
};

class RunActor final : public airssys::Actor<RunMessage> {
 public:
  RunActor(const Options* options, RunReport* report) : options_(options), report_(report) {}

  void on_start(Context<RunMessage>& ctx) override {
    SpawnProcessOperation op;
    op.program = options_->program;
    op.args = options_->args;
    op.working_dir = options_->cwd;
    op.containment = options_->containment;
    // stdio stays inherited: PROGRAM talks to airssys-run's terminal or pipes.
    auto spawned = ctx.spawn_process(op);
    if (!spawned) {
      report_->spawn_failed = true;
      report_->spawn_error = spawned.error();
      ctx.stop();
      return;
    }
    pid_ = spawned.value().pid;
    report_->pid = pid_;
    report_->containment = spawned.value().containment;
  }

  void on_message(Context<RunMessage>& ctx, RunMessage& msg) override {
    if (auto* e = std::get_if<ProcessExited>(&msg)) {
      if (e->pid != pid_) return;
      exited_ = true;
      report_->exited = true;
      report_->status = e->status;
      if (stop_deadline_ns_ >= 0) {
        // PROGRAM ended within the grace a SIGINT/SIGTERM began: what it
        // left behind gets SIGTERM and the rest of that grace, not a new one.
        const std::int64_t left = std::max<std::int64_t>(stop_deadline_ns_ - airssys::arch::monotonic_ns(), 0);
        (void)tear_down_tree(ctx, left, SIGTERM);
      }
      // Stopping is what tears down the rest of the tree.
      ctx.stop();
    } else if (auto* f = std::get_if<Forward>(&msg)) {
      if (exited_) return;
      // Only the first SIGINT/SIGTERM comes here: a second one ends the
      // whole run at once (kill_everything).
      const bool stop_signal = f->signal == SIGINT || f->signal == SIGTERM;
      // Refused only if PROGRAM was reaped a moment ago; its ProcessExited
      // is on the way, so there is nothing left to do.
      (void)ctx.signal_process(pid_, f->signal);
      if (stop_signal) {
        // A stopped PROGRAM (^Z, SIGSTOP) takes the signal only once it
        // runs again: CONT after it, as the teardowns do.
        (void)ctx.signal_process(pid_, SIGCONT);
        stop_deadline_ns_ = airssys::arch::add_saturated(
            airssys::arch::monotonic_ns(), airssys::arch::ms_to_ns_saturated(options_->kill_timeout_ms));
        // If the timer cannot be armed, a second SIGINT/SIGTERM still works.
        (void)ctx.send_after(ctx.self(), RunMessage{GraceOver{}},
                             std::chrono::milliseconds(options_->kill_timeout_ms));
      }
    } else if (std::holds_alternative<GraceOver>(msg)) {
      if (exited_) return;
      // The grace is over for the whole tree, not only PROGRAM: SIGKILL to
      // every process in it now (its ProcessExited still comes). A second
      // grace for what PROGRAM leaves behind would double the wait the
      // user asked for with --kill-timeout.
      if (!tear_down_tree(ctx, 0, SIGKILL)) (void)ctx.signal_process(pid_, SIGKILL);  // already being torn down
    }
  }

  void on_stop(Context<RunMessage>&, StopReason) override {
    // Last touch of the report: the main thread may destroy it after this.
    report_->done.store(true, std::memory_order_release);
  }

 private:
  // PROGRAM's whole tree: `first_signal` now, SIGKILL `grace_ns` later
  // (at once when 0). False if the tree is already being torn down.
  bool tear_down_tree(Context<RunMessage>& ctx, std::int64_t grace_ns, int first_signal) {
    auto ex = ctx.system().process_executor();
    return ex && ex.value()->request_tree_teardown(ctx.self().id.to_bits(), pid_, grace_ns, first_signal);
  }

  const Options* options_;
  RunReport* report_;
  int pid_ = -1;
  bool exited_ = false;
  // When the grace a forwarded SIGINT/SIGTERM began ends (-1: none came).
  std::int64_t stop_deadline_ns_ = -1;
};

// ---------------------------------------------------------------------------
// Signals and supervision on the main thread.

sigset_t forwarded_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

struct Totals {
  std::uint32_t runs = 0;
  std::uint32_t restarts = 0;
  std::uint32_t exits_seen = 0;
  bool core_dumped = false;  // the last run's PROGRAM dumped core
  Containment containment = Containment::None;
  bool tree_left = false;  // a teardown outlasted its bound
  // A second SIGINT/SIGTERM: every tree was killed at once by a shutdown
  // with no grace.
  bool killed_now = false;
};

// The second SIGINT/SIGTERM: no more grace for anything. A shutdown with a
// zero deadline stops the actor and kills and reaps every tree at once;
// it returns only when the actor has finished (its report is complete).
int kill_everything(System& system, Totals& totals, int sig) {
  notice("airssys-run: signal %d again: killing the whole tree now\n", sig);
  (void)system.shutdown(std::chrono::nanoseconds(0));
  totals.killed_now = true;
  return 128 + SIGKILL;
}

// Runs PROGRAM (again and again under --restart) and returns the exit
// status of airssys-run.
int supervise(System& system, const Options& o, const sigset_t& signals, Totals& totals) {
  bool stop_requested = false;  // a SIGINT/SIGTERM came: no restart; a second one kills everything
  std::vector<Clock::time_point> recent_restarts;  // within --period
  int status = 0;
  for (;;) {
    RunReport report;
    auto ref = system.spawn<RunActor>(&o, &report);
    if (!ref) {
      notice("airssys-run: cannot start the supervising actor: %s\n", ref.error().message());
      return kExitInternal;
    }
    ++totals.runs;
    while (!report.done.load(std::memory_order_acquire)) {
      const int sig = next_signal(signals, std::chrono::milliseconds(10));
      if (sig == 0) continue;
      if (sig == SIGINT || sig == SIGTERM) {
        if (stop_requested) return kill_everything(system, totals, sig);
        stop_requested = true;
      }
      // Dead when the run just ended: nothing is left to signal.
      (void)system.send(ref.value(), RunMessage{Forward{sig}});
    }
    // The actor has stopped and the runtime is tearing its tree down
    // (SIGTERM, SIGKILL after --kill-timeout, then the reaping). Nothing
    // else holds processes, so the tree is gone when none is held. The
    // bound only guards against a runtime that never finishes: the
    // shutdown below kills whatever is left.
    const auto limit = Clock::now() + std::chrono::milliseconds(o.kill_timeout_ms) + std::chrono::seconds(10);
    while (system.alive(ref.value()) || system.processes_held() != 0) {
      if (Clock::now() > limit) {
        totals.tree_left = true;
        break;
      }
      // Signals during the teardown are not forwarded (PROGRAM is gone);
      // a SIGINT/SIGTERM still cancels any restart, and a second one ends
      // the teardown's grace.
      const int sig = next_signal(signals, std::chrono::milliseconds(10));
      if (sig == SIGINT || sig == SIGTERM) {
        if (stop_requested) return kill_everything(system, totals, sig);
        stop_requested = true;
      }
    }
    // A SIGINT/SIGTERM that came as the teardown ended still cancels the
    // restart.
    for (int sig; (sig = next_signal(signals, std::chrono::milliseconds(0))) != 0;)
      if (sig == SIGINT || sig == SIGTERM) stop_requested = true;
    if (report.spawn_failed) {
      notice("airssys-run: %s\n", report.spawn_error.message());
      return start_failure_status(report.spawn_error);
    }
    totals.containment = report.containment;
    if (report.exited) ++totals.exits_seen;
    status = report.status.shell_status();
    totals.core_dumped = report.exited && report.status.core_dumped;
    // A tree still held by the runtime must not overlap a new one.
    if (stop_requested || totals.tree_left || o.restart == RestartPolicy::Never) return status;
    if (o.restart == RestartPolicy::OnFailure && status == 0) return status;
    const auto now = Clock::now();
    const auto window = std::chrono::seconds(o.period_s);
    std::erase_if(recent_restarts, [&](Clock::time_point t) { return now - t >= window; });
    if (recent_restarts.size() >= o.max_restarts) return status;  // one more would exceed N
    recent_restarts.push_back(now);
    ++totals.restarts;
  }
}

// ---------------------------------------------------------------------------
// As PID 1 (a container's init).
//
// Every orphan of the PID namespace comes to PID 1, processes that were
// never part of PROGRAM's tree included (one started by `docker exec`, or
// one whose environment marker was stripped), and a zombie PID 1 does not
// reap stays for good. The runtime reaps only what it recognises as its
// trees', and must not reap by number what it holds by a pidfd. So PID 1
// splits in two: it starts airssys-run again as its only child (the
// supervisor, which runs PROGRAM exactly as it would anywhere else),
// forwards SIGINT, SIGTERM and SIGHUP to it, reaps every other child the
// moment it ends, and exits with the supervisor's status. The supervisor
// is in a process group of its own, so that a signal to PID 1's group
// (a terminal's ^C) reaches it once, forwarded, not twice.

// Reaps every ended child of ours but `keep`. Each is our child until we
// reap it, so its number is still its own.
void reap_other_children(int keep) {
  // Every child, however many (an init may have thousands): a zombie listed
  // after the first few must be reaped too.
  std::vector<int> pids(64);
  for (bool reaped = true; reaped;) {
    reaped = false;
    std::size_t n = airssys::arch::list_children(pids.data(), pids.size());
    if (n > pids.size()) {
      pids.resize(n + 64);
      n = std::min(airssys::arch::list_children(pids.data(), pids.size()), pids.size());
    }
    for (std::size_t i = 0; i < n; ++i) {
      airssys::arch::ProcessInfo info;
      ExitStatus ignored;
      if (pids[i] != keep && airssys::arch::process_info(pids[i], info) && info.ended)
        reaped |= airssys::arch::reap_ended_child(pids[i], ignored);
    }
  }
}

int run_as_init(char** argv, const sigset_t& forwarded) {
  sigset_t wake = forwarded;
  sigaddset(&wake, SIGCHLD);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &wake, nullptr); rc != 0) {
    notice("airssys-run: cannot block signals: %s\n", std::strerror(rc));
    return kExitInternal;
  }
  airssys::arch::SpawnSpec spec;
  spec.program = "/proc/self/exe";
  spec.argv = argv;
  spec.group = airssys::arch::GroupMode::NewGroup;
  spec.kill_with_parent = true;
  auto supervisor = airssys::arch::spawn(spec);
  if (!supervisor) {
    notice("airssys-run: cannot start the supervisor under PID 1: %s\n",
           supervisor.error().message());
    return kExitInternal;
  }
  for (;;) {
    const int sig = next_signal(wake, std::chrono::milliseconds(100));
    if (sig != 0 && sig != SIGCHLD) (void)airssys::arch::signal(supervisor.value(), sig);
    reap_other_children(supervisor.value().pid());
    if (auto st = airssys::arch::try_wait(supervisor.value())) {
      reap_other_children(-1);
      return st.value().shell_status();
    }
  }
}

}  // namespace

// A standard descriptor (0, 1, 2) that was closed (`>&-`) is held by
// /dev/null, close-on-exec: no descriptor of airssys-run's own takes its
// number and is then written to as if it were stdout, what is written there
// is discarded at once (as to a reader that takes everything), and a
// program run still finds it closed.
void hold_closed_standard_descriptors() noexcept {
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    const int held = ::open("/dev/null", (fd == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    if (held >= 0 && held != fd) {
      (void)::dup3(held, fd, O_CLOEXEC);
      ::close(held);
    }
  }
}

int main(int argc, char** argv) {
  hold_closed_standard_descriptors();
  Options options;
  switch (parse(argc, argv, options)) {
    case Parsed::Help: std::fputs(usage_text, stdout); return 0;
    case Parsed::Version: std::puts("airssys-run " AIRSSYS_VERSION); return 0;
    case Parsed::Bad: return kExitUsage;
    case Parsed::Run: break;
  }

  // Before any runtime thread exists: they all inherit the mask, so the
  // signals stay pending for sigtimedwait here instead of killing
  // airssys-run. Children get a clean mask (the library resets it).
  const sigset_t signals = forwarded_signals();
  if (const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
    notice("airssys-run: cannot block signals: %s\n", std::strerror(rc));
    return kExitInternal;
  }
  // A closed stdout or stderr must not kill airssys-run in the middle of a
  // teardown: its writes get EPIPE instead (the Procfile mode then stops
  // every service). The services get SIGPIPE back: the library resets
  // every signal's disposition in a child.
  ::signal(SIGPIPE, SIG_IGN);
  if (airssys::arch::own_pid() == 1) return run_as_init(argv, signals);

  // Declared before the System: middleware must outlive it.
  std::unique_ptr<airssys::osl::AuditLog> audit;
  if (options.audit != nullptr) {
    auto log = airssys::osl::AuditLog::to_file(options.audit);
    if (!log) {
      notice("airssys-run: --audit: %s\n", log.error().message());
      return kExitUsage;
    }
    audit = std::move(log.value());
  }

  if (options.procfile != nullptr) {
    airssys::run::ProcfileOptions p;
    p.procfile = options.procfile;
    p.strategy = options.strategy;
    p.restart = options.restart == RestartPolicy::Always      ? airssys::RestartType::Permanent
                : options.restart == RestartPolicy::OnFailure ? airssys::RestartType::Transient
                                                              : airssys::RestartType::Temporary;
    p.max_restarts = options.max_restarts;
    p.period_s = options.period_s;
    p.kill_timeout_ms = options.kill_timeout_ms;
    p.containment = options.containment;
    p.cwd = options.cwd;
    p.audit = audit.get();
    p.metrics = options.metrics;
    const int status = airssys::run::run_procfile(p, signals);
    if (audit && audit->write_failures() > 0) {
      notice("airssys-run: --audit: %llu records could not be written: %s\n",
             static_cast<unsigned long long>(audit->write_failures()), audit->last_failure().message());
      return kExitInternal;
    }
    return status;
  }

  // One actor at a time and a handful of messages: small pools.
  SystemConfig config;
  config.workers = 1;
  config.actor_capacity = 8;
  config.mailbox_capacity = 256;
  config.message_blocks = {1024, 64, 16, 8, 4, 4, 4};
  config.actor_blocks = {8, 8, 8, 4, 4, 4, 4};
  config.timers_per_worker = 64;
  config.pending_asks = 4;
  config.registry_capacity = 4;
  config.broker_topics = 1;
  config.subscribers_per_topic = 1;
  config.process_owners = 4;
  config.processes_per_actor = 2;
  config.process_kill_timeout = std::chrono::milliseconds(options.kill_timeout_ms);
  if (audit) config.process_middleware[0] = audit.get();
  auto system = System::create(config);
  if (!system) {
    notice("airssys-run: cannot start the runtime: %s\n", system.error().message());
    return kExitInternal;
  }

  Totals totals;
  const int status = supervise(*system.value(), options, signals, totals);
  // What Auto chose, when PROGRAM never ran (not found, say): the executor
  // was built for the attempt, and says.
  Containment shown = totals.containment != Containment::None ? totals.containment : options.containment;
  if (shown == Containment::Auto && !totals.killed_now)
    if (auto ex = system.value()->process_executor(); ex) shown = ex.value()->auto_containment();
  const auto deadline = std::chrono::milliseconds(options.kill_timeout_ms) + std::chrono::seconds(10);
  if (totals.killed_now) {
    // Already shut down, with no grace.
  } else if (auto r = system.value()->shutdown(deadline); !r) {
    notice("airssys-run: shutdown: %s\n", r.error().message());
  }
  if (totals.tree_left)
    notice("airssys-run: a process tree outlasted its teardown; it was killed at shutdown\n");
  // The final counts: they outlive the executor.
  const auto counters = system.value()->process_counters();
  if (options.verbose) {
    notice("airssys-run: containment=%s runs=%u restarts=%u exits_seen=%u trees_spawned=%llu "
           "trees_cleaned=%llu killed=%llu orphans_adopted=%llu status=%d core_dumped=%d\n",
           airssys::osl::to_string(shown), totals.runs, totals.restarts, totals.exits_seen,
           static_cast<unsigned long long>(counters.spawned),
           static_cast<unsigned long long>(counters.cleaned),
           static_cast<unsigned long long>(counters.killed),
           static_cast<unsigned long long>(counters.orphans_adopted), status, totals.core_dumped ? 1 : 0);
  }
  // An audit trail with holes is airssys-run's own failure, whatever
  // PROGRAM did.
  if (audit && audit->write_failures() > 0) {
    notice("airssys-run: --audit: %llu records could not be written: %s\n",
           static_cast<unsigned long long>(audit->write_failures()), audit->last_failure().message());
    return kExitInternal;
  }
  return status;
}
