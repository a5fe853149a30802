#include "relay/server/config/delivery_sections.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

using delivery::ReplyAction;
using delivery::ReplyRule;
using delivery::RetryPolicy;
using delivery::ShapingRule;
using delivery::ShapingRules;
using delivery::TlsPolicy;
using Hosts = std::vector<std::string>;

TEST(Shaping, ProviderMatchedByMxSuffix) {
  ShapingRules rules = ShippedShapingRules();
  // A Google Workspace domain: its own name says nothing, its MX hosts do.
  ShapingRule r = rules.Resolve("example.org", {"ASPMX.L.GOOGLE.COM.", "alt1.aspmx.l.google.com"});
  EXPECT_EQ(r.name, "google");
  EXPECT_EQ(r.tls, TlsPolicy::kRequired);
  EXPECT_EQ(r.messages_per_second, 10u);
  EXPECT_EQ(rules.Resolve("gmail.com", {"gmail-smtp-in.l.google.com"}).name, "google");
  EXPECT_EQ(rules.Resolve("googlemail.com", {"x.googlemail.com"}).name, "google");
  EXPECT_EQ(rules.Resolve("yahoo.com", {"mta5.am0.yahoodns.net"}).name, "yahoo");
  EXPECT_EQ(rules.Resolve("aol.com", {"mx-aol.mail.gm0.yahoodns.net"}).name, "yahoo");
  EXPECT_EQ(rules.Resolve("contoso.com", {"contoso-com.mail.protection.outlook.com"}).name,
            "microsoft");
  EXPECT_EQ(rules.Resolve("hotmail.com", {"hotmail-com.olc.protection.outlook.com"}).name,
            "microsoft");
  EXPECT_EQ(rules.Resolve("icloud.com", {"mx01.mail.icloud.com"}).name, "apple");
  EXPECT_EQ(rules.Resolve("me.com", {"mx02.mail.me.com"}).name, "apple");
}

TEST(Shaping, SuffixMustMatchAtALabelBoundary) {
  ShapingRules rules = ShippedShapingRules();
  EXPECT_EQ(rules.Resolve("evil.test", {"mx.notgoogle.com"}).name, "default");
  EXPECT_EQ(rules.Resolve("evil.test", {"google.com.evil.test"}).name, "default");
  EXPECT_EQ(rules.Resolve("x.test", {}).name, "default");
}

TEST(Shaping, FirstMatchingMxInPreferenceOrderWins) {
  ShapingRules rules = ShippedShapingRules();
  EXPECT_EQ(rules.Resolve("d.test", {"mx.d.test", "mx1.mail.icloud.com", "a.l.google.com"}).name,
            "apple");
}

TEST(Shaping, DefaultRule) {
  ShapingRule r = ShippedShapingRules().Resolve("small.test", {"mail.small.test"});
  EXPECT_EQ(r.name, "default");
  EXPECT_EQ(r.tls, TlsPolicy::kOpportunistic);
  EXPECT_EQ(r.connections_max, 10u);
  EXPECT_EQ(r.messages_per_second, 0u);
  EXPECT_EQ(r.timeouts.greeting_ms, 300000u);
  EXPECT_EQ(r.timeouts.data_done_ms, 600000u);
}

TEST(Shaping, ReplyRulesOfShippedProviders) {
  ShapingRules rules = ShippedShapingRules();
  ShapingRule g = rules.Resolve("gmail.com", {"gmail-smtp-in.l.google.com"});
  const ReplyRule* m = g.MatchReply(
      421, "4.7.28",
      "Our system has detected an unusual rate of unsolicited mail originating from your IP "
      "address.");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->action, ReplyAction::kSuspend);
  EXPECT_EQ(m->suspend_s, 3600u);
  m = g.MatchReply(421, "4.7.0", "Our system has detected an UNUSUAL RATE of mail");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->suspend_s, 1800u);
  EXPECT_EQ(g.MatchReply(550, "5.1.1", "The email account that you tried to reach does not exist"),
            nullptr);
  // The default rule's reply rules apply below the provider's.
  m = g.MatchReply(421, "4.7.0", "Too many concurrent SMTP connections from this IP address");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->suspend_s, 60u);

  ShapingRule y = rules.Resolve("yahoo.com", {"mta6.am0.yahoodns.net"});
  m = y.MatchReply(421, "4.7.0",
                   "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
                   "or user complaints - 4.16.55.1");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->action, ReplyAction::kSuspend);
  m = y.MatchReply(421, "4.7.1",
                   "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying "
                   "will NOT succeed.");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->action, ReplyAction::kBounce);

  ShapingRule ms = rules.Resolve("outlook.com", {"outlook-com.olc.protection.outlook.com"});
  m = ms.MatchReply(550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. (S3150)");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->suspend_s, 3600u);
  m = ms.MatchReply(451, "4.7.650",
                    "The mail server [192.0.2.1] has been temporarily rate limited due to IP "
                    "reputation.");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->suspend_s, 1800u);
}

