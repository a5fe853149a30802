#include "relay/feedback/report_parser.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::feedback {
namespace {

std::string TestdataPath(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  const std::string relative = "relay/feedback/testdata/reports/" + name;
  if (srcdir == nullptr || workspace == nullptr) return relative;
  return std::string(srcdir) + "/" + workspace + "/" + relative;
}

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(TestdataPath(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << TestdataPath(name);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The same message with bare LF line ends and with CRLF: both arrive (CRLF on the wire, LF from
// a local pipe), and the parser must give the same fields.
std::string WithLf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c != '\r') out += c;
  }
  return out;
}

std::string WithCrlf(const std::string& s) {
  std::string out;
  for (char c : WithLf(s)) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

struct Case {
  const char* file;
  const char* envelope_sender;
  ParsedReport expected;
};

const ReportedRecipient Failed(const char* final_recipient, int code, const char* enhanced,
                               const char* diagnostic) {
  return {.final_recipient = final_recipient,
          .action = "failed",
          .status = enhanced,
          .code = code,
          .enhanced = enhanced,
          .diagnostic = diagnostic};
}

// Each sample with every field it must give; a field not named here must be empty.
std::vector<Case> Cases() {
  return {
      {"01-postfix-dsn.eml",
       "",
       {.kind = ReportKind::kDsn,
        .recipients = {{.final_recipient = "jane.doe@example.org",
                        .original_recipient = "Jane.Doe@example.org",
                        .action = "failed",
                        .status = "5.1.1",
                        .code = 550,
                        .enhanced = "5.1.1",
                        .diagnostic = "550 5.1.1 <jane.doe@example.org>: Recipient address "
                                      "rejected: User unknown in virtual mailbox table",
                        .remote_mta = "mx1.example.org"}},
        .original_message_id = "20240514.091238.abc123@shop.example.com",
        .original_return_path = "bounces+k7q2mzt5@bounce.relay.example.net",
        .candidate_addresses = {"jane.doe@example.org",
                                "bounces+k7q2mzt5@bounce.relay.example.net"}}},
      {"02-gmail-dsn-folded.eml",
       "<>",
       {.kind = ReportKind::kDsn,
        .recipients = {{.final_recipient = "no.such.user@gmail.com",
                        .action = "failed",
                        .status = "5.1.1",
                        .code = 550,
                        .enhanced = "5.1.1",
                        .diagnostic =
                            "550-5.1.1 The email account that you tried to reach does not exist. "
                            "Please try double-checking the recipient's email address for typos "
                            "or unnecessary spaces. For more information, go to "
                            "https://support.google.com/mail/?p=NoSuchUser "
                            "d9443c01a7336-1f2b3c4d5e6si123456ad.2 - gsmtp",
                        .remote_mta = "gmail-smtp-in.l.google.com. (142.250.102.27, the server "
                                      "for the domain gmail.com.)"}},
        .original_message_id = "CAF1a2b3c4d5e6f7g8@relay.example.net",
        .original_return_path = "bounces+p3xw9rtq@bounce.relay.example.net",
        .candidate_addresses = {"no.such.user@gmail.com",
                                "bounces+p3xw9rtq@bounce.relay.example.net"}}},
      {"03-exchange-global-dsn-base64.eml",
       "",
       {.kind = ReportKind::kDsn,
        .recipients = {{.final_recipient = "bob@contoso.com",
                        .original_recipient = "Bob@Contoso.com",
                        .action = "failed",
                        .status = "5.1.10",
                        .code = 550,
                        .enhanced = "5.1.10",
                        .diagnostic = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient "
                                      "bob@contoso.com not found by SMTP address lookup",
                        .remote_mta = "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"}},
        .original_message_id = "invoice-77@shop.example.com",
        .original_return_path = "bounces+z5n8b1vy@bounce.relay.example.net",
        .candidate_addresses = {"bob@contoso.com", "accounts@contoso.com",
                                "bounces+z5n8b1vy@bounce.relay.example.net"}}},
      {"04-qmail.eml",
       "",
       {.kind = ReportKind::kBounceText,
        .recipients = {Failed("user@example.com", 550, "5.1.1",
                              "Remote host said: 550 5.1.1 <user@example.com>... User unknown"),
                       Failed("olduser@example.com", 0, "5.1.1",
                              "Sorry, no mailbox here by that name. (#5.1.1)")},
        .original_message_id = "order-4711@shop.example.com",
        .original_return_path = "bounces+r8v1nq0c@bounce.relay.example.net",
        .candidate_addresses = {"user@example.com", "olduser@example.com",
                                "bounces+r8v1nq0c@bounce.relay.example.net"}}},
      {"05-exim.eml",
       "",
       {.kind = ReportKind::kBounceText,
        .recipients = {Failed("someone@example.com", 550, "5.1.1",
                              "550 5.1.1 <someone@example.com>: Recipient address rejected: User "
                              "unknown in local recipient table")},
        .original_message_id = "mail-1234@relay.example.net",
        .original_return_path = "bounces+t4m9xk2w@bounce.relay.example.net",
        .candidate_addresses = {"someone@example.com",
                                "bounces+t4m9xk2w@bounce.relay.example.net"}}},
      {"06-postfix-old-text.eml",
       "MAILER-DAEMON@mail.example.org",
       {.kind = ReportKind::kBounceText,
        .recipients = {Failed("carol@example.com", 550, "5.1.1",
                              "host mx.example.com[192.0.2.33] said: 550 5.1.1 "
                              "<carol@example.com>... User unknown (in reply to RCPT TO command)"),
                       Failed("dave@example.com", 452, "4.2.2",
                              "host mx.example.com[192.0.2.33] said: 452 4.2.2 "
                              "<dave@example.com>... Mailbox full (in reply to RCPT TO command)")},
        .original_message_id = "offers-0518@shop.example.com",
        .original_return_path = "bounces+u6d3fp4a@bounce.relay.example.net",
        .candidate_addresses = {"carol@example.com", "dave@example.com",
                                "bounces+u6d3fp4a@bounce.relay.example.net"}}},
      {"07-delayed-dsn.eml",
       "",
       {.kind = ReportKind::kDsn,
        .recipients = {{.final_recipient = "erin@example.com",
                        .original_recipient = "erin@example.com",
                        .action = "delayed",
                        .status = "4.4.1",
                        .enhanced = "4.4.1",
                        .diagnostic = "connect to mx.example.com[192.0.2.50]:25: Connection "
                                      "timed out"},
                       {.final_recipient = "frank@example.com",
                        .original_recipient = "frank@example.com",
                        .action = "delayed",
                        .status = "4.2.2",
                        .code = 452,
                        .enhanced = "4.2.2",
                        .diagnostic = "452 4.2.2 Mailbox full",
                        .remote_mta = "mx.example.com"}},
        .original_message_id = "parcel-9@shop.example.com",
        .original_return_path = "bounces+y1h7ge3s@bounce.relay.example.net",
        .candidate_addresses = {"erin@example.com", "frank@example.com",
                                "bounces+y1h7ge3s@bounce.relay.example.net"}}},
      {"08-yahoo-arf.eml",
       "feedback@arf.mail.yahoo.com",
       {.kind = ReportKind::kComplaint,
        .feedback_type = "abuse",
        .user_agent = "Yahoo!-Mail-Feedback/2.0",
        .original_mail_from = "bounces+w2c6hj8d@bounce.relay.example.net",
        .original_rcpt_to = "grace@yahoo.com",
        .source_ip = "203.0.113.10",
        .arrival_date = "Sun, 19 May 2024 07:59:58 +0000",
        .reported_domain = "shop.example.com",
        .original_message_id = "sale-2024-05@shop.example.com",
        .original_return_path = "bounces+w2c6hj8d@bounce.relay.example.net",
        .candidate_addresses = {"grace@yahoo.com", "bounces+w2c6hj8d@bounce.relay.example.net"}}},
      {"09-microsoft-jmrp-arf.eml",
       "staff@hotmail.com",
       {.kind = ReportKind::kComplaint,
        .feedback_type = "abuse",
        .user_agent = "Microsoft JMRP/1.0",
        .original_mail_from = "bounces+q9f4le7x@bounce.relay.example.net",
        .original_rcpt_to = "heidi@outlook.com",
        .source_ip = "2001:db8::10",
        .arrival_date = "Mon, 20 May 2024 12:34:56 +0000",
        .reported_domain = "shop.example.com",
        .original_message_id = "chance-0520@shop.example.com",
        .original_return_path = "bounces+q9f4le7x@bounce.relay.example.net",
        .candidate_addresses = {"heidi@outlook.com", "bounces+q9f4le7x@bounce.relay.example.net",
                                "team@shop.example.com", "ivan@outlook.com"}}},
      {"10-vacation-rfc3834.eml",
       "",
       {.kind = ReportKind::kAutoReply, .why = "Auto-Submitted: auto-replied"}},
      {"11-outlook-automatic-reply.eml",
       "<>",
       {.kind = ReportKind::kAutoReply, .why = "subject: Automatic reply"}},
      {"12-plain-message.eml",
       "kim@example.com",
       {.kind = ReportKind::kUnknown, .why = "no report part"}},
      {"13-truncated-multipart.eml",
       "",
       {.kind = ReportKind::kDsn,
        .recipients = {{.final_recipient = "liam@example.com",
                        .action = "failed",
                        .status = "5.2.1",
                        .code = 550,
                        .enhanced = "5.2.1",
                        .diagnostic = "550 5.2.1 Mailbox disabled"}},
        .original_return_path = "bounces+d4m1xz8q@bounce.relay.example.net",
        .candidate_addresses = {"liam@example.com", "bounces+d4m1xz8q@bounce.relay.example.net"}}},
      // The declared boundary never comes: the body is read as the bounce's text.
      {"14-damaged-boundary.eml",
       "",
       {.kind = ReportKind::kBounceText,
        .recipients = {Failed("mia@example.com", 554, "5.7.1",
                              "host mx.example.com[192.0.2.61] said: 554 5.7.1 Service "
                              "unavailable; Client host [203.0.113.10] blocked using "
                              "zen.spamhaus.org")},
        .candidate_addresses = {"mia@example.com"}}},
  };
}

void ExpectSame(const ParsedReport& want, const ParsedReport& got) {
  EXPECT_EQ(ReportKindName(want.kind), ReportKindName(got.kind));
  ASSERT_EQ(want.recipients.size(), got.recipients.size());
  for (size_t i = 0; i < want.recipients.size(); ++i) {
    SCOPED_TRACE("recipient " + std::to_string(i));
    const ReportedRecipient& w = want.recipients[i];
    const ReportedRecipient& g = got.recipients[i];
    EXPECT_EQ(w.final_recipient, g.final_recipient);
    EXPECT_EQ(w.original_recipient, g.original_recipient);
    EXPECT_EQ(w.action, g.action);
    EXPECT_EQ(w.status, g.status);
    EXPECT_EQ(w.code, g.code);
    EXPECT_EQ(w.enhanced, g.enhanced);
    EXPECT_EQ(w.diagnostic, g.diagnostic);
    EXPECT_EQ(w.remote_mta, g.remote_mta);
  }
  EXPECT_EQ(want.feedback_type, got.feedback_type);
  EXPECT_EQ(want.user_agent, got.user_agent);
  EXPECT_EQ(want.original_mail_from, got.original_mail_from);
  EXPECT_EQ(want.original_rcpt_to, got.original_rcpt_to);
  EXPECT_EQ(want.source_ip, got.source_ip);
  EXPECT_EQ(want.arrival_date, got.arrival_date);
  EXPECT_EQ(want.reported_domain, got.reported_domain);
  EXPECT_EQ(want.original_message_id, got.original_message_id);
  EXPECT_EQ(want.original_return_path, got.original_return_path);
  EXPECT_EQ(want.candidate_addresses, got.candidate_addresses);
  EXPECT_EQ(want.why, got.why);
}

TEST(ReportParserTest, Samples) {
  for (const Case& c : Cases()) {
    const std::string message = ReadTestdata(c.file);
    ASSERT_FALSE(message.empty()) << c.file;
    for (const bool crlf : {false, true}) {
      SCOPED_TRACE(std::string(c.file) + (crlf ? " (CRLF)" : " (LF)"));
      ExpectSame(c.expected,
                 ParseReport(crlf ? WithCrlf(message) : WithLf(message), c.envelope_sender));
    }
  }
}

TEST(ReportParserTest, KindNames) {
  EXPECT_EQ(ReportKindName(ReportKind::kUnknown), "unknown");
  EXPECT_EQ(ReportKindName(ReportKind::kDsn), "dsn");
  EXPECT_EQ(ReportKindName(ReportKind::kBounceText), "bounce-text");
  EXPECT_EQ(ReportKindName(ReportKind::kComplaint), "complaint");
  EXPECT_EQ(ReportKindName(ReportKind::kAutoReply), "auto-reply");
}

std::string Dsn(const std::string& recipient_blocks) {
  return "From: MAILER-DAEMON@mx.example.org\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n"
         "\n--b\nContent-Type: message/delivery-status\n\n"
         "Reporting-MTA: dns; mx.example.org\n\n" +
         recipient_blocks + "--b--\n";
}

TEST(ReportParserTest, RecipientsWithoutBlankLinesBetweenThem) {
  const ParsedReport r = ParseReport(Dsn("Final-Recipient: rfc822; a@example.com\n"
                                         "Action: failed\nStatus: 5.1.1\n"
                                         "Final-Recipient: rfc822; b@example.com\n"
                                         "Action: failed\nStatus: 5.2.2\n"),
                                     "");
  ASSERT_EQ(r.recipients.size(), 2u);
  EXPECT_EQ(r.recipients[0].final_recipient, "a@example.com");
  EXPECT_EQ(r.recipients[1].final_recipient, "b@example.com");
  EXPECT_EQ(r.recipients[1].enhanced, "5.2.2");
}

// Some MTAs label the part text/delivery-status, and some encode it.
TEST(ReportParserTest, TextDeliveryStatusQuotedPrintable) {
  const std::string message =
      "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
      "--b\nContent-Type: text/delivery-status\nContent-Transfer-Encoding: quoted-printable\n\n"
      "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; =\n"
      "<Ann=40example.com>\nAction: FAILED\nStatus: 5.7.1\n"
      "Diagnostic-Code: smtp; 554 Message rejected =3D spam\n\n--b--\n";
  const ParsedReport r = ParseReport(message, "");
  EXPECT_EQ(r.kind, ReportKind::kDsn);
  ASSERT_EQ(r.recipients.size(), 1u);
  EXPECT_EQ(r.recipients[0].final_recipient, "Ann@example.com");
  EXPECT_EQ(r.recipients[0].action, "failed");
  EXPECT_EQ(r.recipients[0].code, 554);
  EXPECT_EQ(r.recipients[0].enhanced, "5.7.1");
  EXPECT_EQ(r.recipients[0].diagnostic, "554 Message rejected = spam");
  EXPECT_EQ(r.candidate_addresses, std::vector<std::string>{"ann@example.com"});
}

TEST(ReportParserTest, LimitsRecipientsAndAddresses) {
  std::string blocks;
  for (int i = 0; i < 100; ++i) {
    blocks += "Final-Recipient: rfc822; user" + std::to_string(i) +
              "@example.com\nAction: failed\nStatus: 5.1.1\n\n";
  }
  ReportLimits limits;
  limits.recipients_max = 10;
  limits.addresses_max = 4;
  const ParsedReport r = ParseReport(Dsn(blocks), "", limits);
  EXPECT_EQ(r.kind, ReportKind::kDsn);
  EXPECT_EQ(r.recipients.size(), 10u);
  ASSERT_EQ(r.candidate_addresses.size(), 4u);
  EXPECT_EQ(r.candidate_addresses[3], "user3@example.com");
}

TEST(ReportParserTest, CutsFieldsAtUtf8Boundary) {
  // "é" is two bytes; a cut at an odd byte count must not split one.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "\xc3\xa9";
  ReportLimits limits;
  limits.field_bytes_max = 15;
  const ParsedReport r = ParseReport(Dsn("Final-Recipient: rfc822; a@example.com\nAction: failed\n"
                                         "Diagnostic-Code: smtp; 550 " +
                                         long_text + "\n"),
                                     "", limits);
  ASSERT_EQ(r.recipients.size(), 1u);
  EXPECT_EQ(r.recipients[0].diagnostic, "550 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
  EXPECT_EQ(r.recipients[0].code, 550);
}

TEST(ReportParserTest, DeepNestingStopsAtDepthMax) {
  // The delivery-status part five levels down is past depth_max (4): not read as a DSN.
  std::string message = "From: MAILER-DAEMON@mx.example.org\nSubject: x\n";
  std::string tail;
  for (int i = 0; i < 5; ++i) {
    message += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\n\n--b" +
               std::to_string(i) + "\n";
    tail = "--b" + std::to_string(i) + "--\n" + tail;
  }
  message +=
      "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.com\n"
      "Action: failed\n\n" +
      tail;
  EXPECT_NE(ParseReport(message, "").kind, ReportKind::kDsn);
  ReportLimits deeper;
  deeper.depth_max = 6;
  EXPECT_EQ(ParseReport(message, "", deeper).kind, ReportKind::kDsn);
}

TEST(ReportParserTest, PartsMaxBoundsThePartsLookedAt) {
  std::string message =
      "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n";
  for (int i = 0; i < 100; ++i) message += "--b\nContent-Type: text/plain\n\nfiller\n";
  message +=
      "--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; "
      "a@example.com\nAction: failed\n\n--b--\n";
  EXPECT_EQ(ParseReport(message, "").recipients.size(), 0u);
  ReportLimits more;
  more.parts_max = 200;
  EXPECT_EQ(ParseReport(message, "", more).kind, ReportKind::kDsn);
}

TEST(ReportParserTest, ComplaintNeedsFeedbackType) {
  const std::string message =
      "From: fbl@example.net\n"
      "Content-Type: multipart/report; report-type=feedback-report; boundary=\"x y\"\n\n"
      "--x y\nContent-Type: message/feedback-report\n\nUser-Agent: x/1\nVersion: 1\n"
      "Original-Rcpt-To: a@example.com\n\n--x y--\n";
  const ParsedReport r = ParseReport(message, "fbl@example.net");
  EXPECT_EQ(r.kind, ReportKind::kUnknown);
  EXPECT_EQ(r.why, "feedback-report part without Feedback-Type");
  EXPECT_TRUE(r.candidate_addresses.empty());
  EXPECT_TRUE(r.original_rcpt_to.empty());
}

TEST(ReportParserTest, AutoReplyHeaders) {
  struct {
    const char* header;
    const char* why;
  } cases[] = {
      {"X-Autoreply: yes", "X-Autoreply"},
      {"X-Autorespond: Out of office", "X-Autorespond"},
      {"Precedence: auto_reply", "Precedence: auto_reply"},
      {"Subject: Abwesenheitsnotiz: Ihre Rechnung", "subject: Abwesenheitsnotiz"},
      {"Subject: Out of Office: Re: hello", "subject: Out of Office"},
      {"Subject: Auto: hello", "subject: Auto:"},
  };
  for (const auto& c : cases) {
    const ParsedReport r =
        ParseReport(std::string("From: x@example.com\n") + c.header + "\n\nAway.\n", "");
    EXPECT_EQ(r.kind, ReportKind::kAutoReply) << c.header;
    EXPECT_EQ(r.why, c.why) << c.header;
  }
  // Not an auto-reply: a newsletter saying so, and an auto-reply signal that is "no".
  EXPECT_EQ(ParseReport("Subject: Automobile news\nX-Autoreply: no\n\nx\n", "").kind,
            ReportKind::kUnknown);
}

TEST(ReportParserTest, EmptyAndGarbage) {
  EXPECT_EQ(ParseReport("", "").kind, ReportKind::kUnknown);
  EXPECT_EQ(ParseReport("\n\n\n", "").kind, ReportKind::kUnknown);
  EXPECT_EQ(ParseReport("no header here at all\n@@@@\n", "").kind, ReportKind::kUnknown);
  EXPECT_EQ(ParseReport("Content-Type: multipart/report; boundary=\"\n\n--\n--\n", "").kind,
            ReportKind::kUnknown);
}

}  // namespace
}  // namespace relay::feedback
