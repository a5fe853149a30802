// One segment file of a spool: a fixed-size file, mapped MAP_SHARED for its whole life, and the
// scan that walks its records. See record_format.h for the layout.
//
// A SegmentFile is owned by one Spool (writable mapping) or one SpoolReader (read-only mapping).
// The writer is the only one to store into the mapping; readers in other processes read the
// header's committed_bytes with an acquire load and only look at bytes below it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "queue/record_format.h"

namespace queue {

class SegmentFile {
 public:
  ~SegmentFile();
  SegmentFile(const SegmentFile&) = delete;
  SegmentFile& operator=(const SegmentFile&) = delete;

  // Creates `path` (which must not exist) of `segment_bytes`, written with zeros rather than
  // fallocate'd: unwritten extents would make every later fdatasync log an extent conversion, and
  // written blocks mean stores into the mapping can never fail for lack of space (SIGBUS). The file
  // is fsync'ed, as is its directory. ENOSPC gives kResourceExhausted and leaves no file behind.
  static absl::StatusOr<std::unique_ptr<SegmentFile>> Create(const std::string& path,
                                                             uint64_t segment_bytes,
                                                             uint32_t shard);
  static absl::StatusOr<std::unique_ptr<SegmentFile>> Open(const std::string& path, bool writable);

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  uint64_t bytes() const { return bytes_; }
  char* data() { return map_; }
  const char* data() const { return map_; }
  SegmentHeader* header() { return reinterpret_cast<SegmentHeader*>(map_); }
  const SegmentHeader* header() const { return reinterpret_cast<const SegmentHeader*>(map_); }
  bool HeaderValid() const;
  uint64_t seq() const { return header()->segment_seq; }

  uint64_t LoadCommitted() const;
  void PublishCommitted(uint64_t committed_bytes);
  // Renames the file (keeps the mapping).
  absl::Status Rename(const std::string& new_path);

 private:
  SegmentFile() = default;

  std::string path_;
  int fd_ = -1;
  char* map_ = nullptr;
  uint64_t bytes_ = 0;
};

// A corrupted record found by a scan: in the middle of the written part of a segment (a valid
// record follows it, or it lies below the committed length), as opposed to a torn tail.
struct CorruptRecord {
  std::string segment;  // file path
  uint64_t offset = 0;  // byte offset of the bad record in the file
  std::string detail;
  absl::Status ToStatus() const;
};

struct ScanOutcome {
  uint64_t end_offset = kSegmentHeaderBytes;  // end of the last valid record
  uint64_t records = 0;
  bool torn_tail = false;  // the scan stopped at an incomplete record past the committed length
  std::vector<CorruptRecord> corruptions;
};

// Visits every valid record of `segment` below `limit_bytes` in order. A record that fails its
// checks is a torn tail (scan stops) unless it is below the committed length or a valid record of
// this segment follows it, in which case it is reported and the scan resumes at that record.
// `visit` returning an error (a record that passed its CRC but does not decode) counts as
// corruption too.
using RecordVisitor = absl::FunctionRef<absl::Status(const RecordHeader& header,
                                                     std::string_view payload, uint64_t offset,
                                                     uint64_t end_offset)>;
ScanOutcome ScanSegment(const SegmentFile& segment, uint64_t limit_bytes, RecordVisitor visit);

}  // namespace queue
