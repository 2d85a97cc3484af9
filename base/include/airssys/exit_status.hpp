#pragma once
// How an OS process ended. A plain value shared by the layers: arch reaps
// processes and fills it, osl passes it on, and rt hands it to actors in
// ProcessExited, which is why it lives below all three (an actor's header
// then needs no process-layer header).

namespace airssys {

// How a process ended: exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;     // valid when signal == 0
  int signal = 0;   // non-zero: killed by this signal
  bool core_dumped = false;  // killed by `signal`, and the kernel dumped its core
  // The shell convention: code, or 128 + signal.
  int shell_status() const noexcept { return signal != 0 ? 128 + signal : code; }
};

}  // namespace airssys