absl::StatusOr<ShapingRules> Parse(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relay.toml"));
  return ParseShaping(Section("relay.toml", "", doc), ShippedShapingRules());
}

TEST(Shaping, ConfigAddsDomainRuleOverridingOnlySomeFields) {
  auto rules = Parse(R"(
[[shaping]]
name = "acme"
domains = ["Acme.Example"]
connections_max = 2
[[shaping.reply]]
contains = "slow down"
suspend_s = 120
[[shaping.reply]]
regex = "^4[0-9][0-9] 4\\.2\\.2 .*over quota"
bounce = true
)");
  ASSERT_TRUE(rules.ok()) << rules.status();
  // A domain hosted on Google: Google's limits, with the domain's own fields on top.
  ShapingRule r = rules->Resolve("acme.example.", {"aspmx.l.google.com"});
  EXPECT_EQ(r.name, "acme+google");
  EXPECT_EQ(r.connections_max, 2u);
  EXPECT_EQ(r.messages_per_second, 10u);   // from google
  EXPECT_EQ(r.tls, TlsPolicy::kRequired);  // from google
  const ReplyRule* m = r.MatchReply(421, "4.7.0", "Please SLOW DOWN");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->suspend_s, 120u);
  m = r.MatchReply(452, "4.2.2", "The email account that you tried to reach is over quota");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->action, ReplyAction::kBounce);
  EXPECT_EQ(r.MatchReply(452, "4.2.1", "over quota"), nullptr);  // anchored regex
  // The same domain on its own MX gets the default's other fields.
  ShapingRule own = rules->Resolve("acme.example", {"mx.acme.example"});
  EXPECT_EQ(own.name, "acme");
  EXPECT_EQ(own.connections_max, 2u);
  EXPECT_EQ(own.messages_per_second, 0u);
  EXPECT_EQ(own.tls, TlsPolicy::kOpportunistic);
}

TEST(Shaping, ConfigMergesOverShippedRulesAndDefault) {
  auto rules = Parse(R"(
[[shaping]]
name = "google"
connections_max = 4
data_done_timeout_ms = 900000
[[shaping]]
name = "default"
tls = "required"
messages_per_second = 50
[[shaping]]
name = "yahoo"
replace_reply_rules = true
[[shaping.reply]]
contains = "TSS04"
suspend_s = 7200
[[shaping]]
name = "fastmail"
mx_suffixes = [".messagingengine.com"]
tls = "disabled"
pipeline_transactions = false
)");
  ASSERT_TRUE(rules.ok()) << rules.status();
  ShapingRule g = rules->Resolve("gmail.com", {"gmail-smtp-in.l.google.com"});
  EXPECT_EQ(g.connections_max, 4u);
  EXPECT_EQ(g.messages_per_second, 10u);  // kept from the shipped rule
  EXPECT_EQ(g.timeouts.data_done_ms, 900000u);
  ASSERT_NE(g.MatchReply(421, "4.7.28", "x"), nullptr);  // shipped reply rules kept
  ShapingRule d = rules->Resolve("small.test", {"mx.small.test"});
  EXPECT_EQ(d.tls, TlsPolicy::kRequired);
  EXPECT_EQ(d.messages_per_second, 50u);
  ShapingRule y = rules->Resolve("yahoo.com", {"mta5.am0.yahoodns.net"});
  EXPECT_EQ(y.MatchReply(421, "4.7.1", "[TSS09] ... Retrying will NOT succeed"), nullptr);
  ASSERT_NE(y.MatchReply(421, "4.7.0", "[TSS04] deferred"), nullptr);
  EXPECT_EQ(y.MatchReply(421, "4.7.0", "[TSS04] deferred")->suspend_s, 7200u);
  ShapingRule f = rules->Resolve("fastmail.com", {"in1-smtp.messagingengine.com"});
  EXPECT_EQ(f.name, "fastmail");
  EXPECT_EQ(f.tls, TlsPolicy::kDisabled);
  EXPECT_EQ(f.messages_per_second, 50u);  // the configured default below it
  EXPECT_FALSE(f.pipeline_transactions);
  EXPECT_TRUE(d.pipeline_transactions);  // on unless a rule turns it off
  EXPECT_TRUE(g.pipeline_transactions);
}

