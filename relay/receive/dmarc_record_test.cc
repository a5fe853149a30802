// The DMARC record parser on RFC 7489's own examples (Appendix B.2) and on the edge cases of its
// grammar (§6.3, §6.4) and of policy discovery's step 6 (§6.6.3).
#include "relay/receive/dmarc_record.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::receive {
namespace {

DmarcRecord Parse(const std::string& text) {
  absl::StatusOr<DmarcRecord> r = ParseDmarcRecord(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status();
  return r.ok() ? *r : DmarcRecord();
}

std::string Problem(const std::string& text) {
  absl::StatusOr<DmarcRecord> r = ParseDmarcRecord(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(DmarcRecord, Rfc7489AppendixB) {
  // B.2.1: monitoring only.
  DmarcRecord r = Parse("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com");
  EXPECT_EQ(r.p, DmarcPolicy::kNone);
  EXPECT_FALSE(r.sp.has_value());
  EXPECT_EQ(r.adkim, DmarcAlignment::kRelaxed);
  EXPECT_EQ(r.aspf, DmarcAlignment::kRelaxed);
  EXPECT_EQ(r.pct, 100);
  // B.2.2: with failure reports to a third party.
  r = Parse(
      "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
      "ruf=mailto:auth-reports@thirdparty.example.net");
  EXPECT_EQ(r.p, DmarcPolicy::kNone);
  // B.2.4: quarantine a quarter, two report URIs, one with a size limit.
  r = Parse(
      "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
      "mailto:tld-test@thirdparty.example.net!10m; pct=25");
  EXPECT_EQ(r.p, DmarcPolicy::kQuarantine);
  EXPECT_EQ(r.pct, 25);
}

TEST(DmarcRecord, EveryPolicyTag) {
  DmarcRecord r = Parse("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=0");
  EXPECT_EQ(r.p, DmarcPolicy::kReject);
  ASSERT_TRUE(r.sp.has_value());
  EXPECT_EQ(*r.sp, DmarcPolicy::kQuarantine);
  EXPECT_EQ(r.adkim, DmarcAlignment::kStrict);
  EXPECT_EQ(r.aspf, DmarcAlignment::kStrict);
  EXPECT_EQ(r.pct, 0);
}

TEST(DmarcRecord, SpacingCaseAndSeparators) {
  // No spaces, a trailing separator, tabs, tag names and values in capitals: all the same record.
  for (const char* text : {"v=DMARC1;p=reject", "v=DMARC1; p=reject;", "v = DMARC1 ;\tp = reject ;",
                           "v=DMARC1; P=REJECT", "v=DMARC1;; p=reject"}) {
    EXPECT_EQ(Parse(text).p, DmarcPolicy::kReject) << text;
  }
  // Tags in any order after the version; unknown tags ignored (§6.3), even repeated ones.
  DmarcRecord r = Parse("v=DMARC1; fo=1; rf=afrf; ri=86400; x=1; x=2; pct=50; p=quarantine");
  EXPECT_EQ(r.p, DmarcPolicy::kQuarantine);
  EXPECT_EQ(r.pct, 50);
}

TEST(DmarcRecord, VersionMustComeFirstAndMatchExactly) {
  EXPECT_TRUE(IsDmarcRecord("v=DMARC1"));
  EXPECT_TRUE(IsDmarcRecord("v=DMARC1; p=none"));
  EXPECT_TRUE(IsDmarcRecord("  V = DMARC1;p=none"));
  EXPECT_FALSE(IsDmarcRecord("v=dmarc1; p=none"));  // §6.3: "MUST match precisely"
  EXPECT_FALSE(IsDmarcRecord("v=DMARC10; p=none"));
  EXPECT_FALSE(IsDmarcRecord("p=none; v=DMARC1"));
  EXPECT_FALSE(IsDmarcRecord("v=spf1 -all"));
  EXPECT_FALSE(IsDmarcRecord(""));
  EXPECT_EQ(Problem("p=reject; v=DMARC1"), "v=DMARC1 must come first");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; v=DMARC1"), "v= given twice");
}

TEST(DmarcRecord, PolicyProblems) {
  EXPECT_EQ(Problem("v=DMARC1"), "no p= tag");
  EXPECT_EQ(Problem("v=DMARC1; p=block"), "invalid p='block'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; p=none"), "p= given twice");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; sp=all"), "invalid sp='all'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; sp=none; sp=none"), "sp= given twice");
  // §6.6.3 step 6: with a valid rua= the record is taken as p=none.
  DmarcRecord r = Parse("v=DMARC1; rua=mailto:reports@example.com");
  EXPECT_EQ(r.p, DmarcPolicy::kNone);
  r = Parse("v=DMARC1; p=reject; sp=bogus; rua=mailto:reports@example.com");
  EXPECT_EQ(r.p, DmarcPolicy::kNone);
  EXPECT_FALSE(r.sp.has_value());
  // ... but not with a rua= that holds no URI.
  EXPECT_EQ(Problem("v=DMARC1; p=bogus; rua=reports"), "invalid p='bogus'");
  EXPECT_EQ(Problem("v=DMARC1; p=bogus; rua=mailto:"), "invalid p='bogus'");
  EXPECT_EQ(Problem("v=DMARC1; p=bogus; rua= , x y:z"), "invalid p='bogus'");
  EXPECT_EQ(Parse("v=DMARC1; p=bogus; rua=nope, mailto:a@b.example").p, DmarcPolicy::kNone);
}

TEST(DmarcRecord, OtherTagProblemsInvalidateTheRecord) {
  EXPECT_EQ(Problem("v=DMARC1; p=reject; adkim=x"), "invalid or repeated adkim=");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; aspf=s; aspf=r"), "invalid or repeated aspf=");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; pct=101"), "invalid or repeated pct='101'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; pct=-1"), "invalid or repeated pct='-1'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; pct=1000"), "invalid or repeated pct='1000'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; pct="), "invalid or repeated pct=''");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; pct=5 0"), "invalid or repeated pct='5 0'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; garbage"), "malformed tag 'garbage'");
  EXPECT_EQ(Problem("v=DMARC1; p=reject; =x"), "malformed tag '=x'");
  // Not forgiven by a rua=: only p= and sp= are (§6.6.3 step 6).
  EXPECT_EQ(Problem("v=DMARC1; p=reject; pct=x; rua=mailto:a@b.example"),
            "invalid or repeated pct='x'");
  EXPECT_EQ(Parse("v=DMARC1; p=reject; pct=100").pct, 100);
  EXPECT_EQ(Parse("v=DMARC1; p=reject; pct=007").pct, 7);
}

TEST(DmarcRecord, UntrustedTextIsBoundedAndQuotedSafely) {
  std::string big = "v=DMARC1; p=reject; rua=mailto:" + std::string(kDmarcRecordBytesMax, 'a');
  EXPECT_EQ(Problem(big), "record of " + std::to_string(big.size()) + " bytes exceeds 2048");
  std::string at_limit = "v=DMARC1; p=reject; x=";
  at_limit += std::string(kDmarcRecordBytesMax - at_limit.size(), 'y');
  EXPECT_EQ(Parse(at_limit).p, DmarcPolicy::kReject);
  // Control bytes and long values are not copied into the problem text as they are.
  EXPECT_EQ(Problem(std::string("v=DMARC1; p=re\r\nject")), "invalid p='re??ject'");
  EXPECT_EQ(Problem("v=DMARC1; p=" + std::string(100, 'z')),
            "invalid p='" + std::string(32, 'z') + "...'");
}

}  // namespace
}  // namespace relay::receive
