#pragma once
// Message nodes, a mailbox's two queues (the inbox and the home worker's
// FIFO), and the actor cell.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace airssys {
enum class StopReason : std::uint8_t;
}

namespace airssys::detail {

class ActorBase;

enum class NodeKind : std::uint8_t {
  User,     // payload: the actor's message type M
  Down,     // payload: MonitorRecord; a monitored actor stopped
  Monitor,  // payload: MonitorRecord; a request to watch this actor
  Exit,     // payload: MonitorRecord; link from child to parent (escalation)
  ProcessExit,  // payload: ProcessExited; a process the actor spawned ended
  Started,      // payload: Started; a child spawned with spawn_supervised has started
  Probe,        // payload: ProbeRecord; a health probe for this actor
  HealthReply,  // payload: ProbeRecord; the answer to this actor's probe
};

// The 16-byte header in front of every message. `link` chains the node into
// a mailbox; the payload starts at offset 16.
struct Node {
  std::atomic<Node*> link{nullptr};
  NodeKind kind = NodeKind::User;
  std::uint8_t size_class = 0;
  // Set when the node was admitted through the cell's admission word (a
  // send from a thread other than the target's home worker), so that the
  // consumer knows to count it in `handled_foreign`.
  bool counted = false;
  std::uint8_t reserved = 0;
  std::uint32_t aux = 0;
};
static_assert(sizeof(Node) == 16);
inline constexpr std::size_t kNodePayload = 16;

template <class T>
T* payload(Node* n) noexcept {
  return reinterpret_cast<T*>(reinterpret_cast<char*>(n) + kNodePayload);
}

// Destroys a node's payload of type T (a timer's message that is not
// delivered).
template <class T>
void destroy_user_node(Node* n) noexcept {
  payload<T>(n)->~T();
}

// The generation after `g`, skipping 0 (an actor's generation is never 0,
// so ActorId::to_bits() is never 0 either).
inline constexpr std::uint32_t next_gen(std::uint32_t g) noexcept { return g + 1 == 0 ? 1 : g + 1; }

// The state word of an ask entry and of a timer entry: a 30-bit generation
// above a 2-bit phase (each names its phases: AskTable::kWaiting,
// TimerWheel::kArmed, ...), so that one CAS checks both.
namespace gen_phase {
inline constexpr std::uint32_t kMask = 3;
inline constexpr std::uint32_t make(std::uint32_t gen, std::uint32_t phase) noexcept { return (gen << 2) | phase; }
inline constexpr std::uint32_t gen(std::uint32_t state) noexcept { return state >> 2; }
inline constexpr std::uint32_t phase(std::uint32_t state) noexcept { return state & kMask; }
}  // namespace gen_phase

// A mailbox's two queues.
//  - The inbox: messages from other threads. A lock-free stack, newest
//    first: a sender pushes with one compare-and-swap; the home worker takes
//    the whole stack with one exchange. Empty is null, so there is no stub
//    node to re-link when the last message is taken.
//  - The FIFO: the home worker's own list, oldest first: messages sent on
//    the home worker (appended with plain stores: no locked instruction),
//    and the inbox's messages, reversed into it when taken.
// Order: a message is appended after every message already in the inbox
// (LocalFifo::append takes them first), so a foreign send that happens before a
// local one is handled first, and the FIFO is the one order of the
// mailbox. Each sender's messages stay in its sending order.
// Any thread but the target's home worker.
inline void inbox_push(std::atomic<Node*>& inbox, Node* n) noexcept {
  Node* top = inbox.load(std::memory_order_relaxed);
  do {
    n->link.store(top, std::memory_order_relaxed);
    // release: the home worker's exchange (acquire) then sees n's payload
    // and link.
  } while (!inbox.compare_exchange_weak(top, n, std::memory_order_release, std::memory_order_relaxed));
}

// The home worker's list. Nodes in it are the home worker's alone: their
// links are read and written relaxed.
struct LocalFifo {
  Node* first = nullptr;
  Node* last = nullptr;

