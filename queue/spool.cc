#include "queue/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"

namespace queue {

using relay::LogError;
using relay::LogInfo;
using relay::LogWarning;
using relay::RealClock;

namespace {

constexpr uint64_t kEpochMask = (uint64_t{1} << 56) - 1;

absl::Status ErrnoError(std::string_view what, std::string_view path) {
  return absl::InternalError(absl::StrCat(ToAbsl(what), " ", ToAbsl(path), ": ", std::strerror(errno)));
}

// "segment-000012.q" -> 12.
bool ParseSegmentName(const char* name, uint64_t* slot) {
  unsigned long long value;
  int consumed = 0;
  if (std::sscanf(name, "segment-%llu.q%n", &value, &consumed) != 1) return false;
  if (name[consumed] != '\0') return false;
  *slot = value;
  return true;
}

absl::Status FullSpoolError(std::string_view why) {
  // The server maps kResourceExhausted from an append to "452 4.3.1" (RFC 3463 §3.5).
  return absl::ResourceExhaustedError(absl::StrCat("spool full: ", ToAbsl(why)));
}

// Whether the envelope's attributes and per-recipient DSN parameters fit a record.
absl::Status CheckAttributes(const Envelope& e) {
  const MessageAttributes& a = e.attributes;
  if (a.tenant.size() > kAttributeBytesMax || a.campaign.size() > kAttributeBytesMax ||
      a.envid.size() > kAttributeBytesMax) {
    return absl::InvalidArgumentError("message attribute too long");
  }
  if (a.dsn_ret > kDsnRetMax) return absl::InvalidArgumentError("bad RET value");
  if ((!e.notify.empty() && e.notify.size() != e.recipients.size()) ||
      (!e.orcpt.empty() && e.orcpt.size() != e.recipients.size())) {
    return absl::InvalidArgumentError("DSN parameters do not match the recipients");
  }
  for (const std::string& o : e.orcpt) {
    if (o.size() > kOrcptBytesMax) return absl::InvalidArgumentError("ORCPT too long");
  }
  for (uint8_t n : e.notify) {
    if (!IsValidNotify(n)) return absl::InvalidArgumentError("bad NOTIFY value");
  }
  return absl::OkStatus();
}

}  // namespace

Spool::Spool(const SpoolOptions& options)
    : options_(options), clock_(options.clock ? options.clock : RealClock::Get()) {
  options_.syncs_in_flight_max = std::max<uint32_t>(1, options_.syncs_in_flight_max);
}

Spool::~Spool() {
  // What is durable is published before the files close (a throttled publication may be due).
  if (broken_.ok()) PublishSynced(/*force=*/true);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(const SpoolOptions& options,
                                                   RecoveryReport* report) {
  if (options.segment_bytes < 4 * kSegmentHeaderBytes || options.segment_bytes % 4096 != 0 ||
      options.segment_bytes > (uint64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment_bytes must be a multiple of 4096 in [16 KiB, 4 GiB]: ",
                     options.segment_bytes));
  }
  if (options.shard > 255) return absl::InvalidArgumentError("shard must be below 256");
  if (::mkdir(options.directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir", options.directory);
  }
  std::unique_ptr<Spool> spool(new Spool(options));
  std::string lock_path = options.directory + "/LOCK";
  spool->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (spool->lock_fd_ < 0) return ErrnoError("open", lock_path);
  if (::flock(spool->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::UnavailableError(
        absl::StrCat("spool ", options.directory, " is in use by another writer"));
  }
  if (!options.fsync) {
    LogWarning() << "!!! spool " << options.directory
                 << " opened WITHOUT fdatasync: accepted messages are NOT durable. "
                    "For benchmarks only; never run a relay like this. !!!";
  }
  RecoveryReport local;
  RETURN_IF_ERROR(spool->Recover(report ? report : &local));
  return spool;
}

std::string Spool::SegmentPath(uint64_t slot) const {
  return absl::StrFormat("%s/segment-%06d.q", options_.directory, slot);
}

absl::StatusOr<std::unique_ptr<SegmentFile>> Spool::CreateSegment() {
  return SegmentFile::Create(SegmentPath(next_slot_++), options_.segment_bytes, options_.shard);
}

absl::Status Spool::Recover(RecoveryReport* report) {
  *report = RecoveryReport();
  DIR* dir = ::opendir(options_.directory.c_str());
  if (dir == nullptr) return ErrnoError("opendir", options_.directory);
  std::vector<std::pair<uint64_t, std::string>> files;
  while (struct dirent* entry = ::readdir(dir)) {
    uint64_t slot;
    if (ParseSegmentName(entry->d_name, &slot)) {
      files.emplace_back(slot, options_.directory + "/" + entry->d_name);
      next_slot_ = std::max(next_slot_, slot + 1);
    }
  }
  ::closedir(dir);
  std::sort(files.begin(), files.end());

  std::map<uint64_t, std::unique_ptr<SegmentFile>> found;
  uint64_t id_floor = 0;
  auto move_aside = [&](std::unique_ptr<SegmentFile> file, std::string detail) -> absl::Status {
    report->corruptions.push_back(CorruptRecord{file->path(), 0, std::move(detail)});
    LogError() << report->corruptions.back().ToStatus();
    std::string aside = file->path() + ".damaged";
    RETURN_IF_ERROR(file->Rename(aside));
    report->damaged_segments.push_back(aside);
    return absl::OkStatus();
  };
  for (auto& [slot, path] : files) {
    auto opened = SegmentFile::Open(path, /*writable=*/true);
    if (!opened.ok()) {
      if (absl::IsDataLoss(opened.status())) {
        // Shorter than a header: a creation that never finished.
        ::unlink(path.c_str());
        continue;
      }
      return opened.status();
    }
    std::unique_ptr<SegmentFile> file = std::move(*opened);
    const SegmentHeader* h = file->header();
    if (!file->HeaderValid()) {
      if (h->magic == kSegmentMagic && h->segment_seq == 0) {
        ::unlink(path.c_str());  // creation interrupted before its fsync
        continue;
      }
      RETURN_IF_ERROR(move_aside(std::move(file), "bad segment header"));
      continue;
    }
    if (h->segment_seq == 0) {
      if (file->bytes() == options_.segment_bytes &&
          reserve_.size() < options_.reserve_segments) {
        reserve_.push_back(std::move(file));
      } else {
        ::unlink(path.c_str());
      }
      continue;
    }
    id_floor = std::max(id_floor, h->id_floor_hi & kEpochMask);
    if (found.count(h->segment_seq) != 0) {
      RETURN_IF_ERROR(move_aside(std::move(file), "duplicate segment sequence number"));
      continue;
    }
    found.emplace(h->segment_seq, std::move(file));
  }

  std::vector<uint64_t> damaged;
  absl::flat_hash_set<MessageId> damaged_touched;
  absl::flat_hash_set<MessageId> damaged_finalized;
  for (auto& [seq, file] : found) {
    index_.StartTracking();
    const SegmentFile& f = *file;
    const uint64_t segment_seq = seq;
    ScanOutcome outcome = ScanSegment(
        f, f.bytes(),
        [&](const RecordHeader& header, std::string_view payload, uint64_t offset,
            uint64_t end) -> absl::Status {
          return index_.Apply(header, payload, Position{segment_seq, offset},
                              Position{segment_seq, end});
        });
    index_.StopTracking();
    ++report->segments;
    report->records += outcome.records;
    if (outcome.torn_tail) ++report->torn_tails;
    if (!outcome.corruptions.empty()) {
      for (CorruptRecord& c : outcome.corruptions) {
        LogError() << c.ToStatus();
        report->corruptions.push_back(std::move(c));
      }
      damaged.push_back(seq);
      damaged_touched.insert(index_.touched().begin(), index_.touched().end());
      damaged_finalized.insert(index_.finalized().begin(), index_.finalized().end());
    }
    Segment segment;
    segment.write_offset = outcome.end_offset;
    segment.synced_offset = outcome.end_offset;
    segment.sync_requested_offset = outcome.end_offset;
    segment.file = std::move(file);
    last_seq_ = std::max(last_seq_, seq);
    active_.emplace(seq, std::move(segment));
  }

  // Everything recovered becomes durable now (records a killed writer left in the page cache
  // included), so the rest of the code may treat the recovered log as synced.
  for (auto& [seq, segment] : active_) {
    if (options_.fsync && ::fdatasync(segment.file->fd()) != 0) {
      return ErrnoError("fdatasync", segment.file->path());
    }
    segment.file->PublishCommitted(segment.write_offset);
  }
  durable_ = Position{last_seq_, ~uint64_t{0}};

  const uint64_t now_us = static_cast<uint64_t>(clock_->WallSeconds() * 1e6);
  uint64_t epoch = std::max({now_us, id_floor + 1, (index_.max_id().hi & kEpochMask) + 1});
  id_epoch_hi_ = (uint64_t{options_.shard} << 56) | (epoch & kEpochMask);
  next_id_lo_ = 1;

  // A spool that cannot pre-allocate (disk full) still starts: appends will say 452.
  absl::Status reserve = MaintainReserve();
  if (!reserve.ok()) LogWarning() << "spool reserve: " << reserve;

  if (!damaged.empty()) {
    // Re-append what could be read, then move the damaged segments aside: messages living there,
    // messages whose state a record there changed, and deletions recorded there.
    for (uint64_t seq : damaged) {
      for (MessageId id : index_.MessagesIn(seq)) damaged_touched.insert(id);
    }
    std::vector<MessageId> ids(damaged_touched.begin(), damaged_touched.end());
    std::sort(ids.begin(), ids.end());
    for (MessageId id : ids) {
      const MessageInfo* info = index_.Find(id);
      if (info == nullptr) continue;
      MessageInfo copy = *info;
      ASSIGN_OR_RETURN(Position p, AppendCopy(copy));
      (void)p;
    }
    std::vector<MessageId> gone(damaged_finalized.begin(), damaged_finalized.end());
    std::sort(gone.begin(), gone.end());
    for (MessageId id : gone) {
      if (index_.Find(id) != nullptr) continue;
      StateRecord deleted;
      deleted.type = RecordType::kDeleted;
      deleted.id = id;
      deleted.recipient = kAllRecipients;
      deleted.time_unix_ms = static_cast<int64_t>(clock_->WallSeconds() * 1000);
      deleted.reply = "final state recovered from a damaged segment";
      size_t total = AlignRecord(kRecordHeaderBytes + StatePayloadBytes(deleted));
      RETURN_IF_ERROR(Reserve(total, /*is_message=*/false));
      EncodeStateRecord(WritePointer(total), head_seq_, deleted);
      RETURN_IF_ERROR(CommitWrite(total));
    }
    free_enabled_ = false;  // the damaged segments go aside, not into the reserve
    absl::Status synced = SyncNow();
    free_enabled_ = true;
    RETURN_IF_ERROR(synced);
    for (uint64_t seq : damaged) {
      auto it = active_.find(seq);
      std::string aside = it->second.file->path() + ".damaged";
      RETURN_IF_ERROR(it->second.file->Rename(aside));
      report->damaged_segments.push_back(aside);
      active_.erase(it);
      index_.ForgetSegment(seq);
    }
  }

  report->live_messages = index_.size();
  report->orphan_states = index_.orphan_states();
  return absl::OkStatus();
}

absl::Status Spool::MaintainReserve() {
  while (reserve_.size() + pending_slots_.size() < options_.reserve_segments &&
         TotalFiles() < MessageSegmentsMax() + 1) {
    ASSIGN_OR_RETURN(std::unique_ptr<SegmentFile> file, CreateSegment());
    reserve_.push_back(std::move(file));
  }
  return absl::OkStatus();
}

std::optional<SegmentRequest> Spool::TakeReserveRequest() {
  const size_t have = reserve_.size() + pending_slots_.size();
  if (have >= options_.reserve_segments) {
    reserve_short_since_ms_ = -1;
    return std::nullopt;
  }
  if (TotalFiles() >= MessageSegmentsMax() + 1) return std::nullopt;
  const int64_t now_ms = clock_->MonotonicMillis();
  if (reserve_retry_after_ms_ != 0) {
    if (now_ms < reserve_retry_after_ms_) return std::nullopt;
    reserve_retry_after_ms_ = 0;
  }
  // Above the low-water mark a freed segment usually comes back before long (delivery is fast):
  // wait for one rather than write a file that would then be deleted.
  if (have >= (options_.reserve_segments + 1) / 2) {
    if (reserve_short_since_ms_ < 0) reserve_short_since_ms_ = now_ms;
    if (now_ms - reserve_short_since_ms_ < kReserveRefillDelayMs) return std::nullopt;
  }
  SegmentRequest request;
  request.slot = next_slot_++;
  request.path = SegmentPath(request.slot);
  request.segment_bytes = options_.segment_bytes;
  request.shard = options_.shard;
  pending_slots_.push_back(request.slot);
  return request;
}

void Spool::AddReserve(const SegmentRequest& request,
                       absl::StatusOr<std::unique_ptr<SegmentFile>> created) {
  auto pending = std::find(pending_slots_.begin(), pending_slots_.end(), request.slot);
  if (!EXPECT_OR_COUNT(pending != pending_slots_.end() &&
                       request.path == SegmentPath(request.slot))) {
    // Not a request of this spool: leave the file alone.
    return;
  }
  pending_slots_.erase(pending);
  if (!created.ok()) {
    ++stats_.reserve_creation_failures;
    reserve_retry_after_ms_ = std::max<int64_t>(1, clock_->MonotonicMillis() + kReserveRetryMs);
    LogWarning() << "spool " << options_.directory << ": creating reserve segment "
                 << request.path << " failed, retrying in " << kReserveRetryMs
                 << " ms: " << created.status();
    return;
  }
  ++stats_.reserve_segments_handed_back;
  // Freed segments may have refilled the reserve meanwhile, or the spool filled up.
  if (TotalFiles() < MessageSegmentsMax() + 1) {
    KeepInReserveOrDelete(std::move(*created));
  } else {
    ::unlink((*created)->path().c_str());
  }
}

void Spool::KeepInReserveOrDelete(std::unique_ptr<SegmentFile> file) {
  if (reserve_.size() < options_.reserve_segments && file->bytes() == options_.segment_bytes) {
    reserve_.push_back(std::move(file));
  } else {
    ::unlink(file->path().c_str());
  }
}

uint64_t Spool::MessageSegmentsMax() const {
  return std::max<uint64_t>(1, options_.spool_bytes_max / options_.segment_bytes);
}

size_t Spool::TotalFiles() const {
  return active_.size() + reserve_.size() + freeing_.size() + freeing_in_flight_ +
         pending_slots_.size();
}

absl::Status Spool::StartNewHead(bool is_message) {
  // Messages may fill MessageSegmentsMax() segments; outcomes and compaction one more, so that
  // the delivery engine can always record what frees space.
  const uint64_t allowed = MessageSegmentsMax() + (is_message ? 0 : 1);
  if (active_.size() + 1 > allowed) {
    return FullSpoolError(absl::StrCat("spool_bytes_max ", options_.spool_bytes_max, " reached"));
  }
  std::unique_ptr<SegmentFile> file;
  if (!reserve_.empty()) {
    file = std::move(reserve_.back());
    reserve_.pop_back();
  } else {
    // The reserve ran dry: create on the hot path rather than refuse, but say so.
    ++stats_.segments_created_on_hot_path;
    LogWarning() << "spool " << options_.directory
                 << ": segment reserve empty, creating a segment on the append path";
    auto created = CreateSegment();
    if (!created.ok()) {
      if (absl::IsResourceExhausted(created.status())) {
        return FullSpoolError(FromAbsl(created.status().message()));
      }
      return created.status();
    }
    file = std::move(*created);
  }
  SegmentHeader* h = file->header();
  file->PublishCommitted(kSegmentHeaderBytes);
  h->id_floor_hi = id_epoch_hi_;
  h->segment_seq = ++last_seq_;
  Segment segment;
  segment.file = std::move(file);
  head_seq_ = last_seq_;
  // The new header must reach the disk with the first records: mark the segment dirty.
  segment.sync_requested_offset = 0;
  dirty_.push_back(head_seq_);
  active_.emplace(head_seq_, std::move(segment));
  return absl::OkStatus();
}

absl::Status Spool::Reserve(size_t bytes, bool is_message) {
  if (bytes > options_.segment_bytes - kSegmentHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of ", bytes, " bytes does not fit in a segment of ",
                     options_.segment_bytes, " bytes"));
  }
  if (head_seq_ != 0) {
    const Segment& head = active_.at(head_seq_);
    if (head.write_offset + bytes <= head.file->bytes()) return absl::OkStatus();
  }
  return StartNewHead(is_message);
}

char* Spool::WritePointer(size_t bytes) {
  Segment& head = active_.at(head_seq_);
  if (options_.write_mode == WriteMode::kMmap) return head.file->data() + head.write_offset;
  if (scratch_.size() < bytes) scratch_.resize(bytes);
  return scratch_.data();
}

absl::Status Spool::CommitWrite(size_t bytes) {
  Segment& head = active_.at(head_seq_);
  if (options_.write_mode == WriteMode::kPwrite) {
    size_t done = 0;
    while (done < bytes) {
      ssize_t w = ::pwrite(head.file->fd(), scratch_.data() + done, bytes - done,
                           static_cast<off_t>(head.write_offset + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        // The offset does not move: the next record overwrites whatever part got written.
        return ErrnoError("pwrite", head.file->path());
      }
      done += static_cast<size_t>(w);
    }
  }
  if (head.sync_requested_offset == head.write_offset) dirty_.push_back(head_seq_);
  if (unsynced_since_ms_ < 0) unsynced_since_ms_ = clock_->MonotonicMillis();
  head.write_offset += bytes;
  ++stats_.appends;
  return absl::OkStatus();
}

absl::StatusOr<Appended> Spool::AppendMessage(const Envelope& envelope,
                                              std::string_view prepend_headers,
                                              std::string_view message,
                                              DurableCallback on_durable) {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("spool unusable: ", broken_.message()));
  }
  if (envelope.recipients.empty() || envelope.recipients.size() > kRecipientsMax) {
    return absl::InvalidArgumentError("a message needs 1 to kRecipientsMax recipients");
  }
  if (envelope.sender.size() > kAddressBytesMax) {
    return absl::InvalidArgumentError("sender address too long");
  }
  if (!envelope.original_recipients.empty() &&
      envelope.original_recipients.size() != envelope.recipients.size()) {
    return absl::InvalidArgumentError("original recipients do not match the recipients");
  }
  RETURN_IF_ERROR(CheckAttributes(envelope));
  std::vector<RecipientState> recipients(envelope.recipients.size());
  for (size_t i = 0; i < recipients.size(); ++i) {
    if (envelope.recipients[i].size() > kAddressBytesMax) {
      return absl::InvalidArgumentError("recipient address too long");
    }
    recipients[i].address = envelope.recipients[i];
    if (!envelope.original_recipients.empty()) {
      if (envelope.original_recipients[i].size() > kAddressBytesMax) {
        return absl::InvalidArgumentError("original recipient address too long");
      }
      recipients[i].original = envelope.original_recipients[i];
    }
    if (!envelope.notify.empty()) recipients[i].notify = envelope.notify[i];
    if (!envelope.orcpt.empty()) recipients[i].orcpt = envelope.orcpt[i];
  }
  const size_t message_bytes = prepend_headers.size() + message.size();
  if (message_bytes > UINT32_MAX) return absl::InvalidArgumentError("message too large");
  const MessageAttributes& attributes = envelope.attributes;
  const size_t payload =
      MessagePayloadBytes(envelope.sender, attributes, recipients, message_bytes);
  const size_t total = AlignRecord(kRecordHeaderBytes + payload);
  RETURN_IF_ERROR(Reserve(total, /*is_message=*/true));

