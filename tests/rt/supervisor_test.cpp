// Supervisors on a real System with real actors: the OTP semantics table
// (strategy x restart type x exit reason), intensity escalation through
// three levels, shutdown order, start-failure rollback, dynamic children,
// significant children, health checks, backoff, and the zero-allocation
// restart cycle. Children record their starts and stops in a lock-free log
// that the test reads and compares with the expected sequence.

#include <airssys/rt/supervisor.hpp>

#include <catch2/catch.hpp>

#include "support/alloc_counter.hpp"
#include "support/osl_spawn.hpp"
#include "support/process_guard.hpp"
#include "support/proc_table.hpp"
#include "support/rt_test.hpp"
#include "support/wait_for.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace airssys;
using namespace std::chrono_literals;

namespace {

// Starts ("+a") and stops ("-a") in the order the children made them.
// Lock-free and allocation-free on the writing side.
class EventLog {
 public:
  static constexpr std::uint32_t kCapacity = 8192;
  void push(const char* who, char what) noexcept {
    const std::uint32_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= kCapacity) return;
    Entry& e = entries_[i];
    e.text[0] = what;
    std::size_t n = 0;
    while (who[n] != '\0' && n + 2 < sizeof(e.text)) {
      e.text[n + 1] = who[n];
      ++n;
    }
    e.text[n + 1] = '\0';
    // release: the reader that sees ready sees the text.
    e.ready.store(true, std::memory_order_release);
  }
  std::vector<std::string> get() const {
    const std::uint32_t n = std::min(next_.load(std::memory_order_acquire), kCapacity);
    std::vector<std::string> out;
    for (std::uint32_t i = 0; i < n; ++i) {
      while (!entries_[i].ready.load(std::memory_order_acquire)) std::this_thread::yield();
      out.emplace_back(entries_[i].text);
    }
    return out;
  }
  std::uint32_t size() const noexcept { return next_.load(std::memory_order_acquire); }
  // The events from `from` on.
  std::vector<std::string> since(std::size_t from) const {
    auto all = get();
    return {all.begin() + static_cast<std::ptrdiff_t>(std::min(from, all.size())), all.end()};
  }

 private:
  struct Entry {
    std::atomic<bool> ready{false};
    char text[15];
  };
  std::atomic<std::uint32_t> next_{0};
  std::array<Entry, kCapacity> entries_{};
};

// What the test knows of each child, by the first letter of its name.
struct Board {
  EventLog log;
  std::array<std::atomic<std::uint64_t>, 26> refs{};
  std::array<std::atomic<int>, 26> starts{};
  std::array<std::atomic<int>, 26> unhealthy{};
  std::array<std::atomic<int>, 26> checks{};
  test::Gate gate;  // a child told kBlock waits on it inside its handler
  std::atomic<int> blocked{0};
  std::atomic<int> last_pid{0};  // TreeOwner: its process, and predecessors still there
  std::atomic<unsigned long long> last_start{0};  // and its start time (the number may be another's by now)
  std::atomic<int> overlaps{0};
  std::atomic<char> overlap_state{'-'};
  test::Log<std::pair<int, unsigned long long>> pids;  // TreeOwner's processes: pid and start time
  static std::size_t at(const char* name) { return static_cast<std::size_t>(name[0] - 'a'); }
  ActorRef<int> ref(const char* name) const {
    const std::uint64_t v = refs[at(name)].load(std::memory_order_acquire);
    return ActorRef<int>{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
  }
  int started(const char* name) const { return starts[at(name)].load(std::memory_order_acquire); }
};

enum Command : int { kCrash = 1, kStopNormal = 2, kStopShutdown = 3, kEscalate = 4, kBlock = 5,
                     kStopRequested = 6 /* the test calls System::stop */ };

// A worker that logs its starts and stops and obeys commands.
struct Worker : Actor<int> {
  const char* name;
  Board* board;
  bool fail_on_start;
  bool escalate = false;
  Worker(const char* n, Board* b, bool fail_start = false) : name(n), board(b), fail_on_start(fail_start) {}
  void on_start(Context<int>& ctx) override {
    board->log.push(name, '+');
    if (fail_on_start) {
      ctx.fail(Error::make(Errc::Failed, "worker '%s' cannot start", name));
      return;
    }
    const ActorId id = ctx.self().id;
    board->refs[Board::at(name)].store((std::uint64_t{id.slot} << 32) | id.gen, std::memory_order_release);
    board->starts[Board::at(name)].fetch_add(1, std::memory_order_acq_rel);
  }
  void on_message(Context<int>& ctx, int& m) override {
    switch (m) {
      case kCrash: ctx.fail(Error::make(Errc::Failed, "told to crash")); break;
      case kStopNormal: ctx.stop(); break;
      case kStopShutdown: ctx.stop(StopReason::Shutdown); break;
      case kEscalate:
        escalate = true;
        ctx.fail(Error::make(Errc::Failed, "told to escalate"));
        break;
      case kBlock:
        board->blocked.fetch_add(1, std::memory_order_acq_rel);
        board->gate.wait();
        break;
      default: break;
    }
  }
  void on_stop(Context<int>&, StopReason) override { board->log.push(name, '-'); }
  ErrorAction on_error(Context<int>&, const Error&) override {
    return escalate ? ErrorAction::Escalate : ErrorAction::Stop;
  }
  Health health_check(Context<int>&) override {
    const bool failed = board->unhealthy[Board::at(name)].load(std::memory_order_acquire) != 0;
    board->checks[Board::at(name)].fetch_add(1, std::memory_order_acq_rel);  // after the read: the test may flip it now
    return failed ? Health::Failed : Health::Healthy;
  }
};

ChildSpec worker(const char* name, Board& b, RestartType r = RestartType::Permanent) {
  return ChildSpec::worker<Worker>(name, name, &b).restart(r);
}

SystemConfig small_config() {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.actor_capacity = 256;
  return cfg;
}

// Shuts the system down on scope exit. Declared after the specs of its
// scope, it stops their supervisors (also after a failed REQUIRE) before
// the specs are destroyed: a spec must outlive its supervisor.
struct ShutdownOnExit {
  System& sys;
  ~ShutdownOnExit() { (void)sys.shutdown(); }
};

using Events = std::vector<std::string>;

// Waits until the log holds `n` events from `from` on, then lets the
// supervisor answer a request (so that it has handled everything before),
// and returns those events.
Events events_after(const Board& b, const SupervisorRef& sup, std::size_t from, std::size_t n) {
  (void)test::wait_for([&] { return b.log.size() >= from + n; });
  (void)sup.count_children();
  return b.log.since(from);
}

// The next start of `name` after `before` starts, with the new ref stored.
bool restarted(const Board& b, const char* name, int before) {
  return test::wait_for([&] { return b.started(name) > before; });
}

std::uint32_t running_children(const SupervisorRef& sup) {
  auto c = sup.count_children();
  return c ? c->active : ~0u;
}

// The events of the System's monitoring ring that name one of `children`
// (what supervisors record: the runtime's own events name no child).
std::vector<MonitorEvent> child_events(const System& sys, std::initializer_list<std::string_view> children) {
  EventCursor cursor;
  std::vector<MonitorEvent> buf(4096);
  std::vector<MonitorEvent> out;
  for (;;) {
    const EventRead r = sys.monitoring().read(cursor, buf);
    for (std::size_t k = 0; k < r.events; ++k)
      if (std::find(children.begin(), children.end(), buf[k].name_view()) != children.end()) out.push_back(buf[k]);
    if (r.events == 0) return out;
  }
}

std::vector<std::string> kinds_and_names(const std::vector<MonitorEvent>& events) {
  std::vector<std::string> out;
  for (const MonitorEvent& e : events) out.push_back(std::string(to_string(e.kind)) + " " + std::string(e.name_view()));
  return out;
}

std::uint64_t restarts_of(const System& sys, std::string_view child) {
  std::array<ChildRestarts, 64> rows{};
  const std::size_t n = sys.monitoring().child_restarts(rows);
  for (std::size_t k = 0; k < n; ++k)
    if (child == rows[k].name) return rows[k].restarts;
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE("the OTP table: each strategy, restart type and exit reason restarts exactly the expected children in order") {
  struct Case {
    Strategy strategy;
    RestartType type;
    Command cmd;
  };
  const Strategy strategies[] = {Strategy::OneForOne, Strategy::OneForAll, Strategy::RestForOne};
  const RestartType types[] = {RestartType::Permanent, RestartType::Transient, RestartType::Temporary};
  const Command cmds[] = {kStopNormal, kStopShutdown, kStopRequested, kCrash};
  for (Strategy s : strategies) {
    for (RestartType t : types) {
      for (Command c : cmds) {
        INFO("strategy " << to_string(s) << ", b is " << to_string(t) << ", exit "
                         << (c == kStopNormal     ? "normal"
                             : c == kStopShutdown ? "shutdown"
                             : c == kStopRequested ? "requested"
                                                  : "crash"));
        Board b;
        System sys(small_config());
        SupervisorSpec spec(SupervisorFlags{.strategy = s, .intensity = 10}, 4);
        REQUIRE(spec.add(worker("a", b)).ok());
        REQUIRE(spec.add(worker("b", b, t)).ok());
        REQUIRE(spec.add(worker("c", b)).ok());
        ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
        auto sup = start_supervisor(sys, spec);
        REQUIRE(sup.ok());
        REQUIRE(b.log.get() == Events{"+a", "+b", "+c"});

        const bool restart = t == RestartType::Permanent || (t == RestartType::Transient && c == kCrash);
        Events expected;
        if (!restart) {
          expected = {"-b"};
        } else if (s == Strategy::OneForOne) {
          expected = {"-b", "+b"};
        } else if (s == Strategy::OneForAll) {
          expected = {"-b", "-c", "-a", "+a", "+b", "+c"};
        } else {
          expected = {"-b", "-c", "+b", "+c"};
        }
        const std::size_t from = b.log.size();
        if (c == kStopRequested) {
          REQUIRE(sys.stop(b.ref("b")).ok());  // stopped by someone else
        } else {
          REQUIRE(sys.send(b.ref("b"), static_cast<int>(c)).ok());
        }
        (void)events_after(b, *sup, from, expected.size());
        // Once the supervisor has handled the Down, a restart would have
        // spawned in the same handler: the spawn count shows any extra one.
        REQUIRE(test::wait_for([&] { return running_children(*sup) == (restart ? 3u : 2u); }));
        CHECK(b.log.since(from) == expected);
        CHECK(sys.stats().spawned == 4 + static_cast<std::uint64_t>(std::count_if(
                                             expected.begin(), expected.end(), [](const std::string& e) { return e[0] == '+'; })));

        std::array<ChildInfo, 4> infos{};
        auto n = sup->which_children(infos);
        REQUIRE(n.ok());
        // A Temporary child's spec goes when it ends; the others stay.
        CHECK(*n == (t == RestartType::Temporary ? 2u : 3u));
        REQUIRE(sup->stop().ok());
        REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
      }
    }
  }
}

TEST_CASE("SimpleOneForOne restarts only the instance that ended, by its restart type and exit reason") {
  const RestartType types[] = {RestartType::Permanent, RestartType::Transient, RestartType::Temporary};
  const Command cmds[] = {kStopNormal, kStopShutdown, kCrash};
  for (RestartType t : types) {
    for (Command c : cmds) {
      INFO("instances are " << to_string(t) << ", exit " << static_cast<int>(c));
      Board b;
      System sys(small_config());
      SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::SimpleOneForOne, .intensity = 10}, 4);
      REQUIRE(spec.add(ChildSpec::worker<Worker>("job", "x", &b).restart(t)).ok());
      ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
      auto sup = start_supervisor(sys, spec);
      REQUIRE(sup.ok());
      for (const char* name : {"a", "b", "c"})
        REQUIRE(sup->start_child(ChildSpec::worker<Worker>("job", name, &b).restart(t)).ok());
      REQUIRE(b.log.get() == Events{"+a", "+b", "+c"});
      const bool restart = t == RestartType::Permanent || (t == RestartType::Transient && c == kCrash);
      const Events expected = restart ? Events{"-b", "+b"} : Events{"-b"};
      const std::size_t from = b.log.size();
      REQUIRE(sys.send(b.ref("b"), static_cast<int>(c)).ok());
      (void)events_after(b, *sup, from, expected.size());
      REQUIRE(test::wait_for([&] { return running_children(*sup) == (restart ? 3u : 2u); }));
      CHECK(b.log.since(from) == expected);
      CHECK(sys.stats().spawned == (restart ? 5u : 4u));  // the supervisor, three instances, a restart
      auto counts = sup->count_children();
      REQUIRE(counts.ok());
      CHECK(counts->specs == 1);
      CHECK(counts->active == (restart ? 3u : 2u));
      CHECK(counts->workers == (restart ? 3u : 2u));  // an instance that ended is gone
      REQUIRE(sup->stop().ok());
      REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
    }
  }
}

