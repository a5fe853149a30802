// The delivery engine of one shard: from the shard's spool to the recipients' MX hosts.
//
// Two levels, as in KumoMTA: a scheduled queue (messages waiting for their next attempt, ordered
// by due time, one reactor Timer armed at the earliest) feeds ready queues keyed by (egress
// source, site), where a site is the set of MX host names of a domain, so that every domain hosted
// by one provider shares that provider's limits. A due message is split into jobs, one per
// recipient domain; a job's domain is resolved (MX, cached for its TTL), its shaping rule and
// egress source chosen, and the job joins its ready queue. Each ready queue opens connections up
// to its limits; a connection takes jobs from its queue until messages_per_connection_max, then
// quits, and lingers idle for idle_connection_ms for reuse.
//
// Every outcome is recorded in the spool (state records: delivered, deferred until T with the
// attempt count and reply, bounced) before anything else depends on it, and written to the
// delivery log. Before a message's body goes out, an attempt marker is recorded for its
// recipients; a recipient whose marker has no outcome after it (the relay died, or the connection
// was lost after the body and before the reply) may already have a copy, and every later line
// about it says "possible_duplicate" (RFC 1047; delivery_log.h). Permanent failures and expired
// messages produce one DSN per message to the envelope sender (never for a null sender), queued
// as a new message.
//
// A recorded outcome always fits its record: the reply is cut to queue::kReplyBytesMax (code and
// enhanced code kept, the text cut at a UTF-8 boundary and marked). An outcome the spool refuses
// all the same (disk full, I/O error) is kept in memory and appended again with backoff
// (outcome_retry_ms doubling up to outcome_retry_ms_max); until it is recorded its recipient is
// not attempted again, and a bounce's DSN waits for it: a refused append never repeats a delivery
// or a DSN. While unrecorded_outcomes_max outcomes wait, no new delivery starts. Outcomes still
// waiting when the relay stops are lost: their recipients are attempted again after the restart
// (a possible duplicate, never a lost message), and that is logged.
//
// Shard thread only. The spool, resolver and reactor outlive the engine.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "dns/resolver.h"
#include "queue/spool.h"
#include "relay/delivery/delivery_log.h"
#include "relay/delivery/disposition.h"
#include "relay/delivery/dsn.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/outcome.h"
#include "relay/delivery/queue_selector.h"
#include "relay/delivery/queue_shape.h"
#include "relay/delivery/ready_queue.h"
#include "relay/delivery/scheduled_queue.h"
#include "relay/delivery/shaping.h"
#include "relay/delivery/shared_limits.h"
#include "relay/delivery/suspensions.h"
#include "relay/delivery/token_bucket.h"
#include "relay/delivery/warmup.h"
#include "relay/events/event_journal.h"
#include "relay/feedback/suppression_list.h"
#include "relay/feedback/verp.h"
#include "relay/io/buffer_ring.h"
#include "relay/io/reactor.h"
#include "relay/metrics/relay_metrics.h"
#include "relay/smtp/client_reply.h"
#include "relay/tls/tls_context.h"
#include "relay/tlspolicy/https_get.h"
#include "relay/tlspolicy/sts_cache.h"
#include "relay/tlspolicy/sts_resolver.h"
#include "relay/tlspolicy/tls_memory.h"
#include "relay/tlspolicy/tls_report.h"

