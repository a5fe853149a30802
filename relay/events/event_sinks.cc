#include "relay/events/event_sinks.h"

#include <fcntl.h>
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
    // After the last file written: files recycled or made ahead of it are not read.
    std::vector<uint32_t> seqs = ListJournalFiles(o.dir, s);
    uint32_t seq = seqs.empty() ? 1 : seqs.front();
    for (auto it = seqs.rbegin(); it != seqs.rend(); ++it) {
      if (JournalFileUsed(o.dir, s, *it)) {
        seq = *it + 1;
        break;
      }
    }
    head->Publish(Position{seq, 0});
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
  for (const AmqpOptions& a : o.amqp) {
    absl::StatusOr<std::unique_ptr<AmqpSink>> sink = AmqpSink::Create(a, &sinks->journals_);
    if (!sink.ok()) {
      return absl::Status(sink.status().code(),
                          absl::StrCat("amqp sink ", a.name, ": ", sink.status().message()));
    }
    sinks->sinks_.push_back(std::move(*sink));
  }
  // A shard never starts a file at a number a sink has passed (its files may be gone: another
  // shard count before, or removed unread).
  for (auto& sink : sinks->sinks_) {
    const std::vector<Position> cursor = sink->PersistedCursor();
    for (size_t shard = 0; shard < cursor.size() && shard < sinks->heads_.size(); ++shard) {
      if (sinks->heads_[shard]->Get().seq < cursor[shard].seq) {
        sinks->heads_[shard]->Publish(Position{cursor[shard].seq, 0});
      }
    }
  }
  // Temporary files of a preparation a crash cut short.
  for (const auto& entry : std::filesystem::directory_iterator(o.dir, ec)) {
    if (entry.path().extension() == ".tmp") std::filesystem::remove(entry.path(), ec);
  }
  // With the sinks' cursors known: the files the shards start with are made now, before they
  // take mail.
  sinks->Maintain();
  return sinks;
}

EventSinks::~EventSinks() { Stop(); }

uint64_t EventSinks::journal_lines_dropped() const {
  uint64_t n = 0;
  for (const auto& h : heads_) n += h->lines_dropped.load(std::memory_order_relaxed);
  return n;
}

uint64_t EventSinks::journal_write_errors() const {
  uint64_t n = 0;
  for (const auto& h : heads_) n += h->write_errors.load(std::memory_order_relaxed);
  return n;
}

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
  std::vector<std::vector<Position>> cursors;
  for (auto& sink : sinks_) cursors.push_back(sink->PersistedCursor());
  Upkeep upkeep;
  for (uint32_t shard = 0; shard < heads_.size(); ++shard) {
    uint32_t needed = heads_[shard]->Get().seq;
    for (const auto& c : cursors) {
      if (shard < c.size()) needed = std::min(needed, std::max<uint32_t>(c[shard].seq, 1));
    }
    KeepShardFiles(shard, needed, &upkeep);
  }
  if (upkeep.removed) {
    int d = ::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
      ::fsync(d);
      ::close(d);
    }
  }
  // Over the bound: the oldest complete files go.
  for (auto it = upkeep.kept.begin();
       upkeep.total > options_.journal_bytes_max && it != upkeep.kept.end(); ++it) {
    const auto [seq, shard] = it->first;
    const uint64_t lines = CountLines(options_.dir, shard, seq);
    ::unlink(FilePath(options_.dir, shard, seq).c_str());
    upkeep.total -= it->second;
    events_dropped_.fetch_add(lines, std::memory_order_relaxed);
    LogError() << "event journal over events.journal_bytes_max (" << options_.journal_bytes_max
               << " bytes): dropped " << JournalFileName(shard, seq) << " with " << lines
               << " events no sink had taken yet";
  }
}

// Files every sink has passed (before `needed`) are recycled as the shard's next ones (their
// blocks are on disk, so writing into them needs no metadata at each sync) or removed; a running
// shard keeps kReserveFiles ahead of the one it writes, made full of zeros when none could be
// recycled. The files kept are counted into `upkeep`.
void EventSinks::KeepShardFiles(uint32_t shard, uint32_t needed, Upkeep* upkeep) {
  constexpr size_t kReserveFiles = 2;
  const uint32_t head_seq = heads_[shard]->Get().seq;
  const bool running = shard < options_.shards;
  std::vector<uint32_t> seqs = ListJournalFiles(options_.dir, shard);
  uint32_t top = std::max(head_seq, seqs.empty() ? 0 : seqs.back());
  size_t reserve = 0;
  for (uint32_t seq : seqs) reserve += seq > head_seq ? 1 : 0;
  for (uint32_t seq : seqs) {
    const std::string path = FilePath(options_.dir, shard, seq);
    const uint64_t bytes = FileSize(path);
    if (seq < needed) {
      if (running && reserve < kReserveFiles && bytes == options_.file_bytes_max &&
          ::link(path.c_str(), FilePath(options_.dir, shard, top + 1).c_str()) == 0) {
        ++top;
        ++reserve;
      }
      ::unlink(path.c_str());
      upkeep->removed = true;
      continue;
    }
    upkeep->total += bytes;
    if (seq < head_seq) upkeep->kept[{seq, shard}] = bytes;
  }
  if (!running) return;
  // The head's own file too, before the shard has opened it (the first start), then the reserve.
  std::vector<uint32_t> missing;
  if (FileSize(FilePath(options_.dir, shard, head_seq)) < options_.file_bytes_max) {
    missing.push_back(head_seq);
  }
  for (; reserve < kReserveFiles; ++reserve) missing.push_back(++top);
  for (uint32_t seq : missing) {
    if (absl::Status s = PrepareJournalFile(options_.dir, shard, seq, options_.file_bytes_max, "m");
        !s.ok()) {
      LogError() << "event journal: " << s;
      return;
    }
    upkeep->total += options_.file_bytes_max;
  }
}

}  // namespace relay::events
