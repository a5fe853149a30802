// A log-linear latency histogram (HdrHistogram-style buckets: 32 sub-buckets per power of two, so
// any recorded value is reported within ~3% of itself) for the bench tools.
//
// Threads: one writer thread per histogram. Buckets are relaxed atomics written with load+store
// (no locked instruction on the hot path), so another thread may read a live histogram, e.g. to
// print percentiles on SIGUSR1, without a data race; such a read is a consistent-enough snapshot
// for statistics, not an exact one. Merge() folds other histograms into this one (reader side).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 5;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  // Values up to 2^kMagnitudesMax - 1 are bucketed; larger ones land in the last bucket (and in
  // max() exactly).
  static constexpr int kMagnitudesMax = 48;
  static constexpr int kBuckets = (kMagnitudesMax - kSubBucketBits + 1) * kSubBuckets;

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Writer thread only. Negative values are clamped to 0.
  void Record(int64_t value);

  // Reader side.
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  int64_t max() const { return max_.load(std::memory_order_relaxed); }
  int64_t min() const;
  double mean() const;
  // The value below which `quantile` (0..1) of the recorded values fall (the bucket's upper edge,
  // capped at max()); 0 when empty.
  int64_t Percentile(double quantile) const;

  static int BucketIndex(uint64_t value);
  // The largest value that falls into `index`.
  static uint64_t BucketUpperBound(int index);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> max_{0};
  std::atomic<int64_t> min_{INT64_MAX};
  std::atomic<uint64_t> sum_{0};
};

// "p50=1.2ms p90=... p99=... max=..." with values given in nanoseconds.
std::string FormatPercentilesNanos(const LatencyHistogram& h);
// {"count":N,"p50_us":..,"p90_us":..,"p99_us":..,"max_us":..,"mean_us":..} from nanoseconds.
std::string PercentilesJsonNanos(const LatencyHistogram& h);

}  // namespace bench
