// Clock reads for the bench tools: wall-clock nanoseconds for the X-Bench-Sent header (compared
// across processes on one machine), monotonic nanoseconds for intervals. Any thread.
#pragma once

#include <time.h>

#include <cstdint>

namespace bench {

inline int64_t WallNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// User plus system CPU seconds of the whole process so far.
double ProcessCpuSeconds();

}  // namespace bench
