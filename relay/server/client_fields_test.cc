#include "relay/server/client_fields.h"

#include "gtest/gtest.h"

namespace relay::server {
namespace {

const std::vector<std::string_view> kNames = {"X-Relay-Bulk", "X-Relay-Campaign",
                                              "X-Relay-Priority"};

TEST(ClientFieldsTest, ReadAndRemovedFromTheHeaderOnly) {
  ClientFields f = ReadClientFields(
      "From: a@b.test\r\nX-Relay-Bulk: yes\r\nX-Relay-Campaign:  spring-2027 \r\n"
      "Subject: hi\r\nx-relay-priority: bulk\r\n\r\nX-Relay-Bulk: body\r\n",
      kNames);
  ASSERT_EQ(f.values.size(), 3u);
  EXPECT_EQ(f.values[0], "yes");
  EXPECT_EQ(f.values[1], "spring-2027");
  EXPECT_EQ(f.values[2], "bulk");
  EXPECT_FALSE(f.has_list_unsubscribe);
  ASSERT_TRUE(f.without_fields.has_value());
  EXPECT_EQ(*f.without_fields, "From: a@b.test\r\nSubject: hi\r\n\r\nX-Relay-Bulk: body\r\n");
}

TEST(ClientFieldsTest, FoldedValuesAndTheLastOneWins) {
  ClientFields f = ReadClientFields(
      "x-relay-bulk:\r\n  no\r\nX-Relay-Campaign: a\r\nTo: c@d.test\r\nX-Relay-Campaign: b\r\n"
      "\tc\r\n\r\n",
      kNames);
  EXPECT_EQ(f.values[0], "no");
  EXPECT_FALSE(SaysBulk(*f.values[0])) << "the value is read unfolded";
  EXPECT_EQ(f.values[1], "b\tc");
  EXPECT_EQ(f.values[2], std::nullopt);
  EXPECT_EQ(*f.without_fields, "To: c@d.test\r\n\r\n");
  f = ReadClientFields("X-Relay-Bulk: No\nTo: c@d.test\n\n", kNames);
  EXPECT_FALSE(SaysBulk(*f.values[0]));
  EXPECT_EQ(*f.without_fields, "To: c@d.test\n\n");
  EXPECT_TRUE(SaysBulk("yes"));
  EXPECT_TRUE(SaysBulk(""));
}

TEST(ClientFieldsTest, TlsRequiredNoIsSeenAndKept) {
  ClientFields f = ReadClientFields("To: c@d.test\r\nTLS-Required:  no \r\n\r\nbody", kNames);
  EXPECT_TRUE(f.tls_required_no);
  EXPECT_FALSE(f.without_fields.has_value());  // for every hop: not removed
  EXPECT_FALSE(ReadClientFields("TLS-Required: yes\r\n\r\n", kNames).tls_required_no);
  EXPECT_FALSE(ReadClientFields("To: x\r\n\r\nTLS-Required: No\r\n", kNames).tls_required_no);
  EXPECT_FALSE(ReadClientFields("TLS-Requiredx: No\r\n\r\n", kNames).tls_required_no);
}

TEST(ClientFieldsTest, NoFieldNoCopy) {
  ClientFields f = ReadClientFields(
      "List-Unsubscribe: <mailto:x@y.test>\r\nX-Relay-Bulkish: yes\r\n\r\nbody", kNames);
  EXPECT_EQ(f.values[0], std::nullopt);
  EXPECT_TRUE(f.has_list_unsubscribe);
  EXPECT_FALSE(f.without_fields.has_value());
  // An empty name asks for nothing.
  f = ReadClientFields("X-Relay-Bulk: yes\r\n: odd\r\n\r\n", {"", "X-Relay-Bulk"});
  EXPECT_EQ(f.values[0], std::nullopt);
  EXPECT_EQ(f.values[1], "yes");
}

TEST(ClientFieldsTest, LongValuesAreCut) {
  std::string message = "X-Relay-Campaign: " + std::string(900, 'a');
  for (int i = 0; i < 50; ++i) message += "\r\n " + std::string(900, 'b');
  message += "\r\n\r\nbody";
  ClientFields f = ReadClientFields(message, kNames);
  ASSERT_TRUE(f.values[1].has_value());
  EXPECT_LE(f.values[1]->size(), kClientFieldValueBytesMax);
  EXPECT_EQ(*f.without_fields, "\r\nbody");
}

}  // namespace
}  // namespace relay::server
