// airssys-run --procfile, as built, with real processes: Procfile errors,
// output prefixing (aligned, split, coloured on a terminal), restarts under
// each strategy, when airssys-run ends by itself, the reverse-order stop on
// SIGTERM, the exit status of the first failed service, the intensity
// limit, --metrics, --audit, and a service whose tree holds a setsid
// escapee, under both containments.
//
// The test process makes itself a child subreaper, so anything of a
// service's tree that outlives airssys-run comes back to it as a child:
// after each run the test checks it has no child left, and that no process
// carries the run's environment marker (which every service inherits).

#include <catch2/catch.hpp>

#include "support/proc_table.hpp"
#include "support/temp_dir.hpp"
#include "support/tool_process.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using airssys::test::child_pids;
using airssys::test::ToolProcess;

const char* const kTool = AIRSSYS_RUN_PATH;

// Every test's guard: the test becomes a subreaper; on any exit path,
// whatever is left of ours is killed and reaped (a failed REQUIRE without
// exceptions terminates at once: the terminate handler cleans up first).
struct Reaper {
  Reaper() {
    std::set_terminate([] {
      airssys::test::kill_and_reap_children();
      std::abort();
    });
    REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  }
  ~Reaper() { airssys::test::kill_and_reap_children(); }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;
};

// A unique "NAME=value" per run: every process of its services inherits it.
std::string next_marker() {
  static std::atomic<int> n{0};
  return "AIRSSYS_PROCFILE_TEST=" + std::to_string(airssys::test::self_pid()) + "-" + std::to_string(++n);
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

std::size_t occurrences(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

// A run of airssys-run --procfile in its own directory.
class Run {
 public:
  explicit Run(const std::string& procfile = "") : dir_("airssys-procfile-test"), marker_(next_marker()) {
    write(procfile);
  }
  std::string path(const std::string& name) const { return dir_ / name; }
  // Writes the Procfile; "DIR" in it becomes the run's directory.
  void write(std::string procfile) const {
    const std::string dir = dir_.path.string();
    for (auto p = procfile.find("DIR"); p != std::string::npos; p = procfile.find("DIR", p + dir.size()))
      procfile.replace(p, 3, dir);
    std::ofstream(dir_ / "Procfile") << procfile;
  }

  // `out`: where its stdout goes (a terminal, say); the run's "out" file
  // when empty. `env`: added to its environment.
  // `err`: where its stderr goes; the run's "err" file when empty.
  void start(std::vector<std::string> args, const std::string& out = "", std::vector<std::string> env = {},
             const std::string& err = "") {
    args.insert(args.begin(), {"--procfile", path("Procfile")});
    own_out_ = out.empty();
    own_err_ = err.empty();
    env.push_back(marker_);
    tool_ = std::make_unique<ToolProcess>(kTool, args, out.empty() ? path("out") : out, err.empty() ? path("err") : err,
                                          env);
  }
  // Waits for airssys-run to exit, then checks that nothing of its services
  // is left: no child of the test (orphans would have come to it), no
  // process with the run's marker.
  int finish() {
    const int status = tool_->wait(60s);
    INFO("stdout:\n" << out() << "\nstderr:\n" << err());
    CHECK(status != -1);
    CHECK(airssys::test::wait_for([] { return child_pids().empty(); }, 10s));
    INFO("left: " << airssys::test::describe_children());
    CHECK(airssys::test::processes_with_env(marker_).empty());
    CHECK(child_pids().empty());
    return status;
  }
  // Runs to the end by itself.
  int run(std::vector<std::string> args) {
    start(std::move(args));
    return finish();
  }
  bool wait_out(const std::string& what, std::size_t times = 1) const {
    return airssys::test::wait_for([&] { return occurrences(out(), what) >= times; }, 30s);
  }
  void signal(int sig) const { tool_->signal(sig); }
  // Its stdout and stderr, when they went to the run's "out" and "err"
  // files (a pipe or a terminal given to start() is not read here).
  std::string out() const { return own_out_ ? tool_->out() : std::string("(stdout elsewhere)"); }
  std::string err() const { return own_err_ ? tool_->err() : std::string("(stderr elsewhere)"); }

 private:
  airssys::test::TempDir dir_;
  std::string marker_;
  std::unique_ptr<ToolProcess> tool_;
  bool own_out_ = true;
  bool own_err_ = true;
};

// airssys-run's own lines about services ("b | * exited with status 1"),
// as "b exited", "c stopping", "a restarted", in the order written.
std::vector<std::string> service_events(const std::string& out) {
  std::vector<std::string> events;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const auto bar = line.find(" | * ");
    if (bar == std::string::npos) continue;
    std::string name = line.substr(0, bar);
    name.erase(name.find_last_not_of(' ') + 1);
    const std::string what = line.substr(bar + 5);
    events.push_back(name + " " + what.substr(0, what.find_first_of(" :,")));
  }
  return events;
}

// The value of the sample `series` ("name{labels}") in exposition text, or
// -1 when it is absent.
long sample(const std::string& text, const std::string& series) {
  const auto p = text.find("\n" + series + " ");
  return p == std::string::npos ? -1 : std::stol(text.substr(p + series.size() + 2));
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "; ";
  return out;
}

}  // namespace

