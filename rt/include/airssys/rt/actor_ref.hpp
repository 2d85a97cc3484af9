#pragma once
// Actor handles: the untyped ActorId and the typed ActorRef<M>.

#include <cstdint>

namespace airssys {

// An untyped actor handle: slot index plus the slot's generation when the
// handle was made. Trivially copyable; a handle to a stopped actor never
// reaches the slot's next occupant, because the generation differs.
// Aligned as one 64-bit word, so that a copy is one load and one store: an
// id written as two halves and read back whole (a Result<ActorId> returned
// from a spawn) would stall the read on the two writes.
struct alignas(8) ActorId {
  std::uint32_t slot = ~0u;
  std::uint32_t gen = 0;
  bool valid() const noexcept { return slot != ~0u; }
  friend bool operator==(ActorId, ActorId) = default;

  // The one 64-bit encoding of an id, wherever an id is kept in a word (the
  // registry's and the broker's tables, the owner of a process tree in the
  // process layer): generation in the high half, slot in the low half.
  // Never 0 for an id a System handed out (generations start at 1 and skip
  // 0), so tables may use 0 for "empty".
  constexpr std::uint64_t to_bits() const noexcept { return (std::uint64_t{gen} << 32) | slot; }
  static constexpr ActorId from_bits(std::uint64_t bits) noexcept {
    return ActorId{static_cast<std::uint32_t>(bits), static_cast<std::uint32_t>(bits >> 32)};
  }
};

// A typed handle to an actor whose message type is M. Sending through it
// checks the generation: a stopped actor gives Errc::Dead, never a
// use-after-free or a message to the slot's next occupant.
template <class M>
struct ActorRef {
  ActorId id;
  bool valid() const noexcept { return id.valid(); }
  operator ActorId() const noexcept { return id; }
  friend bool operator==(ActorRef, ActorRef) = default;
};

namespace detail {
// A tag per message type, to check that a name (registry) or a topic
// (broker) is used with the message type it was made for.
template <class M>
std::uintptr_t type_tag() noexcept {
  static const char tag = 0;
  return reinterpret_cast<std::uintptr_t>(&tag);
}
}  // namespace detail

}  // namespace airssys
