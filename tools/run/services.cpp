#include "run/services.hpp"

#include "run/exit_status.hpp"
#include "run/notice.hpp"
#include "run/metrics.hpp"
#include "run/output.hpp"
#include "run/signals.hpp"

#include <airssys/arch/process.hpp>
#include <airssys/arch/stream.hpp>
#include <airssys/rt/monitoring.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <variant>

// fstat, to tell whether stderr is stdout's file: an executable built on
// the library, not part of it, so it includes what it needs itself.
#include <sys/stat.h>

namespace airssys::run {

namespace {

using Clock = std::chrono::steady_clock;

// stderr the same file as a stdout that takes nothing (`2>&1` into a
// stalled reader): airssys-run's own messages do not wait for room either,
// so that the whole exit waits for stdout once (the output's 5 s), not once
// more for stderr.
void stderr_follows_stdout(const ServiceOutput& output) noexcept {
  if (!output.stalled()) return;
  struct stat out {}, err {};
  if (::fstat(1, &out) == 0 && ::fstat(2, &err) == 0 && out.st_dev == err.st_dev && out.st_ino == err.st_ino)
    notices_stalled();
}

// How a service's last run ended, as the summary and the metrics say it.
enum class Last : std::uint8_t { NotStarted, Running, Exited, Stopped, StartFailed };

struct Outcome {
  Last last = Last::NotStarted;
  int status = 0;  // of the last exit: shell status; StartFailed: 125..127
};

// What one service did. Its actors write it (one at a time: a replacement
// starts only after its predecessor's Down, which the runtime's message
// passing orders after everything the predecessor wrote), the main thread
// reads it for the metrics, the summary, and to see whether every service
// has ended for good. Counters are relaxed: each is a value on its own.
// How the last run ended and its status are one word, so that a reader
// never pairs one run's ending with another run's status.
struct ServiceState {
  std::size_t index = 0;
  const ProcfileEntry* entry = nullptr;
  std::atomic<std::uint32_t> starts{0};
  std::atomic<std::uint32_t> exits{0};     // the command ended by itself
  std::atomic<std::uint32_t> failures{0};  // ... with a status other than 0, or could not start

  Outcome outcome() const noexcept {
    const std::uint64_t v = outcome_.load(std::memory_order_relaxed);
    return Outcome{static_cast<Last>(v >> 32), static_cast<int>(static_cast<std::uint32_t>(v))};
  }
  // Only the service's current actor calls it.
  void set(Last last, int status) noexcept {
    outcome_.store((std::uint64_t{static_cast<std::uint8_t>(last)} << 32) | static_cast<std::uint32_t>(status),
                   std::memory_order_relaxed);
  }
  void set(Last last) noexcept { set(last, outcome().status); }

 private:
  std::atomic<std::uint64_t> outcome_{0};  // Last::NotStarted, status 0
};

// What every service's actor shares.
struct Shared {
  const ProcfileOptions* options = nullptr;
  ServiceOutput* output = nullptr;
  // The first service that failed: its index << 32 | its status (exit
  // code, 128+signal, or 125..127 when it could not be started); -1 until
  // one did. Set once.
  std::atomic<std::int64_t> first_failure{-1};

  void failed(std::size_t service, int status) noexcept {
    std::int64_t none = -1;
    // relaxed: the value is the whole message; nothing else is published
    // with it.
    first_failure.compare_exchange_strong(none, (static_cast<std::int64_t>(service) << 32) | status,
                                          std::memory_order_relaxed);
  }
  int first_status() const noexcept {
    const std::int64_t v = first_failure.load(std::memory_order_relaxed);
    return v < 0 ? 0 : static_cast<int>(v & 0xffffffff);
  }
  std::size_t first_service() const noexcept {
    return static_cast<std::size_t>(first_failure.load(std::memory_order_relaxed) >> 32);
  }
};

using ServiceMessage = std::variant<ProcessExited>;

class ServiceActor final : public Actor<ServiceMessage> {
 public:
  ServiceActor(Shared* shared, ServiceState* state) : shared_(shared), state_(state) {}

