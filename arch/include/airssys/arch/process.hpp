#pragma once
// Spawning and holding OS processes: the platform layer under osl.
//
// A process is held by a Process handle from spawn to reap. On Linux the
// handle owns a pidfd, so waits and signals go to exactly the process this
// runtime spawned, never to a recycled pid. A Process that is destroyed
// while its process still runs kills it (SIGKILL) and reaps it: a handle
// can be dropped, a process cannot be leaked.

#include <airssys/error.hpp>
#include <airssys/exit_status.hpp>

#include <cstdint>

namespace airssys::arch {

// Where the child's process group is.
//   Inherit    — the parent's group (cannot be signalled as a group);
//   NewGroup   — the child leads a new group (pgid == pid);
//   JoinGroup  — the group led by another Process this runtime spawned;
//   NewSession — the child leads a new session and group (setsid).
enum class GroupMode : std::uint8_t { Inherit, NewGroup, JoinGroup, NewSession };

// What one of the child's standard streams is connected to.
//   Inherit — the parent's stream;  Null — /dev/null;
//   Pipe    — a pipe whose other end the Process handle holds (take_pipe);
//   File    — `path`, opened by the parent before the child exists (so a
//             bad path is an error naming it, not a child that exits 127):
//             stdin read-only, stdout/stderr created 0644, truncated or
//             appended. The open never waits: a FIFO to read opens at once
//             (with no writer the child reads end of file), a FIFO to
//             write with no reader is an error naming it; the child's
//             descriptor is an ordinary blocking one.
enum class StdioMode : std::uint8_t { Inherit, Null, Pipe, File };

struct StdioSpec {
  constexpr StdioSpec() noexcept = default;
  constexpr StdioSpec(StdioMode m, const char* file = nullptr, bool append_to = false) noexcept  // NOLINT: implicit
      : mode(m), path(file), append(append_to) {}
  StdioMode mode = StdioMode::Inherit;
  const char* path = nullptr;  // StdioMode::File
  bool append = false;         // StdioMode::File, stdout/stderr
};

// A resource limit set in the child before exec (setrlimit).
enum class LimitKind : std::uint8_t { OpenFiles, AddressSpace, CpuSeconds, Processes, CoreSize, FileSize };
struct LimitSpec {
  LimitKind kind = LimitKind::OpenFiles;
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

class Process;
class Cgroup;

// What to run and how. Strings are NUL-terminated and borrowed for the
// duration of spawn() only.
struct SpawnSpec {
  // An absolute or relative path (containing '/'), or a name looked up in
  // PATH, resolved as chdir(working_dir) then execvp would (open_program).
  // Never interpreted by a shell.
  const char* program = nullptr;
  // The file to execute, held open by open_program: the child executes
  // exactly it (execveat), whatever `program` names by then; `program`
  // only names it in errors. -1: spawn resolves `program` itself.
  int program_fd = -1;
  // With program_fd: the path the file was found by (open_program's
  // `found`, relative to working_dir). A "#!" script is executed by this
  // path, as execvp would, so its interpreter gets it as $0 — and only if
  // it still names the held file just before the exec. Null: `program`
  // when it contains '/', else the held file's resolved path.
  const char* exec_path = nullptr;
  // argv[0..], terminated by nullptr. Null: just { program }.
  const char* const* argv = nullptr;
  // "NAME=value" entries terminated by nullptr; null: inherit the parent's.
  const char* const* envp = nullptr;
  const char* working_dir = nullptr;  // null: the parent's
  GroupMode group = GroupMode::NewGroup;
  const Process* join = nullptr;      // the leader, for GroupMode::JoinGroup
  StdioSpec stdio[3] = {};
  // Descriptors the child keeps, at the same numbers; every other fd >= 3
  // is closed at exec whatever its O_CLOEXEC flag.
  const int* pass_fds = nullptr;
  std::size_t pass_fd_count = 0;
  const LimitSpec* limits = nullptr;
  std::size_t limit_count = 0;
  // The child is SIGKILLed when the thread that spawned it dies (Linux
  // PR_SET_PDEATHSIG); set for managed direct children.
  bool kill_with_parent = false;
  // The child is born inside this cgroup (clone3 CLONE_INTO_CGROUP), so no
  // process of its tree is ever outside it.
  const Cgroup* cgroup = nullptr;
};

// How a process ended (exit code or signal): the base layer's value.
using airssys::ExitStatus;

// A spawned, not yet reaped process. Move-only.
class Process {
 public:
  Process() = default;
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // kills and reaps a process still running

