// Monitoring: the event ring under concurrent producers and a concurrent
// reader (whole events, exact missed counts), wrap-around, the counters and
// the per-child table, the alert hook, the Prometheus text (parsed back),
// no allocation in record(), and the osl middleware adapter against a real
// ProcessExecutor with real process trees (the process table is checked
// after each).

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/alloc_counter.hpp"
#include "support/errc_printer.hpp"
#include "support/fd.hpp"
#include "support/osl_spawn.hpp"
#include "support/proc_table.hpp"
#include "support/process_guard.hpp"
#include "support/wait_for.hpp"

#include <signal.h>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace airssys;
using Kind = MonitorEvent::Kind;

namespace {

// An event whose every field follows from (producer, i), so that a reader
// can tell a whole event from one mixed out of two.
MonitorEvent stamped(std::uint32_t producer, std::uint32_t i) {
  MonitorEvent e = MonitorEvent::make(Kind::ActorRestarted, ActorId{producer, i}, {}, i);
  const std::uint64_t sig = (std::uint64_t{producer} << 32) | i;
  e.pid = static_cast<std::int32_t>(i * 7 + producer);
  e.pgid = static_cast<std::int32_t>(i ^ 0x5a5a5a5au);
  e.os_error = static_cast<std::int32_t>(producer * 1000 + i % 1000);
  e.time_ns = static_cast<std::int64_t>(sig * 31 + 1);
  char name[MonitorEvent::kNameSize];
  std::snprintf(name, sizeof name, "p%u-%u-%llx", producer, i, static_cast<unsigned long long>(sig * 2654435761u));
  e.set_name(name);
  e.kind = static_cast<Kind>(i % 6);  // actor kinds only: no alerts, no per-child rows
  return e;
}

bool whole(const MonitorEvent& e) {
  const MonitorEvent want = stamped(e.actor.slot, e.actor.gen);
  return e.count == want.count && e.pid == want.pid && e.pgid == want.pgid && e.os_error == want.os_error &&
         e.time_ns == want.time_ns && e.kind == want.kind && e.name_view() == want.name_view();
}

// Runs `record` on a thread of its own bound to lane `lane` of `m`, and
// says whether the binding succeeded (asserted by the caller, on the test
// thread: Catch's assertions are not for other threads).
template <class F>
bool on_bound_lane(Monitoring& m, std::size_t lane, F record) {
  bool bound = false;
  std::thread t([&] {
    bound = m.bind_lane(lane).ok();
    if (bound) record();
  });
  t.join();
  return bound;
}

// Reads until the cursor reaches `until`, checking each event.
struct Drain {
  EventCursor cursor;
  std::vector<MonitorEvent> got;
  std::uint64_t missed = 0;
  bool torn = false;
  bool out_of_order = false;
  std::uint64_t last_sequence = 0;
  bool any = false;
  std::map<std::uint32_t, std::uint32_t> last_of_producer;

  void read_once(const Monitoring& m) {
    MonitorEvent buf[16];
    const EventRead r = m.read(cursor, buf);
    missed += r.missed;
    for (std::size_t k = 0; k < r.events; ++k) {
      const MonitorEvent& e = buf[k];
      if (!whole(e)) torn = true;
      if (any && e.sequence <= last_sequence) out_of_order = true;
      auto it = last_of_producer.find(e.actor.slot);
      if (it != last_of_producer.end() && e.actor.gen <= it->second) out_of_order = true;
      last_of_producer[e.actor.slot] = e.actor.gen;
      last_sequence = e.sequence;
      any = true;
      got.push_back(e);
    }
  }
};

// Runs `producers` threads, each calling produce(p) once all have started,
// beside a reader that reads while any of them runs; then reads the rest
// (`total` events in all were recorded) and returns what the reader saw.
template <class Produce>
Drain produce_and_read(Monitoring& m, std::uint32_t producers, std::uint64_t total, Produce produce) {
  std::atomic<bool> go{false};
  std::atomic<std::uint32_t> done{0};
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      produce(p);
      done.fetch_add(1);
    });
  Drain d;
  std::thread reader([&] {
    while (!go.load()) std::this_thread::yield();
    while (done.load() < producers) d.read_once(m);
  });
  go.store(true);
  for (auto& t : threads) t.join();
  reader.join();
  // Every producer has returned: the rest is whole and readable now.
  REQUIRE(m.recorded() == total);
  while (d.cursor.next() < total) d.read_once(m);
  d.read_once(m);  // nothing more
  return d;
}

// What a reader that ran beside `total` recordings must have seen: every
// event whole and in order, and missed == exactly the sequences not read.
void check_read_exactly(const Drain& d, std::uint64_t total) {
  CHECK_FALSE(d.torn);
  CHECK_FALSE(d.out_of_order);
  CHECK(d.got.size() + d.missed == total);
  std::uint64_t gaps = 0, expect = 0;
  for (const auto& e : d.got) {
    gaps += e.sequence - expect;
    expect = e.sequence + 1;
  }
  gaps += total - expect;
  CHECK(gaps == d.missed);
}

// The kind counters of `producers` x `each` events stamped by stamped():
// they count what was recorded, not what the ring kept.
void check_kind_counts(const MonitoringSnapshot& s, std::uint32_t producers, std::uint32_t each) {
  CHECK(s.recorded == std::uint64_t{producers} * each);
  std::uint64_t by_kind[MonitorEvent::kKinds] = {};
  for (std::uint32_t i = 0; i < each; ++i) by_kind[i % 6] += producers;
  for (std::size_t k = 0; k < MonitorEvent::kKinds; ++k) {
    INFO("kind " << to_string(static_cast<Kind>(k)));
    CHECK(s.events[k] == by_kind[k]);
  }
}

}  // namespace

TEST_CASE("events recorded by concurrent producers are read whole by a concurrent reader, and missed counts are exact") {
  std::size_t capacity = 0;
  SECTION("a ring that wraps many times") { capacity = 64; }
  SECTION("a ring of one slot") { capacity = 1; }
  SECTION("a ring large enough for every event") { capacity = 1 << 16; }
  constexpr std::uint32_t kProducers = 3;
  constexpr std::uint32_t kEach = 20'000;
  MonitoringConfig cfg;
  cfg.events = capacity;
  cfg.child_names = 0;
  Monitoring m(cfg);
  REQUIRE(m.capacity() == capacity);

  const std::uint64_t total = std::uint64_t{kProducers} * kEach;
  const Drain d = produce_and_read(m, kProducers, total, [&](std::uint32_t p) {
    for (std::uint32_t i = 0; i < kEach; ++i) m.record(stamped(p, i));
  });

  check_read_exactly(d, total);
  CHECK(d.cursor.next() == total);
  CHECK(d.cursor.missed() == d.missed);
  if (capacity >= total) CHECK(d.missed == 0);
  const MonitoringSnapshot s = m.snapshot();
  check_kind_counts(s, kProducers, kEach);
}

