#pragma once
// Registry: actors by name.

#include <airssys/error.hpp>
#include <airssys/rt/actor_ref.hpp>
#include <airssys/rt/fwd.hpp>
#include <airssys/rt/detail/name_table.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace airssys {

// A name to bind in the System's registry, owned by whatever holds it (a
// ProcessActorConfig, a ProcessPoolConfig): the bytes are copied in, so a
// config copied into a ChildSpec's factory and used at a restart long after
// the caller's string is gone cannot dangle. At most kMax bytes (the registry's bound). A longer input
// is never cut silently: the name keeps its first kMax bytes and its
// length, check() fails naming it, and the actor fails its start instead
// of binding a cut-down name.
class RegistryName {
 public:
  static constexpr std::size_t kMax = detail::Name::kMax;

  RegistryName() noexcept = default;
  // Implicit, so that `config.name = "jobs"` and `config.name = str` read
  // as they did when the member was a std::string_view.
  template <class S, class = std::enable_if_t<std::is_convertible_v<const S&, std::string_view>>>
  RegistryName(const S& s) noexcept {  // NOLINT(google-explicit-constructor)
    assign(std::string_view(s));
  }

  bool empty() const noexcept { return length_ == 0; }
  // The name; meaningful only when check() is ok.
  std::string_view view() const noexcept { return {text_, length_ > kMax ? kMax : length_}; }
  // InvalidArgument naming the input (its first kMax bytes) when it was
  // longer than kMax bytes.
  Result<void> check() const noexcept;

 private:
  void assign(std::string_view s) noexcept;
  char text_[kMax + 1] = {};
  std::uint32_t length_ = 0;  // of the input (above kMax: it did not fit)
};

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
