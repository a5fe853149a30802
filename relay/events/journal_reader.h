// Reading a shard's event journal (event_journal.h) from a position up to its durable head, for
// the event sinks. The journal is on-disk input: a reader takes whole lines only. In a file before
// the head's, the lines end at a zero byte or at the first line that is not well formed or not
// tagged with the file's number (what follows is the file's earlier life, or a line a crash cut
// short: counted as malformed when it is not zeros); in the head's file, up to the head, a line
// that is malformed or longer than kLineBytesMax is skipped and counted. Files that are gone
// (removed to keep the journal in its bound) are stepped over and counted. Time and memory are
// linear in the bytes read, the memory bounded by the read size.
//
// Not thread-safe: one reader per sink and shard.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "relay/events/event_journal.h"

namespace relay::events {

struct JournalEvent {
  Position at;  // where the line starts: with the shard, the event's id
  uint32_t file_seq = 0;  // the tag: the file the line was written into
  std::string_view event;
  std::string_view tenant;
  int64_t time_unix_ms = 0;
  std::string_view json;  // the object, without the newline
};

// Splits one line (without '\n') into its fields; false when it is not
// "<seq>\t<event>\t<tenant>\t<time>\t{...}".
bool ParseJournalLine(std::string_view line, JournalEvent* out);

class JournalReader {
 public:
  JournalReader(std::string dir, uint32_t shard) : dir_(std::move(dir)), shard_(shard) {}

  // Reads the lines after `from` up to `head`, about `bytes_max` bytes of them (at least one line
  // when one is there), calling `visit` for each well-formed one until it returns false (that
  // line is then not taken); views are valid during the call. Returns the position after the
  // last line taken; `*lines` (when given) counts the lines taken, malformed ones included.
  Position Read(Position from, Position head, size_t bytes_max,
                absl::FunctionRef<bool(const JournalEvent&)> visit, uint64_t* lines = nullptr);

  uint64_t malformed_lines() const { return malformed_lines_; }
  uint64_t missing_files() const { return missing_files_; }

 private:
  // The first file at or after `seq` (up to `head_seq`), or head_seq itself when none is there.
  uint32_t NextFile(uint32_t seq, uint32_t head_seq);
  enum class FileRead { kStop, kEnded, kEndedTorn };
  FileRead ReadFile(int fd, Position head, size_t bytes_max, Position* pos, size_t* taken,
                    absl::FunctionRef<bool(const JournalEvent&)> visit, uint64_t* lines);
  size_t TakeLines(std::string_view* data, Position at, bool whole_file, bool* at_end,
                   bool* refused, absl::FunctionRef<bool(const JournalEvent&)> visit,
                   uint64_t* lines);

  const std::string dir_;
  const uint32_t shard_;
  std::string buffer_;
  bool skipping_ = false;  // inside an over-long line: drop bytes up to its newline
  uint64_t malformed_lines_ = 0;
  uint64_t missing_files_ = 0;
};

}  // namespace relay::events