TEST_CASE("threads on their own counter lanes and threads on the shared lane, recording events and batches, are read whole and counted exactly") {
  // Producers bound to lanes (plain-store counters, and a ring of their own
  // that they write without a claim) and producers on the shared lane
  // (atomic adds, slot claims); each records single events and batches of
  // three (one sequence reservation each), while a reader reads. The
  // reader must see every event whole, each sequence once and in order,
  // and count exactly the sequences it did not read as missed.
  constexpr std::uint32_t kProducers = 4;
  constexpr std::uint32_t kEach = 12'000;  // a multiple of 4: 1 single + 1 batch of 3 per round
  std::size_t capacity = 64;
  std::uint32_t bound = 2;
  SECTION("two bound, two shared, a ring that wraps many times") {}
  SECTION("two bound, two shared, rings of one slot") { capacity = 1; }
  SECTION("two bound, two shared, rings large enough for every event") { capacity = 1 << 16; }
  SECTION("three bound, one shared") { bound = 3; }
  SECTION("all bound") { bound = 4; }
  SECTION("all bound, rings of two slots") {
    bound = 4;
    capacity = 2;
  }
  MonitoringConfig cfg;
  cfg.events = capacity;
  cfg.child_names = 4;
  cfg.lanes = bound;
  Monitoring m(cfg);
  std::atomic<int> bind_failures{0};
  const std::uint64_t total = std::uint64_t{kProducers} * kEach;
  const Drain d = produce_and_read(m, kProducers, total, [&](std::uint32_t p) {
    // Bound once every producer runs: the binding is the producing thread's.
    if (p < bound && !m.bind_lane(p)) bind_failures.fetch_add(1);
    for (std::uint32_t i = 0; i < kEach; i += 4) {
      m.record(stamped(p, i));
      const MonitorEvent batch[3] = {stamped(p, i + 1), stamped(p, i + 2), stamped(p, i + 3)};
      m.record(std::span<const MonitorEvent>(batch));
    }
  });
  REQUIRE(bind_failures.load() == 0);
  check_read_exactly(d, total);
  if (capacity >= total) CHECK(d.missed == 0);
  const MonitoringSnapshot s = m.snapshot();
  check_kind_counts(s, kProducers, kEach);
  // Every restart has a name of its own: 4 rows, the rest untracked.
  ChildRestarts rows[4];
  const std::size_t n = m.child_restarts(rows);
  CHECK(n == 4);
  std::uint64_t in_rows = 0;
  for (std::size_t i = 0; i < n; ++i) in_rows += rows[i].restarts;
  CHECK(in_rows + s.restarts_untracked == s.restarts);
}

TEST_CASE("a batch gets consecutive sequences in its order, and one child's restarts from a bound and an unbound thread add up") {
  MonitoringConfig cfg;
  cfg.lanes = 1;
  Monitoring m(cfg);
  m.record(Kind::ActorStarted, ActorId{1, 1}, "x");
  const MonitorEvent batch[3] = {MonitorEvent::make(Kind::ActorFailed, ActorId{1, 1}, "db"),
                                 MonitorEvent::make(Kind::StrategyApplied, ActorId{9, 1}, "db", 1),
                                 MonitorEvent::make(Kind::ActorRestarted, ActorId{1, 2}, "db")};
  m.record(std::span<const MonitorEvent>(batch));
  m.record(std::span<const MonitorEvent>());  // nothing
  REQUIRE(on_bound_lane(m, 0, [&] {
    for (int i = 0; i < 5; ++i) m.record(Kind::ActorRestarted, {}, "db");
    m.record(Kind::ActorRestarted, {}, "");
  }));
  REQUIRE(m.recorded() == 10);
  EventCursor cursor;
  MonitorEvent out[16];
  const EventRead r = m.read(cursor, out);
  REQUIRE(r.events == 10);
  CHECK(r.missed == 0);
  for (std::size_t i = 0; i < r.events; ++i) CHECK(out[i].sequence == i);
  CHECK(out[1].kind == Kind::ActorFailed);
  CHECK(out[2].kind == Kind::StrategyApplied);
  CHECK(out[3].kind == Kind::ActorRestarted);
  CHECK(out[3].actor == ActorId{1, 2});
  ChildRestarts rows[4];
  REQUIRE(m.child_restarts(rows) == 1);
  CHECK(std::string_view(rows[0].name) == "db");
  CHECK(rows[0].restarts == 6);  // 1 from this thread (shared lane), 5 from the bound one
  const MonitoringSnapshot s = m.snapshot();
  CHECK(s.restarts == 7);
  CHECK(s.restarts_untracked == 1);
  CHECK(s.events[static_cast<std::size_t>(Kind::ActorFailed)] == 1);
  char text[8192];
  auto w = m.write_prometheus(text);
  REQUIRE(w.ok());
  CHECK(std::string_view(text, *w).find("airssys_child_restarts_total{child=\"db\"} 6\n") != std::string_view::npos);
}

TEST_CASE("binding a counter lane the Monitoring does not have is refused, naming the lane") {
  MonitoringConfig cfg;
  cfg.lanes = 2;
  Monitoring m(cfg);
  auto r = m.bind_lane(2);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::InvalidArgument);
  CHECK(test::names(r.error(), "counter lane 2"));
  Monitoring none;
  CHECK_FALSE(none.bind_lane(0).ok());
  cfg.lanes = 5000;
  auto v = Monitoring::validate(cfg);
  REQUIRE_FALSE(v.ok());
  CHECK(test::names(v.error(), "MonitoringConfig::lanes is 5000"));
}

