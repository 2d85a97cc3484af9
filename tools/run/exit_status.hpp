#pragma once
// airssys-run's own exit statuses, shared by its single-command and
// Procfile modes.

#include <airssys/error.hpp>

#include <cerrno>

namespace airssys::run {

inline constexpr int kExitUsage = 2;
inline constexpr int kExitInternal = 125;     // airssys-run itself failed
inline constexpr int kExitCannotRun = 126;    // found, but not executable (shells' convention)
inline constexpr int kExitCannotStart = 127;  // not found, bad --cwd, ...

// Exit status for a program that could not be started, as shells do: 126
// and 127 say something about the program or its arguments (the spawn
// names them as InvalidArgument or NotFound). Anything else — a
// containment that is not available, a full table, no guardian — is
// airssys-run's own failure, not the program's.
inline int start_failure_status(const Error& e) noexcept {
  if (e.code() == Errc::InvalidArgument &&
      (e.os_error() == EACCES || e.os_error() == EISDIR || e.os_error() == ENOEXEC))
    return kExitCannotRun;
  if (e.code() == Errc::InvalidArgument || e.code() == Errc::NotFound) return kExitCannotStart;
  return kExitInternal;
}

}  // namespace airssys::run
