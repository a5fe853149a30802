#include "relay/delivery/dsn.h"

#include <string>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

constexpr int64_t kNow = 1763840000;  // 2025-11-22

DsnRequest Request() {
  DsnRequest r;
  r.kind = DsnKind::kFailure;
  r.reporting_mta = "relay.example.net";
  r.envelope_sender = "sender@example.org";
  r.queue_id = "Q0001a";
  r.arrival_unix_s = kNow - 3600;
  r.now_unix_s = kNow;
  DsnRecipient a;
  a.final_recipient = "nobody@gmail.com";
  a.status = "5.1.1";
  a.remote_mta = "gmail-smtp-in.l.google.com";
  a.reply_code = 550;
  a.reply_enhanced = "5.1.1";
  a.reply_text = "The email account that you tried to reach does not exist.";
  a.last_attempt_unix_s = kNow - 5;
  a.category = "bad-mailbox";
  r.recipients.push_back(a);
  r.original_message =
      "From: Sender <sender@example.org>\r\nTo: nobody@gmail.com\r\nSubject: hello\r\n"
      "Message-ID: <m1@example.org>\r\n\r\nbody line\r\n";
  return r;
}

// Every line ends with CRLF and holds at most 998 octets.
void ExpectWellFormedLines(const std::string& data) {
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(data.substr(data.size() - 2), "\r\n");
  size_t pos = 0;
  while (pos < data.size()) {
    size_t eol = data.find("\r\n", pos);
    ASSERT_NE(eol, std::string::npos);
    std::string line = data.substr(pos, eol - pos);
    EXPECT_LE(line.size(), 998u);
    EXPECT_EQ(line.find('\r'), std::string::npos);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    pos = eol + 2;
  }
}

TEST(Dsn, FailureHasEnvelopeAndFields) {
  auto dsn = BuildDsn(Request());
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  EXPECT_EQ(dsn->mail_from, "");
  EXPECT_EQ(dsn->rcpt_to, "sender@example.org");
  EXPECT_FALSE(dsn->needs_8bitmime);
  const std::string& d = dsn->data;
  ExpectWellFormedLines(d);
  for (const char* expected : {
           "From: Mail Delivery System <MAILER-DAEMON@relay.example.net>\r\n",
           "To: <sender@example.org>\r\n",
           "Auto-Submitted: auto-replied\r\n",
           "Content-Type: multipart/report; report-type=delivery-status;",
           "Reporting-MTA: dns; relay.example.net\r\n",
           "Arrival-Date: Sat, 22 Nov 2025 18:33:20 +0000\r\n",
           "Final-Recipient: rfc822; nobody@gmail.com\r\n",
           "Action: failed\r\n",
           "Status: 5.1.1\r\nX-Bounce-Category: bad-mailbox\r\n",
           "does not exist. (bad-mailbox)\r\n",
           "Remote-MTA: dns; gmail-smtp-in.l.google.com\r\n",
           "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach\r\n does",
           "Last-Attempt-Date: Sat, 22 Nov 2025 19:33:15 +0000\r\n",
           "Content-Type: text/rfc822-headers\r\n",
           "Subject: hello\r\nMessage-ID: <m1@example.org>\r\n",
       }) {
    EXPECT_NE(d.find(expected), std::string::npos) << expected << "\n---\n" << d;
  }
  EXPECT_EQ(d.find("body line"), std::string::npos);  // headers only
  EXPECT_EQ(d.find("Will-Retry-Until"), std::string::npos);
}

