// A registry of counters, gauges and histograms for a sharded process, and their rendering in
// the Prometheus text exposition format 0.0.4.
//
// Every metric is registered at start, with its full label set, before Freeze(): label values
// come from the configuration (a shaping rule's name, an egress source address, a listener kind),
// never from traffic, so the number of series is bounded by the configuration. Freeze()
// allocates one block of cells per shard (each block starts on its own cache line, so shards do
// not share lines); after it nothing is registered and nothing is allocated by a write.
//
// Writes: Counter::Add / Gauge::Set / Histogram::Observe on a shard's cell are relaxed atomic
// operations (no lock, no allocation). A cell is normally written by its shard's thread only; the
// operations are atomic read-modify-writes all the same, so a helper thread of that shard (an
// authentication or signing worker) may write it too. Render() may run on any thread at any time:
// it sums the shards' cells with relaxed loads, so a scrape sees each cell's value at some point
// during the scrape (counters never go backwards; a histogram's _count is the sum of its buckets
// as read, so the two always agree).
//
// Registration and Freeze(): one thread, before any writer starts. Handles are small values,
// valid as long as the registry.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "relay/base/check.h"

namespace relay::metrics {

class Registry;

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

// A monotonically increasing count. Default-constructed: a no-op handle (for code whose metrics
// are switched off).
class Counter {
 public:
  Counter() = default;
  void Add(int shard, uint64_t n = 1) const;
  // For a counter kept elsewhere as a monotonic per-shard total (a module's own statistics):
  // publishes that total as this shard's value.
  void Set(int shard, uint64_t total) const;
  bool valid() const { return registry_ != nullptr; }

 private:
  friend class Registry;
  Counter(Registry* registry, uint32_t slot) : registry_(registry), slot_(slot) {}
  Registry* registry_ = nullptr;
  uint32_t slot_ = 0;
};

// A value that goes up and down; the exposed value is the sum over shards (each shard holds its
// share: its open connections, its queue depth).
class Gauge {
 public:
  Gauge() = default;
  void Set(int shard, int64_t value) const;
  void Add(int shard, int64_t delta) const;
  // The exposed value: the sum over shards (any thread; 0 for a no-op handle).
  int64_t Total() const;
  bool valid() const { return registry_ != nullptr; }

 private:
  friend class Registry;
  Gauge(Registry* registry, uint32_t slot) : registry_(registry), slot_(slot) {}
  Registry* registry_ = nullptr;
  uint32_t slot_ = 0;
};

// Observations in an integer base unit (microseconds, messages); bucket bounds are given in the
// same unit and rendered multiplied by the family's scale (1e-6 turns microseconds into the
// seconds Prometheus expects).
class Histogram {
 public:
  Histogram() = default;
  void Observe(int shard, uint64_t value) const;
  bool valid() const { return registry_ != nullptr; }

 private:
  friend class Registry;
  Histogram(Registry* registry, uint32_t slot, const std::vector<uint64_t>* bounds)
      : registry_(registry), slot_(slot), bounds_(bounds) {}
  Registry* registry_ = nullptr;
  uint32_t slot_ = 0;  // buckets (bounds + the +Inf one), then the sum
  const std::vector<uint64_t>* bounds_ = nullptr;
};

// Label values learned from traffic (a campaign's name), bounded: the first `slots` distinct
// values get a slot each, in the order they are first seen, and keep it for the life of the
// process; later ones share kOther. Any thread (one mutex around a hash probe).
class LabelTable {
 public:
  static constexpr int kOther = -1;
  explicit LabelTable(size_t slots) : slots_(slots) {}
  LabelTable(const LabelTable&) = delete;
  LabelTable& operator=(const LabelTable&) = delete;
  // The slot of `value`, taking the next free one; kOther when every slot is taken.
  int Slot(std::string_view value);
  // The value in `slot`; "" while the slot is free.
  std::string Name(int slot) const;
  size_t slots() const { return slots_; }

 private:
  const size_t slots_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> index_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
};

struct FamilyOptions {
  std::string help;
  // Values (and, for histograms, bounds and sums) are multiplied by this when rendered.
  double scale = 1.0;
  // Histograms only: upper bounds, increasing, in the base unit; +Inf is implicit.
  std::vector<uint64_t> bounds;
};

class Registry {
 public:
  // Limits of what the registry accepts (exceeding them is a programming error, fatal).
  static constexpr int kShardsMax = 1024;
  static constexpr size_t kSlotsMax = size_t{1} << 20;

