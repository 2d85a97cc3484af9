// cgroup v2 containment, with real processes: the runtime's root directory,
// one cgroup per managed tree, children born inside it (and their setsid
// descendants with them), cgroup.kill, and the destructors that must kill
// and remove whatever is left. The test process is a child subreaper, so
// that a descendant orphaned by a kill comes back to it and is reaped;
// every test ends with no child of this process, no cgroup directory of
// this process and no extra descriptor.

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/process.hpp>

#include <catch2/catch.hpp>

#include "support/arch_spawn.hpp"
#include "support/fd.hpp"
#include "support/proc_table.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace airssys;
using airssys::arch::Cgroup;
using airssys::arch::CgroupRoot;
using airssys::arch::SpawnSpec;
using airssys::arch::StdioMode;

namespace {

namespace fs = std::filesystem;

// Every "airssys-<our pid>-*" directory under the cgroup2 mount (the root
// may be made in our own cgroup when that is writable, so the whole
// hierarchy is searched, but not deeper than a few levels).
std::vector<std::string> our_roots(int pid = test::self_pid()) {
  std::vector<std::string> out;
  const std::string mount = test::cgroup2_mount_point();
  if (mount.empty()) return out;
  const std::string prefix = "airssys-" + std::to_string(pid) + "-";
  std::error_code ec;
  fs::recursive_directory_iterator it(mount, fs::directory_options::skip_permission_denied, ec), end;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    if (it.depth() > 3) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_directory(ec)) continue;
    if (it->path().filename().string().rfind(prefix, 0) == 0) {
      out.push_back(it->path().string());
      it.disable_recursion_pending();
    }
  }
  return out;
}

// Taken at the start of a test, checked at its end (also after a failed
// REQUIRE, whose unwinding has destroyed handles, groups and roots by
// then): every child of ours — including orphans re-parented to us — is
// killed and reaped first, then nothing may be left.
struct NothingLeft {
  std::size_t fds = test::open_fds();
  NothingLeft() { REQUIRE(arch::become_subreaper().ok()); }
  ~NothingLeft() {
    test::kill_and_reap_children();
    CHECK(test::children_of_self().empty());
    CHECK(test::open_fds() == fds);
    const auto left = our_roots();
    INFO("left: " << (left.empty() ? std::string() : left.front()));
    CHECK(left.empty());
  }
};

CgroupRoot open_root() {
  auto r = CgroupRoot::open();
  INFO(r.error().message());
  REQUIRE(r.ok());
  return std::move(*r);
}

Cgroup create_ok(const CgroupRoot& root, std::uint64_t id) {
  auto g = root.create(id);
  INFO(g.error().message());
  REQUIRE(g.ok());
  return std::move(*g);
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Gone, or ended and waiting to be reaped by us.
bool dead(int pid) {
  arch::ProcessInfo i{};
  return !arch::process_info(pid, i) || i.ended;
}

// The "<label> <pid>" lines of test::read_labelled, as numbers.
std::multimap<std::string, int> read_pids(int fd, const std::map<std::string, int>& want,
                                          std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::multimap<std::string, int> got;
  for (const auto& [label, value] : test::read_labelled(fd, want, limit)) {
    char* end = nullptr;
    const long pid = std::strtol(value.c_str(), &end, 10);
    if (end != value.c_str() && *end == '\0') got.emplace(label, static_cast<int>(pid));
  }
  return got;
}

// A tree of three levels in the cgroup: the leader shell, a sleep of its
// own, a subshell that starts — in a new session, ignoring SIGTERM — an
// escapee with a sleep of its own, and exits (so the escapee is orphaned
// and re-parented to us, the subreaper). Every process prints its pid.
const char* const kTreeScript =
    "trap '' TERM\n"
    "echo leader $$\n"
    "(setsid sh -c 'trap \"\" TERM; echo escapee $$; sleep 100 & echo sleeper $!; wait' &)\n"
    "sleep 100 & echo sleeper $!\n"
    "wait\n";

struct Tree {
  arch::Process leader;
  int escapee = 0;
  std::vector<int> pids;  // every process of the tree, the leader included
};

Tree spawn_tree(const Cgroup& g) {
  const char* argv[] = {"sh", "-c", kTreeScript, nullptr};
  SpawnSpec s;
  s.program = "/bin/sh";
  s.argv = argv;
  s.stdio[0] = StdioMode::Null;
  s.stdio[1] = StdioMode::Pipe;
  s.cgroup = &g;
  Tree t;
  t.leader = test::spawn_ok(s);
  test::Fd out(t.leader.take_pipe(1));
  const auto got = read_pids(out.fd, {{"leader", 1}, {"escapee", 1}, {"sleeper", 2}});
  REQUIRE(got.count("leader") == 1);
  REQUIRE(got.count("escapee") == 1);
  REQUIRE(got.count("sleeper") == 2);
  REQUIRE(got.find("leader")->second == t.leader.pid());
  t.escapee = got.find("escapee")->second;
  for (const auto& [label, pid] : got) t.pids.push_back(pid);
  return t;
}

}  // namespace

