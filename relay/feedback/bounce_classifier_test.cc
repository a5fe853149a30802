#include "relay/feedback/bounce_classifier.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/server/config/bounce_sections.h"

namespace relay::feedback {
namespace {

struct Case {
  int code;
  const char* enhanced;
  const char* text;
  const char* category;
};

// Replies as the big receivers and common MTAs send them (from their postmaster pages and from
// bounces seen in the wild), with the category a sender should act on.
const Case kRealReplies[] = {
    // Gmail
    {550, "5.1.1", "The email account that you tried to reach does not exist. Please try "
                   "double-checking the recipient's email address for typos or unnecessary spaces. "
                   "https://support.google.com/mail/?p=NoSuchUser", "bad-mailbox"},
    {550, "5.2.1", "The email account that you tried to reach is disabled. "
                   "https://support.google.com/mail/?p=DisabledUser", "inactive-mailbox"},
    {452, "4.2.2", "The email account that you tried to reach is over quota. Please direct the "
                   "recipient to https://support.google.com/mail/?p=OverQuotaTemp", "quota"},
    {552, "5.2.2", "The email account that you tried to reach is over quota and inactive.",
     "quota"},
    {450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents "
                   "additional messages from being delivered.", "rate-limited"},
    {550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC "
                    "policy. Please contact the administrator of example.com domain.",
     "auth-failure"},
    {550, "5.7.26", "This mail has been blocked because the sender is unauthenticated. Gmail "
                    "requires all senders to authenticate with either SPF or DKIM.",
     "auth-failure"},
    {421, "4.7.28", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail "
                    "originating from your IP address. To protect our users from spam, mail sent "
                    "from your IP address has been temporarily rate limited.", "rate-limited"},
    {421, "4.7.0", "[192.0.2.1] Our system has detected that this message is suspicious due to "
                   "the very low reputation of the sending IP address.", "spam-block"},
    {550, "5.7.1", "[192.0.2.1] Our system has detected that this message is likely unsolicited "
                   "mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
     "spam-content"},
    {552, "5.7.0", "This message was blocked because its content presents a potential security "
                   "issue.", "virus"},
    {550, "5.7.25", "[2001:db8::1] The IP address sending this message does not have a PTR record "
                    "setup, or the corresponding forward DNS entry does not point to the sending IP.",
     "policy"},
    {552, "5.3.4", "Your message exceeded Google's message size limits.", "too-large"},
    {421, "4.7.32", "Your email has been rate limited because the From: header (RFC5322) in this "
                    "message isn't aligned with either the authenticated SPF or DKIM organizational "
                    "domain.", "auth-failure"},
    // Yahoo and AOL
    {421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
                   "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     "rate-limited"},
    {421, "4.7.0", "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying "
                   "will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
     "spam-block"},
    {553, "5.7.2", "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying "
                   "will NOT succeed.", "spam-block"},
    {554, "", "delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) "
              "[0] - mta1234.mail.ne1.yahoo.com", "bad-mailbox"},
    {554, "", "delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. "
              "This mailbox is disabled (554.30). - mta1234.mail.ne1.yahoo.com",
     "inactive-mailbox"},
    {554, "5.7.9", "Message not accepted for policy reasons.  See "
                   "https://postmaster.yahooinc.com/error-codes", "spam-content"},
    {550, "5.7.9", "This mail has been blocked because the sender is unauthenticated. Yahoo "
                   "requires all senders to authenticate with either SPF or DKIM.",
     "auth-failure"},
    {553, "5.7.1", "[BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
                   "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
     "spam-block"},
    {552, "1", "Requested mail action aborted, mailbox not found", "bad-mailbox"},
    // Microsoft (Exchange Online, Outlook.com)
    {550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
                   "Internet service provider since part of their network is on our block list "
                   "(S3150). You can also refer your provider to "
                   "http://mail.live.com/mail/troubleshooting.aspx#errors.", "spam-block"},
    {550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
                   "Internet service provider. You can tell them that Hotmail does not relay "
                   "dynamically-assigned IP ranges. (S3140)", "spam-block"},
    {550, "5.7.708", "Service unavailable. Access denied, traffic not accepted from this IP. For "
                     "more information please go to http://go.microsoft.com/fwlink/?LinkId=526653",
     "spam-block"},
    {550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]. To request removal from this "
                     "list please visit https://sender.office.com/", "spam-block"},
    {451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP "
                     "reputation. For e-mail delivery information, see https://postmaster.live.com "
                     "(S775)", "rate-limited"},
    {451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77714) "
                     "[DM6NAM11FT041.eop-nam11.prod.protection.outlook.com]", "rate-limited"},
    {550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient someone@contoso.com not found by "
                    "SMTP address lookup", "bad-mailbox"},
    {550, "5.4.1", "Recipient address rejected: Access denied. For more information see "
                   "https://aka.ms/EXOSmtpErrors [BN8NAM12FT045.eop-nam12.prod.protection.outlook.com]",
     "bad-mailbox"},
    {550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302). "
                   "[AM4EUR03FT014.eop-EUR03.prod.protection.outlook.com]", "bad-mailbox"},
    {550, "5.7.509", "Access denied, sending domain example.com does not pass DMARC verification "
                     "and has a DMARC policy of reject.", "auth-failure"},
    {550, "5.7.515", "Access denied, sending domain example.com doesn't meet the required "
                     "authentication level.", "auth-failure"},
    {552, "5.2.2", "mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiException"
                   "QuotaExceeded", "quota"},
    {550, "5.7.520", "Access denied, Your organization does not allow external forwarding. Please "
                     "contact your administrator for further assistance. AS(7555)", "policy"},
    {554, "5.4.14", "Hop count exceeded - possible mail loop ATTR34", "routing"},
    {550, "5.4.310", "DNS domain example.invalid does not exist [Message=InfoDomainNonexistent]",
     "bad-domain"},
    // Apple iCloud
    {554, "5.7.1", "[CS01] Message rejected due to local policy. Please visit "
                   "https://support.apple.com/en-us/HT204137", "spam-content"},
    {554, "5.7.1", "[HM08] Message rejected due to local policy. Please visit "
                   "https://support.apple.com/en-us/HT204137", "spam-content"},
    // Postfix, Exim and appliances
    {550, "5.1.1", "<someone@example.org>: Recipient address rejected: User unknown in virtual "
                   "mailbox table", "bad-mailbox"},
    {550, "5.1.1", "<someone@example.org>: Recipient address rejected: User unknown in local "
                   "recipient table", "bad-mailbox"},
    {450, "4.2.0", "<someone@example.org>: Recipient address rejected: Greylisted, see "
                   "http://postgrey.schweikert.ch/help/example.org.html", "policy"},
    {554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
                   "https://www.spamhaus.org/query/ip/192.0.2.1", "spam-block"},
    {554, "5.7.1", "<someone@example.org>: Relay access denied", "routing"},
    {550, "", "Unrouteable address", "bad-domain"},
    {550, "", "No Such User Here", "bad-mailbox"},
    {550, "5.7.1", "Message rejected as spam by Content Filtering.", "spam-content"},
    {554, "5.7.0", "Reject, id=12345-01 - INFECTED: Eicar-Test-Signature", "virus"},
    {552, "5.3.4", "Message size exceeds fixed maximum message size", "too-large"},
    {452, "4.5.3", "Error: too many recipients", "rate-limited"},
    {553, "5.1.8", "<news@example.invalid>: Sender address rejected: Domain not found",
     "bad-domain"},
    {550, "5.1.7", "<>: invalid sender", "invalid-sender"},
    {550, "5.7.23", "The message was rejected because of Sender Policy Framework violation",
     "auth-failure"},
    {421, "4.3.2", "Service shutting down", "no-answer-from-host"},
    {500, "5.5.2", "Error: bad syntax", "protocol"},
    {503, "", "Bad sequence of commands", "protocol"},
    {550, "", "Administrative prohibition", "other"},
    {421, "", "Too many concurrent SMTP connections; please try again later.", "rate-limited"},
    // The relay's own reasons (code 0).
    {0, "", "no MX host of example.org could be reached; last error: connect to mx.example.org "
            "[192.0.2.25]: Connection refused", "no-answer-from-host"},
    {421, "4.4.2", "connection closed during delivery", "bad-connection"},
    {454, "4.7.0", "TLS handshake with mx.example.org [192.0.2.25] failed: certificate verify "
                   "failed", "bad-connection"},
};