TEST_CASE("a Temporary sibling stopped by a OneForAll restart is removed, not restarted") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForAll, .intensity = 10}, 4);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("t", b, RestartType::Temporary)).ok());
  REQUIRE(spec.add(worker("c", b)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  const std::size_t from = b.log.size();
  REQUIRE(sys.send(b.ref("c"), static_cast<int>(kCrash)).ok());
  CHECK(events_after(b, *sup, from, 5) == Events{"-c", "-t", "-a", "+a", "+c"});
  std::array<ChildInfo, 4> infos{};
  auto n = sup->which_children(infos);
  REQUIRE(n.ok());
  REQUIRE(*n == 2);
  CHECK(std::string(infos[0].id) == "a");
  CHECK(std::string(infos[1].id) == "c");
  REQUIRE(sup->stop().ok());
}

TEST_CASE("an escalated failure is abnormal: a Transient child that escalates is restarted") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10}, 2);
  REQUIRE(spec.add(worker("e", b, RestartType::Transient)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  const std::size_t from = b.log.size();
  REQUIRE(sys.send(b.ref("e"), static_cast<int>(kEscalate)).ok());
  CHECK(events_after(b, *sup, from, 2) == Events{"-e", "+e"});
  CHECK(sys.alive(sup->ref));
  REQUIRE(sup->stop().ok());
}

// ---------------------------------------------------------------------------
// Intensity

TEST_CASE("more than intensity restarts within the period escalate through three levels of supervisors") {
  ManualClock clock;
  Board b;
  System sys(small_config());
  const SupervisorFlags flags{.strategy = Strategy::OneForOne, .intensity = 1, .period = 5s, .clock = &clock};
  SupervisorSpec leaf(flags, 2), mid(flags, 2), top(flags, 2);
  REQUIRE(leaf.add(worker("w", b)).ok());
  REQUIRE(mid.add(ChildSpec::supervisor("leaf", leaf)).ok());
  REQUIRE(top.add(ChildSpec::supervisor("mid", mid)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, top);
  REQUIRE(sup.ok());
  REQUIRE(b.started("w") == 1);

  // Each crash restarts w somewhere up the tree: the 2nd and 4th exceed
  // leaf's intensity (mid restarts leaf, then exceeds its own at the 4th:
  // top restarts mid); the 8th exceeds top's too, and everything stops.
  for (int crash = 1; crash <= 7; ++crash) {
    INFO("crash " << crash);
    const int before = b.started("w");
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(restarted(b, "w", before));
    CHECK(sys.alive(sup->ref));
  }
  REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
  REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
  CHECK(b.started("w") == 8);
  CHECK(b.log.get().back() == "-w");
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

TEST_CASE("restarts older than the period are forgotten") {
  ManualClock clock;
  Board b;
  System sys(small_config());
  const SupervisorFlags flags{.intensity = 1, .period = 5s, .clock = &clock};
  SupervisorSpec leaf(flags, 2), top(flags, 2);
  REQUIRE(leaf.add(worker("w", b)).ok());
  REQUIRE(top.add(ChildSpec::supervisor("leaf", leaf)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, top);
  REQUIRE(sup.ok());
  for (int crash = 1; crash <= 6; ++crash) {
    INFO("crash " << crash);
    clock.advance(5s + 1ns);  // the previous restart is now outside the window
    const int before = b.started("w");
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(restarted(b, "w", before));
  }
  // Only leaf restarted w: top never restarted leaf.
  std::array<ChildInfo, 2> infos{};
  REQUIRE(sup->which_children(infos).ok());
  CHECK(infos[0].restarts == 0);
  CHECK(b.log.get() == Events{"+w", "-w", "+w", "-w", "+w", "-w", "+w", "-w", "+w", "-w", "+w", "-w", "+w"});
  SECTION("and a second restart within the period exceeds an intensity of one") {
    const int before = b.started("w");
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(restarted(b, "w", before));  // top restarted leaf, which started w
    REQUIRE(test::wait_for([&] { return running_children(*sup) == 1; }));
    REQUIRE(sup->which_children(infos).ok());
    CHECK(infos[0].restarts == 1);
  }
  REQUIRE(sup->stop().ok());
}

TEST_CASE("an intensity of zero lets no restart happen") {
  ManualClock clock;
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 0, .clock = &clock}, 2);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("w", b)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
  REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
  CHECK(b.log.get() == Events{"+a", "+w", "-w", "-a"});
}

// ---------------------------------------------------------------------------
// Order: shutdown and start failure

// A child whose next `fail_next` starts fail, as `how` says (0: ctx.fail,
// 1: ctx.stop(), 2: ctx.stop(Shutdown)). It counts the starts it attempts
// and those that succeed; told to hold, it first waits on the gate.
struct FlakyControl {
  std::atomic<int> fail_next{0};
  std::atomic<int> how{0};
  std::atomic<int> attempts{0};
  std::atomic<int> ok_starts{0};
  std::atomic<std::uint64_t> ref{0};
  std::atomic<bool> hold{false};
  std::atomic<int> holding{0};
  test::Gate gate;
  ActorRef<int> current() const {
    const std::uint64_t v = ref.load(std::memory_order_acquire);
    return ActorRef<int>{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
  }
};

struct Flaky : Actor<int> {
  FlakyControl* c;
  explicit Flaky(FlakyControl* ctl) : c(ctl) {}
  void on_start(Context<int>& ctx) override {
    c->attempts.fetch_add(1, std::memory_order_acq_rel);
    if (c->hold.load(std::memory_order_acquire)) {
      c->holding.fetch_add(1, std::memory_order_acq_rel);
      c->gate.wait();
    }
    if (c->fail_next.load(std::memory_order_acquire) > 0) {
      c->fail_next.fetch_sub(1, std::memory_order_acq_rel);
      switch (c->how.load(std::memory_order_acquire)) {
        case 0: ctx.fail(Error::make(Errc::Failed, "flaky cannot start")); return;
        case 1: ctx.stop(); return;
        default: ctx.stop(StopReason::Shutdown); return;
      }
    }
    const ActorId id = ctx.self().id;
    c->ref.store((std::uint64_t{id.slot} << 32) | id.gen, std::memory_order_release);
    c->ok_starts.fetch_add(1, std::memory_order_acq_rel);
  }
  void on_message(Context<int>& ctx, int& m) override {
    if (m == kCrash) ctx.fail(Error::make(Errc::Failed, "told to crash"));
  }
};

std::uint32_t restarts_in_table(const SupervisorRef& sup, std::string_view child) {
  std::array<ChildInfo, 4> infos{};
  auto n = sup.which_children(infos);
  if (!n) return ~0u;
  for (std::uint32_t k = 0; k < std::min<std::uint32_t>(*n, 4); ++k)
    if (child == infos[k].id) return infos[k].restarts;
  return ~0u;
}

TEST_CASE("a restart whose on_start fails or stops is a failed start: counted, and tried again whatever the restart type") {
  // A OneForOne restart does not wait for the child's Started (Down::started
  // tells a failed start afterwards): the semantics must be those of an
  // awaited start.
  for (const RestartType type : {RestartType::Permanent, RestartType::Transient}) {
    for (int how = 0; how < 3; ++how) {
      INFO("restart type " << static_cast<int>(type) << ", failure " << how);
      ManualClock clock;  // time stands still: every restart counts
      FlakyControl ctl;
      System sys(small_config());
      SupervisorSpec spec(SupervisorFlags{.intensity = 10, .period = 1h, .clock = &clock}, 1);
      REQUIRE(spec.add(ChildSpec::worker<Flaky>("f", &ctl).restart(type)).ok());
      ShutdownOnExit down{sys};
      auto sup = start_supervisor(sys, spec);
      REQUIRE(sup.ok());
      REQUIRE(ctl.ok_starts.load() == 1);
      ctl.how.store(how);
      ctl.fail_next.store(2);
      REQUIRE(sys.send(ctl.current(), static_cast<int>(kCrash)).ok());
      REQUIRE(test::wait_for([&] { return ctl.ok_starts.load() == 2; }));
      CHECK(ctl.attempts.load() == 4);  // the first start, two failed restarts, one that held
      CHECK(restarts_in_table(*sup, "f") == 3);
      CHECK(running_children(*sup) == 1);
      const auto events = child_events(sys, {"f"});
      CHECK(kinds_and_names(events) ==
            std::vector<std::string>{"actor_started f", "actor_failed f", "strategy_applied f", "actor_restarted f",
                                     "actor_failed f", "strategy_applied f", "actor_restarted f", "actor_failed f",
                                     "strategy_applied f", "actor_restarted f"});
      for (const MonitorEvent& e : events)
        if (e.kind == MonitorEvent::Kind::ActorFailed) CHECK(e.error == Errc::Failed);
      REQUIRE(sup->stop().ok());
    }
  }
}

TEST_CASE("restarts that keep failing to start exceed the intensity and shut the supervisor down") {
  ManualClock clock;
  FlakyControl ctl;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 2, .period = 1h, .clock = &clock}, 1);
  REQUIRE(spec.add(ChildSpec::worker<Flaky>("f", &ctl)).ok());
  ShutdownOnExit down{sys};
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  ctl.fail_next.store(1000);
  REQUIRE(sys.send(ctl.current(), static_cast<int>(kCrash)).ok());
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  CHECK(ctl.attempts.load() == 3);  // the first start and two restarts: the third restart exceeds
  CHECK(ctl.ok_starts.load() == 1);
  CHECK_FALSE(sys.alive(sup->ref));
  bool exceeded = false;
  for (const MonitorEvent& e : child_events(sys, {"f"}))
    if (e.kind == MonitorEvent::Kind::IntensityExceeded) exceeded = e.count == 3;
  CHECK(exceeded);
}

TEST_CASE("a restarted child counts as running only once its on_start has returned") {
  // The supervisor does not wait for a OneForOne restart's on_start, but
  // which_children and count_children do not report the child running
  // (nor its ref) before it has started: what its on_start did happens
  // before an answer that says it runs.
  ManualClock clock;
  FlakyControl ctl;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10, .period = 1h, .clock = &clock}, 1);
  REQUIRE(spec.add(ChildSpec::worker<Flaky>("f", &ctl).options(test::on_worker(1))).ok());
  ShutdownOnExit down{sys};
  test::OpenOnExit open{ctl.gate};  // runs first: no worker stays in f's on_start
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  CHECK(running_children(*sup) == 1);
  ctl.hold.store(true);
  REQUIRE(sys.send(ctl.current(), static_cast<int>(kCrash)).ok());
  REQUIRE(test::wait_for([&] { return ctl.holding.load() == 1; }));
  REQUIRE(test::wait_for([&] { return restarts_in_table(*sup, "f") == 1; }));
  std::array<ChildInfo, 1> infos{};
  REQUIRE(sup->which_children(infos).ok());
  CHECK_FALSE(infos[0].running);
  CHECK_FALSE(infos[0].ref.valid());
  CHECK(running_children(*sup) == 0);
  ctl.gate.release();
  REQUIRE(test::wait_for([&] { return running_children(*sup) == 1; }));
  REQUIRE(sup->which_children(infos).ok());
  CHECK(infos[0].running);
  CHECK(infos[0].ref == ctl.current().id);  // stored by its on_start, which came first
  CHECK(ctl.ok_starts.load() == 2);
  REQUIRE(sup->stop().ok());
}

