// The zero-allocation proof: after System construction, spawning, sending,
// receiving, stopping, timers, monitors and asks make no heap allocation.
// support/alloc_counter.cpp counts every operator new and (outside
// sanitizer builds) every malloc/calloc/realloc in the process, including
// the workers'.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/alloc_counter.hpp"
#include "support/wait_for.hpp"

#include <atomic>
#include <cstdint>
#include <thread>
#include <variant>

using namespace airssys;

namespace {

constexpr int kMessages = 1'000'000;
constexpr int kCycles = 10'000;

struct Ball {
  ActorRef<int> from;
  int left;
};

struct Echo : Actor<Ball> {
  void on_message(Context<Ball>& ctx, Ball& b) override { (void)ctx.send(b.from, b.left); }
};

// Bounces a ball with Echo until the count runs out.
struct Bouncer : Actor<int> {
  ActorRef<Ball> echo;
  std::atomic<int>* finished;
  Bouncer(ActorRef<Ball> e, std::atomic<int>* f) : echo(e), finished(f) {}
  void on_message(Context<int>& ctx, int& left) override {
    if (left <= 0) {
      finished->fetch_add(1);
      return;
    }
    (void)ctx.send(echo, Ball{ctx.self(), left - 1});
  }
};

struct Sink : Actor<int> {
  std::atomic<int>* seen;
  explicit Sink(std::atomic<int>* s) : seen(s) {}
  void on_message(Context<int>& ctx, int& v) override {
    seen->fetch_add(1, std::memory_order_relaxed);
    if (v < 0) ctx.stop();
  }
};

struct Tick {};
struct Query {
  ReplyTo<int> reply;
  int value;
};
using ClientMsg = std::variant<int, Tick, Down, Reply<int>>;

struct Server : Actor<Query> {
  void on_message(Context<Query>& ctx, Query& q) override { (void)ctx.reply(q.reply, q.value * 2); }
};

// Exercises timers, cancel, monitors, child spawn/stop and Context::ask,
// `rounds` times, then reports.
struct Client : Actor<ClientMsg> {
  ActorRef<Query> server;
  std::atomic<int>* done;
  std::atomic<int>* errors;
  int rounds;
  Client(ActorRef<Query> s, std::atomic<int>* d, std::atomic<int>* e, int r)
      : server(s), done(d), errors(e), rounds(r) {}

  void round(Context<ClientMsg>& ctx) {
    auto t = ctx.send_after(ctx.self(), Tick{}, std::chrono::milliseconds(0));
    auto cancelled = ctx.send_after(ctx.self(), Tick{}, std::chrono::seconds(60));
    if (!t || !cancelled || !ctx.cancel(*cancelled)) errors->fetch_add(1);
    auto child = ctx.spawn<Sink>(&sink_seen);
    if (!child || !ctx.monitor(*child) || !ctx.send(*child, -1)) errors->fetch_add(1);
    auto asked = ctx.ask<int>(server, [](ReplyTo<int> r) { return Query{r, 21}; },
                              std::chrono::seconds(10));
    if (!asked) errors->fetch_add(1);
  }
  // Each round waits for its three answers (the tick, the Down and the
  // Reply) before starting the next.
  void on_message(Context<ClientMsg>& ctx, ClientMsg& m) override {
    if (auto* r = std::get_if<Reply<int>>(&m); r != nullptr && (!r->result.ok() || r->result.value() != 42))
      errors->fetch_add(1);
    if (!std::holds_alternative<int>(m) && --pending > 0) return;
    if (completed++ == rounds) {
      done->fetch_add(1);
      return;
    }
    pending = 3;
    round(ctx);
  }
  int pending = 0;
  int completed = 0;
  std::atomic<int> sink_seen{0};
};

}  // namespace

