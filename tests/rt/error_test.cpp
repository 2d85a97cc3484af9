// Failure handling: what each on_error answer does after ctx.fail(), an
// escalation to the parent, exceptions escaping handlers, and failures in
// on_start.

#include <airssys/rt/system.hpp>
#include <airssys/text.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace airssys;
using airssys::test::Gate;
using airssys::test::OpenOnExit;

namespace {

bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

// What an actor saw, written on its worker and read by the test.
struct Trace {
  std::mutex m;
  std::vector<int> values;          // counter value after each message (-1: failed message)
  std::vector<Errc> error_codes;    // each on_error call
  std::vector<std::string> error_messages;
  std::vector<StopReason> stops;    // each on_stop call
  std::atomic<int> starts{0};
  std::atomic<int> factory_calls{0};
  std::atomic<int> messages{0};
  std::atomic<int> errors{0};
  std::atomic<int> stop_calls{0};

  void value(int v) {
    {
      std::lock_guard<std::mutex> g(m);
      values.push_back(v);
    }
    messages.fetch_add(1, std::memory_order_release);
  }
  // An on_error call: its error, then the count (release: the test that
  // sees the count sees the error).
  void error(const Error& e) {
    {
      std::lock_guard<std::mutex> g(m);
      error_codes.push_back(e.code());
      error_messages.push_back(e.message());
    }
    errors.fetch_add(1, std::memory_order_release);
  }
  // An on_stop call, likewise.
  void stopped(StopReason r) {
    {
      std::lock_guard<std::mutex> g(m);
      stops.push_back(r);
    }
    stop_calls.fetch_add(1, std::memory_order_release);
  }
  std::vector<int> snapshot() {
    std::lock_guard<std::mutex> g(m);
    return values;
  }
  Errc last_code() {
    std::lock_guard<std::mutex> g(m);
    return error_codes.empty() ? Errc::Ok : error_codes.back();
  }
  std::string last_message() {
    std::lock_guard<std::mutex> g(m);
    return error_messages.empty() ? std::string() : error_messages.back();
  }
  StopReason last_stop() {
    std::lock_guard<std::mutex> g(m);
    return stops.empty() ? StopReason::NoActor : stops.back();
  }
};

enum class Op { Inc, Fail, Throw, ThrowInt, Ping };

// A counter whose state shows whether it survived a failure.
struct CounterActor : Actor<Op> {
  Trace* trace;
  ErrorAction answer;
  Gate* gate;  // the first Inc of the first instance waits here, if set
  int counter = 0;
  CounterActor(Trace* t, ErrorAction a, Gate* g = nullptr) : trace(t), answer(a), gate(g) {}
  void on_start(Context<Op>&) override { trace->starts.fetch_add(1); }
  void on_message(Context<Op>& ctx, Op& op) override {
    switch (op) {
      case Op::Inc:
        if (gate != nullptr && trace->starts.load() == 1 && counter == 0) gate->wait();
        trace->value(++counter);
        break;
      case Op::Fail:
        trace->value(-1);
        ctx.fail(Error::make(Errc::Failed, "counter failed at %d", counter));
        break;
      case Op::Throw:
        trace->value(-1);
#if __cpp_exceptions
        throw std::runtime_error("kaboom at " + std::to_string(counter));
#else
        break;
#endif
      case Op::ThrowInt:
        trace->value(-1);
#if __cpp_exceptions
        throw 42;
#else
        break;
#endif
      case Op::Ping:
        trace->value(counter);
        break;
    }
  }
  ErrorAction on_error(Context<Op>&, const Error& e) override {
    trace->error(e);
    return answer;
  }
  void on_stop(Context<Op>&, StopReason r) override {
    trace->stopped(r);
  }
};

using WatchMsg = std::variant<int, Down>;

// Monitors `target` from on_start and records the Down it gets.
struct Watcher : Actor<WatchMsg> {
  ActorId target;
  std::atomic<bool>* watching;
  std::atomic<int>* reason;
  std::atomic<std::uint32_t>* who_slot;
  Watcher(ActorId t, std::atomic<bool>* w, std::atomic<int>* r, std::atomic<std::uint32_t>* s)
      : target(t), watching(w), reason(r), who_slot(s) {}
  void on_start(Context<WatchMsg>& ctx) override {
    if (ctx.monitor(ActorRef<Op>{target})) watching->store(true, std::memory_order_release);
  }
  void on_message(Context<WatchMsg>&, WatchMsg& m) override {
    if (auto* d = std::get_if<Down>(&m)) {
      who_slot->store(d->who.slot);
      reason->store(static_cast<int>(d->reason), std::memory_order_release);
    }
  }
};

}  // namespace