  void on_start(Context<ServiceMessage>& ctx) override {
    const std::string_view args[] = {"-c", state_->entry->command};
    SpawnProcessOperation op;
    op.program = "/bin/sh";
    op.args = args;
    op.working_dir = shared_->options->cwd;
    op.containment = shared_->options->containment;
    op.stdio[0] = osl::StdioConfig::null();
    op.stdio[1] = osl::StdioConfig::pipe();
    op.stdio[2] = osl::StdioConfig::pipe();
    auto spawned = ctx.spawn_process(op);
    if (!spawned) {
      const int status = start_failure_status(spawned.error());
      state_->set(Last::StartFailed, status);
      state_->failures.fetch_add(1, std::memory_order_relaxed);
      shared_->failed(state_->index, status);
      // On the service's own line; a first start's failure is also the
      // supervisor's, which run_procfile prints on stderr.
      shared_->output->note(state_->index, std::string("cannot start: ") + spawned.error().message());
      // Down(Failed) before Started: the supervisor's start fails, or the
      // restart counts as failed and is retried.
      ctx.fail(spawned.error());
      return;
    }
    pid_ = spawned.value().pid;
    const std::uint32_t run = state_->starts.fetch_add(1, std::memory_order_relaxed);
    state_->set(Last::Running);
    std::string text = (run == 0 ? "started, pid " : "restarted, pid ") + std::to_string(pid_);
    if (run > 0) text += " (restart " + std::to_string(run) + ")";
    // Before its pipes are read: the line comes ahead of the service's own.
    shared_->output->note(state_->index, text);
    shared_->output->add(spawned.value().pipes[1], state_->index);
    shared_->output->add(spawned.value().pipes[2], state_->index);
  }

  void on_message(Context<ServiceMessage>& ctx, ServiceMessage& msg) override {
    const auto& e = std::get<ProcessExited>(msg);
    if (e.pid != pid_) return;
    exited_ = true;
    const int status = e.status.shell_status();
    state_->exits.fetch_add(1, std::memory_order_relaxed);
    state_->set(Last::Exited, status);
    std::string text = "exited with status " + std::to_string(status);
    if (e.status.signal != 0)
      text += " (signal " + std::to_string(e.status.signal) + (e.status.core_dumped ? ", core dumped)" : ")");
    shared_->output->note_after_output(state_->index, text);
    if (status == 0) {
      // Ending is what tears down the rest of its tree.
      ctx.stop();
      return;
    }
    state_->failures.fetch_add(1, std::memory_order_relaxed);
    shared_->failed(state_->index, status);
    const Error failure =
        Error::make(Errc::Failed, "service '%s' exited with status %d", state_->entry->name.c_str(), status);
    ctx.fail(failure);
  }

  void on_stop(Context<ServiceMessage>&, StopReason) override {
    if (exited_ || pid_ < 0) return;
    // Stopped by the supervisor (a restart, a sibling's, the shutdown):
    // the runtime now tears the tree down.
    state_->set(Last::Stopped);
    const std::int64_t ms = shared_->options->kill_timeout_ms;
    shared_->output->note(state_->index, ms == 0 ? std::string("stopping: SIGKILL to its tree")
                                                 : "stopping: SIGTERM to its tree, SIGKILL after " +
                                                       std::to_string(ms) + " ms");
  }

 private:
  Shared* shared_;
  ServiceState* state_;
  int pid_ = -1;
  bool exited_ = false;
};

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::OneForOne: return "one-for-one";
    case Strategy::OneForAll: return "one-for-all";
    case Strategy::RestForOne: return "rest-for-one";
    case Strategy::SimpleOneForOne: break;
  }
  return "simple-one-for-one";
}

