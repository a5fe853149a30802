#include "relay/delivery/queue_shape.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

constexpr int64_t kMinute = 60000;

TEST(QueueShapeTest, CountsRecipientsBytesAndAgeBuckets) {
  QueueShape shape;
  shape.Add("gmail", 2, 1000, 1 * kMinute);    // first bucket (under 5 minutes)
  shape.Add("gmail", 1, 500, 7 * kMinute);     // the 5-minute bucket
  shape.Add("yahoo", 1, 300, 5000 * kMinute);  // past the last bound: "more"
  const ShapeRow& gmail = shape.rows().at("gmail");
  EXPECT_EQ(gmail.recipients, 3u);
  EXPECT_EQ(gmail.bytes, 2500u);  // once per recipient: what is left to send
  EXPECT_EQ(gmail.buckets[0], 2u);
  EXPECT_EQ(gmail.buckets[1], 1u);
  EXPECT_EQ(shape.rows().at("yahoo").buckets[kShapeBuckets - 1], 1u);
  EXPECT_EQ(shape.total().recipients, 4u);
  EXPECT_EQ(shape.total().bytes, 2800u);
}

TEST(QueueShapeTest, ShardsSharesAddUpThroughTheirText) {
  QueueShape a, b, relay;
  a.Add("mx.example", 3, 100, 0);
  b.Add("mx.example", 2, 100, 11 * kMinute);
  b.Add("mx.other", 1, 50, 0);
  ASSERT_TRUE(relay.Merge(a.Encode(10)).ok());
  ASSERT_TRUE(relay.Merge(b.Encode(10)).ok());
  const ShapeRow& row = relay.rows().at("mx.example");
  EXPECT_EQ(row.recipients, 5u);
  EXPECT_EQ(row.bytes, 500u);
  EXPECT_EQ(row.buckets[0], 3u);
  EXPECT_EQ(row.buckets[2], 2u);  // 10 to 20 minutes
  EXPECT_EQ(relay.total().recipients, 6u);
  EXPECT_TRUE(relay.Merge("").ok());
}

TEST(QueueShapeTest, EncodeIsBoundedAndKeysCannotBreakTheFormat) {
  QueueShape shape;
  for (int i = 0; i < 50; ++i) shape.Add("site" + std::to_string(i), 1 + i, 10, 0);
  shape.Add("a|b\tc\nd", 1, 1, 0);
  QueueShape back;
  ASSERT_TRUE(back.Merge(shape.Encode(5)).ok());
  EXPECT_EQ(back.rows().size(), 6u);  // the 5 largest and "(other)"
  EXPECT_EQ(back.rows().at("site49").recipients, 50u);
  EXPECT_EQ(back.total().recipients, shape.total().recipients);
  QueueShape all;
  ASSERT_TRUE(all.Merge(shape.Encode(100)).ok());
  EXPECT_EQ(all.rows().count("a b c d"), 1u);
}

TEST(QueueShapeTest, MalformedEntryIsNamed) {
  QueueShape shape;
  absl::Status s = shape.Merge("mx\t1\t10\t1,0,0,0,0,0,0,0,0,0|mx\tx\t10\t1");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("mx x"), std::string::npos) << s.message();
  EXPECT_EQ(shape.total().recipients, 1u);           // the entry before it stays
  EXPECT_FALSE(shape.Merge("mx\t1\t10\t1,2").ok());  // too few buckets
}

TEST(QueueShapeTest, FormatShowsTotalTopRowsAndOther) {
  QueueShape shape;
  shape.Add("big", 5, 10, 0);
  shape.Add("mid", 3, 10, 0);
  shape.Add("small", 1, 10, 0);
  shape.Add("", 1, 10, 0);
  const std::string table = shape.Format("SITE", 2);
  EXPECT_EQ(table.rfind("SITE", 0), 0u) << table;
  EXPECT_NE(table.find("TOTAL"), std::string::npos);
  EXPECT_NE(table.find("big"), std::string::npos);
  EXPECT_NE(table.find("mid"), std::string::npos);
  EXPECT_EQ(table.find("small"), std::string::npos);
  EXPECT_NE(table.find("(other)"), std::string::npos);
  EXPECT_NE(shape.Format("SITE", 10).find("(none)"), std::string::npos);
}

}  // namespace
}  // namespace relay::delivery
