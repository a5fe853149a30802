// A token bucket for message rates (the messages_per_second limit of a shaping rule).
//
// Contract: one owner thread (the shard that owns the ready queue); no locks, no clock of its
// own: every call takes the caller's monotonic time in milliseconds, so tests drive it exactly.
// A time earlier than one already seen is treated as that time (a clock never runs backwards
// here). The bucket starts full: a fresh (source, site) pair may send a burst at once.
#pragma once

#include <cstdint>
#include <limits>

namespace relay::delivery {

class TokenBucket {
 public:
  // Returned by MsUntilAvailable when `n` can never be taken (more than the burst).
  static constexpr int64_t kNeverMs = std::numeric_limits<int64_t>::max();

  // `rate_per_second` tokens are added each second up to `burst` tokens. A rate of 0 means no
  // limit: every TryTake succeeds. A burst of 0 is taken as 1.
  TokenBucket(double rate_per_second, uint32_t burst, int64_t now_ms);

  // Takes `n` tokens if they are all there; otherwise takes nothing and returns false.
  bool TryTake(uint32_t n, int64_t now_ms);
  // Milliseconds from `now_ms` until TryTake(n) would succeed: 0 if it would now, kNeverMs if
  // `n` exceeds the burst. Rounded up, so waiting that long is always enough.
  int64_t MsUntilAvailable(uint32_t n, int64_t now_ms);
  // Tokens available at `now_ms` (fractional).
  double Available(int64_t now_ms);

  double rate_per_second() const { return rate_per_second_; }
  uint32_t burst() const { return burst_; }

 private:
  void Refill(int64_t now_ms);

  double rate_per_second_;
  uint32_t burst_;
  double tokens_;
  int64_t last_ms_;  // time of the last refill
};

}  // namespace relay::delivery
