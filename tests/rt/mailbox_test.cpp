// Mailboxes: FIFO order per sender, the bound and its backpressure policies,
// the system lane, message-pool exhaustion, and many producers at once.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace airssys;
using airssys::test::Gate;
using airssys::test::OpenOnExit;
using namespace std::chrono_literals;

namespace {

// The values an actor handled, in order. Written by the actor's worker only.
struct Log {
  static constexpr int kMax = 256;
  std::atomic<bool> entered{false};
  std::atomic<int> count{0};
  std::atomic<int> values[kMax] = {};

  void add(int v) noexcept {
    int i = count.load(std::memory_order_relaxed);
    if (i < kMax) values[i].store(v, std::memory_order_relaxed);
    count.store(i + 1, std::memory_order_release);
  }
  std::vector<int> snapshot() const {
    std::vector<int> out;
    int n = count.load(std::memory_order_acquire);
    for (int i = 0; i < n && i < kMax; ++i) out.push_back(values[i].load(std::memory_order_relaxed));
    return out;
  }
};

inline int value_of(int v) noexcept { return v; }
inline int value_of(const std::unique_ptr<int>& p) noexcept { return p ? *p : -1; }

// Logs every message; if a gate is given, its first handler waits for it.
template <class M>
struct GatedReceiver : Actor<M> {
  Gate* gate;
  Log* log;
  bool first = true;
  GatedReceiver(Gate* g, Log* l) : gate(g), log(l) {}
  void on_message(Context<M>&, M& m) override {
    if (first && gate != nullptr) {
      first = false;
      log->entered.store(true, std::memory_order_release);
      gate->wait();
    }
    log->add(value_of(m));
  }
};

bool contains(const char* haystack, const char* needle) {
  return std::strstr(haystack, needle) != nullptr;
}

ActorStats stats_of(System& sys, ActorId id) {
  auto s = sys.stats(id);
  REQUIRE(s.ok());
  return *s;
}

// ---------------------------------------------------------------------------
// FIFO per sender

struct Seq {
  std::uint32_t sender;
  std::uint32_t seq;
};

constexpr std::uint32_t kMaxSenders = 8;

struct FifoLog {
  std::atomic<std::uint64_t> total{0};
  std::atomic<std::uint64_t> out_of_order{0};
  std::atomic<std::uint32_t> next[kMaxSenders] = {};
};

struct FifoReceiver : Actor<Seq> {
  FifoLog* log;
  std::uint32_t expected[kMaxSenders] = {};
  explicit FifoReceiver(FifoLog* l) : log(l) {}
  void on_message(Context<Seq>&, Seq& m) override {
    if (m.sender >= kMaxSenders) {
      log->out_of_order.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (m.seq != expected[m.sender]) log->out_of_order.fetch_add(1, std::memory_order_relaxed);
      expected[m.sender] = m.seq + 1;
      log->next[m.sender].store(expected[m.sender], std::memory_order_relaxed);
    }
    log->total.fetch_add(1, std::memory_order_release);
  }
};

// On any message, sends `count` numbered messages to `to`, blocking on a
// full mailbox.
struct FifoSender : Actor<int> {
  ActorRef<Seq> to;
  std::uint32_t id;
  std::uint32_t count;
  std::atomic<std::uint64_t>* failures;
  std::atomic<int>* finished;
  FifoSender(ActorRef<Seq> t, std::uint32_t i, std::uint32_t n, std::atomic<std::uint64_t>* f,
             std::atomic<int>* d)
      : to(t), id(i), count(n), failures(f), finished(d) {}
  void on_message(Context<int>& ctx, int&) override {
    for (std::uint32_t s = 0; s < count; ++s)
      if (!ctx.send(to, Seq{id, s}, Backpressure::Block)) failures->fetch_add(1);
    finished->fetch_add(1);
  }
};

}  // namespace

