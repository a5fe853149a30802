#include "bench/smtp_sink_session.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace bench {
namespace {

class Recorder : public SinkSessionDelegate {
 public:
  std::string OnMessage(const SinkEnvelope& envelope, std::string_view content) override {
    envelopes.push_back(envelope);
    contents.emplace_back(content);
    return next_verdict;
  }
  std::string OnRecipient(std::string_view address) override {
    return address == "reject@x.test" ? "550 5.1.1 No such user" : "";
  }
  std::vector<SinkEnvelope> envelopes;
  std::vector<std::string> contents;
  std::string next_verdict;
};

std::vector<std::string> Codes(const std::string& out) {
  std::vector<std::string> codes;
  for (absl::string_view line : absl::StrSplit(out, "\r\n", absl::SkipEmpty())) {
    if (line.size() >= 4 && line[3] == ' ') codes.emplace_back(line.substr(0, 3));
  }
  return codes;
}

// Feeds `wire` split at `split` (and at nothing when split == npos) and returns the replies.
std::string Feed(SinkSession& s, const std::string& wire, size_t split = std::string::npos) {
  std::string out;
  if (split == std::string::npos || split > wire.size()) {
    s.OnBytes(wire, &out);
  } else {
    s.OnBytes(std::string_view(wire).substr(0, split), &out);
    s.OnBytes(std::string_view(wire).substr(split), &out);
  }
  return out;
}

const char kPipelinedTwo[] =
    "EHLO client.test\r\n"
    "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
    "Subject: one\r\n\r\n..leading dot\r\n..\r\nnot the end\r\n.\r\n"
    "MAIL FROM:<>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n"
    "Subject: two\r\n\r\nbody\r\n.\r\n"
    "QUIT\r\n";

TEST(SinkSessionTest, PipelinedTransactionsAtEverySplitPoint) {
  const std::string wire = kPipelinedTwo;
  for (size_t split = 0; split <= wire.size(); ++split) {
    Recorder rec;
    SinkSession s(SinkSessionOptions(), &rec);
    std::string out = Feed(s, wire, split);
    EXPECT_EQ(Codes(out), (std::vector<std::string>{"250", "250", "250", "250", "354", "250", "250",
                                                    "250", "354", "250", "221"}))
        << "split " << split << "\n"
        << out;
    ASSERT_EQ(rec.contents.size(), 2u) << split;
    EXPECT_EQ(rec.contents[0], "Subject: one\r\n\r\n.leading dot\r\n.\r\nnot the end\r\n");
    EXPECT_EQ(rec.contents[1], "Subject: two\r\n\r\nbody\r\n");
    EXPECT_EQ(rec.envelopes[0].mail_from, "a@x.test");
    EXPECT_EQ(rec.envelopes[0].rcpt_to, (std::vector<std::string>{"b@y.test", "c@y.test"}));
    EXPECT_EQ(rec.envelopes[1].mail_from, "");
  }
}

TEST(SinkSessionTest, ByteByByte) {
  Recorder rec;
  SinkSession s(SinkSessionOptions(), &rec);
  std::string out;
  for (char c : std::string(kPipelinedTwo)) s.OnBytes(std::string_view(&c, 1), &out);
  EXPECT_EQ(rec.contents.size(), 2u);
  EXPECT_EQ(Codes(out).back(), "221");
}

TEST(SinkSessionTest, BareLfDotDoesNotEndData) {
  Recorder rec;
  SinkSession s(SinkSessionOptions(), &rec);
  std::string out = Feed(s,
                         "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                         "line\n.\nstill data\r\n.\r\n");
  ASSERT_EQ(rec.contents.size(), 1u);
  EXPECT_EQ(rec.contents[0], "line\n\nstill data\r\n");
}

TEST(SinkSessionTest, ChunksAcrossReadsAndInTheCommandRead) {
  const std::string wire =
      "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"
      "BDAT 10\r\n0123456789BDAT 6 LAST\r\n.\r\n.\r\nQUIT\r\n";
  for (size_t split = 0; split <= wire.size(); ++split) {
    Recorder rec;
    SinkSession s(SinkSessionOptions(), &rec);
    std::string out = Feed(s, wire, split);
    EXPECT_EQ(Codes(out), (std::vector<std::string>{"250", "250", "250", "250", "250", "221"}))
        << split << "\n"
        << out;
    ASSERT_EQ(rec.contents.size(), 1u);
    // BDAT content is taken raw: no dot-unstuffing, no end marker.
    EXPECT_EQ(rec.contents[0], "0123456789.\r\n.\r\n");
  }
}

TEST(SinkSessionTest, BdatWithoutRecipientsIsReadAndRefused) {
  Recorder rec;
  SinkSession s(SinkSessionOptions(), &rec);
  std::string out = Feed(s, "EHLO c\r\nBDAT 4 LAST\r\nQUITNOOP\r\n");
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"250", "503", "250"}));
  EXPECT_TRUE(rec.contents.empty());
}

