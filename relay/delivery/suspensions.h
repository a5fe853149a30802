// Suspensions that hold for the whole relay: a reply rule that suspends a (source, site) pair
// (Gmail's 4.7.28, Yahoo's TSS04) in the shard that saw the reply suspends it in every shard, since
// the receiver judges the source address, not the shard. DESIGN.md: per-destination limits are
// split across shards so that no shard asks another before it sends; a suspension is the
// exception because it is rare and its point is that nobody sends.
//
// The board is shared by the shards' delivery engines. A shard that suspends a pair posts it here
// (a mutex, a few times an hour at most); every engine checks the board's generation (one atomic
// load) before it queues a job or opens a connection, and takes a copy of the entries when the
// generation moved. Times are wall-clock milliseconds, so that entries mean the same in every
// shard (and, later, across a restart or a fleet).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace relay::delivery {

struct Suspension {
  std::string key;  // "<source index>|<site>", as the engine keys its ready queues
  int64_t until_unix_ms = 0;
  std::string reason;
  int shard = -1;  // the shard whose reply rule suspended it
};

class Suspensions {
 public:
  // Suspends `key` until `until_unix_ms` (a later time extends it; an earlier one is ignored).
  void Suspend(Suspension s);
  // Bumped by every change; an engine compares it with the one it last read.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The entries still in force at `now_unix_ms` (expired ones are dropped here).
  std::vector<Suspension> InForce(int64_t now_unix_ms);

 private:
  std::mutex mu_;
  absl::flat_hash_map<std::string, Suspension> entries_;  // guarded by mu_
  std::atomic<uint64_t> generation_{0};
};

}  // namespace relay::delivery
