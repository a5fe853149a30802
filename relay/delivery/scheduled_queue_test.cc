#include "relay/delivery/scheduled_queue.h"

#include <vector>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

queue::MessageId Id(uint64_t n) { return queue::MessageId{0, n}; }

TEST(ScheduledQueueTest, TakesWhatIsDueInOrder) {
  ScheduledQueue q;
  EXPECT_EQ(q.NextDueUnixMs(), -1);
  EXPECT_FALSE(q.TakeDue(1'000'000).has_value());
  q.Schedule(Id(1), 300);
  q.Schedule(Id(2), 100);
  q.Schedule(Id(3), 200);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.NextDueUnixMs(), 100);
  EXPECT_FALSE(q.TakeDue(99).has_value());
  std::vector<uint64_t> taken;
  while (std::optional<queue::MessageId> id = q.TakeDue(250)) taken.push_back(id->lo);
  EXPECT_EQ(taken, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(q.NextDueUnixMs(), 300);
  EXPECT_EQ(q.size(), 1u);
}

TEST(ScheduledQueueTest, OneEntryPerMessageAtTheSoonerTime) {
  ScheduledQueue q;
  q.Schedule(Id(1), 500);
  q.Schedule(Id(1), 900);  // later: ignored
  EXPECT_EQ(q.DueOf(Id(1)), 500);
  q.Schedule(Id(1), 100);  // sooner: moved
  EXPECT_EQ(q.DueOf(Id(1)), 100);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.TakeDue(100), Id(1));
  EXPECT_FALSE(q.TakeDue(1000).has_value());  // the old entry at 500 is gone too
  EXPECT_TRUE(q.empty());
}

TEST(ScheduledQueueTest, RemoveTakesOutWhereverItIs) {
  ScheduledQueue q;
  q.Schedule(Id(1), 100);
  q.Schedule(Id(2), 100);  // the same time, another message
  q.Schedule(Id(3), 50);
  q.Remove(Id(1));
  q.Remove(Id(9));  // not in: nothing happens
  EXPECT_FALSE(q.DueOf(Id(1)).has_value());
  EXPECT_EQ(q.TakeDue(100), Id(3));
  EXPECT_EQ(q.TakeDue(100), Id(2));
  EXPECT_FALSE(q.TakeDue(100).has_value());
  // Scheduled again after removal: a fresh entry.
  q.Schedule(Id(1), 700);
  EXPECT_EQ(q.NextDueUnixMs(), 700);
}

}  // namespace
}  // namespace relay::delivery