// ---- the root ---------------------------------------------------------------

TEST_CASE("CgroupRoot::open() makes airssys-<pid>-<n> in a cgroup2 directory and the root's end removes it") {
  NothingLeft check;
  const std::string mount = test::cgroup2_mount_point();
  REQUIRE_FALSE(mount.empty());
  std::string path;
  {
    auto root = open_root();
    REQUIRE(root.valid());
    path = root.path();
    const std::string name = fs::path(path).filename().string();
    const std::string prefix = "airssys-" + std::to_string(test::self_pid()) + "-";
    REQUIRE(name.rfind(prefix, 0) == 0);
    REQUIRE(name.size() > prefix.size());
    REQUIRE(path.rfind(mount, 0) == 0);  // under the cgroup2 mount
    REQUIRE(is_dir(path));
    REQUIRE(fs::exists(path + "/cgroup.procs"));  // the kernel made it a cgroup
    REQUIRE(fs::exists(path + "/cgroup.kill"));

    SECTION("a second root gets another name") {
      auto second = open_root();
      REQUIRE(std::string(second.path()) != path);
      REQUIRE(is_dir(second.path()));
      REQUIRE(our_roots().size() == 2);
    }
    SECTION("a moved root is removed once, by its new owner") {
      CgroupRoot moved = std::move(root);
      REQUIRE_FALSE(root.valid());
      REQUIRE(moved.valid());
      REQUIRE(std::string(moved.path()) == path);
      { CgroupRoot gone = std::move(moved); }
      REQUIRE_FALSE(is_dir(path));
    }
    SECTION("an explicit base: the cgroup2 mount itself") {
      auto r = CgroupRoot::open(mount.c_str());
      INFO(r.error().message());
      REQUIRE(r.ok());
      REQUIRE(fs::path(r->path()).parent_path() == fs::path(mount));
    }
  }
  REQUIRE_FALSE(is_dir(path));
}

TEST_CASE("CgroupRoot::open() removes empty roots of runtimes that are gone, never those of live ones") {
  NothingLeft check;
  const std::string mount = test::cgroup2_mount_point();
  REQUIRE_FALSE(mount.empty());
  // A pid that is certainly gone: a child that has been reaped.
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  // A live one: a child kept alive until the end of the test.
  const pid_t live = ::fork();
  REQUIRE(live >= 0);
  if (live == 0) {
    ::pause();
    ::_exit(0);
  }
  struct EndLive {
    pid_t pid;
    ~EndLive() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } end_live{live};
  const std::string stale = mount + "/airssys-" + std::to_string(dead) + "-7";
  const std::string kept = mount + "/airssys-" + std::to_string(live) + "-7";
  REQUIRE(fs::create_directory(stale));
  REQUIRE(fs::create_directory(stale + "/g3"));
  REQUIRE(fs::create_directory(kept));
  struct RemoveKept {
    std::string path;
    ~RemoveKept() { ::rmdir(path.c_str()); }
  } remove_kept{kept};
  {
    auto root = open_root();
    REQUIRE(root.valid());
    CHECK_FALSE(is_dir(stale));
    CHECK(is_dir(kept));
  }
}

TEST_CASE("CgroupRoot::open() refuses a base that is not a cgroup2 directory, naming it") {
  NothingLeft check;
  std::string base;
  SECTION("a plain directory") { base = "/tmp"; }
  SECTION("a path that does not exist") { base = "/nonexistent"; }
  SECTION("a cgroup v1 hierarchy") {
    base = "/sys/fs/cgroup/memory";
    if (!is_dir(base)) base = "/proc";  // no v1 here: any other file system
  }
  auto r = CgroupRoot::open(base.c_str());
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.code() == Errc::InvalidArgument);
  CHECK(std::string(r.error().message()).find("'" + base + "'") != std::string::npos);
  CHECK(std::string(r.error().message()).find("not a cgroup2 directory") != std::string::npos);
}

// ---- one cgroup -------------------------------------------------------------

