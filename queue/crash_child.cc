// The writer half of the crash test: appends messages and outcomes to a spool as fast as it can and
// reports on stdout (a pipe) what became durable, until it is killed.
//
//   crash_child DIR SEED
//
// Lines (each written only after the fact it states is durable, except F):
//   A <id> <n>   message with sender SenderFor(n) and body BodyFor(n) acknowledged (its
//                DurableCallback fired OK)
//   F <id>       about to make the message final (both recipients delivered); not yet durable
//   D <id>       that final outcome is durable
//   R            recovery is done (written once, first)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <random>
#include <string>

#include "queue/crash_body.h"
#include "queue/spool.h"
#include "relay/base/log.h"

namespace {

void WriteAll(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    // Chunks of at most PIPE_BUF ending at a line boundary are written atomically.
    size_t end = data.size();
    if (end - done > 4000) end = data.rfind('\n', done + 3999) + 1;
    ssize_t w = ::write(1, data.data() + done, end - done);
    if (w <= 0) std::_Exit(2);
    done += static_cast<size_t>(w);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace queue;
  if (argc != 3) return 2;
  relay::SetLogLevel(relay::LogLevel::kError);
  SpoolOptions options;
  options.directory = argv[1];
  options.segment_bytes = 256 << 10;
  options.reserve_segments = 2;
  const uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  // Both write paths: a kill in the middle of a memcpy into the mapping leaves a torn record,
  // a kill during pwrite(2) does not.
  options.write_mode = seed % 2 == 0 ? WriteMode::kMmap : WriteMode::kPwrite;
  auto opened = Spool::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(opened.status().message()).c_str());
    return 1;
  }
  Spool& spool = **opened;
  WriteAll("R\n");
  std::mt19937_64 rng(seed);
  // Live messages oldest first: the old ones are finalized to keep the spool small and to make
  // segments recyclable while the test kills us.
  std::deque<MessageId> live;
  spool.ForEachMessage([&](const MessageInfo& info) { live.push_back(info.id); });
  std::sort(live.begin(), live.end());
  uint64_t n = (rng() % 1000000) * 1000000;
  std::string out;
  constexpr size_t kLiveMax = 300;
  for (;;) {
    const int batch = 1 + static_cast<int>(rng() % 32);
    for (int i = 0; i < batch; ++i) {
      ++n;
      Envelope envelope;
      envelope.sender = SenderFor(n);
      envelope.recipients = {"a@example.com", "b@example.org"};
      auto line = std::make_shared<std::string>();
      auto appended = spool.AppendMessage(envelope, "", BodyFor(n), [&out, line](absl::Status s) {
        if (!s.ok()) std::_Exit(3);
        out += *line;
      });
      if (!appended.ok()) {
        std::fprintf(stderr, "append: %s\n", std::string(appended.status().message()).c_str());
        return 1;
      }
      *line = "A " + appended->id.ToString() + " " + std::to_string(n) + "\n";
      live.push_back(appended->id);
    }
    while (live.size() > kLiveMax) {
      MessageId id = live.front();
      live.pop_front();
      const MessageInfo* info = spool.Find(id);
      if (info == nullptr) continue;
      WriteAll("F " + id.ToString() + "\n");
      const uint32_t count = static_cast<uint32_t>(info->recipients.size());
      for (uint32_t r = 0; r < count; ++r) {
        if (spool.Find(id) == nullptr ||
            spool.Find(id)->recipients[r].status != RecipientStatus::kPending) {
          continue;
        }
        StateRecord s;
        s.id = id;
        s.type = RecordType::kDelivered;
        s.recipient = r;
        s.reply = "250 2.0.0 ok";
        bool last = r + 1 == count;
        std::string done = "D " + id.ToString() + "\n";
        auto pos =
            spool.AppendState(s, last ? queue::DurableCallback([&out, done](absl::Status st) {
                                if (!st.ok()) std::_Exit(3);
                                out += done;
                              })
                                      : nullptr);
        if (!pos.ok()) {
          std::fprintf(stderr, "state: %s\n", std::string(pos.status().message()).c_str());
          return 1;
        }
      }
    }
    if (!spool.SyncNow().ok()) return 1;
    if (!out.empty()) {
      WriteAll(out);
      out.clear();
    }
    auto compacted = spool.MaintainSpace();
    if (!compacted.ok()) return 1;
    if (!spool.MaintainReserve().ok()) return 1;
  }
}
