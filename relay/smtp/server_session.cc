#include "relay/smtp/server_session.h"

#include <algorithm>
#include <cstring>

#include "relay/base/check.h"
#include "relay/smtp/text.h"

namespace relay::smtp {
namespace {

constexpr std::string_view kCrlf = "\r\n";

// Overwrites a secret before its memory is reused.
void Wipe(std::string& secret) {
  std::fill(secret.begin(), secret.end(), '\0');
  secret.clear();
}

// Finds the first CRLF in [data, data+size). Returns the index of its LF or npos. `prev_cr` says
// whether the byte before `data` was a CR (a CRLF split across buffers).
size_t FindCrlf(const char* data, size_t size, bool prev_cr) {
  size_t from = 0;
  while (from < size) {
    const void* hit = std::memchr(data + from, '\n', size - from);
    if (hit == nullptr) return std::string_view::npos;
    const size_t lf = static_cast<const char*>(hit) - data;
    if ((lf > 0 && data[lf - 1] == '\r') || (lf == 0 && prev_cr)) return lf;
    from = lf + 1;
  }
  return std::string_view::npos;
}

bool HasCrOrLf(std::string_view text) {
  return std::memchr(text.data(), '\r', text.size()) != nullptr ||
         std::memchr(text.data(), '\n', text.size()) != nullptr;
}

}  // namespace

ServerSession::ServerSession(const ServerConfig& config, ServerPolicy* policy)
    : config_(config), policy_(policy) {
  CHECK(policy_ != nullptr);
}

const ServerActions& ServerSession::BeginEvent() {
  actions_.write.clear();
  actions_.start_tls = false;
  if (actions_.check_credentials) {
    Wipe(actions_.credentials.password);
    actions_.credentials.user.clear();
    actions_.credentials.authzid.clear();
    actions_.check_credentials = false;
  }
  actions_.message_ready = false;
  actions_.close = false;
  return actions_;
}

const ServerActions& ServerSession::OnConnected(std::string_view peer_ip, bool tls_active) {
  BeginEvent();
  if (state_ != State::kNotConnected) return actions_;
  peer_ip_.assign(peer_ip.data(), peer_ip.size());
  tls_active_ = tls_active;
  state_ = State::kCommand;
  // RFC 5321 §4.3.1; no enhanced code in the greeting (RFC 2034 §3).
  AppendReply(actions_.write, 220, "", Concat(config_.hostname, " ESMTP ready"));
  ResumeBuffered();
  return actions_;
}

const ServerActions& ServerSession::OnBytes(std::string_view data) {
  BeginEvent();
  Feed(data);
  return actions_;
}

const ServerActions& ServerSession::OnTlsEstablished(std::string_view protocol_version,
                                                     std::string_view cipher) {
  BeginEvent();
  tls_version_.assign(protocol_version.data(), protocol_version.size());
  tls_cipher_.assign(cipher.data(), cipher.size());
  tls_active_ = true;
  if (state_ == State::kTlsPending) {
    // RFC 3207 §4.2: forget everything not obtained from the TLS negotiation itself. The client
    // must send EHLO again; no new greeting.
    ResetAll();
    state_ = State::kCommand;
    ClearInput();
  }
  return actions_;
}

const ServerActions& ServerSession::OnAuthResult(AuthResult result) {
  BeginEvent();
  if (state_ != State::kAuthPending) {
    EXPECT_OR_COUNT(state_ == State::kClosed);
    return actions_;
  }
  state_ = State::kCommand;
  switch (result) {
    case AuthResult::kOk:
      user_ = std::move(pending_auth_.user);
      Ok(235, "2.7.0", "Authentication successful");  // RFC 4954 §6
      break;
    case AuthResult::kFailed:
      Error(535, "5.7.8", "Authentication credentials invalid");
      break;
    case AuthResult::kTemporaryFailure:
      Ok(454, "4.7.0", "Temporary authentication failure");
      break;
  }
  pending_auth_ = CredentialCheck();
  ResumeBuffered();
  return actions_;
}

const ServerActions& ServerSession::OnMessageQueued(std::string_view queue_id) {
  return OnMessageTakenUnqueued(Concat("Ok: queued as ", queue_id));
}

const ServerActions& ServerSession::OnMessageTakenUnqueued(std::string_view text) {
  BeginEvent();
  if (state_ != State::kQueuePending) {
    EXPECT_OR_COUNT(state_ == State::kClosed);
    return actions_;
  }
  state_ = State::kCommand;
  Ok(250, "2.0.0", text);
  ResetTransaction();
  ResumeBuffered();
  return actions_;
}

const ServerActions& ServerSession::OnMessageRefused(const Reply& reply) {
  BeginEvent();
  if (state_ != State::kQueuePending) {
    EXPECT_OR_COUNT(state_ == State::kClosed);
    return actions_;
  }
  EXPECT_OR_COUNT(reply.code >= 400 && reply.code <= 599);
  state_ = State::kCommand;
  // Not the client's fault: not counted as an error.
  AppendReply(actions_.write, reply);
  ResetTransaction();
  ResumeBuffered();
  return actions_;
}

const ServerActions& ServerSession::OnTimeout() {
  BeginEvent();
  if (state_ == State::kClosed || state_ == State::kNotConnected) return actions_;
  Close421("4.4.2", "Error: timeout exceeded");  // RFC 5321 §4.5.3.2, RFC 3463 4.4.2
  return actions_;
}

void ServerSession::Feed(std::string_view data) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kTlsPending) return;  // CVE-2011-0411: nothing before TLS survives
  if (InputBuffered() > 0) {
    if (paused() || state_ == State::kNotConnected) {
      in_.append(data.data(), data.size());
      data = std::string_view();
    } else if (ExtendsBufferedLine(data)) {
      // Nothing in `data` can end the buffered line: it only grows. Parsing the buffer again for
      // each piece made a line that arrives a byte at a time cost its length squared (issue 13).
      in_.append(data.data(), data.size());
      data = std::string_view();
    } else {
      // Complete the buffered partial line with this chunk up to its first CRLF only, so that the
      // rest of the chunk is processed in place without another copy. Without a CRLF the whole
      // chunk joins the buffer (each state bounds what it keeps).
      const size_t lf = FindCrlf(data.data(), data.size(), in_.back() == '\r');
      const size_t take = lf == std::string_view::npos ? data.size() : lf + 1;
      in_.append(data.data(), take);
      data.remove_prefix(take);
      ResumeBuffered();
      if (InputBuffered() > 0 || state_ == State::kClosed || state_ == State::kTlsPending) {
        if (state_ != State::kClosed && state_ != State::kTlsPending) {
          in_.append(data.data(), data.size());
        }
        data = std::string_view();
      }
    }
  }
  if (!data.empty()) {
    const size_t used = Process(data);
    in_.append(data.data() + used, data.size() - used);
  }
  if (paused() && InputBuffered() > config_.limits.input_buffered_bytes_max) {
    ClearInput();
    Close421("4.7.0", "Too much pipelined input");
  }
}

