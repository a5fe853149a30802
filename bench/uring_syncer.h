// UringSyncer: drives a Spool's group commit the way relay/server/shard.cc does, for benchmarks
// that run a spool without the reactor: Start() submits one IORING_OP_FSYNC (DATASYNC) per target
// of a new batch, Finish() waits for them and calls EndSync. One batch in flight at a time;
// started at the end of a loop turn, completed at the next. Single-threaded.
#pragma once

#include "liburing.h"
#include "queue/spool.h"

namespace relay::queue {

class UringSyncer {
 public:
  UringSyncer() { ok_ = io_uring_queue_init(16, &ring_, 0) == 0; }
  ~UringSyncer() {
    if (ok_) io_uring_queue_exit(&ring_);
  }
  bool ok() const { return ok_; }

  // Completes the sync in flight, if any.
  void Finish(Spool& spool) {
    if (!in_flight_) return;
    int result = 0;
    for (int i = 0; i < pending_; ++i) {
      struct io_uring_cqe* cqe;
      int rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc < 0) {
        result = rc;
        break;
      }
      if (cqe->res < 0 && result == 0) result = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
    }
    in_flight_ = false;
    spool.EndSync(batch_, result);
  }

  // Starts a sync of everything appended so far, if needed.
  void Start(Spool& spool) {
    if (in_flight_ || !spool.NeedsSync()) return;
    batch_ = spool.BeginSync();
    pending_ = 0;
    for (const SyncTarget& t : batch_.targets) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      io_uring_prep_fsync(sqe, t.fd, IORING_FSYNC_DATASYNC);
      ++pending_;
    }
    if (pending_ == 0) {
      spool.EndSync(batch_, 0);
      return;
    }
    io_uring_submit(&ring_);
    in_flight_ = true;
  }

 private:
  struct io_uring ring_;
  bool ok_ = false;
  bool in_flight_ = false;
  int pending_ = 0;
  SyncBatch batch_;
};

}  // namespace relay::queue
