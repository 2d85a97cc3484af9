// The spawn features of the platform layer, with real processes: stdio
// pipes, files and /dev/null, passed descriptors, resource limits, the
// parent-death signal, the signal state and environment the child starts
// with, process groups, and the failures (no descriptor left, an argument
// too long) that must leave nothing behind. Every test ends by checking
// that no child of this process is left, running or unreaped, and that no
// descriptor leaked.

#include <airssys/arch/process.hpp>

#include <catch2/catch.hpp>

#include "support/arch_spawn.hpp"
#include "support/fd.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/scoped_env.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_for.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace airssys;
using airssys::arch::GroupMode;
using airssys::arch::LimitKind;
using airssys::arch::LimitSpec;
using airssys::arch::SpawnSpec;
using airssys::arch::StdioMode;
using airssys::arch::StdioSpec;

namespace {

// Taken at the start of a test, checked at its end (also when a REQUIRE
// failed): every child of this process is killed and reaped first, so a
// failing test cannot leave a process behind; then nothing may have been
// left to reap by a passing test, and no descriptor may have leaked.
using NothingLeft = test::NoChildrenLeft;

// A fresh directory under the temp dir, removed with everything in it.
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("airssys-spawn") {}
};

// Reads until end of file, with a generous limit so that a broken spawn
// fails the test instead of hanging it.
std::string read_all(int fd, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) FAIL("no end of file within the limit; read so far: " << out);
    pollfd pfd{fd, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    REQUIRE(rc >= 0);
    if (rc == 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    REQUIRE(n >= 0);
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

arch::ExitStatus wait_ok(arch::Process& p, std::int64_t timeout_ns = 20'000'000'000) {
  auto st = arch::wait(p, timeout_ns);
  INFO(st.error().message());
  REQUIRE(st.ok());
  return *st;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

bool contains(const char* haystack, const std::string& needle) {
  return std::string(haystack).find(needle) != std::string::npos;
}

// Ignores SIGPIPE for a scope, so that writing to a pipe whose reader died
// is an EPIPE error, not the end of the test process.
struct NoSigpipe {
  struct sigaction old {};
  NoSigpipe() {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
  }
  ~NoSigpipe() { ::sigaction(SIGPIPE, &old, nullptr); }
};

// Waits (bounded) until every pid is a zombie: ended, not yet reaped.
bool wait_for_zombies(const std::vector<int>& pids) {
  return test::wait_for([&] {
    for (int pid : pids) {
      arch::ProcessInfo i{};
      if (!arch::process_info(pid, i) || !i.ended) return false;
    }
    return true;
  });
}

// A free descriptor number in 3..9 (the shell's `>&N` takes one digit).
int free_single_digit_fd() {
  for (int fd = 9; fd >= 3; --fd)
    if (::fcntl(fd, F_GETFD) < 0) return fd;
  FAIL("no free descriptor in 3..9");
  return -1;
}

}  // namespace

// ---- stdio ------------------------------------------------------------------

TEST_CASE("a Pipe on stdout carries the child's output to the parent") {
  NothingLeft check;
  const char* argv[] = {"echo", "hello", "pipe", nullptr};
  SpawnSpec s = test::quiet("/bin/echo", argv);
  s.stdio[1] = StdioMode::Pipe;
  auto p = test::spawn_ok(s);

  SECTION("the parent's end is taken once, and is close-on-exec") {
    test::Fd out(p.take_pipe(1));
    REQUIRE(out.fd > 2);
    REQUIRE((::fcntl(out.fd, F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(p.take_pipe(1) == -1);  // already taken
    REQUIRE(p.take_pipe(0) == -1);  // stdin is not a pipe
    REQUIRE(p.take_pipe(2) == -1);
    REQUIRE(p.take_pipe(3) == -1);
    REQUIRE(p.take_pipe(-1) == -1);
    REQUIRE(read_all(out.fd) == "hello pipe\n");
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("an end that is never taken is closed with the handle") {
    REQUIRE(wait_ok(p).code == 0);
    // NothingLeft checks that the descriptor went with the handle.
  }
}

TEST_CASE("a Pipe on stdin feeds the child, and cat echoes it back") {
  NothingLeft check;
  NoSigpipe no_sigpipe;
  const char* argv[] = {"cat", nullptr};
  SpawnSpec s = test::quiet("/bin/cat", argv);
  s.stdio[0] = StdioMode::Pipe;
  s.stdio[1] = StdioMode::Pipe;
  auto p = test::spawn_ok(s);
  test::Fd in(p.take_pipe(0));
  test::Fd out(p.take_pipe(1));
  REQUIRE(in.fd > 2);
  REQUIRE(out.fd > 2);
  REQUIRE((::fcntl(in.fd, F_GETFD) & FD_CLOEXEC) != 0);

  SECTION("a short text, then end of file") {
    const std::string text = "line one\nline two\n";
    REQUIRE(::write(in.fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    in.reset();
    REQUIRE(read_all(out.fd) == text);
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("more than a pipe holds, written and read at once") {
    std::string text;
    for (int i = 0; text.size() < 512 * 1024; ++i) text += "block " + std::to_string(i) + "\n";
    REQUIRE(::fcntl(in.fd, F_SETFL, O_NONBLOCK) == 0);
    std::string got;
    std::size_t sent = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (out.fd >= 0) {
      REQUIRE(std::chrono::steady_clock::now() < end);
      pollfd pfd[2] = {{out.fd, POLLIN, 0}, {in.fd, POLLOUT, 0}};
      REQUIRE(::poll(pfd, in.fd >= 0 ? 2 : 1, 1000) >= 0);
      if (in.fd >= 0 && (pfd[1].revents & (POLLOUT | POLLERR)) != 0) {
        const ssize_t n = ::write(in.fd, text.data() + sent, std::min<std::size_t>(text.size() - sent, 65536));
        if (n > 0) sent += static_cast<std::size_t>(n);
        REQUIRE((n > 0 || errno == EAGAIN));
        if (sent == text.size()) in.reset();
      }
      if ((pfd[0].revents & (POLLIN | POLLHUP)) != 0) {
        char buf[65536];
        const ssize_t n = ::read(out.fd, buf, sizeof buf);
        REQUIRE(n >= 0);
        if (n == 0) out.reset(); else got.append(buf, static_cast<std::size_t>(n));
      }
    }
    REQUIRE(got.size() == text.size());
    REQUIRE(got == text);
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("a child that exits without reading: the writer gets EPIPE, not a signal") {
    REQUIRE(arch::signal(p, SIGKILL).ok());
    REQUIRE(wait_ok(p).signal == SIGKILL);
    const char c = 'x';
    REQUIRE(::write(in.fd, &c, 1) == -1);
    REQUIRE(errno == EPIPE);
  }
}

TEST_CASE("File stdio: stdout to a file truncated or appended, stdin and stderr from and to files") {
  NothingLeft check;
  TempDir dir;
  const std::string file = dir / "out.txt";

  SECTION("stdout truncates an existing file") {
    write_file(file, "old content that is longer than the new one\n");
    const char* argv[] = {"echo", "new", nullptr};
    SpawnSpec s = test::quiet("/bin/echo", argv);
    s.stdio[1] = StdioSpec(StdioMode::File, file.c_str());
    auto p = test::spawn_ok(s);
    REQUIRE(wait_ok(p).code == 0);
    REQUIRE(slurp(file) == "new\n");
  }
  SECTION("stdout appends to an existing file, run after run") {
    write_file(file, "old\n");
    const char* argv[] = {"echo", "new", nullptr};
    SpawnSpec s = test::quiet("/bin/echo", argv);
    s.stdio[1] = StdioSpec(StdioMode::File, file.c_str(), true);
    for (int i = 0; i < 2; ++i) {
      auto p = test::spawn_ok(s);
      REQUIRE(wait_ok(p).code == 0);
    }
    REQUIRE(slurp(file) == "old\nnew\nnew\n");
  }
  SECTION("stdout creates a missing file with mode 0644 (less the umask)") {
    const mode_t mask = ::umask(022);
    ::umask(mask);
    const char* argv[] = {"echo", "created", nullptr};
    SpawnSpec s = test::quiet("/bin/echo", argv);
    s.stdio[1] = StdioSpec(StdioMode::File, file.c_str());
    auto p = test::spawn_ok(s);
    REQUIRE(wait_ok(p).code == 0);
    REQUIRE(slurp(file) == "created\n");
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    REQUIRE((st.st_mode & 0777) == (0644 & ~mask));
  }
  SECTION("stdin reads a file") {
    write_file(file, "from a file\nsecond line\n");
    const char* argv[] = {"cat", nullptr};
    SpawnSpec s = test::quiet("/bin/cat", argv);
    s.stdio[0] = StdioSpec(StdioMode::File, file.c_str());
    s.stdio[1] = StdioMode::Pipe;
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd) == "from a file\nsecond line\n");
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("stderr to a file, stdout elsewhere") {
    const char* argv[] = {"sh", "-c", "echo to-out; echo to-err >&2", nullptr};
    SpawnSpec s = test::quiet("/bin/sh", argv);
    s.stdio[1] = StdioMode::Pipe;
    s.stdio[2] = StdioSpec(StdioMode::File, file.c_str());
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd) == "to-out\n");
    REQUIRE(wait_ok(p).code == 0);
    REQUIRE(slurp(file) == "to-err\n");
  }
}

TEST_CASE("a File path that cannot be opened is an error naming it, with no child and no descriptor left") {
  NothingLeft check;
  TempDir dir;
  const char* argv[] = {"echo", "never", nullptr};
  SpawnSpec s = test::quiet("/bin/echo", argv);
  // A pipe on another stream, opened before the failing one: it must be
  // closed again.
  s.stdio[0] = StdioMode::Pipe;
  std::string path;
  Errc code = Errc::Ok;
  const char* stream = "";

  SECTION("stdout under a directory that does not exist") {
    path = dir / "no-such-dir/out.txt";
    s.stdio[1] = StdioSpec(StdioMode::File, path.c_str());
    code = Errc::NotFound;
    stream = "stdout";
  }
  SECTION("stdout is a directory") {
    path = dir.path.string();
    s.stdio[1] = StdioSpec(StdioMode::File, path.c_str(), true);
    code = Errc::InvalidArgument;
    stream = "stdout";
  }
  SECTION("stderr under a regular file, as if it were a directory") {
    const std::string plain = dir / "plain";
    write_file(plain, "x");
    path = plain + "/err.txt";
    s.stdio[2] = StdioSpec(StdioMode::File, path.c_str());
    code = Errc::InvalidArgument;
    stream = "stderr";
  }
  SECTION("stdin from a file that does not exist") {
    path = dir / "missing.txt";
    s.stdio[0] = StdioSpec(StdioMode::File, path.c_str());
    code = Errc::NotFound;
    stream = "stdin";
  }
  auto p = arch::spawn(s);
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message());
  CHECK(p.code() == code);
  CHECK(contains(p.error().message(), "'" + path + "'"));
  CHECK(contains(p.error().message(), stream));
  CHECK(test::children_of_self().empty());
}

TEST_CASE("File mode without a path is refused") {
  NothingLeft check;
  SpawnSpec s = test::quiet("/bin/true");
  SECTION("a null path") { s.stdio[1] = StdioSpec(StdioMode::File, nullptr); }
  SECTION("an empty path") { s.stdio[1] = StdioSpec(StdioMode::File, ""); }
  auto p = arch::spawn(s);
  REQUIRE(p.code() == Errc::InvalidArgument);
  REQUIRE(contains(p.error().message(), "stdout: File mode needs a path"));
}

TEST_CASE("Null stdio gives the child end of file on stdin and discards its output") {
  NothingLeft check;
  SECTION("stdin at end of file") {
    const char* argv[] = {"sh", "-c", "if read x; then echo got \"$x\"; else echo eof; fi", nullptr};
    SpawnSpec s = test::quiet("/bin/sh", argv);
    s.stdio[1] = StdioMode::Pipe;
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd) == "eof\n");
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("stdout and stdin are /dev/null") {
    // `test` is a shell builtin: /proc/self is the shell, with the
    // streams spawn gave it.
    const char* argv[] = {"sh", "-c",
                          "test /proc/self/fd/0 -ef /dev/null && test /proc/self/fd/1 -ef /dev/null && "
                          "echo both-null >&2; echo lost",
                          nullptr};
    SpawnSpec s = test::quiet("/bin/sh", argv);
    s.stdio[2] = StdioMode::Pipe;
    auto p = test::spawn_ok(s);
    test::Fd err(p.take_pipe(2));
    REQUIRE(read_all(err.fd) == "both-null\n");
    REQUIRE(wait_ok(p).code == 0);
  }
}

// ---- passed descriptors -----------------------------------------------------

TEST_CASE("a passed descriptor reaches the child at its number, and no other does") {
  NothingLeft check;
  // The passed fd: the write end of a pipe, close-on-exec like every fd
  // this runtime opens, moved to a one-digit number for the shell.
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  test::Fd read_end(p[0]);
  const int n = free_single_digit_fd();
  REQUIRE(::dup3(p[1], n, O_CLOEXEC) == n);
  ::close(p[1]);
  test::Fd write_end(n);
  // Not passed and not close-on-exec (as a careless library would leave
  // it): it must not reach the child either.
  const int stray_fd = ::fcntl(read_end.fd, F_DUPFD, 40);
  REQUIRE(stray_fd >= 40);
  test::Fd stray(stray_fd);
  REQUIRE((::fcntl(stray.fd, F_GETFD) & FD_CLOEXEC) == 0);

  SECTION("the child writes to it") {
    const std::string script = "echo hi >&" + std::to_string(n);
    const char* argv[] = {"sh", "-c", script.c_str(), nullptr};
    SpawnSpec s = test::quiet("/bin/sh", argv);
    s.pass_fds = &write_end.fd;
    s.pass_fd_count = 1;
    auto c = test::spawn_ok(s);
    REQUIRE(wait_ok(c).code == 0);
    write_end.reset();  // the child's copy is gone too: end of file after "hi"
    REQUIRE(read_all(read_end.fd) == "hi\n");
  }
  SECTION("the child's descriptor table holds 0-2 and the passed one only") {
    const char* argv[] = {"ls", "/proc/self/fd", nullptr};
    SpawnSpec s = test::quiet("/bin/ls", argv);
    s.stdio[1] = StdioMode::Pipe;
    s.pass_fds = &write_end.fd;
    s.pass_fd_count = 1;
    auto c = test::spawn_ok(s);
    test::Fd out(c.take_pipe(1));
    std::istringstream listing(read_all(out.fd));
    REQUIRE(wait_ok(c).code == 0);
    std::set<int> fds;
    for (int fd; listing >> fd;) fds.insert(fd);
    INFO("child fds: " << Catch::Detail::stringify(std::vector<int>(fds.begin(), fds.end())));
    CHECK(fds.count(0) == 1);
    CHECK(fds.count(1) == 1);
    CHECK(fds.count(2) == 1);
    CHECK(fds.count(n) == 1);
    CHECK(fds.count(stray.fd) == 0);
    // ls's own descriptor for reading the directory is the one extra
    // (it may take the number the parent's read end has: 3).
    CHECK(fds.size() <= 5);
  }
  // Passing cleared close-on-exec in the child only: the parent's copy
  // keeps it.
  if (write_end.fd >= 0) CHECK((::fcntl(write_end.fd, F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("a pass_fds entry that is not an open descriptor above 2 is refused, naming it") {
  NothingLeft check;
  int fd = -1;
  SECTION("a closed descriptor") {
    fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd > 2);
    ::close(fd);
  }
  SECTION("stdout") { fd = 1; }
  SECTION("stdin") { fd = 0; }
  SECTION("a negative number") { fd = -1; }
  const char* argv[] = {"true", nullptr};
  SpawnSpec s = test::quiet("/bin/true", argv);
  s.pass_fds = &fd;
  s.pass_fd_count = 1;
  auto p = arch::spawn(s);
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message());
  CHECK(p.code() == Errc::InvalidArgument);
  CHECK(contains(p.error().message(), "pass_fds: " + std::to_string(fd) + " "));
}

// ---- limits -----------------------------------------------------------------

TEST_CASE("resource limits are set in the child before it runs") {
  NothingLeft check;
  SECTION("OpenFiles soft 64, hard 128") {
    const LimitSpec lim{LimitKind::OpenFiles, 64, 128};
    const char* argv[] = {"sh", "-c", "ulimit -n; ulimit -Hn", nullptr};
    SpawnSpec s = test::quiet("/bin/sh", argv);
    s.stdio[1] = StdioMode::Pipe;
    s.limits = &lim;
    s.limit_count = 1;
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd) == "64\n128\n");
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("two limits, CoreSize 0 and FileSize 4096 blocks of 512 bytes") {
    const LimitSpec lims[] = {{LimitKind::CoreSize, 0, 0}, {LimitKind::FileSize, 4096 * 512, 4096 * 512}};
    const char* argv[] = {"sh", "-c", "ulimit -c; ulimit -f", nullptr};
    SpawnSpec s = test::quiet("/bin/sh", argv);
    s.stdio[1] = StdioMode::Pipe;
    s.limits = lims;
    s.limit_count = 2;
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd) == "0\n4096\n");
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("the parent's own limit is unchanged") {
    rlimit before{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
    const LimitSpec lim{LimitKind::OpenFiles, 32, 32};
    SpawnSpec s = test::quiet("/bin/true");
    s.limits = &lim;
    s.limit_count = 1;
    auto p = test::spawn_ok(s);
    REQUIRE(wait_ok(p).code == 0);
    rlimit after{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &after) == 0);
    REQUIRE(after.rlim_cur == before.rlim_cur);
    REQUIRE(after.rlim_max == before.rlim_max);
  }
}

TEST_CASE("a limit whose soft value is above its hard value is refused before any child exists") {
  NothingLeft check;
  const LimitSpec lims[] = {{LimitKind::CoreSize, 0, 0}, {LimitKind::OpenFiles, 128, 64}};
  SpawnSpec s = test::quiet("/bin/true");
  s.limits = lims;
  s.limit_count = 2;
  auto p = arch::spawn(s);
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message());
  CHECK(p.code() == Errc::InvalidArgument);
  CHECK(contains(p.error().message(), "limit #1"));
  CHECK(contains(p.error().message(), "soft 128 above hard 64"));
}

// ---- the parent-death signal ------------------------------------------------

TEST_CASE("kill_with_parent: the child dies with the thread that spawned it, and only then") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  arch::Process p;
  std::string spawn_error;
  bool flag = false;
  SECTION("with the flag: SIGKILL when the thread exits") { flag = true; }
  SECTION("without it: the child outlives the thread") { flag = false; }
  s.kill_with_parent = flag;
  std::thread spawner([&] {
    auto r = arch::spawn(s);
    if (r) p = std::move(*r); else spawn_error = r.error().message();
  });
  spawner.join();
  INFO(spawn_error);
  REQUIRE(p.valid());
  if (flag) {
    const auto st = wait_ok(p, 10'000'000'000);
    REQUIRE(st.signal == SIGKILL);
  } else {
    REQUIRE(arch::wait(p, 300'000'000).code() == Errc::Timeout);
    arch::ProcessInfo info;
    REQUIRE(arch::process_info(p.pid(), info));
    REQUIRE_FALSE(info.ended);
    REQUIRE(info.ppid == test::self_pid());  // re-parented to a live thread of ours
    REQUIRE(arch::signal(p, SIGTERM).ok());
    REQUIRE(wait_ok(p).signal == SIGTERM);
  }
}

// ---- what the child starts with ---------------------------------------------

// Which way the child resets its signal dispositions (see
// arch::force_full_signal_reset): the kernel's CLONE_CLEAR_SIGHAND plus
// the ignored ones, or every signal one by one.
struct SignalResetPath {
  explicit SignalResetPath(bool full) { arch::force_full_signal_reset(full); }
  ~SignalResetPath() { arch::force_full_signal_reset(false); }
};

TEST_CASE("the child starts with no blocked signal and no ignored one, whatever the spawning thread had") {
  const bool full_reset = GENERATE(false, true);
  INFO("full signal reset: " << full_reset);
  SignalResetPath path(full_reset);
  NothingLeft check;
  // Dispositions are per process: restore SIGUSR1's after the test.
  struct sigaction old_usr1 {};
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGUSR1, &ign, &old_usr1) == 0);
  struct Restore {
    struct sigaction* old;
    ~Restore() { ::sigaction(SIGUSR1, old, nullptr); }
  } restore{&old_usr1};

  // grep is exec'd directly (no shell in between that could change the
  // state), and reports its own /proc status.
  const char* argv[] = {"grep", "-E", "^(SigBlk|SigIgn):", "/proc/self/status", nullptr};
  SpawnSpec s = test::quiet("/bin/grep", argv);
  s.stdio[1] = StdioMode::Pipe;
  arch::Process p;
  std::string spawn_error;
  bool parent_mask_kept = false;
  bool parent_ignore_kept = false;
  // The mask is per thread: block SIGTERM (and SIGINT) in a thread of its own.
  std::thread spawner([&] {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);
    auto r = arch::spawn(s);
    if (r) p = std::move(*r); else spawn_error = r.error().message();
    // spawn() restored this thread's mask and touched no disposition.
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, nullptr, &now);
    parent_mask_kept = sigismember(&now, SIGTERM) == 1 && sigismember(&now, SIGINT) == 1 &&
                       sigismember(&now, SIGUSR2) == 0;
    struct sigaction cur {};
    ::sigaction(SIGUSR1, nullptr, &cur);
    parent_ignore_kept = cur.sa_handler == SIG_IGN;
  });
  spawner.join();
  INFO(spawn_error);
  REQUIRE(p.valid());
  test::Fd out(p.take_pipe(1));
  const std::string status = read_all(out.fd);
  REQUIRE(wait_ok(p).code == 0);
  CHECK(parent_mask_kept);
  CHECK(parent_ignore_kept);
  INFO(status);
  REQUIRE(contains(status.c_str(), "SigBlk:\t0000000000000000\n"));
  REQUIRE(contains(status.c_str(), "SigIgn:\t0000000000000000\n"));
}

