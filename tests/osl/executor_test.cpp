// ProcessExecutor with real processes: every bad input is an error value
// that names it and leaves nothing behind (no child, running or zombie, no
// descriptor, no cgroup), and the good paths do what the operations say.
//
// Hygiene: PID 1 here does not reap orphans, so every test starts with a
// guard (declared before any executor, so that it runs last) that kills
// and reaps whatever a failing test left, and then checks that a passing
// test left nothing. The executor makes this process a child subreaper
// (process-wide and permanent); the guard does so too, up front, so that
// orphans always come back here and can be reaped.

#include <airssys/osl/executor.hpp>

#include <catch2/catch.hpp>

#include "support/fd.hpp"
#include "support/osl_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/scoped_env.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace airssys;
using airssys::osl::Containment;
using airssys::osl::EnvMode;
using airssys::osl::ExecutorConfig;
using airssys::osl::KillProcessGroupOperation;
using airssys::osl::ProcessExecutor;
using airssys::osl::ProcessGroupConfig;
using airssys::osl::ProcessLifetime;
using airssys::osl::SignalProcessOperation;
using airssys::osl::SpawnProcessOperation;
using airssys::osl::SpawnProcessResult;
using airssys::osl::StdioConfig;
using airssys::osl::TeardownOperation;
using airssys::osl::WaitProcessOperation;

namespace {

constexpr std::int64_t kMs = 1'000'000;

// Declared first in every test. At the end (also after a failed REQUIRE):
// kills and reaps every child still there, then checks that there was
// none, that every recorded pid is gone, and that descriptors and cgroups
// are as they were.
using NothingLeft = test::NothingLeftCensus;

SpawnProcessResult spawn_ok(ProcessExecutor& ex, const SpawnProcessOperation& op) {
  auto r = ex.execute(op);
  INFO(r.error().message());
  REQUIRE(r.ok());
  return r.value();
}

osl::ExitStatus wait_ok(ProcessExecutor& ex, int pid, std::int64_t timeout_ns = 20'000 * kMs) {
  auto r = ex.execute(WaitProcessOperation{pid, timeout_ns});
  INFO(r.error().message());
  REQUIRE(r.ok());
  return r.value();
}

osl::TeardownReport teardown_ok(ProcessExecutor& ex, int pid, std::int64_t term_ns = 2'000 * kMs) {
  auto r = ex.execute(TeardownOperation{pid, term_ns});
  INFO(r.error().message());
  REQUIRE(r.ok());
  return r.value();
}

// Opens the executor's lazily made resources (cgroup root, guardian,
// subreaper) with one process spawned and reaped, so that a census taken
// afterwards sees them already.
void warm(ProcessExecutor& ex, Containment c = Containment::Auto) {
  SpawnProcessOperation op = test::quiet("/bin/true");
  op.containment = c;
  const int pid = spawn_ok(ex, op).pid;
  REQUIRE(wait_ok(ex, pid).code == 0);
}

// Runs `f` and checks that children, descriptors, cgroups and the
// executor's table are exactly as before.
template <class F>
void leaves_nothing(ProcessExecutor& ex, F&& f) {
  const test::Census before = test::Census::take();
  const std::size_t live = ex.live();
  f();
  const test::Census after = test::Census::take();
  INFO("before: " << before.describe());
  INFO("after:  " << after.describe());
  CHECK(after == before);
  CHECK(ex.live() == live);
}

bool running(int pid) { return test::process_exists(pid) && !test::process_ended(pid); }

bool digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

// "<...>/airssys-<this pid>-<n>/g<m>": a group of this process's root.
bool ends_in_own_group(const std::string& cgroup) {
  const auto slash = cgroup.rfind('/');
  if (slash == std::string::npos || slash == 0) return false;
  const std::string_view group = std::string_view(cgroup).substr(slash + 1);
  if (group.size() < 2 || group[0] != 'g' || !digits(group.substr(1))) return false;
  const auto root_slash = cgroup.rfind('/', slash - 1);
  if (root_slash == std::string::npos) return false;
  const std::string_view root = std::string_view(cgroup).substr(root_slash + 1, slash - root_slash - 1);
  // "airssys-<pid>-<pid namespace, hex>-<n>"
  const std::string prefix = "airssys-" + std::to_string(test::self_pid()) + "-";
  if (root.substr(0, prefix.size()) != prefix) return false;
  const std::string_view rest = root.substr(prefix.size());
  const auto dash = rest.find('-');
  return dash != std::string_view::npos && dash > 0 &&
         rest.substr(0, dash).find_first_not_of("0123456789abcdef") == std::string_view::npos &&
         digits(rest.substr(dash + 1));
}

// A fresh directory, removed with everything in it.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("airssys-osl-exec") {}
};

}  // namespace

// ---- bad input ------------------------------------------------------------------

namespace {
// Assigned from temporaries more than once: with "StdioConfig stdio[3] = {}"
// GCC 12.2 (Debian 12's) stopped with an internal compiler error here.
SpawnProcessOperation g_reused;
void reuse_operation() {
  g_reused = SpawnProcessOperation{};
  g_reused.program = "/bin/true";
  g_reused = SpawnProcessOperation{};
  g_reused.program = "/bin/false";
}
}  // namespace

TEST_CASE("a SpawnProcessOperation takes a designated initializer of one member, and reassignment from temporaries") {
  // Under -Wextra -Werror (as this test is built) a member without a
  // default would be a "missing initializer" error here.
  const SpawnProcessOperation op{.program = "/bin/true"};
  CHECK(op.program == "/bin/true");
  CHECK(op.args.empty());
  CHECK(op.env.empty());
  CHECK(op.working_dir.empty());
  for (const auto& s : op.stdio) CHECK(s.mode == osl::StdioMode::Inherit);
  CHECK(op.containment == Containment::Auto);
  reuse_operation();
  CHECK(g_reused.program == "/bin/false");
  CHECK(g_reused.stdio[1].mode == osl::StdioMode::Inherit);
}

