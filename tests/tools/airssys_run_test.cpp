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
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
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

// airssys-run started by the test, its stdout and stderr in files;
// `prelude`, when given, runs in the forked child just before the exec.
class Tool {
 public:
  Tool(const TempDir& dir, std::vector<std::string> args, void (*prelude)() = nullptr)
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
      if (prelude != nullptr) prelude();
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
Result run(const TempDir& dir, std::vector<std::string> args, Ms limit = 30s, void (*prelude)() = nullptr) {
  Tool t(dir, std::move(args), prelude);
  const int status = t.wait(limit);
  Result r{status, t.out(), t.err(), t.elapsed()};
  INFO("stderr: " << r.err);
  CHECK(status != -1);
  CHECK(child_pids().empty());
  // For the caller's next assertion (about this status, most often).
  UNSCOPED_INFO("airssys-run's stderr: " << r.err);
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

// ---- preludes: how the forked child sets up airssys-run's world -------------
// (a failure exits 122, which the test then sees as airssys-run's status)

// airssys-run leads a process group of its own, as a shell job does.
void own_process_group() {
  if (::setpgid(0, 0) != 0) ::_exit(122);
}

// A mount namespace of its own, in which no cgroup2 file system is mounted.
void without_cgroup2() {
  if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(122);
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line);
    std::string id, parent, device, root, point;
    fields >> id >> parent >> device >> root >> point;
    points.push_back(point);
  }
  for (auto it = points.rbegin(); it != points.rend(); ++it)
    if (::umount2(it->c_str(), MNT_DETACH) != 0) ::_exit(122);
}

// airssys-run as PID 1 of a new PID namespace with its own /proc, the way a
// container starts its init. The forked child stays outside, as the
// namespace's creator: it waits for airssys-run and exits with its status.
void as_pid_1() {
  if (::unshare(CLONE_NEWPID | CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    ::_exit(122);
  const pid_t init = ::fork();
  if (init < 0) ::_exit(122);
  if (init == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) ::_exit(122);
    return;  // on to the exec: airssys-run is PID 1
  }
  int status = 0;
  while (::waitpid(init, &status, 0) < 0 && errno == EINTR) {
  }
  ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

// The children of `pid` (every thread's), as the test numbers them.
std::vector<int> children_of(int pid) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (int p; in >> p;) out.push_back(p);
  }
  return out;
}

// Live processes whose environment carries the tree marker of the runtime
// in process `host` ("AIRSSYS_TREE=<host>" and then not a digit).
std::vector<int> marked_by(int host) {
  const std::string prefix = "AIRSSYS_TREE=" + std::to_string(host);
  std::vector<int> out;
  for (int pid : airssys::test::all_pids()) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    for (std::string entry; std::getline(in, entry, '\0');) {
      if (entry.compare(0, prefix.size(), prefix) == 0 &&
          (entry.size() == prefix.size() || entry[prefix.size()] < '0' || entry[prefix.size()] > '9')) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
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

// Issue 7, P17: ProcessExited carries the core dump, and the summary shows
// it. The core file, if core_pattern names a plain file, is written in
// --cwd, a directory removed afterwards.
TEST_CASE("a program that dumps core gives 128+N, and the summary says core_dumped=1") {
  Reaper reaper;
  TempDir dir;
  SECTION("dumped") {
    const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--cwd", dir.path.string(), "--", "sh", "-c",
                               "ulimit -c unlimited; kill -SEGV $$"});
    CHECK(r.status == 128 + SIGSEGV);
    CHECK(contains(r.err, " status=139 core_dumped=1\n"));
  }
  SECTION("killed without a core") {
    const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--cwd", dir.path.string(), "--", "sh", "-c",
                               "ulimit -c 0; kill -SEGV $$"});
    CHECK(r.status == 128 + SIGSEGV);
    CHECK(contains(r.err, " status=139 core_dumped=0\n"));
  }
}

TEST_CASE("the program inherits stdio and gets its arguments and --cwd") {
  Reaper reaper;
  TempDir dir;
  const Result r = run(dir, {"--cwd", dir.path.string(), "--", "sh", "-c", "pwd; echo \"$1|$2\"", "sh", "a b", "c"});
  CHECK(r.status == 0);
  CHECK(r.out == dir.path.string() + "\na b|c\n");
}

