#include "relay/tlspolicy/sts_cache.h"

#include <algorithm>

#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/sv.h"

namespace relay::tlspolicy {

bool StsEntryFresh(const StsCacheEntry& entry, int64_t now_unix_s) {
  return now_unix_s < entry.fetched_unix_s + entry.policy.max_age_s;
}

StsEntryPtr StsCache::Find(std::string_view domain) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = entries_.find(Sv(domain));
  return it == entries_.end() ? nullptr : it->second;
}

void StsCache::Store(StsCacheEntry entry) {
  absl::MutexLock lock(&mu_);
  if (!listener_) {
    Put(std::move(entry));
    return;
  }
  StsCacheEntry told = entry;
  if (Put(std::move(entry))) listener_(told);
}

bool StsCache::Put(StsCacheEntry entry) {
  auto it = entries_.find(entry.domain);
  if (it == entries_.end() && entries_.size() >= policies_max_) {
    if (!full_logged_) {
      LogWarning() << "MTA-STS: " << policies_max_
                   << " policies cached ([tls_policy] mta_sts_policies_max); new ones are not kept";
      full_logged_ = true;
    }
    return false;
  }
  std::string domain = entry.domain;
  entries_[domain] = std::make_shared<const StsCacheEntry>(std::move(entry));
  dirty_ = true;
  return true;
}

void StsCache::SetListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void StsCache::Mirror(StsCacheEntry entry) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(entry.domain);
  if (it != entries_.end() && it->second->fetched_unix_s >= entry.fetched_unix_s) return;
  Put(std::move(entry));
}

std::vector<StsEntryPtr> StsCache::List(size_t max, size_t* total) const {
  std::vector<StsEntryPtr> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    *total = entries_.size();
    out.reserve(entries_.size());
    for (const auto& [domain, entry] : entries_) out.push_back(entry);
  }
  std::sort(out.begin(), out.end(),
            [](const StsEntryPtr& a, const StsEntryPtr& b) { return a->domain < b->domain; });
  if (out.size() > max) out.resize(max);
  return out;
}

void StsCache::SetFile(std::string path) {
  absl::MutexLock lock(&mu_);
  path_ = std::move(path);
}

absl::Status StsCache::Load(const std::string& path, int64_t now_unix_s) {
  absl::StatusOr<std::string> text = ReadStateFile(path);
  if (!text.ok()) return text.status();
  absl::MutexLock lock(&mu_);
  for (StsCacheEntry& e : ParseStsCacheFile(*text, policies_max_)) {
    if (!StsEntryFresh(e, now_unix_s) || entries_.size() >= policies_max_) continue;
    auto it = entries_.find(e.domain);
    if (it != entries_.end() && it->second->fetched_unix_s >= e.fetched_unix_s) continue;
    std::string domain = e.domain;
    entries_[domain] = std::make_shared<const StsCacheEntry>(std::move(e));
  }
  return absl::OkStatus();
}

void StsCache::Prune(int64_t now_unix_s) {
  absl::MutexLock lock(&mu_);
  if (entries_.size() < policies_max_ - policies_max_ / 10) return;
  const size_t before = entries_.size();
  absl::erase_if(entries_,
                 [now_unix_s](const auto& e) { return !StsEntryFresh(*e.second, now_unix_s); });
  if (entries_.size() != before) {
    dirty_ = true;
    full_logged_ = false;
  }
}

void StsCache::Flush() {
  std::vector<StsEntryPtr> held;
  std::string path;
  {
    // Pointers only under the lock: the shards' lookups wait for no copy.
    absl::MutexLock lock(&mu_);
    if (!dirty_ || path_.empty()) return;
    dirty_ = false;
    path = path_;
    held.reserve(entries_.size());
    for (const auto& [domain, entry] : entries_) held.push_back(entry);
  }
  std::vector<StsCacheEntry> all;
  all.reserve(held.size());
  for (const StsEntryPtr& e : held) all.push_back(*e);
  const absl::Status written = ReplaceFile(path, FormatStsCacheFile(all), 0600, /*durable=*/false);
  if (!written.ok()) {
    LogWarning() << "MTA-STS cache: " << written.message();
    absl::MutexLock lock(&mu_);
    dirty_ = true;
  }
}

}  // namespace relay::tlspolicy
