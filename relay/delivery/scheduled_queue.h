// Messages waiting for their next attempt, ordered by when it is due (Unix ms, the time the
// spool records). One entry per message: scheduling a message again keeps the sooner of the two
// times, so a message deferred by one job and due again by another is attempted once, at the
// earlier. The engine arms one timer for NextDueUnixMs() and takes what is due when it fires.
//
// Shard thread only. O(log n) per operation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "queue/record_format.h"

namespace relay::delivery {

class ScheduledQueue {
 public:
  // Schedules `id` at `due_unix_ms`, or keeps it where it is when it is already due sooner.
  void Schedule(queue::MessageId id, int64_t due_unix_ms);
  // Takes `id` out, if it is in.
  void Remove(queue::MessageId id);
  // The earliest due time, or -1 when the queue is empty.
  int64_t NextDueUnixMs() const;
  // Takes out and returns the earliest message due at or before `now_unix_ms`; nullopt when
  // none is due yet.
  std::optional<queue::MessageId> TakeDue(int64_t now_unix_ms);
  // When `id` is due, nullopt when it is not scheduled.
  std::optional<int64_t> DueOf(queue::MessageId id) const;

  size_t size() const { return due_of_.size(); }
  bool empty() const { return due_of_.empty(); }

 private:
  std::set<std::pair<int64_t, queue::MessageId>> by_due_;
  absl::flat_hash_map<queue::MessageId, int64_t> due_of_;
};

}  // namespace relay::delivery
