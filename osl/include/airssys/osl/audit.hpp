#pragma once
// AuditLog: one JSON line per process event — spawn, signal, group kill,
// exit, adopted orphan, teardown, cleanup, denial — with the time, the
// principal, pid, pgid, containment and the result. Lines go to a file
// (appended with one write each), to stderr, or to an in-memory ring of
// fixed capacity (the oldest line is overwritten when it is full). Never
// allocates after construction.

#include <airssys/osl/executor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace airssys::osl {

class AuditLog final : public Middleware {
 public:
  static constexpr std::size_t kLineSize = 640;

  // In-memory ring of `capacity` lines.
  static std::unique_ptr<AuditLog> ring(std::size_t capacity);
  static std::unique_ptr<AuditLog> to_stderr();
  // Appends to `path` (created 0644); an error names the path.
  static Result<std::unique_ptr<AuditLog>> to_file(const char* path);

  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  void observe(const ProcessEvent& event) noexcept override;

  // Lines written since construction (all sinks).
  std::uint64_t written() const noexcept;
  // The ring's lines, oldest first: copies line `i` (0 .. lines()-1) into
  // out, NUL-terminated, and returns its length. Ring only.
  std::size_t lines() const noexcept;
  std::size_t copy_line(std::size_t i, char* out, std::size_t capacity) const noexcept;

  // Formats one event as a JSON object (no newline); returns its length.
  static std::size_t format(const ProcessEvent& e, char* out, std::size_t capacity) noexcept;

 private:
  AuditLog() = default;
  mutable std::mutex mu_;
  int fd_ = -1;
  bool owns_fd_ = false;
  std::unique_ptr<char[]> ring_;
  std::unique_ptr<std::uint16_t[]> ring_len_;
  std::size_t capacity_ = 0;
  std::uint64_t written_ = 0;
};

}  // namespace airssys::osl
