// A webhook: the events of some tenants, POSTed as JSON batches to one HTTPS endpoint, at least
// once, from the journals of every shard (event_journal.h).
//
// Each sender has its own thread and its own cursor: per shard, the journal position up to which
// the endpoint has acknowledged every event (or the event was not for it). The cursor is kept in
// "<events dir>/cursor-<name>" and replaced (write, fdatasync, rename) after every acknowledged
// batch, so after a crash the sender resumes there: an event may be posted twice, never lost.
// A new webhook starts at the journals' heads (events from its first start on).
//
// A batch is up to batch_events_max events or batch_bytes_max bytes, sent when full or when its
// first event has waited batch_wait_ms:
//
//   POST <path>   Content-Type: application/json
//   X-Relay-Webhook: <name>
//   X-Relay-Timestamp: <Unix seconds>
//   X-Relay-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//   {"webhook":"<name>","events":[{"id":"<shard>-<seq>-<offset>","ts":...,"event":...}, ...]}
//
// The id is the event's place in the journal: the same on every retry, so a receiver can drop a
// repeat. Any 2xx acknowledges the batch; anything else (a status, no answer, a certificate that
// does not verify) is retried with the same batch after retry_initial_ms, doubling up to
// retry_ms_max.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/events/event_journal.h"
#include "relay/events/https_post.h"
#include "relay/events/journal_reader.h"

namespace relay::events {

struct WebhookOptions {
  std::string name;  // [a-z0-9_-]+: names the cursor file and the metrics label
  std::string url;
  std::vector<std::string> tenants;  // sending domains, lower-case; "*" for every tenant
  std::vector<std::string> events;   // event names; empty for all
  std::string secret;
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";
  size_t batch_events_max = 500;
  size_t batch_bytes_max = 1 << 20;
  int batch_wait_ms = 1000;
  int timeout_ms = 10000;
  int retry_initial_ms = 1000;
  int retry_ms_max = 300000;
};

// What a sender has done, for the metrics; written by its thread, read by any.
struct WebhookStats {
  std::atomic<uint64_t> events_sent{0};
  std::atomic<uint64_t> batches_sent{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<int64_t> backlog_events{0};          // journal lines past the cursor, up to the heads
  std::atomic<int64_t> oldest_pending_unix_ms{0};  // first event of the unacknowledged batch; 0
};

// The hex HMAC-SHA256 of "<timestamp>.<body>" under `secret`.
std::string SignBatch(std::string_view secret, int64_t timestamp, std::string_view body);

// The per-shard cursor file's text and its reading (an error names the line that is wrong).
std::string FormatCursor(const std::vector<Position>& cursor);
absl::StatusOr<std::vector<Position>> ParseCursor(std::string_view text);

// Where the sinks read: the events directory and each shard's durable head (index = shard).
struct JournalSet {
  std::string dir;
  std::vector<const JournalHead*> heads;
};

class WebhookSender {
 public:
  static absl::StatusOr<std::unique_ptr<WebhookSender>> Create(WebhookOptions options,
                                                               const JournalSet* journals);
  ~WebhookSender();  // stops

  void Start();
  // Ends the thread: a batch not yet acknowledged stays behind the cursor for the next start.
  void Stop();

  const WebhookOptions& options() const { return options_; }
  const WebhookStats& stats() const { return stats_; }
  // The cursor as last written to disk; files wholly behind it are no longer needed by this sender.
  std::vector<Position> PersistedCursor() const;
  std::string last_error() const;

 private:
  WebhookSender(WebhookOptions options, const JournalSet* journals,
                std::unique_ptr<HttpsPoster> poster);
  void Run();
  // Reads the next events for this endpoint into batch_ (ids and all), from cursor_ into next_.
  void Collect();
  bool Wants(const JournalEvent& e) const;
  // Posts batch_ until it is acknowledged; false when stopping first.
  bool Deliver();
  absl::Status SaveCursor(const std::vector<Position>& cursor);
  void CountBacklog();
  // Sleeps up to `ms`; false when asked to stop.
  bool Sleep(int ms);
  Position Head(size_t shard) const;

  const WebhookOptions options_;
  const JournalSet* const journals_;
  const std::unique_ptr<HttpsPoster> poster_;
  const std::string cursor_path_;
  std::vector<JournalReader> readers_;        // one per shard
  std::vector<JournalReader> count_readers_;  // for the backlog count
  std::vector<Position> cursor_;              // acknowledged
  std::vector<Position> next_;                // after the events in batch_
  std::vector<Position> counted_;             // the backlog count has seen up to here
  std::string batch_;                         // the events, comma-separated JSON objects
  size_t batch_events_ = 0;
  uint64_t batch_lines_ = 0;  // journal lines the batch passes, taken or filtered
  int64_t batch_first_unix_ms_ = 0;
  WebhookStats stats_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<Position> persisted_;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace relay::events
