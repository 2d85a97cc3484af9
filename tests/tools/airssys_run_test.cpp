// airssys-run, as built, with real processes: exit statuses, usage errors,
// programs that cannot start, signal forwarding, the grace period,
// restarts, the audit log, the summary line, setsid escapees under both
// containments, and a SIGKILLed airssys-run whose tree must die with it.
//
// The test process makes itself a child subreaper, so anything of a tree
// that outlives airssys-run comes back to it as a child: that is how a leak
// is seen (a test checks it has no child left once airssys-run is reaped),
// and how every exit path reaps everything (PID 1 here does not reap
// orphans; a leak would be a zombie for good). airssys-run itself is
// started with a parent-death signal, so that a test that dies takes it,
// and through its guardian its tree, along.

#include <catch2/catch.hpp>

#include "support/proc_table.hpp"
#include "support/temp_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

const char* const kTool = AIRSSYS_RUN_PATH;

// ---- processes --------------------------------------------------------------

// The pids of this process's children (every thread's list), zombies included.
using airssys::test::child_pids;

// /proc/<pid>/stat state, or 0 when there is no such process.
char proc_state(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : 0;
}

// Running (or stopped, or sleeping): neither gone nor a zombie.
bool alive(int pid) {
  const char s = proc_state(pid);
  return s != 0 && s != 'Z' && s != 'X';
}

// Reaps every child of ours that has ended (zombies), without waiting.
void reap_ended() {
  while (::waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
  }
}

// SIGKILLs and reaps every child of this process, round after round, until
// none is left: a reaped child's own children come back to us (subreaper).
// __WALL there: also a child without an exit signal (the runtime's guardian).
void kill_and_reap_all() { airssys::test::kill_and_reap_children(); }

// Every test's guard: the test becomes a subreaper; on any exit path,
// whatever is left of ours is killed and reaped. Without exceptions a
// failed REQUIRE terminates the test at once, past every destructor: the
// terminate handler does the same cleanup first.
struct Reaper {
  Reaper() {
    std::set_terminate([] {
      kill_and_reap_all();
      std::abort();
    });
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  }
  ~Reaper() { kill_and_reap_all(); }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;
};

// A private directory, removed at the end.
struct TempDir : airssys::test::TempDir {
  TempDir() : airssys::test::TempDir("airssys-run-test") {}
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Waits up to `limit` for `pred`; polls.
template <class Pred>
bool eventually(Pred pred, Ms limit = 10s) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// airssys-run started by the test, its stdout and stderr in files.
class Tool {
 public:
  Tool(const TempDir& dir, std::vector<std::string> args)
      : out_(dir / "tool.out"), err_(dir / "tool.err") {
    std::vector<std::string> argv_s;
    argv_s.push_back(kTool);
    for (auto& a : args) argv_s.push_back(std::move(a));
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int parent = ::getpid();
    started_ = Clock::now();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // The child of a single-threaded test: plain calls are safe here.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      const int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int in = ::open("/dev/null", O_RDONLY);
      if (out < 0 || err < 0 || in < 0) ::_exit(120);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execv(kTool, argv.data());
      ::_exit(121);
    }
  }
  ~Tool() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Tool(const Tool&) = delete;
  Tool& operator=(const Tool&) = delete;

  int pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // Waits up to `limit` for airssys-run to exit; its status (code, or
  // 128 + signal), or -1 after a timeout (then it is killed).
  int wait(Ms limit = 30s) {
    const auto end = Clock::now() + limit;
    int status = 0;
    for (;;) {
      const int r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (Clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
        return -1;
      }
      std::this_thread::sleep_for(1ms);
    }
    reaped_ = true;
    elapsed_ = std::chrono::duration_cast<Ms>(Clock::now() - started_);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }
  Ms elapsed() const { return elapsed_; }

 private:
  std::string out_, err_;
  int pid_ = -1;
  bool reaped_ = false;
  Clock::time_point started_;
  Ms elapsed_{0};
};

struct Result {
  int status;
  std::string out, err;
  Ms elapsed;
};

