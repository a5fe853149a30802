#include "relay/delivery/token_bucket.h"

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

TEST(TokenBucket, StartsFullThenRefillsAtRate) {
  TokenBucket b(10, 5, 1000);  // 10/s, burst 5
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryTake(1, 1000)) << i;
  EXPECT_FALSE(b.TryTake(1, 1000));
  EXPECT_EQ(b.MsUntilAvailable(1, 1000), 100);
  EXPECT_FALSE(b.TryTake(1, 1099));
  EXPECT_TRUE(b.TryTake(1, 1100));
  EXPECT_FALSE(b.TryTake(1, 1100));
}

TEST(TokenBucket, NeverExceedsBurst) {
  TokenBucket b(100, 3, 0);
  EXPECT_TRUE(b.TryTake(3, 0));
  // A long idle period refills to the burst, not beyond.
  EXPECT_DOUBLE_EQ(b.Available(3600000), 3.0);
  EXPECT_TRUE(b.TryTake(3, 3600000));
  EXPECT_FALSE(b.TryTake(1, 3600000));
}

TEST(TokenBucket, TakeManyIsAllOrNothing) {
  TokenBucket b(2, 4, 0);
  EXPECT_TRUE(b.TryTake(3, 0));
  EXPECT_FALSE(b.TryTake(2, 0));  // only 1 left: nothing taken
  EXPECT_TRUE(b.TryTake(1, 0));
  EXPECT_EQ(b.MsUntilAvailable(4, 0), 2000);
  EXPECT_EQ(b.MsUntilAvailable(5, 0), TokenBucket::kNeverMs);
}

TEST(TokenBucket, WaitingMsUntilAvailableIsAlwaysEnough) {
  // Rates that do not divide 1000 evenly: rounding must be upwards.
  for (double rate : {0.3, 1.0, 3.0, 7.0, 33.0, 999.0}) {
    TokenBucket b(rate, 2, 0);
    int64_t now = 0;
    for (int i = 0; i < 50; ++i) {
      int64_t wait = b.MsUntilAvailable(1, now);
      now += wait;
      EXPECT_TRUE(b.TryTake(1, now)) << "rate " << rate << " i " << i;
    }
    // Steady state: 50 takes from a burst of 2 take about 48 refill periods.
    EXPECT_NEAR(now, 48 * 1000.0 / rate, 1000.0 / rate + 50) << rate;
  }
}

TEST(TokenBucket, FractionalRate) {
  TokenBucket b(0.5, 1, 0);  // one message every 2 s
  EXPECT_TRUE(b.TryTake(1, 0));
  EXPECT_EQ(b.MsUntilAvailable(1, 500), 1500);
  EXPECT_FALSE(b.TryTake(1, 1999));
  EXPECT_TRUE(b.TryTake(1, 2000));
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
  TokenBucket b(0, 1, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.TryTake(1, 0));
  EXPECT_EQ(b.MsUntilAvailable(100, 0), 0);
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket b(10, 1, 5000);
  EXPECT_TRUE(b.TryTake(1, 5000));
  EXPECT_FALSE(b.TryTake(1, 4000));
  EXPECT_FALSE(b.TryTake(1, 5099));
  EXPECT_TRUE(b.TryTake(1, 5100));
}

}  // namespace
}  // namespace relay::delivery