  MessageInfo info;
  info.id = MessageId{id_epoch_hi_, next_id_lo_};
  info.created_unix_ms = static_cast<int64_t>(clock_->WallSeconds() * 1000);
  info.segment_seq = head_seq_;
  info.record_offset = active_.at(head_seq_).write_offset;
  info.record_bytes = static_cast<uint32_t>(total);
  char* out = WritePointer(total);
  EncodeMessageRecord(out, head_seq_, info.id, info.created_unix_ms, 0, envelope.sender, attributes,
                      recipients, prepend_headers, message);
  RETURN_IF_ERROR(CommitWrite(total));
  ++next_id_lo_;
  // Views into the mapping (in kPwrite mode the shared mapping sees the written page cache).
  const char* record = active_.at(head_seq_).file->data() + info.record_offset;
  info.sender = std::string_view(record + kRecordHeaderBytes + 16 + 8 + 4 + 2,
                                 envelope.sender.size());
  info.message = std::string_view(record + kRecordHeaderBytes + payload - message_bytes,
                                  message_bytes);
  info.recipients = std::move(recipients);
  info.attributes = attributes;
  Position end{head_seq_, info.record_offset + total};
  Appended appended{info.id, end};
  index_.AddMessage(std::move(info), end);
  if (on_durable) waiters_.push_back(Waiter{end, std::move(on_durable)});
  prompt_sync_ = true;  // a client waits for its 250, or a DSN for its first attempt
  return appended;
}