TEST_CASE("each sender's messages arrive in the order it sent them, with many senders at once") {
  constexpr std::uint32_t kPerSender = 20000;
  SystemConfig cfg;
  cfg.workers = 3;
  System sys(cfg);
  FifoLog log;
  // A small bound so that the senders really block and resume.
  auto rx = sys.spawn_with<FifoReceiver>(SpawnOptions{.worker = 0, .mailbox_capacity = 256},
                                         [&] { return FifoReceiver(&log); });
  REQUIRE(rx.ok());

  std::uint32_t threads = 0;
  std::uint32_t actors = 0;
  SECTION("plain threads") { threads = 4; }
  SECTION("sender actors on the other workers") { actors = 4; }
  SECTION("plain threads and sender actors together") {
    threads = 2;
    actors = 2;
  }
  const std::uint32_t senders = threads + actors;

  std::atomic<std::uint64_t> failures{0};
  std::atomic<int> finished{0};
  std::vector<ActorRef<int>> sender_actors;
  for (std::uint32_t a = 0; a < actors; ++a) {
    const std::uint32_t id = threads + a;
    auto s = sys.spawn_with<FifoSender>(SpawnOptions{.worker = static_cast<int>(1 + a % 2)}, [&, id] {
      return FifoSender(*rx, id, kPerSender, &failures, &finished);
    });
    REQUIRE(s.ok());
    sender_actors.push_back(*s);
  }
  for (auto& s : sender_actors) REQUIRE(sys.send(s, 0).ok());
  std::vector<std::thread> pool;
  for (std::uint32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (std::uint32_t s = 0; s < kPerSender; ++s)
        if (!sys.send(*rx, Seq{t, s}, Backpressure::Block)) failures.fetch_add(1);
    });
  }
  for (auto& t : pool) t.join();

  REQUIRE(test::wait_for([&] { return finished.load() == static_cast<int>(actors); }));
  REQUIRE(test::wait_for(
      [&] { return log.total.load(std::memory_order_acquire) == std::uint64_t{senders} * kPerSender; }));
  CHECK(failures.load() == 0);
  CHECK(log.out_of_order.load() == 0);
  for (std::uint32_t s = 0; s < senders; ++s) {
    INFO("sender " << s);
    CHECK(log.next[s].load(std::memory_order_relaxed) == kPerSender);
  }
  auto st = stats_of(sys, *rx);
  CHECK(st.handled == std::uint64_t{senders} * kPerSender);
  CHECK(st.received == st.handled);
  CHECK(st.queued == 0);
  CHECK(st.dropped == 0);
  CHECK(st.high_water <= 256);
  CHECK(sys.stats().dead_letters == 0);
  REQUIRE(sys.shutdown().ok());
  CHECK(log.total.load() == std::uint64_t{senders} * kPerSender);
}

// ---------------------------------------------------------------------------
// Backpressure at a full mailbox, sender on a plain thread