// Runs airssys-run to completion. Afterwards nothing of its tree may be
// left: no child of the test (orphans would have come to us).
Result run(const TempDir& dir, std::vector<std::string> args, Ms limit = 30s) {
  Tool t(dir, std::move(args));
  const int status = t.wait(limit);
  Result r{status, t.out(), t.err(), t.elapsed()};
  INFO("stderr: " << r.err);
  CHECK(status != -1);
  CHECK(child_pids().empty());
  return r;
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// True when --containment cgroup works here (cgroup v2, writable). The
// suite runs as root on machines with cgroup2 mounted: a cgroup test that
// cannot run fails, it is not skipped.
bool cgroup_usable() {
  TempDir dir;
  const Result r = run(dir, {"--containment", "cgroup", "--", "true"});
  INFO("cgroup containment is unavailable here: " << r.err);
  CHECK(r.status == 0);
  return r.status == 0;
}

// sh -c script pieces.
std::string escapee_script(const std::string& pidfile) {
  // A grandchild that leaves the group and session with setsid, ignores
  // SIGTERM, and outlives the program (which exits after 0.3 s).
  return "(setsid sh -c \"trap '' TERM; echo \\$\\$ > " + pidfile + ".tmp; mv " + pidfile + ".tmp " + pidfile +
         "; exec sleep 1000\" &); sleep 0.3";
}

int read_pid(const std::string& path) {
  std::ifstream in(path);
  int pid = -1;
  in >> pid;
  return pid;
}

}  // namespace

// ---- exit statuses ------------------------------------------------------------

TEST_CASE("the program's exit code is airssys-run's") {
  Reaper reaper;
  TempDir dir;
  CHECK(run(dir, {"--", "sh", "-c", "exit 7"}).status == 7);
  CHECK(run(dir, {"--", "true"}).status == 0);
  CHECK(run(dir, {"sh", "-c", "exit 3"}).status == 3);  // "--" is optional
}

TEST_CASE("a program killed by signal N gives 128+N") {
  Reaper reaper;
  TempDir dir;
  CHECK(run(dir, {"--", "sh", "-c", "kill -9 $$"}).status == 137);
  CHECK(run(dir, {"--", "sh", "-c", "kill -TERM $$"}).status == 143);
}

TEST_CASE("the program inherits stdio and gets its arguments and --cwd") {
  Reaper reaper;
  TempDir dir;
  const Result r = run(dir, {"--cwd", dir.path.string(), "--", "sh", "-c", "pwd; echo \"$1|$2\"", "sh", "a b", "c"});
  CHECK(r.status == 0);
  CHECK(r.out == dir.path.string() + "\na b|c\n");
}

// ---- usage ----------------------------------------------------------------

TEST_CASE("usage errors exit 2 with the usage on stderr") {
  Reaper reaper;
  TempDir dir;
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"--verbose"},
      {"--"},
      {"--containment", "bogus", "--", "true"},
      {"--containment"},
      {"--kill-timeout", "x", "--", "true"},
      {"--kill-timeout", "-5", "--", "true"},
      {"--kill-timeout", "100ms", "--", "true"},
      {"--restart", "sometimes", "--", "true"},
      {"--max-restarts", "many", "--", "true"},
      {"--period", "0", "--", "true"},
      {"--no-such-flag", "--", "true"},
      {"-x", "true"},
  };
  for (const auto& args : bad) {
    std::string shown;
    for (const auto& a : args) shown += " " + a;
    INFO("airssys-run" << shown);
    const Result r = run(dir, args);
    CHECK(r.status == 2);
    CHECK(contains(r.err, "usage: airssys-run"));
    CHECK(r.out.empty());
  }
  const Result named = run(dir, {"--containment", "bogus", "--", "true"});
  CHECK(contains(named.err, "'bogus'"));
}

TEST_CASE("help prints the usage on stdout and exits 0") {
  Reaper reaper;
  TempDir dir;
  const Result r = run(dir, {"--help"});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "usage: airssys-run"));
  CHECK(contains(r.out, "--kill-timeout MS"));
  CHECK(r.err.empty());
}

TEST_CASE("options take --flag=value as well as --flag value") {
  Reaper reaper;
  TempDir dir;
  CHECK(run(dir, {"--kill-timeout=100", "--containment=pgroup", "--", "sh", "-c", "exit 4"}).status == 4);
}

