// ReplyParser: splits the bytes an SMTP server sends into replies (RFC 5321 §4.2), for the
// client session.
//
// Contract. One parser per connection, one thread. Feed() takes bytes cut anywhere (several
// pipelined replies in one chunk, a reply split over many chunks, RFC 2920 §3.1); Next() returns
// complete replies in order. Lines end with CRLF; a bare LF is also accepted as a line end (a
// client is liberal in what it accepts, RFC 5321 §4.5.3.1 asks for robustness and some servers
// send LF). A multi-line reply is "code-text" lines then one "code SP text" line, all with the
// same code (§4.2.1). An enhanced status code (RFC 2034 §4, RFC 3463) is recognised at the start
// of the first line's text when its class agrees with the reply code, and removed from every line
// that repeats it. Malformed input (no 3-digit code, codes that differ inside one reply, a line
// over reply_line_bytes_max, more than reply_lines_max lines) makes the parser fail for good:
// the connection can no longer be trusted.
//
// Memory. The parser holds the lines of the reply in progress and the bytes not parsed yet; a
// Feed that would make them more than reply_bytes_max fails the parser instead of buffering. That
// bounds one reply, and also the bytes a server sends while the client is not reading replies
// (during the body, nothing is parsed): a peer that pushes bytes without pause costs at most
// reply_bytes_max plus the chunk being fed, never more.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace relay::smtp {

struct ReplyLimits {
  // One reply line including CRLF. RFC 5321 §4.5.3.1.5 says 512; servers send longer text, so
  // the default leaves room.
  size_t reply_line_bytes_max = 2048;
  // Lines of one multi-line reply (an EHLO reply has one per extension).
  size_t reply_lines_max = 128;
  // One reply, every line with its line end, and at the same time the most the parser holds (the
  // reply in progress plus bytes not parsed yet, such as pipelined replies waiting behind a body,
  // RFC 2920 §3.1). Real replies are a few hundred bytes; an EHLO reply rarely reaches 1 KiB.
  size_t reply_bytes_max = 64 * 1024;
};

struct ServerReply {
  int code = 0;
  std::string enhanced;            // "4.2.1", or "" when the server gave none
  std::vector<std::string> lines;  // each line's text, without code, separator or enhanced code
  // The lines joined with a space: the text that goes into outcomes and logs.
  std::string Text() const;
  int cls() const { return code / 100; }  // 2, 3, 4 or 5
};

class ReplyParser {
 public:
  enum class Status { kReply, kNeedMore, kError };

  explicit ReplyParser(const ReplyLimits& limits) : limits_(limits) {}

  // Buffers `data`. Lines are parsed by Next(), so bytes after a reply that changes the
  // connection (220 to STARTTLS) can be dropped with Clear(). Fails the parser (failed()) rather
  // than hold more than reply_bytes_max.
  void Feed(std::string_view data);
  // The next complete reply, if any. After kError every call returns kError; error() says why.
  Status Next(ServerReply* out);
  // Drops buffered bytes and any partial reply (after STARTTLS, RFC 3207 §4.2: nothing received
  // in plain text before the handshake may be used after it).
  void Clear();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // Bytes received but not yet returned as part of a reply: the lines of the reply in progress
  // (with their line ends) and the bytes not parsed yet. At most reply_bytes_max.
  size_t buffered_bytes() const { return buffer_.size() - consumed_ + partial_bytes_; }

 private:
  Status Fail(std::string why);

  const ReplyLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;  // bytes of buffer_ already parsed into lines
  // Bytes after consumed_ already searched for a line end without finding one: a line that
  // arrives a byte at a time is searched once, not once per byte.
  size_t unterminated_bytes_ = 0;
  ServerReply partial_;  // the lines of a multi-line reply so far
  size_t partial_bytes_ = 0;  // the bytes those lines took on the wire, line ends included
  std::string error_;
};

}  // namespace relay::smtp
