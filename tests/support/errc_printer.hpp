#pragma once
// Readable Catch output for airssys::Errc: a failed CHECK on an error code
// prints its name ("NotFound") instead of a number. One specialization for
// every test binary, so it lives here.

#include <airssys/error.hpp>

#include <catch2/catch.hpp>

#include <string>

namespace Catch {
template <>
struct StringMaker<airssys::Errc> {
  static std::string convert(airssys::Errc e) { return airssys::to_string(e); }
};
}  // namespace Catch
