// Retry schedule for transient failures: the interval list of the config (default 1m, 5m, 15m,
// 30m, then hourly: the last interval repeats), each interval stretched or shrunk by a random
// jitter so that messages deferred together do not come back together, until the maximum age
// (default 5 days, the "at least 4-5 days" of RFC 5321 §4.5.4.1), then a bounce.
//
// Contract: pure functions over a RetryPolicy that is immutable after load and shared read-only
// by all shards. Randomness comes from a caller's RandomSource so tests are deterministic.
// Times are Unix milliseconds (they are stored in queue records, which outlive a restart).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace relay::delivery {

struct RetryPolicy {
  // Wait after the 1st, 2nd, ... failed attempt; the last value repeats.
  std::vector<int64_t> intervals_s = {60, 300, 900, 1800, 3600};
  // Each wait is multiplied by a factor drawn uniformly from [1 - f, 1 + f].
  double jitter_fraction = 0.1;
  int64_t message_age_s_max = 5 * 24 * 3600;
  // Send a "delayed" DSN once a message has waited this long (0: never). Postfix and Sendmail
  // use 4 hours when enabled.
  int64_t delay_warning_s = 0;
};

// Returns numbers uniformly distributed in [0, 1).
using RandomSource = std::function<double()>;

struct RetryDecision {
  bool give_up = false;         // the message is too old: bounce it (Action: failed)
  int64_t next_attempt_ms = 0;  // when !give_up: Unix ms of the next attempt
};

// Decides after failed attempt number `attempts` (1 for the first) that ended at `now_ms`, for a
// message received at `received_ms`. A message past its maximum age gives up; otherwise the next
// attempt is now + the jittered interval, but never later than the expiry instant, so the last
// attempt happens right at the maximum age rather than an interval after it.
RetryDecision NextRetry(const RetryPolicy& policy, uint32_t attempts, int64_t received_ms,
                        int64_t now_ms, const RandomSource& random);

// The un-jittered wait after failed attempt `attempts` (1-based), in seconds.
int64_t BaseIntervalSeconds(const RetryPolicy& policy, uint32_t attempts);

// True when a delay warning is due for a message received at `received_ms` that has not had one.
bool DelayWarningDue(const RetryPolicy& policy, int64_t received_ms, int64_t now_ms);

}  // namespace relay::delivery
