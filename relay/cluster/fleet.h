// A relay node in a fleet that shares one Redis ([cluster] redis): the limits of each receiver
// (connections at once and messages a second per source and site, warm-up allowances), the
// suspensions and backoffs that reply rules and the operator post, and the suppression list hold
// for every node, not each. No cluster protocol of our own: Redis's atomic scripts and one
// stream of changes.
//
// Shared state, under the configured key prefix ("relay:"):
//   lease:<source>|<site>     hash node-id -> connections that node holds; a script grants a
//                             lease only below the limit, counting only nodes that are alive
//                             (their live:<node-id> key, refreshed every heartbeat, expires after
//                             lease_ttl_ms: a crashed node's connections are released then)
//   rate:<source>|<site>      a token bucket (tokens, time) refilled by Redis's own clock; nodes
//                             take tokens in batches (about token_batch_ms of the rate), so Redis
//                             sees one call for many messages
//   warmup:<day>:<source>|<site>  today's messages over the fleet; each node sends at most its
//                             share of what is left between two syncs
//   suspensions               hash key -> the entry (relay/delivery/suspensions.h's file line),
//                             reply rules' keys naming the source by its name, not its index
//   suppression               hash "tenant NUL address" -> the entry (suppression_list.h)
//   tls-memory                hash domain -> the day of its latest TLS delivery (the downgrade
//                             memory, relay/tlspolicy/tls_memory.h)
//   mta-sts                   hash domain -> its MTA-STS policy as fetched (the cache file's
//                             line, relay/tlspolicy/mta_sts.h)
//   changes                   a stream of every change to these hashes (node, type, key, value),
//                             read by every node from where it last was
//   node:<name>, nodes        each node's status (JSON, expiring) and a sorted set of names by
//                             last heartbeat: `relayctl cluster status`
//
// One agent thread per node talks to Redis: each round (every sync_ms, or at once when a shard
// ran short) is one pipelined round trip carrying the heartbeat when due, lease and token
// requests, changes made here, and the read of the change stream. Shards never wait on it: they
// take from what the agent fetched and are told to ask again after retry_ms.
//
// When Redis cannot be reached, the node falls back to its share of every limit (the limit
// divided by fleet_size, rounded up), keeps its own suppression list (the local copy) and
// suspension board, logs it once, counts it, and queues the changes it makes (at most
// pending_changes_max); when Redis answers again it re-asserts the leases it holds, sends what
// it queued and reads what it missed, and keeps to its share of connections a little longer
// (2 heartbeats and a reconnect) while the other nodes re-assert theirs. A node that starts, or
// was away longer than the stream keeps, reads the suppression, TLS memory and MTA-STS hashes
// whole.
//
// What is not exact: a node cut off from Redis alone keeps its share of connections while the
// others, once its liveness key expires (lease_ttl_ms), no longer count them: the site may see
// the limit plus that share. Rate tokens fetched are used within token_ttl_ms or dropped. A
// warm-up allowance is shared as each node's share of what the fleet had left at its last sync,
// which does not see the other nodes' messages since theirs: nodes sending at once can pass the
// allowance by up to about one share each. Changes queued while Redis is away live in memory: a
// node that dies then loses them for the fleet (its own list and board keep them). A node finds
// out that the stream was trimmed past its place only when it connects: one that stays
// connected reads on at once after every full read to stay ahead of the trimming, but a node
// more than changes_stream_max entries behind misses the difference. A full read adds entries;
// removals made while a node was away are not replayed by it.
//
// Thread-safe. The stores outlive the Fleet; Stop() before they go. Lock order: a store's own
// lock (its listener runs under it) before Fleet's; the agent never calls a store while holding
// Fleet's lock. Redis must be a standalone server (the lease script reads keys it is not given).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "relay/cluster/redis_link.h"
#include "relay/delivery/shared_limits.h"
#include "relay/delivery/suspensions.h"
#include "relay/delivery/token_bucket.h"
#include "relay/delivery/warmup.h"
#include "relay/feedback/suppression_list.h"
#include "relay/tlspolicy/sts_cache.h"
#include "relay/tlspolicy/tls_memory.h"

