#include "relay/delivery/suspensions.h"

namespace relay::delivery {

void Suspensions::Suspend(Suspension s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = entries_.try_emplace(s.key, s);
  if (!inserted) {
    if (it->second.until_unix_ms >= s.until_unix_ms) return;
    it->second = std::move(s);
  }
  generation_.fetch_add(1, std::memory_order_release);
}

std::vector<Suspension> Suspensions::InForce(int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Suspension> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.until_unix_ms <= now_unix_ms) {
      entries_.erase(it++);
      continue;
    }
    out.push_back(it->second);
    ++it;
  }
  return out;
}

}  // namespace relay::delivery