absl::StatusOr<Position> Spool::AppendState(const StateRecord& state_in,
                                            DurableCallback on_durable) {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("spool unusable: ", broken_.message()));
  }
  if (failing_state_appends_ > 0) {
    --failing_state_appends_;
    return failing_state_status_;
  }
  RETURN_IF_ERROR(index_.CheckState(state_in));
  if (state_in.reply.size() > kReplyBytesMax) {
    return absl::InvalidArgumentError("reply too long");
  }
  StateRecord state = state_in;
  if (state.type == RecordType::kDeleted || state.type == RecordType::kDelayNotified) {
    state.recipient = kAllRecipients;
  }
  if (state.time_unix_ms == 0) state.time_unix_ms = static_cast<int64_t>(clock_->WallSeconds() * 1000);
  ASSIGN_OR_RETURN(Position end, WriteState(state));
  if (on_durable) {
    waiters_.push_back(Waiter{end, std::move(on_durable)});
    prompt_sync_ = true;
  }
  return end;
}

absl::StatusOr<Position> Spool::WriteState(const StateRecord& state) {
  const size_t total = AlignRecord(kRecordHeaderBytes + StatePayloadBytes(state));
  RETURN_IF_ERROR(Reserve(total, /*is_message=*/false));
  const uint64_t offset = active_.at(head_seq_).write_offset;
  EncodeStateRecord(WritePointer(total), head_seq_, state);
  RETURN_IF_ERROR(CommitWrite(total));
  Position end{head_seq_, offset + total};
  index_.ApplyState(state, end);
  return end;
}

