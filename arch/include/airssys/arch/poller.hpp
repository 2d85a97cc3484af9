#pragma once
// Readiness of many descriptors at once (epoll on Linux), with a wake-up
// another thread can trigger. For the process reactor: pidfds become
// readable when their process ends, cgroup.events signals priority data
// when a cgroup empties.

#include <airssys/error.hpp>

#include <cstddef>
#include <cstdint>

namespace airssys::arch {

class Poller {
 public:
  // The data value wait() reports for wake().
  static constexpr std::uint64_t kWake = ~std::uint64_t{0};

  static Result<Poller> create() noexcept;
  Poller() = default;
  Poller(Poller&& o) noexcept;
  Poller& operator=(Poller&& o) noexcept;
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  ~Poller();

  // Watches `fd` for readability (priority: for urgent/priority data, as
  // cgroup.events uses) and reports `data` when it is ready.
  Result<void> add(int fd, bool priority, std::uint64_t data) noexcept;
  void remove(int fd) noexcept;
  // Waits up to timeout_ns (< 0: no limit) and stores the data values of
  // ready descriptors; returns how many.
  std::size_t wait(std::uint64_t* out, std::size_t capacity, std::int64_t timeout_ns) noexcept;
  // Makes a wait() in another thread return (with kWake).
  void wake() noexcept;

 private:
  int epoll_ = -1;
  int wake_ = -1;
};

}  // namespace airssys::arch
