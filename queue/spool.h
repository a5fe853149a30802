// The durable queue of one shard: an append-only log of fixed-size, pre-allocated segment files in
// one directory, with group commit, recovery, an in-memory view and space management.
//
// Threading: a Spool belongs to its shard's thread; every method is called there and callbacks run
// there. Appends take no lock. Other processes (relayctl) read the same files through SpoolReader,
// without locks, up to the committed length each segment header publishes. One writer per
// directory is enforced with an flock on `LOCK`.
//
// Durability contract. AppendMessage/AppendState copy the record into the head segment and return
// its position; NOTHING is durable then. The record's DurableCallback fires (on this thread, from
// EndSync or SyncNow) with OK only after an fdatasync that covers the record has completed, or
// with an error status. The server sends "250" to DATA only from that callback. All records
// appended before BeginSync share that one sync (group commit). A new message, or a state record
// with a callback, asks for a sync at once (NeedsSync). Records nobody waits for (delivery
// outcomes, attempt markers, compacted copies) do not: they join the next group commit, and when
// none begins within outcome_sync_ms of the first of them, NeedsSync asks for one then
// (OutcomeSyncDueMs says when, for the caller's timer). So an outcome is covered by a sync that
// begins at most outcome_sync_ms after it was appended (later only while syncs_in_flight_max
// batches are running: the next one begins when one ends), at the cost of one fdatasync per
// outcome_sync_ms at most while only deliveries run, instead of one per loop turn that recorded
// an outcome. A process crash (SIGKILL) loses none of them: they are in the page cache once
// appended; the bound is what a machine crash may lose. Up to syncs_in_flight_max syncs
// may be in flight at once: appends made while they run ride on the next one. With one at a time,
// a record appended just after a sync began waits for the rest of it and then a whole one (about
// 1.5 fdatasync times on average). NeedsSync therefore lets a batch begin while another runs, but
// only once the youngest running one has run for half of the last sync's duration: earlier, the
// new batch would be small, and on a device that serialises flushes, many small syncs are slower
// than a few large ones (measured with bench/compare: starting each batch at once lost 23% of the
// rate when fdatasync took 4 ms). Batches complete in the order they began, whatever order their
// fdatasyncs end in: a batch's records become durable (and their callbacks fire) only when it and
// every earlier batch have completed. The shard, at the end of each loop turn:
//
//     if (spool.NeedsSync()) { batch = spool.BeginSync(); submit IORING_OP_FSYNC
//       (IORING_FSYNC_DATASYNC) for each batch.targets[i].fd; when all complete:
//       spool.EndSync(batch, 0 or the first -errno); }
//     else if (spool.OutcomeSyncDueMs() >= 0) { wake up then and ask again; }
//
// Before it stops, the owner calls RequestPromptSync (each turn) so that nothing waits for the
// bound, and stops once HasUnsyncedRecords() is false and no batch runs.
//
// A failed fdatasync fails every waiting callback and the spool refuses further appends (the
// kernel may have dropped the dirty pages: retrying would claim durability it does not have);
// the server answers 452 4.3.1 until an operator restarts it, and recovery then reads what is
// really on disk. `fsync = false` (benchmarks only, logged loudly at open) completes syncs without
// calling fdatasync.
//
// Space. Appends that need a new segment take one from the reserve of pre-written files, so no
// file is created on the append path. Creating one (SegmentFile::Create: zeros, fsync, directory
// fsync; tens to hundreds of milliseconds) must not block the shard either, so a shard refills the
// reserve through a request/hand-back protocol, still calling the Spool only on its own thread:
//
//     while (auto request = spool.TakeReserveRequest()) {      // cheap; every loop turn
//       creator.Create(*request, ...);     // SegmentFile::Create on a background thread
//     }
//     ... back on the shard thread: spool.AddReserve(request, created_or_error);
//
// TakeReserveRequest returns a request while reserve + pending creations < reserve_segments and
// the file cap (MessageSegmentsMax() + 1 files, pending ones included) allows; each request has
// its own file name, never reused (not even after a failure). A segment taken from the reserve
// that leaves it below its low-water mark ((reserve_segments + 1) / 2: empty, with the default 2)
// makes the next call return its replacement at once; above that mark the call waits until the
// reserve has stayed short for kReserveRefillDelayMs, because a segment freed by delivery usually
// refills it first (asking at once wrote a file per rollover, deleted soon after). A result that
// finds the reserve full by then is deleted. A failed creation (ENOSPC, usually) is logged by
// AddReserve and releases its slot; TakeReserveRequest asks again kReserveRetryMs later.
// MaintainReserve does the same creations synchronously (Open, tools, tests). When the reserve is
// empty all the same, the append creates a segment itself (counted in
// segments_created_on_hot_path and logged): the last resort. A creation the Spool never hears
// back about (a process stopping) leaves a free segment file: Open takes it into the reserve, or
// deletes it (beyond the reserve, or cut short by a crash). Messages may fill at most
// spool_bytes_max / segment_bytes segment files; state records and compaction may use one
// more so that outcomes can always be recorded and space freed. When no segment is available
// AppendMessage returns kResourceExhausted, which the server maps to "452 4.3.1 Insufficient
// system storage" (RFC 3463 §3.5; RFC 5321 §4.2.3); a full disk while pre-allocating gives the
// same. A refused append writes nothing. Segments are freed oldest first, once every message in
// them is final (or moved by compaction) and that is durable; a freed segment goes back to the
// reserve or is deleted. MaintainSpace compacts the oldest segment when few live messages keep
// it alive, re-appending them (with their current state) at the head.
//
// Readers. A segment's committed_bytes (what SpoolReader trusts) is published after a sync at most
// every 50 ms while appends go on, and at once when the spool is quiet (nothing written since the
// last sync began and none running): it may lag what is durable, never lead it.
//
// Views. string_views handed out (MessageBytes, MessageInfo fields) point into the mappings and
// stay valid until the message becomes final or is moved by compaction, and one sync after that.
// Pin a message while its bytes are being sent; compaction does not move pinned messages.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "queue/queue_index.h"
#include "queue/record_format.h"
#include "queue/segment.h"
#include "relay/base/clock.h"

