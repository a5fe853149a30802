#include "queue/queue_index.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace queue {

int64_t MessageInfo::NextDueUnixMs() const {
  int64_t due = -1;
  for (const RecipientState& r : recipients) {
    if (r.status != RecipientStatus::kPending) continue;
    if (due < 0 || r.next_attempt_unix_ms < due) due = r.next_attempt_unix_ms;
  }
  return due;
}

uint32_t MessageInfo::MaxAttempts() const {
  uint32_t attempts = 0;
  for (const RecipientState& r : recipients) attempts = std::max(attempts, r.attempts);
  return attempts;
}

bool MessageInfo::AllFinal() const {
  for (const RecipientState& r : recipients) {
    if (r.status == RecipientStatus::kPending) return false;
  }
  return true;
}

absl::Status QueueIndex::Apply(const RecordHeader& header, std::string_view payload,
                               Position position, Position end) {
  const auto type = static_cast<RecordType>(header.type);
  if (type == RecordType::kMessage) {
    auto view = DecodeMessagePayload(payload);
    if (!view.ok()) return view.status();
    MessageInfo info;
    info.id = view->id;
    info.created_unix_ms = view->created_unix_ms;
    info.sender = view->sender;
    info.attributes = std::move(view->attributes);
    info.recipients = std::move(view->recipients);
    info.message = view->message;
    info.delay_notified = (view->flags & kMessageFlagDelayNotified) != 0;
    info.segment_seq = position.segment_seq;
    info.record_offset = position.offset;
    info.record_bytes = static_cast<uint32_t>(end.offset - position.offset);
    AddMessage(std::move(info), end);
    return absl::OkStatus();
  }
  auto state = DecodeStatePayload(type, payload);
  if (!state.ok()) return state.status();
  if (!CheckState(*state).ok()) {
    ++orphan_states_;
    return absl::OkStatus();
  }
  ApplyState(*state, end);
  return absl::OkStatus();
}

void QueueIndex::AddMessage(MessageInfo info, Position end) {
  if (max_id_ < info.id) max_id_ = info.id;
  SegmentLiveness& home = liveness_[info.segment_seq];
  auto it = messages_.find(info.id);
  if (it != messages_.end()) {
    // A compacted copy supersedes the earlier one.
    MessageInfo& old = it->second;
    Release(old.segment_seq, old.record_bytes, end);
    if (old.created_unix_ms != info.created_unix_ms) {  // a copy keeps its creation time
      by_age_.erase({old.created_unix_ms, old.id});
      by_age_.insert({info.created_unix_ms, info.id});
    }
    info.pins = old.pins;
    old = std::move(info);
    ++home.live_messages;
    home.live_bytes += old.record_bytes;
    if (old.AllFinal()) Finalize(old.id, end);
    return;
  }
  ++home.live_messages;
  home.live_bytes += info.record_bytes;
  MessageId id = info.id;
  bool final = info.AllFinal();
  by_age_.insert({info.created_unix_ms, id});
  messages_.emplace(id, std::move(info));
  if (final) Finalize(id, end);
}

absl::Status QueueIndex::CheckState(const StateRecord& state) const {
  auto it = messages_.find(state.id);
  if (it == messages_.end()) {
    return absl::NotFoundError(absl::StrCat("no live message ", state.id.ToString()));
  }
  if (state.type == RecordType::kMessage) {
    return absl::InvalidArgumentError("a state record cannot have the message type");
  }
  if (state.type == RecordType::kDeleted || state.type == RecordType::kDelayNotified) {
    return absl::OkStatus();
  }
  if (state.recipient >= it->second.recipients.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("message ", state.id.ToString(), " has no recipient ", state.recipient));
  }
  if (it->second.recipients[state.recipient].status != RecipientStatus::kPending) {
    return absl::FailedPreconditionError(absl::StrCat(
        "recipient ", state.recipient, " of ", state.id.ToString(), " is already final"));
  }
  return absl::OkStatus();
}

void QueueIndex::ApplyState(const StateRecord& state, Position end) {
  auto it = messages_.find(state.id);
  if (it == messages_.end()) return;
  MessageInfo& info = it->second;
  if (tracking_) touched_.insert(state.id);
  if (state.type == RecordType::kDeleted) {
    Finalize(state.id, end);
    return;
  }
  if (state.type == RecordType::kDelayNotified) {
    info.delay_notified = true;
    return;
  }
  RecipientState& r = info.recipients[state.recipient];
  switch (state.type) {
    case RecordType::kDelivered:
      r.status = RecipientStatus::kDelivered;
      r.last_reply = state.reply;
      r.attempt_open = false;
      break;
    case RecordType::kBounced:
      r.status = RecipientStatus::kBounced;
      r.last_reply = state.reply;
      r.attempt_open = false;
      break;
    case RecordType::kDeferred:
      r.attempts = state.attempts;
      r.next_attempt_unix_ms = state.next_attempt_unix_ms;
      r.last_reply = state.reply;
      r.attempt_open = false;
      break;
    case RecordType::kAttempt:
      r.attempt_open = true;
      return;  // changes nothing else: the message stays where it is
    default:
      break;
  }
  if (info.AllFinal()) Finalize(state.id, end);
}

void QueueIndex::Finalize(MessageId id, Position end) {
  auto it = messages_.find(id);
  if (it == messages_.end()) return;
  if (tracking_) finalized_.insert(id);
  Release(it->second.segment_seq, it->second.record_bytes, end);
  by_age_.erase({it->second.created_unix_ms, id});
  messages_.erase(it);
}

void QueueIndex::Release(uint64_t segment_seq, uint32_t record_bytes, Position end) {
  auto it = liveness_.find(segment_seq);
  if (it == liveness_.end()) return;
  SegmentLiveness& l = it->second;
  if (l.live_messages > 0) --l.live_messages;
  l.live_bytes -= std::min<uint64_t>(l.live_bytes, record_bytes);
  if (l.release_position < end) l.release_position = end;
}

const MessageInfo* QueueIndex::Find(MessageId id) const {
  auto it = messages_.find(id);
  return it == messages_.end() ? nullptr : &it->second;
}

MessageInfo* QueueIndex::FindMutable(MessageId id) {
  auto it = messages_.find(id);
  return it == messages_.end() ? nullptr : &it->second;
}

void QueueIndex::ForEach(absl::FunctionRef<void(const MessageInfo&)> fn) const {
  for (const auto& [id, info] : messages_) fn(info);
}

std::vector<MessageId> QueueIndex::MessagesIn(uint64_t segment_seq) const {
  std::vector<MessageId> ids;
  for (const auto& [id, info] : messages_) {
    if (info.segment_seq == segment_seq) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

const SegmentLiveness* QueueIndex::Liveness(uint64_t segment_seq) const {
  auto it = liveness_.find(segment_seq);
  return it == liveness_.end() ? nullptr : &it->second;
}

}  // namespace queue
