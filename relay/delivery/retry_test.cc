#include "relay/delivery/retry.h"

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

constexpr int64_t kT0 = 1700000000000;  // Unix ms

RandomSource Fixed(double u) {
  return [u] { return u; };
}

TEST(Retry, DefaultScheduleWithoutJitter) {
  RetryPolicy p;
  p.jitter_fraction = 0;
  const int64_t expected_s[] = {60, 300, 900, 1800, 3600, 3600, 3600};
  int64_t now = kT0;
  for (uint32_t attempt = 1; attempt <= 7; ++attempt) {
    RetryDecision d = NextRetry(p, attempt, kT0, now, Fixed(0.9));
    ASSERT_FALSE(d.give_up);
    EXPECT_EQ(d.next_attempt_ms - now, expected_s[attempt - 1] * 1000) << attempt;
    now = d.next_attempt_ms;
  }
}

TEST(Retry, JitterStaysWithinFractionAndFollowsTheSource) {
  RetryPolicy p;
  p.jitter_fraction = 0.2;
  EXPECT_EQ(NextRetry(p, 1, kT0, kT0, Fixed(0.0)).next_attempt_ms - kT0, 48000);
  EXPECT_EQ(NextRetry(p, 1, kT0, kT0, Fixed(0.5)).next_attempt_ms - kT0, 60000);
  EXPECT_EQ(NextRetry(p, 1, kT0, kT0, Fixed(0.999999)).next_attempt_ms - kT0, 72000);
  // A sequence of draws gives a reproducible schedule.
  double draws[] = {0.1, 0.7, 0.3};
  int i = 0;
  RandomSource seq = [&] { return draws[i++ % 3]; };
  EXPECT_EQ(NextRetry(p, 2, kT0, kT0, seq).next_attempt_ms - kT0, 252000);  // 300 * 0.84
  EXPECT_EQ(NextRetry(p, 2, kT0, kT0, seq).next_attempt_ms - kT0, 324000);  // 300 * 1.08
}

TEST(Retry, GivesUpAtMaxAgeAndClampsTheLastAttemptToIt) {
  RetryPolicy p;
  p.jitter_fraction = 0;
  const int64_t expiry = kT0 + p.message_age_s_max * 1000;
  // Half an hour before expiry, an hourly retry is pulled in to the expiry instant.
  RetryDecision d = NextRetry(p, 40, kT0, expiry - 1800000, Fixed(0.5));
  ASSERT_FALSE(d.give_up);
  EXPECT_EQ(d.next_attempt_ms, expiry);
  // The attempt at expiry fails: bounce.
  EXPECT_TRUE(NextRetry(p, 41, kT0, expiry, Fixed(0.5)).give_up);
  EXPECT_TRUE(NextRetry(p, 41, kT0, expiry + 5, Fixed(0.5)).give_up);
}

TEST(Retry, WholeLifeCountsAttempts) {
  RetryPolicy p;  // defaults, with jitter
  uint32_t attempts = 0;
  int64_t now = kT0;
  uint64_t state = 12345;
  RandomSource lcg = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 11) * (1.0 / 9007199254740992.0);
  };
  while (true) {
    ++attempts;
    RetryDecision d = NextRetry(p, attempts, kT0, now, lcg);
    if (d.give_up) break;
    ASSERT_GT(d.next_attempt_ms, now);
    now = d.next_attempt_ms;
  }
  // 5 days: 4 short intervals (~52 min) then about 119 hourly ones, plus the final one.
  EXPECT_GT(attempts, 110u);
  EXPECT_LT(attempts, 135u);
  EXPECT_EQ(now, kT0 + p.message_age_s_max * 1000);
}

TEST(Retry, DelayWarning) {
  RetryPolicy p;
  EXPECT_FALSE(DelayWarningDue(p, kT0, kT0 + 86400000));  // off by default
  p.delay_warning_s = 4 * 3600;
  EXPECT_FALSE(DelayWarningDue(p, kT0, kT0 + 4 * 3600000 - 1));
  EXPECT_TRUE(DelayWarningDue(p, kT0, kT0 + 4 * 3600000));
}

}  // namespace
}  // namespace relay::delivery