namespace {

std::vector<int> one_to(int n) {
  std::vector<int> v;
  for (int i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

// With the receiver held in the handler of message 1, sends 2, 3, ... with
// Backpressure::Error until the first refusal; returns the last value
// accepted. (Whether the message being handled still counts against the
// bound is checked separately, in the ActorStats test below.)
int fill_behind_first(System& sys, ActorRef<std::unique_ptr<int>> rx) {
  int v = 2;
  for (; v < 64; ++v) {
    auto r = sys.send(rx, std::make_unique<int>(v), Backpressure::Error);
    if (!r) {
      REQUIRE(r.code() == Errc::Full);
      break;
    }
  }
  return v - 1;
}

}  // namespace

TEST_CASE("a full mailbox refuses, drops or blocks a plain thread's send as its policy says") {
  SystemConfig cfg;
  cfg.workers = 1;  // the gated receiver holds the only worker: nothing drains
  Gate gate;
  Log log;
  System sys(cfg);
  OpenOnExit opener{gate};
  using M = std::unique_ptr<int>;
  auto rx = sys.spawn_with<GatedReceiver<M>>(SpawnOptions{.mailbox_capacity = 4},
                                             [&] { return GatedReceiver<M>(&gate, &log); });
  REQUIRE(rx.ok());
  REQUIRE(sys.send(*rx, std::make_unique<int>(1)).ok());
  REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
  // Messages 1..last are in: one being handled, the rest waiting.
  const int last = fill_behind_first(sys, *rx);
  CHECK(last >= 4);  // at least capacity - 1 wait behind the one being handled
  CHECK(last <= 5);  // and never more than the capacity

  auto full = stats_of(sys, *rx);
  CHECK(full.queued == 4);
  CHECK(full.high_water == 4);
  CHECK(full.dropped == 0);
  const auto dead_before = sys.stats().dead_letters;

  SECTION("Error: the send fails with Full and the message stays with the caller") {
    auto p = std::make_unique<int>(last + 1);
    auto r = sys.send(*rx, std::move(p), Backpressure::Error);
    REQUIRE(r.code() == Errc::Full);
    CHECK(contains(r.error().message(), "full"));
    REQUIRE(p != nullptr);
    CHECK(*p == last + 1);
    // The system default (Error) behaves the same way.
    auto r2 = sys.send(*rx, std::move(p));
    CHECK(r2.code() == Errc::Full);
    REQUIRE(p != nullptr);
    auto after = stats_of(sys, *rx);
    CHECK(after.queued == full.queued);
    CHECK(after.dropped == 0);
    CHECK(sys.stats().dead_letters == dead_before);

    gate.release();
    REQUIRE(test::wait_for([&] { return log.count.load() == last; }));
    // The refused message is intact and can be sent once there is room.
    REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).queued == 0; }));
    REQUIRE(sys.send(*rx, std::move(p)).ok());
    CHECK(p == nullptr);
    REQUIRE(test::wait_for([&] { return log.count.load() == last + 1; }));
    CHECK(log.snapshot() == one_to(last + 1));
  }

  SECTION("Drop: the send reports success, the message is counted as dropped and never handled") {
    REQUIRE(sys.send(*rx, std::make_unique<int>(100), Backpressure::Drop).ok());
    REQUIRE(sys.send(*rx, std::make_unique<int>(101), Backpressure::Drop).ok());
    auto after = stats_of(sys, *rx);
    CHECK(after.dropped == 2);
    CHECK(after.queued == full.queued);
    CHECK(after.high_water == 4);
    CHECK(sys.stats().dead_letters == dead_before + 2);

    gate.release();
    REQUIRE(test::wait_for([&] { return log.count.load() == last; }));
    // A marker sent after the drain arrives next: nothing dropped was kept.
    REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).queued == 0; }));
    REQUIRE(sys.send(*rx, std::make_unique<int>(99)).ok());
    REQUIRE(test::wait_for([&] { return log.count.load() == last + 1; }));
    auto expect = one_to(last);
    expect.push_back(99);
    CHECK(log.snapshot() == expect);
    REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).handled == static_cast<std::uint64_t>(last + 1); }));
    auto end = stats_of(sys, *rx);
    CHECK(end.dropped == 2);
    CHECK(end.received == static_cast<std::uint64_t>(last + 1));
    CHECK(sys.stats().dead_letters == dead_before + 2);
  }

  SECTION("Block: the send waits for room, then the message is delivered in order") {
    std::atomic<bool> returned{false};
    Result<void> result = Error(Errc::Failed);
    std::thread sender([&] {
      result = sys.send(*rx, std::make_unique<int>(last + 1), Backpressure::Block);
      returned.store(true, std::memory_order_release);
    });
    // The receiver cannot drain while the gate is shut, so the send cannot
    // have returned, however long we look.
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(returned.load(std::memory_order_acquire));
    CHECK(stats_of(sys, *rx).queued == full.queued);
    gate.release();
    sender.join();
    REQUIRE(returned.load());
    REQUIRE(result.ok());
    REQUIRE(test::wait_for([&] { return log.count.load() == last + 1; }));
    CHECK(log.snapshot() == one_to(last + 1));
    REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).handled == static_cast<std::uint64_t>(last + 1); }));
    auto end = stats_of(sys, *rx);
    CHECK(end.dropped == 0);
    CHECK(end.high_water == 4);
    CHECK(sys.stats().dead_letters == dead_before);
  }

  gate.release();
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a message taken out for handling no longer counts as queued or against the mailbox bound") {
  SystemConfig cfg;
  cfg.workers = 1;
  Gate gate;
  Log log;
  System sys(cfg);
  OpenOnExit opener{gate};
  auto rx = sys.spawn_with<GatedReceiver<int>>(SpawnOptions{.mailbox_capacity = 4},
                                               [&] { return GatedReceiver<int>(&gate, &log); });
  REQUIRE(rx.ok());
  REQUIRE(sys.send(*rx, 1).ok());
  REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
  // Message 1 has been taken out of the mailbox and is being handled: the
  // mailbox (capacity 4) is empty and takes four more.
  int accepted = 1;
  for (int v = 2; v <= 5; ++v) {
    auto r = sys.send(*rx, v);
    INFO("message " << v << ": " << r.error().message());
    CHECK(r.ok());
    accepted += r.ok() ? 1 : 0;
  }
  // ActorStats: `received` counts every message that entered the mailbox,
  // `handled` every one taken out, `queued` what waits now.
  auto mid = stats_of(sys, *rx);
  CHECK(mid.received == 5);
  CHECK(mid.handled == 1);
  CHECK(mid.queued == 4);
  CHECK(mid.high_water == 4);

  gate.release();
  REQUIRE(test::wait_for([&] { return log.count.load() == accepted; }));
  REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).handled == static_cast<std::uint64_t>(accepted); }));
  auto end = stats_of(sys, *rx);
  CHECK(end.received == static_cast<std::uint64_t>(accepted));
  CHECK(end.queued == 0);
  CHECK(end.high_water == 4);
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Backpressure at a full mailbox, sender on the receiver's own worker

