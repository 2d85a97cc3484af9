#pragma once
// Byte streams by descriptor, for programs built on the library that read a
// child's output pipes themselves (airssys-run's Procfile mode) and need to
// know whether they write to a terminal.

#include <airssys/error.hpp>

#include <cstddef>

namespace airssys::arch {

// Reads what is available from `fd`, at most `capacity` bytes, waiting only
// while nothing is (a pipe returns as soon as any byte is there). 0 at end
// of file. An interrupted read is retried.
Result<std::size_t> read_some(int fd, char* out, std::size_t capacity) noexcept;

// True when `fd` is a terminal.
bool is_terminal(int fd) noexcept;

}  // namespace airssys::arch