bool ServerSession::ExtendsBufferedLine(std::string_view data) const {
  if (std::memchr(data.data(), '\n', data.size()) != nullptr) return false;
  const size_t total = InputBuffered() + data.size();
  switch (state_) {
    case State::kCommand:
    case State::kAuthResponse:
      // ProcessCommandInput waits for more below the scan bound, and starts discarding at it.
      return !discarding_line_ && total < std::max(config_.limits.command_line_bytes_max,
                                                   config_.limits.auth_line_bytes_max);
    case State::kData:
      // ProcessData keeps a partial line up to the line bound, and drops its head beyond.
      return total <= config_.limits.data_line_bytes_max;
    default:
      return false;
  }
}

void ServerSession::ResumeBuffered() {
  if (InputBuffered() == 0) return;
  in_start_ += Process(std::string_view(in_).substr(in_start_));
  if (in_start_ == in_.size() || state_ == State::kClosed || state_ == State::kTlsPending) {
    ClearInput();
  } else if (in_start_ >= in_.size() - in_start_) {
    // Each byte moves at most once per time the buffer halves: linear in the input overall.
    in_.erase(0, in_start_);
    in_start_ = 0;
  }
}

void ServerSession::ClearInput() {
  in_.clear();
  in_start_ = 0;
}

size_t ServerSession::Process(std::string_view in) {
  size_t pos = 0;
  while (pos < in.size()) {
    size_t used = 0;
    switch (state_) {
      case State::kCommand:
      case State::kAuthResponse:
        used = ProcessCommandInput(in.substr(pos));
        break;
      case State::kData:
        used = ProcessData(in.substr(pos));
        if (state_ == State::kData) return pos + used;  // a partial line is left
        break;
      case State::kBdatChunk:
        used = ProcessBdat(in.substr(pos));
        break;
      case State::kClosed:
      case State::kTlsPending:
        return in.size();  // discarded
      case State::kNotConnected:
      case State::kAuthPending:
      case State::kQueuePending:
        return pos;  // kept until the session resumes
    }
    if (used == 0) break;
    pos += used;
  }
  return pos;
}