// The child runs in the parent's memory until its exec. A signal that
// reaches it in that window must never run one of the parent's handlers
// there (it would run on the child's stack, in the parent's data, while
// the parent is suspended). A helper process, leader of a group of its
// own, spawns children into that group while a thread of it signals the
// whole group with SIGUSR2 as fast as it can; its handler counts the runs
// whose getpid() is not the helper's. A child whose handlers were not
// reset would count there (its memory is the helper's).
int signal_window_helper(bool full_reset) {
  static std::atomic<int> host{0};
  static std::atomic<int> in_child{0};
  static std::atomic<int> in_host{0};
  host = static_cast<int>(::getpid());
  if (::setpgid(0, 0) != 0) return 10;
  struct sigaction on_usr2 {};
  on_usr2.sa_handler = [](int) {
    if (static_cast<int>(::syscall(SYS_getpid)) != host.load()) {
      in_child.fetch_add(1);
    } else {
      in_host.fetch_add(1);
    }
  };
  on_usr2.sa_flags = SA_RESTART;
  if (::sigaction(SIGUSR2, &on_usr2, nullptr) != 0) return 11;
  arch::force_full_signal_reset(full_reset);
  std::atomic<bool> stop{false};
  std::atomic<long> sent{0};
  std::thread signaller([&] {
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
    while (!stop.load()) {
      ::kill(0, SIGUSR2);
      sent.fetch_add(1);
    }
  });
  const char* argv[] = {"true", nullptr};
  int spawned = 0;
  int killed_by_usr2 = 0;
  for (int i = 0; i < 300; ++i) {
    SpawnSpec s = test::quiet("/bin/true", argv);
    s.group = arch::GroupMode::Inherit;
    auto p = arch::spawn(s);
    if (!p) continue;  // a child that died of SIGUSR2 before its exec reports a failed spawn
    ++spawned;
    auto st = arch::wait(p.value(), -1);
    if (st && st.value().signal == SIGUSR2) ++killed_by_usr2;
  }
  stop = true;
  signaller.join();
  std::printf("spawned %d, of which %d ended by SIGUSR2; signals sent %ld, handled by the helper %d, "
              "handled in a child %d\n",
              spawned, killed_by_usr2, sent.load(), in_host.load(), in_child.load());
  std::fflush(stdout);
  if (spawned == 0 || killed_by_usr2 == 0) return 12;  // the signals never reached the children
  return in_child.load() == 0 ? 0 : 13;
}

