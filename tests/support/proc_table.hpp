#pragma once
// Reads the process table and this process's fd table from /proc, so that
// tests which spawn processes can prove they left nothing behind.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace airssys::test {

inline int self_pid() { return std::stoi(std::filesystem::read_symlink("/proc/self").string()); }

struct ProcEntry {
  int pid = 0;
  int ppid = 0;
  int pgid = 0;
  char state = '?';
};

// /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces.
inline bool read_proc(int pid, ProcEntry& out) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 2));
  out.pid = pid;
  rest >> out.state >> out.ppid >> out.pgid;
  return true;
}

// Every process whose parent is this process, zombies included.
inline std::vector<ProcEntry> children_of_self() {
  const int self = self_pid();
  std::vector<ProcEntry> out;
  for (const auto& d : std::filesystem::directory_iterator("/proc")) {
    const std::string name = d.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcEntry e;
    if (read_proc(std::stoi(name), e) && e.ppid == self) out.push_back(e);
  }
  return out;
}

inline bool process_exists(int pid) {
  ProcEntry e;
  return read_proc(pid, e);
}

inline std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& d : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

}  // namespace airssys::test
