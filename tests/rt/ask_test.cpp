// Request/reply: System::ask from plain threads, Context::ask from actors,
// timeouts, late replies, capacity and the races between a reply and a
// timeout.

#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/rt_test.hpp"

#include "support/wait_for.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

// A request for an int. `delay_ms` > 0 asks the replier to answer that
// much later (through a timer to itself); `reply_now` tells a holder to
// answer the request it kept.
struct Req {
  int value = 0;
  ReplyTo<int> to{};
  int delay_ms = 0;
  bool delayed = false;
  bool reply_now = false;
};

// Replies value * 2 to every request; records the result of each reply.
Result<ActorRef<Req>> spawn_doubler(System& sys, int worker, Log<Errc>& codes) {
  return spawn_scripted<Req>(sys, worker, nullptr, [&codes](Context<Req>& ctx, Req& r) {
    codes.push(ctx.reply(r.to, r.value * 2).code());
  });
}

// Keeps the last request and answers it only when told to (reply_now).
Result<ActorRef<Req>> spawn_holder(System& sys, int worker, Log<Errc>& codes,
                                   std::atomic<int>& requests) {
  auto kept = std::make_shared<ReplyTo<int>>();
  return spawn_scripted<Req>(sys, worker, nullptr, [&codes, &requests, kept](Context<Req>& ctx, Req& r) {
    if (r.reply_now) {
      codes.push(ctx.reply(*kept, 5).code());
    } else {
      *kept = r.to;
      requests.fetch_add(1);
    }
  });
}

struct ReplyRecord {
  int value;
  Errc code;
};

// Replies value * 2 after r.delay_ms; records (value, reply code).
Result<ActorRef<Req>> spawn_slow_replier(System& sys, int worker, Log<ReplyRecord>& out) {
  return spawn_scripted<Req>(sys, worker, nullptr, [&out](Context<Req>& ctx, Req& r) {
    if (r.delay_ms > 0 && !r.delayed) {
      Req later = r;
      later.delayed = true;
      auto t = ctx.send_after(ctx.self(), later, std::chrono::milliseconds(r.delay_ms));
      if (!t) out.push({r.value, t.code()});
      return;
    }
    out.push({r.value, ctx.reply(r.to, r.value * 2).code()});
  });
}

auto make_req(int value) {
  return [value](ReplyTo<int> to) {
    Req r;
    r.value = value;
    r.to = to;
    return r;
  };
}

auto make_slow_req(int value, int delay_ms) {
  return [value, delay_ms](ReplyTo<int> to) {
    Req r;
    r.value = value;
    r.to = to;
    r.delay_ms = delay_ms;
    return r;
  };
}

