// A per-shard cache of DNS answers, keyed by (name, type), honouring TTLs.
//
// Positive answers live for the smallest TTL of the records that answer the question; negative
// answers (NXDOMAIN and NODATA) for the SOA-derived TTL of RFC 2308 §5 (the smaller of the SOA
// record's TTL and its MINIMUM field), and a negative answer without an SOA is not cached
// (RFC 2308 §5). Both are capped by the options. When the cache is full the oldest insertion is
// evicted. Time comes from the relay::Clock given at construction, so tests control expiry.
//
// Single-threaded: a cache belongs to one shard's resolver. Entries are shared immutable
// answers; a caller may keep one after it has been evicted.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "dns/message.h"
#include "relay/base/clock.h"

namespace dns {

// A complete answer as received: the raw bytes and the parsed message.
struct CachedAnswer {
  std::string raw;
  Message message;
};

struct CacheOptions {
  size_t entries_max = 10000;
  // Caps on how long an answer is kept, whatever its TTL says.
  uint32_t positive_ttl_s_max = 86400;
  uint32_t negative_ttl_s_max = 3600;  // RFC 2308 §5 suggests 1-3 hours at most
};

class Cache {
 public:
  Cache(relay::Clock* clock, const CacheOptions& options);
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // The live answer for (name, type), or null; counts a hit or a miss. Expired entries are
  // dropped here.
  std::shared_ptr<const CachedAnswer> Lookup(std::string_view name, uint16_t type);

  // Stores an answer to the question (name, type) for the TTL it deserves (see TtlFor); answers
  // that deserve no caching (TTL 0, SERVFAIL and such) are ignored. Returns the TTL used.
  uint32_t Insert(std::string_view name, uint16_t type, std::shared_ptr<const CachedAnswer> answer);

  // The caching TTL of an answer to (name, type), before the caps: the minimum TTL of the
  // answering records (CNAMEs included) when there are any; RFC 2308 §5 for NXDOMAIN/NODATA;
  // 0 when it must not be cached.
  static uint32_t TtlFor(const Message& message, std::string_view name, uint16_t type);

  void Clear();
  size_t size() const { return entries_.size(); }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  uint64_t evictions() const { return evictions_; }
  uint64_t expirations() const { return expirations_; }

 private:
  struct Entry {
    std::shared_ptr<const CachedAnswer> answer;
    int64_t expires_ms;
    std::list<std::string>::iterator age;  // position in insertion order
  };
  static std::string Key(std::string_view name, uint16_t type);
  void Erase(absl::flat_hash_map<std::string, Entry>::iterator it);

  relay::Clock* clock_;
  CacheOptions options_;
  absl::flat_hash_map<std::string, Entry> entries_;
  std::list<std::string> insertion_order_;  // oldest first
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
  uint64_t expirations_ = 0;
};

}  // namespace dns
