#include "relay/receive/auth_results.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace relay::receive {
namespace {

std::vector<std::string> Lines(const std::string& field) { return absl::StrSplit(field, "\r\n"); }

TEST(AuthResultsTest, FullExample) {
  AuthResults r;
  r.authserv_id = "mx.example.org";
  r.spf = SpfAuth{SpfVerdict::kPass, "alice@example.com", ""};
  r.dkim.push_back(DkimAuth{DkimVerdict::kPass, "example.com", "sel", "AbCd+123xyz", ""});
  r.dkim.push_back(
      DkimAuth{DkimVerdict::kFail, "other.example", "s2", "ab/cd", "body hash mismatch"});
  r.arc = ArcVerdict::kNone;
  EXPECT_EQ(BuildAuthResultsHeader(r),
            "Authentication-Results: mx.example.org;\r\n"
            "\tspf=pass smtp.mailfrom=alice@example.com;\r\n"
            "\tdkim=pass header.d=example.com header.s=sel header.b=AbCd+123xyz;\r\n"
            "\tdkim=fail reason=\"body hash mismatch\" header.d=other.example header.s=s2\r\n"
            "\theader.b=\"ab/cd\";\r\n"
            "\tarc=none\r\n");
}

TEST(AuthResultsTest, NoSignatureIsDkimNoneAndNothingIsNone) {
  AuthResults r;
  r.authserv_id = "mx.example.org";
  r.spf = SpfAuth{SpfVerdict::kSoftFail, "", "helo.example"};
  EXPECT_EQ(AuthResultsPayload(r),
            "mx.example.org;\r\n\tspf=softfail smtp.helo=helo.example;\r\n\tdkim=none");
  AuthResults nothing;
  nothing.authserv_id = "mx.example.org";
  nothing.dkim_checked = false;
  EXPECT_EQ(AuthResultsPayload(nothing), "mx.example.org; none");
}

TEST(AuthResultsTest, ValuesQuotedWhereTheGrammarNeedsIt) {
  EXPECT_EQ(AuthResultsValue("example.com"), "example.com");
  EXPECT_EQ(AuthResultsValue("a.b+tag@example.com"), "a.b+tag@example.com");
  EXPECT_EQ(AuthResultsValue("@example.com"), "@example.com");
  EXPECT_EQ(AuthResultsValue("AbCd+123"), "AbCd+123");
  EXPECT_EQ(AuthResultsValue("ab/cd"), "\"ab/cd\"");
  // An address keeps the form of an address, its local part quoted when needed.
  EXPECT_EQ(AuthResultsValue("a b@example.com"), "\"a b\"@example.com");
  EXPECT_EQ(AuthResultsValue("\"a b\"@example.com"), "\"a b\"@example.com");
  EXPECT_EQ(AuthResultsValue("\"q\\\"x\"@example.com"), "\"q\\\"x\"@example.com");
  EXPECT_EQ(AuthResultsValue("x..y@example.com"), "\"x..y\"@example.com");
  EXPECT_EQ(AuthResultsValue("a\"b@example.com"), "\"a\\\"b\"@example.com");
  EXPECT_EQ(AuthResultsValue("a@b@bad_domain"), "\"a@b@bad_domain\"");
  EXPECT_EQ(AuthResultsValue(""), "\"\"");
  EXPECT_EQ(AuthResultsValue("a;b"), "\"a;b\"");
}

TEST(AuthResultsTest, ControlBytesCannotBreakTheField) {
  AuthResults r;
  r.authserv_id = "mx.example.org";
  r.spf = SpfAuth{SpfVerdict::kFail, "evil\r\nX-Injected: 1@example.com", ""};
  r.dkim.push_back(DkimAuth{DkimVerdict::kPermError, "d.example", "s", "", "no key\r\nX: y"});
  std::string field = BuildAuthResultsHeader(r);
  EXPECT_NE(field.find("smtp.mailfrom=\"evilX-Injected: 1\"@example.com"), std::string::npos)
      << field;
  for (const std::string& line : Lines(field)) {
    EXPECT_NE(line.rfind("X-Injected:", 0), 0u) << line;  // no line starts a new field
    if (!line.empty() && line != Lines(field)[0]) {
      EXPECT_EQ(line[0], '\t') << line;
    }
  }
}

TEST(AuthResultsTest, FoldedUnder78Columns) {
  AuthResults r;
  r.authserv_id = "mx.example.org";
  r.spf = SpfAuth{SpfVerdict::kPass, "very.long.local.part.for.testing@sub.domain.example.com",
                  "mail-out-17.sub.domain.example.com"};
  for (int i = 0; i < 3; ++i) {
    r.dkim.push_back(DkimAuth{DkimVerdict::kTempError, "a-long-signing-domain.example.com",
                              "selector2026-november", "0123456789abcdefghij",
                              "key lookup: transient timeout"});
  }
  r.arc = ArcVerdict::kPass;
  std::string field = BuildAuthResultsHeader(r);
  ASSERT_EQ(field.substr(field.size() - 2), "\r\n");
  for (const std::string& line : Lines(field)) {
    EXPECT_LE(line.size(), 78u) << line;
  }
  // The b= prefix is cut to its named limit.
  EXPECT_NE(field.find("header.b=0123456789ab;"), std::string::npos) << field;
  EXPECT_NE(field.find("\tarc=pass\r\n"), std::string::npos) << field;
}

TEST(WithoutOwnAuthResultsTest, RemovesOnlyFieldsClaimingOurAuthservId) {
  const std::string message =
      "Authentication-Results: MX.Example.Org; spf=pass smtp.mailfrom=ceo@bank.example\r\n"
      "Received: from a by b\r\n"
      "Authentication-Results: other.example; dkim=fail\r\n"
      "authentication-results: (forged)\r\n"
      "\t\"mx.example.org\"; dkim=pass header.d=bank.example\r\n"
      "Authentication-Results: mx.example.org.evil.test; dkim=pass\r\n"
      "ARC-Authentication-Results: i=1; mx.example.org; arc=none\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Authentication-Results: mx.example.org; in the body, kept\r\n";
  std::optional<std::string> kept = WithoutOwnAuthResults(message, "mx.example.org");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept,
            "Received: from a by b\r\n"
            "Authentication-Results: other.example; dkim=fail\r\n"
            "Authentication-Results: mx.example.org.evil.test; dkim=pass\r\n"
            "ARC-Authentication-Results: i=1; mx.example.org; arc=none\r\n"
            "Subject: hi\r\n"
            "\r\n"
            "Authentication-Results: mx.example.org; in the body, kept\r\n");
}

