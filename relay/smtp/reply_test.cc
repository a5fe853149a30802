#include "relay/smtp/reply.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::smtp {
namespace {

TEST(Reply, SingleLine) {
  std::string out;
  AppendReply(out, 250, "2.1.0", "Ok");
  AppendReply(out, Reply{452, "4.3.1", "Insufficient system storage"});
  AppendReply(out, 220, "", "mx.example ESMTP ready");
  EXPECT_EQ(out,
            "250 2.1.0 Ok\r\n452 4.3.1 Insufficient system storage\r\n"
            "220 mx.example ESMTP ready\r\n");
}

TEST(Reply, Multiline) {
  std::string out;
  AppendMultilineReply(out, 250, {"mx.example", "PIPELINING", "SIZE 10"});
  EXPECT_EQ(out, "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
}

TEST(Reply, EnhancedCodeValidation) {
  EXPECT_TRUE(IsValidEnhancedCode(250, "2.0.0"));
  EXPECT_TRUE(IsValidEnhancedCode(538, "5.7.11"));
  EXPECT_TRUE(IsValidEnhancedCode(451, "4.100.999"));
  EXPECT_FALSE(IsValidEnhancedCode(250, "5.0.0"));  // class disagrees with the code
  EXPECT_FALSE(IsValidEnhancedCode(354, "3.0.0"));
  EXPECT_FALSE(IsValidEnhancedCode(550, "5.0"));
  EXPECT_FALSE(IsValidEnhancedCode(550, "5.0.1000"));
  EXPECT_FALSE(IsValidEnhancedCode(550, "5..1"));
  EXPECT_FALSE(IsValidEnhancedCode(550, "5.1.1x"));
}

}  // namespace
}  // namespace relay::smtp
