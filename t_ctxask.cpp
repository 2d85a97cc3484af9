// Context::ask from actors whose targets stop mid-ask; timers (send_after) vs stop vs shutdown.
#include "common.hpp"
#include <variant>
struct Req { ReplyTo<int> to; int mode; };
struct Kick {};
struct Tick { int v; };
using AMsg = std::variant<Kick, Reply<int>, Tick>;
std::atomic<std::uint64_t> rep_ok{0}, got_val{0}, got_to{0}, got_other{0}, dup{0}, unknown{0};
std::atomic<std::uint64_t> timers_ok{0}, ticks_handled{0}, timers_cancelled{0};
std::atomic<std::uint64_t> outstanding_at_stop{0}, asks_ok{0}, asks_err{0};
struct Replier : Actor<Req> {
  void on_message(Context<Req>& ctx, Req& r) override {
    switch (r.mode % 6) {
      case 0: case 1: case 2: if (ctx.reply(r.to, 42)) rep_ok++; break;
      case 3: ctx.stop(); break;
      case 4: ctx.fail(Error::make(Errc::Failed, "f")); break;
      default: break;
    }
  }
  ErrorAction on_error(Context<Req>&, const Error&) override { return ErrorAction::Restart; }
};
std::vector<std::atomic<std::uint64_t>>* g_reps;
struct Asker : Actor<AMsg> {
  static constexpr int K = 64;
  std::uint64_t pending[K] = {};
  std::uint32_t seed;
  int rounds = 0;
  explicit Asker(std::uint32_t s) : seed(s) {}
  std::uint32_t rnd() { seed = seed * 1103515245 + 12345; return seed >> 8; }
  void fire(Context<AMsg>& ctx) {
    for (int i = 0; i < K; ++i) {
      if (pending[i] != 0) continue;
      if (rnd() % 3) continue;
      auto to = ActorRef<Req>{ActorId::from_bits((*g_reps)[rnd() % g_reps->size()].load())};
      int mode = (int)rnd();
      auto r = ctx.ask<int>(to, [&](ReplyTo<int> rt) { return Req{rt, mode}; }, std::chrono::microseconds(200 + rnd() % 3000));
      if (r) { pending[i] = *r; asks_ok++; } else asks_err++;
    }
    // timers to self and to a random replier-less target: self
    auto t = ctx.send_after(ctx.self(), Tick{1}, std::chrono::milliseconds(rnd() % 4));
    if (t) { timers_ok++; if (rnd() % 4 == 0 && ctx.cancel(*t)) timers_cancelled++; }
  }
  void on_start(Context<AMsg>& ctx) override { fire(ctx); }
  void on_message(Context<AMsg>& ctx, AMsg& m) override {
    if (auto* rp = std::get_if<Reply<int>>(&m)) {
      int hit = -1;
      for (int i = 0; i < K; ++i) if (pending[i] == rp->request) { hit = i; break; }
      if (hit < 0) { unknown++; return; }
      pending[hit] = 0;
      if (rp->result) got_val++; else if (rp->result.code() == Errc::Timeout) got_to++; else got_other++;
    } else if (std::holds_alternative<Tick>(m)) {
      ticks_handled++;
      if (++rounds % 50 == 0 && (rnd() % 4 == 0)) { ctx.stop(); return; }
      fire(ctx);
    } else fire(ctx);
  }
  void on_stop(Context<AMsg>&, StopReason) override {
    for (int i = 0; i < K; ++i) if (pending[i]) outstanding_at_stop++;
  }
};
int main(int argc, char** argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 30;
  for (int it = 0; it < iters; ++it) {
    rep_ok = got_val = got_to = got_other = dup = unknown = 0;
    timers_ok = ticks_handled = timers_cancelled = outstanding_at_stop = asks_ok = asks_err = 0;
    SystemConfig cfg; cfg.workers = 2; cfg.actor_capacity = 256; cfg.pending_asks = 512; cfg.timers_per_worker = 1024;
    auto sys = System::create(cfg).value();
    std::vector<std::atomic<std::uint64_t>> reps(6);
    g_reps = &reps;
    for (auto& r : reps) r = sys->spawn<Replier>().value().id.to_bits();
    std::vector<ActorRef<AMsg>> askers;
    for (int i = 0; i < 6; ++i) askers.push_back(sys->spawn<Asker>((std::uint32_t)(i + 17 * it)).value());
    std::atomic<bool> go{true};
    std::thread stopper([&] {
      std::mt19937 rng(it);
      while (go.load()) {
        auto i = rng() % reps.size();
        (void)sys->stop(ActorId::from_bits(reps[i].load()));
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        auto n = sys->spawn<Replier>(); if (n) reps[i] = n->id.to_bits();
        if (rng() % 8 == 0) (void)sys->stop(askers[rng() % askers.size()]);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    bool quiesce = it % 2;
    if (quiesce) {
      go = false; stopper.join();
      // stop replier churn, let every pending ask resolve (max timeout 3.2ms)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      for (auto& a : askers) (void)sys->stop(a);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto sr = sys->shutdown(2s);
    CHECK(sr.ok(), "[it%d] shutdown %s", it, sr.error().message());
    if (!quiesce) { go = false; stopper.join(); }
    CHECK(unknown == 0, "[it%d] reply for unknown/duplicate request: %llu", it, (unsigned long long)unknown.load());
    CHECK(got_other == 0, "[it%d] reply with neither value nor Timeout: %llu", it, (unsigned long long)got_other.load());
    CHECK(got_val <= rep_ok, "[it%d] got_val %llu > rep_ok %llu", it, (unsigned long long)got_val.load(), (unsigned long long)rep_ok.load());
    if (quiesce) {
      // askers stopped only after everything resolved, except those stopped by the stopper/self-stop.
      CHECK(got_val + got_to + outstanding_at_stop == asks_ok, "[it%d] asks_ok=%llu val=%llu to=%llu outstanding_at_stop=%llu", it,
        (unsigned long long)asks_ok.load(), (unsigned long long)got_val.load(), (unsigned long long)got_to.load(), (unsigned long long)outstanding_at_stop.load());
    }
    check_after_shutdown(*sys, "ctxask", it);
    if (it < 2) std::printf("it%d asks=%llu val=%llu to=%llu rep_ok=%llu out@stop=%llu timers=%llu ticks=%llu canc=%llu dl=%llu\n", it,
      (unsigned long long)asks_ok.load(), (unsigned long long)got_val.load(), (unsigned long long)got_to.load(), (unsigned long long)rep_ok.load(),
      (unsigned long long)outstanding_at_stop.load(), (unsigned long long)timers_ok.load(), (unsigned long long)ticks_handled.load(),
      (unsigned long long)timers_cancelled.load(), (unsigned long long)sys->stats().dead_letters);
  }
  std::printf("%s t_ctxask iters=%d fails=%d\n", g_fail ? "FAIL" : "PASS", iters, g_fail.load());
  return g_fail ? 1 : 0;
}
