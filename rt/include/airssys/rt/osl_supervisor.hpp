#pragma once
// OslSupervisor: the supervisor of the OSL integration actors, and OslTree,
// the supervision tree the design recommends for applications that run
// processes:
//
//   root (RestForOne)
//   ├── osl          OslSupervisor (OneForOne): ProcessActor, ProcessPoolActor
//   └── application  (RestForOne): the application's actors, in order
//
// The integration actors start first and stop last, so that the
// application's actors always find them; if the OSL supervisor itself
// gives up (its intensity exceeded), RestForOne at the root restarts the
// application after it, as the actors depending on it. The integration
// actors bind fixed names in the System's registry at each start
// (kProcessActorName, kProcessPoolName): look them up there rather than
// keeping a ref, which a restart changes. A restart tears the old actor's
// trees down before the new one starts (the runtime's Down guarantee).
//
// Both objects hold SupervisorSpecs: build them before the system runs and
// keep them alive while any supervisor started from them runs.

#include <airssys/rt/process_actor.hpp>
#include <airssys/rt/process_pool.hpp>
#include <airssys/rt/supervisor.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace airssys {

struct OslSupervisorConfig {
  ProcessActorConfig process_actor;  // its name is set to kProcessActorName when empty
  ProcessPoolConfig process_pool;    // its name is set to kProcessPoolName when empty
  SupervisorFlags flags;             // OneForOne, intensity 1 in 5 s
  ShutdownSpec shutdown;             // of each integration actor (and so of its trees): 5 s
};

class OslSupervisor {
 public:
  static constexpr std::string_view kProcessActorName = "airssys.process_actor";
  static constexpr std::string_view kProcessPoolName = "airssys.process_pool";
  static constexpr std::string_view kProcessActorId = "process_actor";
  static constexpr std::string_view kProcessPoolId = "process_pool";

  explicit OslSupervisor(const OslSupervisorConfig& config = {});
  OslSupervisor(const OslSupervisor&) = delete;
  OslSupervisor& operator=(const OslSupervisor&) = delete;

  SupervisorSpec& spec() noexcept { return spec_; }
  // Ok unless the spec could not be built (the error names the child).
  const Result<void>& built() const noexcept { return built_; }

  // The running integration actors of `system`, by their registry names.
  static Result<ActorRef<ProcessActorMsg>> process_actor(System& system) noexcept;
  static Result<ActorRef<ProcessPoolMsg>> process_pool(System& system) noexcept;

 private:
  SupervisorSpec spec_;
  Result<void> built_;
};

struct OslTreeConfig {
  OslSupervisorConfig osl;
  SupervisorFlags root{Strategy::RestForOne};
  SupervisorFlags application{Strategy::RestForOne};
  std::uint32_t max_application_children = 16;
};

class OslTree {
 public:
  static constexpr std::string_view kOslId = "osl";
  static constexpr std::string_view kApplicationId = "application";

  explicit OslTree(const OslTreeConfig& config = {});
  OslTree(const OslTree&) = delete;
  OslTree& operator=(const OslTree&) = delete;

  // The application's actors, started in the order added (before start()).
  Result<void> add_application(const ChildSpec& child) { return application_.add(child); }
  // Starts the root and waits until the whole tree started (or the first
  // failure, rolled back and returned naming the child).
  Result<SupervisorRef> start(System& system, std::chrono::nanoseconds timeout = std::chrono::seconds(5));

  OslSupervisor& osl() noexcept { return osl_; }
  SupervisorSpec& application() noexcept { return application_; }
  SupervisorSpec& root() noexcept { return root_; }

 private:
  OslSupervisor osl_;
  SupervisorSpec application_;
  SupervisorSpec root_;
  Result<void> built_;
};

}  // namespace airssys
