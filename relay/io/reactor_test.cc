#include "relay/io/reactor.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "relay/io/buffer_ring.h"
#include "relay/io/socket.h"
#include "relay/io/spsc_ring.h"

namespace relay::io {
namespace {

class ReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status probe = Reactor::ProbeKernel();
    if (!probe.ok()) GTEST_SKIP() << "SKIP: " << probe.message();
    auto r = Reactor::Create({});
    ASSERT_TRUE(r.ok()) << r.status();
    reactor_ = std::move(*r);
  }
  std::unique_ptr<Reactor> reactor_;
};

TEST_F(ReactorTest, ReadAndWriteThroughThePipe) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  char out[] = "hello";
  char in[16] = {};
  int wrote = 0, read = 0;
  Completion w([&](int res, uint32_t) { wrote = res; });
  Completion r([&](int res, uint32_t) { read = res; });
  reactor_->Read(fds[0], in, sizeof(in), 0, &r);
  struct iovec iov = {out, 5};
  reactor_->Writev(fds[1], &iov, 1, &w);
  for (int i = 0; i < 100 && (wrote == 0 || read == 0); ++i) reactor_->RunOnce(100);
  EXPECT_EQ(wrote, 5);
  EXPECT_EQ(read, 5);
  EXPECT_EQ(std::string(in, 5), "hello");
  close(fds[0]);
  close(fds[1]);
}

// More operations than the submission queue holds: GetSqe submits to make room, none is lost.
TEST(ReactorSmallRing, FullSubmissionQueueIsFlushedNotDropped) {
  if (!Reactor::ProbeKernel().ok()) GTEST_SKIP() << "SKIP: io_uring unavailable";
  ReactorOptions options;
  options.sq_entries = 8;
  options.cq_entries = 4096;
  auto r = Reactor::Create(options);
  ASSERT_TRUE(r.ok());
  Reactor& reactor = **r;
  int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  constexpr int kOps = 1000;
  std::vector<std::unique_ptr<Completion>> ops;
  std::vector<char> bufs(kOps * 16);
  int done = 0;
  for (int i = 0; i < kOps; ++i) {
    ops.push_back(std::make_unique<Completion>([&](int res, uint32_t) {
      EXPECT_EQ(res, 16);
      ++done;
    }));
    reactor.Read(fd, &bufs[i * 16], 16, 0, ops.back().get());
  }
  for (int i = 0; i < 1000 && done < kOps; ++i) reactor.RunOnce(10);
  EXPECT_EQ(done, kOps);
  close(fd);
}

TEST_F(ReactorTest, TimersBoundTheWait) {
  bool fired = false;
  Timer t([&] { fired = true; });
  reactor_->timers().ScheduleAfter(&t, 20);
  int64_t start = reactor_->NowMs();
  while (!fired && reactor_->NowMs() - start < 5000) reactor_->RunOnce();
  EXPECT_TRUE(fired);
}

TEST_F(ReactorTest, RunInLoopFromAnotherThreadWakesTheLoop) {
  std::atomic<bool> ran{false};
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reactor_->RunInLoop([&] { ran = true; });
  });
  int64_t start = reactor_->NowMs();
  while (!ran && reactor_->NowMs() - start < 5000) reactor_->RunOnce();  // no timer: blocks
  other.join();
  EXPECT_TRUE(ran);
}

// An object with a recv in flight is retired: it must not be freed before the cancelled recv has
// completed, and it must be freed after.
class Holder : public IoObject {
 public:
  explicit Holder(bool* destroyed) : destroyed_(destroyed) {}
  ~Holder() override { *destroyed_ = true; }
  bool Idle() const override { return !recv.in_flight(); }
  Completion recv;
  char buf[16];

 private:
  bool* destroyed_;
};

TEST_F(ReactorTest, RetiredObjectIsFreedOnlyAfterItsOperationsComplete) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  bool destroyed = false;
  int result = 0;
  auto holder = std::make_unique<Holder>(&destroyed);
  holder->recv.set_handler([&](int res, uint32_t) { result = res; });
  reactor_->Recv(sv[0], holder->buf, sizeof(holder->buf), &holder->recv);
  reactor_->RunOnce(0);
  Holder* raw = holder.get();
  reactor_->Cancel(&raw->recv);
  reactor_->RetireWhenIdle(std::move(holder));
  // Until the cancellation's CQE arrives the holder is alive.
  for (int i = 0; i < 100 && !destroyed; ++i) {
    EXPECT_TRUE(!destroyed);
    reactor_->RunOnce(10);
  }
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(result, -ECANCELED);
  close(sv[0]);
  close(sv[1]);
}