namespace {

struct FillResults {
  std::atomic<int> accepted{0};
  std::atomic<int> block_code{-1};
  std::atomic<bool> block_kept{false};
  std::atomic<int> error_code{-1};
  std::atomic<bool> error_kept{false};
  std::atomic<int> drop_code{-1};
  std::atomic<bool> done{false};
};

// Runs on the receiver's worker, so the receiver cannot drain while this
// handler runs: fills the mailbox, then tries each policy once.
struct Filler : Actor<int> {
  ActorRef<std::unique_ptr<int>> to;
  FillResults* out;
  Filler(ActorRef<std::unique_ptr<int>> t, FillResults* o) : to(t), out(o) {}
  void on_message(Context<int>& ctx, int&) override {
    for (int v = 1; v <= 4; ++v)
      if (ctx.send(to, std::make_unique<int>(v), Backpressure::Error)) out->accepted.fetch_add(1);
    auto p = std::make_unique<int>(5);
    auto rb = ctx.send(to, std::move(p), Backpressure::Block);
    out->block_code.store(static_cast<int>(rb.code()));
    out->block_kept.store(p != nullptr && *p == 5);
    auto re = ctx.send(to, std::move(p), Backpressure::Error);
    out->error_code.store(static_cast<int>(re.code()));
    out->error_kept.store(p != nullptr && *p == 5);
    auto rd = ctx.send(to, std::make_unique<int>(6), Backpressure::Drop);
    out->drop_code.store(static_cast<int>(rd.code()));
    out->done.store(true, std::memory_order_release);
  }
};

}  // namespace

TEST_CASE("a blocking send from the receiver's own worker to its full mailbox is refused with WouldDeadlock") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Log log;
  using M = std::unique_ptr<int>;
  auto rx = sys.spawn_with<GatedReceiver<M>>(SpawnOptions{.worker = 1, .mailbox_capacity = 4},
                                             [&] { return GatedReceiver<M>(nullptr, &log); });
  REQUIRE(rx.ok());
  FillResults res;
  auto filler = sys.spawn_with<Filler>(SpawnOptions{.worker = 1}, [&] { return Filler(*rx, &res); });
  REQUIRE(filler.ok());
  REQUIRE(sys.send(*filler, 0).ok());
  REQUIRE(test::wait_for([&] { return res.done.load(std::memory_order_acquire); }));

  CHECK(res.accepted.load() == 4);
  CHECK(res.block_code.load() == static_cast<int>(Errc::WouldDeadlock));
  CHECK(res.block_kept.load());
  CHECK(res.error_code.load() == static_cast<int>(Errc::Full));
  CHECK(res.error_kept.load());
  CHECK(res.drop_code.load() == static_cast<int>(Errc::Ok));

  REQUIRE(test::wait_for([&] { return log.count.load() == 4; }));
  REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).handled == 4; }));
  auto st = stats_of(sys, *rx);
  CHECK(st.received == 4);
  CHECK(st.dropped == 1);
  CHECK(st.high_water == 4);
  CHECK(sys.stats().dead_letters == 1);
  CHECK(log.snapshot() == std::vector<int>{1, 2, 3, 4});
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Blocking sends in a cycle across workers (issue 7, C7)

