// Actor lifecycle: where actors run, stale handles and slot reuse, stopping
// (from outside and from inside), slot exhaustion and recycling, and the
// lifetime of the actor's state object.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace airssys;
using airssys::test::Gate;
using airssys::test::OpenOnExit;
using namespace std::chrono_literals;

namespace {

bool contains(const char* haystack, const char* needle) {
  return std::strstr(haystack, needle) != nullptr;
}

// Spawns, retrying while the slot of an actor that just stopped is still
// being released.
template <class A, class F>
Result<ActorRef<typename A::Message>> spawn_when_free(System& sys, const SpawnOptions& o, F f) {
  Result<ActorRef<typename A::Message>> r = Error(Errc::Full);
  bool ok = test::wait_for([&] {
    auto s = sys.spawn_with<A>(o, f);
    if (s.code() == Errc::Full) return false;
    r.~Result();
    new (&r) Result<ActorRef<typename A::Message>>(s);
    return true;
  });
  (void)ok;
  return r;
}

// ---------------------------------------------------------------------------
// Placement

struct Where {
  std::mutex m;
  std::map<int, std::thread::id> started;
  std::map<int, std::thread::id> handled;
  std::size_t size() {
    std::lock_guard<std::mutex> g(m);
    return started.size() + handled.size();
  }
};

struct Placed : Actor<int> {
  int tag;
  Where* where;
  Placed(int t, Where* w) : tag(t), where(w) {}
  void on_start(Context<int>&) override {
    std::lock_guard<std::mutex> g(where->m);
    where->started[tag] = std::this_thread::get_id();
  }
  void on_message(Context<int>&, int&) override {
    std::lock_guard<std::mutex> g(where->m);
    where->handled[tag] = std::this_thread::get_id();
  }
};

}  // namespace

TEST_CASE("an actor runs on the worker it was spawned on, and round robin uses every worker in turn") {
  SystemConfig cfg;
  cfg.workers = 3;
  System sys(cfg);
  Where where;
  std::vector<ActorRef<int>> refs;
  auto spawn = [&](int tag, int worker) {
    auto r = sys.spawn_with<Placed>(SpawnOptions{.worker = worker}, [&where, tag] { return Placed(tag, &where); });
    REQUIRE(r.ok());
    refs.push_back(*r);
  };
  // Tags 0..2 pinned to workers 0..2, tag 3 pinned to worker 1 as well,
  // tags 10..15 round robin.
  for (int w = 0; w < 3; ++w) spawn(w, w);
  spawn(3, 1);
  for (int t = 10; t < 16; ++t) spawn(t, -1);
  for (auto& r : refs) REQUIRE(sys.send(r, 0).ok());
  REQUIRE(test::wait_for([&] { return where.size() == 2 * refs.size(); }));

  std::lock_guard<std::mutex> g(where.m);
  // Every handler of an actor runs on its home worker.
  for (auto& [tag, id] : where.started) {
    INFO("tag " << tag);
    CHECK(where.handled.at(tag) == id);
    CHECK(id != std::this_thread::get_id());
  }
  const auto w0 = where.started.at(0), w1 = where.started.at(1), w2 = where.started.at(2);
  CHECK(w0 != w1);
  CHECK(w1 != w2);
  CHECK(w0 != w2);
  CHECK(where.started.at(3) == w1);
  // Six consecutive round-robin spawns: each worker twice.
  std::map<std::thread::id, int> per_worker;
  for (int t = 10; t < 16; ++t) ++per_worker[where.started.at(t)];
  CHECK(per_worker.size() == 3);
  CHECK(per_worker[w0] == 2);
  CHECK(per_worker[w1] == 2);
  CHECK(per_worker[w2] == 2);
}

TEST_CASE("spawning on a worker index the system does not have (or below -1) fails with InvalidArgument naming it") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.actor_capacity = 1;
  cfg.actor_blocks = {1, 1, 1, 1, 1, 1, 1};
  System sys(cfg);
  Where where;
  for (int bad : {2, 7, 250, -2, -100}) {  // -2 and below were taken as round robin
    INFO("worker " << bad);
    auto r = sys.spawn_with<Placed>(SpawnOptions{.worker = bad}, [&] { return Placed(0, &where); });
    REQUIRE(r.code() == Errc::InvalidArgument);
    INFO(r.error().message());
    CHECK(contains(r.error().message(), std::to_string(bad).c_str()));
  }
  CHECK(sys.stats().live_actors == 0);
  CHECK(sys.stats().spawned == 0);
  // Neither the only slot nor the only actor block leaked.
  auto ok = sys.spawn_with<Placed>(SpawnOptions{.worker = 1}, [&] { return Placed(0, &where); });
  REQUIRE(ok.ok());
  REQUIRE(sys.send(*ok, 0).ok());
  REQUIRE(test::wait_for([&] { return where.size() == 2; }));
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Stale handles

