// SecurityPolicy: glob patterns, rules checked in order with default deny,
// resolution of the program before it is judged, principals allowed to
// signal; and that a denied operation leaves nothing behind.

#include <airssys/osl/policy.hpp>

#include <catch2/catch.hpp>

#include "support/osl_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/scoped_env.hpp"
#include "support/temp_dir.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

using namespace airssys;
using airssys::osl::glob_match;
using airssys::osl::KillProcessGroupOperation;
using airssys::osl::OperationView;
using airssys::osl::ProcessExecutor;
using airssys::osl::SecurityContext;
using airssys::osl::SecurityPolicy;
using airssys::osl::SignalProcessOperation;
using airssys::osl::SpawnProcessOperation;
using airssys::osl::SpawnProcessResult;
using airssys::osl::StdioConfig;
using airssys::osl::TeardownOperation;
using airssys::osl::WaitProcessOperation;

namespace {

// Declared first in every test that spawns: kills and reaps whatever a
// failing test left, then checks that a passing test left nothing.
using NothingLeft = test::NothingLeftCensus;

// Spawns, expecting success; waits for the process to end with code 0.
void runs(ProcessExecutor& ex, const SpawnProcessOperation& op, const SecurityContext& who = {}) {
  auto r = ex.execute(op, who);
  INFO("program " << op.program << ": " << r.error().message());
  REQUIRE(r.ok());
  auto st = ex.execute(WaitProcessOperation{r->pid, 20'000'000'000});
  INFO(st.error().message());
  REQUIRE(st.ok());
  CHECK(st->code == 0);
}

// Spawns, expecting a denial; checks that nothing was started.
Error denied(ProcessExecutor& ex, const SpawnProcessOperation& op, const SecurityContext& who = {}) {
  const test::Census before = test::Census::take();
  auto r = ex.execute(op, who);
  INFO("program " << op.program);
  CHECK_FALSE(r.ok());
  if (r.ok()) {  // not expected: do not leak it
    (void)ex.execute(TeardownOperation{r->pid, 0});
    return Error{};
  }
  INFO("message: " << r.error().message());
  CHECK(r.code() == Errc::Denied);
  const test::Census after = test::Census::take();
  INFO("before: " << before.describe());
  INFO("after:  " << after.describe());
  CHECK(after == before);
  CHECK(ex.live() == 0);
  return r.error();
}

}  // namespace

TEST_CASE("glob_match: '*' any run (across '/'), '?' one character, the rest literally") {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  };
  const Case cases[] = {
      {"", "", true},
      {"", "a", false},
      {"*", "", true},
      {"*", "/usr/bin/true", true},
      {"**", "abc", true},
      {"/usr/bin/*", "/usr/bin/true", true},
      {"/usr/bin/*", "/usr/bin/", true},
      {"/usr/bin/*", "/usr/bin", false},
      {"/usr/bin/*", "/usr/local/bin/true", false},
      {"/usr/*/true", "/usr/local/bin/true", true},  // '*' crosses '/'
      {"/usr/bin/true", "/usr/bin/true", true},
      {"/usr/bin/true", "/usr/bin/true2", false},
      {"/usr/bin/true", "/usr/bin/tru", false},
      {"/usr/bin/t?ue", "/usr/bin/true", true},
      {"/usr/bin/t?ue", "/usr/bin/tue", false},
      {"?", "", false},
      {"a?c", "ac", false},
      {"a*", "", false},
      {"*a", "bbba", true},
      {"*ab", "aab", true},           // needs backtracking
      {"a*b*c", "aXbYbZc", true},
      {"a*b*c", "aXbYbZ", false},
      {"*.sh", "x.sh.txt", false},
      {"*.sh", "x.sh.sh", true},
      {"[a]", "[a]", true},           // no character classes
      {"[a]", "a", false},
      {"/usr/bin/*", "/USR/BIN/TRUE", false},  // case matters
  };
  for (const Case& c : cases) {
    INFO("pattern '" << c.pattern << "', text '" << c.text << "'");
    CHECK(glob_match(c.pattern, c.text) == c.match);
  }
}

TEST_CASE("patterns must be absolute and fit, and the rule and principal tables are bounded") {
  SecurityPolicy p;
  for (const char* bad : {"", "usr/bin/*", "*", "?usr", "./true"}) {
    INFO("pattern '" << bad << "'");
    auto r = p.allow(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.code() == Errc::InvalidArgument);
    CHECK(test::names(r.error(), "'" + std::string(bad) + "'"));
    CHECK(test::names(r.error(), "not an absolute path"));
    CHECK(p.deny(bad).code() == Errc::InvalidArgument);
  }
  const std::string long_pattern = "/" + std::string(SecurityPolicy::kMaxPattern, 'x');
  CHECK(p.allow(long_pattern).code() == Errc::InvalidArgument);
  for (std::size_t i = 0; i < SecurityPolicy::kMaxRules; ++i) REQUIRE(p.allow("/usr/bin/true").ok());
  auto full = p.deny("/usr/bin/false");
  CHECK(full.code() == Errc::Full);
  CHECK(test::names(full.error(), std::to_string(SecurityPolicy::kMaxRules)));

  CHECK(p.allow_principal("").code() == Errc::InvalidArgument);
  CHECK(p.allow_principal(std::string(64, 'p')).code() == Errc::InvalidArgument);
  for (int i = 0; i < 8; ++i) REQUIRE(p.allow_principal("user" + std::to_string(i)).ok());
  CHECK(p.allow_principal("one-too-many").code() == Errc::Full);
}

TEST_CASE("allow(\"/usr/bin/*\") permits /usr/bin/true and /bin/sh, and denies a copy elsewhere by default, naming it") {
  NothingLeft guard;
  test::TempDir dir("airssys-policy");
  const std::string copy = dir / "true";
  std::filesystem::copy_file("/usr/bin/true", copy);
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/*").ok());
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  runs(ex, test::quiet("/usr/bin/true"));
  // The policy judges the file that runs: on Debian /bin is a symlink to
  // /usr/bin and sh one to dash, so "/bin/sh" is /usr/bin/dash.
  const std::string_view args[] = {"-c", "exit 0"};
  runs(ex, test::quiet("/bin/sh", args));
  const Error e = denied(ex, test::quiet(copy));
  INFO(e.message());
  CHECK(test::names(e, "'" + copy + "'"));
  CHECK(test::names(e, "default deny"));
  CHECK(ex.counters().spawned == ex.counters().cleaned);
}

TEST_CASE("with a policy in the chain, what no rule allows is denied") {
  NothingLeft guard;
  ProcessExecutor ex;
  SecurityPolicy policy;
  SECTION("no rule at all") {}
  SECTION("rules that do not match") {
    REQUIRE(policy.allow("/opt/*").ok());
    REQUIRE(policy.deny("/usr/bin/false").ok());
  }
  REQUIRE(ex.use(policy).ok());
  const Error e = denied(ex, test::quiet("/usr/bin/true"));
  INFO(e.message());
  CHECK(test::names(e, "'/usr/bin/true'"));
  CHECK(test::names(e, "default deny"));
}

TEST_CASE("the first matching rule decides: a deny before an allow wins and is named by number and pattern") {
  NothingLeft guard;
  SecurityPolicy policy;
  SECTION("deny first") {
    REQUIRE(policy.allow("/opt/never/*").ok());
    REQUIRE(policy.deny("/usr/bin/fal*").ok());
    REQUIRE(policy.allow("/usr/bin/*").ok());
    ProcessExecutor ex;
    REQUIRE(ex.use(policy).ok());
    const Error e = denied(ex, test::quiet("/usr/bin/false"));
    INFO(e.message());
    CHECK(test::names(e, "rule #2"));
    CHECK(test::names(e, "deny /usr/bin/fal*"));
    CHECK(test::names(e, "'/usr/bin/false'"));
    runs(ex, test::quiet("/usr/bin/true"));
  }
  SECTION("allow first") {
    REQUIRE(policy.allow("/usr/bin/*").ok());
    REQUIRE(policy.deny("/usr/bin/true").ok());
    ProcessExecutor ex;
    REQUIRE(ex.use(policy).ok());
    runs(ex, test::quiet("/usr/bin/true"));
  }
}

TEST_CASE("a relative name is resolved through PATH before the policy judges it") {
  NothingLeft guard;
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/true").ok());
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  SECTION("PATH has /usr/bin first") {
    test::ScopedEnv path("PATH", "/usr/bin:/bin");
    runs(ex, test::quiet("true"));
  }
  SECTION("PATH has /bin first: /bin/true is the file /usr/bin/true, which the rule allows") {
    test::ScopedEnv path("PATH", "/bin:/usr/bin");
    runs(ex, test::quiet("true"));
  }
  SECTION("a name PATH finds outside the rule is denied, naming the file it found") {
    test::TempDir dir("airssys-policy");
    std::filesystem::copy_file("/usr/bin/true", dir / "true");
    test::ScopedEnv path("PATH", (dir.path.string() + ":/usr/bin").c_str());
    const Error e = denied(ex, test::quiet("true"));
    CHECK(test::names(e, "'" + (dir / "true") + "'"));
  }
  SECTION("a name PATH does not find is NotFound, not Denied") {
    test::ScopedEnv path("PATH", "/usr/bin:/bin");
    auto r = ex.execute(test::quiet("airssys-no-such-program"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.code() == Errc::NotFound);
  }
}

TEST_CASE("a deny rule is not sidestepped by another spelling of the same path") {
  NothingLeft guard;
  SecurityPolicy policy;
  REQUIRE(policy.deny("/usr/bin/sh").ok());
  REQUIRE(policy.allow("/usr/bin/*").ok());
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  const std::string_view args[] = {"-c", "exit 0"};
  for (const char* spelling : {"/usr/bin/sh", "/usr/bin/./sh", "/usr/bin//sh", "/usr/lib/../bin/sh"}) {
    INFO("program " << spelling);
    const Error e = denied(ex, test::quiet(spelling, args));
    CHECK(test::names(e, "deny /usr/bin/sh"));
  }
}

TEST_CASE("allow_principal restricts SignalProcess and KillProcessGroup to the principals named") {
  NothingLeft guard;
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/*").ok());
  REQUIRE(policy.allow_principal("alice").ok());
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  const SecurityContext alice{"alice"};
  const SecurityContext bob{"bob"};
  // Spawning is judged by program, not principal.
  auto r = ex.execute(test::quiet("/usr/bin/sleep", test::kSleep), bob);
  INFO(r.error().message());
  REQUIRE(r.ok());
  const SpawnProcessResult p = r.value();
  struct TearDown {
    ProcessExecutor& ex;
    int pid;
    ~TearDown() { (void)ex.execute(TeardownOperation{pid, 0}); }
  } tear_down{ex, p.pid};

  auto s = ex.execute(SignalProcessOperation{p.pid, SIGKILL}, bob);
  REQUIRE_FALSE(s.ok());
  INFO(s.error().message());
  CHECK(s.code() == Errc::Denied);
  CHECK(test::names(s.error(), "'bob'"));
  auto g = ex.execute(KillProcessGroupOperation{p.pgid, SIGKILL}, bob);
  REQUIRE_FALSE(g.ok());
  CHECK(g.code() == Errc::Denied);
  CHECK(test::names(g.error(), "'bob'"));
  auto d = ex.execute(SignalProcessOperation{p.pid, SIGKILL});  // the default principal, "runtime"
  CHECK(d.code() == Errc::Denied);
  // Nothing was delivered.
  test::ProcEntry e;
  REQUIRE(test::read_proc(p.pid, e));
  CHECK(e.state != 'Z');

  REQUIRE(ex.execute(SignalProcessOperation{p.pid, 0}, alice).ok());
  REQUIRE(ex.execute(KillProcessGroupOperation{p.pgid, SIGTERM}, alice).ok());
  auto st = ex.execute(WaitProcessOperation{p.pid, 20'000'000'000}, alice);
  INFO(st.error().message());
  REQUIRE(st.ok());
  CHECK(st->signal == SIGTERM);
  CHECK(ex.live() == 0);
}

TEST_CASE("SecurityPolicy::check judges the operation view it is given") {
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/*").ok());
  OperationView spawn;
  spawn.kind = OperationView::Kind::Spawn;
  spawn.resolved_program = "/usr/bin/true";
  CHECK(policy.check(spawn, {}).ok());
  spawn.resolved_program = "/usr/local/bin/true";
  CHECK(policy.check(spawn, {}).code() == Errc::Denied);
  // Without allow_principal, everyone may signal; waits and teardowns are
  // not the policy's business.
  OperationView signal;
  signal.kind = OperationView::Kind::Signal;
  CHECK(policy.check(signal, SecurityContext{"anyone"}).ok());
  OperationView wait;
  wait.kind = OperationView::Kind::Wait;
  CHECK(policy.check(wait, {}).ok());
  REQUIRE(policy.allow_principal("alice").ok());
  CHECK(policy.check(signal, SecurityContext{"anyone"}).code() == Errc::Denied);
  CHECK(policy.check(signal, SecurityContext{"alice"}).ok());
  CHECK(policy.check(signal, SecurityContext{"alic"}).code() == Errc::Denied);
  CHECK(policy.check(signal, SecurityContext{"alice2"}).code() == Errc::Denied);
}

// ---- the file that runs (issue 7, P11) ---------------------------------------

TEST_CASE("a deny rule holds for every spelling of the file it names, hard links included") {
  NothingLeft guard;
  test::TempDir dir("airssys-policy");
  std::filesystem::create_symlink("/usr/bin/rm", dir / "link-to-rm");
  std::filesystem::create_symlink("/usr/bin", dir / "bin");
  std::filesystem::create_directories(dir.path / "sub");
  std::filesystem::create_hard_link("/usr/bin/rm", dir / "hard-rm");  // same file system here
  // /usr/bin/X11 is a symlink to "." on Debian; make one where it is not.
  std::string x11 = "/usr/bin/X11/rm";
  if (!std::filesystem::exists(x11)) {
    std::filesystem::create_directories(dir.path / "usr/bin");
    std::filesystem::create_symlink("/usr/bin/rm", dir / "usr/bin/rm");
    std::filesystem::create_symlink(".", dir / "usr/bin/X11");
    x11 = dir / "usr/bin/X11/rm";
  }
  SecurityPolicy policy;
  REQUIRE(policy.deny("/usr/bin/rm").ok());
  REQUIRE(policy.allow("/*").ok());
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  const std::string_view args[] = {"--version"};
  const std::string link = dir / "link-to-rm";
  const std::string dotdot = dir / "sub/../bin/rm";
  const std::string hard = dir / "hard-rm";
  for (const std::string& spelling : {std::string("/usr/bin/rm"), std::string("/bin/rm"), x11, link,
                                      std::string("//usr//bin//rm"), std::string("/usr/bin/./rm"), dotdot, hard}) {
    INFO("program " << spelling);
    const Error e = denied(ex, test::quiet(spelling, args));
    CHECK(test::names(e, "deny /usr/bin/rm"));
  }
  SECTION("relative to working_dir") {
    SpawnProcessOperation op = test::quiet("../bin/rm", args);
    op.working_dir = "/usr/lib";
    const Error e = denied(ex, op);
    CHECK(test::names(e, "deny /usr/bin/rm"));
  }
  SECTION("found through PATH") {
    test::ScopedEnv path("PATH", "/bin");
    const Error e = denied(ex, test::quiet("rm", args));
    CHECK(test::names(e, "deny /usr/bin/rm"));
  }
  SECTION("a trailing slash names no file at all") {
    auto r = ex.execute(test::quiet("/usr/bin/rm/", args));
    REQUIRE_FALSE(r.ok());
    CHECK(r.code() != Errc::Ok);
    CHECK(ex.live() == 0);
  }
  // The allow rule still lets everything else run.
  runs(ex, test::quiet("/usr/bin/true"));
}

namespace {

// A link after the policy in the chain that, while the spawn is being
// checked, points `link` at another program: the window between check and
// exec that a path-based exec would lose.
struct RetargetDuringCheck final : airssys::osl::Middleware {
  std::string link, target;
  int calls = 0;
  Result<void> check(const OperationView& op, const SecurityContext&) noexcept override {
    if (op.kind != OperationView::Kind::Spawn) return {};
    ++calls;
    std::error_code ec;
    std::filesystem::remove(link, ec);
    std::filesystem::create_symlink(target, link, ec);
    return {};
  }
};

}  // namespace

TEST_CASE("the file the policy checked is the file that runs, even when its path changes in between") {
  NothingLeft guard;
  test::TempDir dir("airssys-policy");
  const std::string link = dir / "prog";
  std::filesystem::create_symlink("/usr/bin/true", link);
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/true").ok());
  RetargetDuringCheck swap;
  swap.link = link;
  swap.target = "/usr/bin/false";
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  REQUIRE(ex.use(swap).ok());
  runs(ex, test::quiet(link));  // true, exit 0: not false, which no rule allows
  CHECK(swap.calls == 1);
  CHECK(std::filesystem::read_symlink(link) == "/usr/bin/false");
}

TEST_CASE("an allowed shell script runs, its interpreter reading the very file that was checked") {
  NothingLeft guard;
  test::TempDir dir("airssys-policy");
  const std::string script = dir / "ok.sh";
  std::ofstream(script) << "#!/bin/sh\n[ \"$1\" = one ] && exit 0\nexit 9\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  SecurityPolicy policy;
  REQUIRE(policy.allow(dir.path.string() + "/*").ok());
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  const std::string_view args[] = {"one"};
  runs(ex, test::quiet(script, args));
}
