#include "relay/server/auth_service.h"

#include "absl/strings/str_cat.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/server/client_key.h"

namespace relay::server {

AuthServiceOptions AuthService::OptionsFrom(const Config& config) {
  AuthServiceOptions options;
  options.users_path = config.users_path;
  AuthThrottleLimits& limits = options.throttle;
  limits.window_ms = config.auth.failure_window_ms;
  limits.failures_before_delay = static_cast<int>(config.auth.failures_before_delay);
  limits.delay_per_failure_ms = config.auth.failure_delay_ms;
  limits.delay_ms_max = config.auth.failure_delay_ms_max;
  limits.failures_before_block = static_cast<int>(config.auth.failures_before_block);
  limits.user_failures_before_block = static_cast<int>(config.auth.user_failures_before_block);
  limits.block_ms = config.auth.block_ms;
  limits.entries_max = config.auth.throttle_entries_max;
  options.checks_queued_max = config.auth.checks_queued_max;
  options.worker_threads = config.auth.worker_threads;
  return options;
}

absl::StatusOr<std::unique_ptr<AuthService>> AuthService::Create(const Config& config) {
  return Create(OptionsFrom(config));
}

absl::StatusOr<std::unique_ptr<AuthService>> AuthService::Create(AuthServiceOptions options) {
  const uint32_t threads = options.worker_threads;
  std::unique_ptr<AuthService> service(new AuthService(std::move(options)));
  ASSIGN_OR_RETURN(std::shared_ptr<UserDb> users, UserDb::LoadOrEmpty(service->users_path_));
  if (users->size() == 0) {
    LogWarning() << "no users in " << service->users_path_
                 << ": nobody can submit mail until `relayctl user-add` adds one";
  }
  service->users_ = std::move(users);
  for (uint32_t i = 0; i < threads; ++i) {
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
  std::string client = ClientKeyFromText(absl::string_view(peer_ip.data(), peer_ip.size()));
  std::string user_key = NormalizeUserName(credentials.user);
  if (throttle_.IsBlocked(client, user_key)) {
    LogInfo() << "AUTH from " << peer_ip << " as " << credentials.user
              << " refused: blocked after repeated failures";
    Refuse(reactor, std::move(done));
    return;
  }
  std::shared_ptr<const UserDb> users = Snapshot();
  // Acting as someone else (a PLAIN authorization identity that differs) is not supported.
  if (!credentials.authzid.empty() && NormalizeUserName(credentials.authzid) != user_key) {
    LogInfo() << "AUTH from " << peer_ip << " asked to act as " << credentials.authzid
              << ": refused";
    Finish(false, client, user_key, reactor, std::move(done));
    return;
  }
  if (users->CheckCachedCredentials(credentials.user, credentials.password)) {
    Finish(true, client, user_key, reactor, std::move(done));
    return;
  }
  if (Enqueue(Job{std::move(users), credentials.user, credentials.password, std::move(client),
                  std::move(user_key), reactor, std::move(done)})) {
    jobs_cv_.notify_one();
  }
}

bool AuthService::Enqueue(Job job) {
  size_t queued = 0;
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    if (jobs_.size() < checks_queued_max_) {
      jobs_.push_back(std::move(job));
      return true;
    }
    queued = jobs_.size();
    if (refused_since_full_++ != 0) queued = 0;  // already said
  }
  refused_queue_full_++;
  if (queued != 0) {
    LogWarning() << "AUTH queue full (" << queued << " password checks waiting, [auth] "
                 << "checks_queued_max): AUTH gets 454 4.7.0 until it drains";
  }
  Refuse(job.reactor, std::move(job.done));
  return false;
}

void AuthService::Refuse(io::Reactor* reactor, Done done) {
  reactor->RunInLoop(
      [done = std::move(done)] { done(smtp::AuthResult::kTemporaryFailure); });
}

void AuthService::Finish(bool ok, const std::string& client, const std::string& user_key,
                         io::Reactor* reactor, Done done) {
  int64_t delay_ms = 0;
  if (!client.empty()) {
    delay_ms = throttle_.DelayMillis(client);
    if (ok) {
      throttle_.RecordSuccess(client, user_key);
    } else {
      throttle_.RecordFailure(client, user_key);
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

void AuthService::RunJob(Job job) {
  // The client (or this user there) may have been blocked while the check waited: answer without
  // spending scrypt on it.
  if (throttle_.IsBlocked(job.client, job.user_key)) {
    Refuse(job.reactor, std::move(job.done));
    return;
  }
  scrypt_checks_++;
  bool ok = job.users->Verify(job.user, job.password);
  Finish(ok, job.client, job.user_key, job.reactor, std::move(job.done));
}

size_t AuthService::queued() const {
  std::lock_guard<std::mutex> lock(jobs_mu_);
  return jobs_.size();
}

bool AuthService::TakeJob(Job* job, bool wait) {
  uint64_t refused = 0;
  {
    std::unique_lock<std::mutex> lock(jobs_mu_);
    if (wait) jobs_cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return false;
    *job = std::move(jobs_.front());
    jobs_.pop_front();
    if (jobs_.empty()) std::swap(refused, refused_since_full_);
  }
  if (refused != 0) {
    LogInfo() << "AUTH queue drained; " << refused
              << " AUTH attempts got 454 4.7.0 while it was full";
  }
  return true;
}

size_t AuthService::RunQueuedChecks() {
  size_t ran = 0;
  Job job;
  while (TakeJob(&job, /*wait=*/false)) {
    RunJob(std::move(job));
    ++ran;
  }
  return ran;
}

void AuthService::WorkerMain() {
  Job job;
  while (TakeJob(&job, /*wait=*/true)) RunJob(std::move(job));
}

}  // namespace relay::server
