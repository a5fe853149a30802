#include "relay/server/spool_syncer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::server {
namespace {

class SpoolSyncerTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(/*fsync=*/true); }
  void Open(bool fsync) {
    syncer_.reset();
    spool_.reset();
    reactor_.reset();
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/spool";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto reactor = io::Reactor::Create({});
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(*reactor);
    queue::SpoolOptions o;
    o.directory = dir_;
    o.segment_bytes = 1 << 20;
    o.reserve_segments = 0;
    o.fsync = fsync;
    o.outcome_sync_ms = 1000;
    o.clock = reactor_->clock();
    auto spool = queue::Spool::Open(o);
    ASSERT_TRUE(spool.ok()) << spool.status();
    spool_ = std::move(*spool);
    syncer_ = std::make_unique<SpoolSyncer>(
        reactor_.get(), spool_.get(), [this](const SyncReport& r) { reports_.push_back(r); });
  }
  void TearDown() override {
    syncer_.reset();
    spool_.reset();
    reactor_.reset();
  }

  queue::MessageId Append(int* durable) {
    auto appended = spool_->AppendMessage({"a@example.test", {"b@example.test"}}, "",
                                          "Subject: x\r\n\r\nbody\r\n", [durable](absl::Status s) {
                                            if (s.ok()) ++*durable;
                                          });
    EXPECT_TRUE(appended.ok()) << appended.status();
    return appended.ok() ? appended->id : queue::MessageId{};
  }
  void RunUntilIdle() {
    for (int i = 0; i < 1000 && syncer_->in_flight() > 0; ++i) reactor_->RunOnce(10);
  }

  std::string dir_;
  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<queue::Spool> spool_;
  std::unique_ptr<SpoolSyncer> syncer_;
  std::vector<SyncReport> reports_;
};

// The messages of one turn share one batch; their callbacks run only when it has completed.
TEST_F(SpoolSyncerTest, OneBatchPerTurnCoversEverythingAppended) {
  int durable = 0;
  for (int i = 0; i < 3; ++i) Append(&durable);
  syncer_->TurnEnd(/*prompt=*/false);
  EXPECT_EQ(syncer_->in_flight(), 1);
  EXPECT_EQ(durable, 0);
  RunUntilIdle();
  EXPECT_EQ(syncer_->in_flight(), 0);
  EXPECT_EQ(durable, 3);
  ASSERT_EQ(reports_.size(), 1u);
  EXPECT_EQ(reports_[0].records, 3u);
  EXPECT_EQ(reports_[0].result, 0);
  EXPECT_GE(reports_[0].elapsed_ns, 0);

  // Nothing new: no batch.
  syncer_->TurnEnd(false);
  EXPECT_EQ(syncer_->in_flight(), 0);
  // The next turn's message gets a batch of its own.
  Append(&durable);
  syncer_->TurnEnd(false);
  RunUntilIdle();
  EXPECT_EQ(durable, 4);
  ASSERT_EQ(reports_.size(), 2u);
  EXPECT_EQ(reports_[1].records, 1u);
}

// An outcome nobody waits for waits for outcome_sync_ms (a timer wakes the loop), unless the
// owner is stopping.
TEST_F(SpoolSyncerTest, OutcomesWaitForTheBoundUnlessPrompt) {
  int durable = 0;
  queue::MessageId id = Append(&durable);
  syncer_->TurnEnd(false);
  RunUntilIdle();
  queue::StateRecord state;
  state.type = queue::RecordType::kDelivered;
  state.id = id;
  state.reply = "250 2.0.0 ok";
  ASSERT_TRUE(spool_->AppendState(state, nullptr).ok());
  syncer_->TurnEnd(false);
  EXPECT_EQ(syncer_->in_flight(), 0);
  EXPECT_TRUE(spool_->HasUnsyncedRecords());
  syncer_->TurnEnd(/*prompt=*/true);
  EXPECT_EQ(syncer_->in_flight(), 1);
  RunUntilIdle();
  EXPECT_FALSE(spool_->HasUnsyncedRecords());
  ASSERT_EQ(reports_.size(), 2u);
  EXPECT_EQ(reports_[1].records, 1u);
}

