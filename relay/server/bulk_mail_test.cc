#include "relay/server/bulk_mail.h"

#include "gtest/gtest.h"

namespace relay::server {
namespace {

TEST(BulkMarksTest, MarkerReadAndRemoved) {
  BulkMarks m = ReadBulkMarks(
      "From: a@b.test\r\nX-Relay-Bulk: yes\r\nSubject: hi\r\n\r\nX-Relay-Bulk: body\r\n",
      "X-Relay-Bulk");
  EXPECT_TRUE(m.marked);
  EXPECT_FALSE(m.has_list_unsubscribe);
  ASSERT_TRUE(m.without_marker.has_value());
  EXPECT_EQ(*m.without_marker, "From: a@b.test\r\nSubject: hi\r\n\r\nX-Relay-Bulk: body\r\n");
}

TEST(BulkMarksTest, FoldedMarkerAndNo) {
  BulkMarks m = ReadBulkMarks("x-relay-bulk:\r\n  no\r\nTo: c@d.test\r\n\r\n", "X-Relay-Bulk");
  EXPECT_FALSE(m.marked) << "the value is read unfolded";
  EXPECT_EQ(*m.without_marker, "To: c@d.test\r\n\r\n");
  m = ReadBulkMarks("X-Relay-Bulk: No\nTo: c@d.test\n\n", "X-Relay-Bulk");
  EXPECT_FALSE(m.marked);
  EXPECT_EQ(*m.without_marker, "To: c@d.test\n\n");
}

TEST(BulkMarksTest, NoMarkerNoCopy) {
  BulkMarks m = ReadBulkMarks(
      "List-Unsubscribe: <mailto:x@y.test>\r\nX-Relay-Bulkish: yes\r\n\r\nbody", "X-Relay-Bulk");
  EXPECT_FALSE(m.marked);
  EXPECT_TRUE(m.has_list_unsubscribe);
  EXPECT_FALSE(m.without_marker.has_value());
}

}  // namespace
}  // namespace relay::server
