#include "relay/smtp/dot_stuffer.h"

#include <algorithm>

namespace relay::smtp {
namespace {

constexpr std::string_view kDot = ".";
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kTerminator = ".\r\n";

}  // namespace

std::string_view DotStuffer::NextPiece() const {
  switch (phase_) {
    case Phase::kBody:
      if (dot_emitting_) return kDot.substr(constant_offset_);
      return message_.substr(position_, run_end_ - position_);
    case Phase::kTrailingCrlf:
      return kCrlf.substr(constant_offset_);
    case Phase::kTerminator:
      return kTerminator.substr(constant_offset_);
    case Phase::kDone:
      break;
  }
  return {};
}

void DotStuffer::Advance(size_t bytes) {
  emitted_bytes_ += bytes;
  switch (phase_) {
    case Phase::kBody:
      if (dot_emitting_) {
        dot_emitting_ = false;  // one byte: always handed out whole
        dotted_position_ = position_;
      } else {
        position_ += bytes;
      }
      break;
    case Phase::kTrailingCrlf:
    case Phase::kTerminator:
      constant_offset_ += bytes;
      break;
    case Phase::kDone:
      return;
  }
  Settle();
}

void DotStuffer::Settle() {
  switch (phase_) {
    case Phase::kBody: {
      if (dot_emitting_) return;
      if (position_ < message_.size()) {
        // RFC 5321 §4.5.2: a line starting with "." gets one more "." before it.
        const bool line_start =
            position_ == 0 ||
            (message_[position_ - 1] == '\n' && position_ >= 2 && message_[position_ - 2] == '\r');
        if (line_start && message_[position_] == '.' && dotted_position_ != position_) {
          dot_emitting_ = true;
          return;
        }
        if (position_ == run_end_) {
          // The next run goes up to the end of the next line that is followed by a line starting
          // with "." (that line needs its extra dot first), or to the end of the message. Found
          // once per run, not once per piece: a run handed out in many writes was searched to
          // its end for each (issue 13). A run ends after a CRLF, so the search starts at a line
          // start, past the "\r\n." of a dotted line whose dot is out.
          const size_t next = message_.find("\r\n.", position_);
          run_end_ = next == std::string_view::npos ? message_.size() : next + 2;
        }
        return;
      }
      const bool ends_with_crlf =
          message_.size() >= 2 && message_[message_.size() - 2] == '\r' && message_.back() == '\n';
      phase_ = message_.empty() || ends_with_crlf ? Phase::kTerminator : Phase::kTrailingCrlf;
      constant_offset_ = 0;
      return;
    }
    case Phase::kTrailingCrlf:
      if (constant_offset_ == kCrlf.size()) {
        phase_ = Phase::kTerminator;
        constant_offset_ = 0;
      }
      return;
    case Phase::kTerminator:
      if (constant_offset_ == kTerminator.size()) phase_ = Phase::kDone;
      return;
    case Phase::kDone:
      return;
  }
}

size_t DotStuffer::Fill(struct iovec* out, size_t segments_max, size_t bytes_max) {
  size_t filled = 0;
  while (filled < segments_max && bytes_max > 0 && phase_ != Phase::kDone) {
    const std::string_view piece = NextPiece();
    const size_t take = std::min(piece.size(), bytes_max);
    out[filled].iov_base = const_cast<char*>(piece.data());
    out[filled].iov_len = take;
    ++filled;
    bytes_max -= take;
    Advance(take);
  }
  return filled;
}

uint64_t DotStuffer::StuffedBytes(std::string_view message) {
  uint64_t total = message.size() + kTerminator.size();
  if (!message.empty() && message[0] == '.') ++total;
  for (size_t i = message.find("\r\n."); i != std::string_view::npos;
       i = message.find("\r\n.", i + 2)) {
    ++total;
  }
  const bool ends_with_crlf =
      message.size() >= 2 && message[message.size() - 2] == '\r' && message.back() == '\n';
  if (!message.empty() && !ends_with_crlf) total += kCrlf.size();
  return total;
}

}  // namespace relay::smtp
