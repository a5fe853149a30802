// The event journal: every event of a message's life (received, delivered, deferred, bounced,
// expired, suppressed, dsn_sent, deleted), kept on disk until every event sink has taken it.
//
// Each shard appends to its own files in the events directory, "s<shard>-<seq>.events" (seq
// counts up from 1; a restarted shard starts a new file after the last one written there), each
// made ahead of its use, full of zeros (PrepareJournalFile) or recycled. A line is
//
//   <seq>\t<event>\t<tenant>\t<time, Unix ms>\t<JSON object>\n
//
// where the JSON object is the delivery log's line for the event (delivery_log.h) with "tenant"
// and "message_id" added, and the leading fields let a sink filter without parsing JSON. <seq> is
// the number of the file the line was written into: files are recycled (a file every sink has
// passed becomes a later one, its blocks already on disk) and the first line whose tag is not the
// file's own number, or a zero byte, ends a file's lines.
//
// Durability ([events] sync, relay/server/config/event_sections.h): the shard writes the
// journal's buffered lines (write(2), into the page cache) with each event, and as each group
// commit begins. With sync = "with-queue" the commit fdatasyncs the
// journal's files with the spool's segments, so an event is on disk no later than the outcome it
// describes and a 250 is sent only after the "received" events of its message are (they are
// appended with the message); with "interval" the files are fdatasynced on their own every sync_ms.
// Either way the journal publishes the position a finished sync reached, and sinks read only up to
// it.
//
// What a crash can cost: an event is written (write(2), into the page cache, which a kill of
// relayd does not lose) before the spool's record of what it describes (RecordEvent; a message's
// "received" events before the message), so no crash of relayd leaves a record without its
// event. The exceptions, both operator or relay-made messages: "deleted" and "dsn_sent" are
// written just after their record. A power loss loses, with "interval", up to sync_ms of events.
//
// Contract: an EventJournal belongs to its shard's thread; its JournalHead is read by any thread.
// Append() never blocks on the disk: it formats into memory and writes (write(2), to the page
// cache) when the buffer reaches buffer_bytes_max; Write() and BeginSync() write the rest. While
// the disk refuses writes, lines wait in memory up to pending_bytes_max, then are dropped and
// counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/delivery/delivery_log.h"

namespace relay::events {

// A line longer than this is not written (and a reader skips one).
inline constexpr size_t kLineBytesMax = 64 << 10;

// A place in a shard's journal: the file's sequence number and a byte offset in it. seq 0 is
// before the first file.
struct Position {
  uint32_t seq = 0;
  uint32_t offset = 0;
  uint64_t Packed() const { return (uint64_t{seq} << 32) | offset; }
  static Position Unpack(uint64_t v) {
    return {static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)};
  }
  friend bool operator==(Position a, Position b) { return a.Packed() == b.Packed(); }
  friend bool operator<(Position a, Position b) { return a.Packed() < b.Packed(); }
};

// How far a shard's journal is durable: sinks read files before `seq` whole and file `seq` up
// to `offset`. Written by the shard, read by any thread.
class JournalHead {
 public:
  Position Get() const { return Position::Unpack(packed_.load(std::memory_order_acquire)); }
  void Publish(Position p) { packed_.store(p.Packed(), std::memory_order_release); }
  // What the journal could not keep, for the metrics: lines dropped (held back past
  // pending_bytes_max, longer than kLineBytesMax, or past a file that could not be replaced) and
  // failed writes and syncs.
  std::atomic<uint64_t> lines_dropped{0};
  std::atomic<uint64_t> write_errors{0};

 private:
  std::atomic<uint64_t> packed_{0};
};

// "s<shard>-<seq>.events", seq zero-padded to 10 digits so names sort in order.
std::string JournalFileName(uint32_t shard, uint32_t seq);
// The shard and seq of a journal file's name; nullopt for any other name.
std::optional<std::pair<uint32_t, uint32_t>> ParseJournalFileName(std::string_view name);
// The seqs of `shard`'s files in `dir`, ascending (empty when the directory is missing).
std::vector<uint32_t> ListJournalFiles(const std::string& dir, uint32_t shard);
// Every shard that has a file in `dir`.
std::vector<uint32_t> ListJournalShards(const std::string& dir);

// Makes journal file `seq` of `shard` ahead of its use: `bytes` of zeros, synced, linked into
// place (never over a file that is there) and the directory synced. Writing into a file whose
// blocks and size are already on disk keeps each fdatasync to the data alone, as the spool's
// segments do; a reader takes a zero byte as the end of a file's lines. `tag` keeps the temporary
// names of two callers apart.
absl::Status PrepareJournalFile(const std::string& dir, uint32_t shard, uint32_t seq,
                                uint64_t bytes, std::string_view tag);