TEST_CASE("bad spawn input is an error that names it, and leaves no process, descriptor or cgroup") {
  NothingLeft guard;
  TempDir dir;
  const std::string plain = (dir.path / "not-executable").string();
  std::ofstream(plain) << "#!/bin/sh\nexit 0\n";
  std::filesystem::permissions(plain, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                          std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  ProcessExecutor ex;
  warm(ex);

  const std::string_view nul_arg[] = {"ok", std::string_view("a\0b", 3)};
  const std::string_view nul_env[] = {std::string_view("A=x\0y", 5)};
  const std::string_view no_equals[] = {"NOEQUALS"};
  const std::string_view empty_name[] = {"=value"};
  const int own_pgid = ::getpgrp();

  struct Case {
    const char* what;
    SpawnProcessOperation op;
    Errc code;
    std::vector<std::string> named;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, SpawnProcessOperation op, Errc code, std::vector<std::string> named) {
    cases.push_back(Case{what, op, code, std::move(named)});
  };
  add("missing program", test::quiet("/nonexistent/x"), Errc::NotFound, {"'/nonexistent/x'", "does not exist"});
  add("not executable (mode 0644)", test::quiet(plain), Errc::InvalidArgument, {"'" + plain + "'", "not executable"});
  add("a directory", test::quiet("/tmp"), Errc::InvalidArgument, {"'/tmp'", "is a directory"});
  add("relative name not in PATH", test::quiet("airssys-no-such-program"), Errc::NotFound,
      {"'airssys-no-such-program'", "not found in PATH"});
  add("empty program", test::quiet(""), Errc::InvalidArgument, {"program is empty"});
  add("NUL byte in the program", test::quiet(std::string_view("/bin/t\0rue", 10)), Errc::InvalidArgument,
      {"program", "NUL"});
  add("NUL byte in an argument", test::quiet("/bin/echo", nul_arg), Errc::InvalidArgument,
      {"argument #2", "'/bin/echo'", "NUL"});
  {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.env = nul_env;
    add("NUL byte in an env entry", op, Errc::InvalidArgument, {"env entry #0", "NUL"});
    op.env = no_equals;
    add("env entry without '='", op, Errc::InvalidArgument, {"env entry #0", "'NOEQUALS'", "NAME=value"});
    op.env = empty_name;
    add("env entry with an empty name", op, Errc::InvalidArgument, {"'=value'", "NAME=value"});
  }
  {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.working_dir = "/nonexistent-airssys-dir";
    add("missing working dir", op, Errc::NotFound, {"working_dir '/nonexistent-airssys-dir'", "does not exist"});
  }
  {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.working_dir = plain;
    add("working dir is a file", op, Errc::InvalidArgument, {"working_dir '" + plain + "'", "not a directory"});
  }
  {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.working_dir = std::string_view("/t\0mp", 5);
    add("NUL byte in the working dir", op, Errc::InvalidArgument, {"working_dir", "NUL"});
  }
  for (int pgid : {own_pgid, 0, 1, -1}) {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.process_group = ProcessGroupConfig::join(pgid);
    add(pgid == own_pgid ? "JoinGroup to the test's own group" : "JoinGroup to pgid <= 1", op,
        Errc::InvalidArgument, {"JoinGroup", std::to_string(pgid)});
  }
  {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.stdio[1] = StdioConfig::file("/nonexistent-dir/out.txt");
    add("unwritable stdout file", op, Errc::NotFound, {"'/nonexistent-dir/out.txt'", "stdout"});
    op.stdio[1] = StdioConfig::file("");
    add("File stdio without a path", op, Errc::InvalidArgument, {"File mode needs a path"});
  }
  {
    SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.lifetime = ProcessLifetime::Detached;
    op.process_group = ProcessGroupConfig::join(own_pgid);
    add("Detached with JoinGroup", op, Errc::InvalidArgument, {"Detached", "process_group"});
    op.process_group = ProcessGroupConfig::inherit();
    add("Detached with Inherit", op, Errc::InvalidArgument, {"Detached", "process_group"});
  }
  {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.containment = Containment::None;
    add("Managed with containment None", op, Errc::InvalidArgument, {"None"});
    op.containment = Containment::ProcessGroup;
    op.process_group = ProcessGroupConfig::inherit();
    add("ProcessGroup containment in the parent's group", op, Errc::InvalidArgument, {"pgroup", "process_group"});
  }

  for (const Case& c : cases) {
    INFO("case: " << c.what);
    leaves_nothing(ex, [&] {
      auto r = ex.execute(c.op);
      REQUIRE_FALSE(r.ok());
      INFO("message: " << r.error().message());
      CHECK(r.code() == c.code);
      for (const auto& n : c.named) CHECK(test::names(r.error(), n));
    });
  }
  CHECK(ex.counters().spawned == ex.counters().cleaned);
}

// /bin/true with `args` is refused as E2BIG, naming the program.
void refused_as_too_long(ProcessExecutor& ex, std::span<const std::string_view> args) {
  auto r = ex.execute(test::quiet("/bin/true", args));
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.code() == Errc::InvalidArgument);
  CHECK(r.error().os_error() == E2BIG);
  CHECK(test::names(r.error(), "/bin/true'"));  // as given, or resolved (at exec: /usr/bin/true)
  CHECK(test::names(r.error(), "too long"));
}

