#include "relay/server/signing_pool.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "dkim/signer.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace relay::server {
namespace {

constexpr int64_t kSignTimeS = 1700000000;
constexpr int kWaitMs = 30000;

// RFC 8463 Appendix A.2's Ed25519 seed: deterministic signatures, so a pooled result can be
// compared byte for byte with one computed inline.
std::unique_ptr<dkim::Signer> MakeSigner() {
  dkim::SignerConfig config;
  dkim::SigningKeyConfig key;
  key.domain = "example.com";
  key.selector = "pool";
  key.key_contents = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
  config.keys.push_back(key);
  auto signer = dkim::Signer::Create(config);
  EXPECT_TRUE(signer.ok()) << signer.status();
  return std::move(*signer);
}

std::string Message(int i, size_t body_bytes = 0) {
  std::string m = absl::StrCat("From: app@example.com\r\nTo: r", i,
                               "@example.org\r\nSubject: message ", i, "\r\n\r\n");
  std::string line = absl::StrCat("line of message ", i, "\r\n");
  do {
    m += line;
  } while (m.size() < body_bytes);
  return m;
}

std::string SignInline(const dkim::Signer& signer, std::string_view message) {
  dkim::SigningSession session = signer.Begin();
  session.Update(message);
  auto fields = session.Finish(kSignTimeS);
  EXPECT_TRUE(fields.ok()) << fields.status();
  return fields.ok() ? *fields : "";
}

// Runs the reactor on this thread until `done()` or kWaitMs.
template <typename Pred>
bool RunUntil(io::Reactor* reactor, Pred done) {
  int64_t deadline = reactor->NowMs() + kWaitMs;
  while (!done() && reactor->NowMs() < deadline) reactor->RunOnce(10);
  return done();
}

struct Result {
  int index = -1;
  std::thread::id thread;
  absl::StatusOr<std::string> fields;
};

TEST(SigningPoolTest, ResultsComeBackOnTheReactorThreadAndMatchInlineSigning) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  auto pool = SigningPool::Create(3);
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ((*pool)->thread_count(), 3u);
  std::unique_ptr<dkim::Signer> signer = MakeSigner();
  constexpr int kMessages = 60;
  std::vector<std::string> messages;
  for (int i = 0; i < kMessages; ++i) messages.push_back(Message(i, 100 * i));
  std::vector<Result> results;
  for (int i = 0; i < kMessages; ++i) {
    (*pool)->Sign(signer->Begin(), {messages[i]}, kSignTimeS, reactor->get(),
                  [&results, i](absl::StatusOr<std::string> fields, const dkim::SignReport&) {
                    results.push_back({i, std::this_thread::get_id(), std::move(fields)});
                  });
  }
  // Never inside Sign(): nothing can have arrived before the reactor ran.
  EXPECT_TRUE(results.empty());
  ASSERT_TRUE(RunUntil(reactor->get(), [&] { return results.size() == kMessages; }));
  std::vector<int> seen(kMessages, 0);
  for (const Result& r : results) {
    EXPECT_EQ(r.thread, std::this_thread::get_id());
    ASSERT_TRUE(r.fields.ok()) << r.fields.status();
    EXPECT_EQ(*r.fields, SignInline(*signer, messages[r.index])) << r.index;
    EXPECT_NE(r.fields->find("d=example.com"), std::string::npos);
    seen[r.index]++;
  }
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(seen[i], 1) << i;
  EXPECT_EQ((*pool)->signed_total(), static_cast<uint64_t>(kMessages));
}

TEST(SigningPoolTest, ResultsArriveInCompletionOrder) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok());
  auto pool = SigningPool::Create(2);
  ASSERT_TRUE(pool.ok());
  std::unique_ptr<dkim::Signer> signer = MakeSigner();
  // The first message's body takes far longer to hash than all the small ones together to sign:
  // while one worker hashes it, the other signs the rest.
  constexpr size_t kLargeBodyBytes = size_t{16} << 20;
  constexpr int kSmall = 20;
  std::vector<std::string> messages = {Message(0, kLargeBodyBytes)};
  for (int i = 1; i <= kSmall; ++i) messages.push_back(Message(i));
  std::vector<int> order;
  for (int i = 0; i <= kSmall; ++i) {
    (*pool)->Sign(signer->Begin(), {messages[i]}, kSignTimeS, reactor->get(),
                  [&order, i](absl::StatusOr<std::string> fields, const dkim::SignReport&) {
                    EXPECT_TRUE(fields.ok()) << fields.status();
                    order.push_back(i);
                  });
  }
  ASSERT_TRUE(RunUntil(reactor->get(), [&] { return order.size() == kSmall + 1; }));
  EXPECT_EQ(order.back(), 0) << "the large message did not finish last";
}