  // Moves the inbox's messages, oldest first, to the back.
  void take_inbox(std::atomic<Node*>& inbox) noexcept {
    // acquire: pairs with the senders' release; their nodes are whole.
    Node* stack = inbox.exchange(nullptr, std::memory_order_acquire);
    Node* reversed = nullptr;
    Node* oldest = stack;
    while (stack != nullptr) {
      Node* next = stack->link.load(std::memory_order_relaxed);
      stack->link.store(reversed, std::memory_order_relaxed);
      reversed = stack;
      stack = next;
    }
    if (reversed == nullptr) return;
    if (last != nullptr) last->link.store(reversed, std::memory_order_relaxed); else first = reversed;
    last = oldest;  // the stack's top was the newest: now the end
  }
  // Appends a message sent on the home worker, after what the inbox holds.
  void append(std::atomic<Node*>& inbox, Node* n) noexcept {
    // acquire: a foreign message pushed before this send (in happens-before)
    // is seen here, and goes first.
    if (inbox.load(std::memory_order_acquire) != nullptr) take_inbox(inbox);
    n->link.store(nullptr, std::memory_order_relaxed);
    if (last != nullptr) last->link.store(n, std::memory_order_relaxed); else first = n;
    last = n;
  }
  // The oldest message, or null when both queues are empty (a message
  // admitted but not pushed yet is not there: the admission word tells).
  Node* pop(std::atomic<Node*>& inbox) noexcept {
    if (first == nullptr) {
      // relaxed: a hint; the exchange acquires what it takes.
      if (inbox.load(std::memory_order_relaxed) == nullptr) return nullptr;
      take_inbox(inbox);
      if (first == nullptr) return nullptr;
    }
    Node* n = first;
    first = n->link.load(std::memory_order_relaxed);
    if (first == nullptr) last = nullptr;
    return n;
  }
};

// The admission word of a cell: generation, state bits and the count of
// messages admitted from other threads, in one atomic so that a sender's
// single CAS checks the generation, the closed flag and the bound together.
namespace word {
inline constexpr std::uint64_t kAdmittedBits = 29;
inline constexpr std::uint64_t kAdmittedMask = (std::uint64_t{1} << kAdmittedBits) - 1;
inline constexpr std::uint64_t kQueued = std::uint64_t{1} << 29;  // in a foreign ready queue
inline constexpr std::uint64_t kStop = std::uint64_t{1} << 30;    // stop requested
inline constexpr std::uint64_t kClosed = std::uint64_t{1} << 31;  // takes no more messages
inline constexpr std::uint32_t gen(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 32); }
inline constexpr std::uint64_t make(std::uint32_t gen, std::uint64_t bits) noexcept {
  return (std::uint64_t{gen} << 32) | bits;
}
}  // namespace word

// One actor slot: everything the runtime keeps per actor, in 128 bytes.
// The first cache line holds what senders touch (the admission word, the
// queue tail, the counters they read for the bound, which the consumer
// updates per message); the second holds what only the home worker uses
// (plus `stop_hint`, which stop() sets rarely), so the consumer's queue
// walking and bookkeeping do not disturb senders.
struct alignas(64) Cell {
  // ---- line 1: shared with senders
  std::atomic<std::uint64_t> word{word::kClosed};
  std::atomic<Node*> inbox{nullptr};             // messages from other threads (inbox_push)
  std::atomic<Cell*> link{nullptr};               // in a worker's foreign ready queue
  std::atomic<std::uint64_t> handled_foreign{0};  // consumer writes; senders read for the bound
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint32_t> local_pending{0};    // home worker writes; senders read
  std::atomic<std::uint32_t> high_water{0};
  std::atomic<std::uint32_t> free_link{0};        // in the free-slot stack while unused
  // Written at spawn, read by senders. Atomic (relaxed) because a sender
  // holding a stale ref may read them while a spawner reuses the slot; its
  // CAS on `word` then fails, but the read itself must not be a data race.
  std::atomic<std::uint32_t> capacity{0};
  std::atomic<std::uint8_t> home{0};
  StopReason stop_reason{};
  bool local_queued = false;   // in the home worker's local ready queue
  bool started = false;
  bool finalizing = false;
  bool dead = false;           // finalized; slot returns to the free list once unqueued
  // The reason a stop(id, reason) asked for, tagged with the low byte of
  // the generation it was meant for (a stale writer's value is ignored):
  // reason | gen << 8, 0 for none. Written by stoppers before their kStop
  // CAS (which releases it), read by the home worker after it saw kStop.
  std::atomic<std::uint16_t> stop_as{0};
  // ---- line 2: home worker only
  alignas(64) LocalFifo queue;  // the mailbox in order (LocalFifo), with `inbox`
  ActorBase* actor = nullptr;
  Cell* local_next = nullptr;  // in the home worker's local ready queue
  std::atomic<std::uint64_t> handled{0};  // all messages handled (stats; relaxed)
  void* reserved = nullptr;    // the actor's holder (state + factory)
  std::uint32_t monitors = 0;  // first Monitor/Exit record: 64-byte block index + 1
  // Set by stop() after it sets kStop, so that a running turn notices
  // between messages without reading the contended line 1.
  std::atomic<bool> stop_hint{false};
  // The actor's ProcessSet: index + 1 into the System's sets, 0 for none
  // (the 99% of actors that never spawn a process).
  std::uint16_t process_set = 0;
  // Its on_start returned without failing or stopping it (or, deferred, it
  // called report_started): the Down's `started`, and System::has_started.
  // Home worker writes (release); any thread reads.
  std::atomic<bool> start_done{false};
};
static_assert(sizeof(Cell) == 128, "per-actor overhead budget is 128 bytes");

