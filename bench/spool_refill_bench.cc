// Spool refill benchmark: how long the thread driving a spool stalls while segments roll over,
// with the reserve refilled the old way (Spool::MaintainReserve on the driving thread from a 1 s
// maintenance timer) against the shard's way (TakeReserveRequest at the end of every turn, a
// SegmentCreator thread, results handed back through a queue drained every turn, as the reactor's
// RunInLoop does). Both variants run in the same process one after the other on the same
// workload, and the ratios are printed at the end.
//
//   bazel run //bench:spool_refill_bench -- [--refill_segment_mib=64] [--refill_rollovers=4]
//       [--refill_rate=10000]
//
// 4 KiB messages arrive at --refill_rate per second (open loop: arrivals do not wait for the
// thread). Each loop turn models a shard's turn: the appends of the messages arrived so far, the
// refill work, then the group commit submitted on io_uring (IORING_OP_FSYNC, DATASYNC) and
// completed at the next turn, as relay/server/shard.cc does. Messages are never deleted, so every
// segment comes from a creation (freed segments would otherwise refill the reserve). Figures per
// variant:
//   longest_turn_ms   the longest turn, not counting the wait for the previous fdatasync (the
//                     reactor does not wait for it): the stall every session of the shard sees
//   longest_refill_ms the longest refill step of a turn (MaintainReserve, or handing out the
//                     requests): what the refill itself costs the thread
//   turns_over_10ms   turns longer than 10 ms
//   p99_us, max_us    arrival-to-durable latency (what a client waits for its 250)
//   hot_path          segments created on the append path (reserve empty)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/group_commit.h"
#include "benchmark/benchmark.h"
#include "liburing.h"
#include "queue/segment_creator.h"
#include "queue/spool.h"

namespace queue {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

uint64_t g_segment_mib = 64;
uint64_t g_rollovers = 4;
uint64_t g_rate = 10000;  // messages per second
constexpr size_t kMessageBytes = 4096;
constexpr int kBatchMax = 1024;  // appends per turn at most
constexpr int64_t kMaintenanceIntervalMs = 1000;  // the shard's maintenance timer
constexpr double kLongTurnMs = 10;

std::string BenchDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  if (tmp == nullptr) tmp = std::getenv("TMPDIR");
  fs::path dir = fs::path(tmp ? tmp : "/tmp") /
                 ("spool_refill_bench." + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir.string();
}

double Ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}


