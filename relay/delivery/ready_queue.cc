#include "relay/delivery/ready_queue.h"

#include <algorithm>

namespace relay::delivery {

namespace {

// A burst of 0 is the rate's own size.
TokenBucket MessageRate(uint32_t per_second, uint32_t burst, int64_t now_ms) {
  return TokenBucket(per_second, burst > 0 ? burst : per_second, now_ms);
}

// A per-minute rate as a bucket of that size refilled continuously.
TokenBucket ConnectionRate(uint32_t per_minute, int64_t now_ms) {
  return TokenBucket(per_minute / 60.0, std::max<uint32_t>(1, per_minute), now_ms);
}

}  // namespace

ReadyQueue::ReadyQueue(std::string site, int source, int64_t now_ms)
    : site_(std::move(site)),
      source_(source),
      rate_(MessageRate(0, 0, now_ms)),
      connection_rate_(ConnectionRate(0, now_ms)) {
  const ShapingRule defaults;
  in_force_ = {defaults.connections_max, defaults.messages_per_second, defaults.messages_burst,
               defaults.connections_per_minute};
}

void ReadyQueue::Update(const ShapingRule& limits, std::vector<dns::Candidate> candidates,
                        int metrics_site, int64_t now_ms) {
  limits_ = limits;
  ApplyLimits(now_ms);
  candidates_ = std::move(candidates);
  metrics_site_ = metrics_site;
}

void ReadyQueue::ApplyLimits(int64_t now_ms) {
  auto scaled = [this](uint32_t v) {
    return v == 0 || backoff_ >= 1 ? v : std::max<uint32_t>(1, static_cast<uint32_t>(v * backoff_));
  };
  const InForce next = {scaled(limits_.connections_max), scaled(limits_.messages_per_second),
                        scaled(limits_.messages_burst), scaled(limits_.connections_per_minute)};
  if (!updated_ || in_force_.messages_per_second != next.messages_per_second ||
      in_force_.messages_burst != next.messages_burst) {
    rate_ = MessageRate(next.messages_per_second, next.messages_burst, now_ms);
  }
  if (!updated_ || in_force_.connections_per_minute != next.connections_per_minute) {
    connection_rate_ = ConnectionRate(next.connections_per_minute, now_ms);
  }
  updated_ = true;
  in_force_ = next;
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
  if (jobs_.empty() || connections_.size() >= in_force_.connections_max) return false;
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
