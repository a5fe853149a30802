// A ready queue: the jobs waiting for a connection to one site (a shaping rule's MX hosts) from
// one egress source, with that pair's limits: open connections, the message and connection
// rates (token buckets), and a suspension after a reply rule or an unreachable site. Jobs leave
// by priority class, then by weighted round robin between tenants (relay/delivery/fair_queue.h),
// so a tenant's backlog delays neither a transactional message nor another tenant. It decides;
// the engine acts (opens connections, arms the pump timer, fails jobs). No clock of its own:
// every call takes the caller's monotonic milliseconds, so tests drive it exactly.
//
// Shard thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dns/mx.h"
#include "queue/record_format.h"
#include "relay/delivery/fair_queue.h"
#include "relay/delivery/shaping.h"
#include "relay/delivery/token_bucket.h"
#include "relay/io/timer_wheel.h"
#include "relay/tlspolicy/sts_cache.h"
#include "relay/tlspolicy/tlsa.h"

namespace relay::delivery {

class OutboundConnection;

// A message's recipients of one domain, travelling through one ready queue.
struct Job {
  queue::MessageId id;
  std::string domain;
  std::string site;                  // set once the MX lookup chose a ready queue
  std::vector<uint32_t> recipients;  // indices into the envelope
  std::string mail_from;             // the return path when not the stored sender: VERP
  std::string campaign;              // its message's campaign, "" when none
  // Its domain's MTA-STS policy in force when it was dispatched (enforce or testing); null: none.
  std::shared_ptr<const tlspolicy::StsCacheEntry> sts;
  // The DANE records of its MX hosts when they have any (for those hosts they decide TLS, not
  // `sts`); null: none.
  std::shared_ptr<const tlspolicy::DanePolicy> dane;
  // Its MX answer was validated with DNSSEC (REQUIRETLS, RFC 8689 §4.2.1).
  bool mx_dnssec = false;
  // RFC 8689: its message asked for REQUIRETLS, or said `TLS-Required: No` (then `sts` and `dane`
  // stay null and the downgrade memory does not hold it back).
  bool require_tls = false;
  bool tls_optional = false;
  uint64_t message_bytes = 0;        // its message's size (queue summary)
  int64_t created_unix_ms = 0;       // when its message was accepted (queue summary)
  // Its message's tenant (queue::TenantOf), class and the tenant's weight: its place in the
  // ready queue (FairQueue).
  std::string tenant;
  queue::Priority priority = queue::Priority::kNormal;
  uint32_t weight = 1;
  int64_t queued_ms = 0;             // when it joined its ready queue (monotonic)
  int metrics_site = -1;             // the shaping rule's metrics label index, -1: none yet
  int source = -1;                   // the egress source index, -1: none yet
  // RecordAttemptStart ran: the body is going out, the remote may accept the message from now on.
  bool body_sent = false;
  // Counted against its source's warm-up allowance (given back if it fails before its body).
  bool warmup_counted = false;
  // Recipients that, when the body went out, already had an attempt of unknown outcome.
  std::vector<uint32_t> unknown_before;
};

class ReadyQueue {
 public:
  ReadyQueue(std::string site, int source, int64_t now_ms);
  ReadyQueue(const ReadyQueue&) = delete;
  ReadyQueue& operator=(const ReadyQueue&) = delete;

  // After each MX lookup for the site: this shard's share of its rule and the hosts to try, in
  // order. A rate bucket is made again only when its rate or burst changed (a lookup must not
  // refill it).
  void Update(const ShapingRule& limits, std::vector<dns::Candidate> candidates, int metrics_site,
              int64_t now_ms);

  // Suspension: no job is taken in until `until_ms` (the engine fails them as deferred).
  void Suspend(int64_t until_ms, std::string reason);
  bool suspended(int64_t now_ms) const { return suspended_until_ms_ > now_ms; }
  // Backoff: until `until_ms`, the rule's message rate, connections and connection rate are
  // scaled by `factor` (0 < factor < 1; at least one connection and one message a second when the
  // rule has a rate); a rule without a message rate gets none. factor 1 (or an until_ms that has
  // passed) lifts it.
  void Backoff(double factor, int64_t until_ms, int64_t now_ms);
  double backoff() const { return backoff_; }  // 1: none
  int64_t backoff_until_ms() const { return backoff_until_ms_; }
  int64_t suspended_until_ms() const { return suspended_until_ms_; }
  const std::string& suspended_reason() const { return suspended_reason_; }

