#include "relay/server/config/bounce_sections.h"

#include <string>

#include "gtest/gtest.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

absl::StatusOr<std::shared_ptr<const feedback::BounceClassifier>> Parse(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relay.toml"));
  return ParseBounces(Section("relay.toml", "", doc));
}

TEST(Bounces, ShippedRulesParse) {
  EXPECT_GT(ShippedBounceRules().size(), 30u);
  EXPECT_EQ(ShippedBounceRules()[0].name, "bounces.rule[0]");
  auto c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->get(), ShippedBounceClassifier().get());  // no [bounces]: the shared one
}

TEST(Bounces, ConfigRulesGoFirst) {
  auto c = Parse(
      "[[bounces.rule]]\ncategory = \"spam-block\"\ncodes = [550]\n"
      "text = ['user unknown at the moment']\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->Classify({550, "5.1.1", "User unknown at the moment"}),
            feedback::BounceCategory::kSpamBlock);
  EXPECT_EQ((*c)->Classify({550, "5.1.1", "User unknown"}), feedback::BounceCategory::kBadMailbox);
  EXPECT_EQ((*c)->rules().size(), 1u);
  EXPECT_EQ((*c)->fallback(), ShippedBounceClassifier().get());

  auto alone = Parse(
      "[bounces]\nreplace_shipped_rules = true\n"
      "[[bounces.rule]]\ncategory = \"quota\"\nenhanced = ['*.2.2']\n");
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ((*alone)->rules().size(), 1u);
  EXPECT_EQ((*alone)->Classify({550, "5.1.1", "User unknown"}), feedback::BounceCategory::kOther);
}

TEST(Bounces, ErrorsNameLineAndKey) {
  struct Case {
    const char* text;
    const char* expected;
  } cases[] = {
      {"[[bounces.rule]]\ncodes = [550]\n", "relay.toml:1:1: bounces.rule[0].category: is required"},
      {"[[bounces.rule]]\ncategory = \"hard\"\n",
       "relay.toml:2:12: bounces.rule[0].category: \"hard\" is not a category (bad-mailbox, "},
      {"[[bounces.rule]]\ncategory = \"quota\"\nenhanced = ['5.2.2', '5.2']\n",
       "relay.toml:3:22: bounces.rule[0].enhanced[1]: \"5.2\" is not an enhanced status code"},
      {"[[bounces.rule]]\ncategory = \"quota\"\ntext = ['(full']\n",
       "relay.toml:3:9: bounces.rule[0].text[0]: \"(full\" is not a regular expression: "},
      {"[[bounces.rule]]\ncategory = \"quota\"\ncodes = [99]\n",
       "relay.toml:3:10: bounces.rule[0].codes[0]: must be an integer between 200 and 599"},
      {"[[bounces.rule]]\ncategory = \"quota\"\npattern = 'x'\n",
       "relay.toml:3:11: bounces.rule[0].pattern: unknown key"},
      {"[bounces]\nreplace = true\n", "relay.toml:2:11: bounces.replace: unknown key"},
  };
  for (const Case& c : cases) {
    auto p = Parse(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_NE(p.status().message().find(c.expected), std::string::npos)
        << p.status() << "\n  vs " << c.expected;
  }
}

}  // namespace
}  // namespace relay::server::config
