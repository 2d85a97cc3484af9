// Concurrent stress tests of the runtime's lock-free building blocks, sized
// to finish quickly under TSan (`make sanitize` runs them there).

#include <airssys/rt/detail/mailbox.hpp>
#include <airssys/rt/detail/name_table.hpp>
#include <airssys/rt/detail/pool.hpp>
#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"
#include "support/wait_for.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace airssys;

namespace {
constexpr int kThreads = 4;
}

TEST_CASE("the index stack never loses or duplicates an index under concurrent pop and push") {
  constexpr std::uint32_t kCount = 64;
  constexpr int kRounds = 20000;
  std::vector<std::atomic<std::uint32_t>> links(kCount);
  detail::IndexStack stack;
  stack.init(links.data(), kCount, true);
  // owner[i] flips 0 -> 1 when popped and back when pushed: a double pop
  // shows up as a failed flip.
  std::vector<std::atomic<int>> owner(kCount);
  std::atomic<int> double_owned{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::uint32_t held[8];
      for (int r = 0; r < kRounds; ++r) {
        int n = 0;
        for (; n < 8; ++n) {
          if (!stack.pop(held[n])) break;
          int expected = 0;
          if (!owner[held[n]].compare_exchange_strong(expected, 1)) double_owned.fetch_add(1);
        }
        for (int k = 0; k < n; ++k) {
          owner[held[k]].store(0);
          stack.push(held[k]);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(double_owned.load() == 0);
  std::set<std::uint32_t> seen;
  std::uint32_t i;
  while (stack.pop(i)) REQUIRE(seen.insert(i).second);
  REQUIRE(seen.size() == kCount);
}

TEST_CASE("a mailbox's queues deliver every node once, in each sender's order, while senders on other threads push and the home thread appends") {
  // kThreads foreign senders push onto the inbox; the consumer thread (the
  // home worker) appends its own messages between pops. Every node comes
  // out once; each sender's nodes, the consumer's included, in order; and a
  // foreign node the consumer had seen pushed before an append comes out
  // before that appended node.
  constexpr int kPerProducer = 50000;
  constexpr int kLocal = 50000;
  struct Item {
    detail::Node node;
    int producer;  // kThreads: the consumer's own
    int seq;
  };
  std::vector<Item> items((kThreads + 1) * kPerProducer);
  // Nodes each sender has pushed (release: after the push).
  std::vector<std::atomic<int>> pushed(kThreads);
  std::atomic<detail::Node*> inbox{nullptr};
  detail::LocalFifo fifo;
  std::vector<std::thread> producers;
  for (int p = 0; p < kThreads; ++p) {
    producers.emplace_back([&, p] {
      for (int s = 0; s < kPerProducer; ++s) {
        Item& it = items[p * kPerProducer + s];
        it.producer = p;
        it.seq = s;
        detail::inbox_push(inbox, &it.node);
        pushed[p].store(s + 1, std::memory_order_release);
      }
    });
  }
  std::vector<int> next(kThreads + 1, 0);
  std::vector<std::uint64_t> out_pos(items.size(), 0);
  // For each local append: the foreign nodes seen pushed just before it.
  std::vector<std::pair<int, std::vector<int>>> seen_before;
  int received = 0, out_of_order = 0, local_sent = 0;
  std::uint64_t pos = 0;
  bool popped = false;
  while (received < kThreads * kPerProducer + kLocal) {
    // Mostly one append per pop; now and then a pop alone, so that the
    // FIFO also drains.
    if (local_sent < kLocal && (local_sent % 7 != 3 || !popped)) {
      Item& it = items[kThreads * kPerProducer + local_sent];
      it.producer = kThreads;
      it.seq = local_sent;
      // Every 97th append: note which foreign nodes are already pushed (the
      // latest seen of each sender), to check they come out first.
      if (local_sent % 97 == 0) {
        std::vector<int> latest(kThreads, -1);
        for (int p = 0; p < kThreads; ++p) latest[p] = pushed[p].load(std::memory_order_acquire) - 1;
        seen_before.emplace_back(kThreads * kPerProducer + local_sent, std::move(latest));
      }
      fifo.append(inbox, &it.node);
      ++local_sent;
    }
    detail::Node* n = fifo.pop(inbox);
    popped = n != nullptr;
    if (n == nullptr) continue;
    auto* it = reinterpret_cast<Item*>(n);  // node is the first member of Item
    if (it->seq != next[it->producer]) ++out_of_order;
    next[it->producer] = it->seq + 1;
    out_pos[static_cast<std::size_t>(it - items.data())] = ++pos;
    ++received;
  }
  for (auto& t : producers) t.join();
  while (detail::Node* n = fifo.pop(inbox)) {
    auto* it = reinterpret_cast<Item*>(n);
    if (it->seq != next[it->producer]) ++out_of_order;
    next[it->producer] = it->seq + 1;
    out_pos[static_cast<std::size_t>(it - items.data())] = ++pos;
    ++received;
  }
  REQUIRE(out_of_order == 0);
  REQUIRE(received == kThreads * kPerProducer + local_sent);
  for (int p = 0; p < kThreads; ++p) REQUIRE(next[p] == kPerProducer);
  REQUIRE(next[kThreads] == local_sent);
  int causal_violations = 0;
  for (auto& [local, latest] : seen_before)
    for (int p = 0; p < kThreads; ++p)
      if (latest[p] >= 0 && out_pos[static_cast<std::size_t>(p * kPerProducer + latest[p])] >
                                out_pos[static_cast<std::size_t>(local)])
        ++causal_violations;
  REQUIRE(causal_violations == 0);
  REQUIRE(fifo.pop(inbox) == nullptr);
  REQUIRE(inbox.load() == nullptr);
}

TEST_CASE("name table lookups see only complete entries while writers insert and erase") {
  detail::NameTable table;
  table.init(64);
  std::vector<detail::Name> names;
  for (int i = 0; i < 32; ++i) names.push_back(*detail::Name::make("name-" + std::to_string(i), "test"));
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<long> found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        for (int i = 0; i < 32; ++i) {
          detail::NameTable::Found f{};
          if (table.find(names[i], f)) {
            found.fetch_add(1);
            // Each name i is only ever inserted with value i and tag i+1.
            if (f.value != static_cast<std::uint64_t>(i) || f.tag != static_cast<std::uintptr_t>(i + 1))
              wrong.fetch_add(1);
          }
        }
      }
    });
  }
  for (int round = 0; round < 2000; ++round) {
    for (int i = 0; i < 32; ++i) {
      auto r = table.insert(names[i], static_cast<std::uint64_t>(i), static_cast<std::uintptr_t>(i + 1), nullptr);
      REQUIRE(r.ok());
    }
    for (int i = 0; i < 32; ++i) {
      detail::NameTable::Found f{};
      REQUIRE(table.find(names[i], f));
      REQUIRE(table.erase(f.index, f.value));
    }
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  REQUIRE(wrong.load() == 0);
  REQUIRE(table.size() == 0);
}