TEST(SigningPoolTest, PartsAreSignedInOrderAndRefusalsComeBackAsErrors) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok());
  auto pool = SigningPool::Create(1);
  ASSERT_TRUE(pool.ok());
  std::unique_ptr<dkim::Signer> signer = MakeSigner();
  std::string added = "Message-ID: <1@relay.example.com>\r\n";
  std::string message = Message(7);
  std::string no_from = "To: x@example.org\r\nSubject: no From\r\n\r\nbody\r\n";
  absl::StatusOr<std::string> split, refused;
  int done = 0;
  (*pool)->Sign(signer->Begin(), {added, message}, kSignTimeS, reactor->get(),
                [&](absl::StatusOr<std::string> f, const dkim::SignReport&) {
                  split = std::move(f);
                  ++done;
                });
  (*pool)->Sign(signer->Begin(), {no_from}, kSignTimeS, reactor->get(),
                [&](absl::StatusOr<std::string> f, const dkim::SignReport&) {
                  refused = std::move(f);
                  ++done;
                });
  ASSERT_TRUE(RunUntil(reactor->get(), [&] { return done == 2; }));
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(*split, SignInline(*signer, added + message));
  // RFC 6376 §5.4: From is required; the signer refuses a message without one.
  EXPECT_FALSE(refused.ok());
}

TEST(SigningPoolTest, DestructionFinishesQueuedJobs) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok());
  std::unique_ptr<dkim::Signer> signer = MakeSigner();
  constexpr int kMessages = 30;
  std::vector<std::string> messages;
  for (int i = 0; i < kMessages; ++i) messages.push_back(Message(i, 20000));
  std::vector<int> calls(kMessages, 0);
  {
    auto pool = SigningPool::Create(1);
    ASSERT_TRUE(pool.ok());
    for (int i = 0; i < kMessages; ++i) {
      (*pool)->Sign(signer->Begin(), {messages[i]}, kSignTimeS, reactor->get(),
                    [&calls, i](absl::StatusOr<std::string> f, const dkim::SignReport&) {
                      EXPECT_TRUE(f.ok());
                      calls[i]++;
                    });
    }
  }  // joins its thread; every job already queued still reports
  int total = 0;
  ASSERT_TRUE(RunUntil(reactor->get(), [&] {
    total = 0;
    for (int c : calls) total += c;
    return total == kMessages;
  }));
  reactor->get()->RunOnce(0);
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(calls[i], 1) << i;
}

// The pattern SmtpConnection follows: a connection closed while its signature is pending stays
// allocated (Idle() is false) until the result came back, then ignores it and is freed.
class FakeConnection : public io::IoObject {
 public:
  FakeConnection(std::atomic<int>* destroyed, int* ignored)
      : destroyed_(destroyed), ignored_(ignored), message_(Message(1, 4 << 20)) {}
  ~FakeConnection() override { destroyed_->fetch_add(1); }
  bool Idle() const override { return closed_ && !sign_pending_; }

  void Submit(SigningPool* pool, const dkim::Signer& signer, io::Reactor* reactor) {
    sign_pending_ = true;
    pool->Sign(signer.Begin(), {message_}, kSignTimeS, reactor,
               [this](absl::StatusOr<std::string> fields, const dkim::SignReport&) {
                 sign_pending_ = false;
                 EXPECT_TRUE(fields.ok());
                 if (closed_) {
                   ++*ignored_;
                   return;
                 }
                 ADD_FAILURE() << "result applied to a closed connection";
               });
  }
  void Close() { closed_ = true; }

 private:
  std::atomic<int>* destroyed_;
  int* ignored_;
  std::string message_;  // read by the worker while pending
  bool sign_pending_ = false;
  bool closed_ = false;
};