  void Push(Job job) {
    const queue::Priority priority = job.priority;
    const std::string tenant = job.tenant;
    const uint32_t weight = job.weight;
    jobs_.Push(std::move(job), priority, tenant, weight);
  }
  // The next job, when the message rate allows one now; otherwise nullptr, and `*wait_ms` says
  // when to ask again (TokenBucket::kNeverMs: never). nullptr with *wait_ms 0 when empty.
  std::unique_ptr<Job> TakeJob(int64_t now_ms, int64_t* wait_ms);
  // Every waiting job, in the order TakeJob would give them, leaving the queue empty (the site is
  // unreachable or suspended).
  std::vector<Job> TakeAll();
  size_t waiting() const { return jobs_.size(); }
  // Calls f(job) for every waiting job.
  template <typename F>
  void ForEachJob(F f) const {
    jobs_.ForEach(f);
  }
  bool empty() const { return jobs_.empty(); }

  // Whether to open one more connection now, given how many of the open ones wait for work:
  // only while jobs wait, below connections_max, when the open ones cannot take the jobs right
  // away, and when the connection rate has a token (taken when the answer is yes). When the rate
  // is what says no, `*wait_ms` says when to ask again; otherwise it is 0.
  bool MayOpenConnection(size_t idle_connections, int64_t now_ms, int64_t* wait_ms);
  void AddConnection(OutboundConnection* c) { connections_.push_back(c); }
  void RemoveConnection(OutboundConnection* c);
  const std::vector<OutboundConnection*>& connections() const { return connections_; }

  const std::string& site() const { return site_; }
  int source() const { return source_; }
  // Its key in a fleet's shared limits ("<source name>|<site>"), set by the engine.
  const std::string& shared_key() const { return shared_key_; }
  void set_shared_key(std::string key) { shared_key_ = std::move(key); }
  // The shaping rule's share for this shard, as Update gave it.
  const ShapingRule& limits() const { return limits_; }
  // The limits a backoff scales, in force now.
  uint32_t connections_max() const { return in_force_.connections_max; }
  uint32_t messages_per_second() const { return in_force_.messages_per_second; }
  uint32_t connections_per_minute() const { return in_force_.connections_per_minute; }
  const std::vector<dns::Candidate>& candidates() const { return candidates_; }
  int metrics_site() const { return metrics_site_; }
  // Re-pumps the queue when a rate lets the next message or connection go (the engine's).
  io::Timer* pump_timer() { return &pump_timer_; }

 private:
  // in_force_ from limits_ and the backoff; the buckets are made again when their rate changed.
  void ApplyLimits(int64_t now_ms);
  // A backoff whose time is over is lifted.
  void ExpireBackoff(int64_t now_ms);

  std::string site_;
  int source_;
  std::string shared_key_;
  ShapingRule limits_;
  struct InForce {
    uint32_t connections_max = 0;
    uint32_t messages_per_second = 0;
    uint32_t messages_burst = 0;
    uint32_t connections_per_minute = 0;
  };
  InForce in_force_;
  std::vector<dns::Candidate> candidates_;
  int metrics_site_ = -1;
  FairQueue<Job> jobs_;
  std::vector<OutboundConnection*> connections_;
  bool updated_ = false;         // Update ran: limits_ holds a rule, in_force_ its limits
  TokenBucket rate_;             // messages_per_second, with burst
  TokenBucket connection_rate_;  // connections_per_minute
  io::Timer pump_timer_;
  int64_t suspended_until_ms_ = 0;
  std::string suspended_reason_;
  double backoff_ = 1;
  int64_t backoff_until_ms_ = 0;
};

}  // namespace relay::delivery