// ---- the Procfile -------------------------------------------------------------

TEST_CASE("a missing or malformed Procfile is an error naming the file and line, with exit 2") {
  Reaper reaper;
  SECTION("a line without a colon") {
    Run r("web: sleep 1\n# a comment\nworker sleep 1\n");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ":3: expected 'name: command'"));
  }
  SECTION("a name with characters outside [A-Za-z0-9_-]") {
    Run r("\n\nweb.1: sleep 1\n");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ":3: expected 'name: command'"));
  }
  SECTION("a name without a command") {
    Run r("web:   \n");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ":1: expected 'name: command'"));
  }
  SECTION("a name used twice") {
    Run r("web: sleep 1\nworker: sleep 1\n\nweb: sleep 2\n");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ":4: service 'web' is already defined on line 1"));
  }
  SECTION("a name longer than a supervisor child id holds") {
    Run r(std::string(32, 'x') + ": sleep 1\n");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ":1: service name '" + std::string(32, 'x') + "' is longer than 31"));
  }
  SECTION("only comments") {
    Run r("# nothing\n\n   # here\n");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ": no services"));
  }
  SECTION("no such file") {
    Run r("web: sleep 1\n");
    std::filesystem::remove(r.path("Procfile"));
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ": cannot open: No such file or directory"));
  }
  SECTION("a program beside --procfile") {
    Run r("web: sleep 1\n");
    CHECK(r.run({"--", "true"}) == 2);
    CHECK(contains(r.err(), "'true' cannot be run beside them"));
  }
}

TEST_CASE("Procfile-only options without --procfile are usage errors") {
  Reaper reaper;
  airssys::test::TempDir dir("airssys-procfile-test");
  ToolProcess t(kTool, {"--strategy", "one-for-all", "--", "true"}, dir / "out", dir / "err");
  CHECK(t.wait() == 2);
  CHECK(contains(t.err(), "--strategy needs --procfile"));
  ToolProcess m(kTool, {"--procfile", dir / "Procfile", "--strategy", "all"}, dir / "out", dir / "err");
  CHECK(m.wait() == 2);
  CHECK(contains(m.err(), "--strategy: 'all' is not one-for-one, one-for-all or rest-for-one"));
  CHECK(child_pids().empty());
}

// ---- output ---------------------------------------------------------------------

TEST_CASE("every output line is prefixed with its service's name, names aligned, long lines split") {
  Reaper reaper;
  // 5000 bytes without a newline, then a newline: two pieces, 4096 + 904.
  // Exactly 4096 bytes, then a newline: one line, no empty one after it.
  Run r("a: echo one; echo two >&2; printf 'y%.0s' $(seq 4096); echo; echo three\n"
        "longname: printf 'x%.0s' $(seq 5000); echo; echo done\n");
  CHECK(r.run({}) == 0);
  const std::string out = r.out();
  INFO(out);
  CHECK(contains(out, "a        | one\n"));
  CHECK(contains(out, "a        | two\n"));
  CHECK(contains(out, "a        | " + std::string(4096, 'y') + "\n"));
  CHECK(!contains(out, "a        | \n"));
  CHECK(contains(out, "a        | three\n"));
  CHECK(contains(out, "longname | " + std::string(4096, 'x') + "\n"));
  CHECK(contains(out, "longname | " + std::string(904, 'x') + "\n"));
  CHECK(contains(out, "longname | done\n"));
  CHECK(contains(out, "a        | * started, pid "));
  CHECK(contains(out, "a        | * exited with status 0"));
  // Not a terminal: no colour.
  CHECK(!contains(out, "\033["));
  CHECK(contains(r.err(), "every service has ended"));
}