TEST_CASE("by default an argument list as long as exec accepts runs, and one longer is refused, naming it") {
  NothingLeft guard;
  ProcessExecutor ex;
  warm(ex);
  // Arguments of 100 bytes (with the NUL and a pointer: 109 counted) up to
  // what is left of the limit after this process's environment.
  std::size_t env_bytes = 0;
  for (auto e = arch::inherited_environment(); *e != nullptr; ++e) env_bytes += std::strlen(*e) + 1 + sizeof(char*);
  const std::size_t room = arch::argument_limit() - env_bytes - 4096;  // the marker, argv[0], slack
  INFO("argument limit " << arch::argument_limit() << ", environment " << env_bytes);
  REQUIRE(arch::argument_limit() >= 128 * 1024);
  SECTION("just under the limit (2 MiB by default, 8x the old 256 KiB buffer) runs") {
    std::vector<std::string> storage(room / 109, std::string(100, 'a'));
    std::vector<std::string_view> args(storage.begin(), storage.end());
    leaves_nothing(ex, [&] {
      CHECK(wait_ok(ex, spawn_ok(ex, test::quiet("/bin/true", args)).pid).code == 0);
    });
  }
  SECTION("twice the limit is refused by the spawn buffer, before any process exists") {
    std::vector<std::string> storage(2 * arch::argument_limit() / 109, std::string(100, 'a'));
    std::vector<std::string_view> args(storage.begin(), storage.end());
    leaves_nothing(ex, [&] { refused_as_too_long(ex, args); });
  }
}

TEST_CASE("an argument list too long for the spawn buffer or for the kernel is refused, naming the program") {
  NothingLeft guard;
  ExecutorConfig config;
  config.spawn_buffer_bytes = 256 * 1024;
  ProcessExecutor ex(config);
  warm(ex);
  SECTION("3000 arguments of 100 bytes exceed a 256 KiB spawn buffer") {
    std::vector<std::string> storage(3000, std::string(100, 'a'));
    std::vector<std::string_view> args(storage.begin(), storage.end());
    leaves_nothing(ex, [&] { refused_as_too_long(ex, args); });
  }
  SECTION("one 200 KiB argument fits the buffer but not the kernel (E2BIG at exec)") {
    const std::string big(200 * 1024, 'b');
    const std::string_view args[] = {big};
    leaves_nothing(ex, [&] { refused_as_too_long(ex, args); });
  }
}

TEST_CASE("a spawn with no file descriptor left fails cleanly and the executor still works afterwards") {
  NothingLeft guard;
  ProcessExecutor ex;
  Containment c = Containment::Auto;
  SECTION("cgroup containment") { c = Containment::Auto; }
  SECTION("process-group containment") { c = Containment::ProcessGroup; }
  warm(ex, c);
  const test::Census before = test::Census::take();
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  struct Restore {
    rlimit lim;
    ~Restore() { ::setrlimit(RLIMIT_NOFILE, &lim); }
  } restore{old};
  const rlim_t open_now = test::open_fds();
  rlimit low = old;
  low.rlim_cur = open_now + 2;
  REQUIRE(low.rlim_cur <= old.rlim_max);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  SpawnProcessOperation op = test::quiet("/bin/cat");
  op.containment = c;
  op.stdio[0] = op.stdio[1] = op.stdio[2] = StdioConfig::pipe();
  auto r = ex.execute(op);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
  if (r.ok()) {
    // Not expected; do not leak what was spawned.
    for (int fd : r->pipes) if (fd >= 0) ::close(fd);
    (void)ex.execute(TeardownOperation{r->pid, 0});
  }
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.error().os_error() == EMFILE);
  CHECK(ex.live() == 0);
  const test::Census after = test::Census::take();
  INFO("before: " << before.describe());
  INFO("after:  " << after.describe());
  CHECK(after == before);
  warm(ex, c);
}

TEST_CASE("spawns that run out of descriptors at each step give back every descriptor and cgroup they took") {
  // With every descriptor below the limit in use but k, for k = 0, 1, ...:
  // the spawn fails at a different step each time (the cgroup's handles,
  // the pipes, the pidfd) or, with enough, succeeds. Either way, afterwards
  // exactly k descriptors are free again, and no cgroup directory is left.
  NothingLeft guard;
  ProcessExecutor ex;
  Containment c = Containment::Auto;
  SECTION("cgroup containment") { c = Containment::Auto; }
  SECTION("process-group containment") { c = Containment::ProcessGroup; }
  warm(ex, c);
  const test::Census before = test::Census::take();
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  std::vector<int> fillers;
  struct Restore {
    rlimit lim;
    std::vector<int>& fillers;
    ~Restore() {
      for (int fd : fillers) ::close(fd);
      ::setrlimit(RLIMIT_NOFILE, &lim);
    }
  } restore{old, fillers};
  rlimit low = old;
  low.rlim_cur = test::open_fds() + 32;
  REQUIRE(low.rlim_cur <= old.rlim_max);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  // Fill every free slot below the limit.
  auto fill = [&] {
    int n = 0;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0; ++n) fillers.push_back(fd);
    return n;
  };
  fill();
  SpawnProcessOperation op = test::quiet("/bin/cat");
  op.containment = c;
  op.stdio[0] = op.stdio[1] = op.stdio[2] = StdioConfig::pipe();
  // No assertion runs while the descriptors are exhausted: the sanitizer
  // runtimes probe memory through a pipe and misreport without one. Each
  // step is recorded and judged once the limit is restored.
  struct Step {
    int k = 0;
    bool ok = false;
    bool torn_down = false;
    int os_error = 0;
    std::string message;
    std::size_t live = 0;
    int refilled = 0;
  };
  std::vector<Step> steps;
  steps.reserve(17);
  std::vector<std::string> failures;
  int first_success = -1;
  for (int k = 0; k <= 16 && first_success < 0; ++k) {
    for (int i = 0; i < k; ++i) {
      ::close(fillers.back());
      fillers.pop_back();
    }
    Step step;
    step.k = k;
    auto r = ex.execute(op);
    if (r.ok()) {
      first_success = k;
      step.ok = true;
      for (int fd : r->pipes)
        if (fd >= 0) ::close(fd);
      step.torn_down = ex.execute(TeardownOperation{r->pid, 0}).ok();
    } else {
      step.os_error = r.error().os_error();
      step.message = r.error().message();
    }
    step.live = ex.live();
    step.refilled = fill();
    steps.push_back(std::move(step));
  }
  for (int fd : fillers) ::close(fd);
  fillers.clear();
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
  for (const Step& st : steps) {
    INFO("free descriptors: " << st.k);
    if (st.ok) {
      CHECK(st.torn_down);
    } else {
      failures.push_back(st.message);
      INFO("error: " << st.message);
      CHECK((st.os_error == EMFILE || st.os_error == ENFILE));
    }
    CHECK(st.live == 0);
    CHECK(st.refilled == st.k);  // all k are free again
  }
  std::string all;
  for (const auto& f : failures) all += "\n  " + f;
  INFO("failures:" << all);
  CHECK(first_success > 0);
  const test::Census after = test::Census::take();
  INFO("before: " << before.describe());
  INFO("after:  " << after.describe());
  CHECK(after == before);
}

