#include <airssys/error.hpp>

#include <cstdio>
#include <cstdlib>

namespace airssys {

void value_of_failed_result(const Error& e) noexcept {
  std::fprintf(stderr, "airssys: value() of a failed Result: %s (%s)\n", e.message(), to_string(e.code()));
  std::abort();
}

const char* to_string(Errc code) noexcept {
  switch (code) {
    case Errc::Ok: return "ok";
    case Errc::Full: return "full";
    case Errc::Dead: return "dead";
    case Errc::Timeout: return "timeout";
    case Errc::InvalidArgument: return "invalid argument";
    case Errc::NotFound: return "not found";
    case Errc::AlreadyExists: return "already exists";
    case Errc::TypeMismatch: return "type mismatch";
    case Errc::ShuttingDown: return "shutting down";
    case Errc::TooLarge: return "too large";
    case Errc::WouldDeadlock: return "would deadlock";
    case Errc::Failed: return "failed";
    case Errc::ChildEscalated: return "child escalated";
    case Errc::Exception: return "exception";
    case Errc::Os: return "os error";
    case Errc::Denied: return "denied";
    case Errc::Unavailable: return "unavailable";
  }
  return "unknown";
}

void Error::format(const char* fmt, va_list args) noexcept {
  std::vsnprintf(text_, sizeof text_, fmt, args);
}

Error Error::make(Errc code, const char* fmt, ...) noexcept {
  Error e(code);
  va_list args;
  va_start(args, fmt);
  e.format(fmt, args);
  va_end(args);
  return e;
}

Error Error::make_os(int os_error, const char* fmt, ...) noexcept {
  Error e(Errc::Os, os_error);
  va_list args;
  va_start(args, fmt);
  e.format(fmt, args);
  va_end(args);
  return e;
}

Error Error::make_code_os(Errc code, int os_error, const char* fmt, ...) noexcept {
  Error e(code, os_error);
  va_list args;
  va_start(args, fmt);
  e.format(fmt, args);
  va_end(args);
  return e;
}

}  // namespace airssys
