// Dispose as a table: each row an outcome and the facts around it, and what must follow.
#include "relay/delivery/disposition.h"

#include <string>

#include "gtest/gtest.h"
#include "relay/smtp/command.h"

namespace relay::delivery {
namespace {

using queue::RecordType;

constexpr int64_t kHour = 3600 * 1000;
constexpr int64_t kCreated = 1'700'000'000'000;

struct Row {
  const char* name;
  RecipientOutcome outcome;
  DispositionFacts facts;
  RecordType record;
  DsnIntent dsn;
  int64_t next_attempt_unix_ms;
  const char* effective_text;  // a prefix of the effective outcome's ToString()
  const char* reopen_marker;   // nullptr: none
};

DispositionFacts Facts(uint32_t attempts_before, int64_t age_ms, int64_t retry_at) {
  DispositionFacts f;
  f.category = feedback::BounceCategory::kQuota;  // what DeliveryPolicy::Classify said
  f.attempts_before = attempts_before;
  f.created_unix_ms = kCreated;
  f.now_unix_ms = kCreated + age_ms;
  f.retry_at_unix_ms = retry_at;
  return f;
}

template <typename F>
DispositionFacts With(DispositionFacts f, F change) {
  change(f);
  return f;
}

const RecipientOutcome kOk{OutcomeKind::kDelivered, 250, "2.0.0", "ok queued as 1"};
const RecipientOutcome kBusy = RecipientOutcome::Transient("try later", 451, "4.7.1");
const RecipientOutcome kNoUser = RecipientOutcome::Permanent("no such user", 550, "5.1.1");

TEST(DispositionTest, Table) {
  const int64_t retry = kCreated + 2 * kHour;
  const Row rows[] = {
      {"delivered", kOk, Facts(0, 1000, -1), RecordType::kDelivered, DsnIntent::kNone, 0,
       "250 2.0.0 ok", nullptr},
      {"delivered after an unknown attempt", kOk,
       With(Facts(2, kHour, -1), [](auto& f) { f.earlier_unknown = true; }), RecordType::kDelivered,
       DsnIntent::kNone, 0, "250", nullptr},
      {"transient, retried", kBusy, Facts(0, 1000, retry), RecordType::kDeferred, DsnIntent::kNone,
       retry, "451 4.7.1 try later", nullptr},
      {"transient, too old", kBusy, Facts(9, 120 * kHour, -1), RecordType::kBounced,
       DsnIntent::kFailure, 0,
       "451 4.7.1 gave up after 10 attempts; last reply: 451 4.7.1 try later", nullptr},
      {"transient, too old, null sender", kBusy,
       With(Facts(9, 120 * kHour, -1), [](auto& f) { f.null_sender = true; }), RecordType::kBounced,
       DsnIntent::kDropped, 0, "451 4.7.1 gave up after 10", nullptr},
      {"permanent", kNoUser, Facts(0, 1000, retry), RecordType::kBounced, DsnIntent::kFailure, 0,
       "550 5.1.1 no such user", nullptr},
      {"permanent, null sender", kNoUser,
       With(Facts(0, 1000, -1), [](auto& f) { f.null_sender = true; }), RecordType::kBounced,
       DsnIntent::kDropped, 0, "550 5.1.1", nullptr},
      {"transient past delay_warning_s", kBusy, Facts(3, 5 * kHour, retry), RecordType::kDeferred,
       DsnIntent::kDelayWarning, retry, "451", nullptr},
      {"transient past delay_warning_s, already warned", kBusy,
       With(Facts(3, 5 * kHour, retry), [](auto& f) { f.delay_notified = true; }),
       RecordType::kDeferred, DsnIntent::kNone, retry, "451", nullptr},
      {"transient past delay_warning_s, null sender", kBusy,
       With(Facts(3, 5 * kHour, retry), [](auto& f) { f.null_sender = true; }),
       RecordType::kDeferred, DsnIntent::kNone, retry, "451", nullptr},
      {"transient before delay_warning_s", kBusy, Facts(1, 3 * kHour, retry), RecordType::kDeferred,
       DsnIntent::kNone, retry, "451", nullptr},
      {"deferred, no reply after the body", RecipientOutcome::Transient("timeout"),
       With(Facts(0, 1000, retry), [](auto& f) { f.this_unknown = true; }), RecordType::kDeferred,
       DsnIntent::kNone, retry, "timeout", "no reply after the body"},
      {"deferred, an earlier attempt unknown", kBusy,
       With(Facts(1, 1000, retry), [](auto& f) { f.earlier_unknown = true; }),
       RecordType::kDeferred, DsnIntent::kNone, retry, "451",
       "outcome of an earlier attempt unknown"},
      {"bounced, an earlier attempt unknown: no marker", kNoUser,
       With(Facts(1, 1000, retry), [](auto& f) { f.earlier_unknown = true; }), RecordType::kBounced,
       DsnIntent::kFailure, 0, "550", nullptr},
      // RFC 3461 §4.1: NOTIFY says which DSNs the sender wants.
      {"permanent, NOTIFY=NEVER", kNoUser,
       With(Facts(0, 1000, retry), [](auto& f) { f.notify = smtp::kNotifyNever; }),
       RecordType::kBounced, DsnIntent::kNone, 0, "550", nullptr},
      {"permanent, NOTIFY=DELAY only", kNoUser,
       With(Facts(0, 1000, retry), [](auto& f) { f.notify = smtp::kNotifyDelay; }),
       RecordType::kBounced, DsnIntent::kNone, 0, "550", nullptr},
      {"permanent, NOTIFY=FAILURE", kNoUser,
       With(Facts(0, 1000, retry), [](auto& f) { f.notify = smtp::kNotifyFailure; }),
       RecordType::kBounced, DsnIntent::kFailure, 0, "550", nullptr},
      {"past delay_warning_s, NOTIFY=FAILURE only", kBusy,
       With(Facts(3, 5 * kHour, retry), [](auto& f) { f.notify = smtp::kNotifyFailure; }),
       RecordType::kDeferred, DsnIntent::kNone, retry, "451", nullptr},
      {"past delay_warning_s, NOTIFY=DELAY", kBusy,
       With(Facts(3, 5 * kHour, retry), [](auto& f) { f.notify = smtp::kNotifyDelay; }),
       RecordType::kDeferred, DsnIntent::kDelayWarning, retry, "451", nullptr},
      {"delivered, NOTIFY=SUCCESS, no DSN at the server: relayed", kOk,
       With(Facts(0, 1000, -1), [](auto& f) { f.notify = smtp::kNotifySuccess; }),
       RecordType::kDelivered, DsnIntent::kRelayed, 0, "250", nullptr},
      {"delivered, NOTIFY=SUCCESS passed on: the server reports", kOk,
       With(Facts(0, 1000, -1),
            [](auto& f) {
              f.notify = smtp::kNotifySuccess;
              f.notify_passed_on = true;
            }),
       RecordType::kDelivered, DsnIntent::kNone, 0, "250", nullptr},
      {"delivered, NOTIFY=SUCCESS, null sender", kOk,
       With(Facts(0, 1000, -1),
            [](auto& f) {
              f.notify = smtp::kNotifySuccess;
              f.null_sender = true;
            }),
       RecordType::kDelivered, DsnIntent::kNone, 0, "250", nullptr},
  };
  RetryPolicy policy;
  policy.delay_warning_s = 4 * 3600;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Disposition d = Dispose(row.outcome, row.facts, policy, 4096);
    EXPECT_EQ(d.record, row.record);
    EXPECT_EQ(d.dsn, row.dsn);
    EXPECT_EQ(d.attempt, row.facts.attempts_before + 1);
    EXPECT_EQ(d.next_attempt_unix_ms, row.next_attempt_unix_ms);
    EXPECT_EQ(d.possible_duplicate, row.facts.earlier_unknown);
    // The facts' category, except when the relay gave up on a transient failure.
    const bool gave_up = row.outcome.kind == OutcomeKind::kTransient &&
                         row.facts.retry_at_unix_ms < 0;
    EXPECT_EQ(d.category,
              gave_up ? feedback::BounceCategory::kMessageExpired : row.facts.category);
    EXPECT_EQ(d.effective.ToString().rfind(row.effective_text, 0), 0u) << d.effective.ToString();
    if (row.reopen_marker == nullptr) {
      EXPECT_EQ(d.reopen_marker, nullptr) << d.reopen_marker;
    } else {
      ASSERT_NE(d.reopen_marker, nullptr);
      EXPECT_STREQ(d.reopen_marker, row.reopen_marker);
    }
  }
}

TEST(DispositionTest, NoDelayWarningWhenDisabled) {
  RetryPolicy policy;  // delay_warning_s = 0
  Disposition d = Dispose(kBusy, Facts(40, 100 * kHour, kCreated + 101 * kHour), policy, 4096);
  EXPECT_EQ(d.dsn, DsnIntent::kNone);
}

TEST(DispositionTest, AHoldIsNotAnAttempt) {
  DispositionFacts facts = Facts(2, kHour, kCreated + 3 * kHour);
  facts.not_an_attempt = true;
  Disposition d = Dispose(kBusy, facts, RetryPolicy{}, 4096);
  EXPECT_EQ(d.record, RecordType::kDeferred);
  EXPECT_EQ(d.attempt, 2u);  // as before the hold
  EXPECT_EQ(d.next_attempt_unix_ms, kCreated + 3 * kHour);
  facts.not_an_attempt = false;
  EXPECT_EQ(Dispose(kBusy, facts, RetryPolicy{}, 4096).attempt, 3u);
}

TEST(DispositionTest, GivingUpKeepsTheBounceWithinTheRecord) {
  // The last reply was already as long as a record holds: "gave up after ..." must still fit,
  // with the codes kept.
  RecipientOutcome last =
      RecipientOutcome::Transient(std::string(5000, 'x'), 421, "4.4.2").FittedTo(512);
  Disposition d = Dispose(last, Facts(7, 121 * kHour, -1), RetryPolicy{}, 512);
  EXPECT_EQ(d.record, RecordType::kBounced);
  EXPECT_LE(d.effective.ToString().size(), 512u);
  EXPECT_EQ(d.effective.code, 421);
  EXPECT_EQ(d.effective.enhanced, "4.4.2");
  EXPECT_EQ(d.effective.kind, OutcomeKind::kPermanent);
}

}  // namespace
}  // namespace relay::delivery
