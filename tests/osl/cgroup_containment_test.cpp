// Cgroup containment as the executor holds it, against trees that work at
// leaving: a tree that makes cgroups below its own, a privileged process
// that moves itself out of its cgroup, background jobs that end as orphans
// while their tree lives, and the trees a runtime that died with its
// guardian left behind.
//
// Hygiene: every process a test starts carries an environment marker; the
// guard (declared first, so that it runs last) kills whatever carries it,
// reaps every child of this process (a child subreaper) and checks that
// nothing had to be cleaned and that children, descriptors and cgroups are
// as they were.

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/process.hpp>
#include <airssys/osl/audit.hpp>
#include <airssys/osl/executor.hpp>

#include <catch2/catch.hpp>

#include "support/fd.hpp"
#include "support/osl_spawn.hpp"
#include "support/cgroup_base.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

using namespace airssys;
using airssys::osl::Containment;
using airssys::osl::ProcessEvent;
using airssys::osl::ProcessExecutor;
using airssys::osl::SpawnProcessOperation;
using airssys::osl::StdioConfig;
using airssys::osl::TeardownOperation;

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kMs = 1'000'000;

std::string fresh_marker() {
  static std::atomic<int> n{0};
  return "AIRSSYS_OSL_CGROUP_TEST=" + std::to_string(test::self_pid()) + "." + std::to_string(n++);
}

struct NothingLeft : test::NothingLeftCensus {
  NothingLeft() : test::NothingLeftCensus(fresh_marker()) {}
};

bool running(int pid) { return test::process_exists(pid) && !test::process_ended(pid); }

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// A cgroup-contained spawn of /bin/sh -c `script`, its environment holding
// the guard's marker and `env`, stdout a pipe.
SpawnProcessOperation shell(const std::string_view (&args)[2], std::vector<std::string_view>& env,
                            const std::string& marker) {
  env.push_back(marker);
  SpawnProcessOperation op = test::quiet("/bin/sh", args);
  op.env = env;
  op.containment = Containment::Cgroup;
  op.stdio[1] = StdioConfig::pipe();
  return op;
}

std::string value_of(const std::multimap<std::string, std::string>& got, const std::string& label) {
  const auto it = got.find(label);
  return it == got.end() ? std::string() : it->second;
}

// Records the events the executor reports.
struct Recorder : osl::Middleware {
  std::mutex mu;
  std::vector<ProcessEvent> events;
  std::vector<std::string> lines;  // as the audit log formats them
  void observe(const ProcessEvent& e) noexcept override {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
    char line[1024];
    osl::AuditLog::format(e, line, sizeof line);
    lines.emplace_back(line);
  }
};

// The reactor's reports, unused here: the tests look at the process table.
struct Sink : osl::ExitSink {
  void on_exit(std::uint64_t, int, osl::ExitStatus) noexcept override {}
};

}  // namespace

