#include "relay/delivery/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace relay::delivery {

TokenBucket::TokenBucket(double rate_per_second, uint32_t burst, int64_t now_ms)
    : rate_per_second_(rate_per_second > 0 ? rate_per_second : 0),
      burst_(burst == 0 ? 1 : burst),
      tokens_(burst_),
      last_ms_(now_ms) {}

void TokenBucket::Refill(int64_t now_ms) {
  if (now_ms <= last_ms_) return;
  tokens_ = std::min<double>(burst_, tokens_ + (now_ms - last_ms_) * rate_per_second_ / 1000.0);
  last_ms_ = now_ms;
}

double TokenBucket::Available(int64_t now_ms) {
  if (rate_per_second_ == 0) return burst_;
  Refill(now_ms);
  return tokens_;
}

bool TokenBucket::TryTake(uint32_t n, int64_t now_ms) {
  if (rate_per_second_ == 0) return true;
  Refill(now_ms);
  // A tiny tolerance absorbs floating-point residue so that waiting exactly MsUntilAvailable()
  // is always enough.
  if (tokens_ + 1e-9 < n) return false;
  tokens_ = std::max(0.0, tokens_ - n);
  return true;
}

int64_t TokenBucket::MsUntilAvailable(uint32_t n, int64_t now_ms) {
  if (rate_per_second_ == 0) return 0;
  if (n > burst_) return kNeverMs;
  Refill(now_ms);
  if (tokens_ + 1e-9 >= n) return 0;
  double ms = (n - tokens_) * 1000.0 / rate_per_second_;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(ms - 1e-9)));
}

}  // namespace relay::delivery