TEST_CASE("a long line is split between UTF-8 characters, never inside one") {
  Reaper reaper;
  // 'x' and 3000 two-byte characters: byte 4096 is the second byte of
  // one, so the first piece is 4095 bytes, the second the remaining 1906.
  Run r("u: printf 'x'; printf '\\303\\251%.0s' $(seq 3000); echo\n");
  CHECK(r.run({}) == 0);
  std::string e3000;
  for (int i = 0; i < 3000; ++i) e3000 += "\xC3\xA9";
  const std::string whole = "x" + e3000;
  CHECK(contains(r.out(), "u | " + whole.substr(0, 4095) + "\n"));
  CHECK(contains(r.out(), "u | " + whole.substr(4095) + "\n"));
}

TEST_CASE("on a terminal the prefixes are coloured, unless NO_COLOR is set") {
  Reaper reaper;
  for (const bool no_color : {false, true}) {
    DYNAMIC_SECTION((no_color ? "NO_COLOR=1" : "NO_COLOR unset")) {
      // airssys-run's stdout is the slave side of a pseudo-terminal; the
      // test reads the master side.
      const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
      REQUIRE(master >= 0);
      REQUIRE(::grantpt(master) == 0);
      REQUIRE(::unlockpt(master) == 0);
      const std::string slave = ::ptsname(master);
      Run r("a: echo hello\nbb: echo world\n");
      r.start({}, slave, no_color ? std::vector<std::string>{"NO_COLOR=1"} : std::vector<std::string>{});
      std::string out;
      char buf[4096];
      // Until airssys-run's end closes the slave (EIO), or a limit passes.
      for (int quiet = 0; quiet < 3000;) {
        pollfd p{master, POLLIN, 0};
        if (::poll(&p, 1, 10) <= 0) {
          ++quiet;
          continue;
        }
        const ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
      }
      ::close(master);
      CHECK(r.finish() == 0);
      INFO(out);
      if (no_color) {
        CHECK(contains(out, "a  | hello"));
        CHECK(!contains(out, "\033["));
      } else {
        // The first service cyan, the second yellow; the text uncoloured.
        CHECK(contains(out, "\033[36ma  |\033[0m hello"));
        CHECK(contains(out, "\033[33mbb |\033[0m world"));
      }
    }
  }
}

// ---- supervision ----------------------------------------------------------------

TEST_CASE("a failed service is restarted as the strategy says, and SIGTERM stops all in reverse order") {
  Reaper reaper;
  struct Case {
    const char* strategy;
    const char* last_restart;  // the line that ends the restart
    std::vector<std::string> restart;
  };
  const Case cases[] = {
      {"one-for-one", "b | * restarted", {"b restarted"}},
      {"one-for-all", "c | * restarted", {"c stopping", "a stopping", "a restarted", "b restarted", "c restarted"}},
      {"rest-for-one", "c | * restarted", {"c stopping", "b restarted", "c restarted"}},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.strategy) {
      // b fails once, 0.2 s in; its replacement runs until stopped.
      Run r("a: exec sleep 1000\n"
            "b: if [ -e DIR/once ]; then exec sleep 1000; fi; touch DIR/once; sleep 0.2; exit 1\n"
            "c: exec sleep 1000\n");
      r.start({"--strategy", c.strategy, "--restart", "always", "--max-restarts", "10", "--kill-timeout", "2000"});
      const bool restarted = r.wait_out(c.last_restart);
      INFO("stdout:\n" << r.out() << "\nstderr:\n" << r.err());
      REQUIRE(restarted);
      r.signal(SIGTERM);
      // b's exit 1 is the first failure, and the status.
      CHECK(r.finish() == 1);
      std::vector<std::string> expected{"a started", "b started", "c started", "b exited"};
      expected.insert(expected.end(), c.restart.begin(), c.restart.end());
      expected.insert(expected.end(), {"c stopping", "b stopping", "a stopping"});
      CHECK(joined(service_events(r.out())) == joined(expected));
    }
  }
}