Req reply_now() {
  Req r;
  r.reply_now = true;
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------
// System::ask

TEST_CASE("System::ask from a plain thread returns what the target replies through ReplyTo") {
  Log<Errc> codes;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);

  SECTION("an int") {
    auto d = spawn_doubler(sys, 1, codes);
    REQUIRE(d.ok());
    for (int i = 0; i < 10; ++i) {
      auto r = sys.ask<int>(*d, make_req(i), 10s);
      REQUIRE(r.ok());
      REQUIRE(*r == 2 * i);
    }
    // The replier records its result after reply() returned, which may be
    // after the asker woke.
    REQUIRE(test::wait_for([&] { return codes.size() == 10; }));
    REQUIRE(codes.get() == std::vector<Errc>(10, Errc::Ok));
  }

  SECTION("a std::string too long for the small-string buffer") {
    struct StrReq {
      int n;
      ReplyTo<std::string> to;
    };
    auto s = spawn_scripted<StrReq>(sys, 0, nullptr, [&](Context<StrReq>& ctx, StrReq& r) {
      codes.push(ctx.reply(r.to, std::string(static_cast<std::size_t>(r.n), 'x')).code());
    });
    REQUIRE(s.ok());
    auto r = sys.ask<std::string>(*s, [](ReplyTo<std::string> to) { return StrReq{200, to}; }, 10s);
    REQUIRE(r.ok());
    REQUIRE(*r == std::string(200, 'x'));
    REQUIRE(test::wait_for([&] { return codes.size() == 1; }));
    REQUIRE(codes.get() == std::vector<Errc>{Errc::Ok});
  }

  SECTION("a second reply to the same request is refused with Dead") {
    auto twice = spawn_scripted<Req>(sys, 1, nullptr, [&](Context<Req>& ctx, Req& r) {
      codes.push(ctx.reply(r.to, 1).code());
      codes.push(ctx.reply(r.to, 2).code());
    });
    REQUIRE(twice.ok());
    auto r = sys.ask<int>(*twice, make_req(0), 10s);
    REQUIRE(r.ok());
    REQUIRE(*r == 1);
    REQUIRE(test::wait_for([&] { return codes.size() == 2; }));
    REQUIRE(codes.get() == std::vector<Errc>{Errc::Ok, Errc::Dead});
  }

  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("System::ask returns Timeout when the target never replies") {
  Log<Errc> codes;
  std::atomic<int> requests{0};
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto h = spawn_holder(sys, 1, codes, requests);
  REQUIRE(h.ok());

  SECTION("a short timeout") {
    auto r = sys.ask<int>(*h, make_req(1), 20ms);
    REQUIRE(r.code() == Errc::Timeout);
  }
  SECTION("a zero timeout") {
    auto r = sys.ask<int>(*h, make_req(1), 0ns);
    REQUIRE(r.code() == Errc::Timeout);
  }
  SECTION("a negative timeout") {
    auto r = sys.ask<int>(*h, make_req(1), -5ms);
    REQUIRE((r.code() == Errc::Timeout || r.code() == Errc::InvalidArgument));
  }

  REQUIRE(sys.alive(*h));
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a reply after the asker timed out is refused with Dead and leaks nothing") {
  Log<Errc> holder_codes;
  Log<Errc> doubler_codes;
  std::atomic<int> requests{0};
  SystemConfig cfg;
  cfg.workers = 1;
  cfg.pending_asks = 2;
  // Room for the worker's block cache (64) and a little more: a message
  // block lost per ask would run this pool dry long before the end.
  cfg.message_blocks[0] = 128;
  System sys(cfg);
  auto h = spawn_holder(sys, 0, holder_codes, requests);
  REQUIRE(h.ok());
  auto d = spawn_doubler(sys, 0, doubler_codes);
  REQUIRE(d.ok());

  const int rounds = 200 / kScale;
  for (int i = 0; i < rounds; ++i) {
    auto r = sys.ask<int>(*h, make_req(i), 1ms);
    REQUIRE(r.code() == Errc::Timeout);
    REQUIRE(test::wait_for([&] { return requests.load() == i + 1; }));
    REQUIRE(sys.send(*h, reply_now()).ok());
    REQUIRE(test::wait_for([&] { return holder_codes.size() == static_cast<std::size_t>(i + 1); }));
    REQUIRE(holder_codes.get().back() == Errc::Dead);
  }

  // The two pending-ask entries and the message blocks are all reusable.
  for (int i = 0; i < 1000; ++i) {
    auto r = sys.ask<int>(*d, make_req(i), 10s);
    REQUIRE(r.ok());
    REQUIRE(*r == 2 * i);
  }
  const auto st = sys.stats();
  REQUIRE(st.live_actors == 2);
  REQUIRE(st.stopped == 0);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("a reply racing with System::ask's timeout is either received or refused, never both") {
  Log<ReplyRecord> replies;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 2;
  System sys(cfg);
  auto s = spawn_slow_replier(sys, 1, replies);
  REQUIRE(s.ok());

  const int iterations = 300 / kScale;
  int received = 0;
  int timed_out = 0;
  for (int i = 0; i < iterations; ++i) {
    const int delay = i % 4;                                 // 0..3 ms before the reply
    const auto timeout = std::chrono::microseconds(500 + (i % 7) * 500);  // 0.5..3.5 ms
    auto r = sys.ask<int>(*s, make_slow_req(i, delay), timeout);
    REQUIRE((r.ok() || r.code() == Errc::Timeout));
    // Wait for the replier's own verdict on this request.
    REQUIRE(test::wait_for([&] { return replies.size() == static_cast<std::size_t>(i + 1); }));
    const ReplyRecord rec = replies.get().back();
    REQUIRE(rec.value == i);
    if (r.ok()) {
      ++received;
      REQUIRE(*r == 2 * i);
      REQUIRE(rec.code == Errc::Ok);
    } else {
      ++timed_out;
      REQUIRE(rec.code == Errc::Dead);
    }
  }
  REQUIRE(received + timed_out == iterations);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("System::ask to an actor that is not there fails without taking a pending entry") {
  Log<Errc> codes;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 1;
  System sys(cfg);
  auto d = spawn_doubler(sys, 0, codes);
  REQUIRE(d.ok());
  auto gone = spawn_doubler(sys, 1, codes);
  REQUIRE(gone.ok());
  REQUIRE(sys.stop(*gone).ok());
  REQUIRE(test::wait_for([&] { return !sys.alive(*gone); }));

  SECTION("a stopped actor: Dead") {
    for (int i = 0; i < 3; ++i) REQUIRE(sys.ask<int>(*gone, make_req(1), 10s).code() == Errc::Dead);
  }
  SECTION("an empty handle: InvalidArgument") {
    for (int i = 0; i < 3; ++i)
      REQUIRE(sys.ask<int>(ActorRef<Req>{}, make_req(1), 10s).code() == Errc::InvalidArgument);
  }

  // The only pending entry is free again.
  auto r = sys.ask<int>(*d, make_req(4), 10s);
  REQUIRE(r.ok());
  REQUIRE(*r == 8);
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("System::ask returns Full when every pending-ask entry is in use") {
  Log<Errc> holder_codes;
  Log<Errc> doubler_codes;
  std::atomic<int> requests{0};
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 1;
  System sys(cfg);
  auto h = spawn_holder(sys, 1, holder_codes, requests);
  REQUIRE(h.ok());
  auto d = spawn_doubler(sys, 0, doubler_codes);
  REQUIRE(d.ok());

  std::atomic<bool> done{false};
  Errc first_code = Errc::Ok;
  int first_value = -1;
  std::thread asker([&] {
    auto r = sys.ask<int>(*h, make_req(1), 20s);
    first_code = r.code();
    if (r) first_value = *r;
    done.store(true);
  });
  // Once the holder has the request, the only entry is taken.
  REQUIRE(test::wait_for([&] { return requests.load() == 1; }));
  const Errc second = sys.ask<int>(*d, make_req(2), 10s).code();
  REQUIRE(sys.send(*h, reply_now()).ok());
  const bool finished = test::wait_for([&] { return done.load(); });
  if (!finished) (void)sys.shutdown();  // unblocks the asker before the join
  asker.join();
  REQUIRE(finished);
  REQUIRE(second == Errc::Full);
  REQUIRE(first_code == Errc::Ok);
  REQUIRE(first_value == 5);
  REQUIRE(test::wait_for([&] { return holder_codes.size() == 1; }));
  REQUIRE(holder_codes.get() == std::vector<Errc>{Errc::Ok});

  auto r = sys.ask<int>(*d, make_req(3), 10s);
  REQUIRE(r.ok());
  REQUIRE(*r == 6);
  REQUIRE(test::wait_for([&] { return doubler_codes.size() == 1; }));  // the refused ask sent nothing
  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("System::ask called from inside an actor handler returns WouldDeadlock") {
  Log<Errc> codes;
  Log<Errc> doubler_codes;
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 1;
  System sys(cfg);
  auto d = spawn_doubler(sys, 1, doubler_codes);
  REQUIRE(d.ok());
  const ActorRef<Req> to = *d;

  SECTION("from on_start") {
    auto a = spawn_scripted<int>(sys, 0, [&, to](Context<int>& ctx) {
      codes.push(ctx.system().ask<int>(to, make_req(1), 1s).code());
    }, nullptr);
    REQUIRE(a.ok());
  }
  SECTION("from on_message, asking an actor of the same worker") {
    auto a = spawn_scripted<int>(sys, 1, nullptr, [&, to](Context<int>& ctx, int&) {
      codes.push(ctx.system().ask<int>(to, make_req(1), 1s).code());
    });
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, 0).ok());
  }

  REQUIRE(test::wait_for([&] { return codes.size() == 1; }));
  REQUIRE(codes.get() == std::vector<Errc>{Errc::WouldDeadlock});
  // Nothing was sent and the only pending entry is still free.
  auto r = sys.ask<int>(to, make_req(7), 10s);
  REQUIRE(r.ok());
  REQUIRE(*r == 14);
  REQUIRE(test::wait_for([&] { return doubler_codes.size() == 1; }));
  REQUIRE(doubler_codes.get() == std::vector<Errc>{Errc::Ok});
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// Context::ask

namespace {

// Asks for `value`, or, with sentinel_ms > 0, only arms a sentinel.
struct Start {
  int value = 0;
  int sentinel_ms = 0;
};
struct Sentinel {};
using AskerMsg = std::variant<Start, Sentinel, Reply<int>>;

struct Received {
  std::uint64_t request;
  Errc code;
  int value;
};

// Asks `to` with the given timeout on each Start; records the ids ask()
// returned (or its error) and every Reply. After each Reply it arms a
// sentinel `sentinel_after` later; `sentinels` counts them.
struct AskerLogs {
  Log<std::uint64_t> asked;
  Log<Errc> ask_codes;
  Log<Received> replies;
  std::atomic<int> sentinels{0};
};

Result<ActorRef<AskerMsg>> spawn_asker(System& sys, int worker, ActorRef<Req> to,
                                       std::chrono::nanoseconds timeout,
                                       std::chrono::milliseconds sentinel_after, AskerLogs& logs) {
  return spawn_scripted<AskerMsg>(sys, worker, nullptr, [=, &logs](Context<AskerMsg>& ctx, AskerMsg& m) {
    if (auto* s = std::get_if<Start>(&m)) {
      if (s->sentinel_ms > 0) {
        (void)ctx.send_after(ctx.self(), Sentinel{}, std::chrono::milliseconds(s->sentinel_ms));
        return;
      }
      auto id = ctx.ask<int>(to, make_req(s->value), timeout);
      logs.ask_codes.push(id.code());
      if (id) logs.asked.push(*id);
    } else if (auto* r = std::get_if<Reply<int>>(&m)) {
      logs.replies.push({r->request, r->result.code(), r->result.ok() ? r->result.value() : -1});
      (void)ctx.send_after(ctx.self(), Sentinel{}, sentinel_after);
    } else {
      logs.sentinels.fetch_add(1);
    }
  });
}

}  // namespace

TEST_CASE("Context::ask delivers exactly one Reply carrying the request id: the value or Timeout") {
  AskerLogs logs;
  Log<Errc> target_codes;
  std::atomic<int> requests{0};
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);

  // Each Reply arms a sentinel 400 ms later, past the 300 ms timeout: had
  // the timeout also been delivered, it would come before the sentinel.
  // (The timeout leaves room for a slow reply under the sanitizers on a
  // loaded machine: with 20 ms, a reply came after it once.)
  SECTION("the target replies (other worker)") {
    auto d = spawn_doubler(sys, 1, target_codes);
    REQUIRE(d.ok());
    auto a = spawn_asker(sys, 0, *d, 300ms, 400ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{21}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 1; }));
    REQUIRE(logs.ask_codes.get() == std::vector<Errc>{Errc::Ok});
    const auto replies = logs.replies.get();
    REQUIRE(replies.size() == 1);
    REQUIRE(replies[0].request == logs.asked.get()[0]);
    REQUIRE(replies[0].code == Errc::Ok);
    REQUIRE(replies[0].value == 42);
    REQUIRE(test::wait_for([&] { return target_codes.size() == 1; }));
    REQUIRE(target_codes.get() == std::vector<Errc>{Errc::Ok});
  }

  SECTION("the target replies (same worker)") {
    auto d = spawn_doubler(sys, 0, target_codes);
    REQUIRE(d.ok());
    auto a = spawn_asker(sys, 0, *d, 300ms, 400ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{5}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 1; }));
    const auto replies = logs.replies.get();
    REQUIRE(replies.size() == 1);
    REQUIRE(replies[0].request == logs.asked.get()[0]);
    REQUIRE(replies[0].code == Errc::Ok);
    REQUIRE(replies[0].value == 10);
  }

  SECTION("the target never replies, then replies late") {
    auto h = spawn_holder(sys, 1, target_codes, requests);
    REQUIRE(h.ok());
    auto a = spawn_asker(sys, 0, *h, 20ms, 5ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{1}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 1; }));
    auto replies = logs.replies.get();
    REQUIRE(replies.size() == 1);
    REQUIRE(replies[0].request == logs.asked.get()[0]);
    REQUIRE(replies[0].code == Errc::Timeout);

    // The late reply is refused and never reaches the asker.
    REQUIRE(requests.load() == 1);
    REQUIRE(sys.send(*h, reply_now()).ok());
    REQUIRE(test::wait_for([&] { return target_codes.size() == 1; }));
    REQUIRE(target_codes.get() == std::vector<Errc>{Errc::Dead});
    REQUIRE(sys.send(*a, AskerMsg{Sentinel{}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 2; }));
    REQUIRE(logs.replies.size() == 1);
  }

  SECTION("two asks in a row get two Replies with their own ids") {
    auto d = spawn_doubler(sys, 1, target_codes);
    REQUIRE(d.ok());
    auto a = spawn_asker(sys, 0, *d, 300ms, 400ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{1}}).ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{2}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 2; }));
    const auto asked = logs.asked.get();
    REQUIRE(asked.size() == 2);
    REQUIRE(asked[0] != asked[1]);
    std::map<std::uint64_t, int> by_id;
    for (const auto& r : logs.replies.get()) {
      REQUIRE(r.code == Errc::Ok);
      by_id[r.request] = r.value;
    }
    REQUIRE(by_id.size() == 2);
    REQUIRE(by_id[asked[0]] == 2);
    REQUIRE(by_id[asked[1]] == 4);
  }

  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("Context::ask fails at once, with no Reply later, when the request cannot be made") {
  AskerLogs logs;
  Log<Errc> target_codes;
  std::atomic<int> requests{0};
  SystemConfig cfg;
  cfg.workers = 2;

  SECTION("the target has stopped: Dead") {
    System sys(cfg);
    auto d = spawn_doubler(sys, 1, target_codes);
    REQUIRE(d.ok());
    REQUIRE(sys.stop(*d).ok());
    REQUIRE(test::wait_for([&] { return !sys.alive(*d); }));
    auto a = spawn_asker(sys, 0, *d, 5ms, 5ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{1}}).ok());
    REQUIRE(test::wait_for([&] { return logs.ask_codes.size() == 1; }));
    REQUIRE(logs.ask_codes.get() == std::vector<Errc>{Errc::Dead});
    // A timeout left armed would fire 5 ms after the ask; a sentinel armed
    // afterwards for 50 ms fires later on the same timer wheel.
    REQUIRE(sys.send(*a, AskerMsg{Start{0, 50}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 1; }));
    REQUIRE(logs.replies.size() == 0);
    REQUIRE(sys.shutdown().ok());
  }

  SECTION("every pending entry is in use: Full, and the first ask still gets its one Reply") {
    cfg.pending_asks = 1;
    System sys(cfg);
    auto h = spawn_holder(sys, 1, target_codes, requests);
    REQUIRE(h.ok());
    auto a = spawn_asker(sys, 0, *h, 10s, 5ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{1}}).ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{2}}).ok());
    REQUIRE(test::wait_for([&] { return logs.ask_codes.size() == 2; }));
    REQUIRE(logs.ask_codes.get() == std::vector<Errc>{Errc::Ok, Errc::Full});
    REQUIRE(test::wait_for([&] { return requests.load() == 1; }));
    REQUIRE(sys.send(*h, reply_now()).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 1; }));
    const auto replies = logs.replies.get();
    REQUIRE(replies.size() == 1);
    REQUIRE(replies[0].request == logs.asked.get()[0]);
    REQUIRE(replies[0].code == Errc::Ok);
    REQUIRE(replies[0].value == 5);
    REQUIRE(test::wait_for([&] { return target_codes.size() == 1; }));
    REQUIRE(target_codes.get() == std::vector<Errc>{Errc::Ok});
    REQUIRE(sys.shutdown().ok());
  }
}

