#pragma once
// AuditLog: one JSON line per process event — spawn, signal, group kill,
// wait, exit, adopted orphan, teardown, cleanup, denial — with the time, the
// principal, pid, pgid, containment and the result; a spawn also with the
// resolved executable, the whole argv, the working directory and the names
// (never the values) of the environment overrides. Lines go to a file
// (appended with one write each), to stderr, or to an in-memory ring of
// fixed capacity (the oldest line is overwritten when it is full). Never
// allocates after construction.
//
// Every line is one valid JSON object (UTF-8; a byte that is not part of
// valid UTF-8 is written as \u00XX, the byte's value) of at most
// kLineSize bytes with its newline. What does not fit is cut, never the
// syntax: a string is shortened, argv and the environment names end early
// ("argv_elided" / "env_elided" count what is missing, "argc" is always
// the whole count) and the line says "truncated":true.
//
// A line that cannot be written (a full disk, /dev/full, a closed pipe) is
// counted (write_failures) and makes the log `failing`. With
// set_fail_closed(true) a failing log refuses, through check(), every
// later Spawn, Signal and GroupKill (Errc::Unavailable); the operation
// whose record was the first to be lost has already happened. Wait and
// Teardown are never refused: refusing them would only leave processes
// running.

#include <airssys/osl/executor.hpp>

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace airssys::osl {

class AuditLog final : public Middleware {
 public:
  static constexpr std::size_t kLineSize = 4096;  // with the newline: one atomic write to a pipe

  // In-memory ring of `capacity` lines.
  static std::unique_ptr<AuditLog> ring(std::size_t capacity);
  static std::unique_ptr<AuditLog> to_stderr();
  // Appends to `path` (created 0644); an error names the path.
  static Result<std::unique_ptr<AuditLog>> to_file(const char* path);

  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  void observe(const ProcessEvent& event) noexcept override;
  // Refuses operations once the log is failing, in fail-closed mode.
  Result<void> check(const OperationView& op, const SecurityContext& who) noexcept override;

  // Fail-closed (see above); off by default. Set before the first
  // operation.
  void set_fail_closed(bool on) noexcept;
  // Lines that could not be written, and whether there was any.
  std::uint64_t write_failures() const noexcept;
  bool failing() const noexcept;
  // Why the last line could not be written (naming the file).
  Error last_failure() const noexcept;

  // Lines written since construction (all sinks).
  std::uint64_t written() const noexcept;
  // The ring's lines, oldest first: copies line `i` (0 .. lines()-1) into
  // out, NUL-terminated, and returns its length. Ring only.
  std::size_t lines() const noexcept;
  std::size_t copy_line(std::size_t i, char* out, std::size_t capacity) const noexcept;

  // Formats one event as a JSON object (no newline), NUL-terminated;
  // returns its length. A capacity of at least kMinFormat always gives a
  // whole object (cut as above); a smaller one gets a prefix.
  static constexpr std::size_t kMinFormat = 256;
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
  std::uint64_t failures_ = 0;
  Error last_failure_;
  char path_[128] = {};  // the file, for messages
  // Only ever goes from false to true; read without mu_ by check().
  std::atomic<bool> failing_{false};
  std::atomic<bool> fail_closed_{false};
};

}  // namespace airssys::osl
