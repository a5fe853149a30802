#include "relay/server/auth_throttle.h"

#include <arpa/inet.h>

#include <string>

#include "gtest/gtest.h"

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
  const std::string a_ = AuthThrottle::KeyForText("192.0.2.1");
  const std::string b_ = AuthThrottle::KeyForText("192.0.2.2");
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
  const std::string c = AuthThrottle::KeyForText("192.0.2.3");
  const std::string d = AuthThrottle::KeyForText("192.0.2.4");
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

TEST(AuthThrottleKeyTest, Ipv6SharesAKeyPerSlash64AndMappedIpv4IsIpv4) {
  EXPECT_EQ(AuthThrottle::KeyForText("2001:db8:1:2::1"),
            AuthThrottle::KeyForText("2001:db8:1:2:ffff::9"));
  EXPECT_NE(AuthThrottle::KeyForText("2001:db8:1:2::1"),
            AuthThrottle::KeyForText("2001:db8:1:3::1"));
  EXPECT_EQ(AuthThrottle::KeyForText("::ffff:192.0.2.1"), AuthThrottle::KeyForText("192.0.2.1"));
  EXPECT_NE(AuthThrottle::KeyForText("192.0.2.1"), AuthThrottle::KeyForText("192.0.2.2"));
  EXPECT_EQ(AuthThrottle::KeyForText("not an address"), "");

  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "198.51.100.7", &v4.sin_addr);
  EXPECT_EQ(AuthThrottle::KeyFor(reinterpret_cast<sockaddr*>(&v4)),
            AuthThrottle::KeyForText("198.51.100.7"));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::5", &v6.sin6_addr);
  EXPECT_EQ(AuthThrottle::KeyFor(reinterpret_cast<sockaddr*>(&v6)),
            AuthThrottle::KeyForText("2001:db8::77"));
  sockaddr unix_address{};
  unix_address.sa_family = AF_UNIX;
  EXPECT_EQ(AuthThrottle::KeyFor(&unix_address), "");

  // An empty key (unknown family) is never throttled.
  FakeClock clock;
  AuthThrottleLimits limits;
  limits.failures_before_block = 1;
  AuthThrottle throttle(&clock, limits);
  throttle.RecordFailure("");
  EXPECT_FALSE(throttle.IsBlocked(""));
}

}  // namespace
}  // namespace relay::server
