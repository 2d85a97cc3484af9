#pragma once
// What a process tree costs right now: CPU time and resident memory,
// summed over its live processes, read from /proc. For status requests,
// not for hot paths (one pass over /proc per call).

#include <cstddef>
#include <cstdint>

namespace airssys::arch {

struct TreeUsage {
  std::uint64_t cpu_ns = 0;        // user + system time of the live processes
  std::uint64_t memory_bytes = 0;  // their resident set
  std::size_t processes = 0;       // live (not zombie) processes counted
};

// Sums over every process that is in process group `pgid` (> 1), or whose
// cgroup is `cgroup_dir` or below it (a tail as /proc/<pid>/cgroup shows it,
// see cgroup_path_within; null or empty: not used). A process counts once.
// Time a process's ended children spent is not included.
TreeUsage tree_usage(int pgid, const char* cgroup_dir) noexcept;

}  // namespace airssys::arch
