#pragma once
// Linux cgroup v2 containment: one cgroup per managed process group, under
// a per-runtime directory. A process born inside a cgroup (clone3 with
// CLONE_INTO_CGROUP, in a cgroup namespace rooted there when the runtime
// may make one) cannot leave it without privileges, so `cgroup.kill`
// reaches every descendant, including ones that called setsid() and those
// in cgroups the tree made below its own.

#include <airssys/error.hpp>

#include <cstddef>
#include <cstdint>

namespace airssys::arch {

class Cgroup;

// What CgroupRoot::open found under its base and ended: the roots of
// runtimes that are gone (host and guardian both dead), the trees still
// alive in them, and their processes.
struct StaleSweep {
  std::size_t roots = 0;      // stale roots removed
  std::size_t trees = 0;      // populated group cgroups in them, killed
  std::size_t processes = 0;  // processes in those cgroups when they were killed
};

// The directory this runtime's cgroups live in:
// "<base>/airssys-<pid>-<pid namespace>-<n>" (the pid namespace's inode
// number in hex: two runtimes that are both PID 1 in their containers get
// different names). The runtime holds an exclusive flock on the
// directory for as long as the root is open (and its guardian, holding a
// copy of the descriptor, after the host's death): that lock, not a pid, is what tells
// another runtime — in any PID namespace — that the root is in use.
// `base` defaults to the runtime's own cgroup when it is writable, else the
// cgroup2 mount's root (on hosts with the hybrid layout, e.g.
// /sys/fs/cgroup/unified). Destroying the root kills whatever is still in
// it and removes its directories, deepest first. Move-only.
class CgroupRoot {
 public:
  // Errors say why cgroups cannot be used: no cgroup2 mount, base not a
  // cgroup2 directory, not writable (no root and no delegated subtree),
  // every name tried already taken.
  // On the way, the roots under `base` whose lock nobody holds (their
  // runtime is gone) are swept: whatever still lives in them is killed
  // (cgroup.kill), and their directories are removed, deepest first;
  // swept() says what was found. A root named the older way
  // ("airssys-<pid>-<n>", no lock) is judged by its pid, as before.
  static Result<CgroupRoot> open(const char* base = nullptr) noexcept;

  CgroupRoot() = default;
  CgroupRoot(CgroupRoot&& o) noexcept;
  CgroupRoot& operator=(CgroupRoot&& o) noexcept;
  CgroupRoot(const CgroupRoot&) = delete;
  CgroupRoot& operator=(const CgroupRoot&) = delete;
  ~CgroupRoot();

  bool valid() const noexcept { return dir_ >= 0; }
  // A new, empty cgroup "<root>/g<id>" for one managed group. A root
  // directory that vanished (removed behind the runtime's back) is made
  // again under the same name, locked, and kept at the same descriptor
  // number (the guardian holds that number).
  Result<Cgroup> create(std::uint64_t id) const noexcept;
  // Kills every process in every cgroup under the root (cgroup.kill).
  Result<void> kill_all() const noexcept;
  const char* path() const noexcept { return path_; }
  // The root's directory name ("airssys-…"), the last component of path().
  const char* name() const noexcept;
  int dir_handle() const noexcept { return dir_; }
  int base_handle() const noexcept { return base_; }
  // The stale roots open() swept before it made this one.
  const StaleSweep& swept() const noexcept { return swept_; }
  // How many times create() has made the root's directory again: a holder
  // of copies of its descriptors (the guardian) must take new ones.
  std::uint32_t incarnation() const noexcept { return incarnation_; }

 private:
  void close_all() noexcept;
  bool reopen() const noexcept;
  int dir_ = -1;   // the root directory (locked), O_PATH-free so openat() works
  int base_ = -1;  // its parent, to remove the root
  char path_[256] = {};
  StaleSweep swept_;
  mutable std::uint32_t incarnation_ = 0;  // reopen() keeps dir_'s number, not its file
};

// True when `path`, a cgroup path as /proc/<pid>/cgroup shows it, is the
// cgroup `dir` or one below it. `dir` is the tail of such a path that
// names a cgroup uniquely ("/airssys-…/g3"); it is matched at component
// boundaries: "/airssys-…/g3/worker" is within "/airssys-…/g3",
// "/airssys-…/g30" is not.
bool cgroup_path_within(const char* path, const char* dir) noexcept;

// The inode number of `pid`'s cgroup namespace (/proc/<pid>/ns/cgroup), or
// 0 when it cannot be read (no such process, or an ended one: a zombie
// has no namespaces left).
std::uint64_t cgroup_namespace_of(int pid) noexcept;

// A process's cgroup namespace, held open: the inode number identifies the
// namespace only while it exists, and a namespace that is held cannot end
// and have its number given to a new one. Move-only; empty when it could
// not be opened.
class CgroupNamespace {
 public:
  static CgroupNamespace of(int pid) noexcept;
  CgroupNamespace() = default;
  CgroupNamespace(CgroupNamespace&& o) noexcept : fd_(o.fd_), id_(o.id_) {
    o.fd_ = -1;
    o.id_ = 0;
  }
  CgroupNamespace& operator=(CgroupNamespace&& o) noexcept;
  CgroupNamespace(const CgroupNamespace&) = delete;
  CgroupNamespace& operator=(const CgroupNamespace&) = delete;
  ~CgroupNamespace();
  // The inode number (as cgroup_namespace_of gives it), 0 when empty.
  std::uint64_t id() const noexcept { return id_; }

 private:
  int fd_ = -1;
  std::uint64_t id_ = 0;
};

// One cgroup holding one managed tree, with whatever cgroups the tree
// makes below it. Destroying it kills whatever is left (cgroup.kill reaches
// the cgroups below too), waits a bounded time for it to empty and removes
// the directories, deepest first. Move-only.
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
  // Removes the directory and every cgroup the tree made below it,
  // deepest first; Busy-like error (Errc::Full) while any is populated.
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