TEST_CASE("a full ring overwrites the oldest events, and a reader learns how many it missed") {
  MonitoringConfig cfg;
  cfg.events = 5;  // rounded up to 8
  Monitoring m(cfg);
  REQUIRE(m.capacity() == 8);
  for (std::uint32_t i = 0; i < 20; ++i) m.record(stamped(1, i));
  EventCursor c;
  MonitorEvent out[32];
  EventRead r = m.read(c, out);
  CHECK(r.missed == 12);
  REQUIRE(r.events == 8);
  for (std::size_t k = 0; k < r.events; ++k) {
    CHECK(whole(out[k]));
    CHECK(out[k].sequence == 12 + k);
    CHECK(out[k].actor.gen == 12 + k);
  }
  CHECK(c.next() == 20);
  CHECK(c.missed() == 12);
  r = m.read(c, out);
  CHECK(r.events == 0);
  CHECK(r.missed == 0);

  SECTION("reading in pieces smaller than what is there") {
    for (std::uint32_t i = 20; i < 26; ++i) m.record(stamped(1, i));
    MonitorEvent two[2];
    std::vector<std::uint64_t> seen;
    for (int k = 0; k < 3; ++k) {
      const EventRead p = m.read(c, two);
      CHECK(p.missed == 0);
      REQUIRE(p.events == 2);
      seen.push_back(two[0].sequence);
      seen.push_back(two[1].sequence);
    }
    CHECK(seen == std::vector<std::uint64_t>{20, 21, 22, 23, 24, 25});
  }
  SECTION("a second reader has a place of its own") {
    EventCursor other;
    const EventRead p = m.read(other, std::span<MonitorEvent>(out, 3));
    CHECK(p.missed == 12);
    REQUIRE(p.events == 3);
    CHECK(out[0].sequence == 12);
    CHECK(c.next() == 20);
  }
  SECTION("events recorded with no time get the monotonic clock's") {
    MonitorEvent e = MonitorEvent::make(Kind::ActorStarted, ActorId{3, 4}, "worker");
    REQUIRE(e.time_ns == 0);
    m.record(e);
    const EventRead p = m.read(c, out);
    REQUIRE(p.events == 1);
    CHECK(out[0].time_ns > 0);
    CHECK(out[0].sequence == 20);
    CHECK(out[0].name_view() == "worker");
    CHECK(out[0].actor == ActorId{3, 4});
  }
}

TEST_CASE("with bound lanes too, a reader can read exactly the last events recorded, in order, from every lane") {
  // The shared ring and a bound lane's ring of 8 slots each: events 0-2
  // (this thread), 3-22 (a bound thread), 23-24 (this thread). The last 8
  // are 17-22 from the bound lane's ring and 23-24 from the shared one;
  // the bound ring still holds 15 and 16, which are older than that.
  MonitoringConfig cfg;
  cfg.events = 8;
  cfg.lanes = 1;
  Monitoring m(cfg);
  for (std::uint32_t i = 0; i < 3; ++i) m.record(stamped(1, i));
  REQUIRE(on_bound_lane(m, 0, [&] {
    for (std::uint32_t i = 0; i < 20; ++i) m.record(stamped(2, i));
  }));
  for (std::uint32_t i = 3; i < 5; ++i) m.record(stamped(1, i));
  REQUIRE(m.recorded() == 25);
  EventCursor c;
  MonitorEvent out[32];
  const EventRead r = m.read(c, out);
  CHECK(r.missed == 17);
  REQUIRE(r.events == 8);
  for (std::size_t k = 0; k < r.events; ++k) {
    INFO("event " << k);
    CHECK(whole(out[k]));
    CHECK(out[k].sequence == 17 + k);
    CHECK(out[k].actor.slot == (k < 6 ? 2u : 1u));
    CHECK(out[k].actor.gen == (k < 6 ? 14 + k : k - 3));
  }
  SECTION("a reader that was ahead reads on from its place") {
    EventCursor early;
    MonitorEvent few[4];
    (void)m.read(early, few);  // 17 missed, 17-20 read
    REQUIRE(early.next() == 21);
    const EventRead rest = m.read(early, out);
    CHECK(rest.missed == 0);
    REQUIRE(rest.events == 4);
    CHECK(out[0].sequence == 21);
    CHECK(out[3].sequence == 24);
  }
}

TEST_CASE("names longer than an event holds are cut, never overrun") {
  const std::string longer(100, 'x');
  const MonitorEvent e = MonitorEvent::make(Kind::ActorStarted, {}, longer);
  CHECK(e.name_view() == std::string(MonitorEvent::kNameSize - 1, 'x'));
  CHECK(e.name[MonitorEvent::kNameSize - 1] == '\0');
}

TEST_CASE("a bad MonitoringConfig is refused naming the field") {
  MonitoringConfig cfg;
  cfg.events = 0;
  auto r = Monitoring::validate(cfg);
  REQUIRE(r.code() == Errc::InvalidArgument);
  CHECK(test::names(r.error(), "MonitoringConfig::events is 0"));
  cfg.events = 8;
  cfg.child_names = 100'000;
  r = Monitoring::validate(cfg);
  REQUIRE(r.code() == Errc::InvalidArgument);
  CHECK(test::names(r.error(), "MonitoringConfig::child_names is 100000"));
  cfg.child_names = 8;
  CHECK(Monitoring::validate(cfg).ok());
}

TEST_CASE("restarts are counted per child name, and names beyond the table's capacity count as untracked") {
  MonitoringConfig cfg;
  cfg.child_names = 2;
  Monitoring m(cfg);
  for (const char* name : {"db", "web", "db", "cache", "db", ""}) m.record(Kind::ActorRestarted, ActorId{1, 1}, name);
  m.record(Kind::ActorStarted, ActorId{1, 1}, "other");  // not a restart
  ChildRestarts rows[4];
  const std::size_t n = m.child_restarts(rows);
  REQUIRE(n == 2);
  std::map<std::string, std::uint64_t> by_name;
  for (std::size_t i = 0; i < n; ++i) by_name[rows[i].name] = rows[i].restarts;
  CHECK(by_name == std::map<std::string, std::uint64_t>{{"db", 3}, {"web", 1}});
  const MonitoringSnapshot s = m.snapshot();
  CHECK(s.restarts == 6);
  CHECK(s.restarts_untracked == 2);  // "cache" (table full) and the unnamed one
}

