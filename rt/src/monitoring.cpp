#include <airssys/rt/monitoring.hpp>

#include <airssys/arch/wait.hpp>

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>

namespace airssys {

// ---- the ring -----------------------------------------------------------------
//
// Each slot has a state word: (tag << 2) | state, where tag = sequence + 1
// of the event that last claimed the slot (0: never used) and state is
//   Free    — never written;
//   Writing — the producer of `tag` owns the slot and is storing words;
//   Done    — the event `tag` is whole.
// A producer claims the slot with one compare-and-swap (from a state that
// is not Writing, to its own Writing), stores its words, and publishes
// Done with a plain release store: while the slot is Writing nobody else
// writes its state word. Only the owner stores words, so two producers
// never write one slot at once. A producer never waits: finding the slot
// taken by an older producer still writing (preempted a whole lap), it
// gives its own event up by raising the slot's `given_up` mark to its tag
// (a rare compare-and-swap loop: the mark only grows); finding a newer
// tag, its event was already overwritten. A reader that finds an older tag
// than the one it wants reads the event as lost if the mark reaches it,
// else as not written yet. A producer whose tag the mark already reaches
// gives its event up too, so that what a reader judged lost stays lost.
// Every sequence handed out thus ends Done, or is seen by a reader as lost.
//
// That is the shared lane's ring. A bound lane (one writing thread) has a
// ring of its own, of the same size and also indexed by sequence, which
// only its thread writes: the same state word and words, with no claim
// (the slot's last event was this thread's own, and is Done) and no mark.
// Its slot for a sequence s is overwritten only by the same lane's s + N,
// which is handed out only once s has left the last N sequences, so a
// bound lane never loses an event a reader can still ask for. A reader
// looks for a sequence in each bound lane's ring first (the lane that held
// the last one first), then in the shared ring, whose rules above then say
// whether it is not written yet (older tag, no mark: also a bound lane's
// event still being stored) or lost.

namespace {

constexpr std::uint64_t kWriting = 1;
constexpr std::uint64_t kDone = 2;
constexpr std::uint64_t state_word(std::uint64_t tag, std::uint64_t state) noexcept { return (tag << 2) | state; }
constexpr std::uint64_t tag_of(std::uint64_t w) noexcept { return w >> 2; }
constexpr std::uint64_t state_of(std::uint64_t w) noexcept { return w & 3; }

constexpr std::size_t kWords = sizeof(MonitorEvent) / sizeof(std::uint64_t);
static_assert(std::is_trivially_copyable_v<MonitorEvent>, "the ring copies events word by word");
constexpr std::size_t kMaxEvents = std::size_t{1} << 24;
constexpr std::size_t kMaxNames = 4096;

std::size_t round_up_pow2(std::size_t n) noexcept {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// FNV-1a; a key is never 0 (0 marks a free name slot).
constexpr std::uint64_t kFnvBasis = 14695981039346656037ull;
constexpr std::uint64_t fnv_step(std::uint64_t h, unsigned char c) noexcept { return (h ^ c) * 1099511628211ull; }

std::string_view cut(std::string_view s) noexcept {
  return s.size() < MonitorEvent::kNameSize ? s : s.substr(0, MonitorEvent::kNameSize - 1);
}

}  // namespace

struct Monitoring::Slot {
  std::atomic<std::uint64_t> state{0};      // Free, tag 0
  std::atomic<std::uint64_t> given_up{0};   // the highest tag given up on this slot
  std::atomic<std::uint64_t> words[kWords] = {};
};

// A row of the per-child table. `key` is claimed once (0 -> the name's
// key) and never changes; `name` is written by the claimer before `named`
// is released and never again. Its restart counts are per lane
// (name_counts_).
struct Monitoring::NameSlot {
  std::atomic<std::uint64_t> key{0};
  std::atomic<bool> named{false};
  char name[MonitorEvent::kNameSize] = {};
};

namespace {

constexpr std::size_t kMaxLanes = 1024;

// The calling thread's lane: the Monitoring it is bound to (by id_, never
// 0) and the lane's index there.
thread_local constinit std::uint64_t tls_monitoring = 0;
thread_local constinit std::size_t tls_lane = 0;

// relaxed: only makes ids unique.
std::atomic<std::uint64_t> next_monitoring_id{1};

// One count more. A bound lane's only writer adds with a plain load and
// store (no locked instruction); the shared lane's writers with fetch_add.
// relaxed either way: counters are read as a snapshot, not to order anything.
inline void bump(std::atomic<std::uint64_t>& n, bool single_writer) noexcept {
  if (single_writer) {
    n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  } else {
    n.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

MonitorEvent MonitorEvent::make(Kind k, ActorId a, std::string_view n, std::uint64_t c) noexcept {
  MonitorEvent e;
  e.kind = k;
  e.actor = a;
  e.count = c;
  e.set_name(n);
  return e;
}

void MonitorEvent::set_name(std::string_view n) noexcept {
  n = cut(n);
  if (!n.empty()) std::memcpy(name, n.data(), n.size());  // an empty view may hold no pointer
  std::memset(name + n.size(), 0, kNameSize - n.size());
}

std::string_view MonitorEvent::name_view() const noexcept { return std::string_view(name, ::strnlen(name, kNameSize)); }

const char* to_string(MonitorEvent::Kind k) noexcept {
  using K = MonitorEvent::Kind;
  switch (k) {
    case K::ActorStarted: return "actor_started";
    case K::ActorStopped: return "actor_stopped";
    case K::ActorFailed: return "actor_failed";
    case K::ActorRestarted: return "actor_restarted";
    case K::StrategyApplied: return "strategy_applied";
    case K::IntensityExceeded: return "intensity_exceeded";
    case K::TreeSpawned: return "tree_spawned";
    case K::TreeTerminated: return "tree_terminated";
    case K::TreeKilled: return "tree_killed";
    case K::OrphanAdopted: return "orphan_adopted";
    case K::TeardownFailed: return "teardown_failed";
    case K::StaleTreeSwept: return "stale_tree_swept";
    case K::GuardianRestarted: return "guardian_restarted";
    case K::TreeLeftAtShutdown: return "tree_left_at_shutdown";
  }
  return "?";
}

bool needs_alert(const MonitorEvent& e) noexcept {
  using K = MonitorEvent::Kind;
  switch (e.kind) {
    case K::TeardownFailed:
    case K::OrphanAdopted:
    case K::StaleTreeSwept:
    case K::TreeLeftAtShutdown: return true;
    case K::GuardianRestarted: return e.error != Errc::Ok;  // trees are unguarded until one runs again
    default: return false;
  }
}

Monitoring::Monitoring(const MonitoringConfig& config) noexcept {
  std::size_t n = config.events == 0 ? 1 : (config.events > kMaxEvents ? kMaxEvents : config.events);
  n = round_up_pow2(n);
  slots_.reset(new (std::nothrow) Slot[n]);
  mask_ = slots_ ? n - 1 : 0;
  id_ = next_monitoring_id.fetch_add(1, std::memory_order_relaxed);
  const std::size_t lanes = config.lanes > kMaxLanes ? kMaxLanes : config.lanes;
  if (lanes > 0) {
    lanes_.reset(new (std::nothrow) Lane[lanes]);
    bound_lanes_ = lanes_ ? lanes : 0;
    for (std::size_t i = 0; i < bound_lanes_; ++i) lanes_[i].single_writer = true;
    // Without room for their rings, the bound lanes write the shared one.
    if (slots_ && bound_lanes_ > 0) lane_slots_.reset(new (std::nothrow) Slot[n * bound_lanes_]);
    if (lane_slots_)
      for (std::size_t i = 0; i < bound_lanes_; ++i) lanes_[i].ring = &lane_slots_[i * n];
  }
  const std::size_t names = config.child_names > kMaxNames ? kMaxNames : config.child_names;
  if (names > 0) {
    names_.reset(new (std::nothrow) NameSlot[names]);
    name_counts_.reset(new (std::nothrow) std::atomic<std::uint64_t>[(bound_lanes_ + 1) * names]);
    name_capacity_ = names_ && name_counts_ ? names : 0;
    if (name_capacity_ != 0) {
      for (std::size_t i = 0; i < (bound_lanes_ + 1) * names; ++i)
        name_counts_[i].store(0, std::memory_order_relaxed);
      for (std::size_t i = 0; i < bound_lanes_; ++i) lanes_[i].names = &name_counts_[i * names];
      shared_.names = &name_counts_[bound_lanes_ * names];
    }
  }
  if (config.alert != nullptr) (void)set_alert_hook(config.alert, config.alert_cookie);
}

Monitoring::~Monitoring() = default;

Result<void> Monitoring::validate(const MonitoringConfig& config) noexcept {
  if (config.events == 0 || config.events > kMaxEvents)
    return Error::make(Errc::InvalidArgument, "MonitoringConfig::events is %zu; it must be 1 .. %zu", config.events,
                       kMaxEvents);
  if (config.child_names > kMaxNames)
    return Error::make(Errc::InvalidArgument, "MonitoringConfig::child_names is %zu; it must be at most %zu",
                       config.child_names, kMaxNames);
  if (config.lanes > kMaxLanes)
    return Error::make(Errc::InvalidArgument, "MonitoringConfig::lanes is %zu; it must be at most %zu", config.lanes,
                       kMaxLanes);
  return {};
}

Result<void> Monitoring::set_alert_hook(AlertHook hook, void* cookie) noexcept {
  if (hook == nullptr) return Error::make(Errc::InvalidArgument, "alert hook is null");
  // acq_rel: one caller wins; the winner alone writes the cookie.
  if (alert_claimed_.exchange(true, std::memory_order_acq_rel))
    return Error::make(Errc::AlreadyExists, "the alert hook is already set (it is set once)");
  alert_cookie_ = cookie;
  // release: a recording thread that sees the hook sees the cookie.
  alert_.store(hook, std::memory_order_release);
  return {};
}

Result<void> Monitoring::bind_lane(std::size_t lane) noexcept {
  if (lane >= bound_lanes_)
    return Error::make(Errc::InvalidArgument, "counter lane %zu does not exist (this Monitoring has %zu)", lane,
                       bound_lanes_);
  tls_monitoring = id_;
  tls_lane = lane;
  return {};
}

Monitoring::Lane& Monitoring::lane() noexcept {
  return tls_monitoring == id_ ? lanes_[tls_lane] : shared_;
}

std::uint64_t Monitoring::recorded() const noexcept {
  return head_.load(std::memory_order_relaxed);  // relaxed: a count
}

void Monitoring::record(const MonitorEvent& event) noexcept {
  record(std::span<const MonitorEvent>(&event, 1));
}

void Monitoring::record(std::span<const MonitorEvent> events) noexcept {
  if (events.empty()) return;
  // relaxed: the sequence only has to be unique; the slot's state word
  // orders the event's words. One reservation for the run: consecutive
  // sequences, one locked add.
  const std::uint64_t first = head_.fetch_add(events.size(), std::memory_order_relaxed);
  Lane& l = lane();
  if (l.ring != nullptr) {
    for (std::size_t i = 0; i < events.size(); ++i) put_own(first + i, events[i], l);
  } else {
    for (std::size_t i = 0; i < events.size(); ++i) put(first + i, events[i], l);
  }
}

// The event's time: its own, or the clock's when 0 (read once per event).
inline std::int64_t Monitoring::stamp(const MonitorEvent& event) noexcept {
  return event.time_ns != 0 ? event.time_ns : arch::monotonic_ns();
}

// The lane's counters for one event: its kind, and a restart's child.
inline void Monitoring::count(const MonitorEvent& event, Lane& l) noexcept {
  const auto kind = static_cast<std::size_t>(event.kind);
  if (kind < MonitorEvent::kKinds) bump(l.kinds[kind], l.single_writer);
  if (event.kind != MonitorEvent::Kind::ActorRestarted) return;
  // A bound lane's last row first: a supervisor's restarts are mostly of
  // the same few children. That row is named (its thread saw `named` or
  // named it), and a named row's name never changes.
  if (l.last_row < name_capacity_ && std::memcmp(names_[l.last_row].name, event.name, MonitorEvent::kNameSize) == 0) {
    bump(l.names[l.last_row], l.single_writer);
    return;
  }
  count_restart(event, l);
}

// An event's words into a slot, with its sequence and time: each a release
// store (a plain store on x86), so that a reader whose acquire load reads
// one of them also sees the state word stored before it. Read from the
// event word by word (no copy of it first) and unrolled: a loop's counter
// cost as much as the stores.
inline void Monitoring::store_event(Slot& s, std::uint64_t seq, std::int64_t time, const MonitorEvent& event) noexcept {
  static_assert(offsetof(MonitorEvent, sequence) == 0 && offsetof(MonitorEvent, time_ns) == 8);
  const auto* bytes = reinterpret_cast<const unsigned char*>(&event);
  s.words[0].store(seq, std::memory_order_release);
  s.words[1].store(static_cast<std::uint64_t>(time), std::memory_order_release);
#pragma GCC unroll 16
  for (std::size_t i = 2; i < kWords; ++i) {
    std::uint64_t v;
    std::memcpy(&v, bytes + i * sizeof v, sizeof v);
    s.words[i].store(v, std::memory_order_release);
  }
}

// Counts an alert and calls the hook, for the kinds that need a human.
inline void Monitoring::alert_if_needed(std::uint64_t seq, std::int64_t time, const MonitorEvent& event) noexcept {
  if (!needs_alert(event)) return;
  alerts_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter
  // acquire: pairs with set_alert_hook's release; the cookie is set.
  if (AlertHook hook = alert_.load(std::memory_order_acquire)) {
    MonitorEvent e = event;
    e.sequence = seq;
    e.time_ns = time;
    hook(e, alert_cookie_);
  }
}

// A bound lane's own ring: its thread is the only writer, and the slot's
// last event (tag - N) was its own and is Done: no claim.
inline void Monitoring::put_own(std::uint64_t seq, const MonitorEvent& event, Lane& l) noexcept {
  const std::int64_t time = stamp(event);
  count(event, l);
  Slot& s = l.ring[seq & mask_];
  const std::uint64_t tag = seq + 1;
  // relaxed: a reader orders its loads by the words' release, as below.
  s.state.store(state_word(tag, kWriting), std::memory_order_relaxed);
  store_event(s, seq, time, event);
  s.state.store(state_word(tag, kDone), std::memory_order_release);
  alert_if_needed(seq, time, event);
}

// The shared lane's ring, written by any thread: a slot is claimed first.
void Monitoring::put(std::uint64_t seq, const MonitorEvent& event, Lane& l) noexcept {
  const std::int64_t time = stamp(event);
  count(event, l);
  if (slots_) {
    Slot& s = slots_[seq & mask_];
    const std::uint64_t tag = seq + 1;
    // acquire: a claim that follows the last owner's release of the slot
    // stores its words after that owner's (per-word modification order).
    std::uint64_t cur = s.state.load(std::memory_order_acquire);
    for (;;) {
      if (tag_of(cur) >= tag) break;  // a newer event already took the slot: ours counts as overwritten
      // relaxed: the mark is only compared with our own tag.
      if (state_of(cur) == kWriting || s.given_up.load(std::memory_order_relaxed) >= tag) {
        // An older producer is still writing (preempted a whole lap), or a
        // reader may already have judged our tag lost: give ours up rather
        // than wait. release: a reader that sees the mark also sees that
        // the state word it read before is not ours.
        std::uint64_t mark = s.given_up.load(std::memory_order_relaxed);
        while (mark < tag &&
               !s.given_up.compare_exchange_weak(mark, tag, std::memory_order_release, std::memory_order_relaxed)) {
        }
        break;
      }
      // acquire on success: as for the load above.
      if (!s.state.compare_exchange_weak(cur, state_word(tag, kWriting), std::memory_order_acquire,
                                         std::memory_order_acquire))
        continue;
      // The words (release stores): a reader whose acquire load reads one
      // of them also sees our claim above when it reads the state again,
      // and so drops what it copied. (No fences: GCC's TSan does not
      // model them.)
      store_event(s, seq, time, event);
      // release: a reader that sees Done sees every word; the next owner's
      // acquire orders its words after ours. Nobody else writes the state
      // word of a slot that is Writing.
      s.state.store(state_word(tag, kDone), std::memory_order_release);
      break;
    }
  }
  alert_if_needed(seq, time, event);
}

EventRead Monitoring::read(EventCursor& cursor, std::span<MonitorEvent> out) const noexcept {
  EventRead r;
  // relaxed: only bounds how far to look; each slot's state word orders
  // what is read from it.
  const std::uint64_t head = head_.load(std::memory_order_relaxed);
  std::uint64_t next = cursor.next_;
  const std::uint64_t slots = slots_ ? mask_ + 1 : 0;
  if (head - next > slots) {
    // Overwritten (or, with no ring, never kept) before we looked.
    r.missed += head - slots - next;
    next = head - slots;
  }
  std::size_t lane = 0;  // the bound lane that held the last event: looked at first
  while (next < head && r.events < out.size()) {
    const std::uint64_t tag = next + 1;
    if (lane_slots_) {
      const LaneFind f = find_in_lanes(next, lane, out[r.events]);
      if (f == LaneFind::Writing) break;  // the next read gets it
      if (f != LaneFind::Absent) {
        if (f == LaneFind::Read) {
          ++r.events;
        } else {
          ++r.missed;  // overwritten while we copied it
        }
        ++next;
        continue;
      }
    }
    const Slot& s = slots_[next & mask_];
    // acquire: pairs with the producer's release of Done.
    const std::uint64_t w1 = s.state.load(std::memory_order_acquire);
    if (tag_of(w1) < tag) {
      // Its producer gave it up (acquire: pairs with the mark's release),
      // or has not claimed the slot yet: the next read looks again.
      if (s.given_up.load(std::memory_order_acquire) < tag) break;
      ++r.missed;
      ++next;
      continue;
    }
    if (w1 != state_word(tag, kDone)) {
      // Newer (ours was overwritten), or ours being written.
      if (tag_of(w1) == tag && state_of(w1) == kWriting) break;
      ++r.missed;
      ++next;
      continue;
    }
    std::uint64_t w[kWords];
    // acquire: if a word came from a newer producer, its claim of the slot
    // (before its release store of the word) is visible to the load below.
    for (std::size_t i = 0; i < kWords; ++i) w[i] = s.words[i].load(std::memory_order_acquire);
    // relaxed: ordered after the word loads by their acquire.
    const std::uint64_t w2 = s.state.load(std::memory_order_relaxed);
    if (w2 != w1) {
      ++r.missed;  // overwritten while we copied it
      ++next;
      continue;
    }
    std::memcpy(&out[r.events], w, sizeof w);
    ++r.events;
    ++next;
  }
  cursor.next_ = next;
  cursor.missed_ += r.missed;
  return r;
}

// Looks for sequence `seq` in the bound lanes' rings, starting with lane
// `hint` (updated to the lane that holds it). Only that lane's thread
// writes its ring: a slot with our tag is ours, being written or Done.
Monitoring::LaneFind Monitoring::find_in_lanes(std::uint64_t seq, std::size_t& hint, MonitorEvent& out) const noexcept {
  const std::uint64_t tag = seq + 1;
  for (std::size_t k = 0; k < bound_lanes_; ++k) {
    const std::size_t l = hint + k < bound_lanes_ ? hint + k : hint + k - bound_lanes_;
    const Slot& s = lanes_[l].ring[seq & mask_];
    // acquire: pairs with the writer's release of Done.
    const std::uint64_t w1 = s.state.load(std::memory_order_acquire);
    if (tag_of(w1) != tag) continue;
    hint = l;
    if (state_of(w1) == kWriting) return LaneFind::Writing;
    std::uint64_t w[kWords];
    // acquire: if a word came from the lane's next lap, its Writing store
    // (before its release store of the word) is visible to the load below.
    for (std::size_t i = 0; i < kWords; ++i) w[i] = s.words[i].load(std::memory_order_acquire);
    // relaxed: ordered after the word loads by their acquire.
    if (s.state.load(std::memory_order_relaxed) != w1) return LaneFind::Overwritten;
    std::memcpy(&out, w, sizeof w);
    return LaneFind::Read;
  }
  return LaneFind::Absent;
}

// ---- counters -----------------------------------------------------------------

// The row of a restart's child (claimed on its first restart), when it is
// not the lane's last row (see count()).
void Monitoring::count_restart(const MonitorEvent& e, Lane& l) noexcept {
  // The name's length and key in one pass (no strnlen, then a hash).
  std::size_t size = 0;
  std::uint64_t h = kFnvBasis;
  while (size < MonitorEvent::kNameSize && e.name[size] != '\0') h = fnv_step(h, static_cast<unsigned char>(e.name[size++]));
  const std::string_view name(e.name, size);
  if (name.empty() || name_capacity_ == 0) {
    bump(l.untracked, l.single_writer);
    return;
  }
  const std::uint64_t key = h | 1;  // never 0
  // The first row from the key's high half by a multiply and a shift, not
  // a division (capacity <= 4096: the product fits 64 bits, on 32-bit
  // targets too); the probe then steps and wraps.
  std::size_t row = static_cast<std::size_t>(((key >> 32) * name_capacity_) >> 32);
  for (std::size_t i = 0; i < name_capacity_; ++i, row = row + 1 == name_capacity_ ? 0 : row + 1) {
    NameSlot& n = names_[row];
    // acquire: if the row is named, its name is visible.
    std::uint64_t k = n.key.load(std::memory_order_acquire);
    if (k == 0) {
      // acquire (failure): as for the load above; on success the name is
      // published by `named` below, not by the key.
      if (n.key.compare_exchange_strong(k, key, std::memory_order_acquire, std::memory_order_acquire)) {
        std::memcpy(n.name, name.data(), name.size());
        n.name[name.size()] = '\0';
        n.named.store(true, std::memory_order_release);  // release: the name is written
        if (l.single_writer) l.last_row = row;
        bump(l.names[row], l.single_writer);
        return;
      }
      // Another name took it first: k holds its key.
    }
    if (k != key) continue;
    // Same key. A row still being named is taken to be ours (a 63-bit key
    // collision between two live names is the only way it is not); a named
    // row must match the name.
    // A row's unused bytes are 0, as are an event's after its name when
    // set_name wrote it: then one fixed-size compare tells a match.
    const bool named = n.named.load(std::memory_order_acquire);
    if (named && std::memcmp(n.name, e.name, MonitorEvent::kNameSize) != 0 && std::string_view(n.name) != name)
      continue;
    if (named && l.single_writer) l.last_row = row;
    bump(l.names[row], l.single_writer);
    return;
  }
  bump(l.untracked, l.single_writer);
}

std::uint64_t Monitoring::restarts_of_row(std::size_t row) const noexcept {
  std::uint64_t n = 0;
  // relaxed: counters (see snapshot()).
  for (std::size_t l = 0; l <= bound_lanes_; ++l) n += name_counts_[l * name_capacity_ + row].load(std::memory_order_relaxed);
  return n;
}

MonitoringSnapshot Monitoring::snapshot(const SystemStats& actors,
                                        const osl::ProcessExecutor::Counters& processes) const noexcept {
  using K = MonitorEvent::Kind;
  MonitoringSnapshot s;
  // relaxed throughout: each counter is exact on its own; the snapshot is
  // not one instant across counters while producers run.
  for (std::size_t l = 0; l <= bound_lanes_; ++l) {
    const Lane& lane = l < bound_lanes_ ? lanes_[l] : shared_;
    for (std::size_t i = 0; i < MonitorEvent::kKinds; ++i) s.events[i] += lane.kinds[i].load(std::memory_order_relaxed);
    s.restarts_untracked += lane.untracked.load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < MonitorEvent::kKinds; ++i) s.recorded += s.events[i];
  s.alerts = alerts_.load(std::memory_order_relaxed);
  s.restarts = s.events[static_cast<std::size_t>(K::ActorRestarted)];
  s.actors = actors;
  s.trees_spawned = processes.spawned;
  s.trees_cleaned = processes.cleaned;
  s.trees_live = processes.spawned >= processes.cleaned ? processes.spawned - processes.cleaned : 0;
  s.processes_killed = processes.killed;
  s.orphans_adopted = processes.orphans_adopted;
  s.orphans_refused = processes.orphans_refused;
  s.stale_trees = processes.stale_trees;
  s.teardown_failures = s.events[static_cast<std::size_t>(K::TeardownFailed)];
  s.guardian_restarts = s.events[static_cast<std::size_t>(K::GuardianRestarted)];
  s.trees_left_at_shutdown = s.events[static_cast<std::size_t>(K::TreeLeftAtShutdown)];
  return s;
}

std::size_t Monitoring::child_restarts(std::span<ChildRestarts> out) const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < name_capacity_ && n < out.size(); ++i) {
    const NameSlot& row = names_[i];
    if (!row.named.load(std::memory_order_acquire)) continue;  // acquire: the name is written
    std::memcpy(out[n].name, row.name, sizeof row.name);
    out[n].restarts = restarts_of_row(i);
    ++n;
  }
  return n;
}

// ---- Prometheus text ----------------------------------------------------------

namespace {

// Appends while there is room and counts every byte, so that a buffer too
// small still learns the size it needed.
class TextOut {
 public:
  explicit TextOut(std::span<char> out) noexcept : out_(out) {}
  void put(char c) noexcept {
    if (len_ < out_.size()) out_[len_] = c;
    ++len_;
  }
  void put(std::string_view s) noexcept {
    for (char c : s) put(c);
  }
  void put(std::uint64_t v) noexcept {
    char digits[20];
    std::size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) put(digits[--n]);
  }
  // A label value: backslash, double quote and line feed escaped (the
  // exposition format's three escapes).
  void put_label_value(std::string_view s) noexcept {
    for (char c : s) {
      if (c == '\\') put("\\\\");
      else if (c == '"') put("\\\"");
      else if (c == '\n') put("\\n");
      else put(c);
    }
  }
  void family(std::string_view name, std::string_view type, std::string_view help) noexcept {
    put("# HELP ");
    put(name);
    put(' ');
    put(help);
    put("\n# TYPE ");
    put(name);
    put(' ');
    put(type);
    put('\n');
  }
  void sample(std::string_view name, std::uint64_t v) noexcept {
    put(name);
    put(' ');
    put(v);
    put('\n');
  }
  void sample(std::string_view name, std::string_view label, std::string_view value, std::uint64_t v) noexcept {
    put(name);
    put('{');
    put(label);
    put("=\"");
    put_label_value(value);
    put("\"} ");
    put(v);
    put('\n');
  }
  void counter(std::string_view name, std::string_view help, std::uint64_t v) noexcept {
    family(name, "counter", help);
    sample(name, v);
  }
  void gauge(std::string_view name, std::string_view help, std::uint64_t v) noexcept {
    family(name, "gauge", help);
    sample(name, v);
  }
  std::size_t size() const noexcept { return len_; }