TEST_CASE("a failed restart whose Down comes while another operation runs is handled after it") {
  // f's replacement holds in its on_start while terminate_child("a") starts
  // an operation that waits for a's Down; a is on f's worker, so it stops
  // only after f's start failed. f's Down comes first, and must wait for
  // the operation: then it is counted and f is tried again.
  ManualClock clock;
  FlakyControl ctl;
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10, .period = 1h, .clock = &clock}, 2);
  REQUIRE(spec.add(worker("a", b).options(test::on_worker(1))).ok());
  REQUIRE(spec.add(ChildSpec::worker<Flaky>("f", &ctl).options(test::on_worker(1))).ok());
  ShutdownOnExit down{sys};
  test::OpenOnExit open{ctl.gate};  // runs first: no worker stays in f's on_start
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  ctl.hold.store(true);
  ctl.fail_next.store(1);
  REQUIRE(sys.send(ctl.current(), static_cast<int>(kCrash)).ok());
  REQUIRE(test::wait_for([&] { return ctl.holding.load() == 1; }));
  Result<void> terminated = Errc::Failed;
  std::thread asker([&] { terminated = sup->terminate_child("a"); });
  // The supervisor's worker is free: it takes the request up and stops a
  // (which_children, answered meanwhile, then shows a not running); the
  // operation waits for a, whose stop waits behind f on worker 1.
  const bool began = test::wait_for([&] {
    std::array<ChildInfo, 2> infos{};
    auto n = sup->which_children(infos);
    return n && *n == 2 && std::string_view(infos[0].id) == "a" && !infos[0].running;
  });
  ctl.gate.release();
  asker.join();  // before any REQUIRE: a failure must not leave the thread joinable
  REQUIRE(began);
  REQUIRE(terminated.ok());
  REQUIRE(test::wait_for([&] { return ctl.ok_starts.load() == 2; }));
  CHECK(ctl.attempts.load() == 3);
  CHECK(restarts_in_table(*sup, "f") == 2);
  CHECK(running_children(*sup) == 1);  // f; a was terminated
  const auto names = kinds_and_names(child_events(sys, {"a", "f"}));
  const auto stopped_a = std::find(names.begin(), names.end(), "actor_stopped a");
  REQUIRE(stopped_a != names.end());
  // After a's stop: f's failed start, its restart.
  CHECK(std::vector<std::string>(stopped_a + 1, names.end()) ==
        std::vector<std::string>{"actor_failed f", "strategy_applied f", "actor_restarted f"});
  REQUIRE(sup->stop().ok());
}