// Messages admitted from other threads and not yet taken out, given the
// admission word `w` and the consumer's `handled_foreign` count. The
// difference is only meaningful if `handled` is not newer than `w`: a
// handled count that includes messages admitted after `w` was read makes it
// "negative", which wraps to about 2^29 and reads as a full mailbox.
//  - The home worker is the only writer of handled_foreign, so it may read
//    the two in either order (foreign_pending_home).
//  - Any other thread reads `handled` first (acquire), then the word
//    (acquire): every message counted in `handled` was admitted by a CAS that
//    happens-before the consumer's release store of the count (admission CAS,
//    then the push, whose release store the consumer acquires before it
//    counts the node), so by coherence the word read afterwards already
//    counts it, and the difference is never negative. It may be stale-high
//    by what the consumer took out between the two loads; a sender confirms
//    a "full" verdict by reading `handled` again (System::admit).
inline std::uint32_t foreign_pending(std::uint64_t w, std::uint64_t handled) noexcept {
  return static_cast<std::uint32_t>((w - handled) & word::kAdmittedMask);
}

// foreign_pending for the cell's home worker, the writer of handled_foreign
// (relaxed: it reads its own stores).
inline std::uint32_t foreign_pending_home(const Cell* c, std::uint64_t w) noexcept {
  return foreign_pending(w, c->handled_foreign.load(std::memory_order_relaxed));
}

// True if the user lane of the mailbox is at its bound, read from any
// thread (handled first, then the word; see foreign_pending). `w` receives
// the word read.
inline bool at_bound(const Cell* c, std::uint64_t& w) noexcept {
  // acquire (both): see foreign_pending.
  const std::uint64_t handled = c->handled_foreign.load(std::memory_order_acquire);
  w = c->word.load(std::memory_order_acquire);
  // relaxed: local_pending is a count only its home worker writes; a racing
  // read is the inexactness the design accepts for mixed local and foreign
  // senders.
  // A closed mailbox is never "at its bound": its slot's counts are being
  // reset (the word before handled_foreign), and a difference read across
  // the reset wraps.
  if ((w & word::kClosed) != 0) return false;
  return foreign_pending(w, handled) + c->local_pending.load(std::memory_order_relaxed) >=
         c->capacity.load(std::memory_order_relaxed);
}
inline bool at_bound(const Cell* c) noexcept {
  std::uint64_t w;
  return at_bound(c, w);
}
// The same for the actor of generation `gen`: false once it has stopped.
inline bool at_bound(const Cell* c, std::uint32_t gen) noexcept {
  std::uint64_t w;
  const bool full = at_bound(c, w);
  return full && word::gen(w) == gen && (w & word::kClosed) == 0;
}

inline void raise_high_water(Cell* c, std::uint32_t queued) noexcept {
  // Relaxed: a statistic; a lost race only under-reports by the racing amount.
  if (queued > c->high_water.load(std::memory_order_relaxed))
    c->high_water.store(queued, std::memory_order_relaxed);
}

}  // namespace airssys::detail