  bool valid() const noexcept { return pid_ > 0; }
  int pid() const noexcept { return pid_; }
  int pgid() const noexcept { return pgid_; }
  // True when the child leads the group (NewGroup / NewSession).
  bool leads_group() const noexcept { return leads_group_; }
  // A descriptor that becomes readable when the process ends (the pidfd on
  // Linux), for a poll/epoll loop. Owned by the handle.
  int wait_handle() const noexcept { return pidfd_; }
  // The parent's end of a StdioMode::Pipe stream (0, 1, 2); the caller owns
  // it from now on. -1 when that stream is not a pipe or was taken.
  int take_pipe(int stream) noexcept;
  // Gives the process up without killing it (a Detached process that must
  // outlive the runtime). The handle becomes empty.
  void release() noexcept;

 private:
  friend Result<Process> spawn(const SpawnSpec& spec) noexcept;
  friend Result<ExitStatus> wait(Process& p, std::int64_t timeout_ns) noexcept;
  friend Result<void> signal(Process& p, int sig) noexcept;
  friend Result<void> signal_group(Process& leader, int sig) noexcept;
  friend Result<Process> adopt_child(int pid) noexcept;
  friend Result<ExitStatus> try_wait(Process& p) noexcept;
  void reset() noexcept;

  int pid_ = -1;
  int pidfd_ = -1;
  int pgid_ = -1;
  bool leads_group_ = false;
  int pipes_[3] = {-1, -1, -1};
};

// Spawns without copying the parent (clone3 with CLONE_VM|CLONE_VFORK, the
// child runs on a small stack of its own until exec); only fds 0-2 and
// `pass_fds` reach the child. Errors name the input: "program 'x' not
// found in PATH", "working_dir '/nope' does not exist", ...
Result<Process> spawn(const SpawnSpec& spec) noexcept;

// Waits up to `timeout_ns` (negative: no limit) for the process to end and
// reaps it; Timeout leaves it running and the handle valid.
Result<ExitStatus> wait(Process& p, std::int64_t timeout_ns) noexcept;

// Reaps the process if it has ended; Timeout (at once) if it still runs.
Result<ExitStatus> try_wait(Process& p) noexcept;

// Sends `sig` to the process through its pidfd.
Result<void> signal(Process& p, int sig) noexcept;

// Sends `sig` to the group the process leads. Refused unless the process
// leads its group and is not yet reaped (so the pgid cannot have been
// reused), and never for a pgid <= 1. Goes through the pidfd
// (PIDFD_SIGNAL_PROCESS_GROUP) on kernels that have it (>= 6.9).
Result<void> signal_group(Process& leader, int sig) noexcept;

// True when signal_group goes through the pidfd (detected once, and not
// turned off by force_group_signal_fallback).
bool group_signal_by_pidfd() noexcept;

// For tests: makes group signals take the path of kernels without
// PIDFD_SIGNAL_PROCESS_GROUP (killpg while the leader is unreaped), so that
// it can be exercised on a newer kernel. Set it before any group exists.
void force_group_signal_fallback(bool on) noexcept;

// For tests: makes spawn reset every signal disposition in the child one
// by one (62 system calls), as on kernels without CLONE_CLEAR_SIGHAND
// (before 5.5) or when the child cannot read /proc/self/status. By
// default the kernel resets the caught signals at clone and the child
// resets only the ones it finds ignored.
void force_full_signal_reset(bool on) noexcept;

// A process group this runtime created, held for as long as it may need
// signals: a second pidfd of its leader, taken at spawn, which outlives the
// leader's reaping. A pgid is only a number: once the group is empty it can
// name an unrelated group, so nothing here signals or inspects a group by
// its number unless the group provably still owns it:
//   - with PIDFD_SIGNAL_PROCESS_GROUP (Linux >= 6.9) the signal goes
//     through the pidfd, whose kernel pid object is the group's own: it
//     reaches this group's processes or, once the group is empty, nobody
//     (ESRCH), whatever process has the number since;
//   - without it, killpg is used only while the leader is unreaped (a
//     zombie at worst), which keeps the number from being reused. The
//     holder must keep the leader unreaped while the group has other
//     processes (peek_exit reads its status without reaping it).
// Move-only; closing it signals nothing.
class ProcessGroup {
 public:
  ProcessGroup() = default;
  ProcessGroup(ProcessGroup&& o) noexcept;
  ProcessGroup& operator=(ProcessGroup&& o) noexcept;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;
  ~ProcessGroup();

