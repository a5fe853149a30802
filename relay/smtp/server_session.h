// ServerSession: the SMTP server side of one connection as a state machine without I/O
// (RFC 5321, with PIPELINING RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531,
// ENHANCEDSTATUSCODES RFC 2034, CHUNKING RFC 3030, STARTTLS RFC 3207, AUTH RFC 4954).
//
// Contract. One session per connection, used by one thread (its shard); not thread-safe. The
// driver (the io_uring connection code) feeds events and, after EACH event, drains the returned
// ServerActions in this order: write `write` (all pending replies, batched), then act on
// `start_tls`, `check_credentials`, `message_ready`, `close`. The returned reference is valid
// until the next event; every event clears it first, so the driver reuses it without allocating.
//
// Asynchronous steps. `check_credentials` and `message_ready` pause the session: it processes no
// further input (pipelined bytes stay in its buffer, bounded by
// ServerLimits::input_buffered_bytes_max; paused() tells the driver to stop reading) until the
// driver answers with OnAuthResult / OnMessageQueued / OnMessageRefused, which resume processing.
// The message handed out by `message_ready` is a view into a buffer the session owns; it stays
// valid and unchanged until the queue result event (or the session's destruction). The buffer is
// reused by the next transaction.
// `close` wins: when it comes in the same batch as `message_ready` (the client overran the
// paused-input bound) the driver drops the message; the client got no 250 for it. A timeout while
// the queue write is in flight closes the session but keeps the message view valid until the
// session is destroyed, so the driver may finish the write it started.
//
// Security rules enforced here:
//  - only CRLF ends a line (RFC 5321 §2.3.8). A command line holding a bare CR or LF is refused
//    with 500 5.5.2. DATA or BDAT content holding a bare CR or LF never ends the message and is
//    never split into two; the message is refused at its end with
//    "550 5.5.2 Message refused: bare CR or LF in content" and nothing of it is handed out
//    (the 2023 SMTP smuggling attacks).
//  - after "220 2.0.0 Ready to start TLS" every byte already received is discarded (CVE-2011-0411)
//    and, once TLS is up, everything learnt before is forgotten (RFC 3207 §4.2).
// Limits and their replies are listed with ServerLimits. A DATA line longer than
// data_line_bytes_max makes the message fail at its end with 500 5.5.2; the session goes on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relay/smtp/command.h"
#include "relay/smtp/reply.h"
#include "relay/smtp/sasl.h"

