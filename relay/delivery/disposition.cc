#include "relay/delivery/disposition.h"

#include "absl/strings/str_cat.h"
#include "relay/smtp/command.h"

namespace relay::delivery {

Disposition Dispose(const RecipientOutcome& outcome, const DispositionFacts& facts,
                    const RetryPolicy& retry, size_t reply_bytes_max) {
  Disposition d;
  d.effective = outcome;
  d.attempt = facts.attempts_before + (facts.not_an_attempt ? 0 : 1);
  d.possible_duplicate = facts.earlier_unknown;
  d.category = facts.category;
  // RFC 3461 §4.1: without NOTIFY the relay reports failures and delays; with it, what it names.
  const bool notify_given = facts.notify != 0;
  const bool report_failure = !notify_given || (facts.notify & smtp::kNotifyFailure) != 0;
  const bool report_delay = !notify_given || (facts.notify & smtp::kNotifyDelay) != 0;
  if (outcome.kind == OutcomeKind::kDelivered) {
    d.record = queue::RecordType::kDelivered;
    if ((facts.notify & smtp::kNotifySuccess) != 0 && !facts.notify_passed_on &&
        !facts.null_sender) {
      d.dsn = DsnIntent::kRelayed;
    }
    return d;
  }
  if (outcome.kind == OutcomeKind::kTransient && facts.retry_at_unix_ms >= 0) {
    d.record = queue::RecordType::kDeferred;
    d.next_attempt_unix_ms = facts.retry_at_unix_ms;
    // RFC 3464 §2.3.3 "delayed": once per message, never to the null sender.
    if (!facts.null_sender && !facts.delay_notified && report_delay &&
        DelayWarningDue(retry, facts.created_unix_ms, facts.now_unix_ms)) {
      d.dsn = DsnIntent::kDelayWarning;
    }
    if (facts.earlier_unknown || facts.this_unknown) {
      d.reopen_marker =
          facts.this_unknown ? "no reply after the body" : "outcome of an earlier attempt unknown";
    }
    return d;
  }
  if (outcome.kind == OutcomeKind::kTransient) {
    d.effective =
        RecipientOutcome::Permanent(absl::StrCat("gave up after ", d.attempt,
                                                 " attempts; last reply: ", outcome.ToString()),
                                    outcome.code, outcome.enhanced)
            .FittedTo(reply_bytes_max);
    d.category = feedback::BounceCategory::kMessageExpired;
  }
  d.record = queue::RecordType::kBounced;
  d.dsn = facts.null_sender ? DsnIntent::kDropped
          : report_failure  ? DsnIntent::kFailure
                            : DsnIntent::kNone;  // NOTIFY=NEVER, or without FAILURE
  return d;
}

}  // namespace relay::delivery
