// What holds for the whole relay about where mail may go: a reply rule that suspends a (source,
// site) pair (Gmail's 4.7.28, Yahoo's TSS04) or slows it down (a backoff: its rate and connections
// scaled down for a while, PowerMTA's backoff mode) in the shard that saw the reply does so in
// every shard, since the receiver judges the source address, not the shard; the operator's
// suspensions
// (`relayctl queue suspend`) of a site, a recipient domain, a source, a tenant or a campaign, until
// a time or until resumed; and the operator's rebinds (`relayctl queue rebind`), which send the
// mail of a site, domain, tenant or campaign out of another egress pool.
//
// Keys:
//   "<source index>|<site>"          a reply rule's suspension of one (source, site) pair
//   "*|<site>"                       the operator's suspension of a site, from every source
//   "<kind>:<value>"                 the operator's suspension of a domain, source, tenant or
//                                    campaign
//   "backoff:<source index>|<site>"  a reply rule's backoff (`backoff` set)
//   "rebind:<kind>:<value>"          a rebind (`pool` set); kind is site, domain, tenant, campaign
// DESIGN.md: per-destination limits are split across shards so that no shard asks another
// before it sends; a suspension is the exception because it is rare and its point is that nobody
// sends.
//
// The board is shared by the shards' delivery engines and the control socket. A change (a mutex;
// a few an hour at most) bumps the generation; every engine checks the generation (one atomic
// load) before it queues a job or opens a connection, and takes a copy of the entries when it
// moved: it suspends its ready queues that an entry names and lifts those no entry names any
// more. Times are wall-clock milliseconds, so that entries mean the same in every shard and after
// a restart.
//
// Persistence: with a file (SetFile), every change rewrites it (write to a temporary file, then
// rename: a crash leaves the old list or the new one), and Load reads it back at start, expired
// entries left out. The file is on-disk input: ParseSuspensionsFile takes any bytes, is linear in
// them, and keeps at most kEntriesMax entries.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace relay::delivery {

inline constexpr char kAnySource[] = "*";

// The operator's "until resumed": an end far beyond any queue's message age (1,000 years), and
// what reads as such (over 100 years left).
inline constexpr int64_t kUntilResumedMs = int64_t{1000} * 365 * 86400 * 1000;
inline bool IsUntilResumed(int64_t left_ms) { return left_ms > int64_t{100} * 365 * 86400 * 1000; }

struct Suspension {
  // "<source index>|<site>", as the engine keys its ready queues; "*|<site>" for every source.
  std::string key;
  int64_t until_unix_ms = 0;
  std::string reason;
  int shard = -1;  // the shard whose reply rule suspended it; -1: the operator
  // A backoff: the pair's message rate and connections are scaled by this (0 < backoff < 1)
  // instead of stopped. 0: a suspension.
  double backoff = 0;
  std::string pool;  // a rebind: the pool its mail goes out of
};

// What the operator can name: a site (an MX set or a shaping rule's name), a recipient domain, an
// egress source (its name or address), a tenant, a campaign.
inline constexpr std::string_view kSelectorKinds[] = {"site", "domain", "source", "tenant",
                                                      "campaign"};
bool IsSelectorKind(std::string_view kind);
// The key of the operator's suspension of `value` of `kind` ("*|<site>" for a site).
std::string SelectorKey(std::string_view kind, std::string_view value);
std::string BackoffKey(int source, std::string_view site);
std::string RebindKey(std::string_view kind, std::string_view value);
inline constexpr std::string_view kBackoffPrefix = "backoff:";
inline constexpr std::string_view kRebindPrefix = "rebind:";

// The key for `site` from every source.
std::string AnySourceKey(std::string_view site);
// The site part of a key.
std::string_view SiteOfKey(std::string_view key);

// The file's text for `entries`, one line each: key TAB until TAB shard TAB reason, then
// "TAB backoff=F" and "TAB pool=P" when set.
std::string FormatSuspensionsFile(const std::vector<Suspension>& entries);
// The entries of a file's text; lines that do not parse are skipped.
std::vector<Suspension> ParseSuspensionsFile(std::string_view text);

class Suspensions {
 public:
  static constexpr size_t kEntriesMax = 10000;
  static constexpr size_t kReasonBytesMax = 200;

  // Suspends `key` until `until_unix_ms` (a later time extends it; an earlier one is ignored,
  // unless it comes from the operator, whose word replaces the entry). False when the board
  // holds kEntriesMax entries already.
  bool Suspend(Suspension s);
  // Lifts every suspension and backoff of `site` (all sources); how many there were.
  size_t Resume(std::string_view site);
  // Lifts the entry `key`; whether there was one.
  bool Remove(std::string_view key);
  // Bumped by every change; an engine compares it with the one it last read.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The entries still in force at `now_unix_ms` (expired ones are dropped here).
  std::vector<Suspension> InForce(int64_t now_unix_ms);

  // A fleet's board (relay/cluster/fleet.h): every change made here through Suspend, Resume and
  // Remove is told to `listener` (with mu_ held: it must only queue it), so that it reaches the
  // other nodes; their changes come in through Mirror and Unmirror, which are not told. Entries
  // that expire are not told either (every node drops them at the same time). Set before use.
  using Listener = std::function<void(const Suspension& entry, bool removed)>;
  void SetListener(Listener listener);
  // Sets `s` as it is (another node's word), or takes `key` out; false: no room, no such entry.
  bool Mirror(Suspension s);
  bool Unmirror(std::string_view key);

  // Where changes are written from now on.
  void SetFile(std::string path);
  // Reads `path` (a missing file is an empty list) into the board, leaving out entries over by
  // `now_unix_ms`. An error names the file.
  absl::Status Load(const std::string& path, int64_t now_unix_ms);

 private:
  void Changed();  // mu_ held: bump the generation, rewrite the file

  std::mutex mu_;
  absl::flat_hash_map<std::string, Suspension> entries_;  // guarded by mu_
  std::string path_;                                      // guarded by mu_
  Listener listener_;                                     // guarded by mu_
  std::atomic<uint64_t> generation_{0};
};

}  // namespace relay::delivery
