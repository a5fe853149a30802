// A bounded single-producer single-consumer ring for messages between shards (admin requests,
// metrics snapshots). Lock-free: one producer thread calls TryPush, one consumer thread TryPop.
// The producer wakes the consumer's reactor (Reactor::Wake) after a push into an empty ring; the
// consumer drains the ring when woken. A full ring refuses the push (the caller decides).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <optional>
#include <utility>

namespace relay::io {

template <typename T, size_t kCapacity>
class SpscRing {
  static_assert((kCapacity & (kCapacity - 1)) == 0, "capacity must be a power of two");

 public:
  // Producer thread. Returns false when full. `was_empty` tells whether a wake-up is needed.
  bool TryPush(T value, bool* was_empty = nullptr) {
    size_t tail = tail_.load(std::memory_order_relaxed);
    size_t head = head_.load(std::memory_order_acquire);
    if (tail - head == kCapacity) return false;
    slots_[tail & (kCapacity - 1)] = std::move(value);
    tail_.store(tail + 1, std::memory_order_release);
    if (was_empty != nullptr) *was_empty = (tail == head);
    return true;
  }

  // Consumer thread.
  std::optional<T> TryPop() {
    size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return std::nullopt;
    T value = std::move(slots_[head & (kCapacity - 1)]);
    head_.store(head + 1, std::memory_order_release);
    return value;
  }

  size_t SizeApprox() const {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) std::array<T, kCapacity> slots_{};
};

}  // namespace relay::io
