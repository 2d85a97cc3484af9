#include "run/metrics.hpp"

#include <airssys/arch/process.hpp>
#include <airssys/rt/monitoring.hpp>
#include <airssys/rt/system.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace airssys::run {

namespace {

// A label value with '\', '"' and newlines escaped, as the format asks
// (Procfile names cannot hold them; kept exact anyway).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

template <class F>
void per_service(std::string& out, const char* name, const std::vector<MetricsService>& services, F value,
                 bool (*has)(const MetricsService&) = nullptr) {
  for (const auto& s : services) {
    if (has != nullptr && !has(s)) continue;
    out += name;
    out += "{service=\"" + label(s.name) + "\"} " + std::to_string(value(s)) + '\n';
  }
}

}  // namespace

Result<std::string> metrics_text(const std::vector<MetricsService>& services, const System& system,
                                 const Monitoring& monitoring) {
  const SystemStats actors = system.stats();
  const auto processes = system.process_counters();
  std::string out(16 * 1024, '\0');
  for (;;) {
    auto written = monitoring.write_prometheus(out, actors, processes);
    if (written) {
      out.resize(written.value());
      break;
    }
    // Full: a buffer twice as large (the per-child table can be long).
    if (written.error().code() != Errc::Full || out.size() >= (std::size_t{1} << 24)) return written.error();
    out.resize(out.size() * 2);
  }
  family(out, "airssys_run_service_restarts_total", "counter", "Restarts of the service since airssys-run started.");
  per_service(out, "airssys_run_service_restarts_total", services, [](const MetricsService& s) { return s.restarts; });
  family(out, "airssys_run_service_running", "gauge", "1 while the service's command runs.");
  per_service(out, "airssys_run_service_running", services, [](const MetricsService& s) { return s.running ? 1 : 0; });
  family(out, "airssys_run_service_exits_total", "counter", "Times the service's command ended by itself.");
  per_service(out, "airssys_run_service_exits_total", services, [](const MetricsService& s) { return s.exits; });
  family(out, "airssys_run_service_failures_total", "counter",
         "Times the service's command ended with a status other than 0, or could not start.");
  per_service(out, "airssys_run_service_failures_total", services, [](const MetricsService& s) { return s.failures; });
  // No sample for a service that has not exited yet: 0 would read as a
  // clean exit.
  family(out, "airssys_run_service_last_exit_status", "gauge",
         "Status of the command's last exit (128+N: killed by signal N; 125..127: could not start).");
  per_service(
      out, "airssys_run_service_last_exit_status", services, [](const MetricsService& s) { return s.last_status; },
      [](const MetricsService& s) { return s.has_status; });
  return out;
}

Result<void> write_metrics_file(const char* path, const std::vector<MetricsService>& services,
                                const System& system, const Monitoring& monitoring) {
  auto built = metrics_text(services, system, monitoring);
  if (!built) return built.error();
  const std::string& text = built.value();
  // In the same directory, so that the rename replaces the file in one step.
  const std::string tmp = std::string(path) + ".tmp" + std::to_string(arch::own_pid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Error::make_os(errno, "cannot write '%s': %s", tmp.c_str(), std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    const int err = errno;
    std::remove(tmp.c_str());
    return Error::make_os(err, "cannot write '%s': %s", tmp.c_str(), std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return Error::make_os(err, "cannot replace '%s': %s", path, std::strerror(err));
  }
  return {};
}

}  // namespace airssys::run
