// process_pool: a bounded parallel job runner over a list of commands.
//
// Twelve shell commands (some fail, one is killed by a signal, one leaves a
// background process behind) go to a ProcessPoolActor that runs at most
// three at a time and queues the rest in FIFO order. The pool is a child of
// a supervisor; every job is a managed, contained tree, and what a job
// leaves running is torn down when its command exits. One plain thread per
// job asks the pool and waits for the job's status; the main thread draws a
// progress line from the pool's counts (redrawn in place on a terminal, one
// line per change otherwise). The program exits 0 when every job ended
// with the status it should have, the bound held, and nothing of any tree
// is left.

#include <airssys/arch/process.hpp>
#include <airssys/arch/stream.hpp>
#include <airssys/rt/process_pool.hpp>
#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kParallel = 3;

// The jobs, and the status each must end with (128+N for signal N).
struct Job {
  const char* command;
  int expected;
};
constexpr Job kJobs[] = {
    {"sleep 0.2; echo compiled a.o", 0},
    {"sleep 0.3; echo compiled b.o", 0},
    {"sleep 0.1; exit 3", 3},
    {"sleep 0.4", 0},
    {"sleep 1000 & sleep 0.2; echo left a background sleep behind", 0},
    {"sleep 0.1; kill -TERM $$", 128 + 15},
    {"sleep 0.3", 0},
    {"sleep 0.2; false", 1},
    {"sleep 0.1", 0},
    {"sleep 0.3; echo linked", 0},
    {"sleep 0.2", 0},
    {"sleep 0.1; exit 7", 7},
};
constexpr std::size_t kJobCount = std::size(kJobs);

// Live processes carrying `marker` in their environment.
std::size_t marked_processes(const std::string& marker) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(d.path() / "environ", std::ios::binary);
    for (std::string e; std::getline(in, e, '\0');)
      if (e == marker) {
        ++n;
        break;
      }
  }
  return n;
}

void draw(bool tty, const airssys::PoolCounts& c, std::size_t failed) {
  constexpr int kWidth = 24;
  const auto done = static_cast<std::size_t>(c.exited + c.killed);
  const int filled = static_cast<int>(done * kWidth / kJobCount);
  std::printf("%s[%.*s%*s] %2zu/%zu done, %llu running, %llu queued, %zu failed%s", tty ? "\r" : "", filled,
              "########################", kWidth - filled, "", done, kJobCount,
              static_cast<unsigned long long>(c.running), static_cast<unsigned long long>(c.queued), failed,
              tty ? "" : "\n");
  std::fflush(stdout);
}

}  // namespace

int main() {
  const std::string marker = "AIRSSYS_EXAMPLE=process_pool-" + std::to_string(airssys::arch::own_pid());
  const bool tty = airssys::arch::is_terminal(1);

  airssys::SystemConfig config;
  config.workers = 2;
  config.actor_capacity = 16;
  config.message_blocks = {1024, 64, 32, 16, 64, 8, 8};  // PoolRun (a ProcessSpec) takes a 1 KiB block
  config.actor_blocks = {16, 16, 8, 8, 8, 8, 8};
  config.pending_asks = 32;
  auto system = airssys::System::create(config);
  if (!system) {
    std::fprintf(stderr, "process_pool: %s\n", system.error().message());
    return 1;
  }
  airssys::System& sys = *system.value();

  // The pool, supervised: at most kParallel jobs at once, the rest queued.
  airssys::ProcessPoolConfig pool_config;
  pool_config.max_running = kParallel;
  pool_config.max_queued = kJobCount;
  pool_config.name = "jobs";  // the pool binds this name in the registry when it starts
  airssys::SupervisorSpec spec(airssys::SupervisorFlags{}, 1);
  if (auto r = spec.add(airssys::ChildSpec::worker<airssys::ProcessPoolActor>("pool", pool_config)); !r) {
    std::fprintf(stderr, "process_pool: %s\n", r.error().message());
    return 1;
  }
  auto supervisor = airssys::start_supervisor(sys, spec);
  if (!supervisor) {
    std::fprintf(stderr, "process_pool: %s\n", supervisor.error().message());
    return 1;
  }
  // From here on every path stops the supervisor before the spec goes. The
  // supervisor has started its child, so the name is bound.
  auto found = sys.registry().find<airssys::ProcessPoolMsg>("jobs");
  if (!found) {
    std::fprintf(stderr, "process_pool: %s\n", found.error().message());
    (void)supervisor.value().stop();
    return 1;
  }
  airssys::ProcessPoolRef pool(sys, found.value());

  // One waiting thread per job: the pool, not the threads, keeps the bound.
  int status[kJobCount];
  std::atomic<std::size_t> failed{0};
  std::vector<std::thread> waiters;
  for (std::size_t j = 0; j < kJobCount; ++j) {
    status[j] = -1;
    waiters.emplace_back([&, j] {
      airssys::ProcessSpec job("/bin/sh");
      job.arg("-c").arg(kJobs[j].command).env(marker);
      job.output(airssys::OutputSubscriber{});  // stdout and stderr read and dropped
      auto r = pool.run(job, 60s);
      if (!r) {
        std::fprintf(stderr, "\njob %zu: %s\n", j, r.error().message());
        return;
      }
      status[j] = r.value().status.shell_status();
      if (status[j] != 0) failed.fetch_add(1, std::memory_order_relaxed);
    });
  }

  airssys::PoolCounts last{};
  bool drawn = false;
  for (;;) {
    auto c = pool.counts();
    if (!c) break;
    const auto& now = c.value();
    if (!drawn || now.exited != last.exited || now.running != last.running || now.queued != last.queued) {
      draw(tty, now, failed.load(std::memory_order_relaxed));
      last = now;
      drawn = true;
    }
    if (now.exited + now.killed + now.rejected >= kJobCount) break;
    std::this_thread::sleep_for(10ms);
  }
  if (tty) std::printf("\n");
  for (auto& t : waiters) t.join();

  bool ok = true;
  for (std::size_t j = 0; j < kJobCount; ++j) {
    if (status[j] != kJobs[j].expected) {
      std::fprintf(stderr, "job %zu (%s) ended with %d, not %d\n", j, kJobs[j].command, status[j], kJobs[j].expected);
      ok = false;
    }
  }
  auto totals = pool.counts();
  if (auto r = supervisor.value().stop(); !r) {
    std::fprintf(stderr, "process_pool: stopping the supervisor: %s\n", r.error().message());
    ok = false;
  }
  const auto counters = sys.process_counters();
  if (auto r = sys.shutdown(); !r) {
    std::fprintf(stderr, "process_pool: shutdown: %s\n", r.error().message());
    ok = false;
  }
  const std::size_t left = marked_processes(marker);
  const auto most = totals ? totals.value().max_running_seen : 0;
  std::printf("%zu jobs, %zu failed, at most %llu at once (bound %u); trees spawned %llu, cleaned %llu; "
              "%zu processes left\n",
              kJobCount, failed.load(), static_cast<unsigned long long>(most), kParallel,
              static_cast<unsigned long long>(counters.spawned), static_cast<unsigned long long>(counters.cleaned),
              left);
  if (!totals || most > kParallel || left != 0 || counters.spawned != counters.cleaned) ok = false;
  std::printf("%s\n", ok ? "every job reported; nothing left" : "FAILED");
  return ok ? 0 : 1;
}
