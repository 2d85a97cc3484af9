#pragma once
// Registry: actors by name.

#include <airssys/error.hpp>
#include <airssys/rt/actor_ref.hpp>
#include <airssys/rt/fwd.hpp>
#include <airssys/rt/detail/name_table.hpp>

#include <cstdint>
#include <string_view>

namespace airssys {

// A fixed-capacity directory of named actors. Lookups are lock-free; a name
// is bound to one actor, and frees itself when that actor stops (reclaimed
// lazily on the next lookup, add or when the table is full).
class Registry {
 public:
  // Binds `name` (1..31 bytes) to `ref`. Ok if `ref` holds it already (an
  // actor restarted in place binds its names again in on_start);
  // AlreadyExists if another live actor holds it, Full if
  // `registry_capacity` live names exist. A name an actor binds in on_start
  // is bound once spawn_supervised's Started arrives, so once
  // start_supervisor or start_child returns; after a bare spawn it may not
  // be bound yet.
  template <class M>
  Result<void> add(std::string_view name, ActorRef<M> ref) noexcept {
    return add_id(name, ref.id, detail::type_tag<M>());
  }
  // NotFound if absent or its actor stopped; TypeMismatch if the actor's
  // message type is not M.
  template <class M>
  Result<ActorRef<M>> find(std::string_view name) const noexcept {
    std::uintptr_t tag = 0;
    auto id = find_id(name, tag);
    if (!id) return id.error();
    if (tag != detail::type_tag<M>())
      return Error::make(Errc::TypeMismatch, "actor named '%.*s' takes another message type",
                         static_cast<int>(name.size()), name.data());
    return ActorRef<M>{*id};
  }
  Result<void> remove(std::string_view name) noexcept;
  std::uint32_t size() const noexcept { return table_.size(); }
  std::uint32_t capacity() const noexcept { return table_.capacity(); }

 private:
  friend class System;
  explicit Registry(System& s) : system_(s) {}
  void init(std::uint32_t capacity) { table_.init(capacity); }
  Result<void> add_id(std::string_view name, ActorId id, std::uintptr_t tag) noexcept;
  Result<ActorId> find_id(std::string_view name, std::uintptr_t& tag) const noexcept;
  std::uint32_t sweep() noexcept;  // removes the names of stopped actors; returns how many
  System& system_;
  mutable detail::NameTable table_;  // value: ActorId::to_bits()
};

}  // namespace airssys
