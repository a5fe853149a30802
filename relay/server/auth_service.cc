#include "relay/server/auth_service.h"

#include "absl/strings/str_cat.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/server/client_key.h"

namespace relay::server {

absl::StatusOr<std::unique_ptr<AuthService>> AuthService::Create(const Config& config) {
  AuthThrottleLimits limits;
  limits.window_ms = config.auth.failure_window_ms;
  limits.failures_before_delay = static_cast<int>(config.auth.failures_before_delay);
  limits.delay_per_failure_ms = config.auth.failure_delay_ms;
  limits.delay_max_ms = config.auth.failure_delay_max_ms;
  limits.failures_before_block = static_cast<int>(config.auth.failures_before_block);
  limits.user_failures_before_block = static_cast<int>(config.auth.user_failures_before_block);
  limits.block_ms = config.auth.block_ms;
  limits.entries_max = config.auth.throttle_entries_max;
  std::unique_ptr<AuthService> service(new AuthService(config.users_path, limits));
  ASSIGN_OR_RETURN(std::shared_ptr<UserDb> users, UserDb::LoadOrEmpty(config.users_path));
  if (users->size() == 0) {
    LogWarning() << "no users in " << config.users_path
                 << ": nobody can submit mail until `relayctl user-add` adds one";
  }
  service->users_ = std::move(users);
  for (uint32_t i = 0; i < config.auth.worker_threads; ++i) {
    service->workers_.emplace_back([s = service.get()] { s->WorkerMain(); });
  }
  return service;
}

AuthService::~AuthService() {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    stop_ = true;
  }
  jobs_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

std::shared_ptr<const UserDb> AuthService::Snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return users_;
}

absl::Status AuthService::Reload() {
  absl::StatusOr<std::shared_ptr<UserDb>> users = UserDb::LoadOrEmpty(users_path_);
  if (!users.ok()) {
    LogWarning() << "users file not reloaded, keeping the previous one: " << users.status();
    return users.status();
  }
  LogInfo() << "reloaded " << (*users)->size() << " users from " << users_path_;
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  users_ = std::move(*users);
  return absl::OkStatus();
}

void AuthService::Check(const smtp::CredentialCheck& credentials, std::string_view peer_ip,
                        io::Reactor* reactor, Done done) {
  std::string key = ClientKeyFromText(absl::string_view(peer_ip.data(), peer_ip.size()));
  std::string user_key = NormalizeUserName(credentials.user);
  if (throttle_.IsBlocked(key, user_key)) {
    LogInfo() << "AUTH from " << peer_ip << " as " << credentials.user
              << " refused: blocked after repeated failures";
    reactor->Post([done = std::move(done)] { done(smtp::AuthResult::kTemporaryFailure); });
    return;
  }
  std::shared_ptr<const UserDb> users = Snapshot();
  // Acting as someone else (a PLAIN authorization identity that differs) is not supported.
  if (!credentials.authzid.empty() && NormalizeUserName(credentials.authzid) != user_key) {
    LogInfo() << "AUTH from " << peer_ip << " asked to act as " << credentials.authzid
              << ": refused";
    Finish(false, key, user_key, reactor, std::move(done));
    return;
  }
  if (users->CheckCachedCredentials(credentials.user, credentials.password)) {
    Finish(true, key, user_key, reactor, std::move(done));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    jobs_.push_back(Job{std::move(users), credentials.user, credentials.password, std::move(key),
                        std::move(user_key), reactor, std::move(done)});
  }
  jobs_cv_.notify_one();
}

void AuthService::Finish(bool ok, const std::string& throttle_key, const std::string& user_key,
                         io::Reactor* reactor, Done done) {
  int64_t delay_ms = 0;
  if (!throttle_key.empty()) {
    delay_ms = throttle_.DelayMillis(throttle_key);
    if (ok) {
      throttle_.RecordSuccess(throttle_key, user_key);
    } else {
      throttle_.RecordFailure(throttle_key, user_key);
    }
  }
  smtp::AuthResult result = ok ? smtp::AuthResult::kOk : smtp::AuthResult::kFailed;
  // Runs on the reactor's thread.
  auto deliver = [reactor, delay_ms, result, done = std::move(done)]() mutable {
    if (delay_ms <= 0) {
      done(result);
      return;
    }
    // Rare path (an address that has been failing): a one-off timer that frees itself.
    auto* timer = new io::Timer();
    timer->set_callback([timer, result, done = std::move(done)] {
      done(result);
      delete timer;
    });
    reactor->timers().ScheduleAfter(timer, delay_ms);
  };
  // From a worker, or from the shard thread itself (cached or refused): never synchronously.
  reactor->RunInLoop(std::move(deliver));
}

bool AuthService::IsBlocked(std::string_view peer_ip) {
  return throttle_.IsBlocked(ClientKeyFromText(absl::string_view(peer_ip.data(), peer_ip.size())));
}

bool AuthService::MaySendAs(std::string_view user, std::string_view address) {
  return Snapshot()->MaySendAs(absl::string_view(user.data(), user.size()),
                               absl::string_view(address.data(), address.size()));
}

void AuthService::WorkerMain() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(jobs_mu_);
      jobs_cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_ && jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    scrypt_checks_++;
    bool ok = job.users->Verify(job.user, job.password);
    Finish(ok, job.throttle_key, job.user_key, job.reactor, std::move(job.done));
  }
}

}  // namespace relay::server
