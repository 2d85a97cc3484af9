#pragma once
// Spawning and holding OS processes: the platform layer under osl.
//
// A process is held by a Process handle from spawn to reap. On Linux the
// handle owns a pidfd, so waits and signals go to exactly the process this
// runtime spawned, never to a recycled pid. A Process that is destroyed
// while its process still runs kills it (SIGKILL) and reaps it: a handle
// can be dropped, a process cannot be leaked.

#include <airssys/arch/error.hpp>

#include <cstdint>

namespace airssys::arch {

// Where the child's process group is.
//   Inherit    — the parent's group (cannot be signalled as a group);
//   NewGroup   — the child leads a new group (pgid == pid);
//   JoinGroup  — the group led by another Process this runtime spawned;
//   NewSession — the child leads a new session and group (setsid).
enum class GroupMode : std::uint8_t { Inherit, NewGroup, JoinGroup, NewSession };

// What one of the child's standard streams is connected to.
enum class StdioMode : std::uint8_t { Inherit, Null };

class Process;

// What to run and how. Strings are NUL-terminated and borrowed for the
// duration of spawn() only.
struct SpawnSpec {
  // An absolute or relative path (containing '/'), or a name looked up in
  // PATH. Never interpreted by a shell.
  const char* program = nullptr;
  // argv[0..], terminated by nullptr. Null: just { program }.
  const char* const* argv = nullptr;
  // "NAME=value" entries terminated by nullptr; null: inherit the parent's.
  const char* const* envp = nullptr;
  const char* working_dir = nullptr;  // null: the parent's
  GroupMode group = GroupMode::NewGroup;
  const Process* join = nullptr;      // the leader, for GroupMode::JoinGroup
  StdioMode stdio[3] = {StdioMode::Inherit, StdioMode::Inherit, StdioMode::Inherit};
};

// How a process ended: exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;     // valid when signal == 0
  int signal = 0;   // non-zero: killed by this signal
  // The shell convention: code, or 128 + signal.
  int shell_status() const noexcept { return signal != 0 ? 128 + signal : code; }
};

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

 private:
  friend Result<Process> spawn(const SpawnSpec& spec) noexcept;
  friend Result<ExitStatus> wait(Process& p, std::int64_t timeout_ns) noexcept;
  friend Result<void> signal(Process& p, int sig) noexcept;
  friend Result<void> signal_group(Process& leader, int sig) noexcept;
  friend Result<Process> adopt_child(int pid) noexcept;
  void reset() noexcept;

  int pid_ = -1;
  int pidfd_ = -1;
  int pgid_ = -1;
  bool leads_group_ = false;
};

// Spawns without copying the parent (posix_spawn: vfork semantics); only
// fds 0-2 reach the child. Errors name the input: "program 'x' not found in
// PATH", "working_dir '/nope' does not exist", ...
Result<Process> spawn(const SpawnSpec& spec) noexcept;

// Waits up to `timeout_ns` (negative: no limit) for the process to end and
// reaps it; Timeout leaves it running and the handle valid.
Result<ExitStatus> wait(Process& p, std::int64_t timeout_ns) noexcept;

// Sends `sig` to the process through its pidfd.
Result<void> signal(Process& p, int sig) noexcept;

// Sends `sig` to the group the process leads. Refused unless the process
// leads its group and is not yet reaped (so the pgid cannot have been
// reused), and never for a pgid <= 1.
Result<void> signal_group(Process& leader, int sig) noexcept;

// Makes the calling process a child subreaper (Linux): a descendant that is
// orphaned later (its parent exited, say after a double fork and setsid)
// is re-parented to this process instead of PID 1, so that it can be found,
// killed and reaped.
Result<void> become_subreaper() noexcept;

// The pids of this process's children — spawned or adopted as orphans —
// up to `capacity` of them; returns how many there are (may exceed it).
std::size_t list_children(int* pids, std::size_t capacity) noexcept;

// Takes hold of a child of this process that no Process handle holds (an
// adopted orphan). Refused for a pid that is not this process's child.
// Being our child, the pid cannot be reused before we reap it.
Result<Process> adopt_child(int pid) noexcept;

}  // namespace airssys::arch