TEST_CASE("a full process table is an error naming max_processes, and nothing is spawned") {
  NothingLeft guard;
  ExecutorConfig cfg;
  cfg.max_processes = 2;
  ProcessExecutor ex(cfg);
  const int a = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep)).pid;
  const int b = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep)).pid;
  const unsigned long long a_start = test::start_time_of(a), b_start = test::start_time_of(b);
  guard.pids = {a, b};
  REQUIRE(ex.live() == 2);
  leaves_nothing(ex, [&] {
    auto r = ex.execute(test::quiet("/bin/true"));
    REQUIRE_FALSE(r.ok());
    INFO(r.error().message());
    CHECK(r.code() == Errc::Full);
    CHECK(test::names(r.error(), "max_processes"));
    CHECK(test::names(r.error(), "2"));
  });
  teardown_ok(ex, a);
  teardown_ok(ex, b);
  CHECK(ex.live() == 0);
  CHECK_FALSE(test::same_process_exists(a, a_start));
  CHECK_FALSE(test::same_process_exists(b, b_start));
  CHECK(ex.counters().spawned == 2);
  CHECK(ex.counters().cleaned == 2);
}

TEST_CASE("forcing Containment::Cgroup where no cgroup is usable is Unavailable and says why") {
  NothingLeft guard;
  ExecutorConfig cfg;
  cfg.cgroup_base = "/tmp";
  ProcessExecutor ex(cfg);
  warm(ex, Containment::ProcessGroup);
  leaves_nothing(ex, [&] {
    SpawnProcessOperation op = test::quiet("/bin/true");
    op.containment = Containment::Cgroup;
    auto r = ex.execute(op);
    REQUIRE_FALSE(r.ok());
    INFO(r.error().message());
    CHECK(r.code() == Errc::Unavailable);
    CHECK(test::names(r.error(), "cgroup"));
    CHECK(test::names(r.error(), "'/tmp'"));
    CHECK(test::names(r.error(), "not a cgroup2 directory"));
  });
  Error why;
  CHECK(ex.auto_containment(&why) == Containment::ProcessGroup);
  CHECK(test::names(why, "/tmp"));
  // Auto falls back to the process group.
  const auto r = spawn_ok(ex, test::quiet("/bin/true"));
  CHECK(r.containment == Containment::ProcessGroup);
  CHECK(wait_ok(ex, r.pid).code == 0);
}

TEST_CASE("KillProcessGroup refuses pgid 0, 1, -1 and groups this executor did not create") {
  NothingLeft guard;
  ProcessExecutor ex;
  warm(ex);
  // A group someone else created: another executor's, with a live sleeper.
  ProcessExecutor other;
  const auto foreign = spawn_ok(other, test::quiet("/bin/sleep", test::kSleep));
  guard.pids = {foreign.pid};
  struct Case {
    int pgid;
    int signal;
  };
  // Signal 0 where a wrongly accepted request would reach processes that
  // are not ours (our own group, every process): refusal is decided on the
  // pgid alone, before the signal matters.
  const Case cases[] = {{0, 0}, {1, 0}, {-1, 0}, {::getpgrp(), 0}, {foreign.pgid, SIGKILL}};
  for (const Case& c : cases) {
    INFO("pgid " << c.pgid);
    leaves_nothing(ex, [&] {
      auto r = ex.execute(KillProcessGroupOperation{c.pgid, c.signal});
      REQUIRE_FALSE(r.ok());
      INFO(r.error().message());
      CHECK(r.code() == Errc::InvalidArgument);
      CHECK(test::names(r.error(), std::to_string(c.pgid)));
    });
  }
  CHECK(running(foreign.pid));
  teardown_ok(other, foreign.pid);
}

TEST_CASE("signal numbers out of range are refused for SignalProcess and KillProcessGroup, naming the number") {
  NothingLeft guard;
  ProcessExecutor ex;
  const auto p = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
  guard.pids = {p.pid};
  for (int sig : {-1, 65, 1000}) {
    INFO("signal " << sig);
    leaves_nothing(ex, [&] {
      auto r = ex.execute(SignalProcessOperation{p.pid, sig});
      REQUIRE_FALSE(r.ok());
      INFO(r.error().message());
      CHECK(r.code() == Errc::InvalidArgument);
      CHECK(test::names(r.error(), "signal number " + std::to_string(sig)));
    });
    leaves_nothing(ex, [&] {
      auto r = ex.execute(KillProcessGroupOperation{p.pgid, sig});
      REQUIRE_FALSE(r.ok());
      INFO(r.error().message());
      CHECK(r.code() == Errc::InvalidArgument);
      CHECK(test::names(r.error(), "signal number " + std::to_string(sig)));
    });
  }
  CHECK(running(p.pid));
  const auto report = teardown_ok(ex, p.pid);
  CHECK(report.leader_status.signal == SIGTERM);
}

