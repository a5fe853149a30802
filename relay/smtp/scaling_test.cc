// The SMTP parsers are linear in what the peer sends, however it cuts it (issue 13 item 4): the
// server session fed a long line byte by byte or a long run of pipelined transactions while it
// waits for the queue, the reply parser fed a reply byte by byte, and the DotStuffer handing out a
// large message in small writes. Each test compares the CPU time of an input with that of one 8
// times larger (relay/base/scaling_test_util.h); quadratic code takes ~64 times.
#include <sys/uio.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/base/scaling_test_util.h"
#include "relay/smtp/client_reply.h"
#include "relay/smtp/dot_stuffer.h"
#include "relay/smtp/server_session.h"

namespace relay::smtp {
namespace {

using relay::testing::kLinearRatioMax;
using relay::testing::ScalingRatio;

class AcceptAll : public ServerPolicy {
 public:
  bool MaySendAs(std::string_view, std::string_view) override { return true; }
  RcptDecision CheckRecipient(std::string_view) override { return RcptDecision::kAccept; }
  void OnMailFrom(std::string_view) override {}
};

ServerConfig BigLines() {
  ServerConfig c;
  c.hostname = "mx.test";
  c.auth_required = false;
  c.limits.errors_max = 1000000;
  // The largest lines the config allows ([limits] in relay/server/config.cc): an operator may
  // raise them, and a line as long as that must not cost its length squared.
  c.limits.command_line_bytes_max = 1 << 20;
  c.limits.data_line_bytes_max = 1 << 24;
  c.limits.message_bytes_max = 1u << 30;
  c.limits.input_buffered_bytes_max = 8 << 20;
  return c;
}

// Feeds `bytes` one byte per OnBytes, as a client dripping a line does.
void Drip(ServerSession& session, std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) session.OnBytes(bytes.substr(i, 1));
}

TEST(SmtpScaling, CommandLineDrippedByteByByteIsLinear) {
  double ratio = ScalingRatio([](size_t n) { return "NOOP " + std::string(n, 'a') + "\r\n"; },
                              [](const std::string& line) {
                                AcceptAll policy;
                                ServerSession session(BigLines(), &policy);
                                session.OnConnected("192.0.2.1", false);
                                Drip(session, line);
                                ASSERT_FALSE(session.mid_command());
                              },
                              64 * 1024);
  EXPECT_LT(ratio, kLinearRatioMax);
}

TEST(SmtpScaling, DataLineDrippedByteByByteIsLinear) {
  double ratio = ScalingRatio([](size_t n) { return std::string(n, 'a') + "\r\n.\r\n"; },
                              [](const std::string& body) {
                                AcceptAll policy;
                                ServerSession session(BigLines(), &policy);
                                session.OnConnected("192.0.2.1", false);
                                session.OnBytes("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
                                session.OnBytes("RCPT TO:<c@d.example>\r\nDATA\r\n");
                                ASSERT_TRUE(session.in_data());
                                Drip(session, body);
                                ASSERT_TRUE(session.paused());  // the message is complete
                                ASSERT_EQ(session.message().size(), body.size() - 3);
                              },
                              64 * 1024);
  EXPECT_LT(ratio, kLinearRatioMax);
}

// `n` pipelined one-line transactions, all sent while the first message waits for the queue:
// each queued message resumes the buffered input.
constexpr std::string_view kTransaction =
    "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\r\n.\r\n";

std::string Transactions(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += kTransaction;
  return out;
}

TEST(SmtpScaling, PipelinedTransactionsBufferedWhilePausedAreLinear) {
  double ratio = ScalingRatio(
      Transactions,
      [](const std::string& input) {
        AcceptAll policy;
        ServerSession session(BigLines(), &policy);
        session.OnConnected("192.0.2.1", false);
        session.OnBytes("EHLO c.example\r\n");
        const ServerActions* a = &session.OnBytes(input);
        size_t queued = 0;
        while (a->message_ready) {
          ++queued;
          a = &session.OnMessageQueued("Q");
        }
        ASSERT_EQ(queued * kTransaction.size(), input.size());
      },
      8000);
  EXPECT_LT(ratio, kLinearRatioMax);
}

TEST(SmtpScaling, ReplyDrippedByteByByteIsLinear) {
  double ratio = ScalingRatio([](size_t n) { return "250 " + std::string(n, 'a') + "\r\n"; },
                              [](const std::string& reply) {
                                ReplyLimits limits;
                                limits.reply_line_bytes_max = 1 << 20;
                                limits.reply_bytes_max = 1 << 20;
                                ReplyParser parser(limits);
                                ServerReply out;
                                ReplyParser::Status status = ReplyParser::Status::kNeedMore;
                                for (size_t i = 0; i < reply.size(); ++i) {
                                  parser.Feed(std::string_view(reply).substr(i, 1));
                                  status = parser.Next(&out);
                                }
                                ASSERT_EQ(status, ReplyParser::Status::kReply);
                              },
                              64 * 1024);
  EXPECT_LT(ratio, kLinearRatioMax);
}

// Lines that never start with ".", handed out in writes of 512 bytes, one segment each.
TEST(SmtpScaling, DotStufferIsLinearInTheMessage) {
  double ratio = ScalingRatio(
      [](size_t n) {
        std::string m;
        while (m.size() < n) m += "A line of the message that does not start with a dot.\r\n";
        return m;
      },
      [](const std::string& message) {
        DotStuffer stuffer(message);
        iovec iov[1];
        size_t total = 0;
        while (!stuffer.done()) {
          ASSERT_EQ(stuffer.Fill(iov, 1, 512), 1u);
          total += iov[0].iov_len;
        }
        ASSERT_EQ(total, message.size() + 3);
      },
      4 << 20);
  EXPECT_LT(ratio, kLinearRatioMax);
}

}  // namespace
}  // namespace relay::smtp