TEST_CASE("a supervisor stops its children in reverse start order, a child supervisor's subtree in its place") {
  Board b;
  System sys(small_config());
  SupervisorSpec sub(SupervisorFlags{}, 2);
  REQUIRE(sub.add(worker("x", b)).ok());
  REQUIRE(sub.add(worker("y", b)).ok());
  SupervisorSpec spec(SupervisorFlags{}, 4);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(ChildSpec::supervisor("sub", sub)).ok());
  REQUIRE(spec.add(worker("c", b)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  CHECK(b.log.get() == Events{"+a", "+x", "+y", "+c"});
  REQUIRE(sup->stop().ok());
  CHECK(b.log.get() == Events{"+a", "+x", "+y", "+c", "-c", "-y", "-x", "-a"});
  CHECK_FALSE(sys.alive(sup->ref));
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

TEST_CASE("a child supervisor's shutdown spec bounds its orderly stop, or waits for it with Infinity") {
  Board b;
  // x blocks its worker: it gets one of its own, away from the supervisors.
  SystemConfig cfg = small_config();
  cfg.workers = 3;
  System sys(cfg);
  SupervisorSpec sub(SupervisorFlags{}, 1);
  REQUIRE(sub.add(worker("x", b).options(test::on_worker(2))).ok());
  SupervisorSpec spec(SupervisorFlags{}, 1);
  ShutdownOnExit down{sys};
  test::OpenOnExit open{b.gate};  // after `down`: the gate opens first
  const SpawnOptions sub_worker = test::on_worker(1);
  SECTION("Timeout: once it runs out, the child supervisor is stopped at once") {
    REQUIRE(spec.add(ChildSpec::supervisor("sub", sub).options(sub_worker).shutdown(ShutdownSpec::after(20ms))).ok());
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    const ActorRef<int> x = b.ref("x");
    REQUIRE(sys.send(x, static_cast<int>(kBlock)).ok());
    REQUIRE(test::wait_for([&] { return b.blocked.load() == 1; }));
    auto stopped = sup->stop();  // x is still inside its handler
    INFO(stopped.error().message());
    REQUIRE(stopped.ok());
    CHECK(sys.alive(x));
    b.gate.release();
    REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
    CHECK(b.log.get() == Events{"+x", "-x"});
  }
  SECTION("Infinity: the parent waits as long as the subtree takes") {
    REQUIRE(spec.add(ChildSpec::supervisor("sub", sub).options(sub_worker)).ok());
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    REQUIRE(sys.send(b.ref("x"), static_cast<int>(kBlock)).ok());
    REQUIRE(test::wait_for([&] { return b.blocked.load() == 1; }));
    CHECK(sup->stop(50ms).code() == Errc::Timeout);
    CHECK(sys.alive(sup->ref));
    b.gate.release();
    REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
    CHECK(b.log.get() == Events{"+x", "-x"});
  }
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

TEST_CASE("a child that fails to start rolls back the started ones in reverse and fails the start, naming it") {
  Board b;
  System sys(small_config());
  SECTION("its on_start fails") {
    SupervisorSpec spec(SupervisorFlags{}, 4);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("b", b)).ok());
    REQUIRE(spec.add(ChildSpec::worker<Worker>("fails", "f", &b, true)).ok());
    REQUIRE(spec.add(worker("c", b)).ok());
    ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE_FALSE(sup.ok());
    INFO(sup.error().message());
    CHECK(std::strstr(sup.error().message(), "child 'fails'") != nullptr);
    // The child's own reason (System::start_error), not only "stopped".
    CHECK(std::strstr(sup.error().message(), "worker 'f' cannot start") != nullptr);
    CHECK(b.log.get() == Events{"+a", "+b", "+f", "-f", "-b", "-a"});
    SECTION("and the spec is free again: a second start fails the same way, not as in use") {
      auto again = start_supervisor(sys, spec);
      REQUIRE_FALSE(again.ok());
      CHECK(std::strstr(again.error().message(), "child 'fails'") != nullptr);
    }
  }
  SECTION("its spawn is refused") {
    SupervisorSpec spec(SupervisorFlags{}, 4);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("b", b).options(SpawnOptions{.worker = 99})).ok());
    ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE_FALSE(sup.ok());
    INFO(sup.error().message());
    CHECK(sup.error().code() == Errc::InvalidArgument);
    CHECK(std::strstr(sup.error().message(), "child 'b'") != nullptr);
    CHECK(b.log.get() == Events{"+a", "-a"});
  }
  SECTION("it is in a child supervisor: that one fails, and so does its parent's start") {
    SupervisorSpec sub(SupervisorFlags{}, 2);
    REQUIRE(sub.add(worker("x", b)).ok());
    REQUIRE(sub.add(ChildSpec::worker<Worker>("broken", "f", &b, true)).ok());
    SupervisorSpec spec(SupervisorFlags{}, 3);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(ChildSpec::supervisor("sub", sub)).ok());
    REQUIRE(spec.add(worker("c", b)).ok());
    ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE_FALSE(sup.ok());
    INFO(sup.error().message());
    CHECK(std::strstr(sup.error().message(), "child 'sub'") != nullptr);
    CHECK(std::strstr(sup.error().message(), "child 'broken'") != nullptr);
    CHECK(std::strstr(sup.error().message(), "worker 'f' cannot start") != nullptr);
    CHECK(b.log.get() == Events{"+a", "+x", "+f", "-f", "-x", "-a"});
  }
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

// ---------------------------------------------------------------------------
// Runtime API

