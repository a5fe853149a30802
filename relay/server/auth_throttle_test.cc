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
  limits.delay_ms_max = 1200;
  limits.failures_before_block = 5;
  limits.user_failures_before_block = 3;
  limits.block_ms = 300000;
  limits.entries_max = 6;
  return limits;
}

class AuthThrottleTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  AuthThrottle throttle_{&clock_, TestLimits()};
  const std::string a_ = ClientKeyFromText("192.0.2.1");
  const std::string b_ = ClientKeyFromText("192.0.2.2");
};

TEST_F(AuthThrottleTest, ClientFailuresDelayThenBlockForAWhile) {
  // Five user names, one failure each: only the client's total blocks.
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  throttle_.RecordFailure(a_, "u1");
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  throttle_.RecordFailure(a_, "u2");
  EXPECT_EQ(throttle_.DelayMillis(a_), 500);
  throttle_.RecordFailure(a_, "u3");
  EXPECT_EQ(throttle_.DelayMillis(a_), 1000);
  throttle_.RecordFailure(a_, "u4");
  EXPECT_EQ(throttle_.DelayMillis(a_), 1200);  // Capped.
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  EXPECT_FALSE(throttle_.IsBlocked(a_, "u5"));
  throttle_.RecordFailure(a_, "u5");
  EXPECT_TRUE(throttle_.IsBlocked(a_));
  EXPECT_TRUE(throttle_.IsBlocked(a_, "anyone"));
  // Another client is not affected.
  EXPECT_FALSE(throttle_.IsBlocked(b_));
  EXPECT_FALSE(throttle_.IsBlocked(b_, "u1"));
  EXPECT_EQ(throttle_.DelayMillis(b_), 0);
  // A right password during the block does not lift it.
  throttle_.RecordSuccess(a_, "u1");
  EXPECT_TRUE(throttle_.IsBlocked(a_));

  clock_.AdvanceMillis(300000 - 1);
  EXPECT_TRUE(throttle_.IsBlocked(a_));
  clock_.AdvanceMillis(1);
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);  // A clean start after the block.
}

TEST_F(AuthThrottleTest, OneUserNameIsBlockedBeforeTheClient) {
  for (int i = 0; i < 3; ++i) throttle_.RecordFailure(a_, "victim@example.com");
  EXPECT_TRUE(throttle_.IsBlocked(a_, "victim@example.com"));
  EXPECT_FALSE(throttle_.IsBlocked(a_));  // 3 of 5: the client itself is not blocked ...
  EXPECT_FALSE(throttle_.IsBlocked(a_, "other@example.com"));  // ... nor its other users
  EXPECT_FALSE(throttle_.IsBlocked(b_, "victim@example.com"));  // nor that user elsewhere.
  throttle_.RecordSuccess(a_, "victim@example.com");  // Found the password: still blocked.
  EXPECT_TRUE(throttle_.IsBlocked(a_, "victim@example.com"));
  clock_.AdvanceMillis(300000);
  EXPECT_FALSE(throttle_.IsBlocked(a_, "victim@example.com"));
}

TEST_F(AuthThrottleTest, SuccessClearsOnlyThatUsersCount) {
  // The walk-around of issue 13 item 6: guess others' passwords, log in with one's own account
  // between guesses. The own account's success no longer resets the guesses.
  for (int round = 0; round < 2; ++round) {
    throttle_.RecordFailure(a_, "victim1");
    throttle_.RecordFailure(a_, "victim2");
    throttle_.RecordSuccess(a_, "mallory");
  }
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  EXPECT_EQ(throttle_.DelayMillis(a_), 1200);  // 4 failures stand.
  throttle_.RecordFailure(a_, "victim1");
  EXPECT_TRUE(throttle_.IsBlocked(a_));

  // A user's own typo is forgiven by that user's success: two typos, a success, two typos do not
  // block the user (3 in a row would).
  throttle_.RecordFailure(b_, "alice");
  throttle_.RecordFailure(b_, "alice");
  throttle_.RecordSuccess(b_, "alice");
  throttle_.RecordFailure(b_, "alice");
  throttle_.RecordFailure(b_, "alice");
  EXPECT_FALSE(throttle_.IsBlocked(b_, "alice"));
  throttle_.RecordFailure(b_, "alice");
  EXPECT_TRUE(throttle_.IsBlocked(b_, "alice"));  // and the client's total is 5: blocked too
  EXPECT_TRUE(throttle_.IsBlocked(b_));
}

