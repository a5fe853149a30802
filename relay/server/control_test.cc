#include "relay/server/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace relay::server {
namespace {

std::string TempDir() {
  // Not under TEST_TMPDIR: a Unix socket's path must fit in 108 bytes.
  std::string dir = "/tmp/control-test-XXXXXX";
  EXPECT_NE(mkdtemp(dir.data()), nullptr);
  return dir;
}

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(ControlSocketTest, SocketIsPrivateWhateverTheUmask) {
  const std::string path = TempDir() + "/control.sock";
  mode_t old = umask(0);
  auto control = ControlSocket::Start(path, {}, nullptr);
  umask(old);
  ASSERT_TRUE(control.ok()) << control.status();
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  control->reset();
  EXPECT_NE(lstat(path.c_str(), &st), 0) << "the socket file is removed when it stops";
}

TEST(ControlSocketTest, ASilentClientDelaysNoOther) {
  const std::string path = TempDir() + "/control.sock";
  auto control = ControlSocket::Start(path, {}, nullptr);
  ASSERT_TRUE(control.ok()) << control.status();
  int silent = Connect(path);
  int other = Connect(path);
  const std::string request = "frobnicate 1\n";
  ASSERT_EQ(::write(other, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  EXPECT_EQ(ReadAll(other), "error: unknown request frobnicate\n");
  // Answered while the silent client is still within its time: it has been told nothing yet.
  char c;
  EXPECT_EQ(recv(silent, &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  // At its deadline it is told why and closed.
  EXPECT_EQ(ReadAll(silent), "error: incomplete request\n");
  ::close(silent);
  ::close(other);
}

TEST(ControlSocketTest, OverlongRequestIsRefused) {
  const std::string path = TempDir() + "/control.sock";
  auto control = ControlSocket::Start(path, {}, nullptr);
  ASSERT_TRUE(control.ok()) << control.status();
  int fd = Connect(path);
  std::string request(ControlSocket::kRequestBytesMax + 100, 'a');
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  EXPECT_EQ(ReadAll(fd), "error: request longer than 512 bytes\n");
  ::close(fd);
}

TEST(ControlSocketTest, RequestsNamingNoShard) {
  std::vector<Shard*> none;
  EXPECT_EQ(ControlSocket::Handle("retry", none, nullptr),
            "error: expected retry|bounce|delete ID|--all|--tenant T|--campaign C|--sender S"
            "|--domain D, or reload");
  EXPECT_EQ(ControlSocket::Handle("bounce --all", none, nullptr),
            "error: only retry takes --all, alone");
  // A selector is checked before any shard is asked; with none running, every shard said ok.
  EXPECT_EQ(ControlSocket::Handle("bounce --tenant", none, nullptr),
            "error: --tenant needs a value");
  EXPECT_EQ(ControlSocket::Handle("delete --mx google", none, nullptr), "error: unknown --mx");
  EXPECT_EQ(ControlSocket::Handle("tls list", none, nullptr),
            "error: the TLS downgrade memory is off ([tls_policy] downgrade_memory)");
  EXPECT_EQ(ControlSocket::Handle("delete --tenant shop --domain gmail.com", none, nullptr),
            "ok: ");
  EXPECT_EQ(ControlSocket::Handle("delete 6a1b2c3d-4-1 extra", none, nullptr),
            "error: delete takes one queue id");
  EXPECT_EQ(ControlSocket::Handle("delete nonsense", none, nullptr),
            "error: not a queue id: nonsense");
  EXPECT_EQ(ControlSocket::Handle("reload", none, nullptr), "error: reload is not available here");
  EXPECT_EQ(ControlSocket::Handle("delete 6a1b2c3d-4-1", none, nullptr),
            "error: 6a1b2c3d-4-1 belongs to shard 4, which is not running");
}

// A reload asked on the socket is carried out by the thread that polls MainThreadRequests::fd(),
// and its answer goes back to the client.
TEST(ControlSocketTest, ReloadIsAnsweredByTheMainThread) {
  const std::string path = TempDir() + "/control.sock";
  MainThreadRequests main_thread;
  auto control = ControlSocket::Start(path, {}, &main_thread);
  ASSERT_TRUE(control.ok()) << control.status();
  std::thread main_loop([&] {
    pollfd p{main_thread.fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    main_thread.Answer("ok: certificate reloaded");
  });
  int fd = Connect(path);
  ASSERT_EQ(::write(fd, "reload\n", 7), 7);
  EXPECT_EQ(ReadAll(fd), "ok: certificate reloaded\n");
  ::close(fd);
  main_loop.join();
  // Once closed (relayd stopping), a reload is refused at once instead of waiting.
  main_thread.Close("error: relayd is stopping");
  fd = Connect(path);
  ASSERT_EQ(::write(fd, "reload\n", 7), 7);
  EXPECT_EQ(ReadAll(fd), "error: relayd is stopping\n");
  ::close(fd);
}

TEST(ControlHandleTest, SuspendResumeAndList) {
  delivery::Suspensions board;
  const int64_t now = 1700000000000;
  auto handle = [&](const char* request) {
    std::vector<std::string> words = absl::StrSplit(request, ' ', absl::SkipEmpty());
    return ControlSocket::HandleSuspension(words, board, now);
  };
  EXPECT_EQ(handle("suspend google 3600 blocklisted, asking Google"),
            "ok: google suspended for 3600 s");
  EXPECT_EQ(handle("suspend yahoo 0"), "ok: yahoo suspended until resumed");
  std::string list = handle("suspensions");
  EXPECT_TRUE(absl::StartsWith(list, "ok: 2 in force; ")) << list;
  EXPECT_NE(list.find("google for 3600 s (operator): suspended by the operator: blocklisted, "
                      "asking Google"),
            std::string::npos)
      << list;
  EXPECT_NE(list.find("yahoo until resumed (operator)"), std::string::npos) << list;
  EXPECT_EQ(board.InForce(now).size(), 2u);
  EXPECT_EQ(handle("resume google"), "ok: google resumed (1 entry)");
  EXPECT_EQ(handle("resume google"), "error: google is not suspended");
  EXPECT_TRUE(absl::StartsWith(handle("suspend x -1"), "error: expected"));
  EXPECT_TRUE(absl::StartsWith(handle("suspend x"), "error: expected"));
  EXPECT_EQ(ControlSocket::Handle("suspensions", {}, nullptr, nullptr),
            "error: suspensions are not available here");
}

TEST(ControlHandleTest, SuspendByEverySelectorRebindAndUnbind) {
  delivery::Suspensions board;
  const int64_t now = 1700000000000;
  auto handle = [&](const char* request) {
    std::vector<std::string> words = absl::StrSplit(request, ' ', absl::SkipEmpty());
    return ControlSocket::HandleSuspension(words, board, now, {"default", "warm", "cold"});
  };
  EXPECT_EQ(handle("suspend tenant=shop 600 card declined"), "ok: tenant shop suspended for 600 s");
  EXPECT_EQ(handle("suspend campaign=black-friday 0"),
            "ok: campaign black-friday suspended until resumed");
  EXPECT_EQ(handle("suspend domain=example.org 60"), "ok: domain example.org suspended for 60 s");
  EXPECT_EQ(handle("suspend source=2001:db8::25 60"), "ok: source 2001:db8::25 suspended for 60 s");
  EXPECT_EQ(handle("suspend site=google 60"), "ok: google suspended for 60 s");
  EXPECT_EQ(handle("suspend campaign=spring+20sale 60"),
            "ok: campaign spring sale suspended for 60 s");  // xtext
  EXPECT_EQ(handle("rebind tenant=shop warm 0 moving to the warm IPs"),
            "ok: tenant shop rebound to pool warm until unbound");
  EXPECT_EQ(handle("rebind google cold 3600"), "ok: google rebound to pool cold for 3600 s");
  EXPECT_EQ(handle("rebind tenant=shop hot 0"),
            "error: no egress pool hot (pools: default, warm, cold)");
  EXPECT_EQ(handle("rebind source=x warm 0"),
            "error: a rebind names a site, domain, tenant or campaign");
  EXPECT_TRUE(absl::StartsWith(handle("suspend colour=blue 60"), "error: expected SITE or KIND"));
  EXPECT_TRUE(absl::StartsWith(handle("suspend tenant= 60"), "error: expected SITE or KIND"));
  EXPECT_TRUE(absl::StartsWith(handle("suspend a|b 60"), "error: expected SITE or KIND"));
  std::map<std::string, delivery::Suspension> by_key;
  for (delivery::Suspension& s : board.InForce(now)) by_key[s.key] = s;
  ASSERT_EQ(by_key.size(), 8u);
  EXPECT_TRUE(by_key.contains("campaign:spring sale"));
  EXPECT_TRUE(by_key.contains("tenant:shop"));
  EXPECT_TRUE(by_key.contains("source:2001:db8::25"));
  EXPECT_TRUE(by_key.contains("*|google"));
  EXPECT_EQ(by_key["rebind:tenant:shop"].pool, "warm");
  EXPECT_EQ(by_key["rebind:site:google"].pool, "cold");
  EXPECT_EQ(by_key["rebind:tenant:shop"].reason, "rebound by the operator: moving to the warm IPs");
  const std::string list = handle("suspensions");
  EXPECT_TRUE(absl::StartsWith(list, "ok: 8 in force; ")) << list;
  EXPECT_NE(list.find("tenant shop rebound to pool warm until resumed (operator)"),
            std::string::npos)
      << list;
  EXPECT_NE(list.find("campaign black-friday until resumed (operator)"), std::string::npos) << list;
  EXPECT_EQ(handle("unbind tenant=shop"), "ok: tenant shop back to its own pool");
  EXPECT_EQ(handle("unbind tenant=shop"), "error: tenant shop is not rebound");
  EXPECT_EQ(handle("resume tenant=shop"), "ok: tenant shop resumed (1 entry)");
  EXPECT_EQ(handle("resume tenant=shop"), "error: tenant shop is not suspended");
  // Resuming a site leaves its rebind alone.
  EXPECT_EQ(handle("resume google"), "ok: google resumed (1 entry)");
  EXPECT_EQ(board.InForce(now).size(), 5u);
}

TEST(SuspensionsFileTest, KeptAcrossARestart) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/suspensions";
  {
    delivery::Suspensions board;
    board.SetFile(path);
    board.Suspend({delivery::AnySourceKey("google"), 5000, "by hand", -1});
    board.Suspend({"0|yahoo", 2000, "TSS04", 1});
  }
  delivery::Suspensions again;
  ASSERT_TRUE(again.Load(path, 3000).ok());
  std::vector<delivery::Suspension> in_force = again.InForce(3000);
  ASSERT_EQ(in_force.size(), 1u) << "the one over by then is left out";
  EXPECT_EQ(in_force[0].key, "*|google");
  EXPECT_EQ(in_force[0].reason, "by hand");
  EXPECT_EQ(in_force[0].shard, -1);
}

TEST(SuspensionsFileTest, BackoffsAndRebindsReadBack) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/suspensions-extra";
  {
    delivery::Suspensions board;
    board.SetFile(path);
    delivery::Suspension backoff{delivery::BackoffKey(1, "google"), 5000, "421 4.7.0 slow down", 0};
    backoff.backoff = 0.25;
    board.Suspend(backoff);
    delivery::Suspension rebind{delivery::RebindKey("tenant", "shop"), 5000, "by hand", -1};
    rebind.pool = "warm";
    board.Suspend(rebind);
  }
  delivery::Suspensions again;
  ASSERT_TRUE(again.Load(path, 3000).ok());
  std::map<std::string, delivery::Suspension> by_key;
  for (delivery::Suspension& s : again.InForce(3000)) by_key[s.key] = s;
  ASSERT_EQ(by_key.size(), 2u);
  EXPECT_EQ(by_key["backoff:1|google"].backoff, 0.25);
  EXPECT_EQ(by_key["backoff:1|google"].reason, "421 4.7.0 slow down");
  EXPECT_EQ(by_key["rebind:tenant:shop"].pool, "warm");
  // A line whose extras do not fit its key is left out.
  EXPECT_TRUE(delivery::ParseSuspensionsFile("rebind:tenant:x\t1\t-1\tr\n").empty());
  EXPECT_TRUE(delivery::ParseSuspensionsFile("backoff:0|g\t1\t0\tr\tbackoff=1.5\n").empty());
  EXPECT_TRUE(delivery::ParseSuspensionsFile("0|g\t1\t0\tr\tbackoff=0.5\n").empty());
  EXPECT_EQ(delivery::ParseSuspensionsFile("tenant:x\t1\t-1\tr\tfuture=1\n").size(), 1u);
}

}  // namespace
}  // namespace relay::server