namespace {

struct Inbox {
  std::atomic<int> count{0};
  std::atomic<int> sum{0};
  std::atomic<int> last{0};
  std::atomic<int> stops{0};
};

struct Recorder : Actor<int> {
  Inbox* in;
  explicit Recorder(Inbox* i) : in(i) {}
  void on_message(Context<int>&, int& v) override {
    in->sum.fetch_add(v);
    in->last.store(v);
    in->count.fetch_add(1, std::memory_order_release);
  }
  void on_stop(Context<int>&, StopReason) override { in->stops.fetch_add(1); }
};

}  // namespace

TEST_CASE("a stale ActorRef gives Dead and never reaches the actor that reuses its slot") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.actor_capacity = 1;  // the second actor must take the first one's slot
  System sys(cfg);
  Inbox a_in, b_in;
  auto a = sys.spawn_with<Recorder>(SpawnOptions{}, [&] { return Recorder(&a_in); });
  REQUIRE(a.ok());
  const ActorRef<int> old = *a;
  REQUIRE(sys.send(old, 1).ok());
  REQUIRE(test::wait_for([&] { return a_in.count.load() == 1; }));
  REQUIRE(sys.alive(old));
  REQUIRE(sys.stop(old).ok());
  REQUIRE(test::wait_for([&] { return !sys.alive(old); }));
  REQUIRE(test::wait_for([&] { return a_in.stops.load() == 1; }));

  auto r = sys.send(old, 2);
  CHECK(r.code() == Errc::Dead);
  CHECK(sys.stats(old).code() == Errc::Dead);

  auto b = spawn_when_free<Recorder>(sys, SpawnOptions{}, [&] { return Recorder(&b_in); });
  REQUIRE(b.ok());
  const ActorRef<int> fresh = *b;
  REQUIRE(fresh.id.slot == old.id.slot);
  REQUIRE(fresh.id.gen != old.id.gen);
  CHECK_FALSE(fresh == old);
  CHECK(sys.alive(fresh));
  CHECK_FALSE(sys.alive(old));

  // The old handle still gives Dead; its message goes nowhere.
  CHECK(sys.send(old, 30).code() == Errc::Dead);
  CHECK(sys.stats(old).code() == Errc::Dead);
  // Stopping through the old handle does not touch the new actor.
  CHECK(sys.stop(old).code() == Errc::Dead);
  CHECK(sys.alive(fresh));
  REQUIRE(sys.send(fresh, 4).ok());
  REQUIRE(test::wait_for([&] { return b_in.count.load() == 1; }));
  CHECK(b_in.sum.load() == 4);
  CHECK(b_in.last.load() == 4);
  CHECK(sys.alive(fresh));
  CHECK(b_in.stops.load() == 0);
  auto st = sys.stats(fresh);
  REQUIRE(st.ok());
  CHECK(st->handled == 1);
  CHECK(st->received == 1);
  // The first actor saw only its own message.
  CHECK(a_in.count.load() == 1);
  CHECK(a_in.sum.load() == 1);

  REQUIRE(sys.shutdown().ok());
  CHECK(b_in.stops.load() == 1);
  CHECK(b_in.count.load() == 1);
}

namespace {

// A message type of another actor: trivially destructible, so that a
// misdelivery shows up as a wrong count rather than a crash.
struct Wide {
  std::uint64_t a = 0x1111111111111111;
  std::uint64_t b = 0x2222222222222222;
};

struct WideRecorder : Actor<Wide> {
  Inbox* in;
  explicit WideRecorder(Inbox* i) : in(i) {}
  void on_message(Context<Wide>&, Wide&) override { in->count.fetch_add(1, std::memory_order_release); }
  void on_stop(Context<Wide>&, StopReason) override { in->stops.fetch_add(1); }
};

}  // namespace

TEST_CASE("an ActorRef of one System used with another is refused and never reaches the actor in that slot") {
  // Two live systems: each one's first actor takes slot 0.
  SystemConfig cfg;
  cfg.workers = 1;
  System one(cfg);
  System two(cfg);
  Inbox one_in, two_in, wide_in;
  auto mine = one.spawn_with<Recorder>(SpawnOptions{}, [&] { return Recorder(&one_in); });
  auto theirs = two.spawn_with<Recorder>(SpawnOptions{}, [&] { return Recorder(&two_in); });
  REQUIRE(mine.ok());
  REQUIRE(theirs.ok());
  REQUIRE(mine->id.slot == theirs->id.slot);
  // The other system's second actor takes another message type; in `one`
  // its slot is taken by an int actor.
  auto mine2 = one.spawn_with<Recorder>(SpawnOptions{}, [&] { return Recorder(&one_in); });
  auto wide = two.spawn_with<WideRecorder>(SpawnOptions{}, [&] { return WideRecorder(&wide_in); });
  REQUIRE(mine2.ok());
  REQUIRE(wide.ok());
  REQUIRE(mine2->id.slot == wide->id.slot);

  for (auto bp : {Backpressure::Error, Backpressure::Drop, Backpressure::Block}) {
    auto r = one.send(*theirs, 7, bp);
    CHECK((r.code() == Errc::Dead || r.code() == Errc::InvalidArgument));
    auto rw = one.send(*wide, Wide{}, bp);
    CHECK((rw.code() == Errc::Dead || rw.code() == Errc::InvalidArgument));
  }
  CHECK_FALSE(one.alive(*theirs));
  CHECK_FALSE(one.alive(*wide));
  CHECK_FALSE(one.stats(*theirs).ok());
  CHECK(one.stop(*theirs).code() == Errc::Dead);
  CHECK(one.stop(*wide).code() == Errc::Dead);
  // And the other way round.
  CHECK(two.send(*mine, 8).code() == Errc::Dead);
  CHECK_FALSE(two.alive(*mine));

  // Each system's actors get exactly their own messages, and none stopped.
  REQUIRE(one.send(*mine, 1).ok());
  REQUIRE(one.send(*mine2, 2).ok());
  REQUIRE(two.send(*theirs, 100).ok());
  REQUIRE(test::wait_for([&] { return one_in.count.load() == 2 && two_in.count.load() == 1; }));
  CHECK(one_in.sum.load() == 3);
  CHECK(two_in.sum.load() == 100);
  CHECK(wide_in.count.load() == 0);
  CHECK(one.alive(*mine));
  CHECK(one.alive(*mine2));
  CHECK(one_in.stops.load() == 0);
  CHECK(one.stats().messages == 2);
  REQUIRE(one.shutdown().ok());
  REQUIRE(two.shutdown().ok());
  CHECK(one_in.count.load() == 2);
  CHECK(two_in.count.load() == 1);
}

