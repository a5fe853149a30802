#include "relay/events/journal_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace relay::events {
namespace {

constexpr size_t kChunkBytes = 256 << 10;

// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool ParseJournalLine(std::string_view line, JournalEvent* out) {
  size_t tab0 = line.find('\t');
  if (tab0 == std::string_view::npos || tab0 == 0 || tab0 > 10) return false;
  const std::string_view tag = line.substr(0, tab0);
  if (!absl::SimpleAtoi(absl::string_view(tag.data(), tag.size()), &out->file_seq)) return false;
  line.remove_prefix(tab0 + 1);
  size_t tab1 = line.find('\t');
  if (tab1 == std::string_view::npos || tab1 == 0) return false;
  size_t tab2 = line.find('\t', tab1 + 1);
  if (tab2 == std::string_view::npos) return false;
  size_t tab3 = line.find('\t', tab2 + 1);
  if (tab3 == std::string_view::npos) return false;
  std::string_view json = line.substr(tab3 + 1);
  if (json.size() < 2 || json.front() != '{' || json.back() != '}') return false;
  const std::string_view time = line.substr(tab2 + 1, tab3 - tab2 - 1);
  if (!absl::SimpleAtoi(absl::string_view(time.data(), time.size()), &out->time_unix_ms)) {
    return false;
  }
  out->event = line.substr(0, tab1);
  out->tenant = line.substr(tab1 + 1, tab2 - tab1 - 1);
  out->json = json;
  return true;
}

uint32_t JournalReader::NextFile(uint32_t seq, uint32_t head_seq) {
  for (uint32_t s : ListJournalFiles(dir_, shard_)) {
    if (s >= seq && s <= head_seq) return s;
  }
  return head_seq;
}

Position JournalReader::Read(Position from, Position head, size_t bytes_max,
                             absl::FunctionRef<bool(const JournalEvent&)> visit, uint64_t* lines) {
  Position pos = from;
  if (pos.seq == 0) pos = Position{NextFile(1, head.seq), 0};
  size_t taken = 0;
  while (taken < bytes_max && pos.seq != 0 && pos < head) {
    const bool whole_file = pos.seq < head.seq;  // complete: read to the end of its lines
    Fd file;
    file.fd = ::open(absl::StrCat(dir_, "/", JournalFileName(shard_, pos.seq)).c_str(),
                     O_RDONLY | O_CLOEXEC);
    if (file.fd < 0) {
      if (errno != ENOENT || !whole_file) return pos;  // try again later
      ++missing_files_;
      skipping_ = false;
      pos = Position{NextFile(pos.seq + 1, head.seq), 0};
      continue;
    }
    const FileRead read = ReadFile(file.fd, head, bytes_max, &pos, &taken, visit, lines);
    if (read == FileRead::kStop || !whole_file) return pos;
    if (read == FileRead::kEndedTorn) ++malformed_lines_;
    skipping_ = false;
    const uint32_t next = NextFile(pos.seq + 1, head.seq);
    missing_files_ += next - pos.seq - 1;  // removed unread, to keep the journal in its bound
    pos = Position{next, 0};
  }
  return pos;
}

// Reads chunks of the file at *pos until the budget is spent, the head is reached or the file's
// lines end (the end of the file, or the zeros or earlier life after what was written into it).
JournalReader::FileRead JournalReader::ReadFile(int fd, Position head, size_t bytes_max,
                                                Position* pos, size_t* taken,
                                                absl::FunctionRef<bool(const JournalEvent&)> visit,
                                                uint64_t* lines) {
  const bool whole_file = pos->seq < head.seq;
  for (;;) {
    // At most kChunkBytes at a time: the buffer stays small whatever the budget.
    size_t want = std::min(std::max(bytes_max - *taken, kLineBytesMax + 1), kChunkBytes);
    if (!whole_file) want = std::min<size_t>(want, head.offset - pos->offset);
    if (want == 0) return FileRead::kStop;
    buffer_.resize(want);
    ssize_t n = ::pread(fd, buffer_.data(), want, pos->offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileRead::kStop;
    std::string_view data(buffer_.data(), static_cast<size_t>(n));
    bool at_end = static_cast<size_t>(n) < want;  // nothing more in the file
    if (whole_file) {
      if (size_t nul = data.find('\0'); nul != std::string_view::npos) {
        data = data.substr(0, nul);
        at_end = true;
      }
    }
    bool refused = false;
    const size_t used = TakeLines(&data, *pos, whole_file, &at_end, &refused, visit, lines);
    pos->offset += static_cast<uint32_t>(used);
    *taken += used;
    if (refused) return FileRead::kStop;
    if (at_end) {
      // A line a crash cut short.
      return used < data.size() && !skipping_ ? FileRead::kEndedTorn : FileRead::kEnded;
    }
    // In the head's file, a chunk without a whole line is the line still being written: it is
    // read at a later call, once the head has passed its end.
    if (!whole_file && (used == 0 || pos->offset >= head.offset)) return FileRead::kStop;
    if (*taken >= bytes_max) return FileRead::kStop;
  }
}

// The whole lines of *data (read at `at`): visits the good ones, counts the others, and returns
// the bytes taken. In a complete file the first line that is not its own ends *data (*at_end).
// *refused: `visit` declined a line, which is not taken.
size_t JournalReader::TakeLines(std::string_view* data, Position at, bool whole_file, bool* at_end,
                                bool* refused, absl::FunctionRef<bool(const JournalEvent&)> visit,
                                uint64_t* lines) {
  size_t used = 0;
  while (used < data->size()) {
    size_t nl = data->find('\n', used);
    if (nl == std::string_view::npos) break;
    std::string_view line = data->substr(used, nl - used);
    JournalEvent event;
    const bool good =
        line.size() <= kLineBytesMax && ParseJournalLine(line, &event) && event.file_seq == at.seq;
    if (whole_file && !good && !skipping_) {
      // The end of what was written into this file: its earlier life follows.
      *data = data->substr(0, used);
      *at_end = true;
      return used;
    }
    if (skipping_) {
      skipping_ = false;  // the end of an over-long line
    } else if (good) {
      event.at = Position{at.seq, static_cast<uint32_t>(at.offset + used)};
      if (!visit(event)) {
        *refused = true;
        return used;
      }
    } else {
      ++malformed_lines_;
    }
    if (lines != nullptr) ++*lines;
    used = nl + 1;
  }
  if (used == 0 && data->size() > kLineBytesMax) {
    // No newline in more than a line's bound: drop it all, and the rest up to the newline.
    if (!skipping_) ++malformed_lines_;
    skipping_ = true;
    used = data->size();
  }
  return used;
}

}  // namespace relay::events