TEST(BounceClassifier, ShippedRulesOnRealReplies) {
  const auto classifier = server::config::ShippedBounceClassifier();
  int wrong = 0;
  for (const Case& c : kRealReplies) {
    const ReplyToClassify reply{c.code, c.enhanced, c.text};
    const std::string_view got = CategoryName(classifier->Classify(reply));
    const BounceRule* rule = classifier->Match(reply);
    EXPECT_EQ(got, c.category) << c.code << " " << c.enhanced << " " << c.text << "\n  by "
                               << (rule == nullptr ? "no rule" : rule->name);
    wrong += got != c.category;
  }
  EXPECT_EQ(wrong, 0);
}

TEST(BounceClassifier, ConditionsAllHoldAndTheFirstRuleWins) {
  std::vector<BounceRule> rules(3);
  rules[0] = {BounceCategory::kSpamBlock, {550}, {"5.7.*"}, {"block(ed)?"}, "r0"};
  rules[1] = {BounceCategory::kPolicy, {}, {"*.7.1"}, {}, "r1"};
  rules[2] = {BounceCategory::kRateLimited, {421}, {}, {}, "r2"};
  auto c = BounceClassifier::Make(rules);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto& k = **c;
  EXPECT_EQ(k.Match({550, "5.7.1", "You are BLOCKED"}), &k.rules()[0]);  // case-insensitive
  EXPECT_EQ(k.Match({554, "5.7.1", "You are blocked"}), &k.rules()[1]);  // code differs: next rule
  EXPECT_EQ(k.Match({550, "5.7.1", "no"}), &k.rules()[1]);               // text differs
  EXPECT_EQ(k.Match({421, "", "x"}), &k.rules()[2]);
  EXPECT_EQ(k.Match({450, "4.2.0", "x"}), nullptr);
  EXPECT_EQ(k.Classify({450, "4.2.0", "x"}), BounceCategory::kOther);
  EXPECT_EQ(k.Match({550, "5.7", "blocked"}), nullptr);  // not an enhanced code: no match
}

