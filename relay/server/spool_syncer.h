// SpoolSyncer: drives a Spool's group commit on a reactor (queue/spool.h, "Group commit"). At the
// end of each loop turn, TurnEnd begins a batch of every record appended so far when the spool
// asks for one, with one IORING_OP_FSYNC (DATASYNC) per segment it touches; when all of them
// complete, the spool runs the durable callbacks (and so the 250 replies). Outcomes alone wait up
// to [queue] outcome_sync_ms: a timer wakes the loop then. Up to [queue] syncs_in_flight_max
// batches run at once (the spool says when another may begin).
//
// The shards and the queue benchmarks use this one driver, so the benchmarks measure what
// production does. Reactor thread only; the reactor and the spool outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "queue/spool.h"
#include "relay/io/reactor.h"
#include "relay/io/timer_wheel.h"

namespace relay::server {

// Files made durable with the spool's batches (the event journal): as a batch begins, BeginSync
// writes out what it holds and names the descriptors to fdatasync with the batch; EndSync gets the
// token back with their result once all of them are synced. Their result does not touch the
// spool's: the spool fails only for its own files.
class SyncCompanion {
 public:
  virtual ~SyncCompanion() = default;
  virtual bool HasUnsynced() const = 0;
  virtual uint64_t BeginSync(std::vector<int>* fds) = 0;
  virtual void EndSync(uint64_t token, int result) = 0;
};

// A batch that ended: how many appends it covered, how long it took, its result (0 or -errno).
struct SyncReport {
  uint64_t records = 0;
  int64_t elapsed_ns = 0;
  int result = 0;
};

class SpoolSyncer {
 public:
  // `on_done` runs after the spool has retired each batch that had files to sync (a spool opened
  // without fsync, for benchmarks only, retires its batches at once and reports none).
  SpoolSyncer(io::Reactor* reactor, queue::Spool* spool,
              std::function<void(const SyncReport&)> on_done);
  ~SpoolSyncer();
  SpoolSyncer(const SpoolSyncer&) = delete;
  SpoolSyncer& operator=(const SpoolSyncer&) = delete;

  // Syncs `companion` from now on (null: none); it outlives the syncer. With interval_ms 0, in
  // every batch: its lines are durable with the records they describe, at the price of a second
  // fdatasync in each batch. Otherwise on its own, at most every interval_ms, one sync at a time:
  // the spool's batches do not wait for it.
  void set_companion(SyncCompanion* companion, int interval_ms = 0);

  // At the end of a loop turn. `prompt` (a stopping shard): records nobody waits for do not wait
  // for the outcome bound either.
  void TurnEnd(bool prompt);
  int in_flight() const { return in_flight_ + (companion_pending_ > 0 ? 1 : 0); }

 private:
  struct Batch {
    queue::SyncBatch batch;
    std::vector<std::unique_ptr<io::Completion>> ops;  // one per target, reused
    std::vector<int> companion_fds;
    uint64_t companion_token = 0;
    int pending = 0;
    int result = 0;            // of the spool's targets
    int companion_result = 0;  // of the companion's
    int64_t started_ns = 0;
    uint64_t records = 0;
  };
  void Begin();
  void OnTargetSynced(Batch* batch, int result, bool companion);
  bool CompanionAlone() const;
  // Interval mode: begins the companion's own sync when it is due.
  void SyncCompanionWhenDue();
  void OnCompanionSynced(int result);

  SyncCompanion* companion_ = nullptr;
  int companion_interval_ms_ = 0;  // 0: the companion rides in the spool's batches
  // Interval mode: the sync in flight (its completions, how many are pending, its token).
  std::vector<std::unique_ptr<io::Completion>> companion_ops_;
  int companion_pending_ = 0;
  uint64_t companion_token_ = 0;
  int companion_result_ = 0;
  int64_t companion_due_ms_ = 0;
  io::Timer companion_timer_;  // only wakes the loop
  io::Reactor* const reactor_;
  queue::Spool* const spool_;
  const std::function<void(const SyncReport&)> on_done_;
  std::vector<std::unique_ptr<Batch>> batches_;  // busy and free, reused
  std::vector<Batch*> free_;
  int in_flight_ = 0;
  uint64_t appends_synced_ = 0;  // spool appends covered by the batches begun so far
  io::Timer outcome_timer_;      // armed at the spool's OutcomeSyncDueMs; only wakes the loop
};

}  // namespace relay::server