// ---------------------------------------------------------------------------
// Invalid capacities

TEST_CASE("a mailbox_capacity the mailbox cannot honour is refused at spawn with InvalidArgument naming it") {
  SystemConfig cfg;
  cfg.workers = 1;
  cfg.actor_capacity = 1;
  cfg.actor_blocks = {1, 1, 1, 1, 1, 1, 1};
  System sys(cfg);
  Inbox in;
  for (std::uint32_t bad : {kMaxMailboxCapacity + 1, std::uint32_t{1} << 29, ~std::uint32_t{0}}) {
    INFO("mailbox_capacity " << bad);
    auto r = sys.spawn_with<Recorder>(SpawnOptions{.mailbox_capacity = bad}, [&] { return Recorder(&in); });
    REQUIRE(r.code() == Errc::InvalidArgument);
    INFO(r.error().message());
    CHECK(contains(r.error().message(), "mailbox_capacity"));
    CHECK(contains(r.error().message(), std::to_string(bad).c_str()));
    CHECK(contains(r.error().message(), std::to_string(kMaxMailboxCapacity).c_str()));
  }
  CHECK(sys.stats().spawned == 0);
  // The largest bound is accepted, and neither the only slot nor the only
  // actor block leaked.
  auto ok = sys.spawn_with<Recorder>(SpawnOptions{.mailbox_capacity = kMaxMailboxCapacity},
                                     [&] { return Recorder(&in); });
  REQUIRE(ok.ok());
  REQUIRE(sys.send(*ok, 5).ok());
  REQUIRE(test::wait_for([&] { return in.count.load() == 1; }));
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a SystemConfig without any actor-state blocks is refused by validate, naming actor_blocks") {
  SystemConfig cfg;
  cfg.actor_blocks = {0, 0, 0, 0, 0, 0, 0};
  auto r = System::validate(cfg);
  REQUIRE(r.code() == Errc::InvalidArgument);
  INFO(r.error().message());
  CHECK(contains(r.error().message(), "actor_blocks"));
  CHECK(System::create(cfg).code() == Errc::InvalidArgument);
  // One class with blocks is enough.
  cfg.actor_blocks[3] = 1;
  CHECK(System::validate(cfg).ok());
}

// ---------------------------------------------------------------------------
// Stopping with messages in flight

namespace {

struct StopLog {
  std::atomic<int> handled{0};
  std::atomic<int> stops{0};
  std::atomic<int> reason{-1};
  std::atomic<bool> entered{false};
};

struct SlowConsumer : Actor<int> {
  Gate* gate;
  StopLog* log;
  bool first = true;
  SlowConsumer(Gate* g, StopLog* l) : gate(g), log(l) {}
  void on_message(Context<int>&, int&) override {
    if (first) {
      first = false;
      log->entered.store(true, std::memory_order_release);
      gate->wait();
    }
    log->handled.fetch_add(1, std::memory_order_relaxed);
  }
  void on_stop(Context<int>&, StopReason r) override {
    log->reason.store(static_cast<int>(r));
    log->stops.fetch_add(1, std::memory_order_release);
  }
};

}  // namespace