TEST_CASE("a reply racing with a Context::ask timeout still yields exactly one Reply per ask") {
  Log<ReplyRecord> replier_log;
  Log<std::uint64_t> asked;
  Log<Errc> ask_codes;
  Log<Received> replies;
  std::atomic<bool> finished{false};
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 8;
  System sys(cfg);

  auto s = spawn_slow_replier(sys, 1, replier_log);
  REQUIRE(s.ok());
  const ActorRef<Req> to = *s;

  // Rounds of four asks with timeouts 0..3 ms; the replier answers each
  // after 0..3 ms (varying by round). The next round starts once all four
  // Replies came; the last round ends with a sentinel past every timeout.
  constexpr int kPerRound = 4;
  const int rounds = 200 / kScale;
  struct State {
    int round = 0;
    int pending = 0;
  };
  auto state = std::make_shared<State>();
  auto start_round = [=, &asked, &ask_codes](Context<AskerMsg>& ctx) {
    for (int k = 0; k < kPerRound; ++k) {
      const int value = state->round * kPerRound + k;
      const int delay = (state->round + k) % 4;
      auto id = ctx.ask<int>(to, make_slow_req(value, delay), std::chrono::milliseconds(k));
      ask_codes.push(id.code());
      if (id) {
        asked.push(*id);
        ++state->pending;
      }
    }
  };
  auto a = spawn_scripted<AskerMsg>(
      sys, 0, start_round, [=, &replies, &finished](Context<AskerMsg>& ctx, AskerMsg& m) {
        if (auto* r = std::get_if<Reply<int>>(&m)) {
          replies.push({r->request, r->result.code(), r->result.ok() ? r->result.value() : -1});
          if (--state->pending == 0) {
            if (++state->round < rounds) {
              start_round(ctx);
            } else {
              (void)ctx.send_after(ctx.self(), Sentinel{}, 50ms);
            }
          }
        } else if (std::holds_alternative<Sentinel>(m)) {
          finished.store(true);
        }
      });
  REQUIRE(a.ok());
  REQUIRE(test::wait_for([&] { return finished.load(); }, std::chrono::seconds(60)));
  const std::size_t total = static_cast<std::size_t>(rounds * kPerRound);
  // Every request reaches the replier, which answers each exactly once.
  REQUIRE(test::wait_for([&] { return replier_log.size() == total; }));

  for (Errc c : ask_codes.get()) REQUIRE(c == Errc::Ok);
  const auto ids = asked.get();
  REQUIRE(ids.size() == total);
  std::map<std::uint64_t, int> count;
  for (auto id : ids) count[id] = 0;
  REQUIRE(count.size() == total);  // request ids are distinct
  int values = 0;
  int timeouts = 0;
  for (const auto& r : replies.get()) {
    REQUIRE(count.count(r.request) == 1);
    ++count[r.request];
    if (r.code == Errc::Ok) {
      ++values;
      REQUIRE(r.value % 2 == 0);
    } else {
      REQUIRE(r.code == Errc::Timeout);
      ++timeouts;
    }
  }
  for (const auto& [id, n] : count) {
    INFO("request " << id);
    REQUIRE(n == 1);
  }
  int replied_ok = 0;
  int refused = 0;
  for (const auto& r : replier_log.get()) {
    if (r.code == Errc::Ok) {
      ++replied_ok;
    } else {
      REQUIRE(r.code == Errc::Dead);
      ++refused;
    }
  }
  REQUIRE(values == replied_ok);
  REQUIRE(timeouts == refused);
  REQUIRE(sys.shutdown().ok());
}

