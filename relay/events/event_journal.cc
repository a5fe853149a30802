#include "relay/events/event_journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/log.h"
#include "relay/base/sv.h"

namespace relay::events {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr std::string_view kSuffix = ".events";
constexpr size_t kMessageIdBytesMax = 998;  // RFC 5322 §2.1.1: a line's limit

std::string_view DomainOf(std::string_view address) {
  size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

}  // namespace

std::string JournalFileName(uint32_t shard, uint32_t seq) {
  char name[48];
  std::snprintf(name, sizeof(name), "s%u-%010u.events", shard, seq);
  return name;
}

std::optional<std::pair<uint32_t, uint32_t>> ParseJournalFileName(std::string_view name) {
  if (name.size() < 3 || name[0] != 's' || !absl::EndsWith(Sv(name), Sv(kSuffix)))
    return std::nullopt;
  name.remove_prefix(1);
  name.remove_suffix(kSuffix.size());
  size_t dash = name.find('-');
  if (dash == std::string_view::npos || dash == 0 || name.size() - dash - 1 != 10) {
    return std::nullopt;
  }
  uint32_t shard = 0, seq = 0;
  std::string_view shard_text = name.substr(0, dash), seq_text = name.substr(dash + 1);
  for (std::string_view digits : {shard_text, seq_text}) {
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
    }
  }
  if (!absl::SimpleAtoi(Sv(shard_text), &shard) || !absl::SimpleAtoi(Sv(seq_text), &seq) ||
      seq == 0) {
    return std::nullopt;
  }
  return std::make_pair(shard, seq);
}

namespace {

template <typename Visit>
void ForEachJournalFile(const std::string& dir, Visit visit) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    if (auto parsed = ParseJournalFileName(e->d_name)) visit(parsed->first, parsed->second);
  }
  ::closedir(d);
}

}  // namespace

std::vector<uint32_t> ListJournalFiles(const std::string& dir, uint32_t shard) {
  std::vector<uint32_t> seqs;
  ForEachJournalFile(dir, [&](uint32_t s, uint32_t seq) {
    if (s == shard) seqs.push_back(seq);
  });
  std::sort(seqs.begin(), seqs.end());
  return seqs;
}

std::vector<uint32_t> ListJournalShards(const std::string& dir) {
  std::vector<uint32_t> shards;
  ForEachJournalFile(dir, [&](uint32_t s, uint32_t) { shards.push_back(s); });
  std::sort(shards.begin(), shards.end());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  return shards;
}

absl::Status PrepareJournalFile(const std::string& dir, uint32_t shard, uint32_t seq,
                                uint64_t bytes, std::string_view tag) {
  const std::string path = absl::StrCat(dir, "/", JournalFileName(shard, seq));
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return absl::OkStatus();  // there: used as it is
  const std::string tmp = absl::StrCat(path, ".", Sv(tag), ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  }
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<char[]> zeros(new char[kChunk]());
  bool ok = true;
  for (uint64_t off = 0; ok && off < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, bytes - off));
    ssize_t w = ::pwrite(fd, zeros.get(), n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    off += ok ? static_cast<uint64_t>(w) : 0;
  }
  ok = ok && ::fdatasync(fd) == 0;
  const int error = errno;
  ::close(fd);
  // link(2), not rename(2): a file the journal made meanwhile under the name is never replaced.
  if (ok && ::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) ok = false;
  const int link_error = errno;
  ::unlink(tmp.c_str());
  if (!ok) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot prepare ", path, ": ", std::strerror(error != 0 ? error : link_error)));
  }
  int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return absl::OkStatus();
}

bool JournalFileUsed(const std::string& dir, uint32_t shard, uint32_t seq) {
  int fd =
      ::open(absl::StrCat(dir, "/", JournalFileName(shard, seq)).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char head[16];
  ssize_t n = ::pread(fd, head, sizeof(head), 0);
  ::close(fd);
  const std::string tag = absl::StrCat(seq, "\t");
  return n >= static_cast<ssize_t>(tag.size()) && std::string_view(head, tag.size()) == tag;
}

std::string EventTenant(const delivery::DeliveryRecord& record) {
  std::string_view address =
      record.event == delivery::DeliveryEvent::kDsnSent ? record.recipient : record.sender;
  return absl::AsciiStrToLower(Sv(DomainOf(address)));
}

std::string_view FindMessageId(std::string_view message, std::string* storage) {
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find('\n', pos);
    if (eol == std::string_view::npos) eol = message.size();
    std::string_view line = message.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return "";  // the end of the header section
    pos = eol + 1;
    constexpr std::string_view kName = "message-id";
    if (line.size() <= kName.size() || !absl::StartsWithIgnoreCase(Sv(line), Sv(kName))) continue;
    std::string_view rest = line.substr(kName.size());
    size_t colon = rest.find_first_not_of(" \t");
    if (colon == std::string_view::npos || rest[colon] != ':') continue;
    storage->assign(rest.substr(colon + 1));
    // Continuation lines (starting with white space) belong to the field.
    while (pos < message.size() && (message[pos] == ' ' || message[pos] == '\t') &&
           storage->size() <= kMessageIdBytesMax) {
      eol = message.find('\n', pos);
      if (eol == std::string_view::npos) eol = message.size();
      std::string_view more = message.substr(pos, eol - pos);
      if (!more.empty() && more.back() == '\r') more.remove_suffix(1);
      storage->append(more);
      pos = eol + 1;
    }
    if (storage->size() > kMessageIdBytesMax) storage->resize(kMessageIdBytesMax);
    absl::string_view stripped = absl::StripAsciiWhitespace(*storage);
    return std::string_view(stripped.data(), stripped.size());
  }
  return "";
}

