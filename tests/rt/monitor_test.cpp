// Context::monitor: Down with the right reason for every way an actor
// stops, NoActor for one already gone, several watchers, and watchers that
// stop first.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <variant>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

// The watched actor. Messages: 1 = stop itself, 2 = fail.
enum Cmd : int { kStopSelf = 1, kFail = 2, kPing = 3 };

struct Watched : Actor<int> {
  ErrorAction on_fail;
  Log<StopReason>* stops;
  std::atomic<int>* pings;
  Watched(ErrorAction a, Log<StopReason>* s, std::atomic<int>* p) : on_fail(a), stops(s), pings(p) {}
  void on_message(Context<int>& ctx, int& m) override {
    if (m == kStopSelf) ctx.stop();
    if (m == kFail) ctx.fail(Error::make(Errc::Failed, "told to fail"));
    if (m == kPing && pings != nullptr) pings->fetch_add(1);
  }
  ErrorAction on_error(Context<int>&, const Error&) override { return on_fail; }
  void on_stop(Context<int>&, StopReason r) override {
    if (stops != nullptr) stops->push(r);
  }
};

Result<ActorRef<int>> spawn_watched(System& sys, int worker, ErrorAction on_fail = ErrorAction::Stop,
                                    Log<StopReason>* stops = nullptr, std::atomic<int>* pings = nullptr) {
  return sys.spawn_with<Watched>(on_worker(worker), [=] { return Watched(on_fail, stops, pings); });
}

// The watcher: told whom to watch, it records monitor()'s result and every
// Down it receives.
using WatcherMsg = std::variant<ActorRef<int>, Down>;

struct WatcherLogs {
  Log<Errc> monitor_codes;
  Log<Down> downs;
};

struct Watcher : Actor<WatcherMsg> {
  WatcherLogs* logs;
  explicit Watcher(WatcherLogs* l) : logs(l) {}
  void on_message(Context<WatcherMsg>& ctx, WatcherMsg& m) override {
    if (auto* ref = std::get_if<ActorRef<int>>(&m)) {
      logs->monitor_codes.push(ctx.monitor(*ref).code());
    } else {
      logs->downs.push(std::get<Down>(m));
    }
  }
};

Result<ActorRef<WatcherMsg>> spawn_watcher(System& sys, int worker, WatcherLogs& logs) {
  return sys.spawn_with<Watcher>(on_worker(worker), [&logs] { return Watcher(&logs); });
}

// Makes `watcher` monitor `target` and waits until monitor() has returned:
// from then on the monitor request is in the target's mailbox, ahead of
// anything sent afterwards.
bool watch(System& sys, ActorRef<WatcherMsg> watcher, ActorRef<int> target, WatcherLogs& logs) {
  const std::size_t before = logs.monitor_codes.size();
  if (!sys.send(watcher, WatcherMsg{target}).ok()) return false;
  return test::wait_for([&] { return logs.monitor_codes.size() == before + 1; });
}

}  // namespace