TEST_CASE("a signal that reaches the child before its exec never runs a handler of the parent") {
  const bool full_reset = GENERATE(false, true);
  INFO("full signal reset: " << full_reset);
  NothingLeft check;
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  test::Fd read_end(out[0]);
  const pid_t helper = ::fork();
  REQUIRE(helper >= 0);
  if (helper == 0) {
    ::dup2(out[1], 1);
    ::_exit(signal_window_helper(full_reset));
  }
  ::close(out[1]);
  const std::string report = read_all(read_end.fd, std::chrono::seconds(60));
  int status = 0;
  REQUIRE(::waitpid(helper, &status, 0) == helper);
  INFO(report);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

TEST_CASE("an envp given replaces the whole environment") {
  NothingLeft check;
  // The test's own environment has more than this, and a variable to tell.
  ::setenv("AIRSSYS_SPAWN_TEST_PARENT_ONLY", "1", 1);
  const char* argv[] = {"env", nullptr};
  SpawnSpec s = test::quiet("/usr/bin/env", argv);
  s.stdio[1] = StdioMode::Pipe;
  SECTION("two variables") {
    const char* envp[] = {"A=1", "B=two words", nullptr};
    s.envp = envp;
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd) == "A=1\nB=two words\n");
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("an empty environment") {
    const char* envp[] = {nullptr};
    s.envp = envp;
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(read_all(out.fd).empty());
    REQUIRE(wait_ok(p).code == 0);
  }
  SECTION("no envp: the parent's environment") {
    auto p = test::spawn_ok(s);
    test::Fd out(p.take_pipe(1));
    REQUIRE(contains(read_all(out.fd).c_str(), "AIRSSYS_SPAWN_TEST_PARENT_ONLY=1\n"));
    REQUIRE(wait_ok(p).code == 0);
  }
  ::unsetenv("AIRSSYS_SPAWN_TEST_PARENT_ONLY");
}

