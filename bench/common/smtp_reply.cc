#include "bench/common/smtp_reply.h"

#include "absl/strings/str_cat.h"

namespace bench {

std::string SmtpReply::Summary() const {
  if (lines.empty()) return absl::StrCat(code);
  return absl::StrCat(code, " ", lines.front());
}

absl::Status SmtpReplyReader::Next(SmtpReply* reply, bool* complete) {
  *complete = false;
  size_t pos = consumed_;
  SmtpReply out;
  while (true) {
    size_t eol = buffer_.find('\n', pos);
    if (eol == std::string::npos) {
      if (buffer_.size() - consumed_ > kReplyBytesMax) {
        return absl::DataLossError("SMTP reply longer than 64 KiB");
      }
      // Compact once the consumed prefix dominates, so the buffer does not creep.
      if (consumed_ > 0 && consumed_ * 2 >= buffer_.size()) {
        buffer_.erase(0, consumed_);
        consumed_ = 0;
      }
      return absl::OkStatus();
    }
    std::string_view line(buffer_.data() + pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // RFC 5321 §4.2: three digits, then SP, '-' or the end of the line.
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      return absl::DataLossError(
          absl::StrCat("not an SMTP reply line: \"", std::string(line.substr(0, 80)), "\""));
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!out.lines.empty() && code != out.code) {
      return absl::DataLossError("multi-line SMTP reply changes its code");
    }
    out.code = code;
    out.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    pos = eol + 1;
    if (line.size() == 3 || line[3] == ' ') break;
  }
  consumed_ = pos;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  *reply = std::move(out);
  *complete = true;
  return absl::OkStatus();
}

}  // namespace bench
