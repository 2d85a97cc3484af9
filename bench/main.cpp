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
#include <thread>
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
};

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
      std::string name = r.benchmark_name();
      if (auto at = name.find("/real_time"); at != std::string::npos) name.erase(at, 10);
      auto& m = results_[name];
      if (m.ns == 0 || ns < m.ns) m.ns = ns;
      for (const auto& [k, c] : r.counters) m.counters[k] = c.value;
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n== airssys comparison (ratios from this run) ==\n");
    std::printf("machine: %s, %u cores, Linux %s\n", cpu_model().c_str(),
                std::thread::hardware_concurrency(), first_line("/proc/sys/kernel/osrelease").c_str());
    std::printf("%-58s %10s %10s %8s %7s\n", "ratio (A / B)", "A ns/op", "B ns/op", "ratio",
                "target");
    for (const auto& p : kPairs) {
      auto a = results_.find(p.numerator);
      auto b = results_.find(p.denominator);
      if (a == results_.end() || b == results_.end()) continue;
      const double ratio = a->second.ns / b->second.ns;
      const bool met = p.at_least ? ratio >= p.target : ratio <= p.target;
      const std::string label = std::string(p.numerator) + " / " + p.denominator;
      std::printf("%-58s %10.1f %10.1f %8.2f %7s %s\n", label.c_str(), a->second.ns, b->second.ns, ratio,
                  p.goal, met ? "met" : "MISSED");
    }
    std::printf("\n%-44s %14s %16s\n", "benchmark", "allocs_per_op", "bytes_per_actor");
    for (const auto& [name, m] : results_) {
      auto al = m.counters.find("allocs_per_op");
      if (al == m.counters.end()) continue;
      auto by = m.counters.find("bytes_per_actor");
      std::printf("%-44s %14.4f %16s\n", name.c_str(), al->second,
                  by == m.counters.end() ? "-" : std::to_string(static_cast<int>(by->second)).c_str());
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
