#include <airssys/arch/stream.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace airssys::arch {

Result<std::size_t> read_some(int fd, char* out, std::size_t capacity) noexcept {
  for (;;) {
    const ssize_t n = ::read(fd, out, capacity);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return Error::make_os(errno, "read from fd %d: %s", fd, std::strerror(errno));
  }
}

bool is_terminal(int fd) noexcept { return ::isatty(fd) == 1; }

}  // namespace airssys::arch
