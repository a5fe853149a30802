#include "relay/server/auth_throttle.h"

#include <string>

#include "gtest/gtest.h"
#include "relay/server/client_key.h"

namespace relay::server {
namespace {

AuthThrottleLimits TestLimits() {
  AuthThrottleLimits limits;
  limits.window_ms = 60000;
  limits.failures_before_delay = 2;
  limits.delay_per_failure_ms = 500;
  limits.delay_max_ms = 1200;
  limits.failures_before_block = 5;
  limits.block_ms = 300000;
  limits.addresses_max = 3;
  return limits;
}

class AuthThrottleTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  AuthThrottle throttle_{&clock_, TestLimits()};
  const std::string a_ = ClientKeyFromText("192.0.2.1");
  const std::string b_ = ClientKeyFromText("192.0.2.2");
};

TEST_F(AuthThrottleTest, FailuresDelayThenBlockForAWhile) {
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  throttle_.RecordFailure(a_);
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  throttle_.RecordFailure(a_);
  EXPECT_EQ(throttle_.DelayMillis(a_), 500);
  throttle_.RecordFailure(a_);
  EXPECT_EQ(throttle_.DelayMillis(a_), 1000);
  throttle_.RecordFailure(a_);
  EXPECT_EQ(throttle_.DelayMillis(a_), 1200);  // Capped.
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  throttle_.RecordFailure(a_);
  EXPECT_TRUE(throttle_.IsBlocked(a_));
  // Another address is not affected.
  EXPECT_FALSE(throttle_.IsBlocked(b_));
  EXPECT_EQ(throttle_.DelayMillis(b_), 0);
  // A right password during the block does not lift it.
  throttle_.RecordSuccess(a_);
  EXPECT_TRUE(throttle_.IsBlocked(a_));

  clock_.AdvanceMillis(300000 - 1);
  EXPECT_TRUE(throttle_.IsBlocked(a_));
  clock_.AdvanceMillis(1);
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);  // A clean start after the block.
}

TEST_F(AuthThrottleTest, FailuresOutsideTheWindowAreForgotten) {
  for (int i = 0; i < 4; ++i) throttle_.RecordFailure(a_);
  EXPECT_GT(throttle_.DelayMillis(a_), 0);
  clock_.AdvanceMillis(60000);
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  throttle_.RecordFailure(a_);
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
}

TEST_F(AuthThrottleTest, SuccessClearsFailures) {
  for (int i = 0; i < 4; ++i) throttle_.RecordFailure(a_);
  throttle_.RecordSuccess(a_);
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  EXPECT_EQ(throttle_.tracked_addresses(), 0u);
  for (int i = 0; i < 4; ++i) throttle_.RecordFailure(a_);
  EXPECT_FALSE(throttle_.IsBlocked(a_));
}

TEST_F(AuthThrottleTest, MemoryIsBoundedByEvictingTheLeastRecentlyTouched) {
  const std::string c = ClientKeyFromText("192.0.2.3");
  const std::string d = ClientKeyFromText("192.0.2.4");
  throttle_.RecordFailure(a_);
  throttle_.RecordFailure(a_);
  throttle_.RecordFailure(b_);
  throttle_.RecordFailure(c);
  throttle_.RecordFailure(a_);  // a is now the most recent; b the oldest.
  throttle_.RecordFailure(d);
  EXPECT_EQ(throttle_.tracked_addresses(), 3u);
  EXPECT_EQ(throttle_.DelayMillis(a_), 1000);  // a kept its count.
  throttle_.RecordFailure(b_);
  throttle_.RecordFailure(b_);
  EXPECT_EQ(throttle_.DelayMillis(b_), 500);  // b started again from zero.
  EXPECT_EQ(throttle_.tracked_addresses(), 3u);
}

TEST(AuthThrottleKeyTest, AnEmptyKeyIsNeverThrottled) {
  FakeClock clock;
  AuthThrottleLimits limits;
  limits.failures_before_block = 1;
  AuthThrottle throttle(&clock, limits);
  throttle.RecordFailure("");
  EXPECT_FALSE(throttle.IsBlocked(""));
}

}  // namespace
}  // namespace relay::server