TEST(SinkSessionTest, SequenceErrorsAndFailedRecipients) {
  Recorder rec;
  SinkSession s(SinkSessionOptions(), &rec);
  std::string out = Feed(s,
                         "MAIL FROM:<a@x>\r\nEHLO c\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                         "MAIL FROM:<a@x>\r\nRCPT TO:<reject@x.test>\r\nDATA\r\nRSET\r\n"
                         "FOO\r\nNOOP\r\n");
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"503", "250", "503", "503", "250", "550", "554",
                                                  "250", "500", "250"}));
  EXPECT_TRUE(rec.contents.empty());
}

TEST(SinkSessionTest, DelegateVerdictIsTheReply) {
  Recorder rec;
  rec.next_verdict = "451 4.7.28 try later";
  SinkSession s(SinkSessionOptions(), &rec);
  std::string out = Feed(s, "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\n");
  EXPECT_NE(out.find("\r\n451 4.7.28 try later\r\n"), std::string::npos) << out;
}

TEST(SinkSessionTest, OversizedMessageGets552) {
  Recorder rec;
  SinkSessionOptions options;
  options.message_bytes_max = 10;
  SinkSession s(options, &rec);
  std::string out = Feed(s,
                         "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                         "0123456789abcdef\r\n.\r\nNOOP\r\n");
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"250", "250", "250", "354", "552", "250"}));
  EXPECT_TRUE(rec.contents.empty());
}

TEST(SinkSessionTest, OverlongCommandLine) {
  Recorder rec;
  SinkSession s(SinkSessionOptions(), &rec);
  std::string out =
      Feed(s, std::string(SinkSession::kCommandLineBytesMax + 100, 'x') + "\r\nNOOP\r\n");
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"500", "250"}));
}

TEST(SinkSessionTest, AuthPlainRequiredWhenConfigured) {
  Recorder rec;
  SinkSessionOptions options;
  options.auth_user = "u";
  options.auth_password = "p";
  SinkSession s(options, &rec);
  std::string good = absl::Base64Escape(std::string("\0u\0p", 4));
  std::string bad = absl::Base64Escape(std::string("\0u\0wrong", 8));
  std::string out = Feed(s, "EHLO c\r\nMAIL FROM:<a@x>\r\nAUTH PLAIN " + bad +
                                "\r\nAUTH PLAIN\r\n" + good + "\r\nMAIL FROM:<a@x>\r\n");
  EXPECT_NE(out.find("250-AUTH PLAIN"), std::string::npos);
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"250", "530", "535", "334", "235", "250"}))
      << out;
}

TEST(SinkSessionTest, StartTlsDiscardsPipelinedBytesAndNeedsEhloAgain) {
  Recorder rec;
  SinkSessionOptions options;
  options.starttls = true;
  SinkSession s(options, &rec);
  std::string out;
  EXPECT_EQ(s.OnBytes("EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x>\r\n", &out),
            SinkSession::Action::kStartTls);
  EXPECT_NE(out.find("250-STARTTLS"), std::string::npos);
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"250", "220"}));
  s.TlsStarted();
  out.clear();
  EXPECT_EQ(s.OnBytes("MAIL FROM:<a@x>\r\nEHLO c\r\n", &out), SinkSession::Action::kContinue);
  EXPECT_EQ(Codes(out), (std::vector<std::string>{"503", "250"}));
  EXPECT_EQ(out.find("STARTTLS"), std::string::npos);
}

}  // namespace
}  // namespace bench
