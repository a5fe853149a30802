// A shard: one thread, one io_uring reactor, its own listening sockets (SO_REUSEPORT spreads
// connections across shards), its own queue partition (spool/shard-N), DKIM signer copy and
// connection table. Nothing on the per-message path takes a lock.
//
// Lifecycle, driven by the main thread: Start() spawns the thread and returns once the shard
// listens (or failed to); RequestStop(grace) stops accepting, lets sessions finish for the grace
// period, ends the others with 421, waits for the queue's last group commit, and ends the thread;
// Join() waits for that. RequestTlsReloadCheck() is a hint to look at the certificate files.
// Those three may be called from any thread.
//
// Limits are split across shards (DESIGN.md): each shard enforces connections_max / shards and
// connections_per_ip_max / shards (rounded up), so no shard asks another before it accepts. A
// client, for connections_per_ip_max, is an IPv4 address or an IPv6 /64 (client_key.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "dkim/signer.h"
#include "dns/resolver.h"
#include "dns/spf.h"
#include "queue/segment_creator.h"
#include "queue/spool.h"
#include "relay/delivery/delivery_policy.h"
#include "relay/delivery/engine.h"
#include "relay/events/event_journal.h"
#include "relay/io/buffer_ring.h"
#include "relay/io/reactor.h"
#include "relay/metrics/relay_metrics.h"
#include "relay/receive/dkim_check.h"
#include "relay/receive/dmarc_check.h"
#include "relay/receive/receive_state.h"
#include "relay/server/authenticator.h"
#include "relay/server/config.h"
#include "relay/server/connection_context.h"
#include "relay/server/message_preparer.h"
#include "relay/server/signing_pool.h"
#include "relay/server/spool_syncer.h"
#include "relay/tls/tls_context.h"

namespace relay::server {

class SmtpConnection;

class Shard final : private ConnectionHost {
 public:
  Shard(int index, int shard_count, const SharedState& shared);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Starts the thread; returns when the shard listens, or the error that stopped it.
  absl::Status Start();
  void RequestStop();
  void Join();
  void RequestTlsReloadCheck();
  // Any thread: the delivery engine looks at the suspension board at the next loop turn (another
  // node of the fleet changed it).
  void RequestSuspensionSync();
  // Any thread (SIGHUP): reopen the delivery log at the next loop turn (logrotate moved it).
  void RequestLogReopen();
  // What a reload changes in a running shard.
  struct LiveSettings {
    std::shared_ptr<const dkim::Signer> signer;  // null: no signing
    // The running configuration with the file's live sections (Daemon::ApplyLive).
    std::shared_ptr<const Config> config;
    // Apply its egress pools, routes, source weights and warm-up schedules (its sources are the
    // running ones: the caller checked).
    bool egress = false;
  };
  // Main thread (a reload): from the next message on, signs with `live.signer`, and takes the
  // shaping rules and tenants (and with `egress`, the pools) of `live.config`. Returns once the
  // shard's thread has taken them: the engine's error, or one when the shard does not answer.
  absl::Status Reconfigure(LiveSettings live);
  // The ready queues a shard lists at most in its answer to "ready", the most waiting first. The
  // answer's entries (`relayctl queue ready`) are separated by '|', their fields by TAB: site,
  // rule, source, waiting, connections, connections_max, messages_per_second, state (TABs and
  // '|' in it made spaces).
  // 200 entries of about 100 bytes per shard: an answer the socket's buffer takes whole.
  static constexpr size_t kReadyQueuesMax = 200;
  // Any thread: runs an operator request ("retry", "bounce" or "delete" of `id`, "retry-all", or
  // "sync": take the suspension board now, "ready": the shard's ready queues, "shape-site" or
  // "shape-source": its queue shape,
  // delivery::QueueShape::Encode's text with at most kReadyQueuesMax rows) on this shard's thread
  // and returns its one-line answer ("ok: ..." or "error: ...").
  std::string Control(const std::string& verb, const std::string& id);
  // The shard's part of "retry|bounce|delete --tenant ... --domain ..." (its thread).
  absl::StatusOr<std::string> ActOnSelected(const std::string& verb,
                                            const std::string& selector_text);
  // Any thread: an "unsubscribed" event for `address` of `tenant` (`via`: "one-click"), written
  // by this shard's thread at its next loop turn.
  void RecordUnsubscribed(std::string tenant, std::string address, std::string via);

  const ShardCounters& counters() const { return counters_; }
  // Any thread: why this shard is not healthy ("" when it is): not running, no loop turn for
  // kStallMs, the last group commit failed, or its spool directory not writable.
  static constexpr int64_t kStallMs = 10000;
  std::string HealthProblem(int64_t now_ms) const;
  // Ports actually bound (for tests that listen on port 0), in config order.
  std::vector<uint16_t> submission_ports() const { return submission_ports_; }
  std::vector<uint16_t> submissions_ports() const { return submissions_ports_; }
  std::vector<uint16_t> receive_ports() const { return receive_ports_; }