TEST_CASE("Resume after a failed handler keeps the actor's state and goes on with the next message") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Trace trace;
  auto ref = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] {
    trace.factory_calls.fetch_add(1);
    return CounterActor(&trace, ErrorAction::Resume);
  });
  REQUIRE(ref.ok());
  for (Op op : {Op::Inc, Op::Inc, Op::Fail, Op::Inc, Op::Fail, Op::Inc}) REQUIRE(sys.send(*ref, op).ok());
  REQUIRE(test::wait_for([&] { return trace.messages.load(std::memory_order_acquire) == 6; }));
  CHECK(trace.snapshot() == std::vector<int>{1, 2, -1, 3, -1, 4});
  CHECK(trace.errors.load() == 2);
  CHECK(trace.last_code() == Errc::Failed);
  CHECK(contains(trace.last_message(), "counter failed at 3"));
  CHECK(trace.starts.load() == 1);
  CHECK(trace.factory_calls.load() == 1);
  CHECK(trace.stop_calls.load() == 0);
  CHECK(sys.alive(*ref));
  auto st = sys.stats(*ref);
  REQUIRE(st.ok());
  CHECK(st->handled == 6);
  REQUIRE(sys.shutdown().ok());
  CHECK(trace.stop_calls.load() == 1);
  CHECK(trace.last_stop() == StopReason::Shutdown);
}

TEST_CASE("Restart after a failed handler rebuilds the state and keeps the mailbox and the ActorRef") {
  SystemConfig cfg;
  cfg.workers = 2;
  Gate gate;
  Trace trace;
  System sys(cfg);
  OpenOnExit opener{gate};
  auto ref = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] {
    trace.factory_calls.fetch_add(1);
    return CounterActor(&trace, ErrorAction::Restart, &gate);
  });
  REQUIRE(ref.ok());
  // The first Inc holds the actor until everything is queued, so that the
  // messages behind the failing one wait in the mailbox during the restart.
  for (Op op : {Op::Inc, Op::Inc, Op::Inc, Op::Fail, Op::Inc, Op::Inc}) REQUIRE(sys.send(*ref, op).ok());
  auto queued = sys.stats(*ref);
  REQUIRE(queued.ok());
  CHECK(queued->queued >= 5);
  gate.release();
  REQUIRE(test::wait_for([&] { return trace.messages.load(std::memory_order_acquire) == 6; }));
  // The counter is back at its initial value after the failing message.
  CHECK(trace.snapshot() == std::vector<int>{1, 2, 3, -1, 1, 2});
  CHECK(trace.errors.load() == 1);
  CHECK(trace.last_code() == Errc::Failed);
  CHECK(contains(trace.last_message(), "counter failed at 3"));
  CHECK(trace.factory_calls.load() == 2);
  CHECK(trace.starts.load() == 2);
  // A restart is not a stop.
  CHECK(trace.stop_calls.load() == 0);
  CHECK(sys.alive(*ref));

  // The same handle reaches the new state.
  REQUIRE(sys.send(*ref, Op::Ping).ok());
  REQUIRE(test::wait_for([&] { return trace.messages.load(std::memory_order_acquire) == 7; }));
  CHECK(trace.snapshot().back() == 2);

  // It can fail and restart again.
  REQUIRE(sys.send(*ref, Op::Fail).ok());
  REQUIRE(sys.send(*ref, Op::Inc).ok());
  REQUIRE(test::wait_for([&] { return trace.messages.load(std::memory_order_acquire) == 9; }));
  CHECK(trace.snapshot().back() == 1);
  CHECK(trace.factory_calls.load() == 3);
  CHECK(trace.starts.load() == 3);
  REQUIRE(sys.shutdown().ok());
  CHECK(trace.stop_calls.load() == 1);
}

