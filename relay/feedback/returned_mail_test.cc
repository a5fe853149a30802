#include "relay/feedback/returned_mail.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace relay::feedback {
namespace {

class ReturnedMailTest : public ::testing::Test {
 protected:
  ReturnedMailTest() {
    VerpOptions o;
    o.secrets = {"s3cret"};
    o.domains = {{"example.com", "bounce.example.com"}};
    verp_ = *Verp::Make(o);
    classifier_ = *BounceClassifier::Make(
        {BounceRule{BounceCategory::kBadMailbox, {}, {"5.1.1"}, {}, "test[0]"}});
    path_ = *verp_->ReturnPath("news@example.com", "ab-0-1f", 2, "gone@example.org");
  }

  static std::string Dsn(absl::string_view rcpt, absl::string_view action = "failed") {
    return absl::StrCat(
        "From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--B\r\n"
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; ",
        rcpt, "\r\nAction: ", action,
        "\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n--B--\r\n");
  }

  std::string Arf(absl::string_view rcpt, absl::string_view mail_from) {
    return absl::StrCat(
        "From: fbl@isp.example\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"
        "--F\r\nContent-Type: text/plain\r\n\r\nabuse report\r\n--F\r\n"
        "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n"
        "Original-Mail-From: <",
        mail_from, ">\r\nOriginal-Rcpt-To: <", rcpt,
        ">\r\n--F\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <m1@example.com>\r\nTo: ",
        rcpt, "\r\n\r\n--F--\r\n");
  }

  ReturnedMail Read(std::string_view message, std::vector<std::string> to) {
    return ReadReturnedMail(*verp_, *classifier_, nullptr, message, "", to);
  }

  std::unique_ptr<const Verp> verp_;
  std::shared_ptr<const BounceClassifier> classifier_;
  std::string path_;
};

TEST_F(ReturnedMailTest, DsnMatchedAndClassified) {
  ReturnedMail mail = Read(Dsn("Gone@example.org"), {path_});
  ASSERT_EQ(mail.items.size(), 1u) << mail.why;
  const ReturnedItem& item = mail.items[0];
  EXPECT_FALSE(item.complaint);
  EXPECT_EQ(item.tenant, "example.com");
  EXPECT_EQ(item.queue_id, "ab-0-1f");
  EXPECT_EQ(item.recipient_index, 2u);
  EXPECT_EQ(item.recipient, "gone@example.org");
  EXPECT_EQ(item.code, 550);
  EXPECT_EQ(item.enhanced, "5.1.1");
  EXPECT_EQ(item.category, BounceCategory::kBadMailbox);
  EXPECT_EQ(item.report, "dsn");
  std::vector<SuppressionEntry> entries =
      SuppressionsFor(mail, {BounceCategory::kBadMailbox}, true, 1000);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].address, "gone@example.org");
  EXPECT_EQ(entries[0].reason, SuppressionReason::kBounce);
  EXPECT_EQ(entries[0].category, "bad-mailbox");
  EXPECT_TRUE(SuppressionsFor(mail, {BounceCategory::kQuota}, true, 1000).empty());
}

TEST_F(ReturnedMailTest, ReportNamingAnotherAddressIsDropped) {
  // The token was made for gone@: a report about victim@ cannot suppress it.
  ReturnedMail mail = Read(Dsn("victim@example.org"), {path_});
  EXPECT_TRUE(mail.items.empty());
  EXPECT_EQ(mail.kind, ReportKind::kDsn);
  EXPECT_FALSE(mail.why.empty());
}

TEST_F(ReturnedMailTest, DelayNoticeIsNoBounce) {
  ReturnedMail mail = Read(Dsn("gone@example.org", "delayed"), {path_});
  EXPECT_TRUE(mail.items.empty());
}