// Results of the background creator, handed back to the driving thread (the reactor's
// RunInLoop in relayd).
class HandBack {
 public:
  void Push(SegmentRequest request, CreatedSegment created) {
    std::lock_guard<std::mutex> lock(mu_);
    results_.emplace_back(std::move(request), std::move(created));
  }
  void Drain(Spool& spool) {
    std::vector<std::pair<SegmentRequest, CreatedSegment>> results;
    {
      std::lock_guard<std::mutex> lock(mu_);
      results.swap(results_);
    }
    for (auto& [request, created] : results) spool.AddReserve(request, std::move(created));
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<SegmentRequest, CreatedSegment>> results_;
};

enum class Refill { kSyncTimer, kBackground };

void RunRollover(benchmark::State& state, Refill refill) {
  const std::string dir = BenchDir(refill == Refill::kSyncTimer ? "sync" : "background");
  SpoolOptions o;
  o.directory = dir;
  o.segment_bytes = g_segment_mib << 20;
  o.reserve_segments = 2;  // relayd's default
  o.write_mode = WriteMode::kPwrite;
  auto opened = Spool::Open(o);
  if (!opened.ok()) {
    state.SkipWithError(std::string(opened.status().message()).c_str());
    return;
  }
  std::unique_ptr<Spool> spool = std::move(*opened);
  GroupCommit group_commit(spool.get());
  if (!group_commit.ok()) {
    state.SkipWithError("SKIP: no io_uring reactor");
    return;
  }
  const Envelope envelope{"app@example.net", {"user@example.com"}};
  std::string message = "Subject: refill benchmark\r\n\r\n";
  while (message.size() < kMessageBytes) {
    message.push_back(static_cast<char>('a' + message.size() % 26));
  }
  // Messages until the spool has written `g_rollovers` segments after the first.
  const uint64_t total_messages = (g_rollovers + 1) * (o.segment_bytes / (kMessageBytes + 256));

  std::vector<double> latencies_us;
  latencies_us.reserve(total_messages);
  std::vector<double> turns_ms;
  double longest_refill_ms = 0;
  HandBack hand_back;
  uint64_t appended = 0;
  // Open loop: message i arrives at start + i / rate, whether or not the thread is stalled, and
  // its latency runs from its arrival (a stall delays the messages arriving during it too).
  const auto interval = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(1.0 / static_cast<double>(g_rate)));
  for (auto _ : state) {
    SegmentCreator creator("refill");
    const auto start = SteadyClock::now();
    auto last_maintenance = start;
    auto arrival = [&](uint64_t i) { return start + interval * static_cast<int64_t>(i); };
    while (appended < total_messages) {
      group_commit.Finish();  // the reactor would be handling other completions meanwhile
      auto now = SteadyClock::now();
      if (arrival(appended) > now) {
        std::this_thread::sleep_until(
            std::min(arrival(appended), now + std::chrono::milliseconds(1)));
        now = SteadyClock::now();
      }
      const auto turn_start = now;
      if (refill == Refill::kBackground) hand_back.Drain(*spool);  // RunInLoop tasks
      for (int i = 0; i < kBatchMax && appended < total_messages && arrival(appended) <= now;
           ++i) {
        const auto t0 = arrival(appended);
        auto r = spool->AppendMessage(envelope, "", message, [&latencies_us, t0](absl::Status s) {
          if (s.ok()) {
            latencies_us.push_back(
                std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
          }
        });
        if (!r.ok()) {
          state.SkipWithError(std::string(r.status().message()).c_str());
          return;
        }
        ++appended;
      }
      // End of the turn: the refill, then the group commit.
      const auto refill_start = SteadyClock::now();
      if (refill == Refill::kBackground) {
        while (auto request = spool->TakeReserveRequest()) {
          creator.Create(std::move(*request), [&hand_back](SegmentRequest r, CreatedSegment c) {
            hand_back.Push(std::move(r), std::move(c));
          });
        }
      } else if (Ms(SteadyClock::now() - last_maintenance) >= kMaintenanceIntervalMs) {
        last_maintenance = SteadyClock::now();
        absl::Status s = spool->MaintainReserve();
        if (!s.ok()) {
          state.SkipWithError(std::string(s.message()).c_str());
          return;
        }
      }
      longest_refill_ms = std::max(longest_refill_ms, Ms(SteadyClock::now() - refill_start));
      group_commit.Start();
      turns_ms.push_back(Ms(SteadyClock::now() - turn_start));
    }
    group_commit.Finish();
    state.SetIterationTime(std::chrono::duration<double>(SteadyClock::now() - start).count());
  }
  const SpoolStats stats = spool->stats();
  state.SetItemsProcessed(static_cast<int64_t>(latencies_us.size()));
  state.counters["segments"] = static_cast<double>(stats.active_segments);
  state.counters["hot_path"] = static_cast<double>(stats.segments_created_on_hot_path);
  state.counters["longest_turn_ms"] = *std::max_element(turns_ms.begin(), turns_ms.end());
  state.counters["longest_refill_ms"] = longest_refill_ms;
  state.counters["turns_over_10ms"] = static_cast<double>(
      std::count_if(turns_ms.begin(), turns_ms.end(), [](double t) { return t > kLongTurnMs; }));
  state.counters["p99_turn_ms"] = Percentile(turns_ms, 0.99);
  state.counters["p50_us"] = Percentile(latencies_us, 0.50);
  state.counters["p99_us"] = Percentile(latencies_us, 0.99);
  state.counters["max_us"] = *std::max_element(latencies_us.begin(), latencies_us.end());
  spool.reset();
  fs::remove_all(dir);
}

void BM_Rollover_SyncTimerRefill(benchmark::State& state) {
  RunRollover(state, Refill::kSyncTimer);
}
void BM_Rollover_BackgroundRefill(benchmark::State& state) {
  RunRollover(state, Refill::kBackground);
}
BENCHMARK(BM_Rollover_SyncTimerRefill)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rollover_BackgroundRefill)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Keeps the counters of every run to print ratios at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      for (const auto& [name, counter] : run.counters) {
        values_[run.benchmark_name()][name] = counter.value;
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void PrintRatios() const {
    const std::string sync = "BM_Rollover_SyncTimerRefill/iterations:1/manual_time";
    const std::string background = "BM_Rollover_BackgroundRefill/iterations:1/manual_time";
    auto value = [&](const std::string& run, const char* counter) {
      auto r = values_.find(run);
      if (r == values_.end()) return -1.0;
      auto c = r->second.find(counter);
      return c == r->second.end() ? -1.0 : c->second;
    };
    std::printf(
        "\n--- ratios measured in this run (%llu MiB segments, %llu rollovers, %llu msg/s) ---\n",
        static_cast<unsigned long long>(g_segment_mib),
        static_cast<unsigned long long>(g_rollovers), static_cast<unsigned long long>(g_rate));
    for (const char* counter : {"longest_refill_ms", "longest_turn_ms", "p99_turn_ms", "max_us",
                                "p99_us", "p50_us", "items_per_second"}) {
      double a = value(sync, counter), b = value(background, counter);
      if (a < 0 || b <= 0) continue;
      std::printf("ratio %-17s sync timer refill / background refill %10.2fx  (%.3f vs %.3f)\n",
                  counter, a / b, a, b);
    }
  }

 private:
  std::map<std::string, std::map<std::string, double>> values_;
};

}  // namespace
}  // namespace queue

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    auto flag = [&](const char* prefix, uint64_t* value) {
      if (std::strncmp(argv[i], prefix, std::strlen(prefix)) != 0) return false;
      *value = std::strtoull(argv[i] + std::strlen(prefix), nullptr, 10);
      return true;
    };
    if (!flag("--refill_segment_mib=", &queue::g_segment_mib) &&
        !flag("--refill_rollovers=", &queue::g_rollovers) &&
        !flag("--refill_rate=", &queue::g_rate)) {
      rest.push_back(argv[i]);
    }
  }
  if (queue::g_segment_mib == 0 || queue::g_segment_mib > 4096 || queue::g_rollovers == 0 ||
      queue::g_rate == 0) {
    std::fprintf(stderr,
                 "--refill_segment_mib must be in [1, 4096], --refill_rollovers and "
                 "--refill_rate above 0\n");
    return 2;
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  queue::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