namespace queue {

// How records reach the page cache. Measured by //bench:queue_bench on the project's machine:
// with fdatasync, pwrite is about 3x faster than stores into the mapping (every sync write-protects
// the mapped pages again, so the next stores take a page fault each, and writeback of mapped pages
// costs more); without fsync the mapping is about 1.8x faster. Durable spools use kPwrite.
enum class WriteMode {
  kMmap,    // memcpy into the writable MAP_SHARED mapping
  kPwrite,  // encode into a buffer, pwrite(2) it; readers still read through the mapping
};

struct SpoolOptions {
  std::string directory;
  uint32_t shard = 0;
  uint64_t segment_bytes = 64 << 20;
  // Free segment files kept ready.
  uint32_t reserve_segments = 2;
  uint64_t spool_bytes_max = uint64_t{16} << 30;
  // false: benchmarks only. Never durable.
  bool fsync = true;
  // Group commits in flight at once: begun and not yet ended (see the durability contract
  // above); at least 1.
  uint32_t syncs_in_flight_max = 2;
  // How long records nobody waits for (outcomes) may wait for a group commit before one is begun
  // for them alone; 0: at once, like messages.
  int64_t outcome_sync_ms = 5;
  WriteMode write_mode = WriteMode::kPwrite;
  // Messages older than this are reported by ExpiredMessages for the bounce path.
  int64_t message_age_ms_max = int64_t{5} * 24 * 3600 * 1000;
  // MaintainSpace compacts the oldest segment when its live bytes are at most this fraction of
  // its written bytes.
  double compact_live_fraction_max = 0.25;
  const relay::Clock* clock = nullptr;  // null: RealClock
};

// What recovery found at open.
struct RecoveryReport {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t live_messages = 0;
  uint64_t torn_tails = 0;
  uint64_t orphan_states = 0;
  // Corrupted records in the middle of a segment; each such segment was renamed to *.damaged
  // after what could be read from it was re-appended.
  std::vector<CorruptRecord> corruptions;
  std::vector<std::string> damaged_segments;
};

using DurableCallback = absl::AnyInvocable<void(absl::Status)>;

struct Appended {
  MessageId id;
  Position position;  // end of the record
};

struct SyncTarget {
  int fd = -1;
  uint64_t segment_seq = 0;    // 0: a segment being freed
  uint64_t end_offset = 0;     // the bytes this sync covers
};

struct SyncBatch {
  absl::InlinedVector<SyncTarget, 2> targets;
  Position end;  // every record ending at or before this is covered
  uint64_t batch_id = 0;
};

// A reserve segment file for the caller to create with SegmentFile::Create(path, segment_bytes,
// shard), on any thread, and hand back with Spool::AddReserve.
struct SegmentRequest {
  std::string path;
  uint64_t segment_bytes = 0;
  uint32_t shard = 0;
  uint64_t slot = 0;  // the number in the file name; unique within the spool directory
};

struct SpoolStats {
  uint64_t active_segments = 0;
  uint64_t reserve_segments = 0;
  uint64_t live_messages = 0;
  uint64_t syncs = 0;
  uint64_t appends = 0;
  uint64_t segments_freed = 0;
  uint64_t segments_created_on_hot_path = 0;
  // Reserve creations requested and not handed back yet.
  uint64_t reserve_pending = 0;
  // Results handed back through AddReserve: files added to the reserve (or deleted when the
  // reserve had been refilled meanwhile), and failures.
  uint64_t reserve_segments_handed_back = 0;
  uint64_t reserve_creation_failures = 0;
  uint64_t messages_compacted = 0;
};

class Spool {
 public:
  static absl::StatusOr<std::unique_ptr<Spool>> Open(const SpoolOptions& options,
                                                     RecoveryReport* report = nullptr);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends a new message. `prepend_headers` (Received:, DKIM-Signature:) and `message` are stored
  // contiguously. Errors: kResourceExhausted (spool full: 452 4.3.1), kInvalidArgument (record
  // larger than a segment: 552 5.3.4), kFailedPrecondition (a sync failed earlier: 452 4.3.1).
  absl::StatusOr<Appended> AppendMessage(const Envelope& envelope,
                                         std::string_view prepend_headers,
                                         std::string_view message, DurableCallback on_durable);
  // Appends an outcome. `on_durable` may be null. Errors: those of AppendMessage, and
  // kInvalidArgument for a reply over kReplyBytesMax or a state the index refuses.
  absl::StatusOr<Position> AppendState(const StateRecord& state, DurableCallback on_durable);
  // Tests: the next `count` AppendState calls fail with `status` and write nothing, as a full or
  // failing disk makes them fail (for tests of what a caller does with an outcome it could not
  // record).
  void FailStateAppendsForTesting(uint32_t count, absl::Status status) {
    failing_state_appends_ = count;
    failing_state_status_ = std::move(status);
  }

