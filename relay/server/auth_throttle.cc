#include "relay/server/auth_throttle.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace relay::server {
namespace {

constexpr int64_t kNanosPerMilli = 1000000;

}  // namespace

// 'c' + client, or 'u' + the client's length + client + user: the two kinds never collide, and
// the length keeps a 4-byte client's pairs apart from an 8-byte one's.
std::string AuthThrottle::ClientEntryKey(absl::string_view client) {
  return absl::StrCat("c", client);
}

std::string AuthThrottle::UserEntryKey(absl::string_view client, absl::string_view user) {
  return absl::StrCat("u", std::string(1, static_cast<char>(client.size())), client,
                      user.substr(0, kUserBytesMax));
}

bool AuthThrottle::Expired(const Entry& entry, int64_t now) const {
  if (entry.blocked_until_nanos != 0) return entry.blocked_until_nanos <= now;
  return now - entry.window_start_nanos >= limits_.window_ms * kNanosPerMilli;
}

void AuthThrottle::Erase(absl::flat_hash_map<std::string, Lru::iterator>::iterator it) {
  lru_.erase(it->second);
  entries_.erase(it);
}

AuthThrottle::Entry* AuthThrottle::Lookup(const std::string& key, int64_t now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (Expired(*it->second, now)) {
    // The window or the block is over: the next failure starts a clean count.
    Erase(it);
    return nullptr;
  }
  return &*it->second;
}

bool AuthThrottle::BlockedLocked(const std::string& key, int64_t now) {
  const Entry* entry = Lookup(key, now);
  return entry != nullptr && entry->blocked_until_nanos > now;
}

bool AuthThrottle::IsBlocked(absl::string_view client) {
  if (client.empty()) return false;
  absl::MutexLock lock(&mu_);
  return BlockedLocked(ClientEntryKey(client), clock_->MonotonicNanos());
}

bool AuthThrottle::IsBlocked(absl::string_view client, absl::string_view user) {
  if (client.empty()) return false;
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->MonotonicNanos();
  return BlockedLocked(ClientEntryKey(client), now) ||
         BlockedLocked(UserEntryKey(client, user), now);
}

int64_t AuthThrottle::DelayMillis(absl::string_view client) {
  if (client.empty()) return 0;
  absl::MutexLock lock(&mu_);
  const Entry* entry = Lookup(ClientEntryKey(client), clock_->MonotonicNanos());
  if (entry == nullptr || entry->failures < limits_.failures_before_delay) return 0;
  int64_t excess = entry->failures - limits_.failures_before_delay + 1;
  return std::min(limits_.delay_ms_max, excess * limits_.delay_per_failure_ms);
}

void AuthThrottle::CountFailure(const std::string& key, int block_at, int64_t now) {
  Entry* entry = Lookup(key, now);
  if (entry == nullptr) {
    // Drop the expired entries at the back (the least recently touched are the likeliest to be
    // over), then, while the table is full, the least recently touched live ones.
    while (!lru_.empty() && Expired(lru_.back(), now)) Erase(entries_.find(lru_.back().key));
    while (!lru_.empty() && entries_.size() >= limits_.entries_max) {
      Erase(entries_.find(lru_.back().key));
    }
    lru_.push_front(Entry{key, 0, now, 0});
    entries_.emplace(key, lru_.begin());
    entry = &lru_.front();
  } else {
    lru_.splice(lru_.begin(), lru_, entries_.find(key)->second);
  }
  ++entry->failures;
  if (entry->failures >= block_at && entry->blocked_until_nanos == 0) {
    entry->blocked_until_nanos = now + limits_.block_ms * kNanosPerMilli;
  }
}

void AuthThrottle::RecordFailure(absl::string_view client, absl::string_view user) {
  if (client.empty() || limits_.entries_max == 0) return;
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->MonotonicNanos();
  CountFailure(ClientEntryKey(client), limits_.failures_before_block, now);
  CountFailure(UserEntryKey(client, user), limits_.user_failures_before_block, now);
}

void AuthThrottle::RecordSuccess(absl::string_view client, absl::string_view user) {
  if (client.empty()) return;
  absl::MutexLock lock(&mu_);
  const std::string key = UserEntryKey(client, user);
  const Entry* entry = Lookup(key, clock_->MonotonicNanos());
  if (entry != nullptr && entry->blocked_until_nanos == 0) Erase(entries_.find(key));
}

size_t AuthThrottle::tracked_entries() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace relay::server
