#pragma once
// SecurityPolicy: which executables may be spawned, by rules checked in
// order. Once a policy is in the chain, what no rule allows is denied, and
// a denial is an error value (Errc::Denied) that names the rule.

#include <airssys/osl/executor.hpp>

#include <cstddef>
#include <string_view>

namespace airssys::osl {

// Glob match: '*' any run of characters (including '/'), '?' one
// character, everything else literally.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

class SecurityPolicy final : public Middleware {
 public:
  static constexpr std::size_t kMaxRules = 32;
  static constexpr std::size_t kMaxPattern = 160;

  // Rules are checked in the order they were added; the first that matches
  // the file the spawn will execute decides. That file is judged, not its
  // spelling: the executor resolves the program fully (PATH, working_dir,
  // every symlink, "." and "..": "/bin/sh" is "/usr/bin/dash" on Debian)
  // and executes exactly the file it resolved, held open from the check to
  // the exec (a "#!" script is executed by the path it was found by, once
  // a last check shows that path still names the judged file). A pattern
  // matches that resolved path; a pattern without '*' or '?' also matches
  // the very file its own path names now (same device and inode), so
  // deny("/usr/bin/rm") also holds for "/bin/rm", a symlink, a hard link or
  // a bind mount of it. Write glob patterns in resolved form ("/usr/bin/*",
  // not "/bin/*"). Only the file exec is given is judged: a script's
  // interpreter ("#!") is not.
  // Patterns must be absolute ("/usr/bin/*"). Full / InvalidArgument.
  Result<void> allow(std::string_view pattern) noexcept;
  Result<void> deny(std::string_view pattern) noexcept;
  // Principals allowed to signal and kill groups (empty: everyone).
  Result<void> allow_principal(std::string_view principal) noexcept;

  Result<void> check(const OperationView& op, const SecurityContext& who) noexcept override;

 private:
  struct Rule {
    bool allow = false;
    bool exact = false;  // no glob character: also matched by file identity
    char pattern[kMaxPattern] = {};
  };
  Result<void> add(bool allow, std::string_view pattern) noexcept;
  Rule rules_[kMaxRules];
  std::size_t count_ = 0;
  char principals_[8][64] = {};
  std::size_t principal_count_ = 0;
};

}  // namespace airssys::osl
