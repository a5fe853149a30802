// Queue benchmarks: durable append throughput of 4 KiB messages with group commit against one
// fdatasync per message, against a file-per-message spool (create, write, fsync file, fsync dir:
// the Postfix/chasquid way) and against no fsync at all; append-to-durable latency; recovery of a
// spool of many small records; compaction throughput. Ratios against the baselines measured in the
// same run are printed at the end.
//
//   bazel run //bench:queue_bench -- [--queue_recovery_records=1000000] [benchmark flags]
//
// Each loop turn of the group-commit benchmark models a shard's event loop with `batch` sessions
// finishing DATA in the same turn: `batch` appends, the outcomes (kDeleted) of the previous turn's
// messages as delivery would append them, then one sync. The other variants do the same work with
// a different sync policy, so the segments recycle the same way in all of them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/group_commit.h"
#include "benchmark/benchmark.h"
#include "liburing.h"
#include "queue/spool.h"

namespace queue {
namespace {

namespace fs = std::filesystem;

uint64_t g_recovery_records = 1000000;
constexpr size_t kMessageBytes = 4096;

std::string BenchDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  if (tmp == nullptr) tmp = std::getenv("TMPDIR");
  fs::path dir = fs::path(tmp ? tmp : "/tmp") / ("queue_bench." + std::to_string(::getpid())) /
                 name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir.string();
}

const Envelope& SampleEnvelope() {
  static const Envelope* e = new Envelope{"app@example.net", {"user@example.com"}};
  return *e;
}

const std::string& SampleMessage() {
  static const std::string* m = [] {
    auto* s = new std::string("Subject: benchmark\r\n\r\n");
    while (s->size() < kMessageBytes) s->push_back(static_cast<char>('a' + s->size() % 26));
    return s;
  }();
  return *m;
}

std::unique_ptr<Spool> OpenBenchSpool(const std::string& dir, bool fsync, WriteMode mode) {
  SpoolOptions o;
  o.directory = dir;
  o.segment_bytes = 16 << 20;
  o.reserve_segments = 3;
  o.fsync = fsync;
  o.write_mode = mode;
  auto spool = Spool::Open(o);
  if (!spool.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), std::string(spool.status().message()).c_str());
    std::exit(1);
  }
  return std::move(*spool);
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

enum class SyncPolicy {
  kGroupCommit,          // the shard's way: fdatasync on io_uring, in flight while the next
                         // turn's appends are made
  kGroupCommitBlocking,  // SyncNow at the end of each turn
  kPerRecord,            // SyncNow after every message
  kNone,                 // fsync = false
};


// One loop turn: `batch` appends (+ last turn's outcomes), synced according to `policy`.
void RunAppends(benchmark::State& state, SyncPolicy policy, WriteMode mode) {
  const int batch = static_cast<int>(state.range(0));
  const std::string dir = BenchDir("append");
  auto spool = OpenBenchSpool(dir, policy != SyncPolicy::kNone, mode);
  GroupCommit group_commit(spool.get());
  if (policy == SyncPolicy::kGroupCommit && !group_commit.ok()) {
    state.SkipWithError("SKIP: no io_uring reactor");
    return;
  }
  std::vector<MessageId> previous, current;
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 16);
  int64_t durable = 0;
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    for (MessageId id : previous) {
      StateRecord s;
      s.type = RecordType::kDeleted;
      s.id = id;
      if (!spool->AppendState(s, nullptr).ok()) state.SkipWithError("state append failed");
    }
    previous.clear();
    for (int i = 0; i < batch; ++i) {
      const auto t0 = Clock::now();
      auto r = spool->AppendMessage(SampleEnvelope(), "", SampleMessage(),
                                    [&, t0](absl::Status s) {
                                      if (!s.ok()) return;
                                      ++durable;
                                      latencies_us.push_back(
                                          std::chrono::duration<double, std::micro>(Clock::now() -
                                                                                    t0)
                                              .count());
                                    });
      if (!r.ok()) {
        state.SkipWithError("append failed");
        break;
      }
      current.push_back(r->id);
      if (policy == SyncPolicy::kPerRecord && !spool->SyncNow().ok()) {
        state.SkipWithError("sync failed");
      }
    }
    if (policy == SyncPolicy::kGroupCommit) {
      group_commit.Finish();
      group_commit.Start();
    } else if (!spool->SyncNow().ok()) {
      state.SkipWithError("sync failed");
    }
    std::swap(previous, current);
  }
  group_commit.Finish();
  state.SetItemsProcessed(durable);
  state.SetBytesProcessed(durable * static_cast<int64_t>(kMessageBytes));
  state.counters["p50_us"] = Percentile(latencies_us, 0.50);
  state.counters["p99_us"] = Percentile(latencies_us, 0.99);
  state.counters["syncs"] = static_cast<double>(spool->stats().syncs);
  spool.reset();
  fs::remove_all(dir);
}