namespace {

constexpr int kGo = -1;
constexpr int kRingMax = 3;

struct RingState {
  ActorRef<int> ring[kRingMax];
  int size = 0;
  std::atomic<int> entered{0};
  std::atomic<int> finished{0};
  std::atomic<int> received{0};
  std::atomic<int> accepted{0};
  std::atomic<int> would_deadlock{0};
  std::atomic<int> other_errors{0};
  std::atomic<bool> noted{false};
  char message[Error::kMessageSize] = {};
};

// On kGo: waits until every member of the ring is in its own kGo handler (so
// that no worker of the ring drains anything), then sends `sends` messages
// to the next member with Backpressure::Block.
struct RingMember : Actor<int> {
  RingState* st;
  int index;
  int sends;
  RingMember(RingState* s, int i, int n) : st(s), index(i), sends(n) {}
  void on_message(Context<int>& ctx, int& v) override {
    if (v != kGo) {
      st->received.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    st->entered.fetch_add(1);
    while (st->entered.load() < st->size) std::this_thread::yield();
    const ActorRef<int> next = st->ring[(index + 1) % st->size];
    for (int k = 0; k < sends; ++k) {
      auto r = ctx.send(next, 1, Backpressure::Block);
      if (r) {
        st->accepted.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      (r.code() == Errc::WouldDeadlock ? st->would_deadlock : st->other_errors).fetch_add(1);
      if (!st->noted.exchange(true)) std::snprintf(st->message, sizeof st->message, "%s", r.error().message());
      break;
    }
    st->finished.fetch_add(1, std::memory_order_release);
  }
};

}  // namespace

TEST_CASE("blocking sends that would close a cycle of workers are refused with WouldDeadlock instead of hanging") {
  // Each member's mailbox holds 2; each member sends 4 to the next while
  // every worker of the ring is inside such a handler: all of them fill the
  // next mailbox and block. The sender that would close the cycle must get
  // WouldDeadlock; its handler returns, its worker drains, and the others
  // go on and finish.
  int members = 2;
  SECTION("two workers blocked on each other") { members = 2; }
  SECTION("three workers blocked in a ring") { members = 3; }
  SystemConfig cfg;
  cfg.workers = static_cast<std::uint32_t>(members);
  System sys(cfg);
  RingState st;
  st.size = members;
  constexpr int kSends = 4;
  for (int i = 0; i < members; ++i) {
    auto r = sys.spawn_with<RingMember>(SpawnOptions{.worker = i, .mailbox_capacity = 2},
                                        [&st, i] { return RingMember(&st, i, kSends); });
    REQUIRE(r.ok());
    st.ring[i] = *r;
  }
  for (int i = 0; i < members; ++i) REQUIRE(sys.send(st.ring[i], kGo).ok());
  const bool finished = test::wait_for([&] { return st.finished.load(std::memory_order_acquire) == members; });
  INFO("first refusal: " << (st.noted.load() ? st.message : "none"));
  CHECK(finished);
  CHECK(st.would_deadlock.load() >= 1);
  CHECK(st.other_errors.load() == 0);
  if (st.noted.load()) CHECK(contains(st.message, "cycle"));
  // Every accepted message is handled: the refused sends were the only
  // ones that did not go in.
  CHECK(st.accepted.load() + st.would_deadlock.load() >= (members - 1) * kSends);
  REQUIRE(test::wait_for([&] { return st.received.load() == st.accepted.load(); }));
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// The system lane

namespace {

struct TimerSetter : Actor<int> {
  ActorRef<std::unique_ptr<int>> to;
  std::atomic<int>* code;
  TimerSetter(ActorRef<std::unique_ptr<int>> t, std::atomic<int>* c) : to(t), code(c) {}
  void on_message(Context<int>& ctx, int& v) override {
    auto r = ctx.send_after(to, std::make_unique<int>(v), 1ms);
    code->store(static_cast<int>(r.code()), std::memory_order_release);
  }
};

}  // namespace

TEST_CASE("a send_after timer reaches a full mailbox, because timers bypass the bound") {
  SystemConfig cfg;
  cfg.workers = 2;
  Gate gate;
  Log log;
  System sys(cfg);
  OpenOnExit opener{gate};
  using M = std::unique_ptr<int>;
  auto rx = sys.spawn_with<GatedReceiver<M>>(SpawnOptions{.worker = 0, .mailbox_capacity = 4},
                                             [&] { return GatedReceiver<M>(&gate, &log); });
  REQUIRE(rx.ok());
  std::atomic<int> code{-1};
  auto setter = sys.spawn_with<TimerSetter>(SpawnOptions{.worker = 1}, [&] { return TimerSetter(*rx, &code); });
  REQUIRE(setter.ok());

  REQUIRE(sys.send(*rx, std::make_unique<int>(1)).ok());
  REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
  const int last = fill_behind_first(sys, *rx);
  const auto full = stats_of(sys, *rx);
  REQUIRE(full.queued == 4);
  REQUIRE(sys.send(*rx, std::make_unique<int>(50)).code() == Errc::Full);

  REQUIRE(sys.send(*setter, 100).ok());
  REQUIRE(test::wait_for([&] { return code.load(std::memory_order_acquire) != -1; }));
  REQUIRE(code.load() == static_cast<int>(Errc::Ok));
  // The timer's message goes in beyond the bound.
  REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).queued == full.queued + 1; }));
  // A user send still sees the mailbox full.
  CHECK(sys.send(*rx, std::make_unique<int>(51)).code() == Errc::Full);
  CHECK(stats_of(sys, *rx).dropped == 0);

  gate.release();
  REQUIRE(test::wait_for([&] { return log.count.load() == last + 1; }));
  auto expect = one_to(last);
  expect.push_back(100);
  CHECK(log.snapshot() == expect);
  CHECK(sys.stats().dead_letters == 0);
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Message-pool exhaustion

namespace {

// A command for the pool sender; big enough (64 + 16 bytes) to travel in the
// 128-byte class, so that it is not starved by the exhausted 64-byte class.
struct PoolCmd {
  int op;  // 0: send until refused; 1: send one message
  char pad[60];
};
static_assert(detail::size_class_for(detail::kNodePayload + sizeof(PoolCmd)) == 1);

struct PoolReport {
  std::atomic<int> accepted{0};
  std::atomic<int> last_code{-1};
  char last_message[Error::kMessageSize] = {};
  std::atomic<int> replies{0};  // release-published after the fields above
};

struct PoolSender : Actor<PoolCmd> {
  ActorRef<int> to;
  PoolReport* out;
  int next = 100;
  PoolSender(ActorRef<int> t, PoolReport* o) : to(t), out(o) {}
  void on_message(Context<PoolCmd>& ctx, PoolCmd& cmd) override {
    for (int i = 0; i < 64; ++i) {
      auto r = ctx.send(to, next);
      if (r) {
        ++next;
        out->accepted.fetch_add(1, std::memory_order_relaxed);
        out->last_code.store(0, std::memory_order_relaxed);
      } else {
        out->last_code.store(static_cast<int>(r.code()), std::memory_order_relaxed);
        std::snprintf(out->last_message, sizeof out->last_message, "%s", r.error().message());
        break;
      }
      if (cmd.op == 1) break;
    }
    out->replies.fetch_add(1, std::memory_order_release);
  }
};

}  // namespace