TEST(Shaping, ConfigErrorsArePrecise) {
  struct Case {
    const char* text;
    const char* expected;
  } cases[] = {
      {"[[shaping]]\nname = \"google\"\nconnections_max = 0\n",
       "relay.toml:3:19: shaping[0].connections_max: must be between 1 and"},
      {"[[shaping]]\nname = \"a\"\ndomains = [\"a.test\"]\n[[shaping]]\nname = \"b\"\n"
       "domains = [\"b.test\"]\ntls = \"maybe\"\n",
       "relay.toml:7:7: shaping[1].tls: must be one of \"required\""},
      {"[[shaping]]\nname = \"google\"\npipeline_transactions = 1\n",
       "relay.toml:3:25: shaping[0].pipeline_transactions: must be true or false"},
      {"[[shaping]]\nname = \"x\"\n", "relay.toml:1:1: shaping[0]: a new rule (\"x\") needs domains"},
      {"[[shaping]]\ndomains = [\"a.test\"]\n", "shaping[0]: name is required"},
      {"[[shaping]]\nname = \"google\"\nconection_max = 3\n",
       "relay.toml:3:17: shaping[0].conection_max: unknown key"},
      {"[[shaping]]\nname = \"google\"\n[[shaping.reply]]\nregex = \"([a-\"\nsuspend_s = 5\n",
       "relay.toml:4:9: shaping[0].reply[0].regex: does not compile"},
      {"[[shaping]]\nname = \"google\"\n[[shaping.reply]]\ncontains = \"x\"\n",
       "relay.toml:3:1: shaping[0].reply[0]: a reply rule needs exactly one of suspend_s"},
      {"[[shaping]]\nname = \"google\"\n[[shaping.reply]]\ncontains = \"x\"\nbounce = false\n",
       "relay.toml:5:10: shaping[0].reply[0].bounce: must be true"},
      {"[[shaping]]\nname = \"default\"\ndomains = [\"a.test\"]\n",
       "shaping[0]: the default rule matches everything"},
      {"[[shaping]]\nname = \"a\"\ndomains = [\"a.test\"]\n[[shaping]]\nname = \"a\"\n",
       "relay.toml:5:8: shaping[1].name: \"a\" is used by an earlier"},
      {"[[shaping]]\nname = \"a\"\ndomains = [\"user@a.test\"]\n",
       "relay.toml:3:12: shaping[0].domains[0]: must be a host or domain name"},
      {"shaping = 3\n", "relay.toml:1:11: shaping: must be an array of tables"},
  };
  for (const Case& c : cases) {
    auto rules = Parse(c.text);
    ASSERT_FALSE(rules.ok()) << c.text;
    EXPECT_NE(rules.status().message().find(c.expected), std::string::npos)
        << rules.status().message() << "\n  expected: " << c.expected;
  }
}

absl::StatusOr<RetryPolicy> ParseRetryText(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relay.toml"));
  ASSIGN_OR_RETURN(std::optional<Section> retry, Section("relay.toml", "", doc).Table("retry"));
  if (!retry) return absl::NotFoundError("no [retry]");
  return ParseRetry(*retry);
}

TEST(Retry, ParsesConfig) {
  auto p = ParseRetryText(
      "[retry]\nintervals_s = [30, 120, 600]\njitter_fraction = 0.25\n"
      "delay_warning_s = 14400\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->intervals_s, (std::vector<int64_t>{30, 120, 600}));
  EXPECT_DOUBLE_EQ(p->jitter_fraction, 0.25);
  EXPECT_EQ(p->delay_warning_s, 14400);
  EXPECT_EQ(delivery::BaseIntervalSeconds(*p, 9), 600);

  auto d = ParseRetryText("[retry]\n");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->intervals_s, RetryPolicy().intervals_s);
}

TEST(Retry, ConfigErrorsNameLineAndKey) {
  struct Case {
    const char* text;
    const char* expected;
  } cases[] = {
      {"[retry]\n\nintervals_s = [60, 30]\n",
       "relay.toml:3:20: retry.intervals_s[1]: must not be less than the one before"},
      {"[retry]\nintervals_s = []\n", "relay.toml:2:15: retry.intervals_s: must be a non-empty"},
      {"[retry]\nintervals_s = [60, \"5m\"]\n",
       "relay.toml:2:20: retry.intervals_s[1]: must be an integer between 1 and 604800"},
      {"[retry]\njitter_fraction = 1.5\n",
       "relay.toml:2:19: retry.jitter_fraction: must be a number in [0, 1)"},
      {"[retry]\nmax_age_s = 10\n",
       "relay.toml:2:13: retry.max_age_s: is not read here; set queue.message_age_s_max"},
      {"[retry]\nmessage_age_s_max = 10\n",
       "relay.toml:2:21: retry.message_age_s_max: is not read here"},
      {"[retry]\nmax_age = 10\n", "relay.toml:2:11: retry.max_age: unknown key"},
      {"retry = 5\n", "relay.toml:1:9: retry: must be a table"},
  };
  for (const Case& c : cases) {
    auto p = ParseRetryText(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_NE(p.status().message().find(c.expected), std::string::npos)
        << p.status() << " vs " << c.expected;
  }
}

}  // namespace
}  // namespace relay::server::config