TEST_CASE("bound lanes count restarts per name exactly across alternating names, prefixes, bytes after the name, and a full table") {
  // A bound lane looks at the row of its last restart first: a name that
  // is a prefix of it, or equal up to its NUL, must still land right.
  MonitoringConfig cfg;
  cfg.lanes = 2;
  cfg.child_names = 4;
  Monitoring m(cfg);
  auto sequence = [&] {
    for (const char* name : {"db", "db", "web", "db2", "db", "d", ""}) m.record(Kind::ActorRestarted, {}, name);
    MonitorEvent tail = MonitorEvent::make(Kind::ActorRestarted, {}, "db");
    tail.name[3] = 'x';  // bytes after the name's NUL: still "db"
    m.record(tail);
    for (const char* name : {"cache", "db", "web"}) m.record(Kind::ActorRestarted, {}, name);
  };
  // One lane after the other: the first claims the rows in this order.
  REQUIRE(on_bound_lane(m, 0, sequence));
  REQUIRE(on_bound_lane(m, 1, sequence));
  ChildRestarts rows[8];
  const std::size_t n = m.child_restarts(rows);
  REQUIRE(n == 4);
  std::map<std::string, std::uint64_t> by_name;
  for (std::size_t i = 0; i < n; ++i) by_name[rows[i].name] = rows[i].restarts;
  CHECK(by_name == std::map<std::string, std::uint64_t>{{"db", 10}, {"web", 4}, {"db2", 2}, {"d", 2}});
  const MonitoringSnapshot s = m.snapshot();
  CHECK(s.restarts == 22);
  CHECK(s.restarts_untracked == 4);  // "" and "cache" (table full), from each lane
}

TEST_CASE("restarts of the same names from concurrent threads make one row per name and exact counts") {
  MonitoringConfig cfg;
  cfg.child_names = 8;
  Monitoring m(cfg);
  constexpr int kEach = 5'000;
  const char* names[] = {"alpha", "beta", "gamma"};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) m.record(Kind::ActorRestarted, {}, names[i % 3]);
    });
  for (auto& t : threads) t.join();
  ChildRestarts rows[8];
  const std::size_t n = m.child_restarts(rows);
  REQUIRE(n == 3);
  std::uint64_t sum = 0;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < n; ++i) {
    seen.insert(rows[i].name);
    sum += rows[i].restarts;
  }
  CHECK(seen == std::set<std::string>{"alpha", "beta", "gamma"});
  CHECK(sum == 3u * kEach);
  CHECK(m.snapshot().restarts_untracked == 0);
}

namespace {

struct Alerts {
  std::mutex mu;
  std::vector<MonitorEvent> got;
  static void hook(const MonitorEvent& e, void* cookie) noexcept {
    auto* self = static_cast<Alerts*>(cookie);
    std::lock_guard<std::mutex> lock(self->mu);
    self->got.push_back(e);
  }
};

}  // namespace

TEST_CASE("the alert hook is called, with its cookie, exactly for the events that need a human") {
  Alerts alerts;
  MonitoringConfig cfg;
  Monitoring m(cfg);
  SECTION("set in the config") {
    MonitoringConfig with;
    with.alert = &Alerts::hook;
    with.alert_cookie = &alerts;
    Monitoring configured(with);
    configured.record(Kind::TeardownFailed, {}, "actor#3");
    REQUIRE(alerts.got.size() == 1);
    CHECK(alerts.got[0].kind == Kind::TeardownFailed);
    CHECK(configured.set_alert_hook(&Alerts::hook, &alerts).code() == Errc::AlreadyExists);
    return;
  }
  REQUIRE(m.set_alert_hook(&Alerts::hook, &alerts).ok());
  CHECK(m.set_alert_hook(&Alerts::hook, nullptr).code() == Errc::AlreadyExists);
  for (std::size_t k = 0; k < MonitorEvent::kKinds; ++k) m.record(static_cast<Kind>(k), {}, "x", k);
  MonitorEvent failed_guardian = MonitorEvent::make(Kind::GuardianRestarted);
  failed_guardian.set_error(Error::make_os(12, "cannot start the guardian"));
  m.record(failed_guardian);

  std::vector<Kind> kinds;
  for (const auto& e : alerts.got) kinds.push_back(e.kind);
  const std::vector<Kind> want{Kind::OrphanAdopted, Kind::TeardownFailed, Kind::StaleTreeSwept,
                               Kind::TreeLeftAtShutdown, Kind::GuardianRestarted};
  CHECK(kinds == want);
  REQUIRE(alerts.got.size() == want.size());
  CHECK(alerts.got.back().error == Errc::Os);
  CHECK(alerts.got.back().os_error == 12);
  CHECK(alerts.got[0].count == static_cast<std::uint64_t>(Kind::OrphanAdopted));
  CHECK(alerts.got[0].sequence == static_cast<std::uint64_t>(Kind::OrphanAdopted));
  CHECK(m.snapshot().alerts == want.size());
}

TEST_CASE("record allocates nothing: ring, counters, per-child table and alert hook") {
  struct Count {
    static void hook(const MonitorEvent&, void* cookie) noexcept { ++*static_cast<int*>(cookie); }
  };
  int alerts = 0;
  MonitoringConfig cfg;
  cfg.events = 64;
  cfg.child_names = 4;
  cfg.alert = &Count::hook;
  cfg.alert_cookie = &alerts;
  Monitoring m(cfg);
  const char* names[] = {"a", "b", "c", "d", "e", "f"};
  MonitorEvent out[64];
  EventCursor c;
  const std::uint64_t before = test::allocations();
  for (int i = 0; i < 10'000; ++i) {
    m.record(static_cast<Kind>(i % MonitorEvent::kKinds), ActorId{1, 2}, names[i % 6], 1);
    if (i % 100 == 0) (void)m.read(c, out);
  }
  const std::uint64_t after = test::allocations();
  CHECK(after == before);
  CHECK(alerts > 0);
}

namespace {

// A parsed exposition: the HELP and TYPE of each family, and each sample
// with its labels (unescaped) and value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::uint64_t value = 0;
};
struct Exposition {
  std::map<std::string, std::string> help, type;
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  const Sample* find(const std::string& name, const std::string& label = {}, const std::string& value = {}) const {
    for (const auto& s : samples)
      if (s.name == name && (label.empty() || (s.labels.count(label) && s.labels.at(label) == value))) return &s;
    return nullptr;
  }
};

bool metric_name_ok(const std::string& n) {
  if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_' || n[0] == ':')) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) return false;
  return true;
}