TEST_CASE("operations on pids this executor does not hold are refused") {
  NothingLeft guard;
  ProcessExecutor ex;
  warm(ex);
  for (int pid : {0, -1, 1, ::getpid()}) {
    INFO("pid " << pid);
    leaves_nothing(ex, [&] {
      auto s = ex.execute(SignalProcessOperation{pid, 0});
      REQUIRE_FALSE(s.ok());
      CHECK(s.code() == Errc::InvalidArgument);
      CHECK(test::names(s.error(), "was not spawned by this executor or was already reaped"));
      auto w = ex.execute(WaitProcessOperation{pid, 0});
      REQUIRE_FALSE(w.ok());
      CHECK(w.code() == Errc::InvalidArgument);
      auto t = ex.execute(TeardownOperation{pid, 0});
      REQUIRE_FALSE(t.ok());
      CHECK(t.code() == Errc::InvalidArgument);
      CHECK(test::names(t.error(), "not a managed process of this executor"));
    });
  }
}

// ---- good paths -----------------------------------------------------------------

TEST_CASE("WaitProcess gives the exit code, or the signal that killed the process") {
  NothingLeft guard;
  ProcessExecutor ex;
  SECTION("exit code") {
    const std::string_view args[] = {"-c", "exit 7"};
    const auto p = spawn_ok(ex, test::quiet("/bin/sh", args));
    const auto st = wait_ok(ex, p.pid);
    CHECK(st.code == 7);
    CHECK(st.signal == 0);
  }
  SECTION("killed through SignalProcess") {
    const auto p = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
    REQUIRE(ex.execute(SignalProcessOperation{p.pid, SIGKILL}).ok());
    const auto st = wait_ok(ex, p.pid);
    CHECK(st.signal == SIGKILL);
    CHECK(st.shell_status() == 128 + SIGKILL);
  }
  SECTION("killed by its own signal") {
    const std::string_view args[] = {"-c", "kill -TERM $$; sleep 5"};
    const auto p = spawn_ok(ex, test::quiet("/bin/sh", args));
    CHECK(wait_ok(ex, p.pid).signal == SIGTERM);
  }
  SECTION("killed through KillProcessGroup") {
    const auto p = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
    REQUIRE(ex.execute(KillProcessGroupOperation{p.pgid, SIGTERM}).ok());
    CHECK(wait_ok(ex, p.pid).signal == SIGTERM);
  }
  CHECK(ex.live() == 0);
  CHECK(ex.counters().spawned == ex.counters().cleaned);
}

TEST_CASE("SpawnProcessResult names the process and its group, as the process group config asked") {
  NothingLeft guard;
  ProcessExecutor ex;
  SECTION("NewGroup: pgid == pid") {
    const auto p = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
    guard.pids = {p.pid};
    CHECK(p.pid > 1);
    CHECK(p.pgid == p.pid);
    CHECK(p.lifetime == ProcessLifetime::Managed);
    test::ProcEntry e;
    REQUIRE(test::read_proc(p.pid, e));
    CHECK(e.pgid == p.pid);
    CHECK(e.ppid == test::self_pid());
    CHECK(test::session_of(p.pid) == ::getsid(0));
    teardown_ok(ex, p.pid);
  }
  SECTION("NewSession: sid == pgid == pid") {
    SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.process_group = ProcessGroupConfig::new_session();
    const auto p = spawn_ok(ex, op);
    guard.pids = {p.pid};
    CHECK(p.pgid == p.pid);
    CHECK(test::session_of(p.pid) == p.pid);
    teardown_ok(ex, p.pid);
  }
  SECTION("JoinGroup of a group this executor made: the leader's pgid, and its cgroup") {
    const auto leader = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
    SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.process_group = ProcessGroupConfig::join(leader.pgid);
    const auto member = spawn_ok(ex, op);
    const unsigned long long member_start = test::start_time_of(member.pid);
    guard.pids = {leader.pid, member.pid};
    CHECK(member.pid != leader.pid);
    CHECK(member.pgid == leader.pid);
    CHECK(member.containment == leader.containment);
    test::ProcEntry e;
    REQUIRE(test::read_proc(member.pid, e));
    CHECK(e.pgid == leader.pid);
    CHECK(test::cgroup2_of(member.pid) == test::cgroup2_of(leader.pid));
    // The leader's teardown takes the member with it.
    const auto report = teardown_ok(ex, leader.pid);
    CHECK(report.reaped >= 2);
    CHECK_FALSE(test::same_process_exists(member.pid, member_start));
  }
  CHECK(ex.live() == 0);
}

TEST_CASE("EnvMode::Clean gives the child only the entries given, and InheritWithOverrides overrides one") {
  NothingLeft guard;
  ProcessExecutor ex;
  test::ScopedEnv var("AIRSSYS_OSL_TEST_VAR", "old");
  SECTION("Clean") {
    const std::string_view env[] = {"A=1", "B=two words"};
    SpawnProcessOperation op = test::quiet("/usr/bin/env");
    op.env = env;
    op.env_mode = EnvMode::Clean;
    op.stdio[1] = StdioConfig::pipe();
    const auto p = spawn_ok(ex, op);
    test::Fd out(p.pipes[1]);
    REQUIRE(out.fd >= 0);
    CHECK(p.pipes[0] == -1);
    CHECK(p.pipes[2] == -1);
    CHECK(test::read_to_eof(out.fd) == "A=1\nB=two words\n");
    CHECK(wait_ok(ex, p.pid).code == 0);
  }
  SECTION("InheritWithOverrides") {
    const std::string_view env[] = {"AIRSSYS_OSL_TEST_VAR=new", "AIRSSYS_OSL_ADDED=yes"};
    SpawnProcessOperation op = test::quiet("/usr/bin/env");
    op.env = env;
    op.stdio[1] = StdioConfig::pipe();
    const auto p = spawn_ok(ex, op);
    test::Fd out(p.pipes[1]);
    const std::string text = "\n" + test::read_to_eof(out.fd);
    CHECK(wait_ok(ex, p.pid).code == 0);
    CHECK(text.find("\nAIRSSYS_OSL_TEST_VAR=new\n") != std::string::npos);
    CHECK(text.find("AIRSSYS_OSL_TEST_VAR=old") == std::string::npos);
    CHECK(text.find("\nAIRSSYS_OSL_ADDED=yes\n") != std::string::npos);
    CHECK(text.find("\nPATH=" + std::string(std::getenv("PATH")) + "\n") != std::string::npos);
  }
}

