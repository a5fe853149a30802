// The event sinks of a relay and the journal they read: the heads the shards publish, the sinks
// (one WebhookSender per configured endpoint, one AmqpSink per configured exchange), and the
// journal's upkeep. Once a second a
// maintenance thread removes the files every sink has passed, and keeps the journal within
// journal_bytes_max: past it (an endpoint down for long), the oldest files go first, their events
// counted as dropped and logged, so a dead endpoint cannot fill the disk the spool lives on.
//
// Made before the shards start (they take their head from it) and stopped after they stop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/events/amqp_sink.h"
#include "relay/events/event_journal.h"
#include "relay/events/webhook_sender.h"

namespace relay::events {

struct EventSinksOptions {
  std::string dir;
  uint32_t shards = 1;                             // shards running now
  uint64_t file_bytes_max = 8 << 20;               // for the shards' journals
  uint64_t journal_bytes_max = uint64_t{4} << 30;  // all files of all shards
  int sync_interval_ms = 100;  // the shards' journal fdatasync; 0: in each queue group commit
  std::vector<WebhookOptions> webhooks;
  std::vector<AmqpOptions> amqp;  // names unique across webhooks and amqp (the cursor files)
};

class EventSinks {
 public:
  static absl::StatusOr<std::unique_ptr<EventSinks>> Create(EventSinksOptions options);
  ~EventSinks();

  // The head shard `shard` publishes to.
  JournalHead* head(uint32_t shard) { return heads_[shard].get(); }
  const EventSinksOptions& options() const { return options_; }
  const std::vector<std::unique_ptr<EventSink>>& sinks() const { return sinks_; }
  uint64_t events_dropped() const { return events_dropped_.load(std::memory_order_relaxed); }
  // Summed over the shards' journals (JournalHead).
  uint64_t journal_lines_dropped() const;
  uint64_t journal_write_errors() const;

  // After the shards have opened their journals (their heads are then where they write).
  void Start();
  void Stop();

  // One upkeep pass (the maintenance thread's, or a test's).
  void Maintain();

 private:
  explicit EventSinks(EventSinksOptions options) : options_(std::move(options)) {}
  // What one upkeep pass found: the complete files kept ((seq, shard) -> bytes), all bytes kept,
  // and whether a file was removed or renamed (the directory is then synced).
  struct Upkeep {
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> kept;
    uint64_t total = 0;
    bool removed = false;
  };
  void KeepShardFiles(uint32_t shard, uint32_t needed, Upkeep* upkeep);

  const EventSinksOptions options_;
  std::vector<std::unique_ptr<JournalHead>> heads_;  // live shards, then shards with old files
  JournalSet journals_;
  std::vector<std::unique_ptr<EventSink>> sinks_;
  std::atomic<uint64_t> events_dropped_{0};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace relay::events
