#pragma once
// A fresh private directory for a test, removed with everything in it on
// every exit path. mkdtemp makes the name unique, so tests running in
// parallel (ctest -j) never share one.

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace airssys::test {

class TempDir {
 public:
  // `prefix` names the directory "<temp dir>/<prefix>-XXXXXX", so that a
  // leftover (from a killed test) says whose it is.
  explicit TempDir(std::string_view prefix = "airssys-test") {
    std::string templ = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  // The path of `name` inside the directory, as a string for the spawn APIs.
  std::string operator/(std::string_view name) const { return (path / name).string(); }

  std::filesystem::path path;
};

}  // namespace airssys::test
