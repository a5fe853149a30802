#include "relay/delivery/retry.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace relay::delivery {
int64_t BaseIntervalSeconds(const RetryPolicy& policy, uint32_t attempts) {
  if (policy.intervals_s.empty()) return 3600;
  size_t i = attempts == 0 ? 0 : attempts - 1;
  return policy.intervals_s[std::min(i, policy.intervals_s.size() - 1)];
}

RetryDecision NextRetry(const RetryPolicy& policy, uint32_t attempts, int64_t received_ms,
                        int64_t now_ms, const RandomSource& random) {
  RetryDecision d;
  const int64_t expiry_ms = received_ms + policy.message_age_s_max * 1000;
  if (now_ms >= expiry_ms) {
    d.give_up = true;
    return d;
  }
  double u = random ? random() : 0.5;
  u = std::clamp(u, 0.0, 1.0);
  const double factor = 1.0 + policy.jitter_fraction * (2.0 * u - 1.0);
  int64_t wait_ms =
      static_cast<int64_t>(std::llround(BaseIntervalSeconds(policy, attempts) * 1000.0 * factor));
  wait_ms = std::max<int64_t>(wait_ms, 1000);  // never a hot retry loop
  d.next_attempt_ms = std::min(now_ms + wait_ms, expiry_ms);
  return d;
}

bool DelayWarningDue(const RetryPolicy& policy, int64_t received_ms, int64_t now_ms) {
  return policy.delay_warning_s > 0 && now_ms - received_ms >= policy.delay_warning_s * 1000 &&
         policy.delay_warning_s < policy.message_age_s_max;
}

}  // namespace relay::delivery
