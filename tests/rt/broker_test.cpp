// Broker: subscribe/publish/unsubscribe, typing, capacities, stopped
// subscribers and concurrent publishers.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

// Records every int it receives; a message of -1 holds the handler until
// `gate` opens (or the system stops).
struct Sub : Actor<int> {
  Log<int>* log;
  std::atomic<bool>* gate;
  std::atomic<bool>* entered;
  Sub(Log<int>* l, std::atomic<bool>* g = nullptr, std::atomic<bool>* e = nullptr)
      : log(l), gate(g), entered(e) {}
  void on_message(Context<int>& ctx, int& m) override {
    if (m == -1 && gate != nullptr) {
      entered->store(true);
      const auto end = std::chrono::steady_clock::now() + 10s;
      while (!gate->load() && !ctx.stopping() && std::chrono::steady_clock::now() < end)
        std::this_thread::yield();
      return;
    }
    log->push(m);
  }
};

struct StrSub : Actor<std::string> {
  Log<std::string>* log;
  explicit StrSub(Log<std::string>* l) : log(l) {}
  void on_message(Context<std::string>&, std::string& m) override { log->push(m); }
};

// Sums what it receives; for the concurrency test.
struct Summer : Actor<long> {
  std::atomic<long>* sum;
  std::atomic<long>* count;
  Summer(std::atomic<long>* s, std::atomic<long>* c) : sum(s), count(c) {}
  void on_message(Context<long>&, long& m) override {
    sum->fetch_add(m, std::memory_order_relaxed);
    count->fetch_add(1, std::memory_order_relaxed);
  }
};

Result<ActorRef<int>> spawn_sub(System& sys, Log<int>& log) { return sys.spawn<Sub>(&log); }

}  // namespace

