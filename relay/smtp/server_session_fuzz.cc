// libFuzzer target for the SMTP server session and its parsers. The same entry point is driven
// under GCC by server_session_fuzz_replay_test (corpus + bounded mutation loop) and under clang
// with -fsanitize=fuzzer by fuzz_clang_test.sh.
//
// Input layout: byte 0 selects the configuration (TLS, AUTH rules, small limits), byte 1 seeds
// how the rest is cut into chunks and how the asynchronous results are answered; the rest is the
// client's byte stream. Beyond memory safety it checks the session's promises: replies are
// well-formed, a handed-out message has only CRLF line ends, bounded lines and size, and the
// result does not depend on how the input is cut (when no STARTTLS discards input).
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

namespace relay::smtp {
namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

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
  std::string transcript;
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
  auto drain = [&](const ServerActions* a) {
    for (int guard = 0; guard < 1000; ++guard) {
      CheckReplies(a->write);
      run.transcript += a->write;
      if (a->close) {
        Require(session.closed(), "close action but session open");
        run.transcript += "<close>";
        return;
      }
      if (a->start_tls) {
        run.started_tls = true;
        run.transcript += "<tls>";
        a = &session.OnTlsEstablished("TLSv1.3", "TLS_AES_128_GCM_SHA256");
      } else if (a->check_credentials) {
        Require(session.paused(), "credential check without pause");
        run.transcript += "<auth " + a->credentials.user + ">";
        const AuthResult result =
            a->credentials.password == "secret"
                ? AuthResult::kOk
                : (++auth_checks % 3 == 0 ? AuthResult::kTemporaryFailure : AuthResult::kFailed);
        a = &session.OnAuthResult(result);
      } else if (a->message_ready) {
        Require(session.paused(), "message without pause");
        CheckMessage(session.message(), config.limits);
        Require(!session.envelope().recipients.empty(), "message without recipients");
        run.transcript += "<message " + std::to_string(session.message().size()) + ">";
        run.transcript += session.message();
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
  ParseMailArgument(text, &mail);
  RcptCommand rcpt;
  ParseRcptArgument(text, &rcpt);
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

}  // namespace
}  // namespace relay::smtp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace relay::smtp;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const uint8_t seed = data[1];
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (input.size() <= 4096) FuzzParsers(input.substr(0, std::min<size_t>(input.size(), 600)));

  ServerConfig config;
  config.hostname = "fuzz.test";
  config.tls_available = flags & 1;
  config.auth_required = flags & 2;
  config.auth_requires_tls = flags & 4;
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
    if (whole.transcript != pieces.transcript) {
      std::fprintf(stderr, "whole:\n%s\n---\npieces:\n%s\n", whole.transcript.c_str(),
                   pieces.transcript.c_str());
      relay::smtp::Require(false, "transcript depends on chunk borders");
    }
  }
  return 0;
}
