#pragma once
// What actors see of the OS processes they own.

#include <airssys/osl/executor.hpp>

#include <cstdint>

namespace airssys {

using osl::Containment;
using osl::ExitStatus;
using osl::ProcessLifetime;
using osl::SpawnProcessOperation;
using osl::SpawnProcessResult;

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

// One managed process an actor owns, as child_processes() lists it.
struct ChildProcess {
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
};

}  // namespace airssys
