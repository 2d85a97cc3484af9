#include <airssys/osl/policy.hpp>

#include <cstring>

namespace airssys::osl {

bool glob_match(std::string_view p, std::string_view t) noexcept {
  // Iterative matcher with one backtrack point for the last '*'.
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

Result<void> SecurityPolicy::add(bool allow, std::string_view pattern) noexcept {
  if (pattern.empty() || pattern.front() != '/')
    return Error::make(Errc::InvalidArgument, "policy pattern '%.*s' is not an absolute path",
                       static_cast<int>(pattern.size() > 60 ? 60 : pattern.size()), pattern.data());
  if (pattern.size() >= kMaxPattern)
    return Error::make(Errc::InvalidArgument, "policy pattern is longer than %zu bytes", kMaxPattern - 1);
  if (count_ == kMaxRules) return Error::make(Errc::Full, "policy has %zu rules already", kMaxRules);
  Rule& r = rules_[count_++];
  r.allow = allow;
  r.exact = pattern.find_first_of("*?") == std::string_view::npos;
  std::memcpy(r.pattern, pattern.data(), pattern.size());
  r.pattern[pattern.size()] = '\0';
  return {};
}

Result<void> SecurityPolicy::allow(std::string_view pattern) noexcept { return add(true, pattern); }
Result<void> SecurityPolicy::deny(std::string_view pattern) noexcept { return add(false, pattern); }

Result<void> SecurityPolicy::allow_principal(std::string_view principal) noexcept {
  if (principal.empty() || principal.size() >= sizeof principals_[0])
    return Error::make(Errc::InvalidArgument, "principal name must be 1..63 bytes");
  if (principal_count_ == 8) return Error::make(Errc::Full, "policy has 8 principals already");
  std::memcpy(principals_[principal_count_], principal.data(), principal.size());
  principals_[principal_count_++][principal.size()] = '\0';
  return {};
}

Result<void> SecurityPolicy::check(const OperationView& op, const SecurityContext& who) noexcept {
  const auto p = static_cast<int>(who.principal.size() > 40 ? 40 : who.principal.size());
  if (op.kind == OperationView::Kind::Signal || op.kind == OperationView::Kind::GroupKill) {
    if (principal_count_ == 0) return {};
    for (std::size_t i = 0; i < principal_count_; ++i)
      if (who.principal == principals_[i]) return {};
    return Error::make(Errc::Denied, "policy: principal '%.*s' may not signal processes (not in allow_principal)", p,
                       who.principal.data());
  }
  if (op.kind != OperationView::Kind::Spawn) return {};
  const std::string_view path = op.resolved_program;
  const auto n = static_cast<int>(path.size() > 50 ? 50 : path.size());
  const bool known = op.program_identity != arch::FileIdentity{};
  for (std::size_t i = 0; i < count_; ++i) {
    bool match = glob_match(rules_[i].pattern, path);
    if (!match && rules_[i].exact && known) {
      // The file the rule names now, whatever its spelling: a hard link,
      // a bind mount or a symlinked directory cannot dodge it.
      arch::FileIdentity id;
      match = arch::file_identity(rules_[i].pattern, id) && id == op.program_identity;
    }
    if (!match) continue;
    if (rules_[i].allow) return {};
    return Error::make(Errc::Denied, "policy rule #%zu 'deny %.40s' refuses '%.*s'", i + 1, rules_[i].pattern, n,
                       path.data());
  }
  return Error::make(Errc::Denied, "policy: no rule allows '%.*s' (default deny)", n, path.data());
}

}  // namespace airssys::osl
