// A hierarchical timer wheel with millisecond ticks, for connection and command deadlines, retry
// schedules and token-bucket refills.
//
// Four levels of 64 slots (1 ms, 64 ms, 4.1 s and 262 s per slot); deadlines beyond the last level
// (4.6 hours) wait in its farthest slot and are re-filed when it comes round. Schedule and Cancel
// are O(1) with intrusive lists, so re-arming a session's timeout on every command costs nothing.
//
// Single-threaded: a wheel belongs to one reactor thread. A Timer is owned by its caller; it must
// be cancelled (or have fired) before it is destroyed, which ~Timer checks. Callbacks run inside
// Advance(), after every timer due at that moment has been taken off the wheel, so a callback may
// schedule or cancel any timer, including its own.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace relay::io {

class TimerWheel;

class Timer {
 public:
  Timer() = default;
  explicit Timer(std::function<void()> callback) : callback_(std::move(callback)) {}
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void set_callback(std::function<void()> callback) { callback_ = std::move(callback); }
  bool scheduled() const { return wheel_ != nullptr; }
  int64_t deadline_ms() const { return deadline_ms_; }

 private:
  friend class TimerWheel;
  std::function<void()> callback_;
  TimerWheel* wheel_ = nullptr;  // non-null while on a wheel
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  int64_t deadline_ms_ = 0;
  uint16_t slot_index_ = 0;  // level * kSlots + slot
};

class TimerWheel {
 public:
  static constexpr int kLevels = 4;
  static constexpr int kSlotBits = 6;
  static constexpr int kSlots = 1 << kSlotBits;

  explicit TimerWheel(int64_t now_ms);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms `timer` to fire at `deadline_ms` (a deadline in the past fires at the next Advance).
  // Re-arming a scheduled timer moves it.
  void Schedule(Timer* timer, int64_t deadline_ms);
  // Counts from the latest time the wheel knows (Observe or Advance): a loop that slept long
  // without a timer must not arm a deadline that is already past when it wakes.
  void ScheduleAfter(Timer* timer, int64_t delay_ms) {
    Schedule(timer, std::max(now_ms_, observed_ms_) + delay_ms);
  }
  void Cancel(Timer* timer);

  // Tells the wheel the time without running any callback: the owner's loop calls it when it
  // wakes, before the I/O completions whose handlers may call ScheduleAfter, and calls Advance
  // after them (so a completion and a deadline due in the same turn: the completion runs first).
  void Observe(int64_t now_ms) { observed_ms_ = std::max(observed_ms_, now_ms); }

  // Moves time forward to `now_ms` and runs the callbacks of every timer due by then.
  // Returns how many fired.
  int Advance(int64_t now_ms);

  // The earliest moment at which Advance() may have work: exact for deadlines within 64 ms, the
  // next cascade point otherwise; -1 when no timer is scheduled.
  int64_t NextWakeMs() const;

  int64_t now_ms() const { return now_ms_; }
  size_t size() const { return size_; }

 private:
  void Insert(Timer* timer, bool due_now_allowed);
  void Unlink(Timer* timer);
  void Cascade(int level);

  int64_t now_ms_;
  int64_t observed_ms_ = 0;  // the latest Observe(); ahead of now_ms_ between Observe and Advance
  size_t size_ = 0;
  Timer* slots_[kLevels][kSlots] = {};
  uint64_t occupied_[kLevels] = {};  // bit s set when slots_[level][s] is non-empty
};

}  // namespace relay::io
