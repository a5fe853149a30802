#include "relay/delivery/warmup.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/lines.h"
#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/sv.h"

namespace relay::delivery {
namespace {

constexpr size_t kLineBytesMax = 1024;

std::string KeyOf(std::string_view source, std::string_view site) {
  return absl::StrCat(Sv(source), "\t", Sv(site));
}

// Tabs and line ends would break the file's lines: a name holding one is not counted in it.
bool Writable(std::string_view s) { return s.find_first_of("\t\r\n") == std::string_view::npos; }

}  // namespace

int64_t WarmupAllowance(const std::vector<uint32_t>& schedule, int64_t start_day, int64_t day) {
  if (schedule.empty()) return -1;
  const int64_t index = day < start_day ? 0 : day - start_day;
  if (index >= static_cast<int64_t>(schedule.size())) return -1;
  return schedule[static_cast<size_t>(index)];
}

std::string FormatWarmupFile(int64_t day, const std::vector<WarmupCount>& counts) {
  std::string out = absl::StrCat(
      "# relayd's warm-up counts: the day (UTC days since 1970-01-01), then source, site, "
      "messages\n",
      day, "\n");
  for (const WarmupCount& c : counts) {
    if (!Writable(c.source) || !Writable(c.site)) continue;
    absl::StrAppend(&out, c.source, "\t", c.site, "\t", c.count, "\n");
  }
  return out;
}

std::vector<WarmupCount> ParseWarmupFile(std::string_view text, int64_t day) {
  std::vector<WarmupCount> out;
  bool day_seen = false;
  bool other_day = false;
  ForEachLine(text, [&](std::string_view line) {
    if (line.empty() || line[0] == '#' || line.size() > kLineBytesMax) return true;
    if (!day_seen) {
      int64_t file_day = 0;
      if (!absl::SimpleAtoi(absl::string_view(line.data(), line.size()), &file_day) ||
          file_day != day) {
        other_day = true;  // another day's counts (or no day): today starts from nothing
        return false;
      }
      day_seen = true;
      return true;
    }
    const size_t tab1 = line.find('\t');
    const size_t tab2 = tab1 == std::string_view::npos ? tab1 : line.find('\t', tab1 + 1);
    if (tab2 == std::string_view::npos) return true;
    WarmupCount c;
    const std::string_view count = line.substr(tab2 + 1);
    if (tab1 == 0 || tab2 == tab1 + 1 ||
        !absl::SimpleAtoi(absl::string_view(count.data(), count.size()), &c.count) || c.count < 0) {
      return true;
    }
    c.source = std::string(line.substr(0, tab1));
    c.site = std::string(line.substr(tab1 + 1, tab2 - tab1 - 1));
    out.push_back(std::move(c));
    return out.size() < WarmupLedger::kEntriesMax;
  });
  if (other_day) out.clear();
  return out;
}

void WarmupLedger::RollTo(int64_t day) {
  if (day == day_) return;
  if (day_ >= 0 && !counts_.empty()) dirty_ = true;  // the file must forget yesterday
  day_ = day;
  counts_.clear();
}

bool WarmupLedger::Take(std::string_view source, std::string_view site, int64_t allowance,
                        int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  RollTo(now_unix_ms / kDayMs);
  if (allowance < 0) return true;
  const std::string key = KeyOf(source, site);
  auto it = counts_.find(key);
  if (it == counts_.end()) {
    if (allowance == 0 || counts_.size() >= kEntriesMax) return false;
    it = counts_.emplace(key, 0).first;
  }
  if (it->second >= allowance) return false;
  ++it->second;
  dirty_ = true;
  if (!path_.empty() && now_unix_ms - written_unix_ms_ >= kWriteIntervalMs) {
    written_unix_ms_ = now_unix_ms;
    Write();
  }
  return true;
}

void WarmupLedger::GiveBack(std::string_view source, std::string_view site, int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  RollTo(now_unix_ms / kDayMs);  // counted yesterday: nothing to give back today
  auto it = counts_.find(KeyOf(source, site));
  if (it == counts_.end() || it->second == 0) return;
  --it->second;
  dirty_ = true;
}

int64_t WarmupLedger::Count(std::string_view source, std::string_view site, int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  RollTo(now_unix_ms / kDayMs);
  auto it = counts_.find(KeyOf(source, site));
  return it == counts_.end() ? 0 : it->second;
}

std::vector<WarmupCount> WarmupLedger::Today(int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  RollTo(now_unix_ms / kDayMs);
  std::vector<WarmupCount> out;
  out.reserve(counts_.size());
  for (const auto& [key, count] : counts_) {
    const size_t tab = key.find('\t');
    out.push_back({key.substr(0, tab), key.substr(tab + 1), count});
  }
  return out;
}

void WarmupLedger::SetFile(std::string path) {
  std::lock_guard<std::mutex> lock(mu_);
  path_ = std::move(path);
}

absl::Status WarmupLedger::Load(const std::string& path, int64_t now_unix_ms) {
  absl::StatusOr<std::string> text = ReadStateFile(path);
  if (!text.ok()) return text.status();
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t day = now_unix_ms / kDayMs;
  RollTo(day);
  for (WarmupCount& c : ParseWarmupFile(*text, day)) {
    if (counts_.size() >= kEntriesMax) break;
    int64_t& count = counts_[KeyOf(c.source, c.site)];
    count = std::max(count, c.count);
  }
  return absl::OkStatus();
}

void WarmupLedger::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (dirty_ && !path_.empty()) Write();
}

void WarmupLedger::Write() {
  dirty_ = false;
  std::vector<WarmupCount> all;
  all.reserve(counts_.size());
  for (const auto& [key, count] : counts_) {
    const size_t tab = key.find('\t');
    all.push_back({key.substr(0, tab), key.substr(tab + 1), count});
  }
  const absl::Status written =
      ReplaceFile(path_, FormatWarmupFile(day_, all), 0600, /*durable=*/false);
  if (!written.ok()) {
    LogWarning() << "warm-up: " << written.message() << " (today's counts hold until a restart)";
  }
}

}  // namespace relay::delivery