size_t ServerSession::ProcessCommandInput(std::string_view in) {
  const ServerLimits& limits = config_.limits;
  if (discarding_line_) {
    const size_t lf = FindCrlf(in.data(), in.size(), discard_prev_cr_);
    if (lf == std::string_view::npos) {
      discard_prev_cr_ = in.back() == '\r';
      return in.size();
    }
    discarding_line_ = false;
    discard_prev_cr_ = false;
    if (state_ == State::kAuthResponse) {
      state_ = State::kCommand;
      auth_step_ = AuthStep::kNone;
      pending_auth_ = CredentialCheck();
    }
    Error(500, "5.5.2", "Line too long");  // RFC 5321 §4.5.3.1.4
    return lf + 1;
  }
  // AUTH lines may be longer than other commands (RFC 4954 §4); the verb is checked below.
  const size_t scan_max = std::max(limits.command_line_bytes_max, limits.auth_line_bytes_max);
  const size_t lf = FindCrlf(in.data(), std::min(in.size(), scan_max), false);
  if (lf == std::string_view::npos) {
    if (in.size() < scan_max) return 0;  // wait for the rest of the line
    discarding_line_ = true;
    discard_prev_cr_ = in[scan_max - 1] == '\r';
    return scan_max;
  }
  const std::string_view line = in.substr(0, lf - 1);
  const size_t line_bytes = lf + 1;
  if (state_ == State::kAuthResponse) {
    if (line_bytes > limits.auth_line_bytes_max || HasCrOrLf(line)) {
      state_ = State::kCommand;
      auth_step_ = AuthStep::kNone;
      pending_auth_ = CredentialCheck();
      Error(501, "5.5.2", "Invalid authentication response");
    } else {
      HandleAuthResponse(line);
    }
    return line_bytes;
  }
  if (line_bytes > limits.command_line_bytes_max &&
      (line_bytes > limits.auth_line_bytes_max || ParseCommandLine(line).verb != Verb::kAuth)) {
    Error(500, "5.5.2", "Line too long");
    return line_bytes;
  }
  if (HasCrOrLf(line)) {
    Error(500, "5.5.2", "Bare CR or LF in command line; only CRLF ends a line");
    return line_bytes;
  }
  HandleCommand(line);
  return line_bytes;
}

// The DATA hot loop: one memchr per line, bytes copied in runs between dot-stuffed lines.
size_t ServerSession::ProcessData(std::string_view in) {
  const char* const begin = in.data();
  const char* const end = begin + in.size();
  const char* p = begin;
  const char* run = begin;  // start of the bytes not yet copied into the message
  const size_t line_max = config_.limits.data_line_bytes_max;
  while (p < end) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (lf == nullptr) break;
    const size_t len = lf - p + 1;
    const bool crlf = len >= 2 && lf[-1] == '\r';
    if (line_start_ && p[0] == '.') {
      if (len == 3 && crlf) {
        // "CRLF . CRLF": the end of the message (RFC 5321 §4.1.1.4).
        AppendMessage(run, p - run);
        line_bytes_ = 0;
        FinishMessage();
        return lf + 1 - begin;
      }
      // Dot-unstuffing (RFC 5321 §4.5.2): drop the first dot of the line.
      AppendMessage(run, p - run);
      run = p + 1;
    }
    if (!crlf || (len > 2 && std::memchr(p, '\r', len - 2) != nullptr)) {
      data_error_ = DataError::kBareCrLf;
    }
    line_bytes_ += len;
    if (crlf) {
      if (line_bytes_ > line_max && data_error_ == DataError::kNone) {
        data_error_ = DataError::kLineTooLong;
      }
      line_bytes_ = 0;
      line_start_ = true;
    } else {
      line_start_ = false;  // a bare LF does not start a line
    }
    p = lf + 1;
  }
  AppendMessage(run, p - run);
  // A partial line stays in the input buffer, unless it is already longer than any line may be:
  // then its head is dropped (the message fails anyway) keeping the last byte, which may be CR.
  const size_t partial = end - p;
  if (partial > line_max) {
    const size_t drop = partial - 1;
    if (std::memchr(p, '\r', drop) != nullptr) data_error_ = DataError::kBareCrLf;
    if (data_error_ == DataError::kNone) data_error_ = DataError::kLineTooLong;
    line_bytes_ += drop;
    line_start_ = false;
    p += drop;
  }
  return p - begin;
}