TEST_CASE("children added, terminated, restarted and deleted at run time, up to the table's capacity") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10}, 3);
  REQUIRE(spec.add(worker("a", b)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());

  auto late = spec.add(worker("b", b));
  CHECK(late.code() == Errc::InvalidArgument);  // the spec belongs to the running supervisor now
  CHECK(std::strstr(late.error().message(), "start_child") != nullptr);

  auto bref = sup->start_child(worker("b", b));
  REQUIRE(bref.ok());
  CHECK(*bref == b.ref("b").id);
  auto dup = sup->start_child(worker("b", b));
  CHECK(dup.code() == Errc::AlreadyExists);
  CHECK(std::strstr(dup.error().message(), "child 'b'") != nullptr);
  REQUIRE(sup->start_child(worker("c", b)).ok());
  auto full = sup->start_child(worker("d", b));
  CHECK(full.code() == Errc::Full);
  CHECK(std::strstr(full.error().message(), "child 'd'") != nullptr);

  std::array<ChildInfo, 8> infos{};
  auto n = sup->which_children(infos);
  REQUIRE(n.ok());
  REQUIRE(*n == 3);
  CHECK(std::string(infos[0].id) == "a");
  CHECK(std::string(infos[1].id) == "b");
  CHECK(std::string(infos[2].id) == "c");
  CHECK(infos[1].running);
  CHECK(infos[1].ref == b.ref("b").id);
  auto counts = sup->count_children();
  REQUIRE(counts.ok());
  CHECK(counts->specs == 3);
  CHECK(counts->active == 3);
  CHECK(counts->workers == 3);
  CHECK(counts->supervisors == 0);

  auto running = sup->restart_child("a");
  CHECK(running.code() == Errc::InvalidArgument);
  CHECK(std::string(running.error().message()) == "child 'a' is running; terminate it first");
  CHECK(sup->delete_child("a").code() == Errc::InvalidArgument);
  CHECK(sup->terminate_child("nope").code() == Errc::NotFound);
  // Empty names and handles: said so (terminate_child(ActorId{}) said "no child ''").
  auto no_id = sup->terminate_child(ActorId{});
  CHECK(no_id.code() == Errc::InvalidArgument);
  CHECK(std::string(no_id.error().message()) == "terminate_child: the ActorId is empty");
  CHECK(std::string(sup->terminate_child("").error().message()) == "terminate_child: the child id is empty");
  CHECK(std::string(sup->restart_child("").error().message()) == "restart_child: the child id is empty");
  CHECK(std::string(sup->delete_child("").error().message()) == "delete_child: the child id is empty");
  // A default SupervisorRef names no System: every call says so (it crashed).
  const SupervisorRef none{};
  std::array<ChildInfo, 1> one{};
  for (const Errc code : {none.which_children(one).code(), none.count_children().code(), none.start_child().code(),
                          none.terminate_child("a").code(), none.restart_child("a").code(),
                          none.delete_child("a").code(), none.tick().code(), none.stop().code()})
    CHECK(code == Errc::InvalidArgument);
  CHECK(std::strstr(none.stop().error().message(), "the SupervisorRef is empty") != nullptr);
  // The other ways round, each saying what to pass instead.
  auto by_ref = sup->terminate_child(b.ref("b").id);
  CHECK(by_ref.code() == Errc::InvalidArgument);
  CHECK(std::strstr(by_ref.error().message(), "terminated by their child id") != nullptr);
  auto no_spec = sup->start_child();
  CHECK(no_spec.code() == Errc::InvalidArgument);
  CHECK(std::strstr(no_spec.error().message(), "pass the child's spec") != nullptr);
  CHECK(running_children(*sup) == 3);

  REQUIRE(sup->terminate_child("b").ok());
  CHECK_FALSE(sys.alive(b.ref("b")));
  CHECK(running_children(*sup) == 2);
  // A terminated child stays as a spec until deleted.
  auto again = sup->restart_child("b");
  REQUIRE(again.ok());
  CHECK(*again == b.ref("b").id);
  REQUIRE(sup->terminate_child("b").ok());
  REQUIRE(sup->delete_child("b").ok());
  CHECK(sup->restart_child("b").code() == Errc::NotFound);
  REQUIRE(sup->start_child(worker("d", b)).ok());  // room again
  n = sup->which_children(infos);
  REQUIRE(n.ok());
  REQUIRE(*n == 3);
  CHECK(std::string(infos[2].id) == "d");
  REQUIRE(sup->stop().ok());
  CHECK(b.log.since(0).back() == "-a");
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

TEST_CASE("a child spec that breaks the rules is refused at add(), with its id in the message") {
  Board b;
  SupervisorSpec spec(SupervisorFlags{}, 1);
  auto sig = spec.add(worker("s", b).significant());
  CHECK(sig.code() == Errc::InvalidArgument);
  CHECK(std::strstr(sig.error().message(), "child 's'") != nullptr);
  CHECK(spec.add(worker("", b)).code() == Errc::InvalidArgument);
  CHECK(spec.add(ChildSpec::worker<Worker>("a-name-that-is-far-too-long-for-32", "a", &b)).code() ==
        Errc::InvalidArgument);
  auto empty = spec.add(ChildSpec{});
  CHECK(empty.code() == Errc::InvalidArgument);
  CHECK(std::string(empty.error().message()) ==
        "empty ChildSpec: make it with ChildSpec::worker, worker_with or supervisor");
  CHECK(spec.add(worker("b", b).backoff(Backoff{.min = 2s, .max = 1s})).code() == Errc::InvalidArgument);
  // A negative timeout became the system's default kill timeout, silently.
  auto negative = spec.add(worker("n", b).shutdown(ShutdownSpec::after(-1ms)));
  CHECK(negative.code() == Errc::InvalidArgument);
  CHECK(std::strstr(negative.error().message(), "child 'n' has a negative shutdown timeout") != nullptr);
  REQUIRE(spec.add(worker("a", b)).ok());
  CHECK(spec.add(worker("a", b)).code() == Errc::AlreadyExists);
  auto full = spec.add(worker("c", b));
  CHECK(full.code() == Errc::Full);
  CHECK(std::strstr(full.error().message(), "child 'c'") != nullptr);
  SupervisorSpec simple(SupervisorFlags{.strategy = Strategy::SimpleOneForOne}, 2);
  REQUIRE(simple.add(worker("t", b)).ok());
  CHECK(simple.add(worker("u", b)).code() == Errc::InvalidArgument);
  SupervisorSpec bad(SupervisorFlags{.period = 0s}, 2);
  CHECK(bad.add(worker("a", b)).code() == Errc::InvalidArgument);
  System sys(small_config());
  CHECK(start_supervisor(sys, bad).code() == Errc::InvalidArgument);
}

TEST_CASE("SimpleOneForOne instances start from the template, are terminated by ref and stop together") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::SimpleOneForOne}, 3);
  REQUIRE(spec.add(ChildSpec::worker<Worker>("job", "t", &b).restart(RestartType::Transient)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  CHECK(b.log.size() == 0);  // nothing starts with the supervisor
  auto first = sup->start_child();
  REQUIRE(first.ok());
  REQUIRE(sup->start_child(ChildSpec::worker<Worker>("job", "u", &b)).ok());
  REQUIRE(sup->start_child(ChildSpec::worker<Worker>("job", "v", &b)).ok());
  CHECK(sup->start_child().code() == Errc::Full);
  CHECK(sup->start_child(ChildSpec::worker<Worker>("other", "w", &b)).code() == Errc::InvalidArgument);
  CHECK(sup->restart_child("job").code() == Errc::InvalidArgument);
  CHECK(sup->delete_child("job").code() == Errc::InvalidArgument);
  auto unknown = sup->terminate_child(ActorId{200, 1});
  CHECK(unknown.code() == Errc::NotFound);
  CHECK(std::strstr(unknown.error().message(), "actor #200 (generation 1)") != nullptr);
  auto by_id = sup->terminate_child("job");
  CHECK(by_id.code() == Errc::InvalidArgument);
  CHECK(std::strstr(by_id.error().message(), "terminated by ActorId, not by an id ('job')") != nullptr);
  REQUIRE(sup->terminate_child(*first).ok());
  CHECK_FALSE(sys.alive(*first));
  auto counts = sup->count_children();
  REQUIRE(counts.ok());
  CHECK(counts->specs == 1);
  CHECK(counts->active == 2);
  REQUIRE(sup->stop().ok());
  const auto log = b.log.get();
  REQUIRE(log.size() == 6);
  CHECK(log[3] == "-t");
  // The last two stopped in parallel: no order between them.
  CHECK(std::is_permutation(log.begin() + 4, log.end(), Events{"-u", "-v"}.begin()));
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

// ---------------------------------------------------------------------------
// Significant children

TEST_CASE("significant children shut the supervisor down as auto_shutdown says, only when they end by themselves") {
  Board b;
  System sys(small_config());
  SECTION("Never: a significant child's end changes nothing") {
    SupervisorSpec spec(SupervisorFlags{.auto_shutdown = AutoShutdown::Never}, 2);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("s", b, RestartType::Transient).significant()).ok());
    ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    REQUIRE(sys.send(b.ref("s"), static_cast<int>(kStopNormal)).ok());
    CHECK(events_after(b, *sup, 2, 1) == Events{"-s"});
    CHECK(sys.alive(sup->ref));
    REQUIRE(sup->stop().ok());
  }
  SECTION("AnySignificant: the first one that ends stops everything") {
    SupervisorSpec spec(SupervisorFlags{.auto_shutdown = AutoShutdown::AnySignificant}, 3);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("s", b, RestartType::Transient).significant()).ok());
    REQUIRE(spec.add(worker("t", b, RestartType::Temporary).significant()).ok());
    ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    SECTION("a crash of a Transient one restarts it instead") {
      REQUIRE(sys.send(b.ref("s"), static_cast<int>(kCrash)).ok());
      CHECK(events_after(b, *sup, 3, 2) == Events{"-s", "+s"});
      CHECK(sys.alive(sup->ref));
    }
    SECTION("one terminated through the API does not count") {
      REQUIRE(sup->terminate_child("s").ok());
      CHECK(sys.alive(sup->ref));
    }
    REQUIRE(sys.send(b.ref("t"), static_cast<int>(kCrash)).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
    const auto log = b.log.get();
    CHECK(log.back() == "-a");
  }
  SECTION("AllSignificant: the supervisor stops when the last one has ended") {
    SupervisorSpec spec(SupervisorFlags{.auto_shutdown = AutoShutdown::AllSignificant}, 3);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("s", b, RestartType::Transient).significant()).ok());
    REQUIRE(spec.add(worker("t", b, RestartType::Temporary).significant()).ok());
    ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    REQUIRE(sys.send(b.ref("s"), static_cast<int>(kStopNormal)).ok());
    CHECK(events_after(b, *sup, 3, 1) == Events{"-s"});
    CHECK(sys.alive(sup->ref));
    REQUIRE(sys.send(b.ref("t"), static_cast<int>(kStopShutdown)).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
    CHECK(b.log.get() == Events{"+a", "+s", "+t", "-s", "-t", "-a"});
  }
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