Exposition parse(const std::string& text) {
  Exposition x;
  if (text.empty() || text.back() != '\n') x.errors.push_back("the text does not end in a line feed");
  std::istringstream in(text);
  std::string line;
  std::string family;  // the family the last HELP/TYPE named
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const auto sp = rest.find(' ');
      if (sp == std::string::npos) {
        x.errors.push_back("no text after the name: " + line);
        continue;
      }
      family = rest.substr(0, sp);
      (line[2] == 'H' ? x.help : x.type)[family] = rest.substr(sp + 1);
      continue;
    }
    if (line.empty() || line[0] == '#') {
      x.errors.push_back("unexpected line: '" + line + "'");
      continue;
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!metric_name_ok(s.name)) x.errors.push_back("bad metric name: " + line);
    if (s.name != family) x.errors.push_back("sample outside its family (after HELP/TYPE of " + family + "): " + line);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          x.errors.push_back("bad label: " + line);
          break;
        }
        const std::string key = line.substr(i, eq - i);
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            if (line[j] == 'n') value += '\n';
            else if (line[j] == '\\' || line[j] == '"') value += line[j];
            else x.errors.push_back("bad escape in: " + line);
          } else {
            value += line[j];
          }
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // the '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      x.errors.push_back("no value: " + line);
      continue;
    }
    const std::string v = line.substr(i + 1);
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
      x.errors.push_back("value is not an integer: " + line);
      continue;
    }
    s.value = std::stoull(v);
    x.samples.push_back(s);
  }
  return x;
}

std::string prometheus(const Monitoring& m, const SystemStats& a, const osl::ProcessExecutor::Counters& p) {
  std::vector<char> buf(64 * 1024);
  auto r = m.write_prometheus(buf, a, p);
  INFO(r.error().message());
  REQUIRE(r.ok());
  return std::string(buf.data(), r.value());
}

}  // namespace

TEST_CASE("write_prometheus writes every counter in the text exposition format, which parses back line by line") {
  MonitoringConfig cfg;
  cfg.child_names = 4;
  Monitoring m(cfg);
  const std::string odd = "we\"ird\\na\nme";
  for (int i = 0; i < 3; ++i) m.record(Kind::ActorRestarted, {}, "db");
  m.record(Kind::ActorRestarted, {}, odd);
  m.record(Kind::ActorRestarted, {}, "");
  m.record(Kind::TeardownFailed);
  m.record(Kind::GuardianRestarted);
  m.record(Kind::TreeLeftAtShutdown);
  SystemStats a;
  a.live_actors = 7;
  a.spawned = 11;
  a.stopped = 4;
  a.messages = 123456789012ull;
  a.dead_letters = 5;
  osl::ProcessExecutor::Counters p;
  p.spawned = 9;
  p.cleaned = 6;
  p.killed = 2;
  p.orphans_adopted = 3;
  p.orphans_refused = 1;
  p.stale_trees = 4;

  const std::string text = prometheus(m, a, p);
  INFO(text);
  const Exposition x = parse(text);
  for (const auto& e : x.errors) FAIL_CHECK(e);
  // Every family has HELP and TYPE, counters end in _total, gauges do not.
  for (const auto& [name, type] : x.type) {
    INFO(name);
    CHECK(x.help.count(name) == 1);
    CHECK(name.rfind("airssys_", 0) == 0);
    if (type == "counter") CHECK(name.size() > 6);
    if (type == "counter") CHECK(name.substr(name.size() - 6) == "_total");
    else CHECK(type == "gauge");
    if (type == "gauge") CHECK(name.find("_total") == std::string::npos);
  }
  CHECK(x.help.size() == x.type.size());
  const std::map<std::string, std::uint64_t> want{
      {"airssys_restarts_total", 5},
      {"airssys_child_restarts_untracked_total", 1},
      {"airssys_alerts_total", 2},
      {"airssys_actors_live", 7},
      {"airssys_actors_spawned_total", 11},
      {"airssys_actors_stopped_total", 4},
      {"airssys_messages_total", 123456789012ull},
      {"airssys_dead_letters_total", 5},
      {"airssys_process_trees_spawned_total", 9},
      {"airssys_process_trees_cleaned_total", 6},
      {"airssys_process_trees_live", 3},
      {"airssys_processes_killed_total", 2},
      {"airssys_orphans_adopted_total", 3},
      {"airssys_orphans_refused_total", 1},
      {"airssys_stale_trees_swept_total", 4},
      {"airssys_teardown_failures_total", 1},
      {"airssys_guardian_restarts_total", 1},
      {"airssys_trees_left_at_shutdown_total", 1},
  };
  for (const auto& [name, value] : want) {
    INFO(name);
    const Sample* s = x.find(name);
    REQUIRE(s != nullptr);
    CHECK(s->labels.empty());
    CHECK(s->value == value);
    CHECK(x.type.count(name) == 1);
  }
  // One sample per event kind, zero included.
  for (std::size_t k = 0; k < MonitorEvent::kKinds; ++k) {
    const char* kind = to_string(static_cast<Kind>(k));
    INFO(kind);
    const Sample* s = x.find("airssys_events_total", "kind", kind);
    REQUIRE(s != nullptr);
    CHECK(s->value == m.snapshot().events[k]);
  }
  // Per child, the label value escaped and read back as it was.
  const Sample* db = x.find("airssys_child_restarts_total", "child", "db");
  REQUIRE(db != nullptr);
  CHECK(db->value == 3);
  const Sample* weird = x.find("airssys_child_restarts_total", "child", odd);
  REQUIRE(weird != nullptr);
  CHECK(weird->value == 1);
  CHECK(text.find("child=\"we\\\"ird\\\\na\\nme\"") != std::string::npos);
}

TEST_CASE("write_prometheus into a buffer too small is Full, naming the size it needs") {
  Monitoring m;
  m.record(Kind::ActorRestarted, {}, "db");
  std::vector<char> big(64 * 1024);
  auto whole_text = m.write_prometheus(big);
  REQUIRE(whole_text.ok());
  const std::size_t need = whole_text.value();
  std::vector<char> small(need - 1, '\x7f');
  auto r = m.write_prometheus(small);
  REQUIRE(r.code() == Errc::Full);
  CHECK(test::names(r.error(), "needs " + std::to_string(need) + " bytes"));
  CHECK(test::names(r.error(), "holds " + std::to_string(need - 1)));
  std::vector<char> exact(need + 8, '\x7f');
  auto ok = m.write_prometheus(std::span<char>(exact.data(), need));
  REQUIRE(ok.ok());
  CHECK(ok.value() == need);
  CHECK(std::string(exact.data(), need) == std::string(big.data(), need));
  CHECK(exact[need] == '\x7f');  // nothing written past the span
  std::span<char> none;
  CHECK(m.write_prometheus(none).code() == Errc::Full);
}

