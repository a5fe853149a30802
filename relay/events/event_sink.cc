#include "relay/events/event_sink.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/status_macros.h"
#include "relay/base/sv.h"

namespace relay::events {
namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr uint32_t kShardsMax = 256;        // as [shards] allows
constexpr int kPollMs = 100;                // how often an idle sink looks at the heads
constexpr size_t kCountBytesMax = 8 << 20;  // backlog counting per look, per shard

}  // namespace

std::string FormatCursor(const std::vector<Position>& cursor) {
  std::string text = "# shard seq offset: events before these positions were acknowledged\n";
  for (size_t i = 0; i < cursor.size(); ++i) {
    absl::StrAppend(&text, i, " ", cursor[i].seq, " ", cursor[i].offset, "\n");
  }
  return text;
}

absl::StatusOr<std::vector<Position>> ParseCursor(std::string_view text) {
  std::vector<Position> cursor;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(Sv(text), '\n')) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    uint32_t shard = 0, seq = 0, offset = 0;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &shard) || !absl::SimpleAtoi(f[1], &seq) ||
        !absl::SimpleAtoi(f[2], &offset) || shard >= kShardsMax) {
      return absl::DataLossError(
          absl::StrCat("line ", line_number, " is not \"shard seq offset\""));
    }
    if (cursor.size() <= shard) cursor.resize(shard + 1);
    cursor[shard] = Position{seq, offset};
  }
  return cursor;
}

EventSink::EventSink(SinkOptions options, const JournalSet* journals)
    : options_(std::move(options)),
      journals_(journals),
      cursor_path_(absl::StrCat(journals->dir, "/cursor-", options_.name)) {
  for (size_t i = 0; i < journals->heads.size(); ++i) {
    readers_.emplace_back(journals->dir, static_cast<uint32_t>(i));
    count_readers_.emplace_back(journals->dir, static_cast<uint32_t>(i));
  }
}

EventSink::~EventSink() { Stop(); }

absl::Status EventSink::LoadCursor() {
  // Where to begin: the cursor file, or (a new sink) the heads, written down at once so that a
  // crash before the first batch does not move the start.
  const size_t shards = journals_->heads.size();
  std::ifstream in(cursor_path_);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::vector<Position>> cursor = ParseCursor(text.str());
    if (!cursor.ok()) {
      return absl::DataLossError(absl::StrCat(cursor_path_, ": ", cursor.status().message()));
    }
    cursor_ = std::move(*cursor);
    cursor_.resize(shards);
  } else {
    cursor_.resize(shards);
    for (size_t i = 0; i < shards; ++i) cursor_[i] = Head(i);
    if (absl::Status s = SaveCursor(cursor_); !s.ok()) return s;
  }
  persisted_ = cursor_;
  next_ = cursor_;
  counted_ = cursor_;
  return absl::OkStatus();
}

size_t EventSink::EventsMax() const {
  return events_cap_ != 0 ? std::min(events_cap_, options_.batch_events_max)
                          : options_.batch_events_max;
}

EventSink::Delivered EventSink::DeliverBatch() {
  int delay_ms = options_.retry_initial_ms;
  for (;;) {
    absl::Status s = Deliver(batch_, batch_events_);
    if (s.ok()) return Delivered::kTaken;
    // A hand-over that Stop() cut short is no failure of the far side.
    if (stopping_flag_.load()) return Delivered::kStopping;
    if (absl::IsResourceExhausted(s) && batch_events_ > 1) {
      // Too large for the far side (HTTP 413): the same events again, in halves.
      LogWarning() << "event sink " << options_.name << ": " << s.message() << " for "
                   << batch_events_ << " events; sending them " << batch_events_ / 2
                   << " at a time";
      return Delivered::kTooLarge;
    }
    std::string error(s.message());
    stats_.failures.fetch_add(1, std::memory_order_relaxed);
    if (stats_.failures.load(std::memory_order_relaxed) % 100 == 1 || last_error() != error) {
      LogWarning() << "event sink " << options_.name << ": " << error << "; " << batch_events_
                   << " events wait, retrying in " << delay_ms << " ms";
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_error_ = error;
    }
    if (!Sleep(delay_ms)) return Delivered::kStopping;
    delay_ms = static_cast<int>(std::min<int64_t>(int64_t{delay_ms} * 2, options_.retry_ms_max));
  }
}

void EventSink::Start() {
  thread_ = std::thread([this] { Run(); });
}

void EventSink::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stopping_flag_.store(true);
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<Position> EventSink::PersistedCursor() const {
  std::lock_guard<std::mutex> lock(mu_);
  return persisted_;
}

std::string EventSink::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

Position EventSink::Head(size_t shard) const { return journals_->heads[shard]->Get(); }

bool EventSink::Sleep(int ms) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  return !stopping_;
}

bool EventSink::Wants(const JournalEvent& e) const {
  if (!options_.events.empty() &&
      std::find(options_.events.begin(), options_.events.end(), e.event) == options_.events.end()) {
    return false;
  }
  for (const std::string& t : options_.tenants) {
    if (t == "*" || t == e.tenant) return true;
  }
  return false;
}

