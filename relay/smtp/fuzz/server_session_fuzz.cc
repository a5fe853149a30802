// Fuzz target for the SMTP server session and its parsers (tools/fuzz/fuzz.h).
//
// Input layout: byte 0 selects the configuration (TLS, AUTH rules, small limits), byte 1 seeds
// how the rest is cut into chunks and how the asynchronous results are answered; the rest is the
// client's byte stream. Beyond memory safety it checks the session's promises: replies are
// well-formed, a handed-out message has only CRLF line ends, bounded lines and size, and the
// result does not depend on how the input is cut (when no STARTTLS discards input). The
// transcripts are hashed rather than kept, so that the heap the harness measures is the session's
// own buffers.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "relay/smtp/command.h"
#include "relay/smtp/reply.h"
#include "relay/smtp/sasl.h"
#include "relay/smtp/server_session.h"
#include "tools/fuzz/fuzz.h"

namespace relay::smtp {
namespace {

void Require(bool ok, const char* what) {
  if (!ok) relay::fuzz::Fail(__FILE__, __LINE__, what);
}

// What the session said and handed out, as a hash (FNV-1a) and its first bytes for a report.
class Transcript {
 public:
  void Add(std::string_view s) {
    for (unsigned char c : s) hash_ = (hash_ ^ c) * 0x100000001b3ull;
    if (head_.size() < kHeadBytes) head_.append(s.substr(0, kHeadBytes - head_.size()));
  }
  bool operator==(const Transcript& o) const { return hash_ == o.hash_; }
  const std::string& head() const { return head_; }

