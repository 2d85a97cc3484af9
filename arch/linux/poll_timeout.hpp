#pragma once
// Internal to arch/linux: a nanosecond timeout as poll()/epoll_wait() take
// it — milliseconds rounded up (a wait never ends early), -1 for none,
// capped far below INT_MAX.

#include <climits>
#include <cstdint>

namespace airssys::arch::detail {

inline int poll_timeout_ms(std::int64_t timeout_ns) noexcept {
  if (timeout_ns < 0) return -1;
  if (timeout_ns / 1'000'000 >= INT_MAX / 2) return INT_MAX / 2;
  return static_cast<int>((timeout_ns + 999'999) / 1'000'000);
}

}  // namespace airssys::arch::detail