  // A batch should begin now (see the durability contract above).
  bool NeedsSync() const;
  // A batch may begin now as far as the syncs in flight go.
  bool CanBeginSync() const;
  // When (clock monotonic ms) NeedsSync will ask for a sync for the records that wait without a
  // callback; -1 when none waits that way or NeedsSync already asks.
  int64_t OutcomeSyncDueMs() const;
  // Something appended (or a segment marked free) is not covered by a begun sync yet.
  bool HasUnsyncedRecords() const { return !dirty_.empty() || !freeing_.empty(); }
  // What waits for outcome_sync_ms is synced at the next chance instead (a stop).
  void RequestPromptSync() {
    if (HasUnsyncedRecords()) prompt_sync_ = true;
  }
  SyncBatch BeginSync();
  void EndSync(const SyncBatch& batch, int result);
  // Blocking driver for tests and tools: BeginSync, fdatasync each target, EndSync. Syncs what
  // waits for outcome_sync_ms too.
  absl::Status SyncNow();

  // How long TakeReserveRequest waits after a failed creation before asking again.
  static constexpr int64_t kReserveRetryMs = 1000;
  // How long the reserve may stay short, above its low-water mark, before TakeReserveRequest asks
  // for a creation (a freed segment may refill it meanwhile).
  static constexpr int64_t kReserveRefillDelayMs = 1000;