// ---------------------------------------------------------------------------
// A reply that fails while it holds the request

namespace {

// A reply value whose every move or copy takes `move_ms`: a replier moving
// it into the asker's Reply holds the request (its claim) that long, and
// sets `*moving` as it starts. Built from a SlowArg at once, before the
// replier claims the request.
struct SlowArg {
  int value = 0;
  int move_ms = 0;
  std::atomic<bool>* moving = nullptr;
};
struct SlowRep {
  int value = 0;
  int move_ms = 0;
  std::atomic<bool>* moving = nullptr;
  explicit SlowRep(SlowArg a) : value(a.value), move_ms(a.move_ms), moving(a.moving) {}
  SlowRep(const SlowRep& o) : value(o.value), move_ms(o.move_ms), moving(o.moving) { pause(); }
  SlowRep(SlowRep&& o) noexcept : value(o.value), move_ms(o.move_ms), moving(o.moving) { pause(); }
  SlowRep& operator=(const SlowRep&) = default;
  SlowRep& operator=(SlowRep&&) = default;
  void pause() const {
    if (moving != nullptr) moving->store(true);
    if (move_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(move_ms));
  }
};

struct SlowReq {
  ReplyTo<SlowRep> to;
  int value = 0;
  int move_ms = 0;
  int attempts = 0;  // replies that failed with Full so far
  std::atomic<bool>* moving = nullptr;
};

// The asker's messages are padded into the 512-byte class, so that a test
// can exhaust that class alone: a reply to the asker then fails with Full
// while every other message still finds a block.
struct Go {};
struct Pad {
  char bytes[400] = {};
};
using BigMsg = std::variant<Go, Pad, Reply<SlowRep>>;
constexpr std::size_t kBigClass = detail::size_class_for(detail::kNodePayload + sizeof(BigMsg));
static_assert(kBigClass == 3, "the asker's messages must be alone in the 512-byte class");

struct SlowReceived {
  std::uint64_t request;
  Errc code;
  int value;
};

// Answers each request with SlowRep{2 * value, move_ms}; a reply that
// fails with Full is tried again 1 ms later, up to `retries` times. Logs
// the final verdict of each request.
Result<ActorRef<SlowReq>> spawn_slow_rep_replier(System& sys, int worker, Log<Errc>& verdicts, int retries) {
  return spawn_scripted<SlowReq>(sys, worker, nullptr, [&verdicts, retries](Context<SlowReq>& ctx, SlowReq& r) {
    const Errc code = ctx.reply(r.to, SlowArg{2 * r.value, r.move_ms, r.moving}).code();
    if (code == Errc::Full && r.attempts < retries) {
      SlowReq again = r;
      ++again.attempts;
      if (ctx.send_after(ctx.self(), again, 1ms)) return;
    }
    verdicts.push(code);
  });
}

}  // namespace

