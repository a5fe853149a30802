#include "relay/delivery/delivery_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "relay/base/json.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"

namespace relay::delivery {
namespace {

void AppendTimestamp(std::string& out, int64_t unix_ms) {
  // RFC 3339, UTC, milliseconds.
  int64_t ms = unix_ms % 1000;
  int64_t s = unix_ms / 1000;
  if (ms < 0) {
    ms += 1000;
    --s;
  }
  absl::CivilSecond t = absl::ToCivilSecond(absl::FromUnixSeconds(s), absl::UTCTimeZone());
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                        static_cast<int>(t.year()), t.month(), t.day(), t.hour(), t.minute(),
                        t.second(), static_cast<int>(ms));
  out.append(buf, n);
}

void AppendKey(std::string& out, const char* key) {
  out += ",\"";
  out += key;
  out += "\":";
}

void AppendStringField(std::string& out, const char* key, std::string_view value) {
  if (value.empty()) return;
  AppendKey(out, key);
  AppendJsonString(out, value);
}

void AppendIntField(std::string& out, const char* key, int64_t value) {
  AppendKey(out, key);
  out += std::to_string(value);
}

}  // namespace

std::string_view DeliveryEventName(DeliveryEvent event) {
  switch (event) {
    case DeliveryEvent::kReceived:
      return "received";
    case DeliveryEvent::kDelivered:
      return "delivered";
    case DeliveryEvent::kDeferred:
      return "deferred";
    case DeliveryEvent::kBounced:
      return "bounced";
    case DeliveryEvent::kExpired:
      return "expired";
    case DeliveryEvent::kDsnSent:
      return "dsn_sent";
    case DeliveryEvent::kDeleted:
      return "deleted";
    case DeliveryEvent::kSuppressed:
      return "suppressed";
    case DeliveryEvent::kComplained:
      return "complained";
    case DeliveryEvent::kUnsubscribed:
      return "unsubscribed";
  }
  return "unknown";
}

std::string DeliveryLogPath(std::string_view dir, uint32_t shard) {
  std::string p(dir);
  if (!p.empty() && p.back() != '/') p += '/';
  return absl::StrCat(p, "delivery-", shard, ".log");
}

void FormatDeliveryRecord(const DeliveryRecord& r, std::string& out) {
  out += "{\"ts\":";
  AppendTimestamp(out, r.time_unix_ms);
  out += ",\"event\":\"";
  out += DeliveryEventName(r.event);
  out += '"';
  AppendKey(out, "queue_id");
  AppendJsonString(out, r.queue_id);
  AppendKey(out, "sender");
  AppendJsonString(out, r.sender);
  AppendStringField(out, "tenant", r.tenant);
  AppendStringField(out, "campaign", r.campaign);
  AppendStringField(out, "recipient", r.recipient);
  AppendStringField(out, "site", r.site);
  AppendStringField(out, "mx", r.mx_host);
  AppendStringField(out, "source", r.source_address);
  if (!r.tls_version.empty()) {
    AppendKey(out, "tls");
    out += "{\"version\":";
    AppendJsonString(out, r.tls_version);
    out += ",\"cipher\":";
    AppendJsonString(out, r.tls_cipher);
    if (!r.tls_mode.empty()) {
      out += ",\"mode\":";
      AppendJsonString(out, r.tls_mode);
    }
    out += '}';
  } else if (!r.tls_mode.empty()) {
    AppendKey(out, "tls");
    out += "{\"mode\":";
    AppendJsonString(out, r.tls_mode);
    out += '}';
  }
  if (r.reply_code != 0) {
    AppendKey(out, "reply");
    out += "{\"code\":";
    out += std::to_string(r.reply_code);
    out += ",\"enhanced\":";
    AppendJsonString(out, r.reply_enhanced);
    out += ",\"text\":";
    AppendJsonString(out, r.reply_text);
    out += '}';
  } else {
    AppendStringField(out, "reason", r.reply_text);
  }
  AppendStringField(out, "category", r.category);
  AppendStringField(out, "dsn_id", r.dsn_queue_id);
  AppendStringField(out, "dsn", r.dsn_action);
  if (r.attempt != 0) AppendIntField(out, "attempt", r.attempt);
  if (r.possible_duplicate) {
    AppendKey(out, "possible_duplicate");
    out += "true";
  }
  if (r.queued_ms >= 0) AppendIntField(out, "queued_ms", r.queued_ms);
  if (r.attempt_ms >= 0) AppendIntField(out, "attempt_ms", r.attempt_ms);
  if (r.next_attempt_unix_ms != 0) {
    AppendKey(out, "next_attempt");
    AppendTimestamp(out, r.next_attempt_unix_ms);
  }
  if (r.size_bytes != 0) AppendIntField(out, "size_bytes", static_cast<int64_t>(r.size_bytes));
  AppendStringField(out, "feedback", r.feedback);
  AppendStringField(out, "feedback_type", r.feedback_type);
  out += "}\n";
}

