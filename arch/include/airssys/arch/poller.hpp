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
  // Watches `fd` for readability once: after wait() reported it, it is not
  // reported again until rearm(). A reader that stops rearming while it
  // cannot pass data on leaves it in the pipe, and the pipe holds the
  // writer back.
  Result<void> add_oneshot(int fd, std::uint64_t data) noexcept;
  Result<void> rearm(int fd, std::uint64_t data) noexcept;
  void remove(int fd) noexcept;
  // Waits up to timeout_ns (< 0: no limit) and stores the data values of
  // ready descriptors; returns how many.
  std::size_t wait(std::uint64_t* out, std::size_t capacity, std::int64_t timeout_ns) noexcept;
  // Makes a wait() in another thread return (with kWake).
  void wake() noexcept;
  // Created (and not moved from).
  bool valid() const noexcept { return epoll_ >= 0; }
  // The descriptor that is readable while a watched descriptor is ready or
  // a wake is pending, for another Poller (or poll) to watch: a thread can
  // wait on this poller's events and on its own at once.
  int handle() const noexcept { return epoll_; }

 private:
  int epoll_ = -1;
  int wake_ = -1;
};

// Non-blocking I/O on a pipe end, for readers and writers driven by
// readiness. `bytes` is what moved; WouldBlock: nothing can move now; End:
// the other side is closed (end of file, or a reader that is gone — for a
// write, without the SIGPIPE that would otherwise kill this process).
enum class PipeIo : std::uint8_t { Ok, WouldBlock, End, Failed };
struct PipeResult {
  PipeIo status = PipeIo::Ok;
  std::size_t bytes = 0;
  int os_error = 0;
};
Result<void> set_nonblocking(int fd) noexcept;
PipeResult read_pipe(int fd, void* buf, std::size_t capacity) noexcept;
PipeResult write_pipe(int fd, const void* data, std::size_t length) noexcept;

}  // namespace airssys::arch
