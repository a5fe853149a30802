#include "relay/smtp/command.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::smtp {
namespace {

TEST(ParseCommandLine, VerbsAreCaseInsensitiveWholeWords) {
  EXPECT_EQ(ParseCommandLine("EHLO client.example").verb, Verb::kEhlo);
  EXPECT_EQ(ParseCommandLine("ehlo client.example").argument, "client.example");
  EXPECT_EQ(ParseCommandLine("mAiL FROM:<a@b>").verb, Verb::kMail);
  EXPECT_EQ(ParseCommandLine("STARTTLS").verb, Verb::kStartTls);
  EXPECT_EQ(ParseCommandLine("starttls").argument, "");
  EXPECT_EQ(ParseCommandLine("MAILX FROM:<a@b>").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommandLine("").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommandLine("NOOP   x  ").argument, "x");
  EXPECT_EQ(ParseCommandLine("BDAT 10 LAST").verb, Verb::kBdat);
  EXPECT_EQ(ParseCommandLine("AUTH PLAIN AGEAYg==").argument, "PLAIN AGEAYg==");
}

Path MustParse(std::string_view text, bool allow_null = true) {
  Path path;
  EXPECT_EQ(ParsePath(text, allow_null, &path), ArgError::kNone) << text;
  return path;
}

ArgError PathError(std::string_view text, bool allow_null = true) {
  Path path;
  return ParsePath(text, allow_null, &path);
}

TEST(ParsePath, Rfc5321Syntax) {
  EXPECT_EQ(MustParse("<user@example.com>").address, "user@example.com");
  EXPECT_EQ(MustParse("<first.last+tag@sub.example.co.uk>").address,
            "first.last+tag@sub.example.co.uk");
  EXPECT_EQ(MustParse("<!#$%&'*+-/=?^_`{|}~@example.com>").address,
            "!#$%&'*+-/=?^_`{|}~@example.com");
  EXPECT_TRUE(MustParse("<>").is_null());
  EXPECT_EQ(PathError("<>", /*allow_null=*/false), ArgError::kNullNotAllowed);
  // Quoted local parts (§4.1.2 Quoted-string), including quoted-pairs and '@' inside.
  EXPECT_EQ(MustParse("<\"john doe\"@example.com>").address, "\"john doe\"@example.com");
  EXPECT_EQ(MustParse("<\"a@b\\\"c\"@example.com>").address, "\"a@b\\\"c\"@example.com");
  // Source routes are accepted and dropped (§4.1.1.3).
  EXPECT_EQ(MustParse("<@relay1.example,@relay2.example:user@example.com>").address,
            "user@example.com");
  // Address literals (§4.1.3).
  EXPECT_EQ(MustParse("<user@[192.0.2.1]>").address, "user@[192.0.2.1]");
  EXPECT_EQ(MustParse("<user@[IPv6:2001:db8::1]>").address, "user@[IPv6:2001:db8::1]");
  EXPECT_EQ(MustParse("<user@[IPv6:::ffff:192.0.2.1]>").address, "user@[IPv6:::ffff:192.0.2.1]");
  // Postmaster without a domain (§4.1.1.3).
  EXPECT_EQ(MustParse("<Postmaster>").address, "Postmaster");
}

TEST(ParsePath, Smtputf8Addresses) {
  const Path p = MustParse("<用户@例子.广告>");
  EXPECT_EQ(p.address, "用户@例子.广告");
  EXPECT_TRUE(p.non_ascii);
  EXPECT_FALSE(MustParse("<a@b.example>").non_ascii);
  EXPECT_EQ(PathError("<\xff\xfe@example.com>"), ArgError::kPathSyntax);  // not UTF-8
  EXPECT_EQ(PathError("<\xc0\xaf@example.com>"), ArgError::kPathSyntax);  // overlong
}

TEST(ParsePath, RejectsMalformed) {
  for (std::string_view bad : {"user@example.com",
                               "<user@example.com",
                               "<user>",
                               "<@example.com>",
                               "<user@>",
                               "<.user@example.com>",
                               "<user.@example.com>",
                               "<us..er@example.com>",
                               "<user name@example.com>",
                               "<user@exa mple.com>",
                               "<user@-example.com>",
                               "<user@example-.com>",
                               "<user@example..com>",
                               "<user@[300.1.1.1]>",
                               "<user@[1.2.3]>",
                               "<user@[IPv6:1::2::3]>",
                               "<user@[IPv6:12345::1]>",
                               "<\"unterminated@example.com>",
                               "<@relay:>",
                               "<@relay,:user@example.com>",
                               "<user@example.com,>",
                               "<a\"b@c.d>"}) {
    EXPECT_NE(PathError(bad), ArgError::kNone) << bad;
  }
}

TEST(ParsePath, Limits) {
  const std::string local64(64, 'a'), local65(65, 'a');
  EXPECT_EQ(PathError("<" + local64 + "@example.com>"), ArgError::kNone);
  EXPECT_EQ(PathError("<" + local65 + "@example.com>"), ArgError::kPathTooLong);
  std::string long_domain;
  while (long_domain.size() < 260) long_domain += "abcdefghi.";
  long_domain += "com";
  EXPECT_EQ(PathError("<a@" + long_domain + ">"), ArgError::kPathTooLong);
  const std::string label64(64, 'b');
  EXPECT_NE(PathError("<a@" + label64 + ".com>"), ArgError::kNone);
}

TEST(ParseMailArgument, PathAndParams) {
  MailCommand mail;
  ASSERT_EQ(ParseMailArgument("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH=<>", &mail),
            ArgError::kNone);
  EXPECT_EQ(mail.path.address, "a@b.example");
  EXPECT_EQ(mail.params.size_bytes, 1000u);
  EXPECT_EQ(mail.params.body, BodyType::k8BitMime);
  EXPECT_TRUE(mail.params.smtputf8);
  EXPECT_EQ(mail.params.auth, "<>");

  ASSERT_EQ(ParseMailArgument("from: <>", &mail), ArgError::kNone);  // space tolerated
  EXPECT_TRUE(mail.path.is_null());
  EXPECT_FALSE(mail.params.size_bytes.has_value());

  ASSERT_EQ(ParseMailArgument("FROM:<a@b.example> AUTH=e+3Dmc2@example.com body=7bit", &mail),
            ArgError::kNone);
  EXPECT_EQ(mail.params.auth, "e=mc2@example.com");
  EXPECT_EQ(mail.params.body, BodyType::k7Bit);
}

TEST(ParseMailArgument, Campaign) {
  MailCommand mail;
  ASSERT_EQ(ParseMailArgument("FROM:<a@b.example> XCAMPAIGN=spring+2D2027/a", &mail),
            ArgError::kNone);
  EXPECT_EQ(mail.params.campaign, "spring-2027/a");
  ASSERT_EQ(ParseMailArgument("FROM:<a@b.example> xcampaign=news+20letter", &mail),
            ArgError::kNone);
  EXPECT_EQ(mail.params.campaign, "news letter");
  // Not a label: a control character, a quote, too long, empty; twice.
  for (const char* bad : {"XCAMPAIGN=a+0Ab", "XCAMPAIGN=a\"b", "XCAMPAIGN=", "XCAMPAIGN=+20x"}) {
    EXPECT_EQ(ParseMailArgument(std::string("FROM:<a@b.example> ") + bad, &mail),
              ArgError::kParamSyntax)
        << bad;
  }
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> XCAMPAIGN=" + std::string(65, 'c'), &mail),
            ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> XCAMPAIGN=a XCAMPAIGN=b", &mail),
            ArgError::kParamDuplicate);
  EXPECT_TRUE(IsValidLabel(std::string(64, 'c')));
}

