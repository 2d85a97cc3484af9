#pragma once
// ProcessExecutor in tests: readable Catch output for the containment, a
// spawn operation whose stdio is all /dev/null, the arguments of a sleep
// that outlives any test, and a check that an error names what was wrong.

#include <airssys/osl/operations.hpp>

#include <catch2/catch.hpp>

#include "support/errc_printer.hpp"

#include <span>
#include <string>
#include <string_view>

namespace Catch {
template <>
struct StringMaker<airssys::osl::Containment> {
  static std::string convert(airssys::osl::Containment c) { return airssys::osl::to_string(c); }
};
}  // namespace Catch

namespace airssys::test {

inline osl::SpawnProcessOperation quiet(std::string_view program, std::span<const std::string_view> args = {}) {
  osl::SpawnProcessOperation op;
  op.program = program;
  op.args = args;
  op.stdio[0] = op.stdio[1] = op.stdio[2] = osl::StdioConfig::null();
  return op;
}

// Arguments for /bin/sleep: long enough that only a kill ends it.
inline constexpr std::string_view kSleep[] = {"1000"};

// True when the error's message mentions `what`.
inline bool names(const Error& e, const std::string& what) {
  return std::string(e.message()).find(what) != std::string::npos;
}

}  // namespace airssys::test
