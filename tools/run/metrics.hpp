#pragma once
// airssys-run --metrics FILE: the runtime's monitoring counters
// (Monitoring::write_prometheus: events, restarts per service, process
// trees, actors) followed by airssys-run's own per-service families, in the
// Prometheus text exposition format, rewritten atomically (a temporary file
// in the same directory, then a rename), so a scraper never reads half a
// file.

#include <airssys/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace airssys {
class Monitoring;
class System;
}

namespace airssys::run {

struct MetricsService {
  std::string name;
  std::uint32_t restarts = 0;
  bool running = false;
  std::uint32_t exits = 0;     // ended by itself
  std::uint32_t failures = 0;  // ... with a status other than 0, or could not start
  int last_status = 0;
  bool has_status = false;  // it exited (or could not start) at least once: last_status is one
};

// The exposition text: `monitoring`'s, with `system`'s actor and process
// counters, then the families of `services`.
Result<std::string> metrics_text(const std::vector<MetricsService>& services, const System& system,
                                 const Monitoring& monitoring);

// Writes metrics_text to `path` atomically; an error names the file.
Result<void> write_metrics_file(const char* path, const std::vector<MetricsService>& services,
                                const System& system, const Monitoring& monitoring);

}  // namespace airssys::run
