#include <airssys/arch/wait.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>

namespace airssys::arch {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "futex needs a plain 32-bit word");

namespace {
long futex(const std::atomic<std::uint32_t>& word, int op, std::uint32_t val,
           const timespec* timeout) noexcept {
  // The futex word is the atomic's object representation (asserted above).
  auto* addr = const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
  return syscall(SYS_futex, addr, op, val, timeout, nullptr, 0);
}
}  // namespace

void wait_on(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
             std::int64_t timeout_ns) noexcept {
  if (timeout_ns < 0) {
    futex(word, FUTEX_WAIT_PRIVATE, expected, nullptr);
    return;
  }
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
              static_cast<long>(timeout_ns % 1'000'000'000)};
  futex(word, FUTEX_WAIT_PRIVATE, expected, &ts);
}

void wake_one(const std::atomic<std::uint32_t>& word) noexcept {
  futex(word, FUTEX_WAKE_PRIVATE, 1, nullptr);
}

void wake_all(const std::atomic<std::uint32_t>& word) noexcept {
  futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

}  // namespace airssys::arch
