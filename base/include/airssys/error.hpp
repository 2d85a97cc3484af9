#pragma once
// The base layer: one error type for the whole library (arch, osl, rt and
// the tools), and Result<T> to carry it. Every layer includes this header;
// it includes nothing of the library.

#include <cstdarg>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace airssys {

// The cause of a failure. `to_string` gives the short name.
enum class Errc : std::uint8_t {
  Ok = 0,
  Full,             // a bounded resource (mailbox, pool, table) has no room
  Dead,             // the target actor, request or timer no longer exists
  Timeout,          // a deadline passed first
  InvalidArgument,  // an argument is out of range or malformed
  NotFound,         // a name or id is not known
  AlreadyExists,    // a name is taken
  TypeMismatch,     // a name refers to an actor of another message type
  ShuttingDown,     // the system is stopping and takes no new work
  TooLarge,         // a message or actor does not fit the largest pool block
  WouldDeadlock,    // a blocking call made where it could never return
  Failed,           // an actor handler reported failure (Context::fail)
  ChildEscalated,   // a child actor escalated its failure to its parent
  Exception,        // an exception escaped an actor handler
  Os,               // an operating-system call failed; see os_error()
  Denied,           // refused by a security policy; the message names the rule
  Unavailable,      // a facility the operation needs is missing (cgroup2, kernel feature)
};

const char* to_string(Errc code) noexcept;

// An error value: a cause, the OS error code where there is one, and a
// message that names the input that caused it ("mailbox of actor #12 is
// full (capacity 64)"). Fixed size, never allocates; cheap to pass through
// hot paths because success paths never touch the message buffer.
class Error {
 public:
  static constexpr std::size_t kMessageSize = 112;

  Error() noexcept : code_(Errc::Ok) { text_[0] = '\0'; }
  explicit Error(Errc code, int os_error = 0) noexcept : code_(code), os_error_(os_error) {
    text_[0] = '\0';
  }
  // printf-style message naming the offending input.
  static Error make(Errc code, const char* fmt, ...) noexcept
      __attribute__((format(printf, 2, 3)));
  static Error make_os(int os_error, const char* fmt, ...) noexcept
      __attribute__((format(printf, 2, 3)));
  // A cause with the OS error that revealed it (NotFound + ENOENT, ...).
  static Error make_code_os(Errc code, int os_error, const char* fmt, ...) noexcept
      __attribute__((format(printf, 3, 4)));

  Errc code() const noexcept { return code_; }
  int os_error() const noexcept { return os_error_; }
  // The message, or the cause's name when no message was given.
  const char* message() const noexcept { return text_[0] != '\0' ? text_ : to_string(code_); }

 private:
  void format(const char* fmt, va_list args) noexcept;

  Errc code_;
  int os_error_ = 0;
  char text_[kMessageSize];
};

// Reading the value of a failed Result: writes "airssys: value() of a
// failed Result: <its error>" to stderr and aborts (SIGABRT).
[[noreturn]] void value_of_failed_result(const Error& e) noexcept;

// Either a T or an Error; `std::expected`-style. No exceptions: reading the
// value of a failed result (value(), *, ->) is a programming error: it
// aborts, naming the error on stderr. Test ok() or the bool first.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(const T& v) : ok_(true) { new (&value_) T(v); }
  Result(T&& v) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(true) {
    new (&value_) T(std::move(v));
  }
  Result(const Error& e) noexcept : ok_(false) { new (&error_) Error(e); }
  Result(Errc c) noexcept : ok_(false) { new (&error_) Error(c); }
  Result(const Result& o) : ok_(o.ok_) {
    if (ok_) new (&value_) T(o.value_); else new (&error_) Error(o.error_);
  }
  Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(o.ok_) {
    if (ok_) new (&value_) T(std::move(o.value_)); else new (&error_) Error(o.error_);
  }
  Result& operator=(const Result& o) {
    if (this != &o) {
      this->~Result();
      new (this) Result(o);
    }
    return *this;
  }
  Result& operator=(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      this->~Result();
      new (this) Result(std::move(o));
    }
    return *this;
  }
  ~Result() {
    if (ok_) value_.~T();
  }

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  T& value() & noexcept { check(); return value_; }
  const T& value() const& noexcept { check(); return value_; }
  T&& value() && noexcept { check(); return std::move(value_); }
  T& operator*() noexcept { return value(); }
  T* operator->() noexcept { return &value(); }
  const Error& error() const noexcept { return ok_ ? kOk() : error_; }
  Errc code() const noexcept { return ok_ ? Errc::Ok : error_.code(); }

 private:
  void check() const noexcept {
    if (!ok_) [[unlikely]]
      value_of_failed_result(error_);
  }
  static const Error& kOk() noexcept {
    static const Error ok;
    return ok;
  }
  bool ok_;
  union {
    T value_;
    Error error_;
  };
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept : ok_(true) {}
  Result(const Error& e) noexcept : ok_(false), error_(e) {}
  Result(Errc c) noexcept : ok_(c == Errc::Ok), error_(c) {}

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const noexcept { return error_; }
  Errc code() const noexcept { return ok_ ? Errc::Ok : error_.code(); }

 private:
  bool ok_;
  Error error_;
};

}  // namespace airssys
