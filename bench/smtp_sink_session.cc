#include "bench/smtp_sink_session.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bench {

namespace {

// RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted; more is a choice.
constexpr size_t kRecipientsMax = 1000;

std::string_view StripCrlf(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// The text between '<' and '>' after "FROM:" / "TO:" (spaces allowed before '<'); false when
// there are no angle brackets.
bool ExtractPath(std::string_view args, std::string* path) {
  size_t open = args.find('<');
  if (open == std::string_view::npos) return false;
  size_t close = args.find('>', open);
  if (close == std::string_view::npos) return false;
  *path = std::string(args.substr(open + 1, close - open - 1));
  return true;
}

absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void Reply(std::string* out, std::string_view text) {
  out->append(text.data(), text.size());
  out->append("\r\n");
}

}  // namespace

SinkSession::SinkSession(const SinkSessionOptions& options, SinkSessionDelegate* delegate)
    : options_(options), delegate_(delegate) {}

void SinkSession::Greet(std::string* out) {
  Reply(out, absl::StrCat("220 ", options_.hostname, " ESMTP bench sink"));
}

void SinkSession::TlsStarted() {
  options_.tls_active = true;
  state_ = State::kCommand;
  greeted_ = false;
  authenticated_ = false;
  line_.clear();
  ResetTransaction();
}

void SinkSession::ResetTransaction() {
  envelope_.mail_from.clear();
  envelope_.rcpt_to.clear();
  mail_given_ = false;
  content_.clear();
  content_overflow_ = false;
}

void SinkSession::AppendContent(std::string_view bytes) {
  if (content_overflow_) return;
  if (content_.size() + bytes.size() > options_.message_bytes_max) {
    content_overflow_ = true;
    return;
  }
  content_.append(bytes.data(), bytes.size());
}

SinkSession::Action SinkSession::OnBytes(std::string_view bytes, std::string* out) {
  Action action = Action::kContinue;
  size_t i = 0;
  while (i < bytes.size() && action == Action::kContinue) {
    switch (state_) {
      case State::kStopped:
        return action;
      case State::kData:
        ConsumeData(bytes.substr(i), &i, out);
        break;
      case State::kBdat:
        ConsumeBdat(bytes.substr(i), &i, out);
        break;
      case State::kCommand: {
        const char* start = bytes.data() + i;
        const void* lf = std::memchr(start, '\n', bytes.size() - i);
        size_t take = lf == nullptr ? bytes.size() - i : static_cast<const char*>(lf) - start + 1;
        std::string_view piece(start, take);
        i += take;
        if (line_too_long_) {
          if (lf != nullptr) {
            line_too_long_ = false;
            // RFC 5321 §4.5.3.1.4 sets 512 octets; this sink allows more but not without bound.
            Reply(out, "500 5.5.6 Line too long");
          }
          break;
        }
        if (lf == nullptr) {
          line_.append(piece.data(), piece.size());
          if (line_.size() > kCommandLineBytesMax) {
            line_.clear();
            line_too_long_ = true;
          }
          break;
        }
        if (line_.empty()) {
          HandleCommand(StripCrlf(piece), out, &action);
        } else {
          line_.append(piece.data(), piece.size());
          std::string line = std::move(line_);
          line_.clear();
          HandleCommand(StripCrlf(line), out, &action);
        }
        break;
      }
    }
  }
  if (action != Action::kContinue) state_ = State::kStopped;
  return action;
}

void SinkSession::HandleCommand(std::string_view line, std::string* out, Action* action) {
  if (auth_pending_) {
    auth_pending_ = false;
    if (line == "*") {
      Reply(out, "501 5.0.0 Authentication cancelled");  // RFC 4954 §4
      return;
    }
    // Fall through to the credential check below with the line as the initial response.
    std::string decoded;
    std::string expected = absl::StrCat(std::string(1, '\0'), options_.auth_user,
                                        std::string(1, '\0'), options_.auth_password);
    if (absl::Base64Unescape(std::string(line), &decoded) &&
        (decoded == expected ||
         absl::EndsWith(decoded, expected))) {  // an authzid may precede the first NUL
      authenticated_ = true;
      Reply(out, "235 2.7.0 Authentication successful");
    } else {
      Reply(out, "535 5.7.8 Authentication credentials invalid");
    }
    return;
  }
  size_t space = line.find(' ');
  std::string verb = absl::AsciiStrToUpper(A(line.substr(0, space)));
  std::string_view args =
      space == std::string_view::npos ? std::string_view() : line.substr(space + 1);

  if (verb == "EHLO") {
    ResetTransaction();
    greeted_ = true;
    std::string r = absl::StrCat("250-", options_.hostname, "\r\n250-PIPELINING\r\n250-SIZE ",
                                 options_.message_bytes_max, "\r\n250-8BITMIME\r\n");
    if (options_.chunking) r += "250-CHUNKING\r\n";
    if (options_.starttls && !options_.tls_active) r += "250-STARTTLS\r\n";
    if (!options_.auth_user.empty()) r += "250-AUTH PLAIN\r\n";
    r += "250 ENHANCEDSTATUSCODES";
    Reply(out, r);
  } else if (verb == "HELO") {
    ResetTransaction();
    greeted_ = true;
    Reply(out, absl::StrCat("250 ", options_.hostname));
  } else if (verb == "MAIL") {
    std::string path;
    if (!greeted_) {
      Reply(out, "503 5.5.1 Send EHLO first");
    } else if (!options_.auth_user.empty() && !authenticated_) {
      Reply(out, "530 5.7.0 Authentication required");  // RFC 4954 §6
    } else if (mail_given_) {
      Reply(out, "503 5.5.1 Nested MAIL command");
    } else if (!absl::StartsWithIgnoreCase(A(args), "FROM:") || !ExtractPath(args, &path)) {
      Reply(out, "501 5.5.4 Syntax: MAIL FROM:<address>");
    } else {
      envelope_.mail_from = std::move(path);
      mail_given_ = true;
      Reply(out, "250 2.1.0 Ok");
    }
  } else if (verb == "RCPT") {
    std::string path;
    if (!mail_given_) {
      Reply(out, "503 5.5.1 Need MAIL before RCPT");
    } else if (!absl::StartsWithIgnoreCase(A(args), "TO:") || !ExtractPath(args, &path) ||
               path.empty()) {
      Reply(out, "501 5.5.4 Syntax: RCPT TO:<address>");
    } else if (envelope_.rcpt_to.size() >= kRecipientsMax) {
      Reply(out, "452 4.5.3 Too many recipients");
    } else {
      std::string verdict = delegate_->OnRecipient(path);
      if (!verdict.empty()) {
        Reply(out, verdict);
      } else {
        envelope_.rcpt_to.push_back(std::move(path));
        Reply(out, "250 2.1.5 Ok");
      }
    }
  } else if (verb == "DATA") {
    if (!args.empty()) {
      Reply(out, "501 5.5.4 DATA takes no arguments");
    } else if (!mail_given_ || envelope_.rcpt_to.empty()) {
      // RFC 2920 §3.1: with pipelining, DATA after failed RCPTs is refused this way.
      Reply(out, mail_given_ ? "554 5.5.1 No valid recipients" : "503 5.5.1 Need RCPT first");
    } else {
      state_ = State::kData;
      data_state_ = DataState::kLineStart;
      content_.clear();
      content_overflow_ = false;
      Reply(out, "354 End data with <CR><LF>.<CR><LF>");
    }
  } else if (verb == "BDAT") {
    size_t sp = args.find(' ');
    std::string_view size_text = args.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : args.substr(sp + 1);
    uint64_t size = 0;
    if (!options_.chunking) {
      Reply(out, "502 5.5.1 CHUNKING not offered");
    } else if (!absl::SimpleAtoi(A(size_text), &size) ||
               (!rest.empty() && !absl::EqualsIgnoreCase(A(rest), "LAST"))) {
      // The chunk size is unknown, so the stream cannot be resynchronised: RFC 3030 §2 leaves
      // closing as the only safe answer.
      Reply(out, "501 5.5.4 Syntax: BDAT <size> [LAST]");
      *action = Action::kClose;
    } else {
      state_ = State::kBdat;
      bdat_remaining_ = size;
      bdat_last_ = !rest.empty();
      if (bdat_remaining_ == 0) {
        size_t used = 0;
        ConsumeBdat(std::string_view(), &used, out);
      }
    }
  } else if (verb == "RSET") {
    ResetTransaction();
    Reply(out, "250 2.0.0 Ok");
  } else if (verb == "NOOP") {
    Reply(out, "250 2.0.0 Ok");
  } else if (verb == "QUIT") {
    Reply(out, "221 2.0.0 Bye");
    *action = Action::kClose;
  } else if (verb == "VRFY") {
    Reply(out, "252 2.5.2 Cannot VRFY user");
  } else if (verb == "HELP") {
    Reply(out, "214 2.0.0 See RFC 5321");
  } else if (verb == "STARTTLS") {
    if (!options_.starttls || options_.tls_active) {
      Reply(out, "502 5.5.1 STARTTLS not offered");
    } else if (!args.empty()) {
      Reply(out, "501 5.5.4 STARTTLS takes no arguments");
    } else {
      // RFC 3207 §4.2: anything pipelined after STARTTLS is discarded (OnBytes stops here).
      Reply(out, "220 2.0.0 Ready to start TLS");
      *action = Action::kStartTls;
    }
  } else if (verb == "AUTH") {
    size_t sp = args.find(' ');
    std::string mech = absl::AsciiStrToUpper(A(args.substr(0, sp)));
    if (options_.auth_user.empty()) {
      Reply(out, "502 5.5.1 AUTH not offered");
    } else if (authenticated_ || mail_given_) {
      Reply(out, "503 5.5.1 AUTH not allowed now");  // RFC 4954 §4
    } else if (mech != "PLAIN") {
      Reply(out, "504 5.5.4 Unrecognized authentication type");
    } else if (sp == std::string_view::npos) {
      auth_pending_ = true;
      Reply(out, "334 ");
    } else {
      auth_pending_ = true;
      HandleCommand(args.substr(sp + 1), out, action);
    }
  } else if (line.empty()) {
    Reply(out, "500 5.5.2 Empty command");
  } else {
    Reply(out, "500 5.5.2 Command not recognized");
  }
}

void SinkSession::ConsumeData(std::string_view bytes, size_t* used, std::string* out) {
  size_t i = 0;
  const size_t n = bytes.size();
  while (i < n) {
    switch (data_state_) {
      case DataState::kLineStart:
        if (bytes[i] == '.') {
          data_state_ = DataState::kDot;
          ++i;
        } else {
          data_state_ = DataState::kInLine;
        }
        break;
      case DataState::kDot:
        if (bytes[i] == '\r') {
          data_state_ = DataState::kDotCr;
          ++i;
        } else {
          // RFC 5321 §4.5.2: a line that starts with "." had it doubled; drop the first one.
          data_state_ = DataState::kInLine;
        }
        break;
      case DataState::kDotCr:
        if (bytes[i] == '\n') {
          ++i;
          *used += i;
          FinishMessage(out);
          return;
        }
        // "." CR not followed by LF is content, without the leading dot.
        AppendContent("\r");
        data_state_ = DataState::kInLine;
        break;
      case DataState::kInLine: {
        const void* lf = std::memchr(bytes.data() + i, '\n', n - i);
        size_t end = lf == nullptr ? n : static_cast<const char*>(lf) - bytes.data() + 1;
        AppendContent(bytes.substr(i, end - i));
        i = end;
        if (lf != nullptr) data_state_ = DataState::kLineStart;
        break;
      }
    }
  }
  *used += i;
}

void SinkSession::ConsumeBdat(std::string_view bytes, size_t* used, std::string* out) {
  size_t take = static_cast<size_t>(std::min<uint64_t>(bdat_remaining_, bytes.size()));
  AppendContent(bytes.substr(0, take));
  bdat_remaining_ -= take;
  *used += take;
  if (bdat_remaining_ > 0) return;
  state_ = State::kCommand;
  if (!mail_given_ || envelope_.rcpt_to.empty()) {
    // RFC 3030 §2: the chunk is read in full even when the transaction is not valid.
    Reply(out, mail_given_ ? "554 5.5.1 No valid recipients" : "503 5.5.1 Need RCPT first");
    content_.clear();
    return;
  }
  if (bdat_last_) {
    FinishMessage(out);
  } else {
    Reply(out, "250 2.0.0 Chunk received");
  }
}

void SinkSession::FinishMessage(std::string* out) {
  state_ = State::kCommand;
  if (content_overflow_) {
    Reply(out, "552 5.3.4 Message size exceeds fixed maximum message size");
  } else {
    std::string verdict = delegate_->OnMessage(envelope_, content_);
    ++messages_;
    if (verdict.empty()) {
      Reply(out, absl::StrCat("250 2.0.0 Ok: queued as ", messages_));
    } else {
      Reply(out, verdict);
    }
  }
  ResetTransaction();
}

}  // namespace bench