namespace relay::smtp {

struct ServerLimits {
  // A command line including CRLF (RFC 5321 §4.5.3.1.4). Longer -> 500 5.5.2.
  size_t command_line_bytes_max = 1024;  // RFC 5321 §4.5.3.1.4 plus DSN's ORCPT (RFC 3461)
  // AUTH command and SASL response lines including CRLF (RFC 4954 §4). Longer -> 500 5.5.2.
  size_t auth_line_bytes_max = 12288;
  // A DATA/BDAT content line including CRLF (RFC 5322 §2.1.1: 998 + CRLF). Longer -> the
  // message is refused at its end with 500 5.5.2.
  size_t data_line_bytes_max = 1000;
  // Message bytes after dot-unstuffing; advertised with SIZE (RFC 1870). Exceeded while
  // streaming, or a larger SIZE= at MAIL -> 552 5.3.4.
  uint64_t message_bytes_max = 35 * 1024 * 1024;
  // Recipients per transaction (RFC 5321 §4.5.3.1.8 asks for at least 100). Beyond -> 452 4.5.3.
  size_t recipients_max = 100;
  // Error replies caused by the client (syntax, sequence, refused recipients, AUTH failures)
  // before the session says 421 4.7.0 and closes.
  int errors_max = 10;
  // Pipelined input held while the session waits for an asynchronous result. Beyond ->
  // 421 4.7.0 and close (the driver should stop reading while paused()).
  size_t input_buffered_bytes_max = 1024 * 1024;
  // For the driver's timers: the server timeout waiting for the next command (RFC 5321
  // §4.5.3.2.7), between DATA/BDAT reads (§4.5.3.2.6), and the whole session. On expiry the
  // driver calls OnTimeout() -> 421 4.4.2 and close.
  int64_t command_timeout_ms = 5 * 60 * 1000;
  int64_t data_timeout_ms = 3 * 60 * 1000;
  int64_t session_timeout_ms = 60 * 60 * 1000;
};

struct ServerConfig {
  std::string hostname = "localhost";  // in the greeting, EHLO reply and 421 replies
  bool tls_available = false;          // STARTTLS offered (a certificate is configured)
  bool auth_enabled = true;
  bool auth_requires_tls = true;  // AUTH offered and accepted only under TLS (the default)
  bool auth_required = true;      // MAIL needs AUTH first (submission); false for port 25
  bool campaigns = false;         // XCAMPAIGN offered (MailParams::campaign; submission)
  bool dsn = true;                // DSN offered (RFC 3461: RET, ENVID, NOTIFY, ORCPT)
  bool requiretls = false;        // REQUIRETLS offered once TLS is up (RFC 8689 §4.1)
  ServerLimits limits;
};

enum class RcptDecision {
  kAccept,            // 250 2.1.5
  kUnknownUser,       // 550 5.1.1
  kRelayDenied,       // 550 5.7.1
  kTemporaryFailure,  // 451 4.3.0
  kSuppressed,        // 550 5.7.1 with the policy's RefusalText(): not counted as a client error
  kSeparately,        // 452 4.5.3: not with the recipients taken so far; another transaction
};

// Decisions the session asks for synchronously; implemented by the driver. Called on the
// session's thread, during an event.
class ServerPolicy {
 public:
  virtual ~ServerPolicy() = default;
  // May the authenticated `user` use `address` ("" = null path) as MAIL FROM? No -> 550 5.7.1.
  virtual bool MaySendAs(std::string_view user, std::string_view address) = 0;
  // Accept this recipient? Submission accepts everything; port 25 only local domains.
  virtual RcptDecision CheckRecipient(std::string_view address) = 0;
  // MAIL FROM:<address> ("" = null path) was accepted: a transaction starts. Port 25 starts its
  // SPF evaluation here (RFC 7208 §2.4) while the client sends RCPT and DATA.
  virtual void OnMailFrom(std::string_view address) {}
  // The reply text for the last kSuppressed decision (why the address may not be mailed).
  virtual std::string RefusalText() { return "Recipient address suppressed"; }
};

struct CredentialCheck {
  SaslMechanism mechanism = SaslMechanism::kUnknown;
  std::string authzid;  // empty unless the client asked to act as someone else (PLAIN)
  std::string user;
  std::string password;
};

struct Envelope {
  std::string mail_from;  // "" for the null path
  MailParams params;
  std::vector<std::string> recipients;
  std::vector<RcptParams> rcpt_params;  // parallel to recipients
  bool chunked = false;  // received with BDAT
};

struct ServerActions {
  std::string write;               // replies to write first, in order
  bool start_tls = false;          // then start the TLS handshake; answer with OnTlsEstablished
  bool check_credentials = false;  // then check `credentials`; answer with OnAuthResult
  CredentialCheck credentials;
  bool message_ready = false;  // then queue envelope() + message(); answer OnMessageQueued/Refused
  bool close = false;          // then close the connection
};

enum class AuthResult { kOk, kFailed, kTemporaryFailure };

// Replies for the queue's refusals (DESIGN.md: a full disk is 452 4.3.1).
inline constexpr Reply kSpoolFull{452, "4.3.1", "Insufficient system storage"};
inline constexpr Reply kLocalError{451, "4.3.0", "Local error in processing"};

class ServerSession {
 public:
  // `policy` must outlive the session.
  ServerSession(const ServerConfig& config, ServerPolicy* policy);
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Events. Each returns the actions to drain before the next event.
  // The connection is up; `tls_active` for implicit TLS (port 465). Writes the 220 greeting.
  const ServerActions& OnConnected(std::string_view peer_ip, bool tls_active);
  // Plaintext bytes from the client, cut anywhere.
  const ServerActions& OnBytes(std::string_view data);
  // The TLS handshake finished. After STARTTLS this resets the session (RFC 3207 §4.2); for
  // implicit TLS it only records the parameters.
  const ServerActions& OnTlsEstablished(std::string_view protocol_version, std::string_view cipher);
  const ServerActions& OnAuthResult(AuthResult result);
  // The message is durably queued: "250 2.0.0 Ok: queued as <queue_id>".
  const ServerActions& OnMessageQueued(std::string_view queue_id);
  // The message was taken without being queued (every recipient is suppressed and the relay
  // reports them instead of refusing them): "250 2.0.0 <text>".
  const ServerActions& OnMessageTakenUnqueued(std::string_view text);
  // The queue refused the message with `reply` (4xx or 5xx, e.g. kSpoolFull).
  const ServerActions& OnMessageRefused(const Reply& reply);
  // A command, data or session timer expired: 421 4.4.2 and close.
  const ServerActions& OnTimeout();

  // State for the driver.
  bool paused() const { return state_ == State::kAuthPending || state_ == State::kQueuePending; }
  bool closed() const { return state_ == State::kClosed; }
  bool in_data() const { return state_ == State::kData || state_ == State::kBdatChunk; }
  // Part of a command line has arrived and not its end: the driver's command deadline runs.
  bool mid_command() const { return InputBuffered() > 0 || discarding_line_; }
  const Envelope& envelope() const { return envelope_; }
  // The message of the last message_ready action (dot-unstuffed, CRLF lines).
  std::string_view message() const { return message_; }
  const std::string& peer_ip() const { return peer_ip_; }
  const std::string& ehlo_name() const { return ehlo_name_; }
  bool esmtp() const { return greeted_ == Greeted::kEhlo; }
  bool tls_active() const { return tls_active_; }
  const std::string& tls_version() const { return tls_version_; }
  const std::string& tls_cipher() const { return tls_cipher_; }
  bool authenticated() const { return !user_.empty(); }
  const std::string& user() const { return user_; }
  int errors() const { return errors_; }
  const ServerConfig& config() const { return config_; }