TEST_CASE("an exhausted message pool refuses sends with Full until the receiver frees blocks") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.message_blocks = {8, 8, 0, 0, 0, 0, 0};
  Gate gate;
  Log log;
  System sys(cfg);
  OpenOnExit opener{gate};
  auto rx = sys.spawn_with<GatedReceiver<int>>(SpawnOptions{.worker = 0},
                                               [&] { return GatedReceiver<int>(&gate, &log); });
  REQUIRE(rx.ok());

  SECTION("sender on a plain thread") {
    REQUIRE(sys.send(*rx, 1).ok());
    REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
    int accepted = 1;
    Result<void> last;
    for (int v = 2; v < 100; ++v) {
      auto r = sys.send(*rx, v);
      if (!r) {
        last = r;
        break;
      }
      ++accepted;
    }
    // Eight 64-byte blocks: the message being handled and seven queued.
    CHECK(accepted == 8);
    REQUIRE(last.code() == Errc::Full);
    INFO(last.error().message());
    // The mailbox (capacity 1024) has room: it is the pool that ran out.
    CHECK(contains(last.error().message(), "message pool"));
    CHECK(contains(last.error().message(), "64-byte"));

    gate.release();
    REQUIRE(test::wait_for([&] { return log.count.load() == 8; }));
    REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).handled == 8; }));
    // Every block is free again: sending works.
    const bool again = test::wait_for([&] { return sys.send(*rx, 1000).ok(); }, 3s);
    CHECK(again);
    if (again) {
      for (int v = 1001; v < 1004; ++v) REQUIRE(test::wait_for([&] { return sys.send(*rx, v).ok(); }, 3s));
      REQUIRE(test::wait_for([&] { return log.count.load() == 12; }));
      std::vector<int> expect{1, 2, 3, 4, 5, 6, 7, 8, 1000, 1001, 1002, 1003};
      CHECK(log.snapshot() == expect);
    }
  }

  SECTION("sender actor on another worker") {
    PoolReport rep;
    auto tx = sys.spawn_with<PoolSender>(SpawnOptions{.worker = 1}, [&] { return PoolSender(*rx, &rep); });
    REQUIRE(tx.ok());
    REQUIRE(sys.send(*rx, 1).ok());
    REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
    REQUIRE(sys.send(*tx, PoolCmd{0, {}}).ok());
    REQUIRE(test::wait_for([&] { return rep.replies.load(std::memory_order_acquire) == 1; }));
    CHECK(rep.accepted.load() == 7);
    REQUIRE(rep.last_code.load() == static_cast<int>(Errc::Full));
    INFO(rep.last_message);
    CHECK(contains(rep.last_message, "message pool"));

    gate.release();
    REQUIRE(test::wait_for([&] { return log.count.load() == 8; }));
    REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).handled == 8; }));
    // All eight blocks are free; the sender actor can send again.
    int replies = 1;
    bool sent = test::wait_for(
        [&] {
          if (rep.replies.load(std::memory_order_acquire) != replies) return false;  // awaiting one
          if (replies > 1 && rep.last_code.load() == 0) return true;
          if (sys.send(*tx, PoolCmd{1, {}})) ++replies;
          return false;
        },
        3s);
    CHECK(sent);
    if (sent) {
      REQUIRE(test::wait_for([&] { return log.count.load() == 9; }));
      CHECK(log.snapshot().back() == 107);
    }
  }

  gate.release();
  REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).queued == 0; }));
  const auto handled = stats_of(sys, *rx).handled;
  CHECK(handled == static_cast<std::uint64_t>(log.count.load()));
  CHECK(sys.stats().dead_letters == 0);
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Many producers, few consumers (meant for TSan)

