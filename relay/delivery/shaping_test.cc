#include "relay/delivery/shaping.h"

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

TEST(Shaping, SplitAcrossShardsRoundsUpAndKeepsUnlimited) {
  ShapingRule r;
  r.connections_max = 10;
  r.messages_per_second = 5;
  r.messages_burst = 1;
  r.connections_per_minute = 0;
  ShapingRule s = SplitAcrossShards(r, 2);
  EXPECT_EQ(s.connections_max, 5u);
  EXPECT_EQ(s.messages_per_second, 3u);     // 2.5 rounded up
  EXPECT_EQ(s.messages_burst, 1u);          // at least 1
  EXPECT_EQ(s.connections_per_minute, 0u);  // unlimited stays unlimited
  s = SplitAcrossShards(r, 64);
  EXPECT_EQ(s.connections_max, 1u);
  EXPECT_EQ(s.messages_per_second, 1u);
  s = SplitAcrossShards(r, 1);
  EXPECT_EQ(s.connections_max, 10u);
  EXPECT_EQ(s.messages_per_second, 5u);
  EXPECT_EQ(SplitAcrossShards(r, 0).connections_max, 10u);
}

}  // namespace
}  // namespace relay::delivery
