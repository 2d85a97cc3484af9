// Asks: the AskTable — acquiring an entry, the replier's claim, publishing
// or delivering the reply, the timeout's claim, and a plain thread's wait.
#include <airssys/rt/detail/asks.hpp>

#include <airssys/arch/wait.hpp>

#include <new>

namespace airssys::detail {

AskTable::~AskTable() {
  if (entries_ == nullptr) return;
  for (std::uint32_t i = 0; i < capacity_; ++i) entries_[i].~PendingAsk();
  detail::release(entries_);
}

void AskTable::init(std::uint32_t capacity, std::uint32_t first_gen) {
  capacity_ = capacity;
  entries_ = static_cast<PendingAsk*>(reserve(sizeof(PendingAsk) * capacity, 64));
  for (std::uint32_t i = 0; i < capacity; ++i) {
    new (&entries_[i]) PendingAsk();
    entries_[i].state.store(gen_phase::make(first_gen, kFree), std::memory_order_relaxed);
  }
  free_.init(&entries_[0].free_link, capacity, true, sizeof(PendingAsk));
}

Result<std::uint32_t> AskTable::acquire() noexcept {
  std::uint32_t index;
  if (!free_.pop(index))
    return Error::make(Errc::Full, "all %u pending-ask entries are in use", capacity_);
  auto& p = entries_[index];
  const std::uint32_t g = gen(index);
  p.reply = nullptr;
  p.asker = ActorId{};
  p.timer = TimerId{};
  // release: the entry's fields are set before a replier can claim it.
  p.state.store(gen_phase::make(g, kWaiting), std::memory_order_release);
  return index;
}

void AskTable::release(std::uint32_t index) noexcept {
  auto& p = entries_[index];
  const std::uint32_t g = gen(index);
  p.state.store(gen_phase::make(next_gen(g), kFree), std::memory_order_release);
  free_.push(index);
}

Result<std::uint32_t> AskTable::claim(std::uint32_t index, std::uint32_t g) noexcept {
  if (index >= capacity_)
    return Error::make(Errc::InvalidArgument, "reply address #%u is not from this system", index);
  std::uint32_t expected = gen_phase::make(g, kWaiting);
  if (!entries_[index].state.compare_exchange_strong(expected, gen_phase::make(g, kClaimed), std::memory_order_acq_rel,
                                                     std::memory_order_relaxed))
    return Error::make(Errc::Dead, "request #%u (generation %u) was already answered or timed out",
                       index, g);
  return index;
}

void AskTable::abandon(std::uint32_t index, std::uint32_t g) noexcept {
  entries_[index].state.store(gen_phase::make(g, kWaiting), std::memory_order_release);
}

void AskTable::finish(std::uint32_t index, Node* reply) noexcept {
  auto& p = entries_[index];
  if (reply == nullptr) {  // an actor's ask: the reply went to its mailbox
    release(index);
    return;
  }
  const std::uint32_t g = gen(index);
  p.reply = reply;
  // release: the waiter reads `reply` after seeing kReplied.
  p.state.store(gen_phase::make(g, kReplied), std::memory_order_release);
  arch::wake_all(p.state);
}

Result<void> AskTable::wait_reply(std::uint32_t index, ActorId target, std::chrono::nanoseconds timeout,
                                  const std::atomic<bool>& stopping, Node*& reply) noexcept {
  auto& p = entries_[index];
  const std::uint32_t g = gen(index);
  const std::int64_t deadline = arch::add_saturated(arch::monotonic_ns(), timeout.count());
  for (;;) {
    std::uint32_t st = p.state.load(std::memory_order_acquire);
    if (gen_phase::phase(st) == kReplied) {
      reply = p.reply;
      release(index);
      return {};
    }
    const std::int64_t left = deadline - arch::monotonic_ns();
    // relaxed: as System::shutting_down(); a late look only waits one more round.
    if (gen_phase::phase(st) == kWaiting && (left <= 0 || stopping.load(std::memory_order_relaxed))) {
      if (p.state.compare_exchange_strong(st, gen_phase::make(g, kClaimed), std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
        release(index);
        if (left > 0)
          return Error::make(Errc::ShuttingDown, "ask #%u to actor #%u abandoned: the system is shutting down", index,
                             target.slot);
        return Error::make(Errc::Timeout, "no reply from actor #%u to ask #%u within %lld ms", target.slot, index,
                           static_cast<long long>(timeout.count() / 1'000'000));
      }
      continue;
    }
    // kClaimed: a replier is writing; it finishes in a moment.
    arch::wait_on(p.state, st, gen_phase::phase(st) == kClaimed ? 100'000 : (left < 50'000'000 ? left : 50'000'000));
  }
}

AskTable::TimeoutClaim AskTable::claim_timeout(std::uint32_t index, std::uint32_t g) noexcept {
  std::uint32_t expected = gen_phase::make(g, kWaiting);
  // acq_rel: against the replier's claim and release of the same entry.
  if (entries_[index].state.compare_exchange_strong(expected, gen_phase::make(g, kClaimed), std::memory_order_acq_rel,
                                                    std::memory_order_acquire)) {
    release(index);  // the timeout Reply goes to the asker's mailbox
    return TimeoutClaim::Claimed;
  }
  return expected == gen_phase::make(g, kClaimed) ? TimeoutClaim::Held : TimeoutClaim::Answered;
}

void AskTable::void_waiting(std::uint32_t index, std::uint32_t g) noexcept {
  std::uint32_t expected = gen_phase::make(g, kWaiting);
  // acq_rel: against a replier's claim of the same entry.
  if (entries_[index].state.compare_exchange_strong(expected, gen_phase::make(g, kClaimed), std::memory_order_acq_rel,
                                                    std::memory_order_relaxed))
    release(index);
}

std::uint32_t AskTable::outstanding() const noexcept {
  std::uint32_t n = 0;
  for (std::uint32_t i = 0; i < capacity_; ++i)
    if (gen_phase::phase(entries_[i].state.load(std::memory_order_acquire)) != kFree) ++n;
  return n;
}

}  // namespace airssys::detail
