#include "queue/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "queue/segment_creator.h"
#include "queue/spool_reader.h"
#include "relay/base/clock.h"

namespace queue {

using relay::FakeClock;

namespace {

namespace fs = std::filesystem;

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = fs::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(base_);
    fs::create_directories(base_);
    dir_ = (base_ / "spool").string();
  }

  SpoolOptions Options(const std::string& dir) {
    SpoolOptions o;
    o.directory = dir;
    o.segment_bytes = 64 << 10;
    o.reserve_segments = 1;
    o.clock = &clock_;
    return o;
  }

  std::unique_ptr<Spool> OpenSpool(const std::string& dir, RecoveryReport* report = nullptr) {
    auto spool = Spool::Open(Options(dir), report);
    EXPECT_TRUE(spool.ok()) << spool.status();
    return spool.ok() ? std::move(*spool) : nullptr;
  }

  static Envelope Env(int n, int rcpts = 1) {
    Envelope e;
    e.sender = "sender" + std::to_string(n) + "@example.net";
    for (int i = 0; i < rcpts; ++i) {
      e.recipients.push_back("r" + std::to_string(i) + "@example.com");
    }
    return e;
  }
  static std::string Body(int n, size_t bytes = 100) {
    std::string b = "Subject: message " + std::to_string(n) + "\r\n\r\n";
    while (b.size() < bytes) b += static_cast<char>('a' + (b.size() + n) % 26);
    return b;
  }

  MessageId Append(Spool& spool, int n, size_t bytes = 100, int rcpts = 1) {
    auto r = spool.AppendMessage(Env(n, rcpts), "X-Prepended: yes\r\n", Body(n, bytes), nullptr);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->id : MessageId{};
  }

  static std::string SegmentFileOf(const std::string& dir, uint64_t seq) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      auto f = SegmentFile::Open(entry.path().string(), false);
      if (f.ok() && (*f)->HeaderValid() && (*f)->seq() == seq) return entry.path().string();
    }
    return "";
  }

  FakeClock clock_;
  fs::path base_;
  std::string dir_;
};

TEST_F(SpoolTest, CallbackFiresOnlyAfterSyncAndRecordsSurviveReopen) {
  std::vector<MessageId> ids;
  {
    auto spool = OpenSpool(dir_);
    int fired = 0;
    for (int i = 0; i < 3; ++i) {
      auto r = spool->AppendMessage(Env(i, 2), "DKIM-Signature: x\r\n", Body(i),
                                    [&](absl::Status s) {
                                      EXPECT_TRUE(s.ok());
                                      ++fired;
                                    });
      ASSERT_TRUE(r.ok()) << r.status();
      ids.push_back(r->id);
    }
    EXPECT_EQ(fired, 0);
    EXPECT_TRUE(spool->NeedsSync());
    ASSERT_TRUE(spool->SyncNow().ok());
    EXPECT_EQ(fired, 3);
    EXPECT_FALSE(spool->NeedsSync());
    EXPECT_EQ(spool->MessageBytes(ids[1]), "DKIM-Signature: x\r\n" + Body(1));
  }
  RecoveryReport report;
  auto spool = OpenSpool(dir_, &report);
  EXPECT_EQ(report.live_messages, 3u);
  EXPECT_TRUE(report.corruptions.empty());
  for (int i = 0; i < 3; ++i) {
    const MessageInfo* info = spool->Find(ids[i]);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->sender, Env(i).sender);
    ASSERT_EQ(info->recipients.size(), 2u);
    EXPECT_EQ(info->recipients[1].address, "r1@example.com");
    EXPECT_EQ(spool->MessageBytes(ids[i]), "DKIM-Signature: x\r\n" + Body(i));
  }
  // New ids never repeat old ones.
  MessageId fresh = Append(*spool, 9);
  for (MessageId id : ids) EXPECT_NE(id, fresh);
}

// The address each recipient was expanded from (forwarded mail) and the message's attributes
// survive recovery and compaction.
TEST_F(SpoolTest, OriginalRecipientsSurviveReopenAndCompaction) {
  MessageId id;
  MessageAttributes attributes;
  attributes.tenant = "shop";
  attributes.campaign = "spring";
  attributes.priority = Priority::kTransactional;
  {
    auto spool = OpenSpool(dir_);
    Envelope e = Env(1, 2);
    e.original_recipients = {"alias@local.example", ""};
    e.attributes = attributes;
    auto r = spool->AppendMessage(e, "", Body(1, 3000), nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
    id = r->id;
    // Filler, delivered, so that compaction has a reason to move the message.
    for (int i = 2; i < 40; ++i) {
      StateRecord s;
      s.id = Append(*spool, i, 3000);
      s.type = RecordType::kDelivered;
      ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
    }
    ASSERT_TRUE(spool->SyncNow().ok());
    auto moved = spool->MaintainSpace();
    ASSERT_TRUE(moved.ok()) << moved.status();
    EXPECT_EQ(*moved, 1u);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(spool->SyncNow().ok());
  }
  RecoveryReport report;
  auto spool = OpenSpool(dir_, &report);
  EXPECT_TRUE(report.corruptions.empty());
  const MessageInfo* info = spool->Find(id);
  ASSERT_NE(info, nullptr);
  ASSERT_EQ(info->recipients.size(), 2u);
  EXPECT_EQ(info->recipients[0].address, "r0@example.com");
  EXPECT_EQ(info->recipients[0].original, "alias@local.example");
  EXPECT_EQ(info->recipients[1].original, "");
  // The tenant, campaign and priority came through the append, the copy and the recovery.
  EXPECT_EQ(info->attributes, attributes);
  // A list that does not match the recipients is refused, and so is an attribute too long.
  Envelope bad = Env(2, 2);
  bad.original_recipients = {"one@local.example"};
  EXPECT_FALSE(spool->AppendMessage(bad, "", Body(2), nullptr).ok());
  bad = Env(2, 2);
  bad.attributes.campaign = std::string(kAttributeBytesMax + 1, 'c');
  EXPECT_FALSE(spool->AppendMessage(bad, "", Body(2), nullptr).ok());
}

TEST_F(SpoolTest, GroupCommitCoversEverythingAppendedBeforeBeginSync) {
  SpoolOptions options = Options(dir_);
  options.syncs_in_flight_max = 1;
  auto opened = Spool::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<Spool> spool = std::move(*opened);
  std::vector<int> fired;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(spool->AppendMessage(Env(i), "", Body(i), [&, i](absl::Status s) {
      ASSERT_TRUE(s.ok());
      fired.push_back(i);
    }).ok());
  }
  ASSERT_TRUE(spool->NeedsSync());
  SyncBatch batch = spool->BeginSync();
  ASSERT_EQ(batch.targets.size(), 1u);  // five appends, one fdatasync
  // Appends during the sync ride on the next one.
  ASSERT_TRUE(spool->AppendMessage(Env(5), "", Body(5), [&](absl::Status s) {
    fired.push_back(5);
  }).ok());
  EXPECT_FALSE(spool->NeedsSync());  // one sync in flight at a time
  ASSERT_EQ(::fdatasync(batch.targets[0].fd), 0);
  spool->EndSync(batch, 0);
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
  ASSERT_TRUE(spool->NeedsSync());
  ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_EQ(fired.size(), 6u);
}

