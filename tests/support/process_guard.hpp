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
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
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

// Pids a test records, each held by a pidfd taken when it was recorded
// (and, for a description, the start time its process had then): at the
// end, another process that got the same number is not taken for it. A
// start time alone (clock ticks, 10 ms) cannot tell a process from one
// that got its number within the same tick, which a test that forces
// numbers through ns_last_pid, beside one that forks without pause, makes
// happen. A pid whose process had ended when it was recorded is judged by
// its start time (0: not at all).
class RecordedPids {
 public:
  RecordedPids() = default;
  RecordedPids(const RecordedPids&) = delete;
  RecordedPids& operator=(const RecordedPids&) = delete;
  ~RecordedPids() { clear(); }
  void push_back(int pid) { push_back(pid, start_time_of(pid)); }
  // A pid whose start time was read earlier, while its process was known
  // to be there (it may be gone by now: then the pidfd taken now is
  // another process's, and is dropped).
  void push_back(int pid, unsigned long long start) {
    int fd = pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1;
    if (fd >= 0 && (start == 0 || start_time_of(pid) != start)) {
      ::close(fd);
      fd = -1;
    }
    pids_.push_back(pid);
    starts_.push_back(start);
    fds_.push_back(fd);
    if (fd >= 0) guard_fds().push_back(fd);
  }
  RecordedPids& operator=(const std::vector<int>& pids) {
    clear();
    for (int pid : pids) push_back(pid);
    return *this;
  }
  RecordedPids& operator=(std::initializer_list<int> pids) { return *this = std::vector<int>(pids); }
  void clear() {
    for (int fd : fds_) {
      if (fd < 0) continue;
      auto& held = guard_fds();
      held.erase(std::remove(held.begin(), held.end(), fd), held.end());
      ::close(fd);
    }
    pids_.clear();
    starts_.clear();
    fds_.clear();
  }
  std::size_t size() const { return pids_.size(); }
  int operator[](std::size_t i) const { return pids_[i]; }
  unsigned long long start(std::size_t i) const { return starts_[i]; }
  // Whether the recorded process is still there, running or unreaped.
  bool exists(std::size_t i) const {
    if (fds_[i] >= 0) return ::syscall(SYS_pidfd_send_signal, fds_[i], 0, nullptr, 0) == 0;
    return same_process_exists(pids_[i], starts_[i]);
  }
  // Its number's state letter while exists(i), for a message.
  std::string describe(std::size_t i) const {
    ProcEntry e;
    return "pid " + std::to_string(pids_[i]) + (read_proc(pids_[i], e) ? std::string(" state ") + e.state : "");
  }
  std::vector<int>::const_iterator begin() const { return pids_.begin(); }
  std::vector<int>::const_iterator end() const { return pids_.end(); }

 private:
  std::vector<int> pids_;
  std::vector<unsigned long long> starts_;
  std::vector<int> fds_;  // pidfds, -1 where none could be held
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
      INFO("recorded " << pids.describe(i));
      CHECK_FALSE(pids.exists(i));
    }
    // Its descriptors are not the test's.
    pids.clear();
    const Census after = Census::take();
    INFO("before: " << before.describe());
    INFO("after:  " << after.describe());
    CHECK(after == before);
  }
};

}  // namespace airssys::test
