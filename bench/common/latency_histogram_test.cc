#include "bench/common/latency_histogram.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace bench {
namespace {

TEST(LatencyHistogramTest, BucketsAreMonotonicAndTight) {
  int last = -1;
  for (uint64_t v : {0ull, 1ull, 31ull, 32ull, 33ull, 63ull, 64ull, 1000ull, 123456789ull,
                     (1ull << 40) + 12345}) {
    int index = LatencyHistogram::BucketIndex(v);
    EXPECT_GT(index, last) << v;
    last = index;
    uint64_t upper = LatencyHistogram::BucketUpperBound(index);
    EXPECT_GE(upper, v);
    // Within 1/32 of the value: the resolution the header promises.
    EXPECT_LE(upper - v, v / 32 + 1) << v;
    if (index > 0) {
      EXPECT_LT(LatencyHistogram::BucketUpperBound(index - 1), v) << v;
    }
  }
}

TEST(LatencyHistogramTest, PercentilesOfAUniformSpread) {
  LatencyHistogram h;
  for (int i = 1; i <= 10000; ++i) h.Record(i * 1000);
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.max(), 10000 * 1000);
  EXPECT_EQ(h.min(), 1000);
  EXPECT_NEAR(h.Percentile(0.5), 5000 * 1000, 5000 * 1000 / 30);
  EXPECT_NEAR(h.Percentile(0.99), 9900 * 1000, 9900 * 1000 / 30);
  EXPECT_EQ(h.Percentile(1.0), h.max());
  EXPECT_NEAR(h.mean(), 5000.5 * 1000, 1);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a, b;
  for (int i = 0; i < 100; ++i) a.Record(10);
  for (int i = 0; i < 300; ++i) b.Record(1000000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 400u);
  EXPECT_EQ(a.Percentile(0.2), 10);
  EXPECT_NEAR(a.Percentile(0.9), 1000000, 1000000 / 30);
  EXPECT_EQ(a.min(), 10);
  EXPECT_EQ(a.max(), 1000000);
}

TEST(LatencyHistogramTest, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.99), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(PercentilesJsonNanos(h),
            "{\"count\":0,\"p50_us\":0.0,\"p90_us\":0.0,\"p99_us\":0.0,\"max_us\":0.0,"
            "\"mean_us\":0.0}");
}

}  // namespace
}  // namespace bench