namespace relay::delivery {

class OutboundConnection;
class DeliveryPolicy;

// A recipient that failed for good, as its DSN reports it.
struct FailedRecipient {
  std::string address;
  RecipientOutcome outcome;
  std::string remote_mta;  // the MX host that gave the reply, "" when none
  int64_t attempt_unix_ms = 0;
  // The address the sender used when `address` is what the relay forwarded it to (an alias's
  // target, queue::RecipientState::original); "" otherwise.
  std::string original;
  feedback::BounceCategory category = feedback::BounceCategory::kOther;
  std::string orcpt;  // the sender's ORCPT for it (RFC 3461 §4.2), "" when none
};

enum class QueueAction { kRetry, kBounce, kDelete };

struct DeliveryOptions {
  std::string hostname;                  // Reporting-MTA of DSNs, default EHLO name
  std::vector<std::string> dns_servers;  // empty: /etc/resolv.conf
  dns::FamilyPreference family = dns::FamilyPreference::kIpv4First;
  uint16_t mx_port = 25;  // tests point it at loopback sinks
  int64_t connect_timeout_ms = 30000;
  int64_t idle_connection_ms = 5000;  // a connection without work waits this long for more
  int64_t message_age_ms_max = int64_t{5} * 24 * 3600 * 1000;
  int64_t source_suspend_ms = 300000;  // after the kernel refused a source address
  bool tls_verify = false;             // verify server certificates (system CA store)
  std::string tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  std::vector<EgressSourceConfig> sources;
  std::vector<EgressPoolConfig> pools;  // named pools (relay/delivery/egress.h)
  PoolRoutes pool_routes;               // which pool a message goes out of
  EgressStrategy strategy = EgressStrategy::kRoundRobin;
  // Today's messages per (source, site) of sources in warm-up, shared by every shard's engine
  // (relay/delivery/warmup.h); null: this engine counts on its own.
  WarmupLedger* warmup = nullptr;
  // The domains that took mail over TLS ([tls_policy] downgrade_memory), shared by every shard's
  // engine (relay/tlspolicy/tls_memory.h); null: no memory.
  tlspolicy::TlsMemory* tls_memory = nullptr;
  // MTA-STS ([tls_policy] mta_sts): the relay's policy cache, shared by every shard's engine
  // (null: no MTA-STS), how this engine discovers policies, and the CA file their HTTPS servers'
  // certificates must lead to ("": the system store).
  tlspolicy::StsCache* sts_cache = nullptr;
  tlspolicy::StsResolverOptions sts;
  std::string sts_ca_file;
  // DANE ([tls_policy] dane, RFC 7672): after a DNSSEC-validated MX answer, each MX host's TLSA
  // records decide its TLS. `trust_ad`: the resolver validates DNSSEC and its AD bit can be
  // believed ([tls_policy] dnssec_trust_ad); without it no answer is validated and DANE never
  // applies.
  bool dane = true;
  bool trust_ad = false;
  // TLS reporting ([tls_policy] reports, RFC 8460): every engine counts the sessions of
  // destinations with a policy (MTA-STS or DANE) in this shared ledger (null: no reports); the
  // engine with send_tls_reports sends the report of each window that ended to the rua of the
  // domain's _smtp._tls record, by mail through its spool or by HTTPS POST (the server verified
  // against tls_report_ca_file, "": the system store). The report names organization and
  // contact.
  tlspolicy::TlsReportLedger* tls_reports = nullptr;
  bool send_tls_reports = false;
  std::string tls_report_organization;
  std::string tls_report_contact;
  std::string tls_report_from;  // the From of report mail
  std::string tls_report_ca_file;
  // Signs a report mail (DKIM, RFC 8460 §5.3) and hands it back, signed or not, on the engine's
  // thread, possibly later; empty: reports go unsigned.
  std::function<void(std::string message, std::function<void(std::string)> done)> sign_report;
  const metrics::RelayMetrics* metrics = nullptr;  // null: nothing is counted
  int metrics_shard = 0;                           // the shard's cells to count in
  // What an MX may make a connection hold (relay/smtp/client_reply.h).
  smtp::ReplyLimits reply_limits;
  // An outcome the spool refused is appended again after this, doubling up to the maximum.
  int64_t outcome_retry_ms = 1000;
  int64_t outcome_retry_ms_max = 60000;
  // Outcomes waiting to be recorded at which no new delivery starts.
  size_t unrecorded_outcomes_max = 1000;
  // A recipient that bounces for good in one of these categories joins the suppression list of
  // its message's tenant (null: no list).
  feedback::SuppressionList* suppression = nullptr;
  std::vector<feedback::BounceCategory> suppress_categories;
  // VERP ([feedback]): a message whose sending domain has a bounce domain goes out one
  // transaction per recipient, each with its own return path (relay/feedback/verp.h). Null: none.
  const feedback::Verp* verp = nullptr;
  // A fleet's limits (relay/delivery/shared_limits.h): with it, every connection takes a lease and
  // every message a token of the rule's whole limits over the fleet, and warm-up allowances count
  // the fleet's messages. Null: the limits are this relay's own.
  SharedLimits* shared_limits = nullptr;
  // Suspensions, backoffs and rebinds shared by every shard's engine (relay/delivery/
  // suspensions.h); null: this engine's suspensions and backoffs are its own.
  Suspensions* suspensions = nullptr;
  int shard = 0;  // named in the suspensions it posts
  // Named tenants' weights ([[tenants]] weight): their share of a busy site against other
  // tenants (relay/delivery/fair_queue.h). Any other tenant weighs 1.
  absl::flat_hash_map<std::string, uint32_t> tenant_weights;
  // A failure DSN for a message sent with RET=FULL returns the whole message up to this size,
  // its header section beyond (Postfix's bounce_size_limit).
  uint64_t dsn_return_bytes_max = 1 << 20;
};

class DeliveryEngine {
 public:
  // `buffers` is the shard's provided-buffer ring, shared with inbound connections.
  DeliveryEngine(io::Reactor* reactor, io::BufferRing* buffers, queue::Spool* spool,
                 DeliveryOptions options, DeliveryPolicy* policy);
  ~DeliveryEngine();
  DeliveryEngine(const DeliveryEngine&) = delete;
  DeliveryEngine& operator=(const DeliveryEngine&) = delete;

