#include "relay/delivery/scheduled_queue.h"

namespace relay::delivery {

void ScheduledQueue::Schedule(queue::MessageId id, int64_t due_unix_ms) {
  auto [it, inserted] = due_of_.try_emplace(id, due_unix_ms);
  if (!inserted) {
    if (it->second <= due_unix_ms) return;  // already due sooner
    by_due_.erase({it->second, id});
    it->second = due_unix_ms;
  }
  by_due_.insert({due_unix_ms, id});
}

void ScheduledQueue::Remove(queue::MessageId id) {
  auto it = due_of_.find(id);
  if (it == due_of_.end()) return;
  by_due_.erase({it->second, id});
  due_of_.erase(it);
}

int64_t ScheduledQueue::NextDueUnixMs() const {
  return by_due_.empty() ? -1 : by_due_.begin()->first;
}

std::optional<queue::MessageId> ScheduledQueue::TakeDue(int64_t now_unix_ms) {
  if (by_due_.empty() || by_due_.begin()->first > now_unix_ms) return std::nullopt;
  const queue::MessageId id = by_due_.begin()->second;
  by_due_.erase(by_due_.begin());
  due_of_.erase(id);
  return id;
}

std::optional<int64_t> ScheduledQueue::DueOf(queue::MessageId id) const {
  auto it = due_of_.find(id);
  if (it == due_of_.end()) return std::nullopt;
  return it->second;
}

}  // namespace relay::delivery