TEST_F(ReactorTest, MultishotAcceptAndProvidedBufferRecv) {
  auto addr = SocketAddress::Parse("127.0.0.1:0");
  ASSERT_TRUE(addr.ok());
  auto lfd = Listen(*addr);
  ASSERT_TRUE(lfd.ok()) << lfd.status();
  auto bound = LocalAddress(*lfd);
  ASSERT_TRUE(bound.ok());
  auto buffers = BufferRing::Create(reactor_.get(), 7, 64, 4096);
  ASSERT_TRUE(buffers.ok()) << buffers.status();

  std::vector<int> accepted;
  std::string received;
  Completion accept([&](int res, uint32_t flags) {
    if (res == -ECANCELED) return;
    ASSERT_GE(res, 0);
    EXPECT_TRUE(flags & IORING_CQE_F_MORE);  // multishot stays armed
    accepted.push_back(res);
  });
  reactor_->Accept(*lfd, &accept, /*multishot=*/true);
  constexpr int kClients = 5;
  int clients[kClients];
  for (int& c : clients) {
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(connect(c, bound->get(), bound->length), 0);
  }
  for (int i = 0; i < 100 && accepted.size() < kClients; ++i) reactor_->RunOnce(10);
  ASSERT_EQ(accepted.size(), static_cast<size_t>(kClients));

  BufferRing* br = buffers->get();
  Completion recv([&](int res, uint32_t flags) {
    if (res > 0) {
      ASSERT_TRUE(BufferRing::HasBuffer(flags));
      uint16_t id = BufferRing::BufferId(flags);
      received.append(br->Buffer(id), res);
      br->Recycle(id);
    }
  });
  reactor_->RecvMultishot(accepted[0], br->group_id(), &recv);
  ASSERT_EQ(write(clients[0], "EHLO a\r\n", 8), 8);
  for (int i = 0; i < 100 && received.size() < 8; ++i) reactor_->RunOnce(10);
  ASSERT_EQ(write(clients[0], "QUIT\r\n", 6), 6);
  for (int i = 0; i < 100 && received.size() < 14; ++i) reactor_->RunOnce(10);
  EXPECT_EQ(received, "EHLO a\r\nQUIT\r\n");

  reactor_->Cancel(&recv);
  reactor_->Cancel(&accept);
  for (int i = 0; i < 100 && (recv.in_flight() || accept.in_flight()); ++i) reactor_->RunOnce(10);
  EXPECT_FALSE(recv.in_flight());
  EXPECT_FALSE(accept.in_flight());
  for (int c : clients) close(c);
  for (int a : accepted) close(a);
  close(*lfd);
}

TEST(SpscRing, PassesValuesInOrderAcrossThreads) {
  static SpscRing<int, 1024> ring;
  constexpr int kCount = 200000;
  std::thread producer([] {
    for (int i = 0; i < kCount;) {
      if (ring.TryPush(i)) ++i;
    }
  });
  int expected = 0;
  while (expected < kCount) {
    if (auto v = ring.TryPop()) {
      ASSERT_EQ(*v, expected);
      ++expected;
    }
  }
  producer.join();
  EXPECT_FALSE(ring.TryPop().has_value());
}

TEST(SpscRing, RefusesWhenFull) {
  SpscRing<int, 4> ring;
  bool was_empty = false;
  EXPECT_TRUE(ring.TryPush(1, &was_empty));
  EXPECT_TRUE(was_empty);
  EXPECT_TRUE(ring.TryPush(2, &was_empty));
  EXPECT_FALSE(was_empty);
  EXPECT_TRUE(ring.TryPush(3));
  EXPECT_TRUE(ring.TryPush(4));
  EXPECT_FALSE(ring.TryPush(5));
}

TEST(SocketAddress, ParsesBothFamilies) {
  auto a = SocketAddress::Parse("127.0.0.1:587");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ToString(), "127.0.0.1:587");
  auto b = SocketAddress::Parse("[::1]:465");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ToString(), "[::1]:465");
  auto c = SocketAddress::Parse("2001:db8::5", 25);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port(), 25);
  EXPECT_FALSE(SocketAddress::Parse("example.com:25").ok());
  EXPECT_FALSE(SocketAddress::Parse("1.2.3.4:99999").ok());
}

// An idle loop (no timer armed) sleeps until I/O arrives. A deadline that the I/O's handler arms
// counts from the wake-up, not from the last turn: the metrics endpoint answered the first request
// after an idle gap with 408 because its 5 s request timer fired at once.
TEST(ReactorClock, DeadlineArmedAfterAnIdleGapCountsFromTheWakeUp) {
  if (!Reactor::ProbeKernel().ok()) GTEST_SKIP() << "SKIP: io_uring unavailable";
  FakeClock clock;
  ReactorOptions options;
  options.clock = &clock;
  auto r = Reactor::Create(options);
  ASSERT_TRUE(r.ok()) << r.status();
  Reactor& reactor = **r;
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  int fired = 0;
  Timer deadline([&] { ++fired; });
  char in[4];
  bool read_done = false;
  Completion read([&](int res, uint32_t) {
    read_done = true;
    reactor.timers().ScheduleAfter(&deadline, 1000);
  });
  reactor.Read(fds[0], in, sizeof(in), 0, &read);
  reactor.RunOnce(0);
  clock.AdvanceMillis(60000);  // a minute without any event
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  for (int i = 0; i < 100 && !read_done; ++i) reactor.RunOnce(100);
  ASSERT_TRUE(read_done);
  EXPECT_EQ(fired, 0);
  clock.AdvanceMillis(999);
  reactor.RunOnce(0);
  EXPECT_EQ(fired, 0);
  clock.AdvanceMillis(1);
  reactor.RunOnce(0);
  EXPECT_EQ(fired, 1);
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace relay::io
