#include "relay/smtp/client_reply.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::smtp {
namespace {

std::vector<ServerReply> ParseAll(ReplyParser& parser, std::string_view bytes,
                                  ReplyParser::Status* last = nullptr) {
  parser.Feed(bytes);
  std::vector<ServerReply> replies;
  ServerReply reply;
  ReplyParser::Status status;
  while ((status = parser.Next(&reply)) == ReplyParser::Status::kReply) replies.push_back(reply);
  if (last != nullptr) *last = status;
  return replies;
}

TEST(ReplyParserTest, SingleAndMultiLine) {
  ReplyParser parser{ReplyLimits()};
  const auto replies = ParseAll(parser,
                                "220 mx.example ESMTP\r\n"
                                "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
                                "550 5.1.1 <a@b>: no such user\r\n"
                                "354\r\n");
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0].code, 220);
  EXPECT_EQ(replies[0].enhanced, "");
  EXPECT_EQ(replies[0].Text(), "mx.example ESMTP");
  EXPECT_EQ(replies[1].code, 250);
  EXPECT_EQ(replies[1].lines, (std::vector<std::string>{"mx.example", "PIPELINING", "SIZE 1000"}));
  EXPECT_EQ(replies[2].code, 550);
  EXPECT_EQ(replies[2].enhanced, "5.1.1");
  EXPECT_EQ(replies[2].Text(), "<a@b>: no such user");
  EXPECT_EQ(replies[3].code, 354);
  EXPECT_EQ(replies[3].Text(), "");
}

