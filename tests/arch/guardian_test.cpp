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
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

enum class Mode { Cgroup, ProcessGroup };

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
  if (auto r = guardian.watch_group(*leader); !r) host_fail("watch_group", r.error());
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

void host_dies_and_nothing_is_left(Mode mode) {
  NothingLeft check;
  const int self = test::self_pid();
  int report[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  HostCleanup cleanup;
  const pid_t host = ::fork();
  if (host == 0) {
    ::close(report[0]);
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

  // The tree as it stands, before the host dies.
  arch::ProcessInfo info{};
  for (int pid : tree) {
    INFO("pid " << pid);
    REQUIRE(arch::process_info(pid, info));
    REQUIRE_FALSE(info.ended);
  }
  REQUIRE(arch::process_info(escapee, info));
  REQUIRE(info.sid == escapee);  // it left the leader's session
  REQUIRE(arch::process_info(guardian, info));
  REQUIRE(info.ppid == host);
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
  REQUIRE(::kill(host, SIGKILL) == 0);
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
    return !arch::process_info(pid, i) || (i.ended && i.ppid == self);
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
    REQUIRE_FALSE(test::process_exists(pid));
  }
  REQUIRE_FALSE(test::process_exists(guardian));
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
  REQUIRE_FALSE(test::process_exists(gpid));  // ended and reaped by stop()
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