absl::StatusOr<Position> Spool::AppendCopy(const MessageInfo& info) {
  const size_t payload =
      MessagePayloadBytes(info.sender, info.attributes, info.recipients, info.message.size());
  const size_t total = AlignRecord(kRecordHeaderBytes + payload);
  RETURN_IF_ERROR(Reserve(total, /*is_message=*/false));
  MessageInfo copy;
  copy.id = info.id;
  copy.created_unix_ms = info.created_unix_ms;
  copy.recipients = info.recipients;
  copy.attributes = info.attributes;
  copy.delay_notified = info.delay_notified;
  copy.segment_seq = head_seq_;
  copy.record_offset = active_.at(head_seq_).write_offset;
  copy.record_bytes = static_cast<uint32_t>(total);
  EncodeMessageRecord(
      WritePointer(total), head_seq_, info.id, info.created_unix_ms,
      kMessageFlagCompacted | (info.delay_notified ? kMessageFlagDelayNotified : 0u), info.sender,
      info.attributes, info.recipients, info.message, {});
  RETURN_IF_ERROR(CommitWrite(total));
  const char* record = active_.at(head_seq_).file->data() + copy.record_offset;
  copy.sender =
      std::string_view(record + kRecordHeaderBytes + 16 + 8 + 4 + 2, info.sender.size());
  copy.message = std::string_view(record + kRecordHeaderBytes + payload - info.message.size(),
                                  info.message.size());
  Position end{head_seq_, copy.record_offset + total};
  index_.AddMessage(std::move(copy), end);
  ++stats_.messages_compacted;
  // The copy supersedes the records that opened these attempts, and the segments holding them may
  // be freed: say again that their outcome is unknown, right after the copy.
  for (uint32_t i = 0; i < info.recipients.size(); ++i) {
    const RecipientState& r = info.recipients[i];
    if (!r.attempt_open || r.status != RecipientStatus::kPending) continue;
    StateRecord marker;
    marker.type = RecordType::kAttempt;
    marker.id = info.id;
    marker.recipient = i;
    marker.time_unix_ms = static_cast<int64_t>(clock_->WallSeconds() * 1000);
    marker.reply = "outcome of an earlier attempt unknown";
    ASSIGN_OR_RETURN(end, WriteState(marker));
  }
  return end;
}

