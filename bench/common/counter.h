// A statistics counter with one writer thread and any number of reader threads: the writer does a
// relaxed load and store (no locked instruction), readers see a recent value without a data race.
#pragma once

#include <atomic>
#include <cstdint>

namespace bench {

class Counter {
 public:
  void Add(uint64_t delta = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  void Set(uint64_t value) { value_.store(value, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace bench
