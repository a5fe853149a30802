#include "relay/delivery/suspensions.h"

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

TEST(SuspensionsTest, LaterExtendsEarlierDoesNot) {
  Suspensions board;
  EXPECT_EQ(board.generation(), 0u);
  board.Suspend({"0|google", 5000, "4.7.28", 1});
  const uint64_t g = board.generation();
  EXPECT_GT(g, 0u);
  board.Suspend({"0|google", 4000, "shorter", 0});
  EXPECT_EQ(board.generation(), g) << "an earlier end changes nothing";
  board.Suspend({"0|google", 9000, "longer", 0});
  EXPECT_GT(board.generation(), g);
  std::vector<Suspension> now = board.InForce(1000);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].until_unix_ms, 9000);
  EXPECT_EQ(now[0].reason, "longer");
}

TEST(SuspensionsTest, ExpiredEntriesGo) {
  Suspensions board;
  board.Suspend({"0|a", 2000, "x", 0});
  board.Suspend({"1|b", 8000, "y", 1});
  std::vector<Suspension> now = board.InForce(5000);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].key, "1|b");
  EXPECT_TRUE(board.InForce(9000).empty());
}

}  // namespace
}  // namespace relay::delivery