TEST(ReplyParserTest, EnhancedCodeOnEveryLineIsRemoved) {
  ReplyParser parser{ReplyLimits()};
  const auto replies =
      ParseAll(parser, "452-4.2.2 Mailbox full\r\n452-4.2.2 try later\r\n452 4.2.2 really\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].enhanced, "4.2.2");
  EXPECT_EQ(replies[0].Text(), "Mailbox full try later really");
}

TEST(ReplyParserTest, EnhancedCodeOfTheWrongClassIsText) {
  ReplyParser parser{ReplyLimits()};
  const auto replies = ParseAll(parser, "550 4.1.1 odd\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].enhanced, "");
  EXPECT_EQ(replies[0].Text(), "4.1.1 odd");
}

TEST(ReplyParserTest, SplitAtEveryByte) {
  const std::string stream =
      "250-mx.example says hi\r\n250-8BITMIME\r\n250 2.0.0 ok\r\n451 4.3.0 later\n221 bye\r\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ReplyParser parser{ReplyLimits()};
    auto replies = ParseAll(parser, stream.substr(0, cut));
    auto more = ParseAll(parser, stream.substr(cut));
    replies.insert(replies.end(), more.begin(), more.end());
    ASSERT_EQ(replies.size(), 3u) << cut;
    EXPECT_EQ(replies[0].lines.size(), 3u);
    EXPECT_EQ(replies[1].code, 451);
    EXPECT_EQ(replies[1].enhanced, "4.3.0");
    EXPECT_EQ(replies[2].code, 221);
    EXPECT_EQ(parser.buffered_bytes(), 0u);
  }
  ReplyParser parser{ReplyLimits()};
  std::vector<ServerReply> replies;
  for (char c : stream) {
    auto got = ParseAll(parser, std::string_view(&c, 1));
    replies.insert(replies.end(), got.begin(), got.end());
  }
  EXPECT_EQ(replies.size(), 3u);
}

TEST(ReplyParserTest, MalformedInputFailsForGood) {
  const char* bad[] = {
      "hello\r\n", "25\r\n",    "2500 x\r\n",         "250x\r\n",
      "150 x\r\n", "650 x\r\n", "250-a\r\n251 b\r\n",
  };
  for (const char* input : bad) {
    ReplyParser parser{ReplyLimits()};
    ReplyParser::Status status;
    EXPECT_TRUE(ParseAll(parser, input, &status).empty()) << input;
    EXPECT_EQ(status, ReplyParser::Status::kError) << input;
    EXPECT_TRUE(parser.failed());
    ServerReply reply;
    EXPECT_EQ(parser.Next(&reply), ReplyParser::Status::kError);
  }
}

TEST(ReplyParserTest, Limits) {
  ReplyLimits limits;
  limits.reply_line_bytes_max = 16;
  limits.reply_lines_max = 3;
  {
    ReplyParser parser(limits);
    ReplyParser::Status status;
    ParseAll(parser, "250 0123456789ab\r\n", &status);  // 18 bytes
    EXPECT_EQ(status, ReplyParser::Status::kError);
    EXPECT_EQ(parser.error(), "reply line too long");
  }
  {
    // No LF at all: refused as soon as the limit is reached, not buffered forever.
    ReplyParser parser(limits);
    ReplyParser::Status status;
    ParseAll(parser, "250 0123456789abcdef", &status);
    EXPECT_EQ(status, ReplyParser::Status::kError);
  }
  {
    ReplyParser parser(limits);
    ReplyParser::Status status;
    EXPECT_EQ(ParseAll(parser, "250-a\r\n250-b\r\n250 c\r\n", &status).size(), 1u);
    ParseAll(parser, "250-a\r\n250-b\r\n250-c\r\n250 d\r\n", &status);
    EXPECT_EQ(status, ReplyParser::Status::kError);
    EXPECT_EQ(parser.error(), "too many reply lines");
  }
}

TEST(ReplyParserTest, HeldBytesAreBoundedWhenNothingIsParsed) {
  // While the body streams the session does not call Next(): Feed alone must hold the bound.
  ReplyLimits limits;
  limits.reply_bytes_max = 1024;
  ReplyParser parser(limits);
  const std::string chunk(100, 'x');
  for (int i = 0; i < 10; ++i) parser.Feed(chunk);
  EXPECT_FALSE(parser.failed());
  EXPECT_EQ(parser.buffered_bytes(), 1000u);
  parser.Feed(chunk);
  ASSERT_TRUE(parser.failed());
  EXPECT_EQ(parser.error(), "more than reply_bytes_max (1024 bytes) of reply data");
  EXPECT_EQ(parser.buffered_bytes(), 0u);  // what it held is released
  parser.Feed(chunk);                      // and nothing more is taken
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  ServerReply reply;
  EXPECT_EQ(parser.Next(&reply), ReplyParser::Status::kError);
}

TEST(ReplyParserTest, OneReplyIsBoundedWithItsLineEnds) {
  ReplyLimits limits;
  limits.reply_line_bytes_max = 512;
  limits.reply_bytes_max = 1024;
  const std::string text(398, 'y');  // "250-" + 398 + CRLF: 404 bytes a line
  {
    ReplyParser parser(limits);
    ReplyParser::Status status;
    EXPECT_TRUE(ParseAll(parser, "250-" + text + "\r\n", &status).empty());
    EXPECT_TRUE(ParseAll(parser, "250-" + text + "\r\n", &status).empty());
    EXPECT_EQ(parser.buffered_bytes(), 808u);  // the lines of the reply in progress count
    EXPECT_EQ(status, ReplyParser::Status::kNeedMore);
    ParseAll(parser, "250 " + text + "\r\n", &status);
    EXPECT_EQ(status, ReplyParser::Status::kError);
  }
  {
    // Up to the bound is fine, and a complete reply no longer counts.
    ReplyParser parser(limits);
    const std::string last(1024 - 808 - 6, 'z');
    auto replies = ParseAll(parser, "250-" + text + "\r\n250-" + text + "\r\n250 " + last + "\r\n");
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].lines.size(), 3u);
    EXPECT_EQ(parser.buffered_bytes(), 0u);
    EXPECT_EQ(ParseAll(parser, "250 " + text + "\r\n").size(), 1u);
  }
}

TEST(ReplyParserTest, ALongReplyWithinTheDefaultsIsAccepted) {
  // Three lines of 2,000 bytes: what a hostile or verbose MX may answer to the final dot.
  ReplyParser parser{ReplyLimits()};
  const std::string line(1990, 'q');
  const auto replies = ParseAll(
      parser, "250-2.0.0 " + line + "\r\n250-2.0.0 " + line + "\r\n250 2.0.0 " + line + "\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].enhanced, "2.0.0");
  EXPECT_EQ(replies[0].Text().size(), 3 * 1990u + 2);
}

TEST(ReplyParserTest, ClearDropsBufferedBytes) {
  ReplyParser parser{ReplyLimits()};
  parser.Feed("220 go ahead\r\n250 injected\r\n250-par");
  ServerReply reply;
  ASSERT_EQ(parser.Next(&reply), ReplyParser::Status::kReply);
  parser.Clear();
  EXPECT_EQ(parser.Next(&reply), ReplyParser::Status::kNeedMore);
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

}  // namespace
}  // namespace relay::smtp