void BM_Append_GroupCommit_Mmap(benchmark::State& state) {
  RunAppends(state, SyncPolicy::kGroupCommit, WriteMode::kMmap);
}
void BM_Append_GroupCommitBlocking_Pwrite(benchmark::State& state) {
  RunAppends(state, SyncPolicy::kGroupCommitBlocking, WriteMode::kPwrite);
}
void BM_Append_GroupCommit_Pwrite(benchmark::State& state) {
  RunAppends(state, SyncPolicy::kGroupCommit, WriteMode::kPwrite);
}
void BM_Append_FsyncPerRecord(benchmark::State& state) {
  RunAppends(state, SyncPolicy::kPerRecord, WriteMode::kPwrite);
}
void BM_Append_NoFsync_Mmap(benchmark::State& state) {
  RunAppends(state, SyncPolicy::kNone, WriteMode::kMmap);
}
void BM_Append_NoFsync_Pwrite(benchmark::State& state) {
  RunAppends(state, SyncPolicy::kNone, WriteMode::kPwrite);
}
BENCHMARK(BM_Append_GroupCommit_Mmap)->Arg(64)->Arg(256)->UseRealTime();
BENCHMARK(BM_Append_GroupCommit_Pwrite)->Arg(64)->Arg(256)->UseRealTime();
BENCHMARK(BM_Append_GroupCommitBlocking_Pwrite)->Arg(64)->UseRealTime();
BENCHMARK(BM_Append_FsyncPerRecord)->Arg(64)->UseRealTime();
BENCHMARK(BM_Append_NoFsync_Mmap)->Arg(64)->Arg(256)->UseRealTime();
BENCHMARK(BM_Append_NoFsync_Pwrite)->Arg(64)->Arg(256)->UseRealTime();

// The file-per-message spool: create, write, fsync the file, fsync the directory (so the name is
// durable), as Postfix's and chasquid's queues do; the file of the previous message is unlinked
// (its delivery), without a sync, like the kDeleted records above.
void BM_FilePerMessage(benchmark::State& state) {
  const std::string dir = BenchDir("files");
  fs::create_directories(dir);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  uint64_t n = 0;
  std::string previous;
  for (auto _ : state) {
    std::string path = dir + "/m" + std::to_string(n++);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ::write(fd, SampleMessage().data(), kMessageBytes) !=
                      static_cast<ssize_t>(kMessageBytes) ||
        ::fsync(fd) != 0 || ::fsync(dir_fd) != 0) {
      state.SkipWithError("file spool I/O failed");
    }
    ::close(fd);
    if (!previous.empty()) ::unlink(previous.c_str());
    previous = path;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kMessageBytes));
  ::close(dir_fd);
  fs::remove_all(dir);
}
BENCHMARK(BM_FilePerMessage)->UseRealTime();