TEST_CASE("create(id) makes an empty cgroup g<id> under the root, removed with its handle") {
  NothingLeft check;
  auto root = open_root();
  const std::string dir = std::string(root.path()) + "/g7";
  {
    auto g = create_ok(root, 7);
    REQUIRE(g.valid());
    REQUIRE(std::string(g.name()) == "g7");
    REQUIRE(is_dir(dir));
    REQUIRE(g.populated().ok());
    REQUIRE_FALSE(*g.populated());
    REQUIRE(g.count_processes() == 0);
    REQUIRE(g.wait_empty(0).ok());
    REQUIRE(g.events_handle() >= 0);

    SECTION("the same id twice is an error naming it") {
      auto twice = root.create(7);
      REQUIRE_FALSE(twice.ok());
      INFO(twice.error().message());
      REQUIRE(twice.error().os_error() == EEXIST);
      REQUIRE(std::string(twice.error().message()).find("/g7") != std::string::npos);
    }
    SECTION("remove() of an empty cgroup removes it and empties the handle") {
      REQUIRE(g.remove().ok());
      REQUIRE_FALSE(g.valid());
      REQUIRE_FALSE(is_dir(dir));
      REQUIRE(g.remove().code() == Errc::Dead);
      REQUIRE(g.kill().code() == Errc::Dead);
      REQUIRE(g.populated().code() == Errc::Dead);
      REQUIRE(g.wait_empty(0).code() == Errc::Dead);
      REQUIRE(g.count_processes() == 0);
    }
    SECTION("a moved cgroup is removed once, by its new owner") {
      Cgroup moved = std::move(g);
      REQUIRE_FALSE(g.valid());
      REQUIRE(std::string(moved.name()) == "g7");
      { Cgroup gone = std::move(moved); }
      REQUIRE_FALSE(is_dir(dir));
    }
  }
  REQUIRE_FALSE(is_dir(dir));
  REQUIRE(is_dir(root.path()));
}

TEST_CASE("a closed root and an empty cgroup handle refuse their operations") {
  NothingLeft check;
  CgroupRoot closed;
  REQUIRE_FALSE(closed.valid());
  REQUIRE(closed.create(1).code() == Errc::Dead);
  REQUIRE(closed.kill_all().code() == Errc::Dead);
  Cgroup empty;
  REQUIRE(empty.kill().code() == Errc::Dead);
  REQUIRE(empty.populated().code() == Errc::Dead);
  // Spawning into it is refused before any child exists.
  SpawnSpec s;
  s.program = "/bin/true";
  s.cgroup = &empty;
  auto p = arch::spawn(s);
  REQUIRE(p.code() == Errc::InvalidArgument);
  REQUIRE(test::children_of_self().empty());
}

// ---- children born inside ---------------------------------------------------

TEST_CASE("a child spawned with SpawnSpec::cgroup is born inside it, and so is its descendant that called setsid") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 1);
  auto tree = spawn_tree(g);
  const std::string where = test::cgroup2_of(tree.leader.pid());
  INFO("leader's cgroup: " << where);
  REQUIRE(ends_with(where, "/" + fs::path(root.path()).filename().string() + "/g1"));
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE(test::cgroup2_of(pid) == where);
  }
  // The escapee left the leader's session and group, and its parent, but
  // not the cgroup.
  arch::ProcessInfo e{};
  REQUIRE(arch::process_info(tree.escapee, e));
  REQUIRE(e.sid == tree.escapee);
  REQUIRE(e.pgid == tree.escapee);
  REQUIRE(test::wait_for([&] {
    arch::ProcessInfo i{};
    return arch::process_info(tree.escapee, i) && i.ppid == test::self_pid();
  }));
  REQUIRE(*g.populated());
  // The leader, its sleep, the escapee and its sleep; the subshell may not
  // have exited yet.
  REQUIRE(g.count_processes() >= 4);
}

