// A console reporter that also keeps the CPU time per iteration of every benchmark it reports (in
// the benchmark's own time unit), so that a benchmark's main can print ratios against a baseline
// measured in the same run. CPU time, not wall time: wall time swings with the load of the shared
// machine.
//
//   relay::bench::CpuTimeReporter reporter;
//   benchmark::RunSpecifiedBenchmarks(&reporter);
//   double ratio = reporter.cpu_time().at("BM_A") / reporter.cpu_time().at("BM_Baseline");
//
// Repetitions' aggregates are not kept, only iteration runs without an error. One thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

namespace relay::bench {

class CpuTimeReporter : public benchmark::ConsoleReporter {
 public:
  explicit CpuTimeReporter(OutputOptions options = OO_Defaults) : ConsoleReporter(options) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      cpu_time_[run.benchmark_name()] = run.GetAdjustedCPUTime();
    }
  }
  // Benchmark name -> CPU time per iteration of its last run.
  const std::map<std::string, double>& cpu_time() const { return cpu_time_; }

 private:
  std::map<std::string, double> cpu_time_;
};

}  // namespace relay::bench