  // The group `leader` leads (it must be unreaped, and lead its group).
  static Result<ProcessGroup> of(const Process& leader) noexcept;

  bool valid() const noexcept { return fd_ >= 0; }
  int pgid() const noexcept { return pgid_; }
  int leader() const noexcept { return leader_; }  // its leader's pid
  // The held pidfd (owned by this object), open until it is destroyed:
  // what a guardian can signal the group through after the leader's reap.
  int handle() const noexcept { return fd_; }
  // True while the group's number names this group and no other: it
  // still has a process (pidfd), or its leader is unreaped (fallback). A
  // pgid read from /proc before this returns true was this group's.
  bool owns_number() const noexcept;
  // Sends `sig` to every process of the group. Ok(true): sent; Ok(false):
  // not sent, because the group has no process left or (fallback) its
  // number is no longer provably its own. Never for pgid <= 1.
  Result<bool> signal(int sig) noexcept;
  // True when no process other than an ended leader is in the group.
  bool empty() const noexcept;

 private:
  int fd_ = -1;
  int pgid_ = -1;
  int leader_ = -1;
};

// Reads the status of an ended process without reaping it (it stays a
// zombie, its pid reserved); Timeout while it runs.
Result<ExitStatus> peek_exit(const Process& p) noexcept;

// reap_group_members and running_in_group for a held group: nothing when
// the group no longer owns its number. The held group's count is of its
// running members other than the leader (which cannot setsid) among this
// process's descendants (the only ones whose zombies are ours), found by a
// walk down the children lists instead of a scan of every host process.
std::size_t reap_group_members(const ProcessGroup& g, int keep, int sig, std::size_t* killed_by) noexcept;
class ChildLister;
std::size_t running_in_group(const ProcessGroup& g) noexcept;
// The same walk, with this process's own children read through `own`
// (kept open between walks) and the subtree of `skip` (a helper of ours
// that forks nothing and joins no group, the guardian) left out.
std::size_t running_in_group(const ProcessGroup& g, ChildLister& own, int skip) noexcept;

// Sends `sig` to a process group whose leader this runtime has already
// reaped, while the group still has members: a pgid is not reused while
// any process is in the group. Ok(false) when the group is empty (nothing
// was signalled, and the caller must never signal it again). Never for
// pgid <= 1.
Result<bool> signal_remaining_group(int pgid, int sig) noexcept;

// Reaps every child of this process in group `pgid` that has ended,
// except `keep` (a leader kept unreaped on purpose); returns how many, and
// of those how many `sig` killed in `*killed_by` when not null.
std::size_t reap_group_members(int pgid, int keep, int sig, std::size_t* killed_by) noexcept;

// Makes the calling process a child subreaper (Linux): a descendant that is
// orphaned later (its parent exited, say after a double fork and setsid)
// is re-parented to this process instead of PID 1, so that it can be found,
// killed and reaped.
Result<void> become_subreaper() noexcept;

// True when this process has a child, running or ended, that waitpid
// could report: a cheap test before a look at /proc. Helpers started with
// no exit signal (the guardian) do not count.
bool has_children() noexcept;
// True when a child of this process has ended and waits to be reaped
// (waitid with WNOWAIT: nothing is reaped). Same children as has_children.
bool has_ended_child() noexcept;

// The pids of this process's children — spawned or adopted as orphans —
// up to `capacity` of them; returns how many there are (may exceed it).
std::size_t list_children(int* pids, std::size_t capacity) noexcept;

// list_children for a caller that lists often (a teardown lists them two
// or three times): the children file of each of this process's threads is
// kept open, so a listing costs a directory re-read and one read per
// thread instead of an open and a close per thread (opening a /proc file
// costs some microseconds; reading an open one, a fraction of one).
// Guarantees: the same pids list_children reports. A thread that ended is
// never read through a descriptor of its own left open (its children file
// would read as empty, and a new thread given the same number would hide
// behind it): each read is checked against the thread's comm file, which
// fails once the thread it was opened for is gone, and then reopened. At
// most kThreads threads are kept open (2 descriptors each, plus the task
// directory); further threads are read as list_children does. Closes
// everything when destroyed. Not thread-safe: one caller at a time (the
// process executor calls it under its lock). In a forked child it starts
// over instead of reading its parent's threads.
class ChildLister {
 public:
  static constexpr std::size_t kThreads = 16;
  ChildLister() noexcept = default;
  ~ChildLister();
  ChildLister(const ChildLister&) = delete;
  ChildLister& operator=(const ChildLister&) = delete;
  std::size_t list(int* pids, std::size_t capacity) noexcept;
  // Descriptors held now (for tests: at most 2 * kThreads + 1).
  std::size_t held() const noexcept;

