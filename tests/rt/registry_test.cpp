// Registry: add/find/remove, types, duplicates, names freed by stopped
// actors, name validation, capacity and concurrent lookups.

#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <atomic>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

struct IntActor : Actor<int> {
  std::atomic<int>* sum;
  explicit IntActor(std::atomic<int>* s) : sum(s) {}
  void on_message(Context<int>&, int& m) override {
    if (sum != nullptr) sum->fetch_add(m);
  }
};

struct StringActor : Actor<std::string> {
  void on_message(Context<std::string>&, std::string&) override {}
};

// Binds `names` to itself in on_start, then publishes its id in `bound`
// (release), so that a thread that reads `bound` knows the names are in
// the table. A message of 1 makes it fail; on_error answers `on_fail`.
struct NamedActor : Actor<int> {
  std::vector<std::string> names;
  std::atomic<std::uint64_t>* bound;
  Log<std::string>* add_errors;
  ErrorAction on_fail;
  NamedActor(std::vector<std::string> n, std::atomic<std::uint64_t>* b, Log<std::string>* e,
             ErrorAction f = ErrorAction::Stop)
      : names(std::move(n)), bound(b), add_errors(e), on_fail(f) {}
  void on_start(Context<int>& ctx) override {
    for (const auto& n : names) {
      if (auto r = ctx.system().registry().add(n, ctx.self()); !r) {
        add_errors->push(r.error().message());
        ctx.fail(r.error());
        return;
      }
    }
    if (bound != nullptr) bound->store(ctx.self().id.to_bits(), std::memory_order_release);
  }
  void on_message(Context<int>& ctx, int& m) override {
    if (m == 1) ctx.fail(Error::make(Errc::Failed, "told to fail"));
  }
  ErrorAction on_error(Context<int>&, const Error&) override { return on_fail; }
};

// "<prefix><a>" or "<prefix><a>_<b>". (snprintf: GCC 12 warns falsely on
// chained std::string operator+ at -O3.)
std::string name_of(const char* prefix, int a, int b = -1) {
  char buf[32];
  if (b < 0) std::snprintf(buf, sizeof buf, "%s%d", prefix, a);
  else std::snprintf(buf, sizeof buf, "%s%d_%d", prefix, a, b);
  return buf;
}

bool contains_ci(std::string_view text, std::string_view word) {
  std::string t(text), w(word);
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t.find(w) != std::string::npos;
}

}  // namespace

