// DotStuffer throughput: handing out the DATA stream of a stored message as segments (no copy)
// against the two ways a sender could do it by copying: a plain memcpy of the message into a
// per-connection buffer (the baseline every copying design pays at least), and a copying
// stuffer that adds the dots while it copies. After the runs it prints the ratios of the
// segment path to both, measured in the same run.
#include <sys/uio.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/smtp/dot_stuffer.h"

namespace {

// A 32 MiB message (larger than the caches, like the big messages the stuffer exists for) of
// 78-byte lines, one in 50 starting with "." (quoted text, signatures).
const std::string& Message() {
  static const std::string* message = [] {
    auto* m = new std::string("Subject: bench\r\n\r\n");
    const std::string line(76, 'x');
    for (size_t i = 0; m->size() < (32u << 20); ++i) {
      m->append(i % 50 == 0 ? "." : "x");
      m->append(line);
      m->append("\r\n");
    }
    return m;
  }();
  return *message;
}

void BM_MemcpyBaseline(benchmark::State& state) {
  const std::string& message = Message();
  std::vector<char> buffer(message.size() + 3);
  for (auto _ : state) {
    std::memcpy(buffer.data(), message.data(), message.size());
    std::memcpy(buffer.data() + message.size(), ".\r\n", 3);
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(message.size()));
}
BENCHMARK(BM_MemcpyBaseline);

void BM_CopyingStuffer(benchmark::State& state) {
  const std::string& message = Message();
  std::string out;
  out.reserve(message.size() * 2);
  for (auto _ : state) {
    out.clear();
    size_t pos = 0;
    if (!message.empty() && message[0] == '.') out.push_back('.');
    for (size_t hit = message.find("\r\n."); hit != std::string::npos;
         hit = message.find("\r\n.", hit + 2)) {
      out.append(message, pos, hit + 2 - pos);
      out.push_back('.');
      pos = hit + 2;
    }
    out.append(message, pos, std::string::npos);
    out.append(".\r\n");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(message.size()));
}
BENCHMARK(BM_CopyingStuffer);

// Segments handed out as the driver would: 16 iovecs and 64 KiB per write.
void BM_DotStufferSegments(benchmark::State& state) {
  const std::string& message = Message();
  iovec iov[16];
  for (auto _ : state) {
    relay::smtp::DotStuffer stuffer(message);
    size_t total = 0;
    while (!stuffer.done()) {
      const size_t n = stuffer.Fill(iov, 16, 64 * 1024);
      for (size_t i = 0; i < n; ++i) total += iov[i].iov_len;
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(message.size()));
}
BENCHMARK(BM_DotStufferSegments);

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      us_[run.benchmark_name()] = run.GetAdjustedCPUTime();
    }
  }
  const std::map<std::string, double>& us() const { return us_; }

 private:
  std::map<std::string, double> us_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& us = reporter.us();
  const auto segments = us.find("BM_DotStufferSegments");
  if (segments == us.end()) return 0;
  for (const char* baseline : {"BM_MemcpyBaseline", "BM_CopyingStuffer"}) {
    const auto it = us.find(baseline);
    if (it == us.end() || segments->second <= 0) continue;
    std::printf("DotStuffer segments take %.3f of the CPU time of %s (%.2fx its speed)\n",
                segments->second / it->second, baseline, it->second / segments->second);
  }
  return 0;
}