// DSN (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT.
TEST(ParseMailArgument, DsnParameters) {
  MailCommand mail;
  ASSERT_EQ(ParseMailArgument("FROM:<a@b.example> RET=hdrs ENVID=QQ+2B314", &mail),
            ArgError::kNone);
  EXPECT_EQ(mail.params.ret, DsnReturn::kHeaders);
  EXPECT_EQ(mail.params.envid, "QQ+314");
  ASSERT_EQ(ParseMailArgument("FROM:<a@b.example> RET=FULL", &mail), ArgError::kNone);
  EXPECT_EQ(mail.params.ret, DsnReturn::kFull);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> RET=BODY", &mail), ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> RET=FULL RET=HDRS", &mail),
            ArgError::kParamDuplicate);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> ENVID=" + std::string(101, 'x'), &mail),
            ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> ENVID=a+0Ab", &mail), ArgError::kParamSyntax);

  RcptCommand rcpt;
  ASSERT_EQ(ParseRcptArgument("TO:<c@d.example> NOTIFY=success,DELAY ORCPT=rfc822;c+2Bx@d.example",
                              &rcpt),
            ArgError::kNone);
  EXPECT_EQ(rcpt.params.notify, kNotifySuccess | kNotifyDelay);
  EXPECT_EQ(rcpt.params.orcpt, "rfc822;c+x@d.example");
  ASSERT_EQ(ParseRcptArgument("TO:<c@d.example> NOTIFY=NEVER", &rcpt), ArgError::kNone);
  EXPECT_EQ(rcpt.params.notify, kNotifyNever);
  EXPECT_TRUE(rcpt.params.orcpt.empty());
  for (const char* bad :
       {"NOTIFY=NEVER,SUCCESS", "NOTIFY=", "NOTIFY=FAILURE,FAILURE", "NOTIFY=SOMETIMES",
        "ORCPT=c@d.example", "ORCPT=;c@d.example", "ORCPT=rfc822;", "ORCPT=rfc822;a+0Ab"}) {
    EXPECT_EQ(ParseRcptArgument(std::string("TO:<c@d.example> ") + bad, &rcpt),
              ArgError::kParamSyntax)
        << bad;
  }
  EXPECT_EQ(ParseRcptArgument("TO:<c@d.example> NOTIFY=NEVER NOTIFY=NEVER", &rcpt),
            ArgError::kParamDuplicate);
  EXPECT_EQ(ParseRcptArgument("TO:<c@d.example> XFOO=1", &rcpt), ArgError::kParamUnknown);
}

