#include "relay/server/signing_pool.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "relay/base/log.h"

namespace relay::server {

absl::StatusOr<std::unique_ptr<SigningPool>> SigningPool::Create(uint32_t threads) {
  if (threads > kThreadsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("signing pool: ", threads, " threads, at most ", kThreadsMax));
  }
  if (threads == 0) {
    threads = std::thread::hardware_concurrency();
    if (threads == 0) threads = 1;
  }
  std::unique_ptr<SigningPool> pool(new SigningPool());
  for (uint32_t i = 0; i < threads; ++i) {
    pool->workers_.emplace_back([p = pool.get(), i] {
      SetThreadLogTag(absl::StrCat("sign", i));
      // Named for ps, top and /proc/<pid>/task/*/comm (15 bytes at most): the end-to-end tests
      // tell from it where port 25's checks spent their CPU time.
      pthread_setname_np(pthread_self(), absl::StrCat("relay-work", i).substr(0, 15).c_str());
      p->WorkerMain();
    });
  }
  return pool;
}

SigningPool::~SigningPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void SigningPool::Sign(dkim::SigningSession session, std::vector<std::string_view> parts,
                       int64_t unix_time_s, io::Reactor* reactor, Done done) {
  Job job;
  job.session.emplace(std::move(session));
  job.parts = std::move(parts);
  job.unix_time_s = unix_time_s;
  job.signed_done = std::move(done);
  job.reactor = reactor;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

bool SigningPool::TryRun(std::function<void()> work, io::Reactor* reactor,
                         std::function<void()> done, size_t queued_max) {
  Job job;
  job.work = std::move(work);
  job.done = std::move(done);
  job.reactor = reactor;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (work_queued_ >= queued_max) {
      ++refused_total_;
      return false;
    }
    ++work_queued_;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

uint64_t SigningPool::refused_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_total_;
}

size_t SigningPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

uint64_t SigningPool::signed_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return signed_total_;
}

void SigningPool::WorkerMain() {
  for (;;) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    // Jobs already queued are finished even when stopping: each caller waits for its `done`.
    if (jobs_.empty()) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    if (job.work) --work_queued_;
    lock.unlock();

    if (job.work) {
      job.work();
      job.reactor->RunInLoop(std::move(job.done));
      continue;
    }
    for (std::string_view part : job.parts) job.session->Update(part);
    absl::StatusOr<std::string> fields = job.session->Finish(job.unix_time_s);
    // Counted before the result is posted: whoever sees the result also sees it counted.
    lock.lock();
    ++signed_total_;
    lock.unlock();
    job.reactor->RunInLoop(
        [done = std::move(job.signed_done), fields = std::move(fields),
         report = job.session->report()]() mutable { done(std::move(fields), std::move(report)); });
  }
}

}  // namespace relay::server
