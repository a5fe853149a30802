#include "relay/server/spool_syncer.h"

#include <utility>

#include "relay/base/check.h"

namespace relay::server {

SpoolSyncer::SpoolSyncer(io::Reactor* reactor, queue::Spool* spool,
                         std::function<void(const SyncReport&)> on_done)
    : reactor_(reactor), spool_(spool), on_done_(std::move(on_done)) {
  // Only wakes the loop: the TurnEnd that follows begins the batch the outcomes waited for.
  outcome_timer_.set_callback([] {});
}

SpoolSyncer::~SpoolSyncer() {
  // A batch in flight would complete into freed memory: the owner stops only once none runs.
  CHECK(in_flight_ == 0);
  reactor_->timers().Cancel(&outcome_timer_);
}

void SpoolSyncer::TurnEnd(bool prompt) {
  if (prompt) spool_->RequestPromptSync();
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
  return companion_ != nullptr && companion_->HasUnsynced() && !spool_->HasUnsyncedRecords() &&
         spool_->CanBeginSync();
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
  if (companion_ != nullptr) b->companion_token = companion_->BeginSync(&b->companion_fds);
  if (!spool_->options().fsync) {  // a spool without fsync (benchmarks): nothing to wait for
    b->companion_fds.clear();
  }
  const size_t targets = b->batch.targets.size() + b->companion_fds.size();
  if (targets == 0) {
    spool_->EndSync(b->batch, 0);
    if (companion_ != nullptr) companion_->EndSync(b->companion_token, 0);
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
  if (companion_ != nullptr) companion_->EndSync(b->companion_token, b->companion_result);
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
