// airssys-bench: every benchmark and its peers in one binary, then a table
// of the ratios from this one run. Ratios, not absolute times, are what the
// project quotes: the machines are shared.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

// A comparison the table prints: numerator / denominator, and the target.
struct Pair {
  const char* numerator;
  const char* denominator;
  const char* goal;      // ">= 25" or "<= 3"
  double target;
  bool at_least;         // true: ratio must be >= target
};

const Pair kPairs[] = {
    {"caf/pingpong", "rt/pingpong/same_worker", ">= 25", 25, true},
    {"rt/pingpong/cross_worker", "limit/spin_roundtrip", "<= 3", 3, false},
    {"caf/fanin/4to1", "rt/fanin/4to1", ">= 8", 8, true},
    {"caf/spawn_stop", "rt/spawn_stop", ">= 30", 30, true},
    // Processes: osl against the raw floor and against Boost.Process v1.
    {"osl/spawn/managed_pgroup", "osl/spawn/raw_posix_spawn", "<= 1.15", 1.15, false},
    {"osl/spawn/managed_pgroup/rss_mb:1024", "osl/spawn/raw_posix_spawn/rss_mb:1024", "<= 1.15", 1.15, false},
    {"osl/spawn/managed_cgroup", "osl/spawn/raw_posix_spawn", "<= 1.3", 1.3, false},
    {"peer/boost_process/spawn_group/rss_mb:1024", "osl/spawn/managed_pgroup/rss_mb:1024", ">= 30", 30, true},
    {"osl/teardown/tree100/cgroup", "limit/teardown/tree100", "<= 2", 2, false},
    {"osl/teardown/tree100/pgroup", "limit/teardown/tree100", "<= 2", 2, false},
    // Supervision: a restart against CAF's monitor + respawn, and a restart
    // that tears down and respawns a process against kill + reap + spawn.
    {"caf/monitor_respawn", "rt/supervisor/restart_one_for_one", ">= 20", 20, true},
    {"rt/supervisor/restart_with_process", "limit/respawn_process", "<= 1.3", 1.3, false},
};

// Benchmarks whose allocs_per_op target is 0, checked in the table.
const std::string_view kZeroAllocs[] = {"rt/supervisor/restart_one_for_one"};

// The name a run is known by in kPairs: benchmark_name() without the
// components the run options add ("iterations:500", "min_time:0.500",
// "real_time", "manual_time"), so a benchmark keeps its name when its run
// options change. "threads:N" stays: it tells runs apart.
std::string pair_name(const std::string& full) {
  auto is_run_option = [](std::string_view part) {
    for (std::string_view prefix : {"iterations:", "min_time:", "min_warmup_time:", "repeats:"})
      if (part.substr(0, prefix.size()) == prefix) return true;
    return part == "real_time" || part == "manual_time";
  };
  std::string name;
  std::size_t at = 0;
  while (at <= full.size()) {
    const auto end = std::min(full.find('/', at), full.size());
    const std::string_view part(full.data() + at, end - at);
    if (!is_run_option(part)) {
      if (!name.empty()) name += '/';
      name += part;
    }
    at = end + 1;
  }
  return name;
}

struct Measured {
  double ns = 0;  // real time per iteration
  std::map<std::string, double> counters;
};

// Prints the usual console output and remembers each benchmark's best time.
class TableReporter : public benchmark::ConsoleReporter {
 public:
  // Plain tabular output: the report usually goes to a log.
  TableReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const double ns = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit) * 1e9;
      auto& m = results_[pair_name(r.benchmark_name())];
      if (m.ns == 0 || ns < m.ns) m.ns = ns;
      for (const auto& [k, c] : r.counters) m.counters[k] = c.value;
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n== airssys comparison (ratios from this run) ==\n");
    std::printf("machine: %s, %u cores, Linux %s\n", cpu_model().c_str(),
                std::thread::hardware_concurrency(), first_line("/proc/sys/kernel/osrelease").c_str());
    // Rows whose two benchmarks both ran; the label column fits the longest.
    std::vector<std::pair<const Pair*, std::string>> rows;
    int width = 58;
    for (const auto& p : kPairs) {
      if (!results_.count(p.numerator) || !results_.count(p.denominator)) continue;
      rows.emplace_back(&p, std::string(p.numerator) + " / " + p.denominator);
      width = std::max(width, static_cast<int>(rows.back().second.size()));
    }
    std::printf("%-*s %10s %10s %8s %7s\n", width, "ratio (A / B)", "A ns/op", "B ns/op", "ratio", "target");
    for (const auto& [p, label] : rows) {
      const double a = results_[p->numerator].ns;
      const double b = results_[p->denominator].ns;
      const double ratio = a / b;
      const bool met = p->at_least ? ratio >= p->target : ratio <= p->target;
      const char* verdict = met ? "met" : "MISSED";
      std::printf("%-*s %10.1f %10.1f %8.2f %7s %s\n", width, label.c_str(), a, b, ratio, p->goal, verdict);
    }
    std::printf("\n%-44s %14s %16s\n", "benchmark", "allocs_per_op", "bytes_per_actor");
    for (const auto& [name, m] : results_) {
      auto al = m.counters.find("allocs_per_op");
      if (al == m.counters.end()) continue;
      auto by = m.counters.find("bytes_per_actor");
      // Benchmarks whose target is no allocation at all say whether they met it.
      const bool zero_target = std::find(std::begin(kZeroAllocs), std::end(kZeroAllocs), name) != std::end(kZeroAllocs);
      std::printf("%-44s %14.4f %16s%s\n", name.c_str(), al->second,
                  by == m.counters.end() ? "-" : std::to_string(static_cast<int>(by->second)).c_str(),
                  zero_target ? (al->second == 0 ? "  target 0: met" : "  target 0: MISSED") : "");
    }
    std::fflush(stdout);
  }

 private:
  static std::string first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line.empty() ? "unknown" : line;
  }
  static std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        auto colon = line.find(':');
        if (colon != std::string::npos) return line.substr(colon + 2);
      }
    }
    return "unknown cpu";
  }
  std::map<std::string, Measured> results_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
