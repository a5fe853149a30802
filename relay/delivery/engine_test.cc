// The delivery engine's records with a real spool and reactor on a fake clock, without the
// network: outcomes are fed to RecordOutcome, or come from paths that need no DNS (a recipient
// without a domain). The spool is made to refuse appends as a full disk would.
#include "relay/delivery/engine.h"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "queue/spool.h"
#include "relay/base/clock.h"
#include "relay/delivery/delivery_policy.h"
#include "relay/delivery/shaping.h"
#include "relay/io/reactor.h"

namespace relay::delivery {
namespace {

namespace fs = std::filesystem;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = fs::path(tmp ? tmp : "/tmp") /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    io::ReactorOptions ro;
    ro.sq_entries = 64;
    ro.cq_entries = 128;
    ro.clock = &clock_;
    auto reactor = io::Reactor::Create(ro);
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(*reactor);
    queue::SpoolOptions so;
    so.directory = (dir_ / "spool").string();
    so.segment_bytes = 1 << 20;
    so.reserve_segments = 1;
    so.fsync = false;
    so.clock = &clock_;
    auto spool = queue::Spool::Open(so);
    ASSERT_TRUE(spool.ok()) << spool.status();
    spool_ = std::move(*spool);
  }

  void MakeEngine(DeliveryOptions options = DeliveryOptions(), RetryPolicy retry = RetryPolicy()) {
    retry.jitter_fraction = 0;
    policy_ = std::make_unique<DeliveryPolicy>(std::make_shared<const ShapingRules>(ShapingRules()),
                                               retry, /*bounces=*/nullptr, 1, "relay.test", 1);
    options.hostname = "relay.test";
    engine_ = std::make_unique<DeliveryEngine>(reactor_.get(), nullptr, spool_.get(), options,
                                               policy_.get());
  }

  // Senders and recipients without a domain keep every path away from DNS: a recipient without
  // one fails at once with 553 5.1.3, and so does the DSN to such a sender.
  queue::MessageId Append(std::vector<std::string> recipients, std::string sender = "sender") {
    queue::Envelope envelope;
    envelope.sender = std::move(sender);
    envelope.recipients = std::move(recipients);
    auto appended = spool_->AppendMessage(envelope, "", "Subject: test\r\n\r\nbody\r\n", nullptr);
    EXPECT_TRUE(appended.ok()) << appended.status();
    return appended.ok() ? appended->id : queue::MessageId{};
  }

  // Loop turns at the current fake time (timers due now fire, posted tasks run).
  void Turns(int n = 5) {
    for (int i = 0; i < n; ++i) reactor_->RunOnce(0);
  }
  void Advance(int64_t ms) {
    clock_.AdvanceMillis(ms);
    Turns();
  }

  const queue::RecipientState& Recipient(queue::MessageId id, uint32_t r) {
    const queue::MessageInfo* info = spool_->Find(id);
    EXPECT_NE(info, nullptr);
    return info->recipients[r];
  }

  FakeClock clock_;
  fs::path dir_;
  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<queue::Spool> spool_;
  std::unique_ptr<DeliveryPolicy> policy_;
  std::unique_ptr<DeliveryEngine> engine_;
};

std::string LongText(size_t bytes) {
  std::string text = "policy rejection: ";
  while (text.size() < bytes) text += "more text ";
  return text;
}

TEST_F(EngineTest, ALongReplyIsRecordedCutToTheRecord) {
  MakeEngine();
  const queue::MessageId id = Append({"a@b.test", "c@b.test"});
  Job job;
  job.id = id;
  job.recipients = {0, 1};
  engine_->RecordOutcome(job, 0, RecipientOutcome::Permanent(LongText(6000), 550, "5.7.1"),
                         AttemptInfo{"mx.b.test"});
  engine_->RecordOutcome(job, 1, RecipientOutcome::Transient(LongText(6000), 451, "4.7.1"),
                         AttemptInfo{"mx.b.test"});
  EXPECT_EQ(engine_->unrecorded_outcomes(), 0u);
  const queue::RecipientState& bounced = Recipient(id, 0);
  EXPECT_EQ(bounced.status, queue::RecipientStatus::kBounced);
  EXPECT_LE(bounced.last_reply.size(), queue::kReplyBytesMax);
  EXPECT_EQ(bounced.last_reply.rfind("550 5.7.1 policy rejection: more text", 0), 0u);
  const queue::RecipientState& deferred = Recipient(id, 1);
  EXPECT_EQ(deferred.status, queue::RecipientStatus::kPending);
  EXPECT_EQ(deferred.attempts, 1u);  // counted: a 4xx expires in time
  EXPECT_GT(deferred.next_attempt_unix_ms, 0);
  EXPECT_EQ(deferred.last_reply.rfind("451 4.7.1 ", 0), 0u);
  EXPECT_LE(deferred.last_reply.size(), queue::kReplyBytesMax);
}