TEST_CASE("stopping an actor with queued messages runs on_stop once and accounts for every message") {
  SystemConfig cfg;
  cfg.workers = 1;
  Gate gate;
  StopLog log;
  System sys(cfg);
  OpenOnExit opener{gate};
  auto ref = sys.spawn_with<SlowConsumer>(SpawnOptions{}, [&] { return SlowConsumer(&gate, &log); });
  REQUIRE(ref.ok());
  REQUIRE(sys.send(*ref, 0).ok());
  REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
  std::uint64_t accepted = 1;
  for (int i = 0; i < 500; ++i) accepted += sys.send(*ref, i).ok() ? 1 : 0;
  CHECK(accepted == 501);
  const auto before = sys.stats();
  CHECK(before.live_actors == 1);

  SECTION("stopped after the senders are done") {
    REQUIRE(sys.stop(*ref).ok());
    gate.release();
  }
  SECTION("stopped while another thread keeps sending") {
    std::atomic<bool> go{false};
    std::atomic<std::uint64_t> more{0};
    std::atomic<bool> saw_dead{false};
    std::thread sender([&] {
      while (!go.load()) std::this_thread::yield();
      // Bounded, so that a stop that never lands fails the test instead of hanging it.
      for (int i = 0; i < 20'000'000; ++i) {
        auto r = sys.send(*ref, i, Backpressure::Drop);
        if (r.code() == Errc::Dead) {
          saw_dead.store(true);
          break;
        }
        if (r) more.fetch_add(1);
        if (i % 64 == 0) std::this_thread::yield();
      }
    });
    go.store(true);
    const bool stopped = sys.stop(*ref).ok();
    gate.release();
    sender.join();
    REQUIRE(stopped);
    CHECK(saw_dead.load());
    accepted += more.load();
  }

  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  REQUIRE(test::wait_for([&] { return log.stops.load(std::memory_order_acquire) == 1; }));
  CHECK(log.reason.load() == static_cast<int>(StopReason::Requested));
  CHECK_FALSE(sys.alive(*ref));
  CHECK(sys.send(*ref, 1).code() == Errc::Dead);
  CHECK(sys.stop(*ref).code() == Errc::Dead);
  CHECK(sys.stats(*ref).code() == Errc::Dead);
  const auto after = sys.stats();
  const auto handled = static_cast<std::uint64_t>(log.handled.load());
  CHECK(handled >= 1);
  // Every accepted message was either handled or is a dead letter
  // (dropped by Drop, or discarded by the stop).
  CHECK(before.dead_letters == 0);
  CHECK(handled + after.dead_letters == accepted);
  CHECK(after.stopped == 1);
  CHECK(after.spawned == 1);
  REQUIRE(sys.shutdown().ok());
  CHECK(log.stops.load() == 1);
}

TEST_CASE("stop lets the current message finish and discards the queued ones as dead letters") {
  SystemConfig cfg;
  cfg.workers = 1;
  Gate gate;
  StopLog log;
  System sys(cfg);
  OpenOnExit opener{gate};
  auto ref = sys.spawn_with<SlowConsumer>(SpawnOptions{}, [&] { return SlowConsumer(&gate, &log); });
  REQUIRE(ref.ok());
  REQUIRE(sys.send(*ref, 0).ok());
  REQUIRE(test::wait_for([&] { return log.entered.load(std::memory_order_acquire); }));
  for (int i = 0; i < 200; ++i) REQUIRE(sys.send(*ref, i).ok());
  REQUIRE(sys.stop(*ref).ok());
  gate.release();
  REQUIRE(test::wait_for([&] { return log.stops.load(std::memory_order_acquire) == 1; }));
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  // Documented: "stop after its current message; queued messages are
  // discarded as dead letters".
  CHECK(log.handled.load() == 1);
  CHECK(sys.stats().dead_letters == 200);
  CHECK(log.reason.load() == static_cast<int>(StopReason::Requested));
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Stopping from inside, and start order

namespace {

struct SelfStopLog {
  std::atomic<bool> started{false};
  std::atomic<int> message_before_start{0};
  std::atomic<int> count{0};
  std::atomic<int> values[16] = {};
  std::atomic<int> stops{0};
  std::atomic<int> reason{-1};
  std::atomic<int> after_stop{0};  // handlers run after on_stop
};

struct SelfStopper : Actor<int> {
  SelfStopLog* log;
  int stop_at;
  explicit SelfStopper(SelfStopLog* l, int at) : log(l), stop_at(at) {}
  void on_start(Context<int>&) override { log->started.store(true); }
  void on_message(Context<int>& ctx, int& v) override {
    if (!log->started.load()) log->message_before_start.fetch_add(1);
    if (log->stops.load() != 0) log->after_stop.fetch_add(1);
    int i = log->count.load(std::memory_order_relaxed);
    if (i < 16) log->values[i].store(v);
    log->count.store(i + 1, std::memory_order_release);
    if (v == stop_at) ctx.stop();
  }
  void on_stop(Context<int>&, StopReason r) override {
    log->reason.store(static_cast<int>(r));
    log->stops.fetch_add(1, std::memory_order_release);
  }
};

}  // namespace

TEST_CASE("ctx.stop() in a handler stops the actor with reason Normal once that handler returns") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  SelfStopLog log;
  auto ref = sys.spawn_with<SelfStopper>(SpawnOptions{}, [&] { return SelfStopper(&log, 3); });
  REQUIRE(ref.ok());
  // Sent at once: most of these are queued before the actor's first turn.
  int accepted = 0;
  for (int v = 1; v <= 10; ++v) accepted += sys.send(*ref, v).ok() ? 1 : 0;
  REQUIRE(accepted >= 3);
  REQUIRE(test::wait_for([&] { return log.stops.load(std::memory_order_acquire) == 1; }));
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  CHECK(log.reason.load() == static_cast<int>(StopReason::Normal));
  CHECK(log.message_before_start.load() == 0);
  CHECK(log.after_stop.load() == 0);
  REQUIRE(log.count.load() == 3);
  CHECK(log.values[0].load() == 1);
  CHECK(log.values[1].load() == 2);
  CHECK(log.values[2].load() == 3);
  CHECK(sys.stats().dead_letters == static_cast<std::uint64_t>(accepted - 3));
  CHECK(sys.send(*ref, 11).code() == Errc::Dead);
  CHECK_FALSE(sys.alive(*ref));
  REQUIRE(sys.shutdown().ok());
  CHECK(log.stops.load() == 1);
}

