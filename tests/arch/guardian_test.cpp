// The guardian, with real processes: if the host process dies — by SIGKILL,
// running no cleanup — no process of the trees it manages may outlive it.
//
// The test process is a child subreaper and forks a "host" that sets up
// the runtime's side (a cgroup root and a guardian, or a guardian watching
// process groups), spawns a three-level tree with an escapee that double-
// forked, called setsid and ignores SIGTERM, reports every pid through a
// pipe and waits. The test SIGKILLs the host; within a second every
// process of the tree must be gone or a zombie waiting for the test (the
// subreaper) to reap it. The rest checks the in-process API: stop(), the
// refusals, and the slot table.
//
// Every test ends with no child of this process, no process of the trees,
// no cgroup directory of the host and no extra descriptor.

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/guardian.hpp>
#include <airssys/arch/process.hpp>

#include <catch2/catch.hpp>

#include "support/arch_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace airssys;
using airssys::arch::Cgroup;
using airssys::arch::CgroupRoot;
using airssys::arch::GroupMode;
using airssys::arch::Guardian;
using airssys::arch::SpawnSpec;
using airssys::arch::StdioMode;

namespace {

namespace fs = std::filesystem;

// No child, running or unreaped, and no descriptor leaked; the test is a
// subreaper, so the trees' orphans come back here to be counted.
struct NothingLeft : test::NoChildrenLeft {
  NothingLeft() { REQUIRE(arch::become_subreaper().ok()); }
};

arch::Process sleeper(GroupMode group = GroupMode::NewGroup) {
  static const char* const argv[] = {"sleep", "100", nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  s.group = group;
  return test::spawn_ok(s);
}

void kill_and_wait(arch::Process& p) {
  REQUIRE(arch::signal(p, SIGKILL).ok());
  auto st = arch::wait(p, 10'000'000'000);
  REQUIRE(st.ok());
  REQUIRE(st->signal == SIGKILL);
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// ---- the host -----------------------------------------------------------------

// ProcessGroupQueued: the tree is registered with watch_group_queued.
enum class Mode { Cgroup, ProcessGroup, ProcessGroupQueued };

// The tree, three levels deep: the leader shell; a sleep of its own; a
// middle shell with a sleep; and a subshell that starts, in a new session
// and ignoring SIGTERM, an escapee, then exits — so the escapee is
// orphaned at once. In cgroup mode the escapee has a child of its own; in
// process-group mode it is one process (it execs sleep, which keeps the
// ignored SIGTERM), because a process adopted by the host is watched
// alone. Every process prints "<label> <pid>" to stdout, the report pipe.
const char* const kCgroupTree =
    "trap '' TERM\n"
    "echo leader $$\n"
    "(setsid sh -c 'trap \"\" TERM; echo escapee $$; sleep 1000 & echo sleeper $!; wait' &)\n"
    "sh -c 'trap \"\" TERM; echo middle $$; sleep 1000 & echo sleeper $!; wait' &\n"
    "sleep 1000 & echo sleeper $!\n"
    "wait\n";
const char* const kProcessGroupTree =
    "trap '' TERM\n"
    "echo leader $$\n"
    "(setsid sh -c 'trap \"\" TERM; echo escapee $$; exec sleep 1000' &)\n"
    "sh -c 'trap \"\" TERM; echo middle $$; sleep 1000 & echo sleeper $!; wait' &\n"
    "sleep 1000 & echo sleeper $!\n"
    "wait\n";

void host_say(const char* label, const char* value) {
  char line[512];
  const int n = std::snprintf(line, sizeof line, "%s %s\n", label, value);
  if (n > 0) (void)!::write(1, line, static_cast<std::size_t>(n));
}

void host_say(const char* label, long value) {
  char v[32];
  std::snprintf(v, sizeof v, "%ld", value);
  host_say(label, v);
}

[[noreturn]] void host_fail(const char* what, const Error& e) {
  char v[256];
  std::snprintf(v, sizeof v, "%s:%s", what, e.message());
  for (char* c = v; *c != '\0'; ++c)
    if (*c == ' ' || *c == '\n') *c = '_';
  host_say("error", v);
  ::_exit(2);
}

// Runs in the forked host and never returns: it ends by the test's SIGKILL.
// Only the runtime's own calls and raw I/O here; never back into Catch.
[[noreturn]] void host_main(Mode mode, int report_fd) {
  if (::dup2(report_fd, 1) != 1) ::_exit(3);
  ::close(report_fd);
  host_say("host", static_cast<long>(::getpid()));
  SpawnSpec s;
  s.program = "/bin/sh";
  s.stdio[0] = StdioMode::Null;  // stdout: the report pipe; stderr: the test's
  Guardian guardian;
  if (mode == Mode::Cgroup) {
    const char* argv[] = {"sh", "-c", kCgroupTree, nullptr};
    s.argv = argv;
    auto root = CgroupRoot::open();
    if (!root) host_fail("open", root.error());
    host_say("root", root->path());
    if (auto r = guardian.start(&*root); !r) host_fail("start", r.error());
    host_say("guardian", guardian.pid());
    auto group = root->create(1);
    if (!group) host_fail("create", group.error());
    s.cgroup = &*group;
    auto leader = arch::spawn(s);
    if (!leader) host_fail("spawn", leader.error());
    host_say("ready", 0L);
    for (;;) ::pause();
  }
  const char* argv[] = {"sh", "-c", kProcessGroupTree, nullptr};
  s.argv = argv;
  if (auto r = arch::become_subreaper(); !r) host_fail("subreaper", r.error());
  if (auto r = guardian.start(nullptr); !r) host_fail("start", r.error());
  host_say("guardian", guardian.pid());
  s.group = GroupMode::NewGroup;
  s.kill_with_parent = true;
  auto leader = arch::spawn(s);
  if (!leader) host_fail("spawn", leader.error());
  if (auto r = mode == Mode::ProcessGroupQueued ? guardian.watch_group_queued(*leader) : guardian.watch_group(*leader);
      !r)
    host_fail("watch_group", r.error());
  // The escapee comes back to the host, a subreaper, once the subshell
  // has exited: a child that is neither the leader nor the guardian, in a
  // group of its own (after its setsid).
  int escapee = 0;
  for (int i = 0; i < 20000 && escapee == 0; ++i) {
    int pids[64];
    const std::size_t n = arch::list_children(pids, 64);
    for (std::size_t k = 0; k < n && k < 64; ++k) {
      arch::ProcessInfo info{};
      if (pids[k] != leader->pid() && pids[k] != guardian.pid() && arch::process_info(pids[k], info) &&
          info.pgid == pids[k])
        escapee = pids[k];
    }
    if (escapee == 0) ::usleep(500);
  }
  if (escapee == 0) host_fail("escapee", Error::make(Errc::Timeout, "never came back"));
  auto adopted = arch::adopt_child(escapee);
  if (!adopted) host_fail("adopt", adopted.error());
  if (auto r = guardian.watch_process(*adopted); !r) host_fail("watch_process", r.error());
  host_say("adopted", static_cast<long>(escapee));
  host_say("ready", 0L);
  for (;;) ::pause();
}

int pid_of(const std::multimap<std::string, std::string>& r, const char* label) {
  const auto it = r.find(label);
  return it == r.end() ? 0 : std::stoi(it->second);
}

// Whatever happens in the test, on its way out: the host is killed and
// reaped, every recorded process is killed, the host's cgroup root is
// killed and removed, and every child of ours — the orphans of the tree —
// is reaped.
struct HostCleanup {
  int host = 0;  // 0 once reaped
  std::vector<int> pids;
  std::string root;
  ~HostCleanup() {
    if (host > 0) {
      ::kill(host, SIGKILL);
      int st = 0;
      while (::waitpid(host, &st, 0) < 0 && errno == EINTR) {
      }
    }
    // Recorded pids are our descendants, not yet reaped by us (and PID 1
    // reaps nothing here), so the numbers are still theirs.
    for (int pid : pids) ::kill(pid, SIGKILL);
    if (!root.empty() && is_dir(root)) {
      std::ofstream(root + "/cgroup.kill") << "1";
      test::wait_for([&] {
        std::ifstream ev(root + "/cgroup.events");
        std::string text((std::istreambuf_iterator<char>(ev)), std::istreambuf_iterator<char>());
        return text.find("populated 0") != std::string::npos;
      }, std::chrono::seconds(5));
    }
    test::kill_and_reap_children();
    if (!root.empty() && is_dir(root)) {
      std::error_code ec;
      for (const auto& d : fs::directory_iterator(root, ec))
        if (d.is_directory()) ::rmdir(d.path().c_str());
      ::rmdir(root.c_str());
    }
  }
};

// The guardian shares nothing with the host that a kill aimed at the host
// also hits: neither session nor process group (a group kill), nor memory
// map (the OOM killer ends every process sharing the victim's), nor
// descriptor table.
void check_guardian_apart(int guardian, int host) {
  arch::ProcessInfo g{}, h{};
  REQUIRE(arch::process_info(guardian, g));
  REQUIRE(arch::process_info(host, h));
  CHECK(g.sid == guardian);
  CHECK(g.pgid == guardian);
  CHECK(g.sid != h.sid);
  CHECK(::syscall(SYS_kcmp, host, guardian, KCMP_VM, 0, 0) != 0);
  CHECK(::syscall(SYS_kcmp, host, guardian, KCMP_FILES, 0, 0) != 0);
}

// `group_kill`: the host leads a process group of its own and the whole
// group is SIGKILLed (a shell's job control, `timeout`, a service
// manager), not only the host.
void host_dies_and_nothing_is_left(Mode mode, bool group_kill = false) {
  NothingLeft check;
  const int self = test::self_pid();
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  HostCleanup cleanup;
  const pid_t host = ::fork();
  if (host == 0) {
    ::close(report[0]);
    if (group_kill && ::setpgid(0, 0) != 0) ::_exit(4);
    host_main(mode, report[1]);
  }
  ::close(report[1]);
  struct CloseReport {
    int fd;
    ~CloseReport() { ::close(fd); }
  } close_report{report[0]};
  REQUIRE(host > 0);
  cleanup.host = host;

  std::map<std::string, int> want{{"host", 1}, {"guardian", 1}, {"leader", 1}, {"middle", 1},
                                  {"escapee", 1}, {"ready", 1}};
  if (mode == Mode::Cgroup) {
    want["root"] = 1;
    want["sleeper"] = 3;
  } else {
    want["adopted"] = 1;
    want["sleeper"] = 2;
  }
  const auto got = test::read_labelled(report[0], want);
  std::vector<int> tree;
  for (const auto& [label, value] : got) {
    if (label == "leader" || label == "middle" || label == "escapee" || label == "sleeper")
      tree.push_back(std::stoi(value));
  }
  cleanup.pids = tree;
  if (got.count("root") != 0) cleanup.root = got.find("root")->second;
  {
    std::string all;
    for (const auto& [label, value] : got) all += label + "=" + value + " ";
    INFO("report: " << all);
    REQUIRE(got.count("error") == 0);
    for (const auto& [label, n] : want) {
      INFO(label);
      REQUIRE(static_cast<int>(got.count(label)) == n);
    }
  }
  REQUIRE(pid_of(got, "host") == host);
  const int guardian = pid_of(got, "guardian");
  const int leader = pid_of(got, "leader");
  const int escapee = pid_of(got, "escapee");
  REQUIRE(guardian > 0);
  cleanup.pids.push_back(guardian);

  // The tree as it stands, before the host dies; each process's start time,
  // read while it runs, names it by the end, when its number may be
  // another's.
  std::map<int, std::uint64_t> start_of;
  arch::ProcessInfo info{};
  for (int pid : tree) {
    INFO("pid " << pid);
    REQUIRE(arch::process_info(pid, info));
    REQUIRE_FALSE(info.ended);
    start_of[pid] = info.start_ticks;
  }
  REQUIRE(arch::process_info(escapee, info));
  REQUIRE(info.sid == escapee);  // it left the leader's session
  REQUIRE(arch::process_info(guardian, info));
  REQUIRE(info.ppid == host);
  start_of[guardian] = info.start_ticks;
  check_guardian_apart(guardian, host);
  if (mode == Mode::Cgroup) {
    const std::string root_name = fs::path(cleanup.root).filename().string();
    REQUIRE(root_name.rfind("airssys-" + std::to_string(host) + "-", 0) == 0);
    REQUIRE(is_dir(cleanup.root + "/g1"));
    for (int pid : tree) {
      INFO("pid " << pid);
      const std::string where = test::cgroup2_of(pid);
      REQUIRE(where.size() > root_name.size() + 3);
      REQUIRE(where.compare(where.size() - root_name.size() - 3, std::string::npos, root_name + "/g1") == 0);
    }
  } else {
    REQUIRE(pid_of(got, "adopted") == escapee);
    REQUIRE(arch::process_info(escapee, info));
    REQUIRE(info.ppid == host);  // re-parented to the host, a subreaper, and adopted
    for (int pid : tree) {
      if (pid == escapee) continue;
      INFO("pid " << pid);
      REQUIRE(arch::process_info(pid, info));
      REQUIRE(info.pgid == leader);
    }
  }

  // The host dies, running no cleanup at all.
  REQUIRE(::kill(group_kill ? -host : host, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(host, &status, 0) == host);
  cleanup.host = 0;
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);

  // Within a second: every process of the tree gone, or a zombie that
  // came back to us (the subreaper) to be reaped. Nothing runs, and
  // nothing is stranded as another process's zombie.
  auto finished = [&](int pid) {
    arch::ProcessInfo i{};
    return !arch::process_info(pid, i) || (i.start_ticks != 0 && i.start_ticks != start_of.at(pid)) ||
           (i.ended && i.ppid == self);
  };
  const auto start = std::chrono::steady_clock::now();
  const bool all_finished = test::wait_for([&] {
    for (int pid : tree)
      if (!finished(pid)) return false;
    return true;
  }, std::chrono::seconds(1));
  const auto took = std::chrono::steady_clock::now() - start;
  for (int pid : tree) {
    arch::ProcessInfo i{};
    const bool exists = arch::process_info(pid, i);
    INFO("pid " << pid << (exists ? (i.ended ? " zombie" : " running") : " gone") << ", parent " << i.ppid);
    CHECK(finished(pid));
  }
  INFO("waited " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  REQUIRE(all_finished);

  // The guardian finishes (removing the cgroup directories first) and,
  // re-parented to us, waits to be reaped.
  REQUIRE(test::wait_for([&] { return finished(guardian); }, std::chrono::seconds(5)));
  if (mode == Mode::Cgroup) {
    REQUIRE_FALSE(is_dir(cleanup.root + "/g1"));
    REQUIRE_FALSE(is_dir(cleanup.root));
  }

  // Reap them all; then nothing of the tree exists anywhere. From here on
  // the recorded numbers are free for reuse: the cleanup must not kill them.
  test::kill_and_reap_children();
  cleanup.pids.clear();
  for (int pid : tree) {
    INFO("pid " << pid);
    REQUIRE_FALSE(test::same_process_exists(pid, start_of.at(pid)));
  }
  REQUIRE_FALSE(test::same_process_exists(guardian, start_of.at(guardian)));
  REQUIRE(test::children_of_self().empty());
}

}  // namespace

// ---- the host-death guarantee -----------------------------------------------

TEST_CASE("when the host is SIGKILLed, the guardian leaves nothing of its trees running") {
  SECTION("cgroup mode: cgroup.kill on the root reaches the escapee in its own session, and the root is removed") {
    host_dies_and_nothing_is_left(Mode::Cgroup);
  }
  SECTION("process-group mode: the leader's group and the adopted escapee, each through its pidfd") {
    host_dies_and_nothing_is_left(Mode::ProcessGroup);
  }
  SECTION("process-group mode, the group registered by a queued watch") {
    host_dies_and_nothing_is_left(Mode::ProcessGroupQueued);
  }
}

TEST_CASE("a SIGKILL to the host's whole process group spares the guardian, which then kills the trees") {
  SECTION("cgroup mode") { host_dies_and_nothing_is_left(Mode::Cgroup, true); }
  SECTION("process-group mode") { host_dies_and_nothing_is_left(Mode::ProcessGroup, true); }
}

namespace {

// Forks a host that runs `body` with its report pipe as stdout, and reads
// the labels `want` from it.
template <class Body>
std::multimap<std::string, std::string> start_host(HostCleanup& cleanup, const std::map<std::string, int>& want,
                                                   Body body) {
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  const pid_t host = ::fork();
  if (host == 0) {
    ::close(report[0]);
    if (::dup2(report[1], 1) != 1) ::_exit(3);
    ::close(report[1]);
    host_say("host", static_cast<long>(::getpid()));
    body();
    ::_exit(5);
  }
  ::close(report[1]);
  struct CloseReport {
    int fd;
    ~CloseReport() { ::close(fd); }
  } close_report{report[0]};
  REQUIRE(host > 0);
  cleanup.host = host;
  auto got = test::read_labelled(report[0], want);
  std::string all;
  for (const auto& [label, value] : got) all += label + "=" + value + " ";
  INFO("report: " << all);
  REQUIRE(got.count("error") == 0);
  for (const auto& [label, n] : want) {
    INFO(label);
    REQUIRE(static_cast<int>(got.count(label)) == n);
  }
  REQUIRE(pid_of(got, "host") == host);
  return got;
}

void kill_host(HostCleanup& cleanup) {
  REQUIRE(::kill(cleanup.host, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(cleanup.host, &status, 0) == cleanup.host);
  cleanup.host = 0;
}

// Gone, or a zombie of ours (the subreaper) waiting to be reaped; `start`
// (read while it ran) tells it from another process that got the number.
bool finished_here(int pid, std::uint64_t start) {
  arch::ProcessInfo i{};
  return !arch::process_info(pid, i) || (i.start_ticks != 0 && i.start_ticks != start) ||
         (i.ended && i.ppid == test::self_pid());
}

// Kills, on the way out, every process that carries the marker (before
// HostCleanup reaps them: declare it after the HostCleanup).
struct MarkerCleanup {
  std::string marker;
  ~MarkerCleanup() {
    if (!marker.empty()) test::kill_processes_with_env(marker);
  }
};

}  // namespace

// Regression (issue 7, P2): the guardian's slot named the leader's
// descriptor NUMBER in a shared table; after the leader was reaped (its
// group living on) that number went to a Detached process's pidfd, and the
// guardian killed the Detached process at host death.
TEST_CASE("a Detached process that got a reaped leader's descriptor number survives the host's death") {
  NothingLeft check;
  HostCleanup cleanup;
  const auto got = start_host(cleanup, {{"host", 1}, {"guardian", 1}, {"member", 1}, {"detached", 1}, {"ready", 1}},
                              [] {
    Guardian guardian;
    if (auto r = guardian.start(nullptr); !r) host_fail("start", r.error());
    host_say("guardian", guardian.pid());
    static const char* const argv[] = {"sleep", "1000", nullptr};
    SpawnSpec s;
    s.program = "/bin/sleep";
    s.argv = argv;
    s.group = GroupMode::NewGroup;
    auto leader = arch::spawn(s);
    if (!leader) host_fail("spawn", leader.error());
    // The member has no parent-death signal: only the guardian ends it.
    SpawnSpec m = s;
    m.group = GroupMode::JoinGroup;
    m.join = &*leader;
    auto member = arch::spawn(m);
    if (!member) host_fail("join", member.error());
    if (auto r = guardian.watch_group(*leader); !r) host_fail("watch_group", r.error());
    const int leader_fd = leader->wait_handle();
    (void)arch::signal(*leader, SIGKILL);
    if (auto r = arch::wait(*leader, -1); !r) host_fail("wait", r.error());  // reaped: its descriptor closed
    SpawnSpec d = s;
    d.group = GroupMode::NewSession;
    auto detached = arch::spawn(d);
    if (!detached) host_fail("detached", detached.error());
    // The host's number `leader_fd` now names the Detached process (the
    // lowest free number usually goes to its pidfd; made sure of here).
    if (detached->wait_handle() != leader_fd) {
      const int fd = static_cast<int>(::syscall(SYS_pidfd_open, detached->pid(), 0));
      if (fd < 0 || ::dup2(fd, leader_fd) != leader_fd) host_fail("dup", Error::make(Errc::Os, "dup2"));
      ::close(fd);
    }
    host_say("member", member->pid());
    host_say("detached", detached->pid());
    host_say("ready", 0L);
    for (;;) ::pause();
  });
  const int guardian = pid_of(got, "guardian");
  const int member = pid_of(got, "member");
  const int detached = pid_of(got, "detached");
  cleanup.pids = {guardian, member, detached};
  // Read while the host lives: its guardian and its sleeps run.
  const std::uint64_t guardian_start = test::start_time_of(guardian), member_start = test::start_time_of(member);
  kill_host(cleanup);
  // The guardian ends the leader's group (the member) through its own copy
  // of the leader's pidfd, then exits; the Detached process lives on.
  REQUIRE(test::wait_for([&] { return finished_here(member, member_start); }, std::chrono::seconds(5)));
  REQUIRE(test::wait_for([&] { return finished_here(guardian, guardian_start); }, std::chrono::seconds(5)));
  arch::ProcessInfo info{};
  REQUIRE(arch::process_info(detached, info));
  CHECK_FALSE(info.ended);
}

// Issue 7, P15: processes that leave the group (setsid) while the host
// dies were never registered; the guardian finds them by the tree's
// environment marker, round after round, however fast they multiply.
TEST_CASE("at host death the guardian kills every process that carries a registered tree's marker, a setsid storm "
          "included") {
  NothingLeft check;
  HostCleanup cleanup;
  MarkerCleanup markers;
  const auto got = start_host(cleanup, {{"host", 1}, {"guardian", 1}, {"leader", 1}, {"storm", 1}, {"ready", 1}}, [] {
    Guardian guardian;
    if (auto r = guardian.start(nullptr); !r) host_fail("start", r.error());
    host_say("guardian", guardian.pid());
    static char marker[64];
    std::snprintf(marker, sizeof marker, "AIRSSYS_TREE=%d.7", static_cast<int>(::getpid()));
    static const char* const env[] = {marker, "PATH=/usr/bin:/bin", nullptr};
    // The storm leaves the group and the session at once, and goes on
    // starting sleepers in sessions of their own until it is killed.
    static const char* const argv[] = {
        "sh", "-c",
        "echo leader $$\n"
        "(setsid sh -c 'echo storm $$; while :; do (setsid sleep 1000 &); sleep 0.005; done' &)\n"
        "exec sleep 1000\n",
        nullptr};
    SpawnSpec s;
    s.program = "/bin/sh";
    s.argv = argv;
    s.envp = env;
    s.stdio[0] = StdioMode::Null;
    s.group = GroupMode::NewGroup;
    s.kill_with_parent = true;
    auto leader = arch::spawn(s);
    if (!leader) host_fail("spawn", leader.error());
    if (auto r = guardian.watch_group(*leader, marker); !r) host_fail("watch_group", r.error());
    host_say("ready", 0L);
    for (;;) ::pause();
  });
  const std::string marker = "AIRSSYS_TREE=" + std::to_string(cleanup.host) + ".7";
  markers.marker = marker;
  const int guardian = pid_of(got, "guardian");
  cleanup.pids = {guardian};
  const std::uint64_t guardian_start = test::start_time_of(guardian);  // the host lives: so does its guardian
  REQUIRE(test::wait_for([&] { return test::processes_with_env(marker).size() >= 10; }, std::chrono::seconds(10)));
  kill_host(cleanup);
  const bool swept = test::wait_for([&] { return test::processes_with_env(marker).empty(); }, std::chrono::seconds(10));
  INFO("still carrying the marker: " << test::processes_with_env(marker).size());
  CHECK(swept);
  REQUIRE(test::wait_for([&] { return finished_here(guardian, guardian_start); }, std::chrono::seconds(10)));
}

// ---- the in-process API -------------------------------------------------------

TEST_CASE("Guardian::stop() ends the guardian without killing anything") {
  NothingLeft check;
  std::optional<CgroupRoot> root;
  Guardian g;
  REQUIRE_FALSE(g.running());
  REQUIRE(g.pid() == -1);

  SECTION("without a cgroup root") { REQUIRE(g.start(nullptr).ok()); }
  SECTION("with a cgroup root, which stays") {
    auto r = CgroupRoot::open();
    INFO(r.error().message());
    REQUIRE(r.ok());
    root.emplace(std::move(*r));
    REQUIRE(g.start(&*root).ok());
  }
  REQUIRE(g.running());
  const int gpid = g.pid();
  REQUIRE(gpid > 0);
  arch::ProcessInfo info{};
  REQUIRE(arch::process_info(gpid, info));
  REQUIRE(info.ppid == test::self_pid());
  REQUIRE_FALSE(info.ended);
  const std::uint64_t gstart = info.start_ticks;
  // Named as what it is in ps and top, not after the thread that started it.
  {
    std::ifstream comm("/proc/" + std::to_string(gpid) + "/comm");
    std::string name;
    std::getline(comm, name);
    CHECK(name == "airssys-guard");
  }
  // A second start is a no-op.
  REQUIRE(g.start(nullptr).ok());
  REQUIRE(g.pid() == gpid);
  // No exit signal: a waitpid(-1) sweep does not see it.
  int status = 0;
  REQUIRE(::waitpid(-1, &status, WNOHANG) == -1);
  REQUIRE(errno == ECHILD);

  auto single = sleeper();
  auto leader = sleeper();
  REQUIRE(g.watch_process(single).ok());
  REQUIRE(g.watch_group(leader).ok());

  g.stop();
  REQUIRE_FALSE(g.running());
  REQUIRE(g.pid() == -1);
  REQUIRE_FALSE(test::same_process_exists(gpid, gstart));  // ended and reaped by stop()
  // Both watched processes still run.
  REQUIRE(arch::try_wait(single).code() == Errc::Timeout);
  REQUIRE(arch::try_wait(leader).code() == Errc::Timeout);
  if (root) REQUIRE(is_dir(root->path()));
  g.stop();  // again: nothing
  kill_and_wait(single);
  kill_and_wait(leader);
}

TEST_CASE("watching needs a running guardian, a live handle and, for a group, its leader") {
  NothingLeft check;
  Guardian g;
  auto p = sleeper();
  SECTION("never started: Dead") {
    REQUIRE(g.watch_process(p).code() == Errc::Dead);
    REQUIRE(g.watch_group(p).code() == Errc::Dead);
    g.unwatch(0);  // harmless
  }
  SECTION("stopped: Dead") {
    REQUIRE(g.start(nullptr).ok());
    REQUIRE(g.watch_process(p).ok());
    g.stop();
    REQUIRE(g.watch_process(p).code() == Errc::Dead);
    REQUIRE(g.watch_group(p).code() == Errc::Dead);
  }
  SECTION("a process that does not lead a group: InvalidArgument for watch_group") {
    REQUIRE(g.start(nullptr).ok());
    auto member = sleeper(GroupMode::Inherit);
    auto r = g.watch_group(member);
    REQUIRE(r.code() == Errc::InvalidArgument);
    REQUIRE(std::string(r.error().message()).find(std::to_string(member.pid())) != std::string::npos);
    REQUIRE(g.watch_process(member).ok());
    kill_and_wait(member);
    g.stop();
  }
  SECTION("a reaped handle: InvalidArgument") {
    REQUIRE(g.start(nullptr).ok());
    auto done = sleeper();
    kill_and_wait(done);
    REQUIRE(g.watch_process(done).code() == Errc::InvalidArgument);
    REQUIRE(g.watch_group(done).code() == Errc::InvalidArgument);
    arch::Process empty;
    REQUIRE(g.watch_process(empty).code() == Errc::InvalidArgument);
    g.stop();
  }
  kill_and_wait(p);
}

TEST_CASE("the guardian's slots fill up after kSlots registrations, and unwatch frees one") {
  NothingLeft check;
  Guardian g;
  REQUIRE(g.start(nullptr).ok());
  auto p = sleeper();
  std::vector<std::uint32_t> slots;
  std::size_t failures = 0;
  for (std::size_t i = 0; i < Guardian::kSlots; ++i) {
    auto r = (i % 2 == 0) ? g.watch_process(p) : g.watch_group(p);
    if (r) slots.push_back(*r); else ++failures;
  }
  REQUIRE(failures == 0);
  REQUIRE(slots.size() == Guardian::kSlots);
  const std::set<std::uint32_t> distinct(slots.begin(), slots.end());
  REQUIRE(distinct.size() == Guardian::kSlots);
  REQUIRE(*distinct.rbegin() < Guardian::kSlots);

  auto full = g.watch_process(p);
  REQUIRE(full.code() == Errc::Full);
  REQUIRE(std::string(full.error().message()).find(std::to_string(Guardian::kSlots)) != std::string::npos);
  REQUIRE(g.watch_group(p).code() == Errc::Full);

  g.unwatch(slots[17]);
  auto again = g.watch_group(p);
  REQUIRE(again.ok());
  REQUIRE(*again == slots[17]);
  REQUIRE(g.watch_process(p).code() == Errc::Full);

  g.unwatch(static_cast<std::uint32_t>(Guardian::kSlots + 5));  // out of range: ignored
  REQUIRE(g.watch_process(p).code() == Errc::Full);

  for (std::uint32_t s : slots) g.unwatch(s);
  REQUIRE(g.watch_process(p).ok());
  g.stop();
  // The registrations killed nothing.
  REQUIRE(arch::try_wait(p).code() == Errc::Timeout);
  kill_and_wait(p);
}

namespace {

std::size_t fds_of(int pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec); !ec && it != fs::end(it);
       it.increment(ec))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("the guardian holds a descriptor of its own per watch, kept when the host's closes, dropped on unwatch") {
  NothingLeft check;
  Guardian g;
  REQUIRE(g.start(nullptr).ok());
  const int gpid = g.pid();
  check_guardian_apart(gpid, test::self_pid());
  const std::size_t base = fds_of(gpid);
  auto p = sleeper();
  auto slot = g.watch_group(p, "AIRSSYS_TREE=1.2");
  REQUIRE(slot.ok());
  REQUIRE(fds_of(gpid) == base + 1);  // the watch is acknowledged once it is held
  kill_and_wait(p);                   // the host's descriptor is closed
  REQUIRE(fds_of(gpid) == base + 1);
  g.unwatch(*slot);
  REQUIRE(test::wait_for([&] { return fds_of(gpid) == base; }, std::chrono::seconds(5)));
  // A tree known by its marker alone holds no descriptor.
  auto by_marker = g.watch_tree(-1, "AIRSSYS_TREE=1.3");
  REQUIRE(by_marker.ok());
  REQUIRE(fds_of(gpid) == base);
  REQUIRE(g.watch_tree(-1, "").code() == Errc::InvalidArgument);
  REQUIRE(g.watch_tree(-1, std::string(Guardian::kMarkerSize, 'x')).code() == Errc::InvalidArgument);
  g.stop();
}

TEST_CASE("queued watches are all held, beyond the unanswered window, and a waited watch after them gets its own answer") {
  NothingLeft check;
  Guardian g;
  REQUIRE(g.start(nullptr).ok());
  const int gpid = g.pid();
  const std::size_t base = fds_of(gpid);
  auto p = sleeper();
  std::vector<std::uint32_t> slots;
  for (int i = 0; i < 40; ++i) {  // more than the 32 left unread at most
    auto slot = g.watch_group_queued(p, "AIRSSYS_TREE=1.4");
    REQUIRE(slot.ok());
    slots.push_back(*slot);
  }
  // Distinct slots, and a waited watch reads the queued answers first.
  CHECK(std::set<std::uint32_t>(slots.begin(), slots.end()).size() == slots.size());
  auto waited = g.watch_process(p);
  REQUIRE(waited.ok());
  CHECK(fds_of(gpid) == base + 41);
  CHECK(g.refused() == 0);
  g.unwatch(*waited);
  for (auto slot : slots) g.unwatch(slot);
  REQUIRE(test::wait_for([&] { return fds_of(gpid) == base; }, std::chrono::seconds(5)));
  // Not a group leader: refused at once, nothing queued.
  auto member = sleeper(GroupMode::Inherit);
  CHECK(g.watch_group_queued(member).code() == Errc::InvalidArgument);
  g.stop();
  CHECK(g.watch_group_queued(p).code() == Errc::Dead);
  kill_and_wait(p);
  kill_and_wait(member);
}

TEST_CASE("the guardian serves queued requests in batches, not one wake-up each; a waited watch and a stop still get through") {
  NothingLeft check;
  Guardian g;
  REQUIRE(g.start(nullptr).ok());
  const int gpid = g.pid();
  const std::uint64_t gstart = test::start_time_of(gpid);  // our child, running until stop()
  const std::size_t base = fds_of(gpid);
  auto p = sleeper();
  // 40 requests a millisecond apart. Served as each came, they would wake
  // the guardian 40 times; batched (a nap of a few milliseconds after
  // each serve, while they queue), a small part of that.
  const long before = test::status_field(gpid, "voluntary_ctxt_switches");
  REQUIRE(before >= 0);
  for (int i = 0; i < 20; ++i) {
    auto slot = g.watch_group_queued(p, "AIRSSYS_TREE=1.5");
    REQUIRE(slot.ok());
    ::usleep(1000);
    g.unwatch(*slot);
    ::usleep(1000);
  }
  // Everything is served (the last unwatch within a nap), nothing refused.
  REQUIRE(test::wait_for([&] { return fds_of(gpid) == base; }, std::chrono::seconds(5)));
  const long woken = test::status_field(gpid, "voluntary_ctxt_switches") - before;
  INFO("guardian wake-ups for 40 requests: " << woken);
  CHECK(woken < 25);
  CHECK(g.refused() == 0);
  // A waited watch pokes a napping guardian: answered, and held.
  auto queued = g.watch_group_queued(p, "AIRSSYS_TREE=1.6");
  REQUIRE(queued.ok());
  auto waited = g.watch_process(p);
  REQUIRE(waited.ok());
  CHECK(fds_of(gpid) == base + 2);
  // stop() pokes it too: the guardian ends and is reaped, and the
  // watched process lives on.
  g.stop();
  CHECK_FALSE(test::same_process_exists(gpid, gstart));
  CHECK(arch::try_wait(p).code() == Errc::Timeout);
  kill_and_wait(p);
}

TEST_CASE("a guardian that died is noticed, and restart() starts a new one that accepts watches") {
  NothingLeft check;
  Guardian g;
  REQUIRE(g.start(nullptr).ok());
  const int first = g.pid();
  const auto first_start = test::start_time_of(first);
  REQUIRE(g.alive());
  REQUIRE(g.wait_handle() >= 0);
  // Our child, unreaped until restart(): the number is still its own.
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(test::wait_for([&] { return !g.alive(); }, std::chrono::seconds(5)));
  REQUIRE(g.running());
  auto p = sleeper();
  auto refused = g.watch_process(p);
  REQUIRE(refused.code() == Errc::Dead);
  REQUIRE(std::string(refused.error().message()).find(std::to_string(first)) != std::string::npos);
  REQUIRE(g.restart().ok());
  REQUIRE(g.alive());
  REQUIRE(g.pid() != first);
  // Reaped by restart() (its number may be another's by now: tests that
  // force numbers run alongside).
  REQUIRE_FALSE(test::same_process_exists(first, first_start));
  check_guardian_apart(g.pid(), test::self_pid());
  REQUIRE(g.watch_process(p).ok());
  g.stop();
  REQUIRE(arch::try_wait(p).code() == Errc::Timeout);
  kill_and_wait(p);
}

// The guardian is cloned without CLONE_VM, and gives its copy of the
// host's memory back at once: it neither shares the host's memory map nor
// holds old copies of the pages the host writes, nor looks as large as the
// host to the OOM killer.
TEST_CASE("the guardian keeps none of the host's anonymous memory") {
  NothingLeft check;
  std::vector<char> ballast(64 << 20, 1);  // 64 MiB, touched
  Guardian g;
  REQUIRE(g.start(nullptr).ok());
  const long rss_anon_kb = test::status_field(g.pid(), "RssAnon");
  INFO("guardian RssAnon " << rss_anon_kb << " kB");
  CHECK(rss_anon_kb >= 0);
  CHECK(rss_anon_kb < 4096);
  CHECK(ballast[12345] == 1);
  g.stop();
}
