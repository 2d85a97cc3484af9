#pragma once
// A cgroup base of the test's own: "<cgroup2 mount>/airssys-<self>-testbase-<n>".
// Tests that plant the roots of a dead runtime and check what the next
// CgroupRoot::open() sweeps must be the only sweeper: every runtime that
// opens the shared base (other tests running in parallel under ctest -j)
// sweeps it too. No runtime sweeps below a base it was not given, and the
// name matches neither root pattern, so nothing sweeps the base itself.
// Removed, deepest directory first, at the end of the scope.

#include <catch2/catch.hpp>

#include "support/proc_table.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace airssys::test {

class PrivateCgroupBase {
 public:
  PrivateCgroupBase() {
    static std::atomic<int> next{0};
    const std::string mount = cgroup2_mount_point();
    REQUIRE_FALSE(mount.empty());
    path = mount + "/airssys-" + std::to_string(::getpid()) + "-testbase-" + std::to_string(next++);
    std::error_code ec;
    REQUIRE(std::filesystem::create_directory(path, ec));
  }
  PrivateCgroupBase(const PrivateCgroupBase&) = delete;
  PrivateCgroupBase& operator=(const PrivateCgroupBase&) = delete;
  ~PrivateCgroupBase() {
    // Cgroup directories go with rmdir only (their files cannot be
    // unlinked), children before parents.
    std::vector<std::string> dirs;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory()) dirs.push_back(it->path().string());
    std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const auto& d : dirs) ::rmdir(d.c_str());
    ::rmdir(path.c_str());
  }

  const char* c_str() const noexcept { return path.c_str(); }
  std::string path;
};

}  // namespace airssys::test
