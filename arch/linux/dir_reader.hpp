#pragma once
// Internal to arch/linux: the entries of an open directory, read with
// getdents64 into a buffer inside the reader. opendir() allocates its
// stream on the heap; the teardown path (a /proc walk, a cgroup's removal)
// runs on every restart and must allocate nothing.

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace airssys::arch::detail {

class DirReader {
 public:
  // Reads the directory open at `fd` from its current offset; the caller
  // keeps the descriptor (and closes it).
  explicit DirReader(int fd) noexcept : fd_(fd) {}
  DirReader(const DirReader&) = delete;
  DirReader& operator=(const DirReader&) = delete;

  // The next entry's name ("." and ".." included, as readdir gives them),
  // its type (DT_DIR, ...) in `*type` when not null; null at the end or on
  // an error.
  const char* next(unsigned char* type = nullptr) noexcept {
    if (pos_ >= len_) {
      const long n = fd_ < 0 ? -1 : syscall(SYS_getdents64, fd_, buf_, sizeof buf_);
      if (n <= 0) return nullptr;
      len_ = static_cast<std::size_t>(n);
      pos_ = 0;
    }
    // linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
    const char* rec = buf_ + pos_;
    std::uint16_t reclen = 0;
    __builtin_memcpy(&reclen, rec + 16, sizeof reclen);
    pos_ += reclen;
    if (type != nullptr) *type = static_cast<unsigned char>(rec[18]);
    return rec + 19;
  }

 private:
  int fd_;
  std::size_t len_ = 0;
  std::size_t pos_ = 0;
  // Small: readers nest in the recursive cgroup walks (kMaxDepth levels).
  alignas(8) char buf_[1024];
};

}  // namespace airssys::arch::detail
