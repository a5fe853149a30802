// A read-only snapshot of a spool for other processes (relayctl): maps every segment file
// read-only, without any lock, and replays the records below each segment's published committed
// length (see segment.h) into a QueueIndex. It never writes, renames or syncs anything, so it is
// safe while the shard's writer runs; what it shows is the durable state at the moment each
// segment was scanned. A segment the writer recycles meanwhile is still mapped (files are never
// truncated) and its reused records fail the sequence check, so nothing invalid is returned.
// Owned by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "queue/queue_index.h"
#include "queue/segment.h"

namespace queue {

class SpoolReader {
 public:
  struct SegmentInfo {
    std::string path;
    uint64_t segment_seq = 0;
    uint64_t bytes = 0;
    uint64_t committed_bytes = 0;
    uint64_t records = 0;
  };

  static absl::StatusOr<std::unique_ptr<SpoolReader>> Open(const std::string& directory);

  const QueueIndex& index() const { return index_; }
  const std::vector<SegmentInfo>& segments() const { return segments_; }
  uint64_t free_segments() const { return free_segments_; }
  const std::vector<CorruptRecord>& corruptions() const { return corruptions_; }

 private:
  SpoolReader() = default;

  std::vector<std::unique_ptr<SegmentFile>> files_;
  std::vector<SegmentInfo> segments_;
  uint64_t free_segments_ = 0;
  std::vector<CorruptRecord> corruptions_;
  QueueIndex index_;
};

}  // namespace queue
