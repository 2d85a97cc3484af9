// airssys-tree-helper <in_group> <escaped> [lifetime_s]
//
// Builds the process tree the teardown benchmarks kill (see
// process_tree.hpp). This process is the leader. It forks <in_group>
// children, which stay in its process group, and <escaped> grandchildren,
// each through an intermediate child that exits at once, so the grandchild
// is orphaned; the grandchild also leaves the group and session with
// setsid(). When all of them exist — the escaped ones already in their own
// sessions and already orphaned — it writes one line to stdout,
//   leader <pid> group <pid>... escaped <pid>...
// and sleeps until killed. Every process of the tree holds no descriptor of
// the parent's, so the reader's pipe sees EOF as soon as the leader dies.
//
// The orphans go to the nearest child subreaper, which should be whoever
// spawned the leader; otherwise PID 1 gets them.
//
// Exit status 2: bad arguments; 1: the tree could not be built (whatever
// was created is killed first).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// Every process of the tree dies by itself after this long, so that a
// benchmark that crashes before its teardown does not leave 100 sleepers
// behind for good.
constexpr unsigned kDefaultLifetimeSeconds = 600;

bool parse_count(const char* text, long max, long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtol(text, &end, 10);
  return errno == 0 && end != text && *end == '\0' && out >= 0 && out <= max;
}

[[noreturn]] void sleep_until_killed(unsigned lifetime) {
  // Drop the leader's stdout and the report pipe: a sleeper holding them
  // would keep the reader's pipe (or the report) open after the leader died.
  ::close_range(0, ~0U, 0);
  ::alarm(lifetime);
  for (;;) ::pause();
}

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long in_group = 0, escaped = 0, lifetime = kDefaultLifetimeSeconds;
  if (argc < 3 || argc > 4 || !parse_count(argv[1], 100000, in_group) ||
      !parse_count(argv[2], 100000, escaped) || (argc == 4 && !parse_count(argv[3], 86400, lifetime)) ||
      lifetime == 0) {
    std::fprintf(stderr, "usage: airssys-tree-helper <in_group> <escaped> [lifetime_s]\n");
    return 2;
  }
  const auto life = static_cast<unsigned>(lifetime);

  // The lifetime relies on SIGALRM's default action; the spawner may have
  // left it ignored or blocked, and both are inherited.
  ::signal(SIGALRM, SIG_DFL);
  sigset_t alarm_set;
  ::sigemptyset(&alarm_set);
  ::sigaddset(&alarm_set, SIGALRM);
  ::sigprocmask(SIG_UNBLOCK, &alarm_set, nullptr);

  // Only the escaped grandchildren know their pid after setsid(); they
  // report it here, which also tells the leader the setsid() is done.
  int report[2];
  if (::pipe(report) != 0) return 1;

  std::vector<pid_t> group;
  bool failed = false;
  for (long i = 0; i < in_group; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) sleep_until_killed(life);
    if (pid < 0) {
      failed = true;
      break;
    }
    group.push_back(pid);
  }

  long expected = 0;
  for (long i = 0; i < escaped && !failed; ++i) {
    const pid_t middle = ::fork();
    if (middle == 0) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        if (::setsid() < 0) ::_exit(1);
        const pid_t self = ::getpid();
        // A pid_t is far below PIPE_BUF, so the write is atomic.
        if (::write(report[1], &self, sizeof self) != sizeof self) ::_exit(1);
        sleep_until_killed(life);
      }
      ::_exit(pid < 0 ? 1 : 0);
    }
    if (middle < 0) {
      failed = true;
      break;
    }
    // Reaping the intermediate both avoids a zombie and guarantees the
    // orphan was re-parented: that happens before its parent is waitable.
    int status = 0;
    while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
      ++expected;
    else
      failed = true;
  }
  ::close(report[1]);

  std::vector<pid_t> escapees;
  while (static_cast<long>(escapees.size()) < expected) {
    pid_t pid = 0;
    const ssize_t n = ::read(report[0], &pid, sizeof pid);
    if (n < 0 && errno == EINTR) continue;
    if (n != sizeof pid) break;  // EOF: a grandchild failed its setsid()
    escapees.push_back(pid);
  }
  ::close(report[0]);

  // On failure nothing may outlive us: the group children are ours to reap,
  // the escapees are the subreaper's once killed.
  auto kill_tree = [&] {
    for (const pid_t pid : escapees) ::kill(pid, SIGKILL);
    for (const pid_t pid : group) ::kill(pid, SIGKILL);
    for (const pid_t pid : group) ::waitpid(pid, nullptr, 0);
  };
  if (failed || static_cast<long>(escapees.size()) != escaped) {
    kill_tree();
    std::fprintf(stderr, "airssys-tree-helper: could not build the tree\n");
    return 1;
  }

  std::string line = "leader " + std::to_string(::getpid()) + " group";
  for (const pid_t pid : group) line += " " + std::to_string(pid);
  line += " escaped";
  for (const pid_t pid : escapees) line += " " + std::to_string(pid);
  line += "\n";
  if (!write_all(STDOUT_FILENO, line)) {
    kill_tree();
    return 1;
  }

  ::alarm(life);
  for (;;) ::pause();
}
