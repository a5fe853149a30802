// ClientSession: the SMTP client side of one outbound connection as a state machine without I/O
// (RFC 5321, PIPELINING RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531,
// ENHANCEDSTATUSCODES RFC 2034, STARTTLS RFC 3207).
//
// Contract. One session per connection, used by one thread (its shard); not thread-safe. The
// delivery driver feeds events and, after EACH event, drains the returned ClientActions in this
// order: write `write`; then `start_tls` (handshake with the destination host; answer with
// OnTlsEstablished or OnTlsFailed); apply `outcomes` then `next_outcomes` / `connection_outcome`;
// `send_body` (stream the newest message through a DotStuffer, then call OnBodySent); `ready`
// (the session is idle and takes SendMessage or Quit) or `pipeline_ready`; `close`. When
// `rearm_timer` is set, the driver arms its timer to `timeout_ms`, replacing any armed one (0:
// none); otherwise the timer armed earlier runs on. On expiry the driver calls OnTimeout. The
// returned reference is valid until the next event; every event clears it first.
//
// Deadlines. Each timer is a deadline for one thing awaited: a reply (armed when its command is
// sent, or when the reply before it in a pipelined group completed), a body write, the TLS
// handshake. Bytes arriving never re-arm it, so a server that drips a reply one byte at a time
// still has only the command's timeout to complete it. A body write that completed
// (OnBodyProgress) arms the next write's (RFC 5321 §4.5.3.2.5).
//
// Bounds. What the server sends is held by the reply parser, at most limits.reply_bytes_max
// (client_reply.h), in every state: while the body streams and replies are not read, too. A server
// that sends more is a protocol error: the session ends, and every recipient not yet answered
// gets a transient 421 4.5.0 outcome. The text of every outcome is cut to outcome_text_bytes_max
// (at a UTF-8 boundary, marked), so that a long reply is not copied whole for each recipient.
//
// Pipelining across transactions (RFC 2920 §3.1: the message content may be the first "command"
// of a group). With PIPELINING, `pipeline_ready` comes with `send_body` (and again after
// OnBodySent while the final reply is awaited): the session takes the NEXT message now. Its
// SendMessage returns MAIL/RCPT/DATA in `write`, which the driver writes right after the body's
// terminating "." (in the same write when it can; never before the body's last byte). At most two
// messages are open then: the one whose final reply is awaited and the pipelined one. Replies are
// matched in order: the final reply settles the first message as for any message (a 5xx does
// not stop the next MAIL), then the pipelined transaction goes on; a 421, a timeout (the
// data_termination timer covers the final reply, then the MAIL/RCPT/DATA timers) or a lost
// connection settles both as transient. A driver that never calls SendMessage after
// `pipeline_ready` sees the one-message-at-a-time behaviour.
//
// Outcomes. Every message given to SendMessage gets exactly one outcome per recipient, in one
// `message_done` action: delivered (the final 250), transient (4xx, connection lost or timed out
// before the final reply, a 421) or permanent (5xx, or a need the server cannot meet, decided
// before anything is sent; behind a pipelined body it is reported after that message's outcome).
// Messages finish in SendMessage order; when one event finishes two, the earlier is in
// `outcomes` and the pipelined one in `next_message_done` / `next_outcomes`. A problem before any
// message started (greeting, EHLO/HELO, STARTTLS, TLS required but impossible) is one
// `connection_outcome`: the driver applies it to the messages it planned for this address and
// tries the next MX.
//
// Decisions (each documented where it is made): 554 greeting is transient for the destination
// (RFC 5321 §3.1: "no SMTP service here", another MX may serve); HELO only after 500/502 to EHLO
// (§4.1.4, EHLO not understood); a message needing 8BITMIME on a server without it fails
// permanently with 554 5.6.3 (RFC 6152 §3: it must not be sent as is, and converting it to 7 bit
// would break the DKIM signature made at acceptance); with PIPELINING and every RCPT refused, a
// 354 is answered with a lone "." (RFC 2920 §3.1); RSET only when a transaction was left open
// (MAIL accepted but the message not ended); after a 421 the session closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relay/smtp/client_reply.h"
#include "relay/smtp/command.h"
#include "relay/smtp/outcome_kind.h"

