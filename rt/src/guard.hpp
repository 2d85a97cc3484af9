#pragma once
// Runs an actor's handler inside the turn `turn`: with exceptions on, an
// exception escaping it marks the turn failed with Errc::Exception (its
// on_error then decides), as Context::fail does. Private to rt/src.

#include <airssys/rt/system.hpp>

#include <exception>

#if __cpp_exceptions
#define AIRSSYS_GUARD(turn, call)                                                      \
  try {                                                                                \
    call;                                                                              \
  } catch (const std::exception& ex) {                                                 \
    (turn).failed = true;                                                              \
    if (!(turn).handling_error)                                                        \
      (turn).error = Error::make(Errc::Exception, "actor #%u threw: %s", (turn).slot, ex.what()); \
  } catch (...) {                                                                      \
    (turn).failed = true;                                                              \
    if (!(turn).handling_error)                                                        \
      (turn).error = Error::make(Errc::Exception, "actor #%u threw a non-std exception", (turn).slot); \
  }
#else
#define AIRSSYS_GUARD(turn, call) call;
#endif