// ---------------------------------------------------------------------------
// Slot exhaustion and recycling

namespace {

struct Counts {
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  std::atomic<int> messages{0};
};

struct Idle : Actor<int> {
  Counts* counts;
  explicit Idle(Counts* c) : counts(c) {}
  void on_start(Context<int>&) override { counts->starts.fetch_add(1); }
  void on_message(Context<int>&, int&) override { counts->messages.fetch_add(1); }
  void on_stop(Context<int>&, StopReason) override { counts->stops.fetch_add(1); }
};

}  // namespace

TEST_CASE("spawn fails with Full when every actor slot is taken, and works again once actors stop") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.actor_capacity = 4;
  System sys(cfg);
  Counts counts;
  auto make = [&] { return Idle(&counts); };
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    std::vector<ActorRef<int>> refs;
    for (int i = 0; i < 4; ++i) {
      auto r = spawn_when_free<Idle>(sys, SpawnOptions{}, make);
      REQUIRE(r.ok());
      refs.push_back(*r);
    }
    auto extra = sys.spawn_with<Idle>(SpawnOptions{}, make);
    REQUIRE(extra.code() == Errc::Full);
    INFO(extra.error().message());
    CHECK(contains(extra.error().message(), "4"));
    CHECK(sys.stats().live_actors == 4);
    // The refused spawn did not disturb the running actors.
    for (auto& r : refs) CHECK(sys.send(r, 1).ok());
    for (auto& r : refs) REQUIRE(sys.stop(r).ok());
    REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  }
  CHECK(sys.stats().spawned == 12);
  CHECK(sys.stats().stopped == 12);
  REQUIRE(test::wait_for([&] { return counts.stops.load() == 12; }));
  CHECK(counts.starts.load() == 12);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("ten thousand spawn and stop cycles recycle a small set of actor slots") {
  constexpr int kCycles = 10000;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.actor_capacity = 64;
  System sys(cfg);
  Counts counts;
  auto make = [&] { return Idle(&counts); };
  std::uint64_t accepted = 0;
  for (int i = 0; i < kCycles; ++i) {
    Result<ActorRef<int>> r = Error(Errc::Full);
    REQUIRE(test::wait_for([&] {
      auto s = sys.spawn_with<Idle>(SpawnOptions{}, make);
      if (s.code() == Errc::Full) {
        std::this_thread::yield();
        return false;
      }
      r.~Result();
      new (&r) Result<ActorRef<int>>(s);
      return true;
    }));
    REQUIRE(r.ok());
    REQUIRE(r->id.slot < 64);
    if (i % 2 == 0) accepted += sys.send(*r, i).ok() ? 1 : 0;
    REQUIRE(sys.stop(*r).ok());
  }
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  REQUIRE(test::wait_for([&] { return counts.stops.load() == counts.starts.load(); }));
  const auto st = sys.stats();
  CHECK(st.spawned == kCycles);
  CHECK(st.stopped == kCycles);
  CHECK(accepted == kCycles / 2);
  CHECK(static_cast<std::uint64_t>(counts.messages.load()) + st.dead_letters == accepted);
  // Every slot is free again: a full set can be spawned at once.
  std::vector<ActorRef<int>> all;
  for (int i = 0; i < 64; ++i) {
    auto r = spawn_when_free<Idle>(sys, SpawnOptions{}, make);
    REQUIRE(r.ok());
    all.push_back(*r);
  }
  CHECK(sys.spawn_with<Idle>(SpawnOptions{}, make).code() == Errc::Full);
  REQUIRE(sys.shutdown().ok());
  CHECK(counts.stops.load() == counts.starts.load());
}

// ---------------------------------------------------------------------------
// Lifetime of the actor's state

namespace {

std::atomic<int> g_constructed{0};
std::atomic<int> g_destroyed{0};
std::atomic<int> g_started{0};

enum class Cmd { Ping, Fail, StopSelf };

struct Tracked : Actor<Cmd> {
  std::atomic<int>* handled;
  explicit Tracked(std::atomic<int>* h) : handled(h) { g_constructed.fetch_add(1); }
  ~Tracked() override { g_destroyed.fetch_add(1); }
  void on_start(Context<Cmd>&) override { g_started.fetch_add(1); }
  void on_message(Context<Cmd>& ctx, Cmd& c) override {
    handled->fetch_add(1);
    if (c == Cmd::Fail) ctx.fail(Error::make(Errc::Failed, "asked to fail"));
    if (c == Cmd::StopSelf) ctx.stop();
  }
  ErrorAction on_error(Context<Cmd>&, const Error&) override { return ErrorAction::Restart; }
};

}  // namespace