// ---- the middleware adapter, with real processes ------------------------------

namespace {

std::string fresh_marker() {
  static std::atomic<int> n{0};
  return "AIRSSYS_MONITORING_TEST=" + std::to_string(test::self_pid()) + "." + std::to_string(n++);
}

struct NothingLeft : test::NothingLeftCensus {
  NothingLeft() : test::NothingLeftCensus(fresh_marker()) {}
};

std::vector<MonitorEvent> all_events(const Monitoring& m) {
  std::vector<MonitorEvent> out(m.capacity());
  EventCursor c;
  const EventRead r = m.read(c, out);
  out.resize(r.events);
  return out;
}

std::vector<MonitorEvent> of_kind(const std::vector<MonitorEvent>& all, Kind k) {
  std::vector<MonitorEvent> out;
  for (const auto& e : all)
    if (e.kind == k) out.push_back(e);
  return out;
}

}  // namespace

TEST_CASE("the middleware records a managed tree's spawn and how its teardown ended, for both containments") {
  osl::Containment c = osl::Containment::Cgroup;
  SECTION("cgroup") { c = osl::Containment::Cgroup; }
  SECTION("process group") { c = osl::Containment::ProcessGroup; }
  NothingLeft guard;
  Alerts alerts;
  MonitoringConfig cfg;
  cfg.alert = &Alerts::hook;
  cfg.alert_cookie = &alerts;
  Monitoring m(cfg);
  MonitoringMiddleware mw(m);
  const std::string_view env[] = {guard.marker};
  int polite = -1, stubborn = -1, escapee = -1;
  {
    osl::ProcessExecutor ex;
    REQUIRE(ex.use(mw).ok());
    // A tree that ends on TERM.
    osl::SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.env = env;
    op.containment = c;
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    polite = p->pid;
    guard.pids.push_back(polite);
    auto t = ex.execute(osl::TeardownOperation{polite, 10'000'000'000});
    REQUIRE(t.ok());
    REQUIRE(t->exited_on_term);
    // A tree that ignores TERM, with an escapee that left its session.
    const std::string_view args[] = {
        "-c", "trap '' TERM; (setsid sleep 1000 & echo $!); echo ready; exec sleep 1000"};
    osl::SpawnProcessOperation tree = test::quiet("/bin/sh", args);
    tree.env = env;
    tree.containment = c;
    tree.stdio[1] = osl::StdioConfig::pipe();
    auto s = ex.execute(tree);
    INFO(s.error().message());
    REQUIRE(s.ok());
    stubborn = s->pid;
    guard.pids.push_back(stubborn);
    {
      test::Fd out(s->pipes[1]);
      const auto lines = test::read_lines(out.fd, 2);
      REQUIRE(lines.size() == 2);
      escapee = std::stoi(lines[0]);
      guard.pids.push_back(escapee);
    }
    REQUIRE(test::wait_for([&] { return test::session_of(escapee) == escapee; }));
    auto k = ex.execute(osl::TeardownOperation{stubborn, 50'000'000});
    INFO(k.error().message());
    REQUIRE(k.ok());
    CHECK(k->killed >= 1);
    // Refused requests tore nothing down: no failure, no alert.
    CHECK(ex.execute(osl::TeardownOperation{stubborn, 0}).code() == Errc::InvalidArgument);
    const auto counters = ex.counters();
    CHECK(counters.spawned == 2);
    CHECK(counters.cleaned == 2);
    const MonitoringSnapshot snap = m.snapshot({}, counters);
    CHECK(snap.trees_live == 0);
    CHECK(snap.orphans_adopted == counters.orphans_adopted);
    CHECK(snap.events[static_cast<std::size_t>(Kind::OrphanAdopted)] == counters.orphans_adopted);
  }
  const auto all = all_events(m);
  const auto spawned = of_kind(all, Kind::TreeSpawned);
  REQUIRE(spawned.size() == 2);
  CHECK(spawned[0].pid == polite);
  CHECK(spawned[0].pgid == polite);
  CHECK(spawned[0].name_view() == "sleep");
  CHECK(spawned[1].pid == stubborn);
  CHECK(spawned[1].name_view() == "sh");
  const auto terminated = of_kind(all, Kind::TreeTerminated);
  REQUIRE(terminated.size() == 1);
  CHECK(terminated[0].pid == polite);
  CHECK(terminated[0].count == 1);
  const auto killed = of_kind(all, Kind::TreeKilled);
  REQUIRE(killed.size() == 1);
  CHECK(killed[0].pid == stubborn);
  CHECK(killed[0].count >= 1);
  const auto adopted = of_kind(all, Kind::OrphanAdopted);
  REQUIRE_FALSE(adopted.empty());
  bool escapee_adopted = false;
  for (const auto& e : adopted) escapee_adopted |= e.pid == escapee;
  CHECK(escapee_adopted);
  CHECK(of_kind(all, Kind::TeardownFailed).empty());
  CHECK(of_kind(all, Kind::TreeLeftAtShutdown).empty());
  // The orphans were the alerts.
  std::lock_guard<std::mutex> lock(alerts.mu);
  CHECK(alerts.got.size() == adopted.size());
  for (const auto& e : alerts.got) CHECK(e.kind == Kind::OrphanAdopted);
}

TEST_CASE("a tree still alive when the executor ends is recorded as left at shutdown, and alerts") {
  NothingLeft guard;
  Alerts alerts;
  Monitoring m;
  REQUIRE(m.set_alert_hook(&Alerts::hook, &alerts).ok());
  MonitoringMiddleware mw(m);
  const std::string_view env[] = {guard.marker};
  int pid = -1;
  unsigned long long start = 0;
  {
    osl::ProcessExecutor ex;
    REQUIRE(ex.use(mw).ok());
    osl::SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.env = env;
    auto p = ex.execute(op);
    REQUIRE(p.ok());
    pid = p->pid;
    start = test::start_time_of(pid);
    guard.pids.push_back(pid);
  }
  // By start time: the number may already be another process's (parallel
  // tests force pid numbers round).
  CHECK_FALSE(test::same_process_exists(pid, start));
  const auto left = of_kind(all_events(m), Kind::TreeLeftAtShutdown);
  REQUIRE(left.size() == 1);
  CHECK(left[0].pid == pid);
  CHECK(left[0].count == 1);
  REQUIRE(alerts.got.size() == 1);
  CHECK(alerts.got[0].kind == Kind::TreeLeftAtShutdown);
  CHECK(m.snapshot().trees_left_at_shutdown == 1);
}

TEST_CASE("the middleware maps each process event kind, and ignores what is not a managed tree's") {
  Monitoring m;
  MonitoringMiddleware mw(m);
  using P = osl::ProcessEvent::Kind;
  osl::ProcessEvent ev;
  const Error os_err = Error::make_os(16, "cgroup '/sys/fs/cgroup/x' cannot be removed");
  const Error refused = Error::make(Errc::InvalidArgument, "teardown: process 5 is not a managed process");
  const Error busy = Error::make(Errc::AlreadyExists, "teardown of process 5's tree is already in progress");
  osl::TeardownReport term, kill;
  term.exited_on_term = true;
  term.reaped = 2;
  kill.killed = 3;
  kill.reaped = 3;

  SECTION("spawns that are not a managed tree's leader record nothing") {
    ev.kind = P::Spawn;
    ev.pid = 10;
    ev.pgid = 10;
    ev.lifetime = osl::ProcessLifetime::Detached;
    mw.observe(ev);
    ev.lifetime = osl::ProcessLifetime::Managed;
    ev.pgid = 9;  // joined another group, or inherited ours
    mw.observe(ev);
    ev.pgid = 10;
    ev.error = &os_err;  // failed
    mw.observe(ev);
    for (P k : {P::Signal, P::GroupKill, P::Wait, P::Exit, P::Denied}) {
      ev.kind = k;
      mw.observe(ev);
    }
    CHECK(m.recorded() == 0);
  }
  SECTION("a teardown refused as a request is no failure") {
    ev.kind = P::Teardown;
    ev.error = &refused;
    mw.observe(ev);
    ev.error = &busy;
    mw.observe(ev);
    CHECK(m.recorded() == 0);
  }
  SECTION("each kind that counts") {
    ev.pid = 10;
    ev.pgid = 10;
    ev.kind = P::Spawn;
    ev.program = "/usr/bin/some-long-program-name-that-is-cut-somewhere";
    mw.observe(ev);
    ev.program = {};
    ev.kind = P::Teardown;
    ev.principal = "actor#4";
    ev.teardown = &term;
    mw.observe(ev);
    ev.teardown = &kill;
    mw.observe(ev);
    ev.teardown = nullptr;
    ev.error = &os_err;
    mw.observe(ev);
    ev.kind = P::Cleanup;
    ev.error = nullptr;
    ev.teardown = &kill;
    mw.observe(ev);
    ev.kind = P::OrphanAdopted;
    ev.teardown = nullptr;
    ev.pid = 11;
    mw.observe(ev);
    ev.kind = P::StaleSwept;
    ev.pid = -1;
    ev.pgid = -1;
    ev.trees = 4;
    ev.processes = 9;
    mw.observe(ev);
    ev.kind = P::GuardianRestarted;
    ev.pid = 77;
    mw.observe(ev);
    ev.error = &os_err;
    ev.pid = -1;
    mw.observe(ev);
    const auto all = all_events(m);
    std::vector<Kind> kinds;
    for (const auto& e : all) kinds.push_back(e.kind);
    CHECK(kinds == std::vector<Kind>{Kind::TreeSpawned, Kind::TreeTerminated, Kind::TreeKilled, Kind::TeardownFailed,
                                     Kind::TreeLeftAtShutdown, Kind::OrphanAdopted, Kind::StaleTreeSwept,
                                     Kind::GuardianRestarted, Kind::GuardianRestarted});
    REQUIRE(all.size() == 9);
    CHECK(all[0].name_view() == std::string("some-long-program-name-that-is-cut-somewhere").substr(0, 31));
    CHECK(all[1].count == 2);
    CHECK(all[1].name_view() == "actor#4");
    CHECK(all[2].count == 3);
    CHECK(all[3].error == Errc::Os);
    CHECK(all[3].os_error == 16);
    CHECK(all[3].pid == 10);
    CHECK(all[4].count == 3);
    CHECK(all[5].pid == 11);
    CHECK(all[6].count == 4);
    CHECK(all[7].pid == 77);
    CHECK(all[7].error == Errc::Ok);
    CHECK(all[8].error == Errc::Os);
    CHECK(m.snapshot().alerts == 5);  // teardown failed, left at shutdown, orphan, stale, the failed guardian
  }
}

namespace {

struct NoSink : osl::ExitSink {
  void on_exit(std::uint64_t, int, osl::ExitStatus) noexcept override {}
};

}  // namespace

TEST_CASE("a guardian that dies and is replaced is recorded with the new guardian's pid") {
  bool reactor = false;
  SECTION("noticed by the reactor") { reactor = true; }
  SECTION("noticed by the next spawn") { reactor = false; }
  NothingLeft guard;
  Monitoring m;
  MonitoringMiddleware mw(m);
  NoSink sink;
  const std::string_view env[] = {guard.marker};
  {
    osl::ProcessExecutor ex;
    REQUIRE(ex.use(mw).ok());
    if (reactor) REQUIRE(ex.start_reactor(sink).ok());
    osl::SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
    op.env = env;
    op.containment = osl::Containment::ProcessGroup;
    auto p = ex.execute(op);
    INFO(p.error().message());
    REQUIRE(p.ok());
    guard.pids.push_back(p->pid);
    // Our children: the sleep and the guardian.
    const auto children = test::children_of_self();
    INFO(test::describe_children());
    REQUIRE(children.size() == 2);
    const int guardian = children[0].pid == p->pid ? children[1].pid : children[0].pid;
    REQUIRE(guardian != p->pid);
    const unsigned long long guardian_start = test::start_time_of(guardian);
    REQUIRE(::kill(guardian, SIGKILL) == 0);
    if (reactor) {
      // The counter is bumped just before the event's slot is written: wait
      // for the event itself too (the noexcept CI run read the ring between).
      REQUIRE(test::wait_for([&] {
        return m.snapshot().guardian_restarts == 1 && of_kind(all_events(m), Kind::GuardianRestarted).size() == 1;
      }));
    } else {
      // Dead (a zombie until the executor replaces it), then a spawn.
      REQUIRE(test::wait_for([&] { return test::process_ended(guardian); }));
      CHECK(m.snapshot().guardian_restarts == 0);
      auto q = ex.execute(op);
      INFO(q.error().message());
      REQUIRE(q.ok());
      guard.pids.push_back(q->pid);
      CHECK(m.snapshot().guardian_restarts == 1);
    }
    const auto restarted = of_kind(all_events(m), Kind::GuardianRestarted);
    REQUIRE(restarted.size() == 1);
    CHECK(restarted[0].error == Errc::Ok);
    CHECK(restarted[0].pid > 0);
    CHECK(restarted[0].pid != guardian);
    CHECK(test::process_exists(restarted[0].pid));
    // Reaped by the replacement (by start time: its number may be reused).
    CHECK_FALSE(test::same_process_exists(guardian, guardian_start));
    guard.pids.push_back(guardian, guardian_start);
  }
  // A restart needs no human; the trees the executor ended on its way out do.
  const MonitoringSnapshot snap = m.snapshot();
  CHECK(snap.trees_left_at_shutdown == (reactor ? 1u : 2u));
  CHECK(snap.alerts == snap.trees_left_at_shutdown);
}

// ---- a System's own Monitoring -------------------------------------------------

namespace {

struct CrashingOwner : Actor<int> {
  std::string_view marker;
  std::atomic<int>* starts;
  CrashingOwner(std::string_view m, std::atomic<int>* s) : marker(m), starts(s) {}
  void on_start(Context<int>&) override { starts->fetch_add(1); }
  void on_message(Context<int>& ctx, int& v) override {
    if (v == 1) {
      const std::string_view env[] = {marker};
      osl::SpawnProcessOperation op = test::quiet("/bin/sleep", test::kSleep);
      op.env = env;
      (void)ctx.spawn_process(op);
    } else if (v == 2) {
      ctx.fail(Error::make(Errc::Failed, "told to crash"));
    }
  }
  ErrorAction on_error(Context<int>&, const Error&) override { return ErrorAction::Restart; }
};

}  // namespace

TEST_CASE("a System records its actors' failures and restarts and its process trees in its own Monitoring") {
  NothingLeft guard;
  SystemConfig cfg;
  cfg.monitoring_events = 64;
  auto sys = System::create(cfg);
  REQUIRE(sys);
  System& s = **sys;
  std::atomic<int> starts{0};
  auto a = s.spawn<CrashingOwner>(std::string_view(guard.marker), &starts);
  REQUIRE(a);
  REQUIRE(s.send(*a, 1));
  REQUIRE(test::wait_for([&] { return s.process_counters().spawned == 1; }));
  REQUIRE(s.send(*a, 2));  // crash: the tree goes, then the actor restarts in place
  REQUIRE(test::wait_for([&] { return starts.load() == 2; }));
  CHECK(s.process_counters().cleaned == 1);
  const auto events = all_events(s.monitoring());
  std::vector<Kind> kinds;
  for (const auto& e : events) kinds.push_back(e.kind);
  const std::vector<Kind> expected{Kind::TreeSpawned, Kind::ActorFailed, Kind::ActorRestarted, Kind::TreeTerminated};
  CHECK(kinds == expected);
  REQUIRE(events.size() == expected.size());
  CHECK(events[1].actor == a->id);
  CHECK(events[1].error == Errc::Failed);
  CHECK(events[2].actor == a->id);

  const MonitoringSnapshot snap = s.monitoring_snapshot();
  CHECK(snap.trees_spawned == 1);
  CHECK(snap.trees_cleaned == 1);
  CHECK(snap.restarts == 1);
  CHECK(snap.actors.live_actors == 1);
  char buf[8192];
  auto n = s.write_prometheus(buf);
  REQUIRE(n);
  const std::string text(buf, *n);
  CHECK(text.find("airssys_actors_live 1\n") != std::string::npos);
  CHECK(text.find("airssys_process_trees_spawned_total 1\n") != std::string::npos);
  CHECK(text.find("airssys_process_trees_cleaned_total 1\n") != std::string::npos);
  REQUIRE(s.shutdown().ok());
}

TEST_CASE("after shutdown the process counters keep their final values, including the trees shutdown ended") {
  NothingLeft guard;
  auto sys = System::create(SystemConfig{});
  REQUIRE(sys);
  System& s = **sys;
  std::atomic<int> starts{0};
  auto a = s.spawn<CrashingOwner>(std::string_view(guard.marker), &starts);
  REQUIRE(a);
  REQUIRE(s.send(*a, 1));
  REQUIRE(test::wait_for([&] { return s.process_counters().spawned == 1; }));
  REQUIRE(s.send(*a, 2));  // one tree cleaned by the restart
  REQUIRE(test::wait_for([&] { return s.process_counters().cleaned == 1; }));
  REQUIRE(s.send(*a, 1));  // and one left for shutdown to end
  REQUIRE(test::wait_for([&] { return s.process_counters().spawned == 2; }));
  // A reader racing the shutdown sees counts that only grow.
  std::atomic<bool> done{false};
  std::uint64_t last_spawned = 0, went_back = 0;
  std::thread reader([&] {
    while (!done.load()) {
      const auto c = s.process_counters();
      if (c.spawned < last_spawned) ++went_back;
      last_spawned = c.spawned;
    }
  });
  REQUIRE(s.shutdown().ok());
  done.store(true);
  reader.join();
  CHECK(went_back == 0);
  CHECK(s.process_counters().spawned == 2);
  CHECK(s.process_counters().cleaned == 2);
  const MonitoringSnapshot snap = s.monitoring_snapshot();
  CHECK(snap.trees_spawned == 2);
  CHECK(snap.trees_cleaned == 2);
  CHECK(snap.trees_live == 0);
  char buf[8192];
  auto n = s.write_prometheus(buf);
  REQUIRE(n);
  const std::string text(buf, *n);
  CHECK(text.find("airssys_process_trees_spawned_total 2\n") != std::string::npos);
  CHECK(text.find("airssys_process_trees_cleaned_total 2\n") != std::string::npos);
}

TEST_CASE("a SystemConfig with monitoring sizes out of range is refused, naming the field") {
  SystemConfig cfg;
  cfg.monitoring_events = 0;
  auto r = System::validate(cfg);
  REQUIRE_FALSE(r);
  CHECK(std::string(r.error().message()).find("monitoring_events") != std::string::npos);
  cfg = SystemConfig{};
  cfg.monitoring_child_names = 5000;
  r = System::validate(cfg);
  REQUIRE_FALSE(r);
  CHECK(std::string(r.error().message()).find("monitoring_child_names") != std::string::npos);
}
