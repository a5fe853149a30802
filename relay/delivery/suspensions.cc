#include "relay/delivery/suspensions.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/sv.h"

namespace relay::delivery {
namespace {

constexpr size_t kLineBytesMax = 1024;

// Tabs and line ends would break the file's lines: a reason never holds them.
std::string CleanReason(std::string_view reason) {
  std::string out(reason.substr(0, Suspensions::kReasonBytesMax));
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

bool IsSelectorKind(std::string_view kind) {
  for (std::string_view k : kSelectorKinds) {
    if (k == kind) return true;
  }
  return false;
}

std::string SelectorKey(std::string_view kind, std::string_view value) {
  if (kind == "site") return AnySourceKey(value);
  return absl::StrCat(Sv(kind), ":", Sv(value));
}

std::string BackoffKey(int source, std::string_view site) {
  return absl::StrCat(Sv(kBackoffPrefix), source, "|", Sv(site));
}

std::string RebindKey(std::string_view kind, std::string_view value) {
  return absl::StrCat(Sv(kRebindPrefix), Sv(kind), ":", Sv(value));
}

std::string AnySourceKey(std::string_view site) {
  return absl::StrCat(kAnySource, "|", std::string(site));
}

std::string_view SiteOfKey(std::string_view key) {
  const size_t bar = key.find('|');
  return bar == std::string_view::npos ? key : key.substr(bar + 1);
}

std::string FormatSuspensionsFile(const std::vector<Suspension>& entries) {
  std::string out =
      "# relayd's suspensions: key, until (unix ms), shard (-1: the operator), reason\n";
  for (const Suspension& s : entries) {
    absl::StrAppend(&out, s.key, "\t", s.until_unix_ms, "\t", s.shard, "\t", CleanReason(s.reason));
    // %.17g: the factor reads back as the same double.
    if (s.backoff > 0) absl::StrAppend(&out, absl::StrFormat("\tbackoff=%.17g", s.backoff));
    if (!s.pool.empty()) absl::StrAppend(&out, "\tpool=", CleanReason(s.pool));
    out += "\n";
  }
  return out;
}

std::vector<Suspension> ParseSuspensionsFile(std::string_view text) {
  std::vector<Suspension> out;
  size_t pos = 0;
  while (pos < text.size() && out.size() < Suspensions::kEntriesMax) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#' || line.size() > kLineBytesMax) continue;
    std::string_view fields[4];
    size_t from = 0;
    int n = 0;
    for (; n < 3; ++n) {
      const size_t tab = line.find('\t', from);
      if (tab == std::string_view::npos) break;
      fields[n] = line.substr(from, tab - from);
      from = tab + 1;
    }
    if (n != 3) continue;
    // The reason, then optional "name=value" fields.
    const std::string_view tail = line.substr(from);
    const std::vector<absl::string_view> rest =
        absl::StrSplit(absl::string_view(tail.data(), tail.size()), '\t');
    fields[3] = std::string_view(rest[0].data(), rest[0].size());
    Suspension s;
    bool extras_ok = true;
    for (size_t i = 1; i < rest.size() && extras_ok; ++i) {
      const std::string_view extra(rest[i].data(), rest[i].size());
      if (absl::StartsWith(Sv(extra), "backoff=")) {
        const std::string_view v = extra.substr(8);
        extras_ok = absl::SimpleAtod(absl::string_view(v.data(), v.size()), &s.backoff) &&
                    s.backoff > 0 && s.backoff < 1;
      } else if (absl::StartsWith(Sv(extra), "pool=")) {
        s.pool = std::string(extra.substr(5));
        extras_ok = !s.pool.empty() && s.pool.size() <= Suspensions::kReasonBytesMax &&
                    s.pool.find('\r') == std::string::npos;
      }
    }
    const std::string_view key = fields[0];
    const bool key_ok = key.find_first_of("|:") != std::string_view::npos &&
                        absl::StartsWith(Sv(key), Sv(kRebindPrefix)) == !s.pool.empty() &&
                        absl::StartsWith(Sv(key), Sv(kBackoffPrefix)) == (s.backoff > 0);
    if (!extras_ok || !key_ok || fields[0].size() > 300 ||
        !absl::SimpleAtoi(absl::string_view(fields[1].data(), fields[1].size()),
                          &s.until_unix_ms) ||
        !absl::SimpleAtoi(absl::string_view(fields[2].data(), fields[2].size()), &s.shard)) {
      continue;
    }
    s.key = std::string(fields[0]);
    s.reason = CleanReason(fields[3]);
    out.push_back(std::move(s));
  }
  return out;
}

bool Suspensions::Suspend(Suspension s) {
  std::lock_guard<std::mutex> lock(mu_);
  s.reason = CleanReason(s.reason);
  const std::string key = s.key;
  auto it = entries_.find(s.key);
  if (it == entries_.end()) {
    if (entries_.size() >= kEntriesMax) return false;
    entries_.emplace(s.key, std::move(s));
  } else if (s.shard < 0 || it->second.until_unix_ms < s.until_unix_ms) {
    it->second = std::move(s);
  } else {
    return true;  // an earlier end from a reply rule changes nothing
  }
  Changed();
  if (listener_) listener_(entries_.find(key)->second, /*removed=*/false);
  return true;
}

void Suspensions::SetListener(Listener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listener_ = std::move(listener);
}

bool Suspensions::Mirror(Suspension s) {
  std::lock_guard<std::mutex> lock(mu_);
  s.reason = CleanReason(s.reason);
  auto it = entries_.find(s.key);
  if (it == entries_.end() && entries_.size() >= kEntriesMax) return false;
  if (it != entries_.end() && it->second.until_unix_ms == s.until_unix_ms &&
      it->second.backoff == s.backoff && it->second.pool == s.pool) {
    return true;  // no change: the engines need not look again
  }
  // A reply rule's suspension keeps its later end, as Suspend does (two nodes suspending the
  // same pair at nearly the same time).
  if (it != entries_.end() && s.shard >= 0 && it->second.shard >= 0 &&
      it->second.until_unix_ms > s.until_unix_ms && it->second.backoff == s.backoff) {
    return true;
  }
  std::string key = s.key;
  entries_.insert_or_assign(std::move(key), std::move(s));
  Changed();
  return true;
}

bool Suspensions::Unmirror(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(Sv(key));
  if (it == entries_.end()) return false;
  entries_.erase(it);
  Changed();
  return true;
}

size_t Suspensions::Resume(std::string_view site) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t erased = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (SiteOfKey(it->first) == site) {
      if (listener_) listener_(it->second, /*removed=*/true);
      entries_.erase(it++);
      ++erased;
    } else {
      ++it;
    }
  }
  if (erased > 0) Changed();
  return erased;
}

