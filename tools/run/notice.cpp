#include "run/notice.hpp"

#include <airssys/arch/wait.hpp>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>

// The wait for room on stderr (poll) and the write: an executable built on
// the library, not part of it, so it includes what it needs itself.
#include <poll.h>
#include <unistd.h>

namespace airssys::run {

namespace {

std::atomic<std::uint64_t> dropped{0};
// Set once a message was dropped: later ones look for room without waiting.
std::atomic<bool> stalled{false};

}  // namespace

void notice(const char* fmt, ...) noexcept {
  char text[kNoticeMax];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  std::size_t left = static_cast<std::size_t>(n) < sizeof text ? static_cast<std::size_t>(n) : sizeof text - 1;
  const char* p = text;
  // kNoticeMax is below a pipe's atomic write size: once poll reports room
  // on a pipe, a write of the rest does not block.
  const std::int64_t end =
      arch::monotonic_ns() + (stalled.load(std::memory_order_relaxed) ? 0 : std::int64_t{kNoticeWaitMs} * 1'000'000);
  while (left > 0) {
    const std::int64_t wait_ms = (end - arch::monotonic_ns() + 999'999) / 1'000'000;
    pollfd fd{2, POLLOUT, 0};
    const int ready = ::poll(&fd, 1, wait_ms > 0 ? static_cast<int>(wait_ms) : 0);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || (fd.revents & POLLOUT) == 0) break;  // no room in time, or no stderr to write to
    const ssize_t w = ::write(2, p, left);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w <= 0) break;
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  if (left > 0) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    stalled.store(true, std::memory_order_relaxed);
  } else {
    stalled.store(false, std::memory_order_relaxed);
  }
}

std::uint64_t notices_dropped() noexcept { return dropped.load(std::memory_order_relaxed); }

void notices_stalled() noexcept { stalled.store(true, std::memory_order_relaxed); }

}  // namespace airssys::run