TEST_CASE("Context::ask still gets its Timeout when the timeout fires while a reply that then fails holds the request") {
  Log<Errc> verdicts;
  Log<Errc> ask_codes;
  Log<SlowReceived> replies;
  std::atomic<bool> moving{false};
  std::atomic<int> grabbed{0};
  SystemConfig cfg;
  cfg.workers = 3;
  // Four blocks, none cached (under two per worker): the ask's timeout
  // message takes one, and a hog takes every other one, at once and again
  // whenever one comes free, so the reply never finds one.
  cfg.message_blocks[kBigClass] = 4;
  System sys(cfg);
  Gate hog_go;
  Gate hog_done;
  OpenOnExit stop_hog{hog_done};
  OpenOnExit start_hog{hog_go};
  auto hog = spawn_scripted<BigMsg>(
      sys, 2,
      [&](Context<BigMsg>& ctx) {
        hog_go.wait();
        while (!hog_done.open.load()) {
          if (ctx.send_after(ctx.self(), BigMsg{Pad{}}, 1h)) grabbed.fetch_add(1); else std::this_thread::yield();
        }
      },
      nullptr);
  REQUIRE(hog.ok());
  auto rep = spawn_slow_rep_replier(sys, 1, verdicts, 0);
  REQUIRE(rep.ok());
  const ActorRef<SlowReq> to = *rep;
  // The asker's worker fires its timers only between turns: on_start
  // returns once the replier holds the request (it is in the first of two
  // 60 ms moves) and the hog has every free block, so the 1 ms timeout
  // fires while the reply that is about to fail holds the request.
  auto a = spawn_scripted<BigMsg>(
      sys, 0,
      [&, to](Context<BigMsg>& ctx) {
        auto id = ctx.ask<SlowRep>(
            to, [&moving](ReplyTo<SlowRep> rt) { return SlowReq{rt, 21, 60, 0, &moving}; }, 1ms);
        ask_codes.push(id.code());
        hog_go.release();
        const auto end = std::chrono::steady_clock::now() + 10s;  // a hang guard only
        while ((!moving.load() || grabbed.load() < 3) && std::chrono::steady_clock::now() < end)
          std::this_thread::yield();
      },
      [&](Context<BigMsg>&, BigMsg& m) {
        if (auto* r = std::get_if<Reply<SlowRep>>(&m))
          replies.push({r->request, r->result.code(), r->result.ok() ? r->result.value().value : -1});
      });
  REQUIRE(a.ok());
  REQUIRE(test::wait_for([&] { return verdicts.size() == 1; }));
  REQUIRE(ask_codes.get() == std::vector<Errc>{Errc::Ok});
  REQUIRE(grabbed.load() >= 3);
  // The reply held the request and failed for lack of a block...
  REQUIRE(verdicts.get() == std::vector<Errc>{Errc::Full});
  // ...so the timeout, which fired meanwhile, is the one Reply.
  REQUIRE(test::wait_for([&] { return replies.size() == 1; }));
  REQUIRE(replies.get()[0].code == Errc::Timeout);
  REQUIRE(test::wait_for([&] { return sys.pool_usage().pending_asks == 0; }));
  hog_done.release();
  REQUIRE(sys.shutdown().ok());
  REQUIRE(replies.size() == 1);
  const PoolUsage left = sys.pool_usage();
  CHECK(left.message_blocks == 0);
  CHECK(left.pending_asks == 0);
}