TEST_F(EngineTest, GivingUpOnALongReplyStillFits) {
  RetryPolicy retry;
  retry.message_age_s_max = 1;
  MakeEngine(DeliveryOptions(), retry);
  const queue::MessageId id = Append({"a@b.test"});
  clock_.AdvanceMillis(5000);
  Job job;
  job.id = id;
  job.recipients = {0};
  engine_->RecordOutcome(job, 0, RecipientOutcome::Transient(LongText(4090), 451, "4.7.1"),
                         AttemptInfo{});
  EXPECT_EQ(engine_->unrecorded_outcomes(), 0u);
  EXPECT_EQ(spool_->Find(id), nullptr);  // bounced: final
  EXPECT_EQ(engine_->stats().bounced, 1u);
}

TEST_F(EngineTest, DeliveriesOverTlsAreCountedPerSite) {
  metrics::RelayMetricsOptions mo;
  mo.sites = {"default", "google"};
  metrics::RelayMetrics m(mo);
  DeliveryOptions options;
  options.metrics = &m;
  MakeEngine(options);
  const queue::MessageId id = Append({"a@b.test", "c@b.test", "d@b.test"});
  Job job;
  job.id = id;
  job.recipients = {0, 1, 2};
  job.metrics_site = m.SiteIndex("google");
  AttemptInfo tls{"mx.b.test"};
  tls.tls_version = "TLSv1.3";
  tls.reply_received = true;
  AttemptInfo plain{"mx.b.test"};
  plain.reply_received = true;
  const RecipientOutcome ok{OutcomeKind::kDelivered, 250, "2.0.0", "ok"};
  engine_->RecordOutcome(job, 0, ok, tls);
  engine_->RecordOutcome(job, 1, ok, plain);
  engine_->RecordOutcome(job, 2, RecipientOutcome::Transient("busy", 451, "4.3.2"), tls);
  const std::string text = m.Render();
  EXPECT_NE(text.find("relay_recipients_delivered_tls_total{site=\"google\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("relay_recipients_delivered_total{site=\"google\",source=\"none\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("relay_recipients_deferred_total{site=\"google\",source=\"none\"} 1\n"),
            std::string::npos);
  // No ready queue yet: every per-site gauge reads 0.
  engine_->PublishSiteMetrics();
  EXPECT_NE(m.Render().find("relay_ready_queue_messages{site=\"google\"} 0\n"),
            std::string::npos);
}

TEST_F(EngineTest, ARefusedBounceIsRetriedWithBackoffAndGetsOneDsn) {
  DeliveryOptions options;
  options.outcome_retry_ms = 1000;
  options.outcome_retry_ms_max = 4000;
  MakeEngine(options);
  const queue::MessageId id = Append({"nodomain"});
  spool_->FailStateAppendsForTesting(2, absl::ResourceExhaustedError("disk full"));
  engine_->OnAccepted(id);
  Advance(1);  // timers due now fire at the next millisecond
  // Dispatched once: 553 5.1.3, refused by the spool. No DSN yet, no second attempt.
  EXPECT_EQ(engine_->stats().bounced, 1u);
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  EXPECT_EQ(engine_->stats().dsn_queued, 0u);
  EXPECT_EQ(engine_->scheduled(), 0u);
  EXPECT_EQ(Recipient(id, 0).status, queue::RecipientStatus::kPending);
  EXPECT_NE(engine_->RetryNow(id).status().message().find("waiting to be recorded"),
            std::string::npos);
  Advance(999);
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  Advance(1);  // 1 s later: the append is refused again; next try 2 s later
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  EXPECT_EQ(engine_->stats().dsn_queued, 0u);
  Advance(1999);
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  Advance(1);  // recorded now, and the DSN goes with it
  EXPECT_EQ(engine_->unrecorded_outcomes(), 0u);
  EXPECT_EQ(spool_->Find(id), nullptr);  // final
  EXPECT_EQ(engine_->stats().dsn_queued, 1u);
  Advance(1);
  EXPECT_EQ(engine_->stats().bounced, 2u);  // the DSN itself, to a sender without a domain
  Advance(60000);
  EXPECT_EQ(engine_->stats().dsn_queued, 1u);
  EXPECT_EQ(engine_->stats().bounced, 2u);
}

TEST_F(EngineTest, ARefusedDeliveryIsNeverAttemptedAgain) {
  MakeEngine();
  const queue::MessageId id = Append({"a@b.test", "c@b.test"});
  spool_->FailStateAppendsForTesting(1, absl::InternalError("I/O error"));
  Job job;
  job.id = id;
  job.recipients = {0, 1};
  engine_->RecordOutcome(job, 0, RecipientOutcome{OutcomeKind::kDelivered, 250, "2.0.0", "ok"},
                         AttemptInfo{});
  engine_->RecordOutcome(job, 1, RecipientOutcome{OutcomeKind::kDelivered, 250, "2.0.0", "ok"},
                         AttemptInfo{});
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  EXPECT_EQ(Recipient(id, 0).status, queue::RecipientStatus::kPending);
  EXPECT_EQ(Recipient(id, 1).status, queue::RecipientStatus::kDelivered);
  // The spool still says pending, but nothing will attempt it: not the operator's retry either.
  EXPECT_NE(engine_->RetryNow(id).status().message().find("waiting to be recorded"),
            std::string::npos);
  EXPECT_EQ(engine_->RetryAll().value_or(""), "0 messages are being retried");
  EXPECT_EQ(engine_->scheduled(), 0u);
  Advance(1000);
  EXPECT_EQ(engine_->unrecorded_outcomes(), 0u);
  EXPECT_EQ(spool_->Find(id), nullptr);  // both delivered: final
  EXPECT_EQ(engine_->stats().delivered, 2u);
}

TEST_F(EngineTest, NoNewDeliveryStartsWhileTooManyOutcomesWait) {
  DeliveryOptions options;
  options.unrecorded_outcomes_max = 1;
  MakeEngine(options);
  const queue::MessageId first = Append({"nodomain"}, "");
  const queue::MessageId second = Append({"nodomain"}, "");
  spool_->FailStateAppendsForTesting(1, absl::ResourceExhaustedError("disk full"));
  engine_->OnAccepted(first);
  Advance(1);
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  engine_->OnAccepted(second);
  Advance(1);
  EXPECT_EQ(engine_->stats().bounced, 1u);  // the second waits
  EXPECT_EQ(Recipient(second, 0).status, queue::RecipientStatus::kPending);
  Advance(1000);  // the first is recorded, and delivery resumes
  EXPECT_EQ(engine_->unrecorded_outcomes(), 0u);
  EXPECT_EQ(engine_->stats().bounced, 2u);
  EXPECT_EQ(spool_->Find(first), nullptr);
  EXPECT_EQ(spool_->Find(second), nullptr);
}

TEST_F(EngineTest, AMessageDeletedMeanwhileDropsItsWaitingOutcome) {
  MakeEngine();
  const queue::MessageId id = Append({"a@b.test"});
  spool_->FailStateAppendsForTesting(1, absl::ResourceExhaustedError("disk full"));
  Job job;
  job.id = id;
  job.recipients = {0};
  engine_->RecordOutcome(job, 0, RecipientOutcome::Transient("try later", 451, "4.3.0"),
                         AttemptInfo{});
  EXPECT_EQ(engine_->unrecorded_outcomes(), 1u);
  EXPECT_EQ(engine_->DeleteNow(id).value_or(""), absl::StrCat(id.ToString(), " deleted"));
  Advance(1000);
  EXPECT_EQ(engine_->unrecorded_outcomes(), 0u);
  EXPECT_EQ(spool_->Find(id), nullptr);
}

// Issue 22: a DSN for forwarded mail named the alias's private target (Final-Recipient, the
// target's MX host, the target in the remote's reply). It names the address the sender used.
TEST(DsnForForwardedMail, NamesTheAddressTheSenderUsedNotTheTarget) {
  DeliveryPolicy policy(std::make_shared<const ShapingRules>(ShapingRules()), RetryPolicy(),
                        nullptr, 1, "mx.local.test", 1);
  FailedRecipient forwarded;
  forwarded.address = "me@gmail.test";
  forwarded.original = "private@local.test";
  forwarded.outcome.code = 550;
  forwarded.outcome.enhanced = "5.7.26";
  forwarded.outcome.text = "<Me@Gmail.test>: unauthenticated mail is refused for me@gmail.test";
  forwarded.remote_mta = "mx.gmail.test";
  FailedRecipient direct;  // not forwarded: reported as before
  direct.address = "bob@example.org";
  direct.outcome = forwarded.outcome;
  direct.outcome.text = "<bob@example.org>: no such user";
  direct.remote_mta = "mx.example.org";
  DeliveryPolicy::DsnSubject subject;
  subject.queue_id = "q1";
  subject.sender = "SRS0=ab=CD=sender.test=alice@local.test";
  subject.headers = "Subject: hi\r\n";
  auto dsn = policy.BuildDsn(DsnKind::kFailure, subject, 0, {forwarded, direct});
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  EXPECT_NE(dsn->find("Final-Recipient: rfc822; private@local.test"), std::string::npos) << *dsn;
  EXPECT_NE(dsn->find("<private@local.test>: unauthenticated mail is refused for "
                      "private@local.test"),
            std::string::npos)
      << *dsn;
  EXPECT_EQ(absl::AsciiStrToLower(*dsn).find("gmail"), std::string::npos) << *dsn;
  EXPECT_NE(dsn->find("Final-Recipient: rfc822; bob@example.org"), std::string::npos);
  EXPECT_NE(dsn->find("Remote-MTA: dns; mx.example.org"), std::string::npos);
  EXPECT_NE(dsn->find("<bob@example.org>: no such user"), std::string::npos);
}

}  // namespace
}  // namespace relay::delivery
