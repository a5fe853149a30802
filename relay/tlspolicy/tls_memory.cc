#include "relay/tlspolicy/tls_memory.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/lines.h"
#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/sv.h"

namespace relay::tlspolicy {
namespace {

constexpr int64_t kDayMs = int64_t{86400} * 1000;
constexpr size_t kDomainBytesMax = 255;  // RFC 1035 §2.3.4

bool DomainChars(std::string_view d) {
  if (d.empty() || d.size() > kDomainBytesMax) return false;
  for (char c : d) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  return true;
}

}  // namespace

std::string FormatTlsMemoryFile(const std::vector<TlsMemoryEntry>& entries) {
  std::string out =
      "# relayd's TLS downgrade memory: domain, then the day (UTC days since 1970-01-01) of its "
      "latest delivery over TLS\n";
  for (const TlsMemoryEntry& e : entries) {
    if (!DomainChars(e.domain)) continue;
    absl::StrAppend(&out, e.domain, "\t", e.day, "\n");
  }
  return out;
}

std::vector<TlsMemoryEntry> ParseTlsMemoryFile(std::string_view text, size_t max) {
  std::vector<TlsMemoryEntry> out;
  if (max == 0) return out;
  ForEachLine(text, [&](std::string_view line) {
    if (line.empty() || line[0] == '#') return true;
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos) return true;
    TlsMemoryEntry e;
    const std::string_view day = line.substr(tab + 1);
    if (!DomainChars(line.substr(0, tab)) || day.size() > 12 ||
        !absl::SimpleAtoi(Sv(day), &e.day) || e.day < 0) {
      return true;
    }
    e.domain = std::string(line.substr(0, tab));
    out.push_back(std::move(e));
    return out.size() < max;
  });
  return out;
}

void TlsMemory::Remember(std::string_view domain, int64_t now_unix_ms) {
  if (!options_.enabled) return;
  const int64_t today = now_unix_ms / kDayMs;
  {
    // The common case, without a copy: already remembered today (jobs carry lower-case domains).
    absl::ReaderMutexLock lock(&mu_);
    auto it = days_.find(Sv(domain));
    if (it != days_.end() && it->second >= today) return;
  }
  const std::string key = absl::AsciiStrToLower(Sv(domain));
  if (!DomainChars(key)) return;
  absl::MutexLock lock(&mu_);
  if (Set(key, today) && listener_) listener_({key, today}, /*forgotten=*/false);
}

bool TlsMemory::Set(const std::string& key, int64_t day) {
  auto it = days_.find(key);
  if (it == days_.end()) {
    if (days_.size() >= options_.domains_max) {
      if (!full_logged_) {
        LogWarning() << "TLS downgrade memory: " << options_.domains_max
                     << " domains remembered ([tls_policy] memory_domains_max); new ones are not";
        full_logged_ = true;
      }
      return false;
    }
    days_.emplace(key, day);
    size_.store(days_.size(), std::memory_order_relaxed);
  } else if (it->second >= day) {
    return false;
  } else {
    it->second = day;
  }
  dirty_ = true;
  return true;
}

void TlsMemory::SetListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void TlsMemory::Mirror(const TlsMemoryEntry& entry) {
  if (!options_.enabled) return;
  const std::string key = absl::AsciiStrToLower(Sv(entry.domain));
  if (!DomainChars(key)) return;
  absl::MutexLock lock(&mu_);
  Set(key, entry.day);
}

void TlsMemory::Unmirror(std::string_view domain) {
  absl::MutexLock lock(&mu_);
  const bool erased = days_.erase(absl::AsciiStrToLower(Sv(domain))) > 0;
  size_.store(days_.size(), std::memory_order_relaxed);
  dirty_ = dirty_ || erased;
}

bool TlsMemory::Requires(std::string_view domain, int64_t now_unix_ms) const {
  if (!options_.enabled || size_.load(std::memory_order_relaxed) == 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  // Domains are stored in lower case; jobs carry them so.
  auto it = days_.find(Sv(domain));
  return it != days_.end() && now_unix_ms / kDayMs - it->second <= options_.days;
}

bool TlsMemory::Forget(std::string_view domain) {
  absl::MutexLock lock(&mu_);
  const std::string key = absl::AsciiStrToLower(Sv(domain));
  const bool erased = days_.erase(key) > 0;
  size_.store(days_.size(), std::memory_order_relaxed);
  dirty_ = dirty_ || erased;
  if (erased && listener_) listener_({key, 0}, /*forgotten=*/true);
  return erased;
}

std::vector<TlsMemoryEntry> TlsMemory::List(size_t max, size_t* total) const {
  std::vector<TlsMemoryEntry> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    *total = days_.size();
    out.reserve(days_.size());
    for (const auto& [domain, day] : days_) out.push_back({domain, day});
  }
  std::sort(out.begin(), out.end(),
            [](const TlsMemoryEntry& a, const TlsMemoryEntry& b) { return a.domain < b.domain; });
  if (out.size() > max) out.resize(max);
  return out;
}

void TlsMemory::SetFile(std::string path) {
  absl::MutexLock lock(&mu_);
  path_ = std::move(path);
}

absl::Status TlsMemory::Load(const std::string& path, int64_t now_unix_ms) {
  absl::StatusOr<std::string> text = ReadStateFile(path);
  if (!text.ok()) return text.status();
  const int64_t today = now_unix_ms / kDayMs;
  absl::MutexLock lock(&mu_);
  for (TlsMemoryEntry& e : ParseTlsMemoryFile(*text, options_.domains_max)) {
    if (today - e.day > options_.days || days_.size() >= options_.domains_max) continue;
    int64_t& day = days_[e.domain];
    day = std::max(day, e.day);
  }
  size_.store(days_.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

void TlsMemory::Prune(int64_t now_unix_ms) {
  const int64_t today = now_unix_ms / kDayMs;
  absl::MutexLock lock(&mu_);
  if (days_.size() < options_.domains_max - options_.domains_max / 10) return;
  const size_t before = days_.size();
  absl::erase_if(days_, [&](const auto& e) { return today - e.second > options_.days; });
  size_.store(days_.size(), std::memory_order_relaxed);
  if (days_.size() != before) {
    dirty_ = true;
    full_logged_ = false;
  }
}

void TlsMemory::Flush() {
  std::vector<TlsMemoryEntry> all;
  std::string path;
  {
    absl::MutexLock lock(&mu_);
    if (!dirty_ || path_.empty()) return;
    dirty_ = false;
    path = path_;
    all.reserve(days_.size());
    for (const auto& [domain, day] : days_) all.push_back({domain, day});
  }
  // Formatted and written outside the lock: deliveries go on meanwhile.
  const absl::Status written = ReplaceFile(path, FormatTlsMemoryFile(all), 0600, /*durable=*/false);
  if (!written.ok()) {
    LogWarning() << "TLS downgrade memory: " << written.message();
    absl::MutexLock lock(&mu_);
    dirty_ = true;  // tried again at the next Flush
  }
}

}  // namespace relay::tlspolicy