TEST_CASE("Stop after a failed handler stops the actor with reason Failed") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Trace trace;
  auto ref = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] { return CounterActor(&trace, ErrorAction::Stop); });
  REQUIRE(ref.ok());
  std::atomic<bool> watching{false};
  std::atomic<int> reason{-1};
  std::atomic<std::uint32_t> who{~0u};
  auto watcher = sys.spawn_with<Watcher>(SpawnOptions{}, [&] { return Watcher(*ref, &watching, &reason, &who); });
  REQUIRE(watcher.ok());
  REQUIRE(test::wait_for([&] { return watching.load(std::memory_order_acquire); }));

  REQUIRE(sys.send(*ref, Op::Inc).ok());
  REQUIRE(sys.send(*ref, Op::Fail).ok());
  REQUIRE(test::wait_for([&] { return reason.load(std::memory_order_acquire) != -1; }));
  CHECK(reason.load() == static_cast<int>(StopReason::Failed));
  CHECK(who.load() == ref->id.slot);
  REQUIRE(test::wait_for([&] { return trace.stop_calls.load(std::memory_order_acquire) == 1; }));
  CHECK(trace.last_stop() == StopReason::Failed);
  CHECK(trace.errors.load() == 1);
  CHECK(trace.last_code() == Errc::Failed);
  CHECK_FALSE(sys.alive(*ref));
  CHECK(sys.send(*ref, Op::Inc).code() == Errc::Dead);
  CHECK(sys.stop(*ref).code() == Errc::Dead);
  // Only the two messages before the failure were handled.
  CHECK(trace.snapshot() == std::vector<int>{1, -1});
  CHECK(sys.alive(*watcher));
  REQUIRE(sys.shutdown().ok());
  CHECK(trace.stop_calls.load() == 1);
}

// ---------------------------------------------------------------------------
// Escalation

namespace {

struct Family {
  std::atomic<std::uint64_t> child_id{0};  // slot << 32 | gen, 0 until spawned
  std::atomic<int> spawn_code{-1};
  Trace parent;
  Trace child;
};

// Spawns one child from on_start and publishes its handle.
struct Parent : Actor<Op> {
  Family* fam;
  ErrorAction child_answer;
  ErrorAction answer;
  Parent(Family* f, ErrorAction child_a, ErrorAction a) : fam(f), child_answer(child_a), answer(a) {}
  void on_start(Context<Op>& ctx) override {
    auto c = ctx.spawn<CounterActor>(&fam->child, child_answer);
    fam->spawn_code.store(static_cast<int>(c.code()));
    if (c) fam->child_id.store((std::uint64_t{c->id.slot} << 32) | c->id.gen, std::memory_order_release);
  }
  void on_message(Context<Op>&, Op&) override { fam->parent.value(0); }
  ErrorAction on_error(Context<Op>&, const Error& e) override {
    fam->parent.error(e);
    return answer;
  }
  void on_stop(Context<Op>&, StopReason r) override {
    fam->parent.stopped(r);
  }
};

ActorRef<Op> child_of(Family& f) {
  std::uint64_t v = f.child_id.load(std::memory_order_acquire);
  return ActorRef<Op>{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
}

}  // namespace

TEST_CASE("a child that answers Escalate stops, and its parent's on_error gets ChildEscalated") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Family fam;
  ErrorAction parent_answer = ErrorAction::Resume;
  SECTION("parent resumes") { parent_answer = ErrorAction::Resume; }
  SECTION("parent stops") { parent_answer = ErrorAction::Stop; }
  auto parent = sys.spawn_with<Parent>(SpawnOptions{}, [&] { return Parent(&fam, ErrorAction::Escalate, parent_answer); });
  REQUIRE(parent.ok());
  REQUIRE(test::wait_for([&] { return fam.child_id.load(std::memory_order_acquire) != 0; }));
  const ActorRef<Op> child = child_of(fam);
  REQUIRE(sys.alive(child));
  REQUIRE(sys.stats().live_actors == 2);