  // Creates reserve segment files up to reserve_segments, here and now (pending requests count
  // toward it). Blocks for each creation: Open, tools and tests; a shard uses the two below.
  absl::Status MaintainReserve();
  // The next reserve segment to create off this thread, if the reserve (with the creations
  // pending) is below reserve_segments, the file cap allows one more, no failure happened in the
  // last kReserveRetryMs, and either the reserve is below its low-water mark
  // ((reserve_segments + 1) / 2) or has been short for kReserveRefillDelayMs. Counts it as
  // pending. A few comparisons when the reserve is full.
  std::optional<SegmentRequest> TakeReserveRequest();
  // The result of a request from TakeReserveRequest (exactly once per request): the file joins the
  // reserve (or is deleted if the reserve is full by now); an error is logged and retried later.
  void AddReserve(const SegmentRequest& request,
                  absl::StatusOr<std::unique_ptr<SegmentFile>> created);
  // Compacts the oldest segment if few live messages keep it (see compact_live_fraction_max);
  // returns the number of messages moved. `force` compacts it whatever its live fraction.
  absl::StatusOr<size_t> MaintainSpace(bool force = false);

  // The view.
  const MessageInfo* Find(MessageId id) const { return index_.Find(id); }
  std::string_view MessageBytes(MessageId id) const;
  void ForEachMessage(absl::FunctionRef<void(const MessageInfo&)> fn) const {
    index_.ForEach(fn);
  }
  // Live messages with a pending recipient due at or before now_unix_ms and not expired, earliest
  // first, at most `max`.
  std::vector<MessageId> DueMessages(int64_t now_unix_ms, size_t max) const;
  // Live messages older than message_age_ms_max: bounce their pending recipients.
  std::vector<MessageId> ExpiredMessages(int64_t now_unix_ms) const;
  // created_unix_ms of the oldest live message, -1 when the spool holds none. O(1).
  int64_t OldestMessageCreatedUnixMs() const { return index_.OldestCreatedUnixMs(); }
  // The bytes of segment files messages may fill (spool_bytes_max rounded down to whole
  // segments): beyond them AppendMessage refuses (452 4.3.1).
  uint64_t MessageBytesMax() const { return MessageSegmentsMax() * options_.segment_bytes; }
  void Pin(MessageId id);
  void Unpin(MessageId id);

  Position durable_position() const { return durable_; }
  // The id the next AppendMessage will assign (the server names it in the Received header it
  // prepends, before appending).
  MessageId NextMessageId() const { return MessageId{id_epoch_hi_, next_id_lo_}; }
  Position append_position() const;
  SpoolStats stats() const;
  const SpoolOptions& options() const { return options_; }

 private:
  struct Segment {
    std::unique_ptr<SegmentFile> file;
    uint64_t write_offset = kSegmentHeaderBytes;
    uint64_t synced_offset = kSegmentHeaderBytes;
    uint64_t sync_requested_offset = kSegmentHeaderBytes;
  };
  struct Waiter {
    Position end;
    DurableCallback callback;
  };
  // A batch between BeginSync and the EndSync that retires it (in begin order).
  struct InFlightSync {
    uint64_t batch_id = 0;
    int64_t begin_ns = 0;
    Position end;
    std::vector<SyncTarget> targets;  // segments written (and free marks) this batch covers
    std::vector<std::unique_ptr<SegmentFile>> freeing;
    bool done = false;
    int result = 0;
  };