TEST_CASE("a registered actor can be found by name, reached, and removed") {
  std::atomic<int> sum{0};
  SystemConfig cfg;
  System sys(cfg);
  auto a = sys.spawn<IntActor>(&sum);
  REQUIRE(a.ok());
  auto b = sys.spawn<IntActor>(&sum);
  REQUIRE(b.ok());
  Registry& reg = sys.registry();
  REQUIRE(reg.size() == 0);

  REQUIRE(reg.add("alpha", *a).ok());
  REQUIRE(reg.add("beta", *b).ok());
  REQUIRE(reg.size() == 2);

  auto fa = reg.find<int>("alpha");
  REQUIRE(fa.ok());
  REQUIRE(*fa == *a);
  auto fb = reg.find<int>("beta");
  REQUIRE(fb.ok());
  REQUIRE(*fb == *b);
  REQUIRE(sys.send(*fa, 5).ok());
  REQUIRE(test::wait_for([&] { return sum.load() == 5; }));

  SECTION("names are exact: no prefixes, no case folding") {
    REQUIRE(reg.find<int>("alph").code() == Errc::NotFound);
    REQUIRE(reg.find<int>("alphaa").code() == Errc::NotFound);
    REQUIRE(reg.find<int>("Alpha").code() == Errc::NotFound);
  }

  SECTION("remove") {
    REQUIRE(reg.remove("alpha").ok());
    REQUIRE(reg.find<int>("alpha").code() == Errc::NotFound);
    REQUIRE(reg.remove("alpha").code() == Errc::NotFound);
    REQUIRE(reg.size() == 1);
    // beta is untouched, and the actor behind alpha still lives.
    auto again = reg.find<int>("beta");
    REQUIRE(again.ok());
    REQUIRE(*again == *b);
    REQUIRE(sys.alive(*a));
    // The name can be bound again, to another actor too.
    REQUIRE(reg.add("alpha", *b).ok());
    auto moved = reg.find<int>("alpha");
    REQUIRE(moved.ok());
    REQUIRE(*moved == *b);
  }

  SECTION("one actor under several names") {
    REQUIRE(reg.add("alpha2", *a).ok());
    auto f = reg.find<int>("alpha2");
    REQUIRE(f.ok());
    REQUIRE(*f == *a);
    REQUIRE(reg.size() == 3);
  }

  SECTION("unknown names") {
    REQUIRE(reg.find<int>("gamma").code() == Errc::NotFound);
    REQUIRE(reg.remove("gamma").code() == Errc::NotFound);
  }

  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("find with the wrong message type returns TypeMismatch") {
  SystemConfig cfg;
  System sys(cfg);
  auto i = sys.spawn<IntActor>(nullptr);
  REQUIRE(i.ok());
  auto s = sys.spawn<StringActor>();
  REQUIRE(s.ok());
  REQUIRE(sys.registry().add("ints", *i).ok());
  REQUIRE(sys.registry().add("strings", *s).ok());

  REQUIRE(sys.registry().find<std::string>("ints").code() == Errc::TypeMismatch);
  REQUIRE(sys.registry().find<int>("strings").code() == Errc::TypeMismatch);
  REQUIRE(sys.registry().find<long>("ints").code() == Errc::TypeMismatch);
  auto ok = sys.registry().find<std::string>("strings");
  REQUIRE(ok.ok());
  REQUIRE(*ok == *s);
  // A type mismatch leaves the entry in place.
  REQUIRE(sys.registry().find<int>("ints").ok());
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a name held by a live actor cannot be bound to another") {
  SystemConfig cfg;
  System sys(cfg);
  auto a = sys.spawn<IntActor>(nullptr);
  auto b = sys.spawn<IntActor>(nullptr);
  auto s = sys.spawn<StringActor>();
  REQUIRE((a.ok() && b.ok() && s.ok()));
  REQUIRE(sys.registry().add("name", *a).ok());
  REQUIRE(sys.registry().add("name", *b).code() == Errc::AlreadyExists);
  REQUIRE(sys.registry().add("name", *s).code() == Errc::AlreadyExists);
  // Binding it again to its holder changes nothing (an actor restarted in
  // place does that in on_start).
  REQUIRE(sys.registry().add("name", *a).ok());
  auto f = sys.registry().find<int>("name");
  REQUIRE(f.ok());
  REQUIRE(*f == *a);  // still the first holder
  REQUIRE(sys.registry().size() == 1);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("the name of an actor that stopped is freed") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto a = sys.spawn<IntActor>(nullptr);
  REQUIRE(a.ok());
  REQUIRE(sys.registry().add("svc", *a).ok());
  REQUIRE(sys.stop(*a).ok());
  REQUIRE(test::wait_for([&] { return !sys.alive(*a); }));

  SECTION("find returns NotFound") {
    REQUIRE(sys.registry().find<int>("svc").code() == Errc::NotFound);
    REQUIRE(sys.registry().find<int>("svc").code() == Errc::NotFound);
  }
  SECTION("another actor can take the name") {
    auto b = sys.spawn<IntActor>(nullptr);
    REQUIRE(b.ok());
    REQUIRE(sys.registry().add("svc", *b).ok());
    auto f = sys.registry().find<int>("svc");
    REQUIRE(f.ok());
    REQUIRE(*f == *b);
  }
  SECTION("an actor of another type can take the name") {
    auto s = sys.spawn<StringActor>();
    REQUIRE(s.ok());
    REQUIRE(sys.registry().add("svc", *s).ok());
    REQUIRE(sys.registry().find<int>("svc").code() == Errc::TypeMismatch);
    auto f = sys.registry().find<std::string>("svc");
    REQUIRE(f.ok());
    REQUIRE(*f == *s);
  }
  SECTION("even when the stopped actor's slot has a new occupant") {
    // A handle to the old actor must not resolve to the new one.
    ActorRef<int> next{};
    bool reused = false;
    for (int i = 0; i < 64 && !reused; ++i) {
      auto r = sys.spawn<IntActor>(nullptr);
      REQUIRE(r.ok());
      if (r->id.slot == a->id.slot) {
        next = *r;
        reused = true;
      }
    }
    if (reused) {
      REQUIRE(next.id.gen != a->id.gen);
      REQUIRE(sys.registry().find<int>("svc").code() == Errc::NotFound);
    }
  }
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("an empty ActorRef is refused by the registry and the broker with InvalidArgument, not as stopped") {
  SystemConfig cfg;
  System sys(cfg);
  auto r = sys.registry().add("nobody", ActorRef<int>{});
  REQUIRE(r.code() == Errc::InvalidArgument);
  INFO(r.error().message());
  CHECK(std::string(r.error().message()) == "cannot register 'nobody': the ActorRef is empty (no actor)");
  auto s = sys.broker().subscribe("news", ActorRef<int>{});
  REQUIRE(s.code() == Errc::InvalidArgument);
  INFO(s.error().message());
  CHECK(std::string(s.error().message()) == "cannot subscribe to 'news': the ActorRef is empty (no actor)");
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("invalid names are refused with InvalidArgument naming the problem") {
  SystemConfig cfg;
  System sys(cfg);
  auto a = sys.spawn<IntActor>(nullptr);
  REQUIRE(a.ok());
  Registry& reg = sys.registry();

  const std::string longest(31, 'n');
  const std::string too_long(32, 'n');
  const std::string way_too_long(200, 'n');
  const std::string_view with_nul("ab\0cd", 5);
  const std::string_view nul_only("\0", 1);

  SECTION("empty") {
    auto r = reg.add("", *a);
    REQUIRE(r.code() == Errc::InvalidArgument);
    INFO(r.error().message());
    REQUIRE(contains_ci(r.error().message(), "empty"));
    REQUIRE(reg.find<int>("").code() == Errc::InvalidArgument);
    REQUIRE(reg.remove("").code() == Errc::InvalidArgument);
  }
  SECTION("32 bytes and more") {
    for (const std::string& n : {too_long, way_too_long}) {
      auto r = reg.add(n, *a);
      REQUIRE(r.code() == Errc::InvalidArgument);
      INFO(r.error().message());
      REQUIRE(contains_ci(r.error().message(), "31"));  // names the limit
      REQUIRE(reg.find<int>(n).code() == Errc::InvalidArgument);
      REQUIRE(reg.remove(n).code() == Errc::InvalidArgument);
    }
  }
  SECTION("containing a NUL byte") {
    for (std::string_view n : {with_nul, nul_only}) {
      auto r = reg.add(n, *a);
      REQUIRE(r.code() == Errc::InvalidArgument);
      INFO(r.error().message());
      REQUIRE(contains_ci(r.error().message(), "nul"));
      REQUIRE(reg.find<int>(n).code() == Errc::InvalidArgument);
      REQUIRE(reg.remove(n).code() == Errc::InvalidArgument);
    }
    // "ab" is a different, valid name that nothing holds.
    REQUIRE(reg.find<int>("ab").code() == Errc::NotFound);
  }
  SECTION("31 bytes is the longest valid name") {
    REQUIRE(reg.add(longest, *a).ok());
    auto f = reg.find<int>(longest);
    REQUIRE(f.ok());
    REQUIRE(*f == *a);
    // A 32-byte name sharing those 31 bytes does not find it.
    REQUIRE(reg.find<int>(too_long).code() == Errc::InvalidArgument);
    REQUIRE(reg.find<int>(longest.substr(0, 30)).code() == Errc::NotFound);
  }
  SECTION("any bytes but NUL are allowed") {
    const std::string odd = "a b/c:d\xff\x01.";
    REQUIRE(reg.add(odd, *a).ok());
    REQUIRE(reg.find<int>(odd).ok());
  }
  if (reg.size() == 0) REQUIRE(reg.find<int>("n").code() == Errc::NotFound);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("the registry holds registry_capacity live names, and frees room when holders stop") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.registry_capacity = 4;
  System sys(cfg);
  Registry& reg = sys.registry();
  REQUIRE(reg.capacity() == 4);

  std::vector<ActorRef<int>> holders;
  for (int i = 0; i < 6; ++i) {
    auto a = sys.spawn<IntActor>(nullptr);
    REQUIRE(a.ok());
    holders.push_back(*a);
  }
  const char* names[] = {"n0", "n1", "n2", "n3"};
  for (int i = 0; i < 4; ++i) REQUIRE(reg.add(names[i], holders[static_cast<std::size_t>(i)]).ok());
  auto full = reg.add("n4", holders[4]);
  REQUIRE(full.code() == Errc::Full);
  REQUIRE(reg.add("n5", holders[5]).code() == Errc::Full);
  REQUIRE(reg.size() == 4);
  REQUIRE(reg.find<int>("n4").code() == Errc::NotFound);

  SECTION("after remove") {
    REQUIRE(reg.remove("n1").ok());
    REQUIRE(reg.add("n4", holders[4]).ok());
    REQUIRE(reg.add("n5", holders[5]).code() == Errc::Full);
  }
  SECTION("after the holders stop") {
    for (int i = 0; i < 4; ++i) REQUIRE(sys.stop(holders[static_cast<std::size_t>(i)]).ok());
    for (int i = 0; i < 4; ++i)
      REQUIRE(test::wait_for([&] { return !sys.alive(holders[static_cast<std::size_t>(i)]); }));
    REQUIRE(reg.add("n4", holders[4]).ok());
    REQUIRE(reg.add("n5", holders[5]).ok());
    // Their old names can be taken again too, up to the capacity.
    REQUIRE(reg.add("n0", holders[4]).ok());
    REQUIRE(reg.add("n1", holders[5]).ok());
    REQUIRE(reg.add("n2", holders[5]).code() == Errc::Full);
    REQUIRE(reg.find<int>("n3").code() == Errc::NotFound);
    auto f = reg.find<int>("n0");
    REQUIRE(f.ok());
    REQUIRE(*f == holders[4]);
  }
  SECTION("many rounds of fill, stop, refill") {
    for (int i = 0; i < 4; ++i) REQUIRE(sys.stop(holders[static_cast<std::size_t>(i)]).ok());
    for (int round = 0; round < 50; ++round) {
      std::vector<ActorRef<int>> batch;
      for (int i = 0; i < 4; ++i) {
        auto a = sys.spawn<IntActor>(nullptr);
        REQUIRE(a.ok());
        batch.push_back(*a);
      }
      // The previous holders may still be stopping: retry until their names free up.
      for (int i = 0; i < 4; ++i) {
        const std::string n = name_of("r", round, i);
        REQUIRE(test::wait_for([&] { return reg.add(n, batch[static_cast<std::size_t>(i)]).ok(); }));
      }
      REQUIRE(reg.add("extra", batch[0]).code() == Errc::Full);
      for (auto& b : batch) REQUIRE(sys.stop(b).ok());
    }
  }
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("concurrent lookups while names are rebound return only correct results") {
  constexpr int kNames = 4;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.registry_capacity = 16;
  System sys(cfg);
  Registry& reg = sys.registry();

  // Name i is bound alternately to ints[i] (an int actor) and strs[i] (a
  // string actor). A reader must never see a handle of one paired with the
  // type of the other, nor any other actor.
  std::vector<ActorRef<int>> ints;
  std::vector<ActorRef<std::string>> strs;
  std::vector<std::string> names;
  for (int i = 0; i < kNames; ++i) {
    auto a = sys.spawn<IntActor>(nullptr);
    auto s = sys.spawn<StringActor>();
    REQUIRE((a.ok() && s.ok()));
    ints.push_back(*a);
    strs.push_back(*s);
    names.push_back(name_of("svc-", i));
    REQUIRE(reg.add(names.back(), *a).ok());
  }

  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::atomic<long> found_int{0};
  std::atomic<long> found_str{0};
  std::atomic<int> writer_errors{0};
  std::atomic<long> lookups{0};

  auto reader = [&](int seed) {
    int k = seed;
    while (!done.load(std::memory_order_relaxed)) {
      const std::size_t i = static_cast<std::size_t>(k++ % kNames);
      auto fi = reg.find<int>(names[i]);
      if (fi.ok()) {
        if (!(*fi == ints[i])) wrong.fetch_add(1);
        found_int.fetch_add(1, std::memory_order_relaxed);
      } else if (fi.code() != Errc::NotFound && fi.code() != Errc::TypeMismatch) {
        wrong.fetch_add(1);
      }
      auto fs = reg.find<std::string>(names[i]);
      if (fs.ok()) {
        if (!(*fs == strs[i])) wrong.fetch_add(1);
        found_str.fetch_add(1, std::memory_order_relaxed);
      } else if (fs.code() != Errc::NotFound && fs.code() != Errc::TypeMismatch) {
        wrong.fetch_add(1);
      }
      // A name never registered is never found.
      if (reg.find<int>("never").code() != Errc::NotFound) wrong.fetch_add(1);
      lookups.fetch_add(1, std::memory_order_relaxed);
    }
  };

  // The writer runs at least `rounds` rounds, and on until the readers
  // have made `min_lookups` lookups and seen both bindings, ending on a
  // whole cycle of rebinding.
  const int rounds = 4000 / kScale;
  const long min_lookups = 20000 / kScale;
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) readers.emplace_back(reader, t);
  std::thread writer([&] {
    int r = 0;
    const auto give_up = std::chrono::steady_clock::now() + 10s;  // hang guard
    auto more = [&] {
      if (r % (2 * kNames) != 0) return true;
      if (std::chrono::steady_clock::now() > give_up) return false;
      return r < rounds || lookups.load() < min_lookups || found_int.load() == 0 ||
             found_str.load() == 0;
    };
    while (more()) {
      const std::size_t i = static_cast<std::size_t>(r % kNames);
      if (!reg.remove(names[i]).ok()) writer_errors.fetch_add(1);
      const bool to_str = (r / kNames) % 2 == 0;
      const bool added = to_str ? reg.add(names[i], strs[i]).ok() : reg.add(names[i], ints[i]).ok();
      if (!added) writer_errors.fetch_add(1);
      ++r;
    }
    done.store(true);
  });
  writer.join();
  for (auto& t : readers) t.join();

  REQUIRE(writer_errors.load() == 0);
  REQUIRE(wrong.load() == 0);
  REQUIRE(found_int.load() > 0);
  REQUIRE(found_str.load() > 0);
  // The writer ended on a whole cycle: every name is bound to its int actor.
  for (int i = 0; i < kNames; ++i) {
    auto f = reg.find<int>(names[static_cast<std::size_t>(i)]);
    REQUIRE(f.ok());
    REQUIRE(*f == ints[static_cast<std::size_t>(i)]);
  }
  REQUIRE(reg.size() == kNames);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("concurrent adds of one name: exactly one live holder wins") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  constexpr int kThreads = 4;
  const int rounds = 200 / kScale;
  std::vector<ActorRef<int>> actors;
  for (int i = 0; i < kThreads; ++i) {
    auto a = sys.spawn<IntActor>(nullptr);
    REQUIRE(a.ok());
    actors.push_back(*a);
  }
  for (int r = 0; r < rounds; ++r) {
    const std::string name = name_of("race-", r);
    std::atomic<int> wins{0};
    std::atomic<int> exists{0};
    std::atomic<int> ready{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        auto res = sys.registry().add(name, actors[static_cast<std::size_t>(t)]);
        if (res.ok()) wins.fetch_add(1);
        else if (res.code() == Errc::AlreadyExists) exists.fetch_add(1);
      });
    }
    for (auto& t : ts) t.join();
    REQUIRE(wins.load() == 1);
    REQUIRE(exists.load() == kThreads - 1);
    REQUIRE(sys.registry().find<int>(name).ok());
    REQUIRE(sys.registry().remove(name).ok());
  }
  REQUIRE(sys.registry().size() == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("names bound in on_start are found by every thread that saw the binding, while holders come and go") {
  // Each round spawns kActors actors that bind a fixed name and a name of
  // their round in on_start (on both workers at once), while reader threads
  // look the names up; then the actors stop and the next round binds the
  // same fixed names again: reclaiming names held by stopped actors, and,
  // with the capacity at 2 * kActors, sweeping the full table for the round
  // names. A lookup made after a reader saw an actor publish its binding,
  // with no stop begun meanwhile (the epoch did not move), must return that
  // very actor.
  constexpr int kActors = 8;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.registry_capacity = 2 * kActors;
  System sys(cfg);
  Registry& reg = sys.registry();
  const int rounds = 200 / kScale;

  std::vector<std::string> fixed;
  for (int i = 0; i < kActors; ++i) fixed.push_back(name_of("svc-", i));
  std::atomic<std::uint64_t> bound[kActors] = {};
  std::atomic<int> round_now{0};
  std::atomic<int> epoch{0};  // odd: the actors of the round are bound and running
  std::atomic<bool> done{false};
  Log<std::string> add_errors;
  std::atomic<int> wrong{0};
  std::atomic<long> checked{0};

  auto reader = [&](int seed) {
    unsigned k = static_cast<unsigned>(seed);
    while (!done.load(std::memory_order_relaxed)) {
      const int e1 = epoch.load(std::memory_order_acquire);
      const int r = round_now.load(std::memory_order_relaxed);
      const std::size_t i = k++ % kActors;
      const std::uint64_t b = bound[i].load(std::memory_order_acquire);
      if ((e1 & 1) == 0 || b == 0) {
        std::this_thread::yield();
        continue;
      }
      auto f = reg.find<int>(fixed[i]);
      auto g = reg.find<int>(name_of("r", r, static_cast<int>(i)));
      if (epoch.load(std::memory_order_acquire) != e1) continue;  // a stop began: no claim
      if (!f || f->id.to_bits() != b || !g || g->id.to_bits() != b) {
        if (wrong.fetch_add(1) == 0)
          std::fprintf(stderr, "round %d, name %zu: %s / %s\n", r, i, f ? "found" : f.error().message(),
                       g ? "found" : g.error().message());
      }
      checked.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) readers.emplace_back(reader, t);

  bool spawned_all = true;
  bool all_bound = true;
  bool all_gone = true;
  for (int r = 0; r < rounds && spawned_all && all_bound && all_gone; ++r) {
    round_now.store(r, std::memory_order_relaxed);
    std::vector<ActorRef<int>> batch;
    for (int i = 0; i < kActors; ++i) {
      auto a = sys.spawn<NamedActor>(std::vector<std::string>{fixed[static_cast<std::size_t>(i)], name_of("r", r, i)},
                                     &bound[i], &add_errors);
      if (!a) {
        spawned_all = false;
        break;
      }
      batch.push_back(*a);
    }
    all_bound = wait_for([&] {
      for (auto& b : bound)
        if (b.load(std::memory_order_acquire) == 0) return false;
      return true;
    });
    epoch.fetch_add(1);  // odd: lookups count
    const long before = checked.load();
    (void)wait_for([&] { return checked.load() >= before + 4; });
    epoch.fetch_add(1);  // even, before any stop: lookups from here on make no claim
    for (auto& b : bound) b.store(0, std::memory_order_relaxed);
    for (auto& a : batch) (void)sys.stop(a);
    for (auto& a : batch) all_gone = all_gone && wait_for([&] { return !sys.alive(a); });
  }
  done.store(true);
  for (auto& t : readers) t.join();

  INFO((add_errors.size() == 0 ? std::string() : add_errors.get().front()));
  REQUIRE(add_errors.size() == 0);
  REQUIRE(spawned_all);
  REQUIRE(all_bound);
  REQUIRE(all_gone);
  REQUIRE(wrong.load() == 0);
  REQUIRE(checked.load() > 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a supervised child that binds its name in on_start is found once the supervisor has started it, and after each restart") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  Log<std::string> add_errors;
  SupervisorSpec spec(SupervisorFlags{.intensity = 100}, 1);
  REQUIRE(spec.add(ChildSpec::worker<NamedActor>("svc", std::vector<std::string>{"jobs"},
                                                 static_cast<std::atomic<std::uint64_t>*>(nullptr), &add_errors))
              .ok());
  auto sup = start_supervisor(sys, spec);
  REQUIRE(sup.ok());

  // No waiting: start_supervisor returns once the child's on_start has run.
  auto first = sys.registry().find<int>("jobs");
  INFO((first ? "" : first.error().message()));
  REQUIRE(first.ok());
  ChildInfo info[1];
  auto listed = sup->which_children(info);
  REQUIRE(listed.ok());
  REQUIRE(listed.value() == 1);
  REQUIRE(info[0].ref == first->id);

  // Each crash: the supervisor stops the child and starts a new one, which
  // binds the name its stopped predecessor still holds in the table.
  ActorRef<int> current = *first;
  const int restarts = 20 / kScale;
  for (int k = 0; k < restarts; ++k) {
    REQUIRE(sys.send(current, 1).ok());
    ActorRef<int> next{};
    REQUIRE(wait_for([&] {
      auto f = sys.registry().find<int>("jobs");
      if (!f || *f == current) return false;
      next = *f;
      return true;
    }));
    REQUIRE(sys.alive(next));
    current = next;
  }
  INFO((add_errors.size() == 0 ? std::string() : add_errors.get().front()));
  REQUIRE(add_errors.size() == 0);
  REQUIRE(sup->stop().ok());
  REQUIRE(sys.registry().find<int>("jobs").code() == Errc::NotFound);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("an actor restarted in place binds its names again in on_start") {
  // on_error answers Restart: a new instance runs on_start under the same
  // ref, and finds its names held by that ref.
  SystemConfig cfg;
  System sys(cfg);
  std::atomic<std::uint64_t> bound{0};
  Log<std::string> add_errors;
  auto a = sys.spawn<NamedActor>(std::vector<std::string>{"restarts"}, &bound, &add_errors, ErrorAction::Restart);
  REQUIRE(a.ok());
  REQUIRE(wait_for([&] { return bound.load(std::memory_order_acquire) != 0; }));
  for (int k = 0; k < 3; ++k) {
    bound.store(0);
    REQUIRE(sys.send(*a, 1).ok());
    REQUIRE(wait_for([&] { return bound.load(std::memory_order_acquire) != 0 || !sys.alive(*a); }));
    REQUIRE(sys.alive(*a));
  }
  INFO((add_errors.size() == 0 ? std::string() : add_errors.get().front()));
  REQUIRE(add_errors.size() == 0);
  auto f = sys.registry().find<int>("restarts");
  REQUIRE(f.ok());
  REQUIRE(*f == *a);
  REQUIRE(sys.shutdown().ok());
}