TEST_CASE("airssys-run ends once no service runs and none will be restarted") {
  Reaper reaper;
  SECTION("on-failure under one-for-all: a sibling's failure revives a service that had ended normally") {
    Run r("a: exit 0\n"
          "b: if [ -e DIR/once ]; then exit 0; fi; touch DIR/once; sleep 0.3; exit 1\n");
    CHECK(r.run({"--strategy", "one-for-all", "--restart", "on-failure", "--max-restarts", "10"}) == 1);
    CHECK(contains(r.out(), "a | * restarted"));
    CHECK(contains(r.out(), "b | * restarted"));
    CHECK(contains(r.err(), "every service has ended"));
  }
  SECTION("never: a failure restarts nothing, so the others run on until they end") {
    Run r("a: while ! grep -q 'b | [*] exited' DIR/out; do sleep 0.05; done; exit 0\n"
          "b: exit 4\n");
    CHECK(r.run({"--strategy", "one-for-all", "--restart", "never"}) == 4);
    CHECK(joined(service_events(r.out())) == "a started; b started; b exited; a exited; ");
  }
}

TEST_CASE("SIGTERM stops every service in reverse order, each tree gone before the next stops") {
  Reaper reaper;
  // Each writes its name when its tree gets SIGTERM, and exits.
  std::string procfile;
  for (const char* name : {"first", "second", "third"})
    procfile += std::string(name) + ": trap 'echo " + name + " >> DIR/order; exit 0' TERM; echo ready; while :; do sleep 0.05; done\n";
  Run r(procfile);
  r.start({"--restart", "always"});
  // Once each has set its trap.
  for (const char* ready : {"first  | ready", "second | ready", "third  | ready"}) REQUIRE(r.wait_out(ready));
  r.signal(SIGTERM);
  CHECK(r.finish() == 0);
  CHECK(airssys::test::read_text_file(r.path("order")) == "third\nsecond\nfirst\n");
  CHECK(joined(service_events(r.out())) ==
        "first started; second started; third started; third stopping; second stopping; first stopping; ");
}

TEST_CASE("the exit status is the first failed service's status") {
  Reaper reaper;
  SECTION("an exit code") {
    // b fails only after airssys-run has seen a's failure.
    Run r("a: sleep 0.1; exit 3\n"
          "b: while ! grep -q 'a | [*] exited' DIR/out; do sleep 0.05; done; exit 5\n"
          "c: exec sleep 1000\n");
    r.start({});
    REQUIRE(r.wait_out("b | * exited with status 5"));
    r.signal(SIGINT);
    CHECK(r.finish() == 3);
    CHECK(contains(r.err(), "exit status 3, of the first service that failed: a"));
    CHECK(contains(r.err(), "c  restarts 0   stopped by the supervisor"));
  }
  SECTION("a signal, as 128 + its number") {
    Run r("a: kill -KILL $$\nb: exit 0\n");
    CHECK(r.run({}) == 137);
    CHECK(contains(r.err(), "a  restarts 0   killed by signal 9 (status 137)"));
  }
  SECTION("none failed") {
    Run r("a: exit 0\nb: true\n");
    CHECK(r.run({"--restart", "on-failure"}) == 0);
  }
  SECTION("a service that cannot be started") {
    Run r("a: exec sleep 1000\n");
    CHECK(r.run({"--cwd", r.path("missing")}) == 127);
    CHECK(contains(r.err(), r.path("missing")));
  }
}

TEST_CASE("more restarts than --max-restarts within --period stop every service and exit non-zero") {
  Reaper reaper;
  SECTION("a failing service") {
    Run r("a: exit 2\nb: exec sleep 1000\n");
    CHECK(r.run({"--restart", "always", "--max-restarts", "2", "--period", "3600", "--metrics", r.path("m")}) == 2);
    CHECK(occurrences(r.out(), "a | * restarted") == 2);
    CHECK(sample(airssys::test::read_text_file(r.path("m")), "airssys_events_total{kind=\"intensity_exceeded\"}") == 1);
    CHECK(contains(r.out(), "b | * stopping"));
    CHECK(contains(r.err(), "more than 2 restarts within 3600s: gave up"));
  }
  SECTION("a permanent service that keeps ending normally") {
    Run r("a: true\nb: exec sleep 1000\n");
    CHECK(r.run({"--restart", "always", "--max-restarts", "1", "--period", "3600"}) == 1);
    CHECK(contains(r.err(), "gave up"));
  }
}

