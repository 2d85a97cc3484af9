#pragma once
// Taking blocked signals on airssys-run's main thread, in both modes.
//
// POSIX signal masking and sigtimedwait are not in <csignal>. The library
// keeps OS headers inside arch/; this is an executable built on it, not
// part of it, so it includes <signal.h> itself.

#include <signal.h>

#include <chrono>
#include <ctime>

namespace airssys::run {

// Waits up to `timeout` for one of `set` (blocked in every thread); 0 if
// none came. The short timeouts callers pass are also how the main thread
// notices what the runtime did: the runtime has no callback into a
// non-actor thread, and a few ms of latency at exit cost nothing.
inline int next_signal(const sigset_t& set, std::chrono::milliseconds timeout) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1'000'000);
  siginfo_t info;
  const int sig = sigtimedwait(&set, &info, &ts);
  return sig > 0 ? sig : 0;  // EAGAIN: timeout; EINTR: some other signal
}

}  // namespace airssys::run