int64_t Spool::OutcomeSyncDueMs() const {
  if (!broken_.ok() || prompt_sync_ || !freeing_.empty() || dirty_.empty()) return -1;
  if (options_.outcome_sync_ms <= 0 || unsynced_since_ms_ < 0) return -1;
  const int64_t due_ms = unsynced_since_ms_ + options_.outcome_sync_ms;
  return due_ms > clock_->MonotonicMillis() ? due_ms : -1;
}

bool Spool::NeedsSync() const {
  if (!broken_.ok() || !HasUnsyncedRecords()) return false;
  if (OutcomeSyncDueMs() >= 0) return false;  // nobody waits: ride on a later batch
  return CanBeginSync();
}

bool Spool::CanBeginSync() const {
  if (syncs_running_ == 0) return true;
  if (syncs_running_ >= options_.syncs_in_flight_max) return false;
  // Overlap only past the middle of the youngest sync (see the contract in spool.h).
  const int64_t running_ns = clock_->MonotonicNanos() - in_flight_.back().begin_ns;
  return 2 * running_ns >= last_sync_ns_;
}

SyncBatch Spool::BeginSync() {
  CHECK(syncs_running_ < options_.syncs_in_flight_max);
  ++syncs_running_;
  InFlightSync& sync = in_flight_.emplace_back();
  sync.batch_id = next_batch_id_++;
  sync.begin_ns = clock_->MonotonicNanos();
  sync.end = append_position();
  prompt_sync_ = false;
  unsynced_since_ms_ = -1;
  for (uint64_t seq : dirty_) {
    auto it = active_.find(seq);
    if (it == active_.end()) continue;
    Segment& s = it->second;
    if (s.sync_requested_offset == s.write_offset) continue;
    s.sync_requested_offset = s.write_offset;
    sync.targets.push_back(SyncTarget{s.file->fd(), seq, s.write_offset});
  }
  dirty_.clear();
  for (auto& file : freeing_) {
    sync.targets.push_back(SyncTarget{file->fd(), 0, 0});
    sync.freeing.push_back(std::move(file));
  }
  freeing_in_flight_ += freeing_.size();
  freeing_.clear();
  SyncBatch batch;
  batch.batch_id = sync.batch_id;
  batch.end = sync.end;
  if (options_.fsync) batch.targets.assign(sync.targets.begin(), sync.targets.end());
  return batch;
}