void FormatJournalLine(const delivery::DeliveryRecord& record, uint32_t seq, std::string& out,
                       std::string_view formatted, bool formatted_has_tenant) {
  const size_t start = out.size();
  absl::StrAppend(&out, seq);
  out += '\t';
  out += delivery::DeliveryEventName(record.event);
  out += '\t';
  // The tenant is a domain; a tab or newline in it would break the line's fields.
  for (char c : record.tenant) out += (c == '\t' || c == '\n' || c == '\r') ? '?' : c;
  out += '\t';
  absl::StrAppend(&out, record.time_unix_ms);
  out += '\t';
  bool has_tenant;
  if (formatted.size() >= 2) {
    out.append(formatted);
    has_tenant = formatted_has_tenant;
  } else {
    delivery::FormatDeliveryRecord(record, out);
    has_tenant = !record.tenant.empty();
  }
  out.resize(out.size() - 2);  // "}\n"
  if (!has_tenant) {           // every event names its tenant, "" for the null sender's
    out += ",\"tenant\":";
    delivery::AppendJsonString(out, record.tenant);
  }
  if (!record.message_id.empty()) {
    out += ",\"message_id\":";
    delivery::AppendJsonString(out, record.message_id);
  }
  out += "}\n";
  if (out.size() - start > kLineBytesMax) out.resize(start);  // never written
}

absl::StatusOr<std::unique_ptr<EventJournal>> EventJournal::Open(JournalOptions options,
                                                                 JournalHead* head) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the events directory ", options.dir, ": ", ec.message()));
  }
  // After the last file written (its first line is tagged with its own seq); files made or
  // recycled ahead of it are used as they are.
  std::vector<uint32_t> seqs = ListJournalFiles(options.dir, options.shard);
  uint32_t seq = seqs.empty() ? 1 : seqs.front();
  for (auto it = seqs.rbegin(); it != seqs.rend(); ++it) {
    if (JournalFileUsed(options.dir, options.shard, *it)) {
      seq = *it + 1;
      break;
    }
  }
  seq = std::max(seq, head->Get().seq);  // never a number a sink has passed
  options.buffer_bytes_max = std::min<size_t>(options.buffer_bytes_max, options.file_bytes_max / 4);
  std::unique_ptr<EventJournal> journal(new EventJournal(std::move(options), head));
  if (absl::Status s = journal->OpenFile(seq); !s.ok()) return s;
  head->Publish(Position{seq, 0});
  return journal;
}

EventJournal::~EventJournal() {
  WriteBuffer();
  if (fd_ >= 0) {
    ::fdatasync(fd_);
    ::close(fd_);
  }
  // Files left behind and not yet synced: synced before they are closed.
  for (int fd : rotated_fds_) {
    ::fdatasync(fd);
    ::close(fd);
  }
  for (Pending& p : pending_) {
    for (int fd : p.close_fds) {
      ::fdatasync(fd);
      ::close(fd);
    }
  }
}

absl::Status EventJournal::OpenFile(uint32_t seq) {
  std::string path = absl::StrCat(options_.dir, "/", JournalFileName(options_.shard, seq));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 ||
      static_cast<uint64_t>(st.st_size) < options_.file_bytes_max) {
    // Not made ahead by the sinks' upkeep (PrepareJournalFile): made here, at a cost.
    if (absl::Status s =
            PrepareJournalFile(options_.dir, options_.shard, seq, options_.file_bytes_max, "w");
        !s.ok()) {
      return s;
    }
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (fd_ >= 0) rotated_fds_.push_back(fd_);
  fd_ = fd;
  seq_ = seq;
  path_ = std::move(path);
  written_ = 0;
  requested_ = 0;
  return absl::OkStatus();
}