bool Suspensions::Remove(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(Sv(key));
  if (it == entries_.end()) return false;
  if (listener_) listener_(it->second, /*removed=*/true);
  entries_.erase(it);
  Changed();
  return true;
}

std::vector<Suspension> Suspensions::InForce(int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Suspension> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.until_unix_ms <= now_unix_ms) {
      entries_.erase(it++);
      continue;
    }
    out.push_back(it->second);
    ++it;
  }
  return out;
}

void Suspensions::SetFile(std::string path) {
  std::lock_guard<std::mutex> lock(mu_);
  path_ = std::move(path);
}

absl::Status Suspensions::Load(const std::string& path, int64_t now_unix_ms) {
  absl::StatusOr<std::string> text = ReadStateFile(path);
  if (!text.ok()) return text.status();
  std::lock_guard<std::mutex> lock(mu_);
  for (Suspension& s : ParseSuspensionsFile(*text)) {
    if (s.until_unix_ms <= now_unix_ms || entries_.size() >= kEntriesMax) continue;
    std::string key = s.key;
    entries_.insert_or_assign(std::move(key), std::move(s));
  }
  generation_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void Suspensions::Changed() {
  generation_.fetch_add(1, std::memory_order_release);
  if (path_.empty()) return;
  std::vector<Suspension> all;
  all.reserve(entries_.size());
  for (const auto& [key, s] : entries_) all.push_back(s);
  const absl::Status written =
      ReplaceFile(path_, FormatSuspensionsFile(all), 0600, /*durable=*/false);
  if (!written.ok()) {
    LogWarning() << "suspensions: " << written.message() << " (they hold until a restart)";
  }
}

}  // namespace relay::delivery
