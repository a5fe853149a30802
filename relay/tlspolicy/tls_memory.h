// Downgrade memory (issue 17, item 3): a recipient domain whose MX once took mail over TLS is
// remembered, and from then on a missing STARTTLS or a failed handshake defers its mail instead
// of sending it in plain text, so that an attacker on the path cannot strip TLS from a domain
// known to have it (chasquid's "STS cache" without a policy; Postfix's smtp_tls_policy_maps
// written by hand). The operator forgets a domain (`relayctl tls forget DOMAIN`) when its
// receiver really dropped TLS.
//
// One memory for the whole relay: a domain is remembered with the day of its latest TLS delivery
// and forgotten `days` later without one (a receiver that stopped taking mail). At most
// `domains_max` domains: past that, new ones are not remembered (and the log says so once). The
// file (<spool>/tls-memory) is written by Flush when the memory changed, read at start; it is
// on-disk input: ParseTlsMemoryFile takes any bytes, is linear in them, and keeps at most
// `domains_max` entries.
//
// Thread-safe. Requires is on every delivery's path: a shared lock; Remember takes the exclusive
// lock only for a new domain or on a domain's first delivery of a day.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace relay::tlspolicy {

struct TlsMemoryEntry {
  std::string domain;  // lower case
  int64_t day = 0;     // of its latest delivery over TLS (UTC days since 1970-01-01)
};

// "domain TAB day" lines after a comment line.
std::string FormatTlsMemoryFile(const std::vector<TlsMemoryEntry>& entries);
// The entries of `text`, at most `max` of them; lines that do not parse are skipped, and so are
// domains that hold a character outside [a-z0-9.-] (the file keeps only what Remember writes).
std::vector<TlsMemoryEntry> ParseTlsMemoryFile(std::string_view text, size_t max);

class TlsMemory {
 public:
  struct Options {
    bool enabled = true;
    int64_t days = 90;            // forgotten this long after its latest TLS delivery
    size_t domains_max = 200000;  // remembered at most
  };
  explicit TlsMemory(Options options) : options_(options) {}

  bool enabled() const { return options_.enabled; }
  // A delivery to `domain` went over TLS at `now_unix_ms`.
  void Remember(std::string_view domain, int64_t now_unix_ms);
  // Whether mail to `domain` must go over TLS (remembered, and not for too long).
  bool Requires(std::string_view domain, int64_t now_unix_ms) const;
  // The operator's word: plain text is allowed again. False when it was not remembered.
  bool Forget(std::string_view domain);
  // The remembered domains (sorted), at most `max`, and how many there are in all.
  std::vector<TlsMemoryEntry> List(size_t max, size_t* total) const;

  // A fleet's memory (relay/cluster/fleet.h): a domain remembered here, or its day moving on, and
  // a domain forgotten, are told to `listener` (with the lock held: it must only queue it); other
  // nodes' come in through Mirror (the later day wins) and Unmirror, which are not told.
  using Listener = std::function<void(const TlsMemoryEntry& entry, bool forgotten)>;
  void SetListener(Listener listener);
  void Mirror(const TlsMemoryEntry& entry);
  void Unmirror(std::string_view domain);

  void SetFile(std::string path);
  // Reads `path` (a missing file is an empty memory); entries past `days` are dropped. An error
  // names the file.
  absl::Status Load(const std::string& path, int64_t now_unix_ms);
  // Writes the file if the memory changed since the last write (a caller's timer, and the stop).
  void Flush();
  // Forgets the domains past `days` when the memory is nearly full (so that new ones find room);
  // the caller's housekeeping.
  void Prune(int64_t now_unix_ms);

 private:
  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> days_ ABSL_GUARDED_BY(mu_);  // domain -> day
  // days_.size(), readable without the lock: an empty memory costs the delivery path nothing.
  std::atomic<size_t> size_{0};
  std::string path_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool full_logged_ ABSL_GUARDED_BY(mu_) = false;
  Listener listener_ ABSL_GUARDED_BY(mu_);
  // Mirror and Remember: `day` for `key` (lower case, checked), unless a later one is there.
  // False when it changed nothing.
  bool Set(const std::string& key, int64_t day) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace relay::tlspolicy
