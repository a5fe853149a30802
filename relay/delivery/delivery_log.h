// The delivery log: one JSON object per line for every event of a message's life (received,
// delivered, deferred, bounced, expired, dsn_sent, suppressed, and the bounces and complaints
// that come back later), for operators and their log pipelines.
//
// Contract: a DeliveryLog belongs to one thread, its shard: each shard writes its own file,
// `delivery-<shard>.log` (DeliveryLogPath), so the hot path takes no lock and lines of different
// shards never interleave. Append() only formats into an in-memory buffer; the buffer is written
// with write(2) when it reaches buffer_bytes_max and whenever the owner calls Flush() (once per
// loop turn or on a timer). Lines reach the page cache, not the disk: the queue's state records,
// not this log, are the durable truth. Writes are whole lines, so a reader or a rotation never
// sees half a line.
//
// Rotation: by size (the file is renamed to .1, .1 to .2, ... up to .rotate_keep, the oldest
// dropped) at a line boundary; and Reopen() for logrotate's "move, then SIGHUP": the signal
// handler (any thread) calls RequestReopen(), which only sets an atomic flag, and the owner
// reopens the path at its next Flush().
//
// A delivered, deferred or bounced line with "possible_duplicate":true is about a recipient that
// had an earlier attempt whose outcome was never learned or never recorded: the relay died after
// the message's body went out and before the reply was recorded, or the connection was lost
// after the body and before the reply (RFC 1047). The remote may hold a copy from that attempt,
// so a delivered line with it may be the second copy. Lines without it are about recipients with
// no such attempt (queue/record_format.h, kAttempt).
//
// JSON strings are escaped per RFC 8259 §7: quote, backslash and control characters (and DEL)
// as escapes; valid UTF-8 is kept as it is; each byte that is not part of valid UTF-8 (stray
// continuation bytes, overlong forms, surrogates, code points above U+10FFFF) is replaced by
// U+FFFD, written as the escape \ufffd, so every line is valid UTF-8 JSON.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "relay/base/json.h"

