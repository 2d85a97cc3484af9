// OslSupervisor and the recommended tree.
#include <airssys/rt/osl_supervisor.hpp>

namespace airssys {

OslSupervisor::OslSupervisor(const OslSupervisorConfig& config) : spec_(config.flags, 2) {
  ProcessActorConfig pa = config.process_actor;
  if (pa.name.empty()) pa.name = kProcessActorName;
  ProcessPoolConfig pool = config.process_pool;
  if (pool.name.empty()) pool.name = kProcessPoolName;
  // A name that does not fit is refused here, naming it, rather than
  // only as a failed start of the child.
  built_ = pa.name.check();
  if (built_) built_ = pool.name.check();
  if (built_) built_ = spec_.add(ChildSpec::worker<ProcessActor>(kProcessActorId, pa).shutdown(config.shutdown));
  if (built_) built_ = spec_.add(ChildSpec::worker<ProcessPoolActor>(kProcessPoolId, pool).shutdown(config.shutdown));
}

Result<ActorRef<ProcessActorMsg>> OslSupervisor::process_actor(System& system) noexcept {
  return system.registry().find<ProcessActorMsg>(kProcessActorName);
}

Result<ActorRef<ProcessPoolMsg>> OslSupervisor::process_pool(System& system) noexcept {
  return system.registry().find<ProcessPoolMsg>(kProcessPoolName);
}

OslTree::OslTree(const OslTreeConfig& config)
    : osl_(config.osl), application_(config.application, config.max_application_children), root_(config.root, 2) {
  built_ = osl_.built();
  if (built_) built_ = root_.add(ChildSpec::supervisor(kOslId, osl_.spec()));
  if (built_) built_ = root_.add(ChildSpec::supervisor(kApplicationId, application_));
}

Result<SupervisorRef> OslTree::start(System& system, std::chrono::nanoseconds timeout) {
  if (!built_) return built_.error();
  return start_supervisor(system, root_, timeout);
}

}  // namespace airssys
