// The relay's metrics: every series relayd exports, registered once at start from the
// configuration, and the handles the shards write through.
//
// Label values are bounded by the configuration: `listener` is a listener kind ("submission",
// "submissions"), `site` a shaping rule's name ("google", "default"; "none" for a recipient that
// failed before a rule was chosen, e.g. its MX lookup), `source` an egress source's name (its
// address, or "default" for the kernel's choice; "none" when no source was chosen). Recipient
// domains and addresses never become labels.
//
// Built by the main thread before the shards start; immutable afterwards except for the cells,
// which each shard writes for its own index (see registry.h). Render() from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "relay/metrics/registry.h"

namespace relay::metrics {

struct RelayMetricsOptions {
  int shards = 1;
  std::vector<std::string> sites;    // shaping rule names
  std::vector<std::string> sources;  // egress source names, in the pool's index order
  std::string version;               // relay_build_info{version=...}
  double start_time_unix_s = 0;      // relay_process_start_time_seconds
};

enum class ListenerKind { kSubmission = 0, kSubmissions = 1, kReceive = 2 };
enum class RecipientResult { kDelivered = 0, kDeferred = 1, kBounced = 2 };
enum class Direction { kInbound = 0, kOutbound = 1 };
enum class AuthOutcome { kSuccess = 0, kFailure = 1, kError = 2 };
enum class DkimAlgorithm { kRsaSha256 = 0, kEd25519Sha256 = 1 };

class RelayMetrics {
 public:
  static constexpr int kListenerKinds = 3;
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

  // The index of a shaping rule's name for Recipient(), -1 ("none") when unknown; for a layered
  // rule "example.com+google" the provider's ("google"). Any thread.
  int SiteIndex(std::string_view rule_name) const;
  // One recipient's outcome; `site` from SiteIndex, `source` an egress pool index (-1: none).
  void Recipient(int shard, RecipientResult result, int site, int source) const;

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
  const Counter& dkim_signatures(DkimAlgorithm a) const {
    return dkim_signatures_[static_cast<int>(a)];
  }

  // Shard-owned totals (published by the shard at the end of each loop turn from its modules'
  // own counters) and direct counts.
  Counter messages_received;       // durably queued (250 sent or due)
  Counter message_bytes_received;  // their size as stored, added headers included
  Counter transactions_refused;    // DATA/BDAT answered with a refusal by the relay
  Counter dkim_refused;            // messages refused because they could not be signed
  Histogram dkim_signing_us;       // per message, all of its signatures
  Gauge queue_messages;
  Gauge queue_bytes;              // bytes of the spool's segment files in use
  Gauge queue_reserve_segments;   // pre-written segment files ready for the append path
  Counter queue_segments_created_on_append_path;  // the reserve was empty: a stall
  Counter queue_segment_creation_failures;        // background creations that failed
  Histogram fsync_us;             // one group commit (every fdatasync of the batch)
  Histogram fsync_batch_records;  // records made durable by one group commit
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
  Counter dkim_signatures_[2];
  absl::flat_hash_map<std::string, int> site_index_;
  // [result][site + 1][source + 1]: index 0 is "none".
  std::vector<Counter> recipients_;
  int site_count_ = 0;    // "none" included
  int source_count_ = 0;  // "none" included
};

}  // namespace relay::metrics