// Recovery (Spool::Open) of a spool holding g_recovery_records small messages (64-byte bodies),
// page cache warm. The spool is built once, without fsync, outside the timing.
void BM_Recovery(benchmark::State& state) {
  const std::string dir = BenchDir("recovery");
  const std::string body(64, 'r');
  {
    auto spool = OpenBenchSpool(dir, /*fsync=*/false, WriteMode::kMmap);
    for (uint64_t i = 0; i < g_recovery_records; ++i) {
      if (!spool->AppendMessage(SampleEnvelope(), "", body, nullptr).ok()) {
        state.SkipWithError("building the spool failed");
        return;
      }
    }
    if (!spool->SyncNow().ok()) state.SkipWithError("sync failed");
  }
  uint64_t records = 0;
  for (auto _ : state) {
    SpoolOptions o;
    o.directory = dir;
    o.segment_bytes = 16 << 20;
    o.reserve_segments = 3;
    o.fsync = false;  // recovery's one fdatasync per segment is not what is measured here
    RecoveryReport report;
    auto spool = Spool::Open(o, &report);
    if (!spool.ok() || report.live_messages != g_recovery_records) {
      state.SkipWithError("recovery lost records");
      break;
    }
    records += report.records;
  }
  state.SetItemsProcessed(static_cast<int64_t>(records));
  state.counters["records"] = static_cast<double>(g_recovery_records);
  fs::remove_all(dir);
}
BENCHMARK(BM_Recovery)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// Compaction: segments of 4 KiB messages where 1 in 10 is still deferred; each iteration compacts
// the oldest segment (re-appending its live messages at the head) and syncs, which frees it.
void BM_Compaction(benchmark::State& state) {
  const std::string dir = BenchDir("compaction");
  auto spool = OpenBenchSpool(dir, /*fsync=*/true, WriteMode::kPwrite);
  uint64_t moved = 0;
  uint64_t moved_bytes = 0;
  uint64_t n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // Fill one segment's worth: 90% delivered, 10% deferred.
    const size_t per_segment = (16 << 20) / (kMessageBytes + 128);
    for (size_t i = 0; i < per_segment; ++i) {
      auto r = spool->AppendMessage(SampleEnvelope(), "", SampleMessage(), nullptr);
      if (!r.ok()) {
        state.SkipWithError("append failed");
        break;
      }
      StateRecord s;
      s.id = r->id;
      s.type = ++n % 10 == 0 ? RecordType::kDeferred : RecordType::kDelivered;
      s.attempts = 1;
      s.next_attempt_unix_ms = 1;
      if (!spool->AppendState(s, nullptr).ok()) state.SkipWithError("state append failed");
    }
    if (!spool->SyncNow().ok()) state.SkipWithError("sync failed");
    state.ResumeTiming();
    for (int round = 0; round < 4; ++round) {
      auto m = spool->MaintainSpace(/*force=*/true);
      if (!m.ok()) {
        state.SkipWithError("compaction failed");
        break;
      }
      moved += *m;
      moved_bytes += *m * kMessageBytes;
      if (!spool->SyncNow().ok()) state.SkipWithError("sync failed");
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(moved));
  state.SetBytesProcessed(static_cast<int64_t>(moved_bytes));
  state.counters["segments_freed"] = static_cast<double>(spool->stats().segments_freed);
  spool.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_Compaction)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// Collects items/s of every run to print ratios at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end()) rates_[run.benchmark_name()] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void PrintRatios() const {
    auto rate = [&](const std::string& name) {
      auto it = rates_.find(name);
      return it == rates_.end() ? 0.0 : it->second;
    };
    auto ratio = [&](const std::string& label, const std::string& a, const std::string& b,
                     const char* target) {
      double ra = rate(a), rb = rate(b);
      if (ra <= 0 || rb <= 0) return;
      std::printf("ratio %-62s %8.2fx  (%.0f/s vs %.0f/s)%s\n", label.c_str(), ra / rb, ra, rb,
                  target);
    };
    std::printf("\n--- ratios measured in this run ---\n");
    const std::string per_record = "BM_Append_FsyncPerRecord/64/real_time";
    for (const char* mode : {"Pwrite", "Mmap"}) {
      for (const char* batch : {"64", "256"}) {
        const std::string group =
            absl::StrCat("BM_Append_GroupCommit_", mode, "/", batch, "/real_time");
        const std::string none = absl::StrCat("BM_Append_NoFsync_", mode, "/", batch, "/real_time");
        ratio(absl::StrCat("group commit ", mode, " batch ", batch, " / fdatasync per record"),
              group, per_record, "  target >= 20x");
        ratio(absl::StrCat("group commit ", mode, " batch ", batch, " / file per message"), group,
              "BM_FilePerMessage/real_time", "");
        ratio(absl::StrCat("no fsync / group commit, ", mode, " batch ", batch), none, group,
              "  target <= 2x");
      }
    }
    ratio("group commit on io_uring / blocking SyncNow (pwrite, batch 64)",
          "BM_Append_GroupCommit_Pwrite/64/real_time",
          "BM_Append_GroupCommitBlocking_Pwrite/64/real_time", "");
    ratio("mmap / pwrite, group commit batch 64", "BM_Append_GroupCommit_Mmap/64/real_time",
          "BM_Append_GroupCommit_Pwrite/64/real_time", "");
    ratio("mmap / pwrite, no fsync batch 64", "BM_Append_NoFsync_Mmap/64/real_time",
          "BM_Append_NoFsync_Pwrite/64/real_time", "");
  }

 private:
  std::map<std::string, double> rates_;
};

}  // namespace
}  // namespace queue

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const char* prefix = "--queue_recovery_records=";
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) {
      queue::g_recovery_records = std::strtoull(argv[i] + std::strlen(prefix), nullptr, 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  queue::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