  // The delivery engine, for the control socket's verbs; null when delivery is disabled.
  delivery::DeliveryEngine* delivery() { return delivery_.get(); }
  // The configuration the shard started with (a reload's live sections are in its connections'
  // context, not here).
  const Config& config() const { return *shared_.config; }
  // Any thread: "default" and the named egress pools, a reload's once there was one.
  std::vector<std::string> pool_names() const;
  int index() const { return index_; }

 private:
  struct Listener {
    int fd = -1;
    bool implicit_tls = false;
    bool receive = false;  // port 25
    std::unique_ptr<io::Completion> accept;
  };

  // ConnectionHost
  bool UnderStress() const override;
  void OnConnectionClosed(SmtpConnection* connection) override;
  void OnMessageAppending(const queue::Envelope& envelope, const std::string& id_text,
                          uint64_t size_bytes, std::string_view headers,
                          std::string_view message) override;
  void OnMessageQueued(queue::MessageId id, const std::string& id_text,
                       uint64_t size_bytes) override;
  void OnRecipientsSuppressed(const std::string& id_text, std::string_view sender,
                              const std::vector<feedback::SuppressionEntry>& entries) override;
  void OnReturnedMail(const feedback::ReturnedMail& mail, std::string_view peer_ip) override;

  void ThreadMain(std::promise<absl::Status>* started);
  // Setup, in its steps: everything the shard runs, made on its own thread.
  absl::Status Setup();
  absl::Status OpenSpool();
  absl::Status StartDelivery();
  absl::Status StartReceiveChecks();
  absl::Status OpenListeners();
  void ArmTimers();
  void ArmAccept(Listener* listener);
  void OnAccept(Listener* listener, int result);
  void TurnEnd();
  // Hands the spool's reserve segment requests to segment_creator_; each result comes back
  // through the reactor to Spool::AddReserve.
  void RequestReserveSegments();
  void PublishMetrics();
  void BeginStop();
  void FinishStopIfDone();
  void DrainAndStop();

  const int index_;
  const int shard_count_;
  const SharedState shared_;
  ConnectionContext connection_context_;  // filled by Setup, handed to every connection
  uint32_t connections_max_;              // this shard's share; a reload may change it
  uint32_t connections_per_ip_max_;
  mutable std::mutex pool_names_mu_;
  std::vector<std::string> pool_names_;  // guarded by pool_names_mu_
  std::thread thread_;
  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<queue::Spool> spool_;
  // Creates the spool's reserve segments off this thread; destroyed (joined) before spool_.
  std::unique_ptr<queue::SegmentCreator> segment_creator_;
  std::unique_ptr<MessagePreparer> preparer_;  // holds the DKIM signer
  // The tenants in force (ConnectionContext::tenants): the config's until a reload.
  std::shared_ptr<const config::TenantSettings> tenants_;
  std::unique_ptr<delivery::DeliveryLog> log_;
  // The event journal (null without event sinks), synced with the spool's batches through
  // journal_sync_; both outlive syncer_.
  std::unique_ptr<events::EventJournal> journal_;
  std::unique_ptr<SyncCompanion> journal_sync_;
  std::unique_ptr<delivery::DeliveryPolicy> policy_;
  std::unique_ptr<delivery::DeliveryEngine> delivery_;
  bool delivery_stopped_ = true;
  std::vector<Listener> listeners_;
  std::vector<uint16_t> submission_ports_;
  std::vector<uint16_t> submissions_ports_;
  std::vector<uint16_t> receive_ports_;
  // Port 25's checks: their own resolver channel (the delivery engine's is private to it).
  std::unique_ptr<dns::Resolver> receive_resolver_;
  std::unique_ptr<dns::SpfEvaluator> spf_;
  std::unique_ptr<receive::DkimChecker> dkim_checker_;
  std::unique_ptr<receive::DmarcChecker> dmarc_checker_;
  absl::flat_hash_set<SmtpConnection*> connections_;
  // Open connections per ClientKey (client_key.h): IPv4 address or IPv6 /64.
  absl::flat_hash_map<std::string, uint32_t> connections_per_ip_;
  void OnSynced(const SyncReport& report);
  absl::Status OpenJournal();
  // One event to the delivery log and the event journal.
  void Record(const delivery::DeliveryRecord& line);

  std::unique_ptr<SpoolSyncer> syncer_;  // the group commit (spool_syncer.h)
  std::string spool_directory_;
  bool stopping_ = false;
  bool drain_posted_ = false;  // FinishStopIfDone found nothing left: DrainAndStop is running
  int64_t stop_deadline_ms_ = 0;
  io::Timer stop_timer_;
  io::Timer maintenance_timer_;
  ShardCounters counters_;
};

}  // namespace relay::server
