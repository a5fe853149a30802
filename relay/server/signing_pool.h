// SigningPool: the relay's worker threads for CPU-heavy per-message work, so that it never holds
// up the I/O of the other connections of a shard: DKIM signatures (RFC 6376 §5), and port 25's
// DKIM verification, ARC validation and ARC sealing of received mail (TryRun; issue 13: one
// message with many signatures or a long ARC chain stalled every session of its shard).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<SigningPool> pool, SigningPool::Create(threads));
//   pool->Sign(signer->Begin(), {missing_headers, message}, unix_time_s, reactor,
//              [this](absl::StatusOr<std::string> fields, dkim::SignReport report) { ... });
//   if (!pool->TryRun([] { /* worker */ }, reactor, [] { /* reactor's thread */ }, queued_max)) {
//     // too much already waits: answer 451 4.3.2
//   }
//
// Contract. Sign() and TryRun() may be called from any thread. For Sign the worker feeds `parts`
// to the session in order (body canonicalization and hash, header hash), calls Finish and hands
// the result to `done`; for TryRun it runs `work`, then `done`. `done` always runs on the
// reactor's thread through reactor->RunInLoop(), never inside Sign() or TryRun(), exactly once,
// and results come back in completion order, not submission order. The caller keeps alive until
// `done` has run: the bytes behind `parts` (or whatever `work` reads), the Signer the session came
// from and the reactor. A caller that goes away meanwhile (a closed connection) stays alive but
// ignores the result, as SmtpConnection does with its pending flags.
//
// Bounds. Signatures are not refused (submission's own backpressure bounds them). TryRun refuses,
// returning false and running neither function, when `queued_max` of its jobs already wait for a
// worker ([receive] checks_queued_max): the caller answers with a temporary failure rather than
// let a queue of strangers' messages grow without bound.
//
// The destructor lets the workers finish every job already queued (each `done` is still posted
// to its reactor) and joins them. relayd destroys the pool after joining the shards: a shard
// frees a connection only once its work has come back, so no job is left by then.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <condition_variable>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "dkim/signer.h"
#include "relay/io/reactor.h"

namespace relay::server {

class SigningPool {
 public:
  // The DKIM-Signature fields (or why the message cannot be signed) and the session's report
  // (the algorithm of each signature).
  using Done = std::function<void(absl::StatusOr<std::string> fields, dkim::SignReport report)>;
  // Upper bound of `threads`; 0 means one per online core.
  static constexpr uint32_t kThreadsMax = 256;

  static absl::StatusOr<std::unique_ptr<SigningPool>> Create(uint32_t threads);
  ~SigningPool();
  SigningPool(const SigningPool&) = delete;
  SigningPool& operator=(const SigningPool&) = delete;

  // Queues one message: `parts` are fed to `session` in order (the missing header fields the
  // relay adds, then the message as received), then Finish(unix_time_s).
  void Sign(dkim::SigningSession session, std::vector<std::string_view> parts,
            int64_t unix_time_s, io::Reactor* reactor, Done done);
  // Queues `work`, then `done` on `reactor`'s thread; false (neither runs) when `queued_max` jobs
  // of TryRun already wait.
  bool TryRun(std::function<void()> work, io::Reactor* reactor, std::function<void()> done,
              size_t queued_max);

  size_t thread_count() const { return workers_.size(); }
  // Jobs queued and not yet picked by a worker (for tests and metrics).
  size_t queued() const;
  uint64_t signed_total() const;
  // TryRun jobs refused because the queue was full.
  uint64_t refused_total() const;

 private:
  struct Job {
    // A signature (Sign) ...
    std::optional<dkim::SigningSession> session;
    std::vector<std::string_view> parts;
    int64_t unix_time_s = 0;
    Done signed_done;
    // ... or any work (TryRun).
    std::function<void()> work;
    std::function<void()> done;
    io::Reactor* reactor = nullptr;
  };

  SigningPool() = default;
  void WorkerMain();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;      // guarded by mu_
  size_t work_queued_ = 0;    // TryRun jobs in jobs_; guarded by mu_
  bool stop_ = false;         // guarded by mu_
  uint64_t signed_total_ = 0; // guarded by mu_
  uint64_t refused_total_ = 0;  // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace relay::server