// ---------------------------------------------------------------------------
// Beyond OTP: health checks and backoff, on a manual clock

TEST_CASE("consecutive failed health checks restart the child as a crash would") {
  ManualClock clock;
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10, .clock = &clock}, 2);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("h", b, RestartType::Transient)
                       .health(HealthCheckSpec{.interval = 1s, .failures_to_restart = 2}))
              .ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  // One interval later, the k-th probe. Ticks repeat until it is made: the
  // previous report may still be on its way (a probe waits for it), and a
  // tick at the same time never probes twice.
  auto probe = [&](int k) {
    clock.advance(1s);
    REQUIRE(test::wait_for([&] {
      (void)sup->tick();
      return b.checks[Board::at("h")].load() >= k;
    }));
  };
  SECTION("healthy children are probed every interval and left alone") {
    for (int k = 1; k <= 4; ++k) probe(k);
    CHECK(b.started("h") == 1);
    SECTION("no probe before the interval has passed") {
      REQUIRE(sup->tick().ok());
      (void)sup->count_children();
      CHECK(b.checks[Board::at("h")].load() == 4);
    }
  }
  SECTION("a Failed report below the threshold is not enough, and a Healthy one resets the count") {
    b.unhealthy[Board::at("h")] = 1;
    probe(1);
    b.unhealthy[Board::at("h")] = 0;
    probe(2);
    b.unhealthy[Board::at("h")] = 1;
    probe(3);
    CHECK(b.started("h") == 1);
    probe(4);  // the second consecutive Failed
    REQUIRE(restarted(b, "h", 1));
    CHECK(events_after(b, *sup, 2, 2) == Events{"-h", "+h"});
  }
  REQUIRE(sup->stop().ok());
}

TEST_CASE("backoff delays each consecutive restart on the injected clock, then gives up by escalating") {
  ManualClock clock;
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 100, .clock = &clock}, 2);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("w", b).backoff(Backoff{.min = 1s, .max = 2s, .reset_after = 60s, .give_up_after = 3}))
              .ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  // Crash, then check that w is back only once `delay` has passed.
  auto crash_and_wait = [&](std::chrono::seconds delay) {
    const int before = b.started("w");
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    // The Down handled: the delay counts from the clock's time now.
    REQUIRE(test::wait_for([&] { return running_children(*sup) == 1; }));
    for (std::chrono::milliseconds waited{0}; waited < delay; waited += 500ms) {
      REQUIRE(sup->tick().ok());
      (void)sup->count_children();
      CHECK(b.started("w") == before);  // still waiting
      clock.advance(500ms);
    }
    REQUIRE(sup->tick().ok());
    REQUIRE(restarted(b, "w", before));
    // Its Started handled: its uptime counts from the clock's time now.
    REQUIRE(test::wait_for([&] { return running_children(*sup) == 2; }));
  };
  crash_and_wait(1s);
  crash_and_wait(2s);
  crash_and_wait(2s);  // capped at max
  SECTION("a healthy uptime of reset_after brings the delay back to min") {
    clock.advance(60s);
    crash_and_wait(1s);
    REQUIRE(sup->stop().ok());
  }
  SECTION("the restart after give_up_after consecutive ones escalates: the supervisor stops everything") {
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
    CHECK(b.log.since(b.log.size() - 2) == Events{"-w", "-a"});
  }
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

TEST_CASE("a request that changes the children waits for the restart in progress, and a stop request preempts it") {
  ManualClock clock;
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10, .clock = &clock}, 2);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("w", b).backoff(Backoff{.min = 1s})).ok());
  ShutdownOnExit down{sys};
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
  REQUIRE(test::wait_for([&] { return running_children(*sup) == 1; }));  // w's restart waits for the clock
  const std::size_t from = b.log.size();
  SECTION("terminate_child is answered once the restart is done") {
    std::atomic<bool> done{false};
    Result<void> terminated;
    std::thread asker([&] {
      terminated = sup->terminate_child("a");
      done.store(true);
    });
    (void)sup->count_children();  // read-only requests are answered meanwhile
    CHECK_FALSE(done.load());     // it cannot be: w's restart holds it until the clock moves
    clock.advance(1s);
    REQUIRE(sup->tick().ok());
    asker.join();
    CHECK(terminated.ok());
    CHECK(b.log.since(from) == Events{"+w", "-a"});
    REQUIRE(sup->stop().ok());
  }
  SECTION("stop does not wait for the backoff") {
    REQUIRE(sup->stop().ok());
    CHECK(b.started("w") == 1);
    CHECK(b.log.since(from) == Events{"-a"});
  }
}

TEST_CASE("on the monotonic clock, backoff and health checks arm their own timers") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.intensity = 10000}, 2);  // h may fail a few probes more before the test heals it
  REQUIRE(spec.add(worker("w", b).backoff(Backoff{.min = 5ms, .max = 20ms, .jitter = 0.5})).ok());
  REQUIRE(spec.add(worker("h", b).health(HealthCheckSpec{.interval = 2ms, .failures_to_restart = 1})).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  for (int k = 0; k < 3; ++k) {
    const int before = b.started("w");
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(restarted(b, "w", before));
  }
  REQUIRE(test::wait_for([&] { return b.checks[Board::at("h")].load() >= 3; }));
  b.unhealthy[Board::at("h")] = 1;
  REQUIRE(restarted(b, "h", 1));
  b.unhealthy[Board::at("h")] = 0;
  REQUIRE(sup->stop().ok());
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
}

// ---------------------------------------------------------------------------

TEST_CASE("a supervisor stopped from outside stops its children too") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{}, 2);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("c", b)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  REQUIRE(sys.stop(sup->ref).ok());
  REQUIRE(test::wait_for([&] { return sys.stats().live_actors == 0; }));
  const auto log = b.log.get();
  CHECK(std::is_permutation(log.begin() + 2, log.end(), Events{"-a", "-c"}.begin()));
  SECTION("and its spec can run again") {
    auto again = start_supervisor(sys, spec);
    REQUIRE(again.ok());
    REQUIRE(again->stop().ok());
  }
}

TEST_CASE("ShutdownSpec maps onto the child's process teardown timeout") {
  STATIC_REQUIRE(ShutdownSpec::brutal_kill().kill_timeout() == std::chrono::milliseconds(0));
  STATIC_REQUIRE(ShutdownSpec::after(250ms).kill_timeout() == 250ms);
  STATIC_REQUIRE(ShutdownSpec::infinity().kill_timeout() == std::chrono::milliseconds::max());
  Board b;
  CHECK(worker("a", b).shutdown_spec().kind == ShutdownSpec::Kind::Timeout);
  CHECK(worker("a", b).shutdown_spec().timeout == 5000ms);
  SupervisorSpec sub(SupervisorFlags{}, 1);
  CHECK(ChildSpec::supervisor("s", sub).shutdown_spec().kind == ShutdownSpec::Kind::Infinity);
}