// Two batches in flight; the second's fdatasync ends first. Its records must still wait for the
// first batch: durability is reported in the order the batches began.
TEST_F(SpoolTest, OverlappingSyncsCompleteInBeginOrder) {
  auto spool = OpenSpool(dir_);  // syncs_in_flight_max = 2 by default
  std::vector<int> fired;
  auto append = [&](int i) {
    ASSERT_TRUE(spool->AppendMessage(Env(i), "", Body(i), [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      fired.push_back(i);
    }).ok());
  };
  append(0);
  append(1);
  SyncBatch first = spool->BeginSync();
  append(2);
  ASSERT_TRUE(spool->NeedsSync());  // a second batch may start while the first runs
  SyncBatch second = spool->BeginSync();
  ASSERT_EQ(second.targets.size(), 1u);
  EXPECT_LT(first.end, second.end);
  append(3);
  EXPECT_FALSE(spool->NeedsSync());  // two in flight: the limit
  ASSERT_EQ(::fdatasync(second.targets[0].fd), 0);
  spool->EndSync(second, 0);
  EXPECT_TRUE(fired.empty());  // the first batch has not completed
  EXPECT_LT(spool->durable_position(), first.end);
  ASSERT_TRUE(spool->NeedsSync());  // a slot is free again
  spool->EndSync(first, 0);
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(spool->durable_position(), second.end);
  ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3}));
  // What the readers see: everything, committed.
  spool.reset();
  auto reopened = OpenSpool(dir_);
  EXPECT_EQ(reopened->stats().live_messages, 4u);
}

// A second batch may begin only once the running one has run for half of the last sync's time.
TEST_F(SpoolTest, OverlappingSyncWaitsForTheMiddleOfTheRunningOne) {
  auto spool = OpenSpool(dir_);
  ASSERT_TRUE(spool->AppendMessage(Env(0), "", Body(0), nullptr).ok());
  SyncBatch first = spool->BeginSync();
  clock_.AdvanceMillis(10);  // the last sync took 10 ms
  spool->EndSync(first, 0);
  ASSERT_TRUE(spool->AppendMessage(Env(1), "", Body(1), nullptr).ok());
  ASSERT_TRUE(spool->NeedsSync());  // none running: at once
  SyncBatch second = spool->BeginSync();
  ASSERT_TRUE(spool->AppendMessage(Env(2), "", Body(2), nullptr).ok());
  EXPECT_FALSE(spool->NeedsSync());
  clock_.AdvanceMillis(4);
  EXPECT_FALSE(spool->NeedsSync());
  clock_.AdvanceMillis(1);  // 5 ms: half of the last one
  ASSERT_TRUE(spool->NeedsSync());
  SyncBatch third = spool->BeginSync();
  spool->EndSync(second, 0);
  spool->EndSync(third, 0);
  EXPECT_EQ(spool->durable_position(), third.end);
}

// Outcomes nobody waits for do not ask for a sync of their own at once: they ride on the next
// group commit, and when none begins within outcome_sync_ms, NeedsSync asks for one then.
TEST_F(SpoolTest, OutcomesJoinTheGroupCommitWithinOutcomeSyncMs) {
  auto spool = OpenSpool(dir_);  // outcome_sync_ms = 5 by default
  MessageId id = Append(*spool, 0, 100, 3);
  ASSERT_TRUE(spool->NeedsSync());  // a message: at once
  ASSERT_TRUE(spool->SyncNow().ok());
  StateRecord delivered;
  delivered.id = id;
  delivered.type = RecordType::kDelivered;
  delivered.recipient = 0;
  ASSERT_TRUE(spool->AppendState(delivered, nullptr).ok());
  const int64_t appended_ms = clock_.MonotonicMillis();
  EXPECT_TRUE(spool->HasUnsyncedRecords());
  EXPECT_FALSE(spool->NeedsSync());
  EXPECT_EQ(spool->OutcomeSyncDueMs(), appended_ms + 5);
  clock_.AdvanceMillis(4);
  StateRecord second = delivered;
  second.recipient = 1;
  ASSERT_TRUE(spool->AppendState(second, nullptr).ok());
  EXPECT_FALSE(spool->NeedsSync());
  EXPECT_EQ(spool->OutcomeSyncDueMs(), appended_ms + 5);  // counted from the first one
  clock_.AdvanceMillis(1);
  EXPECT_EQ(spool->OutcomeSyncDueMs(), -1);
  ASSERT_TRUE(spool->NeedsSync());
  SyncBatch batch = spool->BeginSync();
  ASSERT_EQ(batch.targets.size(), 1u);
  spool->EndSync(batch, 0);
  EXPECT_FALSE(spool->HasUnsyncedRecords());
  EXPECT_EQ(spool->OutcomeSyncDueMs(), -1);

  // An outcome, then a message: the message's batch takes the outcome along, at once.
  StateRecord third = delivered;
  third.recipient = 2;
  ASSERT_TRUE(spool->AppendState(third, nullptr).ok());
  EXPECT_FALSE(spool->NeedsSync());
  MessageId other = Append(*spool, 1);
  ASSERT_TRUE(spool->NeedsSync());
  EXPECT_EQ(spool->OutcomeSyncDueMs(), -1);
  ASSERT_TRUE(spool->SyncNow().ok());

  // A state record with a callback is waited for: at once.
  int fired = 0;
  StateRecord bounced;
  bounced.id = other;
  bounced.type = RecordType::kBounced;
  bounced.reply = "550 5.1.1 no such user";
  ASSERT_TRUE(spool->AppendState(bounced, [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    ++fired;
  }).ok());
  ASSERT_TRUE(spool->NeedsSync());
  ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_EQ(fired, 1);

  // A stop does not wait for the bound; SyncNow never does.
  MessageId last = Append(*spool, 2, 100, 2);
  ASSERT_TRUE(spool->SyncNow().ok());
  StateRecord marker;
  marker.id = last;
  marker.type = RecordType::kAttempt;
  ASSERT_TRUE(spool->AppendState(marker, nullptr).ok());
  EXPECT_FALSE(spool->NeedsSync());
  spool->RequestPromptSync();
  EXPECT_TRUE(spool->NeedsSync());
  ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_FALSE(spool->HasUnsyncedRecords());
  marker.recipient = 1;
  ASSERT_TRUE(spool->AppendState(marker, nullptr).ok());
  EXPECT_FALSE(spool->NeedsSync());
  ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_FALSE(spool->HasUnsyncedRecords());
}