TEST_CASE("under racing replies, failed replies, retries and timeouts each Context::ask gets exactly one Reply and nothing leaks") {
  Log<Errc> verdicts;
  Log<Errc> ask_codes;
  Log<std::uint64_t> asked;
  Log<SlowReceived> replies;
  std::atomic<int> outstanding{0};
  std::atomic<int> rounds_started{0};
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.pending_asks = 16;
  // Few enough blocks that replies (and sometimes asks) find the asker's
  // class exhausted: timeout messages of cancelled timers hold theirs
  // until their tick.
  cfg.message_blocks[kBigClass] = 9;
  System sys(cfg);
  auto rep = spawn_slow_rep_replier(sys, 1, verdicts, 2);
  REQUIRE(rep.ok());
  const ActorRef<SlowReq> to = *rep;
  constexpr int kPerRound = 4;
  auto round = std::make_shared<int>(0);
  auto a = spawn_scripted<BigMsg>(
      sys, 0, nullptr, [&, to, round](Context<BigMsg>& ctx, BigMsg& m) {
        if (std::holds_alternative<Go>(m)) {
          const int r = (*round)++;
          for (int k = 0; k < kPerRound; ++k) {
            const auto timeout = std::chrono::microseconds(((r * 7 + k * 3) % 9) * 400);  // 0..3.2 ms
            const int move_ms = (r + k) % 3;                                             // 0..2 ms a move
            const int value = r * kPerRound + k;
            auto id = ctx.ask<SlowRep>(
                to, [value, move_ms](ReplyTo<SlowRep> rt) { return SlowReq{rt, value, move_ms, 0, nullptr}; },
                timeout);
            ask_codes.push(id.code());
            if (id) {
              asked.push(*id);
              outstanding.fetch_add(1);
            }
          }
          rounds_started.fetch_add(1);
        } else if (auto* r = std::get_if<Reply<SlowRep>>(&m)) {
          replies.push({r->request, r->result.code(), r->result.ok() ? r->result.value().value : -1});
          outstanding.fetch_sub(1);
        }
      });
  REQUIRE(a.ok());
  const int rounds = 150 / kScale;
  for (int r = 0; r < rounds; ++r) {
    // The Go itself needs a block of the exhausted class: try until one frees.
    REQUIRE(test::wait_for([&] { return sys.send(*a, BigMsg{Go{}}).ok(); }));
    INFO("round " << r);
    REQUIRE(test::wait_for([&] { return rounds_started.load() == r + 1 && outstanding.load() == 0; }));
  }

  std::map<std::uint64_t, int> count;
  for (auto id : asked.get()) count[id] = 0;
  REQUIRE(count.size() == asked.size());  // request ids are distinct
  for (Errc c : ask_codes.get()) REQUIRE((c == Errc::Ok || c == Errc::Full));
  int values = 0;
  for (const auto& r : replies.get()) {
    REQUIRE(count.count(r.request) == 1);
    ++count[r.request];
    if (r.code == Errc::Ok) {
      ++values;
      REQUIRE(r.value % 2 == 0);
    } else {
      REQUIRE(r.code == Errc::Timeout);
    }
  }
  for (const auto& [id, n] : count) {
    INFO("request " << id);
    REQUIRE(n == 1);
  }
  // Every request reached the replier: one verdict each; its successful
  // replies are exactly the values received.
  REQUIRE(test::wait_for([&] { return verdicts.size() == asked.size(); }));
  int replied_ok = 0;
  for (Errc c : verdicts.get()) {
    REQUIRE((c == Errc::Ok || c == Errc::Full || c == Errc::Dead));
    if (c == Errc::Ok) ++replied_ok;
  }
  REQUIRE(values == replied_ok);
  REQUIRE(sys.shutdown().ok());
  const PoolUsage left = sys.pool_usage();
  CHECK(left.message_blocks == 0);
  CHECK(left.pending_asks == 0);
}

