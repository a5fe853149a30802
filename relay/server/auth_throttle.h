// Slows, then refuses, password guessing from one client.
//
// A client is a ClientKey (client_key.h): an IPv4 address or an IPv6 /64. Failed AUTH attempts
// are counted twice, each count in its own window (failure_window_ms, from its first failure):
//   - per client, all user names together: from `failures_before_delay` on, the driver waits
//     DelayMillis() before sending each AUTH reply (failures and successes alike, so the delay
//     does not reveal the answer); at `failures_before_block` the client is blocked for
//     `block_ms`: every AUTH gets 454 4.7.0 and new connections are refused;
//   - per client and user name: at `user_failures_before_block` that user name is blocked for
//     that client for `block_ms` (454 4.7.0 to its AUTH), while other users there carry on.
// A success clears only the count of that (client, user); the client's total stays, so one valid
// account does not let a client go on guessing others (RFC 4954 §6 leaves the policy to the
// server). A block stands even if a password is then right: the guesser may just have found it.
//
// Memory: an entry is forgotten once its window (or its block) is over, and at most
// `entries_max` entries (clients plus (client, user) pairs) are held; beyond that the least
// recently touched is forgotten first, so a spray of addresses cannot grow the table. User names
// count by their first kUserBytesMax bytes.
//
// Threads: one AuthThrottle for the whole process, shared by the shards (SO_REUSEPORT spreads one
// attacker's connections over every shard, so per-shard counts would multiply the limits) and the
// AUTH workers. Every method takes an internal mutex; calls happen at accept and at AUTH, never
// per byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "relay/base/clock.h"

namespace relay::server {

struct AuthThrottleLimits {
  // A count restarts this long after its first failure (fail2ban's findtime).
  int64_t window_ms = 10 * 60 * 1000;
  // Failures of a client before its replies are delayed.
  int failures_before_delay = 3;
  // Delay per failure beyond failures_before_delay, capped at delay_ms_max.
  int64_t delay_per_failure_ms = 1000;
  int64_t delay_ms_max = 10000;
  // Failures of a client, all user names together, that block it.
  int failures_before_block = 10;
  // Failures of one user name from a client that block that user name there.
  int user_failures_before_block = 5;
  // How long a block lasts (fail2ban's bantime).
  int64_t block_ms = 15 * 60 * 1000;
  // Clients and (client, user) pairs tracked at most; the least recently touched goes first.
  size_t entries_max = 100000;
};

class AuthThrottle {
 public:
  // Longer user names are not valid ones (users.h: 256 bytes); sharing a count is harmless.
  static constexpr size_t kUserBytesMax = 256;

  AuthThrottle(const Clock* clock, AuthThrottleLimits limits) : clock_(clock), limits_(limits) {}

  // `client` is a ClientKey; "" is never throttled. `user` is the normalized user name.
  // True while the client is blocked: refuse its connections and every AUTH.
  bool IsBlocked(absl::string_view client) ABSL_LOCKS_EXCLUDED(mu_);
  // True while the client, or this user name from it, is blocked: refuse this AUTH.
  bool IsBlocked(absl::string_view client, absl::string_view user) ABSL_LOCKS_EXCLUDED(mu_);
  // How long to wait before replying to this client's next AUTH attempt.
  int64_t DelayMillis(absl::string_view client) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordFailure(absl::string_view client, absl::string_view user) ABSL_LOCKS_EXCLUDED(mu_);
  // Clears the (client, user) count unless it is blocked; the client's count stays.
  void RecordSuccess(absl::string_view client, absl::string_view user) ABSL_LOCKS_EXCLUDED(mu_);

  // Clients and (client, user) pairs held, expired ones not yet dropped included.
  size_t tracked_entries() const ABSL_LOCKS_EXCLUDED(mu_);
  const AuthThrottleLimits& limits() const { return limits_; }

 private:
  struct Entry {
    std::string key;  // ClientEntryKey or UserEntryKey
    int failures = 0;
    int64_t window_start_nanos = 0;
    int64_t blocked_until_nanos = 0;  // 0: not blocked
  };
  using Lru = std::list<Entry>;

  static std::string ClientEntryKey(absl::string_view client);
  static std::string UserEntryKey(absl::string_view client, absl::string_view user);
  bool Expired(const Entry& entry, int64_t now) const;
  // The live entry for `key`, or null (an expired one is dropped on the way).
  Entry* Lookup(const std::string& key, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool BlockedLocked(const std::string& key, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts one failure under `key`, blocking at `block_at`.
  void CountFailure(const std::string& key, int block_at, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Erase(absl::flat_hash_map<std::string, Lru::iterator>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const AuthThrottleLimits limits_;
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // Front: most recently touched.
  absl::flat_hash_map<std::string, Lru::iterator> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::server