namespace relay::smtp {

enum class TlsPolicy {
  kDisabled,       // never STARTTLS
  kOpportunistic,  // STARTTLS when offered; plain text otherwise
  kRequired,       // no transaction without TLS: a transient connection outcome instead
};

// RFC 5321 §4.5.3.2 client timeouts, for the driver's timers.
struct ClientTimeouts {
  int64_t greeting_ms = 5 * 60 * 1000;           // §4.5.3.2.1 initial 220
  int64_t mail_ms = 5 * 60 * 1000;               // §4.5.3.2.2 MAIL
  int64_t rcpt_ms = 5 * 60 * 1000;               // §4.5.3.2.3 RCPT
  int64_t data_initiation_ms = 2 * 60 * 1000;    // §4.5.3.2.4 DATA -> 354
  int64_t data_block_ms = 3 * 60 * 1000;         // §4.5.3.2.5 each body write
  int64_t data_termination_ms = 10 * 60 * 1000;  // §4.5.3.2.6 "." -> final reply
  // EHLO, HELO, STARTTLS, RSET, QUIT: the RFC names none; the MAIL value is the usual choice.
  int64_t command_ms = 5 * 60 * 1000;
  // After the 220 to STARTTLS, until the handshake completes (RFC 3207 names none).
  int64_t tls_handshake_ms = 60 * 1000;
};

struct ClientConfig {
  std::string ehlo_name = "localhost";  // our name in EHLO/HELO (the egress source's PTR name)
  std::string peer_name;                // the MX host, for outcome texts
  TlsPolicy tls_policy = TlsPolicy::kOpportunistic;
  bool tls_supported = true;  // the driver can do TLS at all
  ReplyLimits limits;
  ClientTimeouts timeouts;
  // The text an outcome carries, at most (the driver sets what its records can hold).
  size_t outcome_text_bytes_max = 4096;
};

// What the server's EHLO reply offered (RFC 5321 §4.1.1.1; forgotten after STARTTLS).
struct Extensions {
  bool pipelining = false;
  bool size = false;
  uint64_t size_bytes_max = 0;  // SIZE n; 0 = no limit given (RFC 1870 §4)
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool starttls = false;
  bool chunking = false;
  bool enhanced_status_codes = false;
  bool dsn = false;  // RFC 3461: RET, ENVID, NOTIFY and ORCPT are passed on
  bool requiretls = false;  // RFC 8689 §4.1
};

struct OutgoingMessage {
  std::string mail_from;  // "" for the null reverse-path
  std::vector<std::string> recipients;
  uint64_t size_bytes = 0;  // the message bytes as stored (SIZE=, RFC 1870 §3)
  bool needs_8bitmime = false;
  bool needs_smtputf8 = false;
  // The sender's DSN parameters (RFC 3461), passed on when the server offers DSN: RET and ENVID
  // (decoded; "" none), and per recipient NOTIFY and ORCPT (empty, or parallel to recipients).
  DsnReturn ret = DsnReturn::kUnspecified;
  std::string envid;
  std::vector<RcptParams> rcpt_params;
  // MAIL FROM's REQUIRETLS (RFC 8689 §4.2.1): the caller sends it only to a server that offered
  // REQUIRETLS over a TLS session it authenticated.
  bool require_tls = false;
};

struct Outcome {
  OutcomeKind kind = OutcomeKind::kTransient;
  int code = 0;
  std::string enhanced;  // "" when the server gave none
  std::string text;
  bool from_peer = false;      // the server's reply; false when the session made it up
  size_t recipient_index = 0;  // index in OutgoingMessage::recipients (per-recipient outcomes)
};

struct ClientActions {
  std::string write;       // commands to write first, in order (one write when pipelining)
  bool start_tls = false;  // then start TLS with config().peer_name
  bool send_body = false;  // then stream the message's DotStuffer segments; call OnBodySent
  bool message_done = false;
  std::vector<Outcome> outcomes;  // with message_done: one per recipient, in recipient order
  bool connection_failed = false;
  Outcome connection_outcome;  // with connection_failed
  // A second message finished in the same event (the pipelined one, after `outcomes`' message).
  bool next_message_done = false;
  std::vector<Outcome> next_outcomes;
  bool ready = false;          // idle: SendMessage or Quit may be called
  // PIPELINING: SendMessage may be called now for the next message; its commands go out after
  // the body's terminating "." (RFC 2920 §3.1). Until then, nothing changes.
  bool pipeline_ready = false;
  bool close = false;          // close the connection
  // The deadline of what the session awaits now, in ms from when it was armed; 0 = none.
  int64_t timeout_ms = 0;
  // The deadline changed in this event: arm the timer to timeout_ms now (replacing the previous
  // one). When false, the armed timer runs on.
  bool rearm_timer = false;
};

class ClientSession {
 public:
  explicit ClientSession(const ClientConfig& config);
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Events. Each returns the actions to drain before the next event.
  const ClientActions& OnConnected();
  const ClientActions& OnBytes(std::string_view data);
  const ClientActions& OnTlsEstablished();
  const ClientActions& OnTlsFailed(std::string_view reason);
  const ClientActions& OnTimeout();
  const ClientActions& OnPeerClosed();
  // The last byte of the body (the stuffer's terminator included) was written.
  const ClientActions& OnBodySent();
  // A write of body bytes (not the last) completed: the next write gets a new deadline.
  const ClientActions& OnBodyProgress();
  // When idle (after a `ready` action), or when can_pipeline() (after a `pipeline_ready` action).
  // A call at any other time is a driver bug: counted, and the message gets a transient outcome
  // at once (the messages in flight are left alone).
  const ClientActions& SendMessage(OutgoingMessage message);
  // QUIT (when idle) and close; any other time it just closes.
  const ClientActions& Quit();

