#pragma once
// Internal to the executor: its table entry and spawn buffers.
#include <airssys/arch/cgroup.hpp>
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
  bool blocking = false;     // a TeardownOperation steps it, not the reactor
  arch::Process proc;
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
  int pending_signal = 0;        // held back until the stopped group is still
  std::int64_t quiesce_until = 0;  // when it is sent anyway
  std::size_t adopted = 0;   // escapees of this tree adopted so far (leader)
  ExitStatus status;
  TeardownReport report;
  char cgroup_suffix[64] = {};  // "/airssys-<pid>-<n>/g<id>" as /proc/<pid>/cgroup ends
  char marker[48] = {};         // "AIRSSYS_TREE=<pid>.<group id>" (ProcessGroup containment)
};

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

}  // namespace airssys::osl
