#include "relay/smtp/client_session.h"

#include <utility>

#include "relay/base/check.h"
#include "relay/smtp/text.h"

namespace relay::smtp {
namespace {

// Local outcome codes (RFC 3463): 4.4.2 "bad connection" for a lost or silent peer.
constexpr int kLostCode = 421;
constexpr std::string_view kLostEnhanced = "4.4.2";

// A failure reply's kind: 5xx is permanent; anything else that is not the expected success
// (4xx, or a 2xx/3xx where it makes no sense) is transient.
OutcomeKind FailureKind(const ServerReply& reply) {
  return reply.cls() == 5 ? OutcomeKind::kPermanent : OutcomeKind::kTransient;
}

bool ParseUint64(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = value;
  return true;
}

// RFC 5321 §4.1.1.1: each line after the first is "ehlo-keyword *(SP ehlo-param)".
Extensions ParseExtensions(const ServerReply& reply) {
  Extensions ext;
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    const size_t space = line.find(' ');
    const std::string_view keyword = line.substr(0, space);
    const std::string_view param =
        space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    if (EqualsIgnoreCase(keyword, "PIPELINING")) {
      ext.pipelining = true;
    } else if (EqualsIgnoreCase(keyword, "SIZE")) {
      ext.size = true;
      uint64_t value = 0;
      // RFC 1870 §4: no parameter or 0 means no fixed maximum.
      if (ParseUint64(param.substr(0, param.find(' ')), &value)) ext.size_bytes_max = value;
    } else if (EqualsIgnoreCase(keyword, "8BITMIME")) {
      ext.eightbitmime = true;
    } else if (EqualsIgnoreCase(keyword, "SMTPUTF8")) {
      ext.smtputf8 = true;
    } else if (EqualsIgnoreCase(keyword, "STARTTLS")) {
      ext.starttls = true;
    } else if (EqualsIgnoreCase(keyword, "CHUNKING")) {
      ext.chunking = true;
    } else if (EqualsIgnoreCase(keyword, "ENHANCEDSTATUSCODES")) {
      ext.enhanced_status_codes = true;
    } else if (EqualsIgnoreCase(keyword, "DSN")) {
      ext.dsn = true;
    } else if (EqualsIgnoreCase(keyword, "REQUIRETLS")) {
      ext.requiretls = true;
    }
  }
  return ext;
}

// Sets every field of one recipient's outcome; the text cut to `text_bytes_max`.
void FillOutcome(Outcome& outcome, size_t index, OutcomeKind kind, int code,
                 std::string_view enhanced, std::string_view text, bool from_peer,
                 size_t text_bytes_max) {
  outcome.kind = kind;
  outcome.code = code;
  outcome.enhanced.assign(enhanced);
  outcome.text = TruncateText(text, text_bytes_max);
  outcome.from_peer = from_peer;
  outcome.recipient_index = index;
}

}  // namespace

ClientSession::ClientSession(const ClientConfig& config)
    : config_(config), parser_(config.limits) {}

void ClientSession::BeginEvent() {
  timer_changed_ = false;
  actions_.write.clear();
  actions_.start_tls = false;
  actions_.send_body = false;
  actions_.message_done = false;
  actions_.outcomes.clear();
  actions_.connection_failed = false;
  actions_.connection_outcome = Outcome();
  actions_.next_message_done = false;
  actions_.next_outcomes.clear();
  actions_.ready = false;
  actions_.pipeline_ready = false;
  actions_.close = false;
}

const ClientActions& ClientSession::EndEvent() {
  actions_.timeout_ms = state_ == State::kClosed ? 0 : timeout_ms_;
  actions_.rearm_timer = timer_changed_;
  return actions_;
}

void ClientSession::Arm(int64_t timeout_ms) {
  timeout_ms_ = timeout_ms;
  timer_changed_ = true;
}

std::string ClientSession::ReplyText(const ServerReply& reply) const {
  // A reply may be reply_bytes_max long: cut it before it is joined with other text (FillOutcome
  // bounds each outcome's text again, whatever it is made of).
  return TruncateText(reply.Text(), config_.outcome_text_bytes_max);
}

std::string ClientSession::Peer() const {
  return config_.peer_name.empty() ? std::string("the server") : config_.peer_name;
}

