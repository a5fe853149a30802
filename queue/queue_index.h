// The in-memory view of a spool: every live message (one with a recipient not yet final) with the
// state of each recipient, rebuilt by replaying records in log order, and per segment how many live
// messages it still holds. Shared by the writer (Spool) and the lock-free reader (SpoolReader).
//
// string_views in MessageInfo point into segment mappings owned by the Spool or SpoolReader that
// fills the index; they stay valid while that owner keeps the segment mapped (see spool.h).
// Not thread-safe: owned by one thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "queue/record_format.h"

namespace queue {

// A place in the log: the segment's sequence number and a byte offset in it. Ordered by log order.
struct Position {
  uint64_t segment_seq = 0;
  uint64_t offset = 0;

  friend bool operator<(const Position& a, const Position& b) {
    return a.segment_seq != b.segment_seq ? a.segment_seq < b.segment_seq : a.offset < b.offset;
  }
  friend bool operator<=(const Position& a, const Position& b) { return !(b < a); }
  friend bool operator==(const Position& a, const Position& b) {
    return a.segment_seq == b.segment_seq && a.offset == b.offset;
  }
};

struct MessageInfo {
  MessageId id;
  int64_t created_unix_ms = 0;
  std::string_view sender;
  MessageAttributes attributes;
  std::vector<RecipientState> recipients;
  // The prepended headers and the message, straight from the mapping.
  std::string_view message;
  // Where the current copy lives.
  uint64_t segment_seq = 0;
  uint64_t record_offset = 0;
  uint32_t record_bytes = 0;
  // Pinned messages (a delivery is sending their bytes) are not moved by compaction.
  uint32_t pins = 0;
  // A "delayed" DSN went to the sender (kDelayNotified): never a second one.
  bool delay_notified = false;

  // The earliest next attempt among pending recipients, or -1 if none is pending.
  int64_t NextDueUnixMs() const;
  uint32_t MaxAttempts() const;
  bool AllFinal() const;
};

struct SegmentLiveness {
  uint32_t live_messages = 0;
  uint64_t live_bytes = 0;
  // The end of the last record that made a message of this segment final or moved it away: the
  // segment may be freed once the log is durable up to here.
  Position release_position;
};

class QueueIndex {
 public:
  // Applies one valid record found at `position` (its start) with `end` its end. Unknown ids in
  // state records are counted as orphans (their message was already final and freed).
  absl::Status Apply(const RecordHeader& header, std::string_view payload, Position position,
                     Position end);
  // Like Apply for a record the writer just appended, with the decoded form already at hand.
  void AddMessage(MessageInfo info, Position end);
  // Returns an error if the state is not applicable (unknown id, bad recipient, already final).
  absl::Status CheckState(const StateRecord& state) const;
  void ApplyState(const StateRecord& state, Position end);

  // The pointer stays valid until that message becomes final or is replaced by a compacted copy.
  const MessageInfo* Find(MessageId id) const;
  MessageInfo* FindMutable(MessageId id);
  size_t size() const { return messages_.size(); }
  // created_unix_ms of the oldest live message, -1 when none (the metrics' oldest-message age).
  int64_t OldestCreatedUnixMs() const {
    return by_age_.empty() ? -1 : by_age_.begin()->first;
  }
  void ForEach(absl::FunctionRef<void(const MessageInfo&)> fn) const;
  // Ids whose current copy lives in `segment_seq`.
  std::vector<MessageId> MessagesIn(uint64_t segment_seq) const;

  const SegmentLiveness* Liveness(uint64_t segment_seq) const;
  void ForgetSegment(uint64_t segment_seq) { liveness_.erase(segment_seq); }
  uint64_t orphan_states() const { return orphan_states_; }
  // The largest id seen, to keep new ids above it.
  MessageId max_id() const { return max_id_; }

  // Ids that state records applied since the last call touched or made final (recovery uses it to
  // preserve the effect of records in a segment it moves aside).
  void StartTracking() {
    tracking_ = true;
    touched_.clear();
    finalized_.clear();
  }
  void StopTracking() { tracking_ = false; }
  const absl::flat_hash_set<MessageId>& touched() const { return touched_; }
  const absl::flat_hash_set<MessageId>& finalized() const { return finalized_; }

 private:
  void Release(uint64_t segment_seq, uint32_t record_bytes, Position end);
  void Finalize(MessageId id, Position end);

  // Node-based: MessageInfo pointers stay valid while other messages come and go.
  absl::node_hash_map<MessageId, MessageInfo> messages_;
  // (created_unix_ms, id) of every live message: the oldest one without a scan of the index. A
  // B-tree: one insert and one erase per message, O(log n), few allocations.
  absl::btree_set<std::pair<int64_t, MessageId>> by_age_;
  absl::flat_hash_map<uint64_t, SegmentLiveness> liveness_;
  uint64_t orphan_states_ = 0;
  MessageId max_id_;
  bool tracking_ = false;
  absl::flat_hash_set<MessageId> touched_;
  absl::flat_hash_set<MessageId> finalized_;
};

}  // namespace queue
