// Tests that a parser of untrusted input is linear in its input (DESIGN.md, "Hostile input"):
// the CPU time of one input and of an input `factor` times larger, compared.
//
//   double ratio = relay::testing::ScalingRatio(
//       [](size_t n) { return MakeInput(n); },
//       [](const std::string& input) { Parse(input); }, 4000);
//   EXPECT_LT(ratio, relay::testing::kLinearRatioMax);
//
// Built to hold on a noisy shared machine: the time is the calling thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID: time other processes take from us does not count), each size is run
// several times, interleaved, and the least time of each is kept. For 8 times the input a linear
// parser takes ~8 times as long and a quadratic one ~64 times; the bound of 24 sits between with
// room for caches and allocators on both sides. Pick sizes for which the smaller run takes a
// millisecond or more, so that timer resolution and fixed costs do not decide the ratio.
//
// Test-only; any thread.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>

namespace relay::testing {

inline constexpr int kScalingFactor = 8;
inline constexpr double kLinearRatioMax = 24;
inline constexpr int kScalingRuns = 5;

inline int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// The CPU time of one run(input), in ns.
template <typename Input, typename Run>
int64_t CpuNsOf(const Input& input, Run& run) {
  const int64_t start = ThreadCpuNs();
  run(input);
  return ThreadCpuNs() - start;
}

// min CPU time of run(make(factor * n)) / min CPU time of run(make(n)). Inputs are made before
// the clock starts; `run` must not keep state from one call to the next.
template <typename Make, typename Run>
double ScalingRatio(Make make, Run run, size_t n, int factor = kScalingFactor,
                    int runs = kScalingRuns) {
  const auto small = make(n);
  const auto large = make(n * static_cast<size_t>(factor));
  int64_t small_ns = std::numeric_limits<int64_t>::max();
  int64_t large_ns = std::numeric_limits<int64_t>::max();
  for (int i = 0; i < runs; ++i) {
    small_ns = std::min(small_ns, CpuNsOf(small, run));
    large_ns = std::min(large_ns, CpuNsOf(large, run));
  }
  if (small_ns <= 0) small_ns = 1;
  const double ratio = static_cast<double>(large_ns) / static_cast<double>(small_ns);
  std::printf("scaling: n=%zu %.3f ms, %dn %.3f ms, ratio %.1f (linear ~%d, quadratic ~%d)\n", n,
              small_ns / 1e6, factor, large_ns / 1e6, ratio, factor, factor * factor);
  return ratio;
}

}  // namespace relay::testing
