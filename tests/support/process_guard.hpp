#pragma once
// "Nothing left" guards for tests that start real processes. Declared first
// in a test (before anything that holds processes, so that it runs last),
// a guard records the state at the start and, at the end — also after a
// failed REQUIRE — first kills and reaps whatever is still there, so that
// a failing test cannot leave a process behind, then checks that a passing
// test had left nothing to clean.

#include "support/proc_table.hpp"

#include <catch2/catch.hpp>

#include <sys/prctl.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace airssys::test {

// Children and descriptor count: no child of this process may be left,
// running or unreaped, and no descriptor may have leaked. Makes nobody a
// subreaper; a test whose orphans must come back here does that itself.
struct NoChildrenLeft {
  std::size_t fds = open_fds();
  NoChildrenLeft() = default;
  NoChildrenLeft(const NoChildrenLeft&) = delete;
  NoChildrenLeft& operator=(const NoChildrenLeft&) = delete;
  ~NoChildrenLeft() {
    const int stray = kill_and_reap_children();
    CHECK(stray == 0);
    CHECK(children_of_self().empty());
    CHECK(open_fds() == fds);
  }
};

// Pids a test records, each with the start time its process had when it
// was recorded (0 if it had ended already): at the end, another process
// that got the same number is not taken for it.
class RecordedPids {
 public:
  void push_back(int pid) { push_back(pid, start_time_of(pid)); }
  // A pid whose start time was read earlier, while its process was known
  // to be there (it may be gone by now).
  void push_back(int pid, unsigned long long start) {
    pids_.push_back(pid);
    starts_.push_back(start);
  }
  RecordedPids& operator=(const std::vector<int>& pids) {
    clear();
    for (int pid : pids) push_back(pid);
    return *this;
  }
  RecordedPids& operator=(std::initializer_list<int> pids) { return *this = std::vector<int>(pids); }
  void clear() {
    pids_.clear();
    starts_.clear();
  }
  std::size_t size() const { return pids_.size(); }
  int operator[](std::size_t i) const { return pids_[i]; }
  unsigned long long start(std::size_t i) const { return starts_[i]; }
  std::vector<int>::const_iterator begin() const { return pids_.begin(); }
  std::vector<int>::const_iterator end() const { return pids_.end(); }

 private:
  std::vector<int> pids_;
  std::vector<unsigned long long> starts_;
};

// A whole Census (children, descriptors, this process's airssys cgroups)
// compared before and after. Makes this process a child subreaper up front
// (the executor makes it one too, process-wide and permanently), so that
// orphans always come back here and can be reaped: PID 1 in the test
// container does not reap them. With a `marker`, every process whose
// environment carries it is killed first, wherever it went (setsid, double
// forks), and none may have been left. Every pid in `pids` (processes of the
// test's trees) must be gone at the end.
struct NothingLeftCensus {
  std::string marker;
  Census before;
  RecordedPids pids;
  explicit NothingLeftCensus(std::string m = {}) : marker(std::move(m)) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    before = Census::take();
  }
  NothingLeftCensus(const NothingLeftCensus&) = delete;
  NothingLeftCensus& operator=(const NothingLeftCensus&) = delete;
  ~NothingLeftCensus() {
    // An empty marker would match only empty environment entries: no
    // marker means no marked processes to look for.
    const int killed = marker.empty() ? 0 : kill_processes_with_env(marker);
    const int stray = kill_and_reap_children();
    if (!marker.empty()) CHECK(killed == 0);
    CHECK(stray == 0);
    for (std::size_t i = 0; i < pids.size(); ++i) {
      INFO("recorded pid " << pids[i]);
      CHECK_FALSE(same_process_exists(pids[i], pids.start(i)));
    }
    const Census after = Census::take();
    INFO("before: " << before.describe());
    INFO("after:  " << after.describe());
    CHECK(after == before);
  }
};

}  // namespace airssys::test
