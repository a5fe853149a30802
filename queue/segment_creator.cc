#include "queue/segment_creator.h"

#include <utility>

#include "relay/base/log.h"

namespace queue {

using relay::SetThreadLogTag;

SegmentCreator::SegmentCreator(std::string thread_tag)
    : worker_([this, tag = std::move(thread_tag)] { WorkerMain(tag); }) {}

SegmentCreator::~SegmentCreator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    jobs_.clear();  // never started: no file exists for them
  }
  cv_.notify_all();
  worker_.join();
}

void SegmentCreator::Create(SegmentRequest request, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(Job{std::move(request), std::move(done)});
  }
  cv_.notify_one();
}

size_t SegmentCreator::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

uint64_t SegmentCreator::created_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return created_total_;
}

void SegmentCreator::WorkerMain(const std::string& thread_tag) {
  SetThreadLogTag(thread_tag);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    CreatedSegment created =
        SegmentFile::Create(job.request.path, job.request.segment_bytes, job.request.shard);
    const bool ok = created.ok();
    job.done(std::move(job.request), std::move(created));
    lock.lock();
    if (ok) ++created_total_;
  }
}

}  // namespace queue
