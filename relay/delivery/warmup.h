// Warm-up: a new source address earns a receiver's trust by sending little at first and more each
// day (KumoMTA's source_selection_rate, PowerMTA's warm-up plans). A source's schedule is the
// number of messages it may send to one site on its first, second, ... day; the ledger counts
// what every shard sent today, so that the allowance holds for the whole relay, and the egress
// pool passes a message a source may not send to the pool's next source (relay/delivery/egress.h).
//
// Days are UTC days since 1970-01-01, so every shard and a restarted relay agree on "today". The
// ledger keeps today's counts only. With a file (SetFile), the counts are written at most every
// kWriteIntervalMs while they change and at Flush, and Load reads today's back at start: a
// restart does not hand a source a fresh allowance (a crash may forget the last few seconds'
// counts). The file is on-disk input: ParseWarmupFile takes any bytes, is linear in them, and
// keeps at most kEntriesMax entries.
//
// Thread-safe: one mutex, taken once per message from a source in warm-up (never for others).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace relay::delivery {

inline constexpr int64_t kDayMs = int64_t{86400} * 1000;

// What `schedule` allows on `day` for a source that started on `start_day`: the first entry
// before and on its first day, -1 (no limit) past the schedule's end or with no schedule.
int64_t WarmupAllowance(const std::vector<uint32_t>& schedule, int64_t start_day, int64_t day);

struct WarmupCount {
  std::string source;  // the source's name (its address)
  std::string site;
  int64_t count = 0;
};

// The file's text: a line with the day, then one "source TAB site TAB count" line per entry.
std::string FormatWarmupFile(int64_t day, const std::vector<WarmupCount>& counts);
// The counts of `text` if it is about `day` (none otherwise); lines that do not parse are
// skipped.
std::vector<WarmupCount> ParseWarmupFile(std::string_view text, int64_t day);

class WarmupLedger {
 public:
  static constexpr size_t kEntriesMax = 100000;
  static constexpr int64_t kWriteIntervalMs = 5000;

  // Counts one message from `source` to `site` at `now_unix_ms` if fewer than `allowance` were
  // counted today; false when the allowance is used up (or the ledger is full).
  bool Take(std::string_view source, std::string_view site, int64_t allowance, int64_t now_unix_ms);
  // A message counted by Take that did not go out after all (deferred before its body was sent,
  // or sent out of another source): today's count goes down by one.
  void GiveBack(std::string_view source, std::string_view site, int64_t now_unix_ms);
  // Today's count.
  int64_t Count(std::string_view source, std::string_view site, int64_t now_unix_ms);
  // Today's counts, for the operator.
  std::vector<WarmupCount> Today(int64_t now_unix_ms);

  void SetFile(std::string path);
  // Reads today's counts from `path` (a missing file, or one of another day, is none). An error
  // names the file.
  absl::Status Load(const std::string& path, int64_t now_unix_ms);
  // Writes the counts now if they changed since the last write.
  void Flush();

 private:
  void RollTo(int64_t day);  // mu_ held: a new day starts with no counts
  void Write();              // mu_ held

  std::mutex mu_;
  int64_t day_ = -1;                                  // guarded by mu_
  absl::flat_hash_map<std::string, int64_t> counts_;  // "source\tsite"; guarded by mu_
  std::string path_;                                  // guarded by mu_
  bool dirty_ = false;                                // guarded by mu_
  int64_t written_unix_ms_ = 0;                       // guarded by mu_
};

}  // namespace relay::delivery
