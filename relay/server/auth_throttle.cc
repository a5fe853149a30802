#include "relay/server/auth_throttle.h"

#include <algorithm>
#include <string>

namespace relay::server {
namespace {

constexpr int64_t kNanosPerMilli = 1000000;

}  // namespace

AuthThrottle::State* AuthThrottle::Lookup(absl::string_view key, int64_t now) {
  auto it = states_.find(key);
  if (it == states_.end()) return nullptr;
  State& state = *it->second;
  if (state.blocked_until_nanos != 0 && state.blocked_until_nanos <= now) {
    // The block is over: start again from a clean count.
    state.blocked_until_nanos = 0;
    state.failures = 0;
  }
  if (state.failures > 0 && now - state.window_start_nanos >= limits_.window_ms * kNanosPerMilli &&
      state.blocked_until_nanos == 0) {
    state.failures = 0;
  }
  return &state;
}

void AuthThrottle::Forget(absl::string_view key) {
  auto it = states_.find(key);
  if (it == states_.end()) return;
  lru_.erase(it->second);
  states_.erase(it);
}

bool AuthThrottle::IsBlocked(absl::string_view key) {
  if (key.empty()) return false;
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->MonotonicNanos();
  State* state = Lookup(key, now);
  return state != nullptr && state->blocked_until_nanos > now;
}

int64_t AuthThrottle::DelayMillis(absl::string_view key) {
  if (key.empty()) return 0;
  absl::MutexLock lock(&mu_);
  State* state = Lookup(key, clock_->MonotonicNanos());
  if (state == nullptr || state->failures < limits_.failures_before_delay) return 0;
  int64_t excess = state->failures - limits_.failures_before_delay + 1;
  return std::min(limits_.delay_max_ms, excess * limits_.delay_per_failure_ms);
}

void AuthThrottle::RecordFailure(absl::string_view key) {
  if (key.empty() || limits_.addresses_max == 0) return;
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->MonotonicNanos();
  State* state = Lookup(key, now);
  if (state == nullptr) {
    while (states_.size() >= limits_.addresses_max) {
      states_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(State{std::string(key), 0, now, 0});
    states_.emplace(lru_.front().key, lru_.begin());
    state = &lru_.front();
  } else {
    lru_.splice(lru_.begin(), lru_, states_.find(key)->second);
  }
  if (state->failures == 0) state->window_start_nanos = now;
  ++state->failures;
  if (state->failures >= limits_.failures_before_block && state->blocked_until_nanos <= now) {
    state->blocked_until_nanos = now + limits_.block_ms * kNanosPerMilli;
  }
}

void AuthThrottle::RecordSuccess(absl::string_view key) {
  if (key.empty()) return;
  absl::MutexLock lock(&mu_);
  State* state = Lookup(key, clock_->MonotonicNanos());
  // A block stands even if a password is right: the guesser may just have found it.
  if (state != nullptr && state->blocked_until_nanos == 0) Forget(key);
}

size_t AuthThrottle::tracked_addresses() const {
  absl::MutexLock lock(&mu_);
  return states_.size();
}

}  // namespace relay::server