TEST_CASE("a monitoring actor receives Down with the reason the watched actor stopped for") {
  WatcherLogs logs;
  Log<StopReason> stops;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);

  auto w = spawn_watcher(sys, 0, logs);
  REQUIRE(w.ok());

  StopReason expected = StopReason::NoActor;
  ErrorAction on_fail = ErrorAction::Stop;
  std::function<void(ActorRef<int>)> stop_it;

  SECTION("the actor calls ctx.stop(): Normal") {
    expected = StopReason::Normal;
    stop_it = [&](ActorRef<int> t) { REQUIRE(sys.send(t, int{kStopSelf}).ok()); };
  }
  SECTION("a plain thread calls System::stop: Requested") {
    expected = StopReason::Requested;
    stop_it = [&](ActorRef<int> t) { REQUIRE(sys.stop(t).ok()); };
  }
  SECTION("ctx.fail and on_error answers Stop: Failed") {
    expected = StopReason::Failed;
    on_fail = ErrorAction::Stop;
    stop_it = [&](ActorRef<int> t) { REQUIRE(sys.send(t, int{kFail}).ok()); };
  }
  SECTION("ctx.fail and on_error answers Escalate: Escalated") {
    expected = StopReason::Escalated;
    on_fail = ErrorAction::Escalate;
    stop_it = [&](ActorRef<int> t) { REQUIRE(sys.send(t, int{kFail}).ok()); };
  }

  for (int worker : {0, 1}) {  // the watched actor on the watcher's worker, then on the other
    INFO("watched actor on worker " << worker);
    const std::size_t downs_before = logs.downs.size();
    const std::size_t stops_before = stops.size();
    auto t = spawn_watched(sys, worker, on_fail, &stops);
    REQUIRE(t.ok());
    REQUIRE(watch(sys, *w, *t, logs));
    stop_it(*t);
    REQUIRE(test::wait_for([&] { return logs.downs.size() == downs_before + 1; }));
    const Down d = logs.downs.get().back();
    REQUIRE(d.who == t->id);
    REQUIRE(d.reason == expected);
    REQUIRE(d.started);  // its on_start (the default, empty) had returned
    REQUIRE(stops.size() == stops_before + 1);
    REQUIRE(stops.get().back() == expected);
    REQUIRE_FALSE(sys.alive(*t));
  }
  for (Errc c : logs.monitor_codes.get()) REQUIRE(c == Errc::Ok);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("failures that the actor survives send no Down") {
  WatcherLogs logs;
  Log<StopReason> stops;
  std::atomic<int> pings{0};
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto w = spawn_watcher(sys, 0, logs);
  REQUIRE(w.ok());

  ErrorAction action = ErrorAction::Resume;
  SECTION("Resume") { action = ErrorAction::Resume; }
  SECTION("Restart") { action = ErrorAction::Restart; }

  auto t = spawn_watched(sys, 1, action, &stops, &pings);
  REQUIRE(t.ok());
  REQUIRE(watch(sys, *w, *t, logs));
  REQUIRE(sys.send(*t, int{kFail}).ok());
  REQUIRE(sys.send(*t, int{kPing}).ok());
  REQUIRE(test::wait_for([&] { return pings.load() == 1; }));  // it lives on
  REQUIRE(sys.alive(*t));
  REQUIRE(sys.stop(*t).ok());
  REQUIRE(test::wait_for([&] { return logs.downs.size() == 1; }));
  // The Down for the failure would have come before this one.
  const auto downs = logs.downs.get();
  REQUIRE(downs[0].who == t->id);
  REQUIRE(downs[0].reason == StopReason::Requested);
  REQUIRE(sys.shutdown().ok());
  REQUIRE(logs.downs.size() == 1);
}

TEST_CASE("monitoring an actor that already stopped answers Down with NoActor at once") {
  WatcherLogs logs;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto w = spawn_watcher(sys, 0, logs);
  REQUIRE(w.ok());

  for (int worker : {0, 1}) {
    INFO("watched actor on worker " << worker);
    const std::size_t before = logs.downs.size();
    auto t = spawn_watched(sys, worker);
    REQUIRE(t.ok());
    REQUIRE(sys.stop(*t).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(*t); }));
    REQUIRE(watch(sys, *w, *t, logs));
    REQUIRE(test::wait_for([&] { return logs.downs.size() == before + 1; }));
    const Down d = logs.downs.get().back();
    REQUIRE(d.who == t->id);
    REQUIRE(d.reason == StopReason::NoActor);
    REQUIRE_FALSE(d.started);  // nothing is known of it
  }

  SECTION("also once the slot has a new occupant") {
    cfg.actor_capacity = 2;
    System small(cfg);
    WatcherLogs logs2;
    auto w2 = spawn_watcher(small, 0, logs2);
    REQUIRE(w2.ok());
    auto t = spawn_watched(small, 1);
    REQUIRE(t.ok());
    REQUIRE(small.stop(*t).ok());
    ActorRef<int> next{};
    REQUIRE(test::wait_for([&] {
      auto r = spawn_watched(small, 1);
      if (r) next = *r;
      return r.ok();
    }));
    REQUIRE(next.id.slot == t->id.slot);
    REQUIRE(watch(small, *w2, *t, logs2));
    REQUIRE(test::wait_for([&] { return logs2.downs.size() == 1; }));
    REQUIRE(logs2.downs.get()[0].who == t->id);
    REQUIRE(logs2.downs.get()[0].reason == StopReason::NoActor);
    // The new occupant is not affected and still reports its own stop.
    REQUIRE(small.alive(next));
    REQUIRE(watch(small, *w2, next, logs2));
    REQUIRE(small.stop(next).ok());
    REQUIRE(test::wait_for([&] { return logs2.downs.size() == 2; }));
    REQUIRE(logs2.downs.get()[1].who == next.id);
    REQUIRE(logs2.downs.get()[1].reason == StopReason::Requested);
    REQUIRE(small.shutdown().ok());
  }

  for (Errc c : logs.monitor_codes.get()) REQUIRE(c == Errc::Ok);
  REQUIRE(sys.shutdown().ok());
}

// How a child's start goes (Starter) and what its parent heard.
enum class StartMode { Ok, Fail, StopInStart, DeferThenStop, DeferThenReport };