  REQUIRE(sys.send(child, Op::Inc).ok());
  REQUIRE(sys.send(child, Op::Fail).ok());
  REQUIRE(test::wait_for([&] { return fam.parent.errors.load(std::memory_order_acquire) == 1; }));
  CHECK(fam.parent.last_code() == Errc::ChildEscalated);
  const std::string msg = fam.parent.last_message();
  INFO(msg);
  char slot_text[16];
  std::snprintf(slot_text, sizeof slot_text, "#%u", child.id.slot);
  CHECK(contains(msg, slot_text));
  // The child answered Escalate once and is gone.
  CHECK(fam.child.errors.load() == 1);
  CHECK(fam.child.last_code() == Errc::Failed);
  REQUIRE(test::wait_for([&] { return fam.child.stop_calls.load(std::memory_order_acquire) == 1; }));
  CHECK(fam.child.last_stop() == StopReason::Escalated);
  CHECK_FALSE(sys.alive(child));
  CHECK(sys.send(child, Op::Inc).code() == Errc::Dead);

  if (parent_answer == ErrorAction::Resume) {
    CHECK(sys.alive(*parent));
    REQUIRE(sys.send(*parent, Op::Ping).ok());
    REQUIRE(test::wait_for([&] { return fam.parent.messages.load(std::memory_order_acquire) == 1; }));
    CHECK(fam.parent.stop_calls.load() == 0);
    REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 1; }));
  } else {
    REQUIRE(test::wait_for([&] { return fam.parent.stop_calls.load(std::memory_order_acquire) == 1; }));
    CHECK(fam.parent.last_stop() == StopReason::Failed);
    REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
    CHECK(sys.send(*parent, Op::Ping).code() == Errc::Dead);
  }
  CHECK(fam.parent.errors.load() == 1);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a child that answers Stop does not disturb its parent") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Family fam;
  auto parent = sys.spawn_with<Parent>(SpawnOptions{}, [&] { return Parent(&fam, ErrorAction::Stop, ErrorAction::Stop); });
  REQUIRE(parent.ok());
  REQUIRE(test::wait_for([&] { return fam.child_id.load(std::memory_order_acquire) != 0; }));
  const ActorRef<Op> child = child_of(fam);
  REQUIRE(sys.send(child, Op::Fail).ok());
  REQUIRE(test::wait_for([&] { return fam.child.stop_calls.load(std::memory_order_acquire) == 1; }));
  CHECK(fam.child.last_stop() == StopReason::Failed);
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 1; }));
  // Anything the child's stop sent the parent is ahead of this message.
  REQUIRE(sys.send(*parent, Op::Ping).ok());
  REQUIRE(test::wait_for([&] { return fam.parent.messages.load(std::memory_order_acquire) == 1; }));
  CHECK(fam.parent.errors.load() == 0);
  CHECK(fam.parent.stop_calls.load() == 0);
  CHECK(sys.alive(*parent));
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a top-level actor that answers Escalate stops with reason Escalated") {
  SystemConfig cfg;
  cfg.workers = 1;
  System sys(cfg);
  Trace trace;
  Trace other;
  auto ref = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] { return CounterActor(&trace, ErrorAction::Escalate); });
  auto bystander = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] { return CounterActor(&other, ErrorAction::Stop); });
  REQUIRE(ref.ok());
  REQUIRE(bystander.ok());
  REQUIRE(sys.send(*ref, Op::Fail).ok());
  REQUIRE(test::wait_for([&] { return trace.stop_calls.load(std::memory_order_acquire) == 1; }));
  CHECK(trace.last_stop() == StopReason::Escalated);
  CHECK(sys.send(*ref, Op::Inc).code() == Errc::Dead);
  REQUIRE(sys.send(*bystander, Op::Inc).ok());
  REQUIRE(test::wait_for([&] { return other.messages.load(std::memory_order_acquire) == 1; }));
  CHECK(other.errors.load() == 0);
  CHECK(sys.alive(*bystander));
  REQUIRE(sys.shutdown().ok());
}

namespace {

// An actor whose on_error itself fails (ctx.fail, or a throw) after noting
// the error it was given, then answers Resume, which its failure overrides.
struct FailingOnError : Actor<Op> {
  Trace* trace;
  bool throw_it;
  std::string* seen_after;  // e.message() after on_error's own ctx.fail
  FailingOnError(Trace* t, bool th, std::string* after) : trace(t), throw_it(th), seen_after(after) {}
  void on_message(Context<Op>& ctx, Op& op) override {
    trace->value(op == Op::Fail ? -1 : 0);
    if (op == Op::Fail) ctx.fail(Error::make(Errc::Failed, "the original failure"));
  }
  ErrorAction on_error(Context<Op>& ctx, const Error& e) override {
    trace->error(e);
#if __cpp_exceptions
    if (throw_it) throw std::runtime_error("on_error threw");
#endif
    ctx.fail(Error::make(Errc::Timeout, "on_error failed too"));
    *seen_after = std::string(e.message()) + "/" + to_string(e.code());
    return ErrorAction::Resume;
  }
  void on_stop(Context<Op>&, StopReason r) override {
    trace->stopped(r);
  }
};

}  // namespace

