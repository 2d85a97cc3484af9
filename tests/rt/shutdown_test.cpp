// System::shutdown and ~System: busy actors, blocked senders, deadlines,
// idempotence, calls from the wrong place, and the fate of every state
// object and queued message.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/arch_spawn.hpp"
#include "support/process_guard.hpp"
#include "support/rt_test.hpp"
#include "support/temp_dir.hpp"

#include "support/wait_for.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Spins until pred() holds or 10 s pass (a hang guard only).
template <class Pred>
void spin_until(Pred pred) {
  const auto end = Clock::now() + 10s;
  while (!pred() && Clock::now() < end) std::this_thread::yield();
}

void spin_for(std::chrono::milliseconds d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

// What every Busy actor reports.
struct Shared {
  std::atomic<int> constructed{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> started{0};
  std::atomic<int> entered{0};
  std::atomic<long> handled{0};
  std::atomic<long> handled_while_stopping{0};
  std::atomic<int> handlers_done{0};
  Log<StopReason> stops;
  Log<bool> stop_after_handler;  // on_stop saw its long handler finished
};

// Messages: kGate spins until a stop is requested, then `tail` more;
// kLong spins `tail` regardless of stopping; other values are counted.
constexpr int kGate = -1;
constexpr int kLong = -2;

struct Busy : Actor<int> {
  Shared* sh;
  std::chrono::milliseconds tail;
  bool long_handler_done = false;
  Busy(Shared* s, std::chrono::milliseconds t) : sh(s), tail(t) { sh->constructed.fetch_add(1); }
  ~Busy() override { sh->destroyed.fetch_add(1); }
  void on_start(Context<int>&) override { sh->started.fetch_add(1); }
  void on_message(Context<int>& ctx, int& m) override {
    if (m == kGate) {
      sh->entered.fetch_add(1);
      spin_until([&] { return ctx.stopping(); });
      spin_for(tail);
      sh->handlers_done.fetch_add(1);
      return;
    }
    if (m == kLong) {
      sh->entered.fetch_add(1);
      spin_for(tail);
      long_handler_done = true;
      sh->handlers_done.fetch_add(1);
      return;
    }
    if (ctx.stopping()) sh->handled_while_stopping.fetch_add(1);
    sh->handled.fetch_add(1);
  }
  void on_stop(Context<int>&, StopReason r) override {
    sh->stops.push(r);
    sh->stop_after_handler.push(long_handler_done);
  }
};

Result<ActorRef<int>> spawn_busy(System& sys, Shared& sh, int worker,
                                 std::chrono::milliseconds tail = 0ms, std::uint32_t mailbox = 0) {
  return sys.spawn_with<Busy>(on_worker(worker, mailbox), [&sh, tail] { return Busy(&sh, tail); });
}

}  // namespace

TEST_CASE("shutdown with busy actors completes and calls each on_stop once with Shutdown") {
  Shared sh;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.mailbox_capacity = 8192;
  auto sys = std::make_unique<System>(cfg);

  // Per worker: one actor spinning in a handler (until shutdown, then
  // 50 ms more) and two with thousands of queued messages behind it.
  std::vector<ActorRef<int>> gates, loaded;
  for (int w = 0; w < 2; ++w) {
    auto g = spawn_busy(*sys, sh, w, 50ms);
    REQUIRE(g.ok());
    gates.push_back(*g);
    for (int k = 0; k < 2; ++k) {
      auto l = spawn_busy(*sys, sh, w);
      REQUIRE(l.ok());
      loaded.push_back(*l);
    }
  }
  REQUIRE(test::wait_for([&] { return sh.started.load() == 6; }));
  for (auto g : gates) REQUIRE(sys->send(g, kGate).ok());
  REQUIRE(test::wait_for([&] { return sh.entered.load() == 2; }));
  long sent = 0;
  for (auto l : loaded)
    for (int i = 0; i < 5000; ++i, ++sent) REQUIRE(sys->send(l, i, Backpressure::Error).ok());
  for (auto g : gates)
    for (int i = 0; i < 1000; ++i, ++sent) REQUIRE(sys->send(g, i, Backpressure::Error).ok());

  REQUIRE(sys->shutdown().ok());
  REQUIRE(sh.handlers_done.load() == 2);
  REQUIRE(sh.stops.size() == 6);
  for (StopReason r : sh.stops.get()) REQUIRE(r == StopReason::Shutdown);
  REQUIRE(sh.constructed.load() == 6);
  REQUIRE(sh.destroyed.load() == 6);
  // Every queued message was handled or counted as a dead letter.
  const auto st = sys->stats();
  REQUIRE(static_cast<std::uint64_t>(sh.handled.load()) + st.dead_letters == static_cast<std::uint64_t>(sent));
  REQUIRE(st.live_actors == 0);
  REQUIRE(st.stopped == 6);
  sys.reset();
  REQUIRE(sh.stops.size() == 6);  // not called again by the destructor
  REQUIRE(sh.destroyed.load() == 6);
}

TEST_CASE("an actor stopped during a long handler handles none of its queued messages afterwards") {
  // System::stop: "stop after its current message; queued messages are
  // discarded as dead letters". The same holds for the stop that shutdown
  // requests.
  Shared sh;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto g = spawn_busy(sys, sh, 1, 5ms);
  REQUIRE(g.ok());
  REQUIRE(sys.send(*g, kGate).ok());
  REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
  for (int i = 0; i < 200; ++i) REQUIRE(sys.send(*g, i, Backpressure::Error).ok());

  SECTION("System::stop") {
    REQUIRE(sys.stop(*g).ok());
    REQUIRE(test::wait_for([&] { return sh.stops.size() == 1; }));
    REQUIRE(sh.stops.get()[0] == StopReason::Requested);
  }
  SECTION("shutdown") {
    REQUIRE(sys.shutdown().ok());
    REQUIRE(sh.stops.get() == std::vector<StopReason>{StopReason::Shutdown});
  }
  REQUIRE(sh.handled_while_stopping.load() == 0);
  REQUIRE(sh.handled.load() == 0);
  REQUIRE(test::wait_for([&] { return sys.stats().dead_letters == 200; }));
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("shutdown while a plain thread is blocked sending to a full mailbox returns, and so does the send") {
  Shared sh;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto t = spawn_busy(sys, sh, 1, 0ms, 2);
  REQUIRE(t.ok());
  REQUIRE(sys.send(*t, kGate).ok());
  REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
  int filled = 0;
  while (filled < 16 && sys.send(*t, filled, Backpressure::Error).ok()) ++filled;
  REQUIRE(sys.send(*t, 99, Backpressure::Error).code() == Errc::Full);

  constexpr int kSenders = 3;
  std::atomic<int> done{0};
  Errc codes[kSenders];
  std::vector<std::thread> senders;
  for (int i = 0; i < kSenders; ++i) {
    senders.emplace_back([&, i] {
      codes[i] = sys.send(*t, 100 + i, Backpressure::Block).code();
      done.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(20ms);  // let the senders block (an ordering aid, not asserted)
  CHECK(done.load() == 0);            // the mailbox is full and the actor busy: they wait

  const auto result = sys.shutdown();
  const bool returned = test::wait_for([&] { return done.load() == kSenders; });
  for (auto& s : senders) s.join();
  REQUIRE(result.ok());
  REQUIRE(returned);
  for (Errc c : codes) {
    INFO("blocked send returned " << to_string(c));
    // ShuttingDown is the documented answer; Dead if the target closed
    // first; Ok if room came before the stop.
    REQUIRE((c == Errc::ShuttingDown || c == Errc::Dead || c == Errc::Ok));
  }
  REQUIRE(sh.stops.get() == std::vector<StopReason>{StopReason::Shutdown});
  REQUIRE(sh.destroyed.load() == 1);
}

TEST_CASE("shutdown completes while an actor is blocked sending to a full mailbox on another worker") {
  Shared sh;
  Log<Errc> codes;
  Log<StopReason> sender_stops;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto target = spawn_busy(sys, sh, 1, 0ms, 2);
  REQUIRE(target.ok());
  const ActorRef<int> to = *target;

  struct Sender : Actor<int> {
    ActorRef<int> to;
    Log<Errc>* codes;
    Log<StopReason>* stops;
    Sender(ActorRef<int> t, Log<Errc>* c, Log<StopReason>* s) : to(t), codes(c), stops(s) {}
    void on_message(Context<int>& ctx, int&) override {
      for (int i = 0; i < 64; ++i) {
        auto r = ctx.send(to, i, Backpressure::Block);
        codes->push(r.code());
        if (!r) return;
      }
    }
    void on_stop(Context<int>&, StopReason r) override { stops->push(r); }
  };
  auto sender = sys.spawn_with<Sender>(on_worker(0), [&] { return Sender(to, &codes, &sender_stops); });
  REQUIRE(sender.ok());

  REQUIRE(sys.send(to, kGate).ok());
  REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
  REQUIRE(sys.send(*sender, 0).ok());
  // The sender fills the mailbox, then blocks on it.
  REQUIRE(test::wait_for([&] {
    auto st = sys.stats(to);
    return st.ok() && st->queued >= 1;
  }));
  std::this_thread::sleep_for(20ms);  // let it block (an ordering aid, not asserted)
  REQUIRE(codes.size() <= 2);

  REQUIRE(sys.shutdown().ok());
  const auto c = codes.get();
  REQUIRE(!c.empty());
  REQUIRE(c.size() < 64);
  REQUIRE((c.back() == Errc::ShuttingDown || c.back() == Errc::Dead));
  REQUIRE(sender_stops.get() == std::vector<StopReason>{StopReason::Shutdown});
  REQUIRE(sh.stops.get() == std::vector<StopReason>{StopReason::Shutdown});
}

TEST_CASE("a shutdown deadline shorter than a running handler gives Timeout, and every state still stops once") {
  Shared sh;
  auto token = std::make_shared<int>(1);
  SystemConfig cfg;
  cfg.workers = 1;
  auto sys = std::make_unique<System>(cfg);

  struct Holder : Actor<std::shared_ptr<int>> {
    std::atomic<int>* stops;
    explicit Holder(std::atomic<int>* s) : stops(s) {}
    void on_message(Context<std::shared_ptr<int>>&, std::shared_ptr<int>&) override {}
    void on_stop(Context<std::shared_ptr<int>>&, StopReason) override { stops->fetch_add(1); }
  };
  std::atomic<int> holder_stops{0};

  auto spinner = spawn_busy(*sys, sh, 0, 300ms);
  REQUIRE(spinner.ok());
  auto idle = spawn_busy(*sys, sh, 0);
  REQUIRE(idle.ok());
  REQUIRE(test::wait_for([&] { return sh.started.load() == 2; }));
  REQUIRE(sys->send(*spinner, kLong).ok());
  REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
  // Queued behind the long handler, and an actor spawned on the busy worker
  // that has not run yet, with messages of its own.
  for (int i = 0; i < 100; ++i) REQUIRE(sys->send(*spinner, i).ok());
  auto late = spawn_busy(*sys, sh, 0);
  REQUIRE(late.ok());
  for (int i = 0; i < 100; ++i) REQUIRE(sys->send(*late, i).ok());
  auto holder = sys->spawn_with<Holder>(on_worker(0), [&] { return Holder(&holder_stops); });
  REQUIRE(holder.ok());
  for (int i = 0; i < 100; ++i) REQUIRE(sys->send(*holder, token).ok());
  REQUIRE(token.use_count() == 101);

  const auto result = sys->shutdown(20ms);
  REQUIRE(result.code() == Errc::Timeout);
  REQUIRE(sh.handlers_done.load() == 1);
  // on_stop of the spinner ran, and only after its handler returned.
  REQUIRE(sh.constructed.load() == sh.destroyed.load());
  REQUIRE(sh.stops.size() == static_cast<std::size_t>(sh.started.load()));
  for (StopReason r : sh.stops.get()) REQUIRE(r == StopReason::Shutdown);
  const auto after = sh.stop_after_handler.get();
  REQUIRE(std::count(after.begin(), after.end(), true) == 1);
  REQUIRE(sh.constructed.load() >= 2);
  REQUIRE(holder_stops.load() <= 1);
  REQUIRE(token.use_count() == 1);  // the holder's queued messages were destroyed

  SECTION("a second shutdown is ok") { REQUIRE(sys->shutdown().ok()); }
  SECTION("the destructor after it adds nothing") {}
  const int destroyed = sh.destroyed.load();
  sys.reset();
  REQUIRE(sh.destroyed.load() == destroyed);
  REQUIRE(token.use_count() == 1);
}

TEST_CASE("after shutdown the system takes no new work") {
  Shared sh;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto a = spawn_busy(sys, sh, 0);
  REQUIRE(a.ok());
  REQUIRE(sys.send(*a, 1).ok());
  REQUIRE(test::wait_for([&] { return sh.handled.load() == 1; }));

  REQUIRE(sys.shutdown().ok());
  REQUIRE(sys.shutting_down());
  REQUIRE(sys.shutdown().ok());  // idempotent
  REQUIRE(sys.shutdown(0ns).ok());

  REQUIRE(spawn_busy(sys, sh, 0).code() == Errc::ShuttingDown);
  REQUIRE(sys.spawn_with<Busy>(SpawnOptions{}, [&] { return Busy(&sh, 0ms); }).code() == Errc::ShuttingDown);
  REQUIRE_FALSE(sys.alive(*a));
  REQUIRE(sys.send(*a, 2).code() == Errc::Dead);
  REQUIRE(sys.stop(*a).code() == Errc::Dead);
  REQUIRE(sh.constructed.load() == 1);
  REQUIRE(sh.destroyed.load() == 1);
  REQUIRE(sh.stops.size() == 1);
}

TEST_CASE("shutdown called from inside a handler returns WouldDeadlock") {
  Log<Errc> codes;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  struct Caller : Actor<int> {
    Log<Errc>* codes;
    explicit Caller(Log<Errc>* c) : codes(c) {}
    void on_start(Context<int>& ctx) override { codes->push(ctx.system().shutdown().code()); }
    void on_message(Context<int>& ctx, int&) override {
      codes->push(ctx.system().shutdown(1ms).code());
    }
  };
  auto a = sys.spawn<Caller>(&codes);
  REQUIRE(a.ok());
  REQUIRE(sys.send(*a, 1).ok());
  REQUIRE(test::wait_for([&] { return codes.size() == 2; }));
  REQUIRE(codes.get() == std::vector<Errc>{Errc::WouldDeadlock, Errc::WouldDeadlock});
  // The system still runs.
  REQUIRE_FALSE(sys.shutting_down());
  REQUIRE(sys.alive(*a));
  REQUIRE(sys.send(*a, 2).ok());
  REQUIRE(test::wait_for([&] { return codes.size() == 3; }));
  REQUIRE(sys.shutdown().ok());
}

namespace {

// Counts live instances: construction of any kind +1, destruction -1.
struct Counted {
  static std::atomic<long> live;
  static std::atomic<long> destroyed;
  Counted() { live.fetch_add(1); }
  Counted(const Counted&) { live.fetch_add(1); }
  Counted(Counted&&) noexcept { live.fetch_add(1); }
  Counted& operator=(const Counted&) = default;
  ~Counted() {
    live.fetch_sub(1);
    destroyed.fetch_add(1);
  }
};
std::atomic<long> Counted::live{0};
std::atomic<long> Counted::destroyed{0};

struct Payload {
  bool gate = false;
  std::string text;
  std::shared_ptr<int> token;
  Counted counted;
};

struct PayloadActor : Actor<Payload> {
  std::atomic<int>* entered;
  std::shared_ptr<int> token;
  int timers;
  PayloadActor(std::atomic<int>* e, std::shared_ptr<int> t, int n) : entered(e), token(std::move(t)), timers(n) {}
  void on_start(Context<Payload>& ctx) override {
    // Timers that will never fire before the system is gone.
    for (int i = 0; i < timers; ++i)
      (void)ctx.send_after(ctx.self(), Payload{false, std::string(64, 't'), token, {}}, 1h);
  }
  void on_message(Context<Payload>& ctx, Payload& m) override {
    if (m.gate) {
      entered->fetch_add(1);
      spin_until([&] { return ctx.stopping(); });
    }
  }
};

}  // namespace

TEST_CASE("destroying a System with live actors destroys every queued message exactly once") {
  auto token = std::make_shared<int>(42);
  std::atomic<int> entered{0};
  const long live_before = Counted::live.load();
  std::uint64_t queued = 0;
  {
    SystemConfig cfg;
    cfg.workers = 2;
    cfg.mailbox_capacity = 4096;
    auto sys = std::make_unique<System>(cfg);
    std::vector<ActorRef<Payload>> gates, loaded;
    for (int w = 0; w < 2; ++w) {
      auto g = sys->spawn_with<PayloadActor>(on_worker(w), [&] { return PayloadActor(&entered, token, 10); });
      REQUIRE(g.ok());
      gates.push_back(*g);
      auto l = sys->spawn_with<PayloadActor>(on_worker(w), [&] { return PayloadActor(&entered, token, 0); });
      REQUIRE(l.ok());
      loaded.push_back(*l);
    }
    for (auto g : gates) REQUIRE(sys->send(g, Payload{true, {}, nullptr, {}}).ok());
    REQUIRE(test::wait_for([&] { return entered.load() == 2; }));
    // Both workers are held: everything sent now stays queued.
    for (auto l : loaded) {
      for (int i = 0; i < 2000; ++i) {
        REQUIRE(sys->send(l, Payload{false, std::string(40 + i % 50, 'x'), token, {}}).ok());
        ++queued;
      }
    }
    for (auto g : gates) {
      for (int i = 0; i < 500; ++i) {
        REQUIRE(sys->send(g, Payload{false, std::string(100, 'y'), token, {}}).ok());
        ++queued;
      }
    }
    REQUIRE(token.use_count() > static_cast<long>(queued));
    sys.reset();  // no explicit shutdown
  }
  REQUIRE(token.use_count() == 1);
  REQUIRE(Counted::live.load() == live_before);
}

TEST_CASE("concurrent shutdown calls from several threads all return ok") {
  // "All member functions are thread-safe"; shutdown is idempotent.
  constexpr int kThreads = 4;
  struct Race {
    Shared sh;
    std::unique_ptr<System> sys;
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    Errc codes[kThreads] = {};
  };
  for (int iter = 0; iter < 20; ++iter) {
    INFO("iteration " << iter);
    auto race = std::make_unique<Race>();
    SystemConfig cfg;
    cfg.workers = 2;
    race->sys = std::make_unique<System>(cfg);
    for (int i = 0; i < 4; ++i) REQUIRE(spawn_busy(*race->sys, race->sh, i % 2).ok());
    REQUIRE(test::wait_for([&] { return race->sh.started.load() == 4; }));
    std::vector<std::thread> ts;
    Race* r = race.get();
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([r, t] {
        r->ready.fetch_add(1);
        while (r->ready.load() < kThreads) std::this_thread::yield();
        r->codes[t] = r->sys->shutdown().code();
        r->done.fetch_add(1);
      });
    }
    if (!test::wait_for([&] { return race->done.load() == kThreads; })) {
      // Callers stuck inside shutdown: leave them (and the system they
      // use) behind rather than hang the suite.
      for (auto& t : ts) t.detach();
      const int returned = race->done.load();
      (void)race.release();
      FAIL("concurrent System::shutdown calls hung: " << returned << " of " << kThreads << " returned");
    }
    for (auto& t : ts) t.join();
    for (Errc c : race->codes) REQUIRE(c == Errc::Ok);
    REQUIRE(race->sh.stops.size() == 4);
    REQUIRE(race->sh.destroyed.load() == 4);
    race->sys.reset();
    REQUIRE(race->sh.destroyed.load() == 4);
  }
}

namespace {

// A factory capture whose second move (the one into the actor's holder,
// made after spawn has taken a slot) announces itself and then dawdles, so
// that a shutdown can run in between.
struct SlowMove {
  std::shared_ptr<int> token;
  std::atomic<int>* moves;
  std::atomic<bool>* in_window;
  SlowMove(std::shared_ptr<int> t, std::atomic<int>* m, std::atomic<bool>* w)
      : token(std::move(t)), moves(m), in_window(w) {}
  SlowMove(const SlowMove&) = default;
  SlowMove(SlowMove&& o) noexcept : token(std::move(o.token)), moves(o.moves), in_window(o.in_window) {
    if (moves->fetch_add(1) + 1 == 2) {
      in_window->store(true);
      std::this_thread::sleep_for(50ms);  // an ordering aid: shutdown runs meanwhile
    }
  }
};

}  // namespace

TEST_CASE("a spawn racing with shutdown fails with ShuttingDown or its actor is stopped and destroyed") {
  Shared sh;
  auto token = std::make_shared<int>(3);
  std::atomic<int> moves{0};
  std::atomic<bool> in_window{false};
  Errc spawn_code = Errc::Ok;
  Result<void> shut = Errc::Ok;
  {
    SystemConfig cfg;
    cfg.workers = 2;
    System sys(cfg);
    std::thread spawner([&] {
      SlowMove cap(token, &moves, &in_window);
      auto r = sys.spawn_with<Busy>(SpawnOptions{}, [cap, &sh] {
        (void)cap;
        return Busy(&sh, 0ms);
      });
      spawn_code = r.code();
    });
    REQUIRE(test::wait_for([&] { return in_window.load(); }));
    shut = sys.shutdown();
    spawner.join();
    INFO("spawn returned " << to_string(spawn_code));
    REQUIRE((spawn_code == Errc::Ok || spawn_code == Errc::ShuttingDown));
    REQUIRE(shut.ok());
    // Whatever spawn answered, nothing of the actor is left running.
    REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  }
  REQUIRE(sh.constructed.load() == sh.destroyed.load());
  REQUIRE(token.use_count() == 1);  // the factory (and its capture) was destroyed
}

namespace {

// Spawns a Busy child on every message, on either worker, and sends itself
// the next message; on_stop spawns one more. Counts the answers.
struct ChainSpawner : Actor<int> {
  Shared* sh;
  std::atomic<int>* ok;
  std::atomic<int>* refused;
  std::atomic<int>* other;
  ChainSpawner(Shared* s, std::atomic<int>* o, std::atomic<int>* r, std::atomic<int>* x)
      : sh(s), ok(o), refused(r), other(x) {}
  void spawn_one(Context<int>& ctx) {
    auto r = ctx.system().spawn_with<Busy>(SpawnOptions{}, [s = sh] { return Busy(s, 0ms); });
    if (r) {
      ok->fetch_add(1);
    } else if (r.code() == Errc::ShuttingDown) {
      refused->fetch_add(1);
    } else if (r.code() != Errc::Full) {  // the children stay up: the slots run out
      other->fetch_add(1);
    }
  }
  void on_message(Context<int>& ctx, int&) override {
    spawn_one(ctx);
    (void)ctx.send(ctx.self(), 0);
  }
  void on_stop(Context<int>& ctx, StopReason) override { spawn_one(ctx); }
};

}  // namespace

// A spawn on a worker takes no gate: it happens in a live actor's turn,
// which shutdown stops and waits for, so an actor spawned as shutdown
// begins is seen live and stopped too (and one spawned from an on_stop
// that shutdown caused is refused).
TEST_CASE("actors spawning actors on the workers while shutdown runs leave nothing running, and every state is destroyed") {
  for (int round = 0; round < 20; ++round) {
    Shared sh;
    std::atomic<int> ok{0}, refused{0}, other{0};
    Result<void> shut = Errc::Ok;
    {
      SystemConfig cfg;
      cfg.workers = 2;
      System sys(cfg);
      std::vector<ActorRef<int>> spawners;
      for (int w = 0; w < 2; ++w) {
        auto a = sys.spawn_with<ChainSpawner>(on_worker(w), [&] { return ChainSpawner(&sh, &ok, &refused, &other); });
        REQUIRE(a);
        spawners.push_back(a.value());
      }
      for (auto& a : spawners) REQUIRE(sys.send(a, 0));
      REQUIRE(test::wait_for([&] { return ok.load() >= 50 + round * 10; }));
      shut = sys.shutdown();
      REQUIRE(shut.ok());
      CHECK(sys.stats().live_actors == 0);
      // Nothing spawns once shutdown has returned.
      const int after = ok.load();
      std::this_thread::sleep_for(5ms);
      CHECK(ok.load() == after);
    }
    INFO("round " << round << ": " << ok.load() << " spawned, " << refused.load() << " refused");
    CHECK(other.load() == 0);
    // The two spawners' on_stop ran during shutdown, after their kStop: refused.
    CHECK(refused.load() >= 2);
    CHECK(sh.constructed.load() == sh.destroyed.load());
    CHECK(sh.started.load() <= ok.load());
  }
}

namespace {

struct AskReq {
  ReplyTo<int> to;
};

}  // namespace

TEST_CASE("shutdown ends a plain thread's wait in System::ask") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  // The target keeps every request and never answers.
  struct Silent : Actor<AskReq> {
    void on_message(Context<AskReq>&, AskReq&) override {}
  };
  auto t = sys.spawn<Silent>();
  REQUIRE(t.ok());
  std::atomic<bool> done{false};
  std::atomic<bool> asking{false};
  Errc code = Errc::Ok;
  std::thread asker([&] {
    asking.store(true);
    code = sys.ask<int>(*t, [](ReplyTo<int> to) { return AskReq{to}; }, 60s).code();
    done.store(true);
  });
  REQUIRE(test::wait_for([&] { return asking.load(); }));
  std::this_thread::sleep_for(10ms);  // let the ask start waiting (an ordering aid)
  const auto result = sys.shutdown();
  const bool returned = test::wait_for([&] { return done.load(); });
  if (!returned) {
    asker.detach();  // a 60 s wait: do not hang the suite on it
    FAIL("System::ask still waiting after shutdown returned");
  }
  asker.join();
  REQUIRE(result.ok());
  // Not a reply, and not the 60 s timeout: the wait was given up.
  REQUIRE((code == Errc::ShuttingDown || code == Errc::Dead));
}

#if __cpp_exceptions
namespace {

struct Throwing : Actor<std::shared_ptr<int>> {
  explicit Throwing(bool do_throw) {
    if (do_throw) throw std::runtime_error("constructor refuses");
  }
  void on_message(Context<std::shared_ptr<int>>&, std::shared_ptr<int>&) override {}
};

}  // namespace

TEST_CASE("messages queued for an actor whose constructor throws are destroyed") {
  auto token = std::make_shared<int>(5);
  std::atomic<int> entered{0};
  {
    SystemConfig cfg;
    cfg.workers = 1;
    System sys(cfg);
    // Hold the only worker so that messages queue before the first turn.
    auto gate = sys.spawn_with<PayloadActor>(on_worker(0), [&] { return PayloadActor(&entered, nullptr, 0); });
    REQUIRE(gate.ok());
    REQUIRE(sys.send(*gate, Payload{true, {}, nullptr, {}}).ok());
    REQUIRE(test::wait_for([&] { return entered.load() == 1; }));
    auto t = sys.spawn<Throwing>(true);
    REQUIRE(t.ok());
    for (int i = 0; i < 50; ++i) REQUIRE(sys.send(*t, token).ok());
    REQUIRE(token.use_count() == 51);

    SECTION("the actor fails at its first turn") {
      REQUIRE(sys.stop(*gate).ok());  // releases the worker
      REQUIRE(test::wait_for([&] { return !sys.alive(*t); }));
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
      REQUIRE(token.use_count() == 1);
    }
    SECTION("the system is destroyed first") {}
  }
  REQUIRE(token.use_count() == 1);
}
#endif

// ---------------------------------------------------------------------------
// A reply that arrives while shutdown finishes the actors

namespace {

struct KeptReq {
  ReplyTo<int> to;
};

// Keeps the one request it gets and answers it from on_stop.
struct AnswersOnStop : Actor<KeptReq> {
  std::atomic<bool>* kept;
  std::atomic<int>* reply_code;
  ReplyTo<int> to{};
  AnswersOnStop(std::atomic<bool>* k, std::atomic<int>* c) : kept(k), reply_code(c) {}
  void on_message(Context<KeptReq>&, KeptReq& r) override {
    to = r.to;
    kept->store(true);
  }
  void on_stop(Context<KeptReq>& ctx, StopReason) override {
    if (kept->load()) reply_code->store(static_cast<int>(ctx.reply(to, 42).code()));
  }
};

}  // namespace

TEST_CASE("System::ask from a plain thread receives the reply an on_stop sends while a late shutdown finishes it") {
  // Each round: the target keeps the request; an actor on the same worker
  // keeps it busy past the 1 ms deadline, so the target stops (and answers)
  // while shutdown finishes the actors on its own thread, as the waiting
  // thread wakes up.
  const int rounds = 20;
  int received = 0;
  for (int i = 0; i < rounds; ++i) {
    INFO("round " << i);
    Shared sh;
    std::atomic<bool> kept{false};
    std::atomic<int> reply_code{-1};
    SystemConfig cfg;
    cfg.workers = 1;
    cfg.actor_capacity = 4;
    cfg.timers_per_worker = 1;
    cfg.pending_asks = 2;
    System sys(cfg);
    auto target = sys.spawn_with<AnswersOnStop>(on_worker(0), [&] { return AnswersOnStop(&kept, &reply_code); });
    REQUIRE(target.ok());
    auto busy = spawn_busy(sys, sh, 0, 5ms);
    REQUIRE(busy.ok());
    Result<int> answer = Errc::Dead;
    std::thread asker([&] { answer = sys.ask<int>(*target, [](ReplyTo<int> to) { return KeptReq{to}; }, 60s); });
    REQUIRE(test::wait_for([&] { return kept.load(); }));
    REQUIRE(sys.send(*busy, kGate).ok());
    REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
    const auto result = sys.shutdown(1ms);
    asker.join();
    REQUIRE((result.ok() || result.code() == Errc::Timeout));
    // A reply the runtime took is the one the asker returns; otherwise the
    // asker gave up first and the reply was refused.
    REQUIRE(reply_code.load() != -1);
    if (static_cast<Errc>(reply_code.load()) == Errc::Ok) {
      REQUIRE(answer.code() == Errc::Ok);
      REQUIRE(*answer == 42);
      ++received;
    } else {
      REQUIRE(static_cast<Errc>(reply_code.load()) == Errc::Dead);
      REQUIRE(answer.code() == Errc::ShuttingDown);
    }
    const PoolUsage left = sys.pool_usage();
    REQUIRE(left.message_blocks == 0);
    REQUIRE(left.pending_asks == 0);
  }
  WARN(received << " of " << rounds << " rounds delivered the reply during shutdown");
}

// ---------------------------------------------------------------------------
// Deadlines at the ends of the range

TEST_CASE("shutdown with the longest deadline waits for a long handler, and a negative one does not wait") {
  Shared sh;
  SystemConfig cfg;
  cfg.workers = 1;
  System sys(cfg);

  SECTION("nanoseconds::max() is no deadline") {
    auto a = spawn_busy(sys, sh, 0, 100ms);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, kLong).ok());
    REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
    REQUIRE(sys.shutdown(std::chrono::nanoseconds::max()).ok());
    REQUIRE(sh.stop_after_handler.get() == std::vector<bool>{true});
  }

  std::chrono::nanoseconds deadline{0};
  SECTION("-1 ms has passed at once") { deadline = -1ms; }
  SECTION("nanoseconds::min() has passed at once") { deadline = std::chrono::nanoseconds::min(); }
  if (deadline.count() < 0) {
    auto a = spawn_busy(sys, sh, 0, 100ms);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, kLong).ok());
    REQUIRE(test::wait_for([&] { return sh.entered.load() == 1; }));
    REQUIRE(sys.shutdown(deadline).code() == Errc::Timeout);
    REQUIRE(sh.stops.get() == std::vector<StopReason>{StopReason::Shutdown});
  }
  REQUIRE(sh.constructed.load() == sh.destroyed.load());
}