// ---------------------------------------------------------------------------
// Timeouts at the ends of the range

TEST_CASE("an ask with the longest timeout waits for its reply, and a negative timeout is refused") {
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);

  SECTION("System::ask") {
    Log<ReplyRecord> out;
    auto s = spawn_slow_replier(sys, 1, out);
    REQUIRE(s.ok());
    // Answered 5 ms later: a deadline that overflowed would have passed.
    auto r = sys.ask<int>(*s, make_slow_req(3, 5), std::chrono::nanoseconds::max());
    REQUIRE(r.code() == Errc::Ok);
    REQUIRE(*r == 6);
    REQUIRE(sys.ask<int>(*s, make_req(5), -1ms).code() == Errc::InvalidArgument);
    REQUIRE(sys.ask<int>(*s, make_req(6), std::chrono::nanoseconds::min()).code() == Errc::InvalidArgument);
    REQUIRE(sys.pool_usage().pending_asks == 0);
    // The refused asks sent nothing: the replier sees 3, then 7.
    r = sys.ask<int>(*s, make_req(7), std::chrono::nanoseconds::max());
    REQUIRE(r.code() == Errc::Ok);
    REQUIRE(test::wait_for([&] { return out.size() == 2; }));
    const auto seen = out.get();
    REQUIRE(seen[0].value == 3);
    REQUIRE(seen[1].value == 7);
  }

  SECTION("Context::ask") {
    AskerLogs logs;
    Log<Errc> target_codes;
    std::atomic<int> requests{0};
    auto h = spawn_holder(sys, 1, target_codes, requests);
    REQUIRE(h.ok());
    auto a = spawn_asker(sys, 0, *h, std::chrono::nanoseconds::max(), 1ms, logs);
    REQUIRE(a.ok());
    REQUIRE(sys.send(*a, AskerMsg{Start{1}}).ok());
    REQUIRE(test::wait_for([&] { return requests.load() == 1; }));
    // A sentinel 20 ms later on the same wheel: a timeout that overflowed
    // into the past would have been delivered before it.
    REQUIRE(sys.send(*a, AskerMsg{Start{0, 20}}).ok());
    REQUIRE(test::wait_for([&] { return logs.sentinels.load() == 1; }));
    REQUIRE(logs.replies.size() == 0);
    REQUIRE(sys.send(*h, reply_now()).ok());
    REQUIRE(test::wait_for([&] { return logs.replies.size() == 1; }));
    const auto replies = logs.replies.get();
    REQUIRE(replies[0].code == Errc::Ok);
    REQUIRE(replies[0].value == 5);

    AskerLogs refused;
    auto b = spawn_asker(sys, 0, *h, -1ms, 1ms, refused);
    REQUIRE(b.ok());
    auto c = spawn_asker(sys, 0, *h, std::chrono::nanoseconds::min(), 1ms, refused);
    REQUIRE(c.ok());
    REQUIRE(sys.send(*b, AskerMsg{Start{2}}).ok());
    REQUIRE(sys.send(*c, AskerMsg{Start{3}}).ok());
    REQUIRE(test::wait_for([&] { return refused.ask_codes.size() == 2; }));
    REQUIRE(refused.ask_codes.get() == std::vector<Errc>{Errc::InvalidArgument, Errc::InvalidArgument});
    REQUIRE(requests.load() == 1);
    REQUIRE(test::wait_for([&] { return sys.pool_usage().pending_asks == 0; }));
  }

  REQUIRE(sys.shutdown().ok());
}

TEST_CASE("asks with no deadline give their timer entries back: once answered, or once their asker stopped") {
  // Four timer entries on the askers' worker, twelve asks in each section.
  // Before, an ask with nanoseconds::max() kept its entry (and its
  // Timeout message) for good: the fifth ask was Full.
  // What the actors write into outlives the System (declared first).
  AskerLogs logs;
  Log<Errc> target_codes;
  std::atomic<int> requests{0};
  SystemConfig cfg;
  cfg.workers = 2;
  cfg.timers_per_worker = 4;
  System sys(cfg);

  SECTION("answered") {
    auto d = spawn_doubler(sys, 1, target_codes);
    REQUIRE(d.ok());
    auto a = spawn_asker(sys, 0, *d, std::chrono::nanoseconds::max(), 1ms, logs);
    REQUIRE(a.ok());
    for (int k = 0; k < 12; ++k) {
      REQUIRE(sys.send(*a, AskerMsg{Start{k}}).ok());
      REQUIRE(test::wait_for([&] { return logs.ask_codes.size() == static_cast<std::size_t>(k + 1); }));
      if (logs.ask_codes.get()[static_cast<std::size_t>(k)] != Errc::Ok) break;
      REQUIRE(test::wait_for([&] { return logs.replies.size() == static_cast<std::size_t>(k + 1); }));
      // The asker's own 1 ms timer after each reply has fired: its entry is free again.
      REQUIRE(test::wait_for([&] { return logs.sentinels.load() == k + 1; }));
    }
    CHECK(logs.ask_codes.get() == std::vector<Errc>(12, Errc::Ok));
    const auto replies = logs.replies.get();
    REQUIRE(replies.size() == 12);
    for (int k = 0; k < 12; ++k) {
      CHECK(replies[static_cast<std::size_t>(k)].code == Errc::Ok);
      CHECK(replies[static_cast<std::size_t>(k)].value == 2 * k);
    }
  }

  SECTION("unanswered, and the asker stopped") {
    auto h = spawn_holder(sys, 1, target_codes, requests);  // keeps requests, answers none
    REQUIRE(h.ok());
    Log<Errc> codes;
    for (int k = 0; k < 12; ++k) {
      AskerLogs round;  // this round's asker is gone before it is
      auto a = spawn_asker(sys, 0, *h, std::chrono::nanoseconds::max(), 1ms, round);
      REQUIRE(a.ok());
      REQUIRE(sys.send(*a, AskerMsg{Start{k}}).ok());
      REQUIRE(test::wait_for([&] { return round.ask_codes.size() == 1; }));
      codes.push(round.ask_codes.get()[0]);
      REQUIRE(sys.stop(*a).ok());
      REQUIRE(test::wait_for([&] { return sys.gone(a->id); }));
    }
    CHECK(codes.get() == std::vector<Errc>(12, Errc::Ok));
    CHECK(test::wait_for([&] { return requests.load() == 12; }));
    CHECK(target_codes.size() == 0);
  }

  REQUIRE(sys.shutdown().ok());
  CHECK(sys.pool_usage().pending_asks == 0);
  CHECK(sys.pool_usage().message_blocks == 0);
}