  explicit Registry(int shards);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers one series of a family. Registering the same (name, labels) again returns the
  // same handle; a family's type, help and label names are fixed by its first registration
  // (a mismatch is fatal). Before Freeze() only.
  Counter AddCounter(std::string_view name, const FamilyOptions& options,
                     const Labels& labels = {});
  Gauge AddGauge(std::string_view name, const FamilyOptions& options, const Labels& labels = {});
  Histogram AddHistogram(std::string_view name, const FamilyOptions& options,
                         const Labels& labels = {});
  // A counter whose last label, `dynamic_label`, takes at each scrape the value `table` holds in
  // `slot`; the series is left out while the slot is free. `labels` are the fixed ones; `table`
  // outlives the registry.
  Counter AddDynamicCounter(std::string_view name, const FamilyOptions& options,
                            const Labels& labels, const std::string& dynamic_label,
                            const LabelTable* table, int slot);
  // A series whose value is computed at scrape time (on the scraping thread): process-wide
  // values such as the start time. `value` must be safe to call from that thread.
  void AddCallback(std::string_view name, MetricType type, const FamilyOptions& options,
                   const Labels& labels, std::function<double()> value);

  // Allocates the cells; every handle becomes writable.
  void Freeze();
  bool frozen() const { return cells_ != nullptr; }
  int shards() const { return shards_; }
  size_t series() const;

  // The text exposition format 0.0.4: per family "# HELP", "# TYPE", then its samples, in
  // registration order. Any thread, after Freeze().
  std::string Render() const;
  // Sum over shards of one cell (tests).
  uint64_t SumForTest(const Counter& c) const { return Sum(c.slot_); }
  int64_t SumForTest(const Gauge& g) const { return static_cast<int64_t>(Sum(g.slot_)); }

  // Escaping rules of the format: label values escape backslash, double quote and line feed;
  // HELP text escapes backslash and line feed.
  static std::string EscapeLabelValue(std::string_view value);
  static std::string EscapeHelp(std::string_view help);
  // "+Inf", "0.0005", "12": integers exactly, others to 15 significant digits.
  static std::string FormatDouble(double value);

 private:
  friend class Counter;
  friend class Gauge;
  friend class Histogram;
  struct Series {
    Labels labels;
    uint32_t slot = 0;
    std::function<double()> callback;
    const LabelTable* table = nullptr;  // AddDynamicCounter: the last label's value is
    int table_slot = 0;                 // table->Name(table_slot)
  };
  struct Family {
    std::string name;
    MetricType type = MetricType::kCounter;
    FamilyOptions options;
    std::vector<std::string> label_names;
    std::vector<Series> series;
  };

  std::atomic<uint64_t>& Cell(int shard, uint32_t slot) const;
  uint64_t Sum(uint32_t slot) const;
  Family* FindOrAddFamily(std::string_view name, MetricType type, const FamilyOptions& options,
                          const Labels& labels);
  // The slot of (family, labels), allocating `slots` cells for a new series.
  uint32_t SeriesSlot(Family* family, const Labels& labels, uint32_t slots);
  void RenderFamily(const Family& family, std::string* out) const;

  const int shards_;
  std::vector<std::unique_ptr<Family>> families_;
  uint32_t slots_ = 0;
  size_t stride_ = 0;  // cells per shard block, a multiple of a cache line
  std::unique_ptr<std::atomic<uint64_t>[]> storage_;
  std::atomic<uint64_t>* cells_ = nullptr;  // in storage_, on a cache-line boundary
};

inline std::atomic<uint64_t>& Registry::Cell(int shard, uint32_t slot) const {
  DCHECK(cells_ != nullptr && shard >= 0 && shard < shards_);
  return cells_[static_cast<size_t>(shard) * stride_ + slot];
}

inline void Counter::Add(int shard, uint64_t n) const {
  if (registry_ != nullptr) registry_->Cell(shard, slot_).fetch_add(n, std::memory_order_relaxed);
}

inline void Counter::Set(int shard, uint64_t total) const {
  if (registry_ != nullptr) registry_->Cell(shard, slot_).store(total, std::memory_order_relaxed);
}

inline void Gauge::Set(int shard, int64_t value) const {
  if (registry_ != nullptr) {
    registry_->Cell(shard, slot_).store(static_cast<uint64_t>(value), std::memory_order_relaxed);
  }
}

inline void Gauge::Add(int shard, int64_t delta) const {
  // Two's complement: adding the unsigned image of a negative delta subtracts.
  if (registry_ != nullptr) {
    registry_->Cell(shard, slot_)
        .fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
  }
}

inline int64_t Gauge::Total() const {
  return registry_ != nullptr ? static_cast<int64_t>(registry_->Sum(slot_)) : 0;
}

inline void Histogram::Observe(int shard, uint64_t value) const {
  if (registry_ == nullptr) return;
  // Few buckets (a dozen): a linear scan beats a binary search's branches.
  uint32_t bucket = 0;
  const uint32_t n = static_cast<uint32_t>(bounds_->size());
  while (bucket < n && value > (*bounds_)[bucket]) ++bucket;
  registry_->Cell(shard, slot_ + bucket).fetch_add(1, std::memory_order_relaxed);
  registry_->Cell(shard, slot_ + n + 1).fetch_add(value, std::memory_order_relaxed);
}

}  // namespace relay::metrics