absl::StatusOr<std::unique_ptr<DeliveryLog>> DeliveryLog::Open(DeliveryLogOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("delivery log: empty path");
  if (options.rotate_keep == 0) options.rotate_keep = 1;
  std::unique_ptr<DeliveryLog> log(new DeliveryLog(std::move(options)));
  RETURN_IF_ERROR(log->OpenFile());
  log->buffer_.reserve(log->options_.buffer_bytes_max + 4096);
  return log;
}

DeliveryLog::~DeliveryLog() {
  absl::Status s = Flush();
  if (!s.ok()) LogError() << "delivery log " << options_.path << ": " << s.message();
  if (fd_ >= 0) close(fd_);
}

absl::Status DeliveryLog::OpenFile() {
  int fd = open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("delivery log: open ", options_.path, ": ", std::strerror(errno)));
  }
  struct stat st;
  file_bytes_ = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  return absl::OkStatus();
}

absl::Status DeliveryLog::Reopen() {
  // Lines buffered before the reopen belong to the old file's period but are not yet written;
  // they go to the new file, which is where a reader looks after rotation.
  return OpenFile();
}

absl::Status DeliveryLog::Rotate() {
  // path.(N-1) -> path.N, ..., path -> path.1, starting above the highest file that exists (so
  // a large rotate_keep costs nothing until the files are there); path.N is replaced, dropping
  // the oldest.
  uint32_t top = 1;
  struct stat st;
  while (top < options_.rotate_keep &&
         stat(absl::StrCat(options_.path, ".", top).c_str(), &st) == 0) {
    ++top;
  }
  for (uint32_t i = top; i > 1; --i) {
    std::string from = absl::StrCat(options_.path, ".", i - 1);
    std::string to = absl::StrCat(options_.path, ".", i);
    if (rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return absl::InternalError(
          absl::StrCat("delivery log: rename ", from, ": ", std::strerror(errno)));
    }
  }
  std::string first = absl::StrCat(options_.path, ".1");
  if (rename(options_.path.c_str(), first.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(
        absl::StrCat("delivery log: rename ", options_.path, ": ", std::strerror(errno)));
  }
  ++rotations_;
  return OpenFile();
}

absl::Status DeliveryLog::WriteAll(const char* data, size_t size, size_t* written) {
  *written = 0;
  while (size > 0) {
    ssize_t n = write(fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      ++write_errors_;
      return absl::InternalError(
          absl::StrCat("delivery log: write ", options_.path, ": ", std::strerror(errno)));
    }
    data += n;
    size -= static_cast<size_t>(n);
    *written += static_cast<size_t>(n);
    file_bytes_ += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

void DeliveryLog::Append(const DeliveryRecord& record) {
  if (buffer_.size() >= options_.pending_bytes_max) {
    ++lines_dropped_;
    return;
  }
  FormatDeliveryRecord(record, buffer_);
  Appended();
}

void DeliveryLog::AppendFormatted(std::string_view line) {
  if (buffer_.size() >= options_.pending_bytes_max) {
    ++lines_dropped_;
    return;
  }
  buffer_.append(line);
  Appended();
}

void DeliveryLog::Appended() {
  ++lines_appended_;
  if (buffer_.size() >= options_.buffer_bytes_max) {
    absl::Status s = Flush();
    // Counted in write_errors(); the lines stay buffered for the next Flush().
    (void)s;
  }
}

absl::Status DeliveryLog::Flush() {
  if (reopen_requested_.exchange(false, std::memory_order_relaxed)) RETURN_IF_ERROR(Reopen());
  size_t done = 0;
  absl::Status status;
  while (done < buffer_.size()) {
    size_t end = buffer_.size();
    if (options_.rotate_bytes > 0) {
      // As many whole lines as fit under the limit; when none fits, rotate first. A single line
      // longer than the limit goes alone into a fresh file.
      const uint64_t room =
          file_bytes_ < options_.rotate_bytes ? options_.rotate_bytes - file_bytes_ : 0;
      if (end - done > room) {
        size_t cut = room == 0 ? std::string::npos : buffer_.rfind('\n', done + room - 1);
        if (cut == std::string::npos || cut < done) {
          if (file_bytes_ > 0) {
            status = Rotate();
            if (!status.ok()) break;
            continue;
          }
          cut = buffer_.find('\n', done);
        }
        end = cut == std::string::npos ? buffer_.size() : cut + 1;
      }
    }
    size_t written = 0;
    status = WriteAll(buffer_.data() + done, end - done, &written);
    done += written;
    if (!status.ok()) break;
  }
  // A failed write may have written part of a line; the rest stays buffered and is written next
  // time, completing the line (unless a reopen or rotation comes first: only then, after a write
  // error, can a line be split). Otherwise rotation happens only after whole lines.
  buffer_.erase(0, done);
  return status;
}

}  // namespace relay::delivery