TEST_CASE("the --metrics file is rewritten with the Prometheus text of each service's counters") {
  Reaper reaper;
  Run r("flaky: sleep 0.2; exit 1\nsteady: exec sleep 1000\n");
  r.start({"--restart", "on-failure", "--max-restarts", "1000", "--metrics", r.path("metrics.prom")});
  const auto metrics = [&] { return airssys::test::read_text_file(r.path("metrics.prom")); };
  REQUIRE(airssys::test::wait_for([&] { return sample(metrics(), "airssys_run_service_restarts_total{service=\"flaky\"}") >= 2; }, 30s));
  const std::string m = metrics();
  INFO(m);
  CHECK(contains(m, "# TYPE airssys_run_service_restarts_total counter\n"));
  CHECK(contains(m, "airssys_run_service_restarts_total{service=\"steady\"} 0\n"));
  CHECK(contains(m, "airssys_run_service_running{service=\"steady\"} 1\n"));
  CHECK(contains(m, "airssys_run_service_last_exit_status{service=\"flaky\"} 1\n"));
  // steady has not exited: no status, rather than a 0 that reads as a clean exit.
  CHECK_FALSE(contains(m, "airssys_run_service_last_exit_status{service=\"steady\"}"));
  // The runtime's monitoring: restarts per child name, process trees.
  CHECK(sample(m, "airssys_child_restarts_total{child=\"flaky\"}") >= 2);
  CHECK(sample(m, "airssys_events_total{kind=\"actor_failed\"}") >= 2);
  CHECK(sample(m, "airssys_process_trees_spawned_total") >= 3);
  r.signal(SIGTERM);
  CHECK(r.finish() == 1);
  // The last rewrite, after the stop: nothing runs.
  CHECK(contains(metrics(), "airssys_run_service_running{service=\"steady\"} 0\n"));
  // Rewritten by rename: no temporary file is left.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(std::filesystem::path(r.path(""))))
    ++files;
  CHECK(files == 4);  // Procfile, out, err, metrics.prom
}

TEST_CASE("the --audit and --containment options apply to every service") {
  Reaper reaper;
  Run r("a: echo one\nb: echo two\n");
  CHECK(r.run({"--audit", r.path("audit.jsonl"), "--containment", "pgroup"}) == 0);
  const std::string audit = airssys::test::read_text_file(r.path("audit.jsonl"));
  INFO(audit);
  CHECK(occurrences(audit, "\"event\":\"spawn\"") == 2);
  CHECK(occurrences(audit, "\"containment\":\"pgroup\"") >= 2);
  CHECK(contains(audit, "\"argv\":[\"/bin/sh\",\"-c\",\"echo one\"]"));
  CHECK(contains(audit, "\"argv\":[\"/bin/sh\",\"-c\",\"echo two\"]"));
}

TEST_CASE("a service whose tree holds a setsid escapee that ignores SIGTERM leaves nothing") {
  Reaper reaper;
  for (const char* containment : {"cgroup", "pgroup"}) {
    DYNAMIC_SECTION(containment) {
      Run r("web: (setsid sh -c \"trap '' TERM; echo \\$\\$ > DIR/e.tmp; mv DIR/e.tmp DIR/e.pid; exec sleep 1000\" &);"
            " exec sleep 1000\n"
            "db: exec sleep 1000\n");
      const std::string pidfile = r.path("e.pid");
      r.start({"--containment", containment, "--kill-timeout", "300"});
      int escapee = -1;
      REQUIRE(airssys::test::wait_for([&] {
        std::ifstream in(pidfile);
        return static_cast<bool>(in >> escapee);
      }, 30s));
      // It wrote its pid, then exec'd sleep: read now, its start time names it by the end.
      const unsigned long long start = airssys::test::start_time_of(escapee);
      REQUIRE(airssys::test::same_process_exists(escapee, start));
      r.signal(SIGTERM);
      CHECK(r.finish() == 0);
      CHECK_FALSE(airssys::test::same_process_running(escapee, start));
    }
  }
}

// ---- stdout: slow, gone; a second signal; --metrics ----------------------------

// A FIFO as airssys-run's stdout, opened for reading first (so that its
// open for writing does not wait) and then read only as the test says.
struct StdoutPipe {
  std::string path;
  int reader = -1;
  explicit StdoutPipe(std::string p) : path(std::move(p)) {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // not airssys-run's
    REQUIRE(reader >= 0);
  }
  ~StdoutPipe() { close(); }
  void close() {
    if (reader >= 0) ::close(reader);
    reader = -1;
  }
  StdoutPipe(const StdoutPipe&) = delete;
  StdoutPipe& operator=(const StdoutPipe&) = delete;
};

