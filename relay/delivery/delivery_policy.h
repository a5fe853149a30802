// The decisions delivery takes from configuration: the limits of a site (shaping rules matched by
// recipient domain or MX host suffix, split across shards), when to try again after a transient
// failure (backoff with jitter up to the maximum age), which replies suspend a (source, site), and
// the DSN text for failed recipients.
//
// Built once per shard at start from the config; shard thread only (each shard has its own: the
// retry jitter has its own random state). The shaping rules are shared read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dns/mx.h"
#include "relay/delivery/engine.h"
#include "relay/delivery/outcome.h"
#include "relay/delivery/retry.h"
#include "relay/delivery/shaping.h"
#include "relay/feedback/bounce_classifier.h"

namespace relay::delivery {

class DeliveryPolicy {
 public:
  DeliveryPolicy(std::shared_ptr<const ShapingRules> shaping, RetryPolicy retry,
                 std::shared_ptr<const feedback::BounceClassifier> bounces, uint32_t shard_count,
                 std::string hostname, uint64_t random_seed);

  // A reload's rules, for every lookup from now on.
  void SetShaping(std::shared_ptr<const ShapingRules> shaping) { shaping_ = std::move(shaping); }
  // This shard's share of the rule for `domain` with MX `hosts` (limits split across shards).
  ShapingRule LimitsFor(std::string_view domain, const std::vector<dns::MxHost>& hosts) const;
  // The next attempt after `attempts` failed ones, or -1 when the message is too old to retry.
  int64_t NextAttemptUnixMs(uint32_t attempts, int64_t created_unix_ms, int64_t now_unix_ms);
  // How long a reply suspends the (source, site) it came from; 0 when it does not.
  int64_t SuspendMsForReply(const ShapingRule& rule, const RecipientOutcome& outcome) const;
  // The backoff a reply puts on the (source, site) it came from: a rule's kBackoff, or null.
  const ReplyRule* BackoffForReply(const ShapingRule& rule, const RecipientOutcome& outcome) const;
  // Whether a reply rule says this transient reply is in fact permanent.
  bool BounceForReply(const ShapingRule& rule, const RecipientOutcome& outcome) const;
  // The message a DSN reports on.
  struct DsnSubject {
    std::string_view queue_id;
    std::string_view sender;   // the DSN goes to it, with a null envelope sender
    std::string_view headers;  // its header section
    int64_t arrival_unix_ms = 0;
    std::string_view tenant;  // its tenant and campaign, named in the report when set
    std::string_view campaign;
    std::string_view envid;    // the sender's ENVID (RFC 3461 §4.4)
    bool return_full = false;  // `headers` is the whole message, returned as such (RET=FULL)
  };
  // A DSN (RFC 3464) for `failed` recipients of `subject`. A kDelay DSN reports recipients that
  // are still being retried, until arrival + message_age_s_max.
  absl::StatusOr<std::string> BuildDsn(DsnKind kind, const DsnSubject& subject, int64_t now_unix_ms,
                                       const std::vector<FailedRecipient>& failed) const;
  const RetryPolicy& retry() const { return retry_; }
  // The category of a failure: the relay's own verdict when it made the outcome up, else the
  // bounce rules' on the reply.
  feedback::BounceCategory Classify(const RecipientOutcome& outcome) const;

 private:
  std::shared_ptr<const ShapingRules> shaping_;
  RetryPolicy retry_;
  std::shared_ptr<const feedback::BounceClassifier> bounces_;
  uint32_t shard_count_;
  std::string hostname_;
  std::mt19937_64 random_;
};

}  // namespace relay::delivery