TEST_CASE("an on_error that fails stops the actor with Failed, and the failure it was given stays the one recorded") {
  bool throw_it = false;
  SECTION("ctx.fail in on_error") { throw_it = false; }
#if __cpp_exceptions
  SECTION("exception in on_error") { throw_it = true; }
#endif
  Trace trace;
  std::string seen_after;
  SystemConfig cfg;
  cfg.workers = 1;
  System sys(cfg);
  auto ref = sys.spawn_with<FailingOnError>(SpawnOptions{}, [&] { return FailingOnError(&trace, throw_it, &seen_after); });
  REQUIRE(ref.ok());
  REQUIRE(sys.send(*ref, Op::Fail).ok());
  REQUIRE(test::wait_for([&] { return trace.stop_calls.load(std::memory_order_acquire) == 1; }));
  CHECK(trace.last_stop() == StopReason::Failed);
  CHECK(trace.errors.load() == 1);  // on_error is not called for its own failure
  CHECK(trace.last_code() == Errc::Failed);
  CHECK(trace.last_message() == "the original failure");
  // on_error's reference still showed the original after its own ctx.fail.
  if (!throw_it) CHECK(seen_after == std::string("the original failure/") + to_string(Errc::Failed));
  CHECK(sys.send(*ref, Op::Inc).code() == Errc::Dead);
  // The failure recorded is the original one, not on_error's.
  EventCursor cursor;
  MonitorEvent events[16];
  const EventRead r = sys.monitoring().read(cursor, events);
  int failed = 0;
  for (std::size_t i = 0; i < r.events; ++i) {
    if (events[i].kind != MonitorEvent::Kind::ActorFailed || events[i].actor != ref->id) continue;
    ++failed;
    CHECK(events[i].error == Errc::Failed);
  }
  CHECK(failed == 1);
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Exceptions

#if __cpp_exceptions

TEST_CASE("an exception escaping a handler reaches on_error as Errc::Exception and the worker survives") {
  SystemConfig cfg;
  cfg.workers = 1;  // the thrower and the bystander share the only worker
  System sys(cfg);
  Trace trace;
  Trace other;
  ErrorAction answer = ErrorAction::Resume;
  SECTION("Resume") { answer = ErrorAction::Resume; }
  SECTION("Restart") { answer = ErrorAction::Restart; }
  SECTION("Stop") { answer = ErrorAction::Stop; }
  auto ref = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] {
    trace.factory_calls.fetch_add(1);
    return CounterActor(&trace, answer);
  });
  auto bystander = sys.spawn_with<CounterActor>(SpawnOptions{}, [&] { return CounterActor(&other, ErrorAction::Stop); });
  REQUIRE(ref.ok());
  REQUIRE(bystander.ok());

  REQUIRE(sys.send(*bystander, Op::Inc).ok());
  REQUIRE(sys.send(*ref, Op::Inc).ok());
  REQUIRE(sys.send(*ref, Op::Inc).ok());
  REQUIRE(sys.send(*ref, Op::Throw).ok());
  REQUIRE(test::wait_for([&] { return trace.errors.load(std::memory_order_acquire) == 1; }));
  CHECK(trace.last_code() == Errc::Exception);
  {
    const std::string msg = trace.last_message();
    INFO(msg);
    CHECK(contains(msg, "kaboom at 2"));
  }

  // The worker goes on: the bystander on the same worker keeps working.
  REQUIRE(sys.send(*bystander, Op::Inc).ok());
  REQUIRE(test::wait_for([&] { return other.messages.load(std::memory_order_acquire) == 2; }));
  CHECK(other.snapshot() == std::vector<int>{1, 2});
  CHECK(other.errors.load() == 0);

  if (answer == ErrorAction::Stop) {
    REQUIRE(test::wait_for([&] { return trace.stop_calls.load(std::memory_order_acquire) == 1; }));
    CHECK(trace.last_stop() == StopReason::Failed);
    CHECK(sys.send(*ref, Op::Inc).code() == Errc::Dead);
    CHECK(trace.snapshot() == std::vector<int>{1, 2, -1});
  } else {
    REQUIRE(sys.send(*ref, Op::Inc).ok());
    REQUIRE(sys.send(*ref, Op::ThrowInt).ok());
    REQUIRE(sys.send(*ref, Op::Inc).ok());
    REQUIRE(test::wait_for([&] { return trace.messages.load(std::memory_order_acquire) == 6; }));
    if (answer == ErrorAction::Resume) {
      CHECK(trace.snapshot() == std::vector<int>{1, 2, -1, 3, -1, 4});
      CHECK(trace.factory_calls.load() == 1);
    } else {
      CHECK(trace.snapshot() == std::vector<int>{1, 2, -1, 1, -1, 1});
      CHECK(trace.factory_calls.load() == 3);
      CHECK(trace.starts.load() == 3);
    }
    CHECK(trace.errors.load() == 2);
    CHECK(trace.last_code() == Errc::Exception);
    CHECK(trace.stop_calls.load() == 0);
    CHECK(sys.alive(*ref));
  }
  REQUIRE(sys.shutdown().ok());
}