  explicit Spool(const SpoolOptions& options);
  absl::Status Recover(RecoveryReport* report);
  std::string SegmentPath(uint64_t slot) const;
  absl::StatusOr<std::unique_ptr<SegmentFile>> CreateSegment();
  // Makes sure the head has `bytes` free, switching segments if needed.
  absl::Status Reserve(size_t bytes, bool is_message);
  absl::Status StartNewHead(bool is_message);
  // Writes an encoded record at the head's write offset.
  char* WritePointer(size_t bytes);
  absl::Status CommitWrite(size_t bytes);
  // Re-appends a message with its current state (compaction, recovery from damage), and an
  // attempt marker after it for each recipient with an attempt open.
  absl::StatusOr<Position> AppendCopy(const MessageInfo& info);
  // Appends an already checked state record and applies it to the index.
  absl::StatusOr<Position> WriteState(const StateRecord& state);
  // Retires completed batches from the front of in_flight_, in begin order.
  void RetireSyncs();
  // Stores the synced length into the headers of unpublished_ segments (throttled, see .cc;
  // `force`: now).
  void PublishSynced(bool force = false);
  // A free segment file back into the reserve when there is room and it has the configured size;
  // otherwise its file is deleted.
  void KeepInReserveOrDelete(std::unique_ptr<SegmentFile> file);
  void FireWaiters();
  void FreeSegments();
  uint64_t MessageSegmentsMax() const;
  size_t TotalFiles() const;

  SpoolOptions options_;
  const relay::Clock* clock_;
  int lock_fd_ = -1;
  std::map<uint64_t, Segment> active_;  // by segment_seq
  uint64_t head_seq_ = 0;               // 0: no head yet (after open, until the first append)
  // Segments written since the last BeginSync.
  std::vector<uint64_t> dirty_;
  // Since the last BeginSync: a message or a record with a callback was appended (or a stop
  // asked), so the next batch should begin at once.
  bool prompt_sync_ = false;
  // clock_ monotonic ms of the first append since the last BeginSync; -1: none.
  int64_t unsynced_since_ms_ = -1;
  std::deque<InFlightSync> in_flight_;
  size_t freeing_in_flight_ = 0;  // free marks in in_flight_'s batches
  uint32_t syncs_running_ = 0;    // batches of in_flight_ not yet ended
  int64_t last_sync_ns_ = 0;      // how long the last batch to end took, BeginSync to EndSync
  // Segments whose synced length is ahead of their header's committed_bytes.
  std::vector<uint64_t> unpublished_;
  int64_t last_publish_ns_ = 0;
  static constexpr int64_t kCommittedPublishIntervalNs = 50'000'000;
  bool free_enabled_ = true;
  std::vector<std::unique_ptr<SegmentFile>> reserve_;
  // Segments marked free whose header has not been synced yet.
  std::vector<std::unique_ptr<SegmentFile>> freeing_;
  uint64_t next_slot_ = 0;
  // Slots of the reserve creations requested and not handed back yet.
  std::vector<uint64_t> pending_slots_;
  // After a failed creation: no request before this (clock_ monotonic ms); 0: none failed.
  int64_t reserve_retry_after_ms_ = 0;
  // Since when the reserve (with pending creations) has been below reserve_segments; -1: it is
  // not.
  int64_t reserve_short_since_ms_ = -1;
  uint64_t last_seq_ = 0;
  uint64_t id_epoch_hi_ = 0;
  uint64_t next_id_lo_ = 1;
  QueueIndex index_;
  std::deque<Waiter> waiters_;
  Position durable_;
  uint64_t next_batch_id_ = 1;
  absl::Status broken_;
  std::string scratch_;  // kPwrite encoding buffer
  SpoolStats stats_;
  uint32_t failing_state_appends_ = 0;  // FailStateAppendsForTesting
  absl::Status failing_state_status_;
};

}  // namespace queue