void ServerSession::AppendMessage(const char* data, size_t size) {
  if (size == 0 || data_error_ != DataError::kNone) return;
  if (message_buffer_.size() + size > config_.limits.message_bytes_max) {
    data_error_ = DataError::kTooBig;
    return;
  }
  message_buffer_.append(data, size);
}

size_t ServerSession::ProcessBdat(std::string_view in) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), bdat_remaining_bytes_));
  if (bdat_error_.code == 0) {
    ScanBinary(in.data(), n);
    AppendMessage(in.data(), n);
  }
  bdat_remaining_bytes_ -= n;
  if (bdat_remaining_bytes_ == 0) FinishBdatChunk();
  return n;
}

// BDAT content is counted, not terminated, but it is relayed later with DATA, so the same line
// rules apply: CRLF only, bounded line length.
void ServerSession::ScanBinary(const char* data, size_t size) {
  if (size == 0 || data_error_ == DataError::kBareCrLf) return;
  const size_t line_max = config_.limits.data_line_bytes_max;
  if (prev_cr_ && data[0] != '\n') {
    data_error_ = DataError::kBareCrLf;
    return;
  }
  // Every CR must be followed by LF (a CR ending this piece is checked with the next one).
  for (const char* cr = static_cast<const char*>(std::memchr(data, '\r', size)); cr != nullptr;
       cr = static_cast<const char*>(std::memchr(cr + 1, '\r', data + size - cr - 1))) {
    if (cr + 1 < data + size && cr[1] != '\n') {
      data_error_ = DataError::kBareCrLf;
      return;
    }
  }
  // Every LF must follow a CR; lines are bounded.
  size_t line_begin = 0;
  for (const char* lf = static_cast<const char*>(std::memchr(data, '\n', size)); lf != nullptr;
       lf = static_cast<const char*>(std::memchr(lf + 1, '\n', data + size - lf - 1))) {
    const size_t i = lf - data;
    if (!(i > 0 ? data[i - 1] == '\r' : prev_cr_)) {
      data_error_ = DataError::kBareCrLf;
      return;
    }
    line_bytes_ += i + 1 - line_begin;
    if (line_bytes_ > line_max && data_error_ == DataError::kNone) {
      data_error_ = DataError::kLineTooLong;
    }
    line_bytes_ = 0;
    line_begin = i + 1;
  }
  line_bytes_ += size - line_begin;
  if (line_bytes_ > line_max && data_error_ == DataError::kNone) {
    data_error_ = DataError::kLineTooLong;
  }
  prev_cr_ = data[size - 1] == '\r';
}

void ServerSession::FinishBdatChunk() {
  state_ = State::kCommand;
  if (bdat_error_.code != 0) {
    const Reply reply = bdat_error_;
    bdat_error_ = Reply();
    if (bdat_error_counts_) {
      Error(reply.code, reply.enhanced, reply.text);
    } else {
      AppendReply(actions_.write, reply);
    }
    return;
  }
  if (data_error_ == DataError::kTooBig) {
    // Refused as soon as the limit is crossed (RFC 3030 §2 allows it per chunk).
    ResetTransaction();
    bdat_failed_ = true;
    Error(552, "5.3.4", "Message size exceeds fixed maximum message size");
    return;
  }
  if (!bdat_last_) {
    Ok(250, "2.0.0", Concat(std::to_string(bdat_chunk_bytes_), " octets received"));
    return;
  }
  if (prev_cr_) data_error_ = DataError::kBareCrLf;  // the content ended in a bare CR
  // A message must end with CRLF to be relayed with DATA later.
  if (data_error_ == DataError::kNone && !message_buffer_.empty() &&
      !std::string_view(message_buffer_).ends_with(kCrlf)) {
    AppendMessage(kCrlf.data(), kCrlf.size());
  }
  FinishMessage();
}

void ServerSession::FinishMessage() {
  state_ = State::kCommand;
  switch (data_error_) {
    case DataError::kNone:
      message_ = message_buffer_;
      actions_.message_ready = true;
      state_ = State::kQueuePending;
      return;
    case DataError::kBareCrLf:
      ResetTransaction();
      Error(550, "5.5.2", "Message refused: bare CR or LF in content");
      return;
    case DataError::kLineTooLong:
      ResetTransaction();
      Error(500, "5.5.2",
            Concat("Message refused: line longer than ",
                   std::to_string(std::max<size_t>(config_.limits.data_line_bytes_max, 2) - 2),
                   " octets"));
      return;
    case DataError::kTooBig:
      ResetTransaction();
      Error(552, "5.3.4", "Message size exceeds fixed maximum message size");
      return;
  }
}