#endif  // __cpp_exceptions

// ---------------------------------------------------------------------------
// Failures in on_start

namespace {

std::atomic<int> g_built{0};
std::atomic<int> g_destroyed{0};

struct BadStarter : Actor<int> {
  Trace* trace;
  bool throw_it;
  BadStarter(Trace* t, bool th) : trace(t), throw_it(th) { g_built.fetch_add(1); }
  ~BadStarter() override { g_destroyed.fetch_add(1); }
  void on_start(Context<int>& ctx) override {
    trace->starts.fetch_add(1);
#if __cpp_exceptions
    if (throw_it) throw std::runtime_error("cannot start");
#endif
    ctx.fail(Error::make(Errc::Failed, "start failed"));
  }
  void on_message(Context<int>&, int& v) override { trace->value(v); }
  ErrorAction on_error(Context<int>&, const Error& e) override {
    trace->error(e);
    return ErrorAction::Restart;
  }
  void on_stop(Context<int>&, StopReason r) override {
    trace->stopped(r);
  }
};

}  // namespace

TEST_CASE("a failure in on_start answered with Restart stops the actor with Failed instead of looping") {
  g_built = 0;
  g_destroyed = 0;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Trace trace;
  bool throw_it = false;
  SECTION("ctx.fail in on_start") { throw_it = false; }
#if __cpp_exceptions
  SECTION("exception in on_start") { throw_it = true; }
#endif
  auto ref = sys.spawn_with<BadStarter>(SpawnOptions{}, [&] { return BadStarter(&trace, throw_it); });
  REQUIRE(ref.ok());
  int accepted = 0;
  for (int v = 0; v < 5; ++v) accepted += sys.send(*ref, v).ok() ? 1 : 0;
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  CHECK_FALSE(sys.alive(*ref));
  CHECK(sys.send(*ref, 9).code() == Errc::Dead);
  REQUIRE(test::wait_for([&] { return trace.stop_calls.load(std::memory_order_acquire) == 1; }));
  CHECK(trace.last_stop() == StopReason::Failed);
  // It tried to start at most twice (the first start and one restart), and
  // never handled a message.
  CHECK(trace.starts.load() >= 1);
  CHECK(trace.starts.load() <= 2);
  CHECK(trace.errors.load() >= 1);
  CHECK(trace.last_code() == (throw_it ? Errc::Exception : Errc::Failed));
  CHECK(trace.messages.load() == 0);
  CHECK(sys.stats().dead_letters == static_cast<std::uint64_t>(accepted));
  CHECK(g_built.load() == g_destroyed.load());
  REQUIRE(sys.shutdown().ok());
  CHECK(trace.stop_calls.load() == 1);
  CHECK(g_built.load() == g_destroyed.load());
}