TEST_F(ReturnedMailTest, ComplaintToLoopAddressMatchedByQuotedReturnPath) {
  ReturnedMail mail = Read(Arf("gone@example.org", path_), {"bounces@bounce.example.com"});
  ASSERT_EQ(mail.items.size(), 1u) << mail.why;
  EXPECT_TRUE(mail.items[0].complaint);
  EXPECT_EQ(mail.items[0].feedback_type, "abuse");
  EXPECT_EQ(mail.items[0].message_id, "m1@example.com");
  std::vector<SuppressionEntry> entries = SuppressionsFor(mail, {}, true, 1000);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, SuppressionReason::kComplaint);
  EXPECT_TRUE(SuppressionsFor(mail, {}, false, 1000).empty());
}

TEST_F(ReturnedMailTest, NotSpamIsNoComplaint) {
  std::string report = Arf("gone@example.org", path_);
  report.replace(report.find("Feedback-Type: abuse"), 20, "Feedback-Type: not-spam");
  ReturnedMail mail = Read(report, {path_});
  EXPECT_TRUE(mail.items.empty());
  EXPECT_TRUE(SuppressionsFor(mail, {}, true, 1000).empty());
}

TEST_F(ReturnedMailTest, OurRecipientDelayedBesideAnotherFailed) {
  // Two blocks: ours only delayed, another recipient failed. Ours is not bounced.
  std::string report = Dsn("gone@example.org", "delayed");
  const std::string other =
      "\r\n\r\nFinal-Recipient: rfc822; other@example.org\r\nAction: failed\r\n"
      "Status: 5.1.1\r\n";
  report.insert(report.find("\r\n--B--"), other);
  ReturnedMail mail = Read(report, {path_});
  EXPECT_TRUE(mail.items.empty()) << mail.items.size();
}

TEST_F(ReturnedMailTest, UnsubscribeByMailFromTheSubscriber) {
  UnsubscribeOptions o;
  o.secrets = {"s3cret"};
  o.base_url = "https://u.example.com";
  VerpOptions v;
  v.secrets = {"s3cret"};
  v.domains = {{"example.com", "bounce.example.com"}};
  auto links = *Unsubscribe::Make(o, std::shared_ptr<const Verp>(std::move(*Verp::Make(v))));
  const std::string fields = links->HeaderFields("example.com", "reader@example.org");
  const size_t at = fields.find("mailto:") + 7;
  const std::string mailto = fields.substr(at, fields.find('?', at) - at);
  ReturnedMail mail =
      ReadReturnedMail(*verp_, *classifier_, links.get(),
                       "From: Reader <Reader@example.org>\r\n\r\nstop\r\n", "", {mailto});
  ASSERT_EQ(mail.items.size(), 1u) << mail.why;
  EXPECT_TRUE(mail.items[0].unsubscribe);
  EXPECT_EQ(mail.items[0].recipient, "reader@example.org");
  std::vector<SuppressionEntry> entries = SuppressionsFor(mail, {}, false, 1000);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].reason, SuppressionReason::kUnsubscribe);
  // From someone else: nobody is unsubscribed.
  mail = ReadReturnedMail(*verp_, *classifier_, links.get(),
                          "From: other@example.org\r\n\r\nstop\r\n", "other@example.org", {mailto});
  EXPECT_TRUE(mail.items.empty());
}

TEST_F(ReturnedMailTest, AutoReplyAndPlainMailDropped) {
  ReturnedMail mail = Read(
      "From: gone@example.org\r\nSubject: Out of Office\r\nAuto-Submitted: auto-replied\r\n"
      "\r\nAway.\r\n",
      {path_});
  EXPECT_EQ(mail.kind, ReportKind::kAutoReply);
  EXPECT_TRUE(mail.items.empty());
  mail = Read("From: someone@example.org\r\nSubject: hi\r\n\r\nHello.\r\n", {path_});
  EXPECT_EQ(mail.kind, ReportKind::kUnknown);
  EXPECT_TRUE(mail.items.empty());
}

}  // namespace
}  // namespace relay::feedback
