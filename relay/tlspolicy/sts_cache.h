// The relay's MTA-STS policies (RFC 8461 §5), one cache for every shard: a policy fetched by one
// shard holds for all, and a restart keeps them (an attacker who blocks the fetch after a restart
// must not strip a policy the relay had seen). An entry holds until its max_age runs out; a newer
// policy (another id in the TXT record) replaces it. At most `policies_max` domains: past that a
// new policy is not kept (and the log says so once). <spool>/mta-sts is written by Flush when the
// cache changed and read by Load at start (relay/tlspolicy/mta_sts.h parses it).
//
// Thread-safe: readers take a shared lock and get an immutable entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "relay/tlspolicy/mta_sts.h"

namespace relay::tlspolicy {

using StsEntryPtr = std::shared_ptr<const StsCacheEntry>;

// Whether `entry` still holds at `now_unix_s` (fetched + max_age not passed).
bool StsEntryFresh(const StsCacheEntry& entry, int64_t now_unix_s);

class StsCache {
 public:
  explicit StsCache(size_t policies_max = 100000) : policies_max_(policies_max) {}

  // The cached entry for `domain` (lower case), fresh or not; null when none.
  StsEntryPtr Find(std::string_view domain) const;
  // Keeps `entry` for its domain (replacing an older one).
  void Store(StsCacheEntry entry);
  // Every entry, sorted by domain, at most `max`; `*total` is how many there are.
  std::vector<StsEntryPtr> List(size_t max, size_t* total) const;

  // A fleet's cache (relay/cluster/fleet.h): every policy stored here is told to `listener` (with
  // the lock held: it must only queue it); other nodes' come in through Mirror, which keeps an
  // entry only when it was fetched later than the one held, and is not told.
  using Listener = std::function<void(const StsCacheEntry& entry)>;
  void SetListener(Listener listener);
  void Mirror(StsCacheEntry entry);

  void SetFile(std::string path);
  // Reads `path` (a missing file is an empty cache); entries past their max_age are dropped.
  absl::Status Load(const std::string& path, int64_t now_unix_s);
  // Writes the file if the cache changed since the last write.
  void Flush();
  // Drops the entries past their max_age when the cache is nearly full (so that new policies
  // find room); the caller's housekeeping.
  void Prune(int64_t now_unix_s);

 private:
  const size_t policies_max_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, StsEntryPtr> entries_ ABSL_GUARDED_BY(mu_);
  std::string path_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool full_logged_ ABSL_GUARDED_BY(mu_) = false;
  Listener listener_ ABSL_GUARDED_BY(mu_);
  // Store and Mirror: false when the cache is full.
  bool Put(StsCacheEntry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace relay::tlspolicy