TEST(SigningPoolTest, ConnectionClosedWhileItsSignatureIsPendingIsFreedAfterTheResult) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok());
  auto pool = SigningPool::Create(1);
  ASSERT_TRUE(pool.ok());
  std::unique_ptr<dkim::Signer> signer = MakeSigner();
  std::atomic<int> destroyed{0};
  int ignored = 0;
  constexpr int kConnections = 8;
  std::vector<std::unique_ptr<FakeConnection>> connections;
  for (int i = 0; i < kConnections; ++i) {
    connections.push_back(std::make_unique<FakeConnection>(&destroyed, &ignored));
  }
  for (auto& connection : connections) {
    connection->Submit(pool->get(), *signer, reactor->get());
    connection->Close();
    reactor->get()->RetireWhenIdle(std::move(connection));
  }
  reactor->get()->RunOnce(0);
  // One worker, 4 MiB bodies: the last ones are still being hashed, so not freed.
  EXPECT_LT(destroyed.load(), kConnections);
  ASSERT_TRUE(RunUntil(reactor->get(), [&] { return destroyed.load() == kConnections; }));
  EXPECT_EQ(ignored, kConnections);
  EXPECT_EQ(reactor->get()->retiring(), 0u);
}

// Port 25's checks and seals (issue 13): any work on a worker, its `done` on the reactor's thread,
// and a bound on what waits, beyond which TryRun refuses (the connection answers 451 4.3.2).
TEST(SigningPoolTest, TryRunRunsWorkOffTheReactorThreadAndRefusesBeyondItsBound) {
  auto reactor = io::Reactor::Create({});
  ASSERT_TRUE(reactor.ok());
  auto pool = SigningPool::Create(1);
  ASSERT_TRUE(pool.ok());
  // The one worker is held by a job that waits for `release`, so that the next ones wait.
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, release = false;
  std::vector<std::thread::id> work_threads;
  std::vector<int> done_order;
  ASSERT_TRUE((*pool)->TryRun(
      [&] {
        std::unique_lock<std::mutex> lock(mu);
        started = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        work_threads.push_back(std::this_thread::get_id());
      },
      reactor->get(), [&] { done_order.push_back(0); }, 2));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return started; });
  }
  // Two may wait; a third is refused and runs neither function.
  constexpr size_t kQueuedMax = 2;
  for (int i = 1; i <= 2; ++i) {
    EXPECT_TRUE((*pool)->TryRun(
        [&] {
          std::lock_guard<std::mutex> lock(mu);
          work_threads.push_back(std::this_thread::get_id());
        },
        reactor->get(), [&done_order, i] { done_order.push_back(i); }, kQueuedMax));
  }
  bool refused_ran = false;
  EXPECT_FALSE((*pool)->TryRun([&] { refused_ran = true; }, reactor->get(),
                               [&] { refused_ran = true; }, kQueuedMax));
  EXPECT_EQ((*pool)->refused_total(), 1u);
  EXPECT_EQ((*pool)->queued(), 2u);
  // Signatures are not counted against the bound.
  std::unique_ptr<dkim::Signer> signer = MakeSigner();
  std::string message = Message(3);
  bool signed_done = false;
  (*pool)->Sign(signer->Begin(), {message}, kSignTimeS, reactor->get(),
                [&](absl::StatusOr<std::string> f, const dkim::SignReport&) {
                  EXPECT_TRUE(f.ok());
                  signed_done = true;
                });
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(RunUntil(reactor->get(), [&] { return done_order.size() == 3 && signed_done; }));
  EXPECT_EQ(done_order, (std::vector<int>{0, 1, 2}));  // one worker: in order
  EXPECT_FALSE(refused_ran);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(work_threads.size(), 3u);
    for (std::thread::id t : work_threads) EXPECT_NE(t, std::this_thread::get_id());
  }
  // Room again once the queue drained.
  bool again = false;
  EXPECT_TRUE((*pool)->TryRun([] {}, reactor->get(), [&] { again = true; }, kQueuedMax));
  ASSERT_TRUE(RunUntil(reactor->get(), [&] { return again; }));
}

TEST(SigningPoolTest, ThreadCountIsBounded) {
  EXPECT_FALSE(SigningPool::Create(SigningPool::kThreadsMax + 1).ok());
  auto pool = SigningPool::Create(0);
  ASSERT_TRUE(pool.ok());
  EXPECT_GE((*pool)->thread_count(), 1u);
}

}  // namespace
}  // namespace relay::server