  // Creates the resolver and TLS context and schedules every live message found in the spool.
  absl::Status Start();
  // Stops taking new work; open connections finish their current message and quit. `done` runs
  // once no connection is left.
  void Stop(std::function<void()> done);
  // After Stop, when the grace period is over: closes every connection now. A message whose final
  // reply has not arrived is recorded as deferred and tried again after the restart.
  void Abort();
  // A message was durably accepted: deliver it now.
  void OnAccepted(queue::MessageId id);

  // Operator requests (relayctl queue ...), each answered with a line for the operator, or
  // NotFound (no live message with that id), FailedPrecondition (being delivered now, nothing
  // pending, outcomes waiting to be recorded) or the spool's error.
  // Retry: every pending recipient is attempted now, whatever its next attempt time.
  absl::StatusOr<std::string> RetryNow(queue::MessageId id);
  // Retry every live message now.
  absl::StatusOr<std::string> RetryAll();
  // Bounce: every pending recipient fails now ("5.0.0 bounced by the operator"), with a DSN.
  // With `only`, just the pending recipients it selects.
  absl::StatusOr<std::string> BounceNow(queue::MessageId id, const QueueSelector* only = nullptr);
  // Delete: the message is dropped without a DSN.
  absl::StatusOr<std::string> DeleteNow(queue::MessageId id);
  // The same for every message of this shard `selector` selects (relay/delivery/
  // queue_selector.h), at most kSelectedMessagesMax of them: bounce fails only the selected
  // recipients, delete leaves a message that has pending recipients the selector does not name.
  // The answer counts what was done, what was being delivered (ask again) and what remains.
  absl::StatusOr<std::string> ActOnSelected(QueueAction action, const QueueSelector& selector);

  // A reload's tenants' weights ([[tenants]] weight), for the jobs queued from now on.
  void SetTenantWeights(absl::flat_hash_map<std::string, uint32_t> weights) {
    options_.tenant_weights = std::move(weights);
  }
  // A reload's egress pools and their routes, the sources' weights and warm-up schedules and the
  // strategy, from the next job on; the waiting jobs whose source is not
  // in their pool any more move. The sources must be the ones the engine runs with
  // (Egress::SameSourcesAs: ready queues are keyed by source); otherwise nothing changes and the
  // error says so.
  absl::Status Reconfigure(const std::vector<EgressSourceConfig>& sources,
                           const std::vector<EgressPoolConfig>& pools, const PoolRoutes& routes,
                           EgressStrategy strategy);