void Spool::EndSync(const SyncBatch& batch, int result) {
  auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const InFlightSync& s) {
    return s.batch_id == batch.batch_id;
  });
  CHECK(it != in_flight_.end() && !it->done);
  --syncs_running_;
  last_sync_ns_ = clock_->MonotonicNanos() - it->begin_ns;
  it->done = true;
  it->result = result;
  RetireSyncs();
}

void Spool::RetireSyncs() {
  while (!in_flight_.empty() && in_flight_.front().done) {
    InFlightSync sync = std::move(in_flight_.front());
    in_flight_.pop_front();
    freeing_in_flight_ -= sync.freeing.size();
    if (sync.result < 0 && broken_.ok()) {
      broken_ = absl::InternalError(absl::StrCat("fdatasync failed in ", options_.directory, ": ",
                                                 std::strerror(-sync.result)));
      LogError() << broken_ << "; refusing further appends";
      while (!waiters_.empty()) {
        DurableCallback callback = std::move(waiters_.front().callback);
        waiters_.pop_front();
        callback(broken_);
      }
    }
    // Nothing becomes durable after a failed sync: the kernel may have dropped dirty pages that
    // a later sync then reported as written.
    if (!broken_.ok()) continue;
    ++stats_.syncs;
    for (const SyncTarget& t : sync.targets) {
      if (t.segment_seq == 0) continue;
      auto seg = active_.find(t.segment_seq);
      if (seg == active_.end()) continue;
      seg->second.synced_offset = std::max(seg->second.synced_offset, t.end_offset);
      if (std::find(unpublished_.begin(), unpublished_.end(), t.segment_seq) ==
          unpublished_.end()) {
        unpublished_.push_back(t.segment_seq);
      }
    }
    if (durable_ < sync.end) durable_ = sync.end;
    for (auto& file : sync.freeing) {
      ++stats_.segments_freed;
      KeepInReserveOrDelete(std::move(file));
    }
  }
  if (!broken_.ok()) return;
  PublishSynced();
  FireWaiters();
  FreeSegments();
}