namespace {

constexpr int kTargets = 3;
constexpr std::uint32_t kStressSenders = 6;
constexpr std::uint32_t kStressPerTarget = 3000;

struct TargetLog {
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> sum{0};
  std::atomic<std::uint64_t> out_of_order{0};
};

struct StressTarget : Actor<Seq> {
  TargetLog* log;
  std::int64_t last[kStressSenders];
  explicit StressTarget(TargetLog* l) : log(l) {
    for (auto& x : last) x = -1;
  }
  void on_message(Context<Seq>&, Seq& m) override {
    if (m.sender >= kStressSenders || static_cast<std::int64_t>(m.seq) <= last[m.sender]) {
      log->out_of_order.fetch_add(1, std::memory_order_relaxed);
    } else {
      last[m.sender] = m.seq;
    }
    log->sum.fetch_add(m.seq, std::memory_order_relaxed);
    log->count.fetch_add(1, std::memory_order_release);
  }
};

// Sends kStressPerTarget messages to each target, round robin, without ever
// blocking its worker: on a full mailbox it yields by messaging itself.
struct StressSender : Actor<int> {
  ActorRef<Seq> targets[kTargets];
  std::uint32_t id;
  std::uint32_t i = 0;
  std::atomic<std::uint64_t>* failures;
  std::atomic<int>* finished;
  StressSender(const std::vector<ActorRef<Seq>>& t, std::uint32_t me, std::atomic<std::uint64_t>* f,
               std::atomic<int>* d)
      : id(me), failures(f), finished(d) {
    for (int k = 0; k < kTargets; ++k) targets[k] = t[k];
  }
  void on_message(Context<int>& ctx, int&) override {
    const std::uint32_t total = kStressPerTarget * kTargets;
    for (int burst = 0; burst < 256 && i < total; ++burst) {
      auto r = ctx.send(targets[i % kTargets], Seq{id, i}, Backpressure::Error);
      if (!r) {
        if (r.code() != Errc::Full) failures->fetch_add(1);
        break;
      }
      ++i;
    }
    if (i < total) {
      if (!ctx.send(ctx.self(), 0)) failures->fetch_add(1);
    } else {
      finished->fetch_add(1);
    }
  }
};

}  // namespace

TEST_CASE("many threads and actors sending to a few actors lose and duplicate nothing") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.mailbox_capacity = 64;
  cfg.budget = 16;
  System sys(cfg);
  TargetLog logs[kTargets];
  std::vector<ActorRef<Seq>> targets;
  for (int k = 0; k < kTargets; ++k) {
    auto t = sys.spawn_with<StressTarget>(SpawnOptions{}, [&, k] { return StressTarget(&logs[k]); });
    REQUIRE(t.ok());
    targets.push_back(*t);
  }
  std::atomic<std::uint64_t> failures{0};
  std::atomic<int> finished{0};
  constexpr std::uint32_t kActorSenders = 3;
  std::vector<ActorRef<int>> actors;
  for (std::uint32_t a = 0; a < kActorSenders; ++a) {
    auto s = sys.spawn_with<StressSender>(SpawnOptions{.worker = static_cast<int>(a % 2)},
                                          [&, a] { return StressSender(targets, a, &failures, &finished); });
    REQUIRE(s.ok());
    actors.push_back(*s);
  }
  for (auto& a : actors) REQUIRE(sys.send(a, 0).ok());
  std::vector<std::thread> threads;
  for (std::uint32_t t = kActorSenders; t < kStressSenders; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < kStressPerTarget * kTargets; ++i)
        if (!sys.send(targets[i % kTargets], Seq{t, i}, Backpressure::Block)) failures.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(test::wait_for([&] { return finished.load() == static_cast<int>(kActorSenders); }));

  const std::uint64_t per_target = std::uint64_t{kStressSenders} * kStressPerTarget;
  for (int k = 0; k < kTargets; ++k) {
    INFO("target " << k);
    REQUIRE(test::wait_for([&] { return logs[k].count.load(std::memory_order_acquire) >= per_target; }));
    // Sequence numbers i with i % kTargets == k, for each sender.
    std::uint64_t seq_sum = 0;
    for (std::uint32_t i = static_cast<std::uint32_t>(k); i < kStressPerTarget * kTargets; i += kTargets)
      seq_sum += i;
    CHECK(logs[k].count.load() == per_target);
    CHECK(logs[k].sum.load() == seq_sum * kStressSenders);
    CHECK(logs[k].out_of_order.load() == 0);
    REQUIRE(test::wait_for([&] { return stats_of(sys, targets[k]).handled == per_target; }));
    auto st = stats_of(sys, targets[k]);
    CHECK(st.received == per_target);
    CHECK(st.dropped == 0);
    CHECK(st.queued == 0);
    CHECK(st.high_water <= 64);
  }
  CHECK(failures.load() == 0);
  CHECK(sys.stats().dead_letters == 0);
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// A mailbox far below its bound, hammered by many plain threads (issue 7, C1)