TEST(BounceClassifier, AReplyNoRuleTakesGoesToTheFallback) {
  auto shipped = BounceClassifier::Make({{BounceCategory::kBadMailbox, {}, {}, {"unknown"}, "s0"}});
  ASSERT_TRUE(shipped.ok());
  auto c = BounceClassifier::Make({{BounceCategory::kSpamBlock, {}, {}, {"blocked"}, "c0"}}, *shipped);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Classify({550, "", "user unknown, blocked"}), BounceCategory::kSpamBlock);
  EXPECT_EQ((*c)->Classify({550, "", "user unknown"}), BounceCategory::kBadMailbox);
  EXPECT_EQ((*c)->Match({550, "", "user unknown"})->name, "s0");
  EXPECT_EQ((*c)->Classify({550, "", "nothing"}), BounceCategory::kOther);
}

TEST(BounceClassifier, BadRulesAreNamed) {
  BounceRule bad_re{BounceCategory::kOther, {}, {}, {"(unclosed"}, "bounces.rule[2]"};
  auto c = BounceClassifier::Make({bad_re});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bounces.rule[2].text: \"(unclosed\" is not a regular "
                                      "expression"),
            std::string::npos)
      << c.status();
  BounceRule bad_code{BounceCategory::kOther, {}, {"5.7"}, {}, "r"};
  c = BounceClassifier::Make({bad_code});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("r.enhanced: \"5.7\" is not an enhanced status code"),
            std::string::npos)
      << c.status();
  EXPECT_FALSE(BounceClassifier::Make({{BounceCategory::kOther, {99}, {}, {}, "r"}}).ok());
  EXPECT_FALSE(BounceClassifier::CheckEnhanced("3.1.1").ok());
  EXPECT_TRUE(BounceClassifier::CheckEnhanced("*.1.*").ok());
}

TEST(BounceClassifier, CategoryNamesRoundTrip) {
  for (int i = 0; i < kBounceCategoryCount; ++i) {
    const auto c = static_cast<BounceCategory>(i);
    EXPECT_EQ(CategoryNamed(CategoryName(c)), c);
  }
  EXPECT_FALSE(CategoryNamed("Bad-Mailbox").has_value());
}

}  // namespace
}  // namespace relay::feedback
