// Reactor loop cost per completion: the relay's Reactor (caller-owned completions, batched reaping,
// one CQ advance per turn, handler dispatch, timer and hook processing) against the same NOP
// workload written directly on liburing, measured in the same run. Also the timer wheel's re-arm
// cost (every command re-arms a session timeout).
//
// Prints, after the table, the ratio of the reactor's cost per completion to raw liburing's.
#include <liburing.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/io/reactor.h"
#include "relay/io/timer_wheel.h"

namespace {

constexpr int kBatch = 64;

void BM_RawLiburingNop(benchmark::State& state) {
  io_uring ring;
  io_uring_queue_init(256, &ring, 0);
  uint64_t handled = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, i + 1);
    }
    io_uring_submit_and_wait(&ring, kBatch);
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      handled += cqe->user_data;
      ++count;
    }
    io_uring_cq_advance(&ring, count);
  }
  benchmark::DoNotOptimize(handled);
  io_uring_queue_exit(&ring);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_RawLiburingNop);

void BM_ReactorNop(benchmark::State& state) {
  auto reactor = relay::io::Reactor::Create({});
  if (!reactor.ok()) {
    state.SkipWithError(("io_uring unavailable: " + reactor.status().ToString()).c_str());
    return;
  }
  relay::io::Reactor& r = **reactor;
  std::vector<std::unique_ptr<relay::io::Completion>> ops;
  uint64_t handled = 0;
  for (int i = 0; i < kBatch; ++i) {
    ops.push_back(std::make_unique<relay::io::Completion>(
        [&handled](int, uint32_t) { ++handled; }));
  }
  for (auto _ : state) {
    for (auto& op : ops) {
      io_uring_sqe* sqe = r.GetSqe();
      io_uring_prep_nop(sqe);
      r.Arm(sqe, op.get());
    }
    uint64_t target = handled + kBatch;
    while (handled < target) r.RunOnce(-1);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ReactorNop);

void BM_TimerWheelRearm(benchmark::State& state) {
  relay::io::TimerWheel wheel(0);
  std::vector<std::unique_ptr<relay::io::Timer>> timers;
  for (int i = 0; i < 20000; ++i) {
    timers.push_back(std::make_unique<relay::io::Timer>([] {}));
    wheel.Schedule(timers.back().get(), 300000 + i);
  }
  size_t i = 0;
  int64_t now = 0;
  for (auto _ : state) {
    wheel.Schedule(timers[i].get(), now + 300000);
    if (++i == timers.size()) {
      i = 0;
      wheel.Advance(++now);
    }
  }
  for (auto& t : timers) wheel.Cancel(t.get());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerWheelRearm);

// Collects ns per item to print the ratio after the usual table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end() && it->second.value > 0) {
        ns_per_item_[run.benchmark_name()] = 1e9 / it->second.value;
      }
    }
  }
  void PrintRatios() const {
    auto raw = ns_per_item_.find("BM_RawLiburingNop");
    auto ours = ns_per_item_.find("BM_ReactorNop");
    if (raw == ns_per_item_.end() || ours == ns_per_item_.end()) return;
    std::printf(
        "\nreactor: %.1f ns per completion; raw liburing: %.1f ns; reactor/raw = %.2f "
        "(overhead %.1f ns per completion)\n",
        ours->second, raw->second, ours->second / raw->second, ours->second - raw->second);
    auto rearm = ns_per_item_.find("BM_TimerWheelRearm");
    if (rearm != ns_per_item_.end()) {
      std::printf("timer wheel re-arm with 20,000 armed timers: %.1f ns\n", rearm->second);
    }
  }

 private:
  std::map<std::string, double> ns_per_item_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