TEST_CASE("a stdout that nobody reads holds the services' output back, never the supervision or the stop") {
  Reaper reaper;
  // spew fills stdout's pipe at once; stub starts after it and ignores
  // SIGTERM, so the stop has a teardown with a grace to go through.
  Run r("spew: yes spew\n"
        "stub: trap '' TERM; echo $$ > DIR/stub.tmp; mv DIR/stub.tmp DIR/stub.pid; while :; do sleep 0.05; done\n");
  StdoutPipe out(r.path("stdout.fifo"));
  r.start({"--kill-timeout", "200"}, out.path);
  REQUIRE(airssys::test::wait_for([&] { return std::filesystem::exists(r.path("stub.pid")); }, 30s));
  // Nothing is read: the backlog fills up and the services are held back.
  std::this_thread::sleep_for(300ms);
  r.signal(SIGTERM);
  // Before, the output thread blocked in its write with the lock that every
  // service's notice needs: the stop never came, and this waited its 60 s.
  CHECK(r.finish() == 0);
  CHECK(contains(r.err(), "signal 15: stopping every service"));
  CHECK(contains(r.err(), "output lines were dropped: stdout did not take them in time"));
  CHECK(contains(r.err(), "stub  restarts 0   stopped by the supervisor"));
}

// `2>&1` into a reader that stalled: airssys-run's own messages ("signal
// 15: stopping every service", the summary) must not block the stop they
// announce. Before, the first of them blocked in its write and no service
// was ever stopped.
TEST_CASE("a stderr that nobody reads (2>&1 into a stalled pipe) never holds up the stop") {
  Reaper reaper;
  Run r("spew: yes spew\n"
        "stub: trap '' TERM; echo $$ > DIR/stub.tmp; mv DIR/stub.tmp DIR/stub.pid; while :; do sleep 0.05; done\n");
  StdoutPipe out(r.path("stdout.fifo"));
  r.start({"--kill-timeout", "200"}, out.path, {}, out.path);
  REQUIRE(airssys::test::wait_for([&] { return std::filesystem::exists(r.path("stub.pid")); }, 30s));
  const int stub = std::stoi(airssys::test::read_text_file(r.path("stub.pid")));
  const unsigned long long stub_start = airssys::test::start_time_of(stub);  // its loop runs until the stop
  std::this_thread::sleep_for(300ms);  // the pipe is full
  const auto sent = std::chrono::steady_clock::now();
  r.signal(SIGTERM);
  CHECK(r.finish() == 0);
  const auto took = std::chrono::steady_clock::now() - sent;
  INFO("exited " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms after SIGTERM");
  // The stop (a 200 ms grace for stub), the writer's 5 s for stdout, and
  // about 1 s of waiting for stderr's room before its messages give up.
  CHECK(took < 15s);
  CHECK_FALSE(airssys::test::same_process_exists(stub, stub_start));
}

TEST_CASE("when stdout's reader goes away, every service is stopped and torn down, no SIGPIPE") {
  Reaper reaper;
  Run r("talk: trap '' TERM; while :; do echo talk; sleep 0.02; done\n"
        "idle: exec sleep 1000\n");
  StdoutPipe out(r.path("stdout.fifo"));
  r.start({"--kill-timeout", "200"}, out.path);
  // The first lines arrive, then the reader goes (as `| head -1` does).
  std::string got;
  REQUIRE(airssys::test::wait_for(
      [&] {
        char buf[256];
        const ssize_t n = ::read(out.reader, buf, sizeof buf);
        if (n > 0) got.append(buf, static_cast<std::size_t>(n));
        return contains(got, "talk | talk\n");
      },
      30s));
  out.close();
  CHECK(r.finish() == 0);  // not 141: SIGPIPE did not end it
  CHECK(contains(r.err(), "stdout was closed: stopping every service, last first"));
  CHECK(contains(r.err(), "talk  restarts 0   stopped by the supervisor"));
  CHECK(contains(r.err(), "idle  restarts 0   stopped by the supervisor"));
}

TEST_CASE("a second SIGTERM or SIGINT kills every service's tree at once") {
  Reaper reaper;
  for (const int second : {SIGTERM, SIGINT}) {
    DYNAMIC_SECTION("second signal " << second) {
      // Both ignore SIGTERM: with the hour of grace given, the stop would
      // wait an hour for each.
      Run r("one: trap '' TERM; echo ready; while :; do sleep 0.05; done\n"
            "two: trap '' TERM; echo ready; while :; do sleep 0.05; done\n");
      r.start({"--kill-timeout", "3600000"});
      REQUIRE(r.wait_out("one | ready"));
      REQUIRE(r.wait_out("two | ready"));
      r.signal(SIGTERM);
      REQUIRE(r.wait_out("two | * stopping"));
      r.signal(second);
      CHECK(r.finish() == 128 + SIGKILL);  // killed, as in the single mode
      const std::string err = r.err();
      INFO(err);
      CHECK(contains(err, "signal " + std::to_string(second) + " again: killing every service's tree now"));
      // The final counts: both trees, ended by the second signal (each
      // service's shell, and its sleep when one was running).
      CHECK(contains(err, "process trees: 2 spawned, 2 cleaned; killed with SIGKILL: "));
      CHECK_FALSE(contains(err, "killed with SIGKILL: 0;"));
    }
  }
}

TEST_CASE("a --metrics FILE that cannot be written is a usage error before any service starts") {
  Reaper reaper;
  Run r("a: touch DIR/started; exec sleep 1000\n");
  CHECK(r.run({"--metrics", r.path("no/such/dir/metrics.prom")}) == 2);
  CHECK(contains(r.err(), "--metrics: cannot write"));
  CHECK_FALSE(std::filesystem::exists(r.path("started")));
}

TEST_CASE("a service's started line comes before its own first line") {
  Reaper reaper;
  Run r("a: echo first\n");
  CHECK(r.run({}) == 0);
  const std::string out = r.out();
  INFO(out);
  const auto started = out.find("a | * started");
  const auto first = out.find("a | first");
  REQUIRE(started != std::string::npos);
  REQUIRE(first != std::string::npos);
  CHECK(started < first);
}

TEST_CASE("a service's exit line comes after its own last line") {
  Reaper reaper;
  // Many lines written just before the exit: the reader has the most to
  // catch up on when the exit is reported.
  for (int run = 0; run < 20; ++run) {
    Run r("a: seq 1 3000\n");
    CHECK(r.run({}) == 0);
    const std::string out = r.out();
    const auto last = out.find("a | 3000\n");
    const auto exited = out.find("a | * exited with status 0");
    INFO("run " << run << "\n" << out.substr(out.size() > 400 ? out.size() - 400 : 0));
    REQUIRE(last != std::string::npos);
    REQUIRE(exited != std::string::npos);
    CHECK(last < exited);
    CHECK(occurrences(out, "a | ") == 3000 + 2);  // every line, started, exited
  }
}

TEST_CASE("a closed stdout (>&-) discards the services' output without waiting for it, and runs them as usual") {
  Reaper reaper;
  Run r("a: seq 1 20000\nb: echo b-ran > DIR/b.ran\n");
  r.start({}, ToolProcess::kClosed);
  CHECK(r.finish() == 0);
  const std::string err = r.err();
  INFO(err);
  CHECK(std::filesystem::exists(r.path("b.ran")));
  CHECK(contains(err, "every service has ended"));
  CHECK_FALSE(contains(err, "were dropped"));
  CHECK_FALSE(contains(err, "stdout was closed"));
}

TEST_CASE("a Procfile that starts with a UTF-8 byte order mark reads as without it") {
  Reaper reaper;
  Run r("\xEF\xBB\xBFweb: echo bom-free\r\n");
  CHECK(r.run({}) == 0);
  CHECK(contains(r.out(), "web | bom-free\n"));
}

// LF, CR LF and a lone CR (classic Mac) all end a line: a CR-only file is
// three services, not one whose command swallows the others, and the line
// numbers of its errors count its CRs.
TEST_CASE("a Procfile's lines may end in LF, CR LF or a lone CR") {
  Reaper reaper;
  SECTION("all three in one file") {
    Run r("a: echo one\rb: echo two\r\nc: echo three\n");
    CHECK(r.run({}) == 0);
    CHECK(contains(r.out(), "a | one\n"));
    CHECK(contains(r.out(), "b | two\n"));
    CHECK(contains(r.out(), "c | three\n"));
  }
  SECTION("an error's line number after CR-only lines") {
    Run r("a: echo one\r# comment\r\rbad line\r");
    CHECK(r.run({}) == 2);
    CHECK(contains(r.err(), r.path("Procfile") + ":4: expected 'name: command'"));
  }
}
