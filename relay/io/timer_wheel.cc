#include "relay/io/timer_wheel.h"

#include <algorithm>

#include "relay/base/check.h"

namespace relay::io {
namespace {

constexpr int64_t LevelShift(int level) { return level * TimerWheel::kSlotBits; }

// Index of the first set bit at or after `from` in a 64-bit ring, or -1.
int NextSetBit(uint64_t bits, int from) {
  if (bits == 0) return -1;
  uint64_t rotated = (bits >> from) | (from == 0 ? 0 : bits << (64 - from));
  return (from + __builtin_ctzll(rotated)) & 63;
}

}  // namespace

Timer::~Timer() { CHECK(wheel_ == nullptr); }

TimerWheel::TimerWheel(int64_t now_ms) : now_ms_(now_ms) {}

TimerWheel::~TimerWheel() {
  // Timers still armed are detached so their owners may be destroyed afterwards.
  for (int level = 0; level < kLevels; ++level) {
    for (int slot = 0; slot < kSlots; ++slot) {
      for (Timer* t = slots_[level][slot]; t != nullptr;) {
        Timer* next = t->next_;
        t->wheel_ = nullptr;
        t->prev_ = t->next_ = nullptr;
        t = next;
      }
    }
  }
}

void TimerWheel::Schedule(Timer* timer, int64_t deadline_ms) {
  if (timer->wheel_ != nullptr) Unlink(timer);
  timer->deadline_ms_ = deadline_ms;
  timer->wheel_ = this;
  ++size_;
  Insert(timer, /*due_now_allowed=*/false);
}

void TimerWheel::Cancel(Timer* timer) {
  if (timer->wheel_ == nullptr) return;
  DCHECK(timer->wheel_ == this);
  Unlink(timer);
  timer->wheel_ = nullptr;
  --size_;
}

void TimerWheel::Insert(Timer* timer, bool due_now_allowed) {
  // Scheduled from outside Advance(), a deadline not in the future fires at the next tick; during a
  // cascade at tick T a deadline of exactly T lands in T's level-0 slot, which is processed next.
  int64_t earliest = due_now_allowed ? now_ms_ : now_ms_ + 1;
  int64_t deadline = std::max(timer->deadline_ms_, earliest);
  int64_t delta = deadline - now_ms_;
  int level = 0;
  while (level < kLevels - 1 && delta >= (int64_t{1} << LevelShift(level + 1))) ++level;
  int slot;
  if (level == kLevels - 1 && delta >= (int64_t{1} << LevelShift(kLevels))) {
    // Beyond the wheel: park in the farthest slot of the top level; re-filed when it cascades.
    slot = static_cast<int>(((now_ms_ >> LevelShift(level)) + kSlots - 1) & (kSlots - 1));
  } else {
    slot = static_cast<int>((deadline >> LevelShift(level)) & (kSlots - 1));
  }
  timer->slot_index_ = static_cast<uint16_t>(level * kSlots + slot);
  Timer*& head = slots_[level][slot];
  timer->prev_ = nullptr;
  timer->next_ = head;
  if (head != nullptr) head->prev_ = timer;
  head = timer;
  occupied_[level] |= uint64_t{1} << slot;
}

void TimerWheel::Unlink(Timer* timer) {
  int level = timer->slot_index_ / kSlots;
  int slot = timer->slot_index_ % kSlots;
  if (timer->prev_ != nullptr) {
    timer->prev_->next_ = timer->next_;
  } else {
    slots_[level][slot] = timer->next_;
  }
  if (timer->next_ != nullptr) timer->next_->prev_ = timer->prev_;
  timer->prev_ = timer->next_ = nullptr;
  if (slots_[level][slot] == nullptr) occupied_[level] &= ~(uint64_t{1} << slot);
}

void TimerWheel::Cascade(int level) {
  int slot = static_cast<int>((now_ms_ >> LevelShift(level)) & (kSlots - 1));
  Timer* list = slots_[level][slot];
  slots_[level][slot] = nullptr;
  occupied_[level] &= ~(uint64_t{1} << slot);
  while (list != nullptr) {
    Timer* next = list->next_;
    Insert(list, /*due_now_allowed=*/true);  // lands on a lower level
    list = next;
  }
}

int TimerWheel::Advance(int64_t now_ms) {
  int fired = 0;
  while (now_ms_ < now_ms) {
    // With nothing due on level 0 for a while, jump straight to the next interesting tick.
    int64_t next = now_ms_ + 1;
    if (occupied_[0] == 0) {
      int64_t boundary = ((now_ms_ >> kSlotBits) + 1) << kSlotBits;
      next = std::min(now_ms, boundary);
    }
    now_ms_ = next;
    // Higher levels cascade when the lower level wraps to slot 0.
    for (int level = 1; level < kLevels; ++level) {
      if ((now_ms_ & ((int64_t{1} << LevelShift(level)) - 1)) != 0) break;
      Cascade(level);
    }
    int slot = static_cast<int>(now_ms_ & (kSlots - 1));
    Timer* due = slots_[0][slot];
    if (due == nullptr) continue;
    // Detach the whole slot first, so callbacks may re-arm timers freely.
    slots_[0][slot] = nullptr;
    occupied_[0] &= ~(uint64_t{1} << slot);
    Timer* ready = nullptr;
    while (due != nullptr) {
      Timer* next = due->next_;
      if (due->deadline_ms_ <= now_ms_) {
        due->wheel_ = nullptr;
        --size_;
        due->prev_ = nullptr;
        due->next_ = ready;
        ready = due;
      } else {
        Insert(due, /*due_now_allowed=*/false);  // cannot happen for level 0, kept for safety
      }
      due = next;
    }
    while (ready != nullptr) {
      Timer* next = ready->next_;
      ready->next_ = nullptr;
      ++fired;
      if (ready->callback_) ready->callback_();
      ready = next;
    }
  }
  return fired;
}

int64_t TimerWheel::NextWakeMs() const {
  if (size_ == 0) return -1;
  // A timer filed on a higher level may be due before one on level 0 (it was filed earlier, from
  // farther away), so the answer is the minimum over every level's next event.
  int64_t best = -1;
  int from = static_cast<int>((now_ms_ + 1) & (kSlots - 1));
  int s = NextSetBit(occupied_[0], from);
  if (s >= 0) best = now_ms_ + (s - from + kSlots) % kSlots + 1;
  for (int level = 1; level < kLevels; ++level) {
    if (occupied_[level] == 0) continue;
    int64_t cur = now_ms_ >> LevelShift(level);
    int start = static_cast<int>((cur + 1) & (kSlots - 1));
    int t = NextSetBit(occupied_[level], start);
    int64_t ahead = (t - start + kSlots) % kSlots + 1;
    int64_t cascade_ms = (cur + ahead) << LevelShift(level);  // the moment that slot cascades
    if (best < 0 || cascade_ms < best) best = cascade_ms;
  }
  return best;
}

}  // namespace relay::io