struct Starter : Actor<int> {
  StartMode mode;
  explicit Starter(StartMode m) : mode(m) {}
  void on_start(Context<int>& ctx) override {
    switch (mode) {
      case StartMode::Ok: break;
      case StartMode::Fail: ctx.fail(Error::make(Errc::Failed, "cannot start")); break;
      case StartMode::StopInStart: ctx.stop(); break;
      case StartMode::DeferThenStop: ctx.defer_started(); break;
      case StartMode::DeferThenReport:
        ctx.defer_started();
        (void)ctx.report_started();
        break;
    }
  }
  void on_message(Context<int>& ctx, int&) override { ctx.stop(); }
};

using ParentMsg = std::variant<StartMode, Started, Down>;

// Spawns a Starter with spawn_supervised (watched from its birth) when told
// a mode, and logs the child's id, its Started and its Down.
struct StartParent : Actor<ParentMsg> {
  Log<ActorId>* spawned;
  Log<ActorId>* started;
  Log<Down>* downs;
  StartParent(Log<ActorId>* sp, Log<ActorId>* s, Log<Down>* d) : spawned(sp), started(s), downs(d) {}
  void on_message(Context<ParentMsg>& ctx, ParentMsg& m) override {
    if (auto* mode = std::get_if<StartMode>(&m)) {
      const StartMode md = *mode;
      auto r = ctx.spawn_supervised<Starter>(on_worker(1), [md] { return Starter(md); });
      spawned->push(r ? r->id : ActorId{});
    } else if (auto* s = std::get_if<Started>(&m)) {
      started->push(s->who);
    } else {
      downs->push(std::get<Down>(m));
    }
  }
};

