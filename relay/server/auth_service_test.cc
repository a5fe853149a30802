#include "relay/server/auth_service.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/base/clock.h"
#include "relay/io/reactor.h"
#include "relay/server/users.h"

namespace relay::server {
namespace {

using smtp::AuthResult;

constexpr ScryptParams kFast{10, 8, 1};
constexpr int kWaitMs = 20000;

std::string UsersFile(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::trunc)
      << "mallory@example.com " << HashPassword("mallory-pw", kFast).value() << "\n"
      << "victim@example.com " << HashPassword("victim-pw", kFast).value() << "\n";
  return path;
}

smtp::CredentialCheck Credentials(const std::string& user, const std::string& password) {
  smtp::CredentialCheck c;
  c.user = user;
  c.password = password;
  return c;
}

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reactor = io::Reactor::Create({});
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(*reactor);
    options_.users_path = UsersFile("users");
    options_.worker_threads = 0;  // checks run in RunQueuedChecks, on this thread
    options_.clock = &clock_;
    options_.throttle.failures_before_delay = 1000;  // no delay timers here
  }

  std::unique_ptr<AuthService> Make() {
    auto service = AuthService::Create(options_);
    EXPECT_TRUE(service.ok()) << service.status();
    return service.ok() ? std::move(*service) : nullptr;
  }

  // Starts a check whose result lands in results_[returned index].
  size_t Check(AuthService* service, const std::string& ip, const std::string& user,
               const std::string& password) {
    size_t index = results_.size();
    results_.push_back(std::nullopt);
    service->Check(Credentials(user, password), ip, reactor_.get(),
                   [this, index](AuthResult r) {
                     ASSERT_FALSE(results_[index].has_value()) << "answered twice";
                     results_[index] = r;
                   });
    return index;
  }

  // Runs the reactor until `count` results arrived (or kWaitMs passed).
  size_t RunUntilAnswered(size_t count) {
    int64_t deadline = reactor_->NowMs() + kWaitMs;
    while (Answered() < count && reactor_->NowMs() < deadline) reactor_->RunOnce(10);
    return Answered();
  }

  size_t Answered() const {
    size_t n = 0;
    for (const auto& r : results_) n += r.has_value();
    return n;
  }

  size_t Count(AuthResult want) const {
    size_t n = 0;
    for (const auto& r : results_) n += r.has_value() && *r == want;
    return n;
  }

  FakeClock clock_;
  std::unique_ptr<io::Reactor> reactor_;
  AuthServiceOptions options_;
  std::vector<std::optional<AuthResult>> results_;
};

TEST_F(AuthServiceTest, AFullQueueAnswers454AtOnceAndAcceptsAgainOnceDrained) {
  options_.checks_queued_max = 3;
  std::unique_ptr<AuthService> service = Make();
  // Different clients, so that no throttle is involved: only the queue bound.
  for (int i = 0; i < 5; ++i) {
    Check(service.get(), "192.0.2." + std::to_string(i + 1), "victim@example.com", "guess");
  }
  EXPECT_EQ(RunUntilAnswered(2), 2u);
  EXPECT_EQ(Count(AuthResult::kTemporaryFailure), 2u);
  EXPECT_FALSE(results_[0].has_value());  // the first three wait in the queue
  EXPECT_TRUE(results_[3].has_value() && results_[4].has_value());
  EXPECT_EQ(service->queued(), 3u);
  EXPECT_EQ(service->refused_queue_full(), 2u);
  EXPECT_EQ(service->scrypt_checks(), 0u);

  EXPECT_EQ(service->RunQueuedChecks(), 3u);
  EXPECT_EQ(RunUntilAnswered(5), 5u);
  EXPECT_EQ(Count(AuthResult::kFailed), 3u);
  EXPECT_EQ(service->scrypt_checks(), 3u);

  // Drained: the next check is queued and succeeds.
  size_t ok = Check(service.get(), "192.0.2.9", "victim@example.com", "victim-pw");
  EXPECT_EQ(service->queued(), 1u);
  service->RunQueuedChecks();
  EXPECT_EQ(RunUntilAnswered(6), 6u);
  EXPECT_EQ(results_[ok], AuthResult::kOk);
}