// ---- usage ----------------------------------------------------------------

TEST_CASE("usage errors exit 2 with the error, the synopsis and a pointer to --help on stderr") {
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
      {"--procfile", "a", "--procfile", "b"},
  };
  for (const auto& args : bad) {
    std::string shown;
    for (const auto& a : args) shown += " " + a;
    INFO("airssys-run" << shown);
    const Result r = run(dir, args);
    CHECK(r.status == 2);
    CHECK(contains(r.err, "usage: airssys-run"));
    CHECK(contains(r.err, "Try 'airssys-run --help' for the options."));
    CHECK_FALSE(contains(r.err, "--kill-timeout MS"));  // not the whole help: the error stays in view
    CHECK(r.out.empty());
  }
  CHECK(contains(run(dir, {"--procfile", "a", "--procfile", "b"}).err, "--procfile given twice (the second is 'b')"));
  const Result named = run(dir, {"--containment", "bogus", "--", "true"});
  CHECK(contains(named.err, "'bogus'"));
}

TEST_CASE("help prints the usage on stdout and exits 0") {
  Reaper reaper;
  TempDir dir;
  for (const char* flag : {"--help", "-h"}) {
    INFO(flag);
    const Result r = run(dir, {flag});
    CHECK(r.status == 0);
    CHECK(contains(r.out, "usage: airssys-run"));
    CHECK(contains(r.out, "--kill-timeout MS"));
    CHECK(r.err.empty());
  }
}

