// Child specs and the supervisor spec's tables: validation, add(), the
// lookups, and the which_children / count_children views; the clocks.

#include "supervisor_state.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace airssys {

const char* to_string(Strategy s) noexcept {
  switch (s) {
    case Strategy::OneForOne: return "one_for_one";
    case Strategy::OneForAll: return "one_for_all";
    case Strategy::RestForOne: return "rest_for_one";
    case Strategy::SimpleOneForOne: return "simple_one_for_one";
  }
  return "?";
}

const char* to_string(RestartType r) noexcept {
  switch (r) {
    case RestartType::Permanent: return "permanent";
    case RestartType::Transient: return "transient";
    case RestartType::Temporary: return "temporary";
  }
  return "?";
}

namespace {

class SteadyClock final : public SupervisorClock {
 public:
  // CLOCK_MONOTONIC, as the Monitoring ring's timestamps (the supervisor
  // stamps its events with its own reads of this clock).
  std::int64_t now_ns() noexcept override { return arch::monotonic_ns(); }
};

}  // namespace

SupervisorClock& monotonic_clock() noexcept {
  static SteadyClock clock;
  return clock;
}

namespace detail {

SupervisorState::SupervisorState(const SupervisorFlags& flags, std::uint32_t max_children)
    : flags_(flags),
      clock_(flags.clock != nullptr ? flags.clock : &monotonic_clock()),
      steady_(clock_ == &monotonic_clock()),
      max_children_(max_children) {
  if (flags.intensity > SupervisorSpec::kMaxIntensity) {
    flags_error_ = Error::make(Errc::InvalidArgument, "SupervisorFlags::intensity = %u (at most %u)",
                               flags.intensity, SupervisorSpec::kMaxIntensity);
    flags_.intensity = 0;
  } else if (flags.period.count() <= 0) {
    flags_error_ = Error::make(Errc::InvalidArgument, "SupervisorFlags::period = %lld ns (must be positive)",
                               static_cast<long long>(flags.period.count()));
  } else if (max_children == 0) {
    flags_error_ = Error::make(Errc::InvalidArgument, "SupervisorSpec max_children = 0 (must be at least 1)");
  }
  statics_ = std::make_unique<ChildSpec[]>(max_children_);
  children_ = std::make_unique<Child[]>(max_children_);
  history_cap_ = flags_.intensity + 1;
  history_ = std::make_unique<std::int64_t[]>(history_cap_);
  deferred_ = std::make_unique<SupervisorMsg[]>(SupervisorSpec::kDeferredRequests);
  rng_ ^= reinterpret_cast<std::uintptr_t>(this);
}

Result<void> SupervisorState::check_spec(const ChildSpec& spec) const noexcept {
  const auto id = spec.id();
  if (id.empty() && !spec.id_.too_long && !spec.has_factory())
    return Error::make(Errc::InvalidArgument,
                       "empty ChildSpec: make it with ChildSpec::worker, worker_with or supervisor");
  if (id.empty() || spec.id_.too_long)
    return Error::make(Errc::InvalidArgument, "child id '%.*s' must be 1..31 bytes",
                       static_cast<int>(id.size()), id.data());
  if (!spec.has_factory())
    return Error::make(Errc::InvalidArgument, "child '%.*s' has no factory (use ChildSpec::worker)",
                       static_cast<int>(id.size()), id.data());
  if (spec.is_significant() && spec.restart_type() == RestartType::Permanent)
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' is significant and Permanent (significant needs Transient or Temporary)",
                       static_cast<int>(id.size()), id.data());
  if (spec.shutdown_spec().kind == ShutdownSpec::Kind::Timeout && spec.shutdown_spec().timeout.count() < 0)
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' has a negative shutdown timeout (%lld ms; BrutalKill is none, Infinity no limit)",
                       static_cast<int>(id.size()), id.data(),
                       static_cast<long long>(spec.shutdown_spec().timeout.count()));
  const Backoff& b = spec.backoff_spec();
  if (b.min.count() < 0 || b.max.count() < 0 || (b.max.count() > 0 && b.max < b.min) || !(b.jitter >= 0.0) ||
      b.jitter > 1.0 || b.reset_after.count() < 0)
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' has a bad backoff (needs 0 <= min <= max, jitter in 0..1)",
                       static_cast<int>(id.size()), id.data());
  if (spec.health_spec().interval.count() < 0 ||
      (spec.health_spec().interval.count() > 0 && spec.health_spec().failures_to_restart == 0))
    return Error::make(Errc::InvalidArgument,
                       "child '%.*s' has a bad health check (interval >= 0, failures_to_restart >= 1)",
                       static_cast<int>(id.size()), id.data());
  if (spec.child_spec_ != nullptr && spec.child_spec_->state_.get() == this)
    return Error::make(Errc::InvalidArgument, "child '%.*s' is the supervisor's own spec",
                       static_cast<int>(id.size()), id.data());
  return {};
}

