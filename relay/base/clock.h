// Time for the relay. Code that schedules takes a Clock so that tests control time.
// MonotonicNanos() drives timers and deadlines; WallSeconds() is for records and headers.
// RealClock is safe from any thread; FakeClock belongs to the test thread that advances it.
#pragma once

#include <cstdint>

namespace relay {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t MonotonicNanos() const = 0;
  // Seconds since the Unix epoch, with sub-second precision.
  virtual double WallSeconds() const = 0;
  int64_t MonotonicMillis() const { return MonotonicNanos() / 1000000; }
};

class RealClock final : public Clock {
 public:
  int64_t MonotonicNanos() const override;
  double WallSeconds() const override;
  static RealClock* Get();
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_nanos = 1000000000, double wall_start = 1.7e9)
      : now_nanos_(start_nanos), wall_start_(wall_start), start_nanos_(start_nanos) {}
  int64_t MonotonicNanos() const override { return now_nanos_; }
  double WallSeconds() const override { return wall_start_ + (now_nanos_ - start_nanos_) / 1e9; }
  void AdvanceNanos(int64_t nanos) { now_nanos_ += nanos; }
  void AdvanceMillis(int64_t millis) { now_nanos_ += millis * 1000000; }

 private:
  int64_t now_nanos_;
  double wall_start_;
  int64_t start_nanos_;
};

}  // namespace relay
