#pragma once
// The runtime guardian: if the host process dies — even by SIGKILL, a
// SIGKILL to its whole process group, or the OOM killer — no managed
// process tree outlives it.
//
// Direct children carry PR_SET_PDEATHSIG, but their descendants do not, and
// a killed host runs no cleanup. The guardian is a tiny process that shares
// nothing with the host a kill aimed at the host also hits: it runs in a
// session and process group of its own, and in an address space of its own
// (cloned without CLONE_VM, it drops its copy of the host's memory at once,
// keeping only its code and a private region). It holds its OWN
// descriptors: each registration is a message over a socketpair that
// carries a duplicate of the pidfd (SCM_RIGHTS), acknowledged once the
// guardian holds it; unwatch() makes it close that duplicate. The host may
// close or reuse its own descriptor numbers freely: the guardian's table
// never names a number the host has since given to another process.
// Requests are served in batches: after serving, the guardian naps for a
// few milliseconds (5) on the host's death and on an eventfd the host
// writes when it waits for an answer, so a host that spawns and tears
// down trees at a high rate wakes it once per nap, not once per request.
// A request waiting in the socket is still read before anything is killed.
//
// It sleeps on a pidfd of the host. When the host's last thread is gone
// (or the host drops its end of the socket, as an exec does) it kills what
// was registered — the cgroup root (cgroup.kill reaches every descendant),
// each watched group through its leader's pidfd (PIDFD_SIGNAL_PROCESS_GROUP;
// never a bare pgid), each watched process through its pidfd — then sweeps
// /proc for processes that carry a registered tree's environment marker and
// kills them, round after round until none is left, removes the cgroup
// directories and exits. It runs only raw system calls on its own stack.
//
// If the guardian itself dies, alive() turns false and its wait_handle()
// becomes readable; restart() starts a new one with nothing registered,
// and the owner registers again everything it still holds.

#include <airssys/error.hpp>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>

namespace airssys::arch {

class CgroupRoot;
class Process;

class Guardian {
 public:
  static constexpr std::size_t kSlots = 1024;
  // Room for one "AIRSSYS_TREE=<pid>.<executor>.<group>.<start>.<pidns>"
  // marker, NUL included (at most 13 + 10 + 4 * (1 + 20) + 1 bytes).
  static constexpr std::size_t kMarkerSize = 112;

  Guardian() = default;
  Guardian(const Guardian&) = delete;
  Guardian& operator=(const Guardian&) = delete;
  ~Guardian();  // stop()

  // Starts the guardian; `root` (may be null) is killed and removed when
  // the host dies. The guardian takes its own copies of the root's
  // descriptors; `root` must outlive the Guardian (restart() reads it).
  Result<void> start(const CgroupRoot* root) noexcept;
  // Started and not stopped (it may have died since: see alive()).
  bool running() const noexcept;
  // Running, and its process has not ended. One poll(2), no wait.
  bool alive() const noexcept;
  // After the guardian died: reaps it and starts a new one for the same
  // root, with every slot free. The caller registers its trees again.
  Result<void> restart() noexcept;
  // The guardian's pid (not a child a waitpid(-1) sees: it has no exit
  // signal), so that sweeps for orphans can skip it; -1 when not running.
  int pid() const noexcept;
  // A descriptor that becomes readable when the guardian ends (its
  // pidfd), for a poll/epoll loop; -1 when not running. Owned here.
  int wait_handle() const noexcept;

  // Registers the group `leader` leads, or the single process `p`; the
  // returned slot is released with unwatch(). `marker` (may be empty) is
  // the tree's environment entry ("AIRSSYS_TREE=..."): at host death every
  // process that carries it is killed too. The guardian duplicates the
  // descriptor; the handle may be closed or reaped at any time after.
  // Full when all slots are in use; Dead when the guardian is not running
  // or has died (the error says which).
  Result<std::uint32_t> watch_group(const Process& leader, std::string_view marker = {}) noexcept;
  Result<std::uint32_t> watch_process(const Process& p) noexcept;
  // A tree known by a pidfd of its group leader (which may have been
  // reaped: the group is still signalled through it), or by its marker
  // alone (`leader_pidfd` -1).
  Result<std::uint32_t> watch_tree(int leader_pidfd, std::string_view marker) noexcept;
  // watch_group without waiting for the guardian to take the descriptor:
  // the request, with the descriptor in it, is queued on the guardian's
  // socket, which it reads to the end before it kills anything at host
  // death, so the tree is guarded from the moment this returns. What the
  // guardian answers is read by a later watch: one it refused (it could not
  // hold the descriptor) is counted in refused(), and its slot stays taken
  // until unwatch(). The spawn path uses it: no round trip to the
  // guardian's process per spawned tree. Errors as watch_group's.
  Result<std::uint32_t> watch_group_queued(const Process& leader, std::string_view marker = {}) noexcept;
  // Queued watches the guardian refused, among those whose answers were read.
  std::uint64_t refused() const noexcept;
  void unwatch(std::uint32_t slot) noexcept;

  // Ends the guardian without killing anything (orderly shutdown) and
  // reaps it.
  void stop() noexcept;

  struct Region;

 private:
  Result<std::uint32_t> watch(int kind, int fd, std::string_view marker, bool wait = true) noexcept;
  // Reads the answers of queued watches: all of them (waiting for each),
  // or those already there. Dead if the guardian ended first.
  Result<void> settle_locked(bool all) noexcept;
  Result<void> start_locked() noexcept;
  void stop_locked(bool orderly) noexcept;

  mutable std::mutex mu_;  // one request and its acknowledgement at a time
  const CgroupRoot* root_ = nullptr;
  int sock_ = -1;   // the host's end of the socketpair
  int poke_ = -1;   // eventfd that wakes a napping guardian (it has a copy)
  int pid_ = -1;
  int pidfd_ = -1;
  bool used_[kSlots] = {};
  // Queued watches whose answers are not read yet (answers come in the
  // order of the requests); at most kUnanswered, then the oldest is waited for.
  static constexpr std::size_t kUnanswered = 32;
  std::size_t unanswered_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace airssys::arch