  bool idle() const { return state_ == State::kIdle; }
  // PIPELINING and the current message's body is being sent or its final reply awaited, with no
  // message pipelined behind it yet: SendMessage takes the next message now.
  bool can_pipeline() const;
  // Messages given to SendMessage and not finished yet (0, 1, or 2 when one is pipelined).
  int messages_open() const { return (in_message_ ? 1 : 0) + (ahead_open_ ? 1 : 0); }
  bool closed() const { return state_ == State::kClosed; }
  bool tls_active() const { return tls_active_; }
  bool esmtp() const { return esmtp_; }
  const Extensions& extensions() const { return extensions_; }
  const ClientConfig& config() const { return config_; }
  // Messages finished on this connection (any outcome).
  uint64_t messages_done() const { return messages_done_; }

 private:
  enum class State {
    kNotConnected,
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kTlsHandshake,
    kIdle,
    kTransaction,  // waiting for replies to MAIL/RCPT/DATA
    kBody,         // the driver streams the body
    kFinal,        // waiting for the reply to the final "."
    kLoneDot,      // waiting for the reply to a lone "." (every RCPT refused, RFC 2920 §3.1)
    kRset,
    kQuit,
    kClosed,
  };
  // Commands whose replies are outstanding, in order.
  // kFinal: the final reply of the message ahead of a pipelined transaction (RFC 2920 §3.1).
  enum class Pending { kFinal, kMail, kRcpt, kData };

  void BeginEvent();
  const ClientActions& EndEvent();
  // Sets the deadline of what is awaited now, to be armed by the driver after this event.
  void Arm(int64_t timeout_ms);
  // The reply's text for outcomes, cut to outcome_text_bytes_max.
  std::string ReplyText(const ServerReply& reply) const;
  // The parser failed (malformed reply, or more than its bounds): ends the session.
  void ProtocolError();
  void ProcessReplies();
  void HandleReply(const ServerReply& reply);
  void UnexpectedReply(const ServerReply& reply);
  void HandleGreeting(const ServerReply& reply);
  void HandleEhlo(const ServerReply& reply);
  void HandleHelo(const ServerReply& reply);
  void HandleStartTls(const ServerReply& reply);
  void HandleTransactionReply(const ServerReply& reply);
  void HandleFinal(const ServerReply& reply);
  void AfterGreetingDone();  // EHLO/HELO accepted: STARTTLS or idle
  void BecomeIdle();
  void SendEhlo();
  void SendNextCommand();  // without PIPELINING: the next command of the transaction
  void AppendMail();
  void AppendRcpt(size_t index);
  void ArmFor(Pending pending);

  // Outcome helpers.
  void SetOutcome(size_t index, const ServerReply& reply);
  void SetOutcome(size_t index, OutcomeKind kind, int code, std::string_view enhanced,
                  std::string_view text, bool from_peer);
  // Every recipient still without an outcome gets this one; then message_done.
  void FinishMessage(OutcomeKind kind, int code, std::string_view enhanced, std::string_view text,
                     bool from_peer);
  void FinishMessageWithReply(const ServerReply& reply);
  // The message ahead of the pipelined one: every recipient without an outcome gets this one.
  void FinishAhead(OutcomeKind kind, int code, std::string_view enhanced, std::string_view text,
                   bool from_peer);
  // Hands one finished message's outcomes to the driver (`outcomes`, or `next_outcomes` when a
  // message already finished in this event).
  void EmitDone(std::vector<Outcome> outcomes);
  void FailConnection(OutcomeKind kind, int code, std::string_view enhanced, std::string text,
                      bool from_peer);
  // The connection is unusable (lost, timed out, protocol error, 421): outcomes for whatever is in
  // flight, then close.
  void Abort(int code, std::string_view enhanced, std::string text, bool from_peer);
  void CloseNow();
  std::string Peer() const;
  std::string_view Awaiting() const;

  const ClientConfig config_;
  ClientActions actions_;
  State state_ = State::kNotConnected;
  ReplyParser parser_;
  Extensions extensions_;
  bool esmtp_ = false;
  bool tls_active_ = false;
  int64_t timeout_ms_ = 0;  // the timer that applies in the current state
  bool timer_changed_ = false;  // Arm() was called in this event

  // The transaction.
  OutgoingMessage message_;
  bool in_message_ = false;
  std::vector<Outcome> outcomes_;
  std::vector<bool> has_outcome_;
  std::vector<Pending> pending_;  // outstanding replies, oldest first
  size_t pending_head_ = 0;
  size_t next_rcpt_reply_ = 0;  // recipient index of the next RCPT reply
  size_t next_rcpt_send_ = 0;   // without PIPELINING: next RCPT to send
  size_t accepted_ = 0;         // recipients with 250/251 to RCPT
  bool mail_accepted_ = false;
  bool mail_refused_ = false;
  uint64_t messages_done_ = 0;

  // Pipelining across transactions: the message whose final reply is awaited while the next
  // transaction (the fields above) is already sent behind it.
  bool ahead_open_ = false;
  std::vector<Outcome> ahead_outcomes_;
  std::vector<bool> ahead_has_outcome_;
  bool body_streaming_ = false;  // the ahead message's body is still being sent
};

}  // namespace relay::smtp