 private:
  enum class State {
    kNotConnected,
    kCommand,
    kAuthResponse,  // a 334 challenge is out; the next line is a SASL response
    kAuthPending,   // credentials are being checked
    kData,
    kBdatChunk,
    kQueuePending,
    kTlsPending,  // 220 to STARTTLS sent; input is discarded until the handshake is done
    kClosed,
  };
  enum class Greeted { kNone, kHelo, kEhlo };
  enum class AuthStep { kNone, kPlain, kLoginUser, kLoginPassword };
  // Why the current message fails at its end, highest priority first.
  enum class DataError { kNone, kBareCrLf, kLineTooLong, kTooBig };

  const ServerActions& BeginEvent();
  void Feed(std::string_view data);
  // Processes input from the current state; returns the bytes consumed.
  size_t Process(std::string_view in);
  size_t ProcessCommandInput(std::string_view in);
  size_t ProcessData(std::string_view in);
  size_t ProcessBdat(std::string_view in);
  void ResumeBuffered();
  // Whether `data`, appended to the buffered partial line, leaves it a partial line the current
  // state would keep as it is (so that it need not be parsed again).
  bool ExtendsBufferedLine(std::string_view data) const;
  size_t InputBuffered() const { return in_.size() - in_start_; }
  void ClearInput();

  void HandleCommand(std::string_view line);
  void HandleEhlo(std::string_view arg, bool extended);
  void HandleMail(std::string_view arg);
  void HandleRcpt(std::string_view arg);
  void HandleData(std::string_view arg);
  void HandleBdat(std::string_view arg);
  void HandleStartTls(std::string_view arg);
  void HandleAuth(std::string_view arg);
  void HandleAuthResponse(std::string_view line);
  void RequestCredentials(SaslMechanism mechanism, std::string authzid, std::string user,
                          std::string password);

  void BeginMessage();
  void AppendMessage(const char* data, size_t size);
  void ScanBinary(const char* data, size_t size);
  void FinishBdatChunk();
  void FinishMessage();
  void ResetTransaction();
  void ResetAll();

  void Ok(int code, std::string_view enhanced, std::string_view text);
  // An error reply caused by the client; counts towards errors_max.
  void Error(int code, std::string_view enhanced, std::string_view text);
  void Close421(std::string_view enhanced, std::string_view text);

  const ServerConfig config_;
  ServerPolicy* const policy_;
  ServerActions actions_;
  State state_ = State::kNotConnected;

  // Unconsumed input: a partial line, or pipelined input while paused. Bytes before in_start_
  // are consumed; they are dropped once they are half the buffer, so that resuming after each of
  // many pipelined transactions does not move the rest of the buffer every time.
  std::string in_;
  size_t in_start_ = 0;
  // A command line longer than the limit is being skipped up to its CRLF.
  bool discarding_line_ = false;
  bool discard_prev_cr_ = false;

  std::string peer_ip_;
  Greeted greeted_ = Greeted::kNone;
  std::string ehlo_name_;
  bool tls_active_ = false;
  std::string tls_version_;
  std::string tls_cipher_;
  std::string user_;  // authenticated user, "" when not
  int errors_ = 0;

  AuthStep auth_step_ = AuthStep::kNone;
  CredentialCheck pending_auth_;  // user/authzid of the AUTH in flight (password not kept)

  bool in_transaction_ = false;
  Envelope envelope_;
  std::string scratch_;  // reused decode buffer

  // The message being received; reused across transactions (capacity kept).
  std::string message_buffer_;
  std::string_view message_;
  DataError data_error_ = DataError::kNone;
  bool line_start_ = true;  // DATA: the next byte starts a line (previous line ended in CRLF)
  size_t line_bytes_ = 0;   // bytes of the current content line so far
  bool prev_cr_ = false;    // BDAT: the last content byte was CR
  uint64_t bdat_remaining_bytes_ = 0;
  uint64_t bdat_chunk_bytes_ = 0;
  bool bdat_last_ = false;
  Reply bdat_error_;               // code 0 when the chunk is accepted
  bool bdat_error_counts_ = true;  // bdat_error_ counts towards errors_max
  bool bdat_failed_ = false;       // the last BDAT transaction failed on size; until MAIL/RSET/EHLO
};

}  // namespace relay::smtp