void EventSink::Collect() {
  // From a different shard each batch: one busy shard cannot keep the others' events waiting.
  if (batch_events_ == 0 && !readers_.empty()) first_shard_ = (first_shard_ + 1) % readers_.size();
  for (size_t i = 0; i < readers_.size(); ++i) {
    const size_t shard = (first_shard_ + i) % readers_.size();
    if (batch_events_ >= EventsMax() || batch_.size() >= options_.batch_bytes_max) {
      return;
    }
    const size_t budget =
        options_.batch_bytes_max - std::min(batch_.size(), options_.batch_bytes_max);
    next_[shard] = readers_[shard].Read(
        next_[shard], Head(shard), budget,
        [&](const JournalEvent& e) {
          if (!Wants(e)) return true;
          // Room for this one? (A batch takes at least one event, whatever its size.)
          if (batch_events_ > 0 &&
              (batch_events_ >= EventsMax() ||
               batch_.size() + e.json.size() + 40 > options_.batch_bytes_max)) {
            return false;
          }
          if (batch_events_ == 0) batch_first_unix_ms_ = e.time_unix_ms;
          batch_starts_.push_back(batch_.size() + (batch_events_ == 0 ? 0 : 1));
          absl::StrAppend(&batch_, batch_events_ == 0 ? "" : ",", "{\"id\":\"", shard, "-",
                          e.at.seq, "-", e.at.offset, "\",", Sv(e.json.substr(1)));
          ++batch_events_;
          return true;
        },
        &batch_lines_);
  }
}

absl::Status EventSink::SaveCursor(const std::vector<Position>& cursor) {
  RETURN_IF_ERROR(ReplaceFile(cursor_path_, FormatCursor(cursor), 0640, /*durable=*/true));
  std::lock_guard<std::mutex> lock(mu_);
  persisted_ = cursor;
  return absl::OkStatus();
}

void EventSink::CountBacklog() {
  int64_t added = 0;
  for (size_t shard = 0; shard < count_readers_.size(); ++shard) {
    uint64_t lines = 0;
    counted_[shard] = count_readers_[shard].Read(
        std::max(counted_[shard], cursor_[shard]), Head(shard), kCountBytesMax,
        [](const JournalEvent&) { return true; }, &lines);
    added += static_cast<int64_t>(lines);
  }
  stats_.backlog_events.fetch_add(added, std::memory_order_relaxed);
}

void EventSink::Run() {
  SetThreadLogTag(absl::StrCat("sink-", options_.name));
  int64_t last_save_ms = 0;
  bool dirty = false;  // cursor_ moved past events for others, not yet saved
  for (;;) {
    CountBacklog();
    Collect();
    const int64_t now = NowUnixMs();
    if (batch_events_ == 0) {
      if (next_ != cursor_) {
        cursor_ = next_;
        stats_.backlog_events.fetch_sub(static_cast<int64_t>(batch_lines_));
        batch_lines_ = 0;
        dirty = true;
      }
      if (dirty && now - last_save_ms >= 1000) {
        dirty = !SaveCursor(cursor_).ok();
        last_save_ms = now;
      }
      Idle();
      if (!Sleep(kPollMs)) break;
      continue;
    }
    stats_.oldest_pending_unix_ms.store(batch_first_unix_ms_, std::memory_order_relaxed);
    const bool full = batch_events_ >= EventsMax() || batch_.size() >= options_.batch_bytes_max;
    if (!full && now - batch_first_unix_ms_ < options_.batch_wait_ms) {
      Idle();
      if (!Sleep(kPollMs)) break;
      continue;
    }
    const Delivered delivered = DeliverBatch();
    if (delivered == Delivered::kStopping) break;
    if (delivered == Delivered::kTooLarge) {
      events_cap_ = std::max<size_t>(1, batch_events_ / 2);
      batch_.clear();
      batch_starts_.clear();
      batch_events_ = 0;
      batch_lines_ = 0;
      next_ = cursor_;
      continue;
    }
    // Taken: a halved batch size grows back, doubling with each batch taken.
    if (events_cap_ != 0)
      events_cap_ = events_cap_ * 2 >= options_.batch_events_max ? 0 : events_cap_ * 2;
    stats_.events_sent.fetch_add(batch_events_, std::memory_order_relaxed);
    stats_.batches_sent.fetch_add(1, std::memory_order_relaxed);
    stats_.backlog_events.fetch_sub(static_cast<int64_t>(batch_lines_));
    stats_.oldest_pending_unix_ms.store(0, std::memory_order_relaxed);
    cursor_ = next_;
    batch_.clear();
    batch_starts_.clear();
    batch_events_ = 0;
    batch_lines_ = 0;
    if (absl::Status s = SaveCursor(cursor_); !s.ok()) {
      LogError() << "event sink " << options_.name << ": " << s;  // a restart may send it again
    }
    last_save_ms = now;
    dirty = false;
  }
  if (dirty) (void)SaveCursor(cursor_);
}

}  // namespace relay::events
