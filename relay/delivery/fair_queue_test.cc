#include "relay/delivery/fair_queue.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

using queue::Priority;

TEST(FairQueueTest, OneTenantIsFirstInFirstOut) {
  FairQueue<int> q;
  for (int i = 0; i < 5; ++i) q.Push(i, Priority::kNormal, "a", 1);
  EXPECT_EQ(q.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.Pop(), i);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.flows(), 0u) << "an empty flow is freed";
}

TEST(FairQueueTest, TransactionalBeforeNormalBeforeBulk) {
  FairQueue<std::string> q;
  for (int i = 0; i < 1000; ++i) q.Push("bulk", Priority::kBulk, "news", 1);
  q.Push("normal", Priority::kNormal, "shop", 1);
  q.Push("reset", Priority::kTransactional, "shop", 1);
  EXPECT_EQ(q.Pop(), "reset");
  EXPECT_EQ(q.Pop(), "normal");
  EXPECT_EQ(q.Pop(), "bulk");
  q.Push("late reset", Priority::kTransactional, "news", 1);
  EXPECT_EQ(q.Pop(), "late reset") << "a class above jumps a backlog that is already waiting";
  EXPECT_EQ(q.size(), 999u);
}

// While both have jobs waiting, a tenant of weight 3 gets three for each of weight 1's; and a
// tenant that arrives behind a long backlog is served in the next round, not after the backlog.
TEST(FairQueueTest, TenantsShareByWeight) {
  FairQueue<std::string> q;
  for (int i = 0; i < 300; ++i) q.Push("big", Priority::kBulk, "big", 1);
  for (int i = 0; i < 30; ++i) q.Push("small", Priority::kBulk, "small", 3);
  std::map<std::string, int> first40;
  for (int i = 0; i < 40; ++i) first40[q.Pop()]++;
  EXPECT_EQ(first40["small"], 30);
  EXPECT_EQ(first40["big"], 10);
  // Only big is left: it gets everything.
  while (!q.empty()) EXPECT_EQ(q.Pop(), "big");

  q.Push("a1", Priority::kNormal, "a", 1);
  q.Push("a2", Priority::kNormal, "a", 1);
  q.Push("a3", Priority::kNormal, "a", 1);
  EXPECT_EQ(q.Pop(), "a1");
  q.Push("b1", Priority::kNormal, "b", 1);
  EXPECT_EQ(q.Pop(), "a2");
  EXPECT_EQ(q.Pop(), "b1") << "b is served one job after it arrived";
  EXPECT_EQ(q.Pop(), "a3");
}

TEST(FairQueueTest, TakeAllKeepsPopOrderAndEmpties) {
  FairQueue<int> q;
  q.Push(1, Priority::kBulk, "x", 1);
  q.Push(2, Priority::kTransactional, "y", 1);
  q.Push(3, Priority::kBulk, "z", 1);
  q.Push(4, Priority::kBulk, "x", 1);
  EXPECT_EQ(q.TakeAll(), (std::vector<int>{2, 1, 3, 4}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.flows(), 0u);
  // Weight 0 is taken as 1, never as "never".
  q.Push(5, Priority::kNormal, "w", 0);
  q.Push(6, Priority::kNormal, "w", 0);
  EXPECT_EQ(q.Pop(), 5);
  EXPECT_EQ(q.Pop(), 6);
}

// Many tenants: every one is served once per round, and the maps never hold empty flows.
TEST(FairQueueTest, ManyTenantsRoundRobin) {
  FairQueue<int> q;
  constexpr int kTenants = 5000;
  for (int round = 0; round < 3; ++round) {
    for (int t = 0; t < kTenants; ++t) q.Push(t, Priority::kNormal, std::to_string(t), 1);
  }
  for (int round = 0; round < 3; ++round) {
    for (int t = 0; t < kTenants; ++t) ASSERT_EQ(q.Pop(), t);
  }
  EXPECT_EQ(q.flows(), 0u);
}

}  // namespace
}  // namespace relay::delivery