// ---------------------------------------------------------------------------
// Whole-runtime churn: every slot is reused while asks, replies, in-place
// restarts, self-stops, timers and stops from a plain thread race for it.

namespace churn {

struct Req {
  ReplyTo<int> to;
  std::uint32_t mode;
};
struct Tick {};
using AskerMsg = std::variant<Reply<int>, Tick>;

struct Counts {
  std::atomic<std::uint64_t> asked{0};      // Context::ask accepted
  std::atomic<std::uint64_t> replied{0};    // ctx.reply accepted by the runtime
  std::atomic<std::uint64_t> values{0};     // Reply with the value
  std::atomic<std::uint64_t> timeouts{0};   // Reply with Timeout
  std::atomic<std::uint64_t> other{0};      // Reply with any other error
  std::atomic<std::uint64_t> unknown{0};    // Reply for no request in flight (a duplicate)
  std::atomic<std::uint64_t> abandoned{0};  // in flight when its asker stopped
};

// Replies, stops itself, fails (restarted in place) or ignores the request.
struct Replier : Actor<Req> {
  Counts* n;
  explicit Replier(Counts* c) : n(c) {}
  void on_message(Context<Req>& ctx, Req& r) override {
    switch (r.mode % 6) {
      case 0:
      case 1:
      case 2:
        if (ctx.reply(r.to, 42)) n->replied.fetch_add(1);
        break;
      case 3: ctx.stop(); break;
      case 4: ctx.fail(Error::make(Errc::Failed, "churn")); break;
      default: break;  // never answered: the timeout answers
    }
  }
  ErrorAction on_error(Context<Req>&, const Error&) override { return ErrorAction::Restart; }
};

// Keeps up to 64 asks in flight to random repliers (whose ids a plain
// thread keeps replacing), and a timer to itself; sometimes stops itself.
struct Asker : Actor<AskerMsg> {
  static constexpr int kSlots = 64;
  Counts* n;
  std::vector<std::atomic<std::uint64_t>>* repliers;
  std::uint64_t pending[kSlots] = {};
  std::uint32_t seed;
  int rounds = 0;
  Asker(Counts* c, std::vector<std::atomic<std::uint64_t>>* r, std::uint32_t s) : n(c), repliers(r), seed(s) {}
  std::uint32_t draw() { return (seed = seed * 1103515245u + 12345u) >> 8; }
  void fire(Context<AskerMsg>& ctx) {
    for (auto& p : pending) {
      if (p != 0 || draw() % 3 != 0) continue;
      const ActorRef<Req> to{ActorId::from_bits((*repliers)[draw() % repliers->size()].load())};
      const std::uint32_t mode = draw();
      auto id = ctx.ask<int>(to, [mode](ReplyTo<int> rt) { return Req{rt, mode}; },
                             std::chrono::microseconds(200 + draw() % 3000));
      if (id) {
        p = *id;
        n->asked.fetch_add(1);
      }
    }
    (void)ctx.send_after(ctx.self(), Tick{}, std::chrono::milliseconds(draw() % 4));
  }
  void on_start(Context<AskerMsg>& ctx) override { fire(ctx); }
  void on_message(Context<AskerMsg>& ctx, AskerMsg& m) override {
    if (auto* r = std::get_if<Reply<int>>(&m)) {
      std::uint64_t* p = std::find(std::begin(pending), std::end(pending), r->request);
      if (r->request == 0 || p == std::end(pending)) {
        n->unknown.fetch_add(1);
        return;
      }
      *p = 0;
      if (r->result.ok() && *r->result == 42) n->values.fetch_add(1);
      else if (r->result.code() == Errc::Timeout) n->timeouts.fetch_add(1);
      else n->other.fetch_add(1);
      return;
    }
    if (++rounds % 50 == 0 && draw() % 4 == 0) {
      ctx.stop();
      return;
    }
    fire(ctx);
  }
  void on_stop(Context<AskerMsg>&, StopReason) override {
    for (auto p : pending) n->abandoned.fetch_add(p != 0 ? 1 : 0);
  }
};

}  // namespace churn

