#include "dns/cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dns {

Cache::Cache(relay::Clock* clock, const CacheOptions& options) : clock_(clock), options_(options) {}

std::string Cache::Key(std::string_view name, uint16_t type) {
  std::string key = CanonicalName(name);
  key.push_back('/');
  absl::StrAppend(&key, type);
  return key;
}

void Cache::Erase(absl::flat_hash_map<std::string, Entry>::iterator it) {
  insertion_order_.erase(it->second.age);
  entries_.erase(it);
}

std::shared_ptr<const CachedAnswer> Cache::Lookup(std::string_view name, uint16_t type) {
  auto it = entries_.find(Key(name, type));
  if (it == entries_.end()) {
    ++misses_;
    return nullptr;
  }
  if (clock_->MonotonicMillis() >= it->second.expires_ms) {
    ++expirations_;
    ++misses_;
    Erase(it);
    return nullptr;
  }
  ++hits_;
  return it->second.answer;
}

uint32_t Cache::TtlFor(const Message& message, std::string_view name, uint16_t type) {
  if (message.rcode != kRcodeNoError && message.rcode != kRcodeNxDomain) return 0;
  if (message.truncated) return 0;
  if (message.rcode == kRcodeNoError) {
    std::vector<const ResourceRecord*> records = AnswersFor(message, name, type);
    if (!records.empty()) {
      uint32_t ttl = UINT32_MAX;
      for (const ResourceRecord* rr : records) ttl = std::min(ttl, rr->ttl_s);
      // The CNAMEs that led there bound the answer's life too.
      for (const ResourceRecord& rr : message.answers) {
        if (rr.type == kTypeCname) ttl = std::min(ttl, rr.ttl_s);
      }
      return ttl;
    }
  }
  // RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM) of the SOA in the
  // authority section; without one it is not cached.
  for (const ResourceRecord& rr : message.authorities) {
    if (rr.type == kTypeSoa) return std::min(rr.ttl_s, rr.soa.minimum_s);
  }
  return 0;
}

uint32_t Cache::Insert(std::string_view name, uint16_t type,
                       std::shared_ptr<const CachedAnswer> answer) {
  if (options_.entries_max == 0 || answer == nullptr) return 0;
  uint32_t ttl_s = TtlFor(answer->message, name, type);
  bool positive =
      answer->message.rcode == kRcodeNoError && !AnswersFor(answer->message, name, type).empty();
  ttl_s = std::min(ttl_s, positive ? options_.positive_ttl_s_max : options_.negative_ttl_s_max);
  if (ttl_s == 0) return 0;
  std::string key = Key(name, type);
  auto it = entries_.find(key);
  if (it != entries_.end()) Erase(it);
  while (entries_.size() >= options_.entries_max) {
    auto oldest = entries_.find(insertion_order_.front());
    Erase(oldest);
    ++evictions_;
  }
  insertion_order_.push_back(key);
  auto age = std::prev(insertion_order_.end());
  entries_.emplace(std::move(key), Entry{std::move(answer),
                                         clock_->MonotonicMillis() + int64_t{ttl_s} * 1000, age});
  return ttl_s;
}

void Cache::Clear() {
  entries_.clear();
  insertion_order_.clear();
}

}  // namespace dns
