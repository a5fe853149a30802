#include "bench/common/smtp_reply.h"

#include <string>

#include "gtest/gtest.h"

namespace bench {
namespace {

std::vector<SmtpReply> Feed(SmtpReplyReader& r, const std::string& bytes) {
  r.Append(bytes);
  std::vector<SmtpReply> out;
  while (true) {
    SmtpReply reply;
    bool complete = false;
    EXPECT_TRUE(r.Next(&reply, &complete).ok());
    if (!complete) break;
    out.push_back(reply);
  }
  return out;
}

TEST(SmtpReplyReaderTest, MultiLineEhloSplitAtEveryByte) {
  const std::string wire =
      "250-sink.test hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n"
      "354 go ahead\r\n";
  for (size_t split = 0; split <= wire.size(); ++split) {
    SmtpReplyReader r;
    std::vector<SmtpReply> got = Feed(r, wire.substr(0, split));
    std::vector<SmtpReply> more = Feed(r, wire.substr(split));
    got.insert(got.end(), more.begin(), more.end());
    ASSERT_EQ(got.size(), 2u) << split;
    EXPECT_EQ(got[0].code, 250);
    ASSERT_EQ(got[0].lines.size(), 4u);
    EXPECT_EQ(got[0].lines[1], "PIPELINING");
    EXPECT_EQ(got[0].lines[3], "CHUNKING");
    EXPECT_EQ(got[1].code, 354);
    EXPECT_EQ(got[1].Summary(), "354 go ahead");
    EXPECT_EQ(r.buffered_bytes(), 0u);
  }
}

TEST(SmtpReplyReaderTest, BareCodeAndBareLf) {
  SmtpReplyReader r;
  auto got = Feed(r, "250\n451 4.7.28 try later\r\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].code, 250);
  EXPECT_EQ(got[1].Summary(), "451 4.7.28 try later");
}

TEST(SmtpReplyReaderTest, GarbageIsAnError) {
  for (const char* bad : {"hello\r\n", "25\r\n", "250x\r\n", "650 no\r\n"}) {
    SmtpReplyReader r;
    r.Append(bad);
    SmtpReply reply;
    bool complete;
    EXPECT_FALSE(r.Next(&reply, &complete).ok()) << bad;
  }
  SmtpReplyReader r;
  r.Append("250-a\r\n550 b\r\n");
  SmtpReply reply;
  bool complete;
  EXPECT_FALSE(r.Next(&reply, &complete).ok());
}

TEST(SmtpReplyReaderTest, OverlongReplyIsAnError) {
  SmtpReplyReader r;
  r.Append("250 " + std::string(SmtpReplyReader::kReplyBytesMax + 10, 'x'));
  SmtpReply reply;
  bool complete;
  EXPECT_FALSE(r.Next(&reply, &complete).ok());
}

}  // namespace
}  // namespace bench
