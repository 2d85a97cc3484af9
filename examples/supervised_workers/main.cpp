// supervised_workers: the case airssys was designed for.
//
// A supervised actor runs a long-lived shell script that starts children
// of its own: a plain child, a grandchild, and one that escapes with
// setsid into a session of its own and ignores SIGTERM. Then the actor
// crashes, twice. Each time the supervisor restarts it, and the runtime
// first tears the old script's whole tree down — the escapee included,
// with SIGKILL once the kill timeout passes — and reaps it, so the new
// script never runs beside the old one. The program prints the tree before
// each crash, after each restart and at shutdown, and exits 0 only if
// nothing of any tree is left.
//
// Every process of the trees carries an environment marker (setsid does
// not drop it), which is how the program finds them in /proc wherever
// they went.

#include <airssys/arch/process.hpp>
#include <airssys/arch/wait.hpp>
#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;

// ---- the process table, from /proc ------------------------------------------

struct Proc {
  int pid = 0, ppid = 0, pgid = 0, sid = 0;
  char state = '?';
  std::string comm;
};

bool read_proc(int pid, Proc& p) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto open = line.find('(');
  const auto close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return false;
  p.pid = pid;
  p.comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  rest >> p.state >> p.ppid >> p.pgid >> p.sid;
  return true;
}

bool has_env(int pid, const std::string& entry) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  for (std::string e; std::getline(in, e, '\0');)
    if (e == entry) return true;
  return false;
}

// Every process carrying `marker`, zombies included (a zombie has no
// environment left, so it is found as a child of a marked process).
std::vector<Proc> marked(const std::string& marker) {
  std::vector<Proc> all;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    Proc p;
    if (read_proc(std::stoi(name), p)) all.push_back(p);
  }
  std::vector<Proc> out;
  for (const auto& p : all)
    if (has_env(p.pid, marker)) out.push_back(p);
  for (const auto& p : all)
    if (p.state == 'Z' && std::any_of(out.begin(), out.end(), [&](const Proc& o) { return o.pid == p.ppid; }))
      out.push_back(p);
  return out;
}

void print_tree(const char* title, const std::vector<Proc>& procs) {
  std::printf("--- %s: %zu process%s\n", title, procs.size(), procs.size() == 1 ? "" : "es");
  // Roots: processes whose parent is not in the set (the script; an
  // escapee whose parent already ended).
  const auto print = [&](const auto& self, const Proc& p, int depth) -> void {
    const bool root_session = std::any_of(procs.begin(), procs.end(), [&](const Proc& o) { return o.sid != p.sid; });
    std::printf("    %*s%-6d %-6s pgid %-6d sid %-6d %c%s\n", depth * 2, "", p.pid, p.comm.c_str(), p.pgid, p.sid,
                p.state, root_session && p.sid == p.pid ? "  <- escaped with setsid, ignores SIGTERM" : "");
    for (const auto& c : procs)
      if (c.ppid == p.pid) self(self, c, depth + 1);
  };
  for (const auto& p : procs)
    if (std::none_of(procs.begin(), procs.end(), [&](const Proc& o) { return o.pid == p.ppid; })) print(print, p, 0);
  std::fflush(stdout);
}

// ---- the worker ---------------------------------------------------------------

// A shell script that starts a plain child, a grandchild (the inner sh
// stays because of the ':' after sleep), and an escapee in its own session
// that ignores SIGTERM, then waits for them.
constexpr const char* kScript =
    "sleep 1000 & "
    "sh -c 'sleep 1000; :' & "
    "setsid sh -c \"trap '' TERM; exec sleep 1000\" & "
    "wait";
constexpr std::size_t kTreeSize = 5;  // the script, 3 sleeps, the inner sh

struct Crash {};
using WorkerMsg = std::variant<Crash, airssys::ProcessExited>;

class Worker final : public airssys::Actor<WorkerMsg> {
 public:
  explicit Worker(const std::string* marker) : marker_(marker) {}

  void on_start(airssys::Context<WorkerMsg>& ctx) override {
    const std::string_view args[] = {"-c", kScript};
    const std::string_view env[] = {*marker_};
    airssys::SpawnProcessOperation op;
    op.program = "/bin/sh";
    op.args = args;
    op.env = env;
    if (auto r = ctx.spawn_process(op); !r) ctx.fail(r.error());
  }

  void on_message(airssys::Context<WorkerMsg>& ctx, WorkerMsg& msg) override {
    if (std::holds_alternative<Crash>(msg))
      ctx.fail(airssys::Error::make(airssys::Errc::Failed, "worker crashed on purpose"));
  }

