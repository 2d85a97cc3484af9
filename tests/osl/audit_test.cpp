// AuditLog: one JSON object per line for every process event the executor
// reports (spawn, exit, signal, teardown, denial), in a ring that keeps
// the newest lines, or appended to a file; strings escaped so that a line
// stays one JSON object whatever a program name holds.

#include <airssys/osl/audit.hpp>
#include <airssys/osl/policy.hpp>

#include <catch2/catch.hpp>

#include "support/osl_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/temp_dir.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace airssys;
using airssys::osl::AuditLog;
using airssys::osl::Containment;
using airssys::osl::ProcessEvent;
using airssys::osl::ProcessExecutor;
using airssys::osl::SecurityContext;
using airssys::osl::SecurityPolicy;
using airssys::osl::SignalProcessOperation;
using airssys::osl::SpawnProcessOperation;
using airssys::osl::StdioConfig;
using airssys::osl::TeardownOperation;
using airssys::osl::TeardownReport;
using airssys::osl::WaitProcessOperation;

namespace {

// Declared first in every test that spawns: kills and reaps whatever a
// failing test left, then checks that a passing test left nothing.
using NothingLeft = test::NothingLeftCensus;

// A strict parser for one flat JSON object (the audit format): string keys
// to strings, numbers, true/false/null and arrays of strings. Strings are
// decoded, an array's elements joined by '\n'; other values are kept as
// their text. False on anything else, or trailing text.
class FlatJson {
 public:
  static bool parse(std::string_view text, std::map<std::string, std::string>& out) {
    FlatJson p{text};
    return p.object(out) && p.i_ == text.size();
  }

