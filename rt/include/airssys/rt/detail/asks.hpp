#pragma once
// The table of outstanding asks: one entry per request a plain thread
// (System::ask) or an actor (Context::ask) is waiting on, claimed once by
// whoever answers it — the replier, or the ask's timeout timer.

#include <airssys/error.hpp>
#include <airssys/rt/actor_ref.hpp>
#include <airssys/rt/timers.hpp>
#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace airssys {

class System;

namespace detail {

// One outstanding ask(). `state` is gen_phase::make(gen, AskTable phase).
struct PendingAsk {
  std::atomic<std::uint32_t> state{0};
  std::atomic<std::uint32_t> free_link{0};
  Node* reply = nullptr;
  ActorId asker;           // valid for an actor's ask
  std::uint64_t request = 0;
  TimerId timer;
  // Delivers the reply (a Rep on the replier's stack) to the asking actor.
  Result<void> (*complete)(System&, PendingAsk&, void* rep) = nullptr;
};

// Fixed capacity, lock-free: acquiring, claiming and answering an entry
// never allocate or lock.
class AskTable {
 public:
  // The phase of an entry, in the low two bits of its state word; the rest
  // is a 30-bit generation that a ReplyTo carries.
  static constexpr std::uint32_t kFree = 0;     // in the free stack
  static constexpr std::uint32_t kWaiting = 1;  // asked, not answered
  static constexpr std::uint32_t kReplied = 2;  // a thread asker may take `reply`
  static constexpr std::uint32_t kClaimed = 3;  // a replier or the timeout holds it

  AskTable() = default;
  AskTable(const AskTable&) = delete;
  AskTable& operator=(const AskTable&) = delete;
  ~AskTable();

  // Reserves `capacity` entries whose generations start at `first_gen`
  // (see SystemTag::first_gen30).
  void init(std::uint32_t capacity, std::uint32_t first_gen);
  std::uint32_t capacity() const noexcept { return capacity_; }
  PendingAsk& operator[](std::uint32_t index) noexcept { return entries_[index]; }
  // The generation of entry `index` (its owner reads its own entry).
  std::uint32_t gen(std::uint32_t index) const noexcept {
    return gen_phase::gen(entries_[index].state.load(std::memory_order_relaxed));
  }

  // A free entry, now waiting; Full if all are in use.
  Result<std::uint32_t> acquire() noexcept;
  // Frees an entry (next generation).
  void release(std::uint32_t index) noexcept;
  // The replier's claim: Dead if the ask was answered or timed out already.
  Result<std::uint32_t> claim(std::uint32_t index, std::uint32_t gen) noexcept;
  // Ends a claim: an actor's ask (reply null, the Reply went to its
  // mailbox) frees the entry; a thread's ask publishes `reply` to its waiter.
  void finish(std::uint32_t index, Node* reply) noexcept;
  // Gives a claim back unanswered (the reply could not be delivered).
  void abandon(std::uint32_t index, std::uint32_t gen) noexcept;
  // A plain thread's wait for the reply of `target`, up to `timeout` (the
  // errors name both); gives up early (ShuttingDown) once `stopping` is set.
  Result<void> wait_reply(std::uint32_t index, ActorId target, std::chrono::nanoseconds timeout,
                          const std::atomic<bool>& stopping, Node*& reply) noexcept;

  // The timeout timer of an actor's ask, as it fires: Claimed (the entry is
  // freed, the timeout Reply must be delivered), Held (a replier holds the
  // claim and may give it back: look again next tick) or Answered.
  enum class TimeoutClaim : std::uint8_t { Claimed, Held, Answered };
  TimeoutClaim claim_timeout(std::uint32_t index, std::uint32_t gen) noexcept;
  // At shutdown: frees a still-waiting ask whose timeout is being dropped.
  void void_waiting(std::uint32_t index, std::uint32_t gen) noexcept;
  // Entries not free, for PoolUsage. Not for hot paths.
  std::uint32_t outstanding() const noexcept;

 private:
  PendingAsk* entries_ = nullptr;
  std::uint32_t capacity_ = 0;
  IndexStack free_;
};

}  // namespace detail
}  // namespace airssys
