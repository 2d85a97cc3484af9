// Broker: topics in a lock-free NameTable, each with a row of subscriber
// ids (ActorId::to_bits(), 0 for an empty place).
#include <airssys/rt/broker.hpp>

#include <airssys/rt/system.hpp>

#include <new>

namespace airssys {

Broker::~Broker() {
  if (subscribers_ != nullptr) detail::release(subscribers_);
}

void Broker::init(std::uint32_t topics, std::uint32_t per_topic) {
  table_.init(topics);
  per_topic_ = per_topic;
  const std::size_t n = std::size_t{table_.slots()} * per_topic;
  subscribers_ = static_cast<std::atomic<std::uint64_t>*>(
      detail::reserve(sizeof(std::atomic<std::uint64_t>) * n, 64));
  for (std::size_t i = 0; i < n; ++i) new (&subscribers_[i]) std::atomic<std::uint64_t>(0);
}

Result<void> Broker::subscribe_id(std::string_view topic, ActorId id, std::uintptr_t tag) noexcept {
  auto n = detail::Name::make(topic, "topic");
  if (!n) return n.error();
  if (!id.valid())
    return Error::make(Errc::InvalidArgument, "cannot subscribe to '%.*s': the ActorRef is empty (no actor)",
                       static_cast<int>(topic.size()), topic.data());
  if (!system_.alive(id))
    return Error::make(Errc::Dead, "cannot subscribe actor #%u to '%.*s': it has stopped", id.slot,
                       static_cast<int>(topic.size()), topic.data());
  detail::NameTable::Found f{};
  if (!table_.find(*n, f)) {
    // Topics are never removed, so a topic's table index names its
    // subscriber row for the system's lifetime.
    auto r = table_.insert(*n, 0, tag, &f);
    if (r) {
      f = detail::NameTable::Found{*r, 0, tag};
    } else if (r.code() != Errc::AlreadyExists) {
      return Error::make(Errc::Full, "broker is full (%u topics) creating '%.*s'", table_.capacity(),
                         static_cast<int>(topic.size()), topic.data());
    }
  }
  if (f.tag != tag)
    return Error::make(Errc::TypeMismatch, "topic '%.*s' carries another message type",
                       static_cast<int>(topic.size()), topic.data());
  std::atomic<std::uint64_t>* row = subscribers_ + std::size_t{f.index} * per_topic_;
  const std::uint64_t packed = id.to_bits();
  for (std::uint32_t i = 0; i < per_topic_; ++i)
    if (row[i].load(std::memory_order_acquire) == packed)
      return Error::make(Errc::AlreadyExists, "actor #%u already subscribes to '%.*s'", id.slot,
                         static_cast<int>(topic.size()), topic.data());
  for (std::uint32_t i = 0; i < per_topic_; ++i) {
    std::uint64_t v = row[i].load(std::memory_order_acquire);
    if (v != 0 && system_.alive(ActorId::from_bits(v))) continue;
    // seq_cst: against a subscribe of the same actor that races this one
    // (see settle_duplicates).
    if (row[i].compare_exchange_strong(v, packed, std::memory_order_seq_cst, std::memory_order_relaxed)) {
      if (settle_duplicates(row, i, packed))
        return Error::make(Errc::AlreadyExists, "actor #%u already subscribes to '%.*s'", id.slot,
                           static_cast<int>(topic.size()), topic.data());
      return {};
    }
  }
  return Error::make(Errc::Full, "topic '%.*s' has its %u subscribers", static_cast<int>(topic.size()),
                     topic.data(), per_topic_);
}

// Two subscribes of one actor that race may each find no place holding it
// and each take one. After taking place `mine`, a subscribe looks at the
// row again: the lowest place holding the actor is the one that stays.
// It clears every higher one, its own included when a lower one exists
// (true: then it was not the subscribe that counted). Each of two racers
// stores its place before it looks (seq_cst), so at least one of them sees
// the other's, and whichever sees it clears the higher place: the actor
// ends up in one place. A publish in the moment between may reach it
// twice.
bool Broker::settle_duplicates(std::atomic<std::uint64_t>* row, std::uint32_t mine,
                               std::uint64_t packed) noexcept {
  // The places above ours are read by the clearing CAS below.
  std::uint32_t lowest = mine;
  for (std::uint32_t i = 0; i < mine && lowest == mine; ++i)
    if (row[i].load(std::memory_order_seq_cst) == packed) lowest = i;
  for (std::uint32_t i = lowest + 1; i < per_topic_; ++i) {
    std::uint64_t v = packed;
    (void)row[i].compare_exchange_strong(v, 0, std::memory_order_seq_cst, std::memory_order_seq_cst);
  }
  return lowest != mine;
}

Result<void> Broker::unsubscribe(std::string_view topic, ActorId id) noexcept {
  auto n = detail::Name::make(topic, "topic");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (table_.find(*n, f)) {
    std::atomic<std::uint64_t>* row = subscribers_ + std::size_t{f.index} * per_topic_;
    std::uint64_t packed = id.to_bits();
    for (std::uint32_t i = 0; i < per_topic_; ++i) {
      std::uint64_t v = packed;
      if (row[i].compare_exchange_strong(v, 0, std::memory_order_acq_rel)) return {};
    }
  }
  return Error::make(Errc::NotFound, "actor #%u does not subscribe to '%.*s'", id.slot,
                     static_cast<int>(topic.size()), topic.data());
}

Result<std::atomic<std::uint64_t>*> Broker::topic_for_publish(std::string_view topic,
                                                              std::uintptr_t tag) const noexcept {
  auto n = detail::Name::make(topic, "topic");
  if (!n) return n.error();
  detail::NameTable::Found f{};
  if (!table_.find(*n, f)) return static_cast<std::atomic<std::uint64_t>*>(nullptr);
  if (f.tag != tag)
    return Error::make(Errc::TypeMismatch, "topic '%.*s' carries another message type",
                       static_cast<int>(topic.size()), topic.data());
  return subscribers_ + std::size_t{f.index} * per_topic_;
}

}  // namespace airssys