const char* restart_name(RestartType r) {
  switch (r) {
    case RestartType::Permanent: return "always";
    case RestartType::Transient: return "on-failure";
    case RestartType::Temporary: break;
  }
  return "never";
}

std::string describe_last(const ServiceState& s) {
  const Outcome o = s.outcome();
  const int status = o.status;
  switch (o.last) {
    case Last::NotStarted: return "never started";
    case Last::Running: return "running";  // only if a teardown outlasted its bound
    case Last::Stopped: return "stopped by the supervisor (tree torn down)";
    case Last::StartFailed: return "could not start (status " + std::to_string(status) + ")";
    case Last::Exited: break;
  }
  if (status > 128) return "killed by signal " + std::to_string(status - 128) + " (status " + std::to_string(status) + ")";
  return "exited with status " + std::to_string(status);
}

// True once no service runs and the supervisor will start none again:
// temporary services never restart, so every one that ended is done;
// transient ones restart after a failure, also when one-for-all or
// rest-for-one revives a sibling, so they are done only when every one
// ended normally (then none is left running to fail); permanent ones are
// never done.
bool ended_for_good(RestartType restart, const std::vector<std::unique_ptr<ServiceState>>& states) {
  if (restart == RestartType::Permanent) return false;
  return std::all_of(states.begin(), states.end(), [&](const auto& s) {
    const Outcome o = s->outcome();
    if (restart == RestartType::Temporary) return o.last != Last::Running && o.last != Last::NotStarted;
    return o.last == Last::Exited && o.status == 0;
  });
}