TEST_CASE("an actor's state object is destroyed exactly once") {
  g_constructed = 0;
  g_destroyed = 0;
  g_started = 0;
  SystemConfig cfg;
  cfg.workers = 2;
  std::atomic<int> handled{0};
  auto make = [&] { return Tracked(&handled); };
  {
    System sys(cfg);
    auto ref = sys.spawn_with<Tracked>(SpawnOptions{}, make);
    REQUIRE(ref.ok());
    REQUIRE(sys.send(*ref, Cmd::Ping).ok());
    REQUIRE(test::wait_for([&] { return handled.load() == 1; }));
    CHECK(g_constructed.load() == 1);
    CHECK(g_destroyed.load() == 0);

    SECTION("when stopped from outside") {
      REQUIRE(sys.stop(*ref).ok());
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
      CHECK(g_constructed.load() == 1);
      CHECK(g_destroyed.load() == 1);
    }
    SECTION("when it stops itself") {
      REQUIRE(sys.send(*ref, Cmd::StopSelf).ok());
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
      CHECK(g_constructed.load() == 1);
      CHECK(g_destroyed.load() == 1);
    }
    SECTION("when the system shuts down") {
      auto more = sys.spawn_with<Tracked>(SpawnOptions{}, make);
      REQUIRE(more.ok());
      REQUIRE(test::wait_for([&] { return g_started.load() == 2; }));
      REQUIRE(sys.shutdown().ok());
      CHECK(g_constructed.load() == 2);
      CHECK(g_destroyed.load() == 2);
    }
    SECTION("when it restarts, and again when it stops") {
      REQUIRE(sys.send(*ref, Cmd::Fail).ok());
      REQUIRE(test::wait_for([&] { return g_started.load() == 2; }));
      CHECK(g_constructed.load() == 2);
      CHECK(g_destroyed.load() == 1);
      REQUIRE(sys.send(*ref, Cmd::Ping).ok());
      REQUIRE(test::wait_for([&] { return handled.load() == 3; }));
      CHECK(sys.alive(*ref));
      REQUIRE(sys.stop(*ref).ok());
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
      CHECK(g_constructed.load() == 2);
      CHECK(g_destroyed.load() == 2);
    }
  }
  // The System is gone: nothing was destroyed twice or left behind.
  CHECK(g_constructed.load() == g_destroyed.load());
}

// ---------------------------------------------------------------------------
// Start acknowledgements, stop reasons and health probes (what supervisors
// are built on).

namespace {

using SupMsg = std::variant<int, Started, Down, HealthReport>;

// A child whose on_start does what the test says: 0 start, 1 fail, 2 stop.
struct StartingChild : Actor<int> {
  int mode;
  std::atomic<Health>* health;
  explicit StartingChild(int m, std::atomic<Health>* h = nullptr) : mode(m), health(h) {}
  void on_start(Context<int>& ctx) override {
    if (mode == 1) ctx.fail(Error::make(Errc::InvalidArgument, "child refuses to start"));
    if (mode == 2) ctx.stop();
  }
  void on_message(Context<int>& ctx, int& v) override {
    if (v == 99) ctx.stop(StopReason::Shutdown);
  }
  Health health_check(Context<int>&) override {
    return health != nullptr ? health->load() : Health::Healthy;
  }
};

struct ParentLog {
  test::Log<std::string> events;
};

// Spawns one child per mode with spawn_supervised and logs what comes back.
struct Parent : Actor<SupMsg> {
  ParentLog* log;
  std::vector<int> modes;
  std::atomic<Health>* health;
  bool defer;
  Parent(ParentLog* l, std::vector<int> m, std::atomic<Health>* h = nullptr, bool d = false)
      : log(l), modes(std::move(m)), health(h), defer(d) {}
  std::vector<ActorId> kids;
  void on_start(Context<SupMsg>& ctx) override {
    if (defer) ctx.defer_started();
    for (int mode : modes) {
      auto h = health;
      // No Catch assertion on a worker thread (Catch is not thread-safe):
      // a failure here shows as a missing log entry.
      auto r = ctx.spawn_supervised<StartingChild>(SpawnOptions{}, [mode, h] { return StartingChild(mode, h); });
      if (!r) {  // spawn_supervised monitors the child itself
        log->events.push("spawn failed");
        continue;
      }
      kids.push_back(r->id);
    }
  }
  int index_of(ActorId id) const {
    for (std::size_t i = 0; i < kids.size(); ++i)
      if (kids[i] == id) return static_cast<int>(i);
    return -1;
  }
  void on_message(Context<SupMsg>& ctx, SupMsg& m) override {
    if (auto* s = std::get_if<Started>(&m)) {
      log->events.push("started " + std::to_string(index_of(s->who)));
    } else if (auto* d = std::get_if<Down>(&m)) {
      log->events.push("down " + std::to_string(index_of(d->who)) + " " + to_string(d->reason));
    } else if (auto* h = std::get_if<HealthReport>(&m)) {
      log->events.push("health " + std::to_string(index_of(h->who)) + " " + to_string(h->health));
    } else if (auto* v = std::get_if<int>(&m)) {
      if (*v == 1) (void)ctx.report_started();
      if (*v == 2) (void)ctx.probe_health(kids.at(0));
      if (*v == 3) (void)ctx.send(ActorRef<int>{kids.at(0)}, 99);
    }
  }
};

bool logged(const ParentLog& log, const std::string& e) {
  auto v = log.events.get();
  return std::find(v.begin(), v.end(), e) != v.end();
}

}  // namespace

