#pragma once
// Broker: publish/subscribe by topic.

#include <airssys/error.hpp>
#include <airssys/rt/actor_ref.hpp>
#include <airssys/rt/config.hpp>
#include <airssys/rt/fwd.hpp>
#include <airssys/rt/detail/name_table.hpp>

#include <atomic>
#include <cstdint>
#include <string_view>

namespace airssys {

// Result of Broker::publish: subscribers reached and subscribers refused.
struct PublishReport {
  std::uint32_t delivered = 0;
  std::uint32_t failed = 0;
};

namespace detail {
// System::send for publish; defined in system.hpp, where System is complete.
template <class M>
Result<void> send_published(System& s, ActorRef<M> to, const M& msg, Backpressure bp);
}  // namespace detail

// A fixed-capacity publish/subscribe hub. A topic is created by its first
// subscriber and typed by its message type; `publish` sends a copy to each
// subscriber (lock-free) and removes subscribers that have stopped. An
// actor is subscribed to a topic at most once: subscribing it again is
// AlreadyExists, and subscribes of the same actor that race leave it
// subscribed once (a publish in that moment may reach it twice).
class Broker {
 public:
  template <class M>
  Result<void> subscribe(std::string_view topic, ActorRef<M> ref) noexcept {
    return subscribe_id(topic, ref.id, detail::type_tag<M>());
  }
  Result<void> unsubscribe(std::string_view topic, ActorId id) noexcept;
  template <class M>
  Result<PublishReport> publish(std::string_view topic, const M& msg,
                                Backpressure bp = Backpressure::Drop) noexcept;
  std::uint32_t topics() const noexcept { return table_.size(); }

 private:
  friend class System;
  explicit Broker(System& s) : system_(s) {}
  ~Broker();
  void init(std::uint32_t topics, std::uint32_t per_topic);
  Result<void> subscribe_id(std::string_view topic, ActorId id, std::uintptr_t tag) noexcept;
  bool settle_duplicates(std::atomic<std::uint64_t>* row, std::uint32_t mine, std::uint64_t packed) noexcept;
  Result<std::atomic<std::uint64_t>*> topic_for_publish(std::string_view topic,
                                                        std::uintptr_t tag) const noexcept;
  System& system_;
  detail::NameTable table_;
  // topics x per_topic subscriber ids (ActorId::to_bits()), 0 = empty
  std::atomic<std::uint64_t>* subscribers_ = nullptr;
  std::uint32_t per_topic_ = 0;
};

template <class M>
Result<PublishReport> Broker::publish(std::string_view topic, const M& msg, Backpressure bp) noexcept {
  auto subs = topic_for_publish(topic, detail::type_tag<M>());
  if (!subs) return subs.error();
  PublishReport report;
  std::atomic<std::uint64_t>* list = *subs;
  if (list == nullptr) return report;
  for (std::uint32_t i = 0; i < per_topic_; ++i) {
    std::uint64_t v = list[i].load(std::memory_order_acquire);
    if (v == 0) continue;
    auto r = detail::send_published(system_, ActorRef<M>{ActorId::from_bits(v)}, msg, bp);
    if (r) {
      ++report.delivered;
    } else {
      ++report.failed;
      if (r.code() == Errc::Dead) list[i].compare_exchange_strong(v, 0, std::memory_order_acq_rel);
    }
  }
  return report;
}

}  // namespace airssys
