#include "relay/smtp/dot_stuffer.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/smtp/server_session.h"

namespace relay::smtp {
namespace {

// The straightforward stuffing of RFC 5321 §4.5.2 over a copy, the reference for the segments.
std::string ReferenceStuff(std::string_view message) {
  std::string out;
  bool line_start = true;
  for (size_t i = 0; i < message.size(); ++i) {
    if (line_start && message[i] == '.') out.push_back('.');
    out.push_back(message[i]);
    line_start = message[i] == '\n' && i > 0 && message[i - 1] == '\r';
  }
  if (!message.empty() && (message.size() < 2 || message.substr(message.size() - 2) != "\r\n")) {
    out.append("\r\n");
  }
  out.append(".\r\n");
  return out;
}

// A reference unstuffer (§4.5.2, receiver side): returns the message up to the terminator.
std::string ReferenceUnstuff(std::string_view stream, bool* terminated) {
  std::string out;
  *terminated = false;
  size_t i = 0;
  while (i < stream.size()) {
    size_t eol = stream.find("\r\n", i);
    if (eol == std::string_view::npos) break;
    std::string_view line = stream.substr(i, eol - i);
    i = eol + 2;
    if (line == ".") {
      *terminated = i == stream.size();
      return out;
    }
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    out.append(line);
    out.append("\r\n");
  }
  return out;
}

std::string Drain(DotStuffer& stuffer, size_t segments_max, size_t bytes_max,
                  size_t* calls = nullptr) {
  std::string out;
  std::vector<iovec> iov(segments_max == 0 ? 1 : segments_max);
  size_t n_calls = 0;
  while (!stuffer.done()) {
    const size_t n = stuffer.Fill(iov.data(), segments_max, bytes_max);
    EXPECT_LE(n, segments_max);
    EXPECT_GT(n, 0u);
    size_t bytes = 0;
    for (size_t k = 0; k < n; ++k) {
      out.append(static_cast<const char*>(iov[k].iov_base), iov[k].iov_len);
      bytes += iov[k].iov_len;
    }
    EXPECT_LE(bytes, bytes_max);
    ++n_calls;
    if (n == 0) break;
  }
  if (calls != nullptr) *calls = n_calls;
  return out;
}

// A message of random lines: dots at line starts, lone dots, empty lines, dots in the middle, no
// final CRLF sometimes.
std::string RandomMessage(std::mt19937& rng, size_t lines_max, size_t line_bytes_max) {
  static constexpr char kAlphabet[] = "..a.b\r\n x.";
  std::string message;
  const size_t lines = rng() % (lines_max + 1);
  for (size_t l = 0; l < lines; ++l) {
    const size_t len = rng() % (line_bytes_max + 1);
    for (size_t k = 0; k < len; ++k) {
      char c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
      if (c == '\r' || c == '\n') c = '.';  // CRLF only at line ends (queue invariant)
      message.push_back(c);
    }
    if (l + 1 < lines || rng() % 3 != 0) message.append("\r\n");
  }
  return message;
}

TEST(DotStufferTest, Examples) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"", ".\r\n"},
      {"a\r\n", "a\r\n.\r\n"},
      {"a", "a\r\n.\r\n"},
      {".", "..\r\n.\r\n"},
      {".\r\n", "..\r\n.\r\n"},
      {"..x\r\n", "...x\r\n.\r\n"},
      {"a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
      {"a.b\r\n\r\n.\r\n.", "a.b\r\n\r\n..\r\n..\r\n.\r\n"},
      {"x\r", "x\r\r\n.\r\n"},
  };
  for (const Case& c : cases) {
    DotStuffer stuffer(c.in);
    EXPECT_EQ(Drain(stuffer, 16, 1 << 20), c.out) << c.in;
    EXPECT_EQ(DotStuffer::StuffedBytes(c.in), c.out.size()) << c.in;
    EXPECT_EQ(ReferenceStuff(c.in), c.out) << c.in;
  }
}