TEST_CASE("asks, replies, in-place restarts, timers, stops and spawns that reuse slots lose and duplicate nothing") {
  using namespace std::chrono_literals;
  const int rounds = 8 / test::kScale;
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    churn::Counts n;
    SystemConfig cfg;
    cfg.workers = 2;
    cfg.actor_capacity = 64;  // few slots: each is reused many times a round
    cfg.pending_asks = 512;
    System sys(cfg);
    std::vector<std::atomic<std::uint64_t>> repliers(6);
    for (auto& r : repliers) r = sys.spawn<churn::Replier>(&n).value().id.to_bits();
    std::vector<ActorRef<churn::AskerMsg>> askers;
    for (int i = 0; i < 6; ++i)
      askers.push_back(sys.spawn<churn::Asker>(&n, &repliers, static_cast<std::uint32_t>(i + 17 * round)).value());
    std::atomic<bool> churning{true};
    std::atomic<std::uint64_t> respawned{0};
    // A plain thread stops a replier, and spawns its replacement into the
    // slot that is likely the one just freed; now and then it stops an asker.
    std::thread churner([&] {
      std::mt19937 rng(static_cast<std::uint32_t>(round));
      while (churning.load()) {
        auto& r = repliers[rng() % repliers.size()];
        (void)sys.stop(ActorId::from_bits(r.load()));
        std::this_thread::sleep_for(500us);
        if (auto s = sys.spawn<churn::Replier>(&n)) {
          r = s->id.to_bits();
          respawned.fetch_add(1);
        }
        if (rng() % 8 == 0) (void)sys.stop(askers[rng() % askers.size()]);
      }
    });
    std::this_thread::sleep_for(60ms);
    // Odd rounds quiesce first (no churn, every ask resolved, askers
    // stopped), so that every ask can be accounted for; even rounds shut
    // down in the middle of the churn.
    const bool quiesce = round % 2 == 1;
    if (quiesce) {
      churning = false;
      churner.join();
      std::this_thread::sleep_for(50ms);  // the longest ask timeout is 3.2 ms
      for (auto& a : askers) (void)sys.stop(a);
      REQUIRE(test::wait_for([&] { return sys.pool_usage().pending_asks == 0; }));
    }
    REQUIRE(sys.shutdown(5s).ok());
    if (!quiesce) {
      churning = false;
      churner.join();
    }
    CHECK(respawned.load() > 0);
    CHECK(n.asked.load() > 0);
    CHECK(n.unknown.load() == 0);
    CHECK(n.other.load() == 0);
    CHECK(n.values.load() <= n.replied.load());
    if (quiesce) CHECK(n.values.load() + n.timeouts.load() + n.abandoned.load() == n.asked.load());
    const PoolUsage left = sys.pool_usage();
    CHECK(left.message_blocks == 0);
    CHECK(left.pending_asks == 0);
    CHECK(sys.stats().live_actors == 0);
  }
}