void ServerSession::BeginMessage() {
  message_buffer_.clear();  // keeps its capacity
  message_ = std::string_view();
  data_error_ = DataError::kNone;
  line_start_ = true;
  line_bytes_ = 0;
  prev_cr_ = false;
}

void ServerSession::ResetTransaction() {
  in_transaction_ = false;
  bdat_failed_ = false;
  envelope_.mail_from.clear();
  envelope_.params = MailParams();
  envelope_.recipients.clear();
  envelope_.rcpt_params.clear();
  envelope_.chunked = false;
  data_error_ = DataError::kNone;
}

void ServerSession::ResetAll() {
  ResetTransaction();
  greeted_ = Greeted::kNone;
  ehlo_name_.clear();
  user_.clear();
  auth_step_ = AuthStep::kNone;
  pending_auth_ = CredentialCheck();
  discarding_line_ = false;
  discard_prev_cr_ = false;
}

void ServerSession::Ok(int code, std::string_view enhanced, std::string_view text) {
  AppendReply(actions_.write, code, enhanced, text);
}

void ServerSession::Error(int code, std::string_view enhanced, std::string_view text) {
  AppendReply(actions_.write, code, enhanced, text);
  ++errors_;
  if (errors_ >= config_.limits.errors_max && state_ != State::kClosed) {
    Close421("4.7.0", "Too many errors, closing connection");
  }
}

void ServerSession::Close421(std::string_view enhanced, std::string_view text) {
  AppendReply(actions_.write, 421, enhanced, Concat(config_.hostname, " ", text));
  actions_.close = true;
  state_ = State::kClosed;
}

