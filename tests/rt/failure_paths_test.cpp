// Failure paths that must give back everything they took: pending-ask
// entries, actor slots, the spawn gate.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/wait_for.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <variant>

using namespace airssys;
using namespace std::chrono_literals;

namespace {

// A reply value that takes a while to build, so that the asker's timeout
// and its stop happen while the replier is still building it.
struct SlowArg {};
struct Slow {
  explicit Slow(SlowArg) { std::this_thread::sleep_for(100ms); }
  Slow(Slow&&) = default;
};
struct SlowReq {
  ReplyTo<Slow> to;
};

struct SlowReplier : Actor<SlowReq> {
  std::atomic<int>* code;
  explicit SlowReplier(std::atomic<int>* c) : code(c) {}
  void on_message(Context<SlowReq>& ctx, SlowReq& r) override {
    code->store(static_cast<int>(ctx.reply(r.to, SlowArg{}).code()));
  }
};

struct Go {};
using AskerMsg = std::variant<Go, Reply<Slow>>;

struct QuitterAfterAsk : Actor<AskerMsg> {
  ActorRef<SlowReq> target;
  explicit QuitterAfterAsk(ActorRef<SlowReq> t) : target(t) {}
  void on_message(Context<AskerMsg>& ctx, AskerMsg& m) override {
    if (std::holds_alternative<Go>(m)) {
      (void)ctx.ask<Slow>(target, [](ReplyTo<Slow> to) { return SlowReq{to}; }, 10ms);
      ctx.stop();
    }
  }
};

struct IntReq {
  ReplyTo<int> to;
};
struct Silent : Actor<IntReq> {
  void on_message(Context<IntReq>&, IntReq&) override {}
};

}  // namespace

TEST_CASE("a reply to an asker that stopped while the reply was being built frees the request") {
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 1;
  System sys(cfg);
  std::atomic<int> reply_code{-1};
  auto replier = sys.spawn_with<SlowReplier>(SpawnOptions{.worker = 1}, [&] { return SlowReplier(&reply_code); });
  REQUIRE(replier.ok());
  auto asker = sys.spawn_with<QuitterAfterAsk>(SpawnOptions{.worker = 0},
                                               [r = *replier] { return QuitterAfterAsk(r); });
  REQUIRE(asker.ok());
  REQUIRE(sys.send(*asker, AskerMsg{Go{}}).ok());
  REQUIRE(test::wait_for([&] { return reply_code.load() != -1; }));
  // The asker is gone: the late reply is refused...
  CHECK(static_cast<Errc>(reply_code.load()) == Errc::Dead);
  // ...and the only pending entry is free again: the next ask gets as far
  // as its own timeout instead of Full.
  auto silent = sys.spawn<Silent>();
  REQUIRE(silent.ok());
  auto r = sys.ask<int>(*silent, [](ReplyTo<int> to) { return IntReq{to}; }, 10ms);
  REQUIRE(r.code() == Errc::Timeout);
}

#if __cpp_exceptions
TEST_CASE("System::ask frees its request when building the request throws") {
  SystemConfig cfg;
  cfg.pending_asks = 1;
  System sys(cfg);
  auto silent = sys.spawn<Silent>();
  REQUIRE(silent.ok());
  bool threw = false;
  try {
    (void)sys.ask<int>(*silent, [](ReplyTo<int>) -> IntReq { throw std::runtime_error("no request"); }, 10ms);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  REQUIRE(threw);
  auto r = sys.ask<int>(*silent, [](ReplyTo<int> to) { return IntReq{to}; }, 10ms);
  REQUIRE(r.code() == Errc::Timeout);
}

namespace {
struct Plain : Actor<int> {
  void on_message(Context<int>&, int&) override {}
};
// A factory whose second move throws: the move into the actor's block.
struct ThrowingFactory {
  int* moves;
  explicit ThrowingFactory(int* m) : moves(m) {}
  ThrowingFactory(const ThrowingFactory&) = default;
  ThrowingFactory(ThrowingFactory&& o) : moves(o.moves) {
    if (++*moves == 2) throw std::runtime_error("factory move");
  }
  Plain operator()() const { return Plain{}; }
};
}  // namespace

TEST_CASE("a spawn whose factory throws while moving gives back its slot and lets shutdown finish") {
  SystemConfig cfg;
  cfg.actor_capacity = 1;
  System sys(cfg);
  int moves = 0;
  ThrowingFactory f(&moves);
  bool threw = false;
  try {
    (void)sys.spawn_with<Plain>(SpawnOptions{}, f);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  REQUIRE(threw);
  auto next = sys.spawn<Plain>();  // the only slot is free again
  REQUIRE(next.ok());
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    (void)sys.shutdown(100ms);
    done.store(true);
  });
  const bool returned = test::wait_for([&] { return done.load(); });
  if (!returned) {
    stopper.detach();
    FAIL("shutdown did not return: the spawn gate was left entered");
  }
  stopper.join();
  REQUIRE(sys.stats().live_actors == 0);
}
#endif
