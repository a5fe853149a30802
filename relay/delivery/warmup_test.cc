#include "relay/delivery/warmup.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

constexpr int64_t kDay = 20430;  // 2025-12-08
constexpr int64_t kNoon = kDay * kDayMs + kDayMs / 2;

TEST(WarmupAllowanceTest, FollowsTheScheduleThenNoLimit) {
  const std::vector<uint32_t> schedule = {50, 100, 500};
  EXPECT_EQ(WarmupAllowance(schedule, kDay, kDay - 3), 50);  // not started yet: the first day's
  EXPECT_EQ(WarmupAllowance(schedule, kDay, kDay), 50);
  EXPECT_EQ(WarmupAllowance(schedule, kDay, kDay + 1), 100);
  EXPECT_EQ(WarmupAllowance(schedule, kDay, kDay + 2), 500);
  EXPECT_EQ(WarmupAllowance(schedule, kDay, kDay + 3), -1);
  EXPECT_EQ(WarmupAllowance({}, kDay, kDay), -1);
}

TEST(WarmupLedgerTest, CountsPerSourceAndSiteUpToTheAllowance) {
  WarmupLedger ledger;
  EXPECT_TRUE(ledger.Take("192.0.2.10", "google", 2, kNoon));
  EXPECT_TRUE(ledger.Take("192.0.2.10", "google", 2, kNoon));
  EXPECT_FALSE(ledger.Take("192.0.2.10", "google", 2, kNoon));
  // Another site, another source: counts of their own.
  EXPECT_TRUE(ledger.Take("192.0.2.10", "yahoo", 2, kNoon));
  EXPECT_TRUE(ledger.Take("192.0.2.11", "google", 2, kNoon));
  EXPECT_EQ(ledger.Count("192.0.2.10", "google", kNoon), 2);
  EXPECT_FALSE(ledger.Take("192.0.2.12", "google", 0, kNoon));
  EXPECT_TRUE(ledger.Take("192.0.2.12", "google", -1, kNoon));  // no limit
  // A message that did not go out is given back.
  ledger.GiveBack("192.0.2.10", "google", kNoon);
  EXPECT_EQ(ledger.Count("192.0.2.10", "google", kNoon), 1);
  EXPECT_TRUE(ledger.Take("192.0.2.10", "google", 2, kNoon));
  ledger.GiveBack("192.0.2.99", "google", kNoon);  // never counted: nothing happens
  // The next day starts from nothing.
  EXPECT_TRUE(ledger.Take("192.0.2.10", "google", 2, kNoon + kDayMs));
  EXPECT_EQ(ledger.Count("192.0.2.10", "google", kNoon + kDayMs), 1);
}

TEST(WarmupLedgerTest, TodaysCountsSurviveARestartAndYesterdaysDoNot) {
  char dir[] = "/tmp/warmup-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/warmup";
  {
    WarmupLedger ledger;
    ledger.SetFile(path);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(ledger.Take("192.0.2.10", "google", 5, kNoon));
    ledger.Flush();
  }
  {
    WarmupLedger ledger;
    ASSERT_TRUE(ledger.Load(path, kNoon + 1000).ok());
    EXPECT_EQ(ledger.Count("192.0.2.10", "google", kNoon + 1000), 3);
    EXPECT_TRUE(ledger.Take("192.0.2.10", "google", 5, kNoon + 1000));
    EXPECT_TRUE(ledger.Take("192.0.2.10", "google", 5, kNoon + 1000));
    EXPECT_FALSE(ledger.Take("192.0.2.10", "google", 5, kNoon + 1000));
  }
  {
    WarmupLedger ledger;
    ASSERT_TRUE(ledger.Load(path, kNoon + kDayMs).ok());
    EXPECT_EQ(ledger.Count("192.0.2.10", "google", kNoon + kDayMs), 0);
  }
  WarmupLedger missing;
  EXPECT_TRUE(missing.Load(std::string(dir) + "/none", kNoon).ok());
  std::remove(path.c_str());
  rmdir(dir);
}

TEST(WarmupFileTest, ReadsBackWhatItWritesAndSkipsBadLines) {
  const std::string text = FormatWarmupFile(kDay, {{"192.0.2.10", "google", 7}, {"a", "b", 0}});
  const std::vector<WarmupCount> counts =
      ParseWarmupFile(text + "bad line\nx\ty\t-1\nx\ty\tz\n\ty\t1\n", kDay);
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].source, "192.0.2.10");
  EXPECT_EQ(counts[0].site, "google");
  EXPECT_EQ(counts[0].count, 7);
  EXPECT_TRUE(ParseWarmupFile(text, kDay + 1).empty());
  EXPECT_TRUE(ParseWarmupFile("no day\na\tb\t1\n", kDay).empty());
}

}  // namespace
}  // namespace relay::delivery
