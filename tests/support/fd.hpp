#pragma once
// A descriptor closed on every exit path, so that a failed REQUIRE cannot
// leak one into the next test's descriptor count.

#include <unistd.h>

namespace airssys::test {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace airssys::test