void Spool::PublishSynced(bool force) {
  if (unpublished_.empty()) return;
  // Each store into the header after the page was written back takes a write fault (and a TLB
  // flush); under load that was 3% of relayd's CPU. Readers may lag: at most
  // kCommittedPublishIntervalNs while appends go on, none once the spool is quiet.
  const int64_t now_ns = clock_->MonotonicNanos();
  const bool quiet = dirty_.empty() && syncs_running_ == 0;
  if (!force && !quiet && now_ns - last_publish_ns_ < kCommittedPublishIntervalNs) return;
  last_publish_ns_ = now_ns;
  for (uint64_t seq : unpublished_) {
    auto seg = active_.find(seq);
    if (seg != active_.end()) seg->second.file->PublishCommitted(seg->second.synced_offset);
  }
  unpublished_.clear();
}

void Spool::FireWaiters() {
  while (!waiters_.empty() && waiters_.front().end <= durable_) {
    DurableCallback callback = std::move(waiters_.front().callback);
    waiters_.pop_front();
    callback(absl::OkStatus());
  }
}

void Spool::FreeSegments() {
  // Oldest first, one at a time, each free mark synced before the next: a segment whose free
  // mark was lost in a crash must find the outcome records of later segments still there.
  while (free_enabled_ && freeing_.empty() && freeing_in_flight_ == 0 && !active_.empty()) {
    auto it = active_.begin();
    if (it->first == head_seq_) return;
    Segment& s = it->second;
    const SegmentLiveness* l = index_.Liveness(it->first);
    if (l != nullptr && (l->live_messages > 0 || durable_ < l->release_position)) return;
    if (s.synced_offset < s.write_offset) return;
    SegmentHeader* h = s.file->header();
    h->segment_seq = 0;
    s.file->PublishCommitted(0);
    index_.ForgetSegment(it->first);
    std::unique_ptr<SegmentFile> file = std::move(s.file);
    active_.erase(it);
    if (options_.fsync) {
      freeing_.push_back(std::move(file));
      return;
    }
    ++stats_.segments_freed;
    KeepInReserveOrDelete(std::move(file));
  }
}