TEST_CASE("a child spawned with spawn_supervised reports Started only when its on_start succeeded") {
  ParentLog log;
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  auto p = (*sys)->spawn<Parent>(&log, std::vector<int>{0, 1, 2});
  REQUIRE(p);
  REQUIRE(test::wait_for([&] { return log.events.size() >= 3; }));
  CHECK(logged(log, "started 0"));
  CHECK(logged(log, "down 1 failed"));   // failed in on_start: Down, never Started
  CHECK(logged(log, "down 2 normal"));   // stopped in on_start: Down, never Started
  CHECK_FALSE(logged(log, "started 1"));
  CHECK_FALSE(logged(log, "started 2"));
}

TEST_CASE("an actor that defers its Started sends it when it reports it, once") {
  ParentLog outer, inner;
  std::atomic<std::uint64_t> inner_id{0};
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  // Grand spawns a Parent that defers its Started; the test then tells that
  // Parent (message 1) to report it, twice.
  struct Grand : Actor<SupMsg> {
    ParentLog* log;
    ParentLog* inner;
    std::atomic<std::uint64_t>* inner_id;
    Grand(ParentLog* l, ParentLog* i, std::atomic<std::uint64_t>* id) : log(l), inner(i), inner_id(id) {}
    void on_start(Context<SupMsg>& ctx) override {
      auto in = inner;
      auto r = ctx.spawn_supervised<Parent>(SpawnOptions{}, [in] {
        return Parent(in, std::vector<int>{0}, nullptr, true);
      });
      if (r) inner_id->store((std::uint64_t{r->id.slot} << 32) | r->id.gen);
    }
    void on_message(Context<SupMsg>&, SupMsg& m) override {
      if (std::holds_alternative<Started>(m)) log->events.push("inner started");
    }
  };
  auto g = (*sys)->spawn<Grand>(&outer, &inner, &inner_id);
  REQUIRE(g);
  REQUIRE(test::wait_for([&] { return logged(inner, "started 0"); }));
  const std::uint64_t v = inner_id.load();
  REQUIRE(v != 0);
  const ActorRef<SupMsg> in{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
  // Deferred: its on_start returned long ago, and its own child started,
  // yet no Started reached Grand. A message round trip proves Grand has
  // handled everything sent to it before.
  REQUIRE((*sys)->send(in, SupMsg{7}));
  REQUIRE(test::wait_for([&] { return (*sys)->stats(in.id) && (*sys)->stats(in.id)->handled >= 2; }));
  CHECK(outer.events.size() == 0);
  REQUIRE((*sys)->send(in, SupMsg{1}));
  REQUIRE((*sys)->send(in, SupMsg{1}));
  REQUIRE(test::wait_for([&] { return outer.events.size() == 1; }));
  REQUIRE((*sys)->send(in, SupMsg{7}));
  REQUIRE(test::wait_for([&] { return (*sys)->stats(in.id)->handled >= 5; }));
  REQUIRE((*sys)->send(*g, SupMsg{7}));
  REQUIRE(test::wait_for([&] { return (*sys)->stats(g->id)->handled >= 2; }));
  CHECK(outer.events.size() == 1);
}

TEST_CASE("an actor stopped with a reason of its choosing is reported with that reason") {
  ParentLog log;
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  auto p = (*sys)->spawn<Parent>(&log, std::vector<int>{0});
  REQUIRE(p);
  REQUIRE(test::wait_for([&] { return logged(log, "started 0"); }));
  REQUIRE((*sys)->send(*p, SupMsg{3}));  // the child stops itself with Shutdown
  REQUIRE(test::wait_for([&] { return logged(log, "down 0 shutdown"); }));
}

TEST_CASE("a health probe is answered with the actor's own health_check, and a probe of a stopped actor is Dead") {
  ParentLog log;
  std::atomic<Health> health{Health::Healthy};
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  auto p = (*sys)->spawn<Parent>(&log, std::vector<int>{0}, &health);
  REQUIRE(p);
  REQUIRE(test::wait_for([&] { return logged(log, "started 0"); }));
  REQUIRE((*sys)->send(*p, SupMsg{2}));
  REQUIRE(test::wait_for([&] { return logged(log, "health 0 healthy"); }));
  health = Health::Degraded;
  REQUIRE((*sys)->send(*p, SupMsg{2}));
  REQUIRE(test::wait_for([&] { return logged(log, "health 0 degraded"); }));
  health = Health::Failed;
  REQUIRE((*sys)->send(*p, SupMsg{2}));
  REQUIRE(test::wait_for([&] { return logged(log, "health 0 failed"); }));

  // A probe of a stopped actor, from a scripted prober.
  std::atomic<int> code{-1};
  auto child = (*sys)->spawn<StartingChild>(0);
  REQUIRE(child);
  REQUIRE((*sys)->stop(child->id));
  REQUIRE(test::wait_for([&] { return !(*sys)->alive(child->id); }));
  auto prober = test::spawn_scripted<SupMsg>(**sys, 0, [&, id = child->id](Context<SupMsg>& ctx) {
    auto r = ctx.probe_health(id);
    code = r ? 0 : static_cast<int>(r.code());
  }, nullptr);
  REQUIRE(prober);
  REQUIRE(test::wait_for([&] { return code.load() != -1; }));
  CHECK(code.load() == static_cast<int>(Errc::Dead));
}

TEST_CASE("a first_signal that is not a signal is refused at spawn with InvalidArgument naming it") {
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  for (int sig : {0, -3, 65}) {
    SpawnOptions o;
    o.first_signal = sig;
    auto r = (*sys)->spawn_with<StartingChild>(o, [] { return StartingChild(0); });
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::InvalidArgument);
    CHECK(contains(r.error().message(), "first_signal"));
  }
  CHECK((*sys)->stats().live_actors == 0);
}

