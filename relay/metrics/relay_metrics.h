// The relay's metrics: every series relayd exports, registered once at start from the
// configuration, and the handles the shards write through.
//
// Label values are bounded by the configuration and capped: `listener` is a listener kind
// ("submission", "submissions", "receive"), `site` a shaping rule's name ("google", "default";
// "none" for a recipient that failed before a rule was chosen, e.g. its MX lookup), `source` an
// egress source's name (its address, or "default" for the kernel's choice; "none" when no source
// was chosen), `shard` a shard's index. Recipient domains and addresses never become labels. A
// configuration may name many rules (one per customer domain) and an IPv6 prefix many sources:
// the first kSitesMax rule names and kSourcesMax sources get a label of their own, the rest share
// "other". So the recipient families hold at most 3 x (kSitesMax + 2) x (kSourcesMax + 2) series
// (6,732), the per-site ones kSitesMax + 2 each, and the failures by category 2 x (kSitesMax + 2)
// x kBounceCategoryCount (1,224), whatever the configuration.
//
// Built by the main thread before the shards start; immutable afterwards except for the cells,
// which each shard writes for its own index (see registry.h). Render() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "relay/base/clock.h"
#include "relay/feedback/bounce_category.h"
#include "relay/metrics/registry.h"

namespace relay::metrics {

struct RelayMetricsOptions {
  int shards = 1;
  std::vector<std::string> sites;    // shaping rule names
  std::vector<std::string> sources;  // egress source names, in the pool's index order
  std::string version;               // relay_build_info{version=...}
  double start_time_unix_s = 0;      // relay_process_start_time_seconds
  // The spool's directory: the free space of its file system is read (statvfs) at each scrape.
  // Empty: those two series are left out.
  std::string spool_directory;
  const Clock* clock = nullptr;  // for the oldest message's age; null: RealClock
  // Named tenants ([[tenants]] names): relay_tenant_recipients_total{tenant}.
  std::vector<std::string> tenants;
  // Series of parts outside the shards (the event sinks), added as callbacks before the registry
  // freezes; null: none.
  std::function<void(Registry*)> add_series;
};

enum class ListenerKind { kSubmission = 0, kSubmissions = 1, kReceive = 2 };
enum class RecipientResult { kDelivered = 0, kDeferred = 1, kBounced = 2 };
enum class Direction { kInbound = 0, kOutbound = 1 };
enum class AuthOutcome { kSuccess = 0, kFailure = 1, kError = 2 };
// How a delivery used TLS (relay/delivery/outcome.h TlsMode, in the same order).
inline constexpr int kTlsModes = 5;
inline constexpr const char* kTlsModeNames[kTlsModes] = {"none", "opportunistic", "verified",
                                                         "mta-sts", "dane"};
enum class DkimAlgorithm { kRsaSha256 = 0, kEd25519Sha256 = 1 };
// What a message to a bounce domain turned out to be (relay/feedback/returned_mail.h).
enum class FeedbackResult {
  kBounce = 0,       // a returned bounce, matched to its message and recipient
  kComplaint = 1,    // an ARF complaint, matched
  kAutoReply = 2,    // dropped
  kNotReport = 3,    // neither a bounce nor a complaint: dropped
  kUnmatched = 4,    // a report no valid token names (forged, damaged, other secret): dropped
  kUnsubscribe = 5,  // an unsubscribe by mail to the bounce domain, verified
};
inline constexpr int kFeedbackResults = 6;

class RelayMetrics {
 public:
  static constexpr int kListenerKinds = 3;
  // Rule names and egress sources with a label of their own (see the file comment).
  static constexpr int kSitesMax = 32;
  static constexpr int kSourcesMax = 64;
  // Named tenants with a label of their own (the rest share "other"; mail of no named tenant is
  // "none"), and campaigns: the first kCampaignsMax names seen since the start get one each.
  static constexpr int kTenantsMax = 32;
  static constexpr int kCampaignsMax = 32;
  // Bucket bounds in microseconds: fdatasync on this class of machine takes ~0.4 ms, up to tens
  // of ms on a busy disk; RSA-2048 signing ~0.6 ms, Ed25519 ~25 µs.
  static const std::vector<uint64_t>& LatencyBoundsUs();
  // Records per group commit: 1 when idle, hundreds under load.
  static const std::vector<uint64_t>& BatchBounds();

  explicit RelayMetrics(const RelayMetricsOptions& options);
  RelayMetrics(const RelayMetrics&) = delete;
  RelayMetrics& operator=(const RelayMetrics&) = delete;

  std::string Render() const { return registry_.Render(); }
  const Registry& registry() const { return registry_; }
  int shards() const { return registry_.shards(); }

  // The index of a shaping rule's name for Recipient() and site(), -1 ("none") when unknown; for
  // a layered rule "example.com+google" the provider's ("google"); a rule beyond kSitesMax gets
  // the index of "other". Any thread.
  int SiteIndex(std::string_view rule_name) const;
  // One recipient's outcome; `site` from SiteIndex, `source` an egress pool index (-1: none).
  void Recipient(int shard, RecipientResult result, int site, int source) const;
  // The category of a deferral or bounce (`result` kDeferred or kBounced), by site:
  // relay_recipient_failures_total{result, category, site}.
  void Failure(int shard, RecipientResult result, int site,
               feedback::BounceCategory category) const;