// ---------------------------------------------------------------------------
// Destroying a System from one of its own actors

namespace {

constexpr const char* kSelfDeleteChild = "an actor deleting the System it runs in (run in a child by the test below)";

}  // namespace

// The child's half, hidden from a normal run: the process must end in the
// destructor, so reaching the FAIL is a failure of the child.
TEST_CASE("an actor deleting the System it runs in (run in a child by the test below)", "[.]") {
  // The abort must end this process as it would any program's: Catch's
  // fatal-signal handler would report it instead (and under TSan, its
  // allocations inside the handler turn the end into a TSan report and a
  // plain exit code).
  std::signal(SIGABRT, SIG_DFL);
  auto* sys = new System(SystemConfig{});
  struct Deleter : Actor<int> {
    System* system;
    explicit Deleter(System* s) : system(s) {}
    void on_message(Context<int>&, int&) override { delete system; }
  };
  auto a = sys->spawn<Deleter>(sys);
  REQUIRE(a.ok());
  REQUIRE(sys->send(*a, 1).ok());
  std::this_thread::sleep_for(30s);
  FAIL("the process went on after an actor deleted its System");
}

TEST_CASE("deleting a System from inside one of its own actors ends the process with a message naming the misuse") {
  test::NoChildrenLeft nothing_left;
  test::TempDir dir("airssys-self-delete");
  const std::string err = dir / "stderr";
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const char* argv[] = {exe.c_str(), kSelfDeleteChild, nullptr};
  arch::SpawnSpec spec = test::quiet(exe.c_str(), argv);
  spec.stdio[2] = arch::StdioSpec(arch::StdioMode::File, err.c_str());
  const arch::LimitSpec no_core{arch::LimitKind::CoreSize, 0, 0};
  spec.limits = &no_core;
  spec.limit_count = 1;
  arch::Process child = test::spawn_ok(spec);
  auto status = arch::wait(child, 60'000'000'000);
  REQUIRE(status.ok());
  std::ifstream in(err);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO("child's stderr: " << text);
  CHECK(status->signal == SIGABRT);
  CHECK(text.find("System destroyed from inside one of its own actors") != std::string::npos);
  CHECK(text.find("terminate called") == std::string::npos);
}
