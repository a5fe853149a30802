#include "relay/smtp/client_reply.h"

#include <algorithm>
#include <string>
#include <utility>

#include "relay/smtp/reply.h"

namespace relay::smtp {

std::string ServerReply::Text() const {
  std::string text;
  for (const std::string& line : lines) {
    if (!text.empty() && !line.empty()) text.push_back(' ');
    text.append(line);
  }
  return text;
}

void ReplyParser::Feed(std::string_view data) {
  if (failed()) return;
  if (data.size() > limits_.reply_bytes_max - std::min(limits_.reply_bytes_max, buffered_bytes())) {
    // Checked before appending, so that the bound holds for the bytes held, not only for what
    // Next() gets to see: during a body nothing is parsed.
    Fail("more than reply_bytes_max (" + std::to_string(limits_.reply_bytes_max) +
         " bytes) of reply data");
    return;
  }
  // Compact once the parsed prefix dominates, so the buffer stays bounded by one reply.
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(data);
}

void ReplyParser::Clear() {
  buffer_.clear();
  consumed_ = 0;
  unterminated_bytes_ = 0;
  partial_ = ServerReply();
  partial_bytes_ = 0;
}

ReplyParser::Status ReplyParser::Fail(std::string why) {
  error_ = std::move(why);
  Clear();
  buffer_.shrink_to_fit();
  return Status::kError;
}

ReplyParser::Status ReplyParser::Next(ServerReply* out) {
  if (failed()) return Status::kError;
  while (true) {
    const std::string_view rest = std::string_view(buffer_).substr(consumed_);
    const size_t lf = rest.find('\n', unterminated_bytes_);
    if (lf == std::string_view::npos) {
      unterminated_bytes_ = rest.size();
      // The line-length limit applies before the line is complete, so a server that never sends
      // LF cannot grow the buffer without bound.
      if (rest.size() >= limits_.reply_line_bytes_max) return Fail("reply line too long");
      return Status::kNeedMore;
    }
    if (lf + 1 > limits_.reply_line_bytes_max) return Fail("reply line too long");
    std::string_view line = rest.substr(0, lf);
    consumed_ += lf + 1;
    unterminated_bytes_ = 0;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    // Reply-line = Reply-code [ SP / "-" textstring ] (RFC 5321 §4.2).
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9') {
      return Fail("malformed reply line (no reply code)");
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last = true;
    if (line.size() > 3) {
      if (line[3] == '-') {
        last = false;
      } else if (line[3] != ' ') {
        return Fail("malformed reply line (bad separator after the code)");
      }
    }
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
    if (partial_.lines.empty()) {
      partial_.code = code;
      // RFC 2034 §4: the enhanced code follows the reply code on each line.
      const size_t space = text.find(' ');
      const std::string_view first = text.substr(0, space);
      if (IsValidEnhancedCode(code, first)) partial_.enhanced.assign(first);
    } else if (code != partial_.code) {
      return Fail("multi-line reply with differing codes");
    }
    if (partial_.lines.size() >= limits_.reply_lines_max) return Fail("too many reply lines");
    if (!partial_.enhanced.empty() &&
        text.substr(0, partial_.enhanced.size()) == partial_.enhanced &&
        (text.size() == partial_.enhanced.size() || text[partial_.enhanced.size()] == ' ')) {
      text.remove_prefix(std::min(text.size(), partial_.enhanced.size() + 1));
    }
    partial_.lines.emplace_back(text);
    partial_bytes_ += lf + 1;
    if (last) {
      *out = std::move(partial_);
      partial_ = ServerReply();
      partial_bytes_ = 0;
      return Status::kReply;
    }
  }
}

}  // namespace relay::smtp