  // What `relayctl queue ready` shows of one ready queue.
  struct ReadyQueueView {
    std::string site;    // the MX host set
    std::string rule;    // the shaping rule it falls under ("google", "default")
    std::string source;  // the egress source's name
    size_t waiting = 0;  // jobs (a message's recipients at one domain) waiting for a connection
    size_t connections = 0;
    uint32_t connections_max = 0;      // in force (a backoff lowers it): this shard's share
    uint32_t messages_per_second = 0;  // likewise; 0: no rate
    std::string state;                 // "" | "suspended for N s: reason" | "slowed to P% for N s"
  };
  // The ready queues with jobs waiting, connections open, a suspension or a backoff, the most
  // waiting first, at most `max` of them (after taking the shared board's latest entries).
  std::vector<ReadyQueueView> ReadyQueues(size_t max);
  // Takes the shared board's suspensions when it changed since the last look (one atomic load
  // otherwise), and applies them: to the ready queues, to the jobs a hold or rebind names, and to
  // the messages of lifted holds (sent again). Every dispatch looks; the control socket asks
  // after an operator's change, so that a resume needs no other traffic.
  void SyncSuspensions();
  // The recipients in the ready queues and on connections (resolved, waiting or going out), by
  // site or by source, with their bytes and ages: what `relayctl queue summary --by site|source`
  // adds up over the shards. Mail waiting for a retry or an MX answer has neither yet.
  enum class ShapeBy { kSite, kSource };
  QueueShape Shape(ShapeBy by);

  // Where every outcome is logged as a JSON line (optional; the shard owns it).
  void set_log(DeliveryLog* log) { log_ = log; }
  // The shard's event journal (null: no event sinks); every line the log gets, it gets too.
  void set_journal(events::EventJournal* journal) { journal_ = journal; }

  // For connections.
  io::Reactor* reactor() { return reactor_; }
  io::BufferRing* buffers() { return buffers_; }
  DeliveryPolicy* policy() { return policy_; }
  queue::Spool* spool() { return spool_; }
  const DeliveryOptions& options() const { return options_; }
  Egress& egress() { return egress_; }
  tls::ClientTlsContext* client_tls() { return client_tls_.get(); }
  // The next job for a connection of `queue`, honouring the rate limit; null when none now.
  std::unique_ptr<Job> TakeJob(ReadyQueue* queue);
  // Asked by `connection` between messages: this node holds more of its pair's connections than
  // the fleet lets it now (SharedLimits::ReleaseOverShare); its lease is given back and it quits.
  bool QuitForFleet(OutboundConnection* connection);
  // A job counted against its source's warm-up allowance that leaves its queue before its body
  // went out: the count goes back.
  void GiveBackWarmup(const Job& job);
  // Some recipients of `job` were delivered over TLS: its domain joins the downgrade memory (once
  // per job, not per recipient).
  void DeliveredOverTls(const Job& job);
  // Why `job` may not go out over a connection without TLS ("" when it may): its domain is in
  // the downgrade memory.
  std::string TlsRequirement(const Job& job) const;
  // Why `job` may not go out over this connection under its domain's MTA-STS policy in enforce
  // mode ("" when it may): TLS, a certificate valid for `mx_host` (`verify_error` when not), and
  // `mx_host` one of the policy's mx patterns. A policy in testing mode never refuses: a failure
  // is logged.
  std::string StsRequirement(const Job& job, std::string_view mx_host, bool encrypted,
                             bool verified, std::string_view verify_error) const;
  // The TLSA records of `mx_host` when DANE governs its TLS for `job` (null: it does not).
  static const std::vector<tlspolicy::TlsaRecord>* DaneRecords(const Job& job,
                                                               std::string_view mx_host);
  // The job's body is about to go out to `mx_host` (before its first byte is written): records
  // an attempt marker for each of its pending recipients, and notes which of them already had an
  // attempt of unknown outcome.
  void RecordAttemptStart(Job& job, std::string_view mx_host);
  // One recipient's outcome of a job (exactly once per recipient). Fitted to the record first; if
  // the spool refuses it, kept and appended again later (see the header).
  void RecordOutcome(const Job& job, uint32_t recipient, const RecipientOutcome& outcome,
                     const AttemptInfo& attempt);
  // A job is finished (every recipient has an outcome).
  void JobDone(const Job& job);
  // The connection could not reach any candidate; its queue's jobs are deferred.
  void OnSiteUnreachable(ReadyQueue* queue, const RecipientOutcome& outcome);
  // A reply matched a rule that suspends this (source, site).
  void SuspendQueue(ReadyQueue* queue, int64_t until_ms, std::string reason);
  // A reply matched a rule that slows this (source, site) down to `factor` of its limits.
  void BackoffQueue(ReadyQueue* queue, int64_t until_ms, double factor, std::string reason);
  void OnConnectionClosed(OutboundConnection* connection);

