#include "relay/io/timer_wheel.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace relay::io {
namespace {

TEST(TimerWheel, FiresAtDeadlineNotBefore) {
  TimerWheel wheel(1000);
  int fired = 0;
  Timer t([&] { ++fired; });
  wheel.Schedule(&t, 1050);
  wheel.Advance(1049);
  EXPECT_EQ(fired, 0);
  wheel.Advance(1050);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t.scheduled());
}

TEST(TimerWheel, CancelPreventsFiring) {
  TimerWheel wheel(0);
  int fired = 0;
  Timer t([&] { ++fired; });
  wheel.ScheduleAfter(&t, 10);
  wheel.Cancel(&t);
  wheel.Advance(100);
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, RearmMovesTheDeadline) {
  TimerWheel wheel(0);
  int64_t fired_at = -1;
  Timer t([&] { fired_at = wheel.now_ms(); });
  wheel.Schedule(&t, 5000);
  wheel.Advance(100);
  wheel.Schedule(&t, 300);
  wheel.Advance(10000);
  EXPECT_EQ(fired_at, 300);
}

TEST(TimerWheel, PastDeadlineFiresOnNextAdvance) {
  TimerWheel wheel(500);
  int fired = 0;
  Timer t([&] { ++fired; });
  wheel.Schedule(&t, 10);
  wheel.Advance(501);
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, CallbackMayRearmItself) {
  TimerWheel wheel(0);
  int fired = 0;
  Timer t;
  t.set_callback([&] {
    if (++fired < 5) wheel.ScheduleAfter(&t, 100);
  });
  wheel.ScheduleAfter(&t, 100);
  wheel.Advance(10000);
  EXPECT_EQ(fired, 5);
}

// Random deadlines across every level, including beyond the wheel's span: each timer fires exactly
// once, at its deadline, whatever the advance steps.
TEST(TimerWheel, RandomDeadlinesFireExactlyOnTime) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 4; ++round) {
    int64_t start = static_cast<int64_t>(rng() % 1000000);
    TimerWheel wheel(start);
    constexpr int kCount = 2000;
    std::vector<std::unique_ptr<Timer>> timers;
    std::vector<int64_t> deadline(kCount), fired_at(kCount, -1);
    for (int i = 0; i < kCount; ++i) {
      int64_t span = int64_t{1} << (rng() % 26);  // up to ~9 hours
      deadline[i] = start + 1 + static_cast<int64_t>(rng() % span);
      timers.push_back(std::make_unique<Timer>([&, i] {
        EXPECT_EQ(fired_at[i], -1) << "fired twice";
        fired_at[i] = wheel.now_ms();
      }));
      wheel.Schedule(timers.back().get(), deadline[i]);
    }
    int64_t now = start;
    int64_t end = start + (int64_t{1} << 26);
    while (now < end) {
      // Alternate tiny steps and long sleeps, as a real loop does; honour NextWakeMs.
      int64_t next = wheel.NextWakeMs();
      int64_t step = static_cast<int64_t>(rng() % 5000) + 1;
      if (next >= 0 && next - now < step) step = std::max<int64_t>(1, next - now);
      now += step;
      wheel.Advance(now);
    }
    for (int i = 0; i < kCount; ++i) {
      EXPECT_EQ(fired_at[i], deadline[i]) << "timer " << i << " offset " << deadline[i] - start;
    }
    EXPECT_EQ(wheel.size(), 0u);
  }
}

TEST(TimerWheel, NextWakeIsNeverLaterThanTheEarliestDeadline) {
  TimerWheel wheel(0);
  Timer far([] {}), near([] {});
  wheel.Schedule(&far, 100);  // filed on level 1 from time 0
  wheel.Advance(60);
  wheel.Schedule(&near, 110);  // filed on level 0 later
  int64_t wake = wheel.NextWakeMs();
  EXPECT_LE(wake, 100);
  wheel.Advance(200);
}

// A loop that slept 60 s without a timer learns the time when it wakes (Observe), before handlers
// arm deadlines: a 1 s deadline armed then fires 1 s later, not at the next Advance.
TEST(TimerWheel, ScheduleAfterCountsFromTheObservedTime) {
  TimerWheel wheel(0);
  int fired = 0;
  Timer t([&] { ++fired; });
  wheel.Observe(60000);
  wheel.ScheduleAfter(&t, 1000);
  wheel.Advance(60000);
  EXPECT_EQ(fired, 0);
  wheel.Advance(60999);
  EXPECT_EQ(fired, 0);
  wheel.Advance(61000);
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace relay::io
