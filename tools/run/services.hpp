#pragma once
// airssys-run --procfile: every Procfile line a service, each service a
// child actor of one Supervisor (rt). The actor runs its command through
// `/bin/sh -c` as a managed, contained tree whose stdout and stderr go to
// ServiceOutput, and ends when the command ends: exit 0 is a normal stop,
// anything else a failure carrying the status, so the supervisor's restart
// rules (strategy, restart type, intensity) decide what follows. Stopping
// the actor (a restart, the supervisor's shutdown) tears its tree down;
// the supervisor starts a replacement only once the old tree is gone.

#include "run/procfile.hpp"

#include <airssys/osl/audit.hpp>
#include <airssys/rt/supervisor.hpp>
#include <airssys/rt/system.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include <signal.h>

namespace airssys::run {

struct ProcfileOptions {
  const char* procfile = nullptr;
  Strategy strategy = Strategy::OneForOne;
  RestartType restart = RestartType::Temporary;
  std::uint32_t max_restarts = 3;
  std::int64_t period_s = 60;
  std::int64_t kill_timeout_ms = 5000;
  Containment containment = Containment::Auto;
  std::string_view cwd;
  osl::AuditLog* audit = nullptr;
  const char* metrics = nullptr;  // rewritten once a second when set
};

// Runs the Procfile's services until SIGINT, SIGTERM or SIGHUP (all three
// stop every service in reverse order), until every service has ended for
// good, or until the supervisor gives up (more than max_restarts restarts
// within period_s). `signals` are blocked in every thread; the caller's
// thread takes them. Prints the summary on stderr and returns airssys-run's
// exit status: the first failed service's status (its exit code, or
// 128 + signal), else 1 if the supervisor gave up, else 0; 2 for a bad
// Procfile; 125/126/127 when a service could not be started at all.
int run_procfile(const ProcfileOptions& options, const sigset_t& signals);

}  // namespace airssys::run