// ---- process groups ---------------------------------------------------------

TEST_CASE("GroupMode puts the child in the process group and session asked for") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  arch::ProcessInfo self{};
  REQUIRE(arch::process_info(test::self_pid(), self));
  arch::ProcessInfo info{};

  SECTION("Inherit: the parent's group and session") {
    s.group = GroupMode::Inherit;
    auto p = test::spawn_ok(s);
    REQUIRE_FALSE(p.leads_group());
    REQUIRE(p.pgid() == ::getpgrp());
    REQUIRE(arch::process_info(p.pid(), info));
    REQUIRE(info.pgid == self.pgid);
    REQUIRE(info.sid == self.sid);
    REQUIRE(arch::signal(p, SIGKILL).ok());
    REQUIRE(wait_ok(p).signal == SIGKILL);
  }
  SECTION("NewGroup: a group of its own in the parent's session") {
    s.group = GroupMode::NewGroup;
    auto p = test::spawn_ok(s);
    REQUIRE(p.leads_group());
    REQUIRE(p.pgid() == p.pid());
    REQUIRE(arch::process_info(p.pid(), info));
    REQUIRE(info.pgid == p.pid());
    REQUIRE(info.sid == self.sid);
    REQUIRE(arch::signal_group(p, SIGKILL).ok());
    REQUIRE(wait_ok(p).signal == SIGKILL);
  }
  SECTION("NewSession: leads a new session and group") {
    s.group = GroupMode::NewSession;
    auto p = test::spawn_ok(s);
    REQUIRE(p.leads_group());
    REQUIRE(p.pgid() == p.pid());
    REQUIRE(arch::process_info(p.pid(), info));
    REQUIRE(info.pgid == p.pid());
    REQUIRE(info.sid == p.pid());
    REQUIRE(arch::signal_group(p, SIGKILL).ok());
    REQUIRE(wait_ok(p).signal == SIGKILL);
  }
  SECTION("JoinGroup: the leader's group, also across a new session leader") {
    s.group = GroupMode::NewSession;
    auto leader = test::spawn_ok(s);
    s.group = GroupMode::JoinGroup;
    s.join = &leader;
    // A group of another session cannot be joined: setpgid fails (EPERM)
    // in the child, and spawn says so.
    auto refused = arch::spawn(s);
    REQUIRE_FALSE(refused.ok());
    INFO(refused.error().message());
    REQUIRE(contains(refused.error().message(), "cannot set the process group (pgid " +
                                                    std::to_string(leader.pgid()) + ")"));
    REQUIRE(test::children_of_self().size() == 1);  // only the leader

    s.group = GroupMode::NewGroup;
    auto leader2 = test::spawn_ok(s);
    s.group = GroupMode::JoinGroup;
    s.join = &leader2;
    auto member = test::spawn_ok(s);
    REQUIRE(member.pgid() == leader2.pid());
    REQUIRE(arch::process_info(member.pid(), info));
    REQUIRE(info.pgid == leader2.pid());
    REQUIRE(arch::signal_group(leader2, SIGKILL).ok());
    REQUIRE(wait_ok(member).signal == SIGKILL);
    REQUIRE(wait_ok(leader2).signal == SIGKILL);
    REQUIRE(arch::signal(leader, SIGKILL).ok());
    REQUIRE(wait_ok(leader).signal == SIGKILL);
  }
}

// ---- waiting ----------------------------------------------------------------