TEST(Dsn, NeverForANullSender) {
  DsnRequest r = Request();
  r.envelope_sender = "";
  auto dsn = BuildDsn(r);
  ASSERT_FALSE(dsn.ok());
  EXPECT_EQ(dsn.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Dsn, StatusClassMustMatchKind) {
  DsnRequest r = Request();
  r.recipients[0].status = "4.2.2";
  EXPECT_EQ(BuildDsn(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.kind = DsnKind::kDelay;
  EXPECT_TRUE(BuildDsn(r).ok());
  r.recipients[0].status = "4.2";
  EXPECT_EQ(BuildDsn(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.recipients.clear();
  EXPECT_EQ(BuildDsn(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Request();
  r.envelope_sender = "a@b\r\nBcc: victim@example.com";
  EXPECT_EQ(BuildDsn(r).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Dsn, DelayVariant) {
  DsnRequest r = Request();
  r.kind = DsnKind::kDelay;
  r.recipients[0].status = "4.7.0";
  r.recipients[0].reply_code = 421;
  r.recipients[0].reply_enhanced = "4.7.0";
  r.recipients[0].reply_text = "Try again later";
  r.recipients[0].will_retry_until_unix_s = kNow + 4 * 86400;
  auto dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  ExpectWellFormedLines(dsn->data);
  EXPECT_NE(dsn->data.find("Action: delayed\r\n"), std::string::npos);
  EXPECT_NE(dsn->data.find("Will-Retry-Until: Wed, 26 Nov 2025 19:33:20 +0000\r\n"),
            std::string::npos);
  EXPECT_NE(dsn->data.find("Subject: Delayed Mail"), std::string::npos);
}

// NOTIFY=SUCCESS delivered to a server without DSN (RFC 3461 §6.2.3.1), with the sender's ENVID
// and ORCPT named (§4.4, §4.2).
TEST(Dsn, RelayedVariantWithEnvidAndOrcpt) {
  DsnRequest r = Request();
  r.kind = DsnKind::kRelayed;
  r.envelope_id = "batch-7";
  r.recipients[0].status = "2.0.0";
  r.recipients[0].reply_code = 250;
  r.recipients[0].reply_enhanced = "2.0.0";
  r.recipients[0].reply_text = "OK queued";
  r.recipients[0].category.clear();
  r.recipients[0].original_recipient = "rfc822;Nobody@Gmail.com";
  auto dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  ExpectWellFormedLines(dsn->data);
  for (const char* field :
       {"Action: relayed\r\n", "Status: 2.0.0\r\n", "Original-Envelope-Id: batch-7\r\n",
        "Original-Recipient: rfc822; Nobody@Gmail.com\r\n", "Subject: Successful Mail Relay",
        "Content-Type: text/rfc822-headers"}) {
    EXPECT_NE(dsn->data.find(field), std::string::npos) << field;
  }
  r.recipients[0].status = "5.0.0";
  EXPECT_FALSE(BuildDsn(r).ok()) << "a relayed DSN's status is 2.x.x";
}

// RET=FULL (RFC 3461 §4.3): a failure returns the whole message as message/rfc822.
TEST(Dsn, ReturnFullCarriesTheBody) {
  DsnRequest r = Request();
  r.return_full = true;
  auto dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  ExpectWellFormedLines(dsn->data);
  EXPECT_NE(dsn->data.find("Content-Type: message/rfc822\r\n"), std::string::npos);
  EXPECT_NE(dsn->data.find("body line\r\n"), std::string::npos);
  EXPECT_NE(dsn->data.find("The message is attached below."), std::string::npos);
  r.return_full = false;
  dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok());
  EXPECT_EQ(dsn->data.find("body line"), std::string::npos);
  EXPECT_NE(dsn->data.find("Content-Type: text/rfc822-headers\r\n"), std::string::npos);
}

TEST(Dsn, LongAndHostileInputStaysWithinLineLimits) {
  DsnRequest r = Request();
  r.recipients[0].reply_text =
      std::string(3000, 'x') + " and\r\nmore\x01 \xff text " + std::string(200, 'y');
  DsnRecipient b = r.recipients[0];
  b.final_recipient = "second@gmail.com";
  b.reply_text = "";
  b.reply_code = 0;
  b.explanation = "the domain accepts no mail (null MX, RFC 7505)";
  r.recipients.push_back(b);
  std::string original = "Subject: " + std::string(2500, 's') +
                         "\nX-Bare-LF: yes\rX-Bare-CR: yes"
                         "\r\nX-8bit: caf\xc3\xa9\r\n\r\nbody";
  r.original_message = original;
  auto dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  ExpectWellFormedLines(dsn->data);
  EXPECT_TRUE(dsn->needs_8bitmime);
  EXPECT_NE(dsn->data.find("Content-Transfer-Encoding: 8bit\r\n"), std::string::npos);
  EXPECT_NE(dsn->data.find("X-Bare-LF: yes\r\nX-Bare-CR: yes\r\n"), std::string::npos);
  // The machine-readable part stays 7-bit: control and 8-bit bytes in the reply are replaced.
  size_t status_part = dsn->data.find("Content-Type: message/delivery-status");
  size_t headers_part = dsn->data.find("Content-Type: text/rfc822-headers");
  std::string machine = dsn->data.substr(status_part, headers_part - status_part);
  for (unsigned char c : machine) EXPECT_LT(c, 0x80);
  EXPECT_NE(machine.find("Final-Recipient: rfc822; second@gmail.com"), std::string::npos);
}

TEST(Dsn, BoundaryNeverOccursInContent) {
  DsnRequest r = Request();
  std::string original = "X-Trap: --=_dsn_Q0001a_1763840000\r\n\r\n";
  r.original_message = original;
  auto dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok());
  EXPECT_NE(dsn->data.find("boundary=\"=_dsn_Q0001a_1763840000_0\""), std::string::npos);
}

// A remote MX's reply is quoted in both report parts; it knows the queue id (from the Received
// field of the message it got) and roughly the time, so it can write the boundary. Holding it
// would end the report early and add parts of its own.
TEST(Dsn, BoundaryNeverOccursInQuotedReplies) {
  DsnRequest r = Request();
  r.recipients[0].reply_text =
      "no --=_dsn_Q0001a_1763840000-- --=_dsn_Q0001a_1763840000 Content-Type: text/html";
  r.recipients[0].explanation = "--=_dsn_Q0001a_1763840000_0";
  auto dsn = BuildDsn(r);
  ASSERT_TRUE(dsn.ok());
  const std::string boundary = "=_dsn_Q0001a_1763840000_0_1";
  EXPECT_NE(dsn->data.find("boundary=\"" + boundary + "\""), std::string::npos);
  // The header parameter, three delimiters and the close: nowhere else.
  size_t count = 0;
  for (size_t at = dsn->data.find(boundary); at != std::string::npos;
       at = dsn->data.find(boundary, at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 5u);
}

TEST(Dsn, HeaderSection) {
  EXPECT_EQ(HeaderSection("A: 1\r\nB: 2\r\n\r\nbody"), "A: 1\r\nB: 2\r\n");
  EXPECT_EQ(HeaderSection("A: 1\nB: 2\n\nbody"), "A: 1\nB: 2\n");
  EXPECT_EQ(HeaderSection("A: 1\r\n"), "A: 1\r\n");
  EXPECT_EQ(HeaderSection("\r\nbody"), "");
}

}  // namespace
}  // namespace relay::delivery