TEST(WithoutOwnAuthResultsTest, FromFieldsParsedOnceGivesTheSame) {
  const std::string message =
      "Authentication-Results: MX.Example.Org; spf=pass\r\n"
      "Subject: hi\r\n"
      "authentication-results: (c) mx.example.org; dkim=pass\r\n"
      "Authentication-Results: other.example; dkim=fail\r\n"
      "\r\n"
      "body\r\n";
  auto fields =
      dkim::ParseHeaderBlock(std::string_view(message).substr(0, message.find("\r\n\r\n") + 2));
  ASSERT_TRUE(fields.ok());
  std::optional<std::string> kept = WithoutOwnAuthResults(message, *fields, "mx.example.org");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept, WithoutOwnAuthResults(message, "mx.example.org"));
  EXPECT_EQ(*kept,
            "Subject: hi\r\nAuthentication-Results: other.example; dkim=fail\r\n\r\nbody\r\n");
  std::vector<bool> claims;
  for (const dkim::HeaderField& f : *fields) {
    claims.push_back(ClaimsAuthservId(f, "mx.example.org"));
  }
  EXPECT_EQ(claims, (std::vector<bool>{true, false, true, false}));
}

TEST(WithoutOwnAuthResultsTest, NothingToRemoveCopiesNothing) {
  EXPECT_FALSE(WithoutOwnAuthResults("Subject: a\r\n\r\nbody\r\n", "mx.example.org"));
  EXPECT_FALSE(WithoutOwnAuthResults(
      "Authentication-Results: other.example; spf=pass\r\n\r\n", "mx.example.org"));
  EXPECT_FALSE(WithoutOwnAuthResults("", "mx.example.org"));
  // The last field at the very end of a message without a body.
  std::optional<std::string> kept = WithoutOwnAuthResults(
      "Subject: a\r\nAuthentication-Results: mx.example.org (c (nested)); none\r\n",
      "mx.example.org");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept, "Subject: a\r\n");
}

}  // namespace
}  // namespace relay::receive