TEST_CASE("Cgroup::kill() kills every process in it, including one in another session, and it empties") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 2);
  auto tree = spawn_tree(g);
  REQUIRE(*g.populated());
  // An events descriptor of our own (the handle's is read by populated()
  // and wait_empty(), which consumes the notification), read once to arm it.
  test::Fd events(::openat(g.dir_handle(), "cgroup.events", O_RDONLY | O_CLOEXEC));
  REQUIRE(events.fd >= 0);
  char text[256];
  REQUIRE(::pread(events.fd, text, sizeof text, 0) > 0);

  REQUIRE(g.kill().ok());
  auto empty = g.wait_empty(10'000'000'000);
  INFO(empty.error().message());
  REQUIRE(empty.ok());
  REQUIRE_FALSE(*g.populated());
  REQUIRE(g.count_processes() == 0);
  // Every process of the tree is gone or a zombie of ours (the escapee
  // came back to us, the subreaper).
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE(dead(pid));
  }
  auto st = arch::wait(tree.leader, 10'000'000'000);
  REQUIRE(st.ok());
  REQUIRE(st->signal == SIGKILL);  // SIGTERM is ignored, SIGKILL is not
  test::kill_and_reap_children();
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE_FALSE(test::process_exists(pid));
  }
  // The events descriptor signalled the change (POLLPRI).
  pollfd pfd{events.fd, POLLPRI, 0};
  REQUIRE(::poll(&pfd, 1, 10'000) == 1);
  REQUIRE((pfd.revents & POLLPRI) != 0);
  // Empty now: the directory can go.
  REQUIRE(g.remove().ok());
}

TEST_CASE("Cgroup::remove() is refused with Full while the cgroup has processes") {
  NothingLeft check;
  auto root = open_root();
  auto g = create_ok(root, 3);
  const std::string dir = std::string(root.path()) + "/g3";
  const char* argv[] = {"sleep", "100", nullptr};
  SpawnSpec s;
  s.program = "/bin/sleep";
  s.argv = argv;
  s.cgroup = &g;
  auto p = test::spawn_ok(s);
  auto r = g.remove();
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  REQUIRE(r.code() == Errc::Full);
  REQUIRE(std::string(r.error().message()).find("g3") != std::string::npos);
  REQUIRE(g.valid());
  REQUIRE(is_dir(dir));
  REQUIRE(g.count_processes() == 1);

  REQUIRE(g.kill().ok());
  REQUIRE(arch::wait(p, 10'000'000'000)->signal == SIGKILL);
  REQUIRE(g.wait_empty(10'000'000'000).ok());
  REQUIRE(g.remove().ok());
  REQUIRE_FALSE(is_dir(dir));
}

TEST_CASE("destroying a Cgroup with live processes kills them all and removes its directory") {
  NothingLeft check;
  auto root = open_root();
  const std::string dir = std::string(root.path()) + "/g4";
  Tree tree;
  {
    auto g = create_ok(root, 4);
    tree = spawn_tree(g);
    REQUIRE(is_dir(dir));
  }
  REQUIRE_FALSE(is_dir(dir));
  for (int pid : tree.pids) {
    INFO("pid " << pid);
    REQUIRE(dead(pid));
  }
  REQUIRE(arch::wait(tree.leader, 10'000'000'000)->signal == SIGKILL);
  test::kill_and_reap_children();
  for (int pid : tree.pids) REQUIRE_FALSE(test::process_exists(pid));
}

TEST_CASE("destroying the root kills everything under it and removes every directory") {
  NothingLeft check;
  std::optional<CgroupRoot> root(open_root());
  const std::string path = root->path();
  std::vector<Tree> trees;
  std::vector<Cgroup> groups;
  for (std::uint64_t id : {10, 11}) {
    groups.push_back(create_ok(*root, id));
    trees.push_back(spawn_tree(groups.back()));
  }
  SECTION("the root's end, with its groups' handles still open") {
    root.reset();  // kills both trees, removes g10, g11 and the root
    for (auto& g : groups) {
      auto p = g.populated();  // a removed cgroup reads as empty, or the read fails
      if (p.ok()) REQUIRE_FALSE(*p);
    }
    // A child cannot be born into a removed cgroup: an error, and no
    // child outside it either.
    SpawnSpec s;
    s.program = "/bin/true";
    s.cgroup = &groups.front();
    auto late = arch::spawn(s);
    INFO(late.error().message());
    REQUIRE_FALSE(late.ok());
    for (auto& t : trees) REQUIRE(arch::wait(t.leader, 10'000'000'000)->signal == SIGKILL);
    test::kill_and_reap_children();
    REQUIRE(test::children_of_self().empty());
    // And a later spawn into a live cgroup is still born inside it.
    auto other = open_root();
    auto g = create_ok(other, 1);
    s.cgroup = &g;
    const char* argv[] = {"sleep", "100", nullptr};
    s.program = "/bin/sleep";
    s.argv = argv;
    auto inside = test::spawn_ok(s);
    REQUIRE(ends_with(test::cgroup2_of(inside.pid()), fs::path(other.path()).filename().string() + "/g1"));
    REQUIRE(g.kill().ok());
    REQUIRE(arch::wait(inside, 10'000'000'000)->signal == SIGKILL);
    groups.clear();  // harmless on removed directories
  }
  SECTION("kill_all() first, then the groups, then the root") {
    REQUIRE(root->kill_all().ok());
    for (auto& g : groups) REQUIRE(g.wait_empty(10'000'000'000).ok());
    REQUIRE(is_dir(path + "/g10"));
    groups.clear();
    REQUIRE_FALSE(is_dir(path + "/g10"));
    REQUIRE_FALSE(is_dir(path + "/g11"));
    REQUIRE(is_dir(path));
    root.reset();
  }
  REQUIRE_FALSE(is_dir(path));
  for (auto& t : trees) {
    for (int pid : t.pids) {
      INFO("pid " << pid);
      REQUIRE(dead(pid));
    }
    if (t.leader.valid()) REQUIRE(arch::wait(t.leader, 10'000'000'000)->signal == SIGKILL);
  }
  test::kill_and_reap_children();
  for (auto& t : trees)
    for (int pid : t.pids) REQUIRE_FALSE(test::process_exists(pid));
}
