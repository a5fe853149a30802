// What becomes of a recipient after an attempt: the one decision between an outcome and the
// records, counters, log line and DSNs that follow from it. Pure: the engine gathers the facts
// (from the spool and the attempt), calls Dispose, and carries the result out.
//
//   delivered                                   -> kDelivered
//   transient, retry_at_unix_ms >= 0            -> kDeferred until then (+ a delay warning once
//                                                  per message past [retry] delay_warning_s)
//   transient, too old (retry_at_unix_ms < 0)   -> kBounced "gave up after N attempts; last reply",
//                                                  category message-expired
//   permanent                                   -> kBounced
//   kBounced from the null sender               -> no DSN (RFC 3464 §2: never a DSN about a DSN)
//
// Also decided here: whether the recipient may already hold a copy (RFC 1047: an earlier
// attempt's body went out without a reply), and whether a deferral must leave an attempt marker
// open so that the next attempt, after a restart too, says so.
#pragma once

#include <cstdint>

#include "queue/record_format.h"
#include "relay/delivery/outcome.h"
#include "relay/delivery/retry.h"

namespace relay::delivery {

struct DispositionFacts {
  uint32_t attempts_before = 0;  // failed attempts recorded for the recipient
  int64_t created_unix_ms = 0;   // the message's arrival
  int64_t now_unix_ms = 0;
  // For a transient outcome: the next attempt the retry schedule gives, -1 when the message is
  // too old to try again. Ignored otherwise. Drawn by the caller (it holds the jitter's state).
  int64_t retry_at_unix_ms = -1;
  bool null_sender = false;      // MAIL FROM:<>, a DSN itself
  bool delay_notified = false;   // the message already had its "delayed" DSN
  bool earlier_unknown = false;  // an earlier attempt's outcome is unknown (marker open)
  bool this_unknown = false;     // this attempt's body went out and no reply came back
  bool not_an_attempt = false;   // a hold deferred it (RecipientOutcome::held): not counted
  // The outcome's category (DeliveryPolicy::Classify); ignored for a delivery.
  feedback::BounceCategory category = feedback::BounceCategory::kOther;
  // The recipient's NOTIFY (RFC 3461 §4.1, smtp::kNotify* bits; 0: none given: failures and
  // delays are reported, successes not).
  uint8_t notify = 0;
  // The server that took the message offered DSN and was given NOTIFY: it reports the success
  // itself (RFC 3461 §6.2.1); otherwise a NOTIFY=SUCCESS gets our "relayed" DSN (§6.2.3.1).
  bool notify_passed_on = false;
};

enum class DsnIntent {
  kNone,
  kFailure,       // the recipient joins the message's failure DSN
  kDelayWarning,  // the recipient joins the message's "delayed" DSN
  kDropped,       // failed for good, from the null sender: logged, no DSN
  kRelayed,       // delivered with NOTIFY=SUCCESS to a server without DSN: a "relayed" DSN
};

struct Disposition {
  queue::RecordType record = queue::RecordType::kDeferred;  // kDelivered, kDeferred or kBounced
  // What the record, the log line and a failure DSN say: the outcome, or the "gave up" bounce it
  // became. At most `reply_bytes_max` of ToString().
  RecipientOutcome effective;
  uint32_t attempt = 1;  // this attempt's number: attempts_before + 1 (+ 0 when not_an_attempt)
  int64_t next_attempt_unix_ms = 0;  // kDeferred: when; else 0
  DsnIntent dsn = DsnIntent::kNone;
  // Deferred or bounced: the facts' category, or message-expired when the relay gave up.
  feedback::BounceCategory category = feedback::BounceCategory::kOther;
  bool possible_duplicate = false;  // the remote may already hold a copy (log it)
  // kDeferred with a copy possibly out there: the text of the attempt marker to open again;
  // nullptr when none.
  const char* reopen_marker = nullptr;
};

// `outcome` is fitted to `reply_bytes_max` already (RecipientOutcome::FittedTo).
Disposition Dispose(const RecipientOutcome& outcome, const DispositionFacts& facts,
                    const RetryPolicy& retry, size_t reply_bytes_max);

}  // namespace relay::delivery
