#include <airssys/arch/poller.hpp>

#include "poll_timeout.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <utility>

namespace airssys::arch {

Result<Poller> Poller::create() noexcept {
  Poller p;
  p.epoll_ = epoll_create1(EPOLL_CLOEXEC);
  p.wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p.epoll_ < 0 || p.wake_ < 0)
    return Error::make_os(errno, "poller: no file descriptor: %s", std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWake;
  if (epoll_ctl(p.epoll_, EPOLL_CTL_ADD, p.wake_, &ev) != 0)
    return Error::make_os(errno, "poller: %s", std::strerror(errno));
  return p;
}

Poller::Poller(Poller&& o) noexcept : epoll_(o.epoll_), wake_(o.wake_) { o.epoll_ = o.wake_ = -1; }

Poller& Poller::operator=(Poller&& o) noexcept {
  if (this != &o) {
    this->~Poller();
    new (this) Poller(std::move(o));
  }
  return *this;
}

Poller::~Poller() {
  if (epoll_ >= 0) close(epoll_);
  if (wake_ >= 0) close(wake_);
  epoll_ = wake_ = -1;
}

Result<void> Poller::add(int fd, bool priority, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = priority ? EPOLLPRI : EPOLLIN;
  ev.data.u64 = data;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0)
    return Error::make_os(errno, "poller: watching fd %d: %s", fd, std::strerror(errno));
  return {};
}

void Poller::remove(int fd) noexcept { epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr); }

std::size_t Poller::wait(std::uint64_t* out, std::size_t capacity, std::int64_t timeout_ns) noexcept {
  epoll_event evs[64];
  const int max = static_cast<int>(capacity < 64 ? capacity : 64);
  const int n = epoll_wait(epoll_, evs, max, detail::poll_timeout_ms(timeout_ns));
  if (n <= 0) return 0;
  for (int i = 0; i < n; ++i) {
    out[i] = evs[i].data.u64;
    if (out[i] == kWake) {
      std::uint64_t drained;
      (void)!read(wake_, &drained, sizeof drained);
    }
  }
  return static_cast<std::size_t>(n);
}

void Poller::wake() noexcept {
  const std::uint64_t one = 1;
  (void)!write(wake_, &one, sizeof one);
}

}  // namespace airssys::arch