TEST_CASE("after construction the runtime allocates nothing for 1M messages and 10k spawn/stop cycles") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.actor_capacity = 256;
  System sys(cfg);

  std::atomic<int> finished{0};
  std::atomic<int> seen{0};
  // Threads are made before counting starts: creating one allocates.
  std::atomic<bool> go{false};
  std::atomic<int> thread_sent{0};
  ActorRef<int> thread_target;
  std::thread sender([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 100'000; ++i)
      if (sys.send(thread_target, i, Backpressure::Block)) thread_sent.fetch_add(1);
  });

  const std::uint64_t before = test::allocations();

  // 1M messages: a same-worker pair and a cross-worker pair, 250k round trips each.
  auto e0 = sys.spawn_with<Echo>(SpawnOptions{.worker = 0}, [] { return Echo{}; });
  auto b0 = sys.spawn_with<Bouncer>(SpawnOptions{.worker = 0}, [&] { return Bouncer(*e0, &finished); });
  auto e1 = sys.spawn_with<Echo>(SpawnOptions{.worker = 1}, [] { return Echo{}; });
  auto b1 = sys.spawn_with<Bouncer>(SpawnOptions{.worker = 0}, [&] { return Bouncer(*e1, &finished); });
  const bool spawned = e0 && b0 && e1 && b1;
  if (spawned) {
    (void)sys.send(*b0, kMessages / 4);
    (void)sys.send(*b1, kMessages / 4);
  }
  // Plus sends from a plain thread.
  auto sink = sys.spawn<Sink>(&seen);
  thread_target = *sink;
  go.store(true);
  const bool pairs_done = test::wait_for([&] { return finished.load() == 2; }, std::chrono::seconds(60));
  sender.join();

  // 10k spawn/stop cycles from a plain thread.
  std::atomic<int> cycle_seen{0};
  int spawn_failures = 0;
  for (int i = 0; i < kCycles; ++i) {
    auto a = sys.spawn<Sink>(&cycle_seen);
    while (!a && a.code() == Errc::Full) a = sys.spawn<Sink>(&cycle_seen);
    if (!a || !sys.send(*a, -1)) ++spawn_failures;
  }
  const bool cycles_done = test::wait_for([&] { return cycle_seen.load() == kCycles; });

  // Timers, cancel, monitors, child spawn/stop and asks from an actor: 1000 rounds.
  std::atomic<int> client_done{0}, client_errors{0};
  auto server = sys.spawn<Server>();
  auto client = sys.spawn<Client>(*server, &client_done, &client_errors, 1000);
  (void)sys.send(*client, 0);
  const bool client_finished = test::wait_for([&] { return client_done.load() == 1; }, std::chrono::seconds(60));

  // Asks from a plain thread.
  int ask_failures = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = sys.ask<int>(*server, [i](ReplyTo<int> to) { return Query{to, i}; }, std::chrono::seconds(10));
    if (!r || *r != 2 * i) ++ask_failures;
  }
  // Stopping everything that is left.
  (void)sys.stop(*b0);
  (void)sys.stop(*b1);
  (void)sys.stop(*e0);
  (void)sys.stop(*e1);
  const bool stopped = test::wait_for([&] { return !sys.alive(*b0) && !sys.alive(*e1); });

  const std::uint64_t after = test::allocations();

  REQUIRE(spawned);
  REQUIRE(pairs_done);
  REQUIRE(cycles_done);
  REQUIRE(client_finished);
  REQUIRE(stopped);
  CHECK(spawn_failures == 0);
  CHECK(ask_failures == 0);
  CHECK(client_errors.load() == 0);
  CHECK(thread_sent.load() == 100'000);
  REQUIRE(test::wait_for([&] { return seen.load() == 100'000; }));
  INFO("malloc counted too: " << test::counts_malloc());
  CHECK(after - before == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("the allocation counter sees an allocation when one happens") {
  const std::uint64_t before = test::allocations();
  int* volatile p = new int(7);
  const std::uint64_t after = test::allocations();
  delete p;
  REQUIRE(after - before == 1);
}

// The 128-byte budget per actor slot is a static_assert in detail/mailbox.hpp.