absl::Status Spool::SyncNow() {
  if (!broken_.ok() || !HasUnsyncedRecords() || !CanBeginSync()) {
    if (!broken_.ok()) return broken_;
    return absl::OkStatus();
  }
  SyncBatch batch = BeginSync();
  int result = 0;
  for (const SyncTarget& t : batch.targets) {
    if (::fdatasync(t.fd) != 0 && result == 0) result = -errno;
  }
  EndSync(batch, result);
  return broken_;
}

absl::StatusOr<size_t> Spool::MaintainSpace(bool force) {
  FreeSegments();
  if (active_.empty()) return 0;
  auto it = active_.begin();
  if (it->first == head_seq_) return 0;
  const SegmentLiveness* l = index_.Liveness(it->first);
  if (l == nullptr || l->live_messages == 0) return 0;
  const uint64_t written = it->second.write_offset - kSegmentHeaderBytes;
  if (!force && static_cast<double>(l->live_bytes) >
                    options_.compact_live_fraction_max * static_cast<double>(written)) {
    return 0;
  }
  std::vector<MessageId> ids = index_.MessagesIn(it->first);
  for (MessageId id : ids) {
    if (index_.Find(id)->pins > 0) return 0;  // try again once the delivery is done
  }
  for (MessageId id : ids) {
    MessageInfo copy = *index_.Find(id);
    ASSIGN_OR_RETURN(Position p, AppendCopy(copy));
    (void)p;
  }
  return ids.size();
}

std::string_view Spool::MessageBytes(MessageId id) const {
  const MessageInfo* info = index_.Find(id);
  return info == nullptr ? std::string_view() : info->message;
}

std::vector<MessageId> Spool::DueMessages(int64_t now_unix_ms, size_t max) const {
  std::vector<std::pair<int64_t, MessageId>> due;
  index_.ForEach([&](const MessageInfo& info) {
    if (info.created_unix_ms + options_.message_age_ms_max <= now_unix_ms) return;
    int64_t next = info.NextDueUnixMs();
    if (next >= 0 && next <= now_unix_ms) due.emplace_back(next, info.id);
  });
  std::sort(due.begin(), due.end());
  if (due.size() > max) due.resize(max);
  std::vector<MessageId> ids;
  ids.reserve(due.size());
  for (auto& [when, id] : due) ids.push_back(id);
  return ids;
}

std::vector<MessageId> Spool::ExpiredMessages(int64_t now_unix_ms) const {
  std::vector<MessageId> ids;
  index_.ForEach([&](const MessageInfo& info) {
    if (info.created_unix_ms + options_.message_age_ms_max <= now_unix_ms) ids.push_back(info.id);
  });
  std::sort(ids.begin(), ids.end());
  return ids;
}

void Spool::Pin(MessageId id) {
  if (MessageInfo* info = index_.FindMutable(id)) ++info->pins;
}

void Spool::Unpin(MessageId id) {
  MessageInfo* info = index_.FindMutable(id);
  if (info != nullptr && EXPECT_OR_COUNT(info->pins > 0)) --info->pins;
}

Position Spool::append_position() const {
  if (head_seq_ == 0) return durable_;
  return Position{head_seq_, active_.at(head_seq_).write_offset};
}

SpoolStats Spool::stats() const {
  SpoolStats s = stats_;
  s.active_segments = active_.size();
  s.reserve_segments = reserve_.size();
  s.reserve_pending = pending_slots_.size();
  s.live_messages = index_.size();
  return s;
}

}  // namespace queue