  // Counters.
  struct Stats {
    uint64_t delivered = 0;
    uint64_t deferred = 0;
    uint64_t bounced = 0;
    uint64_t dsn_queued = 0;
    uint64_t connections_opened = 0;
    // Outcomes of recipients with an earlier attempt of unknown outcome (possible_duplicate).
    uint64_t possible_duplicates = 0;
  };
  const Stats& stats() const { return stats_; }
  // Null before Start().
  const dns::Resolver* resolver() const { return resolver_.get(); }
  // Outcomes the spool refused, waiting to be appended again.
  size_t unrecorded_outcomes() const { return unrecorded_.size(); }
  // An outbound TLS handshake completed (`ok`) or failed.
  void CountTlsHandshake(bool ok) const;
  // Sets this shard's per-site gauges (ready messages, suspended queues) from its ready queues:
  // O(ready queues), for a periodic timer rather than every loop turn.
  void PublishSiteMetrics();
  // In a fleet, once a second: the idle connections of pairs this node holds more of than the
  // fleet lets it now (other nodes are short, or Redis is away) quit, giving their leases back.
  void QuitFleetSurplus();
  size_t scheduled() const { return scheduled_.size(); }

 private:
  void Schedule(queue::MessageId id, int64_t due_unix_ms);
  void ArmScheduleTimer();
  void OnScheduleTimer();
  // `force`: every pending recipient, not only those due now.
  void Dispatch(queue::MessageId id, bool force = false);
  // `job` as it goes into its ready queue: one job per recipient with its own return path when
  // the sender's domain has VERP ([feedback]); jobs_out_ counts the parts.
  std::vector<Job> SplitForVerp(Job job);
  // Suspends `queue` as another shard or the operator did, unless it already is for as long.
  void ApplySharedSuspension(ReadyQueue* queue, const Suspension& s);
  // Slows `queue` down as a backoff entry says, unless it already is.
  void ApplySharedBackoff(ReadyQueue* queue, const Suspension& s);
  // The board's entry for `queue` (its own, or its site's from every source), the later ending;
  // null when none.
  const Suspension* SharedSuspensionFor(const ReadyQueue& queue) const;
  // Far enough to mean "until resumed" on the monotonic clock (about 285,000 years): what an end
  // beyond it is cut to.
  static constexpr int64_t kSuspensionForeverMs = int64_t{1} << 53;
  void OnMx(Job job, const dns::MxResult& result);
  // After a validated MX answer: the TLSA records of its validated hosts, then Route.
  void LookupDane(Job job, const dns::MxResult& result);
  // The hosts to try under the domain's DANE and MTA-STS policies, then Enqueue. `refused`: MX
  // hosts DANE rules out for now (host, why).
  void Route(Job job, const dns::MxResult& result,
             const std::vector<std::pair<std::string, std::string>>& refused);
  // TLS reports: the windows that ended, each domain's _smtp._tls record, then the report to
  // each of its rua.
  void SendDueTlsReports();
  void SendTlsReport(tlspolicy::DomainReport report, const std::vector<std::string>& rua);
  void PostTlsReport(const std::string& url, const std::string& domain, std::string gzipped);
  void QueueTlsReport(const std::string& to, const std::string& what, std::string message);
  // Counts a DANE failure that kept `host` out of `job`'s MX set (RFC 8460 §4.3.2).
  void ReportDaneFailure(const Job& job, const std::string& host, tlspolicy::TlsFailure failure,
                         std::string why);
  // Keeps `handle` until its callback ran (the handle is dropped on the next turn).
  dns::QueryHandle* TrackLookup();
  void ForgetLookup(dns::QueryHandle* handle);
  // The job's domain's MX lookup (after its MTA-STS policy, when discovery is on).
  void ResolveMxFor(Job job);
  // `job` joins the ready queue of `site` from a source of its pool (PoolFor) that is usable,
  // not held by the operator and within its warm-up allowance; `candidates` carry the port.
  void Enqueue(Job job, const std::string& site, const ShapingRule& limits,
               const std::vector<dns::Candidate>& candidates);
  // Enqueue for one transaction (a job, or one of its VERP parts).
  void EnqueueOne(Job job, const std::string& site, const ShapingRule& limits,
                  const std::vector<dns::Candidate>& candidates);
  // The pool the configuration routes a job's message to (DeliveryOptions::pool_routes).
  int ConfiguredPool(const Job& job) const;
  // The job's pool: an operator's rebind of its campaign, tenant, domain or site (`site`, or the
  // shaping rule `rule`), else ConfiguredPool.
  int PoolFor(const Job& job, std::string_view site, std::string_view rule) const;
  // The operator's suspension of the job's domain, tenant or campaign; null when none.
  const Suspension* HoldFor(const Job& job) const;
  // The operator's suspension of egress source `source` (by name or group); null when none.
  const Suspension* SourceHold(int source) const;
  // After the board or the pools changed: the jobs waiting in ready queues that a hold now names
  // are deferred, and those whose source is held or no longer in their pool (a rebind, a reload)
  // join another queue.
  void SortWaitingJobs();
  // `routes` with the indices of `egress`'s pools; an error names an unknown pool.
  struct PoolIndexes {
    absl::flat_hash_map<std::string, int> campaigns;
    absl::flat_hash_map<std::string, int> domains;
    absl::flat_hash_map<std::string, int> tenants;
  };
  static absl::StatusOr<PoolIndexes> IndexPoolRoutes(const PoolRoutes& routes,
                                                     const Egress& egress);
  // The monotonic time (reactor ms) of a wall-clock time: suspensions and backoffs are kept in
  // wall-clock time (the same in every shard and after a restart), queues on the monotonic clock.
  int64_t MonotonicOf(int64_t unix_ms) const;
  void Pump(ReadyQueue* queue);
  // The fleet's connections_max for the pair, scaled by its backoff.
  uint32_t FleetConnectionsMax(const ReadyQueue& queue) const;