  // The label index of a message's named tenant ("" or unknown: "none"), and of its campaign
  // ("": "none"; a new name takes a free label while there is one, else "other"). Any thread.
  int TenantIndex(std::string_view tenant) const;
  int CampaignIndex(std::string_view campaign) const;
  // One recipient's outcome by tenant and by campaign (indices from the two above):
  // relay_tenant_recipients_total{tenant, result}, relay_campaign_recipients_total{campaign,
  // result}.
  void TenantRecipient(int shard, RecipientResult result, int tenant, int campaign) const;

  // Per-site series; `site` from SiteIndex (out of range: "none").
  struct Site {
    Counter delivered_tls;   // recipients delivered over TLS
    Counter suspensions;     // (source, site) ready queues suspended by a reply rule
    Gauge suspended_queues;  // (source, site) ready queues suspended now (set periodically)
    Gauge ready_messages;    // messages waiting in ready queues for a connection (same)
  };
  const Site& site(int site) const;
  // Site indices run from -1 ("none") to site_count() - 2.
  int site_count() const { return site_count_; }

  // The shard's loop turns: a shard whose count stops moving is stalled (an idle shard turns at
  // least once a second).
  const Counter& loop_turns(int shard) const { return loop_turns_[shard]; }
  // created_unix_ms of the oldest message in `shard`'s spool (-1: none), for
  // relay_queue_oldest_message_age_seconds. The shard's thread; a relaxed store.
  void SetOldestMessage(int shard, int64_t created_unix_ms) const {
    oldest_[shard].created_unix_ms.store(created_unix_ms, std::memory_order_relaxed);
  }

  struct Listener {
    Counter connections_accepted;
    Counter connections_refused;
    Gauge connections_open;
    Counter sessions;
  };
  const Listener& listener(ListenerKind kind) const { return listeners_[static_cast<int>(kind)]; }
  const Counter& tls_handshakes(Direction d) const { return tls_handshakes_[static_cast<int>(d)]; }
  const Counter& tls_failures(Direction d) const { return tls_failures_[static_cast<int>(d)]; }
  const Counter& auth(AuthOutcome o) const { return auth_[static_cast<int>(o)]; }
  // Recipients delivered, by how TLS was used (kTlsModeNames).
  const Counter& delivered_by_tls(int mode) const { return delivered_by_tls_[mode]; }
  const Counter& feedback(FeedbackResult r) const { return feedback_[static_cast<int>(r)]; }
  const Counter& dkim_signatures(DkimAlgorithm a) const {
    return dkim_signatures_[static_cast<int>(a)];
  }

  // Shard-owned totals (published by the shard at the end of each loop turn from its modules'
  // own counters) and direct counts.
  Counter messages_received;       // durably queued (250 sent or due)
  Counter message_bytes_received;  // their size as stored, added headers included
  Counter transactions_refused;    // DATA/BDAT answered with a refusal by the relay
  Counter recipients_suppressed;   // taken at RCPT and not queued: on the suppression list
  Counter dkim_refused;            // messages refused because they could not be signed
  Histogram dkim_signing_us;       // per message, all of its signatures
  Gauge queue_messages;
  Gauge queue_bytes;             // bytes of the spool's segment files in use
  Gauge queue_capacity_bytes;    // bytes of segment files messages may fill (spool_bytes_max)
  Gauge queue_reserve_segments;  // pre-written segment files ready for the append path
  Counter queue_segments_created_on_append_path;  // the reserve was empty: a stall
  Counter queue_segment_creation_failures;        // background creations that failed
  Histogram fsync_us;                             // one group commit (every fdatasync of the batch)
  Histogram fsync_batch_records;                  // records made durable by one group commit
  Counter fsync_errors;
  Counter dns_queries;
  Counter dns_cache_hits;
  Counter dns_failures;
  Gauge outbound_connections_open;
  Counter outbound_connections_opened;
  Counter dsn_queued;
  // Outcomes of recipients with an earlier attempt of unknown outcome (the delivery log's
  // "possible_duplicate").
  Counter possible_duplicates;

 private:
  Registry registry_;
  RelayMetricsOptions options_;
  Listener listeners_[kListenerKinds];
  Counter tls_handshakes_[2];
  Counter tls_failures_[2];
  Counter auth_[3];
  Counter delivered_by_tls_[kTlsModes];
  Counter feedback_[kFeedbackResults];
  Counter dkim_signatures_[2];
  void AddTenantSeries(const std::vector<std::string>& named);
  absl::flat_hash_map<std::string, int> site_index_;
  // [result][site + 1][source label]: index 0 is "none".
  std::vector<Counter> recipients_;
  // [result - 1][site + 1][category]: deferred and bounced only.
  std::vector<Counter> failures_;
  std::vector<Site> sites_;  // [site + 1]
  int site_count_ = 0;       // "none" and "other" included
  int source_count_ = 0;     // "none" and "other" included
  int source_other_ = -1;    // the source label of "other", -1 when every source has its own
  absl::flat_hash_map<std::string, int> tenant_index_;  // named tenant -> label index
  int tenant_count_ = 0;                                // labels: "none", names, "other"
  // [result][tenant label], [result][campaign label]: campaign labels are "none", "other", then
  // the learned names.
  std::vector<Counter> tenant_recipients_;
  std::vector<Counter> campaign_recipients_;
  std::unique_ptr<LabelTable> campaigns_;
  std::vector<Counter> loop_turns_;
  // One cache line per shard: each shard stores its own without sharing a line.
  struct alignas(64) Oldest {
    std::atomic<int64_t> created_unix_ms{-1};
  };
  std::unique_ptr<Oldest[]> oldest_;
};

}  // namespace relay::metrics