namespace {

struct CountingReceiver : Actor<std::uint32_t> {
  std::atomic<std::uint64_t>* handled;
  explicit CountingReceiver(std::atomic<std::uint64_t>* h) : handled(h) {}
  void on_message(Context<std::uint32_t>&, std::uint32_t&) override {
    handled->fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace

TEST_CASE("a mailbox that can never fill is never reported full and drops nothing, with many threads sending at once") {
  // The message pool holds far fewer blocks than the mailbox bound, so the
  // bound can never be reached: the only legitimate refusal is the pool's
  // own Full, which the senders wait out. Messages are admitted and taken
  // out concurrently all the time, the situation in which a sender used to
  // compute its room from a handled count newer than its admitted count.
  constexpr std::uint32_t kCapacity = 1u << 20;
  constexpr std::uint32_t kThreads = 4;
  const std::uint32_t per_thread = 250000 / test::kScale;
  Backpressure bp = Backpressure::Drop;
  SECTION("Drop") { bp = Backpressure::Drop; }
  SECTION("Error") { bp = Backpressure::Error; }
  SystemConfig cfg;
  cfg.workers = 1;
  cfg.message_blocks = {4096, 64, 0, 0, 0, 0, 0};
  System sys(cfg);
  std::atomic<std::uint64_t> handled{0};
  auto rx = sys.spawn_with<CountingReceiver>(SpawnOptions{.mailbox_capacity = kCapacity},
                                             [&] { return CountingReceiver(&handled); });
  REQUIRE(rx.ok());
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused_full{0};  // a "mailbox is full" refusal
  std::atomic<std::uint64_t> other{0};         // any other unexpected result
  char first_refusal[Error::kMessageSize] = {};
  std::atomic<bool> noted{false};
  // stats().queued is read the same way: it never reads as more than was
  // ever sent (a "negative" count read as about 2^29).
  std::atomic<bool> sending{true};
  std::uint32_t most_queued = 0;
  std::thread watcher([&] {
    while (sending.load(std::memory_order_relaxed)) {
      auto q = sys.stats(*rx);
      if (q && q->queued > most_queued) most_queued = q->queued;
    }
  });
  std::vector<std::thread> pool;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      std::uint64_t ok = 0;
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        for (;;) {
          auto r = sys.send(*rx, t * per_thread + i, bp);
          if (r) {
            ++ok;
            break;
          }
          if (r.code() == Errc::Full && contains(r.error().message(), "message pool")) {
            std::this_thread::yield();  // the pool, not the mailbox: wait for blocks
            continue;
          }
          (r.code() == Errc::Full ? refused_full : other).fetch_add(1, std::memory_order_relaxed);
          if (!noted.exchange(true))
            std::snprintf(first_refusal, sizeof first_refusal, "%s", r.error().message());
          break;
        }
      }
      accepted.fetch_add(ok, std::memory_order_relaxed);
    });
  }
  for (auto& th : pool) th.join();
  sending.store(false, std::memory_order_relaxed);
  watcher.join();
  INFO("first refusal: " << (noted.load() ? first_refusal : "none"));
  CHECK(most_queued <= kThreads * per_thread);
  CHECK(refused_full.load() == 0);
  CHECK(other.load() == 0);
  // Every send reported as successful is handled: none was dropped.
  auto st = stats_of(sys, *rx);
  CHECK(st.dropped == 0);
  CHECK(sys.stats().dead_letters == 0);
  REQUIRE(test::wait_for([&] { return handled.load() == accepted.load(); }));
  REQUIRE(test::wait_for([&] { return stats_of(sys, *rx).queued == 0; }));
  CHECK(stats_of(sys, *rx).handled == accepted.load());
  REQUIRE(sys.shutdown().ok());
  CHECK(handled.load() == accepted.load());
}

TEST_CASE("System::post delivers past a full mailbox, in order after what was queued, and a stopped actor is Dead") {
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  Gate gate;
  test::Log<int> seen;
  auto a = test::spawn_scripted<int>(**sys, 0, nullptr, [&](Context<int>&, int& v) {
    if (v == 0) gate.wait();
    seen.push(v);
  });
  OpenOnExit open{gate};
  REQUIRE(a);
  // Capacity 1024 (default): hold the actor in message 0, fill the rest.
  REQUIRE((*sys)->send(*a, 0));
  REQUIRE(test::wait_for([&] { return (*sys)->stats(a->id)->handled == 1; }));
  std::uint32_t sent = 0;
  while ((*sys)->send(*a, static_cast<int>(sent + 1))) ++sent;
  CHECK((*sys)->send(*a, -1).code() == Errc::Full);
  for (int i = 0; i < 3; ++i) REQUIRE((*sys)->post(*a, 100000 + i));
  gate.release();
  REQUIRE(test::wait_for([&] { return seen.size() == sent + 4; }));
  auto v = seen.get();
  CHECK(v[sent + 1] == 100000);
  CHECK(v[sent + 3] == 100002);
  REQUIRE((*sys)->stop(a->id));
  REQUIRE(test::wait_for([&] { return !(*sys)->alive(a->id); }));
  CHECK((*sys)->post(*a, 5).code() == Errc::Dead);
}
