// The cost of checking a password, to choose the scrypt parameters (users.h records the choice):
// scrypt at N = 2^14, 2^15, 2^16 (r=8, p=1), and a credential-cache hit, with ratios against
// N = 2^14 measured in the same run.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/server/users.h"

namespace relay::server {
namespace {

void BM_ScryptVerify(benchmark::State& state) {
  ScryptParams params;
  params.log2_n = static_cast<int>(state.range(0));
  std::string hash = HashPassword("bench password", params).value();
  for (auto _ : state) {
    if (!VerifyPasswordHash(hash, "bench password")) abort();
  }
}
BENCHMARK(BM_ScryptVerify)->Arg(14)->Arg(15)->Arg(16)->Unit(benchmark::kMillisecond);

void BM_CachedCredentials(benchmark::State& state) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/bench-users";
  auto db = UserDb::LoadOrEmpty(path).value();
  ScryptParams cheap;
  cheap.log2_n = 10;
  if (!db->Add("app@example.com", "bench password", {}, cheap).ok()) abort();
  if (!db->Verify("app@example.com", "bench password")) abort();
  for (auto _ : state) {
    if (!db->CheckCachedCredentials("app@example.com", "bench password")) abort();
  }
}
BENCHMARK(BM_CachedCredentials)->Unit(benchmark::kMicrosecond);

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.iterations == 0) continue;
      // CPU time: wall time on the shared machine swings with the other work on it.
      nanos_[run.benchmark_name()] =
          run.GetAdjustedCPUTime() * (run.time_unit == benchmark::kMillisecond   ? 1e6
                                      : run.time_unit == benchmark::kMicrosecond ? 1e3
                                                                                 : 1);
    }
  }
  void PrintRatios() {
    auto base = nanos_.find("BM_ScryptVerify/14");
    if (base == nanos_.end()) return;
    for (const auto& [name, nanos] : nanos_) {
      double ratio = nanos / base->second;
      if (ratio >= 0.1) {
        printf("ratio %-24s %8.2fx the cost of BM_ScryptVerify/14 (%.4f ms CPU)\n", name.c_str(),
               ratio, nanos / 1e6);
      } else {
        printf("ratio %-24s %8.0fx cheaper than BM_ScryptVerify/14 (%.4f ms CPU)\n", name.c_str(),
               1 / ratio, nanos / 1e6);
      }
    }
  }

 private:
  std::map<std::string, double> nanos_;
};

}  // namespace
}  // namespace relay::server

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  relay::server::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
