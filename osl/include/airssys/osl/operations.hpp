#pragma once
// The process operations the OS layer performs, as plain values: what to
// spawn and how, which group to signal, what to wait for. A
// ProcessExecutor runs them through its middleware chain (policy, audit).

#include <airssys/error.hpp>
#include <airssys/arch/process.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace airssys::osl {

using arch::ExitStatus;
using arch::LimitKind;
using arch::LimitSpec;
using arch::StdioMode;

// Where the spawned process's group is. JoinGroup only accepts a group a
// process spawned by the same executor leads; NewSession also starts a new
// group.
struct ProcessGroupConfig {
  enum class Kind : std::uint8_t { Inherit, NewGroup, JoinGroup, NewSession };
  Kind kind = Kind::NewGroup;
  int pgid = 0;  // JoinGroup

  static constexpr ProcessGroupConfig inherit() noexcept { return {Kind::Inherit, 0}; }
  static constexpr ProcessGroupConfig new_group() noexcept { return {Kind::NewGroup, 0}; }
  static constexpr ProcessGroupConfig join(int pgid) noexcept { return {Kind::JoinGroup, pgid}; }
  static constexpr ProcessGroupConfig new_session() noexcept { return {Kind::NewSession, 0}; }
};

// Managed: tied to its owner (an actor, or the executor), torn down with
// it, and killed if the host dies. Detached: its own session, outside every
// container, survives its owner and the runtime; only recorded.
enum class ProcessLifetime : std::uint8_t { Managed, Detached };

// How a managed tree is held together so that teardown reaches all of it.
//   Auto         — Cgroup when usable, else ProcessGroup;
//   Cgroup       — a cgroup v2 per group; nothing escapes (setsid included);
//   ProcessGroup — the group, plus this process as child subreaper so
//                  that processes leaving the group with setsid come back
//                  as orphans and are killed at teardown;
//   None         — reported for Detached processes.
enum class Containment : std::uint8_t { Auto, Cgroup, ProcessGroup, None };
const char* to_string(Containment c) noexcept;

// The environment: the runtime's own plus `env` overrides, or only `env`.
// Either way a ProcessGroup-contained tree also gets
// AIRSSYS_TREE=<pid>.<executor>.<group>.<start>.<pidns>, the marker by
// which its escaped orphans are recognised, and its processes found again
// if the runtime dies together with its guardian (docs/processes.md).
enum class EnvMode : std::uint8_t { InheritWithOverrides, Clean };

// One standard stream of the child.
struct StdioConfig {
  StdioMode mode = StdioMode::Inherit;
  std::string_view path;  // StdioMode::File
  bool append = false;

  static constexpr StdioConfig inherit() noexcept { return {}; }
  static constexpr StdioConfig null() noexcept { return {StdioMode::Null, {}, false}; }
  static constexpr StdioConfig pipe() noexcept { return {StdioMode::Pipe, {}, false}; }
  // Opened without waiting: a FIFO nobody reads is an error for stdout or
  // stderr, and end of file for stdin when nobody writes it.
  static constexpr StdioConfig file(std::string_view p, bool append_to = false) noexcept {
    return {StdioMode::File, p, append_to};
  }
};

// Spawns `program` with `args` (argv[1..]; argv[0] is the program as
// given). Never through a shell. Strings are views: they are copied (with
// their terminating NULs) into the executor's spawn buffer, so a NUL byte
// inside one is an error that names it.
//
// `program` is found as chdir(working_dir) then execvp would find it: with
// a '/', a path relative to `working_dir`; without, looked up in the
// runtime's PATH, relative entries relative to `working_dir`. The file
// found is what the policy judges (every symlink resolved) and exactly
// what runs (docs/processes.md, "Spawning").
//
// Every member has a default, so a designated initializer may name only
// what it sets, also under -Wextra: SpawnProcessOperation{.program = "ls"}.
struct SpawnProcessOperation {
  std::string_view program{};
  std::span<const std::string_view> args{};
  // "NAME=value"; a name given twice gets its last value, once, and
  // replaces an inherited entry of that name.
  std::span<const std::string_view> env{};
  EnvMode env_mode = EnvMode::InheritWithOverrides;
  std::string_view working_dir{};         // empty: the runtime's
  ProcessGroupConfig process_group = ProcessGroupConfig::new_group();
  ProcessLifetime lifetime = ProcessLifetime::Managed;
  Containment containment = Containment::Auto;
  // Each inherited unless set. (Not "stdio[3] = {}": GCC 12.2, Debian 12's,
  // then crashes compiling a second assignment of a temporary operation.)
  std::array<StdioConfig, 3> stdio{};
  std::span<const LimitSpec> limits{};
  std::span<const int> pass_fds{};        // kept at their numbers in the child
};

// What a spawn produced. `pid` names the process in later operations.
struct SpawnProcessResult {
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
  ProcessLifetime lifetime = ProcessLifetime::Managed;
  // The parent's ends of StdioMode::Pipe streams (-1 otherwise); the caller
  // owns and closes them.
  int pipes[3] = {-1, -1, -1};
};

// Sends `signal` to a process group a process of this executor leads.
// Refused for pgid 0, 1, negative, or a group the executor did not create.
struct KillProcessGroupOperation {
  int pgid = 0;
  int signal = 9;  // SIGKILL
};

// Sends `signal` to one process this executor spawned and has not reaped.
struct SignalProcessOperation {
  int pid = 0;
  int signal = 15;  // SIGTERM
};

// Waits for a process this executor spawned to end, and reaps it, for at
// most `timeout_ns` (INT64_MAX, as nanoseconds::max() everywhere: no
// limit; 0: only looks; negative: InvalidArgument). Timeout leaves it
// running.
struct WaitProcessOperation {
  int pid = 0;
  std::int64_t timeout_ns = INT64_MAX;
};

// Tears down the whole tree of the managed process `pid` (its group or
// cgroup): SIGTERM, up to `term_timeout_ns` for it to empty, then SIGKILL
// (cgroup.kill), then everything is reaped — orphans that escaped the
// group included.
struct TeardownOperation {
  int pid = 0;
  std::int64_t term_timeout_ns = 5'000'000'000;
};

// What a teardown found.
struct TeardownReport {
  Containment containment = Containment::None;
  bool exited_on_term = false;   // the tree was empty before the KILL stage
  std::size_t killed = 0;        // processes we reaped that SIGKILL ended
  std::size_t reaped = 0;        // processes we reaped in all
  std::size_t orphans_adopted = 0;
  ExitStatus leader_status;      // how the spawned process itself ended
  // The tree was not confirmed gone within 5 s of its KILL (a process stuck
  // in the kernel, a cgroup that stayed populated): the teardown failed and
  // its entries were released anyway. Monitoring raises an alert for it.
  bool gave_up = false;
  // Counted by ProcessExecutor::request_teardown (every tree of its owner),
  // as opposed to a teardown of this one tree only.
  bool owner_wide = false;
};

}  // namespace airssys::osl
