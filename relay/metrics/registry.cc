#include "relay/metrics/registry.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace relay::metrics {
namespace {

constexpr size_t kCacheLineBytes = 64;
constexpr size_t kCellsPerLine = kCacheLineBytes / sizeof(std::atomic<uint64_t>);

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*, and names starting
// with "__" are reserved (Prometheus data model).
bool ValidName(std::string_view name, bool colon_allowed) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' ||
              (colon_allowed && c == ':') ||
              (i > 0 && absl::ascii_isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return colon_allowed || name.substr(0, 2) != "__";
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendLabels(const Labels& labels, const std::pair<std::string, std::string>* extra,
                  std::string* out) {
  if (labels.empty() && extra == nullptr) return;
  out->push_back('{');
  bool first = true;
  auto one = [&](const std::pair<std::string, std::string>& l) {
    if (!first) out->push_back(',');
    first = false;
    absl::StrAppend(out, l.first, "=\"", Registry::EscapeLabelValue(l.second), "\"");
  };
  for (const auto& l : labels) one(l);
  if (extra != nullptr) one(*extra);
  out->push_back('}');
}

}  // namespace

int LabelTable::Slot(std::string_view value) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(absl::string_view(value.data(), value.size()));
  if (it != index_.end()) return it->second;
  if (names_.size() >= slots_) return kOther;
  const int slot = static_cast<int>(names_.size());
  names_.emplace_back(value);
  index_.emplace(names_.back(), slot);
  return slot;
}

std::string LabelTable::Name(int slot) const {
  absl::MutexLock lock(&mu_);
  return slot >= 0 && static_cast<size_t>(slot) < names_.size() ? names_[slot] : "";
}

Registry::Registry(int shards) : shards_(shards) { CHECK(shards >= 1 && shards <= kShardsMax); }

Registry::~Registry() = default;

Registry::Family* Registry::FindOrAddFamily(std::string_view name, MetricType type,
                                            const FamilyOptions& options, const Labels& labels) {
  CHECK(!frozen());
  CHECK(ValidName(name, /*colon_allowed=*/true));
  for (const auto& l : labels) CHECK(ValidName(l.first, /*colon_allowed=*/false));
  for (auto& f : families_) {
    if (f->name != name) continue;
    CHECK(f->type == type && f->label_names.size() == labels.size());
    for (size_t i = 0; i < labels.size(); ++i) CHECK(f->label_names[i] == labels[i].first);
    return f.get();
  }
  if (type == MetricType::kHistogram) {
    CHECK(!options.bounds.empty());
    for (size_t i = 1; i < options.bounds.size(); ++i) {
      CHECK(options.bounds[i - 1] < options.bounds[i]);
    }
    // "le" is the bucket label the format adds.
    for (const auto& l : labels) CHECK(l.first != "le");
  }
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->type = type;
  family->options = options;
  for (const auto& l : labels) family->label_names.push_back(l.first);
  families_.push_back(std::move(family));
  return families_.back().get();
}

uint32_t Registry::SeriesSlot(Family* family, const Labels& labels, uint32_t slots) {
  for (const Series& s : family->series) {
    if (s.labels == labels && !s.callback) return s.slot;
  }
  CHECK(slots_ + slots <= kSlotsMax);
  Series s;
  s.labels = labels;
  s.slot = slots_;
  slots_ += slots;
  family->series.push_back(std::move(s));
  return family->series.back().slot;
}

Counter Registry::AddCounter(std::string_view name, const FamilyOptions& options,
                             const Labels& labels) {
  Family* f = FindOrAddFamily(name, MetricType::kCounter, options, labels);
  return Counter(this, SeriesSlot(f, labels, 1));
}

Counter Registry::AddDynamicCounter(std::string_view name, const FamilyOptions& options,
                                    const Labels& labels, const std::string& dynamic_label,
                                    const LabelTable* table, int slot) {
  Labels all = labels;
  // A placeholder no real value can be (a control character): one series per slot.
  all.emplace_back(dynamic_label, absl::StrCat("\x01", slot));
  Family* f = FindOrAddFamily(name, MetricType::kCounter, options, all);
  const uint32_t cell = SeriesSlot(f, all, 1);
  for (Series& s : f->series) {
    if (s.slot == cell) {
      s.table = table;
      s.table_slot = slot;
    }
  }
  return Counter(this, cell);
}

Gauge Registry::AddGauge(std::string_view name, const FamilyOptions& options,
                         const Labels& labels) {
  Family* f = FindOrAddFamily(name, MetricType::kGauge, options, labels);
  return Gauge(this, SeriesSlot(f, labels, 1));
}

Histogram Registry::AddHistogram(std::string_view name, const FamilyOptions& options,
                                 const Labels& labels) {
  Family* f = FindOrAddFamily(name, MetricType::kHistogram, options, labels);
  // One cell per bucket including +Inf, and one for the sum.
  uint32_t slots = static_cast<uint32_t>(f->options.bounds.size()) + 2;
  return Histogram(this, SeriesSlot(f, labels, slots), &f->options.bounds);
}

