// Suspensions that hold for the whole relay: a reply rule that suspends a (source, site) pair
// (Gmail's 4.7.28, Yahoo's TSS04) in the shard that saw the reply suspends it in every shard, since
// the receiver judges the source address, not the shard; and the operator's suspensions of a site
// (`relayctl queue suspend SITE`), for every source, until a time or until resumed.
// DESIGN.md: per-destination limits are split across shards so that no shard asks another
// before it sends; a suspension is the exception because it is rare and its point is that nobody
// sends.
//
// The board is shared by the shards' delivery engines and the control socket. A change (a mutex;
// a few an hour at most) bumps the generation; every engine checks the generation (one atomic
// load) before it queues a job or opens a connection, and takes a copy of the entries when it
// moved: it suspends its ready queues that an entry names and lifts those no entry names any
// more. Times are wall-clock milliseconds, so that entries mean the same in every shard and after
// a restart.
//
// Persistence: with a file (SetFile), every change rewrites it (write to a temporary file, then
// rename: a crash leaves the old list or the new one), and Load reads it back at start, expired
// entries left out. The file is on-disk input: ParseSuspensionsFile takes any bytes, is linear in
// them, and keeps at most kEntriesMax entries.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace relay::delivery {

inline constexpr char kAnySource[] = "*";

struct Suspension {
  // "<source index>|<site>", as the engine keys its ready queues; "*|<site>" for every source.
  std::string key;
  int64_t until_unix_ms = 0;
  std::string reason;
  int shard = -1;  // the shard whose reply rule suspended it; -1: the operator
};

// The key for `site` from every source.
std::string AnySourceKey(std::string_view site);
// The site part of a key.
std::string_view SiteOfKey(std::string_view key);

// The file's text for `entries`, one line each: key TAB until TAB shard TAB reason.
std::string FormatSuspensionsFile(const std::vector<Suspension>& entries);
// The entries of a file's text; lines that do not parse are skipped.
std::vector<Suspension> ParseSuspensionsFile(std::string_view text);

class Suspensions {
 public:
  static constexpr size_t kEntriesMax = 10000;
  static constexpr size_t kReasonBytesMax = 200;

  // Suspends `key` until `until_unix_ms` (a later time extends it; an earlier one is ignored,
  // unless it comes from the operator, whose word replaces the entry). False when the board
  // holds kEntriesMax entries already.
  bool Suspend(Suspension s);
  // Lifts every entry of `site` (all sources); how many there were.
  size_t Resume(std::string_view site);
  // Bumped by every change; an engine compares it with the one it last read.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The entries still in force at `now_unix_ms` (expired ones are dropped here).
  std::vector<Suspension> InForce(int64_t now_unix_ms);

  // Where changes are written from now on.
  void SetFile(std::string path);
  // Reads `path` (a missing file is an empty list) into the board, leaving out entries over by
  // `now_unix_ms`. An error names the file.
  absl::Status Load(const std::string& path, int64_t now_unix_ms);

 private:
  void Changed();  // mu_ held: bump the generation, rewrite the file

  std::mutex mu_;
  absl::flat_hash_map<std::string, Suspension> entries_;  // guarded by mu_
  std::string path_;                                      // guarded by mu_
  std::atomic<uint64_t> generation_{0};
};

}  // namespace relay::delivery