  // Arms the queue's pump timer for `wait_ms` from now unless it is armed or the wait is never.
  void PumpLater(ReadyQueue* queue, int64_t wait_ms);
  // Records the outcome for every recipient of `job` and finishes it.
  void FailJob(const Job& job, const RecipientOutcome& outcome);
  // FailJob with `outcome` marked held by `hold` (RecipientOutcome::held: not an attempt, due when
  // the hold ends); the message is dispatched again as soon as the hold is lifted.
  void HoldJob(const Job& job, const Suspension& hold, RecipientOutcome outcome);
  // Every job waiting in `queue`, held by `hold` with the text `why`.
  void HoldWaitingJobs(ReadyQueue* queue, const Suspension& hold, const std::string& why);
  // After a look at the board: the recipients of holds no longer on it are due at once (released_,
  // through the schedule).
  void ReleaseLiftedHolds();
  // An MX answer sent `domain`'s mail to `site`, under shaping rule `rule` (QueueSelector::site).
  void RememberSite(const std::string& domain, const std::string& site, const std::string& rule);

  // Queues the failure DSN and then the delay DSN collected for `id` in this round, if any.
  void MaybeSendDsn(queue::MessageId id);
  void CountRecipient(const Job& job, const queue::MessageInfo& info,
                      metrics::RecipientResult result) const;
  int64_t NowUnixMs() const;
  // The recipient's outcome waits in unrecorded_: it must not be attempted again.
  bool OutcomeWaiting(queue::MessageId id, uint32_t recipient) const;
  // The earliest next attempt of a pending recipient whose outcome is not waiting; -1: none.
  int64_t NextDueUnixMs(const queue::MessageInfo& info) const;
  // What Dispose needs to know about `recipient` of `info` besides the outcome.
  DispositionFacts FactsOf(const Job& job, uint32_t recipient, const queue::MessageInfo& info,
                           const RecipientOutcome& outcome, const AttemptInfo& attempt) const;
  // A recorded bounce in one of suppress_categories: the recipient joins the list.
  void MaybeSuppress(const queue::MessageInfo& info, const queue::RecipientState& rcpt,
                     const Disposition& d, int64_t now);
  // Adds `failed` to the failure or delay DSN of `info` that `intent` asks for.
  void CollectDsn(DsnIntent intent, const queue::MessageInfo& info, const FailedRecipient& failed);
  // The stats and metrics of a recorded outcome.
  void CountOutcome(const Job& job, const queue::MessageInfo& info, const Disposition& d,
                    const AttemptInfo& attempt);
  // Opens an attempt marker again after a deferral whose copy may be out there (Disposition).
  void ReopenAttemptMarker(queue::MessageId id, uint32_t recipient, int64_t now, const char* why);
  bool Recording() const { return log_ != nullptr || journal_ != nullptr; }
  // One event to the delivery log and the event journal.
  void Record(const DeliveryRecord& line);
  // The delivery log's line for a recorded outcome.
  void LogOutcome(const Job& job, const queue::MessageInfo& info, const queue::RecipientState& rcpt,
                  const Disposition& d, const AttemptInfo& attempt, int64_t now);
  // Keeps an outcome the spool refused, for OnRecordTimer to append again.
  struct UnrecordedOutcome;
  void KeepUnrecorded(UnrecordedOutcome entry, const absl::Status& why);
  void ArmRecordTimer();
  void OnRecordTimer();

