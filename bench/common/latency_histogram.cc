#include "bench/common/latency_histogram.h"

#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bench {

namespace {

template <typename T>
void RelaxedAdd(std::atomic<T>& a, T delta) {
  a.store(a.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

}  // namespace

int LatencyHistogram::BucketIndex(uint64_t value) {
  if (value < static_cast<uint64_t>(kSubBuckets)) return static_cast<int>(value);
  int magnitude = 63 - std::countl_zero(value);  // value >= 2^magnitude
  if (magnitude >= kMagnitudesMax) return kBuckets - 1;
  // Top kSubBucketBits bits below the leading one select the sub-bucket.
  int shift = magnitude - kSubBucketBits;
  int sub = static_cast<int>((value >> shift) & (kSubBuckets - 1));
  return (magnitude - kSubBucketBits + 1) * kSubBuckets + sub;
}

uint64_t LatencyHistogram::BucketUpperBound(int index) {
  if (index < kSubBuckets) return static_cast<uint64_t>(index);
  int magnitude = index / kSubBuckets + kSubBucketBits - 1;
  int sub = index % kSubBuckets;
  int shift = magnitude - kSubBucketBits;
  uint64_t low = (uint64_t{1} << magnitude) | (static_cast<uint64_t>(sub) << shift);
  return low + (uint64_t{1} << shift) - 1;
}

void LatencyHistogram::Record(int64_t value) {
  if (value < 0) value = 0;
  RelaxedAdd(buckets_[BucketIndex(static_cast<uint64_t>(value))], uint64_t{1});
  RelaxedAdd(count_, uint64_t{1});
  RelaxedAdd(sum_, static_cast<uint64_t>(value));
  if (value > max_.load(std::memory_order_relaxed)) max_.store(value, std::memory_order_relaxed);
  if (value < min_.load(std::memory_order_relaxed)) min_.store(value, std::memory_order_relaxed);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) {
    RelaxedAdd(buckets_[i], other.buckets_[i].load(std::memory_order_relaxed));
  }
  RelaxedAdd(count_, other.count());
  RelaxedAdd(sum_, other.sum_.load(std::memory_order_relaxed));
  max_.store(std::max(max(), other.max()), std::memory_order_relaxed);
  min_.store(
      std::min(min_.load(std::memory_order_relaxed), other.min_.load(std::memory_order_relaxed)),
      std::memory_order_relaxed);
}

int64_t LatencyHistogram::min() const {
  return count() == 0 ? 0 : min_.load(std::memory_order_relaxed);
}

double LatencyHistogram::mean() const {
  uint64_t n = count();
  return n == 0 ? 0.0 : static_cast<double>(sum_.load(std::memory_order_relaxed)) / n;
}

int64_t LatencyHistogram::Percentile(double quantile) const {
  // Sum the buckets rather than trusting count_, which a concurrent writer may have moved on.
  uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  quantile = std::clamp(quantile, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(quantile * static_cast<double>(total) + 0.5);
  rank = std::clamp<uint64_t>(rank, 1, total);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) {
      return std::min<int64_t>(static_cast<int64_t>(BucketUpperBound(i)), max());
    }
  }
  return max();
}

namespace {

std::string Millis(int64_t nanos) { return absl::StrFormat("%.3fms", nanos / 1e6); }
std::string Micros(int64_t nanos) { return absl::StrFormat("%.1f", nanos / 1e3); }

}  // namespace

std::string FormatPercentilesNanos(const LatencyHistogram& h) {
  return absl::StrCat("n=", h.count(), " p50=", Millis(h.Percentile(0.50)),
                      " p90=", Millis(h.Percentile(0.90)), " p99=", Millis(h.Percentile(0.99)),
                      " max=", Millis(h.max()));
}

std::string PercentilesJsonNanos(const LatencyHistogram& h) {
  return absl::StrCat("{\"count\":", h.count(), ",\"p50_us\":", Micros(h.Percentile(0.50)),
                      ",\"p90_us\":", Micros(h.Percentile(0.90)),
                      ",\"p99_us\":", Micros(h.Percentile(0.99)), ",\"max_us\":", Micros(h.max()),
                      ",\"mean_us\":", Micros(static_cast<int64_t>(h.mean())), "}");
}

}  // namespace bench
