#pragma once
// The values the runtime itself delivers to actors (Down, Reply, Started,
// HealthReport, ProcessExited) and the reasons and verdicts they carry.
// None of them needs the process layer: ExitStatus is a base value.

#include <airssys/error.hpp>
#include <airssys/exit_status.hpp>
#include <airssys/rt/actor_ref.hpp>

#include <cstdint>

namespace airssys {

// Why an actor stopped, as reported in Down and to on_stop.
enum class StopReason : std::uint8_t {
  Normal,     // the actor called ctx.stop()
  Requested,  // another actor or thread called stop(ref)
  Failed,     // a handler failed and on_error answered Stop
  Escalated,  // a handler failed and on_error answered Escalate
  Shutdown,   // System::shutdown()
  NoActor,    // (Down only) the monitored actor was already gone
};
const char* to_string(StopReason r) noexcept;

// Delivered to a monitoring actor when the monitored one stops. The
// monitoring actor's message type must be constructible from Down.
// `started` is true when the actor had started: its on_start returned
// without failing or stopping it (or, if it deferred its Started, it had
// called Context::report_started). It is false for an actor that stopped
// in or before its start, and for a Down with NoActor (nothing is known).
struct Down {
  ActorId who;
  StopReason reason;
  bool started = false;
};

// A one-shot reply address for ask(). Trivially copyable; replying after the
// asker gave up (timeout) is refused with Errc::Dead and the reply is dropped.
template <class Rep>
struct ReplyTo {
  std::uint32_t index = ~0u;
  std::uint32_t gen = 0;
};

// Delivered to an actor that asked with Context::ask(): the request id it
// got back from ask() and the reply or the error (Errc::Timeout).
template <class Rep>
struct Reply {
  std::uint64_t request;
  Result<Rep> result;
};

// Delivered (on the system lane) to an actor that spawned a child with
// Context::spawn_supervised, once that child has started: its on_start
// returned without failing or stopping (or, if it deferred, it called
// Context::report_started). A child that fails to start sends no Started;
// its Down comes instead. The receiver's message type must be
// constructible from Started.
struct Started {
  ActorId who;
};

// What an actor says of itself when probed (Actor::health_check).
//   Healthy  — working as intended;
//   Degraded — working, but not as well (reported, not acted on);
//   Failed   — not working: a supervisor counts it toward a restart.
enum class Health : std::uint8_t { Healthy, Degraded, Failed };
const char* to_string(Health h) noexcept;

// The answer to Context::probe_health, delivered on the system lane to the
// prober, whose message type must be constructible from HealthReport.
struct HealthReport {
  ActorId who;
  Health health = Health::Healthy;
};

// Delivered (on the system lane) to the actor that spawned a process when
// that process ends and has been reaped. Reaches only actors whose message
// type is constructible from ProcessExited; the runtime removes the
// process from the actor's ProcessSet first either way.
struct ProcessExited {
  int pid = -1;
  // Exit code, or the signal that killed it; status.core_dumped says
  // whether that signal also dumped a core (a crash, not only a kill).
  ExitStatus status;
};

}  // namespace airssys