void ServerSession::HandleCommand(std::string_view line) {
  const CommandLine cmd = ParseCommandLine(line);
  const std::string_view arg = cmd.argument;
  switch (cmd.verb) {
    case Verb::kEhlo:
      return HandleEhlo(arg, /*extended=*/true);
    case Verb::kHelo:
      return HandleEhlo(arg, /*extended=*/false);
    case Verb::kMail:
      return HandleMail(arg);
    case Verb::kRcpt:
      return HandleRcpt(arg);
    case Verb::kData:
      return HandleData(arg);
    case Verb::kBdat:
      return HandleBdat(arg);
    case Verb::kRset:
      if (!arg.empty()) return Error(501, "5.5.4", "Syntax: RSET");
      ResetTransaction();
      return Ok(250, "2.0.0", "Ok");
    case Verb::kNoop:
      return Ok(250, "2.0.0", "Ok");  // an argument is allowed and ignored (§4.1.1.9)
    case Verb::kQuit:
      if (!arg.empty()) return Error(501, "5.5.4", "Syntax: QUIT");
      Ok(221, "2.0.0", "Bye");
      actions_.close = true;
      state_ = State::kClosed;
      return;
    case Verb::kVrfy:
      if (arg.empty()) return Error(501, "5.5.4", "Syntax: VRFY address");
      // RFC 5321 §3.5.3: 252 when the server will not verify.
      return Ok(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
    case Verb::kExpn:
      return Error(502, "5.5.1", "EXPN not supported");
    case Verb::kHelp:
      return Ok(214, "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
    case Verb::kStartTls:
      return HandleStartTls(arg);
    case Verb::kAuth:
      return HandleAuth(arg);
    case Verb::kUnknown:
      return Error(500, "5.5.2", "Command unrecognized");
  }
}

void ServerSession::HandleEhlo(std::string_view arg, bool extended) {
  if (!IsValidHeloArgument(arg)) {
    return Error(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
  }
  ResetTransaction();  // RFC 5321 §4.1.4: EHLO resets like RSET
  ehlo_name_.assign(arg.data(), arg.size());
  greeted_ = extended ? Greeted::kEhlo : Greeted::kHelo;
  if (!extended) {
    return AppendReply(actions_.write, 250, "", config_.hostname);
  }
  const std::string size_line = Concat("SIZE ", std::to_string(config_.limits.message_bytes_max));
  std::string_view lines[14];
  size_t n = 0;
  lines[n++] = config_.hostname;
  lines[n++] = "PIPELINING";
  lines[n++] = size_line;
  lines[n++] = "8BITMIME";
  lines[n++] = "SMTPUTF8";
  lines[n++] = "ENHANCEDSTATUSCODES";
  lines[n++] = "CHUNKING";
  if (config_.dsn) lines[n++] = "DSN";
  if (config_.campaigns) lines[n++] = "XCAMPAIGN";
  if (config_.requiretls && tls_active_) lines[n++] = "REQUIRETLS";  // RFC 8689 §4.1: under TLS
  if (config_.tls_available && !tls_active_) lines[n++] = "STARTTLS";
  if (config_.auth_enabled && (tls_active_ || !config_.auth_requires_tls)) {
    lines[n++] = "AUTH PLAIN LOGIN";
  }
  AppendMultilineReply(actions_.write, 250, lines, n);
}

void ServerSession::HandleMail(std::string_view arg) {
  if (greeted_ == Greeted::kNone) return Error(503, "5.5.1", "Send HELO/EHLO first");
  if (in_transaction_) return Error(503, "5.5.1", "Nested MAIL command");
  if (config_.auth_required && !authenticated()) {
    return Error(530, "5.7.0", "Authentication required");  // RFC 4954 §6
  }
  MailCommand mail;
  switch (ParseMailArgument(arg, &mail)) {
    case ArgError::kNone:
      break;
    case ArgError::kPathSyntax:
    case ArgError::kPathTooLong:
    case ArgError::kNullNotAllowed:
      return Error(501, "5.1.7", "Bad sender address syntax");
    case ArgError::kParamUnknown:
      return Error(555, "5.5.4", "Unsupported MAIL parameter");  // RFC 5321 §4.1.1.11
    case ArgError::kSyntax:
      return Error(501, "5.5.4", "Syntax: MAIL FROM:<address>");
    case ArgError::kParamSyntax:
    case ArgError::kParamDuplicate:
      return Error(501, "5.5.4", "Bad MAIL parameter");
  }
  const MailParams& params = mail.params;
  const bool dsn_params = params.ret != DsnReturn::kUnspecified || params.envid;
  const bool has_params = params.size_bytes || params.body != BodyType::kUnspecified ||
                          params.smtputf8 || params.auth || params.campaign || dsn_params ||
                          params.requiretls;
  if (has_params && greeted_ != Greeted::kEhlo) {
    return Error(555, "5.5.4", "MAIL parameters need EHLO");
  }
  if ((params.campaign && !config_.campaigns) || (dsn_params && !config_.dsn) ||
      (params.requiretls && !config_.requiretls)) {
    return Error(555, "5.5.4", "Unsupported MAIL parameter");  // not advertised
  }
  if (params.requiretls && !tls_active_) {
    return Error(530, "5.7.10", "REQUIRETLS needs a TLS session");  // RFC 8689 §4.1
  }
  if (params.size_bytes && *params.size_bytes > config_.limits.message_bytes_max) {
    return Error(552, "5.3.4", "Message size exceeds fixed maximum message size");  // RFC 1870
  }
  if (mail.path.non_ascii && !params.smtputf8) {
    return Error(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");  // RFC 6531 §3.7.4.1
  }
  if (authenticated() && !policy_->MaySendAs(user_, mail.path.address)) {
    return Error(550, "5.7.1", "Sender address not allowed for this user");
  }
  in_transaction_ = true;
  envelope_.mail_from = std::move(mail.path.address);
  envelope_.params = std::move(mail.params);
  envelope_.recipients.clear();
  envelope_.rcpt_params.clear();
  envelope_.chunked = false;
  policy_->OnMailFrom(envelope_.mail_from);
  Ok(250, "2.1.0", "Ok");
}

void ServerSession::HandleRcpt(std::string_view arg) {
  if (!in_transaction_) return Error(503, "5.5.1", "Need MAIL command");
  RcptCommand rcpt;
  switch (ParseRcptArgument(arg, &rcpt)) {
    case ArgError::kNone:
      break;
    case ArgError::kPathSyntax:
    case ArgError::kPathTooLong:
    case ArgError::kNullNotAllowed:
      return Error(501, "5.1.3", "Bad recipient address syntax");
    case ArgError::kParamUnknown:
      return Error(555, "5.5.4", "Unsupported RCPT parameter");
    case ArgError::kSyntax:
      return Error(501, "5.5.4", "Syntax: RCPT TO:<address>");
    case ArgError::kParamSyntax:
    case ArgError::kParamDuplicate:
      return Error(501, "5.5.4", "Bad RCPT parameter");
  }
  const bool dsn_params = rcpt.params.notify != 0 || !rcpt.params.orcpt.empty();
  if (dsn_params && (greeted_ != Greeted::kEhlo || !config_.dsn)) {
    return Error(555, "5.5.4", "Unsupported RCPT parameter");  // DSN not advertised
  }
  if (rcpt.path.non_ascii && !envelope_.params.smtputf8) {
    return Error(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
  }
  if (envelope_.recipients.size() >= config_.limits.recipients_max) {
    // RFC 5321 §4.5.3.1.10: the client sends the rest in another transaction; not an error.
    return Ok(452, "4.5.3", "Too many recipients");
  }
  switch (policy_->CheckRecipient(rcpt.path.address)) {
    case RcptDecision::kAccept:
      break;
    case RcptDecision::kUnknownUser:
      return Error(550, "5.1.1", "Recipient address rejected: user unknown");
    case RcptDecision::kRelayDenied:
      // RFC 5321 §3.6.2 has no relaying without authorisation; 550 as for a refused mailbox.
      return Error(550, "5.7.1", "Relay access denied");
    case RcptDecision::kTemporaryFailure:
      return Ok(451, "4.3.0", "Temporary failure, try again later");
    case RcptDecision::kSuppressed:
      // The sender's own list said no: a normal answer about this address (the client goes on
      // with the others), not an error that counts toward errors_max.
      return Ok(550, "5.7.1", policy_->RefusalText());
    case RcptDecision::kSeparately:
      // RFC 5321 §4.5.3.1.10's answer to "too many": the client sends this one in another
      // transaction.
      return Ok(452, "4.5.3", "Send this recipient in a transaction of its own");
  }
  envelope_.recipients.push_back(std::move(rcpt.path.address));
  envelope_.rcpt_params.push_back(std::move(rcpt.params));
  Ok(250, "2.1.5", "Ok");
}

void ServerSession::HandleData(std::string_view arg) {
  if (!arg.empty()) return Error(501, "5.5.4", "Syntax: DATA");
  if (!in_transaction_) return Error(503, "5.5.1", "Need MAIL command");
  if (envelope_.chunked) return Error(503, "5.5.1", "DATA not allowed after BDAT");  // RFC 3030
  if (envelope_.recipients.empty()) {
    return Error(554, "5.5.1", "No valid recipients");  // RFC 2920 §3.1
  }
  BeginMessage();
  state_ = State::kData;
  Ok(354, "", "End data with <CR><LF>.<CR><LF>");
}

void ServerSession::HandleBdat(std::string_view arg) {
  uint64_t chunk_bytes = 0;
  bool last = false;
  if (!ParseBdatArgument(arg, &chunk_bytes, &last)) {
    // The chunk's length is unknown, so its bytes cannot be skipped: they will be read as
    // commands and fail one by one.
    return Error(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
  }
  bdat_error_ = Reply();
  bdat_error_counts_ = true;
  if (!in_transaction_ && bdat_failed_) {
    // Chunks a pipelining client sent before it saw the failure (RFC 3030 §2): consumed and
    // answered like the failed one, not counted again.
    bdat_error_ = Reply{552, "5.3.4", "Message size exceeds fixed maximum message size"};
    bdat_error_counts_ = false;
  } else if (!in_transaction_) {
    bdat_error_ = Reply{503, "5.5.1", "Need MAIL command"};
  } else if (envelope_.recipients.empty()) {
    bdat_error_ = Reply{554, "5.5.1", "No valid recipients"};
    ResetTransaction();
  } else if (!envelope_.chunked) {
    envelope_.chunked = true;
    BeginMessage();
  }
  // The chunk is consumed whatever happens (RFC 3030 §2).
  bdat_chunk_bytes_ = chunk_bytes;
  bdat_remaining_bytes_ = chunk_bytes;
  bdat_last_ = last;
  state_ = State::kBdatChunk;
  if (chunk_bytes == 0) FinishBdatChunk();
}

void ServerSession::HandleStartTls(std::string_view arg) {
  if (!arg.empty()) return Error(501, "5.5.4", "Syntax: STARTTLS");
  if (tls_active_) return Error(503, "5.5.1", "TLS already active");
  if (!config_.tls_available) return Error(502, "5.5.1", "STARTTLS not available");
  Ok(220, "2.0.0", "Ready to start TLS");
  actions_.start_tls = true;
  state_ = State::kTlsPending;  // Process() discards whatever follows (CVE-2011-0411)
}

void ServerSession::HandleAuth(std::string_view arg) {
  if (!config_.auth_enabled) return Error(502, "5.5.1", "AUTH not available");
  if (greeted_ != Greeted::kEhlo) return Error(503, "5.5.1", "Send EHLO first");
  if (authenticated()) return Error(503, "5.5.1", "Already authenticated");  // RFC 4954 §4
  if (in_transaction_) return Error(503, "5.5.1", "AUTH not permitted during a mail transaction");
  if (config_.auth_requires_tls && !tls_active_) {
    // RFC 4954 §6: encryption required for requested authentication mechanism.
    return Error(538, "5.7.11", "Encryption required for requested authentication mechanism");
  }
  const size_t space = arg.find(' ');
  const std::string_view name = arg.substr(0, space);
  std::string_view initial;
  const bool has_initial = space != std::string_view::npos;
  if (has_initial) initial = arg.substr(space + 1);
  if (name.empty()) return Error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
  const SaslMechanism mechanism = ParseSaslMechanism(name);
  if (mechanism == SaslMechanism::kUnknown) {
    return Error(504, "5.5.4", "Unrecognized authentication type");
  }
  pending_auth_ = CredentialCheck();
  pending_auth_.mechanism = mechanism;
  if (!has_initial) {
    state_ = State::kAuthResponse;
    if (mechanism == SaslMechanism::kPlain) {
      auth_step_ = AuthStep::kPlain;
      return AppendReply(actions_.write, 334, "", "");
    }
    auth_step_ = AuthStep::kLoginUser;
    return AppendReply(actions_.write, 334, "", "VXNlcm5hbWU6");  // "Username:"
  }
  auth_step_ = mechanism == SaslMechanism::kPlain ? AuthStep::kPlain : AuthStep::kLoginUser;
  state_ = State::kAuthResponse;
  HandleAuthResponse(initial);
}

void ServerSession::HandleAuthResponse(std::string_view line) {
  const AuthStep step = auth_step_;
  auto fail = [&](int code, std::string_view enhanced, std::string_view text) {
    state_ = State::kCommand;
    auth_step_ = AuthStep::kNone;
    pending_auth_ = CredentialCheck();
    Wipe(scratch_);
    Error(code, enhanced, text);
  };
  switch (DecodeSaslResponse(line, &scratch_)) {
    case SaslResponse::kOk:
      break;
    case SaslResponse::kCancelled:
      return fail(501, "5.0.0", "Authentication cancelled");  // RFC 4954 §4
    case SaslResponse::kBadBase64:
    case SaslResponse::kMalformed:
      return fail(501, "5.5.2", "Cannot decode response");
  }
  switch (step) {
    case AuthStep::kPlain: {
      PlainCredentials creds;
      if (!SplitPlain(scratch_, &creds)) return fail(501, "5.5.2", "Malformed PLAIN response");
      Wipe(scratch_);
      RequestCredentials(SaslMechanism::kPlain, std::move(creds.authzid), std::move(creds.authcid),
                         std::move(creds.password));
      return;
    }
    case AuthStep::kLoginUser:
      if (scratch_.empty() || scratch_.find('\0') != std::string::npos) {
        return fail(501, "5.5.2", "Malformed LOGIN response");
      }
      pending_auth_.user = std::move(scratch_);
      scratch_.clear();
      auth_step_ = AuthStep::kLoginPassword;
      return AppendReply(actions_.write, 334, "", "UGFzc3dvcmQ6");  // "Password:"
    case AuthStep::kLoginPassword: {
      if (scratch_.empty() || scratch_.find('\0') != std::string::npos) {
        return fail(501, "5.5.2", "Malformed LOGIN response");
      }
      std::string password = std::move(scratch_);
      scratch_.clear();
      RequestCredentials(SaslMechanism::kLogin, "", std::move(pending_auth_.user),
                         std::move(password));
      return;
    }
    case AuthStep::kNone:
      EXPECT_OR_COUNT(false);
      return fail(503, "5.5.1", "No authentication in progress");
  }
}

void ServerSession::RequestCredentials(SaslMechanism mechanism, std::string authzid,
                                       std::string user, std::string password) {
  auth_step_ = AuthStep::kNone;
  pending_auth_.mechanism = mechanism;
  pending_auth_.user = user;
  actions_.check_credentials = true;
  actions_.credentials.mechanism = mechanism;
  actions_.credentials.authzid = std::move(authzid);
  actions_.credentials.user = std::move(user);
  actions_.credentials.password = std::move(password);
  Wipe(password);
  state_ = State::kAuthPending;
}

}  // namespace relay::smtp