std::vector<MetricsService> metrics_view(const std::vector<std::unique_ptr<ServiceState>>& states) {
  std::vector<MetricsService> out;
  for (const auto& s : states) {
    MetricsService m;
    m.name = s->entry->name;
    const std::uint32_t starts = s->starts.load(std::memory_order_relaxed);
    m.restarts = starts > 0 ? starts - 1 : 0;
    const Outcome o = s->outcome();
    m.running = o.last == Last::Running;
    m.exits = s->exits.load(std::memory_order_relaxed);
    m.failures = s->failures.load(std::memory_order_relaxed);
    m.last_status = o.status;
    // A run that started again, or was stopped, keeps an earlier exit's status.
    m.has_status = m.exits > 0 || o.last == Last::StartFailed;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

int run_procfile(const ProcfileOptions& o, const sigset_t& signals) {
  std::vector<ProcfileEntry> entries;
  std::string error;
  if (!read_procfile(o.procfile, entries, error)) {
    notice("airssys-run: %s\n", error.c_str());
    return kExitUsage;
  }
  const auto count = static_cast<std::uint32_t>(entries.size());

  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  // NO_COLOR (no-color.org): present and not empty turns colour off.
  const char* no_color = std::getenv("NO_COLOR");
  const bool color = arch::is_terminal(1) && (no_color == nullptr || *no_color == '\0');
  ServiceOutput output(names, color, 1);

  Shared shared;
  shared.options = &o;
  shared.output = &output;
  std::vector<std::unique_ptr<ServiceState>> states;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto s = std::make_unique<ServiceState>();
    s->index = i;
    s->entry = &entries[i];
    states.push_back(std::move(s));
  }

  // Sized for the services: each holds one actor slot (two while a
  // replacement starts as the old slot is released) and one ProcessSet.
  SystemConfig config;
  config.workers = 1;
  config.actor_capacity = 2 * count + 8;
  config.mailbox_capacity = 256;
  config.message_blocks = {4096, 256, 64, 32, 16, 8, 8};
  config.actor_blocks = {2 * count + 8, 2 * count + 8, 8, 8, 8, 8, 8};
  config.timers_per_worker = 256;
  config.pending_asks = 16;
  config.registry_capacity = 4;
  config.broker_topics = 1;
  config.subscribers_per_topic = 1;
  config.process_owners = 2 * count + 4;
  config.processes_per_actor = 2;
  config.max_processes = 1024;
  config.process_kill_timeout = std::chrono::milliseconds(o.kill_timeout_ms);
  // --metrics: the System's own monitoring, which its supervisor (starts,
  // failures, restarts per service name, intensity) and its process layer
  // (trees spawned, terminated, killed) record into.
  config.monitoring_events = 256;
  config.monitoring_child_names = count;
  if (o.audit != nullptr) config.process_middleware[0] = o.audit;
  auto system = System::create(config);
  if (!system) {
    notice("airssys-run: cannot start the runtime: %s\n", system.error().message());
    return kExitInternal;
  }
  System& sys = *system.value();
  if (auto r = output.start(); !r) {
    notice("airssys-run: cannot read the services' output: %s\n", r.error().message());
    return kExitInternal;
  }

  SupervisorFlags flags;
  flags.strategy = o.strategy;
  flags.intensity = o.max_restarts;
  flags.period = std::chrono::seconds(o.period_s);
  SupervisorSpec spec(flags, count);
  const ShutdownSpec shutdown = o.kill_timeout_ms == 0
                                    ? ShutdownSpec::brutal_kill()
                                    : ShutdownSpec::after(std::chrono::milliseconds(o.kill_timeout_ms));
  for (auto& s : states) {
    ServiceState* state = s.get();
    Shared* sh = &shared;
    auto child = ChildSpec::worker_with<ServiceActor>(state->entry->name,
                                                      [sh, state] { return ServiceActor(sh, state); });
    child.restart(o.restart).shutdown(shutdown);
    if (auto r = spec.add(child); !r) {
      notice("airssys-run: service '%s': %s\n", state->entry->name.c_str(), r.error().message());
      return kExitInternal;
    }
  }

  // A stop waits for each service's tree in turn, each up to its kill
  // timeout; the margin is for the runtime, not for the services. Kept in
  // range for nanoseconds (a day of kill timeout times many services).
  const std::int64_t limit_ms =
      std::min<std::int64_t>(o.kill_timeout_ms * (std::int64_t{count} + 1), std::int64_t{1} << 40) + 10'000;
  const std::chrono::nanoseconds stop_limit = std::chrono::milliseconds(limit_ms);
  const auto metrics_period = std::chrono::seconds(1);
  auto next_metrics = Clock::now();
  // False (and said on stderr) when the file cannot be written.
  auto publish_metrics = [&] {
    if (o.metrics == nullptr) return true;
    auto r = write_metrics_file(o.metrics, metrics_view(states), sys, sys.monitoring());
    if (!r) notice("airssys-run: --metrics: %s\n", r.error().message());
    return r.ok();
  };
  // A metrics file that cannot be written is a usage error before any
  // service starts, as an --audit file that cannot be opened is.
  if (!publish_metrics()) return kExitUsage;

  int status = 0;
  bool gave_up = false;
  bool ended = false;
  int stop_signal = 0;
  bool killed_now = false;  // a second stop signal: every tree killed at once
  auto started = start_supervisor(sys, spec, stop_limit);
  if (!started) {
    notice("airssys-run: %s\n", started.error().message());
    const int first = shared.first_status();
    status = first > 0 ? first : kExitInternal;
  } else {
    SupervisorRef supervisor = started.value();
    for (;;) {
      if (Clock::now() >= next_metrics) {
        (void)publish_metrics();
        next_metrics += metrics_period;
      }
      stop_signal = next_signal(signals, std::chrono::milliseconds(50));
      if (stop_signal != 0) break;
      if (output.closed()) break;  // the reader of stdout is gone: stop as for SIGTERM
      if (!sys.alive(supervisor.ref)) {
        // It stops itself only when restarts exceeded the intensity, after
        // stopping every service.
        gave_up = true;
        break;
      }
      if (ended_for_good(o.restart, states)) {
        ended = true;
        break;
      }
    }
    if (sys.alive(supervisor.ref)) {
      stderr_follows_stdout(output);
      if (stop_signal != 0)
        notice("airssys-run: signal %d: stopping every service, last first (a second SIGINT or SIGTERM kills them all at once)\n",
               stop_signal);
      else if (output.closed())
        notice("airssys-run: stdout was closed: stopping every service, last first\n");
      // The ordered stop runs on a thread of its own, so that this one
      // still takes signals: a second SIGINT/SIGTERM kills every tree at
      // once (the shutdown below, with no grace) instead of waiting out
      // each service's --kill-timeout in turn.
      std::atomic<bool> stopped{false};
      Result<void> stop_result;
      std::thread stopper([&] {
        stop_result = supervisor.stop(stop_limit);
        stopped.store(true, std::memory_order_release);
      });
      while (!stopped.load(std::memory_order_acquire)) {
        const int sig = next_signal(signals, std::chrono::milliseconds(20));
        if (sig == SIGINT || sig == SIGTERM) {
          notice("airssys-run: signal %d again: killing every service's tree now\n", sig);
          (void)sys.shutdown(std::chrono::nanoseconds(0));
          killed_now = true;
          break;
        }
      }
      stopper.join();
      if (!killed_now && !stop_result && sys.alive(supervisor.ref))
        notice("airssys-run: stopping the services: %s\n", stop_result.error().message());
    }
    const int first = shared.first_status();
    // Killed at once: 128 + SIGKILL, as in the single mode, unless a
    // service had failed before.
    status = first > 0 ? first : (gave_up ? 1 : (killed_now ? 128 + SIGKILL : 0));
  }
  // Every tree is gone, so every pipe is at end of file or about to be.
  output.finish(killed_now ? std::chrono::seconds(1) : std::chrono::seconds(5));
  stderr_follows_stdout(output);
  if (output.dropped() > 0)
    notice("airssys-run: %llu output lines were dropped: stdout did not take them in time\n",
           static_cast<unsigned long long>(output.dropped()));
  if (!killed_now) {
    if (auto r = sys.shutdown(stop_limit); !r)
      notice("airssys-run: shutdown: %s\n", r.error().message());
  }
  // The final counts, the trees the shutdown ended included (they outlive
  // the executor).
  (void)publish_metrics();
  const auto counters = sys.process_counters();

  std::size_t width = 0;
  for (const auto& e : entries) width = std::max(width, e.name.size());
  notice("airssys-run: summary (strategy %s, restart %s, at most %u restart%s in %llds)\n",
         strategy_name(o.strategy), restart_name(o.restart), o.max_restarts, o.max_restarts == 1 ? "" : "s",
         static_cast<long long>(o.period_s));
  for (const auto& s : states) {
    const std::uint32_t starts = s->starts.load(std::memory_order_relaxed);
    notice("  %-*s  restarts %-3u %s\n", static_cast<int>(width), s->entry->name.c_str(),
           starts > 0 ? starts - 1 : 0, describe_last(*s).c_str());
  }
  notice("  process trees: %llu spawned, %llu cleaned; killed with SIGKILL: %llu; orphans adopted: %llu%s\n",
         static_cast<unsigned long long>(counters.spawned), static_cast<unsigned long long>(counters.cleaned),
         static_cast<unsigned long long>(counters.killed),
         static_cast<unsigned long long>(counters.orphans_adopted),
         killed_now ? " (the second signal killed every tree left with SIGKILL)" : "");
  if (gave_up)
    notice("airssys-run: more than %u restarts within %llds: gave up, every service stopped\n",
           o.max_restarts, static_cast<long long>(o.period_s));
  else if (ended)
    notice("airssys-run: every service has ended\n");
  if (const int first = shared.first_status(); first > 0)
    notice("airssys-run: exit status %d, of the first service that failed: %s\n", first,
           entries[shared.first_service()].name.c_str());
  return status;
}

}  // namespace airssys::run
