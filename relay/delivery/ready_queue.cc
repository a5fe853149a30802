#include "relay/delivery/ready_queue.h"

#include <algorithm>

namespace relay::delivery {

namespace {

TokenBucket MessageRate(const ShapingRule& limits, int64_t now_ms) {
  uint32_t burst = limits.messages_burst > 0 ? limits.messages_burst : limits.messages_per_second;
  return TokenBucket(limits.messages_per_second, burst, now_ms);
}

// A per-minute rate as a bucket of that size refilled continuously.
TokenBucket ConnectionRate(const ShapingRule& limits, int64_t now_ms) {
  return TokenBucket(limits.connections_per_minute / 60.0,
                     std::max<uint32_t>(1, limits.connections_per_minute), now_ms);
}

}  // namespace

ReadyQueue::ReadyQueue(std::string site, int source, int64_t now_ms)
    : site_(std::move(site)),
      source_(source),
      rate_(MessageRate(limits_, now_ms)),
      connection_rate_(ConnectionRate(limits_, now_ms)) {}

void ReadyQueue::Update(const ShapingRule& limits, std::vector<dns::Candidate> candidates,
                        int metrics_site, int64_t now_ms) {
  if (!updated_ || limits_.messages_per_second != limits.messages_per_second ||
      limits_.messages_burst != limits.messages_burst) {
    rate_ = MessageRate(limits, now_ms);
  }
  if (!updated_ || limits_.connections_per_minute != limits.connections_per_minute) {
    connection_rate_ = ConnectionRate(limits, now_ms);
  }
  updated_ = true;
  limits_ = limits;
  candidates_ = std::move(candidates);
  metrics_site_ = metrics_site;
}

void ReadyQueue::Suspend(int64_t until_ms, std::string reason) {
  suspended_until_ms_ = until_ms;
  suspended_reason_ = std::move(reason);
}

std::unique_ptr<Job> ReadyQueue::TakeJob(int64_t now_ms, int64_t* wait_ms) {
  *wait_ms = 0;
  if (jobs_.empty()) return nullptr;
  if (!rate_.TryTake(1, now_ms)) {
    *wait_ms = rate_.MsUntilAvailable(1, now_ms);
    return nullptr;
  }
  return std::make_unique<Job>(jobs_.Pop());
}

std::vector<Job> ReadyQueue::TakeAll() { return jobs_.TakeAll(); }

bool ReadyQueue::MayOpenConnection(size_t idle_connections, int64_t now_ms, int64_t* wait_ms) {
  *wait_ms = 0;
  if (jobs_.empty() || connections_.size() >= limits_.connections_max) return false;
  // One new connection per batch of messages the open ones cannot take right away.
  const size_t busy = connections_.size() - std::min(idle_connections, connections_.size());
  if (busy > 0 && jobs_.size() <= connections_.size()) return false;
  if (!connection_rate_.TryTake(1, now_ms)) {
    *wait_ms = connection_rate_.MsUntilAvailable(1, now_ms);
    return false;
  }
  return true;
}

void ReadyQueue::RemoveConnection(OutboundConnection* c) {
  connections_.erase(std::remove(connections_.begin(), connections_.end(), c), connections_.end());
}

}  // namespace relay::delivery