// outcome_sync_ms = 0: every record asks for a sync at once, as before the bound existed.
TEST_F(SpoolTest, OutcomeSyncMsZeroSyncsOutcomesAtOnce) {
  SpoolOptions options = Options(dir_);
  options.outcome_sync_ms = 0;
  auto opened = Spool::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<Spool> spool = std::move(*opened);
  MessageId id = Append(*spool, 0);
  ASSERT_TRUE(spool->SyncNow().ok());
  StateRecord delivered;
  delivered.id = id;
  delivered.type = RecordType::kDelivered;
  ASSERT_TRUE(spool->AppendState(delivered, nullptr).ok());
  EXPECT_TRUE(spool->NeedsSync());
  EXPECT_EQ(spool->OutcomeSyncDueMs(), -1);
}

// An attempt marker without an outcome after it is what recovery finds after a crash between the
// body and the reply: the recipient's attempt is open. An outcome closes it.
TEST_F(SpoolTest, AttemptMarkersOpenUntilAnOutcomeAndSurviveReopen) {
  MessageId id;
  {
    auto spool = OpenSpool(dir_);
    id = Append(*spool, 0, 100, 3);
    for (uint32_t r = 0; r < 3; ++r) {
      StateRecord marker;
      marker.id = id;
      marker.type = RecordType::kAttempt;
      marker.recipient = r;
      marker.reply = "mx.example.com";
      ASSERT_TRUE(spool->AppendState(marker, nullptr).ok());
    }
    StateRecord deferred;
    deferred.id = id;
    deferred.type = RecordType::kDeferred;
    deferred.recipient = 1;
    deferred.attempts = 1;
    deferred.next_attempt_unix_ms = 1;
    deferred.reply = "451 4.3.0 try later";
    ASSERT_TRUE(spool->AppendState(deferred, nullptr).ok());
    StateRecord delivered;
    delivered.id = id;
    delivered.type = RecordType::kDelivered;
    delivered.recipient = 2;
    ASSERT_TRUE(spool->AppendState(delivered, nullptr).ok());
    const MessageInfo* info = spool->Find(id);
    EXPECT_TRUE(info->recipients[0].attempt_open);
    EXPECT_FALSE(info->recipients[1].attempt_open);
    EXPECT_FALSE(info->recipients[2].attempt_open);
    // A marker for a final recipient is refused, like any state record.
    StateRecord late;
    late.id = id;
    late.type = RecordType::kAttempt;
    late.recipient = 2;
    EXPECT_FALSE(spool->AppendState(late, nullptr).ok());
    // No sync: a killed process leaves its appends in the page cache, and recovery reads them.
  }
  RecoveryReport report;
  auto spool = OpenSpool(dir_, &report);
  EXPECT_TRUE(report.corruptions.empty());
  const MessageInfo* info = spool->Find(id);
  ASSERT_NE(info, nullptr);
  EXPECT_TRUE(info->recipients[0].attempt_open);
  EXPECT_FALSE(info->recipients[1].attempt_open);
  EXPECT_EQ(info->recipients[1].attempts, 1u);
  EXPECT_EQ(info->recipients[2].status, RecipientStatus::kDelivered);
}

