#pragma once
// The process trees the rt tests spawn through Context::spawn_process: a
// spawn operation that owns the strings it views, and the "<label> <pid>"
// file each process of a tree appends itself to, read back, described for
// a failure message, and checked gone from the process table (by pid and
// start time).

#include <airssys/osl/operations.hpp>

#include "support/proc_table.hpp"

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airssys::test {

// A SpawnProcessOperation together with the strings it views; stdin and
// stdout are /dev/null, stderr is inherited.
struct OpSpec {
  std::string program;
  std::vector<std::string> arg_strings;
  std::vector<std::string> env_strings;
  std::vector<std::string_view> args;
  std::vector<std::string_view> env;
  osl::SpawnProcessOperation op;

  OpSpec(std::string prog, std::vector<std::string> a, std::vector<std::string> e, osl::Containment c)
      : program(std::move(prog)), arg_strings(std::move(a)), env_strings(std::move(e)) {
    for (const auto& s : arg_strings) args.emplace_back(s);
    for (const auto& s : env_strings) env.emplace_back(s);
    op.program = program;
    op.args = args;
    op.env = env;
    op.containment = c;
    op.stdio[0] = osl::StdioConfig::null();
    op.stdio[1] = osl::StdioConfig::null();
  }
  OpSpec(const OpSpec&) = delete;
  OpSpec& operator=(const OpSpec&) = delete;
};

// "<label> <pid>" lines; a label seen twice keeps its last pid.
inline std::map<std::string, int> read_pids(const std::string& pidfile) {
  std::map<std::string, int> out;
  std::ifstream in(pidfile);
  std::string label;
  int pid = 0;
  while (in >> label >> pid) out[label] = pid;
  return out;
}

// Each process with where it stands (state, parent, group, session,
// cgroup), or "gone".
inline std::string describe(const std::map<std::string, int>& pids) {
  std::ostringstream s;
  for (const auto& [label, pid] : pids) {
    ProcEntry e;
    s << label << " " << pid;
    if (read_proc(pid, e)) {
      s << " (state " << e.state << ", ppid " << e.ppid << ", pgid " << e.pgid << ", sid " << session_of(pid)
        << ", cgroup " << cgroup2_of(pid) << ")";
    } else {
      s << " (gone)";
    }
    s << "; ";
  }
  return s.str();
}

// Each process's start time, read while the processes are known to be
// there: with it, all_gone does not take another process that got one of
// the numbers since for one of the tree.
inline std::map<std::string, unsigned long long> start_times(const std::map<std::string, int>& pids) {
  std::map<std::string, unsigned long long> out;
  for (const auto& [label, pid] : pids) out[label] = start_time_of(pid);
  return out;
}

inline bool all_gone(const std::map<std::string, int>& pids, const std::map<std::string, unsigned long long>& starts) {
  for (const auto& [label, pid] : pids) {
    const auto start = starts.find(label);
    if (same_process_exists(pid, start == starts.end() ? 0 : start->second)) return false;
  }
  return true;
}

}  // namespace airssys::test
