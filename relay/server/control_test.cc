#include "relay/server/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

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
            "error: expected \"retry|bounce|delete ID\", \"retry --all\" or \"reload\"");
  EXPECT_EQ(ControlSocket::Handle("bounce --all", none, nullptr),
            "error: only retry takes --all");
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

}  // namespace
}  // namespace relay::server