// The first of two batches fails after the second succeeded: nothing of either is reported
// durable, every waiter gets the error, and the spool refuses appends.
TEST_F(SpoolTest, FailureOfAnEarlierBatchFailsTheLaterOnesToo) {
  auto spool = OpenSpool(dir_);
  int ok = 0, failed = 0;
  auto append = [&](int i) {
    ASSERT_TRUE(spool->AppendMessage(Env(i), "", Body(i), [&](absl::Status s) {
      (s.ok() ? ok : failed)++;
    }).ok());
  };
  append(0);
  SyncBatch first = spool->BeginSync();
  append(1);
  SyncBatch second = spool->BeginSync();
  spool->EndSync(second, 0);
  spool->EndSync(first, -EIO);
  EXPECT_EQ(ok, 0);
  EXPECT_EQ(failed, 2);
  EXPECT_FALSE(spool->NeedsSync());
  auto r = spool->AppendMessage(Env(2), "", Body(2), nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
}

TEST_F(SpoolTest, FailedSyncFailsWaitersAndRefusesAppends) {
  auto spool = OpenSpool(dir_);
  absl::Status got;
  ASSERT_TRUE(spool->AppendMessage(Env(1), "", Body(1), [&](absl::Status s) { got = s; }).ok());
  SyncBatch batch = spool->BeginSync();
  spool->EndSync(batch, -EIO);
  EXPECT_FALSE(got.ok());
  auto r = spool->AppendMessage(Env(2), "", Body(2), nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
}

TEST_F(SpoolTest, SecondWriterIsRefused) {
  auto spool = OpenSpool(dir_);
  auto second = Spool::Open(Options(dir_));
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
}

TEST_F(SpoolTest, StateRecordsRebuildTheSchedule) {
  MessageId a, b;
  {
    auto spool = OpenSpool(dir_);
    a = Append(*spool, 1, 100, 3);
    b = Append(*spool, 2, 100, 1);
    StateRecord s;
    s.id = a;
    s.type = RecordType::kDelivered;
    s.recipient = 0;
    s.reply = "250 2.0.0 ok";
    ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
    s.type = RecordType::kDeferred;
    s.recipient = 1;
    s.reply = "451 4.7.1 greylisted";
    s.attempts = 2;
    s.next_attempt_unix_ms = 1700000600000;
    ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
    StateRecord notice;
    notice.id = a;
    notice.type = RecordType::kDelayNotified;
    ASSERT_TRUE(spool->AppendState(notice, nullptr).ok());
    s.type = RecordType::kBounced;
    s.recipient = 2;
    s.reply = "550 5.1.1 no such user";
    ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
    // Final recipients take no further outcome.
    EXPECT_FALSE(spool->AppendState(s, nullptr).ok());
    StateRecord d;
    d.id = b;
    d.type = RecordType::kDeleted;
    ASSERT_TRUE(spool->AppendState(d, nullptr).ok());
    EXPECT_EQ(spool->Find(b), nullptr);
    ASSERT_TRUE(spool->SyncNow().ok());
  }
  auto spool = OpenSpool(dir_);
  EXPECT_EQ(spool->Find(b), nullptr);
  const MessageInfo* info = spool->Find(a);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->recipients[0].status, RecipientStatus::kDelivered);
  EXPECT_EQ(info->recipients[1].status, RecipientStatus::kPending);
  EXPECT_EQ(info->recipients[1].attempts, 2u);
  EXPECT_EQ(info->recipients[1].next_attempt_unix_ms, 1700000600000);
  EXPECT_EQ(info->recipients[1].last_reply, "451 4.7.1 greylisted");
  EXPECT_EQ(info->recipients[2].status, RecipientStatus::kBounced);
  EXPECT_TRUE(info->delay_notified);
  EXPECT_EQ(info->NextDueUnixMs(), 1700000600000);
  EXPECT_TRUE(spool->DueMessages(1700000599999, 10).empty());
  EXPECT_EQ(spool->DueMessages(1700000600000, 10), std::vector<MessageId>{a});
}

TEST_F(SpoolTest, ExpiryReportsOldMessages) {
  auto spool = OpenSpool(dir_);
  MessageId old_id = Append(*spool, 1);
  clock_.AdvanceMillis(int64_t{4} * 24 * 3600 * 1000);
  MessageId young = Append(*spool, 2);
  int64_t now_ms = static_cast<int64_t>(clock_.WallSeconds() * 1000);
  EXPECT_TRUE(spool->ExpiredMessages(now_ms).empty());
  now_ms += int64_t{1} * 24 * 3600 * 1000 + 1;
  EXPECT_EQ(spool->ExpiredMessages(now_ms), std::vector<MessageId>{old_id});
  // Expired messages go to the bounce path, not to delivery.
  EXPECT_EQ(spool->DueMessages(now_ms, 10), std::vector<MessageId>{young});
}

TEST_F(SpoolTest, OldestLiveMessageIsTrackedThroughFinalityCompactionAndRecovery) {
  auto spool = OpenSpool(dir_);
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), -1);
  const int64_t t0 = static_cast<int64_t>(clock_.WallSeconds() * 1000);
  MessageId first = Append(*spool, 1, 100, 2);
  clock_.AdvanceMillis(60000);
  MessageId second = Append(*spool, 2);
  clock_.AdvanceMillis(60000);
  Append(*spool, 3);
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), t0);
  // One recipient of two final: still live, still the oldest.
  StateRecord s;
  s.id = first;
  s.recipient = 0;
  s.type = RecordType::kDelivered;
  ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), t0);
  s.recipient = 1;
  s.type = RecordType::kBounced;
  ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), t0 + 60000);
  // A compacted copy keeps its creation time, and the next one takes over once it is deleted.
  ASSERT_TRUE(spool->SyncNow().ok());
  ASSERT_TRUE(spool->MaintainSpace(/*force=*/true).ok());
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), t0 + 60000);
  ASSERT_TRUE(spool->SyncNow().ok());
  spool.reset();
  spool = OpenSpool(dir_);
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), t0 + 60000);
  StateRecord deleted;
  deleted.id = second;
  deleted.type = RecordType::kDeleted;
  deleted.recipient = kAllRecipients;
  ASSERT_TRUE(spool->AppendState(deleted, nullptr).ok());
  EXPECT_EQ(spool->OldestMessageCreatedUnixMs(), t0 + 120000);
}

// Appends two synced messages and a third that never got synced, then tears the third at every
// byte offset: recovery must keep the first two, drop the third, and report no corruption.
TEST_F(SpoolTest, TornTailAtEveryOffset) {
  MessageId a, b, c;
  std::string segment;
  uint64_t c_offset, c_bytes;
  {
    auto spool = OpenSpool(dir_);
    a = Append(*spool, 1);
    b = Append(*spool, 2);
    ASSERT_TRUE(spool->SyncNow().ok());
    c = Append(*spool, 3);
    c_offset = spool->Find(c)->record_offset;
    c_bytes = spool->Find(c)->record_bytes;
    segment = fs::path(SegmentFileOf(dir_, spool->Find(c)->segment_seq)).filename().string();
  }
  ASSERT_FALSE(segment.empty());
  RecordHeader header;
  {
    std::ifstream f(dir_ + "/" + segment, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(c_offset));
    f.read(reinterpret_cast<char*>(&header), sizeof(header));
  }
  const uint64_t covered = kRecordHeaderBytes + header.payload_bytes;
  ASSERT_LE(covered, c_bytes);
  for (int fill : {0x00, 0xab}) {
    for (uint64_t k = 0; k < c_bytes; ++k) {
      std::string copy = (base_ / ("torn" + std::to_string(fill) + "-" + std::to_string(k))).string();
      fs::copy(dir_, copy);
      {
        std::fstream f(copy + "/" + segment, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(c_offset + k));
        std::string junk(c_bytes - k, static_cast<char>(fill));
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
      }
      RecoveryReport report;
      SpoolOptions o = Options(copy);
      o.reserve_segments = 0;
      auto spool = Spool::Open(o, &report);
      ASSERT_TRUE(spool.ok()) << spool.status();
      EXPECT_TRUE(report.corruptions.empty()) << "offset " << k;
      EXPECT_NE((*spool)->Find(a), nullptr);
      EXPECT_NE((*spool)->Find(b), nullptr);
      // Only a tear in the zero padding leaves the record whole.
      bool whole = k >= covered;
      if (!whole) {
        EXPECT_EQ((*spool)->Find(c), nullptr) << "offset " << k;
      }
      spool->reset();
      fs::remove_all(copy);
    }
  }
}

