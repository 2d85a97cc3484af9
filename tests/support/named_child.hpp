#pragma once
// The integration actors (ProcessActor, ProcessPoolActor) in tests: the
// System their tests run, and the two checks of a config's registry name
// they share — the name survives the string it came from across a
// supervisor restart, and a name too long for the registry is refused
// rather than cut.

#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include <catch2/catch.hpp>

#include "support/wait_for.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace airssys::test {

// Two workers: the integration actor's, and one for its requesters.
inline std::unique_ptr<System> two_worker_system() {
  SystemConfig cfg;
  cfg.workers = 2;
  auto sys = System::create(cfg);
  REQUIRE(sys);
  return std::move(sys.value());
}

template <class M>
struct RestartedChild {
  std::unique_ptr<SupervisorSpec> spec;  // destroyed after the system (declared first)
  std::unique_ptr<System> system;
  SupervisorRef supervisor;
  ActorRef<M> actor;  // the restarted child, found under its name
};

// Starts, in a two_worker_system(), a supervisor (OneForOne, 3 restarts
// allowed) of one child, an A
// built from `cfg` whose name is set from a heap string (longer than
// std::string's inline buffer); destroys the string, puts other bytes of
// its size on the heap (likely in the freed block), stops the child and
// returns the one the supervisor restarted, found under `name`. A config
// that still viewed the string would bind the other bytes, and ASan
// reports its read of the freed block.
template <class A, class M, class Config>
RestartedChild<M> restart_after_name_freed(Config cfg, std::string_view name) {
  REQUIRE(name.size() > std::string().capacity());
  SupervisorFlags flags;
  flags.intensity = 3;
  RestartedChild<M> out{std::make_unique<SupervisorSpec>(flags, 1), two_worker_system(), {}, {}};
  System& sys = *out.system;
  auto text = std::make_unique<std::string>(name);
  cfg.name = *text;
  REQUIRE(out.spec->add(ChildSpec::worker<A>("named", cfg)));
  auto sup = start_supervisor(sys, *out.spec);
  INFO(sup.error().message());
  REQUIRE(sup);
  auto first = sys.registry().find<M>(name);
  REQUIRE(first);

  text.reset();
  const auto other = std::make_unique<std::string>(name.size(), 'x');
  REQUIRE(sys.stop(first.value()));
  out.supervisor = sup.value();
  REQUIRE(wait_for([&] {
    auto r = sys.registry().find<M>(name);
    if (!r || r.value() == first.value()) return false;
    out.actor = r.value();
    return true;
  }));
  CHECK(sys.registry().find<M>(*other).code() == Errc::NotFound);
  return out;
}

// A config named with more bytes than the registry holds: its name's
// check() fails with InvalidArgument naming the input, and an A built
// from it (in a System of its own) fails its start without binding any
// (cut-down) name.
template <class A, class Config>
void check_overlong_name_refused(Config cfg, const std::string& prefix) {
  auto system = two_worker_system();
  System& sys = *system;
  cfg.name = prefix + std::string(40, 'n');
  auto checked = cfg.name.check();
  REQUIRE_FALSE(checked);
  CHECK(checked.code() == Errc::InvalidArgument);
  CHECK_THAT(checked.error().message(), Catch::Contains(prefix + "nnn"));
  SupervisorSpec spec(SupervisorFlags{}, 1);
  REQUIRE(spec.add(ChildSpec::worker<A>("named", cfg)));
  auto sup = start_supervisor(sys, spec);
  CHECK_FALSE(sup);
  CHECK(sys.registry().size() == 0);
  REQUIRE(sys.shutdown());
}

}  // namespace airssys::test