namespace {
struct FailsToStart : Actor<int> {
  void on_start(Context<int>& ctx) override { ctx.fail(Error::make(Errc::InvalidArgument, "bad setting %d", 7)); }
  void on_message(Context<int>&, int&) override {}
};
// Starts once, fails its first message and asks for an in-place restart,
// whose on_start then fails.
struct FailsOnRestart : Actor<int> {
  std::atomic<int>* starts;
  explicit FailsOnRestart(std::atomic<int>* s) : starts(s) {}
  void on_start(Context<int>& ctx) override {
    if (starts->fetch_add(1) > 0) ctx.fail(Error::make(Errc::NotFound, "config gone on restart"));
  }
  void on_message(Context<int>& ctx, int&) override { ctx.fail(Error::make(Errc::Failed, "first")); }
  ErrorAction on_error(Context<int>&, const Error&) override { return ErrorAction::Restart; }
};
}  // namespace

TEST_CASE("why an actor's on_start failed is kept for System::start_error, supervised or not") {
  // Its Down and stats say only Failed; the error itself was kept only
  // for children spawned with spawn_supervised.
  SystemConfig cfg;
  cfg.workers = 1;
  System sys(cfg);
  auto ref = sys.spawn<FailsToStart>();
  REQUIRE(ref.ok());
  REQUIRE(test::wait_for([&] { return sys.gone(ref->id); }));
  Error e;
  REQUIRE(sys.start_error(ref->id, e));
  CHECK(e.code() == Errc::InvalidArgument);
  CHECK(std::string(e.message()) == "bad setting 7");
  // An actor that started and failed later has no start error.
  auto later = sys.spawn_with<test::Scripted<int>>(SpawnOptions{}, [] {
    return test::Scripted<int>(nullptr, [](Context<int>& ctx, int&) { ctx.fail(Error::make(Errc::Failed, "later")); });
  });
  REQUIRE(later.ok());
  REQUIRE(sys.send(*later, 1).ok());
  REQUIRE(test::wait_for([&] { return sys.gone(later->id); }));
  CHECK_FALSE(sys.start_error(later->id, e));
  // The on_start of an in-place restart that fails stops the actor: kept too.
  std::atomic<int> starts{0};
  auto restarted = sys.spawn_with<FailsOnRestart>(SpawnOptions{}, [&starts] { return FailsOnRestart(&starts); });
  REQUIRE(restarted.ok());
  REQUIRE(sys.send(*restarted, 1).ok());
  REQUIRE(test::wait_for([&] { return sys.gone(restarted->id); }));
  CHECK(starts.load() == 2);
  REQUIRE(sys.start_error(restarted->id, e));
  CHECK(std::string(e.message()) == "config gone on restart");
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("reading the value of a failed Result aborts, naming its error on stderr") {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::dup2(pipe_fds[1], 2);
    ::signal(SIGABRT, SIG_DFL);  // not Catch's handler: the abort itself is what is checked
    Result<int> r = Error::make(Errc::NotFound, "no actor named '%s'", "worker-7");
    volatile int v = r.value();
    (void)v;
    ::_exit(0);  // not reached
  }
  ::close(pipe_fds[1]);
  std::string err;
  char buf[256];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(err == "airssys: value() of a failed Result: no actor named 'worker-7' (not found)\n");
}

TEST_CASE("utf8_cut never cuts inside a UTF-8 character, and cuts other bytes at the limit") {
  const std::string ascii = "abcdef";
  CHECK(utf8_cut(ascii.data(), ascii.size(), 4) == 4);
  CHECK(utf8_cut(ascii.data(), ascii.size(), 10) == ascii.size());
  const std::string two = "a\xC3\xA9\xC3\xA9";  // a é é
  CHECK(utf8_cut(two.data(), two.size(), 1) == 1);
  CHECK(utf8_cut(two.data(), two.size(), 2) == 1);  // inside the first é
  CHECK(utf8_cut(two.data(), two.size(), 3) == 3);
  const std::string four = "ab\xF0\x9F\x98\x80z";  // a b 😀 z
  for (std::size_t limit : {3u, 4u, 5u}) CHECK(utf8_cut(four.data(), four.size(), limit) == 2);
  CHECK(utf8_cut(four.data(), four.size(), 6) == 6);
  const std::string junk = "a\x80\x80\x80\x80\x80";  // not UTF-8: cut where asked
  CHECK(utf8_cut(junk.data(), junk.size(), 5) == 5);
  const std::string lead = "\x80\x80z";
  CHECK(utf8_cut(lead.data(), lead.size(), 1) == 1);
}