TEST_F(SpoolTest, FlippedBitInTheMiddleIsReportedAndTheRestKept) {
  MessageId a, b, c;
  std::string segment;
  uint64_t b_offset;
  {
    auto spool = OpenSpool(dir_);
    a = Append(*spool, 1);
    b = Append(*spool, 2);
    c = Append(*spool, 3);
    ASSERT_TRUE(spool->SyncNow().ok());
    b_offset = spool->Find(b)->record_offset;
    segment = SegmentFileOf(dir_, spool->Find(b)->segment_seq);
  }
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(b_offset + 60));
    char byte;
    f.read(&byte, 1);
    byte ^= 0x10;
    f.seekp(static_cast<std::streamoff>(b_offset + 60));
    f.write(&byte, 1);
  }
  {
    RecoveryReport report;
    auto spool = OpenSpool(dir_, &report);
    ASSERT_EQ(report.corruptions.size(), 1u);
    EXPECT_EQ(report.corruptions[0].segment, segment);
    EXPECT_EQ(report.corruptions[0].offset, b_offset);
    EXPECT_TRUE(absl::IsDataLoss(report.corruptions[0].ToStatus()));
    ASSERT_EQ(report.damaged_segments.size(), 1u);
    EXPECT_EQ(report.damaged_segments[0], segment + ".damaged");
    EXPECT_TRUE(fs::exists(segment + ".damaged"));
    EXPECT_NE(spool->Find(a), nullptr);
    EXPECT_EQ(spool->Find(b), nullptr);
    EXPECT_NE(spool->Find(c), nullptr);
    EXPECT_EQ(spool->MessageBytes(c), "X-Prepended: yes\r\n" + Body(3));
  }
  // What was read before moving the segment aside was re-appended: a second start is clean.
  RecoveryReport report;
  auto spool = OpenSpool(dir_, &report);
  EXPECT_TRUE(report.corruptions.empty());
  EXPECT_NE(spool->Find(a), nullptr);
  EXPECT_NE(spool->Find(c), nullptr);
  EXPECT_EQ(spool->MessageBytes(a), "X-Prepended: yes\r\n" + Body(1));
}

TEST_F(SpoolTest, WrapsToNewSegmentsAndRecoversAll) {
  std::vector<MessageId> ids;
  {
    auto spool = OpenSpool(dir_);
    for (int i = 0; i < 60; ++i) ids.push_back(Append(*spool, i, 3000));
    ASSERT_TRUE(spool->SyncNow().ok());
    EXPECT_GE(spool->stats().active_segments, 3u);
    EXPECT_GT(spool->Find(ids.back())->segment_seq, spool->Find(ids.front())->segment_seq);
  }
  RecoveryReport report;
  auto spool = OpenSpool(dir_, &report);
  EXPECT_EQ(report.live_messages, 60u);
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(spool->MessageBytes(ids[i]), "X-Prepended: yes\r\n" + Body(i, 3000)) << i;
  }
}

TEST_F(SpoolTest, FinalSegmentsAreRecycled) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 3;
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<Spool> spool = std::move(*opened);
  std::vector<MessageId> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(Append(*spool, i, 3000));
  ASSERT_TRUE(spool->SyncNow().ok());
  const uint64_t before = spool->stats().active_segments;
  for (MessageId id : ids) {
    StateRecord s;
    s.id = id;
    s.type = RecordType::kDelivered;
    ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
  }
  // Segments are freed oldest first, one per sync.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_EQ(spool->stats().active_segments, 1u);
  EXPECT_GE(spool->stats().segments_freed, before - 1);
  // Freed files were kept for reuse or deleted; none is created on the append path.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.path().extension() == ".q";
  EXPECT_LE(files, 1u + o.reserve_segments);
  EXPECT_EQ(spool->stats().reserve_segments, o.reserve_segments);
  const uint64_t created = spool->stats().segments_created_on_hot_path;
  for (int i = 0; i < 30; ++i) Append(*spool, i, 3000);
  EXPECT_EQ(spool->stats().segments_created_on_hot_path, created);
  ASSERT_TRUE(spool->SyncNow().ok());
  spool.reset();
  RecoveryReport report;
  spool = std::move(*Spool::Open(o, &report));
  EXPECT_EQ(report.live_messages, 30u);
}

TEST_F(SpoolTest, CompactionMovesLongDeferredMessagesAndFreesTheSegment) {
  auto spool = OpenSpool(dir_);
  std::vector<MessageId> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(Append(*spool, i, 3000));
  const uint64_t first_seq = spool->Find(ids[0])->segment_seq;
  for (size_t i = 1; i < ids.size(); ++i) {
    StateRecord s;
    s.id = ids[i];
    s.type = RecordType::kDelivered;
    ASSERT_TRUE(spool->AppendState(s, nullptr).ok());
  }
  StateRecord d;
  d.id = ids[0];
  d.type = RecordType::kDeferred;
  d.attempts = 7;
  d.next_attempt_unix_ms = 1800000000000;
  d.reply = "421 4.7.0 try again later";
  ASSERT_TRUE(spool->AppendState(d, nullptr).ok());
  StateRecord notice;
  notice.id = ids[0];
  notice.type = RecordType::kDelayNotified;
  ASSERT_TRUE(spool->AppendState(notice, nullptr).ok());
  EXPECT_TRUE(spool->Find(ids[0])->delay_notified);
  StateRecord attempt;
  attempt.id = ids[0];
  attempt.type = RecordType::kAttempt;
  attempt.reply = "mx.example.com";
  ASSERT_TRUE(spool->AppendState(attempt, nullptr).ok());
  EXPECT_TRUE(spool->Find(ids[0])->recipients[0].attempt_open);
  ASSERT_TRUE(spool->SyncNow().ok());
  // Pinned messages stay where they are.
  spool->Pin(ids[0]);
  auto moved = spool->MaintainSpace();
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, 0u);
  spool->Unpin(ids[0]);
  moved = spool->MaintainSpace();
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, 1u);
  EXPECT_GT(spool->Find(ids[0])->segment_seq, first_seq);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_EQ(spool->stats().active_segments, 1u);
  spool.reset();
  RecoveryReport report;
  spool = OpenSpool(dir_, &report);
  EXPECT_EQ(report.live_messages, 1u);
  const MessageInfo* info = spool->Find(ids[0]);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->recipients[0].attempts, 7u);
  EXPECT_EQ(info->recipients[0].last_reply, "421 4.7.0 try again later");
  // The delay notice moved with the compacted copy: no second "delayed" DSN after a restart.
  EXPECT_TRUE(info->delay_notified);
  // So did the open attempt, though the segment of its marker was freed: the next delivery will
  // still say it may be a duplicate.
  EXPECT_TRUE(info->recipients[0].attempt_open);
  EXPECT_EQ(spool->MessageBytes(ids[0]), "X-Prepended: yes\r\n" + Body(0, 3000));
}