  io::Reactor* reactor_;
  io::BufferRing* buffers_;
  queue::Spool* spool_;
  DeliveryOptions options_;
  DeliveryPolicy* policy_;
  Egress egress_;
  std::unique_ptr<dns::Resolver> resolver_;
  // MTA-STS discovery (with options_.sts_cache), and the context its fetches verify with.
  std::unique_ptr<tls::ClientTlsContext> sts_tls_;
  std::unique_ptr<tlspolicy::StsResolver> sts_;
  // TLS reports (options_.send_tls_reports): the timer that looks for ended windows, the context
  // report POSTs verify with, and the POSTs in flight (bounded).
  static constexpr int64_t kTlsReportCheckMs = 1000;
  static constexpr size_t kTlsReportPostsMax = 64;
  static constexpr size_t kTlsReportsPerTick = 50;
  // Reports taken from the ledger and not yet looked at, at most kTlsReportsDueMax.
  static constexpr size_t kTlsReportsDueMax = 100000;
  std::deque<tlspolicy::DomainReport> reports_due_;
  uint64_t reports_dropped_ = 0;
  io::Timer tls_report_timer_;
  // Cleared by ~DeliveryEngine: a report signed after it is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<tls::ClientTlsContext> report_tls_;
  std::vector<std::unique_ptr<tlspolicy::HttpsGet>> report_posts_;
  // Domains whose testing-mode MTA-STS failure was logged lately (reactor ms).
  static constexpr int64_t kStsTestingLogMs = 600000;
  static constexpr size_t kStsTestingLogDomainsMax = 10000;
  mutable absl::flat_hash_map<std::string, int64_t> sts_testing_logged_;
  std::unique_ptr<tls::ClientTlsContext> client_tls_;
  DeliveryLog* log_ = nullptr;
  events::EventJournal* journal_ = nullptr;
  bool stopping_ = false;
  std::function<void()> stopped_;

