#include "queue/spool_reader.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace queue {

absl::StatusOr<std::unique_ptr<SpoolReader>> SpoolReader::Open(const std::string& directory) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) {
    return absl::NotFoundError(absl::StrCat("opendir ", directory, ": ", std::strerror(errno)));
  }
  std::vector<std::string> paths;
  while (struct dirent* entry = ::readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (absl::StartsWith(name, "segment-") && absl::EndsWith(name, ".q")) {
      paths.push_back(directory + "/" + entry->d_name);
    }
  }
  ::closedir(dir);

  std::unique_ptr<SpoolReader> reader(new SpoolReader());
  std::map<uint64_t, SegmentFile*> by_seq;
  for (const std::string& path : paths) {
    auto file = SegmentFile::Open(path, /*writable=*/false);
    if (!file.ok()) continue;  // being created, or removed since the listing
    if (!(*file)->HeaderValid()) continue;
    uint64_t seq = (*file)->seq();
    if (seq == 0) {
      ++reader->free_segments_;
      continue;
    }
    if (by_seq.count(seq) != 0) continue;
    by_seq[seq] = file->get();
    reader->files_.push_back(std::move(*file));
  }
  for (auto& [seq, file] : by_seq) {
    SegmentInfo info;
    info.path = file->path();
    info.segment_seq = seq;
    info.bytes = file->bytes();
    info.committed_bytes = file->LoadCommitted();
    const uint64_t segment_seq = seq;
    ScanOutcome outcome = ScanSegment(
        *file, info.committed_bytes,
        [&](const RecordHeader& header, std::string_view payload, uint64_t offset,
            uint64_t end) -> absl::Status {
          return reader->index_.Apply(header, payload, Position{segment_seq, offset},
                                      Position{segment_seq, end});
        });
    info.records = outcome.records;
    for (CorruptRecord& c : outcome.corruptions) reader->corruptions_.push_back(std::move(c));
    reader->segments_.push_back(std::move(info));
  }
  return reader;
}

}  // namespace queue
