#pragma once
// Internal to the executor: its table entry and spawn buffers.
#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/guardian.hpp>
#include <airssys/osl/executor.hpp>

#include <atomic>
#include <memory>

namespace airssys::osl {

// One process the executor holds. A group's resources (cgroup, guardian
// slot, teardown state) live on its leader's entry; members (JoinGroup) and
// adopted orphans point at it through `group`.
struct ProcessExecutor::Entry {
  enum class State : std::uint8_t { Free, Reserved, Live, Exited };
  State state = State::Free;
  bool leads = false;        // owns the group's resources
  bool orphan = false;       // adopted, not spawned
  bool polled = false;       // its pidfd is in the reactor's poller
  bool events_polled = false;
  bool tearing_down = false;
  bool kill_sent = false;
  bool report_to_sink = false;
  bool owner_wide = false;   // counted by a request_teardown of its owner
  bool blocking = false;     // a TeardownOperation steps it, not the reactor
  bool leader_kept = false;  // ended, kept unreaped to pin its group's number (no pidfd group signals)
  bool group_skipped = false;          // a group signal found the group gone and was not sent
  bool group_skip_reported = false;    // ... and an event said so (once per entry)
  arch::Process proc;
  // The group a leader leads, held from spawn to release: every signal to
  // the group goes through it, never through the bare pgid (arch::ProcessGroup).
  arch::ProcessGroup held_group;
  arch::Cgroup cgroup;
  int pid = -1;
  int pgid = -1;
  int group = -1;            // index of the leader's entry
  int guardian_slot = -1;
  std::uint32_t generation = 0;
  Containment containment = Containment::None;
  ProcessLifetime lifetime = ProcessLifetime::Managed;
  std::uint64_t owner = 0;
  std::uint64_t group_id = 0;
  std::int64_t deadline = 0;
  std::int64_t give_up = 0;
  int first_signal = 15;         // a teardown's first signal (TERM unless asked otherwise)
  int pending_signal = 0;        // held back until the stopped group is still
  std::int64_t quiesce_until = 0;  // when it is sent anyway
  // Set when KILL went to the leader ahead of its stopped group: the group
  // is scanned once the leader has ended, or from this time on (0: not waiting).
  std::int64_t scan_after = 0;
  std::size_t adopted = 0;   // escapees of this tree adopted so far (leader)
  ExitStatus status;
  TeardownReport report;
  // "/airssys-<pid>-<ns>-<n>/g<id>": the tree's cgroup as /proc/<pid>/cgroup
  // shows it (arch::cgroup_path_within); a process in it or below it is
  // the tree's.
  char cgroup_suffix[96] = {};
  // The cgroup namespace the process was born into (rooted at its tree's
  // cgroup), empty if it has none of its own: a process that moved out of
  // the cgroup still carries it. Held open, so that its number is not
  // given to another namespace while the entry lives.
  arch::CgroupNamespace cgroup_ns;
  char marker[arch::Guardian::kMarkerSize] = {};  // "AIRSSYS_TREE=<pid>.<executor>.<group>.<start>.<pidns>" (ProcessGroup containment)
};

// Collects a held process's exit (status and reap; an ended group leader
// may stay unreaped, see teardown.cpp). False while it runs.
bool collect_exit(ProcessExecutor::Entry& e, ExitStatus& status, arch::Poller* poller) noexcept;

// True on a thread while it runs a pass of a reactor (reactor thread or
// ProcessExecutor::reactor_pass).
bool in_reactor_pass() noexcept;

// Scratch memory for building argv/envp, one per concurrent spawn.
struct ProcessExecutor::Buffers {
  std::unique_ptr<char[]> memory;
  std::size_t bytes_each = 0;
  std::size_t count = 0;
  std::unique_ptr<std::atomic<bool>[]> busy;

  char* take(std::size_t& index) noexcept {
    for (std::size_t i = 0; i < count; ++i) {
      bool expected = false;
      // acquire: the previous user's writes to the buffer happen before ours.
      if (busy[i].compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        index = i;
        return memory.get() + i * bytes_each;
      }
    }
    return nullptr;
  }
  void give(std::size_t index) noexcept { busy[index].store(false, std::memory_order_release); }
};

// Poller data of the guardian's pidfd: readable when the guardian died.
inline constexpr std::uint64_t kGuardianData = ~std::uint64_t{0} - 1;

// Keeps a guardian running for the executor's trees: starts it, or, after
// it died, starts a new one and registers again every process-group tree
// (by its leader's handle while it has one, else by its marker) and every
// adopted orphan the table holds (cgroup trees are covered by the root).
// The guardian's pidfd goes into `poller` (may be null) as kGuardianData.
// Under the executor's lock.
Result<void> keep_guardian(arch::Guardian& guardian, const arch::CgroupRoot* root, ProcessExecutor::Entry* entries,
                           std::size_t count, arch::Poller* poller) noexcept;

}  // namespace airssys::osl
