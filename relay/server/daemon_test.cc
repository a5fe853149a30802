// A whole relay on port 0, configured as data, driven through Daemon: start, a session, reload,
// stop; and a start that fails says why and leaves nothing running.
#include "relay/server/daemon.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "relay/io/socket.h"
#include "relay/server/config.h"

namespace relay::server {
namespace {

std::string TestDir(const std::string& name) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

Config LoopbackConfig(const std::string& dir) {
  Config c = DefaultConfig(dir, "relay.test");
  c.shards = 2;
  c.submission_listen = {"127.0.0.1:0"};
  c.auth_requires_tls = false;  // no certificate in this test
  c.delivery.enabled = false;
  c.queue.segment_bytes = 1 << 20;
  c.queue.reserve_segments = 0;
  c.shutdown_grace_ms = 1000;
  return c;
}

// A blocking client: sends `line` (if any) and reads one reply (all its lines).
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  std::string Say(const std::string& line) {
    if (!line.empty() && ::send(fd_, line.data(), line.size(), MSG_NOSIGNAL) < 0) return "";
    std::string reply;
    char buf[4096];
    // A reply ends with a line whose fourth character is a space.
    while (true) {
      size_t last = reply.rfind("\r\n", reply.size() >= 2 ? reply.size() - 3 : 0);
      size_t start = last == std::string::npos ? 0 : last + 2;
      if (reply.size() >= 2 && absl::EndsWith(reply, "\r\n") && reply.size() - start > 3 &&
          reply[start + 3] == ' ') {
        return reply;
      }
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Said in the reply, so that a failed check shows why the reply is short.
        return reply + (n == 0 ? "[closed]" : std::string("[") + std::strerror(errno) + "]");
      }
      reply.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

uint16_t PortOf(const std::string& address) {
  auto a = io::SocketAddress::Parse(address);
  return a.ok() ? a->port() : 0;
}

TEST(Daemon, StartsOnPortZeroServesReloadsAndStops) {
  const std::string dir = TestDir("run");
  DaemonOptions options;
  options.config_path = dir + "/relayd.toml";
  // A file that loads, as LoopbackConfig's settings would read.
  const std::string file_head =
      "[submission]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\nauth_requires_tls = false\n";
  options.config_text = "hostname = \"relay.test\"\n" + file_head;
  std::ofstream(options.config_path) << options.config_text;
  absl::StatusOr<std::unique_ptr<Daemon>> daemon =
      Daemon::Start(LoopbackConfig(dir), std::move(options));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  Daemon& relay = **daemon;

  // Both shards listen on the port shard 0 got; the ready line names it.
  ASSERT_EQ(relay.shards().size(), 2u);
  const uint16_t port = PortOf(relay.config().submission_listen.at(0));
  ASSERT_NE(port, 0);
  EXPECT_EQ(relay.ReadyLine(), "2 shards; submission (STARTTLS) on 127.0.0.1:" +
                                   std::to_string(port) + "; spool " + dir + "/spool");

  {
    Client client(port);
    ASSERT_TRUE(client.connected());
    EXPECT_TRUE(absl::StartsWith(client.Say(""), "220 relay.test")) ;
    const std::string ehlo = client.Say("EHLO client.test\r\n");
    EXPECT_TRUE(absl::StartsWith(ehlo, "250-relay.test")) << ehlo;
    const std::string quit = client.Say("QUIT\r\n");
    EXPECT_TRUE(absl::StartsWith(quit, "221 ")) << quit;
  }

  ReloadResult reload = relay.Reload();
  EXPECT_TRUE(reload.ok) << reload.summary;
  EXPECT_EQ(reload.summary,
            "ok: users reloaded; delivery logs reopened; DKIM keys, shaping rules, tenants and "
            "egress pools reloaded");
  // [limits] applies to the connections opened after the reload.
  std::ofstream(dir + "/relayd.toml")
      << "hostname = \"relay.test\"\n" + file_head << "[limits]\nmessage_bytes_max = 1048576\n";
  reload = relay.Reload();
  EXPECT_TRUE(reload.ok) << reload.summary;
  EXPECT_FALSE(absl::StrContains(reload.summary, "not applied")) << reload.summary;
  {
    Client client(port);
    client.Say("");
    const std::string ehlo = client.Say("EHLO client.test\r\n");
    EXPECT_TRUE(absl::StrContains(ehlo, "SIZE 1048576")) << ehlo;
  }
  // An edit of relayd.toml that needs a restart is reported, not applied.
  std::ofstream(dir + "/relayd.toml") << "hostname = \"other.test\"\n" + file_head;
  reload = relay.Reload();
  EXPECT_TRUE(reload.ok);
  EXPECT_TRUE(absl::StrContains(reload.summary, "relayd.toml changed (hostname): not applied"))
      << reload.summary;
  std::ofstream(dir + "/relayd.toml") << "hostname = \n";
  reload = relay.Reload();
  EXPECT_FALSE(reload.ok);
  EXPECT_TRUE(absl::StartsWith(reload.summary, "error: ")) << reload.summary;

  EXPECT_EQ(relay.Stop(), 0u);
  EXPECT_EQ(relay.Stop(), 0u);  // once
  Client after(port);
  EXPECT_FALSE(after.connected());
}

TEST(Daemon, AFailedStartSaysWhyAndLeavesNothingRunning) {
  const std::string dir = TestDir("bad-key");
  Config c = LoopbackConfig(dir);
  c.dkim_keys.push_back({"relay.test", "sel", dir + "/missing.pem"});
  absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(std::move(c), {});
  ASSERT_FALSE(daemon.ok());
  EXPECT_TRUE(absl::StartsWith(daemon.status().message(), "DKIM: ")) << daemon.status();

  // A listener that cannot bind (an address this host does not have): the shard is named.
  Config unbound = LoopbackConfig(TestDir("unbound"));
  unbound.submission_listen = {"192.0.2.1:0"};
  daemon = Daemon::Start(std::move(unbound), {});
  ASSERT_FALSE(daemon.ok());
  EXPECT_TRUE(absl::StartsWith(daemon.status().message(), "shard 0: ")) << daemon.status();
  EXPECT_TRUE(absl::StrContains(daemon.status().message(), "192.0.2.1")) << daemon.status();
}

}  // namespace
}  // namespace relay::server
