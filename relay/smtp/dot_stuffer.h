// DotStuffer: a stored message (CRLF lines) as the DATA byte stream of RFC 5321 §4.5.2, without
// copying it.
//
// Contract. The stuffer hands out iovec segments that point INTO the caller's message bytes, plus
// segments pointing at static "." / "\r\n" / ".\r\n" constants: a "." before every line that
// starts with "." (§4.5.2 transparency), a CRLF when the message does not end with one, then the
// end-of-data ".\r\n" (§4.1.1.4). The message (for example the queue's mmap) must stay mapped and
// unchanged until the last segment has been written. Fill() is incremental: each call adds at most
// `segments_max` segments and `bytes_max` bytes and the next call resumes exactly where the last
// stopped (a segment may be cut in the middle), so a 100 MB message goes out in bounded writes;
// the message is searched for dotted lines once in all, however small the writes.
// Lines end with CRLF only: the queue holds no bare CR or LF (the server session refuses them), so
// a "." after a bare LF is not a line start here. One stuffer per message; one thread; no
// allocation.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace relay::smtp {

class DotStuffer {
 public:
  explicit DotStuffer(std::string_view message) : message_(message) { Settle(); }

  // Appends up to `segments_max` segments totalling at most `bytes_max` bytes to `out` and
  // returns how many it wrote (0 only when done() or either limit is 0).
  size_t Fill(struct iovec* out, size_t segments_max, size_t bytes_max);

  // The whole stream (terminator included) has been handed out.
  bool done() const { return phase_ == Phase::kDone; }
  // Bytes handed out so far.
  uint64_t emitted_bytes() const { return emitted_bytes_; }
  // Bytes of the whole stream: computed by scanning the message (O(size)), for SIZE= checks and
  // progress reporting.
  static uint64_t StuffedBytes(std::string_view message);

 private:
  enum class Phase { kBody, kTrailingCrlf, kTerminator, kDone };

  // The next piece to hand out from the current state (not yet cut by limits).
  std::string_view NextPiece() const;
  // Marks `bytes` of NextPiece() as handed out.
  void Advance(size_t bytes);
  // Moves to the next phase or arranges the extra dot after a piece is finished.
  void Settle();

  const std::string_view message_;
  Phase phase_ = Phase::kBody;
  size_t position_ = 0;                // next message byte to hand out (kBody)
  size_t run_end_ = 0;                 // where the run of message bytes at position_ ends
  bool dot_emitting_ = false;          // the extra "." for the line at position_ is the next piece
  size_t dotted_position_ = SIZE_MAX;  // the line start whose extra "." is already out
  size_t constant_offset_ = 0;         // bytes of the current constant piece already handed out
  uint64_t emitted_bytes_ = 0;
};

}  // namespace relay::smtp