TEST_CASE("every subscriber of a topic receives one copy of each published message") {
  Log<int> l1, l2, l3, outsider;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Broker& b = sys.broker();
  auto s1 = spawn_sub(sys, l1);
  auto s2 = spawn_sub(sys, l2);
  auto s3 = spawn_sub(sys, l3);
  auto s4 = spawn_sub(sys, outsider);
  REQUIRE((s1.ok() && s2.ok() && s3.ok() && s4.ok()));
  REQUIRE(b.topics() == 0);
  REQUIRE(b.subscribe("news", *s1).ok());
  REQUIRE(b.subscribe("news", *s2).ok());
  REQUIRE(b.subscribe("news", *s3).ok());
  REQUIRE(b.topics() == 1);

  for (int v = 1; v <= 3; ++v) {
    auto r = b.publish("news", v);
    REQUIRE(r.ok());
    REQUIRE(r->delivered == 3);
    REQUIRE(r->failed == 0);
  }
  const std::vector<int> all{1, 2, 3};
  REQUIRE(test::wait_for([&] { return l1.size() == 3 && l2.size() == 3 && l3.size() == 3; }));
  REQUIRE(l1.sorted() == all);
  REQUIRE(l2.sorted() == all);
  REQUIRE(l3.sorted() == all);

  SECTION("unsubscribe stops the copies to that subscriber only") {
    REQUIRE(b.unsubscribe("news", *s2).ok());
    auto r = b.publish("news", 4);
    REQUIRE(r.ok());
    REQUIRE(r->delivered == 2);
    REQUIRE(r->failed == 0);
    REQUIRE(test::wait_for([&] { return l1.size() == 4 && l3.size() == 4; }));
    // A sentinel sent after the publish has reached s2, so the copy would have too.
    REQUIRE(sys.send(*s2, 100).ok());
    REQUIRE(test::wait_for([&] { return l2.size() == 4; }));
    REQUIRE(l2.get().back() == 100);
    REQUIRE(l2.sorted() == std::vector<int>{1, 2, 3, 100});

    REQUIRE(b.unsubscribe("news", *s2).code() == Errc::NotFound);
    REQUIRE(b.unsubscribe("news", *s4).code() == Errc::NotFound);
    REQUIRE(b.unsubscribe("sports", *s1).code() == Errc::NotFound);

    // Subscribing again works.
    REQUIRE(b.subscribe("news", *s2).ok());
    auto again = b.publish("news", 5);
    REQUIRE(again.ok());
    REQUIRE(again->delivered == 3);
    REQUIRE(test::wait_for([&] { return l2.size() == 5; }));
    REQUIRE(l2.get().back() == 5);
  }

  SECTION("topics are independent") {
    REQUIRE(b.subscribe("sports", *s1).ok());
    REQUIRE(b.subscribe("sports", *s4).ok());
    REQUIRE(b.topics() == 2);
    auto r = b.publish("sports", 7);
    REQUIRE(r.ok());
    REQUIRE(r->delivered == 2);
    REQUIRE(test::wait_for([&] { return l1.size() == 4 && outsider.size() == 1; }));
    REQUIRE(outsider.get() == std::vector<int>{7});
    // s2 and s3 got nothing from "sports": a later direct message is next.
    REQUIRE(sys.send(*s2, 100).ok());
    REQUIRE(test::wait_for([&] { return l2.size() == 4; }));
    REQUIRE(l2.get().back() == 100);
  }

  SECTION("the outsider never got a copy") {
    REQUIRE(sys.send(*s4, 100).ok());
    REQUIRE(test::wait_for([&] { return outsider.size() == 1; }));
    REQUIRE(outsider.get() == std::vector<int>{100});
  }

  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a topic is typed by its first subscriber: another type gets TypeMismatch") {
  Log<int> li;
  Log<std::string> ls;
  SystemConfig cfg;
  System sys(cfg);
  Broker& b = sys.broker();
  auto i = spawn_sub(sys, li);
  auto s = sys.spawn<StrSub>(&ls);
  REQUIRE((i.ok() && s.ok()));
  REQUIRE(b.subscribe("ints", *i).ok());
  REQUIRE(b.subscribe("strings", *s).ok());

  SECTION("subscribe") {
    REQUIRE(b.subscribe("ints", *s).code() == Errc::TypeMismatch);
    REQUIRE(b.subscribe("strings", *i).code() == Errc::TypeMismatch);
  }
  SECTION("publish") {
    REQUIRE(b.publish("ints", std::string("x")).code() == Errc::TypeMismatch);
    REQUIRE(b.publish("strings", 5).code() == Errc::TypeMismatch);
    REQUIRE(b.publish("ints", 5L).code() == Errc::TypeMismatch);  // long is not int
  }

  // The right types still work, and the refused publishes sent nothing.
  auto ri = b.publish("ints", 9);
  REQUIRE(ri.ok());
  REQUIRE(ri->delivered == 1);
  auto rs = b.publish("strings", std::string(100, 'y'));
  REQUIRE(rs.ok());
  REQUIRE(rs->delivered == 1);
  REQUIRE(test::wait_for([&] { return li.size() == 1 && ls.size() == 1; }));
  REQUIRE(li.get() == std::vector<int>{9});
  REQUIRE(ls.get() == std::vector<std::string>{std::string(100, 'y')});
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("the broker holds broker_topics topics") {
  Log<int> log;
  SystemConfig cfg;
  cfg.broker_topics = 2;
  System sys(cfg);
  Broker& b = sys.broker();
  auto s1 = spawn_sub(sys, log);
  auto s2 = spawn_sub(sys, log);
  REQUIRE((s1.ok() && s2.ok()));
  REQUIRE(b.subscribe("t1", *s1).ok());
  REQUIRE(b.subscribe("t2", *s1).ok());
  REQUIRE(b.subscribe("t3", *s1).code() == Errc::Full);
  REQUIRE(b.subscribe("t3", *s2).code() == Errc::Full);
  REQUIRE(b.topics() == 2);
  // Existing topics still take subscribers.
  REQUIRE(b.subscribe("t1", *s2).ok());
  auto r = b.publish("t1", 1);
  REQUIRE(r.ok());
  REQUIRE(r->delivered == 2);
  // The refused topic does not exist.
  auto r3 = b.publish("t3", 1);
  REQUIRE(r3.ok());
  REQUIRE(r3->delivered == 0);
  REQUIRE(r3->failed == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a topic holds subscribers_per_topic subscribers") {
  Log<int> log;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.subscribers_per_topic = 2;
  System sys(cfg);
  Broker& b = sys.broker();
  auto s1 = spawn_sub(sys, log);
  auto s2 = spawn_sub(sys, log);
  auto s3 = spawn_sub(sys, log);
  REQUIRE((s1.ok() && s2.ok() && s3.ok()));
  REQUIRE(b.subscribe("t", *s1).ok());
  REQUIRE(b.subscribe("t", *s2).ok());
  REQUIRE(b.subscribe("t", *s3).code() == Errc::Full);
  // Another topic has its own room.
  REQUIRE(b.subscribe("u", *s3).ok());

  SECTION("room comes back after an unsubscribe") {
    REQUIRE(b.unsubscribe("t", *s1).ok());
    REQUIRE(b.subscribe("t", *s3).ok());
  }
  SECTION("room comes back when a subscriber stops") {
    REQUIRE(sys.stop(*s1).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(*s1); }));
    REQUIRE(b.subscribe("t", *s3).ok());
  }
  auto r = b.publish("t", 1);
  REQUIRE(r.ok());
  REQUIRE(r->delivered == 2);
  REQUIRE(r->failed == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("stopped subscribers are counted as failed once, then removed") {
  Log<int> l1, l2, l3, lnext;
  SystemConfig cfg;
  cfg.workers = 2;
  SECTION("default capacity") {}
  SECTION("the stopped subscriber's slot gets a new occupant") { cfg.actor_capacity = 3; }
  System sys(cfg);
  Broker& b = sys.broker();
  auto s1 = spawn_sub(sys, l1);
  auto s2 = spawn_sub(sys, l2);
  auto s3 = spawn_sub(sys, l3);
  REQUIRE((s1.ok() && s2.ok() && s3.ok()));
  for (auto s : {*s1, *s2, *s3}) REQUIRE(b.subscribe("t", s).ok());

  REQUIRE(sys.stop(*s2).ok());
  REQUIRE(test::wait_for([&] { return !sys.alive(*s2); }));
  ActorRef<int> next{};
  if (cfg.actor_capacity == 3) {
    REQUIRE(test::wait_for([&] {
      auto r = spawn_sub(sys, lnext);
      if (r) next = *r;
      return r.ok();
    }));
    REQUIRE(next.id.slot == s2->id.slot);
  }

  auto first = b.publish("t", 1);
  REQUIRE(first.ok());
  REQUIRE(first->delivered == 2);
  REQUIRE(first->failed == 1);
  for (int v = 2; v <= 4; ++v) {
    auto r = b.publish("t", v);
    REQUIRE(r.ok());
    REQUIRE(r->delivered == 2);
    REQUIRE(r->failed == 0);
  }
  REQUIRE(test::wait_for([&] { return l1.size() == 4 && l3.size() == 4; }));
  REQUIRE(l2.size() == 0);
  if (next.valid()) {
    // The slot's new occupant never got the stopped subscriber's copies.
    REQUIRE(sys.send(next, 100).ok());
    REQUIRE(test::wait_for([&] { return lnext.size() == 1; }));
    REQUIRE(lnext.get() == std::vector<int>{100});
  }
  // Unsubscribing the removed one finds nothing.
  REQUIRE(b.unsubscribe("t", *s2).code() == Errc::NotFound);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a subscriber refused for a full mailbox stays subscribed") {
  Log<int> log;
  std::atomic<bool> gate{false};
  std::atomic<bool> entered{false};
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Broker& b = sys.broker();
  SpawnOptions o;
  o.mailbox_capacity = 2;
  auto s = sys.spawn_with<Sub>(o, [&] { return Sub(&log, &gate, &entered); });
  REQUIRE(s.ok());
  REQUIRE(b.subscribe("t", *s).ok());
  REQUIRE(sys.send(*s, -1).ok());
  REQUIRE(test::wait_for([&] { return entered.load(); }));
  // Fill the mailbox, then publish with Backpressure::Error.
  int accepted = 0;
  while (accepted < 8 && sys.send(*s, 1000 + accepted, Backpressure::Error).ok()) ++accepted;
  REQUIRE(accepted <= 2);
  REQUIRE(sys.send(*s, 0, Backpressure::Error).code() == Errc::Full);
  auto refused = b.publish("t", 5, Backpressure::Error);
  REQUIRE(refused.ok());
  REQUIRE(refused->delivered == 0);
  REQUIRE(refused->failed == 1);
  gate.store(true);
  REQUIRE(test::wait_for([&] { return log.size() == static_cast<std::size_t>(accepted); }));
  auto later = b.publish("t", 6, Backpressure::Error);
  REQUIRE(later.ok());
  REQUIRE(later->delivered == 1);
  REQUIRE(later->failed == 0);
  REQUIRE(test::wait_for([&] { return log.size() == static_cast<std::size_t>(accepted) + 1; }));
  REQUIRE(log.get().back() == 6);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("publishing to a topic nobody created reaches no one and creates nothing") {
  SystemConfig cfg;
  System sys(cfg);
  Broker& b = sys.broker();
  auto r = b.publish("nobody", 1);
  REQUIRE(r.ok());
  REQUIRE(r->delivered == 0);
  REQUIRE(r->failed == 0);
  auto rs = b.publish("nobody", std::string("x"));  // no type yet to mismatch
  REQUIRE(rs.ok());
  REQUIRE(rs->delivered == 0);
  REQUIRE(b.topics() == 0);
  // Invalid topic names are refused, on every call.
  REQUIRE(b.publish("", 1).code() == Errc::InvalidArgument);
  REQUIRE(b.publish(std::string(32, 't'), 1).code() == Errc::InvalidArgument);
  Log<int> log;
  auto s = spawn_sub(sys, log);
  REQUIRE(s.ok());
  REQUIRE(b.subscribe("", *s).code() == Errc::InvalidArgument);
  REQUIRE(b.unsubscribe("", *s).code() == Errc::InvalidArgument);
  REQUIRE(b.topics() == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("concurrent publishers reach every subscriber with exact totals") {
  constexpr int kPublishers = 4;
  constexpr int kSubscribers = 3;
  const int per_publisher = 4000 / kScale;
  std::atomic<long> sums[kSubscribers];
  std::atomic<long> counts[kSubscribers];
  for (int i = 0; i < kSubscribers; ++i) {
    sums[i].store(0);
    counts[i].store(0);
  }
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.mailbox_capacity = 256;  // small enough that Block has to wait sometimes
  System sys(cfg);
  Broker& b = sys.broker();
  for (int i = 0; i < kSubscribers; ++i) {
    auto s = sys.spawn<Summer>(&sums[i], &counts[i]);
    REQUIRE(s.ok());
    REQUIRE(b.subscribe("load", *s).ok());
  }

  std::atomic<long> delivered{0};
  std::atomic<long> failed{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> pubs;
  for (int p = 0; p < kPublishers; ++p) {
    pubs.emplace_back([&, p] {
      for (int k = 1; k <= per_publisher; ++k) {
        const long v = static_cast<long>(p) * 1'000'000 + k;
        auto r = b.publish("load", v, Backpressure::Block);
        if (!r) {
          errors.fetch_add(1);
          continue;
        }
        delivered.fetch_add(r->delivered);
        failed.fetch_add(r->failed);
      }
    });
  }
  for (auto& t : pubs) t.join();

  long expected_sum = 0;
  for (int p = 0; p < kPublishers; ++p)
    for (int k = 1; k <= per_publisher; ++k) expected_sum += static_cast<long>(p) * 1'000'000 + k;
  const long expected_count = static_cast<long>(kPublishers) * per_publisher;

  REQUIRE(errors.load() == 0);
  REQUIRE(failed.load() == 0);
  REQUIRE(delivered.load() == expected_count * kSubscribers);
  for (int i = 0; i < kSubscribers; ++i) {
    INFO("subscriber " << i);
    REQUIRE(test::wait_for([&] { return counts[i].load() == expected_count; }));
    REQUIRE(sums[i].load() == expected_sum);
  }
  REQUIRE(sys.stats().dead_letters == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("publishing while subscribers come and go is safe and delivers only to subscribers") {
  // Subscribers churn on one thread while another publishes: every publish
  // reaches between 1 (the permanent subscriber) and all subscribers, and
  // what the subscribers received adds up to what the reports delivered.
  constexpr int kChurners = 3;
  const int rounds = 2000 / kScale;
  std::atomic<long> sums[kChurners + 1];
  std::atomic<long> counts[kChurners + 1];
  for (int i = 0; i <= kChurners; ++i) {
    sums[i].store(0);
    counts[i].store(0);
  }
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Broker& b = sys.broker();
  std::vector<ActorRef<long>> subs;
  for (int i = 0; i <= kChurners; ++i) {
    auto s = sys.spawn<Summer>(&sums[i], &counts[i]);
    REQUIRE(s.ok());
    subs.push_back(*s);
  }
  REQUIRE(b.subscribe("churn", subs[0]).ok());

  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::thread churner([&] {
    int k = 0;
    while (!done.load()) {
      auto& s = subs[static_cast<std::size_t>(1 + k % kChurners)];
      if (!b.subscribe("churn", s).ok()) errors.fetch_add(1);
      if (!b.unsubscribe("churn", s).ok()) errors.fetch_add(1);
      ++k;
    }
  });
  long delivered = 0;
  int bad_reports = 0;
  for (int k = 0; k < rounds; ++k) {
    auto r = b.publish("churn", 1L, Backpressure::Block);
    if (!r || r->failed != 0 || r->delivered < 1 || r->delivered > kChurners + 1) ++bad_reports;
    else delivered += r->delivered;
  }
  done.store(true);
  churner.join();
  REQUIRE(errors.load() == 0);
  REQUIRE(bad_reports == 0);
  REQUIRE(test::wait_for([&] {
    long total = 0;
    for (auto& c : counts) total += c.load();
    return total == delivered;
  }));
  REQUIRE(counts[0].load() == rounds);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("concurrent subscribes of one actor to one topic leave it subscribed once") {
  // Two subscribes of the same actor that race each saw no entry for it and
  // took a place each: every publish then reached it twice, and one
  // unsubscribe left it subscribed.
  Log<int> log;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.subscribers_per_topic = 8;
  System sys(cfg);
  Broker& b = sys.broker();
  auto s = spawn_sub(sys, log);
  REQUIRE(s.ok());
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  int twice = 0, none_ok = 0, lost = 0;
  std::atomic<int> other_errors{0};
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<int> ready{0};
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) {
        }
        auto r = b.subscribe("t", *s);
        if (r) {
          ok.fetch_add(1);
        } else if (r.code() != Errc::AlreadyExists) {
          other_errors.fetch_add(1);
        }
      });
    for (auto& t : threads) t.join();
    if (ok.load() == 0) ++none_ok;
    auto p = b.publish("t", round);
    REQUIRE(p.ok());
    if (p->delivered > 1) ++twice;
    if (p->delivered == 0) ++lost;
    // One unsubscribe ends the subscription: a second one finds nothing.
    REQUIRE(b.unsubscribe("t", *s).ok());
    if (b.unsubscribe("t", *s).ok()) ++twice;
  }
  CHECK(twice == 0);
  CHECK(none_ok == 0);
  CHECK(lost == 0);
  CHECK(other_errors.load() == 0);
  REQUIRE(sys.shutdown().ok());
}