 private:
  static constexpr size_t kHeadBytes = 2048;
  uint64_t hash_ = 0xcbf29ce484222325ull;
  std::string head_;
};

class FuzzPolicy : public ServerPolicy {
 public:
  bool MaySendAs(std::string_view user, std::string_view address) override {
    return address.empty() || address.find('x') == std::string_view::npos;
  }
  RcptDecision CheckRecipient(std::string_view address) override {
    return static_cast<RcptDecision>(address.size() % 4);
  }
};

// Replies must be whole lines "ddd[ -]..." with CRLF, and the session's own codes in range.
void CheckReplies(std::string_view out) {
  while (!out.empty()) {
    const size_t eol = out.find("\r\n");
    Require(eol != std::string_view::npos, "reply without CRLF");
    const std::string_view line = out.substr(0, eol);
    Require(line.size() >= 4, "short reply line");
    Require(line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' &&
                line[2] >= '0' && line[2] <= '9',
            "reply code");
    Require(line[3] == ' ' || line[3] == '-', "reply separator");
    Require(line.find_first_of("\r\n") == std::string_view::npos, "CR or LF inside a reply");
    out.remove_prefix(eol + 2);
  }
}

void CheckMessage(std::string_view message, const ServerLimits& limits) {
  Require(message.size() <= limits.message_bytes_max, "message larger than the limit");
  size_t line_start = 0;
  for (size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n') {
      Require(i > 0 && message[i - 1] == '\r', "bare LF in a handed-out message");
      Require(i + 1 - line_start <= limits.data_line_bytes_max, "over-long line handed out");
      line_start = i + 1;
    } else if (message[i] == '\r') {
      Require(i + 1 < message.size() && message[i + 1] == '\n', "bare CR in a handed-out message");
    }
  }
  Require(message.empty() || line_start == message.size(), "message not ending in CRLF");
}

struct Run {
  Transcript transcript;
  bool started_tls = false;
};

Run RunSession(const ServerConfig& config, bool implicit_tls, uint8_t seed, std::string_view input,
               bool chunked) {
  FuzzPolicy policy;
  ServerSession session(config, &policy);
  Run run;
  uint32_t rng = seed * 2654435761u + 1;
  auto next = [&rng]() {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };
  // Answers depend on how many checks and messages came, never on how the input was cut.
  int auth_checks = 0;
  int messages = 0;
  // Each action but a few per session answers some input: more than that is a loop.
  const size_t actions_max = 1000 + input.size();
  auto drain = [&](const ServerActions* a) {
    for (size_t guard = 0; guard < actions_max; ++guard) {
      CheckReplies(a->write);
      run.transcript.Add(a->write);
      if (a->close) {
        Require(session.closed(), "close action but session open");
        run.transcript.Add("<close>");
        return;
      }
      if (a->start_tls) {
        run.started_tls = true;
        run.transcript.Add("<tls>");
        a = &session.OnTlsEstablished("TLSv1.3", "TLS_AES_128_GCM_SHA256");
      } else if (a->check_credentials) {
        Require(session.paused(), "credential check without pause");
        run.transcript.Add("<auth ");
        run.transcript.Add(a->credentials.user);
        run.transcript.Add(">");
        const AuthResult result =
            a->credentials.password == "secret"
                ? AuthResult::kOk
                : (++auth_checks % 3 == 0 ? AuthResult::kTemporaryFailure : AuthResult::kFailed);
        a = &session.OnAuthResult(result);
      } else if (a->message_ready) {
        Require(session.paused(), "message without pause");
        CheckMessage(session.message(), config.limits);
        Require(!session.envelope().recipients.empty(), "message without recipients");
        run.transcript.Add("<message " + std::to_string(session.message().size()) + ">");
        run.transcript.Add(session.message());
        if (++messages % 5 == 4) {
          a = &session.OnMessageRefused(kSpoolFull);
        } else {
          a = &session.OnMessageQueued("Q");
        }
      } else {
        return;
      }
    }
    Require(false, "action loop does not end");
  };
  drain(&session.OnConnected("192.0.2.1", implicit_tls));
  if (implicit_tls) drain(&session.OnTlsEstablished("TLSv1.3", "TLS_AES_128_GCM_SHA256"));
  while (!input.empty()) {
    size_t n = input.size();
    if (chunked) n = std::min<size_t>(n, 1 + next() % 64);
    drain(&session.OnBytes(input.substr(0, n)));
    input.remove_prefix(n);
  }
  if (!session.closed() && (seed & 1)) drain(&session.OnTimeout());
  return run;
}

void FuzzParsers(std::string_view text) {
  MailCommand mail;
  if (ParseMailArgument(text, &mail) == ArgError::kNone) {
    Require(!mail.params.envid || mail.params.envid->size() <= kEnvidBytesMax, "ENVID too long");
    Require(!mail.params.campaign || IsValidLabel(*mail.params.campaign), "campaign not a label");
  }
  RcptCommand rcpt;
  if (ParseRcptArgument(text, &rcpt) == ArgError::kNone) {
    Require(rcpt.params.orcpt.size() <= kOrcptBytesMax, "ORCPT too long");
    Require((rcpt.params.notify & kNotifyNever) == 0 || rcpt.params.notify == kNotifyNever,
            "NEVER with another NOTIFY value");
  }
  uint64_t chunk = 0;
  bool last = false;
  ParseBdatArgument(text, &chunk, &last);
  IsValidHeloArgument(text);
  std::string decoded;
  if (DecodeSaslResponse(text, &decoded) == SaslResponse::kOk) {
    PlainCredentials creds;
    SplitPlain(decoded, &creds);
  }
  const CommandLine cmd = ParseCommandLine(text);
  Require(cmd.argument.size() <= text.size(), "argument longer than line");
}

void FuzzServerSession(std::string_view data) {
  if (data.size() < 2) return;
  const uint8_t flags = data[0];
  const uint8_t seed = data[1];
  const std::string_view input = data.substr(2);
  if (input.size() <= 4096) FuzzParsers(input.substr(0, std::min<size_t>(input.size(), 600)));

  ServerConfig config;
  config.hostname = "fuzz.test";
  config.tls_available = flags & 1;
  config.auth_required = flags & 2;
  config.auth_requires_tls = flags & 4;
  config.campaigns = flags & 2;  // XCAMPAIGN where AUTH is required, as on submission
  const bool implicit_tls = flags & 8;
  if (flags & 16) {
    // Small limits so that short inputs reach them.
    config.limits.command_line_bytes_max = 40;
    config.limits.auth_line_bytes_max = 80;
    config.limits.data_line_bytes_max = 20;
    config.limits.message_bytes_max = 100;
    config.limits.recipients_max = 2;
    config.limits.input_buffered_bytes_max = 200;
  }
  config.limits.errors_max = flags & 32 ? 3 : 50;

  const Run whole = RunSession(config, implicit_tls, seed, input, /*chunked=*/false);
  const Run pieces = RunSession(config, implicit_tls, seed, input, /*chunked=*/true);
  // Cutting the input differently changes nothing, except where STARTTLS discards what was
  // received with it (CVE-2011-0411) or the paused-input bound depends on the cut.
  if (!whole.started_tls && !pieces.started_tls && !(flags & 16)) {
    if (!(whole.transcript == pieces.transcript)) {
      std::fprintf(stderr, "whole (start):\n%s\n---\npieces (start):\n%s\n",
                   whole.transcript.head().c_str(), pieces.transcript.head().c_str());
      Require(false, "transcript depends on chunk borders");
    }
  }
}

// Pipelined transactions, each a small message: the command parser and the state machine. (No
// 'x' in the sender: FuzzPolicy refuses those.)
std::string PipelinedTransactions(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\x00\x00", 2) + "EHLO client.example\r\n",
                             "MAIL FROM:<a@b.test>\r\nRCPT TO:<b@c.test>\r\n"
                             "DATA\r\nSubject: s\r\n\r\nbody\r\n..dot\r\n.\r\n",
                             "QUIT\r\n", bytes);
}

// One message with a long body of lines, some dot-stuffed.
std::string LongMessage(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\x00\x00", 2) +
                                 "EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n"
                                 "RCPT TO:<b@c.test>\r\nDATA\r\nSubject: s\r\n\r\n",
                             "a line of the body\r\n..stuffed\r\n", ".\r\nQUIT\r\n", bytes);
}

}  // namespace
}  // namespace relay::smtp

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "smtp_server_session",
      .run = relay::smtp::FuzzServerSession,
      // The session holds the message being received (at most the input), the replies not yet
      // taken and the input it has not parsed; the harness runs it twice.
      .bounds = {.heap_peak_bytes = {64 << 10, 8},
                 .heap_allocated_bytes = {256 << 10, 64},
                 .allocations = {1024, 2}},
      .scaled = {{.name = "pipelined transactions", .make = relay::smtp::PipelinedTransactions},
                 {.name = "long message", .make = relay::smtp::LongMessage}},
  };
  return target;
}