// A worker that owns a managed `sleep` from its on_start, and records
// whether its predecessor's process still existed (running or unreaped)
// when it started.
struct TreeOwner : Actor<int> {
  Board* board;
  const std::string_view* env;
  TreeOwner(Board* b, const std::string_view* e) : board(b), env(e) {}
  void on_start(Context<int>& ctx) override {
    const int previous = board->last_pid.load(std::memory_order_acquire);
    const unsigned long long previous_start = board->last_start.load(std::memory_order_acquire);
    test::ProcEntry e;
    if (previous > 0 && test::read_proc(previous, e) && (previous_start == 0 || e.start_time == previous_start)) {
      board->overlaps.fetch_add(1, std::memory_order_acq_rel);
      board->overlap_state.store(e.state, std::memory_order_release);
    }
    osl::SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.env = std::span<const std::string_view>(env, 1);
    auto r = ctx.spawn_process(op);
    if (!r) {
      ctx.fail(r.error());
      return;
    }
    // Our unreaped child: the number is still the sleep's.
    const unsigned long long start = test::start_time_of(r->pid);
    board->last_start.store(start, std::memory_order_release);
    board->last_pid.store(r->pid, std::memory_order_release);
    board->pids.push({r->pid, start});
    board->starts[Board::at("o")].fetch_add(1, std::memory_order_acq_rel);
    const ActorId id = ctx.self().id;
    board->refs[Board::at("o")].store((std::uint64_t{id.slot} << 32) | id.gen, std::memory_order_release);
  }
  void on_message(Context<int>& ctx, int& m) override {
    if (m == kCrash) ctx.fail(Error::make(Errc::Failed, "told to crash"));
  }
};

TEST_CASE("a restarted child's process tree is gone before its replacement starts, for each shutdown spec") {
  const std::string marker = "AIRSSYS_SUPERVISOR_TEST=" + std::to_string(test::self_pid());
  test::NothingLeftCensus census(marker);
  const std::string_view env[] = {marker};
  const ShutdownSpec specs[] = {ShutdownSpec::brutal_kill(), ShutdownSpec::after(100ms), ShutdownSpec::infinity()};
  for (const ShutdownSpec sd : specs) {
    INFO("shutdown kind " << static_cast<int>(sd.kind));
    Board b;
    System sys(small_config());
    SupervisorSpec spec(SupervisorFlags{.intensity = 10}, 1);
    REQUIRE(spec.add(ChildSpec::worker<TreeOwner>("o", &b, env).shutdown(sd)).ok());
    ShutdownOnExit down{sys};
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    for (int crash = 1; crash <= 3; ++crash) {
      const int before = b.started("o");
      REQUIRE(sys.send(b.ref("o"), static_cast<int>(kCrash)).ok());
      REQUIRE(restarted(b, "o", before));
    }
    INFO("a predecessor's process was in state " << b.overlap_state.load());
    CHECK(b.overlaps.load() == 0);
    REQUIRE(sup->stop().ok());
    const auto pids = b.pids.get();
    CHECK(pids.size() == 4);
    for (const auto& [pid, start] : pids) {
      CHECK_FALSE(test::same_process_exists(pid, start));
      census.pids.push_back(pid, start);
    }
  }
}

TEST_CASE("a crash and restart cycle under a supervisor allocates nothing") {
  Board b;
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::RestForOne, .intensity = 1'000'000}, 4);
  REQUIRE(spec.add(worker("a", b)).ok());
  REQUIRE(spec.add(worker("w", b)).ok());
  REQUIRE(spec.add(worker("c", b)).ok());
  ShutdownOnExit down{sys};  // before the specs go, also after a failed REQUIRE
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  constexpr int kCycles = 1000 / test::kScale;
  int failures = 0;
  const std::uint64_t before = test::allocations();
  for (int k = 0; k < kCycles && failures == 0; ++k) {
    const int started = b.started("c");
    if (!sys.send(b.ref("w"), static_cast<int>(kCrash))) ++failures;
    if (!test::wait_for([&] { return b.started("c") != started; })) ++failures;
  }
  const std::uint64_t after = test::allocations();
  CHECK(failures == 0);
  CHECK(b.started("w") == kCycles + 1);
  INFO("malloc counted too: " << test::counts_malloc());
  CHECK(after - before == 0);
  // ... with every restart recorded into the System's monitoring meanwhile.
  REQUIRE(sys.monitoring().capacity() > 0);
  CHECK(restarts_of(sys, "w") == static_cast<std::uint64_t>(kCycles));
  REQUIRE(sup->stop().ok());
}

// A clock that counts its reads (and moves one nanosecond per read).
class CountingClock final : public SupervisorClock {
 public:
  std::int64_t now_ns() noexcept override { return 1'000'000'000 + reads_.fetch_add(1, std::memory_order_relaxed); }
  bool advances_by_itself() const noexcept override { return false; }
  std::int64_t reads() const noexcept { return reads_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> reads_{0};
};

TEST_CASE("a plain restart reads the supervisor's clock once, and not at all when the intensity allows none") {
  CountingClock clock;
  Board b;
  System sys(small_config());
  SECTION("OneForOne without backoff or health checks: the intensity window's one read per restart") {
    SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForOne, .intensity = 100, .clock = &clock}, 2);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("w", b)).ok());
    ShutdownOnExit down{sys};
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    const std::int64_t before = clock.reads();
    for (int crash = 0; crash < 5; ++crash) {
      const int started = b.started("w");
      REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
      REQUIRE(restarted(b, "w", started));
    }
    REQUIRE(sup->count_children().ok());  // the last Started is handled
    CHECK(clock.reads() - before == 5);
    REQUIRE(sup->stop().ok());
  }
  SECTION("intensity 0: the crash shuts the supervisor down without a read") {
    SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForOne, .intensity = 0, .clock = &clock}, 2);
    REQUIRE(spec.add(worker("w", b)).ok());
    ShutdownOnExit down{sys};
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    const std::int64_t before = clock.reads();
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
    CHECK(clock.reads() - before == 0);
  }
}

namespace {

// A child whose on_error restarts it in place (the supervisor never hears
// of that failure); it counts its starts and publishes its id.
struct InPlaceRestarter : Actor<int> {
  std::atomic<int>* starts;
  std::atomic<std::uint64_t>* id;
  InPlaceRestarter(std::atomic<int>* s, std::atomic<std::uint64_t>* i) : starts(s), id(i) {}
  void on_start(Context<int>& ctx) override {
    id->store((std::uint64_t{ctx.self().id.slot} << 32) | ctx.self().id.gen, std::memory_order_release);
    starts->fetch_add(1, std::memory_order_acq_rel);
  }
  void on_message(Context<int>& ctx, int&) override { ctx.fail(Error::make(Errc::Failed, "told to crash")); }
  ErrorAction on_error(Context<int>&, const Error&) override { return ErrorAction::Restart; }
};

std::vector<MonitorEvent> all_events(const System& sys) {
  EventCursor cursor;
  std::vector<MonitorEvent> buf(4096);
  std::vector<MonitorEvent> out;
  for (;;) {
    const EventRead r = sys.monitoring().read(cursor, buf);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.events));
    if (r.events == 0) return out;
  }
}

std::size_t count_of(const std::vector<MonitorEvent>& events, MonitorEvent::Kind kind, ActorId actor) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const MonitorEvent& e) {
    return e.kind == kind && e.actor == actor;
  }));
}

}  // namespace

TEST_CASE("a supervised child's failure is recorded once: by its supervisor when the child stops, by the runtime when on_error restarts it in place") {
  Board b;
  System sys(small_config());
  std::atomic<int> r_starts{0};
  std::atomic<std::uint64_t> r_id{0};
  SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForOne, .intensity = 10}, 2);
  REQUIRE(spec.add(worker("w", b)).ok());
  REQUIRE(spec.add(ChildSpec::worker_with<InPlaceRestarter>("r", [s = &r_starts, i = &r_id] {
                     return InPlaceRestarter(s, i);
                   })).ok());
  ShutdownOnExit down{sys};
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  const ActorRef<int> first = b.ref("w");
  const int before = b.started("w");
  REQUIRE(sys.send(first, static_cast<int>(kCrash)).ok());
  REQUIRE(restarted(b, "w", before));
  REQUIRE(test::wait_for([&] { return r_starts.load() == 1; }));
  const std::uint64_t rv = r_id.load(std::memory_order_acquire);
  const ActorRef<int> r{ActorId{static_cast<std::uint32_t>(rv >> 32), static_cast<std::uint32_t>(rv)}};
  REQUIRE(sys.send(r, 1).ok());
  REQUIRE(test::wait_for([&] { return r_starts.load() == 2; }));
  REQUIRE(sup->count_children().ok());  // the supervisor has handled w's Started

  const auto events = all_events(sys);
  using K = MonitorEvent::Kind;
  // w stopped: its supervisor's event alone, naming it.
  REQUIRE(count_of(events, K::ActorFailed, first.id) == 1);
  const auto w_failed = std::find_if(events.begin(), events.end(), [&](const MonitorEvent& e) {
    return e.kind == K::ActorFailed && e.actor == first.id;
  });
  CHECK(w_failed->name_view() == "w");
  CHECK(w_failed->error == Errc::Failed);
  CHECK(count_of(events, K::ActorRestarted, b.ref("w").id) == 1);
  // r restarted in place, unseen by the supervisor: the runtime's events.
  CHECK(count_of(events, K::ActorFailed, r.id) == 1);
  CHECK(count_of(events, K::ActorRestarted, r.id) == 1);
  const MonitoringSnapshot snap = sys.monitoring_snapshot();
  CHECK(snap.events[static_cast<std::size_t>(K::ActorFailed)] == 2);
  CHECK(snap.restarts == 2);
  CHECK(restarts_of(sys, "w") == 1);
  REQUIRE(sup->stop().ok());
}

