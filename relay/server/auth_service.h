// The Authenticator of relayd: the users file (relay/server/users.h) as an atomically replaced
// snapshot, scrypt verifications on worker threads so that a password check never stalls a shard's
// other connections, the credential cache as a fast path on the shard thread, and the AUTH
// throttle (auth_throttle.h) in front of both.
//
// The scrypt work queue holds at most `checks_queued_max` checks: beyond that an AUTH gets 454
// 4.7.0 at once (RFC 4954 §6: a temporary failure, the session carries on), so a flood of
// attempts costs neither memory nor an ever longer wait for everyone else. A worker re-checks the
// throttle for the client and user before it hashes: attempts queued before their client was
// blocked are answered 454 without scrypt.
//
// Thread-safe. Reload() (SIGHUP) publishes a new snapshot; checks already running finish on the
// snapshot they started with. A caller whose session ends while its check is queued stays alive
// until `done` has run and ignores the result (SmtpConnection's auth_pending_), the same contract
// as SigningPool's. The destructor lets the workers finish the queued checks (each `done` is still
// posted to its reactor) and joins them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/base/clock.h"
#include "relay/server/auth_throttle.h"
#include "relay/server/authenticator.h"
#include "relay/server/config.h"
#include "relay/server/users.h"

namespace relay::server {

struct AuthServiceOptions {
  std::string users_path;
  AuthThrottleLimits throttle;
  size_t checks_queued_max = 128;
  // 0: no workers; queued checks run only in RunQueuedChecks() (tests).
  uint32_t worker_threads = 1;
  const Clock* clock = RealClock::Get();
};

class AuthService final : public Authenticator {
 public:
  static AuthServiceOptions OptionsFrom(const Config& config);
  // Loads the users file; a missing file gives an empty database and a warning (nobody can log in
  // until `relayctl user-add`).
  static absl::StatusOr<std::unique_ptr<AuthService>> Create(const Config& config);
  static absl::StatusOr<std::unique_ptr<AuthService>> Create(AuthServiceOptions options);
  ~AuthService() override;

  absl::Status Reload();
  void Check(const smtp::CredentialCheck& credentials, std::string_view peer_ip,
             io::Reactor* reactor, Done done) override;
  bool MaySendAs(std::string_view user, std::string_view address) override;
  bool IsBlocked(std::string_view peer_ip) override;

  // Runs the queued checks on the calling thread; returns how many (tests, worker_threads = 0).
  size_t RunQueuedChecks();
  size_t queued() const;
  uint64_t scrypt_checks() const { return scrypt_checks_.load(); }
  // AUTH attempts answered 454 because the queue was full.
  uint64_t refused_queue_full() const { return refused_queue_full_.load(); }

 private:
  struct Job {
    std::shared_ptr<const UserDb> users;
    std::string user;       // as sent
    std::string password;
    std::string client;     // ClientKey
    std::string user_key;   // normalized, for the throttle
    io::Reactor* reactor;
    Done done;
  };

  explicit AuthService(AuthServiceOptions options)
      : users_path_(std::move(options.users_path)),
        checks_queued_max_(options.checks_queued_max),
        throttle_(options.clock, options.throttle) {}
  // Records the outcome with the throttle and hands it to `done` on the reactor's thread, after
  // the delay the throttle asks for (failures and successes alike, so timing tells nothing).
  void Finish(bool ok, const std::string& client, const std::string& user_key,
              io::Reactor* reactor, Done done);
  // 454 4.7.0 on the reactor's thread, at once and without touching the throttle.
  static void Refuse(io::Reactor* reactor, Done done);
  // False when the queue is full (the check was not queued).
  bool Enqueue(Job job);
  // The next queued check; with `wait`, blocks until there is one or the service stops. False:
  // none (or stopping with the queue empty).
  bool TakeJob(Job* job, bool wait);
  void RunJob(Job job);
  std::shared_ptr<const UserDb> Snapshot() const;
  void WorkerMain();

  const std::string users_path_;
  const size_t checks_queued_max_;
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const UserDb> users_;  // guarded by snapshot_mu_
  mutable std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;             // guarded by jobs_mu_; at most checks_queued_max_
  bool stop_ = false;                // guarded by jobs_mu_
  uint64_t refused_since_full_ = 0;  // guarded by jobs_mu_; 0: the queue is not full (or not yet)
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> scrypt_checks_{0};
  std::atomic<uint64_t> refused_queue_full_{0};
  AuthThrottle throttle_;
};

}  // namespace relay::server