std::string_view ClientSession::Awaiting() const {
  switch (state_) {
    case State::kGreeting:
      return "the greeting";
    case State::kEhlo:
      return "the reply to EHLO";
    case State::kHelo:
      return "the reply to HELO";
    case State::kStartTls:
      return "the reply to STARTTLS";
    case State::kTlsHandshake:
      return "the TLS handshake";
    case State::kTransaction:
      if (body_streaming_) return "the message body to be sent";
      if (pending_head_ < pending_.size()) {
        switch (pending_[pending_head_]) {
          case Pending::kFinal:
            return "the reply to the end of data";
          case Pending::kMail:
            return "the reply to MAIL FROM";
          case Pending::kRcpt:
            return "the reply to RCPT TO";
          case Pending::kData:
            return "the reply to DATA";
        }
      }
      return "a reply";
    case State::kBody:
      return "the message body to be sent";
    case State::kFinal:
    case State::kLoneDot:
      return "the reply to the end of data";
    case State::kRset:
      return "the reply to RSET";
    case State::kQuit:
      return "the reply to QUIT";
    case State::kNotConnected:
    case State::kIdle:
    case State::kClosed:
      break;
  }
  return "nothing";
}

// ---- events ----

const ClientActions& ClientSession::OnConnected() {
  BeginEvent();
  if (state_ == State::kNotConnected) {
    state_ = State::kGreeting;
    Arm(config_.timeouts.greeting_ms);  // RFC 5321 §4.5.3.2.1
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnBytes(std::string_view data) {
  BeginEvent();
  // Bytes during the handshake cannot be plain-text replies; bytes after close are moot.
  if (state_ != State::kClosed && state_ != State::kTlsHandshake &&
      state_ != State::kNotConnected) {
    parser_.Feed(data);
    if (parser_.failed()) {
      // Checked here and not only when replies are read: while the body streams nothing is read,
      // and a server that sends without pause must end the session, not fill memory.
      ProtocolError();
    } else {
      ProcessReplies();
    }
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnTlsEstablished() {
  BeginEvent();
  if (EXPECT_OR_COUNT(state_ == State::kTlsHandshake)) {
    // RFC 3207 §4.2: forget everything learnt from the server before TLS, and ask again.
    tls_active_ = true;
    extensions_ = Extensions();
    esmtp_ = false;
    parser_.Clear();
    SendEhlo();
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnTlsFailed(std::string_view reason) {
  BeginEvent();
  if (state_ == State::kTlsHandshake) {
    // The connection is in an unknown TLS state: it cannot go back to plain text. Under an
    // opportunistic policy the driver may reconnect without STARTTLS.
    FailConnection(OutcomeKind::kTransient, 454, "4.7.0",
                   Concat("TLS handshake with ", Peer(), " failed: ", reason), false);
    CloseNow();
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnTimeout() {
  BeginEvent();
  if (state_ == State::kIdle || state_ == State::kQuit || state_ == State::kNotConnected) {
    CloseNow();
  } else if (state_ == State::kBody || body_streaming_) {
    // RFC 5321 §4.5.3.2.5: a body write did not complete in time.
    Abort(kLostCode, kLostEnhanced, Concat("Timeout sending the message body to ", Peer()), false);
  } else if (state_ != State::kClosed) {
    Abort(kLostCode, kLostEnhanced, Concat("Timeout waiting for ", Awaiting(), " from ", Peer()),
          false);
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnPeerClosed() {
  BeginEvent();
  if (state_ == State::kIdle || state_ == State::kQuit) {
    CloseNow();
  } else if (state_ != State::kClosed) {
    Abort(kLostCode, kLostEnhanced,
          Concat("Connection closed by ", Peer(), " while waiting for ", Awaiting()), false);
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnBodySent() {
  BeginEvent();
  if (state_ == State::kTransaction && body_streaming_) {
    // The next transaction is already written behind the body: its replies follow the final one.
    body_streaming_ = false;
    ArmFor(pending_[pending_head_]);  // kFinal: data_termination
    ProcessReplies();
  } else if (EXPECT_OR_COUNT(state_ == State::kBody)) {
    state_ = State::kFinal;
    Arm(config_.timeouts.data_termination_ms);  // RFC 5321 §4.5.3.2.6
    ProcessReplies();  // a reply that arrived while the body was streaming
    if (can_pipeline()) actions_.pipeline_ready = true;
  }
  return EndEvent();
}

const ClientActions& ClientSession::OnBodyProgress() {
  BeginEvent();
  // RFC 5321 §4.5.3.2.5: the data block timeout covers each write of the body, so a write that
  // completed starts the next one's; a peer that reads slower than one write per data_block_ms
  // ends the session.
  if (state_ == State::kBody || (state_ == State::kTransaction && body_streaming_)) {
    Arm(config_.timeouts.data_block_ms);
  }
  return EndEvent();
}

bool ClientSession::can_pipeline() const {
  return extensions_.pipelining && in_message_ && !ahead_open_ &&
         (state_ == State::kBody || state_ == State::kFinal);
}

const ClientActions& ClientSession::SendMessage(OutgoingMessage message) {
  BeginEvent();
  const bool pipelined = can_pipeline();
  if (!EXPECT_OR_COUNT(state_ == State::kIdle || pipelined)) {
    // The messages in flight stay as they are; this one is not sent.
    std::vector<Outcome> outcomes(message.recipients.size());
    for (size_t i = 0; i < outcomes.size(); ++i) {
      FillOutcome(outcomes[i], i, OutcomeKind::kTransient, 451, "4.3.0",
                  "Local error: the connection was not ready for a message", false,
                  config_.outcome_text_bytes_max);
    }
    EmitDone(std::move(outcomes));
    return EndEvent();
  }
  if (pipelined) {
    // RFC 2920 §3.1: the body just sent is the first "command" of the group; its final reply
    // comes before the replies to the next MAIL/RCPT/DATA.
    ahead_outcomes_ = std::move(outcomes_);
    ahead_has_outcome_ = std::move(has_outcome_);
    ahead_open_ = true;
    body_streaming_ = state_ == State::kBody;
    state_ = State::kTransaction;
  }
  message_ = std::move(message);
  const size_t n = message_.recipients.size();
  outcomes_.assign(n, Outcome());
  has_outcome_.assign(n, false);
  for (size_t i = 0; i < n; ++i) outcomes_[i].recipient_index = i;
  in_message_ = true;
  pending_.clear();
  pending_head_ = 0;
  next_rcpt_reply_ = 0;
  next_rcpt_send_ = 0;
  accepted_ = 0;
  mail_accepted_ = false;
  mail_refused_ = false;
  if (pipelined) pending_.push_back(Pending::kFinal);

  // Refused before anything is sent: without a message ahead, at once; behind one, once its final
  // reply came (messages finish in order), see HandleTransactionReply.
  auto refuse = [&](OutcomeKind kind, int code, std::string_view enhanced,
                    const std::string& text) -> const ClientActions& {
    if (!pipelined) {
      FinishMessage(kind, code, enhanced, text, false);
      actions_.ready = true;
      return EndEvent();
    }
    // The body or the final reply ahead is still awaited: its deadline runs on.
    for (size_t i = 0; i < n; ++i) SetOutcome(i, kind, code, enhanced, text, false);
    ProcessReplies();
    return EndEvent();
  };
  if (n == 0) return refuse(OutcomeKind::kPermanent, 554, "5.5.1", "No recipients");
  // Needs the server cannot meet fail at once, before anything is sent.
  if (extensions_.size && extensions_.size_bytes_max != 0 &&
      message_.size_bytes > extensions_.size_bytes_max) {
    // RFC 1870 §6.1: the client should not send a message larger than the server's SIZE.
    return refuse(OutcomeKind::kPermanent, 552, "5.3.4",
                  Concat("Message size ", std::to_string(message_.size_bytes),
                         " exceeds the fixed maximum message size ",
                         std::to_string(extensions_.size_bytes_max), " of ", Peer()));
  }
  if (message_.needs_smtputf8 && !extensions_.smtputf8) {
    // RFC 6531 §3.2: no SMTPUTF8 on the server: the message cannot be delivered as is.
    return refuse(OutcomeKind::kPermanent, 553, "5.6.7",
                  Concat("Message needs SMTPUTF8 but ", Peer(), " does not offer it"));
  }
  if (message_.needs_8bitmime && !extensions_.eightbitmime) {
    // RFC 6152 §3: 8-bit content must not go to a server without 8BITMIME; converting to 7 bit
    // would break the DKIM signature added at acceptance, so the message bounces.
    return refuse(OutcomeKind::kPermanent, 554, "5.6.3",
                  Concat("Message has 8-bit content but ", Peer(), " does not offer 8BITMIME"));
  }

  state_ = State::kTransaction;
  AppendMail();
  pending_.push_back(Pending::kMail);
  if (extensions_.pipelining) {
    // RFC 2920 §3.1: MAIL, every RCPT and DATA in one write; replies come back in order.
    for (size_t i = 0; i < n; ++i) {
      AppendRcpt(i);
      pending_.push_back(Pending::kRcpt);
    }
    next_rcpt_send_ = n;
    actions_.write.append("DATA\r\n");
    pending_.push_back(Pending::kData);
  }
  // Behind a body (pipelined), the deadline of the body write or of the final reply ahead runs
  // on: what the session awaits first has not changed.
  if (!pipelined) ArmFor(pending_[pending_head_]);
  ProcessReplies();  // replies that arrived with the one that made the session idle
  return EndEvent();
}

const ClientActions& ClientSession::Quit() {
  BeginEvent();
  if (state_ == State::kIdle) {
    actions_.write.append("QUIT\r\n");
    state_ = State::kQuit;
    Arm(config_.timeouts.command_ms);
    ProcessReplies();
  } else if (state_ != State::kClosed && state_ != State::kQuit) {
    Abort(451, "4.3.0", Concat("Delivery stopped by the relay while waiting for ", Awaiting()),
          false);
  }
  return EndEvent();
}

// ---- replies ----

void ClientSession::ProtocolError() {
  // Transient: the recipients not yet answered may well be deliverable by a server that speaks
  // SMTP, or by this one later (RFC 3463 §3.6: 4.5.0 "other or undefined protocol status").
  Abort(kLostCode, "4.5.0",
        Concat("Protocol error from ", Peer(), " while waiting for ", Awaiting(), ": ",
               parser_.error()),
        false);
}

void ClientSession::ProcessReplies() {
  while (true) {
    switch (state_) {
      case State::kIdle:
        // Replies buffered behind the one that made the session idle wait for the driver's
        // next command (SendMessage processes them); only a reply while idle is unexpected.
        if (actions_.ready) return;
        break;
      case State::kTransaction:
        // The replies of a pipelined group wait until the body ahead of it is written.
        if (body_streaming_) return;
        break;
      case State::kGreeting:
      case State::kEhlo:
      case State::kHelo:
      case State::kStartTls:
      case State::kFinal:
      case State::kLoneDot:
      case State::kRset:
      case State::kQuit:
        break;
      default:
        return;  // the body is streaming, a handshake runs, or the session is closed
    }
    ServerReply reply;
    const ReplyParser::Status status = parser_.Next(&reply);
    if (status == ReplyParser::Status::kNeedMore) return;
    if (status == ReplyParser::Status::kError) {
      ProtocolError();
      return;
    }
    HandleReply(reply);
  }
}

void ClientSession::HandleReply(const ServerReply& reply) {
  // RFC 5321 §3.8: 421 means the server is closing the channel, whatever it answers.
  if (reply.code == 421 && state_ != State::kQuit && state_ != State::kIdle) {
    Abort(reply.code, reply.enhanced, Concat(Peer(), " said: ", ReplyText(reply)), true);
    return;
  }
  switch (state_) {
    case State::kGreeting:
      HandleGreeting(reply);
      return;
    case State::kEhlo:
      HandleEhlo(reply);
      return;
    case State::kHelo:
      HandleHelo(reply);
      return;
    case State::kStartTls:
      HandleStartTls(reply);
      return;
    case State::kTransaction:
      HandleTransactionReply(reply);
      return;
    case State::kFinal:
      HandleFinal(reply);
      return;
    case State::kLoneDot:
      // Every recipient already has its RCPT outcome; this only ends the empty transaction.
      FinishMessage(OutcomeKind::kTransient, kLostCode, kLostEnhanced, "No final reply", false);
      BecomeIdle();
      return;
    case State::kRset:
      if (reply.cls() == 2) {
        BecomeIdle();
      } else {
        actions_.write.append("QUIT\r\n");
        state_ = State::kQuit;
        Arm(config_.timeouts.command_ms);
      }
      return;
    case State::kIdle:
      // A reply nobody asked for (typically a 421 before an idle close): the connection is
      // no longer in step; no message is in flight.
      CloseNow();
      return;
    case State::kQuit:
      CloseNow();
      return;
    default:
      return;
  }
}

void ClientSession::UnexpectedReply(const ServerReply& reply) {
  // A success or intermediate reply where it makes no sense: the server is not speaking SMTP as
  // we understand it, and no outcome may claim the server's code for it.
  Abort(kLostCode, "4.5.0",
        Concat("Unexpected reply from ", Peer(), " while waiting for ", Awaiting(), ": ",
               std::to_string(reply.code), " ", ReplyText(reply)),
        false);
}

void ClientSession::HandleGreeting(const ServerReply& reply) {
  if (reply.code == 220) {
    SendEhlo();
    return;
  }
  if (reply.cls() < 4) {
    UnexpectedReply(reply);
    return;
  }
  // RFC 5321 §3.1: a 554 greeting means "no SMTP service here"; another MX of the destination
  // may serve, so it is transient for the destination, like any other refusal at this point.
  FailConnection(OutcomeKind::kTransient, reply.code, reply.enhanced,
                 Concat("Greeting refused by ", Peer(), ": ", std::to_string(reply.code), " ",
                        ReplyText(reply)),
                 true);
  actions_.write.append("QUIT\r\n");
  state_ = State::kQuit;
  Arm(config_.timeouts.command_ms);
}

void ClientSession::SendEhlo() {
  actions_.write.append(Concat("EHLO ", config_.ehlo_name, "\r\n"));
  state_ = State::kEhlo;
  Arm(config_.timeouts.command_ms);
}

void ClientSession::HandleEhlo(const ServerReply& reply) {
  if (reply.cls() == 2) {
    esmtp_ = true;
    extensions_ = ParseExtensions(reply);
    AfterGreetingDone();
    return;
  }
  if (reply.code == 500 || reply.code == 502) {
    // RFC 5321 §4.1.4: fall back to HELO only when EHLO is not understood.
    actions_.write.append(Concat("HELO ", config_.ehlo_name, "\r\n"));
    state_ = State::kHelo;
    Arm(config_.timeouts.command_ms);
    return;
  }
  if (reply.cls() < 4) {
    UnexpectedReply(reply);
    return;
  }
  FailConnection(
      FailureKind(reply), reply.code, reply.enhanced,
      Concat("EHLO refused by ", Peer(), ": ", std::to_string(reply.code), " ", ReplyText(reply)),
      true);
  actions_.write.append("QUIT\r\n");
  state_ = State::kQuit;
  Arm(config_.timeouts.command_ms);
}

void ClientSession::HandleHelo(const ServerReply& reply) {
  if (reply.cls() == 2) {
    esmtp_ = false;
    extensions_ = Extensions();
    AfterGreetingDone();
    return;
  }
  if (reply.cls() < 4) {
    UnexpectedReply(reply);
    return;
  }
  FailConnection(
      FailureKind(reply), reply.code, reply.enhanced,
      Concat("HELO refused by ", Peer(), ": ", std::to_string(reply.code), " ", ReplyText(reply)),
      true);
  actions_.write.append("QUIT\r\n");
  state_ = State::kQuit;
  Arm(config_.timeouts.command_ms);
}

void ClientSession::AfterGreetingDone() {
  const bool want_tls = config_.tls_policy != TlsPolicy::kDisabled && config_.tls_supported;
  if (!tls_active_ && want_tls && extensions_.starttls) {
    actions_.write.append("STARTTLS\r\n");
    state_ = State::kStartTls;
    Arm(config_.timeouts.command_ms);
    return;
  }
  if (!tls_active_ && config_.tls_policy == TlsPolicy::kRequired) {
    // Transient: the policy may change or another MX may offer TLS; the driver decides.
    FailConnection(
        OutcomeKind::kTransient, 454, "4.7.0",
        config_.tls_supported
            ? Concat("TLS required by policy but not offered by ", Peer())
            : Concat("TLS required by policy but this connection to ", Peer(), " cannot use TLS"),
        false);
    actions_.write.append("QUIT\r\n");
    state_ = State::kQuit;
    Arm(config_.timeouts.command_ms);
    return;
  }
  BecomeIdle();
}

void ClientSession::HandleStartTls(const ServerReply& reply) {
  if (reply.code == 220) {
    // Anything the server sent after its 220 arrived in plain text and could be an injected
    // reply (the client side of CVE-2011-0411): drop it.
    parser_.Clear();
    state_ = State::kTlsHandshake;
    actions_.start_tls = true;
    Arm(config_.timeouts.tls_handshake_ms);
    return;
  }
  if (reply.cls() < 4) {
    UnexpectedReply(reply);
    return;
  }
  if (config_.tls_policy == TlsPolicy::kRequired) {
    FailConnection(OutcomeKind::kTransient, reply.code, reply.enhanced,
                   Concat("TLS required by policy but STARTTLS refused by ", Peer(), ": ",
                          std::to_string(reply.code), " ", ReplyText(reply)),
                   true);
    actions_.write.append("QUIT\r\n");
    state_ = State::kQuit;
    Arm(config_.timeouts.command_ms);
    return;
  }
  // Opportunistic: RFC 3207 §4 lets the client go on without TLS in the same session.
  BecomeIdle();
}

void ClientSession::BecomeIdle() {
  state_ = State::kIdle;
  actions_.ready = true;
  Arm(0);
}

// ---- transaction ----

void ClientSession::AppendMail() {
  std::string& out = actions_.write;
  out.append("MAIL FROM:<").append(message_.mail_from).append(">");
  if (extensions_.size) out.append(" SIZE=").append(std::to_string(message_.size_bytes));
  if (message_.needs_8bitmime) out.append(" BODY=8BITMIME");  // RFC 6152 §2
  if (message_.needs_smtputf8) out.append(" SMTPUTF8");       // RFC 6531 §3.4
  if (extensions_.dsn) {  // RFC 3461 §5.2: passed on to a server that offers DSN
    if (message_.ret != DsnReturn::kUnspecified) {
      out.append(message_.ret == DsnReturn::kFull ? " RET=FULL" : " RET=HDRS");
    }
    if (!message_.envid.empty()) out.append(" ENVID=").append(EncodeXtext(message_.envid));
  }
  if (message_.require_tls && extensions_.requiretls) out.append(" REQUIRETLS");
  out.append("\r\n");
}

void ClientSession::AppendRcpt(size_t index) {
  std::string& out = actions_.write;
  out.append("RCPT TO:<").append(message_.recipients[index]).append(">");
  if (extensions_.dsn && index < message_.rcpt_params.size()) {
    const RcptParams& p = message_.rcpt_params[index];
    if (p.notify != 0) {
      out.append(" NOTIFY=");
      if ((p.notify & kNotifyNever) != 0) out.append("NEVER");
      const char* sep = "";
      for (const auto& [bit, name] :
           {std::pair{kNotifySuccess, "SUCCESS"}, std::pair{kNotifyFailure, "FAILURE"},
            std::pair{kNotifyDelay, "DELAY"}}) {
        if ((p.notify & bit) == 0) continue;
        out.append(sep).append(name);
        sep = ",";
      }
    }
    const size_t semi = p.orcpt.find(';');
    if (semi != std::string::npos) {  // addr-type ";" xtext (RFC 3461 §4.2)
      out.append(" ORCPT=")
          .append(p.orcpt, 0, semi + 1)
          .append(EncodeXtext(std::string_view(p.orcpt).substr(semi + 1)));
    }
  }
  out.append("\r\n");
}

void ClientSession::ArmFor(Pending pending) {
  switch (pending) {
    case Pending::kFinal:
      Arm(config_.timeouts.data_termination_ms);  // §4.5.3.2.6
      return;
    case Pending::kMail:
      Arm(config_.timeouts.mail_ms);  // RFC 5321 §4.5.3.2.2
      return;
    case Pending::kRcpt:
      Arm(config_.timeouts.rcpt_ms);  // §4.5.3.2.3
      return;
    case Pending::kData:
      Arm(config_.timeouts.data_initiation_ms);  // §4.5.3.2.4
      return;
  }
}

void ClientSession::SendNextCommand() {
  // Without PIPELINING: one command at a time (RFC 5321 §4.1.1).
  if (next_rcpt_send_ < message_.recipients.size()) {
    AppendRcpt(next_rcpt_send_++);
    pending_.push_back(Pending::kRcpt);
  } else {
    actions_.write.append("DATA\r\n");
    pending_.push_back(Pending::kData);
  }
  ArmFor(pending_[pending_head_]);
}

void ClientSession::HandleTransactionReply(const ServerReply& reply) {
  if (!EXPECT_OR_COUNT(pending_head_ < pending_.size())) {
    Abort(kLostCode, "4.5.0", Concat("Unexpected reply from ", Peer()), false);
    return;
  }
  const Pending what = pending_[pending_head_];
  // MAIL and RCPT succeed with any 2yz, DATA with 354 (RFC 5321 §4.2.1, §4.3.2); the other
  // positive class is a protocol violation.
  // The final reply of the message ahead (kFinal) succeeds with 2yz, like MAIL and RCPT.
  const bool positive = what == Pending::kData ? reply.code == 354 : reply.cls() == 2;
  if (reply.cls() < 4 && !positive) {
    UnexpectedReply(reply);
    return;
  }
  ++pending_head_;
  const bool pipelined = extensions_.pipelining;
  switch (what) {
    case Pending::kFinal:
      // The end of data closed the message ahead's transaction whatever the reply (RFC 5321
      // §4.1.1.4); the pipelined transaction goes on independently.
      if (reply.cls() == 2) {
        FinishAhead(OutcomeKind::kDelivered, reply.code, reply.enhanced, ReplyText(reply), true);
      } else {
        FinishAhead(FailureKind(reply), reply.code, reply.enhanced, ReplyText(reply), true);
      }
      if (pending_head_ == pending_.size()) {
        // The pipelined message was refused before it was sent (every recipient has its outcome).
        FinishMessage(OutcomeKind::kTransient, kLostCode, kLostEnhanced, "", false);
        BecomeIdle();
        return;
      }
      break;
    case Pending::kMail:
      if (reply.cls() == 2) {
        mail_accepted_ = true;
        if (!pipelined) SendNextCommand();
      } else {
        // Every recipient fails with MAIL's reply.
        mail_refused_ = true;
        for (size_t i = 0; i < outcomes_.size(); ++i) SetOutcome(i, reply);
        if (!pipelined) {
          FinishMessage(OutcomeKind::kTransient, kLostCode, kLostEnhanced, "", false);
          BecomeIdle();  // no transaction was opened: no RSET
          return;
        }
      }
      break;
    case Pending::kRcpt: {
      const size_t index = next_rcpt_reply_++;
      if (index >= outcomes_.size() || mail_refused_) break;
      if (reply.cls() == 2) {  // 250, or 251 "will forward" (§3.4)
        ++accepted_;
      } else {
        SetOutcome(index, reply);
      }
      if (!pipelined) {
        if (next_rcpt_send_ < message_.recipients.size() || accepted_ > 0) {
          SendNextCommand();
        } else {
          // Every RCPT refused: do not send DATA; close the open transaction with RSET.
          FinishMessage(OutcomeKind::kTransient, kLostCode, kLostEnhanced, "", false);
          actions_.write.append("RSET\r\n");
          state_ = State::kRset;
          Arm(config_.timeouts.command_ms);
          return;
        }
      }
      break;
    }
    case Pending::kData:
      if (reply.code == 354) {
        if (accepted_ > 0 && !mail_refused_) {
          state_ = State::kBody;
          actions_.send_body = true;
          actions_.pipeline_ready = can_pipeline();
          Arm(config_.timeouts.data_block_ms);  // RFC 5321 §4.5.3.2.5
          return;
        }
        // RFC 2920 §3.1: DATA was accepted although no recipient was: "the client SMTP should
        // send a single dot". That ends the transaction on the server (RFC 5321 §4.1.1.4), so
        // no RSET follows.
        actions_.write.append(".\r\n");
        state_ = State::kLoneDot;
        Arm(config_.timeouts.data_termination_ms);
        return;
      }
      // DATA refused: recipients that were accepted fail with its reply.
      FinishMessageWithReply(reply);
      if (mail_accepted_) {
        // MAIL opened a transaction that DATA did not end (RFC 2920 §3.1: "can just issue RSET").
        actions_.write.append("RSET\r\n");
        state_ = State::kRset;
        Arm(config_.timeouts.command_ms);
      } else {
        BecomeIdle();
      }
      return;
  }
  if (pending_head_ < pending_.size()) ArmFor(pending_[pending_head_]);
}

void ClientSession::HandleFinal(const ServerReply& reply) {
  // Whatever the reply, the end of data closed the transaction (RFC 5321 §4.1.1.4): no RSET.
  if (reply.cls() == 3) {
    UnexpectedReply(reply);
    return;
  }
  if (reply.cls() == 2) {
    FinishMessage(OutcomeKind::kDelivered, reply.code, reply.enhanced, ReplyText(reply), true);
  } else {
    FinishMessageWithReply(reply);
  }
  BecomeIdle();
}

// ---- outcomes ----

void ClientSession::SetOutcome(size_t index, const ServerReply& reply) {
  SetOutcome(index, FailureKind(reply), reply.code, reply.enhanced, ReplyText(reply), true);
}

void ClientSession::SetOutcome(size_t index, OutcomeKind kind, int code, std::string_view enhanced,
                               std::string_view text, bool from_peer) {
  if (index >= outcomes_.size() || has_outcome_[index]) return;
  FillOutcome(outcomes_[index], index, kind, code, enhanced, text, from_peer,
              config_.outcome_text_bytes_max);
  has_outcome_[index] = true;
}

void ClientSession::FinishMessage(OutcomeKind kind, int code, std::string_view enhanced,
                                  std::string_view text, bool from_peer) {
  if (!in_message_) return;
  for (size_t i = 0; i < outcomes_.size(); ++i) {
    SetOutcome(i, kind, code, enhanced, text, from_peer);
  }
  std::vector<Outcome> done = std::move(outcomes_);
  outcomes_.clear();
  has_outcome_.clear();
  pending_.clear();
  pending_head_ = 0;
  in_message_ = false;
  EmitDone(std::move(done));
}

void ClientSession::FinishAhead(OutcomeKind kind, int code, std::string_view enhanced,
                                std::string_view text, bool from_peer) {
  if (!ahead_open_) return;
  for (size_t i = 0; i < ahead_outcomes_.size(); ++i) {
    if (ahead_has_outcome_[i]) continue;
    FillOutcome(ahead_outcomes_[i], i, kind, code, enhanced, text, from_peer,
                config_.outcome_text_bytes_max);
  }
  std::vector<Outcome> done = std::move(ahead_outcomes_);
  ahead_outcomes_.clear();
  ahead_has_outcome_.clear();
  ahead_open_ = false;
  body_streaming_ = false;
  EmitDone(std::move(done));
}

void ClientSession::EmitDone(std::vector<Outcome> outcomes) {
  if (!actions_.message_done) {
    actions_.message_done = true;
    actions_.outcomes = std::move(outcomes);
  } else {
    // At most two messages are open, so at most two finish in one event.
    DCHECK(!actions_.next_message_done);
    actions_.next_message_done = true;
    actions_.next_outcomes = std::move(outcomes);
  }
  ++messages_done_;
}

void ClientSession::FinishMessageWithReply(const ServerReply& reply) {
  FinishMessage(FailureKind(reply), reply.code, reply.enhanced, ReplyText(reply), true);
}

void ClientSession::FailConnection(OutcomeKind kind, int code, std::string_view enhanced,
                                   std::string text, bool from_peer) {
  if (actions_.connection_failed) return;
  actions_.connection_failed = true;
  Outcome& outcome = actions_.connection_outcome;
  outcome.kind = kind;
  outcome.code = code;
  outcome.enhanced.assign(enhanced);
  outcome.text = text.size() <= config_.outcome_text_bytes_max
                     ? std::move(text)
                     : TruncateText(text, config_.outcome_text_bytes_max);
  outcome.from_peer = from_peer;
}

void ClientSession::Abort(int code, std::string_view enhanced, std::string text, bool from_peer) {
  // Only a 4xx code goes into a transient outcome (a protocol error gets 421 4.5.0).
  switch (state_) {
    case State::kNotConnected:
    case State::kGreeting:
    case State::kEhlo:
    case State::kHelo:
    case State::kStartTls:
    case State::kTlsHandshake:
      FailConnection(OutcomeKind::kTransient, code, enhanced, std::move(text), from_peer);
      break;
    default:
      // Connection lost or timed out before the final reply: every recipient without an
      // outcome is transient (RFC 5321 §4.1.1.4 and RFC 1047: it may or may not have been
      // delivered; retrying risks a duplicate, not a loss). The message ahead of a pipelined one
      // first: messages finish in order.
      FinishAhead(OutcomeKind::kTransient, code, enhanced, text, from_peer);
      FinishMessage(OutcomeKind::kTransient, code, enhanced, text, from_peer);
      break;
  }
  CloseNow();
}

void ClientSession::CloseNow() {
  state_ = State::kClosed;
  actions_.close = true;
  actions_.ready = false;
  Arm(0);
}

}  // namespace relay::smtp