TEST_CASE("a supervisor records its children's starts, failures, restarts and its strategy into the System's monitoring") {
  Board b;
  System sys(small_config());
  SECTION("a crash and restart: failed, strategy applied, restarted (the new instance), counted per child") {
    SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForOne, .intensity = 10}, 2);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("w", b)).ok());
    ShutdownOnExit down{sys};  // before the spec goes, also after a failed REQUIRE
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    const ActorRef<int> first = b.ref("w");
    for (int crash = 0; crash < 2; ++crash) {
      const int before = b.started("w");
      REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
      REQUIRE(restarted(b, "w", before));
    }
    REQUIRE(sup->count_children().ok());  // the supervisor has handled the last Started
    const auto events = child_events(sys, {"a", "w"});
    CHECK(kinds_and_names(events) ==
          Events{"actor_started a", "actor_started w",                      //
                 "actor_failed w", "strategy_applied w", "actor_restarted w",  //
                 "actor_failed w", "strategy_applied w", "actor_restarted w"});
    REQUIRE(events.size() == 8);
    CHECK(events[2].actor == first.id);       // the instance that crashed
    CHECK(events[3].actor == sup->ref.id);    // the supervisor applied its strategy
    CHECK(events[3].count == 1);              // OneForOne: one child restarted
    CHECK(events[7].actor == b.ref("w").id);  // the instance that replaced it
    for (std::size_t k = 1; k < events.size(); ++k) CHECK(events[k].time_ns >= events[k - 1].time_ns);
    CHECK(restarts_of(sys, "w") == 2);
    CHECK(restarts_of(sys, "a") == 0);
    REQUIRE(sup->stop().ok());
    CHECK(kinds_and_names(child_events(sys, {"a", "w"})).back() == "actor_stopped a");  // reverse order
  }
  SECTION("intensity exceeded: the supervisor names the child whose restart exceeded it, then stops the rest") {
    ManualClock clock;
    SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::RestForOne, .intensity = 0, .clock = &clock}, 2);
    REQUIRE(spec.add(worker("a", b)).ok());
    REQUIRE(spec.add(worker("w", b)).ok());
    ShutdownOnExit down{sys};
    auto sup = start_supervisor(sys, spec);
    REQUIRE(sup.ok());
    REQUIRE(sys.send(b.ref("w"), static_cast<int>(kCrash)).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(sup->ref); }));
    const auto events = child_events(sys, {"a", "w"});
    CHECK(kinds_and_names(events) == Events{"actor_started a", "actor_started w", "actor_failed w",
                                            "intensity_exceeded w", "actor_stopped a"});
    REQUIRE(events.size() == 5);
    CHECK(events[3].actor == sup->ref.id);
    CHECK(events[3].count == 1);  // the one restart it was not allowed
    CHECK(restarts_of(sys, "w") == 0);
  }
}

namespace {

enum LateCommand : int { kLateReport = 1, kLateCrash = 2 };

// A child that defers its Started and reports it when `report` is set at
// its start (by a message to itself), or never. Each incarnation publishes
// its id and counts its start; kLateCrash fails it with Timeout.
struct LateStarter : Actor<int> {
  std::atomic<bool>* report;
  std::atomic<std::uint64_t>* id;
  std::atomic<int>* starts;
  LateStarter(std::atomic<bool>* r, std::atomic<std::uint64_t>* i, std::atomic<int>* s) : report(r), id(i), starts(s) {}
  void on_start(Context<int>& ctx) override {
    ctx.defer_started();
    const ActorId me = ctx.self().id;
    id->store((std::uint64_t{me.slot} << 32) | me.gen, std::memory_order_release);
    starts->fetch_add(1, std::memory_order_acq_rel);
    if (report->load(std::memory_order_acquire)) (void)ctx.send(ctx.self(), static_cast<int>(kLateReport));
  }
  void on_message(Context<int>& ctx, int& m) override {
    if (m == kLateReport) (void)ctx.report_started();
    if (m == kLateCrash) ctx.fail(Error::make(Errc::Timeout, "the late starter crashed"));
  }
};

}  // namespace

TEST_CASE("a replacement spawned without waiting for its Started that defers it: a crash before it reports is a failed start, after it a crash") {
  std::atomic<bool> report{true};
  std::atomic<std::uint64_t> id{0};
  std::atomic<int> starts{0};
  System sys(small_config());
  SupervisorSpec spec(SupervisorFlags{.strategy = Strategy::OneForOne, .intensity = 10}, 1);
  REQUIRE(spec.add(ChildSpec::worker_with<LateStarter>("late", [&] { return LateStarter(&report, &id, &starts); })).ok());
  ShutdownOnExit down{sys};
  auto current = [&] {
    const std::uint64_t v = id.load(std::memory_order_acquire);
    return ActorRef<int>{ActorId{static_cast<std::uint32_t>(v >> 32), static_cast<std::uint32_t>(v)}};
  };
  // The first instance is awaited (the supervisor's start) and reports.
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());
  const ActorRef<int> first = current();
  REQUIRE(sys.has_started(first.id));

  // Its crash: the replacement is spawned without waiting for its Started
  // (a OneForOne worker's own restart), and this one never reports.
  report.store(false, std::memory_order_release);
  REQUIRE(sys.send(first, static_cast<int>(kLateCrash)).ok());
  REQUIRE(test::wait_for([&] { return starts.load(std::memory_order_acquire) == 2; }));
  const ActorRef<int> second = current();
  REQUIRE(sup->count_children().ok());  // the supervisor has handled the restart
  CHECK_FALSE(sys.has_started(second.id));

  // It crashes before reporting: a failed start, with its own error, and
  // tried again. The next one reports.
  report.store(true, std::memory_order_release);
  REQUIRE(sys.send(second, static_cast<int>(kLateCrash)).ok());
  REQUIRE(test::wait_for([&] { return starts.load(std::memory_order_acquire) == 3; }));
  const ActorRef<int> third = current();
  REQUIRE(test::wait_for([&] { return sys.has_started(third.id); }));

  // It crashes after reporting: a crash.
  REQUIRE(sys.send(third, static_cast<int>(kLateCrash)).ok());
  REQUIRE(test::wait_for([&] { return starts.load(std::memory_order_acquire) == 4; }));
  REQUIRE(sup->count_children().ok());

  const auto events = all_events(sys);
  using K = MonitorEvent::Kind;
  auto failure_of = [&](ActorId who) {
    Errc code = Errc::Ok;
    int n = 0;
    for (const MonitorEvent& e : events)
      if (e.kind == K::ActorFailed && e.actor == who) {
        code = e.error;
        ++n;
      }
    return std::make_pair(n, code);
  };
  CHECK(failure_of(first.id) == std::make_pair(1, Errc::Failed));    // a crash of a started child
  CHECK(failure_of(second.id) == std::make_pair(1, Errc::Timeout));  // a failed start: its start error
  CHECK(failure_of(third.id) == std::make_pair(1, Errc::Failed));    // reported, then crashed: a crash
  Error kept;
  REQUIRE(sys.start_error(second.id, kept));
  CHECK(kept.code() == Errc::Timeout);
  CHECK(std::string_view(kept.message()).find("the late starter crashed") != std::string_view::npos);
  CHECK_FALSE(sys.start_error(third.id, kept));  // a started child's failure is not a start error
  CHECK(restarts_of(sys, "late") == 3);
  // No Started of a quiet replacement reaches the supervisor: one
  // ActorStarted (the first instance's), three ActorRestarted.
  CHECK(std::count_if(events.begin(), events.end(), [](const MonitorEvent& e) { return e.kind == K::ActorStarted; }) == 1);
  CHECK(std::count_if(events.begin(), events.end(), [](const MonitorEvent& e) { return e.kind == K::ActorRestarted; }) == 3);
  REQUIRE(sup->stop().ok());
}
