#include "relay/server/config/feedback_sections.h"

#include <string>

#include "gtest/gtest.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

absl::StatusOr<FeedbackSettings> Parse(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relayd.toml"));
  return ParseFeedback(Section("relayd.toml", "", doc), "/etc/relay", {"local.test"});
}

TEST(Feedback, OffWithoutVerpDomains) {
  auto s = Parse("");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->enabled());
  EXPECT_EQ(s->secret_path, "/etc/relay/feedback.secret");
}

TEST(Feedback, ReadsVerpDomains) {
  auto s = Parse(
      "[feedback]\nlocal_part = \"rp\"\nsuppress_complaints = false\n"
      "[[feedback.verp]]\ndomain = \"Example.com\"\nbounce_domain = \"Bounce.Example.com\"\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->verp.size(), 1u);
  EXPECT_EQ(s->verp[0].domain, "example.com");
  EXPECT_EQ(s->verp[0].bounce_domain, "bounce.example.com");
  EXPECT_EQ(s->local_part, "rp");
  EXPECT_FALSE(s->suppress_complaints);
}

TEST(Feedback, RefusesWhatCannotWork) {
  for (const char* text : {
           "[[feedback.verp]]\ndomain = \"example.com\"\n",
           "[[feedback.verp]]\ndomain = \"example.com\"\nbounce_domain = \"local.test\"\n",
           "[[feedback.verp]]\ndomain = \"example.com\"\nbounce_domain = \"not a domain\"\n",
           "[[feedback.verp]]\ndomain = \"a.test\"\nbounce_domain = \"b.test\"\n"
           "[[feedback.verp]]\ndomain = \"c.test\"\nbounce_domain = \"b.test\"\n",
           "[feedback]\nlocal_part = \"a+b\"\n",
           "[feedback]\ncolour = 1\n",
       }) {
    EXPECT_FALSE(Parse(text).ok()) << text;
  }
}

absl::StatusOr<UnsubscribeSettings> ParseU(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relayd.toml"));
  return ParseUnsubscribe(Section("relayd.toml", "", doc));
}

TEST(Unsubscribe, ReadsTheTable) {
  auto s = ParseU("");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->enabled());
  s = ParseU(
      "[unsubscribe]\nurl = \"https://u.example.com\"\nlisten = [\"0.0.0.0:443\"]\n"
      "bulk_users = [\"News@Example.com\"]\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->enabled());
  EXPECT_EQ(s->bulk_users, std::vector<std::string>{"news@example.com"});
  EXPECT_EQ(s->bulk_header, "X-Relay-Bulk");
  for (const char* text :
       {"[unsubscribe]\nlisten = []\n", "[unsubscribe]\nurl = \"http://u.example.com\"\n",
        "[unsubscribe]\nurl = \"https://u.example.com/path\"\n",
        "[unsubscribe]\nurl = \"https://u.example.com\"\nbulk_header = \"a:b\"\n"}) {
    EXPECT_FALSE(ParseU(text).ok()) << text;
  }
}

}  // namespace
}  // namespace relay::server::config
