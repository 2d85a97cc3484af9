#include <airssys/arch/poller.hpp>

#include "poll_timeout.hpp"

#include <fcntl.h>
#include <signal.h>
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

Result<void> Poller::add_oneshot(int fd, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = data;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0)
    return Error::make_os(errno, "poller: watching fd %d: %s", fd, std::strerror(errno));
  return {};
}

Result<void> Poller::rearm(int fd, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = data;
  if (epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev) != 0)
    return Error::make_os(errno, "poller: re-arming fd %d: %s", fd, std::strerror(errno));
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

Result<void> set_nonblocking(int fd) noexcept {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return Error::make_os(errno, "fd %d cannot be made non-blocking: %s", fd, std::strerror(errno));
  return {};
}

PipeResult read_pipe(int fd, void* buf, std::size_t capacity) noexcept {
  for (;;) {
    const ssize_t n = read(fd, buf, capacity);
    if (n > 0) return {PipeIo::Ok, static_cast<std::size_t>(n), 0};
    if (n == 0) return {PipeIo::End, 0, 0};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {PipeIo::WouldBlock, 0, 0};
    return {PipeIo::Failed, 0, errno};
  }
}

PipeResult write_pipe(int fd, const void* data, std::size_t length) noexcept {
  // A reader that is gone must give EPIPE, not a SIGPIPE that ends this
  // process: the signal is blocked for this thread around the write, and
  // one it raised is taken back before the mask is restored.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  PipeResult r;
  for (;;) {
    const ssize_t n = write(fd, data, length);
    if (n >= 0) {
      r = {PipeIo::Ok, static_cast<std::size_t>(n), 0};
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r = {PipeIo::WouldBlock, 0, 0};
    } else if (errno == EPIPE) {
      r = {PipeIo::End, 0, EPIPE};
      if (!was_pending) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    } else {
      r = {PipeIo::Failed, 0, errno};
    }
    break;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return r;
}

}  // namespace airssys::arch