Result<void> SupervisorState::add(const ChildSpec& spec) {
  if (flags_error_.code() != Errc::Ok) return flags_error_;
  // acquire: pairs with the release in Supervisor::on_stop.
  if (in_use_.load(std::memory_order_acquire))
    return Error::make(Errc::InvalidArgument, "child '%.*s': add() while a Supervisor runs this spec (use start_child)",
                       static_cast<int>(spec.id().size()), spec.id().data());
  auto ok = check_spec(spec);
  if (!ok) return ok;
  const auto id = spec.id();
  if (simple()) {
    if (has_template_)
      return Error::make(Errc::InvalidArgument,
                         "child '%.*s': a SimpleOneForOne supervisor takes one spec, the template ('%s')",
                         static_cast<int>(id.size()), id.data(), template_.id_.text);
    template_ = spec;
    has_template_ = true;
    return {};
  }
  for (std::uint32_t i = 0; i < static_count_; ++i)
    if (statics_[i].id() == id)
      return Error::make(Errc::AlreadyExists, "child '%.*s' already exists", static_cast<int>(id.size()),
                         id.data());
  if (static_count_ == max_children_)
    return Error::make(Errc::Full, "supervisor is full (%u children); child '%.*s' not added", max_children_,
                       static_cast<int>(id.size()), id.data());
  statics_[static_count_++] = spec;
  return {};
}

std::uint32_t SupervisorState::find_id(std::string_view id) const noexcept {
  for (std::uint32_t i = 0; i < count_; ++i)
    if (!children_[i].removed && children_[i].spec.id() == id) return i;
  return ~0u;
}

std::uint32_t SupervisorState::find_ref(ActorId ref) const noexcept {
  if (!ref.valid()) return ~0u;
  for (std::uint32_t i = 0; i < count_; ++i)
    if (!children_[i].removed && children_[i].ref == ref) return i;
  return ~0u;
}

// Drops tombstones, keeping the order. Only while no operation runs: an
// operation's marks and target are table indices.
void SupervisorState::drop_tombstones() noexcept {
  tombstones_ = false;
  std::uint32_t out = 0;
  for (std::uint32_t i = 0; i < count_; ++i) {
    if (children_[i].removed) continue;
    if (out != i) children_[out] = children_[i];
    ++out;
  }
  for (std::uint32_t i = out; i < count_; ++i) children_[i] = Child{};
  count_ = out;
}

void SupervisorState::clear_marks() noexcept {
  for (std::uint32_t i = 0; i < count_; ++i) children_[i].to_stop = children_[i].to_start = false;
}
ChildPage SupervisorState::page(const System& sys, std::uint32_t offset) const noexcept {
  ChildPage p;
  for (std::uint32_t i = 0; i < count_; ++i) {
    const Child& c = children_[i];
    if (c.removed) continue;
    const std::uint32_t n = p.total++;
    if (n < offset || p.count == ChildPage::kSize) continue;
    ChildInfo& info = p.items[p.count++];
    std::memcpy(info.id, c.spec.id_.text, sizeof(info.id));
    info.running = reported_running(sys, c);
    info.ref = info.running ? c.ref : ActorId{};
    info.kind = c.spec.kind();
    info.restart = c.spec.restart_type();
    info.restarts = c.restarts;
  }
  return p;
}

ChildCounts SupervisorState::counts(const System& sys) const noexcept {
  ChildCounts n;
  for (std::uint32_t i = 0; i < count_; ++i) {
    const Child& c = children_[i];
    if (c.removed) continue;
    ++n.specs;
    if (reported_running(sys, c)) ++n.active;
    if (c.spec.kind() == ChildKind::Supervisor) ++n.supervisors; else ++n.workers;
  }
  if (simple()) n.specs = has_template_ ? 1 : 0;  // as OTP: the one template
  return n;
}

}  // namespace detail

ChildSpec ChildSpec::supervisor(std::string_view id, SupervisorSpec& spec) {
  ChildSpec s = worker_with<Supervisor>(id, [p = &spec] { return Supervisor(p); });
  s.kind_ = ChildKind::Supervisor;
  s.shutdown_ = ShutdownSpec::infinity();
  s.child_spec_ = &spec;
  return s;
}

SupervisorSpec::SupervisorSpec(const SupervisorFlags& flags, std::uint32_t max_children)
    : flags_(flags), max_children_(max_children),
      state_(std::make_unique<detail::SupervisorState>(flags, max_children)) {}

SupervisorSpec::~SupervisorSpec() {
  // A running Supervisor reads its spec at every message: destroying the
  // spec under it would be a use-after-free, so the misuse is named instead.
  if (state_ != nullptr && state_->in_use_.load(std::memory_order_acquire)) {
    std::fputs("airssys: SupervisorSpec destroyed while a Supervisor runs it; stop the supervisor (or the "
               "System) first\n",
               stderr);
    std::abort();
  }
}

Result<void> SupervisorSpec::add(const ChildSpec& child) { return state_->add(child); }

}  // namespace airssys