TEST_CASE("stop with reason Shutdown is what the stopped actor's on_stop and its monitors see; other reasons are refused") {
  test::Log<std::string> seen;  // before the System: its actors write here until it is gone
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  struct Stopping : Actor<int> {
    test::Log<std::string>* log;
    explicit Stopping(test::Log<std::string>* l) : log(l) {}
    void on_message(Context<int>&, int&) override {}
    void on_stop(Context<int>&, StopReason r) override { log->push(std::string("on_stop ") + to_string(r)); }
  };
  for (StopReason r : {StopReason::Shutdown, StopReason::Requested}) {
    auto a = (*sys)->spawn<Stopping>(&seen);
    REQUIRE(a);
    ParentLog watch;
    auto w = test::spawn_scripted<SupMsg>(**sys, 0, [&watch, id = a->id](Context<SupMsg>& ctx) {
      if (!ctx.monitor(ActorRef<int>{id})) watch.events.push("monitor failed");
    }, [&watch](Context<SupMsg>&, SupMsg& m) {
      if (auto* d = std::get_if<Down>(&m)) watch.events.push(std::string("down ") + to_string(d->reason));
    });
    REQUIRE(w);
    // The monitor request is a message the watched actor takes in.
    REQUIRE(test::wait_for([&] { return (*sys)->stats(a->id) && (*sys)->stats(a->id)->handled >= 1; }));
    REQUIRE((*sys)->stop(a->id, r));
    REQUIRE(test::wait_for([&] { return watch.events.size() == 1; }));
    CHECK(watch.events.get()[0] == std::string("down ") + to_string(r));
    CHECK(seen.get().back() == std::string("on_stop ") + to_string(r));
    REQUIRE((*sys)->stop(w->id));  // its handler refers to `watch`, which goes now
    REQUIRE(test::wait_for([&] { return !(*sys)->alive(w->id); }));
  }
  auto a = (*sys)->spawn<Stopping>(&seen);
  REQUIRE(a);
  for (StopReason r : {StopReason::Normal, StopReason::Failed, StopReason::Escalated, StopReason::NoActor}) {
    auto s = (*sys)->stop(a->id, r);
    REQUIRE_FALSE(s);
    CHECK(s.code() == Errc::InvalidArgument);
  }
  CHECK((*sys)->alive(a->id));
}

TEST_CASE("gone() turns true only once the stopped actor's on_stop has returned, after alive() turned false") {
  std::atomic<bool> in_on_stop{false}, stop_done{false};
  struct SlowStop : Actor<int> {
    std::atomic<bool>* in;
    std::atomic<bool>* done;
    SlowStop(std::atomic<bool>* i, std::atomic<bool>* d) : in(i), done(d) {}
    void on_message(Context<int>&, int&) override {}
    void on_stop(Context<int>&, StopReason) override {
      in->store(true);
      std::this_thread::sleep_for(50ms);
      done->store(true);
    }
  };
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  auto a = (*sys)->spawn<SlowStop>(&in_on_stop, &stop_done);
  REQUIRE(a);
  CHECK_FALSE((*sys)->gone(a->id));
  REQUIRE((*sys)->stop(a->id));
  REQUIRE(test::wait_for([&] { return in_on_stop.load(); }));
  CHECK_FALSE((*sys)->alive(a->id));  // closed: its on_stop runs
  CHECK_FALSE((*sys)->gone(a->id));   // ... and has not returned
  REQUIRE(test::wait_for([&] { return (*sys)->gone(a->id); }));
  CHECK(stop_done.load());
}
