// SegmentCreator: a background thread that creates segment files (SegmentFile::Create writes the
// whole file with zeros and fsyncs it and its directory: tens to hundreds of milliseconds), so
// that a shard's thread never waits for one. It serves one Spool's TakeReserveRequest/AddReserve
// protocol (spool.h, "Space"):
//
//   queue::SegmentCreator creator("segments0");
//   while (auto request = spool->TakeReserveRequest()) {
//     creator.Create(std::move(*request), [reactor](SegmentRequest r, CreatedSegment created) {
//       ... reactor->RunInLoop(...): spool->AddReserve(r, std::move(created)) on the shard ...
//     });
//   }
//
// Contract. Create() may be called from any thread; jobs run one at a time, in submission order.
// `done` runs on the creator's thread, exactly once for each job that started, never inside
// Create(); handing the result to the Spool's thread is the caller's job (the Spool is not
// thread-safe). The destructor drops the jobs not started yet (no file, no `done`), waits for the
// one in progress (its `done` runs before the destructor returns: one creation at most) and joins
// the thread. Destroy the creator before whatever its `done` callbacks reach. A file whose result
// is dropped after that stays behind as a free segment, which the next Spool::Open takes into the
// reserve or deletes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "queue/segment.h"
#include "queue/spool.h"

namespace queue {

using CreatedSegment = absl::StatusOr<std::unique_ptr<SegmentFile>>;

class SegmentCreator {
 public:
  using Done = absl::AnyInvocable<void(SegmentRequest request, CreatedSegment created)>;

  // `thread_tag` names the thread in log lines.
  explicit SegmentCreator(std::string thread_tag);
  ~SegmentCreator();
  SegmentCreator(const SegmentCreator&) = delete;
  SegmentCreator& operator=(const SegmentCreator&) = delete;

  void Create(SegmentRequest request, Done done);

  // Jobs queued and not started yet; files created so far (for tests and benchmarks).
  size_t queued() const;
  uint64_t created_total() const;

 private:
  struct Job {
    SegmentRequest request;
    Done done;
  };
  void WorkerMain(const std::string& thread_tag);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;        // guarded by mu_
  bool stop_ = false;           // guarded by mu_
  uint64_t created_total_ = 0;  // guarded by mu_
  std::thread worker_;
};

}  // namespace queue