TEST_CASE("airssys-run --version prints the version on stdout and exits 0") {
  Reaper reaper;
  TempDir dir;
  const Result r = run(dir, {"--version"});
  CHECK(r.status == 0);
  CHECK(r.out == "airssys-run " AIRSSYS_VERSION "\n");
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

// Regression (issue 7, P17): it exited 127, the status of a PROGRAM that
// cannot be started.
TEST_CASE("a containment that is not available is airssys-run's own failure: 125, and the reason") {
  Reaper reaper;
  TempDir dir;
  const Result r = run(dir, {"--containment", "cgroup", "--", "true"}, 30s, without_cgroup2);
  CHECK(r.status == 125);
  CHECK(contains(r.err, "containment cgroup is unavailable"));
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

TEST_CASE("a stopped program still gets the forwarded SIGTERM: SIGCONT follows it") {
  for (const char* containment : {"pgroup", "cgroup"}) {
    INFO("containment " << containment);
    Reaper reaper;
    TempDir dir;
    const std::string pid_file = dir / "pid";
    // A 30 s grace: a SIGTERM left pending in the stopped program would
    // end in SIGKILL (137) long after the test's wait.
    Tool t(dir, {"--kill-timeout", "30000", "--containment", containment, "--", "sh", "-c",
                 "echo $$ > " + pid_file + "; exec sleep 1000"});
    REQUIRE(eventually([&] { return read_pid(pid_file) > 0 && airssys::test::comm_of(read_pid(pid_file)) == "sleep"; }));
    const int program = read_pid(pid_file);
    REQUIRE(::kill(program, SIGSTOP) == 0);
    REQUIRE(eventually([&] {
      airssys::test::ProcEntry e;
      return airssys::test::read_proc(program, e) && e.state == 'T';
    }));
    t.signal(SIGTERM);
    CHECK(t.wait() == 128 + SIGTERM);
    CHECK(child_pids().empty());
  }
}

// One SIGTERM, one grace for the whole tree: a program that ignores it
// and a child that ignores it too are both SIGKILLed --kill-timeout ms
// after it (not the program then, and its child one more grace later); a
// program that exits on it three seconds later leaves its TERM-ignoring
// child the rest of that grace, not a new one. The two answers are 3 s
// apart (4 s against 7 s): a machine loaded far beyond CI's (sanitizer
// builds beside three test jobs) was seen to add almost 2 s.
TEST_CASE("one SIGTERM gives the whole tree one --kill-timeout, not one more for what the program leaves") {
  for (const char* containment : {"pgroup", "cgroup"}) {
    for (const bool program_exits : {false, true}) {
      INFO("containment " << containment << (program_exits ? ", the program exits 3 3 s after SIGTERM" : ""));
      Reaper reaper;
      TempDir dir;
      const std::string ready = dir / "ready", child = dir / "child";
      Tool t(dir, {"--kill-timeout", "4000", "--containment", containment, "--", "sh", "-c",
                   std::string(program_exits ? "trap 'sleep 3; exit 3' TERM; " : "trap '' TERM; ") +
                       "(trap '' TERM; exec sleep 1000) & echo $! > " + child + "; touch " + ready +
                       "; while :; do sleep 0.05; done"});
      REQUIRE(eventually([&] { return std::filesystem::exists(ready) && read_pid(child) > 0; }));
      const int pid = read_pid(child);
      std::this_thread::sleep_for(100ms);  // the child's trap is in place
      const auto sent = Clock::now();
      t.signal(SIGTERM);
      CHECK(t.wait() == (program_exits ? 3 : 137));
      const auto took = std::chrono::duration_cast<Ms>(Clock::now() - sent);
      INFO("exited " << took.count() << " ms after SIGTERM");
      CHECK(took >= 3900ms);  // the grace was given
      CHECK(took < 6500ms);   // once: a second one would end past 7000 ms
      CHECK_FALSE(alive(pid));
      CHECK(child_pids().empty());
    }
  }
}

// "At once" for the whole tree: the program and a child of its that
// ignores SIGTERM too, so that a teardown with grace would wait out the
// 30 s --kill-timeout before it killed the child.
TEST_CASE("a second SIGTERM or SIGINT kills the whole tree at once") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready", child = dir / "child";
  Tool t(dir, {"--kill-timeout", "30000", "--", "sh", "-c",
               "trap '' TERM INT; (trap '' TERM; exec sleep 1000) & echo $! > " + child + "; touch " + ready +
                   "; while :; do sleep 0.05; done"});
  REQUIRE(eventually([&] { return std::filesystem::exists(ready); }));
  const int pid = read_pid(child);
  REQUIRE(pid > 0);
  const auto sent = Clock::now();
  t.signal(SIGTERM);
  std::this_thread::sleep_for(100ms);
  t.signal(SIGINT);
  CHECK(t.wait() == 137);
  CHECK(Clock::now() - sent < 5s);  // far from the 30 s grace
  CHECK(contains(t.err(), "signal 2 again: killing the whole tree now"));
  CHECK_FALSE(alive(pid));
  CHECK(child_pids().empty());
}

// After the program has exited, what it left gets SIGTERM and the grace;
// a first SIGTERM then only cancels the restarts, a second ends the grace.
TEST_CASE("a second SIGTERM while the program's leftovers are torn down kills them at once") {
  Reaper reaper;
  TempDir dir;
  const std::string ready = dir / "ready", child = dir / "child", program = dir / "program";
  Tool t(dir, {"--kill-timeout", "30000", "--restart", "always", "--", "sh", "-c",
               "echo $$ > " + program + "; (trap '' TERM; touch " + ready + "; exec sleep 1000) & echo $! > " +
                   child + "; while [ ! -e " + ready + " ]; do sleep 0.01; done; exit 0"});
  // The child touches `ready` itself: its pid file may come a moment later.
  REQUIRE(eventually([&] { return std::filesystem::exists(ready) && read_pid(child) > 0; }));
  const int pid = read_pid(child);
  // The program has exited (and is reaped); its child ignores the
  // teardown's SIGTERM.
  const int program_pid = read_pid(program);
  REQUIRE(program_pid > 0);
  REQUIRE(eventually([&] { return !alive(program_pid); }));
  std::this_thread::sleep_for(100ms);
  const auto sent = Clock::now();
  t.signal(SIGTERM);
  std::this_thread::sleep_for(100ms);
  CHECK(alive(pid));  // the first one does not hurry the teardown
  t.signal(SIGTERM);
  CHECK(t.wait() == 137);
  CHECK(Clock::now() - sent < 5s);
  CHECK_FALSE(alive(pid));
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

TEST_CASE("an --audit FILE that records cannot be written to is reported, exit 125") {
  Reaper reaper;
  TempDir dir;
  const Result r = run(dir, {"--audit", "/dev/full", "--", "true"});
  CHECK(r.status == 125);
  CHECK(contains(r.err, "records could not be written"));
  CHECK(contains(r.err, "/dev/full"));
}

TEST_CASE("verbose prints one summary line on stderr") {
  Reaper reaper;
  TempDir dir;
  SECTION("pgroup") {
    const Result r = run(dir, {"--verbose", "--containment", "pgroup", "--", "sh", "-c", "exit 3"});
    CHECK(r.status == 3);
    CHECK(r.err ==
          "airssys-run: containment=pgroup runs=1 restarts=0 exits_seen=1 trees_spawned=1 trees_cleaned=1 "
          "killed=0 orphans_adopted=0 status=3 core_dumped=0\n");
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
  SECTION("a program that cannot start: the containment Auto chose, not 'auto'") {
    const Result r = run(dir, {"--verbose", "--", "/nonexistent/program"});
    CHECK(r.status == 127);
    INFO(r.err);
    CHECK(contains(r.err, std::string("airssys-run: containment=") + (cgroup_usable() ? "cgroup" : "pgroup") +
                              " runs=1 restarts=0 exits_seen=0 trees_spawned=0"));
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
enum class Death {
  Kill,       // SIGKILL to airssys-run
  GroupKill,  // SIGKILL to airssys-run's whole process group (it leads one)
  AfterGuardianDied,  // the guardian is SIGKILLed first; then airssys-run
};

// The runtime's guardian: airssys-run's child that is no process of the tree.
std::vector<int> guardians_of(int host, const std::vector<int>& tree) {
  std::vector<int> out;
  for (int p : children_of(host))
    if (std::find(tree.begin(), tree.end(), p) == tree.end() && alive(p)) out.push_back(p);
  return out;
}

void sigkill_takes_the_tree(const std::string& containment, bool with_escapee, Death death = Death::Kill) {
  Reaper reaper;
  TempDir dir;
  const std::string pids = dir / "pids", escapee = dir / "escapee";
  std::string script = "sleep 1000 & a=$!; (trap '' TERM; exec sleep 1000) & b=$!; ";
  if (with_escapee) script += "(setsid sh -c \"echo \\$\\$ > " + escapee + ".tmp; mv " + escapee + ".tmp " + escapee +
                              "; exec sleep 1000\" &); ";
  script += "echo \"$$ $a $b\" > " + pids + ".tmp; mv " + pids + ".tmp " + pids + "; wait";
  Tool t(dir, {"--containment", containment, "--", "sh", "-c", script},
         death == Death::GroupKill ? own_process_group : nullptr);
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
  if (death == Death::AfterGuardianDied) {
    // The runtime notices its guardian's death and starts a new one that
    // knows every tree it holds.
    const auto first = guardians_of(host, tree);
    REQUIRE(first.size() == 1);
    // What the guardian holds: its own descriptors, one per registration.
    const auto held = [](int pid) {
      std::error_code ec;
      const std::filesystem::directory_iterator fds("/proc/" + std::to_string(pid) + "/fd", ec);
      return ec ? -1 : static_cast<int>(std::distance(fds, std::filesystem::directory_iterator{}));
    };
    const int registered = held(first[0]);
    REQUIRE(registered > 0);
    REQUIRE(::kill(first[0], SIGKILL) == 0);  // airssys-run's child, unreaped: still its number
    int second = 0;
    // Replaced, and told of everything again (the host's death before
    // that is a window no guardian covers).
    const bool replaced = eventually([&] {
      const auto now = guardians_of(host, tree);
      second = now.size() == 1 && now[0] != first[0] ? now[0] : 0;
      return second != 0 && proc_state(first[0]) == 0 && held(second) == registered;
    });
    INFO("guardians now: " << guardians_of(host, tree).size());
    REQUIRE(replaced);
  }
  if (death == Death::GroupKill) {
    REQUIRE(::kill(-host, SIGKILL) == 0);
  } else {
    t.signal(SIGKILL);
  }
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

// Issue 7, P3: the guardian was in airssys-run's process group (and shared
// its memory map): a group kill, or the OOM killer, took it along.
TEST_CASE("a SIGKILL to airssys-run's whole process group still kills its tree") {
  SECTION("pgroup") { sigkill_takes_the_tree("pgroup", true, Death::GroupKill); }
  SECTION("cgroup") {
    {
      Reaper reaper;
      if (!cgroup_usable()) return;
    }
    sigkill_takes_the_tree("cgroup", true, Death::GroupKill);
  }
}

TEST_CASE("a guardian killed on its own is replaced, and the new one kills the tree when airssys-run dies") {
  SECTION("pgroup") { sigkill_takes_the_tree("pgroup", true, Death::AfterGuardianDied); }
  SECTION("cgroup") {
    {
      Reaper reaper;
      if (!cgroup_usable()) return;
    }
    sigkill_takes_the_tree("cgroup", true, Death::AfterGuardianDied);
  }
}

// Issue 7, P15: escapees started while airssys-run dies were never adopted
// (the orphan scan runs every 50 ms) and survived; the guardian now finds
// them by the tree's environment marker.
TEST_CASE("SIGKILL of airssys-run in the middle of a setsid storm leaves no process of its tree (pgroup)") {
  Reaper reaper;
  TempDir dir;
  Tool t(dir, {"--containment", "pgroup", "--", "sh", "-c", "while :; do (setsid sleep 1000 &); sleep 0.005; done"});
  const int host = t.pid();
  REQUIRE(eventually([&] { return marked_by(host).size() >= 20; }));
  t.signal(SIGKILL);
  CHECK(t.wait(5s) == 137);
  const bool swept = eventually([&] {
    reap_ended();
    return marked_by(host).empty();
  });
  INFO("still carrying the marker: " << marked_by(host).size());
  CHECK(swept);
}

// Issue 7, P17: as a container's init, airssys-run must reap every zombie
// that comes to it, not only its tree's (tini's job).
TEST_CASE("as PID 1, airssys-run reaps orphans that are not from its tree") {
  Reaper reaper;
  TempDir dir;
  const std::string go = dir / "go";
  Tool t(dir, {"--containment", "pgroup", "--", "sh", "-c", "while [ ! -e " + go + " ]; do sleep 0.01; done"},
         as_pid_1);
  int init = 0;
  REQUIRE(eventually([&] {
    const auto c = children_of(t.pid());
    init = c.size() == 1 ? c[0] : 0;
    return init > 0 && !children_of(init).empty();
  }));
  // A process that enters the namespace from outside (as `docker exec`
  // does) starts a child and exits: the child is re-parented to the
  // namespace's init, airssys-run, and then ends. It reports its pid and
  // its parent's, as the test sees them, through the pipe.
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  const std::string ns = "/proc/" + std::to_string(t.pid()) + "/ns/pid_for_children";
  const pid_t entrant = ::fork();
  REQUIRE(entrant >= 0);
  if (entrant == 0) {
    const int fd = ::open(ns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWPID) != 0) ::_exit(1);
    const pid_t parent = ::fork();
    if (parent == 0) {
      if (::fork() == 0) {
        for (int i = 0; i < 10000 && ::getppid() != 1; ++i) ::usleep(1000);
        // This /proc is the test's: the numbers are the test's too.
        std::ifstream stat("/proc/self/stat");
        int ids[2] = {0, 0};
        std::string comm, state;
        stat >> ids[0] >> comm >> state >> ids[1];
        (void)!::write(report[1], ids, sizeof ids);
        ::_exit(0);
      }
      ::_exit(0);
    }
    ::waitpid(parent, nullptr, 0);
    ::_exit(0);
  }
  ::close(report[1]);
  int ids[2] = {0, 0};
  pollfd pfd{report[0], POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20000) == 1);
  REQUIRE(::read(report[0], ids, sizeof ids) == static_cast<ssize_t>(sizeof ids));
  ::close(report[0]);
  int status = 0;
  REQUIRE(::waitpid(entrant, &status, 0) == entrant);
  const int orphan = ids[0];
  REQUIRE(orphan > 0);
  REQUIRE(ids[1] == init);  // it came to airssys-run
  // Reaped while airssys-run runs on (its end would reap it anyway: the
  // kernel empties a PID namespace whose init is gone).
  const bool reaped = eventually([&] { return proc_state(orphan) == 0; });
  INFO("orphan " << orphan << " state " << proc_state(orphan));
  CHECK(reaped);
  CHECK(alive(init));
  std::ofstream(go) << "";
  CHECK(t.wait() == 0);
}