TEST_F(AuthServiceTest, AClientBlockedWhileItsChecksWaitedIsAnsweredWithoutScrypt) {
  options_.throttle.failures_before_block = 2;
  std::unique_ptr<AuthService> service = Make();
  // All five pass the check at AUTH time (nothing has failed yet) and are queued.
  for (int i = 0; i < 5; ++i) Check(service.get(), "192.0.2.1", "u" + std::to_string(i), "x");
  EXPECT_EQ(service->queued(), 5u);
  EXPECT_EQ(service->RunQueuedChecks(), 5u);
  EXPECT_EQ(RunUntilAnswered(5), 5u);
  // Two failures block the client: the three others are refused before hashing.
  EXPECT_EQ(service->scrypt_checks(), 2u);
  EXPECT_EQ(Count(AuthResult::kFailed), 2u);
  EXPECT_EQ(Count(AuthResult::kTemporaryFailure), 3u);
  EXPECT_TRUE(service->IsBlocked("192.0.2.1"));
  // The right password from there is refused at once; the same user elsewhere logs in.
  size_t blocked = Check(service.get(), "192.0.2.1", "victim@example.com", "victim-pw");
  EXPECT_EQ(service->queued(), 0u);
  size_t elsewhere = Check(service.get(), "192.0.2.2", "victim@example.com", "victim-pw");
  service->RunQueuedChecks();
  EXPECT_EQ(RunUntilAnswered(7), 7u);
  EXPECT_EQ(results_[blocked], AuthResult::kTemporaryFailure);
  EXPECT_EQ(results_[elsewhere], AuthResult::kOk);
}

TEST_F(AuthServiceTest, OneValidAccountDoesNotUnlockGuessingOthers) {
  options_.throttle.failures_before_block = 6;
  options_.throttle.user_failures_before_block = 3;
  std::unique_ptr<AuthService> service = Make();
  const std::string ip = "2001:db8:1:2::7";
  // Guess, then log in with one's own account, again and again (the walk-around of issue 13).
  std::vector<size_t> guesses;
  for (int round = 0; round < 4; ++round) {
    guesses.push_back(Check(service.get(), ip, "victim@Example.COM", "guess"));
    Check(service.get(), ip, "mallory@example.com", "mallory-pw");
    service->RunQueuedChecks();
    RunUntilAnswered(results_.size());
  }
  // The third guess at victim@example.com (the domain is case-insensitive) blocked that user
  // name there; the fourth was refused without scrypt, although mallory kept logging in.
  EXPECT_EQ(results_[guesses[2]], AuthResult::kFailed);
  EXPECT_EQ(results_[guesses[3]], AuthResult::kTemporaryFailure);
  EXPECT_EQ(results_[1], AuthResult::kOk);
  // Guessing other names from the same /64 (another address in it) goes on until the client's
  // total of 6: 3 so far.
  const std::string neighbour = "2001:db8:1:2::99";
  for (int i = 0; i < 3; ++i) Check(service.get(), neighbour, "n" + std::to_string(i), "x");
  service->RunQueuedChecks();
  RunUntilAnswered(results_.size());
  EXPECT_TRUE(service->IsBlocked(ip));
  EXPECT_TRUE(service->IsBlocked("2001:db8:1:2:ffff::1"));
  EXPECT_FALSE(service->IsBlocked("2001:db8:1:3::1"));
  size_t own = Check(service.get(), ip, "mallory@example.com", "mallory-pw");
  RunUntilAnswered(results_.size());
  EXPECT_EQ(results_[own], AuthResult::kTemporaryFailure);
}

TEST(AuthServiceThreadsTest, EveryCheckIsAnsweredOnceWithWorkersAndABoundedQueue) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  AuthServiceOptions options;
  options.users_path = UsersFile("users-threads");
  options.worker_threads = 1;
  options.checks_queued_max = 2;
  options.throttle.failures_before_delay = 1000;
  auto service = AuthService::Create(options);
  ASSERT_TRUE(service.ok()) << service.status();
  constexpr int kChecks = 20;
  int answered = 0, refused = 0;
  for (int i = 0; i < kChecks; ++i) {
    // An unknown user costs a full default scrypt (~140 ms): the worker is busy meanwhile.
    (*service)->Check(Credentials("nobody" + std::to_string(i), "x"),
                      "198.51.100." + std::to_string(i), reactor->get(),
                      [&](AuthResult r) {
                        ++answered;
                        refused += r == AuthResult::kTemporaryFailure;
                      });
  }
  int64_t deadline = (*reactor)->NowMs() + kWaitMs;
  while (answered < kChecks && (*reactor)->NowMs() < deadline) (*reactor)->RunOnce(10);
  EXPECT_EQ(answered, kChecks);
  EXPECT_EQ(static_cast<uint64_t>(refused), (*service)->refused_queue_full());
  EXPECT_EQ((*service)->scrypt_checks() + refused, static_cast<uint64_t>(kChecks));
  EXPECT_GE(refused, 10);  // 2 queued + 1 running, unless this thread stalled for long
}

}  // namespace
}  // namespace relay::server