TEST_F(SpoolTest, SpoolLimitRefusesWholeMessagesAndAcceptsAgainWhenFreed) {
  SpoolOptions o = Options(dir_);
  o.spool_bytes_max = 4 * o.segment_bytes;
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  Spool& spool = **opened;
  std::vector<MessageId> ids;
  absl::Status refused;
  for (int i = 0; i < 1000; ++i) {
    auto r = spool.AppendMessage(Env(i), "", Body(i, 3000), nullptr);
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    ids.push_back(r->id);
  }
  ASSERT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_EQ(spool.stats().live_messages, ids.size());
  // Outcomes can still be recorded while the spool is full.
  for (MessageId id : ids) {
    StateRecord s;
    s.id = id;
    s.type = RecordType::kDelivered;
    ASSERT_TRUE(spool.AppendState(s, nullptr).ok());
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(spool.SyncNow().ok());
  auto again = spool.AppendMessage(Env(1), "", Body(1, 3000), nullptr);
  EXPECT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(spool.SyncNow().ok());
  // Nothing half-written: a restart finds exactly the one live message.
  opened->reset();
  RecoveryReport report;
  auto reopened = Spool::Open(o, &report);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(report.live_messages, 1u);
  EXPECT_TRUE(report.corruptions.empty());
}

TEST_F(SpoolTest, OversizedRecordIsRefused) {
  auto spool = OpenSpool(dir_);
  auto r = spool->AppendMessage(Env(1), "", std::string(70 << 10, 'x'), nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
}

TEST_F(SpoolTest, ReaderSeesOnlyCommittedRecords) {
  auto spool = OpenSpool(dir_);
  MessageId a = Append(*spool, 1);
  ASSERT_TRUE(spool->SyncNow().ok());
  MessageId b = Append(*spool, 2);
  auto reader = SpoolReader::Open(dir_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_NE((*reader)->index().Find(a), nullptr);
  EXPECT_EQ((*reader)->index().Find(b), nullptr);
  ASSERT_TRUE(spool->SyncNow().ok());
  reader = SpoolReader::Open(dir_);
  ASSERT_TRUE(reader.ok());
  const MessageInfo* info = (*reader)->index().Find(b);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->message, "X-Prepended: yes\r\n" + Body(2));
  EXPECT_TRUE((*reader)->corruptions().empty());
}

// Under continuous appends the committed length is republished at most every 50 ms; once the
// spool is quiet, at once. It never runs ahead of what is durable.
TEST_F(SpoolTest, CommittedLengthIsPublishedThrottledAndWhenQuiet) {
  auto spool = OpenSpool(dir_);
  auto reader_finds = [&](MessageId id) {
    auto reader = SpoolReader::Open(dir_);
    EXPECT_TRUE(reader.ok()) << reader.status();
    return reader.ok() && (*reader)->index().Find(id) != nullptr;
  };
  MessageId a = Append(*spool, 1);
  ASSERT_TRUE(spool->SyncNow().ok());  // quiet afterwards: published
  EXPECT_TRUE(reader_finds(a));
  MessageId b = Append(*spool, 2);
  SyncBatch first = spool->BeginSync();
  MessageId c = Append(*spool, 3);  // written while the sync runs: not quiet when it ends
  clock_.AdvanceMillis(10);
  spool->EndSync(first, 0);
  EXPECT_FALSE(reader_finds(b));  // durable, not yet published (10 ms since the last one)
  clock_.AdvanceMillis(40);       // 50 ms
  SyncBatch second = spool->BeginSync();
  MessageId d = Append(*spool, 4);
  spool->EndSync(second, 0);
  EXPECT_TRUE(reader_finds(b));
  EXPECT_TRUE(reader_finds(c));
  EXPECT_FALSE(reader_finds(d));  // not durable
  ASSERT_TRUE(spool->SyncNow().ok());
  EXPECT_TRUE(reader_finds(d));
}

TEST_F(SpoolTest, MmapModeIsEquivalent) {
  SpoolOptions o = Options(dir_);
  o.write_mode = WriteMode::kMmap;
  std::vector<MessageId> ids;
  {
    auto spool = Spool::Open(o);
    ASSERT_TRUE(spool.ok());
    for (int i = 0; i < 40; ++i) {
      auto r = (*spool)->AppendMessage(Env(i), "H: v\r\n", Body(i, 3000), nullptr);
      ASSERT_TRUE(r.ok());
      ids.push_back(r->id);
      EXPECT_EQ((*spool)->MessageBytes(r->id), "H: v\r\n" + Body(i, 3000));
    }
    ASSERT_TRUE((*spool)->SyncNow().ok());
  }
  auto spool = Spool::Open(o);
  ASSERT_TRUE(spool.ok());
  for (int i = 0; i < 40; ++i) EXPECT_EQ((*spool)->MessageBytes(ids[i]), "H: v\r\n" + Body(i, 3000));
}

// --- Reserve refill off the shard thread: TakeReserveRequest / AddReserve -----------------------

class ReserveTest : public SpoolTest {
 protected:
  // Appends messages of 30000 bytes (two per 64 KiB segment) until the spool has `active`
  // segments; returns the ids.
  std::vector<MessageId> AppendUntilActive(Spool& spool, uint64_t active, int first = 0) {
    std::vector<MessageId> ids;
    for (int i = first; spool.stats().active_segments < active && i < first + 100; ++i) {
      ids.push_back(Append(spool, i, 30000));
    }
    EXPECT_EQ(spool.stats().active_segments, active);
    return ids;
  }
  static CreatedSegment CreateFor(const SegmentRequest& r) {
    return SegmentFile::Create(r.path, r.segment_bytes, r.shard);
  }
  static size_t SegmentFiles(const std::string& dir) {
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir)) files += e.path().extension() == ".q";
    return files;
  }
};

TEST_F(ReserveTest, PendingCreationsCountAgainstTheTargetAndTheFileCap) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 2;
  o.spool_bytes_max = 2 * o.segment_bytes;  // 2 segments of messages: 3 files in all
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Spool& spool = **opened;
  EXPECT_EQ(spool.stats().reserve_segments, 2u);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "the reserve is full";

  AppendUntilActive(spool, 1);  // took one reserve segment; one is left
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "a freed segment may come back";
  clock_.AdvanceMillis(Spool::kReserveRefillDelayMs);
  std::optional<SegmentRequest> a = spool.TakeReserveRequest();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->segment_bytes, o.segment_bytes);
  EXPECT_FALSE(fs::exists(a->path)) << "the request names a new file";
  EXPECT_EQ(spool.stats().reserve_pending, 1u);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "reserve 1 + pending 1 = target";
  // The synchronous path counts pending creations too.
  ASSERT_TRUE(spool.MaintainReserve().ok());
  EXPECT_EQ(spool.stats().reserve_segments, 1u);

  AppendUntilActive(spool, 2, 100);  // active 2 + reserve 0 + pending 1 = the cap of 3 files
  EXPECT_EQ(spool.stats().reserve_segments, 0u);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "the pending file fills the cap";
  ASSERT_TRUE(spool.MaintainReserve().ok());
  EXPECT_EQ(SegmentFiles(dir_), 2u) << "MaintainReserve created a file beyond the cap";

  spool.AddReserve(*a, CreateFor(*a));
  EXPECT_EQ(spool.stats().reserve_segments, 1u);
  EXPECT_EQ(spool.stats().reserve_pending, 0u);
  EXPECT_EQ(spool.stats().reserve_segments_handed_back, 1u);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "3 files: the cap";
  EXPECT_EQ(SegmentFiles(dir_), 3u);
}

