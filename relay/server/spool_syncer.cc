#include "relay/server/spool_syncer.h"

#include <utility>

#include "relay/base/check.h"

namespace relay::server {

SpoolSyncer::SpoolSyncer(io::Reactor* reactor, queue::Spool* spool,
                         std::function<void(const SyncReport&)> on_done)
    : reactor_(reactor), spool_(spool), on_done_(std::move(on_done)) {
  // Only wakes the loop: the TurnEnd that follows begins the batch the outcomes waited for.
  outcome_timer_.set_callback([] {});
  companion_timer_.set_callback([] {});
}

void SpoolSyncer::set_companion(SyncCompanion* companion, int interval_ms) {
  companion_ = companion;
  companion_interval_ms_ = interval_ms;
}

SpoolSyncer::~SpoolSyncer() {
  // A batch in flight would complete into freed memory: the owner stops only once none runs.
  CHECK(in_flight() == 0);
  reactor_->timers().Cancel(&outcome_timer_);
  reactor_->timers().Cancel(&companion_timer_);
}

void SpoolSyncer::TurnEnd(bool prompt) {
  if (prompt) spool_->RequestPromptSync();
  if (companion_ != nullptr && companion_interval_ms_ > 0) {
    if (prompt) companion_due_ms_ = 0;
    SyncCompanionWhenDue();
  }
  // One new batch per turn at most: it takes every record appended so far.
  if (spool_->NeedsSync() || CompanionAlone()) {
    Begin();
  } else if (int64_t due_ms = spool_->OutcomeSyncDueMs(); due_ms >= 0) {
    if (!outcome_timer_.scheduled() || outcome_timer_.deadline_ms() > due_ms) {
      reactor_->timers().Schedule(&outcome_timer_, due_ms);
    }
  }
}

// The companion has lines and the spool nothing that waits: a batch of the companion's own.
// (With spool records waiting for the outcome bound, the companion waits with them.)
bool SpoolSyncer::CompanionAlone() const {
  return companion_ != nullptr && companion_interval_ms_ == 0 && companion_->HasUnsynced() &&
         !spool_->HasUnsyncedRecords() && spool_->CanBeginSync();
}

void SpoolSyncer::SyncCompanionWhenDue() {
  if (companion_pending_ > 0 || !companion_->HasUnsynced()) return;
  const int64_t now = reactor_->NowMs();
  if (now < companion_due_ms_) {
    if (!companion_timer_.scheduled())
      reactor_->timers().Schedule(&companion_timer_, companion_due_ms_);
    return;
  }
  std::vector<int> fds;
  companion_token_ = companion_->BeginSync(&fds);
  companion_due_ms_ = now + companion_interval_ms_;
  if (!spool_->options().fsync || fds.empty()) {
    companion_->EndSync(companion_token_, 0);
    return;
  }
  while (companion_ops_.size() < fds.size()) {
    companion_ops_.push_back(std::make_unique<io::Completion>());
  }
  companion_pending_ = static_cast<int>(fds.size());
  companion_result_ = 0;
  for (size_t i = 0; i < fds.size(); ++i) {
    companion_ops_[i]->set_handler([this](int result, uint32_t) { OnCompanionSynced(result); });
    reactor_->Fsync(fds[i], /*datasync=*/true, companion_ops_[i].get());
  }
}

void SpoolSyncer::OnCompanionSynced(int result) {
  if (result < 0 && companion_result_ == 0) companion_result_ = result;
  if (--companion_pending_ > 0) return;
  companion_->EndSync(companion_token_, companion_result_);
}

void SpoolSyncer::Begin() {
  if (free_.empty()) {
    batches_.push_back(std::make_unique<Batch>());
    free_.push_back(batches_.back().get());
  }
  Batch* b = free_.back();
  free_.pop_back();
  b->batch = spool_->BeginSync();
  b->started_ns = reactor_->clock()->MonotonicNanos();
  const uint64_t appends = spool_->stats().appends;
  b->records = appends - appends_synced_;
  appends_synced_ = appends;
  b->companion_fds.clear();
  const bool with_companion = companion_ != nullptr && companion_interval_ms_ == 0;
  if (with_companion) b->companion_token = companion_->BeginSync(&b->companion_fds);
  if (!spool_->options().fsync) {  // a spool without fsync (benchmarks): nothing to wait for
    b->companion_fds.clear();
  }
  const size_t targets = b->batch.targets.size() + b->companion_fds.size();
  if (targets == 0) {
    spool_->EndSync(b->batch, 0);
    if (with_companion) companion_->EndSync(b->companion_token, 0);
    free_.push_back(b);
    return;
  }
  ++in_flight_;
  b->pending = static_cast<int>(targets);
  b->result = 0;
  b->companion_result = 0;
  while (b->ops.size() < targets) b->ops.push_back(std::make_unique<io::Completion>());
  for (size_t i = 0; i < targets; ++i) {
    const bool companion = i >= b->batch.targets.size();
    const int fd =
        companion ? b->companion_fds[i - b->batch.targets.size()] : b->batch.targets[i].fd;
    io::Completion* op = b->ops[i].get();
    op->set_handler(
        [this, b, companion](int result, uint32_t) { OnTargetSynced(b, result, companion); });
    reactor_->Fsync(fd, /*datasync=*/true, op);
  }
}

void SpoolSyncer::OnTargetSynced(Batch* b, int result, bool companion) {
  int& kept = companion ? b->companion_result : b->result;
  if (result < 0 && kept == 0) kept = result;
  if (--b->pending > 0) return;
  --in_flight_;
  spool_->EndSync(b->batch, b->result);
  if (companion_ != nullptr && companion_interval_ms_ == 0) {
    companion_->EndSync(b->companion_token, b->companion_result);
  }
  free_.push_back(b);
  if (on_done_) {
    SyncReport report;
    report.records = b->records;
    report.elapsed_ns = reactor_->clock()->MonotonicNanos() - b->started_ns;
    report.result = b->result;
    on_done_(report);
  }
}

}  // namespace relay::server