void Registry::AddCallback(std::string_view name, MetricType type, const FamilyOptions& options,
                           const Labels& labels, std::function<double()> value) {
  CHECK(type != MetricType::kHistogram);
  Family* f = FindOrAddFamily(name, type, options, labels);
  Series s;
  s.labels = labels;
  s.callback = std::move(value);
  f->series.push_back(std::move(s));
}

void Registry::Freeze() {
  CHECK(!frozen());
  stride_ = (slots_ + kCellsPerLine - 1) / kCellsPerLine * kCellsPerLine;
  if (stride_ == 0) stride_ = kCellsPerLine;
  size_t cells = stride_ * static_cast<size_t>(shards_);
  // new[] aligns to 16 bytes only: one line more, and the blocks start at the first line
  // boundary, so that every shard's block (stride_ is whole lines) has lines of its own.
  storage_ = std::make_unique<std::atomic<uint64_t>[]>(cells + kCellsPerLine);
  uintptr_t address = reinterpret_cast<uintptr_t>(storage_.get());
  size_t skip = (kCacheLineBytes - address % kCacheLineBytes) % kCacheLineBytes /
                sizeof(std::atomic<uint64_t>);
  cells_ = storage_.get() + skip;
  for (size_t i = 0; i < cells; ++i) cells_[i].store(0, std::memory_order_relaxed);
}

size_t Registry::series() const {
  size_t n = 0;
  for (const auto& f : families_) n += f->series.size();
  return n;
}

uint64_t Registry::Sum(uint32_t slot) const {
  uint64_t sum = 0;
  for (int s = 0; s < shards_; ++s) sum += Cell(s, slot).load(std::memory_order_relaxed);
  return sum;
}

std::string Registry::EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Registry::EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Registry::FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // 15 significant digits: every such decimal survives a round trip through a double, so a
  // scaled bound such as 100 µs reads "0.0001", not 9.999999999999999e-05.
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", value);
  return buf;
}

void Registry::RenderFamily(const Family& f, std::string* out) const {
  absl::StrAppend(out, "# HELP ", f.name, " ", EscapeHelp(f.options.help), "\n");
  absl::StrAppend(out, "# TYPE ", f.name, " ", TypeName(f.type), "\n");
  const double scale = f.options.scale;
  for (const Series& s : f.series) {
    if (s.callback) {
      out->append(f.name);
      AppendLabels(s.labels, nullptr, out);
      absl::StrAppend(out, " ", FormatDouble(s.callback() * scale), "\n");
      continue;
    }
    if (f.type == MetricType::kCounter) {
      if (s.table != nullptr) {
        Labels labels = s.labels;
        labels.back().second = s.table->Name(s.table_slot);
        if (labels.back().second.empty()) continue;  // a slot no value has taken yet
        out->append(f.name);
        AppendLabels(labels, nullptr, out);
      } else {
        out->append(f.name);
        AppendLabels(s.labels, nullptr, out);
      }
      uint64_t v = Sum(s.slot);
      absl::StrAppend(out, " ", scale == 1.0 ? absl::StrCat(v) : FormatDouble(v * scale), "\n");
      continue;
    }
    if (f.type == MetricType::kGauge) {
      out->append(f.name);
      AppendLabels(s.labels, nullptr, out);
      int64_t v = static_cast<int64_t>(Sum(s.slot));
      absl::StrAppend(out, " ", scale == 1.0 ? absl::StrCat(v) : FormatDouble(v * scale), "\n");
      continue;
    }
    // Histogram: cumulative buckets, +Inf equal to _count (text format 0.0.4).
    const std::vector<uint64_t>& bounds = f.options.bounds;
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= bounds.size(); ++b) {
      cumulative += Sum(s.slot + static_cast<uint32_t>(b));
      std::pair<std::string, std::string> le{
          "le", b < bounds.size() ? FormatDouble(bounds[b] * scale) : "+Inf"};
      absl::StrAppend(out, f.name, "_bucket");
      AppendLabels(s.labels, &le, out);
      absl::StrAppend(out, " ", cumulative, "\n");
    }
    uint64_t sum = Sum(s.slot + static_cast<uint32_t>(bounds.size()) + 1);
    absl::StrAppend(out, f.name, "_sum");
    AppendLabels(s.labels, nullptr, out);
    absl::StrAppend(out, " ", scale == 1.0 ? absl::StrCat(sum) : FormatDouble(sum * scale), "\n");
    absl::StrAppend(out, f.name, "_count");
    AppendLabels(s.labels, nullptr, out);
    absl::StrAppend(out, " ", cumulative, "\n");
  }
}

std::string Registry::Render() const {
  CHECK(frozen());
  std::string out;
  out.reserve(256 * series());
  for (const auto& f : families_) {
    if (f->series.empty()) continue;
    RenderFamily(*f, &out);
  }
  return out;
}

}  // namespace relay::metrics