 private:
  struct Thread {
    int tid = 0;  // 0: a free slot
    int children = -1;
    int comm = -1;
  };
  void reset() noexcept;
  void drop(Thread& t) noexcept;
  int owner_ = -1;
  int task_dir_ = -1;
  Thread threads_[kThreads];
};

// Takes hold of a child of this process that no Process handle holds (an
// adopted orphan). Refused for a pid that is not this process's child; the
// caller makes sure no other handle holds it (two handles would race to
// reap it).
// Being our child, the pid cannot be reused before we reap it.
Result<Process> adopt_child(int pid) noexcept;

// What /proc says about a process: its parent, group, session, whether it
// has ended (a zombie) and whether it is running (state R: on a CPU or
// waiting for one, possibly inside a system call). False when there is no
// such process.
struct ProcessInfo {
  int ppid = 0;
  int pgid = 0;
  int sid = 0;
  bool ended = false;
  bool running = false;
  int threads = 0;  // 0 when /proc did not say
  // When it started, in clock ticks after boot: with the pid, an identity
  // that a reuse of the pid does not share. 0 when /proc did not say.
  std::uint64_t start_ticks = 0;
};
bool process_info(int pid, ProcessInfo& out) noexcept;

// Whether a process numbered `pid` exists in our PID namespace (a zombie
// included), whether or not /proc lets us read about it.
bool process_exists(int pid) noexcept;

// Calls `visit(pid, cookie)` for every process in /proc but this one,
// until it returns false. Allocates nothing.
void for_each_process(bool (*visit)(int pid, void* cookie), void* cookie) noexcept;

// The inode of this process's PID namespace: it tells two processes that
// are both pid N (in two containers) apart. 0 when /proc does not say.
std::uint64_t own_pid_namespace() noexcept;

// How many processes of group `pgid` are running (see ProcessInfo), by a
// scan of every process in /proc. After a stop signal to the group, 0 means
// that every member has stopped (or ended): none is in the middle of a
// system call such as setsid(), so a signal sent to the group next reaches
// exactly the processes that are in it, and a process that left the group
// in the same instant as the stop is stopped outside it, alive. Never for
// pgid <= 1 (returns 0).
std::size_t running_in_group(int pgid) noexcept;

// Reaps `pid` if it is an ended child of this process that no handle holds
// (a zombie orphan); false if it is not ended or not our child.
bool reap_ended_child(int pid, ExitStatus& status) noexcept;

// A file's identity: what a hard link or a bind mount shares with it.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

// Finds `program` as chdir(working_dir) followed by execvp would: a name
// containing '/' is a path, relative to `working_dir` (null: the current
// directory); any other name is looked up in this process's PATH, where a
// relative entry (an empty one means ".") is relative to `working_dir`
// too. The file found is held open (O_PATH, close-on-exec; the caller
// closes it) and its fully resolved path — every symlink, "." and ".."
// resolved, as the kernel names the open file — written to `out`, with
// its identity to `identity` when not null, and the path it was found by
// (`program` itself, or PATH's entry joined with it) to `found` when not
// null (`found_capacity` bytes; PATH_MAX is enough). Pass the descriptor
// as SpawnSpec::program_fd, and `found` as SpawnSpec::exec_path, to
// execute exactly the file that was judged. Errors name the program ("not
// found in PATH", "is a directory", "is not executable", "working_dir
// '...' does not exist"). Never allocates.
Result<int> open_program(const char* program, const char* working_dir, char* out, std::size_t capacity,
                         FileIdentity* identity = nullptr, char* found = nullptr,
                         std::size_t found_capacity = 0) noexcept;

// The identity of the file `path` names (symlinks followed); false when
// there is none.
bool file_identity(const char* path, FileIdentity& out) noexcept;

// This process's environment ("NAME=value" entries, nullptr-terminated).
const char* const* inherited_environment() noexcept;

// The most bytes of arguments and environment together — every string
// with its NUL, plus a pointer for each — that exec accepts from this
// process now (on Linux a quarter of the stack limit, 2 MiB by default,
// at least 128 KiB and at most 6 MiB; one string at most 128 KiB).
std::size_t argument_limit() noexcept;

// Whether process `pid`'s initial environment holds exactly `entry`
// ("NAME=value"). Unknown while /proc cannot tell: the process is between
// the two halves of an execve (its new memory has no environment yet) or
// is on its way out (its memory is gone, it is not a zombie yet), or kept
// execing while it was read (a read that an execve cut short or emptied is
// never taken for Absent: the environment's bounds must be the same, and
// set, before and after it). Absent
// for an ended process (a zombie), one that is gone, and one whose
// environment this process may not read.
enum class Presence : unsigned char { Absent, Present, Unknown };
Presence environment_contains(int pid, const char* entry) noexcept;

// Copies the entries of process `pid`'s initial environment that begin
// with `prefix` ("NAME="), up to `max` of them, each NUL-terminated into
// its own `size`-byte row of `out` (an entry that does not fit is
// skipped). Returns how many were copied; 0 for a process gone, ended,
// or not ours to read.
std::size_t environment_entries(int pid, const char* prefix, char* out, std::size_t size,
                                std::size_t max) noexcept;

// SIGKILLs process `pid` if, read through a pidfd taken first, it still
// carries the environment entry `entry`: a pid reused since it was judged
// is never signalled. True when the signal was sent.
bool kill_if_carries(int pid, const char* entry) noexcept;

// The process's cgroup v2 path ("/airssys-12-0/g3"), into `out`.
bool cgroup_of(int pid, char* out, std::size_t capacity) noexcept;

// Appends to a file: opens (creating, 0644, close-on-exec) and writes
// whole records with one write each, so concurrent writers' lines do not
// interleave.
Result<int> open_append(const char* path) noexcept;
Result<void> write_record(int fd, const char* data, std::size_t len) noexcept;
void close_handle(int fd) noexcept;
// A second descriptor for the same object (close-on-exec).
Result<int> duplicate_handle(int fd) noexcept;
// Waits up to timeout_ns (< 0: no limit) for `fd` to be readable.
bool wait_readable(int fd, std::int64_t timeout_ns) noexcept;
// This process's pid.
int own_pid() noexcept;

// The signal number that stops any process (SIGKILL) and asks it to end
// (SIGTERM), and the largest valid signal number, for layers that do not
// include <signal.h>.
int kill_signal() noexcept;
int term_signal() noexcept;
int stop_signal() noexcept;      // cannot be caught or ignored
int continue_signal() noexcept;
int max_signal() noexcept;

}  // namespace airssys::arch
