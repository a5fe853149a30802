// Splits the bytes an SMTP server sends into complete replies (RFC 5321 §4.2: "ddd-text" lines
// continue a reply, "ddd text" or "ddd" ends it), across any read boundaries. No I/O.
//
// Threads: one reader per connection, on that connection's thread. Limits: a reply longer than
// kReplyBytesMax (a hostile or broken server) is a protocol error, not unbounded growth.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace bench {

struct SmtpReply {
  int code = 0;
  // The text of every line after the code and separator, in order (EHLO keywords live here).
  std::vector<std::string> lines;
  // "451 4.7.28 try later": the code and the first line, for counting and messages.
  std::string Summary() const;
};

class SmtpReplyReader {
 public:
  static constexpr size_t kReplyBytesMax = 64 * 1024;

  // Appends received bytes.
  void Append(std::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }
  // Takes the next complete reply into *reply. Returns false when more bytes are needed; an error
  // when the server sent something that is not an SMTP reply.
  absl::Status Next(SmtpReply* reply, bool* complete);
  // Bytes received but not yet part of a complete reply.
  size_t buffered_bytes() const { return buffer_.size() - consumed_; }
  void Clear() {
    buffer_.clear();
    consumed_ = 0;
  }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
};

}  // namespace bench
