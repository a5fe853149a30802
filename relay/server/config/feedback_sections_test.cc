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

}  // namespace
}  // namespace relay::server::config