TEST_CASE("a name given twice in env reaches the child once, with its last value, over the inherited one") {
  NothingLeft guard;
  ProcessExecutor ex;
  test::ScopedEnv var("AIRSSYS_OSL_TEST_DUP", "inherited");
  const std::string_view env[] = {"AIRSSYS_OSL_TEST_DUP=first", "AIRSSYS_OSL_OTHER=x", "AIRSSYS_OSL_TEST_DUP=last"};
  SpawnProcessOperation op = test::quiet("/usr/bin/env");
  op.env = env;
  SECTION("InheritWithOverrides") {}
  SECTION("Clean") { op.env_mode = EnvMode::Clean; }
  op.stdio[1] = StdioConfig::pipe();
  const auto p = spawn_ok(ex, op);
  test::Fd out(p.pipes[1]);
  const std::string text = "\n" + test::read_to_eof(out.fd);
  CHECK(wait_ok(ex, p.pid).code == 0);
  INFO(text);
  std::size_t count = 0;
  for (std::size_t at = text.find("\nAIRSSYS_OSL_TEST_DUP="); at != std::string::npos;
       at = text.find("\nAIRSSYS_OSL_TEST_DUP=", at + 1))
    ++count;
  CHECK(count == 1);
  CHECK(text.find("\nAIRSSYS_OSL_TEST_DUP=last\n") != std::string::npos);
  CHECK(text.find("\nAIRSSYS_OSL_OTHER=x\n") != std::string::npos);
}

TEST_CASE("working_dir is the child's current directory") {
  NothingLeft guard;
  ProcessExecutor ex;
  TempDir dir;
  const std::string where = dir.path.string();
  SpawnProcessOperation op = test::quiet("/bin/pwd");
  op.working_dir = where;
  op.stdio[1] = StdioConfig::pipe();
  const auto p = spawn_ok(ex, op);
  test::Fd out(p.pipes[1]);
  REQUIRE(out.fd >= 0);
  CHECK(test::read_to_eof(out.fd) == where + "\n");
  CHECK(wait_ok(ex, p.pid).code == 0);
}

TEST_CASE("Containment::Auto picks a cgroup here, and the child is born in its own g<n>") {
  NothingLeft guard;
  ProcessExecutor ex;
  Error why;
  REQUIRE(ex.auto_containment(&why) == Containment::Cgroup);
  const auto p = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
  guard.pids = {p.pid};
  CHECK(p.containment == Containment::Cgroup);
  const std::string cg = test::cgroup2_of(p.pid);
  INFO("cgroup of the child: " << cg);
  CHECK(ends_in_own_group(cg));
  CHECK(test::own_airssys_cgroups().size() == 2);  // the root and the child's group
  // A second tree gets a group of its own.
  const auto q = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
  guard.pids.push_back(q.pid);
  CHECK(test::cgroup2_of(q.pid) != cg);
  CHECK(teardown_ok(ex, p.pid).containment == Containment::Cgroup);
  teardown_ok(ex, q.pid);
  CHECK(test::own_airssys_cgroups().size() == 1);  // the root only, until the executor goes
}

TEST_CASE("Containment::ProcessGroup forced: the child leads its group, outside any airssys cgroup") {
  NothingLeft guard;
  ProcessExecutor ex;
  SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
  op.containment = Containment::ProcessGroup;
  const auto p = spawn_ok(ex, op);
  guard.pids = {p.pid};
  CHECK(p.containment == Containment::ProcessGroup);
  CHECK(p.pgid == p.pid);
  CHECK(test::cgroup2_of(p.pid).find("airssys") == std::string::npos);
  const auto report = teardown_ok(ex, p.pid);
  CHECK(report.containment == Containment::ProcessGroup);
  CHECK(report.exited_on_term);
  CHECK(report.leader_status.signal == SIGTERM);
  CHECK(ex.live() == 0);
}

TEST_CASE("SignalProcess to a pid already reaped is refused (the pid may have been reused)") {
  NothingLeft guard;
  ProcessExecutor ex;
  const auto p = spawn_ok(ex, test::quiet("/bin/true"));
  CHECK(wait_ok(ex, p.pid).code == 0);
  leaves_nothing(ex, [&] {
    auto r = ex.execute(SignalProcessOperation{p.pid, SIGKILL});
    REQUIRE_FALSE(r.ok());
    INFO(r.error().message());
    CHECK(r.code() == Errc::InvalidArgument);
    CHECK(test::names(r.error(), std::to_string(p.pid)));
    CHECK(test::names(r.error(), "was not spawned by this executor or was already reaped"));
    auto w = ex.execute(WaitProcessOperation{p.pid, 0});
    REQUIRE_FALSE(w.ok());
    CHECK(w.code() == Errc::InvalidArgument);
  });
}

TEST_CASE("a WaitProcess that times out leaves the process running") {
  NothingLeft guard;
  ProcessExecutor ex;
  const auto p = spawn_ok(ex, test::quiet("/bin/sleep", test::kSleep));
  guard.pids = {p.pid};
  auto r = ex.execute(WaitProcessOperation{p.pid, 50 * kMs});
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.code() == Errc::Timeout);
  CHECK(test::names(r.error(), std::to_string(p.pid)));
  CHECK(running(p.pid));
  CHECK(ex.live() == 1);
  // Still held: it can be signalled, and torn down.
  CHECK(ex.execute(SignalProcessOperation{p.pid, 0}).ok());
  const auto report = teardown_ok(ex, p.pid);
  CHECK(report.exited_on_term);
  CHECK(ex.live() == 0);
}

