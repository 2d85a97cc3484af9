// The runtime's side of the messaging comparisons: ping-pong on one worker
// and across two, 4-to-1 fan-in, and spawn/handle/stop. Same shapes and
// batch sizes as the CAF peers in caf_peers.cpp, so one iteration is the
// same unit of work on both sides.

#include <airssys/rt/system.hpp>

#include "bench_support.hpp"

#include <variant>

namespace {

using namespace airssys;
using airssys::bench::AllocsPerOp;
using airssys::bench::BatchDone;

constexpr int kPingPongBatch = 10000;

struct Ball {
  ActorRef<int> from;
  int left;
};

struct Pong : Actor<Ball> {
  void on_message(Context<Ball>& ctx, Ball& b) override { (void)ctx.send(b.from, b.left); }
};

// Ping receives the remaining count: a new batch from the benchmark thread
// or a returning ball; at zero it signals the batch done.
struct Ping : Actor<int> {
  ActorRef<Ball> pong;
  BatchDone* done;
  Ping(ActorRef<Ball> p, BatchDone* d) : pong(p), done(d) {}
  void on_message(Context<int>& ctx, int& left) override {
    if (left == 0) {
      done->signal();
      return;
    }
    (void)ctx.send(pong, Ball{ctx.self(), left - 1});
  }
};

void pingpong(benchmark::State& state, int ping_worker, int pong_worker) {
  SystemConfig cfg;
  System sys(cfg);
  BatchDone done;
  auto pong = sys.spawn_with<Pong>(SpawnOptions{.worker = pong_worker}, [] { return Pong{}; });
  auto ping = sys.spawn_with<Ping>(SpawnOptions{.worker = ping_worker},
                                   [p = *pong, d = &done] { return Ping(p, d); });
  AllocsPerOp allocs;
  while (state.KeepRunningBatch(kPingPongBatch)) {
    const auto seen = done.current();
    (void)sys.send(*ping, kPingPongBatch);
    done.wait_past(seen);
  }
  allocs.report(state);
}

void BM_rt_pingpong_same_worker(benchmark::State& state) { pingpong(state, 0, 0); }
void BM_rt_pingpong_cross_worker(benchmark::State& state) { pingpong(state, 0, 1); }

// ---------------------------------------------------------------------------

constexpr int kFanInProducers = 4;
constexpr int kFanInBatch = 10000;
constexpr int kFanInShare = kFanInBatch / kFanInProducers;

struct Consumer : Actor<int> {
  BatchDone* done;
  int seen = 0;
  explicit Consumer(BatchDone* d) : done(d) {}
  void on_message(Context<int>&, int&) override {
    if (++seen == kFanInBatch) {
      seen = 0;
      done->signal();
    }
  }
};

struct Producer : Actor<int> {
  ActorRef<int> consumer;
  explicit Producer(ActorRef<int> c) : consumer(c) {}
  void on_message(Context<int>& ctx, int& count) override {
    for (int i = 0; i < count; ++i) (void)ctx.send(consumer, i);
  }
};

void BM_rt_fanin_4to1(benchmark::State& state) {
  SystemConfig cfg;
  System sys(cfg);
  BatchDone done;
  // Room for a whole batch: CAF's mailboxes are unbounded, so neither side
  // refuses or blocks.
  auto consumer = sys.spawn_with<Consumer>(SpawnOptions{.mailbox_capacity = 2 * kFanInBatch},
                                           [d = &done] { return Consumer(d); });
  ActorRef<int> producers[kFanInProducers];
  for (auto& p : producers) p = *sys.spawn<Producer>(*consumer);
  AllocsPerOp allocs;
  while (state.KeepRunningBatch(kFanInBatch)) {
    const auto seen = done.current();
    for (auto& p : producers) (void)sys.send(p, kFanInShare);
    done.wait_past(seen);
  }
  allocs.report(state);
}

// ---------------------------------------------------------------------------

constexpr int kSpawnBatch = 1000;

struct OneShot : Actor<int> {
  std::atomic<std::uint32_t>* count;
  BatchDone* done;
  OneShot(std::atomic<std::uint32_t>* c, BatchDone* d) : count(c), done(d) {}
  void on_message(Context<int>& ctx, int&) override {
    if (count->fetch_add(1, std::memory_order_relaxed) + 1 == kSpawnBatch) done->signal();
    ctx.stop();
  }
};

void BM_rt_spawn_stop(benchmark::State& state) {
  SystemConfig cfg;
  System sys(cfg);
  BatchDone done;
  std::atomic<std::uint32_t> count{0};
  AllocsPerOp allocs;
  while (state.KeepRunningBatch(kSpawnBatch)) {
    const auto seen = done.current();
    count.store(0, std::memory_order_relaxed);
    for (int i = 0; i < kSpawnBatch; ++i) {
      auto a = sys.spawn<OneShot>(&count, &done);
      while (!a) {  // every slot busy: the previous batch is still stopping
        a = sys.spawn<OneShot>(&count, &done);
      }
      (void)sys.send(*a, 1);
    }
    done.wait_past(seen);
  }
  allocs.report(state);
  state.counters["bytes_per_actor"] = static_cast<double>(System::bytes_per_actor());
}

}  // namespace

BENCHMARK(BM_rt_pingpong_same_worker)->Name("rt/pingpong/same_worker")->UseRealTime();
BENCHMARK(BM_rt_pingpong_cross_worker)->Name("rt/pingpong/cross_worker")->UseRealTime();
BENCHMARK(BM_rt_fanin_4to1)->Name("rt/fanin/4to1")->UseRealTime();
BENCHMARK(BM_rt_spawn_stop)->Name("rt/spawn_stop")->UseRealTime();