 private:
  std::span<char> out_;
  std::size_t len_ = 0;
};

}  // namespace

Result<std::size_t> Monitoring::write_prometheus(std::span<char> out, const SystemStats& actors,
                                                 const osl::ProcessExecutor::Counters& processes) const noexcept {
  const MonitoringSnapshot s = snapshot(actors, processes);
  TextOut t(out);
  t.family("airssys_events_total", "counter", "Monitoring events recorded, by kind.");
  for (std::size_t i = 0; i < MonitorEvent::kKinds; ++i)
    t.sample("airssys_events_total", "kind", to_string(static_cast<MonitorEvent::Kind>(i)), s.events[i]);
  t.counter("airssys_alerts_total", "Events that called for a human (the alert hook's events).", s.alerts);
  t.counter("airssys_restarts_total", "Actor restarts.", s.restarts);
  t.family("airssys_child_restarts_total", "counter", "Restarts per child name.");
  for (std::size_t i = 0; i < name_capacity_; ++i) {
    const NameSlot& row = names_[i];
    if (!row.named.load(std::memory_order_acquire)) continue;  // acquire: the name is written
    t.sample("airssys_child_restarts_total", "child", row.name, restarts_of_row(i));
  }
  t.counter("airssys_child_restarts_untracked_total",
            "Restarts of unnamed children, or of names the per-child table had no room for.", s.restarts_untracked);
  t.gauge("airssys_actors_live", "Actors alive now.", s.actors.live_actors);
  t.counter("airssys_actors_spawned_total", "Actors spawned.", s.actors.spawned);
  t.counter("airssys_actors_stopped_total", "Actors stopped.", s.actors.stopped);
  t.counter("airssys_messages_total", "Messages handled.", s.actors.messages);
  t.counter("airssys_dead_letters_total", "Messages never handled (dropped, or left when their actor stopped).",
            s.actors.dead_letters);
  t.counter("airssys_process_trees_spawned_total", "Managed process trees spawned.", s.trees_spawned);
  t.counter("airssys_process_trees_cleaned_total", "Managed process trees ended and reaped completely.",
            s.trees_cleaned);
  t.gauge("airssys_process_trees_live", "Managed process trees spawned and not yet cleaned.", s.trees_live);
  t.counter("airssys_processes_killed_total", "Processes reaped after SIGKILL.", s.processes_killed);
  t.counter("airssys_orphans_adopted_total", "Escaped processes of managed trees adopted and reaped.",
            s.orphans_adopted);
  t.counter("airssys_orphans_refused_total", "Escaped processes the process table had no room for.",
            s.orphans_refused);
  t.counter("airssys_stale_trees_swept_total", "Live trees of dead runtimes killed.", s.stale_trees);
  t.counter("airssys_teardown_failures_total", "Teardowns that failed.", s.teardown_failures);
  t.counter("airssys_guardian_restarts_total", "Guardians restarted after the previous one died.",
            s.guardian_restarts);
  t.counter("airssys_trees_left_at_shutdown_total", "Managed trees still alive when the process executor ended.",
            s.trees_left_at_shutdown);
  if (t.size() > out.size())
    return Error::make(Errc::Full, "Prometheus text needs %zu bytes; the buffer holds %zu", t.size(), out.size());
  return t.size();
}

// ---- the process events -------------------------------------------------------

namespace {

std::string_view file_name(std::string_view path) noexcept {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

void MonitoringMiddleware::observe(const osl::ProcessEvent& ev) noexcept {
  using P = osl::ProcessEvent::Kind;
  using K = MonitorEvent::Kind;
  MonitorEvent e;
  e.pid = ev.pid;
  e.pgid = ev.pgid;
  switch (ev.kind) {
    case P::Spawn:
      // A managed tree is one whose spawned process leads its group.
      if (ev.error != nullptr || ev.lifetime != osl::ProcessLifetime::Managed || ev.pid <= 0 || ev.pid != ev.pgid)
        return;
      e.kind = K::TreeSpawned;
      e.set_name(file_name(ev.program));
      break;
    case P::Teardown:
    case P::Cleanup:
      e.set_name(ev.principal);
      if (ev.error != nullptr) {
        // A refused request (no such managed process, one already being
        // torn down) tore nothing down and left nothing behind.
        const Errc c = ev.error->code();
        if (c == Errc::InvalidArgument || c == Errc::AlreadyExists) return;
        e.kind = K::TeardownFailed;
        e.set_error(*ev.error);
        break;
      }
      if (ev.teardown == nullptr) return;
      if (ev.kind == P::Cleanup) {
        e.kind = K::TreeLeftAtShutdown;
        e.count = ev.teardown->killed;
      } else if (ev.teardown->exited_on_term && ev.teardown->killed == 0) {
        e.kind = K::TreeTerminated;
        e.count = ev.teardown->reaped;
      } else {
        e.kind = K::TreeKilled;
        e.count = ev.teardown->killed;
      }
      break;
    case P::OrphanAdopted:
      e.kind = K::OrphanAdopted;
      if (ev.error != nullptr) e.set_error(*ev.error);
      break;
    case P::StaleSwept:
      e.kind = K::StaleTreeSwept;
      e.count = ev.trees;
      break;
    case P::GuardianRestarted:
      e.kind = K::GuardianRestarted;
      if (ev.error != nullptr) e.set_error(*ev.error);
      break;
    default: return;
  }
  monitoring_.record(e);
}

}  // namespace airssys
