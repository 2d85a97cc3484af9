// Peer benchmarks: the CAF 0.17 side of the actor-runtime comparisons.
//
// Written the way an ordinary CAF user would write them: function-based
// event_based_actor / stateful_actor behaviors, the default scheduler and
// default actor_system_config settings.
//
// Every benchmark uses the same shape as our own side: the benchmark thread
// starts kBatch units of work inside the actors and then blocks once until
// the actors report completion. That keeps the cross-thread hand-off with the
// (non-actor) benchmark thread out of the per-iteration cost, so the number
// reflects actor-to-actor messaging rather than wake-up latency.

#include <atomic>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include <caf/all.hpp>

namespace {

using start_atom = caf::atom_constant<caf::atom("start")>;
using ball_atom = caf::atom_constant<caf::atom("ball")>;
using item_atom = caf::atom_constant<caf::atom("item")>;
using go_atom = caf::atom_constant<caf::atom("go")>;

// A generation counter: the actor side bumps it once per finished batch; the
// benchmark thread waits for it to move past the value it saw before kicking
// off the batch. 32-bit so std::atomic::wait maps directly onto a futex.
class BatchSignal {
public:
  std::uint32_t current() const {
    return gen_.load(std::memory_order_acquire);
  }

  void signal() {
    gen_.fetch_add(1, std::memory_order_release);
    gen_.notify_one();
  }