TEST_F(AuthThrottleTest, ClientsInOneSlash64ShareTheirCounts) {
  const std::string one = ClientKeyFromText("2001:db8:1:2::1");
  const std::string two = ClientKeyFromText("2001:db8:1:2:abcd::99");
  const std::string next = ClientKeyFromText("2001:db8:1:3::1");
  throttle_.RecordFailure(one, "x");
  throttle_.RecordFailure(two, "x");
  throttle_.RecordFailure(one, "x");
  EXPECT_TRUE(throttle_.IsBlocked(two, "x"));
  throttle_.RecordFailure(two, "y");
  throttle_.RecordFailure(one, "z");
  EXPECT_TRUE(throttle_.IsBlocked(ClientKeyFromText("2001:db8:1:2:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(throttle_.IsBlocked(next));
  EXPECT_FALSE(throttle_.IsBlocked(next, "x"));
}

TEST_F(AuthThrottleTest, FailuresOutsideTheWindowAreForgotten) {
  for (int i = 0; i < 2; ++i) throttle_.RecordFailure(a_, "u");
  for (int i = 0; i < 2; ++i) throttle_.RecordFailure(a_, "v");
  EXPECT_GT(throttle_.DelayMillis(a_), 0);
  EXPECT_EQ(throttle_.tracked_entries(), 3u);
  clock_.AdvanceMillis(60000);
  EXPECT_EQ(throttle_.DelayMillis(a_), 0);
  throttle_.RecordFailure(a_, "u");
  throttle_.RecordFailure(a_, "u");
  EXPECT_FALSE(throttle_.IsBlocked(a_, "u"));  // 2, not 4
  EXPECT_FALSE(throttle_.IsBlocked(a_));
  EXPECT_EQ(throttle_.DelayMillis(a_), 500);
  // The expired entry of "v" is gone.
  EXPECT_FALSE(throttle_.IsBlocked(a_, "v"));
  EXPECT_EQ(throttle_.tracked_entries(), 2u);
}

TEST_F(AuthThrottleTest, ExpiredEntriesAreDroppedBeforeLiveOnesAreEvicted) {
  throttle_.RecordFailure(a_, "u");  // 2 entries
  clock_.AdvanceMillis(60000);       // both expired, never looked at again
  throttle_.RecordFailure(b_, "u");
  EXPECT_EQ(throttle_.tracked_entries(), 2u);
}

TEST_F(AuthThrottleTest, MemoryIsBoundedByEvictingTheLeastRecentlyTouched) {
  // entries_max = 6: three clients with one user each fill the table.
  const std::string c = ClientKeyFromText("192.0.2.3");
  const std::string d = ClientKeyFromText("192.0.2.4");
  throttle_.RecordFailure(a_, "u");
  throttle_.RecordFailure(a_, "u");
  throttle_.RecordFailure(b_, "u");
  throttle_.RecordFailure(c, "u");
  throttle_.RecordFailure(a_, "u");  // a is now the most recent; b the oldest.
  EXPECT_EQ(throttle_.tracked_entries(), 6u);
  throttle_.RecordFailure(d, "u");
  EXPECT_EQ(throttle_.tracked_entries(), 6u);
  EXPECT_TRUE(throttle_.IsBlocked(a_, "u"));   // a kept its counts (3 for "u").
  EXPECT_EQ(throttle_.DelayMillis(a_), 1000);
  throttle_.RecordFailure(b_, "u");
  EXPECT_EQ(throttle_.DelayMillis(b_), 0);  // b started again from zero.
  EXPECT_EQ(throttle_.tracked_entries(), 6u);

  // A spray of 10,000 clients and long user names holds the table at its bound.
  for (int i = 0; i < 10000; ++i) {
    throttle_.RecordFailure(ClientKeyFromText("2001:db8:" + std::to_string(i) + "::1"),
                            std::string(1000, 'x'));
  }
  EXPECT_EQ(throttle_.tracked_entries(), 6u);
}

TEST(AuthThrottleEdgeTest, AnEmptyClientIsNeverThrottled) {
  FakeClock clock;
  AuthThrottleLimits limits;
  limits.failures_before_block = 1;
  limits.user_failures_before_block = 1;
  AuthThrottle throttle(&clock, limits);
  throttle.RecordFailure("", "u");
  EXPECT_FALSE(throttle.IsBlocked(""));
  EXPECT_FALSE(throttle.IsBlocked("", "u"));
  EXPECT_EQ(throttle.tracked_entries(), 0u);
}

TEST(AuthThrottleEdgeTest, KeysOfFourAndEightByteClientsDoNotCollide) {
  // A 4-byte client + user "abcdX" must not meet the 8-byte client "....abcd" + user "X".
  FakeClock clock;
  AuthThrottleLimits limits;
  limits.user_failures_before_block = 1;
  AuthThrottle throttle(&clock, limits);
  const std::string v4 = ClientKeyFromText("192.0.2.1");
  std::string v6 = v4 + "abcd";
  throttle.RecordFailure(v4, "abcdX");
  EXPECT_TRUE(throttle.IsBlocked(v4, "abcdX"));
  EXPECT_FALSE(throttle.IsBlocked(v6, "X"));
}

}  // namespace
}  // namespace relay::server
