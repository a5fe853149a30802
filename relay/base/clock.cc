#include "relay/base/clock.h"

#include <time.h>

namespace relay {

int64_t RealClock::MonotonicNanos() const {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double RealClock::WallSeconds() const {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

RealClock* RealClock::Get() {
  static RealClock clock;
  return &clock;
}

}  // namespace relay
