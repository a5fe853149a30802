// The Authenticator of relayd: the users file (relay/server/users.h) as an atomically replaced
// snapshot, scrypt verifications on worker threads so that a password check never stalls a shard's
// other connections, and the credential cache as a fast path on the shard thread.
//
// Thread-safe. Reload() (SIGHUP) publishes a new snapshot; checks already running finish on the
// snapshot they started with.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/server/auth_throttle.h"
#include "relay/server/authenticator.h"
#include "relay/server/config.h"
#include "relay/server/users.h"

namespace relay::server {

class AuthService final : public Authenticator {
 public:
  // Loads the users file; a missing file gives an empty database and a warning (nobody can log in
  // until `relayctl user-add`).
  static absl::StatusOr<std::unique_ptr<AuthService>> Create(const Config& config);
  ~AuthService() override;

  absl::Status Reload();
  void Check(const smtp::CredentialCheck& credentials, std::string_view peer_ip,
             io::Reactor* reactor, Done done) override;
  bool MaySendAs(std::string_view user, std::string_view address) override;
  bool IsBlocked(std::string_view peer_ip) override;

  uint64_t scrypt_checks() const { return scrypt_checks_.load(); }

 private:
  struct Job {
    std::shared_ptr<const UserDb> users;
    std::string user;
    std::string password;
    std::string throttle_key;
    std::string user_key;  // normalized user name, for the throttle
    io::Reactor* reactor;
    Done done;
  };

  AuthService(std::string users_path, const AuthThrottleLimits& limits)
      : users_path_(std::move(users_path)), throttle_(RealClock::Get(), limits) {}
  // Records the outcome with the throttle and hands it to `done` on the reactor's thread, after
  // the delay the throttle asks for (failures and successes alike, so timing tells nothing).
  void Finish(bool ok, const std::string& throttle_key, const std::string& user_key,
              io::Reactor* reactor, Done done);
  std::shared_ptr<const UserDb> Snapshot() const;
  void WorkerMain();

  const std::string users_path_;
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const UserDb> users_;  // guarded by snapshot_mu_
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;  // guarded by jobs_mu_
  bool stop_ = false;     // guarded by jobs_mu_
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> scrypt_checks_{0};
  AuthThrottle throttle_;
};

}  // namespace relay::server
