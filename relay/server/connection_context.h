// What an inbound SMTP connection uses of its shard, handed to it at construction instead of a
// pointer back into the Shard: the shared, read-only state; the shard's reactor, receive
// buffers, spool and signer; port 25's checkers; the shard's counters; and the two things it asks
// of its owner (ConnectionHost). The shard outlives its connections and everything named here.
// Shard thread only, except SharedState's members, which are immutable or synchronised.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "dkim/signer.h"
#include "dns/spf.h"
#include "queue/spool.h"
#include "relay/delivery/shared_limits.h"
#include "relay/delivery/suspensions.h"
#include "relay/delivery/warmup.h"
#include "relay/feedback/returned_mail.h"
#include "relay/feedback/suppression_list.h"
#include "relay/io/buffer_ring.h"
#include "relay/io/reactor.h"
#include "relay/metrics/relay_metrics.h"
#include "relay/receive/dkim_check.h"
#include "relay/receive/dmarc_check.h"
#include "relay/receive/receive_state.h"
#include "relay/server/authenticator.h"
#include "relay/server/config.h"
#include "relay/server/message_preparer.h"
#include "relay/server/signing_pool.h"
#include "relay/tls/tls_context.h"
#include "relay/tlspolicy/sts_cache.h"
#include "relay/tlspolicy/tls_memory.h"
#include "relay/tlspolicy/tls_report.h"

namespace relay::events {
class EventSinks;
}  // namespace relay::events

namespace relay::server {

class SmtpConnection;

// What the shards share: immutable or internally synchronised.
struct SharedState {
  const Config* config = nullptr;
  tls::ServerTlsContextHolder* tls = nullptr;  // null when no certificate is configured
  Authenticator* authenticator = nullptr;
  const dkim::SignerConfig* dkim = nullptr;    // null: no signing
  const metrics::RelayMetrics* metrics = nullptr;  // null: nothing is counted
  SigningPool* signing_pool = nullptr;         // null: each shard signs inline
  receive::ReceiveStateHolder* receive = nullptr;  // null: no port 25 ([receive])
  feedback::SuppressionList* suppression = nullptr;  // null: [suppression] enabled = false
  events::EventSinks* events = nullptr;              // null: no event sinks ([events])
  const feedback::Verp* verp = nullptr;              // null: no VERP domains ([feedback])
  const feedback::Unsubscribe* unsubscribe = nullptr;  // null: no [unsubscribe]
  delivery::Suspensions* suspensions = nullptr;  // shared by the shards' delivery engines
  delivery::WarmupLedger* warmup = nullptr;      // likewise
  delivery::SharedLimits* shared_limits = nullptr;  // a fleet's ([cluster]); null: none
  tlspolicy::TlsMemory* tls_memory = nullptr;    // likewise; null: [tls_policy] memory off
  tlspolicy::StsCache* sts_cache = nullptr;      // likewise; null: [tls_policy] mta_sts off
  tlspolicy::TlsReportLedger* tls_reports = nullptr;  // likewise; null: [tls_policy] reports off
};

struct ShardCounters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> messages_accepted{0};
  std::atomic<uint64_t> messages_refused{0};
  std::atomic<uint64_t> syncs{0};
  // Health, published by the shard thread for the metrics endpoint's thread: the monotonic time
  // of the last loop turn (an idle shard turns at least every second, for its maintenance) and
  // the errno of the last failed group commit (0 when the last one succeeded).
  std::atomic<int64_t> heartbeat_ms{0};
  std::atomic<int> sync_errno{0};
  std::atomic<bool> running{false};
};

// What a connection asks of the shard that owns it.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  // The shard holds [limits] stress_connections_percent of its share of connections_max: its
  // connections' greeting, idle and command limits shrink (SmtpConnection::RearmTimer).
  virtual bool UnderStress() const = 0;
  // The connection has closed its socket; the host retires it once its operations are done.
  virtual void OnConnectionClosed(SmtpConnection* connection) = 0;
  // A message is durably queued (the group commit covering it completed): it is counted, logged
  // and handed to delivery, whether or not its client stays for the 250. `id_text` is the queue
  // id as the client is told it; `size_bytes` counts the headers this hop added.
  // The message is about to be appended to the spool (`headers` are the ones this hop adds):
  // its "received" events go to the event journal first, written before its record is, so that
  // no crash leaves the message without them (with [events] sync = "with-queue" they are durable
  // in the same batch as the message, before its 250).
  virtual void OnMessageAppending(const queue::Envelope& envelope, const std::string& id_text,
                                  uint64_t size_bytes, std::string_view headers,
                                  std::string_view message) = 0;
  virtual void OnMessageQueued(queue::MessageId id, const std::string& id_text,
                               uint64_t size_bytes) = 0;
  // Recipients taken at RCPT but left out of the message `id_text` ("" when nothing was queued)
  // because they are suppressed: logged and counted.
  virtual void OnRecipientsSuppressed(const std::string& id_text, std::string_view sender,
                                      const std::vector<feedback::SuppressionEntry>& entries) = 0;
  // A message to a bounce domain was read (its suppressions already committed): its bounces
  // and complaints become events, and it is counted.
  virtual void OnReturnedMail(const feedback::ReturnedMail& mail, std::string_view peer_ip) = 0;
};

struct ConnectionContext {
  const SharedState* shared = nullptr;
  io::Reactor* reactor = nullptr;
  io::BufferRing* buffers = nullptr;
  queue::Spool* spool = nullptr;
  MessagePreparer* preparer = nullptr;  // missing header fields and DKIM signatures
  int shard_index = 0;
  ShardCounters* counters = nullptr;
  ConnectionHost* host = nullptr;
  // Port 25's checks, on the shard's resolver; each null when [receive] turns it off.
  dns::SpfEvaluator* spf = nullptr;
  receive::DkimChecker* dkim_checker = nullptr;
  receive::DmarcChecker* dmarc_checker = nullptr;
  // The tenants in force: the config's, or a reload's (Shard::Reconfigure swaps it on this
  // thread).
  const std::shared_ptr<const config::TenantSettings>* tenants = nullptr;
  // The configuration a new connection runs with: the one the relay started with, with a
  // reload's live sections ([limits] among them) once there was one. Each connection keeps the
  // one it started with.
  std::shared_ptr<const Config> live_config;

  const Config& config() const { return *live_config; }
  const metrics::RelayMetrics* metrics() const { return shared->metrics; }
};

}  // namespace relay::server
