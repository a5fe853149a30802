#include "relay/tlspolicy/mta_sts.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::tlspolicy {
namespace {

TEST(StsPolicyTest, ParsesTheRfcExample) {
  absl::StatusOr<StsPolicy> p = ParseStsPolicy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
      "mx: backupmx.example.com\r\nmax_age: 604800\r\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mode, StsMode::kEnforce);
  EXPECT_EQ(p->max_age_s, 604800);
  EXPECT_EQ(p->mx, (std::vector<std::string>{"mail.example.com", "*.example.net",
                                             "backupmx.example.com"}));
}

TEST(StsPolicyTest, ToleratesLfSpacesExtensionsAndRepeats) {
  absl::StatusOr<StsPolicy> p = ParseStsPolicy(
      "version:STSv1\nmode:   testing  \nfoo_bar: anything\nMX_ignored: x\nmx: MX.Example.ORG.\n"
      "mode: enforce\nmax_age: 86400\n\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mode, StsMode::kTesting);  // the first mode
  EXPECT_EQ(p->mx, std::vector<std::string>{"mx.example.org"});
  EXPECT_FALSE(ParseStsPolicy("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 12345678901\n")
                   .ok());  // more than 10 digits
  p = ParseStsPolicy("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 9999999999\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->max_age_s, kStsMaxAgeMax);  // cut to the maximum
}

TEST(StsPolicyTest, ErrorsNameWhatIsWrong) {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"mode: enforce\nmx: a.b\nmax_age: 1\n", "no version"},
      {"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "not STSv1"},
      {"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", "mode is not"},
      {"version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"},
      {"version: STSv1\nmode: enforce\nmx: a.b\n", "no max_age"},
      {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "max_age"},
      {"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "not a host name"},
      {"version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n", "not a host name"},
      {"version: STSv1\ngarbage\n", "line 2"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<StsPolicy> p = ParseStsPolicy(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_NE(std::string(p.status().message()).find(c.says), std::string::npos)
        << p.status() << " for " << c.text;
  }
  EXPECT_TRUE(ParseStsPolicy("version: STSv1\nmode: none\nmax_age: 1\n").ok());  // no mx needed
  EXPECT_FALSE(ParseStsPolicy(std::string(kStsPolicyBytesMax + 1, 'a')).ok());
}

TEST(StsRecordTest, OneRecordWithAnId) {
  EXPECT_EQ(*ParseStsRecord({"v=STSv1; id=20160831085700Z;"}), "20160831085700Z");
  EXPECT_EQ(*ParseStsRecord({"v=spf1 -all", "v=STSv1 ;id=abc ; ext=x"}), "abc");
  EXPECT_TRUE(absl::IsNotFound(ParseStsRecord({"v=spf1 -all"}).status()));
  EXPECT_TRUE(absl::IsNotFound(ParseStsRecord({"v=STSv10; id=1"}).status()));
  EXPECT_FALSE(ParseStsRecord({"v=STSv1; id=1", "v=STSv1; id=2"}).ok());  // two
  EXPECT_FALSE(ParseStsRecord({"v=STSv1;"}).ok());                        // no id
  EXPECT_FALSE(ParseStsRecord({"v=STSv1; id=" + std::string(33, 'a')}).ok());
  EXPECT_FALSE(ParseStsRecord({"v=STSv1; id=a-b"}).ok());
  EXPECT_FALSE(ParseStsRecord({"v=STSv1; =x; id=1"}).ok());
}

TEST(StsMatchTest, LiteralAndOneLabelWildcards) {
  EXPECT_TRUE(StsPatternMatches("mail.example.com", "MAIL.example.com."));
  EXPECT_FALSE(StsPatternMatches("mail.example.com", "mail.example.co"));
  EXPECT_TRUE(StsPatternMatches("*.example.net", "mx1.example.net"));
  EXPECT_FALSE(StsPatternMatches("*.example.net", "example.net"));
  EXPECT_FALSE(StsPatternMatches("*.example.net", "a.b.example.net"));  // one label only
  EXPECT_FALSE(StsPatternMatches("*.example.net", ".example.net"));
  EXPECT_FALSE(StsPatternMatches("*.example.net", "mx1.badexample.net"));
  StsPolicy p;
  p.mx = {"mail.example.com", "*.example.net"};
  EXPECT_TRUE(StsMxAllowed(p, "x.example.net"));
  EXPECT_FALSE(StsMxAllowed(p, "evil.example.org"));
}

TEST(StsCacheFileTest, RoundTripsAndSkipsBadLines) {
  StsCacheEntry e;
  e.domain = "example.com";
  e.id = "20260101";
  e.fetched_unix_s = 1700000000;
  e.policy.mode = StsMode::kEnforce;
  e.policy.max_age_s = 86400;
  e.policy.mx = {"mx.example.com", "*.example.net"};
  StsCacheEntry none = e;
  none.domain = "none.example";
  none.policy.mode = StsMode::kNone;
  none.policy.mx.clear();
  std::string text = FormatStsCacheFile({e, none});
  text += "bad\tline\n";
  text += "x.example\tid\t1\tenforce\t1\t\n";           // enforce without mx
  text += "x.example\tid\t1\tenforce\t99999999\tmx\n";  // max_age past the maximum
  text += "x.example\ti-d\t1\ttesting\t1\tmx\n";        // id with '-'
  std::vector<StsCacheEntry> read = ParseStsCacheFile(text, 10);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].domain, "example.com");
  EXPECT_EQ(read[0].id, "20260101");
  EXPECT_EQ(read[0].fetched_unix_s, 1700000000);
  EXPECT_EQ(read[0].policy.mode, StsMode::kEnforce);
  EXPECT_EQ(read[0].policy.max_age_s, 86400);
  EXPECT_EQ(read[0].policy.mx, e.policy.mx);
  EXPECT_EQ(read[1].policy.mode, StsMode::kNone);
  EXPECT_EQ(ParseStsCacheFile(text, 1).size(), 1u);
}

}  // namespace
}  // namespace relay::tlspolicy