TEST_CASE("a tree that makes cgroups below its own is torn down completely: processes, zombies, directories") {
  NothingLeft guard;
  ProcessExecutor ex;
  // The leader reads where its cgroup is (it sees it as "/" from inside
  // its cgroup namespace), makes worker/deep below it and moves a sleep
  // there.
  const std::string_view args[] = {
      "-c", "read dir; mkdir -p \"$dir/worker/deep\" || exit 1; sleep 1000 & pid=$!; "
            "echo $pid > \"$dir/worker/deep/cgroup.procs\" && echo moved $pid; wait"};
  std::vector<std::string_view> env;
  SpawnProcessOperation op = shell(args, env, guard.marker);
  op.stdio[0] = StdioConfig::pipe();
  auto r = ex.execute(op);
  INFO(r.error().message());
  REQUIRE(r.ok());
  guard.pids.push_back(r->pid);
  test::Fd in(r->pipes[0]), out(r->pipes[1]);
  const std::string dir = test::cgroup2_mount_point() + test::cgroup2_of(r->pid);
  REQUIRE(is_dir(dir));
  const std::string line = dir + "\n";
  REQUIRE(::write(in.fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
  const auto got = test::read_labelled(out.fd, {{"moved", 1}});
  REQUIRE_FALSE(value_of(got, "moved").empty());
  const int moved = std::stoi(value_of(got, "moved"));
  const unsigned long long moved_start = test::start_time_of(moved);  // the sleep its shell waits for
  guard.pids.push_back(moved);
  REQUIRE(test::wait_for([&] { return test::cgroup2_of(moved).find("/worker/deep") != std::string::npos; }));
  REQUIRE(is_dir(dir + "/worker/deep"));

  TeardownOperation td;
  td.pid = r->pid;
  td.term_timeout_ns = 100 * kMs;
  auto report = ex.execute(td);
  INFO(report.error().message());
  REQUIRE(report.ok());
  // The killed sleep was reaped (it came back to us when the leader died),
  // and the cgroups below the tree's went with it.
  CHECK_FALSE(test::same_process_exists(moved, moved_start));
  CHECK_FALSE(is_dir(dir));
  CHECK(ex.live() == 0);
}

TEST_CASE("a privileged process that moves itself out of its tree's cgroup and calls setsid is still ended") {
  NothingLeft guard;
  ProcessExecutor ex;
  // E moves itself into the cgroup2 root (root may write any cgroup.procs
  // it can reach through the mount), starts a session of its own, and is
  // orphaned when the subshell that started it exits.
  const std::string procs = "AIRSSYS_T_PROCS=" + test::cgroup2_mount_point() + "/cgroup.procs";
  const std::string_view args[] = {
      "-c", "(sh -c 'echo $$ > \"$AIRSSYS_T_PROCS\" && echo E $$ && exec setsid sleep 1000' &); "
            "sleep 1000 & echo S $!; wait"};
  std::vector<std::string_view> env{procs};
  auto r = ex.execute(shell(args, env, guard.marker));
  INFO(r.error().message());
  REQUIRE(r.ok());
  guard.pids.push_back(r->pid);
  test::Fd out(r->pipes[1]);
  const auto got = test::read_labelled(out.fd, {{"E", 1}, {"S", 1}});
  REQUIRE_FALSE(value_of(got, "E").empty());
  const int escapee = std::stoi(value_of(got, "E"));
  guard.pids.push_back(escapee);
  guard.pids.push_back(std::stoi(value_of(got, "S")));
  // Out of the cgroup, in a session of its own, and a child of ours.
  REQUIRE(test::wait_for([&] {
    test::ProcEntry e;
    return test::read_proc(escapee, e) && e.ppid == test::self_pid() && test::session_of(escapee) == escapee &&
           test::comm_of(escapee) == "sleep";
  }));
  INFO("escapee's cgroup: " << test::cgroup2_of(escapee));
  REQUIRE(test::cgroup2_of(escapee) == "/");
  const unsigned long long escapee_start = test::start_time_of(escapee);  // our child, unreaped: still the sleep

  TeardownOperation td;
  td.pid = r->pid;
  td.term_timeout_ns = 100 * kMs;
  auto report = ex.execute(td);
  INFO(report.error().message());
  REQUIRE(report.ok());
  CHECK(report->orphans_adopted >= 1);
  CHECK_FALSE(test::same_process_exists(escapee, escapee_start));
  CHECK(ex.live() == 0);
}

TEST_CASE("a living cgroup tree whose background jobs end as orphans leaves no zombie behind them") {
  NothingLeft guard;
  Sink sink;
  ProcessExecutor ex;
  REQUIRE(ex.start_reactor(sink).ok());
  // Each job is started by a subshell that exits at once: the job is
  // re-parented to us (the subreaper) and ends as our zombie.
  const std::string_view args[] = {"-c",
                                   "for i in 1 2 3 4 5 6 7 8; do (sh -c 'exit 0' &); done; echo started 8; "
                                   "exec sleep 1000"};
  std::vector<std::string_view> env;
  auto r = ex.execute(shell(args, env, guard.marker), {}, 1);
  INFO(r.error().message());
  REQUIRE(r.ok());
  guard.pids.push_back(r->pid);
  test::Fd out(r->pipes[1]);
  REQUIRE(value_of(test::read_labelled(out.fd, {{"started", 1}}), "started") == "8");
  auto zombies = [] {
    int n = 0;
    for (const auto& c : test::children_of_self()) n += c.state == 'Z';
    return n;
  };
  const bool reaped = test::wait_for([&] { return zombies() == 0; });
  INFO(test::describe_children());
  CHECK(reaped);
  CHECK(running(r->pid));  // while the tree lives
  REQUIRE(ex.request_teardown(1, 0) == 1);
  REQUIRE(test::wait_for([&] { return ex.live() == 0; }));
}

TEST_CASE("the first runtime to open a cgroup base kills the trees a dead runtime left there, counts and audits them") {
  NothingLeft guard;
  test::PrivateCgroupBase base;  // this test's executor is the only sweeper
  // The dead runtime: a child of ours that opens a root, starts a tree in
  // it (a sleep, and a shell with a sleep of its own) and dies by SIGKILL
  // with no guardian; the tree lives on.
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  test::Fd up_read(fds[0]), up_write(fds[1]);
  const std::string marker = guard.marker;
  const pid_t runtime = ::fork();
  REQUIRE(runtime >= 0);
  if (runtime == 0) {
    auto root = arch::CgroupRoot::open(base.c_str());
    if (!root) ::_exit(1);
    auto g = root->create(1);
    if (!g) ::_exit(2);
    const char* argv[] = {"sh", "-c", "sleep 1000 & echo sleeper $!; echo shell $$; wait", nullptr};
    const std::string env_entry = marker;
    const char* envp[] = {env_entry.c_str(), nullptr};
    arch::SpawnSpec s;
    s.program = "/bin/sh";
    s.argv = argv;
    s.envp = envp;
    s.stdio[0] = arch::StdioMode::Null;
    s.stdio[1] = arch::StdioMode::Pipe;
    s.kill_with_parent = false;
    s.cgroup = &*g;
    auto p = arch::spawn(s);
    if (!p) ::_exit(3);
    test::Fd out(p->take_pipe(1));
    const auto got = test::read_labelled(out.fd, {{"sleeper", 1}, {"shell", 1}});
    ::dprintf(fds[1], "path %s\nsleeper %s\nshell %s\n", root->path(), value_of(got, "sleeper").c_str(),
              value_of(got, "shell").c_str());
    ::raise(SIGKILL);
    ::_exit(4);
  }
  up_write.reset();
  const auto got = test::read_labelled(up_read.fd, {{"path", 1}, {"sleeper", 1}, {"shell", 1}});
  int status = 0;
  REQUIRE(::waitpid(runtime, &status, 0) == runtime);
  REQUIRE(WIFSIGNALED(status));
  const std::string path = value_of(got, "path");
  REQUIRE_FALSE(path.empty());
  REQUIRE_FALSE(value_of(got, "sleeper").empty());
  const int sleeper = std::stoi(value_of(got, "sleeper"));
  const int sh = std::stoi(value_of(got, "shell"));
  guard.pids.push_back(sleeper);
  guard.pids.push_back(sh);
  // The tree, orphaned to us (a subreaper), runs on: the numbers are still its own.
  const unsigned long long sleeper_start = test::start_time_of(sleeper), sh_start = test::start_time_of(sh);
  REQUIRE(test::same_process_running(sleeper, sleeper_start));
  REQUIRE(test::same_process_running(sh, sh_start));

  Recorder rec;
  {
    osl::ExecutorConfig cfg;
    cfg.cgroup_base = base.c_str();
    ProcessExecutor ex(cfg);
    REQUIRE(ex.use(rec).ok());
    REQUIRE(ex.auto_containment() == Containment::Cgroup);  // opens the root: the base is swept
    CHECK(ex.counters().stale_trees >= 1);
  }
  CHECK_FALSE(is_dir(path));
  REQUIRE(test::wait_for([&] {
    return !test::same_process_running(sleeper, sleeper_start) && !test::same_process_running(sh, sh_start);
  }));
  std::lock_guard<std::mutex> lock(rec.mu);
  const ProcessEvent* swept = nullptr;
  std::string line;
  for (std::size_t i = 0; i < rec.events.size(); ++i)
    if (rec.events[i].kind == ProcessEvent::Kind::StaleSwept) {
      swept = &rec.events[i];
      line = rec.lines[i];
    }
  REQUIRE(swept != nullptr);
  CHECK(swept->trees >= 1);
  CHECK(swept->processes >= 2);
  CHECK(swept->error == nullptr);
  INFO(line);
  CHECK(line.find("\"event\":\"stale_swept\"") != std::string::npos);
  CHECK(line.find("\"trees\":") != std::string::npos);
  CHECK(line.find("\"processes\":") != std::string::npos);
  // The killed tree was re-parented to us when the runtime died: reap it.
  REQUIRE(test::wait_for(
      [&] { return test::reap_zombie_children() >= 0 && !test::same_process_exists(sleeper, sleeper_start); }));
}

namespace {

// True when some process other than this one and `except` holds a
// descriptor on the directory `path` itself (not on one removed under that
// name: such a link reads "<path> (deleted)"). The guardian is such a
// process.
bool another_process_holds(const std::string& path, int except) {
  for (const auto& child : test::children_of_self()) {
    if (child.pid == except) continue;
    std::error_code ec;
    for (const auto& f : fs::directory_iterator("/proc/" + std::to_string(child.pid) + "/fd", ec)) {
      std::error_code lec;
      if (fs::read_symlink(f.path(), lec).string() == path) return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("a cgroup root removed behind the runtime's back is made again at the next spawn, and guarded") {
  NothingLeft guard;
  ProcessExecutor ex;
  SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
  const std::string_view env[] = {guard.marker};
  op.env = env;
  op.containment = Containment::Cgroup;
  auto first = ex.execute(op);
  INFO(first.error().message());
  REQUIRE(first.ok());
  guard.pids.push_back(first->pid);
  const std::string group = test::cgroup2_mount_point() + test::cgroup2_of(first->pid);
  const std::string root = fs::path(group).parent_path().string();
  REQUIRE(another_process_holds(root, first->pid));  // the guardian
  REQUIRE(ex.execute(TeardownOperation{first->pid, 0}).ok());
  REQUIRE_FALSE(is_dir(group));
  REQUIRE(::rmdir(root.c_str()) == 0);

  auto second = ex.execute(op);
  INFO(second.error().message());
  REQUIRE(second.ok());
  guard.pids.push_back(second->pid);
  CHECK(is_dir(root));
  CHECK(fs::path(test::cgroup2_mount_point() + test::cgroup2_of(second->pid)).parent_path().string() == root);
  // The guardian holds the root as it is now, not the one removed.
  CHECK(another_process_holds(root, second->pid));
  REQUIRE(ex.execute(TeardownOperation{second->pid, 0}).ok());
}
