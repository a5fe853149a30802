// Slows, then refuses, password guessing from one client address.
//
// Per client (a ClientKey, client_key.h: an IPv4 address or an IPv6 /64), failed AUTH attempts
// are counted in a window.
// From `failures_before_delay` on, the driver waits DelayMillis() before sending each AUTH reply
// (failures and successes alike, so the delay does not reveal the answer); at
// `failures_before_block` the address is blocked for `block_ms`: AUTH gets 454 4.7.0 and new
// connections are refused (RFC 4954 §6 leaves the policy to the server). A success clears the
// address's failures. Memory is bounded by `addresses_max`, evicting the least recently touched.
//
// Threads: one AuthThrottle for the whole process, shared by the shards (SO_REUSEPORT spreads one
// attacker's connections over every shard, so per-shard counts would multiply the limits). Every
// method takes an internal mutex; calls happen at accept and at AUTH, never per byte.
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
  // Failures older than this are forgotten (the count restarts after a quiet window).
  int64_t window_ms = 15 * 60 * 1000;
  // Failures in the window before replies are delayed.
  int failures_before_delay = 3;
  // Delay per failure beyond failures_before_delay, capped at delay_max_ms.
  int64_t delay_per_failure_ms = 1000;
  int64_t delay_max_ms = 10000;
  // Failures in the window that block the address, and for how long.
  int failures_before_block = 10;
  int64_t block_ms = 30 * 60 * 1000;
  // Addresses tracked at most; the least recently touched is forgotten first.
  size_t addresses_max = 100000;
};

class AuthThrottle {
 public:
  AuthThrottle(const Clock* clock, AuthThrottleLimits limits) : clock_(clock), limits_(limits) {}

  // `key` is a ClientKey; "" is never throttled.
  // True while the address is blocked: refuse the connection or the AUTH command.
  bool IsBlocked(absl::string_view key) ABSL_LOCKS_EXCLUDED(mu_);
  // How long to wait before replying to this address's next AUTH attempt.
  int64_t DelayMillis(absl::string_view key) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordFailure(absl::string_view key) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordSuccess(absl::string_view key) ABSL_LOCKS_EXCLUDED(mu_);

  size_t tracked_addresses() const ABSL_LOCKS_EXCLUDED(mu_);
  const AuthThrottleLimits& limits() const { return limits_; }

 private:
  struct State {
    std::string key;
    int failures = 0;
    int64_t window_start_nanos = 0;
    int64_t blocked_until_nanos = 0;
  };
  using Lru = std::list<State>;

  // The address's state with an expired window reset, or null when unknown.
  State* Lookup(absl::string_view key, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(absl::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const AuthThrottleLimits limits_;
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // Front: most recently touched.
  absl::flat_hash_map<std::string, Lru::iterator> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace relay::server