TEST_F(ReserveTest, ReplacementIsAskedAtOnceOnlyBelowTheLowWaterMark) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 2;  // low-water mark 1: at once when the reserve is empty
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  Spool& spool = **opened;
  AppendUntilActive(spool, 1);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value());
  clock_.AdvanceMillis(Spool::kReserveRefillDelayMs - 1);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value());
  AppendUntilActive(spool, 2, 100);  // the reserve is empty now
  std::optional<SegmentRequest> urgent = spool.TakeReserveRequest();
  ASSERT_TRUE(urgent.has_value()) << "below the low-water mark: at once";
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "back at the mark: wait again";
  std::vector<MessageId> live;
  spool.ForEachMessage([&](const MessageInfo& info) { live.push_back(info.id); });
  for (MessageId id : live) {
    StateRecord s;
    s.id = id;
    s.type = RecordType::kDelivered;
    ASSERT_TRUE(spool.AppendState(s, nullptr).ok());
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(spool.SyncNow().ok());
  EXPECT_EQ(spool.stats().reserve_segments, 1u) << "the first segment was freed into the reserve";
  spool.AddReserve(*urgent, CreateFor(*urgent));
  EXPECT_EQ(spool.stats().reserve_segments, 2u);
  clock_.AdvanceMillis(10 * Spool::kReserveRefillDelayMs);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "full";
  // Short again, above the mark: asked once the delay has run from when it was seen short.
  AppendUntilActive(spool, 2, 200);
  EXPECT_EQ(spool.stats().reserve_segments, 1u);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value());
  clock_.AdvanceMillis(Spool::kReserveRefillDelayMs);
  EXPECT_TRUE(spool.TakeReserveRequest().has_value());
}

TEST_F(ReserveTest, FailedCreationIsRetriedLaterUnderANewName) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 1;
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  Spool& spool = **opened;
  AppendUntilActive(spool, 1);
  std::optional<SegmentRequest> a = spool.TakeReserveRequest();
  ASSERT_TRUE(a.has_value());
  spool.AddReserve(*a, absl::ResourceExhaustedError("write: No space left on device"));
  EXPECT_EQ(spool.stats().reserve_creation_failures, 1u);
  EXPECT_EQ(spool.stats().reserve_pending, 0u);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value()) << "no retry before kReserveRetryMs";
  clock_.AdvanceMillis(Spool::kReserveRetryMs - 1);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value());
  clock_.AdvanceMillis(1);
  std::optional<SegmentRequest> b = spool.TakeReserveRequest();
  ASSERT_TRUE(b.has_value()) << "retried after kReserveRetryMs";
  EXPECT_NE(b->slot, a->slot);
  EXPECT_NE(b->path, a->path);
  spool.AddReserve(*b, CreateFor(*b));
  EXPECT_EQ(spool.stats().reserve_segments, 1u);
  EXPECT_TRUE(fs::exists(b->path));
  EXPECT_FALSE(fs::exists(a->path));
}

TEST_F(ReserveTest, ResultArrivingAfterMoreAppendsAndHotPathCreations) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 2;
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  Spool& spool = **opened;
  std::vector<MessageId> ids = AppendUntilActive(spool, 1);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value());
  clock_.AdvanceMillis(Spool::kReserveRefillDelayMs);
  std::optional<SegmentRequest> a = spool.TakeReserveRequest();
  ASSERT_TRUE(a.has_value());
  // The creation is slow: the spool rolls over 4 more segments meanwhile, emptying the reserve and
  // falling back to creating on the append path.
  std::vector<MessageId> more = AppendUntilActive(spool, 5, 100);
  ids.insert(ids.end(), more.begin(), more.end());
  EXPECT_GE(spool.stats().segments_created_on_hot_path, 2u);
  std::optional<SegmentRequest> b = spool.TakeReserveRequest();
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(a->slot, b->slot);
  // Created only now: the hot path must not have used their names (creation would fail: O_EXCL).
  CreatedSegment created_a = CreateFor(*a);
  ASSERT_TRUE(created_a.ok()) << created_a.status();
  CreatedSegment created_b = CreateFor(*b);
  ASSERT_TRUE(created_b.ok()) << created_b.status();
  spool.AddReserve(*b, std::move(created_b));
  spool.AddReserve(*a, std::move(created_a));
  EXPECT_EQ(spool.stats().reserve_segments, 2u);
  const uint64_t hot = spool.stats().segments_created_on_hot_path;
  more = AppendUntilActive(spool, 7, 200);  // uses the two handed back
  ids.insert(ids.end(), more.begin(), more.end());
  EXPECT_EQ(spool.stats().segments_created_on_hot_path, hot);
  ASSERT_TRUE(spool.SyncNow().ok());
  opened->reset();
  RecoveryReport report;
  auto reopened = Spool::Open(o, &report);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(report.live_messages, ids.size());
  EXPECT_TRUE(report.corruptions.empty());
  for (MessageId id : ids) EXPECT_NE((*reopened)->Find(id), nullptr);
}

TEST_F(ReserveTest, ResultBeyondAFullReserveIsDeleted) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 1;
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  Spool& spool = **opened;
  AppendUntilActive(spool, 1);
  std::optional<SegmentRequest> a = spool.TakeReserveRequest();
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(spool.MaintainReserve().ok());
  EXPECT_EQ(spool.stats().reserve_segments, 0u) << "pending counts toward the target";
  // A freed segment refills the reserve before the creation comes back.
  AppendUntilActive(spool, 2, 100);  // hot path: the reserve is empty
  std::vector<MessageId> live;
  spool.ForEachMessage([&](const MessageInfo& info) { live.push_back(info.id); });
  ASSERT_FALSE(live.empty());
  for (MessageId id : live) {
    StateRecord s;
    s.id = id;
    s.type = RecordType::kDelivered;
    ASSERT_TRUE(spool.AppendState(s, nullptr).ok());
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(spool.SyncNow().ok());
  ASSERT_EQ(spool.stats().reserve_segments, 1u);
  spool.AddReserve(*a, CreateFor(*a));
  EXPECT_EQ(spool.stats().reserve_segments, 1u);
  EXPECT_FALSE(fs::exists(a->path));
}