TEST_CASE("destroying the executor kills and reaps every managed tree it holds") {
  NothingLeft guard;
  Containment c = Containment::Cgroup;
  SECTION("cgroup") { c = Containment::Cgroup; }
  SECTION("process group") { c = Containment::ProcessGroup; }
  {
    ProcessExecutor ex;
    const std::string_view args[] = {"-c", "trap '' TERM; sleep 1000 & echo $!; wait"};
    SpawnProcessOperation op = test::quiet("/bin/sh", args);
    op.containment = c;
    op.stdio[1] = StdioConfig::pipe();
    const auto p = spawn_ok(ex, op);
    test::Fd out(p.pipes[1]);
    guard.pids = {p.pid};
    const auto lines = test::read_lines(out.fd, 1);
    REQUIRE(lines.size() == 1);
    const int child = std::stoi(lines[0]);
    guard.pids.push_back(child);
    REQUIRE(running(p.pid));
    REQUIRE(running(child));
    // A second, plain tree.
    SpawnProcessOperation plain = test::quiet("/bin/sleep", test::kSleep);
    plain.containment = c;
    guard.pids.push_back(spawn_ok(ex, plain).pid);
    CHECK(ex.live() == 2);
  }
  // Each by the pidfd taken when it was recorded (running).
  for (std::size_t i = 0; i < guard.pids.size(); ++i) {
    INFO(guard.pids.describe(i));
    CHECK_FALSE(guard.pids.exists(i));
  }
  CHECK(test::children_of_self().empty());
  CHECK(test::own_airssys_cgroups().empty());
}

TEST_CASE("a Detached process survives the executor, in a session of its own and in no airssys cgroup") {
  NothingLeft guard;
  // The detached process is still this process's child: the test ends it
  // itself, on every exit path.
  struct EndIt {
    int pid = -1;
    ~EndIt() {
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);
      int st = 0;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
  } end_it;
  int pid = -1;
  unsigned long long start = 0;
  {
    ProcessExecutor ex;
    SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.lifetime = ProcessLifetime::Detached;
    const auto p = spawn_ok(ex, op);
    pid = end_it.pid = p.pid;
    start = test::start_time_of(pid);
    CHECK(p.lifetime == ProcessLifetime::Detached);
    CHECK(p.containment == Containment::None);
    CHECK(p.pgid == p.pid);
    CHECK(ex.counters().detached == 1);
    CHECK(ex.counters().spawned == 0);
  }
  REQUIRE(running(pid));
  CHECK(test::session_of(pid) == pid);
  test::ProcEntry e;
  REQUIRE(test::read_proc(pid, e));
  CHECK(e.pgid == pid);
  CHECK(e.ppid == test::self_pid());
  const std::string cg = test::cgroup2_of(pid);
  INFO("cgroup: " << cg);
  CHECK(cg.find("airssys") == std::string::npos);
  CHECK(test::own_airssys_cgroups().empty());
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  end_it.pid = -1;
  CHECK(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGKILL);
  CHECK_FALSE(test::same_process_exists(pid, start));
}