namespace relay::cluster {

struct FleetOptions {
  RedisLinkOptions redis;
  std::string key_prefix = "relay:";
  std::string node;         // this node's name (unique in the fleet); default the host name
  uint32_t fleet_size = 1;  // nodes sharing the limits: each one's share when Redis is away
  int64_t sync_ms = 100;    // a round at least this often (the change stream's delay)
  int64_t heartbeat_ms = 1000;
  int64_t lease_ttl_ms = 10000;         // a silent node's leases are freed after this
  int64_t lease_linger_ms = 1000;       // a lease no connection uses goes back after this
  int64_t token_batch_ms = 200;         // tokens fetched at once: this long at the rate
  int64_t token_ttl_ms = 1000;          // fetched tokens not used within this are dropped
  int64_t retry_ms = 20;                // a shard told no asks again after this
  int64_t full_sync_ms = 10000;         // the suspensions hash is read whole this often
  size_t pending_changes_max = 100000;  // changes queued while Redis is away
  size_t changes_stream_max = 1000000;  // entries the change stream keeps (approximately)
  size_t keys_max = 100000;             // lease, rate and warm-up keys tracked
  // This node's egress sources by index: reply rules' board keys name sources by index.
  std::vector<std::string> source_names;
  // Where the node keeps its place in the change stream ("": nowhere, a full read at start).
  std::string cursor_path;
  // Called on the agent thread after changes of other nodes went onto the board, so that the
  // engines act on them now (a lifted suspension's mail goes at once) rather than at their next
  // dispatch.
  std::function<void()> board_changed;
  // This node's load for the status (JSON object members without braces, e.g.
  // "\"queued\":12,\"connections\":3"); called on the agent thread.
  std::function<std::string()> status;
};

// What the agent has done, for the metrics.
struct FleetStats {
  std::atomic<bool> shared{false};  // Redis answers: limits are the fleet's, not the share
  std::atomic<uint64_t> round_trips{0};
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> limit_commands{0};  // lease, token and warm-up requests among them
  std::atomic<uint64_t> redis_failures{0};  // rounds that failed (each starts the fallback)
  std::atomic<uint64_t> leases_granted{0};
  std::atomic<uint64_t> tokens_granted{0};
  std::atomic<uint64_t> changes_sent{0};
  std::atomic<uint64_t> changes_applied{0};
  std::atomic<uint64_t> changes_dropped{0};  // queued beyond pending_changes_max
};

// What a change is about: its hash and its type in the stream.
enum class StateKind : char {
  kSuspension = 's',   // hash "suspensions"
  kSuppression = 'p',  // "suppression"
  kTlsMemory = 'm',    // "tls-memory"
  kStsPolicy = 't',    // "mta-sts"
};
const char* StateHash(StateKind kind);

// The commands that record one change in the fleet: the hash entry (HSET, or HDEL when
// `removed`) and the stream entry that tells the other nodes. `writer` names who made it: a node
// does not apply its own changes again.
void AppendChangeCommands(std::string_view key_prefix, std::string_view writer, StateKind kind,
                          bool removed, const std::string& key, const std::string& value,
                          size_t stream_max, std::vector<RedisLink::Command>* out);

// Suppression changes made outside relayd (relayctl suppress on any node) sent to the fleet, in
// pipelined batches of kBatch, so that every node's copy gets them. One thread.
class SuppressionPublisher {
 public:
  static constexpr size_t kBatch = 1000;
  explicit SuppressionPublisher(const FleetOptions& options);
  void Add(const feedback::SuppressionEntry& e, bool removed);
  // Sends what is left; the first error of any batch (later batches are not tried after one).
  absl::Status Finish();
  uint64_t sent() const { return sent_; }

 private:
  void Send();
  const FleetOptions options_;
  RedisLink link_;
  std::string writer_;
  std::vector<RedisLink::Command> commands_;
  size_t changes_ = 0;  // in commands_
  uint64_t sent_ = 0;
  absl::Status status_;
};

class Fleet : public delivery::SharedLimits {
 public:
  // What the fleet shares besides the limits (any may be null: not shared).
  struct State {
    delivery::Suspensions* board = nullptr;
    feedback::SuppressionList* suppression = nullptr;
    tlspolicy::TlsMemory* tls_memory = nullptr;
    tlspolicy::StsCache* sts_cache = nullptr;
  };
  // Hooks the state's stores and starts nothing yet.
  static absl::StatusOr<std::unique_ptr<Fleet>> Create(FleetOptions options, State state);
  ~Fleet() override;

  // Starts the agent thread.
  void Start();
  // Ends it after a last round that sends queued changes and gives back this node's leases.
  void Stop();

  // SharedLimits.
  bool TryLease(std::string_view key, uint32_t limit) override;
  void ReturnLease(std::string_view key) override;
  bool ReleaseOverShare(std::string_view key, uint32_t limit) override;
  bool TryToken(std::string_view key, uint32_t per_second, uint32_t burst) override;
  void ReturnToken(std::string_view key) override;
  bool TakeWarmup(std::string_view key, int64_t allowance, int64_t day) override;
  void GiveBackWarmup(std::string_view key, int64_t day) override;
  int64_t retry_ms() const override { return options_.retry_ms; }

  const FleetStats& stats() const { return stats_; }
  const FleetOptions& options() const { return options_; }
  const std::string& node_id() const { return node_id_; }

  // The nodes Redis knows, one line each, for `relayctl cluster status` (its own connection).
  absl::StatusOr<std::string> Status() const;

