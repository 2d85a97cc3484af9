// SupervisorRef, a plain thread's handle on a running supervisor (each call
// is an ask), and start_supervisor.

#include "flatten.hpp"
#include "supervisor_state.hpp"

#include <chrono>
#include <thread>
#include <utility>

namespace airssys {

using detail::flatten;

namespace {

bool wait_gone(System& sys, ActorId id, std::chrono::steady_clock::time_point until) {
  // Not only !alive: the supervisor's on_stop, which lets go of its spec,
  // runs after its mailbox closed.
  while (!sys.gone(id)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds t) {
  const auto now = std::chrono::steady_clock::now();
  if (t > std::chrono::hours(24 * 365)) return std::chrono::steady_clock::time_point::max();
  return now + t;
}

Error empty_ref() {
  return Error::make(Errc::InvalidArgument, "the SupervisorRef is empty: it names no System (use start_supervisor's)");
}

Error empty_arg(const char* call, const char* what) {
  return Error::make(Errc::InvalidArgument, "%s: the %s is empty", call, what);
}

}  // namespace

Result<ActorId> SupervisorRef::start_child(const ChildSpec& spec, std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  return flatten(system->ask<Result<ActorId>>(
      ref, [&spec](ReplyTo<Result<ActorId>> r) { return SupervisorMsg(StartChildRequest{spec, r}); }, timeout));
}

Result<ActorId> SupervisorRef::start_child(std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  // An empty spec stands for the template, which lives in the supervisor.
  return flatten(system->ask<Result<ActorId>>(
      ref, [](ReplyTo<Result<ActorId>> r) { return SupervisorMsg(StartChildRequest{ChildSpec{}, r}); }, timeout));
}

Result<void> SupervisorRef::terminate_child(std::string_view id, std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  if (id.empty()) return empty_arg("terminate_child", "child id");
  return flatten(system->ask<Result<void>>(
      ref, [id](ReplyTo<Result<void>> r) { return SupervisorMsg(TerminateChildRequest{ChildName(id), ActorId{}, r}); },
      timeout));
}

Result<void> SupervisorRef::terminate_child(ActorId instance, std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  if (!instance.valid()) return empty_arg("terminate_child", "ActorId");
  return flatten(system->ask<Result<void>>(
      ref, [instance](ReplyTo<Result<void>> r) { return SupervisorMsg(TerminateChildRequest{ChildName{}, instance, r}); },
      timeout));
}

Result<ActorId> SupervisorRef::restart_child(std::string_view id, std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  if (id.empty()) return empty_arg("restart_child", "child id");
  return flatten(system->ask<Result<ActorId>>(
      ref, [id](ReplyTo<Result<ActorId>> r) { return SupervisorMsg(RestartChildRequest{ChildName(id), r}); }, timeout));
}

Result<void> SupervisorRef::delete_child(std::string_view id, std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  if (id.empty()) return empty_arg("delete_child", "child id");
  return flatten(system->ask<Result<void>>(
      ref, [id](ReplyTo<Result<void>> r) { return SupervisorMsg(DeleteChildRequest{ChildName(id), r}); }, timeout));
}

Result<std::uint32_t> SupervisorRef::which_children(std::span<ChildInfo> out, std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  std::uint32_t offset = 0;
  for (;;) {
    auto p = flatten(system->ask<Result<ChildPage>>(
        ref, [offset](ReplyTo<Result<ChildPage>> r) { return SupervisorMsg(WhichChildrenRequest{offset, r}); },
        timeout));
    if (!p) return p.error();
    for (std::uint32_t k = 0; k < p->count && offset + k < out.size(); ++k) out[offset + k] = p->items[k];
    offset += p->count;
    if (p->count == 0 || offset >= p->total || offset >= out.size()) return p->total;
  }
}

Result<ChildCounts> SupervisorRef::count_children(std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  return flatten(system->ask<Result<ChildCounts>>(
      ref, [](ReplyTo<Result<ChildCounts>> r) { return SupervisorMsg(CountChildrenRequest{r}); }, timeout));
}

Result<void> SupervisorRef::tick() const {
  if (system == nullptr) return empty_ref();
  return system->post(ref, SupervisorTick{});
}

Result<void> SupervisorRef::stop(std::chrono::nanoseconds timeout) const {
  if (system == nullptr) return empty_ref();
  const auto until = deadline_after(timeout);
  auto r = flatten(system->ask<Result<void>>(
      ref, [](ReplyTo<Result<void>> to) { return SupervisorMsg(StopSupervisorRequest{to}); }, timeout));
  if (!r && r.code() != Errc::ShuttingDown) return r;
  if (!wait_gone(*system, ref.id, until))
    return Error::make(Errc::Timeout, "supervisor #%u did not stop in time", ref.id.slot);
  return {};
}

Result<SupervisorRef> start_supervisor(System& system, SupervisorSpec& spec, std::chrono::nanoseconds timeout) {
  detail::SupervisorState& s = *spec.state_;
  if (s.flags_error_.code() != Errc::Ok) return s.flags_error_;
  if (s.in_use_.load(std::memory_order_acquire))
    return Error::make(Errc::AlreadyExists, "this SupervisorSpec already runs a supervisor");
  s.start_state_.store(detail::kStartPending, std::memory_order_relaxed);
  const auto until = deadline_after(timeout);
  auto sup = system.spawn_with<Supervisor>(SpawnOptions{}, [p = &spec] { return Supervisor(p); });
  if (!sup) return sup.error();
  std::uint8_t state;
  while ((state = s.start_state_.load(std::memory_order_acquire)) == detail::kStartPending) {
    if (std::chrono::steady_clock::now() > until) {
      (void)system.stop(*sup);
      (void)wait_gone(system, *sup, std::chrono::steady_clock::now() + std::chrono::seconds(30));
      return Error::make(Errc::Timeout, "supervisor #%u did not start its children within %lld ms", sup->id.slot,
                         static_cast<long long>(timeout.count() / 1'000'000));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (state == detail::kStartFailed) {
    // The rollback is done; wait for the supervisor itself, so the spec is free.
    (void)wait_gone(system, *sup, std::chrono::steady_clock::now() + std::chrono::seconds(30));
    return s.start_error_;
  }
  return SupervisorRef{&system, *sup};
}

}  // namespace airssys