TEST(DotStufferTest, PointsIntoTheMessageWithoutCopying) {
  const std::string message = "line one\r\n.dot\r\nline three\r\n";
  DotStuffer stuffer(message);
  iovec iov[8];
  const size_t n = stuffer.Fill(iov, 8, 1 << 20);
  ASSERT_EQ(n, 4u);  // "line one\r\n" "." ".dot\r\nline three\r\n" ".\r\n"
  EXPECT_EQ(iov[0].iov_base, message.data());
  EXPECT_EQ(iov[0].iov_len, 10u);
  EXPECT_EQ(std::string_view(static_cast<char*>(iov[1].iov_base), iov[1].iov_len), ".");
  EXPECT_EQ(iov[2].iov_base, message.data() + 10);
  EXPECT_EQ(iov[2].iov_len, message.size() - 10);
  EXPECT_TRUE(stuffer.done());
}

TEST(DotStufferTest, ByteExactAgainstReferenceUnderAllLimits) {
  std::mt19937 rng(5321);
  for (int i = 0; i < 3000; ++i) {
    const std::string message = RandomMessage(rng, 12, 6);
    const std::string expected = ReferenceStuff(message);
    const size_t segments_max = 1 + rng() % 4;
    const size_t bytes_max = 1 + rng() % 9;
    DotStuffer stuffer(message);
    ASSERT_EQ(Drain(stuffer, segments_max, bytes_max), expected)
        << "message #" << i << " segments_max=" << segments_max << " bytes_max=" << bytes_max;
    EXPECT_EQ(stuffer.emitted_bytes(), expected.size());
    EXPECT_EQ(DotStuffer::StuffedBytes(message), expected.size());
    bool terminated = false;
    std::string back = ReferenceUnstuff(expected, &terminated);
    EXPECT_TRUE(terminated);
    std::string original = message;
    if (!original.empty() &&
        original.substr(original.size() > 1 ? original.size() - 2 : 0) != "\r\n") {
      original.append("\r\n");
    }
    EXPECT_EQ(back, original);
  }
}

TEST(DotStufferTest, ZeroLimitsFillNothing) {
  DotStuffer stuffer("abc");
  iovec iov[2];
  EXPECT_EQ(stuffer.Fill(iov, 0, 100), 0u);
  EXPECT_EQ(stuffer.Fill(iov, 2, 0), 0u);
  EXPECT_FALSE(stuffer.done());
}

TEST(DotStufferTest, LargeMessageInBoundedPieces) {
  // 8 MiB of 80-byte lines, every 7th starting with ".": each Fill stays under its bounds.
  std::string message;
  const std::string plain(78, 'x');
  const std::string dotted = "." + std::string(77, 'y');
  for (size_t line = 0; message.size() < (8u << 20); ++line) {
    message.append(line % 7 == 0 ? dotted : plain);
    message.append("\r\n");
  }
  DotStuffer stuffer(message);
  size_t calls = 0;
  const std::string out = Drain(stuffer, 64, 64 * 1024, &calls);
  EXPECT_EQ(out, ReferenceStuff(message));
  EXPECT_GE(calls, out.size() / (64 * 1024));
}

class AcceptAll : public ServerPolicy {
 public:
  bool MaySendAs(std::string_view, std::string_view) override { return true; }
  RcptDecision CheckRecipient(std::string_view) override { return RcptDecision::kAccept; }
};

// Property: the server session's DATA path unstuffs our stream back to the original message.
TEST(DotStufferTest, ServerSessionUnstuffsToTheOriginal) {
  std::mt19937 rng(2920);
  AcceptAll policy;
  ServerConfig config;
  config.auth_required = false;
  config.auth_enabled = false;
  for (int i = 0; i < 300; ++i) {
    const std::string message = RandomMessage(rng, 20, 30);
    ServerSession server(config, &policy);
    server.OnConnected("127.0.0.1", false);
    server.OnBytes("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    server.OnBytes("DATA\r\n");
    DotStuffer stuffer(message);
    iovec iov[3];
    bool ready = false;
    while (!stuffer.done()) {
      const size_t n = stuffer.Fill(iov, 3, 1 + rng() % 17);
      for (size_t k = 0; k < n; ++k) {
        ready |=
            server.OnBytes(std::string_view(static_cast<char*>(iov[k].iov_base), iov[k].iov_len))
                .message_ready;
      }
    }
    ASSERT_TRUE(ready) << "message #" << i;
    std::string original = message;
    if (!original.empty() &&
        (original.size() < 2 || original.substr(original.size() - 2) != "\r\n")) {
      original.append("\r\n");
    }
    EXPECT_EQ(server.message(), original) << "message #" << i;
  }
}

}  // namespace
}  // namespace relay::smtp