 private:
  Fleet(FleetOptions options, State state);

  struct Lease {
    uint32_t limit = 0;
    uint32_t held = 0;    // granted by Redis (shared mode)
    uint32_t in_use = 0;  // connections open
    uint32_t wanted = 0;  // shards told no since the last request
    int64_t surplus_since_ms = -1;
    int64_t next_ask_ms = 0;
    int64_t starved_ms = 0;  // the wait after a request that got too few
    // The script's "~starved" count when last read (-1: never), and until when other nodes are
    // short of this pair's leases (this node then keeps to its share).
    int64_t starved_seen = -1;
    int64_t own_starved = 0;  // this node's refusals since that read (the script counts them too)
    int64_t contended_until_ms = 0;
  };
  struct Tokens {
    uint32_t per_second = 0;
    uint32_t burst = 0;
    uint32_t tokens = 0;  // fetched, not yet used
    int64_t fetched_ms = 0;
    uint32_t wanted = 0;
    int64_t next_ask_ms = 0;
    std::unique_ptr<delivery::TokenBucket> local;  // the share, while Redis is away
  };
  struct Warmup {
    int64_t day = -1;
    int64_t allowance = 0;
    int64_t fleet_count = 0;  // the fleet's count at the last sync
    int64_t unsynced = 0;     // this node's messages since (GiveBack lowers it)
    int64_t synced_ms = 0;
  };
  // A change made here, for the other nodes.
  struct Change {
    StateKind kind = StateKind::kSuspension;
    bool removed = false;
    std::string key;    // the fleet's key
    std::string value;  // the entry's text (not for removals)
  };

  void Run();
  // mu_ held: a map at keys_max drops its entries that hold nothing.
  void ForgetIdleKeys();
  // One round trip; false when Redis did not answer.
  bool Round(int64_t now_ms);
  void Fallback(const absl::Status& why);
  void OnBoardChange(const delivery::Suspension& s, bool removed);
  void OnSuppressionChange(const feedback::SuppressionEntry& e, bool removed);
  // Applies the entries of a hash read whole (HSCAN) or of the stream: the suppressions of one
  // batch in one transaction.
  void ApplyEntries(StateKind kind, const std::vector<std::pair<std::string, std::string>>& kv);
  void Queue(Change change);
  // The fleet's key of a board key and back ("" when this node has no such source).
  std::string FleetKey(std::string_view local_key) const;
  std::string LocalKey(std::string_view fleet_key) const;
  // Applies one change of another node; true when the board changed.
  bool ApplyChange(std::string_view type, std::string_view key, std::string_view value);
  // True when the board changed.
  bool ReconcileSuspensions(const RedisReply& all);
  void SaveCursor();
  std::string K(std::string_view suffix) const { return options_.key_prefix + std::string(suffix); }
  static int64_t NowMs();
  static int64_t NowUnixMs();

  const FleetOptions options_;
  delivery::Suspensions* const board_;
  feedback::SuppressionList* const suppression_;
  tlspolicy::TlsMemory* const tls_memory_;
  tlspolicy::StsCache* const sts_cache_;
  std::string node_id_;  // "<node>/<incarnation>"
  absl::flat_hash_map<std::string, int> source_index_;
  FleetStats stats_;
  std::atomic<bool> shared_{false};

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;                             // guarded by mu_
  bool kicked_ = false;                               // guarded by mu_: a shard ran short
  absl::flat_hash_map<std::string, Lease> leases_;    // guarded by mu_
  int64_t settle_until_ms_ = 0;                       // guarded by mu_
  absl::flat_hash_map<std::string, Tokens> tokens_;   // guarded by mu_
  absl::flat_hash_map<std::string, Warmup> warmups_;  // guarded by mu_
  std::deque<Change> changes_;                        // guarded by mu_

  // The agent thread's own.
  std::unique_ptr<RedisLink> link_;
  uint64_t link_connections_ = 0;  // the link's count when leases were last re-asserted
  int64_t heartbeat_due_ms_ = 0;
  int64_t polled_ms_ = 0;       // the last round trip
  bool stream_behind_ = false;  // the last read was full: more entries may wait
  int64_t full_sync_due_ms_ = 0;
  int64_t started_unix_ms_ = 0;
  std::string stream_id_ = "";  // where this node is in the change stream; "": not placed yet
  // The hashes still to read whole (HSCAN), the first at scan_cursor_.
  std::deque<StateKind> full_read_;
  std::string scan_cursor_ = "0";
  std::string saved_stream_id_;
  bool board_changed_ = false;   // in this round, by other nodes' changes
  bool announced_down_ = false;  // Fallback logged since Redis last answered
  int64_t cursor_saved_ms_ = 0;
  std::thread thread_;
};

}  // namespace relay::cluster
