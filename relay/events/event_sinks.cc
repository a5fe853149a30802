#include "relay/events/event_sinks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "relay/base/log.h"

namespace relay::events {
namespace {

std::string FilePath(const std::string& dir, uint32_t shard, uint32_t seq) {
  return absl::StrCat(dir, "/", JournalFileName(shard, seq));
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// The events in a file about to be dropped, for the count.
uint64_t CountLines(const std::string& dir, uint32_t shard, uint32_t seq) {
  JournalReader reader(dir, shard);
  uint64_t lines = 0;
  Position pos{seq, 0};
  const Position end{seq + 1, 0};
  for (int i = 0; i < 1 << 16 && pos < end; ++i) {
    Position next = reader.Read(
        pos, end, 1 << 20, [](const JournalEvent&) { return true; }, &lines);
    if (next == pos) break;
    pos = next;
  }
  return lines;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventSinks>> EventSinks::Create(EventSinksOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the events directory ", options.dir, ": ", ec.message()));
  }
  std::unique_ptr<EventSinks> sinks(new EventSinks(std::move(options)));
  const EventSinksOptions& o = sinks->options_;
  // Shards that ran before with more shards than now keep their files: their heads say the
  // files are complete.
  uint32_t shards = o.shards;
  for (uint32_t s : ListJournalShards(o.dir)) shards = std::max(shards, s + 1);
  for (uint32_t s = 0; s < shards; ++s) {
    auto head = std::make_unique<JournalHead>();
    std::vector<uint32_t> seqs = ListJournalFiles(o.dir, s);
    head->Publish(Position{seqs.empty() ? 1 : seqs.back() + 1, 0});
    sinks->heads_.push_back(std::move(head));
  }
  sinks->journals_.dir = o.dir;
  for (auto& h : sinks->heads_) sinks->journals_.heads.push_back(h.get());
  for (const WebhookOptions& w : o.webhooks) {
    absl::StatusOr<std::unique_ptr<WebhookSender>> sender =
        WebhookSender::Create(w, &sinks->journals_);
    if (!sender.ok()) {
      return absl::Status(sender.status().code(),
                          absl::StrCat("webhook ", w.name, ": ", sender.status().message()));
    }
    sinks->sinks_.push_back(std::move(*sender));
  }
  return sinks;
}

EventSinks::~EventSinks() { Stop(); }

void EventSinks::Start() {
  for (auto& sink : sinks_) sink->Start();
  thread_ = std::thread([this] {
    SetThreadLogTag("events");
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      Maintain();
      lock.lock();
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
    }
  });
}

void EventSinks::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& sink : sinks_) sink->Stop();
}

void EventSinks::Maintain() {
  // The next file of each running shard, made ahead so that a shard never waits for one.
  for (uint32_t shard = 0; shard < options_.shards; ++shard) {
    const uint32_t next = heads_[shard]->Get().seq + 1;
    const std::string path = FilePath(options_.dir, shard, next);
    if (FileSize(path) >= options_.file_bytes_max) continue;
    if (absl::Status s =
            PrepareJournalFile(options_.dir, shard, next, options_.file_bytes_max, "m");
        !s.ok()) {
      LogError() << "event journal: " << s;
    }
  }
  // Files every sink has passed, never the one a shard writes.
  std::vector<std::vector<Position>> cursors;
  for (auto& sink : sinks_) cursors.push_back(sink->PersistedCursor());
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> kept;  // (seq, shard) -> bytes, oldest first
  uint64_t total = 0;
  for (uint32_t shard = 0; shard < heads_.size(); ++shard) {
    const uint32_t head_seq = heads_[shard]->Get().seq;
    uint32_t needed = head_seq;
    for (const auto& c : cursors) {
      if (shard < c.size()) needed = std::min(needed, std::max<uint32_t>(c[shard].seq, 1));
    }
    for (uint32_t seq : ListJournalFiles(options_.dir, shard)) {
      const std::string path = FilePath(options_.dir, shard, seq);
      if (seq < needed) {
        ::unlink(path.c_str());
        continue;
      }
      const uint64_t bytes = FileSize(path);
      total += bytes;
      if (seq < head_seq) kept[{seq, shard}] = bytes;
    }
  }
  // Over the bound: the oldest complete files go.
  for (auto it = kept.begin(); total > options_.journal_bytes_max && it != kept.end(); ++it) {
    const auto [seq, shard] = it->first;
    const uint64_t lines = CountLines(options_.dir, shard, seq);
    ::unlink(FilePath(options_.dir, shard, seq).c_str());
    total -= it->second;
    events_dropped_.fetch_add(lines, std::memory_order_relaxed);
    LogError() << "event journal over events.journal_bytes_max (" << options_.journal_bytes_max
               << " bytes): dropped " << JournalFileName(shard, seq) << " with " << lines
               << " events no sink had taken yet";
  }
}

}  // namespace relay::events
