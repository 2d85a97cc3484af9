#pragma once
// Polling helper for tests: waits until a condition holds, with a generous
// limit so that a broken runtime fails the test instead of hanging it.
// Never used to assert a time.

#include <chrono>
#include <thread>

namespace airssys::test {

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace airssys::test