 private:
  explicit FlatJson(std::string_view t) : t_(t) {}
  bool object(std::map<std::string, std::string>& out) {
    if (!eat('{')) return false;
    if (eat('}')) return true;
    for (;;) {
      std::string key, value;
      if (!string(key) || !eat(':') || !val(value)) return false;
      if (out.count(key) != 0) return false;  // duplicate key
      out[key] = value;
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }
  bool eat(char c) {
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool val(std::string& out) {
    if (i_ < t_.size() && t_[i_] == '"') return string(out);
    if (eat('[')) {
      if (eat(']')) return true;
      for (bool first = true;; first = false) {
        if (!first) out.push_back('\n');
        if (!string(out)) return false;
        if (eat(']')) return true;
        if (!eat(',')) return false;
      }
    }
    for (const char* word : {"true", "false", "null"}) {
      const std::string_view w(word);
      if (t_.substr(i_, w.size()) == w) {
        i_ += w.size();
        out = word;
        return true;
      }
    }
    const std::size_t start = i_;
    eat('-');
    std::size_t digits = 0;
    while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_, ++digits;
    if (digits == 0) return false;
    out = std::string(t_.substr(start, i_ - start));
    return true;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    while (i_ < t_.size()) {
      const char c = t_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;  // raw control character
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= t_.size()) return false;
      const char e = t_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (i_ + 4 > t_.size()) return false;
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = t_[i_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
            else return false;
          }
          if (v >= 0x80) return false;  // not needed by these tests
          out.push_back(static_cast<char>(v));
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  std::string_view t_;
  std::size_t i_ = 0;
};

using Fields = std::map<std::string, std::string>;

std::vector<std::string> ring_lines(const AuditLog& log) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < log.lines(); ++i) {
    char buf[AuditLog::kLineSize];
    const std::size_t n = log.copy_line(i, buf, sizeof buf);
    out.emplace_back(buf, n);
  }
  return out;
}

// Checks that `line` is one JSON object, and returns its fields.
Fields parsed(const std::string& line) {
  INFO("line: " << line);
  REQUIRE_FALSE(line.empty());
  CHECK(line.front() == '{');
  CHECK(line.back() == '}');
  CHECK(line.find('\n') == std::string::npos);
  Fields f;
  REQUIRE(FlatJson::parse(line, f));
  return f;
}

// The first line whose event is `event`.
std::string line_of(const std::vector<std::string>& lines, const std::string& event) {
  for (const auto& l : lines)
    if (l.find("\"event\":\"" + event + "\"") != std::string::npos) return l;
  return {};
}

std::string all_of(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// "time":"2026-11-26T06:40:00.123456Z", within a minute of now.
void check_time(const Fields& f) {
  const auto it = f.find("time");
  REQUIRE(it != f.end());
  const std::string& t = it->second;
  INFO("time: " << t);
  // 20YY-MM-DDTHH:MM:SS.uuuuuuZ
  const std::string shape = "20DD-DD-DDTDD:DD:DD.DDDDDDZ";
  REQUIRE(t.size() == shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) {
    INFO("at " << i);
    if (shape[i] == 'D') {
      CHECK((t[i] >= '0' && t[i] <= '9'));
    } else {
      CHECK(t[i] == shape[i]);
    }
  }
  std::tm tm{};
  REQUIRE(::strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
  const std::time_t when = ::timegm(&tm);
  const std::time_t now = std::time(nullptr);
  CHECK(when <= now + 1);
  CHECK(when >= now - 60);
}

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("airssys-osl-audit") {}
};

}  // namespace

TEST_CASE("a spawn and its wait write a spawn line and an exit line, each one JSON object") {
  NothingLeft guard;
  auto log = AuditLog::ring(16);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  const SecurityContext alice{"alice"};
  const std::string_view args[] = {"-c", "exit 3"};
  auto r = ex.execute(test::quiet("/bin/sh", args), alice);
  INFO(r.error().message());
  REQUIRE(r.ok());
  const int pid = r->pid;
  auto st = ex.execute(WaitProcessOperation{pid, 20'000'000'000}, alice);
  REQUIRE(st.ok());
  CHECK(st->code == 3);

  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  REQUIRE(lines.size() == 3);
  CHECK(log->written() == 3);
  const std::string& spawn = lines[0];
  const std::string& exit = lines[1];
  const std::string& wait = lines[2];
  for (const std::string& line : {spawn, exit, wait}) {
    INFO("line: " << line);
    CHECK(line.find("\"pid\":" + std::to_string(pid) + ",") != std::string::npos);
    CHECK(line.find("\"pgid\":") != std::string::npos);
    CHECK(line.find("\"containment\":\"cgroup\"") != std::string::npos);
    CHECK(line.find("\"principal\":\"alice\"") != std::string::npos);
    CHECK(line.find("\"result\":\"ok\"") != std::string::npos);
    CHECK(line.rfind("{\"time\":\"20", 0) == 0);
  }
  const Fields s = parsed(spawn);
  CHECK(s.at("event") == "spawn");
  CHECK(s.at("pid") == std::to_string(pid));
  CHECK(s.at("pgid") == std::to_string(r->pgid));
  CHECK(s.at("program") == "/bin/sh");
  CHECK(s.at("exe") == "/usr/bin/dash");  // /bin/sh, every symlink resolved
  CHECK(s.at("argv") == "/bin/sh\n-c\nexit 3");
  CHECK(s.at("argc") == "3");
  CHECK(s.at("lifetime") == "managed");
  CHECK(s.count("error") == 0);
  check_time(s);
  const Fields e = parsed(exit);
  CHECK(e.at("event") == "exit");
  CHECK(e.at("exit_code") == "3");
  CHECK(e.at("exit_signal") == "0");
  CHECK(e.at("core_dumped") == "false");
  CHECK(e.at("tree_ended") == "true");  // nothing of its tree was left: no teardown follows
  check_time(e);
  const Fields w = parsed(wait);
  CHECK(w.at("event") == "wait");
  CHECK(w.at("exit_code") == "3");
  CHECK(w.at("result") == "ok");
}

TEST_CASE("a denied spawn writes a denied line with the error text, and a failed one an error line") {
  NothingLeft guard;
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/true").ok());
  auto log = AuditLog::ring(16);
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  REQUIRE(ex.use(*log).ok());
  SECTION("denied") {
    auto r = ex.execute(test::quiet("/usr/bin/false"), SecurityContext{"alice"});
    REQUIRE(r.code() == Errc::Denied);
    const auto lines = ring_lines(*log);
    INFO(all_of(lines));
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("\"event\":\"denied\"") != std::string::npos);
    CHECK(lines[0].find("\"result\":\"denied\"") != std::string::npos);
    const Fields f = parsed(lines[0]);
    CHECK(f.at("principal") == "alice");
    CHECK(f.at("program") == "/usr/bin/false");
    CHECK(f.at("error") == r.error().message());
    CHECK(f.at("error").find("default deny") != std::string::npos);
    check_time(f);
  }
  SECTION("failed") {
    auto r = ex.execute(test::quiet("/nonexistent/x"));
    REQUIRE(r.code() == Errc::NotFound);
    const auto lines = ring_lines(*log);
    INFO(all_of(lines));
    REQUIRE(lines.size() == 1);
    const Fields f = parsed(lines[0]);
    CHECK(f.at("event") == "spawn");
    CHECK(f.at("result") == "error");
    CHECK(f.at("error") == r.error().message());
    CHECK(f.at("program") == "/nonexistent/x");
  }
}

TEST_CASE("a teardown writes a teardown line with what it killed and adopted") {
  NothingLeft guard;
  auto log = AuditLog::ring(64);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  SecurityContext who;
  SECTION("by a named principal") { who = SecurityContext{"alice"}; }
  SECTION("by the default principal") { who = SecurityContext{}; }
  auto r = ex.execute(test::quiet("/bin/sleep", test::kSleep), who);
  REQUIRE(r.ok());
  auto t = ex.execute(TeardownOperation{r->pid, 5'000'000'000}, who);
  INFO(t.error().message());
  REQUIRE(t.ok());
  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  const std::string line = line_of(lines, "teardown");
  REQUIRE_FALSE(line.empty());
  CHECK(line.find("\"killed\":") != std::string::npos);
  CHECK(line.find("\"orphans_adopted\":") != std::string::npos);
  const Fields f = parsed(line);
  CHECK(f.at("principal") == std::string(who.principal));
  CHECK(f.at("pid") == std::to_string(r->pid));
  CHECK(f.at("killed") == std::to_string(t->killed));
  CHECK(f.at("orphans_adopted") == std::to_string(t->orphans_adopted));
  CHECK(f.at("reaped") == std::to_string(t->reaped));
  CHECK(f.at("exited_on_term") == "true");
  CHECK(f.at("result") == "ok");
  // The executor's own end (not an operation) is what "cleanup" is for.
  CHECK(line_of(lines, "cleanup").empty());
}

TEST_CASE("a leader's exit line says whether its tree ended with it") {
  NothingLeft guard;
  auto log = AuditLog::ring(64);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  // The leader exits at once; its child (same group) lives on.
  const std::string_view args[] = {"-c", "sleep 1000 & exit 0"};
  auto r = ex.execute(test::quiet("/bin/sh", args));
  INFO(r.error().message());
  REQUIRE(r.ok());
  auto st = ex.execute(WaitProcessOperation{r->pid, 20'000'000'000});
  REQUIRE(st.ok());
  auto t = ex.execute(TeardownOperation{r->pid, 5'000'000'000});
  INFO(t.error().message());
  REQUIRE(t.ok());
  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  const std::string exit = line_of(lines, "exit");
  REQUIRE_FALSE(exit.empty());
  const Fields e = parsed(exit);
  CHECK(e.at("pid") == std::to_string(r->pid));
  CHECK(e.at("tree_ended") == "false");  // the sleep was left: the teardown line follows
  CHECK_FALSE(line_of(lines, "teardown").empty());
}

TEST_CASE("the exit line of a process that joined a tree's group has no tree_ended; its leader's has") {
  NothingLeft guard;
  auto log = AuditLog::ring(64);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  const std::string_view sleep_args[] = {"1000"};
  auto leader = ex.execute(test::quiet("/bin/sleep", sleep_args));
  INFO(leader.error().message());
  REQUIRE(leader.ok());
  const std::string_view exit_args[] = {"-c", "exit 3"};
  SpawnProcessOperation op = test::quiet("/bin/sh", exit_args);
  op.process_group = osl::ProcessGroupConfig::join(leader->pgid);
  auto member = ex.execute(op);
  INFO(member.error().message());
  REQUIRE(member.ok());
  auto st = ex.execute(WaitProcessOperation{member->pid, 20'000'000'000});
  REQUIRE(st.ok());
  CHECK(st->code == 3);
  auto t = ex.execute(TeardownOperation{leader->pid, 5'000'000'000});
  INFO(t.error().message());
  REQUIRE(t.ok());
  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  std::string member_exit, leader_exit;
  for (const auto& l : lines) {
    if (l.find("\"event\":\"exit\"") == std::string::npos) continue;
    const Fields f = parsed(l);
    if (f.at("pid") == std::to_string(member->pid)) member_exit = l;
    if (f.at("pid") == std::to_string(leader->pid)) leader_exit = l;
  }
  REQUIRE_FALSE(member_exit.empty());
  const Fields m = parsed(member_exit);
  CHECK(m.at("exit_code") == "3");
  CHECK(m.count("tree_ended") == 0);  // a member's end is not its tree's
  REQUIRE_FALSE(leader_exit.empty());
  CHECK(parsed(leader_exit).at("tree_ended") == "false");  // ended by the teardown, whose line follows
}

TEST_CASE("destroying the executor with a live tree writes a cleanup line") {
  NothingLeft guard;
  auto log = AuditLog::ring(64);
  int pid = -1;
  unsigned long long start = 0;
  {
    ProcessExecutor ex;
    REQUIRE(ex.use(*log).ok());
    auto r = ex.execute(test::quiet("/bin/sleep", test::kSleep));
    REQUIRE(r.ok());
    pid = r->pid;
    start = test::start_time_of(pid);
  }
  CHECK_FALSE(test::same_process_exists(pid, start));
  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  const std::string line = line_of(lines, "cleanup");
  REQUIRE_FALSE(line.empty());
  const Fields f = parsed(line);
  CHECK(f.at("pid") == std::to_string(pid));
  CHECK(f.at("killed") == "1");
}

TEST_CASE("SignalProcess writes a signal line with the signal number, and a refusal an error or denied line") {
  NothingLeft guard;
  SecurityPolicy policy;
  REQUIRE(policy.allow("/usr/bin/*").ok());
  REQUIRE(policy.allow("/bin/*").ok());
  REQUIRE(policy.allow_principal("alice").ok());
  auto log = AuditLog::ring(64);
  ProcessExecutor ex;
  REQUIRE(ex.use(policy).ok());
  REQUIRE(ex.use(*log).ok());
  const SecurityContext alice{"alice"};
  auto r = ex.execute(test::quiet("/bin/sleep", test::kSleep), alice);
  REQUIRE(r.ok());
  const int pid = r->pid;
  struct TearDown {
    ProcessExecutor& ex;
    int pid;
    ~TearDown() { (void)ex.execute(TeardownOperation{pid, 0}); }
  } tear_down{ex, pid};

  REQUIRE(ex.execute(SignalProcessOperation{pid, 65}, alice).code() == Errc::InvalidArgument);
  REQUIRE(ex.execute(SignalProcessOperation{pid, SIGKILL}, SecurityContext{"bob"}).code() == Errc::Denied);
  REQUIRE(ex.execute(SignalProcessOperation{pid, SIGTERM}, alice).ok());
  auto st = ex.execute(WaitProcessOperation{pid, 20'000'000'000}, alice);
  REQUIRE(st.ok());
  CHECK(st->signal == SIGTERM);

  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  std::vector<Fields> signals;
  Fields denied;
  for (const auto& l : lines) {
    const Fields f = parsed(l);
    if (f.at("event") == "signal") signals.push_back(f);
    if (f.at("event") == "denied") denied = f;
  }
  REQUIRE(signals.size() == 2);
  CHECK(signals[0].at("signal") == "65");
  CHECK(signals[0].at("result") == "error");
  CHECK(signals[0].at("error").find("65") != std::string::npos);
  CHECK(signals[1].at("signal") == std::to_string(SIGTERM));
  CHECK(signals[1].at("pid") == std::to_string(pid));
  CHECK(signals[1].at("principal") == "alice");
  CHECK(signals[1].at("result") == "ok");
  REQUIRE_FALSE(denied.empty());
  CHECK(denied.at("principal") == "bob");
  CHECK(denied.at("signal") == std::to_string(SIGKILL));
  CHECK(denied.at("pid") == std::to_string(pid));
  CHECK(denied.at("result") == "denied");
}

TEST_CASE("the ring keeps the newest lines, and written() counts every line") {
  auto log = AuditLog::ring(16);
  CHECK(log->lines() == 0);
  CHECK(log->written() == 0);
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Exit;
  ev.time_ns = 1'700'000'000'000'000'000;
  ev.principal = "ring";
  for (int i = 0; i < 20; ++i) {
    ev.pid = 1000 + i;
    log->observe(ev);
  }
  CHECK(log->written() == 20);
  REQUIRE(log->lines() == 16);
  const auto lines = ring_lines(*log);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Fields f = parsed(lines[i]);
    CHECK(f.at("pid") == std::to_string(1000 + 4 + static_cast<int>(i)));  // oldest first
  }
  char buf[AuditLog::kLineSize] = "untouched";
  CHECK(log->copy_line(16, buf, sizeof buf) == 0);
  CHECK(buf[0] == '\0');
  // A short buffer gets a NUL-terminated prefix.
  char small[8];
  CHECK(log->copy_line(0, small, sizeof small) == 7);
  CHECK(std::string(small) == lines[0].substr(0, 7));
}

TEST_CASE("strings with quotes, backslashes, newlines and control characters are escaped") {
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Spawn;
  ev.time_ns = 0;
  const std::string program = "a\"b\n";
  const std::string principal = std::string("back\\slash\ttab\x01\x1f end");
  ev.program = program;
  ev.principal = principal;
  ev.pid = 42;
  const Error err = Error::make(Errc::NotFound, "program '%s' does not exist", "a\"b\n");
  ev.error = &err;
  char buf[AuditLog::kLineSize];
  const std::size_t n = AuditLog::format(ev, buf, sizeof buf);
  const std::string line(buf, n);
  INFO("line: " << line);
  CHECK(n == std::strlen(buf));
  CHECK(line.find("\"program\":\"a\\\"b\\u000a\"") != std::string::npos);
  CHECK(line.find("back\\\\slash\\u0009tab\\u0001\\u001f end") != std::string::npos);
  const Fields f = parsed(line);
  CHECK(f.at("program") == program);
  CHECK(f.at("principal") == principal);
  CHECK(f.at("error") == err.message());
  CHECK(f.at("result") == "error");
  CHECK(f.at("time") == "1970-01-01T00:00:00.000000Z");
}

TEST_CASE("format never writes outside the buffer it is given") {
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Spawn;
  ev.program = "/usr/bin/true";
  SECTION("a buffer too small gets a NUL-terminated prefix") {
    char area[32];
    std::memset(area, 'Z', sizeof area);
    const std::size_t n = AuditLog::format(ev, area + 8, 16);
    CHECK(n < 16);
    CHECK(area[8 + n] == '\0');
    for (int i = 0; i < 8; ++i) CHECK(area[i] == 'Z');
    for (int i = 24; i < 32; ++i) CHECK(area[i] == 'Z');
  }
  SECTION("a buffer of capacity 0 is not written at all") {
    char area[16];
    std::memset(area, 'Z', sizeof area);
    const std::size_t n = AuditLog::format(ev, area + 8, 0);
    CHECK(n == 0);
    for (char c : area) CHECK(c == 'Z');
  }
}

TEST_CASE("AuditLog::to_file appends one line per event, after what the file held") {
  TempDir dir;
  const std::string path = (dir.path / "audit.log").string();
  std::ofstream(path) << "existing line\n";
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Signal;
  ev.time_ns = 1'700'000'000'000'000'000;
  ev.principal = "file";
  ev.signal = SIGTERM;
  {
    auto log = AuditLog::to_file(path.c_str());
    INFO(log.error().message());
    REQUIRE(log.ok());
    for (int i = 0; i < 3; ++i) {
      ev.pid = 100 + i;
      log.value()->observe(ev);
    }
    CHECK(log.value()->written() == 3);
    CHECK(log.value()->lines() == 0);  // not a ring
  }
  {
    auto again = AuditLog::to_file(path.c_str());
    REQUIRE(again.ok());
    ev.pid = 103;
    again.value()->observe(ev);
  }
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) !=
        std::filesystem::perms::none);
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "existing line");
  for (int i = 1; i < 5; ++i) {
    const Fields f = parsed(lines[static_cast<std::size_t>(i)]);
    CHECK(f.at("event") == "signal");
    CHECK(f.at("pid") == std::to_string(100 + i - 1));
    CHECK(f.at("signal") == std::to_string(SIGTERM));
  }
}

TEST_CASE("AuditLog::to_file on a path that cannot be opened is an error naming it") {
  const std::size_t fds = test::open_fds();
  auto log = AuditLog::to_file("/nonexistent/dir/x");
  REQUIRE_FALSE(log.ok());
  INFO(log.error().message());
  CHECK(log.code() == Errc::NotFound);
  CHECK(std::string(log.error().message()).find("'/nonexistent/dir/x'") != std::string::npos);
  auto dir = AuditLog::to_file("/tmp");
  REQUIRE_FALSE(dir.ok());
  CHECK(std::string(dir.error().message()).find("'/tmp'") != std::string::npos);
  auto empty = AuditLog::to_file("");
  CHECK(empty.code() == Errc::InvalidArgument);
  CHECK(test::open_fds() == fds);
}

// ---- what a record says, at any size, and when it cannot be written (issue 7, P12)

namespace {

// Every line must be a JSON document Python's own parser accepts (UTF-8,
// escapes, nesting): an independent check beside FlatJson.
bool python_accepts(const std::vector<std::string>& lines) {
  TempDir dir;
  const std::string path = (dir.path / "lines.jsonl").string();
  {
    std::ofstream out(path, std::ios::binary);
    for (const auto& l : lines) out << l << '\n';
  }
  const std::string cmd = "python3 -c 'import json,sys\n"
                          "for l in open(sys.argv[1], encoding=\"utf-8\", errors=\"strict\"):\n"
                          "  o = json.loads(l)\n"
                          "  assert isinstance(o, dict)\n' " + path;
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

TEST_CASE("a spawn record names the executable, the whole argv, the working directory and the overridden names") {
  NothingLeft guard;
  auto log = AuditLog::ring(16);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  const std::string_view args[] = {"-c", "exit 0", "quote\" back\\ nl\n"};
  const std::string_view env[] = {"LD_PRELOAD=", "SECRET_TOKEN=hunter2", "LD_PRELOAD=/tmp/evil.so"};
  SpawnProcessOperation op = test::quiet("sh", args);
  op.env = env;
  op.working_dir = "/tmp";
  auto r = ex.execute(op);
  INFO(r.error().message());
  REQUIRE(r.ok());
  REQUIRE(ex.execute(WaitProcessOperation{r->pid, 20'000'000'000}).ok());
  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  const std::string line = line_of(lines, "spawn");
  const Fields f = parsed(line);
  CHECK(f.at("program") == "sh");
  CHECK(f.at("exe") == "/usr/bin/dash");
  CHECK(f.at("argv") == "sh\n-c\nexit 0\nquote\" back\\ nl\n");
  CHECK(f.at("argc") == "4");
  CHECK(f.at("cwd") == "/tmp");
  CHECK(f.at("env_set") == "SECRET_TOKEN\nLD_PRELOAD");  // names only, each once
  CHECK(line.find("hunter2") == std::string::npos);
  CHECK(line.find("evil") == std::string::npos);
  CHECK(f.count("truncated") == 0);
  CHECK(python_accepts(lines));
}

TEST_CASE("every record is one valid JSON object at any size, cut records say so") {
  NothingLeft guard;
  auto log = AuditLog::ring(8);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  std::vector<std::string> storage;
  for (int i = 0; i < 1500; ++i) storage.push_back("argument-" + std::to_string(i) + std::string(80, 'x'));
  storage.push_back(std::string("bytes \xff\xfe not UTF-8, \xc3\xa9 is, control \x01\x7f"));
  std::vector<std::string_view> args(storage.begin(), storage.end());
  auto r = ex.execute(test::quiet("/usr/bin/true", args));
  INFO(r.error().message());
  REQUIRE(r.ok());
  REQUIRE(ex.execute(WaitProcessOperation{r->pid, 20'000'000'000}).ok());
  const auto lines = ring_lines(*log);
  const std::string line = line_of(lines, "spawn");
  INFO(line.substr(0, 400));
  CHECK(line.size() < AuditLog::kLineSize);
  const Fields f = parsed(line);
  CHECK(f.at("truncated") == "true");
  CHECK(f.at("argc") == "1502");
  const std::size_t shown = static_cast<std::size_t>(std::count(f.at("argv").begin(), f.at("argv").end(), '\n')) + 1;
  CHECK(f.at("argv_elided") == std::to_string(1502 - shown));
  CHECK(f.at("result") == "ok");
  CHECK(f.at("pid") == std::to_string(r->pid));
  CHECK(python_accepts(lines));

  SECTION("a huge program name and principal, with bytes that are not UTF-8") {
    ProcessEvent ev;
    ev.kind = ProcessEvent::Kind::Denied;
    const std::string program = std::string(9000, '\x01') + "\xe2\x82";  // control bytes, a cut UTF-8 sequence
    const std::string principal = std::string(3000, '"');
    ev.program = program;
    ev.principal = principal;
    const Error err = Error::make(Errc::Denied, "policy: no rule allows it");
    ev.error = &err;
    std::vector<char> buf(AuditLog::kLineSize);
    const std::size_t n = AuditLog::format(ev, buf.data(), buf.size());
    const std::string one(buf.data(), n);
    const Fields g = parsed(one);
    CHECK(g.at("truncated") == "true");
    CHECK(g.at("result") == "denied");
    CHECK(g.at("error") == err.message());
    CHECK(python_accepts({one}));
  }
}

TEST_CASE("a Wait writes a wait line whether it succeeds or fails, and a failed Teardown a teardown line") {
  NothingLeft guard;
  auto log = AuditLog::ring(32);
  ProcessExecutor ex;
  REQUIRE(ex.use(*log).ok());
  const SecurityContext bob{"bob"};
  auto r = ex.execute(test::quiet("/bin/sleep", test::kSleep), bob);
  REQUIRE(r.ok());
  auto timed_out = ex.execute(WaitProcessOperation{r->pid, 0}, bob);
  REQUIRE(timed_out.code() == Errc::Timeout);
  auto unknown = ex.execute(WaitProcessOperation{999999999, 0}, bob);
  REQUIRE(unknown.code() == Errc::InvalidArgument);
  auto bad_teardown = ex.execute(TeardownOperation{999999999, 0}, bob);
  REQUIRE(bad_teardown.code() == Errc::InvalidArgument);
  REQUIRE(ex.execute(TeardownOperation{r->pid, 5'000'000'000}, bob).ok());

  const auto lines = ring_lines(*log);
  INFO(all_of(lines));
  std::vector<Fields> waits, teardowns;
  for (const auto& l : lines) {
    const Fields f = parsed(l);
    if (f.at("event") == "wait") waits.push_back(f);
    if (f.at("event") == "teardown") teardowns.push_back(f);
  }
  REQUIRE(waits.size() == 2);
  CHECK(waits[0].at("pid") == std::to_string(r->pid));
  CHECK(waits[0].at("result") == "error");
  CHECK(waits[0].at("error") == timed_out.error().message());
  CHECK(waits[0].at("principal") == "bob");
  CHECK(waits[1].at("pid") == "999999999");
  CHECK(waits[1].at("error") == unknown.error().message());
  REQUIRE(teardowns.size() == 2);
  CHECK(teardowns[0].at("pid") == "999999999");
  CHECK(teardowns[0].at("result") == "error");
  CHECK(teardowns[0].at("error") == bad_teardown.error().message());
  CHECK(teardowns[1].at("result") == "ok");
}

TEST_CASE("a log that cannot be written counts its failures, and fail-closed refuses the operations after one") {
  NothingLeft guard;
  auto opened = AuditLog::to_file("/dev/full");
  INFO(opened.error().message());
  REQUIRE(opened.ok());
  AuditLog& log = *opened.value();
  CHECK(log.write_failures() == 0);
  CHECK_FALSE(log.failing());
  ProcessExecutor ex;
  SECTION("fail-open (the default): operations go on, every lost record is counted") {
    REQUIRE(ex.use(log).ok());
    auto r = ex.execute(test::quiet("/usr/bin/true"));
    REQUIRE(r.ok());
    REQUIRE(ex.execute(WaitProcessOperation{r->pid, 20'000'000'000}).ok());
    CHECK(log.written() == 0);
    CHECK(log.write_failures() == 3);  // spawn, exit, wait
    CHECK(log.failing());
    CHECK(std::string(log.last_failure().message()).find("/dev/full") != std::string::npos);
  }
  SECTION("fail-closed: the first lost record's operation has happened, nothing is spawned or signalled after it") {
    log.set_fail_closed(true);
    REQUIRE(ex.use(log).ok());
    auto first = ex.execute(test::quiet("/bin/sleep", test::kSleep));
    REQUIRE(first.ok());  // its record is the first one lost
    CHECK(log.failing());
    const test::Census before = test::Census::take();
    auto second = ex.execute(test::quiet("/usr/bin/true"));
    REQUIRE_FALSE(second.ok());
    INFO(second.error().message());
    CHECK(second.code() == Errc::Unavailable);
    CHECK(std::string(second.error().message()).find("fail-closed") != std::string::npos);
    CHECK(test::Census::take() == before);
    CHECK(ex.execute(SignalProcessOperation{first->pid, SIGTERM}).code() == Errc::Unavailable);
    // What ends processes is never refused: a refused teardown would only
    // leave the tree running.
    auto t = ex.execute(TeardownOperation{first->pid, 0});
    INFO(t.error().message());
    CHECK(t.ok());
    CHECK(ex.live() == 0);
  }
}