// A spool opened without fsync (benchmarks only) retires a batch at once; nothing is in flight.
TEST_F(SpoolSyncerTest, WithoutFsyncNothingWaits) {
  Open(/*fsync=*/false);
  int durable = 0;
  Append(&durable);
  syncer_->TurnEnd(false);
  EXPECT_EQ(syncer_->in_flight(), 0);
  EXPECT_EQ(durable, 1);
  EXPECT_TRUE(reports_.empty());
}

// A companion (the event journal) whose file is synced with the spool's batches.
class FakeCompanion : public SyncCompanion {
 public:
  explicit FakeCompanion(int fd) : fd_(fd) {}
  bool HasUnsynced() const override { return unsynced; }
  uint64_t BeginSync(std::vector<int>* fds) override {
    if (unsynced) fds->push_back(fd_);
    unsynced = false;
    begun.push_back(++token_);
    return token_;
  }
  void EndSync(uint64_t token, int result) override { ended.push_back({token, result}); }

  bool unsynced = false;
  std::vector<uint64_t> begun;
  std::vector<std::pair<uint64_t, int>> ended;

 private:
  int fd_;
  uint64_t token_ = 0;
};

TEST_F(SpoolSyncerTest, ACompanionIsSyncedWithTheSpoolAndAlone) {
  const int fd = ::open((dir_ + "/companion").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  FakeCompanion companion(fd);
  syncer_->set_companion(&companion);
  int durable = 0;
  Append(&durable);
  companion.unsynced = true;
  syncer_->TurnEnd(false);
  ASSERT_EQ(companion.begun.size(), 1u);
  EXPECT_TRUE(companion.ended.empty());
  RunUntilIdle();
  EXPECT_EQ(durable, 1);
  ASSERT_EQ(companion.ended.size(), 1u);
  EXPECT_EQ(companion.ended[0], std::make_pair(uint64_t{1}, 0));

  // Lines of the companion alone (nothing in the spool) get a batch of their own.
  companion.unsynced = true;
  syncer_->TurnEnd(false);
  EXPECT_EQ(syncer_->in_flight(), 1);
  RunUntilIdle();
  ASSERT_EQ(companion.ended.size(), 2u);
  EXPECT_EQ(companion.ended[1], std::make_pair(uint64_t{2}, 0));
  syncer_->TurnEnd(false);
  EXPECT_EQ(companion.begun.size(), 2u) << "nothing to sync: no batch";
  syncer_->set_companion(nullptr);
  ::close(fd);
}

TEST_F(SpoolSyncerTest, ACompanionOnAnIntervalSyncsOnItsOwn) {
  const int fd = ::open((dir_ + "/companion").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  FakeCompanion companion(fd);
  syncer_->set_companion(&companion, /*interval_ms=*/50);
  int durable = 0;
  Append(&durable);
  companion.unsynced = true;
  syncer_->TurnEnd(false);
  EXPECT_EQ(syncer_->in_flight(), 2) << "the spool's batch and the companion's own sync";
  RunUntilIdle();
  EXPECT_EQ(durable, 1);
  ASSERT_EQ(companion.ended.size(), 1u);
  // More lines at once: they wait for the interval (a timer wakes the loop).
  companion.unsynced = true;
  syncer_->TurnEnd(false);
  EXPECT_EQ(companion.begun.size(), 1u);
  for (int i = 0; i < 100 && companion.ended.size() < 2; ++i) {
    reactor_->RunOnce(10);
    syncer_->TurnEnd(false);
  }
  EXPECT_EQ(companion.ended.size(), 2u);
  syncer_->set_companion(nullptr);
  ::close(fd);
}

}  // namespace
}  // namespace relay::server
