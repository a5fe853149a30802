#include "relay/delivery/queue_shape.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "relay/base/sv.h"

namespace relay::delivery {
namespace {

size_t BucketOf(int64_t age_ms) {
  size_t b = 0;
  while (b + 1 < kShapeBuckets && age_ms >= kShapeBucketsMin[b] * 60000) ++b;
  return b;
}

// Rows by size, the largest first (equal ones by key): the order of the table and of the cut.
std::vector<std::pair<std::string, ShapeRow>> Sorted(
    const std::map<std::string, ShapeRow, std::less<>>& rows) {
  std::vector<std::pair<std::string, ShapeRow>> sorted(rows.begin(), rows.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.recipients > b.second.recipients;
  });
  return sorted;
}

std::string Printable(std::string_view key, size_t max) {
  std::string out;
  for (char c : key) {
    if (out.size() >= max) break;
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '|' ? ' ' : c);
  }
  return out;
}

void AppendRow(std::string* out, std::string_view name, const ShapeRow& row) {
  absl::StrAppendFormat(out, "%-48s %7d %12d", Printable(name, 48), row.recipients, row.bytes);
  for (uint64_t n : row.buckets) absl::StrAppendFormat(out, " %6d", n);
  out->push_back('\n');
}

}  // namespace

void ShapeRow::Add(uint64_t recipient_count, uint64_t message_bytes, int64_t age_ms) {
  recipients += recipient_count;
  bytes += recipient_count * message_bytes;
  buckets[BucketOf(age_ms)] += recipient_count;
}

void ShapeRow::Merge(const ShapeRow& other) {
  recipients += other.recipients;
  bytes += other.bytes;
  for (size_t b = 0; b < kShapeBuckets; ++b) buckets[b] += other.buckets[b];
}

void QueueShape::Add(std::string_view key, uint64_t recipient_count, uint64_t message_bytes,
                     int64_t age_ms) {
  auto it = rows_.find(key);
  if (it == rows_.end()) it = rows_.emplace(std::string(key), ShapeRow()).first;
  it->second.Add(recipient_count, message_bytes, age_ms);
  total_.Add(recipient_count, message_bytes, age_ms);
}

std::string QueueShape::Encode(size_t rows_max) const {
  std::vector<std::pair<std::string, ShapeRow>> sorted = Sorted(rows_);
  ShapeRow other;
  std::vector<std::string> entries;
  auto entry = [](std::string_view key, const ShapeRow& row) {
    return absl::StrCat(Printable(key, key.size()), "\t", row.recipients, "\t", row.bytes, "\t",
                        absl::StrJoin(row.buckets, ","));
  };
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i < rows_max) {
      entries.push_back(entry(sorted[i].first, sorted[i].second));
    } else {
      other.Merge(sorted[i].second);
    }
  }
  if (sorted.size() > rows_max) entries.push_back(entry("(other)", other));
  return absl::StrJoin(entries, "|");
}

absl::Status QueueShape::Merge(std::string_view encoded) {
  for (absl::string_view entry : absl::StrSplit(Sv(encoded), '|', absl::SkipEmpty())) {
    const std::vector<absl::string_view> f = absl::StrSplit(entry, '\t');
    ShapeRow row;
    std::vector<absl::string_view> buckets;
    if (f.size() == 4) buckets = absl::StrSplit(f[3], ',');
    bool ok = f.size() == 4 && buckets.size() == kShapeBuckets &&
              absl::SimpleAtoi(f[1], &row.recipients) && absl::SimpleAtoi(f[2], &row.bytes);
    for (size_t b = 0; ok && b < kShapeBuckets; ++b)
      ok = absl::SimpleAtoi(buckets[b], &row.buckets[b]);
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("a queue shape entry does not parse: ",
                       Printable(std::string_view(entry.data(), entry.size()), 80)));
    }
    rows_[std::string(f[0])].Merge(row);
    total_.Merge(row);
  }
  return absl::OkStatus();
}

std::string QueueShape::Format(std::string_view title, size_t top) const {
  std::string out = absl::StrFormat("%-48s %7s %12s", title, "T", "BYTES");
  for (int64_t m : kShapeBucketsMin) absl::StrAppendFormat(&out, " %6d", m);
  absl::StrAppendFormat(&out, " %6s\n", "more");
  AppendRow(&out, "TOTAL", total_);
  std::vector<std::pair<std::string, ShapeRow>> sorted = Sorted(rows_);
  ShapeRow other;
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i < top) {
      AppendRow(&out, sorted[i].first.empty() ? "(none)" : sorted[i].first, sorted[i].second);
    } else {
      other.Merge(sorted[i].second);
    }
  }
  if (sorted.size() > top) AppendRow(&out, "(other)", other);
  return out;
}

}  // namespace relay::delivery
