#pragma once
// Spawning with the platform layer in tests: a spawn that must succeed (its
// error message shown when it does not), and a spec whose stdio is all
// /dev/null, so that a child's output never mixes into the test's.

#include <airssys/arch/process.hpp>

#include <catch2/catch.hpp>

#include "support/errc_printer.hpp"

#include <utility>

namespace airssys::test {

inline arch::Process spawn_ok(const arch::SpawnSpec& spec) {
  auto p = arch::spawn(spec);
  INFO(p.error().message());
  REQUIRE(p.ok());
  return std::move(p.value());
}

inline arch::SpawnSpec quiet(const char* program, const char* const* argv = nullptr) {
  arch::SpawnSpec s;
  s.program = program;
  s.argv = argv;
  s.stdio[0] = s.stdio[1] = s.stdio[2] = arch::StdioMode::Null;
  return s;
}

}  // namespace airssys::test
