#pragma once
// The Procfile format as Foreman and Honcho read it: one service per line,
// `name: command`, where name is [A-Za-z0-9_-]+; blank lines and lines
// whose first non-blank character is '#' are skipped. airssys-run runs each
// command through `/bin/sh -c`, as Foreman does.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace airssys::run {

// The longest service name: a supervisor child id holds 31 bytes.
inline constexpr std::size_t kMaxServiceName = 31;

struct ProcfileEntry {
  std::string name;
  std::string command;
  int line = 0;  // 1-based, for messages
};

// Parses `text`, read from `path` (used only in messages). On error returns
// false and sets `error` to "PATH:LINE: what is wrong" (the file and line
// named, as a compiler would).
bool parse_procfile(std::string_view text, std::string_view path, std::vector<ProcfileEntry>& out,
                    std::string& error);

// Reads and parses the file at `path`; a missing or unreadable file is an
// error naming it.
bool read_procfile(const char* path, std::vector<ProcfileEntry>& out, std::string& error);

}  // namespace airssys::run
