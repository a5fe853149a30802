// An event sink: a thread that takes the events some tenants want from the journals of every
// shard (event_journal.h), in batches, and hands each batch to its far side (a webhook, an AMQP
// exchange; a Kafka topic can be another) until the far side takes it: at least once.
//
// Each sink has its own cursor: per shard, the journal position up to which the far side has taken
// every event (or the event was not for this sink). The cursor is kept in
// "<events dir>/cursor-<name>" and replaced (write, fdatasync, rename) after every batch taken,
// so after a crash the sink resumes there: an event may be delivered twice, never lost. A new sink
// starts at the journals' heads (events from its first start on).
//
// A batch is up to batch_events_max events or batch_bytes_max bytes, handed over when full or
// when its first event has waited batch_wait_ms. Each event is the journal's JSON object with
// "id":"<shard>-<seq>-<offset>" first: its place in the journal, the same on every retry, so a
// receiver can drop a repeat. A batch the far side refuses is tried again, the same batch, after
// retry_initial_ms, doubling up to retry_ms_max; one the far side finds too large (HTTP 413) is
// sent again in halves.
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
#include "relay/events/journal_reader.h"

namespace relay::events {

struct SinkOptions {
  std::string name;                  // [a-z0-9_-]+: names the cursor file and the metrics label
  std::vector<std::string> tenants;  // sending domains, lower-case; "*" for every tenant
  std::vector<std::string> events;   // event names; empty for all
  size_t batch_events_max = 500;
  size_t batch_bytes_max = 1 << 20;
  int batch_wait_ms = 1000;
  int retry_initial_ms = 1000;
  int retry_ms_max = 300000;
};

// What a sink has done, for the metrics; written by its thread, read by any.
struct SinkStats {
  std::atomic<uint64_t> events_sent{0};
  std::atomic<uint64_t> batches_sent{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<int64_t> backlog_events{0};          // journal lines past the cursor, up to the heads
  std::atomic<int64_t> oldest_pending_unix_ms{0};  // first event of the batch not yet taken; 0
};

// Where the sinks read: the events directory and each shard's durable head (index = shard).
struct JournalSet {
  std::string dir;
  std::vector<const JournalHead*> heads;
};

// The cursor file's text and its reading (an error names the line that is wrong).
std::string FormatCursor(const std::vector<Position>& cursor);
absl::StatusOr<std::vector<Position>> ParseCursor(std::string_view text);

class EventSink {
 public:
  virtual ~EventSink();
  EventSink(const EventSink&) = delete;
  EventSink& operator=(const EventSink&) = delete;

  void Start();
  // Ends the thread: a batch not yet taken stays behind the cursor for the next start. A derived
  // class calls it in its destructor (the thread calls Deliver).
  void Stop();

  const SinkOptions& sink_options() const { return options_; }
  const SinkStats& stats() const { return stats_; }
  // The cursor as last written to disk; files wholly behind it are no longer needed by this sink.
  std::vector<Position> PersistedCursor() const;
  std::string last_error() const;

 protected:
  EventSink(SinkOptions options, const JournalSet* journals);
  // Reads the cursor file, or (a new sink) writes one at the heads. Called once, before Start.
  absl::Status LoadCursor();
  // Hands one batch to the far side: `events` is `count` JSON objects separated by commas. OK
  // once the far side has taken it; an error (its message is logged and kept) is retried.
  virtual absl::Status Deliver(std::string_view events, size_t count) = 0;
  // Called on the sink's thread about every 100 ms while no batch is being handed over, for the
  // upkeep of a connection kept open between batches (AMQP heartbeats). It must not wait.
  virtual void Idle() {}
  // Where each event of the batch being delivered begins in Deliver's `events` (at its '{'), for
  // a far side that takes events one by one.
  const std::vector<size_t>& batch_starts() const { return batch_starts_; }
  // Set when Stop() is called: a Deliver that waits on the network gives up when it is.
  const std::atomic<bool>& stopping() const { return stopping_flag_; }

 private:
  void Run();
  // Reads the next events for this sink into batch_, from cursor_ into next_.
  void Collect();
  bool Wants(const JournalEvent& e) const;
  enum class Delivered { kTaken, kStopping, kTooLarge };
  // Delivers batch_ until it is taken, the sink stops, or the far side says it is too large
  // (ResourceExhausted from Deliver, with more than one event).
  Delivered DeliverBatch();
  // batch_events_max, or less while the far side refuses batches that large.
  size_t EventsMax() const;
  absl::Status SaveCursor(const std::vector<Position>& cursor);
  void CountBacklog();
  // Sleeps up to `ms`; false when asked to stop.
  bool Sleep(int ms);
  Position Head(size_t shard) const;

  const SinkOptions options_;
  const JournalSet* const journals_;
  const std::string cursor_path_;
  std::vector<JournalReader> readers_;        // one per shard
  std::vector<JournalReader> count_readers_;  // for the backlog count
  std::vector<Position> cursor_;              // taken
  std::vector<Position> next_;                // after the events in batch_
  std::vector<Position> counted_;             // the backlog count has seen up to here
  size_t events_cap_ = 0;                     // 0: batch_events_max; else halved after an HTTP 413
  size_t first_shard_ = 0;                    // Collect starts here, one further each batch
  std::string batch_;                         // the events, comma-separated JSON objects
  std::vector<size_t> batch_starts_;          // where each event begins in batch_
  size_t batch_events_ = 0;
  uint64_t batch_lines_ = 0;  // journal lines the batch passes, taken or filtered
  int64_t batch_first_unix_ms_ = 0;
  SinkStats stats_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};
  std::vector<Position> persisted_;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace relay::events
