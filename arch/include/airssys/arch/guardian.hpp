#pragma once
// The runtime guardian: if the host process dies — even by SIGKILL — no
// managed process tree outlives it.
//
// Direct children carry PR_SET_PDEATHSIG, but their descendants do not, and
// a killed host runs no cleanup. The guardian is a tiny process that shares
// the host's memory and descriptor table (clone with CLONE_VM|CLONE_FILES)
// and sleeps on the host's pidfd. When the host's last thread is gone it
// kills what the host registered — the cgroup root (cgroup.kill reaches
// every descendant), each watched group through its leader's pidfd, each
// watched process through its pidfd — removes the cgroup directories and
// exits. Sharing the descriptor table means the pidfds stay valid after the
// host is gone; sharing memory means registration is a store into a slot,
// no syscall. The guardian runs only raw system calls on its own stack.

#include <airssys/arch/error.hpp>

#include <cstddef>
#include <cstdint>

namespace airssys::arch {

class CgroupRoot;
class Process;

class Guardian {
 public:
  static constexpr std::size_t kSlots = 1024;

  Guardian() = default;
  Guardian(const Guardian&) = delete;
  Guardian& operator=(const Guardian&) = delete;
  ~Guardian();  // stop()

  // Starts the guardian; `root` (may be null) is killed and removed when
  // the host dies. Its descriptors must stay open while the guardian runs.
  Result<void> start(const CgroupRoot* root) noexcept;
  bool running() const noexcept { return shared_ != nullptr; }
  // The guardian's pid (not a child a waitpid(-1) sees: it has no exit
  // signal), so that sweeps for orphans can skip it.
  int pid() const noexcept;

  // Registers the group `leader` leads, or the single process `p`; the
  // returned slot is released with unwatch(). Full when all slots are in
  // use. The handle must outlive the registration.
  Result<std::uint32_t> watch_group(const Process& leader) noexcept;
  Result<std::uint32_t> watch_process(const Process& p) noexcept;
  void unwatch(std::uint32_t slot) noexcept;

  // Ends the guardian without killing anything (orderly shutdown) and
  // reaps it.
  void stop() noexcept;

  struct Shared;

 private:
  Result<std::uint32_t> watch(int kind, int fd, int pgid) noexcept;
  Shared* shared_ = nullptr;
};

}  // namespace airssys::arch