TEST_CASE("Down::started tells whether the actor had started before it stopped") {
  Log<ActorId> spawned;
  Log<ActorId> started;
  Log<Down> downs;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto p = sys.spawn_with<StartParent>(on_worker(0), [&] { return StartParent(&spawned, &started, &downs); });
  REQUIRE(p.ok());
  struct Case {
    StartMode mode;
    bool started;  // it said so (a Started comes), and the test then stops it with a message
    StopReason reason;
  };
  const Case cases[] = {
      {StartMode::Ok, true, StopReason::Normal},
      {StartMode::Fail, false, StopReason::Failed},
      {StartMode::StopInStart, false, StopReason::Normal},
      {StartMode::DeferThenStop, false, StopReason::Requested},
      {StartMode::DeferThenReport, true, StopReason::Normal},
  };
  for (const Case& c : cases) {
    INFO("mode " << static_cast<int>(c.mode));
    const std::size_t s0 = started.size();
    const std::size_t d0 = downs.size();
    REQUIRE(sys.send(*p, ParentMsg{c.mode}).ok());
    REQUIRE(test::wait_for([&] { return spawned.size() == d0 + 1; }));
    const ActorId child = spawned.get().back();
    REQUIRE(child.valid());
    if (c.started) {
      REQUIRE(test::wait_for([&] { return started.size() == s0 + 1; }));
      CHECK(started.get().back() == child);
      REQUIRE(sys.send(ActorRef<int>{child}, 0).ok());
    } else if (c.mode == StartMode::DeferThenStop) {
      // Its on_start returned, deferring its Started, which never comes.
      REQUIRE(sys.stop(ActorRef<int>{child}).ok());
    }
    REQUIRE(test::wait_for([&] { return downs.size() == d0 + 1; }));
    const Down d = downs.get().back();
    CHECK(d.who == child);
    CHECK(d.reason == c.reason);
    CHECK(d.started == c.started);
    CHECK(started.size() == s0 + (c.started ? 1u : 0u));
  }
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("every watcher of an actor receives its own Down") {
  constexpr int kWatchers = 6;
  WatcherLogs logs[kWatchers];
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto t = spawn_watched(sys, 1);
  REQUIRE(t.ok());
  for (int i = 0; i < kWatchers; ++i) {
    auto w = spawn_watcher(sys, i % 2, logs[i]);
    REQUIRE(w.ok());
    REQUIRE(watch(sys, *w, *t, logs[i]));
  }

  SECTION("stopped by System::stop") {
    REQUIRE(sys.stop(*t).ok());
    for (auto& l : logs) {
      REQUIRE(test::wait_for([&] { return l.downs.size() == 1; }));
      REQUIRE(l.downs.get()[0].who == t->id);
      REQUIRE(l.downs.get()[0].reason == StopReason::Requested);
    }
  }
  SECTION("stopping itself") {
    REQUIRE(sys.send(*t, int{kStopSelf}).ok());
    for (auto& l : logs) {
      REQUIRE(test::wait_for([&] { return l.downs.size() == 1; }));
      REQUIRE(l.downs.get()[0].who == t->id);
      REQUIRE(l.downs.get()[0].reason == StopReason::Normal);
    }
  }

  REQUIRE(sys.shutdown().ok());
  for (auto& l : logs) REQUIRE(l.downs.size() == 1);  // one each, never two
}

TEST_CASE("one watcher monitoring the same actor twice receives two Downs") {
  WatcherLogs logs;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto w = spawn_watcher(sys, 0, logs);
  REQUIRE(w.ok());
  auto t = spawn_watched(sys, 1);
  REQUIRE(t.ok());
  REQUIRE(watch(sys, *w, *t, logs));
  REQUIRE(watch(sys, *w, *t, logs));
  REQUIRE(sys.stop(*t).ok());
  REQUIRE(test::wait_for([&] { return logs.downs.size() == 2; }));
  for (const Down& d : logs.downs.get()) {
    REQUIRE(d.who == t->id);
    REQUIRE(d.reason == StopReason::Requested);
  }
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a watcher and the watched actor stopped together by shutdown do not crash") {
  WatcherLogs logs;
  Log<StopReason> stops;
  SystemConfig cfg;
  cfg.workers = 2;
  auto sys = std::make_unique<System>(cfg);
  std::vector<ActorRef<int>> watched;
  for (int i = 0; i < 8; ++i) {
    auto t = spawn_watched(*sys, i % 2, ErrorAction::Stop, &stops);
    REQUIRE(t.ok());
    watched.push_back(*t);
  }
  for (int i = 0; i < 4; ++i) {
    auto w = spawn_watcher(*sys, i % 2, logs);
    REQUIRE(w.ok());
    for (auto t : watched) REQUIRE(watch(*sys, *w, t, logs));
  }

  REQUIRE(sys->shutdown().ok());
  REQUIRE(stops.size() == watched.size());
  for (StopReason r : stops.get()) REQUIRE(r == StopReason::Shutdown);
  // A watcher still running when a watched actor stopped saw the reason.
  for (const Down& d : logs.downs.get()) REQUIRE(d.reason == StopReason::Shutdown);
  REQUIRE(logs.downs.size() <= 4 * watched.size());
  sys.reset();
}

TEST_CASE("a watcher that stops before the watched actor leaks nothing") {
  // 256 blocks of 64 bytes: the two workers' block caches can hold at most
  // 128 of them, so one block lost per cycle would run the pool dry well
  // before the end.
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.message_blocks[0] = 256;
  System sys(cfg);
  const int cycles = 1000 / kScale;

  SECTION("the Down finds the watcher gone") {
    for (int i = 0; i < cycles; ++i) {
      WatcherLogs logs;
      auto t = spawn_watched(sys, i % 2);
      REQUIRE(t.ok());
      auto w = spawn_watcher(sys, (i / 2) % 2, logs);
      REQUIRE(w.ok());
      REQUIRE(watch(sys, *w, *t, logs));
      REQUIRE(logs.monitor_codes.get()[0] == Errc::Ok);
      REQUIRE(sys.stop(*w).ok());
      REQUIRE(test::wait_for([&] { return !sys.alive(*w); }));
      REQUIRE(sys.stop(*t).ok());
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
    }
  }

  SECTION("the Down waits in the mailbox of a watcher that stops") {
    for (int i = 0; i < cycles; ++i) {
      WatcherLogs logs;
      auto t = spawn_watched(sys, i % 2);
      REQUIRE(t.ok());
      auto w = spawn_watcher(sys, (i / 2) % 2, logs);
      REQUIRE(w.ok());
      REQUIRE(watch(sys, *w, *t, logs));
      REQUIRE(logs.monitor_codes.get()[0] == Errc::Ok);
      REQUIRE(sys.stop(*t).ok());
      REQUIRE(sys.stop(*w).ok());
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
      REQUIRE(logs.downs.size() <= 1);
    }
  }

  // Monitoring, messages and Down all still work.
  WatcherLogs logs;
  auto t = spawn_watched(sys, 1);
  REQUIRE(t.ok());
  auto w = spawn_watcher(sys, 0, logs);
  REQUIRE(w.ok());
  for (int i = 0; i < 50; ++i) REQUIRE(watch(sys, *w, *t, logs));
  for (Errc c : logs.monitor_codes.get()) REQUIRE(c == Errc::Ok);
  REQUIRE(sys.stop(*t).ok());
  REQUIRE(test::wait_for([&] { return logs.downs.size() == 50; }));
  REQUIRE(sys.stats().spawned == static_cast<std::uint64_t>(2 * cycles + 2));
  REQUIRE(sys.shutdown().ok());
}
