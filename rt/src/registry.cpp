// Registry: actors by name, over a lock-free NameTable of ActorId::to_bits().
#include <airssys/rt/registry.hpp>

#include <airssys/rt/system.hpp>

#include <algorithm>
#include <climits>
#include <cstring>

namespace airssys {

// ---------------------------------------------------------------------------
// RegistryName

void RegistryName::assign(std::string_view s) noexcept {
  length_ = s.size() > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(s.size());
  const std::size_t kept = std::min(s.size(), kMax);
  if (kept > 0) std::memcpy(text_, s.data(), kept);
  text_[kept] = '\0';
}

Result<void> RegistryName::check() const noexcept {
  if (length_ <= kMax) return {};
  return Error::make(Errc::InvalidArgument, "registry name '%.*s...' is %u bytes; at most %zu fit",
                     static_cast<int>(kMax), text_, length_, kMax);
}

// ---------------------------------------------------------------------------
// Registry

Result<void> Registry::add_id(std::string_view name, ActorId id, std::uintptr_t tag) noexcept {
  auto n = detail::Name::make(name, "registry");
  if (!n) return n.error();
  if (!id.valid())
    return Error::make(Errc::InvalidArgument, "cannot register '%.*s': the ActorRef is empty (no actor)",
                       static_cast<int>(name.size()), name.data());
  if (!system_.alive(id))
    return Error::make(Errc::Dead, "cannot register '%.*s': actor #%u has stopped",
                       static_cast<int>(name.size()), name.data(), id.slot);
  // Retried until the table gives a definite answer. A retry follows the
  // removal of at least one entry of a stopped actor, which a concurrent add
  // may take first: so a fixed number of attempts could report Full while
  // the table holds stopped actors' names.
  for (;;) {
    detail::NameTable::Found old{};
    auto r = table_.insert(*n, id.to_bits(), tag, &old);
    if (r) return {};
    if (r.code() == Errc::AlreadyExists) {
      // Already this actor's: an actor restarted in place (on_error ->
      // Restart) runs on_start again under the same ref.
      if (old.value == id.to_bits() && old.tag == tag) return {};
      if (system_.alive(ActorId::from_bits(old.value)))
        return Error::make(Errc::AlreadyExists, "name '%.*s' is already registered to actor #%u",
                           static_cast<int>(name.size()), name.data(), ActorId::from_bits(old.value).slot);
      table_.erase(old.index, old.value);  // held by a stopped actor: reclaim (or another add did)
      continue;
    }
    // Full: only if no name held by a stopped actor is left to reclaim and
    // no concurrent sweep or remove made room meanwhile.
    if (sweep() == 0 && table_.size() >= table_.capacity()) break;
  }
  return Error::make(Errc::Full, "registry is full (%u names) registering '%.*s'", table_.capacity(),
                     static_cast<int>(name.size()), name.data());
}

Result<ActorId> Registry::find_id(std::string_view name, std::uintptr_t& tag) const noexcept {
  auto n = detail::Name::make(name, "registry");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (table_.find(*n, f)) {
    ActorId id = ActorId::from_bits(f.value);
    if (system_.alive(id)) {
      tag = f.tag;
      return id;
    }
    table_.erase(f.index, f.value);
  }
  return Error::make(Errc::NotFound, "no live actor is registered as '%.*s'",
                     static_cast<int>(name.size()), name.data());
}

Result<void> Registry::remove(std::string_view name) noexcept {
  auto n = detail::Name::make(name, "registry");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (table_.find(*n, f) && table_.erase(f.index, f.value)) return {};
  return Error::make(Errc::NotFound, "no actor is registered as '%.*s'", static_cast<int>(name.size()),
                     name.data());
}

std::uint32_t Registry::sweep() noexcept {
  return table_.erase_if([this](std::uint64_t v) { return !system_.alive(ActorId::from_bits(v)); });
}

}  // namespace airssys