 private:
  const std::string* marker_;
};

// Waits until the worker's tree is complete: kTreeSize live processes,
// none of them `old` ones.
bool wait_for_tree(const std::string& marker, const std::vector<Proc>& old, std::vector<Proc>& out) {
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < end) {
    out = marked(marker);
    const bool fresh = std::none_of(out.begin(), out.end(), [&](const Proc& p) {
      return p.state == 'Z' || std::any_of(old.begin(), old.end(), [&](const Proc& o) { return o.pid == p.pid; });
    });
    const auto sleeps = std::count_if(out.begin(), out.end(), [](const Proc& p) { return p.comm == "sleep"; });
    if (fresh && out.size() == kTreeSize && sleeps == 3) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

int main() {
  const std::string marker = "AIRSSYS_EXAMPLE=supervised_workers-" + std::to_string(airssys::arch::own_pid());

  airssys::SystemConfig config;
  config.workers = 1;
  config.actor_capacity = 16;
  config.message_blocks = {1024, 64, 32, 16, 8, 8, 8};
  config.actor_blocks = {16, 16, 8, 8, 8, 8, 8};
  config.timers_per_worker = 64;
  config.pending_asks = 8;
  auto system = airssys::System::create(config);
  if (!system) {
    std::fprintf(stderr, "supervised_workers: %s\n", system.error().message());
    return 1;
  }

  // At most 3 restarts in a minute; the worker's trees get SIGTERM, then
  // SIGKILL after 300 ms (which the escapee needs).
  airssys::SupervisorFlags flags;
  flags.strategy = airssys::Strategy::OneForOne;
  flags.intensity = 3;
  flags.period = 60s;
  airssys::SupervisorSpec spec(flags, 1);
  const std::string* m = &marker;
  auto child = airssys::ChildSpec::worker_with<Worker>("worker", [m] { return Worker(m); });
  child.restart(airssys::RestartType::Permanent).shutdown(airssys::ShutdownSpec::after(300ms));
  if (auto r = spec.add(child); !r) {
    std::fprintf(stderr, "supervised_workers: %s\n", r.error().message());
    return 1;
  }
  auto supervisor = airssys::start_supervisor(*system.value(), spec);
  if (!supervisor) {
    std::fprintf(stderr, "supervised_workers: %s\n", supervisor.error().message());
    return 1;
  }

  bool ok = true;
  std::vector<Proc> tree;
  if (!wait_for_tree(marker, {}, tree)) {
    std::fprintf(stderr, "supervised_workers: the worker's tree did not come up\n");
    ok = false;
  }
  print_tree("worker started", tree);
  for (int crash = 1; ok && crash <= 2; ++crash) {
    airssys::ChildInfo info[1];
    auto n = supervisor.value().which_children(info);
    if (!n || n.value() != 1 || !info[0].running) {
      std::fprintf(stderr, "supervised_workers: the worker is not running\n");
      ok = false;
      break;
    }
    std::printf("=== crash %d: the worker fails; the supervisor restarts it\n", crash);
    (void)system.value()->send(airssys::ActorRef<WorkerMsg>{info[0].ref}, Crash{});
    const std::vector<Proc> old = tree;
    if (!wait_for_tree(marker, old, tree)) {
      std::fprintf(stderr, "supervised_workers: the restarted worker's tree did not come up\n");
      ok = false;
      break;
    }
    // A replacement starts only once the old tree is gone: every old pid
    // is gone already (checked as the new tree appeared).
    print_tree("after the restart (none of the old pids is left)", tree);
  }

  if (auto r = supervisor.value().stop(); !r) {
    std::fprintf(stderr, "supervised_workers: stopping the supervisor: %s\n", r.error().message());
    ok = false;
  }
  const auto left = marked(marker);
  print_tree("after shutdown", left);
  const auto counters = system.value()->process_counters();
  std::printf("trees spawned %llu, cleaned %llu, processes killed %llu\n",
              static_cast<unsigned long long>(counters.spawned), static_cast<unsigned long long>(counters.cleaned),
              static_cast<unsigned long long>(counters.killed));
  if (auto r = system.value()->shutdown(); !r) {
    std::fprintf(stderr, "supervised_workers: shutdown: %s\n", r.error().message());
    ok = false;
  }
  if (!left.empty()) {
    std::fprintf(stderr, "supervised_workers: %zu processes were left\n", left.size());
    ok = false;
  }
  if (counters.spawned != 3 || counters.cleaned != 3) ok = false;
  std::printf("%s\n", ok ? "nothing left: every tree was torn down and reaped" : "FAILED");
  return ok ? 0 : 1;
}
