// Fuzz target for the client side: the reply parser and ClientSession driven by arbitrary
// server bytes and driver events. Checked invariants (CHECK, so a violation aborts):
//  - every SendMessage gets exactly one message_done with one outcome per recipient, indices
//    0..n-1 in order, messages in SendMessage order (also with a message pipelined behind a body,
//    RFC 2920 §3.1, which the harness does whenever the session offers it);
//  - per-recipient outcomes: delivered carries a 2xx code, transient 4xx, permanent 5xx; a
//    connection outcome is never "delivered" and carries a 4xx or 5xx code;
//  - nothing is asked of the driver after close; parsed replies respect the limits;
//  - the parser never holds more than reply_bytes_max, whether or not replies are read (bytes fed
//    while a body streams are not parsed), and outcome texts stay within outcome_text_bytes_max.
// Built by relay_fuzz_test (tools/bazel/fuzz.bzl). The input is a config byte, then ops: a byte
// whose low 3 bits say what (0-3: the next op/8+1 bytes from the server, sent op%8+1 times; 4:
// send a message with op/8%4 recipients; 5: body sent; 6: TLS up or failed, timeout, QUIT; 7:
// peer closed), as the corpus files (relay/smtp/fuzz/client_session_corpus) show.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "relay/base/check.h"
#include "relay/smtp/client_reply.h"
#include "relay/smtp/client_session.h"
#include "tools/fuzz/fuzz.h"

namespace relay::smtp {
namespace {

constexpr size_t kOutcomeTextBytesMax = 200;

void CheckOutcomeCode(const Outcome& o) {
  CHECK(o.text.size() <= kOutcomeTextBytesMax);
  switch (o.kind) {
    case OutcomeKind::kDelivered:
      CHECK(o.code >= 200 && o.code < 300);
      break;
    case OutcomeKind::kTransient:
      CHECK(o.code >= 400 && o.code < 500);
      break;
    case OutcomeKind::kPermanent:
      CHECK(o.code >= 500 && o.code < 600);
      break;
  }
}

class Harness {
 public:
  explicit Harness(const ClientConfig& config) : session_(config) {}

  void Apply(const ClientActions& a) {
    CHECK(!closed_ || (a.write.empty() && !a.start_tls && !a.send_body && !a.ready &&
                       !a.message_done && !a.connection_failed));
    CHECK(!a.next_message_done || a.message_done);
    if (a.message_done) Done(a.outcomes);
    if (a.next_message_done) Done(a.next_outcomes);
    CHECK(!(a.ready && a.pipeline_ready));
    if (a.connection_failed) {
      // A refused greeting or STARTTLS is transient for the destination even with a 5xx code
      // (another MX may serve), so only the code range is checked here.
      CHECK(a.connection_outcome.kind != OutcomeKind::kDelivered);
      CHECK(a.connection_outcome.code >= 400 && a.connection_outcome.code < 600);
    }
    if (a.send_body) body_pending_ = true;
    if (a.start_tls) tls_pending_ = true;
    if (a.close) {
      CHECK(in_flight_.empty());  // a message in flight got its outcomes before the close
      closed_ = true;
      body_pending_ = false;
      tls_pending_ = false;
    }
    CHECK(a.timeout_ms >= 0);
    CHECK(session_.messages_open() == static_cast<int>(in_flight_.size()));
  }

  void Done(const std::vector<Outcome>& outcomes) {
    CHECK(!in_flight_.empty());
    CHECK(outcomes.size() == in_flight_.front());
    for (size_t i = 0; i < outcomes.size(); ++i) {
      CHECK(outcomes[i].recipient_index == i);
      CheckOutcomeCode(outcomes[i]);
    }
    in_flight_.pop_front();
  }

  void Run(const uint8_t* data, size_t size) {
    Apply(session_.OnConnected());
    size_t i = 0;
    while (i < size) {
      const uint8_t op = data[i++];
      switch (op % 8) {
        case 0:
        case 1:
        case 2:
        case 3: {  // server bytes: the next (op / 8 + 1) bytes, sent (op % 8 + 1) times
          const size_t n = std::min<size_t>(size - i, op / 8 + 1);
          const std::string_view bytes(reinterpret_cast<const char*>(data + i), n);
          for (int r = 0; r <= op % 8 && !closed_; ++r) Apply(session_.OnBytes(bytes));
          i += n;
          break;
        }
        case 4:
          if ((session_.idle() && in_flight_.empty()) || session_.can_pipeline()) {
            OutgoingMessage m;
            m.mail_from = "a@b.example";
            const int n = op / 8 % 4;
            for (int r = 0; r < n; ++r) m.recipients.push_back("r" + std::to_string(r) + "@x");
            m.size_bytes = (op / 32) * 1000;
            m.needs_8bitmime = op & 0x40;
            m.needs_smtputf8 = op & 0x80;
            in_flight_.push_back(static_cast<size_t>(n));
            Apply(session_.SendMessage(std::move(m)));
          }
          break;
        case 5:
          if (body_pending_) {
            body_pending_ = false;
            Apply(session_.OnBodySent());
          }
          break;
        case 6:
          if (tls_pending_) {
            tls_pending_ = false;
            Apply(op & 0x08 ? session_.OnTlsEstablished() : session_.OnTlsFailed("fuzz"));
          } else if (op & 0x10) {
            Apply(session_.OnTimeout());
          } else if (session_.idle() && op & 0x20) {
            Apply(session_.Quit());
          }
          break;
        case 7:
          if (op & 0x08) Apply(session_.OnPeerClosed());
          break;
      }
    }
    // The end of the input is a lost connection: whatever is in flight must be settled.
    if (body_pending_) Apply(session_.OnBodySent());
    Apply(session_.OnPeerClosed());
    CHECK(in_flight_.empty());
    CHECK(session_.closed());
  }

