#include "queue/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace queue {
namespace {

absl::Status ErrnoStatus(int err, std::string_view what, std::string_view path) {
  std::string message = absl::StrCat(ToAbsl(what), " ", ToAbsl(path), ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(message);
  if (err == ENOENT) return absl::NotFoundError(message);
  return absl::InternalError(message);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "fsync", dir);
  return absl::OkStatus();
}

}  // namespace

SegmentFile::~SegmentFile() {
  if (map_ != nullptr) ::munmap(map_, bytes_);
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<SegmentFile>> SegmentFile::Create(const std::string& path,
                                                                 uint64_t segment_bytes,
                                                                 uint32_t shard) {
  if (segment_bytes < 2 * kSegmentHeaderBytes || segment_bytes % 4096 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad segment size ", segment_bytes));
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "create", path);
  // Zeros in 1 MiB writes; the header goes in the same pass.
  constexpr size_t kChunkBytes = 1 << 20;
  std::unique_ptr<char[]> zeros(new char[kChunkBytes]());
  SegmentHeader header{};
  header.magic = kSegmentMagic;
  header.version = kFormatVersion;
  header.segment_bytes = segment_bytes;
  header.shard = shard;
  std::memcpy(zeros.get(), &header, sizeof(header));
  absl::Status status;
  for (uint64_t off = 0; off < segment_bytes && status.ok();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, segment_bytes - off));
    ssize_t w = ::pwrite(fd, zeros.get(), n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      status = ErrnoStatus(errno, "write", path);
      break;
    }
    if (off == 0) std::memset(zeros.get(), 0, sizeof(header));
    off += static_cast<uint64_t>(w);
  }
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoStatus(errno, "fsync", path);
  ::close(fd);
  if (status.ok()) status = FsyncDir(DirName(path));
  if (!status.ok()) {
    ::unlink(path.c_str());
    return status;
  }
  return Open(path, /*writable=*/true);
}

absl::StatusOr<std::unique_ptr<SegmentFile>> SegmentFile::Open(const std::string& path,
                                                               bool writable) {
  int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  std::unique_ptr<SegmentFile> file(new SegmentFile());
  file->path_ = path;
  file->fd_ = fd;
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "stat", path);
  if (st.st_size < static_cast<off_t>(2 * kSegmentHeaderBytes)) {
    return absl::DataLossError(absl::StrCat("segment ", path, " is too short: ", st.st_size));
  }
  file->bytes_ = static_cast<uint64_t>(st.st_size);
  void* map = ::mmap(nullptr, file->bytes_, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                     MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return ErrnoStatus(errno, "mmap", path);
  file->map_ = static_cast<char*>(map);
  return file;
}

bool SegmentFile::HeaderValid() const {
  const SegmentHeader* h = header();
  return h->magic == kSegmentMagic && h->version == kFormatVersion &&
         h->segment_bytes == bytes_;
}

uint64_t SegmentFile::LoadCommitted() const {
  return std::atomic_ref<uint64_t>(const_cast<SegmentHeader*>(header())->committed_bytes)
      .load(std::memory_order_acquire);
}

void SegmentFile::PublishCommitted(uint64_t committed_bytes) {
  std::atomic_ref<uint64_t>(header()->committed_bytes)
      .store(committed_bytes, std::memory_order_release);
}

absl::Status SegmentFile::Rename(const std::string& new_path) {
  if (::rename(path_.c_str(), new_path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename", path_);
  }
  path_ = new_path;
  return FsyncDir(DirName(new_path));
}

absl::Status CorruptRecord::ToStatus() const {
  return absl::DataLossError(
      absl::StrCat("corrupted record in segment ", segment, " at offset ", offset, ": ", detail));
}

ScanOutcome ScanSegment(const SegmentFile& segment, uint64_t limit_bytes, RecordVisitor visit) {
  ScanOutcome out;
  const uint64_t seq = segment.seq();
  const uint64_t limit = std::min(limit_bytes, segment.bytes());
  const uint64_t committed = std::min(segment.LoadCommitted(), limit);
  const char* base = segment.data();
  uint64_t off = kSegmentHeaderBytes;
  while (off < limit) {
    RecordHeader header;
    size_t total = 0;
    ScanResult r = CheckRecord(base + off, limit - off, seq, &header, &total);
    std::string detail;
    if (r == ScanResult::kValid) {
      absl::Status s = visit(header, std::string_view(base + off + kRecordHeaderBytes,
                                                      header.payload_bytes),
                             off, off + total);
      if (s.ok()) {
        ++out.records;
        off += total;
        out.end_offset = off;
        continue;
      }
      detail = std::string(s.message());
    } else {
      detail = r != ScanResult::kEnd  ? "bad magic, header, length or CRC"
               : off < committed     ? "zeros below the committed length"
                                     : "zeros before a later record";
    }
    // Look for a later valid record of this segment: if there is one, this is damage in the
    // middle, not the torn tail a crash leaves. Zeros past the committed length are looked
    // past too: the header's committed length reaches the disk one group commit late, so a
    // record after zeros there may be one that was acknowledged (its bytes are checked, and a
    // recycled segment's old records carry another sequence number).
    uint64_t next = off + kRecordAlignBytes;
    bool found = false;
    for (; next + kRecordHeaderBytes <= limit; next += kRecordAlignBytes) {
      uint32_t magic;
      std::memcpy(&magic, base + next, sizeof(magic));
      if (magic != kRecordMagic) continue;
      RecordHeader h2;
      size_t t2;
      if (CheckRecord(base + next, limit - next, seq, &h2, &t2) == ScanResult::kValid) {
        found = true;
        break;
      }
    }
    if (!found && off >= committed) {
      out.torn_tail = r != ScanResult::kEnd;
      break;
    }
    out.corruptions.push_back(CorruptRecord{segment.path(), off, detail});
    if (!found) break;
    off = next;
  }
  return out;
}

}  // namespace queue