TEST_CASE("a watched descriptor is reported once per arming, never after unwatch returns, within a bounded table") {
  NothingLeft guard;
  struct Sink final : osl::ExitSink {
    void on_exit(std::uint64_t, int, osl::ExitStatus) noexcept override {}
  } sink;
  struct Counter final : osl::FdWatcher {
    std::atomic<int> calls{0};
    std::atomic<bool> slow{false}, inside{false}, finished{false};
    void on_readable(int) noexcept override {
      if (slow.load()) {
        inside = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        finished = true;
      }
      calls.fetch_add(1);
    }
  };
  ExecutorConfig cfg;
  cfg.fd_watches = 2;
  ProcessExecutor ex(cfg);
  int a[2], b[2], c[2];
  REQUIRE(::pipe2(a, O_CLOEXEC | O_NONBLOCK) == 0);
  REQUIRE(::pipe2(b, O_CLOEXEC | O_NONBLOCK) == 0);
  REQUIRE(::pipe2(c, O_CLOEXEC | O_NONBLOCK) == 0);
  Counter wa, wb, wc;
  auto early = ex.watch_readable(a[0], wa);
  REQUIRE_FALSE(early);
  CHECK(early.code() == Errc::Unavailable);
  REQUIRE(ex.start_reactor(sink).ok());

  REQUIRE(ex.watch_readable(a[0], wa).ok());
  CHECK(ex.watch_readable(a[0], wa).code() == Errc::AlreadyExists);
  REQUIRE(ex.watch_readable(b[0], wb).ok());
  auto full = ex.watch_readable(c[0], wc);
  CHECK(full.code() == Errc::Full);
  CHECK_THAT(full.error().message(), Catch::Contains("fd " + std::to_string(c[0])));

  // One-shot: unread data is reported again only after rearm.
  REQUIRE(::write(a[1], "x", 1) == 1);
  REQUIRE(test::wait_for([&] { return wa.calls.load() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(wa.calls.load() == 1);
  REQUIRE(ex.rearm(a[0]).ok());
  REQUIRE(test::wait_for([&] { return wa.calls.load() == 2; }));
  char byte;
  REQUIRE(::read(a[0], &byte, 1) == 1);

  // unwatch waits for a call in progress, and none comes after it.
  wa.slow = true;
  REQUIRE(ex.rearm(a[0]).ok());
  REQUIRE(::write(a[1], "y", 1) == 1);
  REQUIRE(test::wait_for([&] { return wa.inside.load(); }));
  ex.unwatch(a[0]);
  CHECK(wa.finished.load());
  const int after = wa.calls.load();
  CHECK(ex.rearm(a[0]).code() == Errc::NotFound);
  REQUIRE(::write(a[1], "z", 1) == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(wa.calls.load() == after);
  // Its slot is free again.
  REQUIRE(ex.watch_readable(c[0], wc).ok());
  ex.unwatch(b[0]);
  ex.unwatch(c[0]);
  for (int fd : {a[0], a[1], b[0], b[1], c[0], c[1]}) ::close(fd);
  CHECK(wb.calls.load() == 0);
}

// Waits up to 10 ms for the executor's events and, if there are any, runs a
// pass on this thread. True when this thread's pass ran.
bool pass_here(ProcessExecutor& ex) {
  pollfd pfd{ex.event_handle(), POLLIN, 0};
  return ::poll(&pfd, 1, 10) > 0 && ex.reactor_pass();
}

// Records every exit the sink is told of, and on which thread.
struct ExitRecorder final : osl::ExitSink {
  ProcessExecutor* ex = nullptr;
  std::thread::id caller;
  std::atomic<int> exits{0};
  std::atomic<int> on_caller{0};
  std::atomic<int> nested_ran{0};
  std::mutex mu;
  std::vector<int> pids;
  void on_exit(std::uint64_t, int pid, osl::ExitStatus) noexcept override {
    if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
    // A pass asked for from inside a pass: refused, not a deadlock.
    if (ex->reactor_pass()) nested_ran.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(mu);
      pids.push_back(pid);
    }
    exits.fetch_add(1);
  }
};

TEST_CASE("a thread that waits on event_handle() and runs reactor_pass() handles exits itself, each reported once") {
  NothingLeft check;
  ExitRecorder sink;
  ProcessExecutor ex{ExecutorConfig{}};
  sink.ex = &ex;
  sink.caller = std::this_thread::get_id();
  // No reactor yet: nothing to wait on, no pass.
  CHECK(ex.event_handle() == -1);
  CHECK_FALSE(ex.reactor_pass());
  REQUIRE(ex.start_reactor(sink).ok());
  REQUIRE(ex.event_handle() >= 0);
  // The reactor thread wakes for every event too: whichever pass comes
  // first reports the exit, the other finds nothing.
  constexpr int kRounds = 30;
  std::vector<int> spawned;
  for (int i = 0; i < kRounds; ++i) {
    const auto p = spawn_ok(ex, test::quiet("/bin/true"));
    spawned.push_back(p.pid);
    REQUIRE(test::wait_for([&] {
      (void)pass_here(ex);
      return sink.exits.load() >= i + 1;
    }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(sink.exits.load() == kRounds);
  {
    std::lock_guard<std::mutex> lock(sink.mu);
    std::sort(sink.pids.begin(), sink.pids.end());
    std::sort(spawned.begin(), spawned.end());
    CHECK(sink.pids == spawned);
  }
  CHECK(sink.on_caller.load() > 0);
  CHECK(sink.nested_ran.load() == 0);
}

TEST_CASE("reactor passes on several threads at once report every exit exactly once") {
  NothingLeft check;
  ExitRecorder sink;
  ProcessExecutor ex{ExecutorConfig{}};
  sink.ex = &ex;
  REQUIRE(ex.start_reactor(sink).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> passes{0};
  std::vector<std::thread> passers;
  for (int t = 0; t < 2; ++t)
    passers.emplace_back([&] {
      while (!stop.load())
        if (pass_here(ex)) passes.fetch_add(1);
    });
  constexpr int kProcesses = 100;
  std::vector<int> spawned;
  for (int i = 0; i < kProcesses; ++i) spawned.push_back(spawn_ok(ex, test::quiet("/bin/true")).pid);
  const bool all = test::wait_for([&] { return sink.exits.load() >= kProcesses; });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (auto& t : passers) t.join();
  REQUIRE(all);
  CHECK(sink.exits.load() == kProcesses);
  std::lock_guard<std::mutex> lock(sink.mu);
  std::sort(sink.pids.begin(), sink.pids.end());
  std::sort(spawned.begin(), spawned.end());
  CHECK(sink.pids == spawned);
  CHECK(passes.load() > 0);
}

TEST_CASE("a watcher called in a pass on another thread may unwatch its own descriptor") {
  NothingLeft check;
  struct Sink final : osl::ExitSink {
    void on_exit(std::uint64_t, int, osl::ExitStatus) noexcept override {}
  } sink;
  struct SelfRemover final : osl::FdWatcher {
    ProcessExecutor* ex = nullptr;
    std::thread::id caller;
    std::atomic<int> calls{0};
    std::atomic<int> on_caller{0};
    void on_readable(int fd) noexcept override {
      if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
      ex->unwatch(fd);  // from its own call: must not wait for itself
      calls.fetch_add(1);
    }
  };
  ProcessExecutor ex{ExecutorConfig{}};
  REQUIRE(ex.start_reactor(sink).ok());
  SelfRemover w;
  w.ex = &ex;
  w.caller = std::this_thread::get_id();
  // The reactor thread races this one for each event: rounds until this
  // thread's pass has made the call (each round is a call on one of them).
  for (int round = 0; round < 200 && w.on_caller.load() == 0; ++round) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    test::Fd r(fds[0]), wr(fds[1]);
    REQUIRE(ex.watch_readable(r.fd, w).ok());
    const int before = w.calls.load();
    REQUIRE(::write(wr.fd, "x", 1) == 1);
    REQUIRE(test::wait_for([&] {
      (void)pass_here(ex);
      return w.calls.load() > before;
    }));
    CHECK(ex.rearm(r.fd).code() == Errc::NotFound);  // it is unwatched
  }
  CHECK(w.on_caller.load() > 0);
}

TEST_CASE("a WaitProcess with a negative timeout is refused naming it; the default, INT64_MAX, waits without limit") {
  NothingLeft guard;
  ProcessExecutor ex;
  warm(ex);
  const std::string_view args[] = {"0.2"};
  const int pid = spawn_ok(ex, test::quiet("/bin/sleep", args)).pid;
  auto r = ex.execute(WaitProcessOperation{pid, -1});
  REQUIRE_FALSE(r.ok());
  CHECK(r.code() == Errc::InvalidArgument);
  CHECK(test::names(r.error(), "timeout -1 ns is negative"));
  CHECK(test::names(r.error(), std::to_string(pid)));
  auto done = ex.execute(WaitProcessOperation{pid});
  INFO(done.error().message());
  REQUIRE(done.ok());
  CHECK(done.value().code == 0);
}
