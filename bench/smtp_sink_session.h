// The SMTP server side of the bench sink, as a state machine with no I/O: the driver feeds it the
// bytes a client sent and sends the replies it appends. Small and fast rather than complete: it
// accepts any envelope, but it is exact about what a load test depends on:
//   - PIPELINING (RFC 2920): every complete command in a read is answered, in order, and replies
//     are batched into one output;
//   - DATA (RFC 5321 §4.1.1.4, §4.5.2): the end marker CRLF.CRLF and dot-unstuffing are found
//     across any read boundary; a bare-LF "." line does not end the message;
//   - BDAT (RFC 3030 CHUNKING): chunk bytes are taken raw, across reads, and may arrive in the same
//     read as the command;
//   - STARTTLS (RFC 3207): bytes pipelined after STARTTLS are discarded, and the session returns
//     to the greeted-but-no-EHLO state once the driver has TLS running.
// What happens to a complete message is the delegate's decision (accept it, or answer with a
// scripted failure), which is where the sink's counting and fault injection live.
//
// Threads: one session per connection, on the connection's thread. Limits: command lines longer
// than kCommandLineBytesMax get 500 and are discarded; a message larger than
// options.message_bytes_max gets 552 at its end (RFC 5321 §4.5.3.1.7) and is not delivered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

struct SinkEnvelope {
  std::string mail_from;
  std::vector<std::string> rcpt_to;
};

class SinkSessionDelegate {
 public:
  virtual ~SinkSessionDelegate() = default;
  // A complete message (dot-unstuffed or the concatenated chunks). Returns the reply line(s) to
  // send, without the final CRLF; empty means the default "250 2.0.0 Ok: queued".
  virtual std::string OnMessage(const SinkEnvelope& envelope, std::string_view content) = 0;
  // Checked for each RCPT TO; a non-empty reply rejects that recipient with it.
  virtual std::string OnRecipient(std::string_view address) { return {}; }
};

struct SinkSessionOptions {
  std::string hostname = "sink.bench.test";
  bool chunking = true;
  bool starttls = false;    // offer STARTTLS (the driver must be able to do it)
  bool tls_active = false;  // implicit TLS or after STARTTLS: do not offer it again
  // AUTH PLAIN (RFC 4954) with these credentials when non-empty.
  std::string auth_user;
  std::string auth_password;
  size_t message_bytes_max = 64 * 1024 * 1024;
};

class SinkSession {
 public:
  static constexpr size_t kCommandLineBytesMax = 4096;

  enum class Action {
    kContinue,
    kClose,     // send the pending output, then close (QUIT or a fatal error)
    kStartTls,  // send the pending output (220), then start TLS; call TlsStarted() when it runs
  };

  SinkSession(const SinkSessionOptions& options, SinkSessionDelegate* delegate);

  // The 220 greeting (RFC 5321 §4.3.1), appended to *out.
  void Greet(std::string* out);
  // Consumes `bytes`, appending replies to *out. After kClose or kStartTls the rest of `bytes`
  // has been discarded and further input is ignored until TlsStarted().
  Action OnBytes(std::string_view bytes, std::string* out);
  // TLS is now up: the client must say EHLO again (RFC 3207 §4.2).
  void TlsStarted();

  // Counters for this connection.
  uint64_t messages() const { return messages_; }
  bool in_transaction() const { return !envelope_.mail_from.empty() || mail_given_; }

 private:
  enum class State { kCommand, kData, kBdat, kStopped };
  // Sub-states of DATA while looking for CRLF "." CRLF.
  enum class DataState { kLineStart, kInLine, kDot, kDotCr };

  void HandleCommand(std::string_view line, std::string* out, Action* action);
  void ConsumeData(std::string_view bytes, size_t* used, std::string* out);
  void ConsumeBdat(std::string_view bytes, size_t* used, std::string* out);
  void FinishMessage(std::string* out);
  void ResetTransaction();
  void AppendContent(std::string_view bytes);

  SinkSessionOptions options_;
  SinkSessionDelegate* delegate_;
  State state_ = State::kCommand;
  DataState data_state_ = DataState::kLineStart;
  bool greeted_ = false;  // EHLO/HELO seen
  bool authenticated_ = false;
  bool mail_given_ = false;
  bool auth_pending_ = false;  // "AUTH PLAIN" without initial response: next line is it
  bool line_too_long_ = false;
  bool bdat_last_ = false;
  bool content_overflow_ = false;
  uint64_t bdat_remaining_ = 0;
  std::string line_;     // partial command line
  std::string content_;  // the message being received (keeps its capacity)
  SinkEnvelope envelope_;
  uint64_t messages_ = 0;
};

}  // namespace bench