TEST_F(ReserveTest, RecoveryHandlesLeftOverCreations) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 2;
  uint64_t next_slot = 0;
  {
    auto opened = Spool::Open(o);
    ASSERT_TRUE(opened.ok());
    AppendUntilActive(**opened, 1);
    ASSERT_TRUE((*opened)->SyncNow().ok());
    EXPECT_FALSE((*opened)->TakeReserveRequest().has_value());
    clock_.AdvanceMillis(Spool::kReserveRefillDelayMs);
    // A creation that finished after its spool went away: a whole free segment file.
    std::optional<SegmentRequest> a = (*opened)->TakeReserveRequest();
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(CreateFor(*a).ok());
    next_slot = a->slot + 1;
  }
  // Creations cut short by a crash: one before any byte was written, one after the first
  // megabyte (a valid-looking header in a file shorter than a segment).
  const std::string empty = absl::StrFormat("%s/segment-%06d.q", dir_, next_slot + 5);
  std::ofstream(empty).close();
  const std::string short_file = absl::StrFormat("%s/segment-%06d.q", dir_, next_slot + 6);
  ASSERT_TRUE(SegmentFile::Create(short_file, o.segment_bytes, 0).ok());
  ASSERT_EQ(::truncate(short_file.c_str(), o.segment_bytes / 2), 0);
  // And one more whole free file than the reserve wants.
  const std::string extra = absl::StrFormat("%s/segment-%06d.q", dir_, next_slot + 7);
  ASSERT_TRUE(SegmentFile::Create(extra, o.segment_bytes, 0).ok());

  RecoveryReport report;
  auto opened = Spool::Open(o, &report);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Spool& spool = **opened;
  EXPECT_TRUE(report.corruptions.empty());
  EXPECT_TRUE(report.damaged_segments.empty());
  EXPECT_EQ(report.segments, 1u);
  EXPECT_EQ(spool.stats().reserve_segments, 2u);
  EXPECT_FALSE(fs::exists(empty));
  EXPECT_FALSE(fs::exists(short_file));
  EXPECT_EQ(SegmentFiles(dir_), 3u) << "one active, two in the reserve";
  // New names come after every name found on disk.
  AppendUntilActive(spool, 2, 100);
  EXPECT_FALSE(spool.TakeReserveRequest().has_value());
  clock_.AdvanceMillis(Spool::kReserveRefillDelayMs);
  std::optional<SegmentRequest> b = spool.TakeReserveRequest();
  ASSERT_TRUE(b.has_value());
  EXPECT_GT(b->slot, next_slot + 7);
  // The recovered free files are used like any reserve segment.
  const uint64_t hot = spool.stats().segments_created_on_hot_path;
  spool.AddReserve(*b, CreateFor(*b));
  AppendUntilActive(spool, 4, 200);
  EXPECT_EQ(spool.stats().segments_created_on_hot_path, hot);
}

TEST_F(ReserveTest, CreatorRefillsInTheBackgroundAndStopsPromptly) {
  SpoolOptions o = Options(dir_);
  o.reserve_segments = 2;
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened.ok());
  Spool& spool = **opened;
  // The hand-back queue stands in for the reactor: results are applied on this thread.
  std::mutex mu;
  std::vector<std::pair<SegmentRequest, CreatedSegment>> results;
  auto drain = [&] {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [request, created] : results) spool.AddReserve(request, std::move(created));
    results.clear();
  };
  {
    SegmentCreator creator("test-creator");
    std::vector<MessageId> ids;
    for (int i = 0; i < 40; ++i) {
      clock_.AdvanceMillis(300);  // a segment rolls over every 600 ms
      ids.push_back(Append(spool, i, 30000));
      while (auto request = spool.TakeReserveRequest()) {
        creator.Create(std::move(*request), [&](SegmentRequest r, CreatedSegment created) {
          std::lock_guard<std::mutex> lock(mu);
          results.emplace_back(std::move(r), std::move(created));
        });
      }
      // Wait for the refill as a shard's next turns would, then apply it.
      for (int spin = 0; spin < 2000 && spool.stats().reserve_pending > 0; ++spin) {
        drain();
        if (spool.stats().reserve_pending > 0) ::usleep(1000);
      }
      ASSERT_EQ(spool.stats().reserve_pending, 0u);
    }
    EXPECT_EQ(spool.stats().segments_created_on_hot_path, 0u);
    EXPECT_GE(creator.created_total(), 18u);
    EXPECT_GE(spool.stats().reserve_segments, 1u);
    ASSERT_TRUE(spool.SyncNow().ok());

    // Stopping with creations queued: at most the one in progress finishes.
    for (int i = 0; i < 4; ++i) {
      SegmentRequest r;
      r.path = absl::StrFormat("%s/segment-%06d.q", dir_, 900 + i);
      r.segment_bytes = o.segment_bytes;
      creator.Create(std::move(r), [&](SegmentRequest r, CreatedSegment created) {
        std::lock_guard<std::mutex> lock(mu);
        results.emplace_back(std::move(r), std::move(created));
      });
    }
  }
  // The destructor returned: whatever was going to run has run.
  size_t done = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    done = results.size();
    for (auto& [request, created] : results) {
      EXPECT_TRUE(created.ok()) << created.status();
      EXPECT_TRUE(fs::exists(request.path));
    }
    results.clear();  // dropped: the shard's stand-in is gone
  }
  EXPECT_LE(done, 4u);
  size_t left = 0;
  for (int i = 0; i < 4; ++i) {
    left += fs::exists(absl::StrFormat("%s/segment-%06d.q", dir_, 900 + i));
  }
  EXPECT_EQ(left, done) << "a job that never ran left a file, or one that ran left none";
  // The next start takes the left-overs into the reserve or deletes them.
  opened->reset();
  RecoveryReport report;
  auto reopened = Spool::Open(o, &report);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE(report.corruptions.empty());
  EXPECT_EQ(report.live_messages, 40u);
  EXPECT_EQ((*reopened)->stats().reserve_segments, 2u);
}

}  // namespace
}  // namespace queue
