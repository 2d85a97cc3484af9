#pragma once
// What actors see of the OS processes they own.

#include <airssys/osl/executor.hpp>
#include <airssys/rt/messages.hpp>  // ProcessExited

#include <cstdint>

namespace airssys {

using osl::Containment;
using osl::ProcessLifetime;
using osl::SpawnProcessOperation;
using osl::SpawnProcessResult;

// One managed process an actor owns, as child_processes() lists it.
struct ChildProcess {
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
};

}  // namespace airssys
