#include "tools/fuzz/measure.h"

#include <cstdio>

namespace relay::fuzz {
namespace {

// Plain thread_local integers: no constructor, so they are safe to touch from operator new at
// any time, even during static initialisation.
thread_local bool counting = false;
thread_local int64_t live_bytes = 0;
thread_local HeapUse use;

}  // namespace

void CountAllocation(size_t bytes) {
  if (!counting) return;
  live_bytes += static_cast<int64_t>(bytes);
  if (live_bytes > use.peak_bytes) use.peak_bytes = live_bytes;
  use.allocated_bytes += static_cast<int64_t>(bytes);
  ++use.allocations;
}

void CountFree(size_t bytes) {
  // Memory allocated before BeginMeasure and freed during it makes live_bytes negative; the peak
  // stays measured from the starting level.
  if (counting) live_bytes -= static_cast<int64_t>(bytes);
}

void BeginMeasure() {
  use = HeapUse();
  live_bytes = 0;
  counting = true;
}

HeapUse EndMeasure() {
  counting = false;
  return use;
}

HeapUse RunMeasured(const Target& target, std::string_view input) {
  BeginMeasure();
  target.run(input);
  return EndMeasure();
}

std::string CheckBounds(const Bounds& bounds, size_t input_bytes, const HeapUse& use) {
  std::string problems;
  auto check = [&](const char* what, const Linear& bound, int64_t value) {
    const double limit = bound.At(input_bytes);
    if (static_cast<double>(value) <= limit) return;
    char line[256];
    std::snprintf(line, sizeof(line), "%s%s %lld > %.0f (= %.0f + %.2f * %zu input bytes)",
                  problems.empty() ? "" : "; ", what, static_cast<long long>(value), limit,
                  bound.base, bound.per_byte, input_bytes);
    problems += line;
  };
  check("heap peak bytes", bounds.heap_peak_bytes, use.peak_bytes);
  check("heap allocated bytes", bounds.heap_allocated_bytes, use.allocated_bytes);
  check("allocations", bounds.allocations, use.allocations);
  return problems;
}

}  // namespace relay::fuzz
