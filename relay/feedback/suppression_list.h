// The suppression list: addresses a sending domain must not mail again, and why: a hard bounce
// (the bounce category), a complaint, an unsubscribe, or the operator. Checked at RCPT on the
// submission ports (a suppressed recipient is refused with 550 5.7.1 naming the reason); filled
// by the delivery engine when a recipient bounces in one of the configured categories, and by
// `relayctl suppress`.
//
// Storage: an LMDB environment in one file (Debian's liblmdb), shared by relayd's shards and by
// relayctl, which opens the same file: LMDB's readers take no lock and see every committed write
// at their next lookup, so `relayctl suppress add` acts on the running relay at once. A lookup is
// one read transaction (about a microsecond with a million entries; suppression_list_bench).
// Memory: the file is mapped (map_bytes_max bounds it); what stays resident is the kernel's page
// cache, not the process's heap.
//
// Writes from the shards (bounces) go through a writer thread that commits them in batches, so a
// shard never waits for an fsync; at most pending_max wait (beyond: dropped, logged, counted).
// Add(), Remove() and AddMany() from relayctl commit at once, durably.
//
// Keys are "tenant NUL address", both lower-cased: the tenant is the sending domain (the domain
// of MAIL FROM) until tenants of their own exist. Values are one line of tab-separated text
// (DecodeEntry), so that a damaged file is read without surprises.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relay::feedback {

enum class SuppressionReason { kBounce, kComplaint, kUnsubscribe, kManual };
std::string_view ReasonName(SuppressionReason reason);  // "bounce", "complaint", ...
std::optional<SuppressionReason> ReasonNamed(std::string_view name);

struct SuppressionEntry {
  std::string tenant;   // the sending domain, lower-case
  std::string address;  // lower-case
  SuppressionReason reason = SuppressionReason::kManual;
  std::string category;     // kBounce: the bounce category ("bad-mailbox"); else ""
  int64_t time_unix_ms = 0;
  std::string queue_id;     // the message that caused it; "" when none
  std::string detail;       // the reply or a note, at most kDetailBytesMax
};

inline constexpr size_t kTenantBytesMax = 255;   // a domain name
inline constexpr size_t kAddressBytesMax = 254;  // RFC 5321's path, less the brackets
inline constexpr size_t kDetailBytesMax = 512;

// The value stored for `e` (without tenant and address) and its reading. DecodeEntry takes any
// bytes (the file is on-disk input) and is linear in them.
std::string EncodeEntryValue(const SuppressionEntry& e);
absl::StatusOr<SuppressionEntry> DecodeEntry(std::string_view key, std::string_view value);
// "tenant\0address", lower-cased; an error when either is empty or too long.
absl::StatusOr<std::string> EntryKey(std::string_view tenant, std::string_view address);

struct SuppressionListOptions {
  std::string path;                          // the LMDB file (and PATH-lock beside it)
  size_t map_bytes_max = size_t{1} << 30;    // the mapping: at most this much data (about 4M entries)
  size_t pending_max = 65536;                // AddLater() entries waiting for the writer thread
  int64_t batch_wait_ms = 50;                // the writer thread commits at least this often
  // When the file is created: its owner and group become those of its directory (relayctl runs
  // as root, relayd as the relay's user).
  bool owner_from_directory = true;
};

class SuppressionList {
 public:
  static absl::StatusOr<std::unique_ptr<SuppressionList>> Open(SuppressionListOptions options);
  ~SuppressionList();  // commits what AddLater() left waiting
  SuppressionList(const SuppressionList&) = delete;
  SuppressionList& operator=(const SuppressionList&) = delete;

  // The entry for (tenant, address), nullopt when there is none.
  absl::StatusOr<std::optional<SuppressionEntry>> Find(std::string_view tenant,
                                                       std::string_view address) const;
  // Adds or replaces, committed (durable) when it returns.
  absl::Status Add(const SuppressionEntry& entry);
  // Many in one transaction (import); entries that cannot be keyed are refused before any write.
  absl::Status AddMany(const std::vector<SuppressionEntry>& entries);
  // For the shards: queued for the writer thread, never blocks on the disk. False when the queue
  // is full (the entry is dropped).
  bool AddLater(SuppressionEntry entry);
  // True when there was an entry.
  absl::StatusOr<bool> Remove(std::string_view tenant, std::string_view address);
  // Every entry of `tenant` ("" for all), in key order, until `visit` returns false.
  absl::Status ForEach(std::string_view tenant,
                       const std::function<bool(const SuppressionEntry&)>& visit) const;
  absl::StatusOr<uint64_t> Count() const;
  // Entries AddLater() dropped because the queue was full, and writes that failed.
  uint64_t dropped() const;
  // Waits until every AddLater() so far is committed (tests, shutdown).
  void Flush();

  // A fleet's list (relay/cluster/fleet.h): every change this process commits (Add, AddMany,
  // AddLater once written, Remove) is told to `listener` after its commit, on the committing
  // thread (under a lock of the list's own: it must only queue it), so that it reaches the other
  // nodes; changes that came from them go in through the
  // Mirror calls, which commit without telling. Set before the first change.
  using Listener = std::function<void(const SuppressionEntry& entry, bool removed)>;
  void SetListener(Listener listener) {
    std::lock_guard<std::mutex> lock(listener_mu_);
    listener_ = std::move(listener);
  }
  absl::Status MirrorAdd(const std::vector<SuppressionEntry>& entries) {
    return Put(entries, /*announce=*/false);
  }
  absl::StatusOr<bool> MirrorRemove(std::string_view tenant, std::string_view address) {
    return Delete(tenant, address, /*announce=*/false);
  }

 private:
  struct Env;
  explicit SuppressionList(SuppressionListOptions options);
  absl::Status Put(const std::vector<SuppressionEntry>& entries, bool announce = true);
  absl::StatusOr<bool> Delete(std::string_view tenant, std::string_view address, bool announce);
  void WriterLoop();

  SuppressionListOptions options_;
  std::unique_ptr<Env> env_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable drained_;
  std::deque<SuppressionEntry> pending_;
  uint64_t in_flight_ = 0;  // taken by the writer, not yet committed
  uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread writer_;
  // Held while the listener runs, so that SetListener(nullptr) waits for a call in progress.
  std::mutex listener_mu_;
  Listener listener_;  // guarded by listener_mu_
};

}  // namespace relay::feedback