TEST_CASE("a ReplyTo of one System used with another is refused and answers nothing there") {
  // Both Systems have one ask outstanding at the same index of their
  // pending-ask tables; A's reply address must not answer B's ask.
  SystemConfig cfg;
  cfg.workers = 1;
  System a(cfg);
  System b(cfg);
  std::mutex mu;
  ReplyTo<int> kept_a{}, kept_b{};
  std::atomic<int> requests{0};
  auto keep = [&](ReplyTo<int>& slot) {
    return [&](Context<Req>&, Req& r) {
      std::lock_guard<std::mutex> lock(mu);
      slot = r.to;
      requests.fetch_add(1);
    };
  };
  auto ha = spawn_scripted<Req>(a, 0, nullptr, keep(kept_a));
  auto hb = spawn_scripted<Req>(b, 0, nullptr, keep(kept_b));
  REQUIRE(ha.ok());
  REQUIRE(hb.ok());

  Result<int> got_a = Error::make(Errc::Unavailable, "not asked"), got_b = got_a;
  std::thread ta([&] { got_a = a.ask<int>(*ha, make_req(1), 10s); });
  std::thread tb([&] { got_b = b.ask<int>(*hb, make_req(2), 300ms); });
  REQUIRE(test::wait_for([&] { return requests.load() == 2; }));

  ReplyTo<int> foreign;
  {
    std::lock_guard<std::mutex> lock(mu);
    foreign = kept_a;
  }
  CHECK_FALSE(b.reply(foreign, 99).ok());
  tb.join();
  REQUIRE_FALSE(got_b.ok());
  CHECK(got_b.code() == Errc::Timeout);

  // A's own reply still reaches A's asker.
  CHECK(a.reply(foreign, 7).ok());
  ta.join();
  REQUIRE(got_a.ok());
  CHECK(*got_a == 7);
  REQUIRE(a.shutdown().ok());
  REQUIRE(b.shutdown().ok());
}

// A lower bound, which holds on a machine of any speed: asks made at every
// phase of the 1 ms timer tick (a spin between them), to a target that
// never replies, each time out no sooner than their timeout after a clock
// read taken before the ask.
TEST_CASE("a Context::ask never times out before its timeout has passed, whatever the tick's phase") {
  constexpr int kAsks = 100;
  using Msg = std::variant<int, Reply<int>>;
  Log<Errc> codes;
  std::atomic<int> requests{0};
  std::vector<std::chrono::steady_clock::time_point> at(kAsks);
  std::vector<std::chrono::nanoseconds> timeout(kAsks);
  std::vector<std::uint64_t> ids(kAsks);
  Log<std::int64_t> early_by_ns;
  Log<Errc> ask_codes;
  Log<Errc> reply_codes;
  SystemConfig cfg;
  cfg.workers = 2;
  System sys(cfg);
  auto h = spawn_holder(sys, 1, codes, requests);
  REQUIRE(h.ok());
  const ActorRef<Req> holder = *h;
  auto a = spawn_scripted<Msg>(sys, 0, nullptr, [&, holder](Context<Msg>& ctx, Msg& m) {
    if (std::holds_alternative<int>(m)) {
      for (int k = 0; k < kAsks; ++k) {
        const auto spin_end = std::chrono::steady_clock::now() + std::chrono::microseconds(37);
        while (std::chrono::steady_clock::now() < spin_end) {
        }
        timeout[k] = std::chrono::microseconds(k % 2 == 0 ? 1000 * (1 + k % 3) : 150 + 233 * (k % 9));
        at[k] = std::chrono::steady_clock::now();
        auto id = ctx.ask<int>(holder, make_req(k), timeout[k]);
        ask_codes.push(id.code());  // checked on the test thread: Catch is not for workers
        if (id) ids[k] = *id;
      }
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    auto& r = std::get<Reply<int>>(m);
    reply_codes.push(r.result.code());
    for (int k = 0; k < kAsks; ++k)
      if (ids[k] == r.request) early_by_ns.push((at[k] + timeout[k] - now).count());
  });
  REQUIRE(a.ok());
  REQUIRE(sys.send(*a, Msg{0}).ok());
  REQUIRE(test::wait_for([&] { return ask_codes.size() == kAsks; }));
  for (Errc c : ask_codes.get()) REQUIRE(c == Errc::Ok);
  REQUIRE(test::wait_for([&] { return reply_codes.size() == kAsks; }));
  for (Errc c : reply_codes.get()) CHECK(c == Errc::Timeout);
  const auto early = early_by_ns.get();
  REQUIRE(early.size() == kAsks);
  int too_soon = 0;
  for (std::int64_t e : early) too_soon += e > 0 ? 1 : 0;
  CHECK(too_soon == 0);
  REQUIRE(sys.shutdown().ok());
}