namespace relay::delivery {

// kDeleted: the operator removed a pending recipient (`relayctl queue delete`); no DSN is sent.
enum class DeliveryEvent {
  kReceived,
  kDelivered,
  kDeferred,
  kBounced,
  kExpired,
  kDsnSent,
  kDeleted,
  kSuppressed,    // taken at RCPT but not queued: on the suppression list ([suppression] at_rcpt)
  kComplained,    // a complaint (ARF, RFC 5965) came back about a recipient ([feedback])
  kUnsubscribed,  // a recipient unsubscribed (RFC 8058 one-click, or the mailto; [unsubscribe])
};
std::string_view DeliveryEventName(DeliveryEvent event);

// One event. Views must stay valid only for the Append() call. Empty strings and zero numbers
// are left out of the line, except queue_id and sender (an empty sender is the null sender).
struct DeliveryRecord {
  DeliveryEvent event = DeliveryEvent::kReceived;
  int64_t time_unix_ms = 0;
  std::string_view queue_id;
  std::string_view sender;
  std::string_view recipient;
  std::string_view site;  // the ready queue's site (MX set) name
  std::string_view mx_host;
  std::string_view source_address;  // egress source the attempt left from
  std::string_view tls_version;     // "TLSv1.3"; empty: plaintext
  std::string_view tls_cipher;
  // TlsModeName ("none", "opportunistic", "verified", ...): for deliveries and encrypted
  // attempts; "" otherwise.
  std::string_view tls_mode;
  int reply_code = 0;
  std::string_view reply_enhanced;
  // The reply's text; without a reply (reply_code 0) the local reason: "connection refused",
  // "delivery to google suspended: ...", written as "reason".
  std::string_view reply_text;
  // Deferred and bounced: the bounce rules' category ("bad-mailbox"), written as "category".
  std::string_view category;
  std::string_view dsn_queue_id;     // dsn_sent: the DSN's own queue id
  std::string_view dsn_action;       // dsn_sent: "failed" or "delayed" (RFC 3464 Action)
  uint32_t attempt = 0;              // 1 for the first attempt
  bool possible_duplicate = false;   // see the contract above; written only when true
  int64_t queued_ms = -1;            // time since reception; -1: left out
  int64_t attempt_ms = -1;           // duration of this attempt; -1: left out
  int64_t next_attempt_unix_ms = 0;  // deferrals: when the next attempt is due
  uint64_t size_bytes = 0;           // message size (received)
  // Bounced and complained lines that come from a report returned later ([feedback]): what it
  // was ("dsn", "bounce-text", "complaint"; "one-click" or "mailto" for an unsubscribe) and, for
  // a complaint, its Feedback-Type ("abuse").
  std::string_view feedback;
  std::string_view feedback_type;
  // The message's tenant (queue::TenantOf) and campaign, written when set. The event journal
  // fills an empty tenant itself (relay/events/event_journal.h).
  std::string_view tenant;
  std::string_view campaign;
  // For the event journal only; the delivery log leaves it out.
  std::string_view message_id;
};

struct DeliveryLogOptions {
  std::string path;
  uint64_t rotate_bytes = 0;           // rotate when the file would pass this size; 0: never
  uint32_t rotate_keep = 5;            // rotated files kept: path.1 .. path.N (at least 1)
  size_t buffer_bytes_max = 64 << 10;  // Append() writes when the buffer reaches this
  // While the file cannot be written (disk full), lines wait in memory up to this bound, then
  // new lines are dropped and counted.
  size_t pending_bytes_max = 16 << 20;
};

// "<dir>/delivery-<shard>.log".
std::string DeliveryLogPath(std::string_view dir, uint32_t shard);

// Appends `s` to `out` as a JSON string with its quotes, escaped as described above
// (relay/base/json.h).
using relay::AppendJsonString;

// Appends one JSON object and its '\n' for `record`.
void FormatDeliveryRecord(const DeliveryRecord& record, std::string& out);

class DeliveryLog {
 public:
  // Opens (creating, appending) options.path.
  static absl::StatusOr<std::unique_ptr<DeliveryLog>> Open(DeliveryLogOptions options);
  ~DeliveryLog();  // flushes
  DeliveryLog(const DeliveryLog&) = delete;
  DeliveryLog& operator=(const DeliveryLog&) = delete;

  // Formats `record` into the buffer; writes the buffer when it reaches buffer_bytes_max.
  void Append(const DeliveryRecord& record);
  // The same with the line already formatted (FormatDeliveryRecord's output, '\n' included).
  void AppendFormatted(std::string_view line);
  // Writes every buffered line (rotating as needed); performs a requested reopen first.
  absl::Status Flush();
  // Closes and reopens the path (after logrotate moved the file away). Owner thread.
  absl::Status Reopen();
  // Any thread, async-signal-safe: ask the owner to Reopen() at its next Flush().
  void RequestReopen() { reopen_requested_.store(true, std::memory_order_relaxed); }

  uint64_t lines_appended() const { return lines_appended_; }
  uint64_t lines_dropped() const { return lines_dropped_; }
  uint64_t rotations() const { return rotations_; }
  uint64_t write_errors() const { return write_errors_; }
  size_t buffered_bytes() const { return buffer_.size(); }

 private:
  explicit DeliveryLog(DeliveryLogOptions options) : options_(std::move(options)) {}
  // Counts the line just buffered and writes the buffer when it is full.
  void Appended();
  absl::Status OpenFile();
  absl::Status Rotate();
  absl::Status WriteAll(const char* data, size_t size, size_t* written);

  DeliveryLogOptions options_;
  int fd_ = -1;
  uint64_t file_bytes_ = 0;  // size of the current file
  std::string buffer_;       // whole lines not yet written
  std::atomic<bool> reopen_requested_{false};
  uint64_t lines_appended_ = 0;
  uint64_t lines_dropped_ = 0;
  uint64_t rotations_ = 0;
  uint64_t write_errors_ = 0;
};

}  // namespace relay::delivery