  ScheduledQueue scheduled_;
  io::Timer schedule_timer_;
  // Messages with jobs out (resolving or in a ready queue or a connection): how many.
  absl::flat_hash_map<queue::MessageId, int> jobs_out_;
  // What a message's DSN needs, captured at its first bounce of a round: the message may become
  // final (and leave the spool's index) with that very bounce.
  struct PendingDsn {
    std::string sender;
    int64_t arrival_unix_ms = 0;
    std::string headers;  // the original header section, for text/rfc822-headers
    std::string tenant;   // the message's (queue::TenantOf)
    std::string campaign;
    std::string envid;         // the sender's ENVID (RFC 3461 §4.4)
    bool return_full = false;  // `headers` holds the whole message (RET=FULL)
    // The message asked for REQUIRETLS: its report returns the header section only and goes out
    // under REQUIRETLS too (RFC 8689 §5).
    bool require_tls = false;
    std::vector<FailedRecipient> failed;
  };
  absl::flat_hash_map<queue::MessageId, PendingDsn> bounced_;
  // Recipients deferred past [retry] delay_warning_s of a message not yet warned about: one
  // "delayed" DSN per message, ever (the spool records kDelayNotified).
  absl::flat_hash_map<queue::MessageId, PendingDsn> delayed_;
  // Recipients delivered with NOTIFY=SUCCESS to a server without DSN: one "relayed" DSN.
  absl::flat_hash_map<queue::MessageId, PendingDsn> relayed_;
  void SendDsn(queue::MessageId id, DsnKind kind, PendingDsn pending);
  // A recipient joins the message's failure (bounced_) or delay (delayed_) DSN of this round;
  // DropFromDsn takes the last one out again.
  void AddToDsn(absl::flat_hash_map<queue::MessageId, PendingDsn>* dsns,
                const queue::MessageInfo& info, FailedRecipient failed);
  void DropFromDsn(absl::flat_hash_map<queue::MessageId, PendingDsn>* dsns, queue::MessageId id);
  uint64_t suspensions_seen_ = 0;  // the board's generation last taken
  // When the first entry taken then ends (reactor ms): the board is looked at again from then on.
  int64_t board_next_end_ms_ = std::numeric_limits<int64_t>::max();
  absl::flat_hash_map<std::string, Suspension> shared_suspensions_;  // by key
  // What kinds of entries shared_suspensions_ holds: the hot path looks further only when some do.
  bool job_holds_ = false;     // domain:, tenant:, campaign:
  bool source_holds_ = false;  // source:
  bool rebinds_ = false;       // rebind:
  PoolIndexes pool_by_;        // DeliveryOptions::pool_routes with pool indices
  // The recipients each hold (its board key) deferred, by message, in this run: released when it
  // is lifted (after a restart, they are due when their deferral said). Bounded by the queue.
  absl::flat_hash_map<std::string, absl::flat_hash_map<queue::MessageId, std::vector<uint32_t>>>
      held_;
  // Recipients of lifted holds, due now whatever their next attempt says, until their message is
  // dispatched.
  absl::flat_hash_map<queue::MessageId, std::vector<uint32_t>> released_;
  bool Released(queue::MessageId id, uint32_t recipient) const;
  // Recipient domain -> (site, shaping rule) of its latest MX answer, for `--site` selectors; at
  // most kDomainSitesMax domains (emptied when full).
  static constexpr size_t kDomainSitesMax = 50000;
  static constexpr size_t kSiteBytesMax = 1024;
  absl::flat_hash_map<std::string, std::pair<std::string, std::string>> domain_sites_;
  std::unique_ptr<WarmupLedger> own_warmup_;  // when options_.warmup is null
  WarmupLedger* warmup_ = nullptr;
  absl::flat_hash_map<std::string, std::unique_ptr<ReadyQueue>> queues_;
  std::vector<std::unique_ptr<dns::QueryHandle>> lookups_;
  absl::flat_hash_map<OutboundConnection*, std::unique_ptr<OutboundConnection>> connections_;
  Stats stats_;

  struct UnrecordedOutcome {
    queue::StateRecord state;
    bool bounce = false;      // a permanent failure: its DSN goes out once it is recorded
    FailedRecipient failed;   // with bounce: what the DSN reports
    uint32_t tries = 1;       // appends refused so far
    int64_t next_try_ms = 0;  // reactor ms
  };
  std::vector<UnrecordedOutcome> unrecorded_;
  // PublishSiteMetrics' per-site sums, kept to allocate once.
  std::vector<int64_t> site_ready_;
  std::vector<int64_t> site_suspended_;
  // (message, recipient) of every entry of unrecorded_.
  absl::flat_hash_set<std::pair<queue::MessageId, uint32_t>> waiting_;
  io::Timer record_timer_;
};

}  // namespace relay::delivery