TEST(Xtext, EncodeDecodeRoundTrip) {
  const std::string text = "a+b=c d\x01\xc3\xa9~";
  const std::string encoded = EncodeXtext(text);
  EXPECT_EQ(encoded, "a+2Bb+3Dc+20d+01+C3+A9~");
  std::string decoded;
  ASSERT_TRUE(DecodeXtext(encoded, &decoded));
  EXPECT_EQ(decoded, text);
}

TEST(ParseMailArgument, Errors) {
  MailCommand mail;
  EXPECT_EQ(ParseMailArgument("TO:<a@b.example>", &mail), ArgError::kSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:a@b.example", &mail), ArgError::kSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example>SIZE=1", &mail), ArgError::kSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example", &mail), ArgError::kPathSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@@b.example>", &mail), ArgError::kPathSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<Postmaster>", &mail), ArgError::kPathSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> SIZE=abc", &mail), ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> SIZE=", &mail), ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> SIZE=99999999999999999999999", &mail),
            ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> SIZE=1 SIZE=2", &mail),
            ArgError::kParamDuplicate);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> BODY=BINARYMIME", &mail),
            ArgError::kParamUnknown);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> MT-PRIORITY=3", &mail), ArgError::kParamUnknown);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> SMTPUTF8=yes", &mail), ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> AUTH=+4", &mail), ArgError::kParamSyntax);
  EXPECT_EQ(ParseMailArgument("FROM:<a@b.example> =x", &mail), ArgError::kParamSyntax);
}

TEST(ParseRcptArgument, PathAndUnknownParams) {
  RcptCommand rcpt;
  ASSERT_EQ(ParseRcptArgument("TO:<x@y.example>", &rcpt), ArgError::kNone);
  EXPECT_EQ(rcpt.path.address, "x@y.example");
  ASSERT_EQ(ParseRcptArgument("To:<postmaster>", &rcpt), ArgError::kNone);
  EXPECT_EQ(ParseRcptArgument("TO:<>", &rcpt), ArgError::kNullNotAllowed);
  EXPECT_EQ(ParseRcptArgument("TO:<x@y.example> XNOTIFY=NEVER", &rcpt), ArgError::kParamUnknown);
  EXPECT_EQ(ParseRcptArgument("FROM:<x@y.example>", &rcpt), ArgError::kSyntax);
}

TEST(ParseBdatArgument, SizeAndLast) {
  uint64_t size = 0;
  bool last = true;
  ASSERT_TRUE(ParseBdatArgument("1024", &size, &last));
  EXPECT_EQ(size, 1024u);
  EXPECT_FALSE(last);
  ASSERT_TRUE(ParseBdatArgument("0 LAST", &size, &last));
  EXPECT_EQ(size, 0u);
  EXPECT_TRUE(last);
  ASSERT_TRUE(ParseBdatArgument("7 last", &size, &last));
  EXPECT_TRUE(last);
  EXPECT_FALSE(ParseBdatArgument("", &size, &last));
  EXPECT_FALSE(ParseBdatArgument("-1", &size, &last));
  EXPECT_FALSE(ParseBdatArgument("10 FIRST", &size, &last));
  EXPECT_FALSE(ParseBdatArgument("12345678901234567890", &size, &last));
  EXPECT_FALSE(ParseBdatArgument("1x", &size, &last));
}

TEST(Helo, Arguments) {
  EXPECT_TRUE(IsValidHeloArgument("client.example"));
  EXPECT_TRUE(IsValidHeloArgument("localhost"));
  EXPECT_TRUE(IsValidHeloArgument("[192.0.2.7]"));
  EXPECT_TRUE(IsValidHeloArgument("[IPv6:::1]"));
  EXPECT_TRUE(IsValidHeloArgument("fqdn.example."));
  EXPECT_FALSE(IsValidHeloArgument(""));
  EXPECT_FALSE(IsValidHeloArgument("bad name"));
  EXPECT_FALSE(IsValidHeloArgument("[1.2.3.4"));
  EXPECT_FALSE(IsValidHeloArgument("a_b.example"));
}

TEST(Xtext, Decodes) {
  std::string out;
  ASSERT_TRUE(DecodeXtext("a+2Bb+3D", &out));
  EXPECT_EQ(out, "a+b=");
  EXPECT_FALSE(DecodeXtext("a+2", &out));
  EXPECT_FALSE(DecodeXtext("a+zz", &out));
  EXPECT_FALSE(DecodeXtext("a b", &out));
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo"));
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
}

}  // namespace
}  // namespace relay::smtp