 private:
  ClientSession session_;
  std::deque<size_t> in_flight_;  // recipients of each message in flight, oldest first
  bool body_pending_ = false;
  bool tls_pending_ = false;
  bool closed_ = false;
};

void FuzzReplyParser(const uint8_t* data, size_t size) {
  ReplyLimits limits;
  limits.reply_line_bytes_max = 64;
  limits.reply_lines_max = 8;
  limits.reply_bytes_max = 256;
  ReplyParser parser(limits);
  size_t i = 0;
  while (i < size) {
    const size_t n = std::min<size_t>(size - i, 1 + data[i] % 23);
    // Some chunks are fed without reading replies, as during a body: the bound must hold then too.
    const bool read_replies = data[i] % 5 != 0;
    parser.Feed(std::string_view(reinterpret_cast<const char*>(data + i), n));
    i += n;
    CHECK(parser.buffered_bytes() <= limits.reply_bytes_max);
    if (!read_replies && !parser.failed()) continue;
    ServerReply reply;
    ReplyParser::Status status;
    while ((status = parser.Next(&reply)) == ReplyParser::Status::kReply) {
      size_t reply_bytes = 0;
      for (const std::string& line : reply.lines) reply_bytes += line.size();
      CHECK(reply_bytes <= limits.reply_bytes_max);
      CHECK(reply.code >= 200 && reply.code <= 599);
      CHECK(!reply.lines.empty() && reply.lines.size() <= limits.reply_lines_max);
      for (const std::string& line : reply.lines) CHECK(line.size() < limits.reply_line_bytes_max);
    }
    if (status == ReplyParser::Status::kError) {
      CHECK(parser.failed());
      CHECK(parser.buffered_bytes() == 0);
      return;
    }
    CHECK(parser.buffered_bytes() <= limits.reply_bytes_max);
  }
}

void FuzzClientSession(std::string_view input) {
  const auto* data = reinterpret_cast<const uint8_t*>(input.data());
  const size_t size = input.size();
  if (size == 0) return;
  FuzzReplyParser(data + 1, size - 1);
  ClientConfig config;
  config.peer_name = "mx.fuzz";
  config.tls_policy = static_cast<TlsPolicy>(data[0] % 3);
  config.tls_supported = data[0] & 0x04;
  config.limits.reply_line_bytes_max = 128;
  config.limits.reply_lines_max = 16;
  config.limits.reply_bytes_max = 512;
  config.outcome_text_bytes_max = kOutcomeTextBytesMax;
  Harness harness(config);
  harness.Run(data + 1, size - 1);
}

// Server bytes of `text` for the op encoding: chunks of 8 bytes, each sent once.
std::string ServerOps(std::string_view text) {
  std::string ops;
  while (!text.empty()) {
    const size_t n = std::min<size_t>(text.size(), 8);
    ops.push_back(static_cast<char>((n - 1) << 3));
    ops.append(text.substr(0, n));
    text.remove_prefix(n);
  }
  return ops;
}

constexpr char kEhlo[] = "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

// A server that pushes junk while the body streams: what the session buffers must not grow.
std::string JunkDuringBody(size_t bytes) {
  const std::string start = std::string(1, '\0') + ServerOps("220 hi\r\n") + ServerOps(kEhlo) +
                            std::string(1, 4 | 1 << 3) +
                            ServerOps("250 ok\r\n250 ok\r\n354 go\r\n");
  // Op 3 with 32 bytes: the 32 bytes sent four times.
  const std::string junk = std::string(1, static_cast<char>(31 << 3 | 3)) + std::string(32, 'j');
  return relay::fuzz::Repeat(start, junk, std::string(1, 5) + ServerOps("250 ok\r\n"), bytes);
}

// One message after another on the connection.
std::string ManyMessages(size_t bytes) {
  const std::string start = std::string(1, '\0') + ServerOps("220 hi\r\n") + ServerOps(kEhlo);
  const std::string message = std::string(1, 4 | 2 << 3) +
                              ServerOps("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n354 go\r\n") +
                              std::string(1, 5) + ServerOps("250 2.0.0 queued\r\n");
  return relay::fuzz::Repeat(start, message, "", bytes);
}

}  // namespace
}  // namespace relay::smtp

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "smtp_client_session",
      .run = relay::smtp::FuzzClientSession,
      // The reply parser holds at most reply_bytes_max (512 here) whatever the server sends.
      // One op byte may start a message: its envelope, outcomes and replies, about 20
      // allocations and 1 KiB, all freed when the message is done.
      .bounds = {.heap_peak_bytes = {16 << 10, 2},
                 .heap_allocated_bytes = {64 << 10, 1024},
                 .allocations = {256, 24}},
      .scaled = {{.name = "junk during a body", .make = relay::smtp::JunkDuringBody},
                 {.name = "many messages", .make = relay::smtp::ManyMessages}},
  };
  return target;
}