// The tenant an event belongs to: the sending domain, lower-case ("" for the null sender). For
// dsn_sent, whose sender is <>, the domain of the original sender (the DSN's recipient).
std::string EventTenant(const delivery::DeliveryRecord& record);
// The Message-ID field's value in `message`'s header (folding removed, at most 998 bytes), ""
// when it has none. Reads the header section only; linear in it.
std::string_view FindMessageId(std::string_view message, std::string* storage);

// Appends the journal line for `record` (tenant and message_id taken from it), tagged for file
// `seq`, to `out`; nothing when it would be longer than kLineBytesMax. `formatted`: as in
// EventJournal::Append; `formatted_has_tenant`: it was made from a record with a tenant (the
// JSON has its "tenant" already).
void FormatJournalLine(const delivery::DeliveryRecord& record, uint32_t seq, std::string& out,
                       std::string_view formatted = {}, bool formatted_has_tenant = false);

// Whether file `seq` of `shard` holds a line written into it under that number (not a file made
// or recycled ahead and not yet used).
bool JournalFileUsed(const std::string& dir, uint32_t shard, uint32_t seq);

struct JournalOptions {
  std::string dir;
  uint32_t shard = 0;
  uint64_t file_bytes_max = 16 << 20;   // a new file once the current one would pass this
  size_t buffer_bytes_max = 1 << 20;    // written at once when the buffer reaches this
  size_t pending_bytes_max = 64 << 20;  // held while writes fail; beyond it lines are dropped
};

class EventJournal {
 public:
  // Creates the directory and starts a new file after the shard's last one written, and not
  // before the file `head` names (a sink's cursor may be past the files there are); `head` (kept
  // by the caller, outliving the journal) is published at once with the new file's start.
  static absl::StatusOr<std::unique_ptr<EventJournal>> Open(JournalOptions options,
                                                            JournalHead* head);
  ~EventJournal();
  EventJournal(const EventJournal&) = delete;
  EventJournal& operator=(const EventJournal&) = delete;

  // Formats `record` into the buffer; an empty record.tenant is taken from EventTenant.
  // `formatted`, when given, is the delivery log's line for `record` (FormatDeliveryRecord),
  // taken instead of formatting it again.
  void Append(delivery::DeliveryRecord record, std::string_view formatted = {});

  // Writes what is buffered (RecordEvent after each event; the shard after a message's lines).
  void Write() { WriteBuffer(); }
  // Lines appended and not yet covered by a begun sync.
  bool HasUnsynced() const { return !buffer_.empty() || written_ != requested_; }
  // A sync batch begins: writes the buffer and adds to `fds` the files to fdatasync with it.
  // Returns the token to give EndSync.
  uint64_t BeginSync(std::vector<int>* fds);
  // The batch `token` ended (result 0 or -errno): publishes the position it covered once every
  // earlier batch has ended too.
  void EndSync(uint64_t token, int result);
  // Without a syncing spool (benchmarks, fsync off): writes and publishes at once.
  void WriteAndPublish();

  uint64_t lines_appended() const { return lines_appended_; }
  uint64_t lines_dropped() const { return head_->lines_dropped.load(); }
  uint64_t write_errors() const { return head_->write_errors.load(); }
  const std::string& current_path() const { return path_; }

 private:
  EventJournal(JournalOptions options, JournalHead* head)
      : options_(std::move(options)), head_(head) {}
  absl::Status OpenFile(uint32_t seq);
  // Writes the buffer (starting a new file first when this one is full); keeps it on failure.
  void WriteBuffer();

  struct Pending {
    uint64_t token = 0;
    Position end;
    std::vector<int> close_fds;  // rotated-out files, closed once synced
    bool done = false;
    bool failed = false;
  };

  const JournalOptions options_;
  JournalHead* const head_;
  int fd_ = -1;
  uint32_t seq_ = 0;
  std::string path_;
  uint64_t written_ = 0;          // bytes written to the current file
  uint64_t requested_ = 0;        // of those, covered by a begun sync
  std::vector<int> rotated_fds_;  // files left behind since the last sync began
  std::string buffer_;
  std::string line_;  // the line Append formats
  std::deque<Pending> pending_;
  uint64_t next_token_ = 1;
  int64_t rotate_retry_after_ms_ = 0;  // after a failed rotation, tried again at most once a second
  uint64_t lines_appended_ = 0;
};

// One event to the delivery log and the event journal (either may be null), formatted once; the
// journal's line is written at once.
void RecordEvent(delivery::DeliveryLog* log, EventJournal* journal,
                 const delivery::DeliveryRecord& record);

}  // namespace relay::events
