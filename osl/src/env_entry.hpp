#pragma once
// Internal to osl: "NAME=value" entries of SpawnProcessOperation::env, as the
// spawn builds the child's environment and the audit names the overrides.
// A name given more than once counts once, with its last value.

#include <span>
#include <string_view>

namespace airssys::osl::detail {

// The name part of "NAME=value".
inline std::string_view env_name(std::string_view entry) noexcept { return entry.substr(0, entry.find('=')); }

// Whether an entry of `env` has the same name as `entry`.
inline bool overridden(std::string_view entry, std::span<const std::string_view> env) noexcept {
  const std::string_view name = env_name(entry);
  for (auto e : env)
    if (env_name(e) == name) return true;
  return false;
}

}  // namespace airssys::osl::detail
