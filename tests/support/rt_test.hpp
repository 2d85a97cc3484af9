#pragma once
// Helpers shared by the rt tests: readable Catch output for the runtime's
// enums, a thread-safe log, spawn options, and an actor scripted by lambdas.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/errc_printer.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace Catch {
template <>
struct StringMaker<airssys::StopReason> {
  static std::string convert(airssys::StopReason r) { return airssys::to_string(r); }
};
}  // namespace Catch

namespace airssys::test {

#ifdef AIRSSYS_SANITIZED
inline constexpr int kScale = 4;  // sanitizer builds run the loops 4x shorter
#else
inline constexpr int kScale = 1;
#endif

// Values pushed from handlers, read by the test thread.
template <class T>
class Log {
 public:
  void push(T v) {
    std::lock_guard<std::mutex> l(m_);
    v_.push_back(std::move(v));
  }
  std::vector<T> get() const {
    std::lock_guard<std::mutex> l(m_);
    return v_;
  }
  std::vector<T> sorted() const {
    auto v = get();
    std::sort(v.begin(), v.end());
    return v;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> l(m_);
    return v_.size();
  }

 private:
  mutable std::mutex m_;
  std::vector<T> v_;
};

// A latch a handler can wait on, so that its worker drains nothing until the
// test opens it.
struct Gate {
  std::atomic<bool> open{false};
  void release() noexcept { open.store(true, std::memory_order_release); }
  void wait() const noexcept {
    while (!open.load(std::memory_order_acquire)) std::this_thread::yield();
  }
};

// Opens a gate on scope exit, so that a failed REQUIRE never leaves a worker
// stuck in a handler. Declare it after the System so that it runs first.
struct OpenOnExit {
  Gate& gate;
  ~OpenOnExit() { gate.release(); }
};

inline SpawnOptions on_worker(int worker, std::uint32_t mailbox = 0) {
  SpawnOptions o;
  o.worker = worker;
  o.mailbox_capacity = mailbox;
  return o;
}

// An actor whose on_start and on_message are given by the test.
template <class M>
struct Scripted : Actor<M> {
  using Start = std::function<void(Context<M>&)>;
  using Handle = std::function<void(Context<M>&, M&)>;
  Start start;
  Handle handle;
  Scripted(Start s, Handle h) : start(std::move(s)), handle(std::move(h)) {}
  void on_start(Context<M>& ctx) override {
    if (start) start(ctx);
  }
  void on_message(Context<M>& ctx, M& m) override {
    if (handle) handle(ctx, m);
  }
};

template <class M>
Result<ActorRef<M>> spawn_scripted(System& sys, int worker, typename Scripted<M>::Start start,
                                   typename Scripted<M>::Handle handle) {
  return sys.spawn_with<Scripted<M>>(on_worker(worker),
                                     [start, handle] { return Scripted<M>(start, handle); });
}

}  // namespace airssys::test