TEST_CASE("try_wait reports Timeout while the child runs, then its status, then Dead") {
  NothingLeft check;
  const char* argv[] = {"sh", "-c", "read x; exit 3", nullptr};
  SpawnSpec s = test::quiet("/bin/sh", argv);
  s.stdio[0] = StdioMode::Pipe;
  auto p = test::spawn_ok(s);
  test::Fd in(p.take_pipe(0));
  const int pid = p.pid();
  const unsigned long long start = test::start_time_of(pid);  // waits for its stdin: still there

  auto running = arch::try_wait(p);
  REQUIRE(running.code() == Errc::Timeout);
  REQUIRE(contains(running.error().message(), std::to_string(pid)));
  REQUIRE(p.valid());
  REQUIRE(test::same_process_exists(pid, start));

  in.reset();  // end of file: read fails, the shell exits 3
  pollfd pfd{p.wait_handle(), POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20'000) == 1);
  auto st = arch::try_wait(p);
  INFO(st.error().message());
  REQUIRE(st.ok());
  REQUIRE(st->code == 3);
  REQUIRE(st->signal == 0);
  REQUIRE(st->shell_status() == 3);
  REQUIRE_FALSE(p.valid());
  REQUIRE_FALSE(test::same_process_exists(pid, start));
  REQUIRE(arch::try_wait(p).code() == Errc::Dead);
}

// ---- failures that must leave nothing ---------------------------------------

TEST_CASE("spawn fails cleanly when the process has no file descriptor left") {
  NothingLeft check;
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  struct RestoreLimit {
    rlimit saved;
    ~RestoreLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
  } restore{saved};
  // The lowest free number; a limit at it leaves no descriptor at all.
  const int lowest = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  REQUIRE(lowest > 2);
  ::close(lowest);

  const char* argv[] = {"sleep", "30", nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  s.stdio[0] = s.stdio[1] = s.stdio[2] = StdioMode::Inherit;
  const char* expected = "";
  rlimit low = saved;
  SECTION("none left for the pidfd") {
    low.rlim_cur = static_cast<rlim_t>(lowest) + 1;
    expected = "no file descriptor left to spawn '/bin/sleep'";
  }
  SECTION("none left to hold the program") {
    low.rlim_cur = static_cast<rlim_t>(lowest);
    expected = "no file descriptor left to spawn '/bin/sleep'";
  }
  // From here on, the first one holds the program until the exec.
  SECTION("one left after the program's: not enough for a stdout pipe") {
    low.rlim_cur = static_cast<rlim_t>(lowest) + 2;
    s.stdio[1] = StdioMode::Pipe;
    expected = "stdout: cannot create a pipe";
  }
  SECTION("three left: the program's, /dev/null for stdin and stdout, none for the pidfd") {
    low.rlim_cur = static_cast<rlim_t>(lowest) + 3;
    s.stdio[0] = s.stdio[1] = StdioMode::Null;
    expected = "no file descriptor left to spawn '/bin/sleep'";
  }
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  auto p = arch::spawn(s);
  ::setrlimit(RLIMIT_NOFILE, &saved);  // before anything else needs a descriptor
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message());
  CHECK(p.error().os_error() == EMFILE);
  CHECK(contains(p.error().message(), expected));
  CHECK(test::children_of_self().empty());

  // With the limit back, the same spec spawns.
  auto again = test::spawn_ok(s);
  REQUIRE(arch::signal(again, SIGKILL).ok());
  REQUIRE(wait_ok(again).signal == SIGKILL);
}

TEST_CASE("an argument longer than the kernel takes is refused as too long, leaving no child") {
  NothingLeft check;
  // One string above MAX_ARG_STRLEN (32 pages): execve fails with E2BIG in
  // the child, which exits before running anything.
  const std::string big(200 * 1024, 'x');
  const char* argv[] = {"true", big.c_str(), nullptr};
  SpawnSpec s = test::quiet("/bin/true", argv);
  auto p = arch::spawn(s);
  REQUIRE_FALSE(p.ok());
  INFO(p.error().message());
  CHECK(p.code() == Errc::InvalidArgument);
  CHECK(p.error().os_error() == E2BIG);
  CHECK(contains(p.error().message(), "argument list for '/bin/true' is too long"));
  CHECK(test::children_of_self().empty());
  SECTION("and the same large argument in the environment") {
    const std::string var = "BIG=" + big;
    const char* envp[] = {var.c_str(), nullptr};
    SpawnSpec e = test::quiet("/bin/true");
    e.envp = envp;
    auto q = arch::spawn(e);
    REQUIRE_FALSE(q.ok());
    CHECK(q.code() == Errc::InvalidArgument);
    CHECK(q.error().os_error() == E2BIG);
    CHECK(test::children_of_self().empty());
  }
}

// ---- groups whose leader is gone --------------------------------------------

TEST_CASE("signal_remaining_group refuses pgid 0, 1 and -1 and reports an empty group") {
  NothingLeft check;
  SECTION("refused group numbers") {
    for (int pgid : {0, 1, -1}) {
      INFO("pgid " << pgid);
      auto r = arch::signal_remaining_group(pgid, 0);
      REQUIRE(r.code() == Errc::InvalidArgument);
      REQUIRE(contains(r.error().message(), "group " + std::to_string(pgid) + " refused"));
    }
  }
  SECTION("a signal out of range") {
    REQUIRE(arch::signal_remaining_group(12345, -1).code() == Errc::InvalidArgument);
    REQUIRE(arch::signal_remaining_group(12345, arch::max_signal() + 1).code() == Errc::InvalidArgument);
  }
  SECTION("an empty group: false, nothing signalled") {
    SpawnSpec s = test::quiet("/bin/true");
    auto p = test::spawn_ok(s);
    const int pgid = p.pgid();
    REQUIRE(wait_ok(p).code == 0);
    auto r = arch::signal_remaining_group(pgid, SIGKILL);
    INFO(r.error().message());
    REQUIRE(r.ok());
    REQUIRE_FALSE(*r);
  }
  SECTION("members outlive their reaped leader: true until they are gone") {
    const char* argv[] = {"sleep", "30", nullptr};
    auto leader = test::spawn_ok(test::quiet("/bin/sleep", argv));
    SpawnSpec m = test::quiet("/bin/sleep", argv);
    m.group = GroupMode::JoinGroup;
    m.join = &leader;
    auto member = test::spawn_ok(m);
    const int pgid = leader.pgid();
    REQUIRE(arch::signal(leader, SIGKILL).ok());
    REQUIRE(wait_ok(leader).signal == SIGKILL);  // reaped: only the member holds the group
    auto r = arch::signal_remaining_group(pgid, SIGTERM);
    INFO(r.error().message());
    REQUIRE(r.ok());
    REQUIRE(*r);
    REQUIRE(wait_ok(member).signal == SIGTERM);
    auto after = arch::signal_remaining_group(pgid, 0);
    REQUIRE(after.ok());
    REQUIRE_FALSE(*after);
  }
}

TEST_CASE("reap_group_members reaps the ended members of a group and keeps its leader unreaped") {
  NothingLeft check;
  const char* sleep_argv[] = {"sleep", "30", nullptr};
  auto leader = test::spawn_ok(test::quiet("/bin/sleep", sleep_argv));
  const int pgid = leader.pgid();
  std::vector<int> members;
  std::vector<unsigned long long> member_starts;  // read while each is our unreaped child
  // Members without a handle (released): only reap_group_members, or the
  // NothingLeft sweep if the test fails, can reap them.
  auto start_members = [&](const char* program, const char* const* argv) {
    for (int i = 0; i < 3; ++i) {
      SpawnSpec m = test::quiet(program, argv);
      m.group = GroupMode::JoinGroup;
      m.join = &leader;
      auto h = test::spawn_ok(m);
      members.push_back(h.pid());
      member_starts.push_back(test::start_time_of(h.pid()));
      h.release();
    }
  };

  SECTION("members that exited while the leader runs") {
    const char* argv[] = {"true", nullptr};
    start_members("/bin/true", argv);
    REQUIRE(wait_for_zombies(members));
    std::size_t killed = 0;
    REQUIRE(arch::reap_group_members(pgid, leader.pid(), SIGKILL, &killed) == 3);
    REQUIRE(killed == 0);
    REQUIRE(arch::try_wait(leader).code() == Errc::Timeout);  // still running, still held
    REQUIRE(arch::signal(leader, SIGKILL).ok());
  }
  SECTION("the whole group killed: the members are reaped, the leader stays a zombie") {
    start_members("/bin/sleep", sleep_argv);
    REQUIRE(arch::signal_group(leader, SIGKILL).ok());
    REQUIRE(wait_for_zombies(members));
    REQUIRE(wait_for_zombies({leader.pid()}));
    std::size_t killed = 0;
    REQUIRE(arch::reap_group_members(pgid, leader.pid(), SIGKILL, &killed) == 3);
    REQUIRE(killed == 3);
    arch::ProcessInfo i{};
    REQUIRE(arch::process_info(leader.pid(), i));
    REQUIRE(i.ended);
    REQUIRE(i.ppid == test::self_pid());
    REQUIRE(arch::reap_group_members(pgid, leader.pid(), SIGKILL, nullptr) == 0);  // nothing more
  }
  for (std::size_t i = 0; i < members.size(); ++i)
    REQUIRE_FALSE(test::same_process_exists(members[i], member_starts[i]));
  REQUIRE(wait_ok(leader).signal == SIGKILL);
  // Never for pgid 0 or 1.
  REQUIRE(arch::reap_group_members(0, -1, SIGKILL, nullptr) == 0);
  REQUIRE(arch::reap_group_members(1, -1, SIGKILL, nullptr) == 0);
}

// ---- /proc ------------------------------------------------------------------

TEST_CASE("process_info describes a running process, a zombie, and no process") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  s.group = GroupMode::NewSession;
  auto p = test::spawn_ok(s);
  const int pid = p.pid();
  arch::ProcessInfo info{};
  REQUIRE(arch::process_info(pid, info));
  CHECK(info.ppid == test::self_pid());
  CHECK(info.pgid == pid);
  CHECK(info.sid == pid);
  CHECK_FALSE(info.ended);

  REQUIRE(arch::signal(p, SIGKILL).ok());
  // Ended but not reaped: a zombie, still ours.
  pollfd pfd{p.wait_handle(), POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20'000) == 1);
  REQUIRE(arch::process_info(pid, info));
  CHECK(info.ended);
  CHECK(info.ppid == test::self_pid());

  REQUIRE(wait_ok(p).signal == SIGKILL);
  REQUIRE_FALSE(arch::process_info(pid, info));
  REQUIRE_FALSE(arch::process_info(0, info));
  REQUIRE_FALSE(arch::process_info(-3, info));

  arch::ProcessInfo self{};
  REQUIRE(arch::process_info(test::self_pid(), self));
  CHECK(self.ppid == ::getppid());
  CHECK(self.pgid == ::getpgrp());
  CHECK(self.sid == ::getsid(0));
  CHECK_FALSE(self.ended);
}

TEST_CASE("environment_contains tells an entry present from absent, also for an empty environment and a zombie") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  const char* with[] = {"AIRSSYS_ENV_TEST=1", "OTHER=2", nullptr};
  const char* empty[] = {nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  s.envp = with;
  auto marked = test::spawn_ok(s);
  s.envp = empty;
  auto bare = test::spawn_ok(s);
  // Past its exec: the environment is the new program's.
  REQUIRE(test::wait_for([&] { return test::environ_contains(marked.pid(), "OTHER=2"); }));
  CHECK(arch::environment_contains(marked.pid(), "AIRSSYS_ENV_TEST=1") == arch::Presence::Present);
  CHECK(arch::environment_contains(marked.pid(), "OTHER=2") == arch::Presence::Present);
  // A prefix or a longer value is not the entry.
  CHECK(arch::environment_contains(marked.pid(), "AIRSSYS_ENV_TEST=") == arch::Presence::Absent);
  CHECK(arch::environment_contains(marked.pid(), "AIRSSYS_ENV_TEST=12") == arch::Presence::Absent);
  CHECK(arch::environment_contains(marked.pid(), "OTHER") == arch::Presence::Absent);
  // An empty environment reads as nothing, like one in the middle of an
  // exec (Unknown: the new name is set before the new environment); the
  // process's memory tells them apart once the exec is done.
  CHECK(test::wait_for([&] {
    return arch::environment_contains(bare.pid(), "AIRSSYS_ENV_TEST=1") == arch::Presence::Absent;
  }));
  REQUIRE(test::comm_of(bare.pid()) == "sleep");
  CHECK(arch::environment_contains(bare.pid(), "AIRSSYS_ENV_TEST=1") == arch::Presence::Absent);

  REQUIRE(arch::signal(marked, SIGKILL).ok());
  pollfd pfd{marked.wait_handle(), POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20'000) == 1);
  CHECK(arch::environment_contains(marked.pid(), "AIRSSYS_ENV_TEST=1") == arch::Presence::Absent);  // a zombie
  const int gone = marked.pid();
  REQUIRE(wait_ok(marked).signal == SIGKILL);
  CHECK(arch::environment_contains(gone, "AIRSSYS_ENV_TEST=1") == arch::Presence::Absent);
  REQUIRE(arch::signal(bare, SIGKILL).ok());
  REQUIRE(wait_ok(bare).signal == SIGKILL);
}

TEST_CASE("environment_entries copies the entries with a prefix; kill_if_carries signals only a carrier") {
  NothingLeft check;
  const char* argv[] = {"sleep", "30", nullptr};
  const std::string long_entry = "AIRSSYS_ENV_TEST=" + std::string(40, 'x');
  const char* env[] = {"AIRSSYS_ENV_TEST=a", "OTHER=AIRSSYS_ENV_TEST=no", long_entry.c_str(), "AIRSSYS_ENV_TEST=b",
                       "AIRSSYS_ENV_TEST=c", nullptr};
  SpawnSpec s = test::quiet("/bin/sleep", argv);
  s.envp = env;
  auto p = test::spawn_ok(s);
  REQUIRE(test::wait_for([&] { return test::environ_contains(p.pid(), "AIRSSYS_ENV_TEST=c"); }));
  char rows[4][32];
  // In order; one that does not fit its row is skipped; at most `max`.
  REQUIRE(arch::environment_entries(p.pid(), "AIRSSYS_ENV_TEST=", &rows[0][0], sizeof rows[0], 4) == 3);
  CHECK(std::string(rows[0]) == "AIRSSYS_ENV_TEST=a");
  CHECK(std::string(rows[1]) == "AIRSSYS_ENV_TEST=b");
  CHECK(std::string(rows[2]) == "AIRSSYS_ENV_TEST=c");
  REQUIRE(arch::environment_entries(p.pid(), "AIRSSYS_ENV_TEST=", &rows[0][0], sizeof rows[0], 2) == 2);
  CHECK(std::string(rows[1]) == "AIRSSYS_ENV_TEST=b");
  CHECK(arch::environment_entries(p.pid(), "NOPE=", &rows[0][0], sizeof rows[0], 4) == 0);
  CHECK(arch::environment_entries(-1, "AIRSSYS_ENV_TEST=", &rows[0][0], sizeof rows[0], 4) == 0);

  arch::ProcessInfo info;
  REQUIRE(arch::process_info(p.pid(), info));
  CHECK(info.start_ticks != 0);
  CHECK(arch::process_exists(p.pid()));
  // Not a carrier of the entry: left alone.
  CHECK_FALSE(arch::kill_if_carries(p.pid(), "AIRSSYS_ENV_TEST=z"));
  CHECK_FALSE(arch::kill_if_carries(p.pid(), "AIRSSYS_ENV_TEST="));
  CHECK(arch::process_info(p.pid(), info));
  CHECK_FALSE(info.ended);
  CHECK(arch::kill_if_carries(p.pid(), "AIRSSYS_ENV_TEST=b"));
  const int gone = p.pid();
  REQUIRE(wait_ok(p).signal == SIGKILL);
  CHECK_FALSE(arch::process_exists(gone));
  CHECK_FALSE(arch::kill_if_carries(gone, "AIRSSYS_ENV_TEST=b"));
}

TEST_CASE("running_in_group counts the group's running members, and none once the group is stopped") {
  NothingLeft check;
  // The busy members are the shell's children: when the group dies they
  // come back here, to be reaped (PID 1 would leave them zombies).
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
  // Two busy members that never sleep, and one that sleeps.
  const char* argv[] = {"sh", "-c", "while :; do :; done & while :; do :; done & exec sleep 30", nullptr};
  SpawnSpec s = test::quiet("/bin/sh", argv);
  s.group = GroupMode::NewGroup;
  auto p = test::spawn_ok(s);
  const int pgid = p.pid();
  // Once the shell has become the sleep and sleeps, only the two loops can
  // run.
  REQUIRE(test::wait_for([&] {
    arch::ProcessInfo leader{};
    return test::comm_of(pgid) == "sleep" && arch::process_info(pgid, leader) && !leader.running;
  }));
  CHECK(test::wait_for([&] { return arch::running_in_group(pgid) >= 1; }));
  CHECK(arch::running_in_group(pgid) <= 2);
  // Stopped, nobody runs; the group and its members are still there.
  REQUIRE(arch::signal_group(p, SIGSTOP).ok());
  CHECK(test::wait_for([&] { return arch::running_in_group(pgid) == 0; }));
  arch::ProcessInfo info{};
  REQUIRE(arch::process_info(pgid, info));
  CHECK_FALSE(info.ended);
  CHECK_FALSE(info.running);
  REQUIRE(arch::signal_group(p, SIGCONT).ok());
  CHECK(test::wait_for([&] { return arch::running_in_group(pgid) >= 1; }));
  // Groups that are not ours to scan.
  CHECK(arch::running_in_group(0) == 0);
  CHECK(arch::running_in_group(1) == 0);
  CHECK(arch::running_in_group(-pgid) == 0);
  REQUIRE(arch::signal_group(p, SIGKILL).ok());
  REQUIRE(wait_ok(p).signal == SIGKILL);
  std::size_t members = 0, killed = 0;
  CHECK(test::wait_for([&] {
    members += arch::reap_group_members(pgid, -1, SIGKILL, &killed);
    return members == 2;
  }));
  CHECK(killed == 2);
  CHECK(arch::running_in_group(pgid) == 0);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

TEST_CASE("running_in_group of a held group finds its running grandchildren and never counts the leader") {
  NothingLeft check;
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
  // The leader (the shell) and its child both spin: always runnable.
  const char* argv[] = {"sh", "-c", "while :; do :; done & while :; do :; done", nullptr};
  SpawnSpec s = test::quiet("/bin/sh", argv);
  s.group = GroupMode::NewGroup;
  auto p = test::spawn_ok(s);
  const int pgid = p.pid();
  auto g = arch::ProcessGroup::of(p);
  REQUIRE(g.ok());
  CHECK(g.value().leader() == p.pid());
  // The scan of the host counts both; the held group's walk down our
  // descendants finds the grandchild and leaves the leader out (a group
  // leader cannot setsid()).
  REQUIRE(test::wait_for([&] { return arch::running_in_group(pgid) == 2; }));
  CHECK(test::wait_for([&] { return arch::running_in_group(g.value()) == 1; }));
  CHECK(arch::running_in_group(g.value()) <= 1);
  REQUIRE(arch::signal_group(p, SIGSTOP).ok());
  CHECK(test::wait_for([&] { return arch::running_in_group(g.value()) == 0; }));
  REQUIRE(arch::signal_group(p, SIGKILL).ok());
  REQUIRE(wait_ok(p).signal == SIGKILL);
  std::size_t members = 0;
  CHECK(test::wait_for([&] {
    members += arch::reap_group_members(pgid, -1, SIGKILL, nullptr);
    return members == 1;
  }));
  CHECK(arch::running_in_group(g.value()) == 0);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

TEST_CASE("has_children sees a child while it runs and while it is a zombie, and none once it is reaped") {
  NothingLeft check;
  REQUIRE(test::child_pids().empty());
  CHECK_FALSE(arch::has_children());
  const char* argv[] = {"sleep", "30", nullptr};
  auto p = test::spawn_ok(test::quiet("/bin/sleep", argv));
  CHECK(arch::has_children());
  REQUIRE(arch::signal(p, SIGKILL).ok());
  pollfd pfd{p.wait_handle(), POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20'000) == 1);
  CHECK(arch::has_children());  // a zombie, still to be reaped
  REQUIRE(wait_ok(p).signal == SIGKILL);
  CHECK_FALSE(arch::has_children());
}

// ---- FIFOs as stdio files (issue 7, P10) -----------------------------------

namespace {

// Runs `spawn` on a thread of its own. A spawn that is still blocked when
// test::wait_for gives up is released by opening the FIFO's other end, so
// that a broken spawn fails the test instead of hanging it; `stalled`
// records that it had to be.
struct SpawnOnThread {
  std::atomic<bool> done{false};
  bool stalled = false;
  Result<arch::Process> result = Error{};
  std::thread thread;
  SpawnOnThread(const SpawnSpec& spec) : thread([this, spec] {
    result = arch::spawn(spec);
    done.store(true);
  }) {}
  void finish(const std::string& fifo, int release_flags) {
    if (!test::wait_for([&] { return done.load(); })) {
      stalled = true;
      test::Fd other(::open(fifo.c_str(), release_flags | O_NONBLOCK | O_CLOEXEC));
      thread.join();
      return;
    }
    thread.join();
  }
};

}  // namespace

TEST_CASE("a FIFO with no reader as stdout is an error naming it, not a spawn that waits for a reader") {
  NothingLeft guard;
  TempDir dir;
  const std::string fifo = dir / "out.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  SpawnSpec s = test::quiet("/bin/true");
  s.stdio[1] = StdioSpec(StdioMode::File, fifo.c_str());
  SpawnOnThread spawn(s);
  spawn.finish(fifo, O_RDONLY);
  CHECK_FALSE(spawn.stalled);
  if (spawn.result.ok()) (void)arch::wait(spawn.result.value(), -1);
  REQUIRE_FALSE(spawn.result.ok());
  INFO(spawn.result.error().message());
  CHECK(spawn.result.code() == Errc::InvalidArgument);
  CHECK(contains(spawn.result.error().message(), "'" + fifo + "'"));
  CHECK(contains(spawn.result.error().message(), "no reader"));
}

TEST_CASE("a FIFO as stdin does not wait for a writer: the child reads what a writer sent, or end of file") {
  NothingLeft guard;
  TempDir dir;
  const std::string fifo = dir / "in.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const char* argv[] = {"sh", "-c", "cat; echo end", nullptr};
  SpawnSpec s = test::quiet("/bin/sh", argv);
  s.stdio[0] = StdioSpec(StdioMode::File, fifo.c_str());
  s.stdio[1] = StdioMode::Pipe;
  SECTION("no writer: end of file at once") {
    SpawnOnThread spawn(s);
    spawn.finish(fifo, O_WRONLY);
    CHECK_FALSE(spawn.stalled);
    INFO(spawn.result.error().message());
    REQUIRE(spawn.result.ok());
    arch::Process p = std::move(spawn.result.value());
    test::Fd out(p.take_pipe(1));
    CHECK(read_all(out.fd) == "end\n");
    CHECK(wait_ok(p).code == 0);
  }
  SECTION("a writer holds it open: the child reads what it writes, blocking as usual") {
    test::Fd writer_keep;
    // A reader makes the writer's non-blocking open possible; it goes
    // away once the writer exists.
    {
      test::Fd reader(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
      REQUIRE(reader.fd >= 0);
      writer_keep.fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      REQUIRE(writer_keep.fd >= 0);
      auto p = test::spawn_ok(s);
      REQUIRE(::write(writer_keep.fd, "hello\n", 6) == 6);
      writer_keep.reset();
      test::Fd out(p.take_pipe(1));
      CHECK(read_all(out.fd) == "hello\nend\n");
      CHECK(wait_ok(p).code == 0);
    }
  }
}

// ---- which file runs (issue 7, P11 and P14) ---------------------------------

namespace {

void write_script(const std::string& path, const std::string& body) {
  write_file(path, "#!/bin/sh\n" + body + "\n");
  REQUIRE(::chmod(path.c_str(), 0755) == 0);
}

// Changes the current directory for a scope.
struct ScopedCwd {
  std::filesystem::path old = std::filesystem::current_path();
  explicit ScopedCwd(const std::filesystem::path& p) { std::filesystem::current_path(p); }
  ScopedCwd(const ScopedCwd&) = delete;
  ScopedCwd& operator=(const ScopedCwd&) = delete;
  ~ScopedCwd() { std::filesystem::current_path(old); }
};

std::string output_of(const SpawnSpec& spec, int* code = nullptr) {
  SpawnSpec s = spec;
  s.stdio[1] = StdioMode::Pipe;
  auto p = test::spawn_ok(s);
  test::Fd out(p.take_pipe(1));
  std::string text = read_all(out.fd);
  const auto st = wait_ok(p);
  if (code != nullptr) *code = st.code;
  return text;
}

}  // namespace

TEST_CASE("a relative program is resolved as chdir(working_dir) and then execvp would") {
  NothingLeft guard;
  TempDir work;
  TempDir elsewhere;  // the runtime's own directory, with a decoy
  std::filesystem::create_directories(work.path / "sub");
  write_script(work / "tool", "echo tool-in-working-dir");
  write_script(work / "sub/only", "echo only-in-working-dir");
  write_script(elsewhere / "tool", "echo decoy-in-runtime-cwd");
  ScopedCwd cwd(elsewhere.path);
  const std::string wd = work.path.string();
  SECTION("./tool is working_dir's tool, not the runtime's") {
    SpawnSpec s = test::quiet("./tool");
    s.working_dir = wd.c_str();
    CHECK(output_of(s) == "tool-in-working-dir\n");
  }
  SECTION("sub/only exists only under working_dir") {
    SpawnSpec s = test::quiet("sub/only");
    s.working_dir = wd.c_str();
    CHECK(output_of(s) == "only-in-working-dir\n");
  }
  SECTION("a relative PATH entry is relative to working_dir") {
    test::ScopedEnv path("PATH", "sub:/usr/bin:/bin");
    SpawnSpec s = test::quiet("only");
    s.working_dir = wd.c_str();
    CHECK(output_of(s) == "only-in-working-dir\n");
  }
  SECTION("without working_dir, ./tool is the runtime's") {
    CHECK(output_of(test::quiet("./tool")) == "decoy-in-runtime-cwd\n");
  }
}

TEST_CASE("open_program resolves every symlink and '..', and spawn runs exactly the file it opened") {
  NothingLeft guard;
  TempDir dir;
  const std::string link = dir / "prog";
  std::filesystem::create_symlink("/usr/bin/true", link);
  char path[4096];
  arch::FileIdentity id;
  auto fd = arch::open_program(link.c_str(), nullptr, path, sizeof path, &id);
  INFO(fd.error().message());
  REQUIRE(fd.ok());
  test::Fd held(fd.value());
  CHECK(std::string(path) == "/usr/bin/true");
  arch::FileIdentity direct;
  REQUIRE(arch::file_identity("/usr/bin/true", direct));
  CHECK(id == direct);
  // The path now names another program; the descriptor still holds true.
  std::filesystem::remove(link);
  std::filesystem::create_symlink("/usr/bin/false", link);
  SpawnSpec s = test::quiet(link.c_str());
  s.program_fd = held.fd;
  auto p = test::spawn_ok(s);
  CHECK(wait_ok(p).code == 0);
  SECTION("a shell script held the same way is refused once its path names another file") {
    const std::string script = dir / "script.sh";
    write_script(script, "echo \"script ran with $# arguments: $1\"");
    char found[4096];
    auto sfd = arch::open_program(script.c_str(), nullptr, path, sizeof path, nullptr, found, sizeof found);
    INFO(sfd.error().message());
    REQUIRE(sfd.ok());
    CHECK(std::string(found) == script);
    test::Fd script_held(sfd.value());
    const char* argv[] = {"script.sh", "one", nullptr};
    SpawnSpec ss = test::quiet(script.c_str(), argv);
    ss.program_fd = script_held.fd;
    ss.exec_path = found;
    CHECK(output_of(ss) == "script ran with 1 arguments: one\n");
    std::filesystem::remove(script);  // a new file at the same path
    write_script(script, "echo replaced");
    auto refused = arch::spawn(ss);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.code() == Errc::InvalidArgument);
    CHECK_THAT(refused.error().message(),
               Catch::Matchers::Contains("script '" + script + "' was replaced between its check and its exec"));
  }
}

namespace {

// show's output as one line: "$0|dirname|fds below 10 " (a shell keeps
// the script it reads at 10 or above).
std::string shown(const SpawnSpec& spec) {
  std::istringstream in(output_of(spec));
  std::string line, first;
  std::getline(in, first);
  while (std::getline(in, line))
    if (line.size() == 1) first += line + " ";
  return first + "\n";
}

}  // namespace

TEST_CASE("a #! script runs by the path it was found by: $0 as execvp gives it, and no descriptor of ours") {
  NothingLeft guard;
  TempDir work;
  std::filesystem::create_directories(work.path / "bin");
  // $0, its directory, and the script's own descriptors below 10 (a shell
  // keeps the script it reads at 10 or above).
  write_script(work / "bin/show", "echo \"$0|$(dirname \"$0\")|\"; ls /proc/$$/fd");
  std::filesystem::create_symlink("show", work.path / "bin/alias");
  const std::string wd = work.path.string();
  const std::string abs = (work.path / "bin/show").string();
  SECTION("a relative path, under working_dir") {
    SpawnSpec s = test::quiet("./bin/show");
    s.working_dir = wd.c_str();
    CHECK(shown(s) == "./bin/show|./bin|0 1 2 \n");
  }
  SECTION("an absolute path") {
    CHECK(shown(test::quiet(abs.c_str())) == abs + "|" + wd + "/bin|0 1 2 \n");
  }
  SECTION("a name found in PATH") {
    const std::string path = wd + "/bin:/usr/bin:/bin";
    test::ScopedEnv env("PATH", path.c_str());
    CHECK(shown(test::quiet("show")) == abs + "|" + wd + "/bin|0 1 2 \n");
  }
  SECTION("a symlink keeps its own name (multi-call scripts switch on basename \"$0\")") {
    test::ScopedEnv env("PATH", (wd + "/bin:/usr/bin:/bin").c_str());
    CHECK(shown(test::quiet("alias")) == wd + "/bin/alias|" + wd + "/bin|0 1 2 \n");
  }
  SECTION("through open_program's descriptor and path, as the executor spawns") {
    char resolved[4096], found[4096];
    auto fd = arch::open_program("./bin/show", wd.c_str(), resolved, sizeof resolved, nullptr, found, sizeof found);
    INFO(fd.error().message());
    REQUIRE(fd.ok());
    test::Fd held(fd.value());
    CHECK(std::string(resolved) == abs);
    CHECK(std::string(found) == "./bin/show");
    SpawnSpec s = test::quiet(resolved);
    s.program_fd = held.fd;
    s.exec_path = found;
    s.working_dir = wd.c_str();
    CHECK(shown(s) == "./bin/show|./bin|0 1 2 \n");
  }
}

TEST_CASE("open_program's spellings of one file all resolve to its one path") {
  TempDir dir;
  std::filesystem::create_symlink("/usr/bin", dir.path / "bin");
  std::filesystem::create_directories(dir.path / "d");
  const std::string via_link = (dir.path / "bin/rm").string();
  const std::string dotdot = (dir.path / "d/../bin/rm").string();
  for (const char* spelling : {"/usr/bin/rm", "/bin/rm", "//usr//bin//rm", "/usr/bin/./rm", "/usr/lib/../bin/rm",
                               via_link.c_str(), dotdot.c_str()}) {
    INFO("spelling " << spelling);
    char path[4096];
    auto fd = arch::open_program(spelling, nullptr, path, sizeof path);
    INFO(fd.error().message());
    REQUIRE(fd.ok());
    arch::close_handle(fd.value());
    CHECK(std::string(path) == "/usr/bin/rm");
  }
  char path[4096];
  auto slash = arch::open_program("/usr/bin/rm/", nullptr, path, sizeof path);
  CHECK_FALSE(slash.ok());
  auto rel = arch::open_program("../bin/rm", "/usr/lib", path, sizeof path);
  INFO(rel.error().message());
  REQUIRE(rel.ok());
  arch::close_handle(rel.value());
  CHECK(std::string(path) == "/usr/bin/rm");
}