  void wait_past(std::uint32_t seen) const {
    for (auto v = gen_.load(std::memory_order_acquire); v == seen;
         v = gen_.load(std::memory_order_acquire))
      gen_.wait(v, std::memory_order_acquire);
  }

private:
  std::atomic<std::uint32_t> gen_{0};
};

// ---------------------------------------------------------------------------
// caf/pingpong
// ---------------------------------------------------------------------------

constexpr std::int32_t kPingPongBatch = 10000;

caf::behavior pong_actor(caf::event_based_actor*) {
  return {
    // Returning a value answers the sender with an ordinary async message.
    [](ball_atom, std::int32_t n) { return caf::make_message(ball_atom::value, n); },
  };
}

caf::behavior ping_actor(caf::event_based_actor* self, caf::actor pong,
                         BatchSignal* done) {
  return {
    [=](start_atom, std::int32_t rounds) {
      self->send(pong, ball_atom::value, rounds);
    },
    // n counts the round trips still outstanding, including this one.
    [=](ball_atom, std::int32_t n) {
      if (n > 1)
        self->send(pong, ball_atom::value, n - 1);
      else
        done->signal();
    },
  };
}

void BM_caf_pingpong(benchmark::State& state) {
  // Declared before the system so it outlives every actor that touches it.
  BatchSignal done;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto pong = sys.spawn(pong_actor);
  auto ping = sys.spawn(ping_actor, pong, &done);
  while (state.KeepRunningBatch(kPingPongBatch)) {
    auto seen = done.current();
    caf::anon_send(ping, start_atom::value, kPingPongBatch);
    done.wait_past(seen);
  }
  caf::anon_send_exit(ping, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(pong, caf::exit_reason::user_shutdown);
  // ~actor_system waits for both actors to terminate.
}

// ---------------------------------------------------------------------------
// caf/fanin/4to1
// ---------------------------------------------------------------------------

constexpr int kFanInProducers = 4;
constexpr std::int32_t kFanInBatch = 10000;
constexpr std::int32_t kFanInShare = kFanInBatch / kFanInProducers;
static_assert(kFanInShare * kFanInProducers == kFanInBatch);

struct consumer_state {
  std::int32_t received = 0;
};

caf::behavior consumer_actor(caf::stateful_actor<consumer_state>* self,
                             BatchSignal* done) {
  return {
    [=](item_atom, std::int32_t) {
      if (++self->state.received == kFanInBatch) {
        self->state.received = 0;
        done->signal();
      }
    },
  };
}

caf::behavior producer_actor(caf::event_based_actor* self,
                             caf::actor consumer) {
  return {
    [=](start_atom, std::int32_t count) {
      for (std::int32_t i = 0; i < count; ++i)
        self->send(consumer, item_atom::value, i);
    },
  };
}

void BM_caf_fanin_4to1(benchmark::State& state) {
  // Declared before the system so it outlives every actor that touches it.
  BatchSignal done;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto consumer = sys.spawn(consumer_actor, &done);
  std::vector<caf::actor> producers;
  for (int i = 0; i < kFanInProducers; ++i)
    producers.push_back(sys.spawn(producer_actor, consumer));
  while (state.KeepRunningBatch(kFanInBatch)) {
    auto seen = done.current();
    for (auto& p : producers)
      caf::anon_send(p, start_atom::value, kFanInShare);
    done.wait_past(seen);
  }
  for (auto& p : producers)
    caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(consumer, caf::exit_reason::user_shutdown);
}

// ---------------------------------------------------------------------------
// caf/spawn_stop
// ---------------------------------------------------------------------------

constexpr std::uint32_t kSpawnBatch = 1000;

caf::behavior one_shot_actor(caf::event_based_actor* self,
                             std::atomic<std::uint32_t>* handled) {
  return {
    [=](go_atom) {
      // Only the last actor of a batch wakes the benchmark thread, so the
      // per-actor cost is one atomic increment, not a futex call.
      if (handled->fetch_add(1, std::memory_order_acq_rel) + 1 == kSpawnBatch)
        handled->notify_one();
      self->quit();
    },
  };
}

void BM_caf_spawn_stop(benchmark::State& state) {
  // Declared before the system so it outlives every actor that touches it.
  std::atomic<std::uint32_t> handled{0};
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  while (state.KeepRunningBatch(kSpawnBatch)) {
    // Every actor of the previous batch has already counted itself, so
    // resetting here cannot race with a late increment.
    handled.store(0, std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < kSpawnBatch; ++i) {
      auto a = sys.spawn(one_shot_actor, &handled);
      caf::anon_send(a, go_atom::value);
    }
    for (auto v = handled.load(std::memory_order_acquire); v != kSpawnBatch;
         v = handled.load(std::memory_order_acquire))
      handled.wait(v, std::memory_order_acquire);
  }
  // Actors that counted themselves may still be finishing their quit();
  // ~actor_system waits for them before tearing the scheduler down.
}

// ---------------------------------------------------------------------------
// caf/monitor_respawn
// ---------------------------------------------------------------------------
//
// The CAF way to keep a child alive: the parent monitors it and spawns a new
// one from its down_msg handler. One iteration: the child crashes (quits
// with an error), the parent's down handler respawns and monitors a fresh
// child, and the new child handles one message (a ping it sends itself when
// it starts), the shape of rt/supervisor/restart_one_for_one. Each ping
// crashes its child until the batch is done; the benchmark thread starts a
// batch through the parent, which crashes the child that is up.

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using kick_atom = caf::atom_constant<caf::atom("kick")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

constexpr std::int32_t kRespawnBatch = 10000;

struct respawn_shared {
  BatchSignal done;
  // Pings handled, and the count that ends the batch. Children run one
  // after another (each spawned from the previous one's down_msg), the
  // benchmark thread reads them only after done.signal().
  std::int64_t handled = 0;
  std::int64_t target = 0;
};

caf::behavior respawned_child(caf::event_based_actor* self, respawn_shared* shared) {
  self->send(self, ping_atom::value);
  return {
    [=](ping_atom) {
      if (++shared->handled == shared->target) {
        shared->done.signal();
        return;
      }
      self->quit(caf::sec::runtime_error);
    },
    [=](kick_atom) { self->quit(caf::sec::runtime_error); },
  };
}

struct respawn_parent_state {
  caf::actor child;
};

caf::behavior respawn_parent(caf::stateful_actor<respawn_parent_state>* self, respawn_shared* shared) {
  self->set_down_handler([=](caf::down_msg& down) {
    if (down.source != self->state.child.address())
      return;
    self->state.child = self->spawn(respawned_child, shared);
    self->monitor(self->state.child);
  });
  self->state.child = self->spawn(respawned_child, shared);
  self->monitor(self->state.child);
  return {
    [=](kick_atom) { self->send(self->state.child, kick_atom::value); },
    // The end: the child first (nothing respawns it once this one quit).
    [=](stop_atom) {
      self->send_exit(self->state.child, caf::exit_reason::user_shutdown);
      self->quit();
    },
  };
}

void BM_caf_monitor_respawn(benchmark::State& state) {
  // Declared before the system so it outlives every actor that touches it.
  respawn_shared shared;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  shared.target = 1; // the first child's own ping ends the warm-up
  auto warm = shared.done.current();
  auto parent = sys.spawn(respawn_parent, &shared);
  shared.done.wait_past(warm);
  while (state.KeepRunningBatch(kRespawnBatch)) {
    shared.target += kRespawnBatch;
    auto seen = shared.done.current();
    caf::anon_send(parent, kick_atom::value);
    shared.done.wait_past(seen);
  }
  caf::anon_send(parent, stop_atom::value);
  // ~actor_system waits for the parent and its last child.
}

} // namespace

BENCHMARK(BM_caf_pingpong)->Name("caf/pingpong")->UseRealTime();
BENCHMARK(BM_caf_fanin_4to1)->Name("caf/fanin/4to1")->UseRealTime();
BENCHMARK(BM_caf_spawn_stop)->Name("caf/spawn_stop")->UseRealTime();
BENCHMARK(BM_caf_monitor_respawn)->Name("caf/monitor_respawn")->UseRealTime();
