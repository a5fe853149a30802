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
  rule_ = limits;
  ApplyLimits(now_ms);
  candidates_ = std::move(candidates);
  metrics_site_ = metrics_site;
}

void ReadyQueue::ApplyLimits(int64_t now_ms) {
  ShapingRule in_force = rule_;
  if (backoff_ < 1) {
    auto scaled = [this](uint32_t v) {
      return v == 0 ? 0 : std::max<uint32_t>(1, static_cast<uint32_t>(v * backoff_));
    };
    in_force.connections_max = scaled(rule_.connections_max);
    in_force.messages_per_second = scaled(rule_.messages_per_second);
    in_force.messages_burst = scaled(rule_.messages_burst);
    in_force.connections_per_minute = scaled(rule_.connections_per_minute);
  }
  if (!updated_ || limits_.messages_per_second != in_force.messages_per_second ||
      limits_.messages_burst != in_force.messages_burst) {
    rate_ = MessageRate(in_force, now_ms);
  }
  if (!updated_ || limits_.connections_per_minute != in_force.connections_per_minute) {
    connection_rate_ = ConnectionRate(in_force, now_ms);
  }
  updated_ = true;
  limits_ = std::move(in_force);
}

void ReadyQueue::Backoff(double factor, int64_t until_ms, int64_t now_ms) {
  if (factor >= 1 || until_ms <= now_ms) {
    factor = 1;
    until_ms = 0;
  }
  if (factor == backoff_ && until_ms == backoff_until_ms_) return;
  backoff_ = factor;
  backoff_until_ms_ = until_ms;
  if (updated_) ApplyLimits(now_ms);
}

void ReadyQueue::ExpireBackoff(int64_t now_ms) {
  if (backoff_until_ms_ != 0 && backoff_until_ms_ <= now_ms) Backoff(1, 0, now_ms);
}

void ReadyQueue::Suspend(int64_t until_ms, std::string reason) {
  suspended_until_ms_ = until_ms;
  suspended_reason_ = std::move(reason);
}

std::unique_ptr<Job> ReadyQueue::TakeJob(int64_t now_ms, int64_t* wait_ms) {
  *wait_ms = 0;
  ExpireBackoff(now_ms);
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
  ExpireBackoff(now_ms);
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
