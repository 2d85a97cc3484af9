#pragma once
// Linux cgroup v2 containment: one cgroup per managed process group, under
// a per-runtime directory. A process born inside a cgroup (clone3 with
// CLONE_INTO_CGROUP) cannot leave it without privileges, so `cgroup.kill`
// reaches every descendant, including ones that called setsid().

#include <airssys/arch/error.hpp>

#include <cstddef>
#include <cstdint>

namespace airssys::arch {

class Cgroup;

// The directory this runtime's cgroups live in: "<base>/airssys-<pid>".
// `base` defaults to the runtime's own cgroup when it is writable, else the
// cgroup2 mount's root (on hosts with the hybrid layout, e.g.
// /sys/fs/cgroup/unified). Destroying the root kills whatever is still in
// it and removes its directories. Move-only.
class CgroupRoot {
 public:
  // Errors say why cgroups cannot be used: no cgroup2 mount, base not a
  // cgroup2 directory, not writable (no root and no delegated subtree).
  // Empty roots left under `base` by runtimes whose process is gone are
  // removed on the way.
  static Result<CgroupRoot> open(const char* base = nullptr) noexcept;

  CgroupRoot() = default;
  CgroupRoot(CgroupRoot&& o) noexcept;
  CgroupRoot& operator=(CgroupRoot&& o) noexcept;
  CgroupRoot(const CgroupRoot&) = delete;
  CgroupRoot& operator=(const CgroupRoot&) = delete;
  ~CgroupRoot();

  bool valid() const noexcept { return dir_ >= 0; }
  // A new, empty cgroup "<root>/g<id>" for one managed group.
  Result<Cgroup> create(std::uint64_t id) const noexcept;
  // Kills every process in every cgroup under the root (cgroup.kill).
  Result<void> kill_all() const noexcept;
  const char* path() const noexcept { return path_; }
  int dir_handle() const noexcept { return dir_; }
  int base_handle() const noexcept { return base_; }

 private:
  void close_all() noexcept;
  int dir_ = -1;   // the root directory, O_PATH-free so openat() works
  int base_ = -1;  // its parent, to remove the root
  char path_[256] = {};
};

// One cgroup holding one managed tree. Destroying it kills whatever is
// left (cgroup.kill), waits a bounded time for it to empty and removes the
// directory. Move-only.
class Cgroup {
 public:
  Cgroup() = default;
  Cgroup(Cgroup&& o) noexcept;
  Cgroup& operator=(Cgroup&& o) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup();

  bool valid() const noexcept { return dir_ >= 0; }
  // SIGKILLs every process in the cgroup (kernel >= 5.14).
  Result<void> kill() const noexcept;
  // Ok(true) while any process is in the cgroup (cgroup.events).
  Result<bool> populated() const noexcept;
  // A descriptor that polls POLLPRI (epoll: EPOLLPRI) when `populated`
  // changes. The kernel flags a change only until the next read through
  // it, and populated() / wait_empty() read through it: after a wake-up,
  // ask populated() rather than count on the flag.
  int events_handle() const noexcept { return events_; }
  // Removes the directory; Busy-like error (Errc::Full) while populated.
  // The handle is empty afterwards on success.
  Result<void> remove() noexcept;
  // Waits up to timeout_ns for the cgroup to be empty.
  Result<void> wait_empty(std::int64_t timeout_ns) const noexcept;
  // How many processes are in it now (cgroup.procs lines).
  std::size_t count_processes() const noexcept;
  const char* name() const noexcept { return name_; }
  int dir_handle() const noexcept { return dir_; }

 private:
  friend class CgroupRoot;
  int dir_ = -1;
  int parent_ = -1;  // the root's directory (dup), for rmdir
  int events_ = -1;
  char name_[32] = {};
};

}  // namespace airssys::arch
