// The cost of counting on a shard's hot path, against a plain (non-atomic) increment measured in
// the same run, and the cost of one scrape of the relay's full metric set.
#include <cstdio>

#include "benchmark/benchmark.h"
#include "relay/metrics/relay_metrics.h"

namespace relay::metrics {
namespace {

RelayMetricsOptions Options(int shards) {
  RelayMetricsOptions o;
  o.shards = shards;
  o.sites = {"google", "yahoo", "microsoft", "apple", "default"};
  for (int i = 0; i < 16; ++i) o.sources.push_back("2001:db8::" + std::to_string(i + 1));
  o.version = "bench";
  return o;
}

void BM_PlainIncrement(benchmark::State& state) {
  volatile uint64_t plain = 0;
  for (auto _ : state) plain = plain + 1;
}
BENCHMARK(BM_PlainIncrement);

void BM_CounterAdd(benchmark::State& state) {
  RelayMetrics m(Options(4));
  for (auto _ : state) m.messages_received.Add(1);
}
BENCHMARK(BM_CounterAdd);

void BM_HistogramObserve(benchmark::State& state) {
  RelayMetrics m(Options(4));
  uint64_t v = 0;
  for (auto _ : state) m.fsync_us.Observe(1, (v += 997) % 200000);
}
BENCHMARK(BM_HistogramObserve);

void BM_RecipientOutcome(benchmark::State& state) {
  RelayMetrics m(Options(4));
  int site = m.SiteIndex("google");
  for (auto _ : state) m.Recipient(1, RecipientResult::kDelivered, site, 7);
}
BENCHMARK(BM_RecipientOutcome);

void BM_Render(benchmark::State& state) {
  RelayMetrics m(Options(static_cast<int>(state.range(0))));
  size_t bytes = 0;
  for (auto _ : state) bytes = m.Render().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Render)->Arg(1)->Arg(16);

// Prints "ratio" lines: each hot-path operation against the plain increment.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      double ns = r.GetAdjustedRealTime();
      std::string name = r.benchmark_name();
      if (name == "BM_PlainIncrement") baseline_ns_ = ns;
      if (baseline_ns_ > 0 && name != "BM_PlainIncrement" && name.rfind("BM_Render", 0) != 0) {
        lines_.push_back("ratio " + name +
                         " / BM_PlainIncrement = " + std::to_string(ns / baseline_ns_));
      }
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    for (const std::string& l : lines_) std::printf("%s\n", l.c_str());
  }

 private:
  double baseline_ns_ = 0;
  std::vector<std::string> lines_;
};

}  // namespace
}  // namespace relay::metrics

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  relay::metrics::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