void RecordEvent(delivery::DeliveryLog* log, EventJournal* journal,
                 const delivery::DeliveryRecord& record) {
  if (journal == nullptr) {
    if (log != nullptr) log->Append(record);
    return;
  }
  thread_local std::string formatted;  // the shard thread's, reused
  formatted.clear();
  delivery::FormatDeliveryRecord(record, formatted);
  if (log != nullptr) log->AppendFormatted(formatted);
  journal->Append(record, formatted);
  // Written at once: the caller appends the record this event is about after this returns, and
  // a crash in between must not leave the record without its event.
  journal->Write();
}

void EventJournal::Append(delivery::DeliveryRecord record, std::string_view formatted) {
  if (buffer_.size() >= options_.pending_bytes_max) {
    head_->lines_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const bool formatted_has_tenant = !record.tenant.empty();
  std::string tenant;
  if (record.tenant.empty()) {
    tenant = EventTenant(record);
    record.tenant = tenant;
  }
  line_.clear();
  FormatJournalLine(record, seq_, line_, formatted, formatted_has_tenant);
  if (line_.empty()) {
    head_->lines_dropped.fetch_add(1, std::memory_order_relaxed);  // longer than a line may be
    return;
  }
  // The next file once this one is full: what is buffered goes to this one first, so every line
  // lands in the file its tag names.
  const uint64_t after = written_ + buffer_.size() + line_.size();
  if (written_ > 0 && after > options_.file_bytes_max) {
    const int64_t now = NowMs();
    if (now >= rotate_retry_after_ms_) {
      WriteBuffer();
      absl::Status s = buffer_.empty() ? OpenFile(seq_ + 1) : absl::OkStatus();
      if (!buffer_.empty() || !s.ok()) {
        head_->write_errors.fetch_add(1, std::memory_order_relaxed);
        rotate_retry_after_ms_ = now + 1000;
        if (!s.ok()) LogError() << "event journal: " << s << "; this file grows meanwhile";
      } else {
        line_.clear();
        FormatJournalLine(record, seq_, line_, formatted, formatted_has_tenant);
      }
    }
    // A file grows past its size only while the next cannot be had, and at most to twice it
    // (offsets stay far below 4 GiB); beyond, lines are dropped and counted.
    if (written_ > 0 && written_ + buffer_.size() + line_.size() > 2 * options_.file_bytes_max) {
      head_->lines_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  buffer_ += line_;
  ++lines_appended_;
  if (buffer_.size() >= options_.buffer_bytes_max) WriteBuffer();
}

void EventJournal::WriteBuffer() {
  if (buffer_.empty() || fd_ < 0) return;
  size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      head_->write_errors.fetch_add(1, std::memory_order_relaxed);
      if (const uint64_t n = head_->write_errors.load(); n == 1 || n % 1000 == 0) {
        LogError() << "event journal " << path_ << ": write failed: " << std::strerror(errno)
                   << "; events wait in memory";
      }
      break;
    }
    done += static_cast<size_t>(n);
  }
  // A partial write leaves a partial line: the rest goes after it at the next write.
  written_ += done;
  buffer_.erase(0, done);
}

uint64_t EventJournal::BeginSync(std::vector<int>* fds) {
  WriteBuffer();
  Pending& p = pending_.emplace_back();
  p.token = next_token_++;
  p.close_fds = std::move(rotated_fds_);
  rotated_fds_.clear();
  for (int fd : p.close_fds) fds->push_back(fd);
  if (requested_ != written_) fds->push_back(fd_);
  requested_ = written_;
  p.end = Position{seq_, static_cast<uint32_t>(written_)};
  return p.token;
}

void EventJournal::EndSync(uint64_t token, int result) {
  for (Pending& p : pending_) {
    if (p.token == token) {
      p.done = true;
      p.failed = result < 0;
    }
  }
  if (result < 0) {
    head_->write_errors.fetch_add(1, std::memory_order_relaxed);
    LogError() << "event journal " << path_ << ": fdatasync failed: " << std::strerror(-result);
  }
  // Published up to the last batch that ended well: what a failed one covered is published by
  // the next that succeeds (its fdatasync covers the same pages), never before.
  std::optional<Position> reached;
  while (!pending_.empty() && pending_.front().done) {
    for (int fd : pending_.front().close_fds) ::close(fd);
    if (!pending_.front().failed) reached = pending_.front().end;
    pending_.pop_front();
  }
  if (reached) head_->Publish(*reached);
}

void EventJournal::WriteAndPublish() {
  std::vector<int> fds;
  EndSync(BeginSync(&fds), 0);
}

}  // namespace relay::events
