#pragma once
// SystemConfig: every capacity the runtime will ever use, fixed at
// construction.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace airssys {

// Process middleware is only named here (stored by pointer); a user that
// writes one includes <airssys/osl/executor.hpp> itself.
namespace osl {
class Middleware;
}

// What an idle worker does. `Spin` gives the lowest wake-up latency and burns
// its core; `Park` sleeps on a futex at once; `SpinThenPark` spins for up to
// `SystemConfig::spin_before_park`, then sleeps. The spin adapts per
// worker: it halves after each wait that outlasted spin_before_park (a
// worker waiting on process exits or timers stops burning its core) and
// doubles back, up to spin_before_park, after a wait that ended within it.
enum class IdleStrategy : std::uint8_t { Spin, SpinThenPark, Park };

// What a send does when the target's mailbox is full.
//   Block — wait until there is room. From a worker thread, returns
//           WouldDeadlock instead when waiting would close a cycle of workers
//           each blocked on a full mailbox of the next, which none of them
//           could ever drain: the target lives on the sender's own worker,
//           or its worker is itself blocked, directly or through others, on
//           a mailbox of the sender's worker (see docs/design.md);
//   Drop  — discard the message, count it as dropped and as a dead letter,
//           and report success to the sender;
//   Error — return Errc::Full and leave the message with the caller.
enum class Backpressure : std::uint8_t { Block, Drop, Error };

// The largest mailbox bound (SystemConfig::mailbox_capacity,
// SpawnOptions::mailbox_capacity): a mailbox counts the messages admitted
// from other threads modulo 2^29, so a bound must stay well below that for
// "full" to be exact, with room for senders racing on the last places.
inline constexpr std::uint32_t kMaxMailboxCapacity = std::uint32_t{1} << 28;

// Number of message / actor block size classes: 64, 128, 256, 512, 1024,
// 2048 and 4096 bytes. A block holds a 16-byte header and the payload.
inline constexpr std::size_t kSizeClasses = 7;
inline constexpr std::size_t kMinBlockSize = 64;
inline constexpr std::size_t kMaxBlockSize = kMinBlockSize << (kSizeClasses - 1);

// The configuration of a System. Construction reserves all of it up front;
// afterwards nothing grows. Defaults suit a small service on a few cores.
struct SystemConfig {
  std::uint32_t workers = 2;             // worker threads, 1..255
  std::uint32_t actor_capacity = 4096;   // live actors at once
  std::uint32_t mailbox_capacity = 1024; // default bound of a user mailbox, 1..kMaxMailboxCapacity
  std::uint32_t budget = 64;             // messages of one actor per turn
  IdleStrategy idle = IdleStrategy::SpinThenPark;
  std::chrono::microseconds spin_before_park{50};
  Backpressure backpressure = Backpressure::Error;  // default for send()

  // Message blocks per size class (64 B .. 4 KiB). A message is placed in
  // the smallest class that fits header + payload.
  std::array<std::uint32_t, kSizeClasses> message_blocks{65536, 16384, 4096, 1024, 256, 64, 32};
  // Actor-state blocks per size class; an actor's state plus its factory
  // must fit in one block. At least one class must have blocks.
  std::array<std::uint32_t, kSizeClasses> actor_blocks{4096, 4096, 1024, 256, 64, 32, 16};

  std::uint32_t timers_per_worker = 4096;  // armed send_after timers per worker
  std::uint32_t pending_asks = 1024;       // outstanding ask() requests
  std::uint32_t registry_capacity = 1024;  // named actors
  std::uint32_t broker_topics = 64;        // distinct topics
  std::uint32_t subscribers_per_topic = 64;

  // Monitoring (System::monitoring()): the event ring's slots, rounded up to
  // a power of two (1 .. 2^24): the last events a reader can read. Each
  // worker records into a ring of its own of that size, and every other
  // thread into a shared one: (workers + 1) x 96 bytes per slot. And the
  // per-child restart counters (0 .. 4096). All are reserved at
  // construction.
  std::uint32_t monitoring_events = 1024;
  std::uint32_t monitoring_child_names = 64;

  // OS processes (Context::spawn_process). Nothing below is reserved, and
  // no reactor thread starts, until an actor spawns its first process.
  std::uint32_t process_owners = 64;       // actors owning processes at once (ProcessSets)
  std::uint32_t processes_per_actor = 8;   // capacity of one ProcessSet
  std::uint32_t max_processes = 256;       // processes held at once (incl. adopted orphans)
  // When an actor stops, its trees get SIGTERM, then SIGKILL after this.
  std::chrono::milliseconds process_kill_timeout{5000};
  // The cgroup base directory (see arch::CgroupRoot::open); null: the
  // default. Copied when the System is built (at most 4095 bytes; a longer
  // one fails the first spawn, naming it). One that cannot be used (missing,
  // not cgroup2, not writable) makes Containment::Auto choose a process
  // group, silently, as on a machine without cgroups; Containment::Cgroup
  // then fails, naming the directory and why.
  const char* cgroup_base = nullptr;
  // Middleware for every process operation (policy, audit), in order; not
  // owned, must outlive the System.
  std::array<osl::Middleware*, 8> process_middleware{};
};

}  // namespace airssys
