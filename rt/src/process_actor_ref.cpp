// ProcessActorRef: a plain thread's blocking asks to a ProcessActor.
#include <airssys/rt/process_actor.hpp>

#include <airssys/arch/wait.hpp>

#include "flatten.hpp"

#include <cstring>
#include <utility>

namespace airssys {

using detail::flatten;

namespace {
// How long an ask waits: `a` and the time the request itself may take,
// saturated; a negative `b` (a bad request the actor refuses) adds nothing.
std::chrono::nanoseconds plus(std::chrono::nanoseconds a, std::chrono::nanoseconds b) noexcept {
  if (b <= std::chrono::nanoseconds::zero()) return a;
  return a > std::chrono::nanoseconds::max() - b ? std::chrono::nanoseconds::max() : a + b;
}
}  // namespace

Result<SpawnedProcess> ProcessActorRef::spawn(const ProcessSpec& spec, ActorId requester, Nanos timeout) {
  return flatten(system_->ask<Result<SpawnedProcess>>(
      ref_, [&](ReplyTo<Result<SpawnedProcess>> r) { return ProcessSpawn{spec, requester, r}; }, timeout));
}

Result<void> ProcessActorRef::signal(ProcessId id, int sig, Nanos timeout) {
  auto r = system_->ask<Result<void>>(
      ref_, [&](ReplyTo<Result<void>> rt) { return ProcessSignal{id, sig, rt}; }, timeout);
  if (!r) return r.error();
  return r.value();
}

Result<ExitStatus> ProcessActorRef::kill(ProcessId id, KillSpec how, Nanos timeout) {
  return flatten(system_->ask<Result<ExitStatus>>(
      ref_, [&](ReplyTo<Result<ExitStatus>> r) { return ProcessKill{id, how, r}; },
      plus(timeout, Nanos(arch::ms_to_ns_saturated(how.timeout.count())))));
}

Result<ExitStatus> ProcessActorRef::wait(ProcessId id, Nanos wait_for, Nanos timeout) {
  return flatten(system_->ask<Result<ExitStatus>>(
      ref_, [&](ReplyTo<Result<ExitStatus>> r) { return ProcessWait{id, wait_for, r}; },
      plus(timeout, wait_for)));
}

Result<ProcessStatus> ProcessActorRef::status(ProcessId id, Nanos timeout) {
  return flatten(system_->ask<Result<ProcessStatus>>(
      ref_, [&](ReplyTo<Result<ProcessStatus>> r) { return ProcessStatusQuery{id, r}; }, timeout));
}

Result<std::size_t> ProcessActorRef::write_stdin(ProcessId id, std::string_view bytes, Nanos timeout) {
  if (bytes.size() > StdinWrite::kCapacity)
    return Error::make(Errc::InvalidArgument, "stdin write of %zu bytes exceeds %zu", bytes.size(),
                       StdinWrite::kCapacity);
  return flatten(system_->ask<Result<std::size_t>>(
      ref_,
      [&](ReplyTo<Result<std::size_t>> r) {
        StdinWrite w;
        w.id = id;
        w.length = static_cast<std::uint16_t>(bytes.size());
        std::memcpy(w.bytes, bytes.data(), bytes.size());
        w.reply = r;
        return w;
      },
      timeout));
}

Result<void> ProcessActorRef::close_stdin(ProcessId id, Nanos timeout) {
  auto r = system_->ask<Result<void>>(ref_, [&](ReplyTo<Result<void>> rt) { return StdinClose{id, rt}; }, timeout);
  if (!r) return r.error();
  return r.value();
}

}  // namespace airssys