// ---- programs that cannot start -------------------------------------------------

TEST_CASE("a program that cannot be started gives 127 or 126 and names it") {
  Reaper reaper;
  TempDir dir;
  SECTION("missing path") {
    const Result r = run(dir, {"--", dir / "no-such-program"});
    CHECK(r.status == 127);
    CHECK(contains(r.err, dir / "no-such-program"));
  }
  SECTION("not in PATH") {
    const Result r = run(dir, {"--", "airssys-no-such-program-xyz"});
    CHECK(r.status == 127);
    CHECK(contains(r.err, "airssys-no-such-program-xyz"));
  }
  SECTION("not executable") {
    const std::string script = dir / "script.sh";
    std::ofstream(script) << "#!/bin/sh\nexit 0\n";
    std::filesystem::permissions(script, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    const Result r = run(dir, {"--", script});
    CHECK(r.status == 126);
    CHECK(contains(r.err, script));
  }
  SECTION("a directory") {
    const Result r = run(dir, {"--", dir.path.string()});
    CHECK(r.status == 126);
    CHECK(contains(r.err, dir.path.string()));
  }
  SECTION("bad --cwd") {
    const Result r = run(dir, {"--cwd", dir / "no-such-dir", "--", "true"});
    CHECK(r.status == 127);
    CHECK(contains(r.err, dir / "no-such-dir"));
  }
}

// ---- signals ------------------------------------------------------------------

TEST_CASE("SIGTERM is forwarded: a program that traps it and exits 0 gives 0") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready";
  Tool t(dir, {"--", "sh", "-c", "trap 'exit 0' TERM; touch " + ready + "; while :; do sleep 0.05; done"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  t.signal(SIGTERM);
  CHECK(t.wait() == 0);
  INFO(t.err());
  CHECK(child_pids().empty());
}

TEST_CASE("SIGINT is forwarded: the program dying of it gives 130") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready";
  Tool t(dir, {"--", "sh", "-c", "touch " + ready + "; exec sleep 1000"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  std::this_thread::sleep_for(50ms);  // past the exec
  t.signal(SIGINT);
  CHECK(t.wait() == 130);
  CHECK(child_pids().empty());
}

TEST_CASE("SIGHUP is forwarded and does not stop anything by itself") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready", hups = dir / "hups";
  Tool t(dir, {"--", "sh", "-c",
               "trap 'echo hup >> " + hups + "' HUP; touch " + ready + "; while :; do sleep 0.05; done"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  t.signal(SIGHUP);
  CHECK(eventually([&] { return lines_of(hups).size() == 1; }));
  t.signal(SIGHUP);
  CHECK(eventually([&] { return lines_of(hups).size() == 2; }));
  t.signal(SIGTERM);  // no trap: the shell dies of it
  CHECK(t.wait() == 143);
  CHECK(child_pids().empty());
}

// The chosen semantics: a forwarded SIGINT/SIGTERM gives the program
// --kill-timeout ms to exit; then it is SIGKILLed (status 137).
TEST_CASE("a program ignoring a forwarded SIGTERM is killed after --kill-timeout") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready";
  Tool t(dir, {"--kill-timeout", "200", "--", "sh", "-c",
               "trap '' TERM; touch " + ready + "; while :; do sleep 0.05; done"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  const auto sent = Clock::now();
  t.signal(SIGTERM);
  CHECK(t.wait() == 137);
  const auto took = std::chrono::duration_cast<Ms>(Clock::now() - sent);
  INFO("exited " << took.count() << " ms after SIGTERM");
  CHECK(took >= 180ms);  // the grace period was given
  CHECK(took < 3000ms);  // and no more than a bounded teardown after it
  CHECK(child_pids().empty());
}

TEST_CASE("a second SIGTERM or SIGINT kills the program at once") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready";
  Tool t(dir, {"--kill-timeout", "30000", "--", "sh", "-c",
               "trap '' TERM INT; touch " + ready + "; while :; do sleep 0.05; done"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  const auto sent = Clock::now();
  t.signal(SIGTERM);
  std::this_thread::sleep_for(100ms);
  t.signal(SIGINT);
  CHECK(t.wait() == 137);
  CHECK(Clock::now() - sent < 5s);  // far from the 30 s grace
  CHECK(child_pids().empty());
}

TEST_CASE("when the program exits, the rest of its tree is torn down") {
  Reaper reaper;
  TempDir dir;
  const std::string child = dir / "child", ready = dir / "ready";
  // A child in the program's group that ignores SIGTERM: it gets SIGKILL
  // --kill-timeout ms later; the program's own status is kept. The
  // program exits only once the child's trap is in place.
  const Result r = run(dir, {"--kill-timeout", "200", "--", "sh", "-c",
                             "(trap '' TERM; touch " + ready + "; exec sleep 1000) & echo $! > " + child +
                                 "; while [ ! -e " + ready + " ]; do sleep 0.01; done; exit 5"});
  CHECK(r.status == 5);
  const int pid = read_pid(child);
  REQUIRE(pid > 0);
  CHECK_FALSE(alive(pid));
  CHECK(r.elapsed >= 180ms);
}

// ---- restarts -------------------------------------------------------------------

TEST_CASE("restart on-failure runs max-restarts + 1 times, then exits with the last status") {
  Reaper reaper;
  TempDir dir;
  const std::string runs = dir / "runs";
  const Result r = run(dir, {"--restart", "on-failure", "--max-restarts", "2", "--", "sh", "-c",
                             "echo x >> " + runs + "; exit 1"});
  CHECK(r.status == 1);
  CHECK(lines_of(runs).size() == 3);
}

TEST_CASE("restart on-failure does not restart a program that succeeds") {
  Reaper reaper;
  TempDir dir;
  const std::string runs = dir / "runs";
  const Result r = run(dir, {"--restart", "on-failure", "--", "sh", "-c",
                             "echo x >> " + runs + "; n=$(wc -l < " + runs + "); [ $n -ge 2 ] && exit 0; exit 9"});
  CHECK(r.status == 0);
  CHECK(lines_of(runs).size() == 2);
}

TEST_CASE("restart always restarts after success too, --max-restarts 0 never restarts") {
  Reaper reaper;
  TempDir dir;
  const std::string runs = dir / "runs", once = dir / "once";
  CHECK(run(dir, {"--restart", "always", "--max-restarts", "1", "--", "sh", "-c", "echo x >> " + runs}).status == 0);
  CHECK(lines_of(runs).size() == 2);
  CHECK(run(dir, {"--restart", "always", "--max-restarts", "0", "--", "sh", "-c", "echo x >> " + once + "; exit 2"})
            .status == 2);
  CHECK(lines_of(once).size() == 1);
}

TEST_CASE("restarts older than --period no longer count") {
  Reaper reaper;
  TempDir dir;
  const std::string runs = dir / "runs";
  // Each failing run lasts 1.2 s, longer than the 1 s period: the one
  // allowed restart is always available again. The third run succeeds.
  const Result r = run(dir, {"--restart", "on-failure", "--max-restarts", "1", "--period", "1", "--", "sh", "-c",
                             "echo x >> " + runs + "; [ $(wc -l < " + runs + ") -ge 3 ] && exit 0; sleep 1.2; exit 1"});
  CHECK(r.status == 0);
  CHECK(lines_of(runs).size() == 3);
}

TEST_CASE("before a restart the previous tree is gone") {
  Reaper reaper;
  TempDir dir;
  const std::string kids = dir / "kids", seen = dir / "seen";
  // Each run leaves a SIGTERM-ignoring child behind and checks that the
  // previous run's child no longer exists.
  const std::string script = "if [ -s " + kids + " ]; then kill -0 $(tail -n 1 " + kids + ") 2>/dev/null && echo alive >> " +
                             seen + "; fi; (trap '' TERM; exec sleep 1000) & echo $! >> " + kids + "; exit 1";
  const Result r = run(dir, {"--kill-timeout", "100", "--restart", "on-failure", "--max-restarts", "2", "--", "sh",
                             "-c", script});
  CHECK(r.status == 1);
  const auto pids = lines_of(kids);
  CHECK(pids.size() == 3);
  CHECK_FALSE(std::filesystem::exists(seen));
  for (const auto& p : pids) CHECK_FALSE(alive(std::stoi(p)));
}

TEST_CASE("a forwarded SIGTERM ends the restarts") {
  Reaper reaper;
  TempDir dir;
  const std::string runs = dir / "runs";
  Tool t(dir, {"--restart", "always", "--max-restarts", "1000", "--", "sh", "-c", "echo x >> " + runs + "; sleep 0.2"});
  REQUIRE(eventually([&] { return lines_of(runs).size() >= 2; }));
  t.signal(SIGTERM);
  const int status = t.wait(10s);
  // Killed by the forwarded SIGTERM, or (signal between two runs) the
  // last run's status.
  CHECK((status == 143 || status == 0));
  const auto n = lines_of(runs).size();
  std::this_thread::sleep_for(300ms);
  CHECK(lines_of(runs).size() == n);
  CHECK(child_pids().empty());
}

// ---- audit and summary ------------------------------------------------------------

TEST_CASE("audit FILE gets one JSON line per process event") {
  Reaper reaper;
  TempDir dir;
  const std::string audit = dir / "audit.jsonl";
  CHECK(run(dir, {"--audit", audit, "--", "sh", "-c", "exit 0"}).status == 0);
  const auto lines = lines_of(audit);
  REQUIRE(lines.size() >= 2);
  for (const auto& l : lines) {
    CHECK(l.front() == '{');
    CHECK(l.back() == '}');
  }
  CHECK(contains(lines[0], "\"event\":\"spawn\""));
  CHECK(contains(lines[0], "\"program\":\"sh\""));
  CHECK(contains(read_file(audit), "\"event\":\"exit\""));
}

TEST_CASE("an --audit FILE that cannot be opened is an error naming it, exit 2") {
  Reaper reaper;
  TempDir dir;
  const std::string bad = dir / "no-such-dir/audit.jsonl";
  const Result r = run(dir, {"--audit", bad, "--", "true"});
  CHECK(r.status == 2);
  CHECK(contains(r.err, bad));
}

TEST_CASE("verbose prints one summary line on stderr") {
  Reaper reaper;
  TempDir dir;
  SECTION("pgroup") {
    const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--", "sh", "-c", "exit 3"});
    CHECK(r.status == 3);
    CHECK(r.err ==
          "airssys-run: containment=pgroup runs=1 restarts=0 exits_seen=1 trees_spawned=1 trees_cleaned=1 "
          "killed=0 orphans_adopted=0 status=3\n");
  }
  SECTION("restarts are counted") {
    const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--restart", "always", "--max-restarts", "2",
                               "--", "true"});
    CHECK(r.status == 0);
    CHECK(contains(r.err, "runs=3 restarts=2 exits_seen=3 trees_spawned=3 trees_cleaned=3"));
  }
  SECTION("cgroup") {
    if (!cgroup_usable()) return;
    const Result r = run(dir, {"--verbose", "--containment", "cgroup", "--", "true"});
    CHECK(r.status == 0);
    CHECK(contains(r.err, "airssys-run: containment=cgroup runs=1 "));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

// ---- containment ----------------------------------------------------------------

TEST_CASE("a setsid escapee is gone once airssys-run exits (cgroup)") {
  Reaper reaper;
  if (!cgroup_usable()) return;
  TempDir dir;
  const std::string pidfile = dir / "escapee";
  const Result r = run(dir, {"--verbose", "--containment", "cgroup", "--kill-timeout", "200", "--", "sh", "-c",
                             escapee_script(pidfile)});
  CHECK(r.status == 0);
  const int pid = read_pid(pidfile);
  REQUIRE(pid > 0);
  // Nothing but the runtime's teardown ends processes: the cgroup held it.
  CHECK_FALSE(alive(pid));
}

TEST_CASE("a setsid escapee is gone once airssys-run exits (pgroup)") {
  Reaper reaper;
  TempDir dir;
  const std::string pidfile = dir / "escapee";
  const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--kill-timeout", "200", "--", "sh", "-c",
                             escapee_script(pidfile)});
  CHECK(r.status == 0);
  const int pid = read_pid(pidfile);
  REQUIRE(pid > 0);
  CHECK_FALSE(alive(pid));
}

// Regression: the reactor's orphan scan once did not run while its first
// wait had no timeout, so an escapee was often not adopted before the
// program exited, and the runtime's teardown missed it.
TEST_CASE("pgroup: the runtime's teardown itself ends a setsid escapee", "[pgroup]") {
  Reaper reaper;
  TempDir dir;
  const std::string pidfile = dir / "escapee";
  const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--kill-timeout", "200", "--", "sh", "-c",
                             escapee_script(pidfile)});
  CHECK(r.status == 0);
  const int pid = read_pid(pidfile);
  REQUIRE(pid > 0);
  CHECK_FALSE(alive(pid));
  // The reactor adopted it as an orphan before the teardown.
  CHECK(contains(r.err, "orphans_adopted="));
  CHECK_FALSE(contains(r.err, "orphans_adopted=0 "));
}

namespace {

// SIGKILLs airssys-run while it runs a tree (the program, two children in
// its group and, when given, a setsid escapee) and checks that every pid
// of the tree is gone within 1 s. The test, as subreaper, inherits the
// killed tree and reaps it as it goes.
void sigkill_takes_the_tree(const std::string& containment, bool with_escapee) {
  Reaper reaper;
  TempDir dir;
  const std::string pids = dir / "pids", escapee = dir / "escapee";
  std::string script = "sleep 1000 & a=$!; (trap '' TERM; exec sleep 1000) & b=$!; ";
  if (with_escapee) script += "(setsid sh -c \"echo \\$\\$ > " + escapee + ".tmp; mv " + escapee + ".tmp " + escapee +
                              "; exec sleep 1000\" &); ";
  script += "echo \"$$ $a $b\" > " + pids + ".tmp; mv " + pids + ".tmp " + pids + "; wait";
  Tool t(dir, {"--containment", containment, "--", "sh", "-c", script});
  REQUIRE(eventually([&] { return std::filesystem::exists(pids); }));
  std::vector<int> tree;
  {
    std::ifstream in(pids);
    for (int p; in >> p;) tree.push_back(p);
  }
  REQUIRE(tree.size() == 3);
  if (with_escapee) {
    REQUIRE(eventually([&] { return std::filesystem::exists(escapee); }));
    tree.push_back(read_pid(escapee));
  }
  for (int p : tree) REQUIRE(alive(p));
  std::this_thread::sleep_for(100ms);  // the runtime's orphan scan runs every 50 ms
  const int host = t.pid();
  t.signal(SIGKILL);
  CHECK(t.wait(5s) == 137);
  const auto killed = Clock::now();
  const bool gone = eventually(
      [&] {
        reap_ended();
        for (int p : tree)
          if (proc_state(p) != 0) return false;
        return true;
      },
      1000ms);
  INFO("gone after " << std::chrono::duration_cast<Ms>(Clock::now() - killed).count() << " ms");
  for (int p : tree) {
    INFO("pid " << p << " state " << proc_state(p));
    CHECK_FALSE(alive(p));
  }
  CHECK(gone);
  // The guardian (re-parented to this subreaper) also removes the dead
  // host's cgroups; wait for it before the Reaper ends every child.
  const std::string prefix = "airssys-" + std::to_string(host) + "-";
  const bool removed =
      eventually(
      [&] { return airssys::test::dirs_with_prefix(airssys::test::cgroup2_mount_point(), prefix).empty(); }, 3000ms);
  CHECK(removed);
}

}  // namespace

TEST_CASE("SIGKILL of airssys-run kills its tree within 1 s (pgroup)") { sigkill_takes_the_tree("pgroup", false); }

TEST_CASE("SIGKILL of airssys-run kills its tree within 1 s (cgroup, with a setsid escapee)") {
  {
    Reaper reaper;
    if (!cgroup_usable()) return;
  }
  sigkill_takes_the_tree("cgroup", true);
}

// Regression for the same bug: an escapee the runtime had not adopted was
// not registered with the guardian.
TEST_CASE("SIGKILL of airssys-run also kills a setsid escapee (pgroup)", "[pgroup]") {
  sigkill_takes_the_tree("pgroup", true);
}
